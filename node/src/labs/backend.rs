//! The boundary between a lab's lifecycle and what runs it.
//!
//! [`ComputeBackend`] is what the lab actor drives: launch a lab's process tree with its
//! limits, tell whether anything of it still runs, stop it, and reap what a crash left behind.
//! [`LocalSandbox`] is the default: bubblewrap on this node, in a per-lab cgroup.
//! [`super::kubernetes::Kubernetes`] runs labs as pods of a cluster the node is part of. Labs on
//! other nodes are reached through the node that runs them (`service::labs`), which drives its
//! own backend.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::cgroup::{CgroupDriver, CgroupError, Limits};
use super::endpoint::Endpoint;
use super::sandbox::{DataVolume, SandboxError, SandboxSpec};

/// Why a backend could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The lab's cgroup could not be made, limited or emptied.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The sandbox description was refused.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A dataset could not be added to a running lab.
    #[error("the dataset could not be added to the running lab: {0}")]
    Attach(String),
    /// The cluster's API refused or could not be reached, or a pod did not come up.
    #[error("{0}")]
    Cluster(String),
    /// The sandbox process could not be started.
    #[error("cannot start the lab's sandbox ({program}): {source}")]
    Spawn {
        /// What was run.
        program: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// What a lab asks of a backend, whatever the backend.
#[derive(Debug, Clone)]
pub struct LabRequest {
    /// The lab's id (a plain name: letters, digits, `-`, `_`).
    pub lab: String,
    /// Memory, processes and CPU.
    pub limits: Limits,
    /// Datasets, read-only under `/data/<collection>`.
    pub data: Vec<DataVolume>,
    /// The node's directory that becomes `/data` (its collections' mount points are made in it),
    /// so that a collection can be added to the running lab.
    pub data_root: Option<PathBuf>,
    /// The workspace, the only writable place, at `/home/lab`.
    pub workspace: PathBuf,
    /// The workspace is over its quota: bound read-only this run.
    pub workspace_read_only: bool,
    /// An ext4 image holding the workspace, mounted on [`LabRequest::workspace`] for the lab
    /// only: its size is a hard quota.
    pub workspace_image: Option<PathBuf>,
    /// Where the lab's Unix sockets go, `/run/lab` inside.
    pub run_dir: PathBuf,
    /// Directories needed read-only at the same path (the environment).
    pub read_only: Vec<PathBuf>,
    /// Size of the lab's `/tmp` in bytes.
    pub tmp_bytes: u64,
    /// Environment variables inside.
    pub env: Vec<(String, String)>,
    /// The program to run inside and its arguments (for a backend that runs labs on this
    /// machine; one that runs an image builds its own from [`LabRequest::base_url`]).
    pub command: Vec<OsString>,
    /// The URL path the server is served under (`/labs/<id>/`).
    pub base_url: String,
    /// The server's token, which the node's proxy presents.
    pub token: String,
    /// A file outside the lab that gets its output (standard output and error), if any.
    pub log: Option<PathBuf>,
    /// The image a backend that runs images starts, by digest, when a project pinned one;
    /// `None`: the backend's own.
    pub image: Option<String>,
}

/// A launched lab: what the backend started (the caller waits on it) and where its server
/// will listen.
pub struct Launched {
    /// The top process or pod; when it ends, the lab is over (its other processes die with it).
    pub process: Box<dyn LabProcess>,
    /// Where its server listens once it is up.
    pub endpoint: Endpoint,
}

/// What a launched lab runs as: a process on this machine, or a pod.
pub trait LabProcess: Send {
    /// How it ended, if it has; never waits.
    fn try_wait(&mut self) -> Option<String>;
    /// Waits until it ends; how it ended.
    fn wait(&mut self) -> String;
}

impl LabProcess for std::process::Child {
    fn try_wait(&mut self) -> Option<String> {
        match std::process::Child::try_wait(self) {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    fn wait(&mut self) -> String {
        std::process::Child::wait(self).map_or_else(|e| e.to_string(), |s| s.to_string())
    }
}

/// Runs labs. Implementations must guarantee that after [`ComputeBackend::stop`] returns `Ok`
/// nothing of the lab runs, and that [`ComputeBackend::reap_orphans`] finds labs from before a
/// crash without any memory of them.
pub trait ComputeBackend: Send + Sync {
    /// A short name for logs and `orrery lab show`.
    fn name(&self) -> &'static str;
    /// Whether labs run on this machine: their environment is provisioned here and their
    /// workspace and output are files of the node. A backend that runs an image elsewhere
    /// keeps them itself.
    fn on_this_machine(&self) -> bool {
        true
    }
    /// The last `lines` lines of a lab's output, when the backend keeps it (`None`: the node's
    /// log file of the lab has it).
    fn output(&self, _lab: &str, _lines: usize) -> Option<String> {
        None
    }
    /// Starts the lab's process tree within its limits.
    fn launch(&self, request: &LabRequest) -> Result<Launched, BackendError>;
    /// How many processes of the lab run now.
    fn processes(&self, lab: &str) -> Result<usize, BackendError>;
    /// Whether the lab's processes were killed for exceeding their memory.
    fn out_of_memory(&self, lab: &str) -> bool;
    /// Adds a dataset to a running lab, read-only at `/data/<collection>` (`data_root` is the
    /// lab's [`LabRequest::data_root`]).
    fn attach(
        &self,
        lab: &str,
        data_root: Option<&std::path::Path>,
        volume: &DataVolume,
    ) -> Result<(), BackendError>;
    /// Kills everything of the lab and releases its resources.
    fn stop(&self, lab: &str) -> Result<(), BackendError>;
    /// Kills every lab left from before (a node that crashed); returns their ids.
    fn reap_orphans(&self) -> Result<Vec<String>, BackendError>;
    /// Releases what the backend holds for the node once every lab stopped (the node stops).
    fn release(&self) {}
}

/// Labs on this node, in bubblewrap, each in its own cgroup.
///
/// The lab process joins its cgroup *before* bubblewrap starts: the node runs its own binary
/// in the hidden `orrery lab exec` mode, which (as root) moves itself into the lab's cgroup,
/// then drops to the lab uid and execs bubblewrap. No process of the lab ever runs outside the
/// cgroup, so killing the cgroup kills the lab.
#[derive(Debug, Clone)]
pub struct LocalSandbox {
    /// The `orrery` binary (for the exec helper).
    pub helper: PathBuf,
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// The lab uid.
    pub uid: u32,
    /// The lab gid.
    pub gid: u32,
    /// The cgroups of labs.
    pub cgroups: CgroupDriver,
    /// The binary that confines each lab with Landlock inside its sandbox (none: bubblewrap
    /// alone).
    pub confine: Option<PathBuf>,
}

const STOP_DEADLINE: Duration = Duration::from_secs(10);

impl ComputeBackend for LocalSandbox {
    fn name(&self) -> &'static str {
        "local-sandbox"
    }

    fn launch(&self, r: &LabRequest) -> Result<Launched, BackendError> {
        let spec = SandboxSpec {
            bwrap: self.bwrap.clone(),
            uid: self.uid,
            gid: self.gid,
            read_only: r.read_only.clone(),
            data: r.data.clone(),
            confine: self.confine.clone(),
            data_root: r.data_root.clone(),
            workspace: r.workspace.clone(),
            workspace_read_only: r.workspace_read_only,
            run_dir: r.run_dir.clone(),
            tmp_bytes: r.tmp_bytes,
            env: r.env.clone(),
            command: r.command.clone(),
        };
        let args = spec.args()?;
        if let Some(root) = &r.data_root {
            for v in &r.data {
                std::fs::create_dir_all(root.join(&v.collection)).map_err(|source| {
                    BackendError::Spawn {
                        program: root.join(&v.collection),
                        source,
                    }
                })?;
            }
        }
        // A cgroup left by an earlier run of this lab is emptied first.
        self.cgroups.kill_and_remove(&r.lab, STOP_DEADLINE)?;
        self.cgroups.create(&r.lab, r.limits)?;
        let mut cmd = std::process::Command::new(&self.helper);
        cmd.args(["lab", "exec", "--lab", &r.lab])
            .arg("--cgroup-root")
            .arg(self.cgroups.root())
            .arg("--cgroup-prefix")
            .arg(self.cgroups.prefix())
            .args([
                "--uid",
                &self.uid.to_string(),
                "--gid",
                &self.gid.to_string(),
            ])
            .args(r.workspace_image.iter().flat_map(|image| {
                [
                    OsString::from("--workspace-image"),
                    image.clone().into_os_string(),
                    OsString::from("--workspace"),
                    r.workspace.clone().into_os_string(),
                ]
            }))
            .arg("--")
            .arg(&self.bwrap)
            .args(args)
            .env_clear()
            .stdin(std::process::Stdio::null());
        if let Some(path) = &r.log {
            let open = || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| BackendError::Spawn {
                        program: path.clone(),
                        source,
                    })
            };
            cmd.stdout(open()?).stderr(open()?);
        }
        let child = super::spawner::spawn(cmd).map_err(|source| BackendError::Spawn {
            program: self.helper.clone(),
            source,
        })?;
        Ok(Launched {
            process: Box::new(child),
            endpoint: Endpoint::Unix(super::jupyter::socket_in(&r.run_dir)),
        })
    }

    fn processes(&self, lab: &str) -> Result<usize, BackendError> {
        Ok(self.cgroups.pids(lab)?.len())
    }

    fn out_of_memory(&self, lab: &str) -> bool {
        self.cgroups.oom_killed(lab)
    }

    fn attach(
        &self,
        lab: &str,
        data_root: Option<&std::path::Path>,
        volume: &DataVolume,
    ) -> Result<(), BackendError> {
        let out = std::process::Command::new(&self.helper)
            .args(["lab", "attach", "--lab", lab])
            .arg("--cgroup-root")
            .arg(self.cgroups.root())
            .arg("--cgroup-prefix")
            .arg(self.cgroups.prefix())
            .arg("--source")
            .arg(&volume.host)
            .arg("--mountpoint")
            .arg(
                data_root
                    .ok_or_else(|| {
                        BackendError::Attach("the lab was started without a data volume".into())
                    })?
                    .join(&volume.collection),
            )
            .args(["--collection", &volume.collection])
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|source| BackendError::Spawn {
                program: self.helper.clone(),
                source,
            })?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr);
        Err(BackendError::Attach(
            said.trim().trim_start_matches("error: ").to_owned(),
        ))
    }

    fn stop(&self, lab: &str) -> Result<(), BackendError> {
        Ok(self.cgroups.kill_and_remove(lab, STOP_DEADLINE)?)
    }

    fn reap_orphans(&self) -> Result<Vec<String>, BackendError> {
        Ok(self.cgroups.reap_orphans(STOP_DEADLINE)?)
    }

    fn release(&self) {
        self.cgroups.release();
    }
}
