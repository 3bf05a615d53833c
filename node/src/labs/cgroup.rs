//! Per-lab cgroups: memory, process and CPU limits, and killing everything a lab left behind.
//!
//! Labs live under `orrery/labs/<lab>` in every controller the node uses. The cgroup, not a
//! PID the node remembers, is the source of truth for what a lab runs: stopping a lab kills
//! every process in its cgroup, and a node starting after a crash kills what is left in all
//! of them ([`CgroupDriver::reap_orphans`]). cgroups v1 (this machine kind and CI) and v2
//! (production distributions) are both supported.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a cgroup could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No usable cgroup hierarchy with the controllers labs need.
    #[error(
        "no usable cgroup hierarchy at {root}: labs need the memory, pids and cpu controllers (v2) or the memory, pids, cpu and freezer hierarchies (v1)"
    )]
    Unavailable {
        /// Where cgroups were looked for.
        root: PathBuf,
    },
    /// A cgroup file could not be written or read (often: the node lacks the rights).
    #[error(
        "cannot use the cgroup file {path}: {source} (the node needs root or a delegated cgroup subtree to run labs)"
    )]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Processes were still in the cgroup after they were killed.
    #[error("{count} processes of lab cgroup {path} survived being killed")]
    Survivors {
        /// The cgroup.
        path: PathBuf,
        /// How many remained.
        count: usize,
    },
    /// A lab name that is not a plain directory name.
    #[error("invalid lab cgroup name {0:?}")]
    BadName(String),
}

/// Which cgroup hierarchy the node drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// One directory per controller (`memory`, `pids`, `cpu`, `freezer`).
    V1,
    /// The unified hierarchy.
    V2,
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        })
    }
}

/// The limits of one lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory in bytes, beyond which the kernel's OOM killer stops the lab's processes.
    pub memory_bytes: u64,
    /// Processes and threads at once (stops fork bombs).
    pub pids: u64,
    /// CPU in thousandths of a core (1000 = one core).
    pub millicores: u64,
}

const V1_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "freezer"];
const PERIOD_US: u64 = 100_000;

/// Creates, limits, kills and removes the cgroups of labs.
#[derive(Debug, Clone)]
pub struct CgroupDriver {
    version: CgroupVersion,
    root: PathBuf,
    prefix: PathBuf,
}

impl CgroupDriver {
    /// Detects the hierarchy under `/sys/fs/cgroup` and uses `orrery/labs` in it.
    pub fn detect() -> Result<Self, CgroupError> {
        Self::detect_at(Path::new("/sys/fs/cgroup"), Path::new("orrery/labs"))
    }

    /// Detects the hierarchy under `root`; labs live under `prefix` inside it.
    pub fn detect_at(root: &Path, prefix: &Path) -> Result<Self, CgroupError> {
        let version = if root.join("cgroup.controllers").is_file() {
            let controllers = std::fs::read_to_string(root.join("cgroup.controllers"))
                .map_err(|source| io(root.join("cgroup.controllers"), source))?;
            let have = |c: &str| controllers.split_whitespace().any(|x| x == c);
            if !(have("memory") && have("pids") && have("cpu")) {
                return Err(CgroupError::Unavailable { root: root.into() });
            }
            CgroupVersion::V2
        } else if V1_CONTROLLERS
            .iter()
            .all(|c| root.join(c).join("cgroup.procs").is_file())
        {
            CgroupVersion::V1
        } else {
            return Err(CgroupError::Unavailable { root: root.into() });
        };
        Ok(Self {
            version,
            root: root.into(),
            prefix: prefix.into(),
        })
    }

    /// The cgroup filesystem's mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where labs live inside each hierarchy.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The hierarchy in use.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    fn dirs(&self, lab: &str) -> Vec<PathBuf> {
        match self.version {
            CgroupVersion::V2 => vec![self.root.join(&self.prefix).join(lab)],
            CgroupVersion::V1 => V1_CONTROLLERS
                .iter()
                .map(|c| self.root.join(c).join(&self.prefix).join(lab))
                .collect(),
        }
    }

    /// Removes the (empty) directories labs live in, up the prefix, once no lab is left: a node
    /// that stops leaves no cgroup behind. A directory still holding a lab stays.
    pub fn release(&self) {
        let bases: Vec<PathBuf> = match self.version {
            CgroupVersion::V2 => vec![self.root.clone()],
            CgroupVersion::V1 => V1_CONTROLLERS.iter().map(|c| self.root.join(c)).collect(),
        };
        for base in bases {
            let mut dir = base.join(&self.prefix);
            while dir.starts_with(&base) && dir != base {
                if std::fs::remove_dir(&dir).is_err() {
                    break;
                }
                let Some(up) = dir.parent() else { break };
                dir = up.to_path_buf();
            }
        }
    }

    /// The directory whose `cgroup.procs` lists every process of the lab.
    fn procs_dir(&self, lab: &str) -> PathBuf {
        match self.version {
            CgroupVersion::V2 => self.root.join(&self.prefix).join(lab),
            CgroupVersion::V1 => self.root.join("pids").join(&self.prefix).join(lab),
        }
    }

    /// Creates the lab's cgroup with its limits. Refuses with the reason when the node lacks
    /// the rights, so the lab fails before anything runs.
    pub fn create(&self, lab: &str, limits: Limits) -> Result<(), CgroupError> {
        check_name(lab)?;
        if self.version == CgroupVersion::V2 {
            self.enable_v2_controllers()?;
        }
        for dir in self.dirs(lab) {
            std::fs::create_dir_all(&dir).map_err(|e| io(dir.clone(), e))?;
        }
        let quota = (limits.millicores.max(1) * PERIOD_US / 1000).max(1000);
        match self.version {
            CgroupVersion::V2 => {
                let d = self.procs_dir(lab);
                write(&d.join("memory.max"), &limits.memory_bytes.to_string())?;
                // Without swap the memory limit is a real limit.
                let _ = std::fs::write(d.join("memory.swap.max"), "0");
                write(&d.join("pids.max"), &limits.pids.to_string())?;
                write(&d.join("cpu.max"), &format!("{quota} {PERIOD_US}"))?;
            }
            CgroupVersion::V1 => {
                let dir = |c: &str| self.root.join(c).join(&self.prefix).join(lab);
                write(
                    &dir("memory").join("memory.limit_in_bytes"),
                    &limits.memory_bytes.to_string(),
                )?;
                let memsw = dir("memory").join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &limits.memory_bytes.to_string())?;
                }
                write(&dir("pids").join("pids.max"), &limits.pids.to_string())?;
                write(
                    &dir("cpu").join("cpu.cfs_period_us"),
                    &PERIOD_US.to_string(),
                )?;
                write(&dir("cpu").join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        Ok(())
    }

    fn enable_v2_controllers(&self) -> Result<(), CgroupError> {
        let mut dir = self.root.clone();
        for part in self.prefix.components() {
            write(&dir.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
            dir = dir.join(part);
            std::fs::create_dir_all(&dir).map_err(|e| io(dir.clone(), e))?;
        }
        write(&dir.join("cgroup.subtree_control"), "+memory +pids +cpu")
    }

    /// Moves process `pid` (and so its future children) into the lab's cgroup.
    pub fn add(&self, lab: &str, pid: u32) -> Result<(), CgroupError> {
        check_name(lab)?;
        for dir in self.dirs(lab) {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The processes now in the lab's cgroup.
    pub fn pids(&self, lab: &str) -> Result<Vec<u32>, CgroupError> {
        check_name(lab)?;
        let path = self.procs_dir(lab).join("cgroup.procs");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(path, e)),
        }
    }

    /// Whether the kernel's OOM killer has killed a process of the lab.
    pub fn oom_killed(&self, lab: &str) -> bool {
        let path = match self.version {
            CgroupVersion::V2 => self.procs_dir(lab).join("memory.events"),
            CgroupVersion::V1 => self
                .root
                .join("memory")
                .join(&self.prefix)
                .join(lab)
                .join("memory.oom_control"),
        };
        std::fs::read_to_string(path)
            .map(|t| {
                t.lines().any(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
            .unwrap_or(false)
    }

    /// Kills every process of the lab and removes its cgroup; waits up to `deadline` for the
    /// cgroup to empty. A lab that was never created is already gone.
    pub fn kill_and_remove(&self, lab: &str, deadline: Duration) -> Result<(), CgroupError> {
        check_name(lab)?;
        let procs = self.procs_dir(lab);
        if !procs.exists() {
            return Ok(());
        }
        match self.version {
            CgroupVersion::V2 => write(&procs.join("cgroup.kill"), "1")?,
            CgroupVersion::V1 => {
                // Freeze so nothing forks between reading the list and killing it.
                let freezer = self.root.join("freezer").join(&self.prefix).join(lab);
                let _ = std::fs::write(freezer.join("freezer.state"), "FROZEN");
                for pid in self.pids(lab)? {
                    kill(pid);
                }
                let _ = std::fs::write(freezer.join("freezer.state"), "THAWED");
            }
        }
        let start = Instant::now();
        loop {
            let left = self.pids(lab)?;
            if left.is_empty() {
                break;
            }
            if start.elapsed() > deadline {
                return Err(CgroupError::Survivors {
                    path: procs,
                    count: left.len(),
                });
            }
            if self.version == CgroupVersion::V1 {
                left.into_iter().for_each(kill);
            }
            // The kernel gives no event for an emptied v1 cgroup; poll it briefly.
            std::thread::sleep(Duration::from_millis(10));
        }
        for dir in self.dirs(lab) {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(dir, e)),
            }
        }
        Ok(())
    }

    /// The labs that have a cgroup now (after a crash: orphans to reap).
    pub fn existing(&self) -> Result<Vec<String>, CgroupError> {
        let base = match self.version {
            CgroupVersion::V2 => self.root.join(&self.prefix),
            CgroupVersion::V1 => self.root.join("pids").join(&self.prefix),
        };
        let entries = match std::fs::read_dir(&base) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(base, e)),
        };
        Ok(entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }

    /// Kills what every lab cgroup still holds and removes them; returns the labs reaped.
    pub fn reap_orphans(&self, deadline: Duration) -> Result<Vec<String>, CgroupError> {
        let labs = self.existing()?;
        for lab in &labs {
            self.kill_and_remove(lab, deadline)?;
        }
        Ok(labs)
    }
}

fn kill(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        // The process may have exited meanwhile; that is the goal anyway.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

fn check_name(lab: &str) -> Result<(), CgroupError> {
    let ok = !lab.is_empty()
        && lab.len() <= 64
        && lab
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(CgroupError::BadName(lab.into()))
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|e| io(path.into(), e))
}

fn io(path: PathBuf, source: std::io::Error) -> CgroupError {
    CgroupError::Io { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_the_subtree_are_refused() {
        for bad in ["", "..", "a/b", "x y"] {
            assert!(matches!(check_name(bad), Err(CgroupError::BadName(_))));
        }
        check_name("lab-01_a").expect("plain name");
    }

    #[test]
    fn a_directory_without_controllers_is_unavailable() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            CgroupDriver::detect_at(dir.path(), Path::new("orrery/labs")),
            Err(CgroupError::Unavailable { .. })
        ));
    }

    /// On a machine where the test runs as root with cgroups: a process and its child put in a
    /// lab cgroup are both killed, the cgroup is removed, and orphans are found after a "crash".
    #[test]
    fn killing_a_lab_leaves_no_process_and_orphans_are_reaped() {
        let prefix = format!("orrery-test-{}/labs", std::process::id());
        let driver = CgroupDriver::detect_at(Path::new("/sys/fs/cgroup"), Path::new(&prefix))
            .expect("a cgroup hierarchy (the test suite runs as root on a machine with cgroups)");
        let limits = Limits {
            memory_bytes: 256 << 20,
            pids: 16,
            millicores: 500,
        };
        driver
            .create("lab1", limits)
            .expect("cgroups can be created (the test suite runs as root)");
        // A shell that forks only once it is in the cgroup (it waits for a line first).
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "read x; sleep 300 & read y"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        driver.add("lab1", sh.id()).expect("add");
        let mut stdin = sh.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut stdin, b"go\n").expect("go");
        // The child forked after the move, so it is in the cgroup too; wait for it.
        let start = Instant::now();
        while driver.pids("lab1").expect("pids").len() < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "child never appeared"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            driver.existing().expect("existing"),
            vec!["lab1".to_string()]
        );
        let reaped = driver.reap_orphans(Duration::from_secs(5)).expect("reaped");
        assert_eq!(reaped, vec!["lab1".to_string()]);
        assert!(driver.pids("lab1").expect("pids").is_empty());
        assert!(!driver.procs_dir("lab1").exists());
        let _ = sh.wait();
        for dir in driver.dirs("x") {
            // Remove orrery-test-<pid>/labs and orrery-test-<pid>.
            if let Some(labs) = dir.parent() {
                let _ = std::fs::remove_dir(labs);
                if let Some(top) = labs.parent() {
                    let _ = std::fs::remove_dir(top);
                }
            }
        }
    }
}
