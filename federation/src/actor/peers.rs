//! Who may stay connected: members are let into gossip, strangers get a slot for a short
//! while (to ask to join), refused peers are closed at once or, if removed, told why first.

use std::time::{Duration, Instant};

use libp2p::PeerId;
use orrery_protocol::wire::Request;
use tracing::{debug, warn};

use orrery_protocol::federation::MembershipEvent;

use super::{Actor, Admit, Leaving, Pending, RefusalReason, TELL_REMOVED, Verdict};
use crate::handle::Event;
use crate::peer::node_id;

impl Actor {
    /// Lets members into gossip and keeps everyone else out of it.
    pub(super) fn classify_peer(&mut self, peer: PeerId) {
        let Some(node) = node_id(&peer) else {
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        };
        let removed = self
            .membership
            .as_ref()
            .is_some_and(|m| m.is_removed(&node));
        if self.removed_self() {
            // A removed node asks no member anything and keeps no connection to one.
            if self.announced.remove(&peer) {
                self.emit(Event::Disconnected(node));
            }
            debug!(%peer, "disconnected: this node was removed from the federation");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        if removed || self.banned.contains_key(&peer) {
            if self.announced.remove(&peer) {
                self.emit(Event::Disconnected(node));
            }
            self.swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
            if self.leaving.contains_key(&peer) {
                return;
            }
            let reason = match removed {
                true => RefusalReason::Removed,
                false => RefusalReason::Banned,
            };
            self.refuse(peer, reason);
            return;
        }
        if self.is_member(&node) {
            self.strangers.remove(&peer);
            let b = self.swarm.behaviour_mut();
            b.gossipsub.remove_blacklisted_peer(&peer);
            b.gossipsub.add_explicit_peer(&peer);
            if self.connected.contains(&peer) && self.announced.insert(peer) {
                self.emit(Event::Connected(node));
                // Catch up on membership events and adverts missed while apart, without
                // waiting for the next gossip round.
                self.pull_membership(peer, 1);
                let rr = &mut self.swarm.behaviour_mut().rr;
                let id = rr.send_request(&peer, Request::Adverts);
                self.pending.insert(id, Pending::PullAdverts);
            }
        } else if self.membership.is_some() {
            self.swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
            // A stranger may stay only briefly (to ask to join), and only a few at a time.
            if self.connected.contains(&peer) && !self.strangers.contains(&peer) {
                if self.refused.is_refused(&peer) {
                    self.refuse(peer, RefusalReason::JoinRefused);
                    return;
                }
                let ip = self.remote_ip.get(&peer).copied();
                match self.strangers.admit(peer, ip, Instant::now()) {
                    Admit::Room => {}
                    Admit::Evict(old) => {
                        warn!(%old, newcomer = %peer, "stranger slots full: the oldest stranger is disconnected to make room");
                        let _ = self.swarm.disconnect_peer_id(old);
                    }
                    Admit::RateLimited => {
                        warn!(%peer, ip = ?ip, "stranger refused: its address opened too many connections lately");
                        let _ = self.swarm.disconnect_peer_id(peer);
                        return;
                    }
                }
                self.pull_membership_for_stranger();
            }
        }
    }

    /// Whether this node was removed from its federation.
    pub(super) fn removed_self(&self) -> bool {
        self.membership
            .as_ref()
            .is_some_and(|m| m.is_removed(&self.me))
    }

    /// Counts a connection from a refused peer and closes it, unless its backoff ended and it
    /// was removed: then it is sent its removal and may stay for [`TELL_REMOVED`] (it also asks
    /// every member it connects to for membership events, and is answered with its removal).
    pub(super) fn refuse(&mut self, peer: PeerId, reason: RefusalReason) {
        if !self.connected.contains(&peer) {
            return;
        }
        let verdict = self.refused.connected(peer, reason, Instant::now());
        match verdict {
            Verdict::Tell { attempts } if reason == RefusalReason::Removed => {
                warn!(%peer, attempts, %reason, "connection refused: the peer is told of its removal, then disconnected");
                self.leaving.insert(
                    peer,
                    Leaving {
                        until: Instant::now() + TELL_REMOVED,
                        heard: false,
                    },
                );
                // Told at once, not only when it asks: a removed node that does not ask (it
                // may not count this node as connected yet) would otherwise never learn it.
                self.tell_removed(peer);
            }
            Verdict::Tell { attempts } => {
                if reason == RefusalReason::JoinRefused {
                    // Its backoff ended: it may try again, with a new invitation, as a stranger.
                    debug!(%peer, attempts, "a refused stranger may try again");
                    self.refused.forgive(&peer);
                    self.classify_peer(peer);
                    return;
                }
                warn!(%peer, attempts, %reason, "connection refused");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Verdict::Close { attempts } => {
                // Logged at doubling counts, so that a peer dialling in a loop cannot flood the log.
                if attempts.is_power_of_two() {
                    warn!(%peer, attempts, %reason, "connection refused during the peer's backoff");
                } else {
                    debug!(%peer, attempts, %reason, "connection refused during the peer's backoff");
                }
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    /// Sends a removed peer its removal.
    pub(super) fn tell_removed(&mut self, peer: PeerId) {
        let removal = node_id(&peer).and_then(|n| {
            let m = self.membership.as_ref()?;
            Some(MembershipEvent::Removal(
                m.removal(&n)?.clone().into_unverified(),
            ))
        });
        if let Some(removal) = removal {
            let rr = &mut self.swarm.behaviour_mut().rr;
            let id = rr.send_request(&peer, Request::Removed(removal));
            self.pending.insert(id, Pending::Told);
        }
    }

    /// A stranger may be a member admitted by someone else whose admission this node missed
    /// (gossip is not reliable). Asks up to two connected members for their membership events,
    /// at most once every two seconds; if the stranger was admitted, the answer makes it a member.
    pub(super) fn pull_membership_for_stranger(&mut self) {
        let now = Instant::now();
        if self
            .stranger_pull
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(2))
        {
            return;
        }
        self.stranger_pull = Some(now);
        let members: Vec<PeerId> = self.announced.iter().take(2).copied().collect();
        for peer in members {
            self.pull_membership(peer, 1);
        }
    }

    /// Disconnects non-members that stayed past the grace period without becoming members, and
    /// removed nodes whose window to hear of it ended; tells again those that have not
    /// answered yet (a telling can be lost with no failure reported, as a stream that never
    /// opens).
    pub(super) fn sweep_strangers(&mut self) {
        let now = Instant::now();
        let unheard: Vec<PeerId> = self
            .leaving
            .iter()
            .filter(|(p, l)| l.until > now && !l.heard && self.connected.contains(p))
            .map(|(p, _)| *p)
            .collect();
        for peer in unheard {
            debug!(%peer, "a removed node has not answered its telling; telling it again");
            self.tell_removed(peer);
        }
        let told: Vec<PeerId> = self
            .leaving
            .iter()
            .filter(|(_, l)| l.until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in told {
            self.leaving.remove(&peer);
            if self.connected.contains(&peer) {
                warn!(%peer, "removed node disconnected after it was told of its removal");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
        let grace = Duration::from_secs(self.config.stranger_grace_secs);
        for peer in self.strangers.expire(Instant::now(), grace) {
            let member = node_id(&peer).is_some_and(|n| self.is_member(&n));
            if !member && self.connected.contains(&peer) {
                warn!(%peer, "stranger disconnected: it did not join within its grace period");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }
}
