//! The bubblewrap command line that confines a lab.
//!
//! The sandbox starts from an empty root: only what is bound here exists inside. `/usr` and the
//! environment are read-only, `/tmp` is a bounded tmpfs, each dataset is bound read-only under
//! `/data/<collection>`, the workspace at `/home/lab` is the only writable directory from the
//! node's disk, and `/run/lab` holds the lab's Unix sockets. Every namespace is unshared (so the
//! lab has only a loopback network and sees only its own processes), nested user namespaces are
//! disabled, capabilities dropped and the environment cleared. bwrap itself runs as an
//! unprivileged uid, so a file the lab writes is owned by that uid outside too.
//!
//! `--die-with-parent` is PR_SET_PDEATHSIG, which fires when the *thread* that spawned bwrap
//! exits: spawn labs from one long-lived thread, and rely on the lab's cgroup for reaping.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use super::landlock::{CONFINE_AT, Confinement};

/// Where a lab's workspace appears inside the sandbox.
pub const WORKSPACE: &str = "/home/lab";
/// Where a lab's run directory (its Unix sockets) appears inside the sandbox.
pub const RUN_DIR: &str = "/run/lab";
/// Where datasets appear inside the sandbox, one directory per collection.
pub const DATA_DIR: &str = "/data";

/// Why a sandbox description was refused.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A collection name that is not a plain directory name.
    #[error("invalid collection name {0:?} for /data: use letters, digits, '-', '_' and '.'")]
    BadCollection(String),
    /// A host path that is not absolute.
    #[error("{0} must be an absolute path")]
    NotAbsolute(PathBuf),
}

/// A dataset bound read-only into the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataVolume {
    /// The collection; the data appears at `/data/<collection>`.
    pub collection: String,
    /// The directory on the node that holds it.
    pub host: PathBuf,
}

/// Everything the sandbox of one lab is made of.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// The unprivileged uid and gid bwrap runs as.
    pub uid: u32,
    /// See [`SandboxSpec::uid`].
    pub gid: u32,
    /// Extra read-only directories bound at the same path (the environment's venv and the
    /// Python installation it was made from, when outside `/usr`).
    pub read_only: Vec<PathBuf>,
    /// The node's directory that becomes `/data` (read-only), holding one empty directory per
    /// collection as its mount point; none: an empty `/data` of the sandbox's own.
    pub data_root: Option<PathBuf>,
    /// Datasets, read-only under `/data`.
    pub data: Vec<DataVolume>,
    /// The node's binary, which confines the lab with Landlock before its program runs (none:
    /// bubblewrap alone).
    pub confine: Option<PathBuf>,
    /// The lab's workspace on the node, bound writable at `/home/lab`.
    pub workspace: PathBuf,
    /// Bind the workspace read-only (it is over its quota).
    pub workspace_read_only: bool,
    /// The lab's run directory on the node, bound writable at `/run/lab`.
    pub run_dir: PathBuf,
    /// The size of the lab's `/tmp`, in bytes.
    pub tmp_bytes: u64,
    /// Variables set inside (the environment is cleared first).
    pub env: Vec<(String, String)>,
    /// The program and its arguments, as seen inside the sandbox.
    pub command: Vec<OsString>,
}

impl SandboxSpec {
    /// The arguments given to bwrap, in the order that matters (a tmpfs hides what was bound
    /// under it before, so tmpfs first, binds after).
    pub fn args(&self) -> Result<Vec<OsString>, SandboxError> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
        push(&[
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--new-session",
            "--die-with-parent",
            "--cap-drop",
            "ALL",
            "--clearenv",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
        ]);
        let tmp = self.tmp_bytes.to_string();
        push(&["--size", &tmp, "--tmpfs", "/tmp"]);
        for path in &self.read_only {
            let path = absolute(path)?;
            a.extend(["--ro-bind".into(), path.into(), path.into()]);
        }
        match &self.data_root {
            // A directory of the node's, read-only: its subdirectories are the mount points of
            // the collections, so one can be added while the lab runs.
            Some(root) => a.extend(["--ro-bind".into(), absolute(root)?.into(), DATA_DIR.into()]),
            None => a.extend(["--dir".into(), DATA_DIR.into()]),
        }
        for volume in &self.data {
            let c = &volume.collection;
            let plain = !c.is_empty()
                && c != "."
                && c != ".."
                && c.len() <= 128
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !plain {
                return Err(SandboxError::BadCollection(c.clone()));
            }
            a.extend([
                "--ro-bind".into(),
                absolute(&volume.host)?.into(),
                format!("{DATA_DIR}/{c}").into(),
            ]);
        }
        let workspace_bind = if self.workspace_read_only {
            "--ro-bind"
        } else {
            "--bind"
        };
        a.extend([
            workspace_bind.into(),
            absolute(&self.workspace)?.into(),
            WORKSPACE.into(),
            "--bind".into(),
            absolute(&self.run_dir)?.into(),
            RUN_DIR.into(),
            "--chdir".into(),
            WORKSPACE.into(),
        ]);
        let mut env = vec![
            ("HOME".to_string(), WORKSPACE.to_string()),
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ];
        env.extend(self.env.iter().cloned());
        for (k, v) in env {
            a.extend(["--setenv".into(), k.into(), v.into()]);
        }
        if let Some(binary) = &self.confine {
            a.extend([
                "--ro-bind".into(),
                absolute(binary)?.into(),
                CONFINE_AT.into(),
            ]);
        }
        a.push("--".into());
        if self.confine.is_some() {
            a.extend([CONFINE_AT.into(), "lab".into(), "confine".into()]);
            let mut read: Vec<PathBuf> = vec!["/usr".into(), "/proc".into(), DATA_DIR.into()];
            read.extend(self.read_only.iter().cloned());
            let mut write: Vec<PathBuf> = vec![WORKSPACE.into(), RUN_DIR.into(), "/tmp".into()];
            if self.workspace_read_only {
                read.push(write.remove(0));
            }
            let confinement = Confinement {
                read,
                write,
                devices: vec!["/dev".into()],
            };
            a.extend(confinement.args());
            a.push("--".into());
        }
        a.extend(self.command.iter().cloned());
        Ok(a)
    }

    /// The bwrap process, ready to spawn, running as the lab's uid and gid (supplementary
    /// groups are dropped by the standard library when the parent is root).
    pub fn command(&self) -> Result<std::process::Command, SandboxError> {
        let mut cmd = std::process::Command::new(&self.bwrap);
        cmd.args(self.args()?)
            .uid(self.uid)
            .gid(self.gid)
            .env_clear()
            .current_dir("/");
        Ok(cmd)
    }
}

fn absolute(path: &Path) -> Result<&Path, SandboxError> {
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(SandboxError::NotAbsolute(path.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(root: &Path, command: &[&str]) -> SandboxSpec {
        SandboxSpec {
            bwrap: "bwrap".into(),
            uid: 65534,
            gid: 65534,
            read_only: Vec::new(),
            data: vec![DataVolume {
                collection: "gaia".into(),
                host: root.join("data"),
            }],
            confine: None,
            data_root: None,
            workspace: root.join("ws"),
            workspace_read_only: false,
            run_dir: root.join("run"),
            tmp_bytes: 16 << 20,
            env: Vec::new(),
            command: command.iter().map(OsString::from).collect(),
        }
    }

    #[test]
    fn a_confined_lab_runs_through_the_landlock_helper_with_only_its_paths() {
        let mut s = spec(Path::new("/x"), &["jupyter", "lab"]);
        s.confine = Some("/usr/local/bin/orrery".into());
        let args: Vec<String> = s
            .args()
            .expect("args")
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(
            joined.contains("--ro-bind /usr/local/bin/orrery /run/orrery-confine"),
            "{joined}"
        );
        let tail = joined
            .rsplit_once("-- /run/orrery-confine lab confine ")
            .expect("the helper runs first")
            .1;
        assert_eq!(
            tail,
            "--read /usr --read /proc --read /data --write /home/lab --write /run/lab --write /tmp --device /dev -- jupyter lab"
        );
    }

    #[test]
    fn collection_names_cannot_leave_data() {
        let mut s = spec(Path::new("/x"), &["true"]);
        for bad in ["..", "a/b", ""] {
            s.data[0].collection = bad.into();
            assert!(matches!(s.args(), Err(SandboxError::BadCollection(_))));
        }
    }

    /// The probes a lab's kernel runs later, in shell form: the real bwrap, as an unprivileged
    /// uid. Needs root (to switch uid) and bubblewrap (`scripts/lab-env` installs it).
    #[test]
    fn the_sandbox_hides_the_node_and_keeps_data_read_only() {
        assert!(
            rustix::process::getuid().is_root() && which("bwrap").is_some(),
            "this test needs root and bwrap: run scripts/lab-env as root"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for d in ["data", "ws", "run"] {
            std::fs::create_dir(root.join(d)).expect("mkdir");
        }
        std::fs::write(root.join("data/table.csv"), "a,b\n").expect("data");
        std::fs::write(root.join("node.key"), "secret").expect("key");
        let open = rustix::fs::Mode::from_raw_mode(0o755);
        rustix::fs::chmod(root, open).expect("chmod");
        for d in ["ws", "run"] {
            rustix::fs::chown(
                root.join(d),
                Some(rustix::fs::Uid::from_raw(65534)),
                Some(rustix::fs::Gid::from_raw(65534)),
            )
            .expect("chown");
        }
        let key = root.join("node.key");
        let script = format!(
            "cat /data/gaia/table.csv >/dev/null && echo data-readable; \
             touch /data/gaia/x 2>/dev/null || echo data-readonly; \
             cat {} 2>/dev/null || echo key-hidden; \
             ls /root 2>/dev/null || echo root-hidden; \
             touch /home/lab/notebook.ipynb && echo workspace-writable; \
             echo pids $(ls -d /proc/[0-9]* | wc -l); id -u",
            key.display()
        );
        let out = spec(root, &["sh", "-c", &script])
            .command()
            .expect("command")
            .output()
            .expect("bwrap runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "bwrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for expected in [
            "data-readable",
            "data-readonly",
            "key-hidden",
            "root-hidden",
            "workspace-writable",
        ] {
            assert!(stdout.contains(expected), "{expected} missing in {stdout}");
        }
        // Only the sandbox's own processes: bwrap's init, sh, and ls/wc.
        let pids: usize = stdout
            .lines()
            .find_map(|l| l.strip_prefix("pids "))
            .and_then(|n| n.trim().parse().ok())
            .expect("pid count");
        assert!(pids <= 5, "sandbox sees {pids} processes");
        assert!(stdout.trim_end().ends_with("65534"), "uid: {stdout}");
        let meta = std::fs::metadata(root.join("ws/notebook.ipynb")).expect("written");
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);
    }

    fn which(name: &str) -> Option<PathBuf> {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    }
}
