//! The node actor's side of labs between nodes: what the members hold and offer (for placing a
//! lab), signing a local author's order to another node's labs, and judging an order that came
//! from another node before its labs are asked anything.

use orrery_protocol::lab::{LabAction, LabOrder, LabRefusal, LabReply};

use super::*;
use crate::labs::order::Judge;
use crate::labs::placement::Candidate;

impl NodeActor {
    /// This node and every member whose advert is known, with what each holds whole and offers.
    pub(super) fn lab_candidates(&self) -> Vec<Candidate> {
        let whole = |c: &[CollectionSummary]| {
            c.iter()
                .filter(|c| c.complete)
                .map(|c| c.id.clone())
                .collect()
        };
        let mut out = vec![Candidate {
            node: self.me,
            collections: whole(&self.collections),
            compute: self.compute_offers(),
        }];
        let member = |n: &NodeId| self.membership.as_ref().is_some_and(|m| m.is_member(n));
        out.extend(
            self.adverts
                .iter()
                .filter(|(n, _)| **n != self.me && member(n))
                .map(|(n, a)| Candidate {
                    node: *n,
                    collections: whole(&a.collections),
                    compute: a.compute.clone(),
                }),
        );
        out
    }

    /// `author`'s order to `node`'s labs, signed with their key (held here).
    pub(super) async fn sign_lab_order(
        &mut self,
        author: AuthorId,
        node: NodeId,
        action: LabAction,
    ) -> Result<Signed<LabOrder, Unverified>, String> {
        let federation = self
            .membership
            .as_ref()
            .map(Membership::id)
            .ok_or("this node is in no federation, so its labs are its own")?;
        if !self.author_keys.iter().any(|(a, _)| *a == author) {
            self.session_of(author).await.map_err(|e| e.to_string())?;
        }
        let key = self
            .author_keys
            .iter()
            .find(|(a, _)| *a == author)
            .map(|(_, k)| k)
            .ok_or("this node does not hold the author's key")?;
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| format!("no randomness for a lab order: {e}"))?;
        Ok(Signed::sign(
            key,
            LabOrder {
                federation,
                node,
                home: self.me,
                action,
                id,
                issued_at: now(),
            },
        )
        .into_unverified())
    }

    /// The author and action of an order from `peer`, or why it is refused (logged).
    pub(super) fn judge_lab_order(
        &mut self,
        peer: NodeId,
        order: Signed<LabOrder, Unverified>,
    ) -> Result<(AuthorId, LabAction), String> {
        let membership = self.membership.as_ref();
        let is_member = |n: &NodeId| membership.is_some_and(|m| m.is_member(n));
        let judged = Judge {
            me: self.me,
            federation: membership.map(Membership::id),
            is_member: &is_member,
            adverts: &self.adverts,
            now: now(),
        }
        .judge(peer, order, &mut self.lab_orders_seen);
        if let Err(why) = &judged {
            warn!(peer = %peer.short(), %why, "a lab order was refused; nothing was started");
        }
        judged
    }

    /// Answers a lab order from `peer`: judged here, then carried out by the labs off the loop.
    pub(super) fn answer_lab_order(
        &mut self,
        peer: NodeId,
        order: Signed<LabOrder, Unverified>,
        reply: oneshot::Sender<Response>,
    ) {
        match self.judge_lab_order(peer, order) {
            Err(reason) => {
                let _ = reply.send(Response::Lab(LabReply::Refused {
                    kind: LabRefusal::Forbidden,
                    reason,
                }));
            }
            Ok((author, action)) => {
                let labs = self.labs.clone();
                tokio::spawn(async move {
                    let answer = labs.order(peer, author, action).await;
                    let _ = reply.send(Response::Lab(answer));
                });
            }
        }
    }
}
