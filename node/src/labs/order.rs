//! Judging an author's order from another node (to its labs, or to run a cell) before anything
//! starts: the sender is a member, the author's signature holds, the order is meant for this
//! node (and a lab order for this federation), was sent by a node that hosts its author, is
//! fresh, and was not seen before.

use std::collections::HashMap;

use orrery_protocol::advert::NodeAdvert;
use orrery_protocol::federation::FederationId;
use orrery_protocol::job::JobRequest;
use orrery_protocol::lab::{LabAction, LabOrder, ORDER_LIFETIME_SECS};
use orrery_protocol::run::{RUN_ORDER_LIFETIME_SECS, RunRequest};
use orrery_protocol::{AuthorId, NodeId, Signed, Unverified, Verified};

/// What an author's request to run something on another node says of itself: whom it is for,
/// when it was made, its id, and whether it is well formed.
pub trait AuthorRequest: orrery_protocol::signing::SignedPayload {
    /// The node asked.
    fn to(&self) -> NodeId;
    /// When it was made (seconds since the Unix epoch).
    fn issued(&self) -> i64;
    /// Whether it may be honoured at `now`.
    fn fresh(&self, now: i64) -> bool;
    /// Its random id.
    fn once(&self) -> [u8; 16];
    /// Its limits.
    fn check(&self) -> Result<(), String>;
}

/// Both kinds of request carry the same fields for this.
macro_rules! author_request {
    ($t:ty) => {
        impl AuthorRequest for $t {
            fn to(&self) -> NodeId {
                self.node
            }
            fn issued(&self) -> i64 {
                self.issued_at
            }
            fn fresh(&self, now: i64) -> bool {
                self.fresh_at(now)
            }
            fn once(&self) -> [u8; 16] {
                self.id
            }
            fn check(&self) -> Result<(), String> {
                self.validate().map_err(|e| e.to_string())
            }
        }
    };
}
author_request!(RunRequest);
author_request!(JobRequest);

/// Most order ids remembered (an order is remembered for its lifetime).
const MAX_SEEN: usize = 100_000;

/// Orders already honoured, until they would be stale anyway.
#[derive(Debug, Default)]
pub struct Seen(HashMap<[u8; 16], i64>);

/// What this node knows when judging an order.
pub struct Judge<'a> {
    /// This node.
    pub me: NodeId,
    /// Its federation, if it is in one.
    pub federation: Option<FederationId>,
    /// Whether a node is a member.
    pub is_member: &'a dyn Fn(&NodeId) -> bool,
    /// The members' adverts (which authors each hosts).
    pub adverts: &'a std::collections::BTreeMap<NodeId, NodeAdvert>,
    /// Now, in seconds since the Unix epoch.
    pub now: i64,
}

/// Whether `node`'s advert carries `author`'s consent to be hosted there, unexpired.
fn hosts(
    adverts: &std::collections::BTreeMap<NodeId, NodeAdvert>,
    node: NodeId,
    author: AuthorId,
    now: i64,
) -> bool {
    adverts.get(&node).is_some_and(|a| {
        a.authors.iter().any(|h| {
            h.signer() == &author.0
                && h.clone().verify().is_ok_and(|h| {
                    let h = h.value();
                    h.author == author && h.node == node && h.expires_at > now
                })
        })
    })
}

impl Judge<'_> {
    /// The order's author and action, or why it is refused.
    pub fn judge(
        &self,
        peer: NodeId,
        order: Signed<LabOrder, Unverified>,
        seen: &mut Seen,
    ) -> Result<(AuthorId, LabAction), String> {
        self.member(peer)?;
        let order = order
            .verify()
            .map_err(|e| format!("the order's signature does not hold: {e}"))?;
        let author = AuthorId(*order.signer());
        let o = order.value();
        o.validate().map_err(|e| e.to_string())?;
        if Some(o.federation) != self.federation {
            return Err("the order is meant for another federation".into());
        }
        if o.home != peer {
            return Err(format!(
                "the order was made for node {} to send, but {} sent it",
                o.home.short(),
                peer.short()
            ));
        }
        let fresh = o.fresh_at(self.now);
        let until = o.issued_at + ORDER_LIFETIME_SECS + 1;
        self.admit(peer, author, o.node, fresh, (o.id, until), seen)?;
        Ok((author, o.action.clone()))
    }

    /// A run or job request sent by `peer`, verified, or why it is refused: the same rules as a
    /// lab order's (the author's home sends it, for this node, fresh, once).
    pub fn judge_request<T: AuthorRequest>(
        &self,
        peer: NodeId,
        request: Signed<T, Unverified>,
        seen: &mut Seen,
    ) -> Result<Signed<T, Verified>, String> {
        self.member(peer)?;
        let request = request
            .verify()
            .map_err(|e| format!("the request's signature does not hold: {e}"))?;
        let author = AuthorId(*request.signer());
        let r = request.value();
        r.check()?;
        let fresh = r.fresh(self.now);
        let until = r.issued() + RUN_ORDER_LIFETIME_SECS + 1;
        self.admit(peer, author, r.to(), fresh, (r.once(), until), seen)?;
        Ok(request)
    }

    fn member(&self, peer: NodeId) -> Result<(), String> {
        if !(self.is_member)(&peer) {
            return Err(format!(
                "{} is not a member of this federation",
                peer.short()
            ));
        }
        Ok(())
    }

    /// The checks every author's order passes: meant for this node, fresh, sent by a node that
    /// hosts its author, and not seen before (it is then remembered until `once.1`).
    fn admit(
        &self,
        peer: NodeId,
        author: AuthorId,
        node: NodeId,
        fresh: bool,
        once: ([u8; 16], i64),
        seen: &mut Seen,
    ) -> Result<(), String> {
        if node != self.me {
            return Err(format!(
                "the order is meant for node {}, not this one",
                node.short()
            ));
        }
        if !fresh {
            return Err(format!(
                "the order is stale or from the future (orders last {ORDER_LIFETIME_SECS} s; check both nodes' clocks)"
            ));
        }
        if !hosts(self.adverts, peer, author, self.now) {
            return Err(format!(
                "author {} is not hosted by {} as far as this node knows (its advert does not list them)",
                author.short(),
                peer.short()
            ));
        }
        seen.0.retain(|_, until| *until > self.now);
        if seen.0.contains_key(&once.0) {
            return Err("the order was used before (a replay)".into());
        }
        if seen.0.len() >= MAX_SEEN {
            return Err("too many orders at once; try again in a few minutes".into());
        }
        seen.0.insert(once.0, once.1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_protocol::SecretKey;
    use orrery_protocol::advert::Hosting;
    use std::collections::BTreeMap;

    struct World {
        me: NodeId,
        home: SecretKey,
        author: SecretKey,
        adverts: BTreeMap<NodeId, NodeAdvert>,
    }

    const FED: FederationId = FederationId([9; 32]);
    const NOW: i64 = 1_000_000;

    fn advert(node: &SecretKey, hosted: &[&SecretKey]) -> NodeAdvert {
        let id = NodeId(node.public());
        NodeAdvert {
            federation: FED,
            node: id,
            seq: 1,
            issued_at: NOW,
            expires_at: NOW + 600,
            name: "home".into(),
            institution: String::new(),
            contact: String::new(),
            addresses: vec![],
            authors: hosted
                .iter()
                .map(|a| {
                    Signed::sign(
                        a,
                        Hosting {
                            author: AuthorId(a.public()),
                            node: id,
                            federation: FED,
                            expires_at: NOW + 600,
                        },
                    )
                    .into_unverified()
                })
                .collect(),
            collections: vec![],
            compute: vec![],
            spare_bytes: 0,
            policies: vec![],
            held: vec![],
        }
    }

    fn world() -> World {
        let home = SecretKey::generate().expect("key");
        let author = SecretKey::generate().expect("key");
        let mut adverts = BTreeMap::new();
        adverts.insert(NodeId(home.public()), advert(&home, &[&author]));
        World {
            me: NodeId(SecretKey::generate().expect("key").public()),
            home,
            author,
            adverts,
        }
    }

    impl World {
        fn order(&self, f: impl FnOnce(&mut LabOrder)) -> Signed<LabOrder, Unverified> {
            let mut o = LabOrder {
                federation: FED,
                node: self.me,
                home: NodeId(self.home.public()),
                action: LabAction::List,
                id: [1; 16],
                issued_at: NOW,
            };
            f(&mut o);
            Signed::sign(&self.author, o).into_unverified()
        }

        fn judge(
            &self,
            peer: NodeId,
            order: Signed<LabOrder, Unverified>,
            seen: &mut Seen,
        ) -> Result<(AuthorId, LabAction), String> {
            let members = [NodeId(self.home.public()), self.me];
            let is_member = |n: &NodeId| members.contains(n);
            Judge {
                me: self.me,
                federation: Some(FED),
                is_member: &is_member,
                adverts: &self.adverts,
                now: NOW,
            }
            .judge(peer, order, seen)
        }
    }

    #[test]
    fn a_good_order_is_honoured_once() {
        let w = world();
        let home = NodeId(w.home.public());
        let mut seen = Seen::default();
        let (author, action) = w.judge(home, w.order(|_| {}), &mut seen).expect("honoured");
        assert_eq!(
            (author, action),
            (AuthorId(w.author.public()), LabAction::List)
        );
        let again = w
            .judge(home, w.order(|_| {}), &mut seen)
            .expect_err("a replay");
        assert!(again.contains("replay"), "{again}");
    }

    #[test]
    fn forged_misdirected_stale_and_unhosted_orders_are_refused() {
        let w = world();
        let home = NodeId(w.home.public());
        let mut seen = Seen::default();
        let refused = |peer, order, what: &str, seen: &mut Seen| {
            let why = w.judge(peer, order, seen).expect_err(what);
            assert!(why.contains(what), "{what}: {why}");
        };
        // Another key signs in the author's name: the signature names its real signer, whom
        // the home node does not host.
        let forger = SecretKey::generate().expect("key");
        let forged = Signed::sign(
            &forger,
            LabOrder {
                federation: FED,
                node: w.me,
                home,
                action: LabAction::List,
                id: [2; 16],
                issued_at: NOW,
            },
        )
        .into_unverified();
        refused(home, forged, "not hosted", &mut seen);
        refused(
            home,
            w.order(|o| o.node = home),
            "meant for node",
            &mut seen,
        );
        refused(
            home,
            w.order(|o| o.federation = FederationId([1; 32])),
            "another federation",
            &mut seen,
        );
        refused(
            home,
            w.order(|o| o.issued_at = NOW - ORDER_LIFETIME_SECS - 1),
            "stale",
            &mut seen,
        );
        let stranger = NodeId(SecretKey::generate().expect("key").public());
        refused(stranger, w.order(|_| {}), "not a member", &mut seen);
        // A member relaying an order made for another home node.
        refused(w.me, w.order(|o| o.id = [3; 16]), "sent it", &mut seen);
        // An author whose node left: its advert is gone, so nobody hosts them.
        let mut left = world();
        left.adverts.clear();
        let why = left
            .judge(NodeId(left.home.public()), left.order(|_| {}), &mut seen)
            .expect_err("an author nobody hosts");
        assert!(why.contains("not hosted"), "{why}");
        // A byte changed in transit.
        let good = w.order(|o| o.id = [4; 16]);
        let mut bytes = orrery_protocol::encoding::encode(&good);
        let at = bytes.len() - 70;
        bytes[at] ^= 1;
        let altered: Signed<LabOrder, Unverified> =
            orrery_protocol::encoding::decode("order", &bytes, 1 << 16).expect("still decodes");
        refused(home, altered, "signature", &mut seen);
        // None of the refused orders was remembered: the good one still works.
        assert!(
            w.judge(home, w.order(|o| o.id = [4; 16]), &mut seen)
                .is_ok()
        );
    }
}
