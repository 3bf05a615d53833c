//! Tunnels to labs on other nodes, over the data plane's authenticated QUIC connections.
//!
//! The home node opens a stream on the lab-tunnel protocol ([`ALPN`]) and sends its researcher's
//! signed order to open the lab ([`LabAction::Open`]). The node running the lab judges it as any
//! lab order (member, signature, this node, sent by the author's home, fresh, not replayed),
//! checks that the author owns that lab, and answers with the lab server's token; from then on
//! the stream carries the HTTP (and WebSocket) bytes between the home node's proxy and the lab
//! server's Unix socket. No lab port is reachable from outside; a tunnel ends when either side
//! closes, and with the lab's server. Tunnels at once are bounded.

use std::sync::Arc;
use std::time::Duration;

use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler};
use orrery_protocol::lab::{LabAction, LabOrder, LabRefusal};
use orrery_protocol::{NodeId, Signed, Unverified};
use orrery_web::{ApiError, LabConnection, Principal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::super::Command;
use super::Labs;
use super::remote::Remote;
use crate::dataplane::endpoint::{addr_of, node_of};

/// The lab-tunnel protocol of the data plane.
pub(in crate::service) const ALPN: &[u8] = b"orrery/lab-tunnel/1";
/// Tunnels open at once on a node, across all peers.
const MAX_TUNNELS: usize = 256;
/// Largest opening frame (a signed order, or the answer).
const MAX_FRAME: usize = 64 * 1024;
/// How long the opening exchange may take.
const OPENING: Duration = Duration::from_secs(10);

/// The serving side: tunnels into this node's labs.
pub(in crate::service) struct Tunnels {
    tx: mpsc::Sender<Command>,
    labs: Arc<Labs>,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Tunnels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnels")
            .field("free", &self.slots.available_permits())
            .finish()
    }
}

impl Tunnels {
    pub(in crate::service) fn new(tx: mpsc::Sender<Command>, labs: Arc<Labs>) -> Self {
        Self {
            tx,
            labs,
            slots: Arc::new(Semaphore::new(MAX_TUNNELS)),
        }
    }
}

async fn read_frame(recv: &mut RecvStream) -> Result<Vec<u8>, String> {
    let len = recv.read_u32().await.map_err(|e| e.to_string())? as usize;
    if len > MAX_FRAME {
        return Err(format!("an opening frame of {len} bytes"));
    }
    let mut buf = vec![0; len];
    recv.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(buf)
}

async fn write_frame(send: &mut SendStream, bytes: &[u8]) -> Result<(), String> {
    let len = u32::try_from(bytes.len()).map_err(|_| "frame too large".to_owned())?;
    send.write_u32(len).await.map_err(|e| e.to_string())?;
    send.write_all(bytes).await.map_err(|e| e.to_string())
}

impl ProtocolHandler for Tunnels {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let Some(peer) = node_of(conn.remote_id()) else {
            conn.close(VarInt::from_u32(1), b"not a node key");
            return Ok(());
        };
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                accepted = conn.accept_bi() => {
                    let Ok((mut send, recv)) = accepted else { break };
                    let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                        warn!(peer = %peer.short(), "a lab tunnel was refused: {MAX_TUNNELS} are open; the researcher tries again");
                        let _ = send.reset(VarInt::from_u32(2));
                        continue;
                    };
                    let (tx, labs) = (self.tx.clone(), self.labs.clone());
                    tasks.spawn(async move {
                        let _permit = permit;
                        serve(tx, labs, peer, send, recv).await;
                    });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// One tunnel: the opening order judged, then bytes both ways until either side closes.
async fn serve(
    tx: mpsc::Sender<Command>,
    labs: Arc<Labs>,
    peer: NodeId,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let opened = tokio::time::timeout(OPENING, open_here(&tx, &labs, peer, &mut recv)).await;
    let opened = opened.unwrap_or_else(|_| {
        Err((
            LabRefusal::Forbidden,
            "the opening order did not arrive in time".into(),
        ))
    });
    let answer: Result<String, (LabRefusal, String)> = opened
        .as_ref()
        .map(|(_, t)| t.clone())
        .map_err(Clone::clone);
    if write_frame(&mut send, &orrery_protocol::encoding::encode(&answer))
        .await
        .is_err()
    {
        return;
    }
    let Ok((mut socket, _)) = opened else {
        let _ = send.finish();
        return;
    };
    let mut quic = tokio::io::join(recv, send);
    match tokio::io::copy_bidirectional(&mut quic, &mut socket).await {
        Ok((up, down)) => debug!(peer = %peer.short(), up, down, "a lab tunnel closed"),
        Err(e) => debug!(peer = %peer.short(), error = %e, "a lab tunnel ended"),
    }
}

/// Judges the opening order and connects to the lab's server.
async fn open_here(
    tx: &mpsc::Sender<Command>,
    labs: &Labs,
    peer: NodeId,
    recv: &mut RecvStream,
) -> Result<(Box<dyn orrery_web::LabIo>, String), (LabRefusal, String)> {
    let forbidden = |why: String| (LabRefusal::Forbidden, why);
    let stopping = |_| (LabRefusal::Unavailable, "the node is stopping".to_owned());
    let bytes = read_frame(recv).await.map_err(forbidden)?;
    let order: Signed<LabOrder, Unverified> =
        orrery_protocol::encoding::decode("lab order", &bytes, MAX_FRAME)
            .map_err(|e| forbidden(e.to_string()))?;
    let (reply, rx) = oneshot::channel();
    tx.send(Command::JudgeLabOrder { peer, order, reply })
        .await
        .map_err(|_| (LabRefusal::Unavailable, "the node is stopping".to_owned()))?;
    let (author, action) = rx.await.map_err(stopping)?.map_err(forbidden)?;
    let LabAction::Open { lab } = action else {
        return Err(forbidden(
            "a tunnel opens with an order to open a lab".into(),
        ));
    };
    let (endpoint, token) = labs.local_upstream(&author.to_string(), &lab).await?;
    let stream = endpoint.connect().await.map_err(|e| {
        warn!(lab, %endpoint, error = %e, "a lab's server could not be reached");
        (
            LabRefusal::Unavailable,
            format!("the lab's server does not answer ({e}); its logs say why"),
        )
    })?;
    Ok((stream, token))
}

impl Remote {
    /// A tunnel to `who`'s lab `lab` on `node`.
    pub(super) async fn tunnel(
        &self,
        tx: &mpsc::Sender<Command>,
        who: &Principal,
        node: NodeId,
        lab: &str,
    ) -> Result<LabConnection, ApiError> {
        let unavailable = |why: String| {
            warn!(peer = %node.short(), lab, %why, "a tunnel to a lab on another node could not be opened");
            ApiError::unavailable(format!(
                "the lab runs on node {}, which could not be reached ({why}); try again",
                node.short()
            ))
        };
        // A kept connection may be dead without knowing it yet (the other node restarted): the
        // opening is tried once more on a fresh connection, with a fresh order (the first may
        // have been seen, and an order is honoured once).
        let mut fresh = false;
        loop {
            let open = LabAction::Open {
                lab: lab.to_owned(),
            };
            let order = super::remote::sign(tx, who, node, open).await?;
            let conn = self.connection(node, fresh).await.map_err(unavailable)?;
            let opened = async {
                let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
                write_frame(&mut send, &orrery_protocol::encoding::encode(&order)).await?;
                let bytes = read_frame(&mut recv).await?;
                let answer = orrery_protocol::encoding::decode::<
                    Result<String, (LabRefusal, String)>,
                >("tunnel answer", &bytes, MAX_FRAME)
                .map_err(|e| e.to_string())?;
                Ok::<_, String>((send, recv, answer))
            };
            let opened = tokio::time::timeout(OPENING, opened)
                .await
                .unwrap_or_else(|_| Err("no answer in time".into()));
            let (send, recv, answer) = match opened {
                Ok(o) => o,
                Err(why) if !fresh => {
                    debug!(peer = %node.short(), %why, "a kept data-plane connection failed; trying a fresh one");
                    fresh = true;
                    continue;
                }
                Err(why) => return Err(unavailable(why)),
            };
            let token = answer.map_err(|(kind, why)| super::remote::refusal(node, kind, &why))?;
            return Ok(LabConnection {
                stream: Box::new(tokio::io::join(recv, send)),
                token,
            });
        }
    }

    /// A live data-plane connection to `node` on the lab-tunnel protocol, reused if there is one.
    /// A `fresh` one is made anew (the kept one failed).
    async fn connection(&self, node: NodeId, fresh: bool) -> Result<Connection, String> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns
            .get(&node)
            .filter(|c| !fresh && c.close_reason().is_none())
        {
            return Ok(c.clone());
        }
        let endpoint = self
            .endpoint
            .get()
            .ok_or("the data plane is not up yet")?
            .clone();
        let addrs = super::super::dataplane::addrs_of(&self.fed, node)
            .await
            .ok_or("it did not say where its data plane listens")?;
        let addr = addr_of(node, &addrs).ok_or("its key is not a data-plane id")?;
        let conn = tokio::time::timeout(OPENING, endpoint.connect(addr, ALPN))
            .await
            .map_err(|_| "its data plane did not answer in time".to_owned())?
            .map_err(|e| e.to_string())?;
        conns.insert(node, conn.clone());
        Ok(conn)
    }
}
