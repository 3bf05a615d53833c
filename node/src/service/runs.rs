//! Running a cell at the data. An editor asks at their home node; the node places the run at
//! the member holding the project's datasets (as labs are placed), signs the request with the
//! editor's author key naming that member ([`Project::request_run`]), and either runs it here or
//! sends it there. The computing node runs the cell's source as of the request in a kernel of the
//! editor's lab (one kernel per editor and notebook, kept between runs as a notebook's session
//! keeps it) and writes the outputs into the project as a change signed with its own key,
//! carrying the request and the run's provenance ([`Project::record_run`]), which every replica
//! checks before it takes it.
//!
//! - [`actor`]: the node actor's part: placing and signing a request, recording a run made here,
//!   taking in one made elsewhere.
//! - [`hosted`]: runs this node makes for other nodes' authors.
//! - [`follow`]: following a run sent to another node.

mod actor;
mod follow;
mod hosted;
mod hosted_job;
mod job_orders;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use orrery_crdt::{CellId, NotebookId};
use orrery_federation::FederationHandle;
use orrery_protocol::run::{DatasetRead, Provenance, RunRequest};
use orrery_protocol::{AuthorId, NodeId, ProjectId, Signed, Verified};
use serde_json::Value;
use tokio::sync::Mutex;

use super::*;
use crate::labs::env::Environment;
use crate::labs::kernel::{Execution, Kernel, KernelError};

pub(super) use actor::{Placed, datasets_at};

/// Longest a cell may run before it is interrupted.
pub(super) const RUN_DEADLINE: Duration = Duration::from_secs(3600);

/// What the node needs to run a cell here: the signed request, and the cell as of its heads.
#[derive(Debug, Clone)]
pub(super) struct RunOrder {
    /// The editor's signed request.
    pub(super) request: Signed<RunRequest, Verified>,
    /// The cell's source as of the request.
    pub(super) source: String,
    /// The project's datasets held here: the collections the lab sees, and what provenance names.
    pub(super) datasets: Vec<DatasetRead>,
    /// The environment the project runs in ([`environment_of`]).
    pub(super) environment: Environment,
}

/// The environment `p`'s cells run in: the one it is pinned to, else the node's default.
pub(super) fn environment_of(p: &orrery_crdt::Project) -> Environment {
    match p.pinned_environment() {
        Some(pin) => Environment {
            description: format!("{}, pinned by the project", pin.id),
            id: pin.id,
            lock: pin.lock,
            image: pin.image,
        },
        None => Environment::jupyter(),
    }
}

/// A run that was made and recorded.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// What was asked.
    pub request: RunRequest,
    /// The node that ran it and signed its outputs.
    pub node: NodeId,
    /// What the record says of it.
    pub provenance: Provenance,
    /// The lab it ran in, on that node.
    pub lab: String,
}

/// Whose runs a kernel is for: an editor, in one notebook of one project.
type KernelKey = (AuthorId, ProjectId, NotebookId);

/// A run's kernel, once started, with its lab's id and environment; locked while it is being
/// started, so that one editor's slow lab start holds up no one else's runs.
type Slot = Arc<Mutex<Option<(String, Kernel, Environment)>>>;

/// What a cell's run in a kernel here gave.
struct Ran {
    execution: Execution,
    provenance: Provenance,
    lab: String,
}

/// The runs of a node: the kernels they use (one per editor and notebook, in that editor's
/// lab), the runs it makes for other nodes, and the way to reach the nodes it sends runs to.
pub(super) struct Runs {
    pub(super) labs: Arc<labs::Labs>,
    /// The centre's batch system jobs go to, if they go to one.
    pub(super) batch: Option<Arc<super::jobs::slurm::Batch>>,
    fed: FederationHandle,
    kernels: Mutex<HashMap<KernelKey, Slot>>,
    hosted: hosted::Hosted,
    following: follow::Following,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn run_error(what: impl std::fmt::Display) -> NodeError {
    NodeError::Run(what.to_string())
}

pub(super) use crate::batch::cells::status_of;

/// The collections named by a run's datasets, each once.
pub(super) fn collections_of(datasets: &[DatasetRead]) -> Vec<String> {
    let mut c: Vec<String> = datasets
        .iter()
        .filter_map(|d| d.product.split('/').next().map(str::to_owned))
        .collect();
    c.sort();
    c.dedup();
    c
}

impl Runs {
    pub(super) fn new(
        labs: Arc<labs::Labs>,
        fed: FederationHandle,
        batch: Option<Arc<super::jobs::slurm::Batch>>,
    ) -> Self {
        Self {
            labs,
            batch,
            fed,
            kernels: Mutex::default(),
            hosted: hosted::Hosted::default(),
            following: follow::Following::default(),
        }
    }

    async fn slot(&self, key: &KernelKey) -> Slot {
        self.kernels
            .lock()
            .await
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// Runs `source` for the editor of `key` in a kernel of their lab here (started if need
    /// be, seeing the collections of `datasets`), handing each output to `seen` as it arrives.
    /// A kernel error in the cell is a run like any (its traceback is an output); a lab or
    /// kernel that cannot be reached is an error.
    async fn execute(
        &self,
        key: KernelKey,
        source: &str,
        datasets: &[DatasetRead],
        environment: &Environment,
        seen: &mut (dyn FnMut(&Value) + Send),
    ) -> Result<Ran, NodeError> {
        let owner = key.0.to_string();
        let collections = collections_of(datasets);
        let slot = self.slot(&key).await;
        let mut held = slot.lock().await;
        let (lab, kernel) = match held.as_ref() {
            // The project's environment may have been pinned (or unpinned) since: a kernel of
            // another environment is not used.
            Some((lab, k, env)) if env == environment && self.labs.is_running(&owner, lab) => {
                (lab.clone(), k.clone())
            }
            _ => {
                let (lab, endpoint, token, base) = self
                    .labs
                    .lab_for_runs(&owner, environment, &collections)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e.message, "no lab to run a cell in");
                        run_error(e.message)
                    })?;
                let k = Kernel::start(&endpoint, &base, &token).await.map_err(|e| {
                    tracing::warn!(lab, error = %e, "no kernel to run a cell in");
                    run_error(e)
                })?;
                *held = Some((lab.clone(), k.clone(), environment.clone()));
                (lab, k)
            }
        };
        drop(held);
        let started_at_ms = now_ms();
        let execution = match kernel.execute(source, RUN_DEADLINE, seen).await {
            Ok(e) => e,
            Err(e) => {
                // A kernel that died with the cell (out of memory, a crash) or cannot be
                // reached is forgotten: the next run starts a fresh one. One past its deadline
                // was interrupted and stays.
                if !matches!(e, KernelError::Timeout(_)) {
                    *slot.lock().await = None;
                }
                tracing::warn!(lab, error = %e, "a cell could not be run; nothing was recorded");
                return Err(run_error(e));
            }
        };
        let provenance = Provenance {
            source_blake3: *blake3::hash(source.as_bytes()).as_bytes(),
            environment: environment.id.clone(),
            environment_lock: environment.hash(),
            datasets: datasets.to_vec(),
            started_at_ms,
            ended_at_ms: now_ms(),
            status: status_of(&execution.ended),
        };
        Ok(Ran {
            execution,
            provenance,
            lab,
        })
    }

    /// A fresh kernel in `author`'s lab here (started if need be, seeing the collections of
    /// `datasets`), for a job: not kept for later runs.
    pub(super) async fn fresh_kernel(
        &self,
        author: AuthorId,
        datasets: &[DatasetRead],
        environment: &Environment,
    ) -> Result<(String, Kernel), NodeError> {
        let (lab, endpoint, token, base) = self
            .labs
            .lab_for_runs(&author.to_string(), environment, &collections_of(datasets))
            .await
            .map_err(|e| run_error(e.message))?;
        let kernel = Kernel::start(&endpoint, &base, &token)
            .await
            .map_err(run_error)?;
        Ok((lab, kernel))
    }

    /// Interrupts what the kernel of `key` runs, if it has one here.
    async fn interrupt(&self, key: &KernelKey) -> Result<bool, NodeError> {
        let kernel = match self.kernels.lock().await.get(key) {
            Some(slot) => slot.clone(),
            None => return Ok(false),
        };
        // A kernel being started is not running anything yet.
        let Ok(held) = kernel.try_lock() else {
            return Ok(false);
        };
        match held.as_ref() {
            Some((_, k, _)) => k.interrupt().await.map(|()| true).map_err(run_error),
            None => Ok(false),
        }
    }

    /// Restarts the kernel of `key` (its state is lost), if it has one here.
    async fn restart(&self, key: &KernelKey) -> Result<bool, NodeError> {
        let slot = match self.kernels.lock().await.get(key) {
            Some(slot) => slot.clone(),
            None => return Ok(false),
        };
        let held = slot.lock().await;
        match held.as_ref() {
            Some((_, k, _)) => k.restart().await.map(|()| true).map_err(run_error),
            None => Ok(false),
        }
    }
}

impl NodeHandle {
    /// Runs `cell` of `nb` for `author` (an editor of the project, hosted here) at the member
    /// holding the project's datasets (here when it holds them, or the project has none): in a
    /// kernel of the author's lab there, then recorded in the project with that node's
    /// signature. `seen` gets each output as it arrives. A kernel error in the cell is a run
    /// like any (its traceback is an output); a lab, kernel or node that cannot be reached is
    /// an error, and nothing is recorded.
    pub async fn run_cell(
        &self,
        author: AuthorId,
        project: ProjectId,
        nb: NotebookId,
        cell: CellId,
        seen: &mut (dyn FnMut(&Value) + Send),
    ) -> Result<RunOutcome, NodeError> {
        let placed: Placed = self
            .call(|reply| Command::RequestRun {
                author,
                project,
                notebook: nb.clone(),
                cell,
                reply,
            })
            .await?;
        let order = match placed {
            Placed::Here(order) => order,
            Placed::There { node, order } => {
                return self.runs.follow(self, node, order, seen).await;
            }
        };
        let key = (author, project, nb);
        let ran = self
            .runs
            .execute(
                key,
                &order.source,
                &order.datasets,
                &order.environment,
                seen,
            )
            .await?;
        let Ran {
            execution,
            provenance,
            lab,
        } = ran;
        let (request, p) = (order.request.clone(), provenance.clone());
        self.call(|reply| Command::RecordRun {
            request,
            outputs: execution.outputs,
            execution_count: execution.execution_count,
            provenance: p,
            reply,
        })
        .await
        .inspect_err(|e| {
            tracing::warn!(lab, error = %e, "a cell ran but its outputs could not be recorded");
        })?;
        Ok(RunOutcome {
            request: order.request.value().clone(),
            node: self.id,
            provenance,
            lab,
        })
    }

    /// Interrupts what `author`'s kernel for `nb` runs here; whether there was one.
    pub async fn interrupt_run(
        &self,
        author: AuthorId,
        project: ProjectId,
        nb: NotebookId,
    ) -> Result<bool, NodeError> {
        let key = (author, project, nb);
        if self.runs.interrupt(&key).await? {
            return Ok(true);
        }
        self.runs.control_elsewhere(&key, false).await
    }

    /// Restarts `author`'s kernel for `nb` here (its variables are lost); whether there was one.
    pub async fn restart_kernel(
        &self,
        author: AuthorId,
        project: ProjectId,
        nb: NotebookId,
    ) -> Result<bool, NodeError> {
        let key = (author, project, nb);
        if self.runs.restart(&key).await? {
            return Ok(true);
        }
        self.runs.control_elsewhere(&key, true).await
    }
}
