//! Project sync between nodes: who may hold a project, sending sync messages and verifying and
//! storing what arrives.

use orrery_crdt::{IngestError, Origin, Refused};
use orrery_federation::Offence;
use orrery_protocol::PublicKey;

use super::*;

/// Most replicas kept with nothing applied yet, waiting for the rest of a history.
const MAX_PROVISIONAL: usize = 8;

/// Whether `node` may hold `project`, its advert being `advert`: the project is public, the
/// node hosts one of its members (with that member's signed consent, see adverts), or the
/// owners' preservation policy pins it and the project is not restricted to its members' nodes.
pub(crate) fn may_hold_project(
    project: &Project,
    node: NodeId,
    advert: Option<&NodeAdvert>,
) -> bool {
    if project.visibility() == Visibility::Public || pinned_by_owners(project, node) {
        return true;
    }
    let members: HashSet<AuthorId> = project.members().into_iter().map(|m| m.author).collect();
    advert.is_some_and(|a| a.hosted_authors().iter().any(|au| members.contains(au)))
}

/// Whether the owners' preservation policy of `project` pins `node`, and the project may go
/// beyond its members' nodes.
fn pinned_by_owners(project: &Project, node: NodeId) -> bool {
    project.visibility() != Visibility::Restricted
        && project
            .preservation_policy()
            .is_some_and(|p| p.pinned.contains(&node))
}

impl NodeActor {
    /// The nodes a project should be synced with: connected nodes that may hold it.
    pub(super) fn targets(&self, project: &Project) -> Vec<NodeId> {
        self.adverts
            .keys()
            .copied()
            .filter(|n| *n != self.me)
            .filter(|n| self.connected.contains(n))
            .filter(|n| !self.refused.contains(&(project.id(), *n)))
            .filter(|n| self.may_hold(*n, project))
            .collect()
    }

    /// Whether `peer` may hold `project`: it is a member, and [`may_hold_project`] says so.
    pub(super) fn may_hold(&self, peer: NodeId, project: &Project) -> bool {
        self.membership.as_ref().is_some_and(|m| m.is_member(&peer))
            && may_hold_project(project, peer, self.adverts.get(&peer))
    }

    /// Whether this node should hold `project`.
    pub(super) fn wants(&self, project: &Project) -> bool {
        project.visibility() == Visibility::Public
            || pinned_by_owners(project, self.me)
            || project
                .members()
                .iter()
                .any(|m| self.sessions.contains_key(&m.author))
    }

    pub(super) fn kick_all(&mut self, project: ProjectId) {
        let targets = match self.projects.get(&project) {
            Some(p) => self.targets(p),
            None => return,
        };
        debug!(project = %project.short(), targets = targets.len(), adverts = self.adverts.len(), connected = self.connected.len(), "sync targets");
        for peer in targets {
            self.kick(project, peer);
        }
    }

    /// Sends the next sync message for `project` to `peer`, unless one is in flight.
    pub(super) fn kick(&mut self, project: ProjectId, peer: NodeId) {
        if self.in_flight.contains(&(project, peer)) {
            self.again.insert((project, peer));
            return;
        }
        let Some(p) = self.projects.get(&project) else {
            return;
        };
        let fresh = self.fresh_state(project, peer);
        let state = self.peers.entry((project, peer)).or_insert(fresh);
        let Some((message, seals)) = p.sync_message(state) else {
            return;
        };
        self.send(
            peer,
            SyncFrame {
                project,
                message,
                seals,
            },
        );
    }

    /// A new sync state for `peer`: without snapshots if it refused one; changes it sends that
    /// wait for dependencies are remembered as its own.
    fn fresh_state(&self, project: ProjectId, peer: NodeId) -> PeerState {
        let state = if self.snapshot_refused.contains(&(project, peer)) {
            PeerState::without_snapshots()
        } else {
            PeerState::new()
        };
        state.with_origin(Origin(*peer.0.as_bytes()))
    }

    /// Charges the senders of parked changes that failed once their dependencies arrived (in a
    /// batch from `via`, which is not blamed for them): one offence per sender and frame.
    async fn charge_parked(&mut self, project: ProjectId, via: NodeId, refused: &[Refused]) {
        let mut charged: HashSet<NodeId> = HashSet::new();
        for r in refused {
            let sender = PublicKey::from_bytes(&r.origin.0).ok().map(NodeId);
            warn!(
                peer = %sender.map_or_else(|| "local".to_string(), |s| s.short()),
                via = %via.short(),
                project = %project.short(),
                change = %r.hash,
                error = %r.error,
                "parked change refused once its dependencies arrived"
            );
            self.metrics.refused(&r.error);
            let Some(sender) = sender else { continue };
            if !is_offence(&r.error, false) || !charged.insert(sender) {
                continue;
            }
            let reason = Offence::BadParkedChange {
                detail: r.error.to_string(),
            };
            let _ = self.fed.penalise(sender, reason).await;
            self.emit(NodeEvent::Rejected {
                peer: sender,
                project,
            });
        }
    }

    /// Sends a sync frame and reports the answer back to the actor.
    pub(super) fn send(&mut self, peer: NodeId, frame: SyncFrame) {
        let project = frame.project;
        if frame.message.first() == Some(&orrery_crdt::sync::SNAPSHOT) {
            self.snapshot_in_flight.insert((project, peer));
        }
        debug!(project = %project.short(), peer = %peer.short(), bytes = frame.message.len(), "sync message");
        (self.metrics).sync_frame(crate::metrics::Direction::Sent, frame.message.len());
        self.in_flight.insert((project, peer));
        let fed = self.fed.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = fed.request(peer, Request::Sync(frame)).await;
            let _ = tx
                .send(Command::SyncDone {
                    project,
                    peer,
                    result,
                })
                .await;
        });
    }

    /// Verifies and stores a peer's sync frame; returns the answer to send back, if any.
    pub(super) async fn receive(
        &mut self,
        peer: NodeId,
        frame: SyncFrame,
    ) -> Result<Option<SyncFrame>, Refusal> {
        let id = frame.project;
        (self.metrics).sync_frame(crate::metrics::Direction::Received, frame.message.len());
        // Only a node that may hold the project gets anything of it: public projects go to any
        // member, others only to nodes that host one of their members. (A replica still waiting
        // for the start of its history knows neither yet.)
        if let Some(p) = self.projects.get(&id)
            && !p.heads().is_empty()
            && !self.may_hold(peer, p)
        {
            self.peers.remove(&(id, peer));
            return Err(Refusal::NotReplicated);
        }
        let is_new = !self.projects.contains_key(&id);
        // A replica kept while its history was still arriving has not been judged yet either.
        let was_empty = self.projects.get(&id).is_none_or(|p| p.heads().is_empty());
        let mut project = match self.projects.remove(&id) {
            Some(p) => p,
            None => Project::empty(id),
        };
        let fresh = self.fresh_state(id, peer);
        let state = self.peers.entry((id, peer)).or_insert(fresh);
        let started = std::time::Instant::now();
        let snapshot = frame.message.first() == Some(&orrery_crdt::sync::SNAPSHOT);
        let held_before: Vec<_> = project.held().into_iter().map(|(h, _)| h).collect();
        let received = match project.receive_sync_message(state, &frame.message, frame.seals) {
            Ok(r) => r,
            Err(e) => {
                warn!(peer = %peer.short(), project = %id.short(), error = %e, "sync data refused");
                self.metrics.refused(&e);
                if !is_new {
                    self.projects.insert(id, project);
                } else {
                    self.peers.remove(&(id, peer));
                }
                // The error is the frame's own changes' fault: parked changes it completed are
                // judged apart and never make it fail.
                if is_offence(&e, snapshot) {
                    let reason = Offence::BadChanges {
                        detail: e.to_string(),
                    };
                    let _ = self.fed.penalise(peer, reason).await;
                }
                self.emit(NodeEvent::Rejected { peer, project: id });
                return Err(Refusal::Rejected);
            }
        };
        if !received.report.refused.is_empty() {
            self.charge_parked(id, peer, &received.report.refused).await;
        }
        // `heads()` is cheap; counting changes decodes the whole history.
        if was_empty && !project.heads().is_empty() && !self.wants(&project) {
            self.peers.remove(&(id, peer));
            return Err(Refusal::NotReplicated);
        }
        let verified = started.elapsed();
        if !received.applied.changes.is_empty() || received.whole {
            let batch = received.applied;
            let (pid, title) = project_copy_meta(&project);
            // A large arrival (a first sync, a whole snapshot) is stored as a compacted snapshot
            // in one transaction instead of row by row: same durability, a fraction of the
            // writes.
            let bulk =
                received.whole || batch.changes.len() >= self.config.store.compact_after_changes;
            let snapshot = bulk.then(|| project.save());
            let seals = project.seals();
            let held: Option<HashSet<[u8; 32]>> = if bulk {
                match self.store.run(move |s| s.loose_hashes(pid)).await {
                    Ok(loose) => Some(
                        loose
                            .into_iter()
                            .filter(|h| project.has_change(&orrery_protocol::ChangeHash(*h)))
                            .collect(),
                    ),
                    Err(_) => None,
                }
            } else {
                None
            };
            let stored = self
                .store
                .run(move |s| {
                    let exists = s.has_project(pid)?;
                    match (snapshot, held) {
                        (Some(snapshot), Some(folded)) => {
                            if !exists {
                                s.create_project_raw(pid, &title, &orrery_crdt::Batch::default())?;
                            }
                            s.compact_raw(pid, snapshot, &seals, &folded)
                        }
                        _ if exists => s.append_raw(pid, &title, &batch),
                        _ => s.create_project_raw(pid, &title, &batch),
                    }
                })
                .await;
            if let Err(e) = stored {
                warn!(error = %e, "could not store synced changes");
                self.projects.insert(id, project);
                return Err(Refusal::Busy);
            }
            self.note_own_write(id).await;
            if !bulk {
                self.maybe_compact(&project).await;
            }
        }
        let stored = started.elapsed();
        let fresh = self.fresh_state(id, peer);
        let reply = project.sync_message(self.peers.entry((id, peer)).or_insert(fresh));
        debug!(
            project = %id.short(),
            peer = %peer.short(),
            changes = received.report.applied.len(),
            verify_us = verified.as_micros() as u64,
            store_us = (stored - verified).as_micros() as u64,
            reply_us = (started.elapsed() - stored).as_micros() as u64,
            "sync frame received"
        );
        let newly_held = received
            .report
            .held
            .iter()
            .filter(|h| !held_before.contains(h))
            .count();
        if newly_held > 0 {
            warn!(
                project = %id.short(),
                peer = %peer.short(),
                held = newly_held,
                "changes made concurrently with their author's removal or demotion are held: kept, not applied, until an editor accepts them"
            );
            self.emit(NodeEvent::Held {
                project: id,
                changes: newly_held,
            });
        }
        let changed = !received.report.applied.is_empty();
        let heads = project.heads();
        // A history arriving in several messages may leave a new replica with nothing applied
        // yet and everything waiting for the rest: it is kept for the rest.
        // Such replicas are few: any member can start one by sending a change whose
        // dependency never comes.
        let provisional = self
            .projects
            .values()
            .filter(|p| p.heads().is_empty())
            .count();
        if !heads.is_empty()
            || (!is_new && !was_empty)
            || (received.report.pending > 0 && (!is_new || provisional < MAX_PROVISIONAL))
        {
            self.projects.insert(id, project);
        } else {
            self.peers.remove(&(id, peer));
        }
        if changed {
            self.emit(NodeEvent::ProjectChanged { project: id, heads });
            self.fetch_blobs(id, Some(peer));
            // Pass what arrived on to the other nodes that hold the project.
            let others: Vec<NodeId> = self
                .projects
                .get(&id)
                .map(|p| self.targets(p))
                .unwrap_or_default()
                .into_iter()
                .filter(|n| *n != peer)
                .collect();
            for n in others {
                self.kick(id, n);
            }
        }
        Ok(reply.map(|(message, seals)| SyncFrame {
            project: id,
            message,
            seals,
        }))
    }

    pub(super) async fn maybe_compact(&self, project: &Project) {
        let id = project.id();
        let limit = self.config.store.compact_after_changes;
        let loose = self
            .store
            .run(move |s| s.loose_changes(id))
            .await
            .unwrap_or(0);
        if loose >= limit {
            let Ok(loose) = self.store.run(move |s| s.loose_hashes(id)).await else {
                return;
            };
            let folded: HashSet<[u8; 32]> = loose
                .into_iter()
                .filter(|h| project.has_change(&orrery_protocol::ChangeHash(*h)))
                .collect();
            let snapshot = project.save();
            let seals = project.seals();
            let _ = self
                .store
                .run(move |s| s.compact_raw(id, snapshot, &seals, &folded))
                .await;
        }
    }

    /// Records the store marks after this node's own writes, so the poll does not mistake them
    /// for another process's.
    pub(super) async fn note_own_write(&mut self, id: ProjectId) {
        if let Ok(marks) = self.store.run(|s| s.project_marks()).await {
            for (p, a, b) in marks {
                if p == id {
                    self.marks.insert(p, (a, b));
                }
            }
        }
    }

    pub(super) async fn on_sync_done(
        &mut self,
        project: ProjectId,
        peer: NodeId,
        result: Result<Response, orrery_federation::FederationError>,
    ) {
        self.in_flight.remove(&(project, peer));
        let was_snapshot = self.snapshot_in_flight.remove(&(project, peer));
        if was_snapshot && matches!(result, Ok(Response::Refused(Refusal::Rejected))) {
            // An honest peer may judge a history differently (a limit, an unusual history):
            // it gets the changes themselves from now on.
            warn!(peer = %peer.short(), project = %project.short(), "a snapshot was refused; sending changes instead");
            self.snapshot_refused.insert((project, peer));
        }
        debug!(peer = %peer.short(), project = %project.short(), ok = result.is_ok(), "sync answer");
        use crate::store::Direction;
        match &result {
            Ok(Response::Sync(_)) => self.replication_ok(project, peer, Direction::To).await,
            Ok(Response::Refused(r)) => {
                if let Some(reason) = super::replication::refusal_reason(r) {
                    self.replication_failed(project, peer, Direction::To, reason)
                        .await;
                }
            }
            Ok(_) => {}
            Err(e) => {
                let reason = format!("the frame could not be delivered: {e}");
                self.replication_failed(project, peer, Direction::To, reason)
                    .await;
            }
        }
        match result {
            Ok(Response::Sync(frame)) if frame.project == project => {
                if frame.message.is_empty() {
                    // The peer has nothing more to say; send again only if we have news.
                    if self.again.remove(&(project, peer)) {
                        self.kick(project, peer);
                    }
                    return;
                }
                match self.receive(peer, frame).await {
                    Ok(Some(next)) => {
                        self.again.remove(&(project, peer));
                        self.send(peer, next);
                    }
                    Ok(None) => {
                        if self.again.remove(&(project, peer)) {
                            self.kick(project, peer);
                        }
                    }
                    Err(r) => {
                        debug!(peer = %peer.short(), refusal = ?r, "sync answer refused");
                    }
                }
                return;
            }
            Ok(Response::Refused(Refusal::NotReplicated)) => {
                self.refused.insert((project, peer));
            }
            Ok(other) => {
                debug!(peer = %peer.short(), answer = ?other, "sync not answered");
                self.peers.remove(&(project, peer));
            }
            Err(e) => {
                debug!(peer = %peer.short(), error = %e, "sync request failed");
                // A fresh state on the next connection.
                self.peers.remove(&(project, peer));
            }
        }
        if self.again.remove(&(project, peer)) {
            self.kick(project, peer);
        }
    }
}

/// Whether refusing `e` proves the sender lied (an offence); limits and library failures do
/// not. A whole snapshot is judged as one, so an honest sender of a history this node sees
/// differently is not punished for it: only forged seals in one are.
fn is_offence(e: &IngestError, snapshot: bool) -> bool {
    if snapshot {
        matches!(
            e,
            IngestError::ForgedSeal(_) | IngestError::WrongProject { .. }
        )
    } else {
        !matches!(
            e,
            IngestError::Library { .. }
                | IngestError::TooManyPending { .. }
                | IngestError::Equivocation { .. }
                | IngestError::Corrupt(_)
        )
    }
}
