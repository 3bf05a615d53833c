//! Stored outputs between nodes: fetching the ones a project refers to that are missing here,
//! over the data plane (`crate::dataplane`), from the nodes that hold the project; and
//! fetching again the ones found damaged. Serving them is the data plane's gate
//! (`super::dataplane`).

use std::collections::BTreeSet;

use orrery_crdt::BlobRef;

use super::*;
use crate::blobs::{BlobStore, MAX_BLOB_BYTES};
use crate::dataplane::fetch::{FetchError, fetch};

impl NodeActor {
    /// A blob of `project` was found damaged on disk and quarantined: it is no longer held, so
    /// it is fetched again from the other nodes that hold the project.
    pub(super) fn blob_damaged(&mut self, project: ProjectId, blob: BlobRef) {
        // Found while serving: the file may still be in place.
        self.blobs.for_project(project).quarantine(&blob);
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
            let (fed, endpoint, store, tx, peers, permits, events) = (
                self.fed.clone(),
                self.data.endpoint.clone(),
                store.clone(),
                self.tx.clone(),
                peers.clone(),
                self.data.fetch_permits.clone(),
                self.events.clone(),
            );
            tokio::spawn(async move {
                let held = match permits.acquire().await {
                    Ok(_permit) => {
                        let from = Holders {
                            fed: &fed,
                            endpoint: &endpoint,
                            events: &events,
                        };
                        from.fetch(&store, project, blob, &peers).await
                    }
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

/// What a fetch of stored outputs reaches other nodes through.
struct Holders<'a> {
    fed: &'a FederationHandle,
    endpoint: &'a iroh::Endpoint,
    events: &'a broadcast::Sender<NodeEvent>,
}

impl Holders<'_> {
    /// Fetches one blob from each peer in turn until one has all of it; what one peer sent
    /// verified is kept, and the next resumes from there. A peer that sends bytes that do not
    /// match the hash is penalised.
    async fn fetch(
        &self,
        store: &BlobStore,
        project: ProjectId,
        blob: BlobRef,
        peers: &[NodeId],
    ) -> bool {
        let partial = store.partial_path(&blob);
        for &peer in peers {
            let Some(addrs) = super::dataplane::addrs_of(self.fed, peer).await else {
                continue;
            };
            let mut quiet = |_| {};
            let fetched = fetch(
                self.endpoint,
                peer,
                &addrs,
                blob.hash,
                blob.len,
                &partial,
                &mut quiet,
            )
            .await;
            match fetched {
                Ok(done) => {
                    let store = store.clone();
                    let adopted =
                        tokio::task::spawn_blocking(move || store.adopt(&blob, &done.outboard))
                            .await;
                    return match adopted {
                        Ok(Ok(())) => {
                            debug!(peer = %peer.short(), blob = %blob, resumed_from = done.resumed_from, "stored output fetched");
                            true
                        }
                        Ok(Err(e)) => {
                            warn!(blob = %blob, error = %e, "a fetched stored output could not be put in place; check the disk under the data directory");
                            false
                        }
                        Err(_) => false,
                    };
                }
                Err(e) if e.is_offence() => {
                    warn!(peer = %peer.short(), project = %project.short(), blob = %blob, error = %e, "a peer sent bytes that do not match a stored output's hash: penalised, asking another holder");
                    let reason = orrery_federation::Offence::BadOutput {
                        detail: e.to_string(),
                    };
                    let _ = self.fed.penalise(peer, reason).await;
                    let _ = self.events.send(NodeEvent::BadBytes { peer });
                }
                Err(e @ FetchError::Io { .. }) => {
                    warn!(blob = %blob, error = %e, "a stored output could not be written; check the disk under the data directory");
                    return false;
                }
                Err(e) => {
                    debug!(peer = %peer.short(), blob = %blob, error = %e, "stored output not fetched from this peer");
                }
            }
        }
        false
    }
}
