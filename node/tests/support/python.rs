//! The Python interpreter of the project's virtual environment, for tests that drive the real
//! Python tools (nbformat, astropy, pyvo).

use std::path::{Path, PathBuf};

/// `ORRERY_PYTHON` (set by `scripts/test`), or `.venv/bin/python` at the top of the checkout.
pub(crate) fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ORRERY_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "the Python tools are missing: run `scripts/test` (it installs them into .venv) or set ORRERY_PYTHON"
    );
    venv
}
