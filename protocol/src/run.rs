//! Running a cell at the data: the signed request of an author with the right to edit, and the
//! record the computing node writes beside the outputs it produced.
//!
//! A node that runs a cell writes the outputs into the project as a change signed with its own
//! key, built directly on the heads the request names, and stores in the cell a [`RunRecord`]:
//! the author's request and the run's provenance. Every replica accepts such a change only if
//! the request is valid (signed by an editor or owner of the project as of those heads, naming
//! this node, this project and that cell) and the change writes nothing but that cell's outputs
//! and run record (see `orrery_crdt::ingest`): a node cannot write outputs nobody asked for.

use serde::{Deserialize, Serialize};

use crate::identity::NodeId;
use crate::limits::{MAX_NAME_BYTES, MAX_SEAL_HEADS, MAX_SIGNED_PAYLOAD};
use crate::seal::{ChangeHash, ChangeSeal, ProjectId};
use crate::signing::{Domain, Signed, SignedPayload, Unverified};

/// How long a request may be honoured by another node after it was made (and how far ahead
/// its clock may be).
pub const RUN_ORDER_LIFETIME_SECS: i64 = crate::lab::ORDER_LIFETIME_SECS;

/// Most datasets a run record may name.
pub const MAX_DATASETS_READ: usize = 256;
/// Longest error message a run record keeps.
pub const MAX_ERROR_BYTES: usize = 4096;

/// An author's request that `node` run one cell of a project notebook as of `heads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The project.
    pub project: ProjectId,
    /// The notebook's id.
    pub notebook: String,
    /// The cell's id.
    pub cell: String,
    /// The project's heads the author saw: the notebook state to run, and the only base the
    /// node may write the outputs on.
    pub heads: Vec<ChangeHash>,
    /// The node asked to run it.
    pub node: NodeId,
    /// Random: tells apart two requests for the same cell and state.
    pub id: [u8; 16],
    /// When it was made, in seconds since the Unix epoch.
    pub issued_at: i64,
}

impl SignedPayload for RunRequest {
    const DOMAIN: Domain = Domain::RunRequest;
    const MAX_BYTES: usize = MAX_SIGNED_PAYLOAD;
    const NAME: &'static str = "run request";
}

/// A dataset a run read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRead {
    /// The node that holds it.
    pub node: NodeId,
    /// The product id there (`collection/path`).
    pub product: String,
    /// BLAKE3 of the bytes read.
    pub blake3: [u8; 32],
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    /// The cell ran to its end.
    Ok,
    /// The cell raised an error (its traceback is among the outputs), or the run failed.
    Error(String),
}

/// What a referee asks of a result: what ran, on what, where, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// BLAKE3 of the cell's source as run.
    pub source_blake3: [u8; 32],
    /// The lab environment's id (e.g. `jupyter`).
    pub environment: String,
    /// The hash of the environment's package lock.
    pub environment_lock: String,
    /// The datasets the run read.
    pub datasets: Vec<DatasetRead>,
    /// Start, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// End, in milliseconds since the Unix epoch.
    pub ended_at_ms: i64,
    /// How it ended.
    pub status: RunStatus,
}

/// What the computing node stores in the cell beside the outputs: the request it honoured and
/// the provenance of the run. Its authenticity is that of the change that wrote it (signed by
/// the node) and of the request inside (signed by the author).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The author's request.
    pub request: Signed<RunRequest, Unverified>,
    /// The run's provenance.
    pub provenance: Provenance,
}

/// A requester's home node asking the node its request names to run it: the request, and the
/// project as of the request's heads (a snapshot and its seals). The computing node judges the
/// request as it judges a lab order (a member sent it, for an author it hosts; fresh; not seen
/// before), verifies the snapshot as any replica verifies one, runs the cell, and keeps the
/// project only for the run: it answers with the one change that records the outputs, which the
/// home node takes in like any replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOrder {
    /// The author's request.
    pub request: Signed<RunRequest, Unverified>,
    /// The project as of the request's heads (`orrery_crdt`'s snapshot).
    #[serde(with = "crate::wire::bytes")]
    pub snapshot: Vec<u8>,
    /// The seals covering the snapshot's changes.
    pub seals: Vec<Signed<ChangeSeal, Unverified>>,
}

/// The computing node's answer to a run order, or to a question about one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RunReply {
    /// Taken: the cell runs; ask for its progress.
    Accepted,
    /// The outputs since the ones asked from (nbformat JSON, one per output), and, once the
    /// run ended, how.
    Progress {
        /// The outputs from the index asked for.
        outputs: Vec<String>,
        /// How the run ended, once it did.
        ended: Option<RunEnd>,
    },
    /// Refused, and why: nothing ran.
    Refused(String),
}

/// How a run on another node ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RunEnd {
    /// The run was made and recorded: the one change writing its outputs and record (sealed by
    /// the computing node), and the stored outputs it refers to.
    Recorded {
        /// The change.
        #[serde(with = "crate::wire::bytes")]
        change: Vec<u8>,
        /// Its seals.
        seals: Vec<Signed<ChangeSeal, Unverified>>,
        /// The stored outputs (large outputs are kept beside the project by their BLAKE3).
        blobs: Vec<BlobBytes>,
        /// The lab it ran in, on the computing node.
        lab: String,
    },
    /// The run could not be made (no lab, no kernel, a kernel that died): nothing recorded.
    Failed(String),
    /// A job's run was made: the record the computing node signed.
    Job(Box<Signed<crate::job::JobRecord, Unverified>>),
}

/// A stored output's bytes (encoded as one byte string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobBytes(#[serde(with = "crate::wire::bytes")] pub Vec<u8>);

/// Why a run request or record is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// A field over its limit.
    #[error("a run {0} is empty or over its limit")]
    Limit(&'static str),
}

impl RunRequest {
    /// Whether the request may still be honoured by another node at `now`.
    pub fn fresh_at(&self, now: i64) -> bool {
        (now - RUN_ORDER_LIFETIME_SECS..=now + RUN_ORDER_LIFETIME_SECS).contains(&self.issued_at)
    }

    /// Checks the request's limits.
    pub fn validate(&self) -> Result<(), RunError> {
        let id_ok = |s: &str| !s.is_empty() && s.len() <= MAX_NAME_BYTES;
        if !id_ok(&self.notebook) {
            return Err(RunError::Limit("notebook id"));
        }
        if !id_ok(&self.cell) {
            return Err(RunError::Limit("cell id"));
        }
        if self.heads.is_empty() || self.heads.len() > MAX_SEAL_HEADS {
            return Err(RunError::Limit("request's heads"));
        }
        Ok(())
    }
}

impl RunRecord {
    /// Checks the provenance's limits (the request's are checked once it is verified).
    pub fn validate(&self) -> Result<(), RunError> {
        let p = &self.provenance;
        if p.environment.len() > MAX_NAME_BYTES || p.environment_lock.len() > MAX_NAME_BYTES {
            return Err(RunError::Limit("environment"));
        }
        if p.datasets.len() > MAX_DATASETS_READ
            || p.datasets.iter().any(|d| d.product.len() > MAX_NAME_BYTES)
        {
            return Err(RunError::Limit("dataset list"));
        }
        if matches!(&p.status, RunStatus::Error(e) if e.len() > MAX_ERROR_BYTES) {
            return Err(RunError::Limit("error message"));
        }
        Ok(())
    }
}
