//! Preservation policies: how many copies of a collection or a project the federation keeps,
//! and at how many institutions, as signed data; and the assignment of holders that every node
//! computes alike from the same candidates.
//!
//! A policy is signed by who may set it: a collection's policy by the node that publishes the
//! collection, a project's by one of its owners (the caller checks the role; this crate knows
//! no projects). A later policy for the same subject (higher `seq`) replaces an earlier one.
//!
//! Holders are chosen by rendezvous hashing: each candidate's score is the BLAKE3 of the subject
//! and the candidate's id, and candidates are taken in score order, pinned nodes first, skipping
//! those without room and (when asked) those at an institution already chosen. Every node that
//! sees the same candidates picks the same holders, whatever order it lists them in; a node
//! joining or leaving moves only the copies it takes or held.

use serde::{Deserialize, Serialize};

use crate::identity::NodeId;
use crate::limits::{MAX_NAME_BYTES, MAX_SIGNED_PAYLOAD};
use crate::seal::ProjectId;
use crate::signing::{Domain, SignedPayload};

/// Most copies a policy may ask for.
pub const MAX_COPIES: u8 = 9;

/// What a policy is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Subject {
    /// A collection, as its publishing node names it.
    Collection {
        /// The node that publishes it.
        publisher: NodeId,
        /// Its collection id there.
        id: String,
    },
    /// A project.
    Project(ProjectId),
}

impl Subject {
    /// The bytes a candidate's score is computed from.
    fn key(&self) -> Vec<u8> {
        match self {
            Subject::Collection { publisher, id } => {
                let mut k = b"collection/".to_vec();
                k.extend_from_slice(publisher.key().as_bytes());
                k.extend_from_slice(id.as_bytes());
                k
            }
            Subject::Project(p) => {
                let mut k = b"project/".to_vec();
                k.extend_from_slice(&p.0);
                k
            }
        }
    }
}

/// How a subject is preserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreservationPolicy {
    /// What is preserved.
    pub subject: Subject,
    /// How many copies the federation keeps (1 to [`MAX_COPIES`]), the publisher's own
    /// included when it is a candidate.
    pub copies: u8,
    /// Whether every copy must be at a different institution.
    pub distinct_institutions: bool,
    /// Nodes that hold a copy whenever they are candidates (at most `copies`).
    pub pinned: Vec<NodeId>,
    /// Replaces any policy for the same subject with a lower number.
    pub seq: u64,
    /// When it was set, in seconds since the Unix epoch.
    pub issued_at: i64,
}

impl SignedPayload for PreservationPolicy {
    const DOMAIN: Domain = Domain::PreservationPolicy;
    const MAX_BYTES: usize = MAX_SIGNED_PAYLOAD;
    const NAME: &'static str = "preservation policy";
}

/// Why a policy is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Too few or too many copies.
    #[error("a policy keeps 1 to {MAX_COPIES} copies, not {0}")]
    Copies(u8),
    /// More pinned nodes than copies, or one pinned twice.
    #[error("a policy pins at most as many distinct nodes as it keeps copies")]
    Pinned,
    /// A collection id that is not a plain name.
    #[error(
        "a collection id is 1 to {MAX_NAME_BYTES} letters, digits, '-', '_' and '.', starting with a letter or digit"
    )]
    CollectionId,
}

impl PreservationPolicy {
    /// Checks the policy's limits.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.copies == 0 || self.copies > MAX_COPIES {
            return Err(PolicyError::Copies(self.copies));
        }
        let mut pinned = self.pinned.clone();
        pinned.sort_unstable_by_key(|n| *n.key().as_bytes());
        pinned.dedup();
        if pinned.len() != self.pinned.len() || pinned.len() > usize::from(self.copies) {
            return Err(PolicyError::Pinned);
        }
        if let Subject::Collection { id, .. } = &self.subject
            && !plain_collection_id(id)
        {
            return Err(PolicyError::CollectionId);
        }
        Ok(())
    }
}

/// Most policies one advert carries.
pub const MAX_POLICIES: usize = 256;
/// Most copies one advert lists.
pub const MAX_HELD: usize = 1024;

/// A copy a node keeps of another node's collection, as of its last look at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldCopy {
    /// What it is a copy of.
    pub subject: Subject,
    /// Files held.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Whether every file of the subject is held, each matching its BLAKE3 when last checked.
    pub complete: bool,
    /// When the copy was last checked against its hashes (seconds since the epoch).
    pub checked_at: i64,
}

impl PreservationPolicy {
    /// Whether `signer` may set this policy: a collection's publisher (a project's owners are
    /// checked by the caller, who knows the project).
    pub fn set_by(&self, signer: &NodeId) -> bool {
        matches!(&self.subject, Subject::Collection { publisher, .. } if publisher == signer)
    }
}

/// Whether `id` is a plain collection name: holders name a directory after it.
pub fn plain_collection_id(id: &str) -> bool {
    (1..=MAX_NAME_BYTES).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A node that could hold a copy, as its advert and reachability describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The node.
    pub node: NodeId,
    /// Its institution, as its advert names it (compared without case or surrounding space).
    pub institution: String,
    /// Bytes it offers for copies.
    pub spare_bytes: u64,
    /// Whether it already holds a copy (its room then need not fit the subject again).
    pub holds: bool,
    /// Whether the subject's access policy lets it have the bytes (a node that may not is
    /// never chosen).
    pub may_hold: bool,
}

/// Who holds the copies, and what the policy lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The holders, in the order they were chosen.
    pub holders: Vec<NodeId>,
    /// Why fewer than the policy's copies could be placed, in words an operator can act on.
    pub shortfall: Option<String>,
}

fn institution(c: &Candidate) -> String {
    c.institution.trim().to_lowercase()
}

/// The holders of `policy`'s subject, of `bytes` bytes, among `candidates` (see the module
/// docs). A candidate listed twice counts once.
pub fn assign(policy: &PreservationPolicy, bytes: u64, candidates: &[Candidate]) -> Assignment {
    let key = policy.subject.key();
    let score = |c: &Candidate| {
        let mut h = blake3::Hasher::new();
        h.update(&key);
        h.update(c.node.key().as_bytes());
        *h.finalize().as_bytes()
    };
    // A node listed twice counts once, as its most generous listing (whatever the order).
    let mut unique: Vec<&Candidate> = candidates.iter().collect();
    unique.sort_by(|a, b| {
        (
            a.node.key().as_bytes(),
            std::cmp::Reverse((a.may_hold, a.holds, a.spare_bytes)),
            institution(a),
        )
            .cmp(&(
                b.node.key().as_bytes(),
                std::cmp::Reverse((b.may_hold, b.holds, b.spare_bytes)),
                institution(b),
            ))
    });
    unique.dedup_by(|a, b| a.node == b.node);
    let listed = unique.len();
    let mut ranked: Vec<(bool, [u8; 32], &Candidate)> = unique
        .into_iter()
        .map(|c| (!policy.pinned.contains(&c.node), score(c), c))
        .collect();
    // Pinned first, then by score; the node id breaks (impossible) ties.
    ranked.sort_by(|a, b| {
        (a.0, a.1, a.2.node.key().as_bytes()).cmp(&(b.0, b.1, b.2.node.key().as_bytes()))
    });
    let want = usize::from(policy.copies.clamp(1, MAX_COPIES));
    let mut holders: Vec<NodeId> = Vec::with_capacity(want);
    let mut institutions: Vec<String> = Vec::new();
    let (mut no_room, mut same_place, mut refused) = (0usize, 0usize, 0usize);
    for (_, _, c) in ranked {
        if holders.len() == want {
            break;
        }
        if holders.contains(&c.node) {
            continue;
        }
        if !c.may_hold {
            refused += 1;
            continue;
        }
        if !c.holds && c.spare_bytes < bytes {
            no_room += 1;
            continue;
        }
        let place = institution(c);
        if policy.distinct_institutions && institutions.contains(&place) {
            same_place += 1;
            continue;
        }
        institutions.push(place);
        holders.push(c.node);
    }
    let shortfall = (holders.len() < want).then(|| {
        let mut why = format!(
            "{} of {} copies placed: {} candidate node(s)",
            holders.len(),
            want,
            listed
        );
        if no_room > 0 {
            why.push_str(&format!(", {no_room} without {bytes} bytes of room"));
        }
        if refused > 0 {
            why.push_str(&format!(
                ", {refused} that its access policy does not let have its bytes"
            ));
        }
        if same_place > 0 {
            why.push_str(&format!(
                ", {same_place} at an institution that already holds a copy"
            ));
        }
        why.push_str("; more member nodes offering storage at other institutions are needed");
        why
    });
    Assignment { holders, shortfall }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::identity::SecretKey;

    fn node(seed: u8) -> NodeId {
        NodeId(SecretKey::from_bytes(&[seed; 32]).expect("a key").public())
    }

    fn candidate(seed: u8, institution: &str, spare: u64) -> Candidate {
        Candidate {
            node: node(seed),
            institution: institution.into(),
            spare_bytes: spare,
            holds: false,
            may_hold: true,
        }
    }

    fn policy(copies: u8, distinct: bool, pinned: Vec<NodeId>) -> PreservationPolicy {
        PreservationPolicy {
            subject: Subject::Collection {
                publisher: node(200),
                id: "xmm-epic".into(),
            },
            copies,
            distinct_institutions: distinct,
            pinned,
            seq: 1,
            issued_at: 0,
        }
    }

    #[test]
    fn copies_go_to_distinct_institutions_with_room() {
        let cs = vec![
            candidate(1, "ESA", 100),
            candidate(2, "ESA", 100),
            candidate(3, "ARI Heidelberg", 100),
            candidate(4, "CDS", 10),
            candidate(5, " cds ", 100),
        ];
        let a = assign(&policy(3, true, vec![]), 50, &cs);
        assert_eq!(a.holders.len(), 3, "{a:?}");
        assert_eq!(a.shortfall, None);
        let places: std::collections::BTreeSet<String> = a
            .holders
            .iter()
            .map(|h| institution(cs.iter().find(|c| c.node == *h).expect("a candidate")))
            .collect();
        assert_eq!(places.len(), 3);
        assert!(!a.holders.contains(&node(4)), "no room");
    }

    #[test]
    fn a_shortfall_says_why() {
        let cs = vec![
            candidate(1, "ESA", 100),
            candidate(2, "ESA", 100),
            candidate(3, "CDS", 1),
        ];
        let a = assign(&policy(3, true, vec![]), 50, &cs);
        assert_eq!(a.holders.len(), 1);
        let why = a.shortfall.expect("short");
        assert!(why.contains("1 of 3"), "{why}");
        assert!(why.contains("without 50 bytes"), "{why}");
        assert!(why.contains("institution that already holds"), "{why}");
    }

    #[test]
    fn pinned_nodes_hold_first_and_holding_needs_no_new_room() {
        let mut cs = vec![
            candidate(1, "ESA", 100),
            candidate(2, "CDS", 100),
            candidate(3, "ARI", 0),
        ];
        cs[2].holds = true;
        let a = assign(&policy(2, true, vec![node(3)]), 50, &cs);
        assert_eq!(a.holders[0], node(3));
        assert_eq!(a.holders.len(), 2);
    }

    #[test]
    fn a_node_the_access_policy_refuses_is_never_chosen() {
        let mut cs = vec![
            candidate(1, "ESA", 100),
            candidate(2, "CDS", 100),
            candidate(3, "ARI", 100),
        ];
        cs[1].may_hold = false;
        let a = assign(&policy(3, true, vec![node(2)]), 50, &cs);
        assert!(!a.holders.contains(&node(2)), "{a:?}");
        assert_eq!(a.holders.len(), 2);
        let why = a.shortfall.expect("short");
        assert!(
            why.contains("1 that its access policy does not let"),
            "{why}"
        );
    }

    #[test]
    fn limits_are_checked() {
        assert!(policy(0, false, vec![]).validate().is_err());
        assert!(policy(MAX_COPIES + 1, false, vec![]).validate().is_err());
        assert!(policy(1, false, vec![node(1), node(2)]).validate().is_err());
        assert!(policy(2, false, vec![node(1), node(1)]).validate().is_err());
        assert!(policy(3, true, vec![node(1)]).validate().is_ok());
        // A collection id names a directory at every holder: nothing but a plain name.
        for id in ["../../etc", "/root/.ssh", "a/b", "", ".", "..", ".hidden"] {
            let mut p = policy(3, true, vec![]);
            p.subject = Subject::Collection {
                publisher: node(200),
                id: id.into(),
            };
            assert_eq!(p.validate(), Err(PolicyError::CollectionId), "{id:?}");
        }
    }

    proptest! {
        #[test]
        fn every_node_computes_the_same_holders(
            spec in proptest::collection::vec((1u8..60, 0u8..6, 0u64..200), 0..20),
            copies in 1u8..=MAX_COPIES,
            distinct: bool,
            bytes in 0u64..150,
            rotate in 0usize..20,
        ) {
            let cs: Vec<Candidate> = spec
                .iter()
                .map(|(s, i, room)| candidate(*s, &format!("inst{i}"), *room))
                .collect();
            let p = policy(copies, distinct, vec![]);
            let a = assign(&p, bytes, &cs);
            let mut other = cs.clone();
            other.reverse();
            if !other.is_empty() {
                let r = rotate % other.len();
                other.rotate_left(r);
            }
            prop_assert_eq!(&a, &assign(&p, bytes, &other));
            // No holder twice, never more than asked, only candidates with room.
            let mut seen = a.holders.clone();
            seen.sort_unstable_by_key(|n| *n.key().as_bytes());
            seen.dedup();
            prop_assert_eq!(seen.len(), a.holders.len());
            prop_assert!(a.holders.len() <= usize::from(copies));
            for h in &a.holders {
                prop_assert!(cs.iter().any(|c| c.node == *h && c.spare_bytes >= bytes));
            }
            prop_assert_eq!(a.shortfall.is_some(), a.holders.len() < usize::from(copies));
        }

        #[test]
        fn a_node_joining_moves_at_most_one_copy(
            seeds in proptest::collection::btree_set(1u8..100, 1..15),
            newcomer in 100u8..120,
            copies in 1u8..5,
        ) {
            let cs: Vec<Candidate> = seeds.iter().map(|s| candidate(*s, &format!("i{s}"), 100)).collect();
            let p = policy(copies, true, vec![]);
            let before = assign(&p, 10, &cs);
            let mut more = cs.clone();
            more.push(candidate(newcomer, &format!("i{newcomer}"), 100));
            let after = assign(&p, 10, &more);
            let kept = before.holders.iter().filter(|h| after.holders.contains(h)).count();
            prop_assert!(before.holders.len() - kept <= 1, "{:?} -> {:?}", before, after);
        }
    }
}
