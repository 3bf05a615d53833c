//! Pipelines: a notebook run whole, non-interactively, as a job at the data, with parameters
//! injected as papermill injects them, once or on a schedule. Each run of a job is kept as a
//! [`JobRecord`] signed by the node that computed it: what ran (the notebook's heads, each
//! cell's source hash), with what parameters, on what environment and data, how long, how it
//! ended, and every cell's outputs, a failed run's partial outputs and error included.

use serde::{Deserialize, Serialize};

use crate::identity::{AuthorId, NodeId};
use crate::limits::MAX_NAME_BYTES;
use crate::run::{DatasetRead, RunStatus};
use crate::seal::{ChangeHash, ProjectId};
use crate::signing::{Domain, SignedPayload};

/// Most parameters one job takes.
pub const MAX_PARAMETERS: usize = 64;
/// Longest parameter value (a Python literal, as JSON writes it).
pub const MAX_PARAMETER_BYTES: usize = 4096;
/// Largest job record (its outputs included).
pub const MAX_JOB_RECORD_BYTES: usize = 64 * 1024 * 1024;

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
