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

/// Applies `changes` to `doc` with panics contained: an actor reusing a sequence number (which
/// automerge checks before applying anything) is equivocation; any other failure is the
/// library's, named `what`.
pub(crate) fn apply_checked(
    doc: &mut Automerge,
    changes: impl IntoIterator<Item = Change> + Clone,
    what: &'static str,
) -> Result<(), IngestError> {
    guarded(what, || doc.apply_changes(changes))?.map_err(|e| match e {
        automerge::AutomergeError::DuplicateSeqNumber(seq, actor) => IngestError::Equivocation {
            author: crate::session::author_of(&actor),
            seq,
        },
        _ => IngestError::Library { what },
    })
}

/// Largest number of seals kept waiting for the changes they name.
const MAX_PENDING_SEALS: usize = 4096;

/// Largest number of parked changes one origin may have waiting in a project: a single sender
/// cannot fill the queue ([`MAX_PENDING_CHANGES`]) for everyone.
pub const MAX_PENDING_PER_ORIGIN: usize = MAX_PENDING_CHANGES / 8;

mod flow;
mod parse;
mod pending;
mod rules;
mod run;
mod seals;
#[cfg(test)]
mod tests;

pub(crate) use parse::parse_change;
pub(crate) use pending::Pending;
pub(crate) use rules::{Item, Needs, apply_genesis, classify, role_at};
pub(crate) use run::{RunClaim, check_run};
pub(crate) use seals::{SealBook, coverage};
