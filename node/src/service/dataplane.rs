//! The running node's data plane (`crate::dataplane`): its endpoint and the gate that decides,
//! before any byte is read, what a peer may have — the stored outputs of projects it may hold,
//! and dataset products as their collection's policy allows.

use std::net::SocketAddr;

use iroh::protocol::Router;
use orrery_crdt::BlobRef;

use super::*;
use crate::blobs::{BlobStore, Unreadable};
use crate::dataplane::endpoint;
use crate::dataplane::serve::{Gate, Provider, Refusal, Source};

/// Requests served at once across all peers (more are refused as busy).
const MAX_SERVED: usize = 16;
/// Fetches from other nodes at once.
const MAX_FETCHES: usize = 4;

/// The node's endpoint with its protocol handler running.
pub(super) struct DataPlane {
    pub(super) endpoint: iroh::Endpoint,
    router: Router,
    /// Fetches running at once.
    pub(super) fetch_permits: Arc<tokio::sync::Semaphore>,
}

impl DataPlane {
    /// Binds the node's endpoint and starts answering through `gate`.
    pub(super) async fn start(
        key: &SecretKey,
        listen: SocketAddr,
        gate: NodeGate,
        tunnels: super::labs::tunnel::Tunnels,
    ) -> Result<Self, NodeError> {
        let endpoint = endpoint::bind(key, listen)
            .await
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let router = Router::builder(endpoint.clone())
            .accept(endpoint::ALPN, Provider::new(gate, MAX_SERVED))
            .accept(super::labs::tunnel::ALPN, tunnels)
            .spawn();
        info!(addrs = ?endpoint::own_addrs(&endpoint), "data plane listening");
        Ok(Self {
            endpoint,
            router,
            fetch_permits: Arc::new(tokio::sync::Semaphore::new(MAX_FETCHES)),
        })
    }

    /// Where peers dial this node's data plane.
    pub(super) fn addrs(&self) -> Vec<SocketAddr> {
        endpoint::own_addrs(&self.endpoint)
    }

    /// Stops serving and closes the endpoint.
    pub(super) async fn shutdown(&self) {
        let _ = self.router.shutdown().await;
    }
}

/// What the actor decided about a peer's request for a hash.
pub(super) enum Grant {
    /// A stored output of `project`, which the peer may hold.
    Output {
        /// The project it is served under.
        project: ProjectId,
        /// The blob.
        blob: BlobRef,
    },
    /// An output of a project the peer may not hold (and of none it may).
    NotPermitted {
        /// The project.
        project: ProjectId,
    },
    /// No output the peer may have: a member, so the catalog is asked.
    Member,
    /// Not a member of this node's federation.
    Stranger,
}

/// The data plane's gate: asks the node actor, then opens the file.
pub(super) struct NodeGate {
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) blobs: BlobStore,
    pub(super) products: crate::dataplane::products::Products,
    pub(super) preserved: crate::dataplane::preserved::Preserved,
}

impl Gate for NodeGate {
    async fn open(&self, peer: NodeId, hash: [u8; 32]) -> Result<Source, Refusal> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::DataRequest { peer, hash, reply })
            .await
            .map_err(|_| Refusal::Busy)?;
        match rx.await.map_err(|_| Refusal::Busy)? {
            Grant::Output { project, blob } => self.output(project, blob).await,
            Grant::NotPermitted { project } => Err(Refusal::NotPermitted {
                rule: format!(
                    "a stored output of project {}, which the peer may not hold",
                    project.short()
                ),
            }),
            Grant::Member => match self.products.open(peer, hash).await {
                Err(Refusal::Missing) => self.preserved.open(peer, hash).await,
                served => served,
            },
            Grant::Stranger => Err(Refusal::NotPermitted {
                rule: "the peer is not a member of this node's federation".into(),
            }),
        }
    }
}

impl NodeGate {
    async fn output(&self, project: ProjectId, blob: BlobRef) -> Result<Source, Refusal> {
        let store = self.blobs.for_project(project);
        let opened = tokio::task::spawn_blocking(move || store.open_for_serving(&blob))
            .await
            .map_err(|_| Refusal::Busy)?;
        match opened {
            Ok((file, outboard)) => {
                let tx = self.tx.clone();
                Ok(Source {
                    file,
                    size: blob.len,
                    outboard,
                    on_damage: Some(Box::new(move || {
                        // Quarantined by the actor's store, then fetched again.
                        let _ = tx.try_send(Command::BlobDamaged { project, blob });
                    })),
                })
            }
            Err(Unreadable::Damaged) => {
                let _ = self.tx.send(Command::BlobDamaged { project, blob }).await;
                Err(Refusal::Missing)
            }
            Err(Unreadable::Missing) => Err(Refusal::Missing),
        }
    }
}

impl NodeActor {
    /// Asks a newly connected member where its data plane listens and records it for the
    /// command line (`orrery dataset fetch`). A member that does not answer yet (it may not
    /// have counted this node as a member when asked) is asked again, up to five times over
    /// about half a minute.
    pub(super) fn learn_data_addrs(&self, node: NodeId) {
        let (fed, store) = (self.fed.clone(), self.store.clone());
        tokio::spawn(async move {
            let mut wait = std::time::Duration::from_secs(1);
            for _ in 0..5 {
                if let Some(addrs) = addrs_of(&fed, node).await {
                    let _ = store.run(move |s| s.put_data_addrs(node, &addrs)).await;
                    return;
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            warn!(peer = %node.short(), "this member did not say where its data plane listens: `orrery dataset fetch --from` it fails until it reconnects");
        });
    }

    /// Penalises the peers the command line caught sending wrong bytes (`orrery dataset fetch`
    /// records them in the store).
    pub(super) async fn charge_data_offences(&mut self) {
        let Ok(taken) = self.store.run(|s| s.take_data_offences()).await else {
            return;
        };
        for (peer, detail) in taken {
            warn!(peer = %peer.short(), detail = %detail, "a peer sent a dataset file's bytes that do not match its catalogued hash (caught by `orrery dataset fetch`): penalised");
            let reason = orrery_federation::Offence::BadOutput { detail };
            let _ = self.fed.penalise(peer, reason).await;
            self.emit(NodeEvent::BadBytes { peer });
        }
    }

    /// What `peer` may have of the bytes named `hash` (see [`Grant`]).
    pub(super) fn grant(&self, peer: NodeId, hash: [u8; 32]) -> Grant {
        if !self.membership.as_ref().is_some_and(|m| m.is_member(&peer)) {
            return Grant::Stranger;
        }
        let mut refused = None;
        for (id, p) in &self.projects {
            let Some(blob) = p.blob_refs().into_iter().find(|b| b.hash == hash) else {
                continue;
            };
            if !self.may_hold(peer, p) {
                refused = Some(*id);
                continue;
            }
            if self.blobs.for_project(*id).has(&blob) {
                return Grant::Output { project: *id, blob };
            }
        }
        match refused {
            Some(project) => Grant::NotPermitted { project },
            None => Grant::Member,
        }
    }
}

/// The data-plane addresses `peer` announces over the control plane, if it answers.
pub(super) async fn addrs_of(fed: &FederationHandle, peer: NodeId) -> Option<Vec<SocketAddr>> {
    match fed.request(peer, Request::DataPlane).await {
        Ok(Response::DataPlane(mut addrs)) => {
            addrs.truncate(crate::dataplane::MAX_ADDRS);
            Some(addrs)
        }
        other => {
            debug!(peer = %peer.short(), answer = ?other.map(|_| ()), "no data-plane address from this peer");
            None
        }
    }
}
