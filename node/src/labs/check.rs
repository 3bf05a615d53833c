//! What `orrery lab check` reports: each layer a lab's isolation needs, and whether it is here.
//!
//! A lab refuses to start when a layer is missing, and the refusal names the layer
//! ([`Report::refusal`]).

use std::path::{Path, PathBuf};

use super::cgroup::CgroupDriver;

/// One layer of a lab's isolation and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer: `bubblewrap`, `user namespaces`, `cgroups`, `landlock`, `lab user`.
    pub name: &'static str,
    /// Whether labs can rely on it.
    pub ok: bool,
    /// What was found, or what to do.
    pub detail: String,
}

/// Every layer, in the order they are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The layers.
    pub layers: Vec<Layer>,
}

impl Report {
    /// Why labs cannot start here, naming every missing layer; `None` when all are present.
    pub fn refusal(&self) -> Option<String> {
        let missing: Vec<String> = self
            .layers
            .iter()
            .filter(|l| !l.ok)
            .map(|l| format!("{}: {}", l.name, l.detail))
            .collect();
        (!missing.is_empty())
            .then(|| format!("the lab sandbox is unavailable ({})", missing.join("; ")))
    }
}

/// Checks the layers with the bubblewrap binary `bwrap` (a name looked up on PATH, or a path)
/// and the lab uid; Landlock is a missing layer only if labs are to use it.
pub fn run(bwrap: &Path, lab_uid: u32, landlock_required: bool) -> Report {
    let mut layers = Vec::new();
    let found = resolve(bwrap);
    layers.push(match &found {
        Some(path) => match std::process::Command::new(path).arg("--version").output() {
            Ok(out) if out.status.success() => Layer {
                name: "bubblewrap",
                ok: true,
                detail: format!(
                    "{} ({})",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    path.display()
                ),
            },
            _ => Layer {
                name: "bubblewrap",
                ok: false,
                detail: format!("{} does not run", path.display()),
            },
        },
        None => Layer {
            name: "bubblewrap",
            ok: false,
            detail: format!(
                "{} not found; install it with `apt-get install bubblewrap` (or scripts/lab-env)",
                bwrap.display()
            ),
        },
    });
    layers.push(user_namespaces(found.as_deref(), lab_uid));
    layers.push(match CgroupDriver::detect() {
        Ok(driver) => {
            let writable = rustix::fs::access(
                "/sys/fs/cgroup",
                rustix::fs::Access::WRITE_OK,
            )
            .is_ok()
                || rustix::process::getuid().is_root();
            Layer {
                name: "cgroups",
                ok: writable,
                detail: if writable {
                    format!("{} (memory, pids, cpu limits per lab)", driver.version())
                } else {
                    format!(
                        "{} found but not writable by the node: run it as root or give it a delegated cgroup subtree",
                        driver.version()
                    )
                },
            }
        }
        Err(e) => Layer {
            name: "cgroups",
            ok: false,
            detail: e.to_string(),
        },
    });
    layers.push(landlock(landlock_required));
    Report { layers }
}

/// Runs a trivial sandbox as the lab uid: the real test that unprivileged user namespaces work.
fn user_namespaces(bwrap: Option<&Path>, lab_uid: u32) -> Layer {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if max == Some(0) {
        return Layer {
            name: "user namespaces",
            ok: false,
            detail: "disabled (/proc/sys/user/max_user_namespaces is 0)".into(),
        };
    }
    let Some(bwrap) = bwrap else {
        return Layer {
            name: "user namespaces",
            ok: false,
            detail: "not tested: bubblewrap is missing".into(),
        };
    };
    // The lab's own sandbox (the same flags a lab gets), with empty scratch directories for its
    // workspace and run directory, running `true`.
    // One directory per check: two checks of one process may run at once.
    static CHECKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = std::env::temp_dir().join(format!("orrery-lab-check-{}-{n}", std::process::id()));
    let (workspace, run_dir) = (scratch.join("ws"), scratch.join("run"));
    let made = [&workspace, &run_dir].iter().try_for_each(|d| {
        std::fs::create_dir_all(d)?;
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
    });
    let _ = std::fs::set_permissions(
        &scratch,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    let (uid, gid) = if rustix::process::getuid().is_root() {
        (lab_uid, lab_uid)
    } else {
        (
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        )
    };
    let spec = super::sandbox::SandboxSpec {
        bwrap: bwrap.to_path_buf(),
        uid,
        gid,
        read_only: Vec::new(),
        data: Vec::new(),
        confine: None,
        data_root: None,
        workspace,
        workspace_read_only: false,
        run_dir,
        tmp_bytes: 1 << 20,
        env: Vec::new(),
        command: vec!["/usr/bin/true".into()],
    };
    let cmd = made
        .map_err(|e| e.to_string())
        .and_then(|()| spec.command().map_err(|e| e.to_string()));
    let outcome = cmd.map(|mut cmd| cmd.output());
    let _ = std::fs::remove_dir_all(&scratch);
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            return Layer {
                name: "user namespaces",
                ok: false,
                detail: format!("the check could not prepare a sandbox: {e}"),
            };
        }
    };
    match outcome {
        Ok(out) if out.status.success() => Layer {
            name: "user namespaces",
            ok: true,
            detail: format!(
                "a sandbox with every namespace unshared runs as uid {lab_uid}{}",
                max.map(|m| format!(" (max_user_namespaces {m})"))
                    .unwrap_or_default()
            ),
        },
        Ok(out) => Layer {
            name: "user namespaces",
            ok: false,
            detail: format!(
                "bwrap --unshare-all failed as uid {lab_uid}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        },
        Err(e) => Layer {
            name: "user namespaces",
            ok: false,
            detail: format!("bwrap did not start: {e}"),
        },
    }
}

/// Whether the kernel enforces Landlock, and which ABI: labs are confined by it inside their
/// sandbox (`[labs] landlock`).
fn landlock(required: bool) -> Layer {
    match super::landlock::probe() {
        Ok(detail) => Layer {
            name: "landlock",
            ok: true,
            detail,
        },
        Err(why) if required => Layer {
            name: "landlock",
            ok: false,
            detail: format!("{why}; labs need it unless `[labs] landlock = false`"),
        },
        Err(why) => Layer {
            name: "landlock",
            ok: true,
            detail: format!("{why}; labs run without it (`[labs] landlock = false`)"),
        },
    }
}

fn resolve(bwrap: &Path) -> Option<PathBuf> {
    if bwrap.components().count() > 1 {
        return bwrap.is_file().then(|| bwrap.into());
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bwrap))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bubblewrap_is_named_in_the_refusal() {
        let report = run(Path::new("/nonexistent/bwrap"), 65534, true);
        let refusal = report.refusal().expect("refused");
        assert!(refusal.contains("bubblewrap"), "{refusal}");
        assert!(refusal.contains("apt-get install bubblewrap"), "{refusal}");
        assert!(!report.layers[0].ok);
    }
}
