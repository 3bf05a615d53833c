//! Preservation: copies of other members' collections, kept as their publishers' policies ask.
//!
//! A publisher signs a policy for its collection (`orrery preservation set`) and carries it in
//! its advert; nodes offering room for copies say how much in theirs (`[preservation]
//! spare_gib`), and list the copies they keep. Every node computes the holders of every policy
//! from the same adverts with [`orrery_protocol::preservation::assign`], so all agree without
//! asking anyone; the publisher, which holds the original, is always one of them. A node that finds itself a holder lists the collection at its publisher (a
//! federated search), fetches each file over the data plane (verified chunk by chunk against
//! the catalog's BLAKE3, resumed from what was verified, from the publisher or another holder),
//! keeps it under `preserved/`, and lists the copy in its next advert once it is complete.
//! `orrery preservation status` shows, per policy, its holders and what is at risk.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orrery_catalog::{Page, Query};
use orrery_federation::FederationHandle;
use orrery_protocol::NodeId;
use orrery_protocol::advert::NodeAdvert;
use orrery_protocol::preservation::{Assignment, Candidate, PreservationPolicy, Subject, assign};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Command, NodeEvent, NodeHandle};
use crate::config::PreservationSection;
use crate::dataplane::fetch::{FetchError, fetch};
use crate::home::Home;
use crate::store::{PreservedFile, Store};

/// Files asked for per page while listing a collection at its publisher.
const PAGE: u32 = 1000;
/// How long a listing waits for the publisher's answer.
const LISTING: Duration = Duration::from_secs(15);

/// A policy, the size of its subject, and who holds it.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The policy.
    pub(crate) policy: PreservationPolicy,
    /// The collection's bytes, as its publisher advertises them.
    pub(crate) bytes: u64,
    /// The holders every node computes alike, and why there are too few if there are.
    pub(crate) assignment: Assignment,
}

/// This node as a candidate holder.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    /// Its id.
    pub(crate) node: NodeId,
    /// Its institution.
    pub(crate) institution: String,
    /// The room it has left for copies.
    pub(crate) spare_bytes: u64,
    /// The subjects it holds complete copies of.
    pub(crate) holds: Vec<Subject>,
    /// The policies it set for its own collections, with their collections' bytes.
    pub(crate) own: Vec<(PreservationPolicy, u64)>,
}

/// The holders of every policy known from `adverts` (other members') and `me`.
pub(crate) fn plans(me: &Me, adverts: &[NodeAdvert]) -> Vec<Plan> {
    let mut policies: Vec<(PreservationPolicy, u64)> = me.own.clone();
    for a in adverts.iter().filter(|a| a.node != me.node) {
        for p in a.preservation_policies() {
            let Subject::Collection { id, .. } = &p.subject else {
                continue;
            };
            let bytes = a
                .collections
                .iter()
                .find(|c| &c.id == id)
                .map_or(0, |c| c.bytes);
            policies.push((p, bytes));
        }
    }
    policies
        .into_iter()
        .map(|(policy, bytes)| {
            let subject = &policy.subject;
            let publisher = match subject {
                Subject::Collection { publisher, .. } => Some(*publisher),
                Subject::Project(_) => None,
            };
            let mut candidates: Vec<Candidate> = adverts
                .iter()
                .filter(|a| a.node != me.node)
                .filter_map(|a| {
                    let holds = Some(a.node) == publisher
                        || a.held.iter().any(|h| &h.subject == subject && h.complete);
                    (holds || a.spare_bytes > 0).then(|| Candidate {
                        node: a.node,
                        institution: a.institution.clone(),
                        spare_bytes: a.spare_bytes,
                        holds,
                    })
                })
                .collect();
            let i_hold = Some(me.node) == publisher || me.holds.contains(subject);
            if i_hold || me.spare_bytes > 0 {
                candidates.push(Candidate {
                    node: me.node,
                    institution: me.institution.clone(),
                    spare_bytes: me.spare_bytes,
                    holds: i_hold,
                });
            }
            // The publisher holds the original: it is always one of the copies, as if pinned.
            let mut counted = policy.clone();
            if let Some(p) = publisher
                && !counted.pinned.contains(&p)
            {
                counted.pinned.insert(0, p);
            }
            let assignment = assign(&counted, bytes, &candidates);
            Plan {
                policy,
                bytes,
                assignment,
            }
        })
        .collect()
}

/// What the preservation worker needs.
pub(super) struct Preserver {
    pub(super) home: Home,
    pub(super) me: NodeId,
    pub(super) institution: String,
    pub(super) config: PreservationSection,
    pub(super) fed: FederationHandle,
    pub(super) endpoint: iroh::Endpoint,
    pub(super) permits: Arc<Semaphore>,
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) events: broadcast::Sender<NodeEvent>,
}

/// Looks at what this node should hold every `check_secs`, until the node stops.
pub(super) async fn work(p: Arc<Preserver>, node: NodeHandle, cancel: CancellationToken) {
    loop {
        if p.config.spare_bytes() > 0 {
            p.look(&node).await;
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(p.config.check_secs)) => {}
        }
    }
}

impl Preserver {
    fn dir(&self) -> PathBuf {
        self.config
            .dir
            .clone()
            .unwrap_or_else(|| self.home.root().join("preserved"))
    }

    /// This node as a candidate, and the members' adverts, from the store.
    async fn state(&self) -> Result<(Me, Vec<NodeAdvert>), String> {
        let (db, me, institution, spare) = (
            self.home.database(),
            self.me,
            self.institution.clone(),
            self.config.spare_bytes(),
        );
        tokio::task::spawn_blocking(move || {
            let store = Store::open(&db).map_err(|e| e.to_string())?;
            let adverts = store.adverts().map_err(|e| e.to_string())?;
            let held = store.held_copies().map_err(|e| e.to_string())?;
            let kept = store.preserved_bytes().map_err(|e| e.to_string())?;
            let me = Me {
                node: me,
                institution,
                spare_bytes: spare.saturating_sub(kept),
                holds: held
                    .into_iter()
                    .filter(|h| h.complete)
                    .map(|h| h.subject)
                    .collect(),
                own: Vec::new(),
            };
            Ok((me, adverts))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Fetches the copies this node is a holder of and lacks.
    async fn look(&self, node: &NodeHandle) {
        let (me, adverts) = match self.state().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "what this node should preserve could not be read; it looks again later");
                return;
            }
        };
        let mut changed = false;
        for plan in plans(&me, &adverts) {
            let Subject::Collection { publisher, id } = &plan.policy.subject else {
                continue;
            };
            if *publisher == self.me
                || !plan.assignment.holders.contains(&self.me)
                || me.holds.contains(&plan.policy.subject)
            {
                continue;
            }
            // The publisher first, then the holders that say their copies are complete.
            let complete = |n: &NodeId| {
                adverts.iter().any(|a| {
                    a.node == *n
                        && a.held
                            .iter()
                            .any(|h| h.subject == plan.policy.subject && h.complete)
                })
            };
            let mut sources = vec![*publisher];
            sources.extend(
                plan.assignment
                    .holders
                    .iter()
                    .copied()
                    .filter(|h| *h != self.me && h != publisher && complete(h)),
            );
            info!(collection = %id, publisher = %publisher.short(), "this node is a holder of a collection's copy; fetching it");
            match self.fetch_copy(node, *publisher, id, &sources).await {
                Ok(()) => {
                    changed = true;
                    info!(collection = %id, publisher = %publisher.short(), "a collection's copy is complete here");
                }
                Err(why) => {
                    changed = true;
                    warn!(collection = %id, publisher = %publisher.short(), %why, "a collection's copy could not be completed; this node tries again at its next look");
                }
            }
        }
        if changed {
            let _ = self.tx.send(Command::Readvertise).await;
        }
    }

    /// Lists `publisher`'s collection `id` and fetches every file not yet held.
    async fn fetch_copy(
        &self,
        node: &NodeHandle,
        publisher: NodeId,
        id: &str,
        sources: &[NodeId],
    ) -> Result<(), String> {
        let publisher_id = publisher.to_string();
        let mut files = Vec::new();
        let mut offset = 0;
        loop {
            let q = Query {
                collections: vec![id.to_owned()],
                page: Page {
                    offset,
                    limit: PAGE,
                },
                ..Query::default()
            };
            let found = node
                .search(q, false, LISTING)
                .await
                .map_err(|e| format!("the collection could not be listed: {e}"))?;
            let page: Vec<_> = found
                .results
                .hits
                .into_iter()
                .filter(|h| h.node.as_deref() == Some(&publisher_id))
                .collect();
            let last = page.len() < PAGE as usize;
            files.extend(page);
            if last {
                break;
            }
            offset += PAGE;
        }
        if files.is_empty() {
            return Err("its publisher listed no file (is it reachable?)".into());
        }
        let bytes: u64 = files.iter().map(|h| h.size).sum();
        let (db, count) = (self.home.database(), files.len() as u64);
        let collection = id.to_owned();
        let listed = tokio::task::spawn_blocking(move || {
            Store::open(&db)?.set_preserved_copy(publisher, &collection, count, bytes)
        })
        .await;
        if !matches!(listed, Ok(Ok(()))) {
            return Err("the copy could not be recorded in the store".into());
        }
        let held = {
            let (db, collection) = (self.home.database(), id.to_owned());
            tokio::task::spawn_blocking(move || {
                Store::open(&db).and_then(|s| s.preserved_files(publisher, &collection))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
        };
        let root = self.dir().join(publisher.to_string()).join(id);
        for hit in files {
            let path = hit
                .id
                .strip_prefix(&format!("{id}/"))
                .unwrap_or(&hit.id)
                .to_owned();
            let Some(rel) = plain(&path) else {
                warn!(collection = %id, path, "a listed file's path is not a plain relative path; it is not kept");
                continue;
            };
            let Some(hash) = hex32(&hit.blake3) else {
                warn!(collection = %id, path, "a listed file has no valid BLAKE3; it is not kept");
                continue;
            };
            let dest = root.join(&rel);
            if held
                .iter()
                .any(|f| f.path == path && f.blake3 == hash && f.intact)
                && dest.exists()
            {
                continue;
            }
            self.fetch_file(publisher, id, &path, hash, hit.size, &dest, sources)
                .await?;
        }
        Ok(())
    }

    /// Fetches one file from the first of `sources` that has it whole; a source that sends
    /// bytes that do not match is penalised and the next resumes from what was verified.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_file(
        &self,
        publisher: NodeId,
        collection: &str,
        path: &str,
        hash: [u8; 32],
        size: u64,
        dest: &Path,
        sources: &[NodeId],
    ) -> Result<(), String> {
        let partial = self
            .dir()
            .join(".partial")
            .join(blake3::Hash::from_bytes(hash).to_hex().as_str());
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let mut why = String::from("no holder could be reached");
        for &peer in sources {
            let Some(addrs) = super::dataplane::addrs_of(&self.fed, peer).await else {
                why = format!("{} did not say where its data plane listens", peer.short());
                continue;
            };
            let mut quiet = |_| {};
            match fetch(
                &self.endpoint,
                peer,
                &addrs,
                hash,
                size,
                &partial,
                &mut quiet,
            )
            .await
            {
                Ok(done) => {
                    debug!(peer = %peer.short(), path, resumed_from = done.resumed_from, "a preserved file was fetched");
                    if let Some(dir) = dest.parent() {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| format!("{} could not be made: {e}", dir.display()))?;
                    }
                    std::fs::rename(&partial, dest)
                        .map_err(|e| format!("{} could not be kept: {e}", dest.display()))?;
                    let file = PreservedFile {
                        publisher,
                        collection: collection.to_owned(),
                        path: path.to_owned(),
                        blake3: hash,
                        size,
                        checked_at: now(),
                        intact: true,
                    };
                    let db = self.home.database();
                    let kept = tokio::task::spawn_blocking(move || {
                        Store::open(&db)?.put_preserved_file(&file)
                    })
                    .await;
                    return match kept {
                        Ok(Ok(())) => Ok(()),
                        _ => Err(format!("{path} was fetched but could not be recorded")),
                    };
                }
                Err(e) if e.is_offence() => {
                    warn!(peer = %peer.short(), path, error = %e, "a holder sent bytes that do not match a preserved file's hash: penalised, asking another holder");
                    let reason = orrery_federation::Offence::BadOutput {
                        detail: e.to_string(),
                    };
                    let _ = self.fed.penalise(peer, reason).await;
                    let _ = self.events.send(NodeEvent::BadBytes { peer });
                    why = e.to_string();
                }
                Err(e @ FetchError::Io { .. }) => return Err(e.to_string()),
                Err(e) => {
                    debug!(peer = %peer.short(), path, error = %e, "a preserved file was not fetched from this holder");
                    why = format!("{}: {e}", peer.short());
                }
            }
        }
        Err(format!("{path} could not be fetched: {why}"))
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `path` if it is a plain relative path (no `..`, no root).
fn plain(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    (!path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))))
        .then(|| p.to_path_buf())
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    blake3::Hash::from_hex(s).ok().map(|h| *h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_kept() {
        assert!(plain("a/b.fits").is_some());
        assert!(plain("../etc/passwd").is_none());
        assert!(plain("/etc/passwd").is_none());
        assert!(plain("a/../../b").is_none());
        assert!(plain("").is_none());
    }
}
