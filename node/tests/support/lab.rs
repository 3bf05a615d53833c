//! Lab helpers of the process-level tests: the lab environment's Python, and a cell run in a
//! lab's kernel through a node's proxy (`scripts/lab-cell.py`), as JupyterLab runs one.

use std::path::{Path, PathBuf};

/// The Python of the `jupyter` environment provisioned under `envs` (it has websocket-client).
#[allow(dead_code)]
pub(crate) fn env_python(envs: &Path) -> PathBuf {
    std::fs::read_dir(envs)
        .expect("environments")
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin/python"))
        .find(|p| p.exists())
        .expect("the jupyter environment's Python")
}

/// Runs `code` in a new kernel of `lab`, reached at the node `addr` on the lab's `host` with
/// `token`; what the cell printed and its result, trimmed. The cell must succeed.
#[allow(dead_code)]
pub(crate) fn cell(
    python: &Path,
    addr: &str,
    lab: &str,
    host: &str,
    token: &str,
    code: &str,
) -> String {
    let out = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/lab-cell.py"
        ))
        .args([addr, lab, host, token, code])
        .output()
        .expect("python runs");
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "{code}: {printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    printed
}
