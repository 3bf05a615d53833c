//! Node adverts: what a node holds and offers, signed by the node and gossiped to the federation.
//!
//! Each advert carries a sequence number and an expiry. A replica keeps, per node, the advert
//! with the highest sequence number that has not expired; an older or replayed advert never
//! overwrites a newer one, and adverts from nodes that are not members are refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::federation::{FederationId, Membership};
use crate::identity::{AuthorId, NodeId};
use crate::preservation::{HeldCopy, MAX_HELD, MAX_POLICIES, PreservationPolicy};
use crate::signing::{Domain, SignatureError, Signed, SignedPayload, Unverified, Verified};

/// Largest encoded advert.
pub const MAX_ADVERT_BYTES: usize = 256 * 1024;
/// Most collections one advert lists.
pub const MAX_COLLECTIONS: usize = 256;

/// A collection a node holds, summarised for the federation: enough for another node to tell
/// whether a query could match any of its products, so federated search asks only the nodes
/// that might answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionSummary {
    /// The collection's id at its node.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The missions its products name; `None` when there are more than
    /// [`CollectionSummary::MAX_VALUES`] (then any mission may match).
    pub missions: Option<Vec<String>>,
    /// The instruments, likewise.
    pub instruments: Option<Vec<String>>,
    /// The ObsCore product types, likewise.
    pub product_types: Option<Vec<String>>,
    /// The spectral bands, likewise.
    pub bands: Option<Vec<String>>,
    /// The licences, likewise.
    pub licences: Option<Vec<String>>,
    /// The publishers, likewise.
    pub publishers: Option<Vec<String>>,
    /// The tags its products carry, likewise.
    pub tags: Option<Vec<String>>,
    /// Number of products.
    pub products: u64,
    /// Total bytes.
    pub bytes: u64,
    /// Sky coverage: a bitmap of 10° × 10° cells in (Dec, RA), see
    /// [`CollectionSummary::sky_cell`]. Empty when no product has a position.
    pub sky: Vec<u8>,
    /// Time coverage (MJD start, end), if known.
    pub time: Option<(f64, f64)>,
    /// Whether the collection's last scan finished; `false` when it was interrupted (or is
    /// running), and the collection holds only part of what its node publishes.
    pub complete: bool,
    /// The member nodes its access policy lets fetch its files (at most
    /// [`CollectionSummary::MAX_READERS`]); `None`: every member. A copy is never assigned to a
    /// node not named here.
    pub readers: Option<Vec<NodeId>>,
}

impl CollectionSummary {
    /// Most values listed per facet.
    pub const MAX_VALUES: usize = 32;
    /// Most nodes an access policy names.
    pub const MAX_READERS: usize = 64;
    /// Cells of the sky bitmap: 18 rows of Dec by 36 columns of RA.
    pub const SKY_CELLS: usize = 18 * 36;

    /// The bit of the cell in Dec row `row` (0 = -90..-80) and RA column `col` (0 = 0..10),
    /// clamped into the grid.
    pub fn sky_cell(row: i64, col: i64) -> usize {
        (row.clamp(0, 17) * 36 + col.clamp(0, 35)) as usize
    }

    /// Whether the bitmap has cell `index`.
    pub fn has_sky_cell(&self, index: usize) -> bool {
        self.sky
            .get(index / 8)
            .is_some_and(|byte| byte & (1 << (index % 8)) != 0)
    }

    /// Whether every list and the bitmap stay within their limits.
    pub fn within_limits(&self) -> bool {
        let lists = [
            &self.missions,
            &self.instruments,
            &self.product_types,
            &self.bands,
            &self.licences,
            &self.publishers,
            &self.tags,
        ];
        let short = |v: &String| v.len() <= 256;
        lists.iter().all(|l| {
            l.as_ref()
                .is_none_or(|l| l.len() <= Self::MAX_VALUES && l.iter().all(short))
        }) && self.id.len() <= 64
            && self
                .readers
                .as_ref()
                .is_none_or(|r| r.len() <= Self::MAX_READERS)
            && self.title.len() <= 1024
            && self.sky.len() <= Self::SKY_CELLS.div_ceil(8)
    }
}

/// A compute environment a node offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeOffer {
    /// Environment id, e.g. "jupyter".
    pub environment: String,
    /// Cores per lab.
    pub cores: u32,
    /// Memory per lab, in MiB.
    pub memory_mib: u64,
    /// GPUs per lab.
    pub gpus: u32,
    /// Labs that can start now.
    pub free_slots: u32,
    /// The hash of the environment's package lock (empty when the offer does not name one).
    #[serde(default)]
    pub lock: String,
}

/// An author's signed statement that a node hosts them: projects with the author as a member
/// may be replicated to that node. Without it a node could claim any author to receive their
/// projects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hosting {
    /// The author.
    pub author: AuthorId,
    /// The node that holds the author's key and edits for them.
    pub node: NodeId,
    /// The federation the statement is made in.
    pub federation: FederationId,
    /// The statement lapses after this time (seconds since the epoch); a node that still
    /// holds the author's key renews it with every advert.
    pub expires_at: i64,
}

impl SignedPayload for Hosting {
    const DOMAIN: Domain = Domain::Hosting;
    const MAX_BYTES: usize = 256;
    const NAME: &'static str = "author hosting";
}

/// What a node says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeAdvert {
    /// The federation it is advertised in.
    pub federation: FederationId,
    /// The node.
    pub node: NodeId,
    /// Increases with every new advert of this node.
    pub seq: u64,
    /// When it was issued (seconds since the epoch).
    pub issued_at: i64,
    /// When it stops being valid.
    pub expires_at: i64,
    /// Display name.
    pub name: String,
    /// Institution.
    pub institution: String,
    /// Contact address.
    pub contact: String,
    /// Addresses it listens on (multiaddrs).
    pub addresses: Vec<String>,
    /// The authors whose keys live on this node, each vouching for it with a signed [`Hosting`]:
    /// projects with them as members replicate here.
    pub authors: Vec<Signed<Hosting, Unverified>>,
    /// Collections held.
    pub collections: Vec<CollectionSummary>,
    /// Compute offered.
    pub compute: Vec<ComputeOffer>,
    /// Bytes it offers for copies of other members' collections (0: none).
    pub spare_bytes: u64,
    /// How its own collections are to be preserved, each policy signed by it.
    pub policies: Vec<Signed<PreservationPolicy, Unverified>>,
    /// The copies it keeps of other members' collections.
    pub held: Vec<HeldCopy>,
}

impl NodeAdvert {
    /// The preservation policies it carries. Only meaningful on an advert accepted by an
    /// [`AdvertBook`], which verified every one.
    pub fn preservation_policies(&self) -> Vec<PreservationPolicy> {
        self.policies
            .iter()
            .filter_map(|p| {
                crate::encoding::decode::<PreservationPolicy>(
                    "preservation policy",
                    p.payload(),
                    crate::limits::MAX_SIGNED_PAYLOAD,
                )
                .ok()
            })
            .collect()
    }

    /// The authors this node hosts. Only meaningful on an advert accepted by an
    /// [`AdvertBook`], which verified every hosting statement.
    pub fn hosted_authors(&self) -> Vec<AuthorId> {
        self.authors
            .iter()
            .filter_map(|h| {
                crate::encoding::decode::<Hosting>("author hosting", h.payload(), 256).ok()
            })
            .map(|h| h.author)
            .collect()
    }
}

impl SignedPayload for NodeAdvert {
    const DOMAIN: Domain = Domain::NodeAdvert;
    const MAX_BYTES: usize = MAX_ADVERT_BYTES;
    const NAME: &'static str = "node advert";
}

/// What became of an advert offered to the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvertOutcome {
    /// It is the newest advert of its node and was kept.
    Accepted,
    /// A newer or equal advert of the node is already kept.
    Stale,
    /// It has expired.
    Expired,
}

/// Why an advert was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdvertError {
    /// Its signature does not verify.
    #[error("the advert's signature does not verify")]
    Signature(#[from] SignatureError),
    /// It is signed by another key than the node it describes.
    #[error("an advert for {node} signed by another key")]
    NotSelfSigned {
        /// The node it describes.
        node: NodeId,
    },
    /// Its node is not a member.
    #[error("{0} is not a member of the federation")]
    NotAMember(NodeId),
    /// It is for another federation.
    #[error("the advert is for another federation")]
    OtherFederation,
    /// A hosted author's statement does not verify or names another node.
    #[error("the advert of {node} lists an author without that author's signed consent")]
    BadHosting {
        /// The advertising node.
        node: NodeId,
    },
    /// A collection summary exceeds its limits.
    #[error("the advert of {node} has a collection summary over its limits")]
    Oversize {
        /// The advertising node.
        node: NodeId,
    },
    /// A preservation policy does not verify, is not the node's to set, or is malformed.
    #[error(
        "the advert of {node} carries a preservation policy it may not set or that is malformed"
    )]
    BadPolicy {
        /// The advertising node.
        node: NodeId,
    },
}

/// The newest valid advert of every member.
#[derive(Debug, Clone, Default)]
pub struct AdvertBook {
    adverts: BTreeMap<NodeId, Signed<NodeAdvert, Verified>>,
}

impl AdvertBook {
    /// Verifies an advert and keeps it if it is the newest of its node.
    pub fn offer(
        &mut self,
        advert: Signed<NodeAdvert, Unverified>,
        membership: &Membership,
        now: i64,
    ) -> Result<AdvertOutcome, AdvertError> {
        let advert = advert.verify()?;
        let a = advert.value();
        if a.node.key() != advert.signer() {
            return Err(AdvertError::NotSelfSigned { node: a.node });
        }
        if a.federation != membership.id() {
            return Err(AdvertError::OtherFederation);
        }
        if !membership.is_member(&a.node) {
            return Err(AdvertError::NotAMember(a.node));
        }
        if a.collections.len() > MAX_COLLECTIONS
            || !a.collections.iter().all(CollectionSummary::within_limits)
        {
            return Err(AdvertError::Oversize { node: a.node });
        }
        if a.policies.len() > MAX_POLICIES || a.held.len() > MAX_HELD {
            return Err(AdvertError::Oversize { node: a.node });
        }
        for p in &a.policies {
            let ok = p.clone().verify().is_ok_and(|v| {
                v.signer() == a.node.key()
                    && v.value().set_by(&a.node)
                    && v.value().validate().is_ok()
            });
            if !ok {
                return Err(AdvertError::BadPolicy { node: a.node });
            }
        }
        for h in &a.authors {
            let ok = h.clone().verify().is_ok_and(|v| {
                let h = v.value();
                h.node == a.node
                    && h.author.key() == v.signer()
                    && h.federation == a.federation
                    && h.expires_at > now
            });
            if !ok {
                return Err(AdvertError::BadHosting { node: a.node });
            }
        }
        if a.expires_at <= now {
            return Ok(AdvertOutcome::Expired);
        }
        if self
            .adverts
            .get(&a.node)
            .is_some_and(|old| old.value().seq >= a.seq)
        {
            return Ok(AdvertOutcome::Stale);
        }
        self.adverts.insert(a.node, advert);
        Ok(AdvertOutcome::Accepted)
    }

    /// Drops expired adverts and those of nodes no longer members.
    pub fn prune(&mut self, membership: &Membership, now: i64) {
        self.adverts
            .retain(|n, a| a.value().expires_at > now && membership.is_member(n));
    }

    /// All kept adverts as signed, for handing to another member.
    pub fn signed(&self) -> Vec<Signed<NodeAdvert, Unverified>> {
        self.adverts
            .values()
            .map(|a| a.clone().into_unverified())
            .collect()
    }

    /// The kept advert of a node.
    pub fn get(&self, node: &NodeId) -> Option<&NodeAdvert> {
        self.adverts.get(node).map(Signed::value)
    }

    /// All kept adverts.
    pub fn all(&self) -> impl Iterator<Item = &NodeAdvert> {
        self.adverts.values().map(Signed::value)
    }

    /// The nodes that host `author`.
    pub fn hosts_of(&self, author: &AuthorId) -> Vec<NodeId> {
        self.all()
            .filter(|a| a.hosted_authors().contains(author))
            .map(|a| a.node)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;

    fn advert(key: &SecretKey, m: &Membership, seq: u64, expires_at: i64) -> Signed<NodeAdvert> {
        Signed::sign(
            key,
            NodeAdvert {
                federation: m.id(),
                node: NodeId(key.public()),
                seq,
                issued_at: 0,
                expires_at,
                name: "ESAC".into(),
                institution: "ESA".into(),
                contact: String::new(),
                addresses: vec![],
                authors: vec![],
                collections: vec![],
                compute: vec![],
                spare_bytes: 0,
                policies: vec![],
                held: vec![],
            },
        )
        .into_unverified()
    }

    /// An advert of `key`'s carrying `policy`, signed by `signer`.
    fn with_policy(
        key: &SecretKey,
        m: &Membership,
        signer: &SecretKey,
        policy: PreservationPolicy,
    ) -> Signed<NodeAdvert> {
        let mut a: NodeAdvert =
            crate::encoding::decode("advert", advert(key, m, 1, 100).payload(), MAX_ADVERT_BYTES)
                .expect("decodes");
        a.policies = vec![Signed::sign(signer, policy).into_unverified()];
        Signed::sign(key, a).into_unverified()
    }

    #[test]
    fn only_a_collection_s_publisher_may_carry_its_preservation_policy() {
        use crate::preservation::Subject;
        let founder = SecretKey::generate().expect("random");
        let m = Membership::found(&founder, "esa", 0).expect("found");
        let other = SecretKey::generate().expect("random");
        let policy = |publisher: &SecretKey, copies| PreservationPolicy {
            subject: Subject::Collection {
                publisher: NodeId(publisher.public()),
                id: "xmm-crab".into(),
            },
            copies,
            distinct_institutions: true,
            pinned: vec![],
            seq: 1,
            issued_at: 0,
        };
        let mut book = AdvertBook::default();
        let ok = with_policy(&founder, &m, &founder, policy(&founder, 3));
        assert_eq!(book.offer(ok, &m, 1).expect("ok"), AdvertOutcome::Accepted);
        let kept = book.get(&NodeId(founder.public())).expect("kept");
        assert_eq!(kept.preservation_policies(), vec![policy(&founder, 3)]);
        for bad in [
            // Signed by another key.
            with_policy(&founder, &m, &other, policy(&founder, 3)),
            // About another node's collection.
            with_policy(&founder, &m, &founder, policy(&other, 3)),
            // Malformed.
            with_policy(&founder, &m, &founder, policy(&founder, 0)),
        ] {
            assert!(matches!(
                AdvertBook::default().offer(bad, &m, 1),
                Err(AdvertError::BadPolicy { .. })
            ));
        }
    }

    #[test]
    fn newer_adverts_win_and_replays_do_not() {
        let founder = SecretKey::generate().expect("random");
        let m = Membership::found(&founder, "esa", 0).expect("found");
        let mut book = AdvertBook::default();
        assert_eq!(
            book.offer(advert(&founder, &m, 2, 100), &m, 1).expect("ok"),
            AdvertOutcome::Accepted
        );
        assert_eq!(
            book.offer(advert(&founder, &m, 1, 100), &m, 1).expect("ok"),
            AdvertOutcome::Stale
        );
        assert_eq!(
            book.offer(advert(&founder, &m, 2, 100), &m, 1).expect("ok"),
            AdvertOutcome::Stale
        );
        assert_eq!(
            book.offer(advert(&founder, &m, 3, 5), &m, 10).expect("ok"),
            AdvertOutcome::Expired
        );
        assert_eq!(book.get(&NodeId(founder.public())).map(|a| a.seq), Some(2));
        let stranger = SecretKey::generate().expect("random");
        assert!(matches!(
            book.offer(advert(&stranger, &m, 1, 100), &m, 1),
            Err(AdvertError::NotAMember(_))
        ));
    }

    #[test]
    fn hosted_authors_must_consent() {
        let founder = SecretKey::generate().expect("random");
        let m = Membership::found(&founder, "esa", 0).expect("found");
        let alice = SecretKey::generate().expect("random");
        let claim = |signer: &SecretKey, expires_at: i64| {
            Signed::sign(
                signer,
                Hosting {
                    author: AuthorId(alice.public()),
                    node: NodeId(founder.public()),
                    federation: m.id(),
                    expires_at,
                },
            )
            .into_unverified()
        };
        let with = |hosting, seq| {
            let mut a = advert(&founder, &m, seq, 100)
                .verify()
                .expect("valid")
                .value()
                .clone();
            a.authors = vec![hosting];
            Signed::sign(&founder, a).into_unverified()
        };
        let mut book = AdvertBook::default();
        assert!(matches!(
            book.offer(with(claim(&founder, 100), 1), &m, 1),
            Err(AdvertError::BadHosting { .. })
        ));
        // Consent that has lapsed does not count either.
        assert!(matches!(
            book.offer(with(claim(&alice, 1), 1), &m, 5),
            Err(AdvertError::BadHosting { .. })
        ));
        assert!(book.hosts_of(&AuthorId(alice.public())).is_empty());
        assert_eq!(
            book.offer(with(claim(&alice, 100), 2), &m, 1).expect("ok"),
            AdvertOutcome::Accepted
        );
        assert_eq!(
            book.hosts_of(&AuthorId(alice.public())),
            vec![NodeId(founder.public())]
        );
    }
}
