//! The receiving side of the data plane: one blob from one peer into a partial file, every
//! 16 KiB chunk group checked against the blob's hash before it is written, resumed from what
//! an earlier attempt verified.
//!
//! The partial file only ever holds a verified prefix: chunk groups arrive in order, each is
//! written once it was checked, and on a restart the file is cut back to a whole number of
//! chunk groups (a write torn by a crash is dropped) and the rest is asked for. A transfer that
//! started from the beginning keeps the verified hash pairs that came with the groups: they
//! are the outboard needed to serve the file on. A transfer that resumed reads the whole file
//! once more at the end, which checks the earlier attempt's bytes against the hash (disk damage
//! between attempts is caught) and yields the outboard.

use std::fs::{File, OpenOptions};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bao_tree::io::BaoContentItem;
use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::io::sync::OutboardMut;
use bao_tree::{ChunkNum, ChunkRanges};
use iroh::Endpoint;
use iroh_blobs::get::fsm::{self, BlobContentNext, ConnectedNext, DecodeError};
use iroh_blobs::protocol::GetRequest;
use orrery_protocol::NodeId;

use super::endpoint::{ALPN, addr_of};
use super::outboard;

/// How long dialling a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a transfer may wait for its next piece before it counts as stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes per chunk group: the unit that is verified, written and resumed from.
pub const GROUP_BYTES: u64 = 16 * 1024;

/// What a finished fetch brings.
#[derive(Debug)]
pub struct Fetched {
    /// The blob's outboard, to serve it on.
    pub outboard: Vec<u8>,
    /// Where this attempt started (bytes already verified by an earlier one).
    pub resumed_from: u64,
    /// Payload bytes this attempt received over the wire.
    pub received: u64,
}

/// Why a fetch did not finish.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The peer's data plane could not be reached.
    #[error("could not reach the data plane of {peer}: {detail}")]
    Unreachable {
        /// The peer.
        peer: NodeId,
        /// What failed.
        detail: String,
    },
    /// The peer sent nothing: it refused, does not hold the blob, or went away first.
    #[error("{peer} did not send the bytes (refused, not held there, or gone): {detail}")]
    NotSent {
        /// The peer.
        peer: NodeId,
        /// What was seen.
        detail: String,
    },
    /// The peer announced another size than the blob has.
    #[error("{peer} announced {announced} bytes for a blob of {expected}")]
    WrongSize {
        /// The peer.
        peer: NodeId,
        /// The size the blob has.
        expected: u64,
        /// What the peer said.
        announced: u64,
    },
    /// The peer sent bytes that do not belong to the hash: caught at the chunk group starting
    /// at `at`; nothing from it on was kept.
    #[error("{peer} sent bytes that do not match the blob's hash (chunk group at byte {at})")]
    Corrupt {
        /// The peer.
        peer: NodeId,
        /// Where the bad group starts.
        at: u64,
    },
    /// The transfer stopped (network, stall); what arrived is kept and the next attempt resumes.
    #[error(
        "the transfer from {peer} stopped at byte {at}: {detail}; the next attempt resumes there"
    )]
    Interrupted {
        /// The peer.
        peer: NodeId,
        /// Bytes verified so far.
        at: u64,
        /// What happened.
        detail: String,
    },
    /// The partial file could not be written or read.
    #[error("partial file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// Every group arrived verified, yet the whole file read back does not match: it was damaged
    /// on this node's disk. It was deleted; the next attempt starts from the beginning.
    #[error("the file assembled at {path} does not match its hash (damaged on this disk); deleted")]
    Assembled {
        /// The file.
        path: PathBuf,
    },
    /// The blob is beyond what the data plane carries.
    #[error(transparent)]
    TooLarge(#[from] outboard::OutboardError),
}

impl FetchError {
    /// Whether the peer broke the protocol by sending wrong bytes (an offence).
    pub fn is_offence(&self) -> bool {
        matches!(self, Self::Corrupt { .. } | Self::WrongSize { .. })
    }
}

/// Fetches the blob `hash` of `size` bytes from `peer` (dialled at `addrs`) into `partial`,
/// resuming from what it already holds. `progress` is told the verified length as it grows.
/// On success `partial` holds the whole blob, checked; the caller moves it into place.
pub async fn fetch(
    endpoint: &Endpoint,
    peer: NodeId,
    addrs: &[SocketAddr],
    hash: [u8; 32],
    size: u64,
    partial: &Path,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Fetched, FetchError> {
    if size > outboard::MAX_FILE_BYTES {
        return Err(outboard::OutboardError::TooLarge { size }.into());
    }
    let io_err = |source| FetchError::Io {
        path: partial.to_path_buf(),
        source,
    };
    if let Some(dir) = partial.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(partial)
        .map_err(io_err)?;
    let held = file.metadata().map_err(io_err)?.len();
    // Only whole chunk groups count: a write torn by a crash is cut off.
    let resumed_from = (held - held % GROUP_BYTES).min(size);
    file.set_len(resumed_from).map_err(io_err)?;
    progress(resumed_from);
    let mut received = 0;
    let mut streamed = None;
    if resumed_from < size {
        (received, streamed) = receive(
            endpoint,
            peer,
            addrs,
            hash,
            size,
            &file,
            partial,
            resumed_from,
            progress,
        )
        .await?;
    }
    file.sync_all().map_err(io_err)?;
    drop(file);
    if let Some(outboard) = streamed {
        return Ok(Fetched {
            outboard,
            resumed_from,
            received,
        });
    }
    let path = partial.to_path_buf();
    let checked = tokio::task::spawn_blocking(move || {
        let f = File::open(&path)?;
        outboard::compute(io::BufReader::with_capacity(1 << 20, f), size)
            .map_err(|e| io::Error::other(e.to_string()))
    })
    .await
    .map_err(|e| io_err(io::Error::other(e)))?;
    match checked {
        Ok((root, outboard)) if root == hash => Ok(Fetched {
            outboard,
            resumed_from,
            received,
        }),
        _ => {
            let _ = std::fs::remove_file(partial);
            Err(FetchError::Assembled {
                path: partial.to_path_buf(),
            })
        }
    }
}

/// Asks `peer` for the blob from `from` on and writes each verified group; returns the payload
/// bytes received and, for a transfer from the beginning, the outboard made of the verified
/// hash pairs that came with the groups.
#[allow(clippy::too_many_arguments)]
async fn receive(
    endpoint: &Endpoint,
    peer: NodeId,
    addrs: &[SocketAddr],
    hash: [u8; 32],
    size: u64,
    file: &File,
    path: &Path,
    from: u64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(u64, Option<Vec<u8>>), FetchError> {
    let unreachable = |detail: String| FetchError::Unreachable { peer, detail };
    let not_sent = |detail: String| FetchError::NotSent { peer, detail };
    let addr = addr_of(peer, addrs).ok_or_else(|| unreachable("not a valid node key".into()))?;
    if addrs.is_empty() {
        return Err(unreachable("it announced no data-plane address".into()));
    }
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect(addr, ALPN))
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let ranges = ChunkRanges::from(ChunkNum(from / 1024)..);
    let request = GetRequest::blob_ranges(hash.into(), ranges);
    let stalled = |what: &str| not_sent(format!("no answer within {STALL_TIMEOUT:?} ({what})"));
    let connected = fsm::start(conn.clone(), request, Default::default())
        .next()
        .await
        .map_err(|e| not_sent(e.to_string()))?;
    let start = tokio::time::timeout(STALL_TIMEOUT, connected.next())
        .await
        .map_err(|_| stalled("request"))?
        .map_err(|e| not_sent(e.to_string()))?;
    let ConnectedNext::StartRoot(root) = start else {
        return Err(not_sent("an empty answer".into()));
    };
    let (mut content, announced) = tokio::time::timeout(STALL_TIMEOUT, root.next().next())
        .await
        .map_err(|_| stalled("size"))?
        .map_err(|e| not_sent(e.to_string()))?;
    if announced != size {
        conn.close(0u32.into(), b"wrong size");
        return Err(FetchError::WrongSize {
            peer,
            expected: size,
            announced,
        });
    }
    let mut verified = from;
    let mut received = 0;
    let tree = outboard::tree(size);
    let mut pairs = match usize::try_from(tree.outboard_size()) {
        Ok(len) if from == 0 => Some(PreOrderMemOutboard {
            root: blake3::Hash::from(hash),
            tree,
            data: vec![0u8; len],
        }),
        _ => None,
    };
    loop {
        let next = match tokio::time::timeout(STALL_TIMEOUT, content.next()).await {
            Ok(next) => next,
            Err(_) => {
                return Err(FetchError::Interrupted {
                    peer,
                    at: verified,
                    detail: format!("stalled for {STALL_TIMEOUT:?}"),
                });
            }
        };
        match next {
            BlobContentNext::More((rest, item)) => {
                content = rest;
                match item {
                    Ok(BaoContentItem::Parent(parent)) => {
                        if let Some(pairs) = pairs.as_mut() {
                            // Verified against the root by the decoder before it was handed on.
                            let _ = pairs.save(parent.node, &parent.pair);
                        }
                    }
                    Ok(BaoContentItem::Leaf(leaf)) => {
                        if leaf.offset != verified {
                            // Groups arrive in order for one range; anything else is not a
                            // prefix and is not kept.
                            return Err(FetchError::Corrupt { peer, at: verified });
                        }
                        file.write_all_at(&leaf.data, leaf.offset)
                            .map_err(|source| FetchError::Io {
                                path: path.to_path_buf(),
                                source,
                            })?;
                        verified += leaf.data.len() as u64;
                        received += leaf.data.len() as u64;
                        progress(verified);
                    }
                    Err(
                        DecodeError::ParentHashMismatch { .. }
                        | DecodeError::LeafHashMismatch { .. },
                    ) => {
                        conn.close(0u32.into(), b"wrong bytes");
                        return Err(FetchError::Corrupt { peer, at: verified });
                    }
                    Err(e) => {
                        return Err(FetchError::Interrupted {
                            peer,
                            at: verified,
                            detail: e.to_string(),
                        });
                    }
                }
            }
            BlobContentNext::Done(_) => break,
        }
    }
    conn.close(0u32.into(), b"done");
    if verified != size {
        return Err(FetchError::Interrupted {
            peer,
            at: verified,
            detail: "the answer ended early".into(),
        });
    }
    Ok((received, pairs.map(|p| p.data)))
}
