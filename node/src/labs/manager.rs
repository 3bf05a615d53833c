//! The labs of this node: starting one (environment, sandbox, Jupyter Server), watching it,
//! stopping it, and refusing what quotas do not allow, each with a reason a person can act on.
//!
//! A lab belongs to an author. Its workspace (`labs/workspaces/<lab>`) outlives its runs: a lab
//! that stopped or failed starts again with the same workspace. Its server's output goes to
//! `labs/logs/<lab>.log`, outside the lab. States move only forward within a run; every start is
//! a new run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;
use tracing::{info, warn};

use super::backend::ComputeBackend;
use super::cgroup::Limits;
use super::endpoint::Endpoint;
use super::env::Environment;
use super::state::LabState;

mod culler;
mod record;
mod run;
mod warm;

/// Why a lab was refused or could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabError {
    /// No such lab (or not the asker's).
    #[error("no lab `{0}` of yours on this node")]
    NoLab(String),
    /// The environment is not offered here.
    #[error("this node offers no environment `{0}` (it offers: {1})")]
    NoEnvironment(String, String),
    /// A dataset is not held here.
    #[error("this node holds no collection `{0}`")]
    NoDataset(String),
    /// A quota refused the lab.
    #[error("{0}")]
    Quota(String),
    /// The lab runs already.
    #[error("lab `{0}` is {1}; stop it first")]
    Busy(String, &'static str),
    /// The node cannot start labs now.
    #[error("labs cannot start now: {0}")]
    Unavailable(String),
}

/// What the node allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    /// Labs running at once on this node.
    pub labs: usize,
    /// Labs running at once per author.
    pub labs_per_author: usize,
}

/// Where labs live and what each gets.
#[derive(Debug, Clone)]
pub struct LabsConfig {
    /// `labs/` in the data directory: workspaces, run directories, logs.
    pub dir: PathBuf,
    /// Where environments are provisioned (`labs/envs` unless shared between nodes).
    pub envs: PathBuf,
    /// The Python that builds environments (under `/usr`).
    pub python: PathBuf,
    /// Limits per lab.
    pub limits: Limits,
    /// Size of each lab's `/tmp`.
    pub tmp_bytes: u64,
    /// A workspace holding more than this starts read-only, saying why (0: no quota).
    pub workspace_bytes: u64,
    /// The uid (and gid) labs run as: their workspace belongs to it.
    pub uid: u32,
    /// Quotas.
    pub quotas: Quotas,
    /// How long a lab's server may take to answer.
    pub start_deadline: Duration,
}

/// A lab as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabInfo {
    /// Its id.
    pub id: String,
    /// Its owner (an author key).
    pub owner: String,
    /// Its environment's id.
    pub environment: String,
    /// The collections it sees under `/data`.
    pub datasets: Vec<String>,
    /// Where it is.
    pub state: LabState,
    /// When it was made (seconds since the Unix epoch).
    pub created_at: i64,
    /// The path its server is served under, through this node.
    pub base_url: String,
    /// What its owner should know now: it is idle and will be stopped, or it was (culled).
    pub notice: Option<String>,
}

/// What changed about a lab, as it happens (a start streams these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabEvent {
    /// The lab.
    pub lab: String,
    /// Its owner.
    pub owner: String,
    /// Its new state.
    pub state: LabState,
    /// A line of progress (provisioning), if any.
    pub detail: Option<String>,
}

struct Lab {
    info: LabInfo,
    token: String,
    /// Bumped by every start: a watcher of an earlier run does not touch a later one.
    run: u64,
    /// What waits for the running server to end.
    watcher: Option<tokio::task::JoinHandle<()>>,
    /// Where the running server listens (none before its first start in this run of the node).
    endpoint: Option<Endpoint>,
}

/// Most pinned environments a node offers at once (each is provisioned on its disk).
const MAX_PINNED: usize = 16;

/// The labs of this node.
pub struct LabManager {
    backend: Arc<dyn ComputeBackend>,
    config: LabsConfig,
    environments: Vec<Environment>,
    /// Environments projects are pinned to, beside the offered ones: each an offered id with
    /// another lock, asked for by its name (`<id>-<hash>`).
    pinned: Mutex<Vec<Environment>>,
    labs: Mutex<BTreeMap<String, Lab>>,
    events: broadcast::Sender<LabEvent>,
    /// Wakes the keeper of warm labs (one was claimed).
    warm_wake: Arc<tokio::sync::Notify>,
    /// The node is stopping: no more warm labs.
    closing: std::sync::atomic::AtomicBool,
}

/// Random hex, for lab ids and the tokens of their servers; never a guessable stand-in.
fn random_hex(bytes: usize) -> Result<String, LabError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| LabError::Unavailable(format!("no randomness: {e}")))?;
    Ok(hex::encode(b))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl LabManager {
    /// Labs on `backend`, reaping what a crash of an earlier run of the node left behind.
    pub fn new(
        backend: Arc<dyn ComputeBackend>,
        config: LabsConfig,
        environments: Vec<Environment>,
    ) -> Self {
        match backend.reap_orphans() {
            Ok(reaped) if !reaped.is_empty() => {
                warn!(labs = ?reaped, "labs left running by an earlier run of the node were stopped; their owners can start them again");
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "labs left by an earlier run could not be reaped"),
        }
        let (events, _) = broadcast::channel(1024);
        let labs = Self::recorded(&config.dir);
        Self {
            backend,
            config,
            environments,
            pinned: Mutex::new(Vec::new()),
            labs: Mutex::new(labs),
            events,
            warm_wake: Arc::new(tokio::sync::Notify::new()),
            closing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// What changes, as it happens.
    pub fn subscribe(&self) -> broadcast::Receiver<LabEvent> {
        self.events.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Lab>> {
        self.labs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves a lab of run `run` to `state` (refused if it went backwards or the run is over).
    fn advance(&self, id: &str, run: u64, state: LabState, detail: Option<String>) -> bool {
        let mut labs = self.lock();
        let Some(lab) = labs.get_mut(id).filter(|l| l.run == run) else {
            return false;
        };
        if lab.info.state.advance(state.clone()).is_err() {
            return false;
        }
        if let LabState::Failed { reason } = &state {
            warn!(lab = id, %reason, "a lab failed");
        }
        let _ = self.events.send(LabEvent {
            lab: id.to_owned(),
            owner: lab.info.owner.clone(),
            state,
            detail,
        });
        true
    }

    /// Moves a lab of run `run` to `state` only if it is in `from` now (checked and changed at
    /// once).
    fn advance_from(&self, id: &str, run: u64, from: &LabState, state: LabState) {
        let mut labs = self.lock();
        if let Some(lab) = labs
            .get_mut(id)
            .filter(|l| l.run == run && &l.info.state == from)
        {
            if let LabState::Failed { reason } = &state {
                warn!(lab = id, %reason, "a lab failed");
            }
            lab.info.state = state.clone();
            let _ = self.events.send(LabEvent {
                lab: id.to_owned(),
                owner: lab.info.owner.clone(),
                state,
                detail: None,
            });
        }
    }

    /// The labs of `owner` (every lab for `None`; warm labs are nobody's yet and not listed).
    pub fn list(&self, owner: Option<&str>) -> Vec<LabInfo> {
        self.lock()
            .values()
            .filter(|l| l.info.owner != warm::WARM)
            .filter(|l| owner.is_none_or(|o| l.info.owner == o))
            .map(|l| l.info.clone())
            .collect()
    }

    /// A lab of `owner` (any lab for `None`).
    pub fn get(&self, id: &str, owner: Option<&str>) -> Result<LabInfo, LabError> {
        self.lock()
            .get(id)
            .filter(|l| owner.is_none_or(|o| l.info.owner == o))
            .map(|l| l.info.clone())
            .ok_or_else(|| LabError::NoLab(id.to_owned()))
    }

    /// Where a running lab of `owner` is reached, and its server's token.
    pub fn upstream(&self, id: &str, owner: &str) -> Result<(Endpoint, String), LabError> {
        let labs = self.lock();
        let lab = labs
            .get(id)
            .filter(|l| l.info.owner == owner)
            .ok_or_else(|| LabError::NoLab(id.to_owned()))?;
        if lab.info.state != LabState::Running {
            return Err(LabError::Busy(id.to_owned(), lab.info.state.name()));
        }
        let endpoint = lab.endpoint.clone().ok_or_else(|| {
            LabError::Unavailable(format!("lab {id} runs, but where it listens is not known"))
        })?;
        Ok((endpoint, lab.token.clone()))
    }

    /// The last lines of a lab's server output.
    pub fn logs(&self, id: &str, owner: Option<&str>, lines: usize) -> Result<String, LabError> {
        self.get(id, owner)?;
        Ok(self.output(id, lines))
    }

    /// The last `lines` lines of a lab's output: kept by the backend, or in the lab's log file.
    fn output(&self, id: &str, lines: usize) -> String {
        self.backend
            .output(id, lines)
            .unwrap_or_else(|| tail(&self.log_path(id), lines))
    }

    fn run_dir(&self, id: &str) -> PathBuf {
        self.config.dir.join("run").join(id)
    }

    fn workspace_image_path(&self, id: &str) -> PathBuf {
        self.config.dir.join("workspaces").join(format!("{id}.img"))
    }

    fn data_root(&self, id: &str) -> PathBuf {
        self.config.dir.join("volumes").join(id)
    }

    fn workspace(&self, id: &str) -> PathBuf {
        self.config.dir.join("workspaces").join(id)
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.config.dir.join("logs").join(format!("{id}.log"))
    }

    /// Makes a new lab of `owner` and starts it; returns once it runs or failed.
    pub async fn create(
        self: &Arc<Self>,
        owner: &str,
        environment: &str,
        datasets: Vec<(String, PathBuf)>,
    ) -> Result<LabInfo, LabError> {
        if let Some(claimed) = self.claim(owner, environment, &datasets).await? {
            return Ok(claimed);
        }
        let (id, env) = self.admit(owner, environment, &datasets)?;
        self.run(&id, env, datasets).await
    }

    /// Makes a new lab of `owner` and returns it as soon as it was admitted; it starts in the
    /// background (its state shows how far it got).
    pub async fn create_in_background(
        self: &Arc<Self>,
        owner: &str,
        environment: &str,
        datasets: Vec<(String, PathBuf)>,
    ) -> Result<LabInfo, LabError> {
        if let Some(claimed) = self.claim(owner, environment, &datasets).await? {
            return Ok(claimed);
        }
        let (id, env) = self.admit(owner, environment, &datasets)?;
        let shown = self.get(&id, None)?;
        let me = self.clone();
        tokio::spawn(async move {
            let _ = me.run(&id, env, datasets).await;
        });
        Ok(shown)
    }

    /// Starts a lab that stopped or failed again in the background, with the same workspace.
    pub fn restart_in_background(
        self: &Arc<Self>,
        id: &str,
        owner: &str,
        datasets: Vec<(String, PathBuf)>,
    ) -> Result<LabInfo, LabError> {
        let env = self.readmit(id, owner, &datasets)?;
        let shown = self.get(id, None)?;
        let (me, id) = (self.clone(), id.to_owned());
        tokio::spawn(async move {
            let _ = me.run(&id, env, datasets).await;
        });
        Ok(shown)
    }

    /// Admits a new lab under the quotas: its id and environment.
    fn admit(
        &self,
        owner: &str,
        environment: &str,
        datasets: &[(String, PathBuf)],
    ) -> Result<(String, Environment), LabError> {
        let env = self.environment(environment)?;
        let id = format!("lab-{}", random_hex(6)?);
        let token = random_hex(24)?;
        let info = LabInfo {
            id: id.clone(),
            owner: owner.to_owned(),
            environment: environment.to_owned(),
            datasets: datasets.iter().map(|(c, _)| c.clone()).collect(),
            state: LabState::Pending,
            created_at: now(),
            base_url: format!("/labs/{id}/"),
            notice: None,
        };
        {
            let mut labs = self.lock();
            self.check_quotas(&labs, owner)?;
            labs.insert(
                id.clone(),
                Lab {
                    info,
                    token,
                    run: 0,
                    watcher: None,
                    endpoint: None,
                },
            );
        }
        info!(lab = %id, owner, environment, "a lab was asked for");
        self.save();
        Ok((id, env))
    }

    /// Starts a lab that stopped or failed again, with the same workspace.
    pub async fn restart(
        self: &Arc<Self>,
        id: &str,
        owner: &str,
        datasets: Vec<(String, PathBuf)>,
    ) -> Result<LabInfo, LabError> {
        let env = self.readmit(id, owner, &datasets)?;
        self.run(id, env, datasets).await
    }

    /// The environment asked for as `name`: an offered one by its id, or one a project is
    /// pinned to by its name.
    fn environment(&self, name: &str) -> Result<Environment, LabError> {
        let pinned = self
            .pinned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.environments
            .iter()
            .find(|e| e.id == name)
            .or_else(|| pinned.iter().find(|e| e.name() == name))
            .cloned()
            .ok_or_else(|| {
                let offered: Vec<&str> = self.environments.iter().map(|e| e.id.as_str()).collect();
                LabError::NoEnvironment(name.to_owned(), offered.join(", "))
            })
    }

    /// Makes `env` (an offered environment's id, perhaps with another lock: a project's pin)
    /// available to labs; the name to ask for it by. The environment is provisioned from its
    /// own lock the first time a lab needs it.
    pub fn pin(&self, env: &Environment) -> Result<String, LabError> {
        let offered = self
            .environments
            .iter()
            .find(|e| e.id == env.id)
            .ok_or_else(|| {
                let offered: Vec<&str> = self.environments.iter().map(|e| e.id.as_str()).collect();
                LabError::NoEnvironment(env.id.clone(), offered.join(", "))
            })?;
        let Some(env) = super::env::as_run_by(offered, env, self.backend.on_this_machine())
            .map_err(|why| {
                LabError::Unavailable(format!(
                    "{why} (this node's labs run on {})",
                    self.backend.name()
                ))
            })?
        else {
            return Ok(env.id.clone());
        };
        let mut pinned = self
            .pinned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !pinned.iter().any(|e| e.name() == env.name()) {
            if pinned.len() >= MAX_PINNED {
                return Err(LabError::Unavailable(format!(
                    "this node offers at most {MAX_PINNED} pinned environments until it restarts; {} is not provisioned here: run it at another node, or ask the node's operator",
                    env.name()
                )));
            }
            info!(environment = %env.name(), image = ?env.image, "a project's pinned environment is offered to its labs");
            pinned.push(env.clone());
        }
        Ok(env.name())
    }

    /// Admits a stopped or failed lab to start again under the quotas: its environment.
    fn readmit(
        &self,
        id: &str,
        owner: &str,
        datasets: &[(String, PathBuf)],
    ) -> Result<Environment, LabError> {
        let token = random_hex(24)?;
        let env = {
            let mut labs = self.lock();
            let lab = labs
                .get(id)
                .filter(|l| l.info.owner == owner)
                .ok_or_else(|| LabError::NoLab(id.to_owned()))?;
            if !lab.info.state.can_restart() {
                return Err(LabError::Busy(id.to_owned(), lab.info.state.name()));
            }
            let env = self.environment(&lab.info.environment)?;
            self.check_quotas(&labs, owner)?;
            let lab = labs
                .get_mut(id)
                .ok_or_else(|| LabError::NoLab(id.to_owned()))?;
            let _ = lab.info.state.restart();
            lab.info.notice = None;
            lab.run += 1;
            lab.token = token;
            lab.info.datasets = datasets.iter().map(|(c, _)| c.clone()).collect();
            env
        };
        self.save();
        Ok(env)
    }

    fn check_quotas(&self, labs: &BTreeMap<String, Lab>, owner: &str) -> Result<(), LabError> {
        let live: Vec<&Lab> = labs
            .values()
            .filter(|l| !l.info.state.is_final() && l.info.owner != warm::WARM)
            .collect();
        let q = &self.config.quotas;
        if live.len() >= q.labs {
            return Err(LabError::Quota(format!(
                "this node runs {} labs, its most at once; try again later or another node",
                live.len()
            )));
        }
        let mine = live.iter().filter(|l| l.info.owner == owner).count();
        if mine >= q.labs_per_author {
            return Err(LabError::Quota(format!(
                "you run {mine} labs here, the most an author may at once; stop one first"
            )));
        }
        Ok(())
    }

    /// Stops a lab of `owner` (any lab for `None`): nothing of it runs when this returns. Its
    /// workspace stays.
    pub async fn stop(&self, id: &str, owner: Option<&str>) -> Result<LabInfo, LabError> {
        let run = {
            let labs = self.lock();
            let lab = labs
                .get(id)
                .filter(|l| owner.is_none_or(|o| l.info.owner == o))
                .ok_or_else(|| LabError::NoLab(id.to_owned()))?;
            lab.run
        };
        self.advance(id, run, LabState::Stopping, None);
        let backend = self.backend.clone();
        let lab = id.to_owned();
        let stopped = tokio::task::spawn_blocking(move || backend.stop(&lab)).await;
        // The server's process is gone with its cgroup; its watcher has seen it end.
        let watcher = self.lock().get_mut(id).and_then(|l| l.watcher.take());
        if let Some(w) = watcher {
            let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
        }
        match stopped {
            Ok(Ok(())) => {
                self.advance(id, run, LabState::Stopped, None);
            }
            Ok(Err(e)) => {
                self.advance(
                    id,
                    run,
                    LabState::Failed {
                        reason: format!("it could not be stopped cleanly: {e}; stop it again"),
                    },
                    None,
                );
            }
            Err(e) => {
                self.advance(
                    id,
                    run,
                    LabState::Failed {
                        reason: format!("stopping it was interrupted: {e}; stop it again"),
                    },
                    None,
                );
            }
        }
        info!(lab = id, "a lab was stopped");
        self.get(id, None)
    }

    /// Adds `collection` (at `host` on this node) to a running lab of `owner`, read-only at
    /// `/data/<collection>`, without restarting it.
    pub async fn attach(
        &self,
        id: &str,
        owner: &str,
        collection: &str,
        host: PathBuf,
    ) -> Result<LabInfo, LabError> {
        let shown = self.get(id, Some(owner))?;
        if shown.state != LabState::Running {
            return Err(LabError::Busy(id.to_owned(), shown.state.name()));
        }
        if shown.datasets.iter().any(|d| d == collection) {
            return Ok(shown);
        }
        let volume = super::sandbox::DataVolume {
            collection: collection.to_owned(),
            host,
        };
        let (backend, lab) = (self.backend.clone(), id.to_owned());
        let root = self.data_root(id);
        tokio::task::spawn_blocking(move || backend.attach(&lab, Some(&root), &volume))
            .await
            .map_err(|e| LabError::Unavailable(e.to_string()))?
            .map_err(|e| LabError::Unavailable(e.to_string()))?;
        info!(lab = id, collection, "a dataset was added to a running lab");
        if let Some(lab) = self.lock().get_mut(id) {
            lab.info.datasets.push(collection.to_owned());
        }
        self.save();
        self.get(id, None)
    }

    /// Stops every lab (the node is stopping).
    pub async fn stop_all(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let ids: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, l)| !l.info.state.is_final())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let _ = self.stop(&id, None).await;
        }
        self.backend.release();
    }
}
