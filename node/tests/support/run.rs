//! Running the `orrery` binary from the process-level tests.

use std::path::Path;
use std::process::Command;

/// Runs `orrery --data-dir DATA ARGS…`, asserts success and returns standard output.
pub(crate) fn orrery(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("orrery runs");
    assert!(
        out.status.success(),
        "orrery {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}
