//! Federation membership as signed data every member holds.
//!
//! A federation is named by the hash of its founding statement. Membership is a grow-only set of
//! signed events — the founding, admissions and removals — so any two members that exchange
//! their events hold the same member list, in whatever order the events arrived:
//!
//! * a node is **admitted** by an [`Admission`]: signed by the joining node, carrying an
//!   [`Invitation`] signed by a node that was admitted (or founded the federation), and
//!   countersigned by the member that accepted it before the invitation expired;
//! * a node is **removed** by a [`Removal`] signed by any node that was ever admitted. Removal is
//!   final: a removed key stays removed (a node that should return joins with a new key).
//!
//! A node is a member iff it founded or was admitted, and no valid removal names it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::identity::NodeId;
use crate::limits::MAX_NAME_BYTES;
use crate::signing::{Domain, SignatureError, Signed, SignedPayload, Unverified, Verified};

/// A federation's identity: BLAKE3 of its signed founding statement's payload.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FederationId(pub [u8; 32]);

impl std::fmt::Display for FederationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for FederationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FederationId({})", &hex::encode(&self.0[..6]))
    }
}

impl std::str::FromStr for FederationId {
    type Err = crate::seal::ParseHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::seal::ChangeHash::from_str(s).map(|h| Self(h.0))
    }
}

/// The statement that founds a federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Founding {
    /// The federation's name, e.g. "esa-archives".
    pub name: String,
    /// The founding node (its first member).
    pub founder: NodeId,
    /// When it was founded, seconds since the epoch.
    pub at: i64,
}

/// An invitation, signed by a member, for a named node key or for whoever holds a one-time code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// The federation.
    pub federation: FederationId,
    /// The node invited, if the invitation names one.
    pub invitee: Option<NodeId>,
    /// BLAKE3 of the one-time code, if the invitation is for a code instead of a key.
    pub code_hash: Option<[u8; 32]>,
    /// The invitation is void after this time (seconds since the epoch).
    pub expires_at: i64,
    /// Makes every invitation distinct.
    pub nonce: [u8; 16],
}

/// A node's request to join, made from an invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The invitation, as the inviter signed it.
    pub invitation: Signed<Invitation, Unverified>,
    /// The joining node.
    pub node: NodeId,
    /// The node's display name.
    pub name: String,
    /// The one-time code, for code invitations.
    pub code: Option<[u8; 32]>,
    /// When the request was made.
    pub at: i64,
}

/// A member's acceptance of a join request, within the invitation's validity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    /// The joining node's signed request.
    pub request: Signed<JoinRequest, Unverified>,
    /// When the accepting member accepted it.
    pub accepted_at: i64,
}

/// A member's removal of another node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// The federation.
    pub federation: FederationId,
    /// The node removed.
    pub node: NodeId,
    /// When.
    pub at: i64,
    /// Why, for the other operators.
    pub reason: String,
}

/// One membership event, as exchanged between members.
// Events are decoded once and kept in a handful; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MembershipEvent {
    /// The founding statement, signed by the founder.
    Founding(Signed<Founding, Unverified>),
    /// An admission, signed by the accepting member.
    Admission(Signed<Admission, Unverified>),
    /// A removal, signed by the removing member.
    Removal(Signed<Removal, Unverified>),
}

macro_rules! payload {
    ($t:ty, $domain:ident, $name:literal) => {
        impl SignedPayload for $t {
            const DOMAIN: Domain = Domain::$domain;
            const MAX_BYTES: usize = 8 * 1024;
            const NAME: &'static str = $name;
        }
    };
}
payload!(Founding, FederationFounding, "federation founding");
payload!(Invitation, FederationInvitation, "federation invitation");
payload!(JoinRequest, FederationJoin, "join request");
payload!(Admission, FederationAdmission, "admission");
payload!(Removal, FederationRemoval, "removal");

/// Why a membership event was refused.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// A signature does not verify.
    #[error("a membership event's signature does not verify")]
    Signature(#[from] SignatureError),
    /// The event belongs to another federation.
    #[error("the event belongs to federation {found}, not {expected}")]
    OtherFederation {
        /// The federation named.
        found: FederationId,
        /// This federation.
        expected: FederationId,
    },
    /// The founding statement is not this federation's.
    #[error("the founding statement does not hash to this federation's id")]
    NotOurFounding,
    /// The event is signed by a node that was never admitted.
    #[error("{signer} signed a membership event but was never admitted")]
    NotAMember {
        /// The signer.
        signer: NodeId,
    },
    /// The invitation names another node.
    #[error("the invitation is for {invitee}, not {node}")]
    WrongInvitee {
        /// The node the invitation names.
        invitee: NodeId,
        /// The node that used it.
        node: NodeId,
    },
    /// The one-time code does not match.
    #[error("the one-time code does not match the invitation")]
    WrongCode,
    /// The invitation had expired when it was accepted.
    #[error("the invitation expired at {expires_at}, before it was accepted at {accepted_at}")]
    Expired {
        /// Expiry.
        expires_at: i64,
        /// Acceptance.
        accepted_at: i64,
    },
    /// The join request is not signed by the joining node.
    #[error("the join request for {node} is not signed by that node")]
    NotSelfSigned {
        /// The node.
        node: NodeId,
    },
    /// A name is too long.
    #[error("a node name must be 1 to {MAX_NAME_BYTES} bytes")]
    BadName,
    /// Only the founder removes members, and the founder cannot be removed.
    #[error(
        "only the federation's founder may remove members, and the founder stays ({signer} tried)"
    )]
    NotFounder {
        /// Who tried.
        signer: NodeId,
    },
    /// A one-time invitation was used already.
    #[error("this one-time invitation was used already")]
    InvitationUsed,
    /// The node was removed; removal is final.
    #[error("{0} was removed from the federation; removal is final")]
    Removed(NodeId),
}

/// BLAKE3 of bytes, as a 32-byte array.
pub fn blake3_hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// The member list of one federation: every valid event received, and what follows from them.
#[derive(Debug, Clone)]
pub struct Membership {
    id: FederationId,
    name: String,
    founder: NodeId,
    founding: Signed<Founding, Verified>,
    admissions: BTreeMap<NodeId, Signed<Admission, Verified>>,
    names: BTreeMap<NodeId, String>,
    removals: BTreeMap<NodeId, Signed<Removal, Verified>>,
    /// Admissions waiting for their inviter's or accepter's own admission to arrive.
    waiting: Vec<Signed<Admission, Verified>>,
}

impl Membership {
    /// Founds a federation.
    pub fn found(key: &crate::SecretKey, name: &str, at: i64) -> Result<Self, MembershipError> {
        if name.trim().is_empty() || name.len() > MAX_NAME_BYTES {
            return Err(MembershipError::BadName);
        }
        let founding = Signed::sign(
            key,
            Founding {
                name: name.into(),
                founder: NodeId(key.public()),
                at,
            },
        );
        Self::from_founding(founding.into_unverified())
    }

    /// Starts from a founding statement received from elsewhere.
    pub fn from_founding(signed: Signed<Founding, Unverified>) -> Result<Self, MembershipError> {
        let founding = signed.verify()?;
        if founding.value().founder.key() != founding.signer() {
            return Err(MembershipError::NotSelfSigned {
                node: founding.value().founder,
            });
        }
        let id = FederationId(blake3_hash(founding.payload()));
        let mut names = BTreeMap::new();
        names.insert(founding.value().founder, "founder".to_string());
        Ok(Self {
            id,
            name: founding.value().name.clone(),
            founder: founding.value().founder,
            founding,
            admissions: BTreeMap::new(),
            names,
            removals: BTreeMap::new(),
            waiting: Vec::new(),
        })
    }

    /// The federation's id.
    pub fn id(&self) -> FederationId {
        self.id
    }

    /// The federation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `node` ever joined (founder or admitted), removed or not.
    pub fn ever_admitted(&self, node: &NodeId) -> bool {
        *node == self.founder || self.admissions.contains_key(node)
    }

    /// Whether `node` is a member now.
    pub fn is_member(&self, node: &NodeId) -> bool {
        self.ever_admitted(node) && !self.removals.contains_key(node)
    }

    /// Whether `node` was removed.
    pub fn is_removed(&self, node: &NodeId) -> bool {
        self.removals.contains_key(node)
    }

    /// The current members, with the names they joined under.
    pub fn members(&self) -> Vec<(NodeId, String)> {
        self.names
            .iter()
            .filter(|(n, _)| self.is_member(n))
            .map(|(n, name)| (*n, name.clone()))
            .collect()
    }

    /// The removed nodes.
    pub fn removed(&self) -> BTreeSet<NodeId> {
        self.removals.keys().copied().collect()
    }

    /// Makes an invitation (the signer must be a member).
    pub fn invite(
        &self,
        key: &crate::SecretKey,
        invitee: Option<NodeId>,
        code: Option<[u8; 32]>,
        expires_at: i64,
        nonce: [u8; 16],
    ) -> Result<Signed<Invitation, Verified>, MembershipError> {
        let me = NodeId(key.public());
        if !self.is_member(&me) {
            return Err(MembershipError::NotAMember { signer: me });
        }
        Ok(Signed::sign(
            key,
            Invitation {
                federation: self.id,
                invitee,
                code_hash: code.map(|c| blake3_hash(&c)),
                expires_at,
                nonce,
            },
        ))
    }

    /// Accepts a join request at time `now` (the signer of the result must be a member).
    pub fn accept(
        &mut self,
        key: &crate::SecretKey,
        request: Signed<JoinRequest, Unverified>,
        now: i64,
    ) -> Result<Signed<Admission, Verified>, MembershipError> {
        let me = NodeId(key.public());
        if !self.is_member(&me) {
            return Err(MembershipError::NotAMember { signer: me });
        }
        // Everything is checked before this node signs anything: the request, the invitation,
        // that its inviter is a member now (not merely ever was), expiry at this node's clock,
        // and that a one-time invitation is unused.
        let verified = request.clone().verify()?;
        let req = verified.value();
        if req.node.key() != verified.signer() {
            return Err(MembershipError::NotSelfSigned { node: req.node });
        }
        if self.is_removed(&req.node) {
            return Err(MembershipError::Removed(req.node));
        }
        let invitation = req.invitation.clone().verify()?;
        let inviter = NodeId(*invitation.signer());
        if !self.is_member(&inviter) {
            return Err(MembershipError::NotAMember { signer: inviter });
        }
        if invitation.value().expires_at < now {
            return Err(MembershipError::Expired {
                expires_at: invitation.value().expires_at,
                accepted_at: now,
            });
        }
        let used = self.admissions.values().any(|a| {
            a.value()
                .request
                .clone()
                .verify()
                .is_ok_and(|r| r.value().invitation.signature() == invitation.signature())
        });
        if used {
            return Err(MembershipError::InvitationUsed);
        }
        let admission = Signed::sign(
            key,
            Admission {
                request,
                accepted_at: now,
            },
        );
        // Validates the rest (invitee, code, names) exactly as every other member will.
        self.check_admission(&admission)?;
        self.apply(MembershipEvent::Admission(
            admission.clone().into_unverified(),
        ))?;
        Ok(admission)
    }

    /// Removes a node (only the founder may, and the founder cannot be removed).
    pub fn remove(
        &mut self,
        key: &crate::SecretKey,
        node: NodeId,
        reason: &str,
        now: i64,
    ) -> Result<Signed<Removal, Verified>, MembershipError> {
        let removal = Signed::sign(
            key,
            Removal {
                federation: self.id,
                node,
                at: now,
                reason: reason.into(),
            },
        );
        self.apply(MembershipEvent::Removal(removal.clone().into_unverified()))?;
        Ok(removal)
    }

    /// Checks an admission completely; the inviter and accepter must already be known.
    fn check_admission(
        &self,
        a: &Signed<Admission, Verified>,
    ) -> Result<(NodeId, String), MembershipError> {
        let accepter = NodeId(*a.signer());
        let request = a.value().request.clone().verify()?;
        let req = request.value();
        if req.node.key() != request.signer() {
            return Err(MembershipError::NotSelfSigned { node: req.node });
        }
        if req.name.trim().is_empty() || req.name.len() > MAX_NAME_BYTES {
            return Err(MembershipError::BadName);
        }
        let invitation = req.invitation.clone().verify()?;
        let inv = invitation.value();
        if inv.federation != self.id {
            return Err(MembershipError::OtherFederation {
                found: inv.federation,
                expected: self.id,
            });
        }
        let inviter = NodeId(*invitation.signer());
        for signer in [inviter, accepter] {
            if !self.ever_admitted(&signer) {
                return Err(MembershipError::NotAMember { signer });
            }
        }
        if let Some(invitee) = inv.invitee
            && invitee != req.node
        {
            return Err(MembershipError::WrongInvitee {
                invitee,
                node: req.node,
            });
        }
        if let Some(hash) = inv.code_hash
            && req.code.map(|c| blake3_hash(&c)) != Some(hash)
        {
            return Err(MembershipError::WrongCode);
        }
        if a.value().accepted_at > inv.expires_at {
            return Err(MembershipError::Expired {
                expires_at: inv.expires_at,
                accepted_at: a.value().accepted_at,
            });
        }
        Ok((req.node, req.name.clone()))
    }

    /// Applies an event from anywhere. Returns whether it changed anything. Admissions whose
    /// inviter or accepter is not yet known wait until they are.
    pub fn apply(&mut self, event: MembershipEvent) -> Result<bool, MembershipError> {
        match event {
            MembershipEvent::Founding(f) => {
                let other = Membership::from_founding(f)?;
                if other.id != self.id {
                    return Err(MembershipError::NotOurFounding);
                }
                Ok(false)
            }
            MembershipEvent::Removal(r) => {
                let r = r.verify()?;
                if r.value().federation != self.id {
                    return Err(MembershipError::OtherFederation {
                        found: r.value().federation,
                        expected: self.id,
                    });
                }
                let signer = NodeId(*r.signer());
                if signer != self.founder || r.value().node == self.founder {
                    return Err(MembershipError::NotFounder { signer });
                }
                let node = r.value().node;
                if self.removals.contains_key(&node) {
                    return Ok(false);
                }
                self.removals.insert(node, r);
                Ok(true)
            }
            MembershipEvent::Admission(a) => {
                let a = a.verify()?;
                let accepter = NodeId(*a.signer());
                let inviter = a
                    .value()
                    .request
                    .clone()
                    .verify()
                    .ok()
                    .and_then(|r| r.value().invitation.clone().verify().ok())
                    .map(|i| NodeId(*i.signer()));
                let known = self.ever_admitted(&accepter)
                    && inviter.is_some_and(|i| self.ever_admitted(&i));
                if !known {
                    // Check what can be checked now; the rest when the signers are known.
                    if self.waiting.len() < 4096 {
                        self.waiting.push(a);
                    }
                    return Ok(false);
                }
                let (node, name) = self.check_admission(&a)?;
                if self.admissions.contains_key(&node) || node == self.founder {
                    return Ok(false);
                }
                self.admissions.insert(node, a);
                self.names.insert(node, name);
                self.retry_waiting();
                Ok(true)
            }
        }
    }

    fn retry_waiting(&mut self) {
        let waiting = std::mem::take(&mut self.waiting);
        for a in waiting {
            let _ = self.apply(MembershipEvent::Admission(a.into_unverified()));
        }
    }

    /// The signed removal of `node`, if it was removed.
    pub fn removal(&self, node: &NodeId) -> Option<&Signed<Removal, Verified>> {
        self.removals.get(node)
    }

    /// Every event, for handing to another member.
    pub fn events(&self) -> Vec<MembershipEvent> {
        let mut out = vec![MembershipEvent::Founding(
            self.founding.clone().into_unverified(),
        )];
        out.extend(
            self.admissions
                .values()
                .map(|a| MembershipEvent::Admission(a.clone().into_unverified())),
        );
        out.extend(
            self.removals
                .values()
                .map(|r| MembershipEvent::Removal(r.clone().into_unverified())),
        );
        out
    }

    /// The founding statement.
    pub fn founding(&self) -> Signed<Founding, Unverified> {
        self.founding.clone().into_unverified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;

    fn key() -> SecretKey {
        SecretKey::generate().expect("random")
    }

    fn join(
        m: &mut Membership,
        accepter: &SecretKey,
        invitation: Signed<Invitation, Verified>,
        joiner: &SecretKey,
        code: Option<[u8; 32]>,
        now: i64,
    ) -> Result<Signed<Admission, Verified>, MembershipError> {
        let request = Signed::sign(
            joiner,
            JoinRequest {
                invitation: invitation.into_unverified(),
                node: NodeId(joiner.public()),
                name: "joiner".into(),
                code,
                at: now,
            },
        );
        m.accept(accepter, request.into_unverified(), now)
    }

    #[test]
    fn invitations_admit_the_named_node_before_expiry() {
        let founder = key();
        let mut m = Membership::found(&founder, "esa", 0).expect("found");
        let bob = key();
        let inv = m
            .invite(&founder, Some(NodeId(bob.public())), None, 100, [1; 16])
            .expect("invite");
        let mallory = key();
        assert!(matches!(
            join(&mut m, &founder, inv.clone(), &mallory, None, 10),
            Err(MembershipError::WrongInvitee { .. })
        ));
        assert!(matches!(
            join(&mut m, &founder, inv.clone(), &bob, None, 101),
            Err(MembershipError::Expired { .. })
        ));
        join(&mut m, &founder, inv, &bob, None, 10).expect("admitted");
        assert!(m.is_member(&NodeId(bob.public())));
        assert!(!m.is_member(&NodeId(mallory.public())));
    }

    #[test]
    fn removed_inviters_and_used_codes_admit_nobody() {
        let founder = key();
        let mut m = Membership::found(&founder, "esa", 0).expect("found");
        let bob = key();
        let inv = m
            .invite(&founder, Some(NodeId(bob.public())), None, 100, [1; 16])
            .expect("i");
        join(&mut m, &founder, inv, &bob, None, 1).expect("bob");
        // Bob invites Carol, then Bob is removed: the invitation no longer admits anyone.
        let carol = key();
        let from_bob = m
            .invite(&bob, Some(NodeId(carol.public())), None, 100, [2; 16])
            .expect("i");
        m.remove(&founder, NodeId(bob.public()), "gone", 2)
            .expect("remove");
        assert!(matches!(
            join(&mut m, &founder, from_bob, &carol, None, 3),
            Err(MembershipError::NotAMember { .. })
        ));
        // Bob, removed, cannot remove anyone; only the founder removes.
        assert!(matches!(
            m.remove(&bob, NodeId(founder.public()), "takeover", 4),
            Err(MembershipError::NotFounder { .. })
        ));
        // A one-time code admits one node.
        let code = m
            .invite(&founder, None, Some([5; 32]), 100, [3; 16])
            .expect("i");
        join(&mut m, &founder, code.clone(), &carol, Some([5; 32]), 5).expect("carol");
        let dave = key();
        assert!(matches!(
            join(&mut m, &founder, code, &dave, Some([5; 32]), 6),
            Err(MembershipError::InvitationUsed)
        ));
        assert!(!m.is_member(&NodeId(dave.public())));
    }

    #[test]
    fn one_time_codes_must_match() {
        let founder = key();
        let mut m = Membership::found(&founder, "esa", 0).expect("found");
        let inv = m
            .invite(&founder, None, Some([9; 32]), 100, [2; 16])
            .expect("invite");
        let carol = key();
        assert!(matches!(
            join(&mut m, &founder, inv.clone(), &carol, Some([8; 32]), 1),
            Err(MembershipError::WrongCode)
        ));
        join(&mut m, &founder, inv, &carol, Some([9; 32]), 1).expect("admitted");
        assert!(m.is_member(&NodeId(carol.public())));
    }

    #[test]
    fn events_converge_in_any_order_and_removal_is_final() {
        let founder = key();
        let mut a = Membership::found(&founder, "esa", 0).expect("found");
        let bob = key();
        let carol = key();
        let inv_b = a
            .invite(&founder, Some(NodeId(bob.public())), None, 100, [1; 16])
            .expect("i");
        join(&mut a, &founder, inv_b, &bob, None, 1).expect("bob");
        // Bob invites Carol and accepts her himself.
        let inv_c = a
            .invite(&bob, Some(NodeId(carol.public())), None, 100, [2; 16])
            .expect("i");
        join(&mut a, &bob, inv_c, &carol, None, 2).expect("carol");
        a.remove(&founder, NodeId(bob.public()), "left", 3)
            .expect("remove");

        // Another member receives the events in reverse order.
        let mut b = Membership::from_founding(a.founding()).expect("founding");
        let mut events = a.events();
        events.reverse();
        for e in events {
            let _ = b.apply(e);
        }
        assert_eq!(a.members(), b.members());
        assert!(b.is_member(&NodeId(carol.public())));
        assert!(!b.is_member(&NodeId(bob.public())));
        assert!(b.is_removed(&NodeId(bob.public())));

        // A stranger's removal is refused.
        let stranger = key();
        let forged = Signed::sign(
            &stranger,
            Removal {
                federation: a.id(),
                node: NodeId(founder.public()),
                at: 4,
                reason: "takeover".into(),
            },
        );
        assert!(matches!(
            b.apply(MembershipEvent::Removal(forged.into_unverified())),
            Err(MembershipError::NotFounder { .. })
        ));
        assert!(b.is_member(&NodeId(founder.public())));
    }
}
