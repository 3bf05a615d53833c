#![warn(missing_docs)]
//! The Orrery project document: an automerge document whose every change is signed by its
//! author, judged against the project's membership, and credited to whoever wrote it.
//!
//! * [`session`]: an author's key plus the actor id their changes carry (key ‖ session part).
//! * [`project`]: the typed document — title, description, visibility, members and roles,
//!   notebooks of ordered cells, dataset references, comments — and the edits on it.
//! * [`ingest`]: verify-before-apply of changes from other replicas (seals, coverage, causal
//!   permissions, waiting for dependencies, size limits, contained panics).
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
//! A change is judged against the membership **in its own causal past** — the document as its
//! author saw it when they made it, which every replica can reconstruct identically from the
//! change's dependencies. So all replicas accept or refuse the same changes whatever order they
//! receive them in.
//!
//! ## An edit concurrent with its author's removal
//!
//! Suppose an owner removes Bob while Bob, not yet aware, keeps typing. Bob's edits whose causal
//! past does not contain the removal were made while he was, as far as he could know, a member:
//! every replica **accepts** them, and they merge like any concurrent edit. Once one of Bob's
//! changes depends on the removal (he has seen it), that change and every later one is refused
//! everywhere. Nothing already accepted is ever taken back, because a replica that had accepted
//! an edit before the removal arrived could not un-apply it and would diverge from one that had
//! not. The consequence, stated plainly: a removed author who deliberately withholds the removal
//! from their own replica can still produce edits that are "concurrent" with it. The federation
//! stops replicating a project to removed members' nodes, and owners can revert content, but the
//! document alone cannot tell an honest late edit from a withheld one.
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
pub mod nbformat;
pub mod outputs;
pub mod position;
pub mod project;
pub mod schema;
pub mod session;
pub mod snapshot;
pub mod sync;

pub use ids::{CellId, CommentId, DatasetRefId, NotebookId};
pub use ingest::{IngestError, IngestReport};
pub use nbformat::UpdateSummary;
pub use outputs::{Blob, BlobRef, BlobSource, NoBlobs};
pub use project::{
    Batch, Cell, Comment, DatasetRef, EditError, LogEntry, Member, NewCell, Notebook, Project,
    Sealed,
};
pub use schema::{CellKind, Role, Visibility};
pub use session::Session;
