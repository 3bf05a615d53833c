//! The node's labs behind the HTTP face: made when first asked for (labs cost nothing on a node
//! that never runs one), on the sandbox of this machine, under a cgroup of this node's own so
//! that two nodes on one machine never reap each other's labs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orrery_web::api::{LabAnswer, LabCall, LabView};
use orrery_web::{ApiError, Principal};
use tokio::sync::OnceCell;

use crate::config::LabsSection;
use crate::home::Home;
use crate::labs::backend::LocalSandbox;
use crate::labs::cgroup::{CgroupDriver, Limits};
use crate::labs::env::Environment;
use crate::labs::manager::{LabError, LabInfo, LabManager, LabsConfig, Quotas};
use crate::labs::state::LabState;

/// The labs of a node, once made, or why they cannot run here.
pub(super) struct Labs {
    home: Home,
    config: LabsSection,
    node: String,
    manager: OnceCell<Result<Arc<LabManager>, String>>,
}

/// The cgroup prefix of a node's labs.
fn prefix(node: &str) -> PathBuf {
    PathBuf::from(format!("orrery-{node}/labs"))
}

impl Labs {
    pub(super) fn new(home: Home, config: LabsSection, node: &orrery_protocol::NodeId) -> Self {
        Self {
            home,
            config,
            node: node.short(),
            manager: OnceCell::new(),
        }
    }

    /// Stops what an earlier run of this node left running (a crash): only if it left cgroups.
    pub(super) fn reap_left_behind(&self) {
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
                if let Err(why) = &made {
                    tracing::warn!(%why, "labs cannot run on this node; every lab request is refused saying so (`orrery lab check` tells what is missing)");
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
        STATES
            .iter()
            .map(|s| {
                let n = labs.iter().filter(|l| l.state.name() == *s).count();
                (*s, i64::try_from(n).unwrap_or(i64::MAX))
            })
            .collect()
    }

    /// Stops every lab (the node is stopping).
    pub(super) async fn stop_all(&self) {
        if let Some(Ok(m)) = self.manager.get() {
            m.stop_all().await;
        }
    }

    /// Where `who`'s running lab is reached.
    pub(super) async fn upstream(
        &self,
        who: &Principal,
        lab: &str,
    ) -> Result<(PathBuf, String), ApiError> {
        let manager = self.manager().await?;
        manager.upstream(lab, &who.author).map_err(refusal)
    }

    /// One call of `who`.
    pub(super) async fn call(&self, who: Principal, call: LabCall) -> Result<LabAnswer, ApiError> {
        let manager = self.manager().await?;
        let owner = who.author.clone();
        let node = self.node.clone();
        let view = |l: LabInfo| view(l, &node);
        Ok(match call {
            LabCall::List => {
                LabAnswer::Labs(manager.list(Some(&owner)).into_iter().map(view).collect())
            }
            LabCall::Show(id) => {
                LabAnswer::Lab(view(manager.get(&id, Some(&owner)).map_err(refusal)?))
            }
            LabCall::Logs(id) => {
                LabAnswer::Logs(manager.logs(&id, Some(&owner), 200).map_err(refusal)?)
            }
            LabCall::Stop(id) => LabAnswer::Lab(view(
                manager.stop(&id, Some(&owner)).await.map_err(refusal)?,
            )),
            LabCall::Create(new) => {
                let datasets = self.datasets(&new.datasets).await?;
                let environment = new.environment.as_deref().unwrap_or("jupyter");
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
                LabAnswer::Lab(view(
                    manager
                        .restart(&id, &owner, datasets)
                        .await
                        .map_err(refusal)?,
                ))
            }
        })
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

/// The labs of this node, if this machine can run them.
fn open(home: &Home, config: &LabsSection, node: &str) -> Result<Arc<LabManager>, String> {
    let report = crate::labs::check::run(&config.bwrap, config.uid);
    if let Some(why) = report.refusal() {
        return Err(why);
    }
    let cgroups = CgroupDriver::detect_at(std::path::Path::new("/sys/fs/cgroup"), &prefix(node))
        .map_err(|e| e.to_string())?;
    let helper = match &config.helper {
        Some(h) => h.clone(),
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    let backend = LocalSandbox {
        helper,
        bwrap: config.bwrap.clone(),
        uid: config.uid,
        gid: config.uid,
        cgroups,
    };
    let dir = home.root().join("labs");
    Ok(Arc::new(LabManager::new(
        Arc::new(backend),
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
