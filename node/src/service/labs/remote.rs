//! Labs on other nodes: placing a lab, sending its author's signed orders to the node that runs
//! it, following a start there until it runs or fails, and remembering which node runs which lab
//! (`labs/placed.json`, so a restart of this node still reaches them).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use orrery_federation::FederationHandle;
use orrery_protocol::lab::{LabAction, LabOrder, LabRefusal, LabReply, LabSummary};
use orrery_protocol::wire::{Request, Response};
use orrery_protocol::{AuthorId, NodeId, Signed, Unverified};
use orrery_web::api::{LabAnswer, LabView};
use orrery_web::{ApiError, Principal};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::super::Command;
use crate::home::Home;
use crate::labs::placement::{NoHost, place};

/// How long a start on another node is followed before the answer says it is still starting.
const FOLLOW_FOR: Duration = Duration::from_secs(600);
/// How often its state is asked while following.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// A lab this node's researchers run elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Placed {
    node: String,
    owner: String,
}

/// Labs on other nodes.
pub(super) struct Remote {
    pub(super) fed: FederationHandle,
    pub(super) endpoint: OnceLock<iroh::Endpoint>,
    path: PathBuf,
    placed: Mutex<BTreeMap<String, Placed>>,
    /// Data-plane connections to the nodes running labs, reused by every tunnel.
    pub(super) conns: tokio::sync::Mutex<HashMap<NodeId, iroh::endpoint::Connection>>,
    /// Where the steps of followed labs go.
    feed: super::Feed,
}

impl Remote {
    pub(super) fn new(home: &Home, fed: FederationHandle, feed: super::Feed) -> Self {
        let path = home.root().join("labs").join("placed.json");
        let placed = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(path = %path.display(), error = %e, "the record of labs run on other nodes does not parse; they are not reached from here until started again");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Self {
            fed,
            endpoint: OnceLock::new(),
            path,
            placed: Mutex::new(placed),
            conns: tokio::sync::Mutex::new(HashMap::new()),
            feed,
        }
    }

    pub(super) fn set_endpoint(&self, endpoint: iroh::Endpoint) {
        let _ = self.endpoint.set(endpoint);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Placed>> {
        self.placed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The node running `owner`'s lab `lab`, if it runs elsewhere.
    pub(super) fn node_of(&self, lab: &str, owner: &str) -> Option<NodeId> {
        let placed = self.lock();
        let p = placed.get(lab).filter(|p| p.owner == owner)?;
        p.node.parse().ok()
    }

    fn remember(&self, lab: &str, node: NodeId, owner: &str) {
        let text = {
            let mut placed = self.lock();
            placed.insert(
                lab.to_owned(),
                Placed {
                    node: node.to_string(),
                    owner: owner.to_owned(),
                },
            );
            serde_json::to_vec_pretty(&*placed).unwrap_or_default()
        };
        let tmp = self.path.with_extension("json.tmp");
        let written = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, text))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            warn!(lab, error = %e, path = %self.path.display(), "where a lab runs could not be recorded; after a restart of this node it is reached only from the node that runs it");
        }
    }

    /// The member that should run a lab of `environment` over `datasets`.
    pub(super) async fn place(
        &self,
        tx: &mpsc::Sender<Command>,
        me: NodeId,
        environment: &str,
        datasets: &[String],
    ) -> Result<NodeId, ApiError> {
        let (reply, rx) = oneshot::channel();
        tx.send(Command::LabCandidates { reply })
            .await
            .map_err(|_| ApiError::unavailable("the node is stopping"))?;
        let candidates = rx
            .await
            .map_err(|_| ApiError::unavailable("the node is stopping"))?;
        // Data held here goes to this node's labs even if they offer nothing: they say why.
        let mine = candidates.iter().find(|c| c.node == me);
        if mine.is_some_and(|c| {
            c.compute.is_empty() && datasets.iter().all(|d| c.collections.contains(d))
        }) {
            return Ok(me);
        }
        place(me, &candidates, environment, datasets).map_err(|e| match e {
            NoHost::NoRoom(_) => ApiError::conflict(e.to_string()),
            NoHost::NoHolder(_) | NoHost::NotOffered { .. } => ApiError::not_found(e.to_string()),
        })
    }

    /// Sends `who`'s order to `node` and returns its answer.
    async fn send(
        &self,
        tx: &mpsc::Sender<Command>,
        who: &Principal,
        node: NodeId,
        action: LabAction,
    ) -> Result<Vec<LabSummary>, ApiError> {
        match self.ask(tx, who, node, action).await? {
            LabReply::Labs(l) => Ok(l),
            LabReply::Logs(_) => Err(ApiError::unavailable(format!(
                "node {} answered with something else",
                node.short()
            ))),
            LabReply::Refused { kind, reason } => Err(refusal(node, kind, &reason)),
        }
    }

    /// `who`'s order, signed here with their key, and `node`'s reply.
    pub(super) async fn ask(
        &self,
        tx: &mpsc::Sender<Command>,
        who: &Principal,
        node: NodeId,
        action: LabAction,
    ) -> Result<LabReply, ApiError> {
        let order = sign(tx, who, node, action).await?;
        let unreachable = |why: String| {
            warn!(peer = %node.short(), %why, "a lab order could not be delivered");
            ApiError::unavailable(format!(
                "node {} runs this lab but did not answer ({why}); try again, or ask its operator",
                node.short()
            ))
        };
        match self.fed.request(node, Request::Lab(order)).await {
            Ok(Response::Lab(reply)) => {
                reply.validate().map_err(|e| unreachable(e.to_string()))?;
                Ok(reply)
            }
            Ok(Response::Refused(r)) => Err(unreachable(format!("refused: {r:?}"))),
            Ok(_) => Err(unreachable("an answer of another kind".into())),
            Err(e) => Err(unreachable(e.to_string())),
        }
    }

    /// Starts a new lab of `who` on `node` and follows it until it runs or fails.
    pub(super) async fn create(
        &self,
        tx: &mpsc::Sender<Command>,
        who: &Principal,
        node: NodeId,
        action: LabAction,
    ) -> Result<LabAnswer, ApiError> {
        let made = self.send(tx, who, node, action).await?;
        let lab = made.into_iter().next().ok_or_else(|| {
            ApiError::unavailable(format!("node {} answered without the lab", node.short()))
        })?;
        self.remember(&lab.id, node, &who.author);
        tracing::info!(lab = %lab.id, node = %node.short(), "a lab was placed on the node holding its data");
        self.follow(tx, who, node, lab).await
    }

    /// Asks `node` about `lab` until it runs, fails or stops, or [`FOLLOW_FOR`] passed.
    async fn follow(
        &self,
        tx: &mpsc::Sender<Command>,
        who: &Principal,
        node: NodeId,
        mut lab: LabSummary,
    ) -> Result<LabAnswer, ApiError> {
        let until = Instant::now() + FOLLOW_FOR;
        let step = |lab: &LabSummary| {
            let progress = orrery_web::api::LabProgress {
                lab: view(lab.clone(), node),
                detail: None,
            };
            let _ = self.feed.send((who.author.clone(), progress));
        };
        step(&lab);
        while !matches!(lab.state.as_str(), "running" | "failed" | "stopped")
            && Instant::now() < until
        {
            tokio::time::sleep(FOLLOW_EVERY).await;
            let show = LabAction::Show {
                lab: lab.id.clone(),
            };
            if let Some(now) = self.send(tx, who, node, show).await?.into_iter().next() {
                if now.state != lab.state || now.notice != lab.notice {
                    step(&now);
                }
                lab = now;
            }
        }
        Ok(LabAnswer::Lab(view(lab, node)))
    }

    /// Shows, stops, starts or reads the logs of `who`'s lab on `node`.
    pub(super) async fn call(
        &self,
        tx: &mpsc::Sender<Command>,
        who: &Principal,
        node: NodeId,
        action: LabAction,
    ) -> Result<LabAnswer, ApiError> {
        let start = matches!(action, LabAction::Start { .. });
        match self.ask(tx, who, node, action).await? {
            LabReply::Logs(lines) => Ok(LabAnswer::Logs(lines.join("\n"))),
            LabReply::Labs(labs) => {
                let lab = labs.into_iter().next().ok_or_else(|| {
                    ApiError::unavailable(format!("node {} answered without the lab", node.short()))
                })?;
                if start {
                    self.follow(tx, who, node, lab).await
                } else {
                    Ok(LabAnswer::Lab(view(lab, node)))
                }
            }
            LabReply::Refused { kind, reason } => Err(refusal(node, kind, &reason)),
        }
    }

    /// `who`'s labs on other nodes; a node that does not answer has its labs shown as unknown,
    /// saying so.
    pub(super) async fn list(&self, tx: &mpsc::Sender<Command>, who: &Principal) -> Vec<LabView> {
        let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (lab, p) in self.lock().iter().filter(|(_, p)| p.owner == who.author) {
            by_node.entry(p.node.clone()).or_default().push(lab.clone());
        }
        let mut out = Vec::new();
        for (node, labs) in by_node {
            let Ok(node) = node.parse::<NodeId>() else {
                continue;
            };
            match self.send(tx, who, node, LabAction::List).await {
                Ok(listed) => {
                    // A lab the node no longer knows (it restarted, and its labs were stopped
                    // then) is shown as gone, not dropped without a word.
                    for id in labs
                        .iter()
                        .filter(|id| !listed.iter().any(|l| &l.id == *id))
                    {
                        out.push(LabView {
                            id: id.clone(),
                            environment: String::new(),
                            datasets: Vec::new(),
                            state: "unknown".into(),
                            reason: None,
                            created_at: 0,
                            node: node.short(),
                            notice: Some(format!(
                                "node {} no longer has this lab (it restarted, which stops its labs); start a new one",
                                node.short()
                            )),
                        });
                    }
                    out.extend(
                        listed
                            .into_iter()
                            .filter(|l| labs.contains(&l.id))
                            .map(|l| view(l, node)),
                    );
                }
                Err(e) => out.extend(labs.into_iter().map(|id| LabView {
                    id,
                    environment: String::new(),
                    datasets: Vec::new(),
                    state: "unknown".into(),
                    reason: None,
                    created_at: 0,
                    node: node.short(),
                    notice: Some(e.to_string()),
                })),
            }
        }
        out
    }
}

/// `who`'s order to `node`, signed by the node actor with their author key (held here).
pub(super) async fn sign(
    tx: &mpsc::Sender<Command>,
    who: &Principal,
    node: NodeId,
    action: LabAction,
) -> Result<Signed<LabOrder, Unverified>, ApiError> {
    let author: AuthorId = who
        .author
        .parse()
        .map_err(|_| ApiError::unavailable("the signed-in user has no author key here"))?;
    let stopping = || ApiError::unavailable("the node is stopping");
    let (reply, rx) = oneshot::channel();
    tx.send(Command::SignLabOrder {
        author,
        node,
        action,
        reply,
    })
    .await
    .map_err(|_| stopping())?;
    rx.await
        .map_err(|_| stopping())?
        .map_err(ApiError::unavailable)
}

fn view(l: LabSummary, node: NodeId) -> LabView {
    LabView {
        id: l.id,
        environment: l.environment,
        datasets: l.datasets,
        state: l.state,
        reason: l.reason,
        created_at: l.created_at,
        node: node.short(),
        notice: l.notice,
    }
}

pub(super) fn refusal(node: NodeId, kind: LabRefusal, reason: &str) -> ApiError {
    let message = format!("node {} refused: {reason}", node.short());
    match kind {
        LabRefusal::NotFound => ApiError::not_found(message),
        LabRefusal::Conflict => ApiError::conflict(message),
        LabRefusal::Forbidden => ApiError::forbidden(message),
        LabRefusal::Unavailable => ApiError::unavailable(message),
    }
}
