//! Jobs (pipelines) through the REST API: queued for the caller's notebook on this node, listed,
//! cancelled, and their runs read from the records this node signed.

use orrery_crdt::{NotebookId, Role};
use orrery_protocol::job::{JobRecord, check_parameters};
use orrery_protocol::run::RunStatus;
use orrery_web::api::{JobAnswer, JobCall, JobCellView, JobRunView, JobView, NewJob};
use orrery_web::{ApiError, Principal};
use serde_json::Value;

use super::super::NodeHandle;
use super::super::jobs::{JOB_QUOTA, Jobs, MAX_EVERY_SECS, MIN_EVERY_SECS};
use super::{author_of, node_error, not_found, parse, project_id, visible};
use crate::store::{Job, JobState, StoreError};

fn store_error(e: StoreError) -> ApiError {
    ApiError::unavailable(format!("the job queue could not be read: {e}"))
}

/// A JSON value as the Python literal papermill would inject.
fn python_literal(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(_) => v.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(python_literal)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), python_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn view(j: Job) -> JobView {
    JobView {
        id: j.id,
        project: j.project.to_string(),
        notebook: j.notebook,
        parameters: j.parameters,
        every_secs: j.every_secs,
        next_at: (j.state == JobState::Queued).then_some(j.next_at),
        state: j.state.as_str().into(),
        runs: j.runs,
        note: j.note,
        created_at: j.created_at,
    }
}

fn status(s: &RunStatus) -> String {
    match s {
        RunStatus::Ok => "ok".into(),
        RunStatus::Error(e) => e.clone(),
    }
}

/// A run as its signed record says; a record whose signature does not hold (altered in the
/// store) is shown as such, with nothing of it.
fn run_view(record: orrery_protocol::Signed<JobRecord, orrery_protocol::Unverified>) -> JobRunView {
    let checked = record
        .verify()
        .ok()
        .filter(|r| r.signer() == r.value().node.key());
    let Some(r) = checked.map(|r| r.value().clone()) else {
        tracing::warn!("a job record kept here does not verify: it was altered in the store");
        return JobRunView {
            run: 0,
            node: String::new(),
            verified: false,
            status: "this record's signature does not hold: it was altered after it was signed"
                .into(),
            parameters: Vec::new(),
            heads: Vec::new(),
            environment: String::new(),
            environment_lock: String::new(),
            datasets: Vec::new(),
            started_at_ms: 0,
            ended_at_ms: 0,
            cells: Vec::new(),
        };
    };
    let verified = true;
    JobRunView {
        run: r.run,
        node: r.node.to_string(),
        verified,
        status: status(&r.status),
        parameters: r.parameters,
        heads: r.heads.iter().map(ToString::to_string).collect(),
        environment: r.environment,
        environment_lock: r.environment_lock,
        datasets: r
            .datasets
            .iter()
            .map(|d| format!("{} {}", d.product, hex::encode(d.blake3)))
            .collect(),
        started_at_ms: r.started_at_ms,
        ended_at_ms: r.ended_at_ms,
        cells: r
            .cells
            .into_iter()
            .map(|c| JobCellView {
                cell: c.cell,
                status: c.status.as_ref().map_or_else(|| "not run".into(), status),
                execution_count: c.execution_count,
                outputs: c
                    .outputs
                    .iter()
                    .filter_map(|o| serde_json::from_str(o).ok())
                    .collect(),
            })
            .collect(),
    }
}

/// Answers a jobs call of `who`.
pub(in crate::service) async fn call(
    node: &NodeHandle,
    jobs: &Jobs,
    who: Principal,
    call: JobCall,
) -> Result<JobAnswer, ApiError> {
    let author = author_of(&who)?;
    let mine = |j: &Option<Job>| j.as_ref().filter(|j| j.author == author).cloned();
    match call {
        JobCall::Submit {
            project,
            notebook,
            job,
        } => submit(node, jobs, author, &project, &notebook, job).await,
        JobCall::List => jobs
            .store(move |s| s.jobs(Some(author)))
            .await
            .map(|j| JobAnswer::Jobs(j.into_iter().map(view).collect()))
            .map_err(store_error),
        JobCall::Show(id) => {
            let j = jobs.store(move |s| s.job(&id)).await.map_err(store_error)?;
            mine(&j)
                .map(|j| JobAnswer::Job(view(j)))
                .ok_or_else(|| ApiError::not_found("no such job of yours"))
        }
        JobCall::Runs(id) => {
            let asked = id.clone();
            let j = jobs
                .store(move |s| s.job(&asked))
                .await
                .map_err(store_error)?;
            if mine(&j).is_none() {
                return Err(ApiError::not_found("no such job of yours"));
            }
            let runs = jobs
                .store(move |s| s.job_runs(&id))
                .await
                .map_err(store_error)?;
            Ok(JobAnswer::Runs(runs.into_iter().map(run_view).collect()))
        }
        JobCall::Cancel(id) => {
            let asked = id.clone();
            let cancelled = jobs
                .store(move |s| s.cancel_job(&asked, author))
                .await
                .map_err(store_error)?;
            if !cancelled {
                return Err(ApiError::not_found(
                    "no job of yours by that id is queued or running",
                ));
            }
            let j = jobs.store(move |s| s.job(&id)).await.map_err(store_error)?;
            mine(&j)
                .map(|j| JobAnswer::Job(view(j)))
                .ok_or_else(|| ApiError::not_found("no such job of yours"))
        }
    }
}

async fn submit(
    node: &NodeHandle,
    jobs: &Jobs,
    author: orrery_protocol::AuthorId,
    project: &str,
    notebook: &str,
    new: NewJob,
) -> Result<JobAnswer, ApiError> {
    let id = project_id(project)?;
    let nb: NotebookId = parse("notebook id", notebook)?;
    let parameters: Vec<(String, String)> = new
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), python_literal(v)))
        .collect();
    check_parameters(&parameters).map_err(|e| ApiError::invalid(e.to_string()))?;
    if new
        .every_secs
        .is_some_and(|e| !(MIN_EVERY_SECS..=MAX_EVERY_SECS).contains(&e))
    {
        return Err(ApiError::invalid(format!(
            "a job repeats every {MIN_EVERY_SECS} s to {MAX_EVERY_SECS} s"
        )));
    }
    let checked = {
        let nb = nb.clone();
        node.read(id, move |p| {
            let p = p
                .filter(|p| visible(p, Some(&author)))
                .ok_or_else(|| not_found(id))?;
            if p.role_of(&author).is_none_or(|r| r < Role::Editor) {
                return Err(ApiError::forbidden(
                    "only the project's editors and owners run its notebooks",
                ));
            }
            p.notebook(&nb)
                .map_err(|_| ApiError::not_found("no such notebook in the project"))?;
            Ok(())
        })
        .await
        .map_err(node_error)?
    };
    checked?;
    let mut random = [0u8; 6];
    getrandom::fill(&mut random)
        .map_err(|e| ApiError::unavailable(format!("no randomness for a job id: {e}")))?;
    let job_id = format!("job-{}", hex::encode(random));
    let (p, n, every) = (id, notebook.to_owned(), new.every_secs);
    let queued = jobs
        .store(move |s| s.queue_job(&job_id, p, &n, author, &parameters, every, JOB_QUOTA))
        .await
        .map_err(store_error)?;
    let Some(job) = queued else {
        return Err(ApiError::conflict(format!(
            "you have {JOB_QUOTA} jobs queued or running here, the most allowed: cancel one or wait"
        )));
    };
    jobs.wake.notify_one();
    Ok(JobAnswer::Job(view(job)))
}
