//! What every node computes alike: the policies known from the members' adverts, and the
//! holders of each among the candidates they describe.

use orrery_protocol::NodeId;
use orrery_protocol::advert::{CollectionSummary, NodeAdvert};
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
    /// The nodes the subject's access policy lets have its bytes (`None`: every member).
    readers: Option<Vec<NodeId>>,
}

impl Plan {
    /// Whether the subject's access policy lets `node` have its bytes (its publisher always).
    pub(crate) fn may_hold(&self, node: &NodeId) -> bool {
        Some(*node) == publisher_of(&self.policy.subject)
            || self.readers.as_ref().is_none_or(|r| r.contains(node))
    }
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
    /// The policies it set for its own collections, described by its own catalog.
    pub(crate) own: Vec<Described>,
}

/// A policy, and what its publisher says of its subject.
#[derive(Debug, Clone)]
pub(crate) struct Described {
    policy: PreservationPolicy,
    bytes: u64,
    files: u64,
    readers: Option<Vec<NodeId>>,
}

impl Described {
    /// A project's `policy`, its owners' (read from the project, which this node holds), with
    /// the nodes that may hold the project (`None`: every member; see
    /// `service::sync::may_hold_project`).
    pub(crate) fn project(policy: PreservationPolicy, readers: Option<Vec<NodeId>>) -> Self {
        Self {
            policy,
            bytes: 0,
            files: 0,
            readers,
        }
    }

    /// `policy`, its subject described by the publisher's `summaries` (0 bytes and files if
    /// they do not list it: no copy is made until they do).
    pub(crate) fn new(policy: PreservationPolicy, summaries: &[CollectionSummary]) -> Self {
        let found = match &policy.subject {
            Subject::Collection { id, .. } => summaries.iter().find(|c| &c.id == id),
            Subject::Project(_) => None,
        };
        let (bytes, files, readers) =
            found.map_or((0, 0, None), |c| (c.bytes, c.products, c.readers.clone()));
        Self {
            policy,
            bytes,
            files,
            readers,
        }
    }
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
        own: Vec<Described>,
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

/// The copy of project `p` kept here, whose stored outputs are in `blobs` (the project's own
/// store): the document and every output it refers to, complete once all are present.
pub(crate) fn project_copy(
    p: &orrery_crdt::Project,
    blobs: &crate::blobs::BlobStore,
) -> orrery_protocol::preservation::HeldCopy {
    let refs = p.blob_refs();
    orrery_protocol::preservation::HeldCopy {
        subject: Subject::Project(p.id()),
        files: refs.len() as u64 + 1,
        bytes: refs.iter().map(|b| b.len).sum(),
        complete: refs.iter().all(|b| blobs.has(b)),
        checked_at: now(),
    }
}

/// Whether advert `a` lists a complete copy of `subject`.
pub(super) fn says_complete(a: &NodeAdvert, subject: &Subject) -> bool {
    a.held.iter().any(|h| &h.subject == subject && h.complete)
}

/// Whether advert `a` lists a copy of `subject`, complete or begun.
fn lists(a: &NodeAdvert, subject: &Subject) -> bool {
    a.held.iter().any(|h| &h.subject == subject)
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
    let mut policies: Vec<Described> = me.own.clone();
    for a in adverts.iter().filter(|a| a.node != me.node) {
        for p in a.preservation_policies() {
            if matches!(p.subject, Subject::Collection { .. }) {
                policies.push(Described::new(p, &a.collections));
            }
        }
    }
    // One policy per subject: the newest.
    policies
        .sort_by(|a, b| (&a.policy.subject, b.policy.seq).cmp(&(&b.policy.subject, a.policy.seq)));
    policies.dedup_by(|a, b| a.policy.subject == b.policy.subject);
    policies
        .into_iter()
        .filter(|d| d.policy.validate().is_ok())
        .map(|d| {
            let Described {
                policy,
                bytes,
                files,
                readers,
            } = d;
            let mut plan = Plan {
                policy,
                bytes,
                files,
                assignment: Assignment {
                    holders: Vec::new(),
                    shortfall: None,
                },
                readers,
            };
            let (policy, may_hold) = (&plan.policy, |n: &NodeId| plan.may_hold(n));
            let subject = &policy.subject;
            let publisher = publisher_of(subject);
            let mut candidates: Vec<Candidate> = adverts
                .iter()
                .filter(|a| a.node != me.node)
                .filter_map(|a| {
                    // A copy begun counts as held, complete or not: its room is taken, and
                    // a holder whose advertised room shrank as it fetched keeps its place.
                    let holds = Some(a.node) == publisher || lists(a, subject);
                    // A project goes by sync to the nodes that may hold it, room or not.
                    let project = matches!(subject, Subject::Project(_));
                    (holds || project || a.spare_bytes > 0).then(|| Candidate {
                        node: a.node,
                        institution: a.institution.clone(),
                        spare_bytes: a.spare_bytes,
                        holds,
                        may_hold: may_hold(&a.node),
                    })
                })
                .collect();
            // A copy begun here counts as held here, so that fetching it (which lowers the
            // room left) does not move it elsewhere halfway.
            let i_hold = Some(me.node) == publisher
                || me.holds.contains(subject)
                || me.started.iter().any(|(s, _)| s == subject);
            if i_hold || me.spare_bytes > 0 || matches!(subject, Subject::Project(_)) {
                candidates.push(Candidate {
                    node: me.node,
                    institution: me.institution.clone(),
                    spare_bytes: me.spare_bytes,
                    holds: i_hold,
                    may_hold: may_hold(&me.node),
                });
            }
            // The publisher holds the original: it is always one of the copies, as if pinned.
            let mut counted = policy.clone();
            if let Some(p) = publisher
                && !counted.pinned.contains(&p)
            {
                counted.pinned.insert(0, p);
            }
            plan.assignment = assign(&counted, bytes, &candidates);
            plan
        })
        .collect()
}

fn publisher_of(subject: &Subject) -> Option<NodeId> {
    match subject {
        Subject::Collection { publisher, .. } => Some(*publisher),
        Subject::Project(_) => None,
    }
}
