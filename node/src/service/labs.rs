//! The node's labs behind the HTTP face: made when first asked for (labs cost nothing on a node
//! that never runs one), on the sandbox of this machine, under a cgroup of this node's own so
//! that two nodes on one machine never reap each other's labs.
//!
//! A lab is placed at the member that holds its datasets ([`crate::labs::placement`]). One placed
//! here runs here; one placed elsewhere is asked for with an order signed by its author
//! ([`remote`]), remembered with the node that runs it, and reached through a tunnel over the
//! data plane ([`tunnel`]). Orders from other nodes are judged by the node actor and carried out
//! by [`Labs::order`].

mod batch;
mod orders;
mod remote;
pub(super) mod tunnel;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orrery_protocol::NodeId;
use orrery_protocol::lab::{LabAction, LabRefusal};
use orrery_web::api::{LabAnswer, LabCall, LabView};
use orrery_web::{ApiError, LabConnection, Principal};
use tokio::sync::{OnceCell, mpsc};

use super::Command;
use crate::config::LabBackend;
use crate::config::LabsSection;
use crate::home::Home;
use crate::labs::backend::{ComputeBackend, LocalSandbox};
use crate::labs::cgroup::{CgroupDriver, Limits};
use crate::labs::endpoint::Endpoint;
use crate::labs::env::Environment;
use crate::labs::kubernetes::Kubernetes;
use crate::labs::manager::{LabError, LabInfo, LabManager, LabsConfig, Quotas};
use crate::labs::state::LabState;

/// The labs of a node, once made, or why they cannot run here.
pub(super) struct Labs {
    home: Home,
    config: LabsSection,
    me: NodeId,
    node: String,
    manager: OnceCell<Result<Arc<LabManager>, String>>,
    /// Whether this machine can run labs (known once checked at start): offers depend on it.
    usable: OnceLock<bool>,
    /// The node actor: signs orders, judges them, knows the members' adverts.
    tx: mpsc::Sender<Command>,
    /// Labs placed on other nodes, and the way there.
    remote: remote::Remote,
    /// Every step of every owned lab, here and followed elsewhere, with its owner.
    feed: Feed,
}

/// Steps of labs with their owners, for `GET /api/v1/labs/events`.
pub(super) type Feed = tokio::sync::broadcast::Sender<(String, orrery_web::api::LabProgress)>;

/// The cgroup prefix of a node's labs.
fn prefix(node: &str) -> PathBuf {
    PathBuf::from(format!("orrery-{node}/labs"))
}

impl Labs {
    pub(super) fn new(
        home: Home,
        config: LabsSection,
        node: NodeId,
        tx: mpsc::Sender<Command>,
        fed: orrery_federation::FederationHandle,
    ) -> Self {
        let (feed, _) = tokio::sync::broadcast::channel(1024);
        let remote = remote::Remote::new(&home, fed, feed.clone());
        Self {
            feed,
            home,
            config,
            me: node,
            node: node.short(),
            manager: OnceCell::new(),
            usable: OnceLock::new(),
            tx,
            remote,
        }
    }

    /// Gives the labs the node's data-plane endpoint, which carries tunnels to labs elsewhere.
    pub(super) fn set_endpoint(&self, endpoint: iroh::Endpoint) {
        self.remote.set_endpoint(endpoint);
    }

    /// Checks whether this machine can run labs (so their offer is advertised), then stops
    /// what an earlier run of this node left running (a crash): only if it left cgroups.
    pub(super) fn check_and_reap(&self) {
        if self.config.backend == LabBackend::Kubernetes {
            // The cluster is asked at once: pods an earlier run left are reaped, and labs are
            // offered only if it answers (a warning says why not). Called on a blocking thread.
            let usable = tokio::runtime::Handle::current()
                .block_on(self.manager())
                .is_ok();
            let _ = self.usable.set(usable);
            if usable {
                let _ = self.tx.try_send(Command::Readvertise);
            }
            return;
        }
        let usable =
            crate::labs::check::run(&self.config.bwrap, self.config.uid, self.config.landlock)
                .refusal()
                .is_none();
        let _ = self.usable.set(usable);
        if usable {
            let _ = self.tx.try_send(Command::Readvertise);
        }
        self.reap_left_behind();
    }

    /// What this node offers other members' researchers now: the `jupyter` environment with the
    /// room left under its quota, if labs can run here.
    pub(super) fn offers(&self) -> Vec<orrery_protocol::advert::ComputeOffer> {
        if self.usable.get() != Some(&true) {
            return Vec::new();
        }
        let live = match self.manager.get() {
            Some(Ok(m)) => m.list(None).iter().filter(|l| !l.state.is_final()).count(),
            _ => 0,
        };
        let free = self.config.max_labs.saturating_sub(live);
        vec![orrery_protocol::advert::ComputeOffer {
            environment: "jupyter".into(),
            cores: u32::try_from(self.config.millicores.div_ceil(1000)).unwrap_or(u32::MAX),
            memory_mib: self.config.memory_mib,
            gpus: 0,
            free_slots: u32::try_from(free).unwrap_or(u32::MAX),
            lock: match self.config.backend {
                LabBackend::Local => Environment::jupyter().hash(),
                LabBackend::Kubernetes => {
                    blake3::hash(self.config.kubernetes.image.as_bytes()).to_hex()[..16].to_owned()
                }
            },
        }]
    }

    /// The room left changed: other members learn it from a renewed advert.
    fn readvertise(&self) {
        let _ = self.tx.try_send(Command::Readvertise);
    }

    fn reap_left_behind(&self) {
        let Ok(cgroups) =
            CgroupDriver::detect_at(std::path::Path::new("/sys/fs/cgroup"), &prefix(&self.node))
        else {
            return;
        };
        match cgroups.reap_orphans(Duration::from_secs(10)) {
            Ok(reaped) if !reaped.is_empty() => tracing::warn!(
                labs = ?reaped,
                "labs left running by an earlier run of this node were stopped; their owners can start them again"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "labs left by an earlier run could not be reaped"),
        }
    }

    async fn manager(&self) -> Result<Arc<LabManager>, ApiError> {
        let made = self
            .manager
            .get_or_init(|| async {
                let (home, config, node) =
                    (self.home.clone(), self.config.clone(), self.node.clone());
                let made = tokio::task::spawn_blocking(move || open(&home, &config, &node))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
                match &made {
                    Ok(m) => {
                        m.spawn_culler(crate::labs::cull::CullPolicy {
                            idle: (self.config.cull_idle_secs > 0)
                                .then(|| Duration::from_secs(self.config.cull_idle_secs)),
                            warning: Duration::from_secs(self.config.cull_warning_secs),
                        });
                        if self.config.backend == LabBackend::Local {
                            m.keep_warm(self.config.warm);
                        } else if self.config.warm > 0 {
                            tracing::warn!("no warm labs are kept on the Kubernetes backend (a pod's datasets are fixed when it is made); every start is cold");
                        }
                        self.forward_steps(m);
                    }
                    Err(why) => tracing::warn!(%why, "labs cannot run on this node; every lab request is refused saying so (`orrery lab check` tells what is missing)"),
                }
                made
            })
            .await;
        made.clone().map_err(|why| {
            ApiError::unavailable(format!(
                "labs cannot run on this node: {why} (its operator runs `orrery lab check`)"
            ))
        })
    }

    /// Passes the steps of this node's labs to the feed, as views with their owner.
    fn forward_steps(&self, manager: &Arc<LabManager>) {
        let mut steps = manager.subscribe();
        let weak = Arc::downgrade(manager);
        let (feed, node) = (self.feed.clone(), self.node.clone());
        tokio::spawn(async move {
            loop {
                let step = match steps.recv().await {
                    Ok(s) => s,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                let Some(manager) = weak.upgrade() else { break };
                let Ok(mut lab) = manager.get(&step.lab, None) else {
                    continue;
                };
                if lab.owner.is_empty() {
                    continue;
                }
                // The state the step was taken in (the lab may have moved on since).
                lab.state = step.state;
                let owner = lab.owner.clone();
                let progress = orrery_web::api::LabProgress {
                    lab: view(lab, &node),
                    detail: step.detail,
                };
                let _ = feed.send((owner, progress));
            }
        });
    }

    /// Every step of `who`'s labs from now on.
    pub(super) fn events(
        &self,
        who: &Principal,
    ) -> futures::stream::BoxStream<'static, orrery_web::api::LabProgress> {
        let owner = who.author.clone();
        Box::pin(futures::stream::unfold(
            self.feed.subscribe(),
            move |mut rx| {
                let owner = owner.clone();
                async move {
                    loop {
                        match rx.recv().await {
                            Ok((o, p)) if o == owner => return Some((p, rx)),
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                tracing::warn!(
                                    missed = n,
                                    "a lab event stream fell behind; its reader misses some steps (the labs' states are current on GET)"
                                );
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                }
            },
        ))
    }

    /// How many labs are in each state, every state listed.
    pub(super) fn counts(&self) -> Vec<(&'static str, i64)> {
        const STATES: [&str; 8] = [
            "pending",
            "placed",
            "provisioning",
            "starting",
            "running",
            "stopping",
            "stopped",
            "failed",
        ];
        let labs = match self.manager.get() {
            Some(Ok(m)) => m.list(None),
            _ => Vec::new(),
        };
        let warm = match self.manager.get() {
            Some(Ok(m)) => m.warm_ready(),
            _ => 0,
        };
        STATES
            .iter()
            .map(|s| {
                let n = labs.iter().filter(|l| l.state.name() == *s).count();
                (*s, i64::try_from(n).unwrap_or(i64::MAX))
            })
            // Warm labs waiting to be claimed (nobody's yet, so in no other state's count).
            .chain(std::iter::once((
                "warm",
                i64::try_from(warm).unwrap_or(i64::MAX),
            )))
            .collect()
    }

    /// Stops every lab (the node is stopping).
    pub(super) async fn stop_all(&self) {
        if let Some(Ok(m)) = self.manager.get() {
            m.stop_all().await;
        }
    }

    /// A connection to `who`'s running lab, here or on the node that runs it.
    pub(super) async fn connect(
        &self,
        who: &Principal,
        lab: &str,
    ) -> Result<LabConnection, ApiError> {
        if let Some(node) = self.remote.node_of(lab, &who.author) {
            return self.remote.tunnel(&self.tx, who, node, lab).await;
        }
        let manager = self.manager().await?;
        let (endpoint, token) = manager.upstream(lab, &who.author).map_err(refusal)?;
        let stream = endpoint.connect().await.map_err(|e| {
            tracing::warn!(lab, %endpoint, error = %e, "a lab's server could not be reached");
            ApiError::unavailable("the lab's server does not answer; `orrery lab logs` shows why")
        })?;
        Ok(LabConnection { stream, token })
    }

    /// Where this node's own lab `lab` of `owner` is reached, and its token.
    pub(super) async fn local_upstream(
        &self,
        owner: &str,
        lab: &str,
    ) -> Result<(Endpoint, String), (LabRefusal, String)> {
        let manager = self
            .manager()
            .await
            .map_err(|e| (LabRefusal::Unavailable, e.to_string()))?;
        manager
            .upstream(lab, owner)
            .map_err(|e| (orders::kind_of(&e), e.to_string()))
    }

    /// One call of `who`: to this node's labs, or to the node that runs the lab.
    pub(super) async fn call(&self, who: Principal, call: LabCall) -> Result<LabAnswer, ApiError> {
        let remote_id = match &call {
            LabCall::Show(id)
            | LabCall::Start(id)
            | LabCall::Stop(id)
            | LabCall::Logs(id)
            | LabCall::Attach(id, _) => self
                .remote
                .node_of(id, &who.author)
                .map(|n| (n, id.clone())),
            _ => None,
        };
        if let Some((node, id)) = remote_id {
            let action = match call {
                LabCall::Show(_) => LabAction::Show { lab: id },
                LabCall::Start(_) => LabAction::Start { lab: id },
                LabCall::Stop(_) => LabAction::Stop { lab: id },
                LabCall::Attach(_, dataset) => LabAction::Attach { lab: id, dataset },
                _ => LabAction::Logs { lab: id },
            };
            return self.remote.call(&self.tx, &who, node, action).await;
        }
        match call {
            LabCall::List => {
                let mut labs = match self.manager.get() {
                    Some(Ok(m)) => m
                        .list(Some(&who.author))
                        .into_iter()
                        .map(|l| view(l, &self.node))
                        .collect(),
                    _ => Vec::new(),
                };
                labs.extend(self.remote.list(&self.tx, &who).await);
                Ok(LabAnswer::Labs(labs))
            }
            LabCall::Create(new) => {
                let environment = new.environment.clone().unwrap_or_else(|| "jupyter".into());
                let node = self
                    .remote
                    .place(&self.tx, self.me, &environment, &new.datasets)
                    .await?;
                if node == self.me {
                    self.local(who, LabCall::Create(new)).await
                } else {
                    let action = LabAction::Create {
                        environment,
                        datasets: new.datasets,
                    };
                    self.remote.create(&self.tx, &who, node, action).await
                }
            }
            call => self.local(who, call).await,
        }
    }

    /// One call of `who` on this node's labs.
    async fn local(&self, who: Principal, call: LabCall) -> Result<LabAnswer, ApiError> {
        let manager = self.manager().await?;
        let owner = who.author.clone();
        let node = self.node.clone();
        let view = |l: LabInfo| view(l, &node);
        let answer = match call {
            LabCall::List => {
                LabAnswer::Labs(manager.list(Some(&owner)).into_iter().map(view).collect())
            }
            LabCall::Show(id) => {
                LabAnswer::Lab(view(manager.get(&id, Some(&owner)).map_err(refusal)?))
            }
            LabCall::Logs(id) => {
                LabAnswer::Logs(manager.logs(&id, Some(&owner), 200).map_err(refusal)?)
            }
            LabCall::Attach(id, dataset) => {
                let mut held = self.datasets(std::slice::from_ref(&dataset)).await?;
                let (collection, host) = held.pop().ok_or_else(|| {
                    ApiError::not_found(format!("this node holds no collection `{dataset}`"))
                })?;
                LabAnswer::Lab(view(
                    manager
                        .attach(&id, &owner, &collection, host)
                        .await
                        .map_err(refusal)?,
                ))
            }
            LabCall::Stop(id) => LabAnswer::Lab(view(
                manager.stop(&id, Some(&owner)).await.map_err(refusal)?,
            )),
            LabCall::Create(new) => {
                let datasets = self.datasets(&new.datasets).await?;
                let environment = new.environment.as_deref().unwrap_or("jupyter");
                self.readvertise();
                LabAnswer::Lab(view(
                    manager
                        .create(&owner, environment, datasets)
                        .await
                        .map_err(refusal)?,
                ))
            }
            LabCall::Start(id) => {
                let shown = manager.get(&id, Some(&owner)).map_err(refusal)?;
                let datasets = self.datasets(&shown.datasets).await?;
                self.readvertise();
                LabAnswer::Lab(view(
                    manager
                        .restart(&id, &owner, datasets)
                        .await
                        .map_err(refusal)?,
                ))
            }
        };
        self.readvertise();
        Ok(answer)
    }

    /// Whether `owner`'s lab `lab` runs here now.
    pub(super) fn is_running(&self, owner: &str, lab: &str) -> bool {
        matches!(self.manager.get(), Some(Ok(m))
            if m.get(lab, Some(owner)).is_ok_and(|l| l.state == LabState::Running))
    }

    /// A lab of `owner` running here in `environment` that sees every one of `collections`
    /// (started if there is none), for running cells in: its id, where its server is reached,
    /// its token and its base URL.
    pub(super) async fn lab_for_runs(
        &self,
        owner: &str,
        environment: &Environment,
        collections: &[String],
    ) -> Result<(String, Endpoint, String, String), ApiError> {
        let manager = self.manager().await?;
        let environment = manager.pin(environment).map_err(refusal)?;
        let running = manager.list(Some(owner)).into_iter().find(|l| {
            l.state == LabState::Running
                && l.environment == environment
                && collections.iter().all(|c| l.datasets.contains(c))
        });
        let lab = match running {
            Some(l) => l,
            None => {
                let datasets = self.datasets(collections).await?;
                let made = manager
                    .create(owner, &environment, datasets)
                    .await
                    .map_err(refusal);
                self.readvertise();
                made?
            }
        };
        if lab.state != LabState::Running {
            return Err(ApiError::unavailable(format!(
                "lab {} did not start ({:?}); `orrery lab logs {}` shows why",
                lab.id, lab.state, lab.id
            )));
        }
        let (endpoint, token) = manager.upstream(&lab.id, owner).map_err(refusal)?;
        Ok((lab.id, endpoint, token, lab.base_url))
    }

    /// Where this node holds each collection.
    async fn datasets(&self, names: &[String]) -> Result<Vec<(String, PathBuf)>, ApiError> {
        let (home, names) = (self.home.clone(), names.to_vec());
        tokio::task::spawn_blocking(move || {
            let catalog = crate::catalog::Catalog::open(&home.database())
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            names
                .into_iter()
                .map(|n| match catalog.collection(&n) {
                    Ok(c) => Ok((n, PathBuf::from(c.root))),
                    Err(_) => Err(refusal(LabError::NoDataset(n))),
                })
                .collect()
        })
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
    }
}

fn view(l: LabInfo, node: &str) -> LabView {
    let reason = match &l.state {
        LabState::Failed { reason } => Some(reason.clone()),
        _ => None,
    };
    LabView {
        id: l.id,
        environment: l.environment,
        datasets: l.datasets,
        state: l.state.name().into(),
        reason,
        created_at: l.created_at,
        node: node.to_owned(),
        notice: l.notice,
    }
}

fn refusal(e: LabError) -> ApiError {
    match &e {
        LabError::NoLab(_) | LabError::NoEnvironment(..) | LabError::NoDataset(_) => {
            ApiError::not_found(e.to_string())
        }
        LabError::Quota(_) | LabError::Busy(..) => ApiError::conflict(e.to_string()),
        LabError::Unavailable(_) => ApiError::unavailable(e.to_string()),
    }
}

/// The labs of this node, if this machine (or its cluster) can run them.
fn open(home: &Home, config: &LabsSection, node: &str) -> Result<Arc<LabManager>, String> {
    let backend: Arc<dyn ComputeBackend> = match config.backend {
        LabBackend::Local => Arc::new(local(config, node)?),
        LabBackend::Kubernetes => Arc::new(cluster(config, node)?),
    };
    let dir = home.root().join("labs");
    Ok(Arc::new(LabManager::new(
        backend,
        LabsConfig {
            envs: config.envs.clone().unwrap_or_else(|| dir.join("envs")),
            dir,
            python: config.python.clone(),
            limits: Limits {
                memory_bytes: config.memory_mib << 20,
                pids: config.pids,
                millicores: config.millicores,
            },
            tmp_bytes: config.tmp_mib << 20,
            workspace_bytes: config.workspace_mib << 20,
            uid: config.uid,
            quotas: Quotas {
                labs: config.max_labs,
                labs_per_author: config.max_labs_per_author,
            },
            start_deadline: Duration::from_secs(60),
        },
        vec![Environment::jupyter()],
    )))
}

/// Labs as pods of the cluster the node runs in.
fn cluster(config: &LabsSection, node: &str) -> Result<Kubernetes, String> {
    Kubernetes::from_config(config, node).map_err(|e| e.to_string())
}

/// Labs in bubblewrap on this machine.
fn local(config: &LabsSection, node: &str) -> Result<LocalSandbox, String> {
    let report = crate::labs::check::run(&config.bwrap, config.uid, config.landlock);
    if let Some(why) = report.refusal() {
        return Err(why);
    }
    let cgroups = CgroupDriver::detect_at(std::path::Path::new("/sys/fs/cgroup"), &prefix(node))
        .map_err(|e| e.to_string())?;
    let helper = match &config.helper {
        Some(h) => h.clone(),
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    Ok(LocalSandbox {
        confine: config.landlock.then(|| helper.clone()),
        helper,
        bwrap: config.bwrap.clone(),
        uid: config.uid,
        gid: config.uid,
        cgroups,
    })
}
