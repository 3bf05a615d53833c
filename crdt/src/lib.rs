#![warn(missing_docs)]
//! The Orrery project document: an automerge document whose every change is signed by its
//! author, judged against the project's membership, and credited to whoever wrote it.
//!
//! * [`session`]: an author's key plus the actor id their changes carry (key ‖ session part).
//! * [`project`]: the typed document — title, description, visibility, members and roles,
//!   notebooks of ordered cells, dataset references, comments — and the edits on it.
//! * [`ingest`]: verify-before-apply of changes from other replicas (seals, coverage, causal
//!   permissions, waiting for dependencies, size limits, contained panics).
//! * [`contest`]: changes made concurrently with their author's removal or demotion, held
//!   unless a still-authorised member built on them.
//! * [`snapshot`]: the whole compressed document for a replica that has nothing, verified as a
//!   whole.
//! * [`credit`]: who wrote what, per project, notebook and cell, from the verified history.
//! * [`outputs`]: large cell outputs kept outside the document as content-addressed blobs.
//! * [`nbformat`]: Jupyter notebook (nbformat 4) import and export, and updating a notebook
//!   from a newer version of its file by applying only the difference.
//!
//! This crate never performs I/O and never trusts bytes it did not make: everything from outside
//! enters through [`Project::ingest`].
//!
//! # Access rules
//!
//! Owners change members, roles and visibility; editors change content (notebooks, cells,
//! outputs, comments, dataset references, title, description); viewers change nothing. The
//! schema's containers are created by the genesis change and no later change may replace them.
//!
//! The founder — the author of the genesis change, whose hash is the project id — is an owner
//! for good: no change can demote or remove them, so two owners demoting each other at the same
//! time can never leave a project without an owner.
//!
//! A computing node is no member, yet writes the outputs of a run it was asked for
//! ([`orrery_protocol::run`]): a change that writes a cell's `run` record must carry an editor's
//! signed request naming that node, that cell and exactly the heads the change is built on, and
//! may write nothing but that cell's outputs, execution count and run record; its role is judged
//! as the requester's. Every other change from a node that is no member is refused.
//!
//! A change is judged against the membership **in its own causal past** — the document as its
//! author saw it when they made it, which every replica can reconstruct identically from the
//! change's dependencies. So all replicas accept or refuse the same changes whatever order they
//! receive them in.
//!
//! ## An edit concurrent with its author's removal
//!
//! The causal-past check alone would let a removed author keep writing: they sign a change whose
//! dependencies are an old state where they were still a member (a *backdated* change), and it
//! passes everywhere. So a change is also judged against the **removals and demotions concurrent
//! with it** ([`contest`]): a change by Bob that passes its causal-past check, made concurrently
//! (neither is an ancestor of the other) with a valid membership change that lowers Bob's role
//! below what the change needs, is **contested**. A contested change is applied only once a
//! still-authorised member — another author whose own change is not contested — has made a change
//! that has it as an ancestor: someone who kept their rights built on it. Otherwise it is
//! **held**: kept beside the document, saved with it, served to peers, listed by
//! [`Project::held`] and [`IngestReport::held`], re-judged on every ingest, and applied the
//! moment an editor builds on it or accepts it ([`Project::accept_held`]). Everything depending
//! on a held change is held too. Once one of Bob's changes depends on the removal (he has seen
//! it), that change and every later one is refused outright, as before.
//!
//! The rule is a function of the set of changes alone, so replicas converge whatever order
//! changes arrive in. When a removal arrives after the contested changes were applied, the
//! replica rebuilds its document without them (automerge cannot un-apply): one fresh document
//! and one `apply_changes` over the history, linear in its size, and only on a removal
//! concurrent with applied changes of the removed author.
//!
//! What remains, stated plainly:
//!
//! * An honest edit made offline before the removal is held unless a member builds on it or
//!   accepts it: removing someone puts their unsynchronised work up for review.
//! * A replica that has not yet received the removal applies a backdated change like any other;
//!   if a still-authorised member there builds on it before the removal arrives, it is accepted
//!   everywhere (that member vouched for it). The window closes when the removal reaches them.
//! * Two owners removing (or demoting) each other concurrently contest each other's change:
//!   both changes are held, both stay owners, and the founder (an owner for good) or a third
//!   owner settles it; a member's change made after seeing one of them counts as building on
//!   it and releases it.
//!
//! # Signing cost
//!
//! One ed25519 signature costs more than an automerge commit, so Orrery does not sign every
//! change. A seal signs the latest change of a session; the hash chain makes it vouch for all of
//! that session's earlier changes. A replica keeps one seal per actor.

pub mod contest;
pub mod credit;
pub mod ids;
pub mod ingest;
pub mod json;
pub mod nbformat;
pub mod outputs;
pub mod position;
pub mod project;
pub mod schema;
pub mod session;
pub mod snapshot;
pub mod sync;

pub use ids::{CellId, CommentId, DatasetRefId, NotebookId};
pub use ingest::{IngestError, IngestReport, Origin, Refused};
pub use nbformat::UpdateSummary;
pub use outputs::{Blob, BlobError, BlobRef, BlobSource, NoBlobs};
pub use project::{
    Batch, Cell, CellSplices, Comment, DatasetRef, EditError, LogEntry, Member, NewCell, Notebook,
    NotebookDelta, Project, RunRecordError, Sealed, Splice, VerifiedRun,
};
pub use project::{MAX_LOCK_BYTES, PinnedEnvironment, image_by_digest};
pub use schema::{CellKind, Role, Visibility};
pub use session::Session;
