//! Pipelines: notebooks run whole, non-interactively, as jobs at the data, once or on a
//! schedule, with parameters injected as papermill injects them. Every call needs the `labs`
//! scope; submitting and cancelling also `write`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::{holder, writer};
use super::model::{JobAnswer, JobCall, JobRunView, JobView, NewJob};
use super::{ApiError, ErrorBody};
use crate::backend::Shared;

pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(submit_job))
        .routes(routes!(list_jobs))
        .routes(routes!(show_job, cancel_job))
        .routes(routes!(job_runs))
}

fn unexpected(other: &JobAnswer) -> ApiError {
    ApiError::unavailable(format!("the node answered {other:?}"))
}

fn job(a: JobAnswer) -> Result<JobView, ApiError> {
    match a {
        JobAnswer::Job(j) => Ok(j),
        other => Err(unexpected(&other)),
    }
}

async fn reader(b: &Shared, headers: &HeaderMap) -> Result<crate::Principal, ApiError> {
    holder(b, headers, "labs")
        .await?
        .ok_or_else(ApiError::unauthenticated)
}

async fn changer(b: &Shared, headers: &HeaderMap) -> Result<crate::Principal, ApiError> {
    let who = writer(b, headers, "labs").await?;
    if !who.scopes.iter().any(|s| s == "write") {
        return Err(ApiError::forbidden(
            "a job writes records of its runs: the credential needs the `write` scope as well as `labs`",
        ));
    }
    Ok(who)
}

/// Queues a notebook to run whole as a job on this node (editors; it must hold the data the
/// project references): a fresh kernel per run, every code cell in order, stopping at the first
/// that raises, the parameters injected after the cell tagged `parameters`.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/notebooks/{notebook}/jobs",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("notebook" = String, Path, description = "the notebook's id"),
    ),
    request_body = NewJob,
    responses(
        (status = 201, description = "queued", body = JobView),
        (status = 400, description = "the parameters or schedule are malformed", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such project or notebook that the caller may see", body = ErrorBody),
        (status = 409, description = "the caller's quota of queued jobs is full, or the data is held elsewhere", body = ErrorBody),
    )
)]
async fn submit_job(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, notebook)): Path<(String, String)>,
    body: Result<Json<NewJob>, JsonRejection>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let who = changer(&b, &headers).await?;
    let Json(new) = body?;
    let call = JobCall::Submit {
        project,
        notebook,
        job: new,
    };
    let made = job(b.jobs(who, call).await?)?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// The caller's jobs on this node, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "the caller's jobs", body = Vec<JobView>),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential may not use labs", body = ErrorBody),
    )
)]
async fn list_jobs(
    State(b): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Vec<JobView>>, ApiError> {
    let who = reader(&b, &headers).await?;
    match b.jobs(who, JobCall::List).await? {
        JobAnswer::Jobs(j) => Ok(Json(j)),
        other => Err(unexpected(&other)),
    }
}

/// One of the caller's jobs.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{job}",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    params(("job" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "the job", body = JobView),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 404, description = "no such job of the caller's", body = ErrorBody),
    )
)]
async fn show_job(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let who = reader(&b, &headers).await?;
    Ok(Json(job(b.jobs(who, JobCall::Show(id)).await?)?))
}

/// Cancels one of the caller's jobs: no further run starts (a running one finishes).
#[utoipa::path(
    delete,
    path = "/api/v1/jobs/{job}",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    params(("job" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "cancelled", body = JobView),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential does not allow it", body = ErrorBody),
        (status = 404, description = "no such job of the caller's that is queued or running", body = ErrorBody),
    )
)]
async fn cancel_job(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let who = changer(&b, &headers).await?;
    Ok(Json(job(b.jobs(who, JobCall::Cancel(id)).await?)?))
}

/// The runs of one of the caller's jobs, in order, each from the record the computing node
/// signed (checked as it is read): parameters, provenance, duration, how it ended, and every
/// cell's outputs, a failed run's partial ones included.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{job}/runs",
    tag = "jobs",
    security(("bearer" = []), ("session" = [])),
    params(("job" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "the runs, first first", body = Vec<JobRunView>),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 404, description = "no such job of the caller's", body = ErrorBody),
    )
)]
async fn job_runs(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Vec<JobRunView>>, ApiError> {
    let who = reader(&b, &headers).await?;
    match b.jobs(who, JobCall::Runs(id)).await? {
        JobAnswer::Runs(r) => Ok(Json(r)),
        other => Err(unexpected(&other)),
    }
}
