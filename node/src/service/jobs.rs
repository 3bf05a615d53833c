//! Pipelines: notebooks run whole, non-interactively, as jobs at the data, once or on a
//! schedule, one job at a time per node. Parameters are injected as papermill injects them: a
//! cell of assignments after the cell tagged `parameters` (at the top if none is). Each run gets
//! a fresh kernel in its requester's lab, runs every code cell in order and stops at the first
//! that raises; its record (every cell's outputs, the partial ones of a failed run included) is
//! signed by this node and kept. A job waits in the store's queue; after a restart a job that
//! was running is failed saying so (or, if it repeats, queued again saying its run was lost),
//! and queued jobs go on.

use std::sync::Arc;
use std::time::Duration;

use orrery_crdt::{CellKind, NotebookId, Project};
use orrery_protocol::job::{JobCell, JobRecord, parameters_cell};
use orrery_protocol::run::{DatasetRead, RunStatus};
use orrery_protocol::{NodeId, SecretKey, Signed};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::NodeHandle;
use crate::home::Home;
use crate::labs::env::Environment;
use crate::store::{Job, Store, StoreError};

/// Most jobs one author may have queued or running at once.
pub(crate) const JOB_QUOTA: usize = 16;
/// Shortest time between two runs of a repeating job.
pub(crate) const MIN_EVERY_SECS: i64 = 1;
/// Longest time between two runs of a repeating job (a year).
pub(crate) const MAX_EVERY_SECS: i64 = 366 * 24 * 3600;
/// Longest a worker sleeps before looking at the queue again when nothing wakes it.
const IDLE: Duration = Duration::from_secs(30);

/// What the worker needs, and what wakes it when a job is queued.
pub(crate) struct Jobs {
    pub(crate) home: Home,
    pub(crate) wake: Notify,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Jobs {
    /// Runs `f` on a connection of its own to the node's store, off the async threads.
    pub(crate) async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.home.database();
        tokio::task::spawn_blocking(move || f(&mut Store::open(&db)?))
            .await
            .map_err(|_| StoreError::Stopped)?
    }
}

/// A notebook as a job reads it: its code cells (with whether each is the parameters cell), the
/// heads it was read at, and the datasets this node holds for it.
pub(super) struct Read {
    heads: Vec<orrery_protocol::ChangeHash>,
    cells: Vec<(String, String, bool)>,
    pub(super) datasets: Vec<DatasetRead>,
}

pub(super) fn read_notebook(p: &Project, nb: &NotebookId, me: NodeId) -> Result<Read, String> {
    let notebook = p
        .notebook(nb)
        .map_err(|e| format!("the notebook cannot be read: {e}"))?;
    let cells = notebook
        .cells
        .into_iter()
        .filter(|c| c.kind == CellKind::Code)
        .map(|c| {
            let tagged = c.metadata["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "parameters"));
            (c.id.to_string(), c.source, tagged)
        })
        .collect();
    Ok(Read {
        heads: p.heads(),
        cells,
        datasets: super::runs::datasets_at(p, me),
    })
}

/// The cells a run executes: the notebook's code cells, with the parameters injected after
/// the cell tagged `parameters` (first if none is), as papermill does.
fn with_parameters(
    cells: Vec<(String, String, bool)>,
    parameters: &[(String, String)],
) -> Vec<(String, String)> {
    let at = cells.iter().position(|c| c.2).map_or(0, |i| i + 1);
    let mut out: Vec<(String, String)> = cells.into_iter().map(|(id, s, _)| (id, s)).collect();
    if !parameters.is_empty() {
        out.insert(
            at,
            (
                "injected-parameters".to_owned(),
                parameters_cell(parameters),
            ),
        );
    }
    out
}

impl Jobs {
    /// After a (re)start, before anyone can ask: jobs that were running are failed, saying so
    /// (or queued again if they repeat), and queued jobs go on.
    pub(crate) async fn recover(&self) {
        match self.store(|s| s.fail_interrupted_jobs()).await {
            Ok((lost, queued)) => {
                for id in &lost {
                    warn!(job = %id, "a job was running when the node stopped; that run was lost (the job says so)");
                }
                if queued > 0 {
                    info!(queued, "queued jobs go on after the restart");
                }
            }
            Err(e) => {
                warn!(error = %e, "the job queue could not be read; jobs left running are shown as running until it can")
            }
        }
    }
}

impl NodeHandle {
    /// Where `job`'s next run goes: `None` for here, or the member holding its notebook's data
    /// with the order to send it.
    async fn place_job(
        &self,
        job: Job,
    ) -> Result<Option<(NodeId, orrery_protocol::job::JobOrder)>, super::NodeError> {
        self.call(|reply| super::Command::PlaceJob { job, reply })
            .await
    }
}

/// Works through the queue until the node stops.
pub(crate) async fn work(
    jobs: Arc<Jobs>,
    node: NodeHandle,
    key: SecretKey,
    cancel: CancellationToken,
) {
    loop {
        let due = jobs.store(|s| s.take_due_job(now())).await;
        match due {
            Ok(Some(job)) => run_one(&jobs, &node, &key, job).await,
            Ok(None) => {
                let next = jobs.store(|s| s.next_job_at()).await.ok().flatten();
                let wait = next.map_or(IDLE, |at| {
                    Duration::from_secs(u64::try_from(at - now()).unwrap_or(0)).min(IDLE)
                });
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = jobs.wake.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => {
                warn!(error = %e, "the job queue could not be read; trying again shortly");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(IDLE) => {}
                }
            }
        }
        if cancel.is_cancelled() {
            return;
        }
    }
}

/// One run of `job`: recorded, signed, kept; a run that could not start is a failed run too.
async fn run_one(jobs: &Jobs, node: &NodeHandle, key: &SecretKey, job: Job) {
    let id = job.id.clone();
    let (record, note) = match execute(node, key, &job).await {
        Ok(record) => {
            let note = match &record.value().status {
                RunStatus::Ok => String::new(),
                RunStatus::Error(e) => format!("run {} raised {e}", record.value().run),
            };
            (Some(record.into_unverified()), note)
        }
        Err(why) => (None, why),
    };
    let failed = !note.is_empty();
    if failed {
        warn!(job = %id, why = %note, "a job's run failed");
    }
    let done = jobs
        .store(move |s| s.finish_job_run(&id, record.as_ref(), failed, &note))
        .await;
    if let Err(e) = done {
        warn!(job = %job.id, error = %e, "a job ran but its record could not be kept");
    }
}

async fn execute(
    node: &NodeHandle,
    key: &SecretKey,
    job: &Job,
) -> Result<Signed<JobRecord, orrery_protocol::Verified>, String> {
    let nb: NotebookId = job
        .notebook
        .parse()
        .map_err(|_| "the job's notebook id does not parse".to_owned())?;
    // Where the notebook's data is held, if not here: the run goes there.
    if let Some((at, order)) = node
        .place_job(job.clone())
        .await
        .map_err(|e| e.to_string())?
    {
        return node.runs.follow_job(at, order).await;
    }
    let (me, author) = (node.id(), job.author);
    let read = node
        .read(job.project, move |p| match p {
            Some(p)
                if p.role_of(&author)
                    .is_some_and(|r| r >= orrery_crdt::Role::Editor) =>
            {
                read_notebook(p, &nb, me)
            }
            Some(_) => Err(
                "the job's requester is no longer an editor of the project; the job was not run"
                    .into(),
            ),
            None => Err("the project is no longer held here".into()),
        })
        .await
        .map_err(|e| e.to_string())??;
    let record = make_run(&node.runs, header(job, me, None), read).await?;
    Ok(Signed::sign(key, record))
}

/// A record of one run of `job` on `node`, before the run: what the run fills in is empty.
pub(super) fn header(
    job: &Job,
    node: NodeId,
    request: Option<
        orrery_protocol::Signed<orrery_protocol::job::JobRequest, orrery_protocol::Unverified>,
    >,
) -> JobRecord {
    JobRecord {
        job: job.id.clone(),
        run: job.runs + 1,
        project: job.project,
        notebook: job.notebook.clone(),
        heads: Vec::new(),
        requester: job.author,
        parameters: job.parameters.clone(),
        node,
        environment: String::new(),
        environment_lock: String::new(),
        datasets: Vec::new(),
        started_at_ms: 0,
        ended_at_ms: 0,
        status: RunStatus::Ok,
        cells: Vec::new(),
        request,
    }
}

/// Makes one run of a job here, in a fresh kernel of its requester's lab: every code cell of
/// the notebook `read` in order with the parameters injected, stopping at the first that
/// raises; `record` filled in with what ran and how.
pub(super) async fn make_run(
    runs: &super::runs::Runs,
    mut record: JobRecord,
    read: Read,
) -> Result<JobRecord, String> {
    let environment = Environment::jupyter();
    record.started_at_ms = now_ms();
    let (lab, kernel) = runs
        .fresh_kernel(record.requester, &read.datasets)
        .await
        .map_err(|e| e.to_string())?;
    let mut kept = 0usize;
    for (cell, source) in with_parameters(read.cells, &record.parameters) {
        let source_blake3 = *blake3::hash(source.as_bytes()).as_bytes();
        if record.status != RunStatus::Ok {
            record.cells.push(JobCell {
                cell,
                source_blake3,
                execution_count: None,
                outputs: Vec::new(),
                status: None,
            });
            continue;
        }
        let ran = kernel
            .execute(&source, super::runs::RUN_DEADLINE, &mut |_| {})
            .await;
        let (outputs, count, cell_status) = match ran {
            Ok(e) => {
                let status = super::runs::status_of(&e.ended);
                (e.outputs, e.execution_count, status)
            }
            Err(e) => (Vec::new(), None, RunStatus::Error(e.to_string())),
        };
        if cell_status != RunStatus::Ok {
            record.status = cell_status.clone();
        }
        let mut outputs: Vec<String> = outputs.iter().map(ToString::to_string).collect();
        let bytes: usize = outputs.iter().map(String::len).sum();
        if kept + bytes > orrery_protocol::job::MAX_JOB_OUTPUT_BYTES {
            warn!(
                cell,
                bytes, "a job's outputs passed what its record keeps; this cell's were left out"
            );
            let note = serde_json::json!({
                "output_type": "stream",
                "name": "stderr",
                "text": format!(
                    "{bytes} bytes of outputs were not kept: a run's record keeps at most {} MiB\n",
                    orrery_protocol::job::MAX_JOB_OUTPUT_BYTES >> 20
                ),
            });
            outputs = vec![note.to_string()];
        }
        kept += outputs.iter().map(String::len).sum::<usize>();
        record.cells.push(JobCell {
            cell,
            source_blake3,
            execution_count: count,
            outputs,
            status: Some(cell_status),
        });
    }
    if let Err(e) = kernel.shutdown().await {
        warn!(lab, error = %e, "a job's kernel could not be shut down; the lab's culler will");
    }
    record.heads = read.heads;
    record.datasets = read.datasets;
    record.environment = environment.id.clone();
    record.environment_lock = environment.hash();
    record.ended_at_ms = now_ms();
    Ok(record)
}
