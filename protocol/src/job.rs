//! Pipelines: a notebook run whole, non-interactively, as a job at the data, with parameters
//! injected as papermill injects them, once or on a schedule. Each run of a job is kept as a
//! [`JobRecord`] signed by the node that computed it: what ran (the notebook's heads, each
//! cell's source hash), with what parameters, on what environment and data, how long, how it
//! ended, and every cell's outputs, a failed run's partial outputs and error included.

use serde::{Deserialize, Serialize};

use crate::identity::{AuthorId, NodeId};
use crate::limits::{MAX_NAME_BYTES, MAX_SEAL_HEADS};
use crate::run::{DatasetRead, RUN_ORDER_LIFETIME_SECS, RunStatus};
use crate::seal::{ChangeHash, ChangeSeal, ProjectId};
use crate::signing::{Domain, Signed, SignedPayload, Unverified};

/// Most parameters one job takes.
pub const MAX_PARAMETERS: usize = 64;
/// Longest parameter value (a Python literal, as JSON writes it).
pub const MAX_PARAMETER_BYTES: usize = 4096;
/// Largest job record (its outputs included): it must fit a frame between nodes.
pub const MAX_JOB_RECORD_BYTES: usize = 48 * 1024 * 1024;
/// Most bytes of outputs one run's record keeps (beyond, a cell's outputs are replaced by a
/// note saying so).
pub const MAX_JOB_OUTPUT_BYTES: usize = 32 * 1024 * 1024;

/// How one cell of a job's run went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCell {
    /// The cell's id (`injected-parameters` for the cell the job added).
    pub cell: String,
    /// BLAKE3 of the source that ran.
    pub source_blake3: [u8; 32],
    /// The kernel's execution counter for it, if it ran.
    pub execution_count: Option<i64>,
    /// Its outputs (nbformat JSON, one per output).
    pub outputs: Vec<String>,
    /// How it ended; `None` if it did not run (a cell before it failed).
    pub status: Option<RunStatus>,
}

/// One run of a job, as the node that computed it signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job.
    pub job: String,
    /// Which run of the job (1 is the first).
    pub run: u32,
    /// The project.
    pub project: ProjectId,
    /// The notebook's id.
    pub notebook: String,
    /// The project's heads the notebook was read at.
    pub heads: Vec<ChangeHash>,
    /// Who asked for the job.
    pub requester: AuthorId,
    /// The parameters injected: names and Python literals.
    pub parameters: Vec<(String, String)>,
    /// The node that ran it and signs this record.
    pub node: NodeId,
    /// The lab environment's id.
    pub environment: String,
    /// The hash of the environment's package lock.
    pub environment_lock: String,
    /// The datasets the run could read.
    pub datasets: Vec<DatasetRead>,
    /// Start, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// End, in milliseconds since the Unix epoch.
    pub ended_at_ms: i64,
    /// How the run ended: `Ok`, or the first error.
    pub status: RunStatus,
    /// Every code cell, in order, the injected parameters among them.
    pub cells: Vec<JobCell>,
    /// The author's signed request, when the job's own node sent the run here (the notebook's
    /// data is here); `None` when the job ran on the node it was submitted to.
    pub request: Option<Signed<JobRequest, Unverified>>,
}

impl SignedPayload for JobRecord {
    const DOMAIN: Domain = Domain::JobRecord;
    const MAX_BYTES: usize = MAX_JOB_RECORD_BYTES;
    const NAME: &'static str = "job record";
}

/// Why a job's parameters are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    /// Too many, or a value over its limit.
    #[error(
        "a job takes at most {MAX_PARAMETERS} parameters of at most {MAX_PARAMETER_BYTES} bytes each"
    )]
    Limit,
    /// A name that is not a Python identifier.
    #[error("`{0}` is not a Python identifier")]
    Name(String),
}

/// Checks parameter names (Python identifiers) and sizes.
pub fn check_parameters(parameters: &[(String, String)]) -> Result<(), ParameterError> {
    if parameters.len() > MAX_PARAMETERS
        || parameters
            .iter()
            .any(|(_, v)| v.len() > MAX_PARAMETER_BYTES)
    {
        return Err(ParameterError::Limit);
    }
    for (name, _) in parameters {
        let mut chars = name.chars();
        let ok = name.len() <= MAX_NAME_BYTES
            && chars
                .next()
                .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
        if !ok {
            return Err(ParameterError::Name(name.clone()));
        }
    }
    Ok(())
}

/// The source of the cell papermill injects: one assignment per parameter.
pub fn parameters_cell(parameters: &[(String, String)]) -> String {
    let mut source = String::from("# Parameters\n");
    for (name, value) in parameters {
        source.push_str(&format!("{name} = {value}\n"));
    }
    source
}

/// Largest job request (its parameters).
pub const MAX_JOB_REQUEST_BYTES: usize = 512 * 1024;

/// An author's request that `node` make one run of a job: run a notebook of a project whole,
/// as of `heads`, with `parameters`. The node holding the job (the author's home) signs it with
/// the author's key when the notebook's data is held by another member, and sends it there in a
/// [`JobOrder`]; that member judges it as a run request (see [`crate::run`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRequest {
    /// The project.
    pub project: ProjectId,
    /// The notebook's id.
    pub notebook: String,
    /// The project's heads: the notebook to run.
    pub heads: Vec<ChangeHash>,
    /// The parameters to inject: names and Python literals.
    pub parameters: Vec<(String, String)>,
    /// The node asked to run it.
    pub node: NodeId,
    /// The job, at its home node.
    pub job: String,
    /// Which run of the job.
    pub run: u32,
    /// Random: tells apart two requests.
    pub id: [u8; 16],
    /// When it was made, in seconds since the Unix epoch.
    pub issued_at: i64,
}

impl SignedPayload for JobRequest {
    const DOMAIN: Domain = Domain::JobRequest;
    const MAX_BYTES: usize = MAX_JOB_REQUEST_BYTES;
    const NAME: &'static str = "job request";
}

impl JobRequest {
    /// Whether another node may still honour it at `now`.
    pub fn fresh_at(&self, now: i64) -> bool {
        (now - RUN_ORDER_LIFETIME_SECS..=now + RUN_ORDER_LIFETIME_SECS).contains(&self.issued_at)
    }

    /// Checks its limits.
    pub fn validate(&self) -> Result<(), String> {
        let id_ok = |s: &str| !s.is_empty() && s.len() <= MAX_NAME_BYTES;
        if !id_ok(&self.notebook) || !id_ok(&self.job) {
            return Err("a job request's notebook or job id is empty or too long".into());
        }
        if self.heads.is_empty() || self.heads.len() > MAX_SEAL_HEADS {
            return Err("a job request's heads are empty or too many".into());
        }
        check_parameters(&self.parameters).map_err(|e| e.to_string())
    }
}

/// The home node asking the member holding a job's data to make one run of it: the author's
/// request and the project as of its heads (a snapshot and its seals), as a run order carries
/// them. The answer comes as a run's does (`RunProgress`), ending with the signed
/// [`JobRecord`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobOrder {
    /// The author's request.
    pub request: Signed<JobRequest, Unverified>,
    /// The project as of the request's heads.
    #[serde(with = "crate::wire::bytes")]
    pub snapshot: Vec<u8>,
    /// The seals covering the snapshot's changes.
    pub seals: Vec<Signed<ChangeSeal, Unverified>>,
}
