//! Preservation: copies of other members' collections, kept as their publishers' policies ask.
//!
//! A publisher signs a policy for its collection (`orrery preservation set`) and carries it in
//! its advert; nodes offering room for copies say how much in theirs (`[preservation]
//! spare_gib`), and list the copies they keep. Every node computes the holders of every policy
//! from the same adverts with [`orrery_protocol::preservation::assign`], so all agree without
//! asking anyone; the publisher, which holds the original, is always one of them. A node that
//! finds itself a holder lists the collection at its publisher (search requests to the
//! publisher itself, page by page, up to 10000 files), fetches each file over the data plane
//! (verified chunk by chunk against the catalog's BLAKE3, resumed from what was verified, from
//! the publisher or another holder), keeps it under `preserved/`, and lists the copy in its
//! next advert once it is complete. `orrery preservation status` shows, per policy, its holders
//! and what is at risk. Projects' policies are kept in the projects themselves and followed by
//! sync (`service::sync::may_hold_project`); this worker copies collections.

mod audit;
mod copy;
mod plan;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orrery_federation::FederationHandle;
use orrery_protocol::NodeId;
use orrery_protocol::advert::NodeAdvert;
use orrery_protocol::preservation::Subject;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::plan::complete_at;
pub(crate) use self::plan::{Described, Me, Plan, plans, project_copy};
use super::{Command, NodeEvent};
use crate::config::PreservationSection;
use crate::home::Home;
use crate::store::Store;

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

/// Looks at what this node should hold every `check_secs`, until the node stops. A node that
/// offers no room (any more) looks too: it mends and releases the copies it keeps.
pub(super) async fn work(p: Arc<Preserver>, cancel: CancellationToken) {
    loop {
        p.look().await;
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
        self.config.dir_in(&self.home)
    }

    /// Where the files of `publisher`'s `collection` are fetched to before they are whole.
    fn partials(&self, publisher: NodeId, collection: &str) -> PathBuf {
        self.dir()
            .join(".partial")
            .join(publisher.to_string())
            .join(collection)
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
    async fn look(&self) {
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
            if kept_here && !plan.may_hold(&self.me) {
                warn!(collection = %id, publisher = %publisher.short(), "the collection's access policy no longer names this node: its copy here is removed");
                self.release(*publisher, id).await;
                changed = true;
                continue;
            }
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
            // What this copy may take: the room left before it, and what it already keeps.
            let available = room + begun;
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
                .fetch_copy(*publisher, id, &plan, available, &sources)
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
        for dir in [
            self.dir().join(publisher.to_string()).join(id),
            self.partials(publisher, id),
        ] {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(dir = %dir.display(), error = %e, "a released copy's files could not be removed; remove them by hand");
            }
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
