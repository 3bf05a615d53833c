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

mod audit;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orrery_catalog::{Page, Query};
use orrery_federation::FederationHandle;
use orrery_protocol::NodeId;
use orrery_protocol::advert::NodeAdvert;
use orrery_protocol::preservation::{
    Assignment, Candidate, PreservationPolicy, Subject, assign, plain_collection_id,
};
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
    /// The collection's bytes, as its publisher advertises them (0: its advert does not
    /// describe the collection).
    pub(crate) bytes: u64,
    /// Its files, likewise.
    pub(crate) files: u64,
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
    /// The subjects it has begun copying, with the bytes kept of each so far.
    pub(crate) started: Vec<(Subject, u64)>,
    /// The policies it set for its own collections, with their collections' bytes and files.
    pub(crate) own: Vec<(PreservationPolicy, u64, u64)>,
}

impl Me {
    /// This node as a candidate, offering `spare` bytes in all, from what `store` says it keeps;
    /// and the members' adverts worth planning with (see [`live`]).
    pub(crate) fn read(
        store: &Store,
        node: NodeId,
        institution: String,
        spare: u64,
        away_secs: u64,
        own: Vec<(PreservationPolicy, u64, u64)>,
    ) -> Result<(Me, Vec<NodeAdvert>), crate::store::StoreError> {
        let adverts = live(
            store.adverts()?,
            store.membership()?.as_ref(),
            now(),
            away_secs,
        );
        let held = store.held_copies()?;
        let kept = store.preserved_bytes()?;
        let me = Me {
            node,
            institution,
            spare_bytes: spare.saturating_sub(kept),
            holds: held
                .iter()
                .filter(|h| h.complete)
                .map(|h| h.subject.clone())
                .collect(),
            started: held
                .into_iter()
                .filter(|h| !h.complete)
                .map(|h| (h.subject, h.bytes))
                .collect(),
            own,
        };
        Ok((me, adverts))
    }
}

/// Whether advert `a` lists a complete copy of `subject`.
fn says_complete(a: &NodeAdvert, subject: &Subject) -> bool {
    a.held.iter().any(|h| &h.subject == subject && h.complete)
}

/// Whether `node`'s advert among `adverts` lists a complete copy of `subject`.
fn complete_at(adverts: &[NodeAdvert], node: &NodeId, subject: &Subject) -> bool {
    adverts
        .iter()
        .any(|a| a.node == *node && says_complete(a, subject))
}

/// The adverts worth planning with: of current members, and expired at most `away_secs` ago
/// (the store keeps the last advert of every node it heard from). A holder away longer is
/// planned without, so its copies are re-homed; a node back within it keeps them.
pub(crate) fn live(
    adverts: Vec<NodeAdvert>,
    membership: Option<&orrery_protocol::federation::Membership>,
    now: i64,
    away_secs: u64,
) -> Vec<NodeAdvert> {
    let grace = i64::try_from(away_secs).unwrap_or(i64::MAX);
    adverts
        .into_iter()
        .filter(|a| {
            a.expires_at.saturating_add(grace) > now
                && membership.is_some_and(|m| m.is_member(&a.node))
        })
        .collect()
}

/// The holders of every policy known from `adverts` (other members') and `me`.
pub(crate) fn plans(me: &Me, adverts: &[NodeAdvert]) -> Vec<Plan> {
    let mut policies: Vec<(PreservationPolicy, u64, u64)> = me.own.clone();
    for a in adverts.iter().filter(|a| a.node != me.node) {
        for p in a.preservation_policies() {
            let Subject::Collection { id, .. } = &p.subject else {
                continue;
            };
            let (bytes, files) = a
                .collections
                .iter()
                .find(|c| &c.id == id)
                .map_or((0, 0), |c| (c.bytes, c.products));
            policies.push((p, bytes, files));
        }
    }
    // One policy per subject: the newest.
    policies.sort_by(|a, b| (&a.0.subject, b.0.seq).cmp(&(&b.0.subject, a.0.seq)));
    policies.dedup_by(|a, b| a.0.subject == b.0.subject);
    policies
        .into_iter()
        .filter(|(p, ..)| p.validate().is_ok())
        .map(|(policy, bytes, files)| {
            let subject = &policy.subject;
            let publisher = match subject {
                Subject::Collection { publisher, .. } => Some(*publisher),
                Subject::Project(_) => None,
            };
            let mut candidates: Vec<Candidate> = adverts
                .iter()
                .filter(|a| a.node != me.node)
                .filter_map(|a| {
                    let holds = Some(a.node) == publisher || says_complete(a, subject);
                    (holds || a.spare_bytes > 0).then(|| Candidate {
                        node: a.node,
                        institution: a.institution.clone(),
                        spare_bytes: a.spare_bytes,
                        holds,
                    })
                })
                .collect();
            // A copy begun here counts as held here, so that fetching it (which lowers the
            // room left) does not move it elsewhere halfway.
            let i_hold = Some(me.node) == publisher
                || me.holds.contains(subject)
                || me.started.iter().any(|(s, _)| s == subject);
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
                files,
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
        if p.audit().await {
            let _ = p.tx.send(Command::Readvertise).await;
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
        let (db, me, institution, spare, away) = (
            self.home.database(),
            self.me,
            self.institution.clone(),
            self.config.spare_bytes(),
            self.config.away_secs,
        );
        tokio::task::spawn_blocking(move || {
            let store = Store::open(&db).map_err(|e| e.to_string())?;
            Me::read(&store, me, institution, spare, away, Vec::new()).map_err(|e| e.to_string())
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
        let mut room = me.spare_bytes;
        for plan in plans(&me, &adverts) {
            let Subject::Collection { publisher, id } = &plan.policy.subject else {
                continue;
            };
            if *publisher == self.me {
                continue;
            }
            let kept_here = me.holds.contains(&plan.policy.subject)
                || me.started.iter().any(|(s, _)| *s == plan.policy.subject);
            if !plan.assignment.holders.contains(&self.me) {
                if kept_here && self.no_longer_needed(&plan, *publisher, &adverts) {
                    self.release(*publisher, id).await;
                    changed = true;
                }
                continue;
            }
            if me.holds.contains(&plan.policy.subject) {
                continue;
            }
            if plan.bytes == 0 || plan.files == 0 {
                warn!(collection = %id, publisher = %publisher.short(), "this node is a holder of a collection its publisher's advert does not describe; it waits for an advert that does");
                continue;
            }
            let begun = me
                .started
                .iter()
                .find(|(s, _)| *s == plan.policy.subject)
                .map_or(0, |(_, b)| *b);
            let needed = plan.bytes.saturating_sub(begun);
            if needed > room {
                warn!(collection = %id, publisher = %publisher.short(), needed, room, "this node is a holder of a collection larger than the room it has left; raise [preservation] spare_gib or it stays at risk");
                continue;
            }
            room -= needed;
            // The publisher first, then the holders that say their copies are complete.
            let complete = |n: &NodeId| complete_at(&adverts, n, &plan.policy.subject);
            let mut sources = vec![*publisher];
            sources.extend(
                plan.assignment
                    .holders
                    .iter()
                    .copied()
                    .filter(|h| *h != self.me && h != publisher && complete(h)),
            );
            info!(collection = %id, publisher = %publisher.short(), "this node is a holder of a collection's copy; fetching it");
            match self
                .fetch_copy(node, *publisher, id, &plan, begun + room, &sources)
                .await
            {
                Ok(()) => {
                    changed = true;
                    info!(collection = %id, publisher = %publisher.short(), "a collection's copy is complete here");
                }
                Err(why) => {
                    warn!(collection = %id, publisher = %publisher.short(), %why, "a collection's copy could not be completed; this node tries again at its next look");
                }
            }
        }
        if changed {
            let _ = self.tx.send(Command::Readvertise).await;
        }
    }

    /// Whether a copy kept here that `plan` no longer assigns here can go: the policy's copies
    /// are all placed, and every holder but the publisher advertises its copy complete.
    fn no_longer_needed(&self, plan: &Plan, publisher: NodeId, adverts: &[NodeAdvert]) -> bool {
        plan.assignment.holders.len() == usize::from(plan.policy.copies)
            && plan
                .assignment
                .holders
                .iter()
                .all(|h| *h == publisher || complete_at(adverts, h, &plan.policy.subject))
    }

    /// Releases the copy of `publisher`'s `id` kept here: its files and its records go.
    async fn release(&self, publisher: NodeId, id: &str) {
        info!(collection = %id, publisher = %publisher.short(), "this node is no longer a holder of a collection's copy and its holders are complete; the copy is released");
        let (db, collection) = (self.home.database(), id.to_owned());
        let forgotten = tokio::task::spawn_blocking(move || {
            Store::open(&db)?.delete_preserved_copy(publisher, &collection)
        })
        .await;
        if !matches!(forgotten, Ok(Ok(()))) {
            warn!(collection = %id, "a released copy could not be forgotten in the store; it is tried again at the next look");
            return;
        }
        let dir = self.dir().join(publisher.to_string()).join(id);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(dir = %dir.display(), error = %e, "a released copy's files could not be removed; remove them by hand");
        }
    }

    /// Lists `publisher`'s collection `id` and fetches every file not yet held, if the listing
    /// is whole (every file its advert counts, each with a plain path and a BLAKE3) and fits in
    /// `room`; files the publisher no longer lists are removed.
    async fn fetch_copy(
        &self,
        node: &NodeHandle,
        publisher: NodeId,
        id: &str,
        plan: &Plan,
        room: u64,
        sources: &[NodeId],
    ) -> Result<(), String> {
        if !plain_collection_id(id) {
            return Err("its id is not a plain name".into());
        }
        if plan.files > u64::from(PAGE) {
            return Err(format!(
                "it has {} files; copies of collections of more than {PAGE} files are not made yet",
                plan.files
            ));
        }
        let publisher_id = publisher.to_string();
        let q = Query {
            collections: vec![id.to_owned()],
            page: Page {
                offset: 0,
                limit: PAGE,
            },
            ..Query::default()
        };
        let found = node
            .search(q, false, LISTING)
            .await
            .map_err(|e| format!("the collection could not be listed: {e}"))?;
        let mut files: Vec<(String, [u8; 32], u64)> = Vec::new();
        for hit in found
            .results
            .hits
            .into_iter()
            .filter(|h| h.node.as_deref() == Some(&publisher_id))
        {
            let path = hit
                .id
                .strip_prefix(&format!("{id}/"))
                .map(str::to_owned)
                .filter(|p| plain(p).is_some())
                .ok_or_else(|| {
                    format!("its publisher lists {:?}, not a plain path in it", hit.id)
                })?;
            let hash = hex32(&hit.blake3)
                .ok_or_else(|| format!("its publisher lists {path} without a valid BLAKE3"))?;
            if files.iter().any(|f| f.0 == path) {
                return Err(format!("its publisher lists {path} twice"));
            }
            files.push((path, hash, hit.size));
        }
        if files.len() as u64 != plan.files {
            return Err(format!(
                "its publisher listed {} of the {} files its advert counts (is it reachable?)",
                files.len(),
                plan.files
            ));
        }
        let bytes = files
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.2))
            .filter(|b| *b <= room)
            .ok_or_else(|| format!("its files need more than the {room} bytes of room left"))?;
        let root = self.dir().join(&publisher_id).join(id);
        let (db, collection, count) = (self.home.database(), id.to_owned(), files.len() as u64);
        let listed: Vec<(String, [u8; 32])> = files.iter().map(|f| (f.0.clone(), f.1)).collect();
        let kept = tokio::task::spawn_blocking(move || {
            let mut store = Store::open(&db)?;
            store.set_preserved_copy(publisher, &collection, count, bytes)?;
            let stale = store.retain_preserved_files(publisher, &collection, &listed)?;
            let held = store.preserved_files(publisher, &collection)?;
            Ok::<_, crate::store::StoreError>((stale, held))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the copy could not be recorded in the store: {e}"))?;
        let (stale, held) = kept;
        for path in stale {
            let gone = root.join(&path);
            if let Err(e) = std::fs::remove_file(&gone)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(path = %gone.display(), error = %e, "a file its publisher no longer lists could not be removed from the copy");
            }
        }
        for (path, hash, size) in files {
            let dest = root.join(&path);
            if held
                .iter()
                .any(|f| f.path == path && f.blake3 == hash && f.intact)
                && dest.exists()
            {
                continue;
            }
            self.fetch_file(publisher, id, &path, hash, size, &dest, sources)
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
                        Ok(Err(e)) => {
                            Err(format!("{path} was fetched but could not be recorded: {e}"))
                        }
                        Err(e) => Err(format!("{path} was fetched but could not be recorded: {e}")),
                    };
                }
                Err(e @ FetchError::WrongSize { .. }) if peer != publisher => {
                    // The size came from the publisher's listing: this holder is not to blame.
                    warn!(peer = %peer.short(), path, error = %e, "a holder's file has another size than the publisher lists; asking another holder");
                    why = e.to_string();
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
