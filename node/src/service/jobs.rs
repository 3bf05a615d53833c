//! Pipelines: notebooks run whole, non-interactively, as jobs at the data, once or on a
//! schedule, one job at a time per node. Parameters are injected as papermill injects them: a
//! cell of assignments after the cell tagged `parameters` (at the top if none is). Each run gets
//! a fresh kernel in its requester's lab, runs every code cell in order and stops at the first
//! that raises; its record (every cell's outputs, the partial ones of a failed run included) is
//! signed by this node and kept. A job waits in the store's queue; after a restart a job that
//! was running is failed saying so (or, if it repeats, queued again saying its run was lost),
//! and queued jobs go on.

//!
//! Where the node's jobs go to the centre's Slurm cluster ([`slurm`]), each run is a batch job
//! there, as many at once as `[jobs.slurm] max_submitted` allows, and runs still in Slurm when
//! the node restarts are followed again.

pub(super) mod slurm;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orrery_crdt::{CellKind, NotebookId, Project};
use orrery_protocol::job::JobRecord;
use orrery_protocol::run::{DatasetRead, RunStatus};
use orrery_protocol::{NodeId, SecretKey, Signed};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::NodeHandle;
use crate::batch::cells::{run_cells, with_parameters};
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
/// How often a running job is looked at for a cancel.
const CANCEL_LOOK: Duration = Duration::from_secs(2);

/// What the worker needs, and what wakes it when a job is queued.
pub(crate) struct Jobs {
    pub(crate) home: Home,
    pub(crate) wake: Notify,
    /// Runs at once: one in labs here, `[jobs.slurm] max_submitted` in Slurm.
    pub(crate) slots: Arc<Semaphore>,
}

/// The job a run is made for: a job of this node's, whose run says where it is in its note and
/// stops when it is cancelled; or one made for another node's job, which that node follows.
pub(super) enum Watch {
    /// A job in this node's queue.
    Home {
        /// The node's database.
        db: PathBuf,
        /// The job's id.
        job: String,
        /// A run's directory in a batch system's spool, to clean once its record is kept, and
        /// whether the run ended well.
        left: std::sync::Mutex<Option<(PathBuf, bool)>>,
    },
    /// A run made here for another node's job.
    Hosted,
}

impl Watch {
    fn home(db: PathBuf, job: &str) -> Self {
        Watch::Home {
            db,
            job: job.to_owned(),
            left: std::sync::Mutex::default(),
        }
    }

    /// Says where the run is, in the job's note.
    pub(super) async fn note(&self, note: &str) {
        if let Watch::Home { db, job, .. } = self {
            let (db, job, note) = (db.clone(), job.clone(), note.to_owned());
            let kept = tokio::task::spawn_blocking(move || {
                Store::open(&db).and_then(|mut s| s.set_job_note(&job, &note))
            })
            .await;
            if let Ok(Err(e)) = kept {
                warn!(error = %e, "a job's note could not be kept");
            }
        }
    }

    /// Whether the job was cancelled.
    pub(super) async fn cancelled(&self) -> bool {
        let Watch::Home { db, job, .. } = self else {
            return false;
        };
        let (db, job) = (db.clone(), job.clone());
        match tokio::task::spawn_blocking(move || {
            Store::open(&db).and_then(|s| s.job_cancelled(&job))
        })
        .await
        {
            Ok(Ok(cancelled)) => cancelled,
            Ok(Err(e)) => {
                warn!(error = %e, "whether a job was cancelled could not be read; its run goes on");
                false
            }
            Err(_) => false,
        }
    }

    /// A batch run's directory, cleaned once the run's record is kept (here at once, for a run
    /// made for another node, which keeps the record itself).
    pub(super) fn leave(&self, dir: PathBuf, ok: bool) {
        match self {
            Watch::Home { left, .. } => {
                *left
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((dir, ok));
            }
            Watch::Hosted => slurm::clean(&dir, ok),
        }
    }

    /// Cleans what the run left, once its record is kept.
    fn clean(&self) {
        if let Watch::Home { left, .. } = self
            && let Some((dir, ok)) = left
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
        {
            slurm::clean(&dir, ok);
        }
    }
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
    /// The environment the project runs in (its pin, else the node's default).
    pub(super) environment: Environment,
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
        environment: super::runs::environment_of(p),
    })
}

impl Jobs {
    /// After a (re)start, before anyone can ask: jobs that were running are failed, saying so
    /// (or queued again if they repeat), and queued jobs go on; runs still in Slurm are followed
    /// again (and runs made there for other nodes, which no one follows now, are cancelled).
    pub(crate) async fn recover(&self, node: &NodeHandle, key: &SecretKey) {
        let mut resumed = Vec::new();
        if let Some(batch) = node.runs.batch.clone() {
            let submitted = tokio::task::spawn_blocking({
                let batch = batch.clone();
                move || batch.submitted()
            })
            .await
            .unwrap_or_default();
            let mut abandoned = Vec::new();
            for run in submitted {
                let job = run.record.job.clone();
                if run.record.request.is_some() {
                    abandoned.push(run);
                    continue;
                }
                let found = self
                    .store({
                        let job = job.clone();
                        move |s| s.job(&job)
                    })
                    .await;
                let ours = match found {
                    Ok(Some(j)) => {
                        j.state == crate::store::JobState::Running && run.record.run == j.runs + 1
                    }
                    Ok(None) => false,
                    Err(e) => {
                        warn!(job, error = %e, "a run in Slurm could not be matched with its job; it is left for the next start");
                        continue;
                    }
                };
                if !ours {
                    abandoned.push(run);
                    continue;
                }
                info!(
                    job,
                    slurm = run.slurm_id,
                    "a job's run is still in Slurm; it is followed again"
                );
                resumed.push(job.clone());
                let (watch, key, batch) = (self.db_watch(&job), key.clone(), batch.clone());
                // Followed at once: it runs in Slurm whether or not a slot is free here.
                let (slot, home) = (
                    self.slots.clone().try_acquire_owned().ok(),
                    self.home.clone(),
                );
                tokio::spawn(async move {
                    let _slot = slot;
                    let signed = batch
                        .follow(run, &watch)
                        .await
                        .map(|record| Signed::sign(&key, record));
                    finish(&home, &job, signed).await;
                    watch.clean();
                });
            }
            if !abandoned.is_empty() {
                tokio::spawn(async move { batch.abandon(abandoned).await });
            }
        }
        match self.store(move |s| s.fail_interrupted_jobs(&resumed)).await {
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

impl Jobs {
    fn db_watch(&self, job: &str) -> Watch {
        Watch::home(self.home.database(), job)
    }
}

/// Works through the queue until the node stops, as many runs at once as it has slots.
pub(crate) async fn work(
    jobs: Arc<Jobs>,
    node: NodeHandle,
    key: SecretKey,
    cancel: CancellationToken,
) {
    loop {
        let slot = tokio::select! {
            () = cancel.cancelled() => return,
            slot = jobs.slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { return };
        let due = jobs.store(|s| s.take_due_job(now())).await;
        match due {
            Ok(Some(job)) => {
                let (jobs, node, key) = (jobs.clone(), node.clone(), key.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    run_one(&jobs, &node, &key, job).await;
                });
            }
            Ok(None) => {
                drop(slot);
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
                drop(slot);
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
    let watch = jobs.db_watch(&job.id);
    let signed = execute(node, key, &job, &watch).await;
    finish(&jobs.home, &job.id, signed).await;
    watch.clean();
}

/// Keeps how a run of job `id` ended.
async fn finish(
    home: &Home,
    id: &str,
    signed: Result<Signed<JobRecord, orrery_protocol::Verified>, String>,
) {
    let id = id.to_owned();
    let (record, note) = match signed {
        Ok(record) => {
            let note = match &record.value().status {
                RunStatus::Ok => String::new(),
                RunStatus::Error(e) => format!("run {} failed: {e}", record.value().run),
            };
            (Some(record.into_unverified()), note)
        }
        Err(why) => (None, why),
    };
    let failed = !note.is_empty();
    if failed {
        warn!(job = %id, why = %note, "a job's run failed");
    }
    let db = home.database();
    let job = id.clone();
    let done = tokio::task::spawn_blocking(move || {
        Store::open(&db)?.finish_job_run(&id, record.as_ref(), failed, &note)
    })
    .await;
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(job, error = %e, "a job ran but its record could not be kept"),
        Err(e) => warn!(job, error = %e, "a job ran but its record could not be kept"),
    }
}

async fn execute(
    node: &NodeHandle,
    key: &SecretKey,
    job: &Job,
    watch: &Watch,
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
    let record = make_run(&node.runs, header(job, me, None), read, watch).await?;
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

/// Makes one run of a job here, in a fresh kernel of its requester's lab (or in Slurm, where
/// the node's jobs go there): every code cell of the notebook `read` in order with the
/// parameters injected, stopping at the first that raises; `record` filled in with what ran
/// and how.
pub(super) async fn make_run(
    runs: &super::runs::Runs,
    mut record: JobRecord,
    read: Read,
    watch: &Watch,
) -> Result<JobRecord, String> {
    if let Some(batch) = &runs.batch {
        return batch.make_run(runs, record, read, watch).await;
    }
    let environment = read.environment.clone();
    record.started_at_ms = now_ms();
    let (lab, kernel) = runs
        .fresh_kernel(record.requester, &read.datasets, &environment)
        .await
        .map_err(|e| e.to_string())?;
    let mut ran = |_: &[orrery_protocol::job::JobCell], _: &RunStatus| {};
    let run = run_cells(
        &kernel,
        with_parameters(read.cells, &record.parameters),
        super::runs::RUN_DEADLINE,
        &mut ran,
    );
    tokio::pin!(run);
    // A job cancelled while it runs has its cell interrupted (again until the run stops: an
    // interrupt between two cells reaches neither).
    let mut cancelled = false;
    let (cells, mut status) = loop {
        tokio::select! {
            ended = &mut run => break ended,
            () = tokio::time::sleep(CANCEL_LOOK) => {
                if cancelled || watch.cancelled().await {
                    cancelled = true;
                    if let Err(e) = kernel.interrupt().await {
                        warn!(lab, error = %e, "a cancelled job's cell could not be interrupted");
                    }
                }
            }
        }
    };
    if cancelled && status != RunStatus::Ok {
        status = RunStatus::Error(format!(
            "cancelled while it ran ({})",
            match &status {
                RunStatus::Error(e) => e.as_str(),
                RunStatus::Ok => "",
            }
        ));
    }
    if let Err(e) = kernel.shutdown().await {
        warn!(lab, error = %e, "a job's kernel could not be shut down; the lab's culler will");
    }
    record.cells = cells;
    record.status = status;
    record.heads = read.heads;
    record.datasets = read.datasets;
    record.environment = environment.id.clone();
    record.environment_lock = environment.hash();
    record.ended_at_ms = now_ms();
    Ok(record)
}
