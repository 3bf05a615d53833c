//! Landlock, the second layer inside a lab's sandbox: the lab's first process (the node's own
//! binary, bound read-only into the sandbox, in its hidden `orrery lab confine` mode) restricts
//! itself and everything it will start to reading the paths it was given, writing only its
//! workspace, its run directory and `/tmp`, and signalling or reaching abstract sockets only
//! inside the lab, then execs the lab's program. Should bubblewrap's mount namespace ever be
//! escaped, the kernel still refuses every other path.

use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, LandlockStatus, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};

/// Where the confining binary appears inside the sandbox.
pub const CONFINE_AT: &str = "/run/orrery-confine";

/// What a lab may touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confinement {
    /// Read (and execute) beneath these.
    pub read: Vec<PathBuf>,
    /// Read and write beneath these.
    pub write: Vec<PathBuf>,
    /// Device directories: read, write and device ioctls on what is there, nothing created.
    pub devices: Vec<PathBuf>,
}

impl Confinement {
    /// The arguments of `orrery lab confine` that stand for this confinement.
    pub fn args(&self) -> Vec<std::ffi::OsString> {
        let mut a = Vec::new();
        for (flag, paths) in [
            ("--read", &self.read),
            ("--write", &self.write),
            ("--device", &self.devices),
        ] {
            for p in paths {
                a.push(flag.into());
                a.push(p.clone().into_os_string());
            }
        }
        a
    }
}

/// Restricts this process and its future children; says what the kernel enforces, or why
/// nothing is.
pub fn restrict_self(c: &Confinement) -> Result<String, String> {
    // Filesystem rights up to ABI 5 (truncate, device ioctls) and scopes from ABI 6; on an
    // older kernel the newest rights it lacks are dropped, and the answer says so.
    let abi = ABI::V6;
    let fail = |e: &dyn std::fmt::Display| format!("Landlock: {e}");
    let device = AccessFs::from_read(abi) | AccessFs::WriteFile | AccessFs::IoctlDev;
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .map_err(|e| fail(&e))?
        .scope(Scope::from_all(abi))
        .map_err(|e| fail(&e))?
        .create()
        .map_err(|e| fail(&e))?
        .add_rules(path_beneath_rules(&c.read, AccessFs::from_read(abi)))
        .map_err(|e| fail(&e))?
        .add_rules(path_beneath_rules(&c.devices, device))
        .map_err(|e| fail(&e))?
        .add_rules(path_beneath_rules(&c.write, AccessFs::from_all(abi)))
        .map_err(|e| fail(&e))?
        .restrict_self()
        .map_err(|e| fail(&e))?;
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => format!("ABI {effective_abi:?}"),
        LandlockStatus::NotEnabled => "not enabled in this kernel".into(),
        LandlockStatus::NotImplemented => "not built into this kernel".into(),
    };
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(format!("Landlock fully enforced ({abi})")),
        RulesetStatus::PartiallyEnforced => Ok(format!(
            "Landlock partly enforced: this kernel lacks some rights ({abi})"
        )),
        RulesetStatus::NotEnforced => Err(format!(
            "Landlock is not enforced ({abi}); labs need it (or `[labs] landlock = false`)"
        )),
    }
}

/// What this kernel enforces of Landlock, asked from a thread of its own that restricts itself
/// to nothing and ends (so nothing else of this process is touched).
pub fn probe() -> Result<String, String> {
    std::thread::spawn(|| {
        let abi = ABI::V6;
        let status = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(abi))
            .and_then(|r| r.scope(Scope::from_all(abi)))
            .and_then(|r| r.create())
            .and_then(|r| r.restrict_self())
            .map_err(|e| format!("Landlock: {e}"))?;
        let abi = match status.landlock {
            LandlockStatus::Available { effective_abi, .. } => format!("ABI {effective_abi:?}"),
            LandlockStatus::NotEnabled => return Err("not enabled in this kernel".into()),
            LandlockStatus::NotImplemented => return Err("not built into this kernel".into()),
        };
        match status.ruleset {
            RulesetStatus::FullyEnforced => Ok(format!("{abi}, every right labs use enforced")),
            RulesetStatus::PartiallyEnforced => Ok(format!("{abi}, some rights not enforced")),
            RulesetStatus::NotEnforced => Err(format!("{abi}, not enforced")),
        }
    })
    .join()
    .unwrap_or_else(|_| Err("the Landlock probe failed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confined_process_reads_and_writes_only_what_it_was_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (given, other) = (dir.path().join("given"), dir.path().join("other"));
        std::fs::create_dir_all(&given).expect("mkdir");
        std::fs::create_dir_all(&other).expect("mkdir");
        std::fs::write(other.join("secret"), "s").expect("write");
        let c = Confinement {
            read: vec!["/usr".into(), "/proc".into()],
            write: vec![given.clone()],
            devices: vec![],
        };
        // Confined in a thread of its own: Landlock binds the calling thread and its children.
        let result = std::thread::spawn(move || {
            let enforced = restrict_self(&c);
            let wrote = std::fs::write(given.join("ok"), "ok").is_ok();
            let read_other = std::fs::read(other.join("secret")).is_ok();
            let wrote_other = std::fs::write(other.join("new"), "x").is_ok();
            (enforced, wrote, read_other, wrote_other)
        })
        .join()
        .expect("thread");
        let (enforced, wrote, read_other, wrote_other) = result;
        assert!(enforced.is_ok(), "{enforced:?}");
        assert!(wrote, "the given directory is writable");
        assert!(!read_other && !wrote_other, "nothing else is reachable");
        assert!(
            std::fs::read(dir.path().join("other/secret")).is_ok(),
            "the test thread is not confined"
        );
    }
}
