//! Running a cell at the data, on this node. An editor asks; the node signs the request with
//! the editor's author key ([`Project::request_run`]), runs the cell's source as of that request
//! in a kernel of the editor's lab here (one kernel per editor and notebook, kept between runs
//! as a notebook's session keeps it), and writes the outputs into the project as a change signed
//! with its own key, carrying the request and the run's provenance ([`Project::record_run`]),
//! which every replica checks before it takes it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use orrery_crdt::{CellId, NotebookId};
use orrery_protocol::run::{DatasetRead, Provenance, RunRequest, RunStatus};
use orrery_protocol::{AuthorId, ProjectId, Signed, Verified};
use serde_json::Value;
use tokio::sync::Mutex;

use super::*;
use crate::labs::env::Environment;
use crate::labs::kernel::{Ended, Execution, Kernel, KernelError};

/// Longest a cell may run before it is interrupted.
pub(super) const RUN_DEADLINE: Duration = Duration::from_secs(3600);

/// What the node needs to run a cell: the signed request, and the cell as of its heads.
#[derive(Debug, Clone)]
pub(super) struct RunOrder {
    /// The editor's signed request.
    pub(super) request: Signed<RunRequest, Verified>,
    /// The cell's source as of the request.
    pub(super) source: String,
    /// The project's datasets held here: the collections the lab sees, and what provenance names.
    pub(super) datasets: Vec<DatasetRead>,
}

/// A run that was made and recorded.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// What was asked.
    pub request: RunRequest,
    /// What the kernel produced.
    pub execution: Execution,
    /// What the record says of it.
    pub provenance: Provenance,
    /// The lab it ran in.
    pub lab: String,
}

/// Whose runs a kernel is for: an editor, in one notebook of one project.
type KernelKey = (AuthorId, ProjectId, NotebookId);

/// A run's kernel, once started, with its lab's id; locked while it is being started, so that
/// one editor's slow lab start holds up no one else's runs.
type Slot = std::sync::Arc<Mutex<Option<(String, Kernel)>>>;

/// The kernels of runs: one per editor and notebook, in that editor's lab.
#[derive(Default)]
pub(super) struct Kernels {
    running: Mutex<HashMap<KernelKey, Slot>>,
}

impl Kernels {
    async fn slot(&self, key: &KernelKey) -> Slot {
        self.running
            .lock()
            .await
            .entry(key.clone())
            .or_default()
            .clone()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn run_error(what: impl std::fmt::Display) -> NodeError {
    NodeError::Run(what.to_string())
}

impl NodeActor {
    /// Signs `author`'s request that this node run `cell` of `nb` as the project stands now.
    pub(super) async fn request_run(
        &mut self,
        author: AuthorId,
        project: ProjectId,
        nb: NotebookId,
        cell: CellId,
    ) -> Result<RunOrder, NodeError> {
        let session = self.session_of(author).await?;
        let me = self.me;
        let p = self
            .projects
            .get(&project)
            .ok_or(NodeError::NoProject(project))?;
        let request = p.request_run(&session, &nb, &cell, me)?;
        let source = p.cell(&nb, &cell)?.source;
        let here = me.to_string();
        let datasets = p
            .datasets()
            .into_iter()
            .filter(|d| d.node == here)
            .filter_map(|d| {
                let mut blake3 = [0u8; 32];
                hex::decode_to_slice(&d.checksum, &mut blake3).ok()?;
                Some(DatasetRead {
                    node: me,
                    product: d.dataset,
                    blake3,
                })
            })
            .collect();
        Ok(RunOrder {
            request,
            source,
            datasets,
        })
    }

    /// Writes a run's outputs and record into its project, signed with this node's key, and
    /// stores and sends the change as any edit's.
    pub(super) async fn record_run(
        &mut self,
        request: Signed<RunRequest, Verified>,
        outputs: Vec<Value>,
        execution_count: Option<i64>,
        provenance: Provenance,
    ) -> Result<(), NodeError> {
        let id = request.value().project;
        let project = self.projects.get_mut(&id).ok_or(NodeError::NoProject(id))?;
        let (_, batch) = project
            .record_run(&self.key, &request, &outputs, execution_count, provenance)
            .map_err(run_error)?;
        let blobs = project.take_blobs();
        if !blobs.is_empty() {
            let store = self.blobs.for_project(id);
            tokio::task::spawn_blocking(move || store.put_all(&blobs))
                .await
                .map_err(|_| NodeError::Stopped)??;
        }
        let title = project.title();
        self.store
            .run(move |s| s.append_raw(id, &title, &batch))
            .await?;
        self.note_own_write(id).await;
        if let Some(p) = self.projects.get(&id) {
            self.emit(NodeEvent::ProjectChanged {
                project: id,
                heads: p.heads(),
            });
        }
        self.kick_all(id);
        Ok(())
    }
}

impl NodeHandle {
    /// Runs `cell` of `nb` for `author` (an editor of the project, hosted here) on this node:
    /// in a kernel of the author's lab here (started if need be, with the project's datasets
    /// held here), then recorded in the project with the node's signature. A kernel error in
    /// the cell is a run like any (its traceback is an output); a lab or kernel that cannot be
    /// reached is an error, and nothing is recorded.
    pub async fn run_cell(
        &self,
        author: AuthorId,
        project: ProjectId,
        nb: NotebookId,
        cell: CellId,
    ) -> Result<RunOutcome, NodeError> {
        let order: RunOrder = self
            .call(|reply| Command::RequestRun {
                author,
                project,
                notebook: nb.clone(),
                cell,
                reply,
            })
            .await?;
        let environment = Environment::jupyter();
        let owner = author.to_string();
        let collections: Vec<String> = {
            let mut c: Vec<String> = order
                .datasets
                .iter()
                .filter_map(|d| d.product.split('/').next().map(str::to_owned))
                .collect();
            c.sort();
            c.dedup();
            c
        };
        let key = (author, project, nb);
        let slot = self.runs.slot(&key).await;
        let mut held = slot.lock().await;
        let (lab, kernel) = match held.as_ref() {
            Some((lab, k)) if self.labs.is_running(&owner, lab) => (lab.clone(), k.clone()),
            _ => {
                let (lab, endpoint, token, base) = self
                    .labs
                    .lab_for_runs(&owner, &environment.id, &collections)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e.message, "no lab to run a cell in");
                        run_error(e.message)
                    })?;
                let k = Kernel::start(&endpoint, &base, &token).await.map_err(|e| {
                    tracing::warn!(lab, error = %e, "no kernel to run a cell in");
                    run_error(e)
                })?;
                *held = Some((lab.clone(), k.clone()));
                (lab, k)
            }
        };
        drop(held);
        let started_at_ms = now_ms();
        let execution = match kernel
            .execute(&order.source, RUN_DEADLINE, &mut |_| {})
            .await
        {
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
            source_blake3: *blake3::hash(order.source.as_bytes()).as_bytes(),
            environment: environment.id.clone(),
            environment_lock: environment.hash(),
            datasets: order.datasets.clone(),
            started_at_ms,
            ended_at_ms: now_ms(),
            status: match &execution.ended {
                Ended::Ok => RunStatus::Ok,
                Ended::Error { ename, evalue } => RunStatus::Error(
                    format!("{ename}: {evalue}")
                        .chars()
                        .take(orrery_protocol::run::MAX_ERROR_BYTES / 4)
                        .collect(),
                ),
                Ended::Aborted => RunStatus::Error("the kernel did not run the cell".into()),
            },
        };
        let (outputs, count) = (execution.outputs.clone(), execution.execution_count);
        let (request, p) = (order.request.clone(), provenance.clone());
        self.call(|reply| Command::RecordRun {
            request,
            outputs,
            execution_count: count,
            provenance: p,
            reply,
        })
        .await
        .inspect_err(|e| {
            tracing::warn!(lab, error = %e, "a cell ran but its outputs could not be recorded");
        })?;
        Ok(RunOutcome {
            request: order.request.value().clone(),
            execution,
            provenance,
            lab,
        })
    }
}
