//! Stored outputs between nodes: serving parts of the blobs a project refers to, to nodes that
//! may hold the project, and fetching the ones missing here after the project changed.

use std::collections::BTreeSet;

use orrery_crdt::BlobRef;
use orrery_protocol::wire::BlobRequest;

use super::*;
use crate::blobs::{BlobStore, CHUNK_BYTES, MAX_BLOB_BYTES, Unreadable};

impl NodeActor {
    /// What to read for a peer's request for part of a blob, or `None` if it may not have it:
    /// the project is held here, the peer may hold it, and its document refers to the blob.
    pub(super) fn serve_blob(
        &self,
        peer: NodeId,
        want: BlobRequest,
    ) -> Option<impl FnOnce() -> Result<Vec<u8>, Unreadable> + Send + 'static> {
        let project = self.projects.get(&want.project)?;
        if !self.may_hold(peer, project) {
            return None;
        }
        let id = BlobRef {
            hash: want.hash,
            len: want.len,
        };
        if !project.blob_refs().contains(&id) {
            return None;
        }
        let store = self.blobs.for_project(want.project);
        Some(move || store.chunk(&id, want.offset))
    }

    /// A blob of `project` was found damaged on disk and quarantined: it is no longer held, so
    /// it is fetched again from the other nodes that hold the project.
    pub(super) fn blob_damaged(&mut self, project: ProjectId, blob: BlobRef) {
        if let Some(held) = self.held_blobs.get_mut(&project) {
            held.remove(&blob);
        }
        warn!(project = %project.short(), blob = %blob, "a stored output was damaged on this node's disk; quarantined, fetching it again");
        self.emit(NodeEvent::BlobDamaged { project, blob });
        self.fetch_blobs(project, None);
    }

    /// Starts fetching the blobs `project` refers to that are not here, from `first` (the peer
    /// whose changes named them) and then the other nodes holding the project.
    pub(super) fn fetch_blobs(&mut self, project: ProjectId, first: Option<NodeId>) {
        let Some(p) = self.projects.get(&project) else {
            return;
        };
        let store = self.blobs.for_project(project);
        let refs = p.blob_refs();
        // Called for every frame that changes the project: blobs seen here before are not
        // looked up on disk again.
        let held = self.held_blobs.entry(project).or_default();
        held.retain(|b| refs.contains(b));
        let mut missing = BTreeSet::new();
        for b in refs {
            if held.contains(&b) || self.fetching.contains(&b) {
                continue;
            }
            if store.has(&b) {
                held.insert(b);
            } else {
                missing.insert(b);
            }
        }
        if missing.is_empty() {
            return;
        }
        let mut peers = self.targets(p);
        if let Some(f) = first
            && let Some(i) = peers.iter().position(|n| *n == f)
        {
            peers.swap(0, i);
        }
        if peers.is_empty() {
            return;
        }
        for blob in missing {
            if blob.len > MAX_BLOB_BYTES {
                warn!(blob = %blob, "a stored output is above the size limit; not fetched");
                continue;
            }
            self.fetching.insert(blob);
            let (fed, store, tx, peers, permits) = (
                self.fed.clone(),
                store.clone(),
                self.tx.clone(),
                peers.clone(),
                self.fetch_permits.clone(),
            );
            tokio::spawn(async move {
                let held = match permits.acquire().await {
                    Ok(_permit) => fetch(&fed, &store, project, blob, &peers).await,
                    Err(_) => false,
                };
                let _ = tx
                    .send(Command::BlobDone {
                        project,
                        blob,
                        held,
                    })
                    .await;
            });
        }
    }
}

/// Fetches one blob chunk by chunk, from each peer in turn until one has all of it.
async fn fetch(
    fed: &FederationHandle,
    store: &BlobStore,
    project: ProjectId,
    blob: BlobRef,
    peers: &[NodeId],
) -> bool {
    for &peer in peers {
        loop {
            let offset = {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.partial_len(&blob))
                    .await
                    .unwrap_or(0)
            };
            let want = BlobRequest {
                project,
                hash: blob.hash,
                len: blob.len,
                offset,
            };
            let bytes = match fed.request(peer, Request::Blob(want)).await {
                Ok(Response::Blob(chunk)) => chunk.bytes,
                other => {
                    debug!(peer = %peer.short(), blob = %blob, answer = ?other.map(|_| ()), "stored output not fetched from this peer");
                    break;
                }
            };
            // A peer sends exactly the chunk asked for: anything else is not worth keeping.
            let remaining = blob.len.saturating_sub(offset);
            if bytes.is_empty() || bytes.len() as u64 > CHUNK_BYTES.min(remaining) {
                break;
            }
            let store = store.clone();
            let appended =
                tokio::task::spawn_blocking(move || store.append(&blob, offset, &bytes)).await;
            match appended {
                Ok(Ok(true)) => {
                    debug!(peer = %peer.short(), blob = %blob, "stored output fetched");
                    return true;
                }
                Ok(Ok(false)) => continue,
                Ok(Err(e)) => {
                    warn!(peer = %peer.short(), error = %e, "stored output refused");
                    if matches!(e, crate::blobs::BlobStoreError::Mismatch(_)) {
                        // Bytes that are not what the hash names: the peer served them.
                        let reason = orrery_federation::Offence::BadOutput {
                            detail: e.to_string(),
                        };
                        let _ = fed.penalise(peer, reason).await;
                    }
                    break;
                }
                Err(_) => return false,
            }
        }
    }
    false
}
