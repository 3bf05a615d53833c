//! What every node computes alike: the policies known from the members' adverts, and the
//! holders of each among the candidates they describe.

use orrery_protocol::NodeId;
use orrery_protocol::advert::NodeAdvert;
use orrery_protocol::preservation::{Assignment, Candidate, PreservationPolicy, Subject, assign};

use super::now;
use crate::store::Store;

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
pub(super) fn says_complete(a: &NodeAdvert, subject: &Subject) -> bool {
    a.held.iter().any(|h| &h.subject == subject && h.complete)
}

/// Whether `node`'s advert among `adverts` lists a complete copy of `subject`.
pub(super) fn complete_at(adverts: &[NodeAdvert], node: &NodeId, subject: &Subject) -> bool {
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
