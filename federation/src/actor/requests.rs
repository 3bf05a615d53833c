//! The actor's request-response side: members' requests answered (or handed to the node),
//! strangers' join requests judged, removed nodes told of their removal, and answers matched to
//! the requests this node sent.

use std::time::Instant;

use libp2p::{Multiaddr, PeerId, request_response};
use orrery_protocol::advert::{AdvertOutcome, NodeAdvert};
use orrery_protocol::federation::{Membership, MembershipEvent};
use orrery_protocol::wire::{Gossip, Refusal, Request, Response};
use orrery_protocol::{NodeId, Signed};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::{Actor, Pending, RefusalReason, now};
use crate::handle::{Event, FederationError};
use crate::peer::{node_id, peer_id};

impl Actor {
    pub(super) fn on_rr(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_request(peer, request, channel),
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => match self.pending.remove(&request_id) {
                Some(Pending::Request { reply, .. }) => {
                    let _ = reply.send(Ok(response));
                }
                Some(Pending::Join { reply }) => {
                    let _ = reply.send(self.finish_join(response));
                }
                Some(Pending::Pull { .. }) => {
                    if let Response::Membership(events) = response {
                        self.absorb(events);
                    }
                }
                Some(Pending::PullAdverts) => {
                    if let Response::Adverts(adverts) = response {
                        for a in adverts.into_iter().take(4096) {
                            let _ = self.offer_advert(a);
                        }
                    }
                }
                // It heard: no need to tell it again.
                Some(Pending::Told) => {
                    if let Some(l) = self.leaving.get_mut(&peer) {
                        l.heard = true;
                    }
                }
                None => {}
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => match self.pending.remove(&request_id) {
                Some(Pending::Request { to, reply }) => {
                    let _ = reply.send(Err(FederationError::Request {
                        peer: to,
                        reason: error.to_string(),
                    }));
                }
                Some(Pending::Join { reply }) => {
                    let _ = reply.send(Err(FederationError::Join(error.to_string())));
                }
                // Sent over a connection that went (an older one, say): told again while the
                // peer stays in its window.
                Some(Pending::Told)
                    if self.connected.contains(&peer) && self.leaving.contains_key(&peer) =>
                {
                    debug!(%peer, %error, "a removed node was not told; telling it again");
                    self.tell_removed(peer);
                }
                Some(Pending::Pull { from, tries }) => {
                    if tries < super::PULL_TRIES && self.connected.contains(&from) {
                        debug!(peer = %from, %error, tries, "membership pull failed; asking again");
                        self.pull_membership(from, tries + 1);
                    } else {
                        debug!(peer = %from, %error, "membership pull failed; the next round asks again");
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Offers an advert to the book; a newer one is reported to the node and its addresses
    /// are remembered (and dialled, if not connected).
    pub(super) fn offer_advert(
        &mut self,
        advert: Signed<NodeAdvert, orrery_protocol::Unverified>,
    ) -> Result<AdvertOutcome, orrery_protocol::advert::AdvertError> {
        let Some(m) = &self.membership else {
            return Ok(AdvertOutcome::Stale);
        };
        let node = NodeId(*advert.signer());
        let outcome = self.adverts.offer(advert, m, now())?;
        if outcome == AdvertOutcome::Accepted
            && let Some(a) = self.adverts.get(&node).cloned()
        {
            let p = peer_id(&a.node);
            for addr in a
                .addresses
                .iter()
                .filter_map(|s| s.parse::<Multiaddr>().ok())
            {
                self.swarm.add_peer_address(p, addr.clone());
                self.swarm.behaviour_mut().kad.add_address(&p, addr);
            }
            if a.node != self.me && !self.connected.contains(&p) && !self.removed_self() {
                let _ = self.swarm.dial(p);
            }
            self.emit(Event::Advert(Box::new(a)));
        }
        Ok(outcome)
    }

    pub(super) fn absorb(&mut self, events: Vec<MembershipEvent>) {
        let Some(m) = self.membership.as_mut() else {
            return;
        };
        let mut changed = false;
        for e in events {
            if let Ok(true) = m.apply(e) {
                changed = true;
            }
        }
        if changed {
            self.after_membership_change();
        }
    }

    fn finish_join(&mut self, response: Response) -> Result<Vec<MembershipEvent>, FederationError> {
        let events = match response {
            Response::Membership(events) => events,
            Response::Refused(r) => return Err(FederationError::Join(format!("refused: {r:?}"))),
            Response::Sync(_)
            | Response::Adverts(_)
            | Response::Search(_)
            | Response::Noted
            | Response::DataPlane(_)
            | Response::Lab(_)
            | Response::Run(_) => {
                return Err(FederationError::Join("unexpected answer".into()));
            }
        };
        let founding = events
            .iter()
            .find_map(|e| match e {
                MembershipEvent::Founding(f) => Some(f.clone()),
                _ => None,
            })
            .ok_or_else(|| {
                FederationError::Join("the answer lacks the founding statement".into())
            })?;
        let mut m = Membership::from_founding(founding)
            .map_err(|e| FederationError::Join(e.to_string()))?;
        for e in events {
            let _ = m.apply(e);
        }
        if !m.is_member(&self.me) {
            return Err(FederationError::Join(
                "the inviter's member list does not include this node".into(),
            ));
        }
        self.enter(m);
        self.after_membership_change();
        Ok(self
            .membership
            .as_ref()
            .map(Membership::events)
            .unwrap_or_default())
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request: Request,
        channel: request_response::ResponseChannel<Response>,
    ) {
        let Some(from) = node_id(&peer) else {
            let _ = self
                .swarm
                .behaviour_mut()
                .rr
                .send_response(channel, Response::Refused(Refusal::Malformed));
            return;
        };
        debug!(peer = %from.short(), member = self.is_member(&from), "request");
        let response = match request {
            Request::Join(join) => {
                let accepted = self
                    .membership
                    .as_mut()
                    .map(|m| m.accept(&self.key, join, now()));
                match accepted {
                    Some(Ok(admission)) => {
                        info!(node = %from.short(), "admitted");
                        self.publish(&Gossip::Membership(MembershipEvent::Admission(
                            admission.into_unverified(),
                        )));
                        self.after_membership_change();
                        Response::Membership(
                            self.membership
                                .as_ref()
                                .map(Membership::events)
                                .unwrap_or_default(),
                        )
                    }
                    Some(Err(e)) => {
                        warn!(node = %from.short(), error = %e, "join refused");
                        self.refused
                            .note(peer, RefusalReason::JoinRefused, Instant::now());
                        Response::Refused(Refusal::JoinRefused)
                    }
                    None => {
                        warn!(node = %from.short(), "join refused: this node is in no federation");
                        Response::Refused(Refusal::JoinRefused)
                    }
                }
            }
            Request::Membership
                if self
                    .membership
                    .as_ref()
                    .is_some_and(|m| m.is_removed(&from)) =>
            {
                // A removed node is answered with its removal whenever it asks, even before
                // this node has seen its connection (the request can arrive first). The removal
                // is signed by the founder, whom the removed node knows: it can verify it, and
                // learns nothing else.
                let removal = self
                    .membership
                    .as_ref()
                    .and_then(|m| m.removal(&from))
                    .map(|r| MembershipEvent::Removal(r.clone().into_unverified()));
                Response::Membership(removal.into_iter().collect())
            }
            _ if !self.is_member(&from) => {
                warn!(peer = %from.short(), "request refused: the peer is not a member");
                Response::Refused(Refusal::NotAMember)
            }
            Request::Membership => Response::Membership(
                self.membership
                    .as_ref()
                    .map(Membership::events)
                    .unwrap_or_default(),
            ),
            Request::Adverts => Response::Adverts(self.adverts.signed()),
            Request::Removed(event) => {
                // Checked as any membership event is: it holds only if the founder signed it.
                if matches!(event, MembershipEvent::Removal(_)) {
                    self.absorb(vec![event]);
                }
                if !self.removed_self() {
                    warn!(peer = %from.short(), "a member said this node was removed, but sent no removal of it that holds; ignored");
                }
                Response::Noted
            }
            request @ (Request::Sync(_)
            | Request::Search(_)
            | Request::Presence(_)
            | Request::DataPlane
            | Request::Lab(_)
            | Request::Run(_)
            | Request::Job(_)
            | Request::RunProgress { .. }
            | Request::RunControl { .. }) => {
                let (reply, rx) = oneshot::channel();
                self.emit(Event::Request {
                    from,
                    request,
                    reply,
                });
                self.replies
                    .push(Box::pin(async move { (rx.await.ok(), channel) }));
                return;
            }
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .rr
            .send_response(channel, response);
    }
}
