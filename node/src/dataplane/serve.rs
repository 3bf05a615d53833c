//! The serving side of the data plane: the iroh-blobs protocol answered from the node's own
//! files, each request judged by a [`Gate`] before a byte is read.
//!
//! Only plain requests for one whole blob or a range of it are answered (that is what nodes
//! send; hash sequences, pushes and observations are refused). The answer is the blob's size
//! and its verified encoding, checked against the outboard as it is read: the first chunk
//! group that does not match stops the answer, and the [`Source`]'s damage hook is called so
//! the node can quarantine the file and fetch a good copy.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use bao_tree::io::EncodeError;
use bao_tree::io::fsm::encode_ranges_validated;
use bytes::Bytes;
use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh_blobs::protocol::{ERR_INTERNAL, ERR_LIMIT, ERR_PERMISSION, Request};
use iroh_io::{AsyncSliceReader, AsyncStreamWriter};
use orrery_protocol::NodeId;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info_span, warn};

use super::endpoint::node_of;
use super::outboard;

/// How long a peer may take to send its request once it opened a stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a peer may leave an answer unread before it is dropped (it holds a serving slot).
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a [`Gate`] hands out: an open file, its size and outboard.
pub struct Source {
    /// The file, opened the way its owner opens it (confined, for a product).
    pub file: std::fs::File,
    /// Its size (the blob's).
    pub size: u64,
    /// Its outboard ([`outboard`]).
    pub outboard: Vec<u8>,
    /// Called if the file's bytes turn out not to match its hash while being served.
    pub on_damage: Option<Box<dyn FnOnce() + Send>>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source").field("size", &self.size).finish()
    }
}

/// Why a request is not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The peer may not have these bytes; `rule` says which rule refused, for the log.
    NotPermitted {
        /// The rule.
        rule: String,
    },
    /// Not held here (or not whole).
    Missing,
    /// Too many transfers at once; the peer should try later or elsewhere.
    Busy,
}

/// Decides, before any byte is read, whether a peer may have a blob, and opens it.
pub trait Gate: Send + Sync + 'static {
    /// The blob named `hash` for `peer`, or why not.
    fn open(
        &self,
        peer: NodeId,
        hash: [u8; 32],
    ) -> impl Future<Output = Result<Source, Refusal>> + Send;
}

/// The iroh protocol handler of the data plane.
pub struct Provider<G> {
    gate: Arc<G>,
    streams: Arc<Semaphore>,
}

impl<G> fmt::Debug for Provider<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("free_streams", &self.streams.available_permits())
            .finish()
    }
}

impl<G: Gate> Provider<G> {
    /// A provider answering through `gate`, at most `max_streams` requests at once across all
    /// peers (more are refused as busy).
    pub fn new(gate: G, max_streams: usize) -> Self {
        Self {
            gate: Arc::new(gate),
            streams: Arc::new(Semaphore::new(max_streams)),
        }
    }
}

impl<G: Gate> ProtocolHandler for Provider<G> {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let Some(peer) = node_of(conn.remote_id()) else {
            conn.close(ERR_PERMISSION, b"not a node key");
            return Ok(());
        };
        let span = info_span!("data plane", peer = %peer.short());
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                accepted = conn.accept_bi() => {
                    let Ok((mut send, recv)) = accepted else { break };
                    let Ok(permit) = self.streams.clone().try_acquire_owned() else {
                        warn!(peer = %peer.short(), "data-plane request refused: too many transfers at once; the peer asks again later or another holder");
                        let _ = send.reset(ERR_LIMIT);
                        continue;
                    };
                    let gate = self.gate.clone();
                    tasks.spawn(
                        async move {
                            let _permit = permit;
                            answer(&*gate, peer, send, recv).await;
                        }
                        .instrument(span.clone()),
                    );
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// Answers one request on one stream.
async fn answer<G: Gate>(gate: &G, peer: NodeId, mut send: SendStream, mut recv: RecvStream) {
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, Request::read_async(&mut recv)).await
    {
        Ok(Ok((request, _))) => request,
        other => {
            debug!(peer = %peer.short(), outcome = ?other.map(|r| r.map(|_| ())), "no readable data-plane request");
            let _ = send.reset(ERR_INTERNAL);
            return;
        }
    };
    let Request::Get(get) = request else {
        warn!(peer = %peer.short(), "data-plane request refused: only requests for one blob are answered (is the peer an Orrery node of this version?)");
        let _ = send.reset(ERR_PERMISSION);
        return;
    };
    let Some((0, ranges)) = get.ranges.as_single() else {
        warn!(peer = %peer.short(), hash = %get.hash, "data-plane request refused: only requests for one blob are answered (is the peer an Orrery node of this version?)");
        let _ = send.reset(ERR_PERMISSION);
        return;
    };
    let ranges = ranges.clone();
    let hash = *get.hash.as_bytes();
    let source = match gate.open(peer, hash).await {
        Ok(source) => source,
        Err(refusal) => {
            let code = match &refusal {
                Refusal::NotPermitted { rule } => {
                    warn!(peer = %peer.short(), hash = %get.hash, rule = %rule, "data-plane request refused before any byte was read: the peer may not have these bytes; if it should, give it the right (project membership or the collection's policy)");
                    ERR_PERMISSION
                }
                Refusal::Missing => {
                    debug!(peer = %peer.short(), hash = %get.hash, "data-plane request for bytes not held here");
                    ERR_PERMISSION
                }
                Refusal::Busy => ERR_LIMIT,
            };
            let _ = send.reset(code);
            return;
        }
    };
    let Source {
        file,
        size,
        outboard,
        on_damage,
    } = source;
    let tree = match outboard::from_stored(hash, size, outboard) {
        Ok(tree) => tree,
        Err(e) => {
            warn!(hash = %get.hash, error = %e, "a stored outboard is damaged; the file is not served until it is rebuilt");
            if let Some(hook) = on_damage {
                hook();
            }
            let _ = send.reset(ERR_INTERNAL);
            return;
        }
    };
    if Wire(&mut send).write(&size.to_le_bytes()).await.is_err() {
        return;
    }
    let result = encode_ranges_validated(Positioned(file), tree, &ranges, Wire(&mut send)).await;
    match result {
        Ok(()) => {
            let _ = send.finish();
            debug!(peer = %peer.short(), hash = %get.hash, "served");
        }
        Err(EncodeError::ParentWrite(_) | EncodeError::LeafWrite(_)) => {
            debug!(peer = %peer.short(), hash = %get.hash, "the peer stopped reading");
        }
        Err(e) => {
            warn!(peer = %peer.short(), hash = %get.hash, error = %e, "a file did not match its hash while being served: not served further; it is moved aside and fetched again where the node can");
            let _ = send.reset(ERR_INTERNAL);
            if let Some(hook) = on_damage {
                hook();
            }
        }
    }
}

/// A file read at offsets (16 KiB at a time, from the page cache as a rule).
pub(super) struct Positioned(pub(super) std::fs::File);

impl AsyncSliceReader for Positioned {
    async fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len];
        let mut n = 0;
        while n < len {
            let k = self.0.read_at(&mut buf[n..], offset + n as u64)?;
            if k == 0 {
                break;
            }
            n += k;
        }
        buf.truncate(n);
        Ok(buf.into())
    }

    async fn size(&mut self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

/// The stream an answer is written to; a failed write, or one the peer leaves unread for
/// [`STALL_TIMEOUT`], reads as the peer going away.
pub(super) struct Wire<'a>(pub(super) &'a mut SendStream);

fn gone(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, e)
}

impl AsyncStreamWriter for Wire<'_> {
    async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        tokio::time::timeout(STALL_TIMEOUT, self.0.write_all(data))
            .await
            .map_err(gone)?
            .map_err(gone)
    }

    async fn write_bytes(&mut self, data: Bytes) -> io::Result<()> {
        tokio::time::timeout(STALL_TIMEOUT, self.0.write_chunk(data))
            .await
            .map_err(gone)?
            .map_err(gone)
    }

    async fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The error code a refused request is reset with, for the fetching side to tell refusal from
/// failure.
pub fn is_refusal(code: VarInt) -> bool {
    code == ERR_PERMISSION || code == ERR_LIMIT
}
