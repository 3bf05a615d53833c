//! Verify-before-apply ingest of changes from other replicas.
//!
//! Automerge's own `apply_changes` and `receive_sync_message` apply whatever they are given. A
//! replica of an Orrery project instead takes a [`Batch`] (raw changes plus seals) and, before a
//! single change touches the document:
//!
//! 1. checks sizes (batch, each change) before decoding anything, and refuses compressed change
//!    chunks, whose inflation automerge does not bound;
//! 2. parses every change with panics contained, and reads its author from its actor id;
//! 3. verifies every seal (batch ed25519 verification), checks that it is for this project and
//!    that the heads it names are the signer's own changes;
//! 4. checks that every new change is covered by a seal of its author (the change is an
//!    ancestor-or-self of a sealed head; hashes chain, so a signature over a head fixes its whole
//!    ancestry);
//! 5. sets aside changes whose dependencies have not arrived (they are *parked* in a queue
//!    bounded per sender, remembering the opaque [`Origin`] that delivered them, and retried on
//!    every later ingest);
//! 6. judges every ready change against the membership **in its own causal past**: content needs
//!    an editor or owner, members and visibility need an owner, schema keys may never change;
//! 7. applies the ready changes in as few `apply_changes` calls as the membership changes inside
//!    the batch allow (usually one).
//! 8. judges the whole history again against the removals and demotions concurrent with each
//!    change ([`crate::contest`]): changes made concurrently with their author's removal that
//!    no still-authorised member built on are held, not applied, and the document is rebuilt
//!    without them if they had been applied.
//!
//! Any failure of the batch's own changes leaves the document exactly as it was: the batch is
//! judged as a whole, and when a batch needs several rounds (a membership change followed by
//! changes that depend on it) the rounds run on a fork that replaces the document only once
//! everything passed.
//!
//! Parked changes that become ready are judged *after* the batch and apart from it, so a parked
//! change can never fail the batch that completed it: one that fails is dropped and listed in
//! [`IngestReport::refused`] with the origin that sent it (so the caller blames that sender, not
//! whoever delivered the missing dependency), and changes depending on it are dropped with it.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::{Automerge, Change, ObjId, ReadDoc, ScalarValue};
use orrery_protocol::limits::{
    MAX_BATCH_BYTES, MAX_BATCH_CHANGES, MAX_CHANGE_BYTES, MAX_PENDING_CHANGES,
};
use orrery_protocol::{
    AuthorId, ChangeHash, ChangeSeal, ProjectId, SignatureError, Signed, Verified,
};

use crate::project::{Batch, Project, Roots, from_hash, new_doc, to_hash};
use crate::schema::*;
use crate::session::AuthorCache;

/// Why a batch was refused. The document is unchanged whenever one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Something is larger than its limit.
    #[error("{what} is {len} bytes/items, above the limit of {limit}")]
    Oversize {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A change's bytes are not a valid automerge change chunk.
    #[error("change #{index} of the batch is malformed: {reason}")]
    Malformed {
        /// Its position in the batch.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A sync message is not well formed.
    #[error("the sync message is malformed: {0}")]
    BadMessage(&'static str),
    /// A snapshot (a whole document for an empty replica) is not well formed.
    #[error("the snapshot is malformed: {0}")]
    BadSnapshot(&'static str),
    /// A change's bytes do not match their checksum: they were altered after it was made.
    #[error("change #{index} of the batch was altered: its bytes do not match its checksum")]
    Tampered {
        /// Its position in the batch.
        index: usize,
    },
    /// A change's actor id is not an Orrery actor (author key plus session part).
    #[error("change {hash} has an actor id that names no author")]
    BadActor {
        /// The change.
        hash: ChangeHash,
    },
    /// A seal's signature does not verify.
    #[error("a change seal is forged")]
    ForgedSeal(#[source] SignatureError),
    /// A seal is for a different project.
    #[error("a change seal is for project {found}, not this one")]
    WrongProject {
        /// The project the seal names.
        found: ProjectId,
    },
    /// A seal names a change that its signer did not make.
    #[error("a seal by {signer} names change {head}, which is not theirs")]
    SealNamesOthers {
        /// The seal's signer.
        signer: AuthorId,
        /// The change named.
        head: ChangeHash,
    },
    /// No seal of the change's author covers it: the actor names a key that did not sign.
    #[error("change {hash} names {author} as its author, but no seal of theirs covers it")]
    Unsigned {
        /// The change.
        hash: ChangeHash,
        /// The author its actor id names.
        author: AuthorId,
    },
    /// The author's role in the change's causal past does not allow what it does.
    #[error("change {hash} by {author} may not {action}: their role there is {role}")]
    NotPermitted {
        /// The change.
        hash: ChangeHash,
        /// Its author.
        author: AuthorId,
        /// What it does.
        action: &'static str,
        /// The author's role at the change's causal past (`none` if not a member).
        role: &'static str,
    },
    /// A change writes a key that no change after the genesis may write, or writes a bad value.
    #[error("change {hash} writes `{key}`, which {why}")]
    Forbidden {
        /// The change.
        hash: ChangeHash,
        /// The key written.
        key: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// A change other than the genesis has no dependencies.
    #[error("change {hash} starts a second history; a project has exactly one genesis change")]
    SecondRoot {
        /// The change.
        hash: ChangeHash,
    },
    /// The genesis change is not a well-formed project start.
    #[error("the genesis change {hash} is invalid: {reason}")]
    BadGenesis {
        /// The change.
        hash: ChangeHash,
        /// What is wrong.
        reason: &'static str,
    },
    /// An author made two different changes with the same actor and sequence number: the
    /// author (not whoever relayed them) forked their own history.
    #[error("{} signed two different changes with sequence number {seq}", author.map_or("an author".to_string(), |a| a.to_string()))]
    Equivocation {
        /// The author, if the actor names one.
        author: Option<AuthorId>,
        /// The sequence number used twice.
        seq: u64,
    },
    /// Too many changes are waiting for missing dependencies.
    #[error("{count} changes would wait for missing dependencies, above the limit of {limit}")]
    TooManyPending {
        /// How many would wait.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The automerge library panicked or failed on data that passed every check.
    #[error("the document library failed on {what}")]
    Library {
        /// What it was processing.
        what: &'static str,
    },
    /// Stored data could not be loaded.
    #[error("stored project data is corrupt: {0}")]
    Corrupt(String),
}

/// Who delivered a batch: an opaque tag the caller chooses (a node uses the sending peer's key).
///
/// Ingest never interprets it; it only remembers it for changes it parks, so that a parked change
/// that fails later is charged to whoever sent it. [`Project::ingest`] uses the default tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin(pub [u8; 32]);

/// A change refused after it was parked: the batch that completed it was applied without it.
#[derive(Debug, Clone)]
pub struct Refused {
    /// Who sent the refused change (not who completed its dependencies).
    pub origin: Origin,
    /// The refused change.
    pub hash: ChangeHash,
    /// Why it was refused.
    pub error: Arc<IngestError>,
}

impl PartialEq for Refused {
    fn eq(&self, other: &Self) -> bool {
        self.origin == other.origin
            && self.hash == other.hash
            && (Arc::ptr_eq(&self.error, &other.error)
                || self.error.to_string() == other.error.to_string())
    }
}

impl Eq for Refused {}

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Changes applied to the document, in the order applied.
    pub applied: Vec<ChangeHash>,
    /// Changes already present (ignored).
    pub duplicates: usize,
    /// Changes now waiting for dependencies (including earlier ones).
    pub pending: usize,
    /// Parked changes (and changes of this batch that depend on them) refused once their
    /// dependencies arrived, each with the origin that sent it. They were dropped; the rest was
    /// applied. Each names its sender: the caller charges that origin, never the batch's sender
    /// merely for completing them.
    pub refused: Vec<Refused>,
    /// Changes dropped only because a change they depend on was refused (their sender may be
    /// honest: nobody is charged for them).
    pub abandoned: usize,
    /// Changes held after this ingest (including earlier ones): made concurrently with their
    /// author's removal or demotion and built on by no authorised member (see
    /// [`crate::contest`]). Kept, not applied.
    pub held: Vec<ChangeHash>,
}

/// Runs `f`, turning a panic into [`IngestError::Library`].
pub(crate) fn guarded<T>(what: &'static str, f: impl FnOnce() -> T) -> Result<T, IngestError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| IngestError::Library { what })
}

/// Largest number of seals kept waiting for the changes they name.
const MAX_PENDING_SEALS: usize = 4096;

/// Largest number of parked changes one origin may have waiting in a project: a single sender
/// cannot fill the queue ([`MAX_PENDING_CHANGES`]) for everyone.
pub const MAX_PENDING_PER_ORIGIN: usize = MAX_PENDING_CHANGES / 8;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_CHANGE: u8 = 1;

/// Parses one raw change, refusing anything but an uncompressed change chunk.
pub(crate) fn parse_change(index: usize, bytes: &[u8]) -> Result<Change, IngestError> {
    if bytes.len() > MAX_CHANGE_BYTES {
        return Err(IngestError::Oversize {
            what: "a change",
            len: bytes.len(),
            limit: MAX_CHANGE_BYTES,
        });
    }
    if bytes.len() < 9 || bytes[..4] != MAGIC {
        return Err(IngestError::Malformed {
            index,
            reason: "not an automerge chunk",
        });
    }
    if bytes[8] != CHUNK_CHANGE {
        return Err(IngestError::Malformed {
            index,
            reason: "only uncompressed change chunks are accepted",
        });
    }
    match guarded("a change", || Change::try_from(bytes)) {
        // The chunk's checksum is the first four bytes of its hash: a mismatch means the bytes
        // were altered after the change was made.
        Ok(Ok(c)) if c.hash().0[..4] != bytes[4..8] => Err(IngestError::Tampered { index }),
        Ok(Ok(c)) => Ok(c),
        Ok(Err(_)) => Err(IngestError::Malformed {
            index,
            reason: "the change does not decode or its checksum is wrong",
        }),
        Err(_) => Err(IngestError::Malformed {
            index,
            reason: "the change crashed the decoder",
        }),
    }
}

/// The kept seals: for each actor, the seal naming its highest-sequence change.
///
/// Because an actor's changes form a chain, the seal over its latest change covers all of
/// them, so a replica keeps one seal per actor however long the history grows.
#[derive(Debug, Default, Clone)]
pub(crate) struct SealBook {
    by_actor: HashMap<Vec<u8>, KeptSeal>,
}

/// The sequence number of the change a kept seal names, and the seal.
type KeptSeal = (u64, Arc<Signed<ChangeSeal, Verified>>);

impl SealBook {
    pub(crate) fn keep(&mut self, doc: &Automerge, seal: Signed<ChangeSeal, Verified>) {
        let seal = Arc::new(seal);
        for head in &seal.value().heads {
            let Some(meta) = doc.get_change_meta_by_hash(&from_hash(*head)) else {
                continue;
            };
            // A seal only ever vouches for its signer's own changes.
            if crate::session::author_of(&meta.actor).map(|a| *a.key()) != Some(*seal.signer()) {
                continue;
            }
            let actor = meta.actor.to_bytes().to_vec();
            let better = self
                .by_actor
                .get(&actor)
                .is_none_or(|(seq, _)| *seq < meta.seq);
            if better {
                self.by_actor.insert(actor, (meta.seq, seal.clone()));
            }
        }
    }

    pub(crate) fn all(&self) -> Vec<Arc<Signed<ChangeSeal, Verified>>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (_, seal) in self.by_actor.values() {
            if seen.insert(seal.signature().0) {
                out.push(seal.clone());
            }
        }
        out.sort_by_key(|s| s.signature().0);
        out
    }

    /// The kept seals of the given actors.
    pub(crate) fn for_actors<'a>(
        &self,
        actors: impl IntoIterator<Item = &'a [u8]>,
    ) -> Vec<Signed<ChangeSeal, orrery_protocol::Unverified>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for actor in actors {
            if let Some((_, seal)) = self.by_actor.get(actor)
                && seen.insert(seal.signature().0)
            {
                out.push((**seal).clone().into_unverified());
            }
        }
        out
    }

    pub(crate) fn all_unverified(&self) -> Vec<Signed<ChangeSeal, orrery_protocol::Unverified>> {
        self.all()
            .into_iter()
            .map(|s| (*s).clone().into_unverified())
            .collect()
    }
}

/// Changes waiting for their dependencies (each with the origin that sent it), with the seals
/// that came with them.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    changes: Vec<(ChangeHash, Change, Origin)>,
    seals: Vec<Signed<ChangeSeal, Verified>>,
    /// Most parked changes per origin ([`MAX_PENDING_PER_ORIGIN`]; lower in tests).
    per_origin: usize,
    /// Most parked changes in all ([`MAX_PENDING_CHANGES`]; lower in tests).
    total: usize,
}

impl Default for Pending {
    fn default() -> Self {
        Self {
            changes: Vec::new(),
            seals: Vec::new(),
            per_origin: MAX_PENDING_PER_ORIGIN,
            total: MAX_PENDING_CHANGES,
        }
    }
}

impl Pending {
    /// The changes the waiting ones depend on that are neither in `doc` nor waiting: what to
    /// ask a peer for. Automerge cannot know them, because waiting changes are held here and
    /// not in its own queue.
    pub(crate) fn missing_deps(&self, doc: &Automerge) -> Vec<automerge::ChangeHash> {
        let waiting: HashSet<ChangeHash> = self.changes.iter().map(|(h, _, _)| *h).collect();
        let mut deps: Vec<automerge::ChangeHash> = self
            .changes
            .iter()
            .flat_map(|(_, c, _)| c.deps().iter().copied())
            .filter(|d| !waiting.contains(&to_hash(*d)))
            .collect();
        deps.sort_unstable();
        deps.dedup();
        deps.retain(|d| doc.get_change_by_hash(d).is_none());
        deps
    }

    /// Whether a change is waiting here.
    pub(crate) fn holds(&self, hash: &automerge::ChangeHash) -> bool {
        let h = to_hash(*hash);
        self.changes.iter().any(|(w, _, _)| *w == h)
    }
}

/// What a change does, as far as permissions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Needs {
    pub(crate) role: Role,
    pub(crate) action: &'static str,
}

pub(crate) struct Item {
    pub(crate) hash: ChangeHash,
    pub(crate) author: AuthorId,
    /// Shared so that applying can move it into the document without a copy.
    pub(crate) change: Rc<Change>,
}

impl Project {
    /// Verifies a batch from another replica and applies what is ready. See the module docs for
    /// the checks; on any error the document is unchanged.
    pub fn ingest(&mut self, batch: Batch) -> Result<IngestReport, IngestError> {
        self.ingest_from(batch, Origin::default())
    }

    /// Like [`Project::ingest`], remembering `origin` as the sender of whatever this batch
    /// parks. An `Err` is the batch's own fault (charge `origin`); parked changes refused on the
    /// way are in [`IngestReport::refused`] with their own origins.
    pub fn ingest_from(
        &mut self,
        batch: Batch,
        origin: Origin,
    ) -> Result<IngestReport, IngestError> {
        self.ingest_collecting(batch, origin, false)
            .map(|(report, _)| report)
    }

    /// Like [`Project::ingest_from`], also returning the raw bytes of the applied changes (in
    /// the order applied) when `collect` is set, for storing them.
    pub(crate) fn ingest_collecting(
        &mut self,
        batch: Batch,
        origin: Origin,
        collect: bool,
    ) -> Result<(IngestReport, Vec<Vec<u8>>), IngestError> {
        if batch.changes.len() > MAX_BATCH_CHANGES {
            return Err(IngestError::Oversize {
                what: "the batch's change count",
                len: batch.changes.len(),
                limit: MAX_BATCH_CHANGES,
            });
        }
        let total = batch.change_bytes();
        if total > MAX_BATCH_BYTES {
            return Err(IngestError::Oversize {
                what: "the batch",
                len: total,
                limit: MAX_BATCH_BYTES,
            });
        }

        // An honest batch carries at most one seal per change (usually far fewer); more only
        // costs signature checks.
        let seal_limit = batch.changes.len().saturating_mul(2).saturating_add(16);
        if batch.seals.len() > seal_limit {
            return Err(IngestError::Oversize {
                what: "the batch's seal count",
                len: batch.seals.len(),
                limit: seal_limit,
            });
        }

        // Parse everything first: a malformed change anywhere refuses the batch.
        let mut parsed = Vec::with_capacity(batch.changes.len());
        for (i, bytes) in batch.changes.iter().enumerate() {
            parsed.push(parse_change(i, bytes)?);
        }

        // Seals.
        let mut seals = Vec::with_capacity(batch.seals.len());
        for r in Signed::verify_all(batch.seals) {
            let seal = r.map_err(IngestError::ForgedSeal)?;
            if seal.value().project != self.id {
                return Err(IngestError::WrongProject {
                    found: seal.value().project,
                });
            }
            seals.push(seal);
        }

        // New changes, minus those already known or repeated.
        let mut report = IngestReport::default();
        // An empty replica (the usual receiver of a whole history) knows nothing: skip asking.
        let known: HashSet<ChangeHash> = if self.doc.get_heads().is_empty() {
            HashSet::new()
        } else {
            let hashes: Vec<automerge::ChangeHash> = parsed.iter().map(Change::hash).collect();
            let missing: HashSet<automerge::ChangeHash> =
                self.doc.get_missing_deps(&hashes).into_iter().collect();
            hashes
                .iter()
                .filter(|h| !missing.contains(h))
                .map(|h| to_hash(*h))
                .collect()
        };
        let mut authors = AuthorCache::default();
        let mut items: Vec<Item> = Vec::with_capacity(parsed.len() + self.pending.changes.len());
        let mut index: HashMap<ChangeHash, usize> = HashMap::new();
        // Who sent each item: this batch's origin for its own changes, the remembered one for
        // parked changes.
        let mut origins: Vec<Origin> = Vec::with_capacity(items.capacity());
        let mut fresh = Vec::new();
        for change in parsed {
            let hash = to_hash(change.hash());
            if known.contains(&hash) || index.contains_key(&hash) || self.contest.holds(&hash) {
                report.duplicates += 1;
                continue;
            }
            let author = authors
                .of(change.actor_id())
                .ok_or(IngestError::BadActor { hash })?;
            index.insert(hash, items.len());
            fresh.push(items.len());
            origins.push(origin);
            items.push(Item {
                hash,
                author,
                change: Rc::new(change),
            });
        }
        for (hash, change, from) in &self.pending.changes {
            if index.contains_key(hash) {
                continue;
            }
            let author = authors
                .of(change.actor_id())
                .ok_or(IngestError::BadActor { hash: *hash })?;
            index.insert(*hash, items.len());
            origins.push(*from);
            items.push(Item {
                hash: *hash,
                author,
                change: Rc::new(change.clone()),
            });
        }
        // Held changes that the new or waiting ones build on are judged again with them.
        let held_from = items.len();
        let needed = self
            .contest
            .needed_by(items.iter().flat_map(|it| it.change.deps()));
        for (hash, change) in needed {
            if index.contains_key(&hash) {
                continue;
            }
            let author = authors
                .of(change.actor_id())
                .ok_or(IngestError::BadActor { hash })?;
            index.insert(hash, items.len());
            items.push(Item {
                hash,
                author,
                change: Rc::new(change),
            });
        }
        let mut all_seals = self.pending.seals.clone();
        let waiting_seals = all_seals.len();
        all_seals.extend(seals.iter().cloned());

        // Coverage: every new change must be an ancestor-or-self of a head sealed by its author.
        let (mut covered, gaps) = coverage(&items, &index, &all_seals, waiting_seals, |d| {
            self.doc.get_change_meta_by_hash(d).is_none()
        })?;
        // Held changes passed every check when they arrived.
        for c in covered.iter_mut().skip(held_from) {
            *c = true;
        }
        // A seal whose head has not arrived yet (it may be on its way), or whose ancestry here
        // has a gap (a change between the head and older ones is still on its way), lets its
        // author's uncovered changes wait instead of failing.
        let unresolved: HashSet<AuthorId> = {
            let heads: Vec<automerge::ChangeHash> = all_seals
                .iter()
                .flat_map(|s| s.value().heads.iter())
                .filter(|h| !index.contains_key(h))
                .map(|h| from_hash(*h))
                .collect();
            let missing: HashSet<ChangeHash> = self
                .doc
                .get_missing_deps(&heads)
                .into_iter()
                .map(to_hash)
                .collect();
            all_seals
                .iter()
                .filter(|s| s.value().heads.iter().any(|h| missing.contains(h)))
                .map(|s| AuthorId(*s.signer()))
                .chain(gaps)
                .collect()
        };
        let mut held: HashSet<usize> = HashSet::new();
        let mut dropped: HashSet<usize> = HashSet::new();
        for &i in &fresh {
            if !covered[i] {
                if unresolved.contains(&items[i].author) {
                    held.insert(i);
                    continue;
                }
                return Err(IngestError::Unsigned {
                    hash: items[i].hash,
                    author: items[i].author,
                });
            }
        }
        // Waiting changes that no seal covers any more (their author's seals all resolved without
        // covering them) are dropped: whoever sent them lied about them. (`items` holds the fresh
        // changes first, then the waiting ones.)
        for i in fresh.len()..items.len() {
            if !covered[i] && !unresolved.contains(&items[i].author) {
                held.insert(i);
                dropped.insert(i);
            }
        }
        // Held changes, and (through the topological order below) every change that depends on
        // one, wait.

        // Readiness: topological order of the changes whose dependencies are all present.
        let (ready, mut waiting) = self.ready_order(&items, &index, &held);
        waiting.retain(|w| !dropped.contains(w));
        waiting.sort_unstable();
        self.pending.bound(&mut waiting, &origins, origin)?;

        // The applied changes' bytes, for the caller to store, taken before applying moves the
        // changes into the document.
        let mut bytes: HashMap<usize, Vec<u8>> = if collect {
            ready
                .iter()
                .map(|&i| (i, items[i].change.raw_bytes().to_vec()))
                .collect()
        } else {
            HashMap::new()
        };
        let nfresh = fresh.len();
        let (own, after): (Vec<usize>, Vec<usize>) = {
            // A ready change is the batch's own unless it was parked or depends on one that was
            // (`ready` is in causal order, so its dependencies are classified before it).
            let mut later: HashSet<usize> = HashSet::new();
            for &i in &ready {
                let on_parked = i >= nfresh
                    || items[i]
                        .change
                        .deps()
                        .iter()
                        .any(|d| index.get(&to_hash(*d)).is_some_and(|j| later.contains(j)));
                if on_parked {
                    later.insert(i);
                }
            }
            ready.iter().partition(|i| !later.contains(i))
        };
        let mut order = Vec::with_capacity(ready.len());
        if !own.is_empty() {
            let own_index = sub_index(&items, &own);
            self.judge_and_apply(&mut items, &own_index, &own)?;
            order.extend(own.iter().copied());
        }
        // Parked changes (and what depends on them) are judged apart from the batch: nothing they
        // do can refuse it.
        for &i in &dropped {
            report.refused.push(Refused {
                origin: origins[i],
                hash: items[i].hash,
                error: Arc::new(IngestError::Unsigned {
                    hash: items[i].hash,
                    author: items[i].author,
                }),
            });
        }
        if !after.is_empty() {
            self.judge_parked(
                &mut items,
                &index,
                &origins,
                &after,
                &mut order,
                &mut report,
            )?;
        }
        report.applied = order.iter().map(|&i| items[i].hash).collect();
        let applied_bytes = order
            .iter()
            .filter_map(|i| bytes.remove(i))
            .collect::<Vec<_>>();

        // Keep the seals; those naming a change not yet in the document wait with the changes.
        let heads: Vec<automerge::ChangeHash> = all_seals
            .iter()
            .flat_map(|s| s.value().heads.iter().map(|h| from_hash(*h)))
            .collect();
        let absent: HashSet<ChangeHash> = self
            .doc
            .get_missing_deps(&heads)
            .into_iter()
            .map(to_hash)
            .collect();
        let mut seen = HashSet::new();
        let mut still = Vec::new();
        for seal in all_seals {
            self.seals.keep(&self.doc, seal.clone());
            let waits = seal.value().heads.iter().any(|h| absent.contains(h));
            if waits && seen.insert(seal.signature().0) {
                still.push(seal);
            }
        }
        still.truncate(MAX_PENDING_SEALS);
        self.pending.seals = still;
        self.pending.changes = waiting
            .iter()
            .map(|&w| (items[w].hash, (*items[w].change).clone(), origins[w]))
            .collect();
        report.pending = self.pending.changes.len();
        // The second judgement: changes contested by a concurrent removal of their author are
        // held, and held ones an authorised member built on are applied (see `contest`).
        if !report.applied.is_empty() {
            report.held = self.settle()?;
            report.applied.retain(|h| !report.held.contains(h));
        } else {
            report.held = self.held().into_iter().map(|(h, _)| h).collect();
        }
        Ok((report, applied_bytes))
    }

    /// Judges and applies the ready changes that were parked (or depend on parked ones), in
    /// causal order `after`, apart from the batch: all at once when they all pass, otherwise one
    /// by one, dropping each that fails (listed in `report.refused` with its origin) and every
    /// change that depends on a dropped one.
    fn judge_parked(
        &mut self,
        items: &mut [Item],
        index: &HashMap<ChangeHash, usize>,
        origins: &[Origin],
        after: &[usize],
        order: &mut Vec<usize>,
        report: &mut IngestReport,
    ) -> Result<(), IngestError> {
        // Applying moves changes out of `items`; keep them for the one-by-one pass.
        let kept: Vec<Rc<Change>> = after.iter().map(|&i| items[i].change.clone()).collect();
        let all = sub_index(items, after);
        if self.judge_and_apply(items, &all, after).is_ok() {
            order.extend(after.iter().copied());
            return Ok(());
        }
        for (&i, change) in after.iter().zip(kept) {
            items[i].change = change;
        }
        let mut failed: HashSet<usize> = HashSet::new();
        for &i in after {
            let behind_failed = items[i]
                .change
                .deps()
                .iter()
                .any(|d| index.get(&to_hash(*d)).is_some_and(|j| failed.contains(j)));
            if behind_failed {
                failed.insert(i);
                report.abandoned += 1;
                continue;
            }
            let one = sub_index(items, &[i]);
            match self.judge_and_apply(items, &one, &[i]) {
                Ok(()) => order.push(i),
                // A library failure is nobody's offence and may hit the next change too.
                Err(e @ IngestError::Library { .. }) => return Err(e),
                Err(e) => {
                    failed.insert(i);
                    report.refused.push(Refused {
                        origin: origins[i],
                        hash: items[i].hash,
                        error: Arc::new(e),
                    });
                }
            }
        }
        Ok(())
    }

    /// Splits `items` into a topological order of those ready to apply and those waiting.
    fn ready_order(
        &self,
        items: &[Item],
        index: &HashMap<ChangeHash, usize>,
        held: &HashSet<usize>,
    ) -> (Vec<usize>, Vec<usize>) {
        // Dependencies missing from both the document and the batch.
        let mut outside: Vec<automerge::ChangeHash> = items
            .iter()
            .flat_map(|it| it.change.deps().iter().copied())
            .filter(|d| !index.contains_key(&to_hash(*d)))
            .collect();
        outside.sort_unstable();
        outside.dedup();
        let absent: HashSet<ChangeHash> = self
            .doc
            .get_missing_deps(&outside)
            .into_iter()
            .map(to_hash)
            .collect();
        let mut indegree = vec![0usize; items.len()];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); items.len()];
        let mut blocked: Vec<bool> = (0..items.len()).map(|i| held.contains(&i)).collect();
        for (i, it) in items.iter().enumerate() {
            for d in it.change.deps() {
                let d = to_hash(*d);
                if let Some(&j) = index.get(&d) {
                    indegree[i] += 1;
                    children[j].push(i);
                } else if absent.contains(&d) {
                    blocked[i] = true;
                }
            }
        }
        let mut order = Vec::with_capacity(items.len());
        let mut stack: Vec<usize> = (0..items.len())
            .filter(|&i| indegree[i] == 0 && !blocked[i])
            .collect();
        stack.sort_by_key(|&i| std::cmp::Reverse(i));
        while let Some(i) = stack.pop() {
            order.push(i);
            for &c in &children[i] {
                indegree[c] -= 1;
                if indegree[c] == 0 && !blocked[c] {
                    stack.push(c);
                }
            }
        }
        let in_order: HashSet<usize> = order.iter().copied().collect();
        let waiting = (0..items.len()).filter(|i| !in_order.contains(i)).collect();
        (order, waiting)
    }

    /// Judges the ready changes against the membership in their causal past and applies them.
    fn judge_and_apply(
        &mut self,
        items: &mut [Item],
        index: &HashMap<ChangeHash, usize>,
        ready: &[usize],
    ) -> Result<(), IngestError> {
        let genesis_needed = self.roots.is_none();
        // Classify every ready change (decoding its operations).
        let roots_now = self.roots.clone();
        let mut needs: HashMap<usize, Option<Needs>> = HashMap::new();
        let mut genesis = None;
        for &i in ready {
            let it = &items[i];
            if it.change.deps().is_empty() {
                if genesis_needed && genesis.is_none() && it.hash.0 == self.id.0 {
                    genesis = Some(i);
                    needs.insert(i, None);
                    continue;
                }
                return Err(IngestError::SecondRoot { hash: it.hash });
            }
        }
        if genesis_needed && genesis.is_none() {
            // Everything ready depends on something, yet the document is empty: impossible
            // unless the genesis is missing, in which case nothing would be ready.
            return Err(IngestError::BadGenesis {
                hash: items[ready[0]].hash,
                reason: "the batch's history does not start at this project's genesis",
            });
        }

        let mut working: Automerge;
        let mut roots;
        let in_place;
        if let Some(g) = genesis {
            let doc = apply_genesis(&items[g])?;
            roots = Roots::read(&doc);
            working = doc;
            in_place = false;
        } else {
            roots = self.roots.clone();
            // Several rounds are needed when a membership change has a descendant in the batch.
            let multi = ready.iter().any(|&i| {
                let n = classify(&items[i], roots_now.as_ref());
                matches!(
                    n,
                    Ok(Some(Needs {
                        role: Role::Owner,
                        ..
                    }))
                )
            }) && ready.len() > 1;
            if multi {
                working = guarded("a fork", || self.doc.fork())?;
                in_place = false;
            } else {
                working = Automerge::new();
                in_place = true;
            }
        }

        let mut remaining: Vec<usize> = ready
            .iter()
            .copied()
            .filter(|&i| Some(i) != genesis)
            .collect();
        let mut applied: HashSet<usize> = genesis.into_iter().collect();
        while !remaining.is_empty() {
            let doc: &Automerge = if in_place { &self.doc } else { &working };
            let round_roots = roots.clone().ok_or(IngestError::Library {
                what: "project roots",
            })?;
            let members = round_roots.members.clone();
            // Frontier per change: the applied changes its unapplied ancestry bottoms out at.
            let mut frontier: HashMap<usize, Rc<Vec<automerge::ChangeHash>>> = HashMap::new();
            let mut gov_blocked: HashSet<usize> = HashSet::new();
            let mut round = Vec::new();
            let mut later = Vec::new();
            let mut role_cache: HashMap<
                (*const Vec<automerge::ChangeHash>, AuthorId),
                Option<Role>,
            > = HashMap::new();
            let mut gov_in_round: HashSet<usize> = HashSet::new();
            for &i in &remaining {
                let it = &items[i];
                let mut blocked = false;
                let mut parts: Vec<Rc<Vec<automerge::ChangeHash>>> = Vec::new();
                let mut direct = Vec::new();
                for d in it.change.deps() {
                    match index.get(&to_hash(*d)) {
                        Some(j) if !applied.contains(j) => {
                            if gov_blocked.contains(j) || gov_in_round.contains(j) {
                                blocked = true;
                            } else if let Some(f) = frontier.get(j) {
                                parts.push(f.clone());
                            } else {
                                blocked = true;
                            }
                        }
                        _ => direct.push(*d),
                    }
                }
                if blocked {
                    gov_blocked.insert(i);
                    later.push(i);
                    continue;
                }
                let f = if direct.is_empty() && parts.len() == 1 {
                    parts[0].clone()
                } else {
                    let mut all = direct;
                    for p in &parts {
                        all.extend(p.iter().copied());
                    }
                    all.sort_unstable();
                    all.dedup();
                    Rc::new(all)
                };
                let need = classify(it, Some(&round_roots))?.unwrap_or(Needs {
                    role: Role::Editor,
                    action: "change content",
                });
                let key = (Rc::as_ptr(&f), it.author);
                let role = match role_cache.get(&key) {
                    Some(r) => *r,
                    None => {
                        let r = role_at(doc, &members, &it.author, &f);
                        role_cache.insert(key, r);
                        r
                    }
                };
                if role.is_none_or(|r| r < need.role) {
                    return Err(IngestError::NotPermitted {
                        hash: it.hash,
                        author: it.author,
                        action: need.action,
                        role: role.map_or("none", Role::as_str),
                    });
                }
                if need.role == Role::Owner {
                    gov_in_round.insert(i);
                }
                frontier.insert(i, f);
                round.push(i);
            }
            if round.is_empty() {
                return Err(IngestError::Library {
                    what: "ordering the batch",
                });
            }
            // Move the changes into the document instead of copying them; the slots keep a
            // shared stand-in (only waiting changes are read after this).
            let stand_in = items[round[0]].change.clone();
            let changes: Vec<Change> = round
                .iter()
                .map(|&i| {
                    let rc = std::mem::replace(&mut items[i].change, stand_in.clone());
                    Rc::try_unwrap(rc).unwrap_or_else(|shared| (*shared).clone())
                })
                .collect();
            let target: &mut Automerge = if in_place {
                &mut self.doc
            } else {
                &mut working
            };
            guarded("applying changes", || target.apply_changes(changes))?.map_err(
                |e| match e {
                    // Automerge checks this before applying anything.
                    automerge::AutomergeError::DuplicateSeqNumber(seq, actor) => {
                        IngestError::Equivocation {
                            author: crate::session::author_of(&actor),
                            seq,
                        }
                    }
                    _ => IngestError::Library {
                        what: "applying changes",
                    },
                },
            )?;
            applied.extend(round.iter().copied());
            remaining = later;
            if roots.is_none() {
                roots = Roots::read(target);
            }
        }
        if !in_place {
            self.doc = working;
        }
        if self.roots.is_none() {
            self.roots = Roots::read(&self.doc);
        }
        Ok(())
    }
}

/// An index of just the `chosen` items: their dependencies on anything else are looked up in the
/// document.
fn sub_index(items: &[Item], chosen: &[usize]) -> HashMap<ChangeHash, usize> {
    chosen.iter().map(|&i| (items[i].hash, i)).collect()
}

impl Pending {
    /// Bounds the changes about to wait (`waiting`, indices into `origins`): more than
    /// `per_origin` from the batch's `sender` refuses the batch; past the total, parked changes
    /// of the other origin holding the most are evicted, never the sender's for another's sake.
    fn bound(
        &self,
        waiting: &mut Vec<usize>,
        origins: &[Origin],
        sender: Origin,
    ) -> Result<(), IngestError> {
        let mut per: HashMap<Origin, usize> = HashMap::new();
        for &w in waiting.iter() {
            *per.entry(origins[w]).or_default() += 1;
        }
        let mine = per.get(&sender).copied().unwrap_or(0);
        if mine > self.per_origin {
            return Err(IngestError::TooManyPending {
                count: mine,
                limit: self.per_origin,
            });
        }
        while waiting.len() > self.total {
            let Some((&largest, _)) = per
                .iter()
                .filter(|(o, n)| **o != sender && **n > 0)
                .max_by_key(|(o, n)| (**n, **o))
            else {
                break;
            };
            let excess = waiting.len() - self.total;
            let mut removed = 0;
            waiting.retain(|&w| {
                if removed < excess && origins[w] == largest {
                    removed += 1;
                    false
                } else {
                    true
                }
            });
            per.insert(largest, 0);
        }
        Ok(())
    }
}

/// The role of `author` in the members map as of `heads`.
pub(crate) fn role_at(
    doc: &Automerge,
    members: &ObjId,
    author: &AuthorId,
    heads: &[automerge::ChangeHash],
) -> Option<Role> {
    if crate::project::founder_of(members) == Some(*author) {
        return Some(Role::Owner);
    }
    let value = doc.get_at(members, author.to_string(), heads).ok()??;
    match value.0 {
        automerge::Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(s) => s.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// What role a change needs, from its operations. `Ok(None)` means plain content.
pub(crate) fn classify(it: &Item, roots: Option<&Roots>) -> Result<Option<Needs>, IngestError> {
    let members = roots.map(|r| &r.members);
    let profiles_id = match roots.map(|r| &r.profiles) {
        Some(ObjId::Id(counter, actor, _)) => Some((*counter, actor.clone())),
        _ => None,
    };
    let expanded = guarded("decoding a change", || it.change.decode())?;
    let members_id = match members {
        Some(ObjId::Id(counter, actor, _)) => Some((*counter, actor.clone())),
        _ => None,
    };
    let mut need: Option<Needs> = None;
    let forbidden = |key: &str, why| IngestError::Forbidden {
        hash: it.hash,
        key: key.to_string(),
        why,
    };
    for op in &expanded.operations {
        match &op.obj {
            ObjectId::Root => {
                let key = match &op.key {
                    Key::Map(k) => k.as_str(),
                    Key::Seq(_) => return Err(forbidden("root", "is not a list")),
                };
                // A delete is what automerge emits for an honest `put` of the value that already
                // wins a conflict: it deletes the losing values. It must pass like the put.
                match root_key_rule(key) {
                    Some(Role::Owner) => {
                        let ok = match &op.action {
                            OpType::Delete => true,
                            OpType::Put(ScalarValue::Str(v)) => v.parse::<Visibility>().is_ok(),
                            _ => false,
                        };
                        if !ok {
                            return Err(forbidden(key, "must be public, shared or restricted"));
                        }
                        need = Some(Needs {
                            role: Role::Owner,
                            action: "change visibility",
                        });
                    }
                    Some(_) => {
                        if !matches!(
                            &op.action,
                            OpType::Put(ScalarValue::Str(_)) | OpType::Delete
                        ) {
                            return Err(forbidden(key, "must be a string"));
                        }
                    }
                    None => return Err(forbidden(key, "is fixed by the genesis change")),
                }
            }
            ObjectId::Id(opid)
                if members_id
                    .as_ref()
                    .is_some_and(|(c, a)| *c == opid.0 && *a == opid.1) =>
            {
                let key = match &op.key {
                    Key::Map(k) => k.as_str(),
                    Key::Seq(_) => return Err(forbidden("members", "is not a list")),
                };
                if key.parse::<AuthorId>().is_err() {
                    return Err(forbidden(key, "is not an author id"));
                }
                let ok = match &op.action {
                    OpType::Delete => true,
                    OpType::Put(ScalarValue::Str(v)) => v.parse::<Role>().is_ok(),
                    _ => false,
                };
                if !ok {
                    return Err(forbidden(key, "must be owner, editor or viewer"));
                }
                need = Some(Needs {
                    role: Role::Owner,
                    action: "change members",
                });
            }
            ObjectId::Id(opid)
                if profiles_id
                    .as_ref()
                    .is_some_and(|(c, a)| *c == opid.0 && *a == opid.1) =>
            {
                let own = matches!(&op.key, Key::Map(k) if k.as_str() == it.author.to_string());
                if !own {
                    return Err(forbidden(
                        "profiles",
                        "may only hold the change author's own profile",
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(need)
}

/// Applies a genesis change to a fresh document and checks it starts a project properly.
pub(crate) fn apply_genesis(it: &Item) -> Result<Automerge, IngestError> {
    let bad = |reason| IngestError::BadGenesis {
        hash: it.hash,
        reason,
    };
    if it.change.seq() != 1 {
        return Err(bad("its sequence number is not 1"));
    }
    let mut doc = new_doc();
    guarded("the genesis change", || {
        doc.apply_changes([(*it.change).clone()])
    })?
    .map_err(|_| bad("it does not apply"))?;
    let schema = doc.get(automerge::ROOT, K_SCHEMA).ok().flatten();
    let schema_ok = matches!(&schema, Some((automerge::Value::Scalar(s), _)) if s.as_ref() == &ScalarValue::Str(SCHEMA.into()));
    if !schema_ok {
        return Err(bad("it lacks the project schema marker"));
    }
    let roots = Roots::read(&doc).ok_or(bad("it lacks the project's containers"))?;
    let members: Vec<(String, Option<Role>)> = doc
        .map_range(&roots.members, ..)
        .map(|m| {
            let role = match &m.value {
                automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s)) => s.parse().ok(),
                _ => None,
            };
            (m.key.to_string(), role)
        })
        .collect();
    if members != [(it.author.to_string(), Some(Role::Owner))] {
        return Err(bad("its only member must be its author, as owner"));
    }
    Ok(doc)
}

/// For each item, whether a seal of its author covers it; and the signers whose walk back from
/// their sealed heads met a dependency that is neither among the items nor in the document
/// (`absent`): a gap, behind which more of their changes may be covered.
///
/// Seals from index `fresh_from` on came with this batch: one naming another author's change is
/// refused. Earlier (waiting) seals that turn out to name another author's change are ignored,
/// so that a lie told earlier cannot make an honest later batch fail.
pub(crate) fn coverage(
    items: &[Item],
    index: &HashMap<ChangeHash, usize>,
    seals: &[Signed<ChangeSeal, Verified>],
    fresh_from: usize,
    absent: impl Fn(&automerge::ChangeHash) -> bool,
) -> Result<(Vec<bool>, HashSet<AuthorId>), IngestError> {
    let mut covered = vec![false; items.len()];
    let mut gaps = HashSet::new();
    // Walk back from each sealed head through the batch; visited sets are per signer.
    let mut visited: HashMap<AuthorId, HashSet<usize>> = HashMap::new();
    for (n, seal) in seals.iter().enumerate() {
        let signer = AuthorId(*seal.signer());
        let seen = visited.entry(signer).or_default();
        let mut stack = Vec::new();
        for head in &seal.value().heads {
            if let Some(&i) = index.get(head) {
                if items[i].author != signer {
                    if n < fresh_from {
                        continue;
                    }
                    return Err(IngestError::SealNamesOthers {
                        signer,
                        head: *head,
                    });
                }
                stack.push(i);
            }
        }
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            if items[i].author == signer {
                covered[i] = true;
            }
            for d in items[i].change.deps() {
                match index.get(&to_hash(*d)) {
                    Some(&j) => stack.push(j),
                    None if !gaps.contains(&signer) && absent(d) => {
                        gaps.insert(signer);
                    }
                    None => {}
                }
            }
        }
    }
    Ok((covered, gaps))
}

#[cfg(test)]
mod tests {
    use orrery_protocol::SecretKey;

    use super::*;
    use crate::{CellKind, NewCell, Session, Visibility};

    /// A project, a replica lagging one edit behind, and three later edits each sealed on its
    /// own (they all wait on the replica for the first).
    fn lagging() -> (Project, Project, Batch, Vec<Batch>) {
        let alice = Session::new(SecretKey::generate().expect("random")).expect("random");
        let (mut p, _) = Project::create(&alice, "Vega", Visibility::Shared).expect("create");
        let nb = p.add_notebook(&alice, "analysis").expect("notebook");
        let cell = p
            .insert_cell(&alice, &nb, 0, NewCell::new(CellKind::Code, ""))
            .expect("cell");
        p.seal(&alice);
        let mut r = Project::empty(p.id());
        r.ingest(p.history()).expect("history");
        p.splice_source(&alice, &nb, &cell, 0, 0, "a")
            .expect("edit");
        let first = p.seal(&alice);
        let later = (0..3)
            .map(|n| {
                p.splice_source(&alice, &nb, &cell, n + 1, 0, "b")
                    .expect("edit");
                p.seal(&alice)
            })
            .collect();
        (p, r, first, later)
    }

    #[test]
    fn one_origin_cannot_fill_the_parked_queue_for_everyone() {
        let (p, mut r, first, mut later) = lagging();
        r.pending.per_origin = 2;
        r.pending.total = 3;
        let (noisy, other) = (Origin([1; 32]), Origin([2; 32]));
        let third = later.pop().expect("three");
        for batch in later {
            r.ingest_from(batch, noisy).expect("within its share");
        }
        let err = r
            .ingest_from(third.clone(), noisy)
            .expect_err("a third parked change from one origin is refused");
        assert!(
            matches!(err, IngestError::TooManyPending { count: 3, limit: 2 }),
            "{err}"
        );
        assert_eq!(r.pending.changes.len(), 2, "what it parked before stays");
        // Another origin still has room for the same change.
        let report = r.ingest_from(third, other).expect("another origin parks");
        assert_eq!(report.pending, 3);
        // The missing edit arrives: everything applies.
        let report = r.ingest_from(first, other).expect("applies");
        assert_eq!(report.applied.len(), 4);
        assert_eq!(r.heads(), p.heads());
    }

    #[test]
    fn past_the_total_another_origins_parked_changes_make_room() {
        let (_, mut r, _, later) = lagging();
        r.pending.per_origin = 2;
        r.pending.total = 2;
        let (a, b) = (Origin([1; 32]), Origin([2; 32]));
        let mut later = later.into_iter();
        for batch in later.by_ref().take(2) {
            r.ingest_from(batch, a).expect("parks");
        }
        let report = r
            .ingest_from(later.next().expect("three"), b)
            .expect("room is made for another origin");
        assert_eq!(report.pending, 2);
        let from: Vec<Origin> = r.pending.changes.iter().map(|(_, _, o)| *o).collect();
        assert_eq!(from.iter().filter(|o| **o == b).count(), 1, "{from:?}");
    }
}
