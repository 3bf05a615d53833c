//! Runs at the data: a code cell run at the member holding the project's datasets, its outputs
//! streamed as they come when asked for (`application/x-ndjson`), and the caller's kernel for a
//! notebook interrupted or restarted. Every call needs the `labs` and `write` scopes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::writer;
use super::model::*;
use super::{ApiError, ErrorBody};
use crate::backend::Shared;

pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(run_cell))
        .routes(routes!(interrupt_kernel))
        .routes(routes!(restart_kernel))
}

/// Runs a code cell at the data (editors, with a credential of both the `labs` and `write`
/// scopes): at the member holding the project's datasets (this node when it holds them, or the
/// project references none), in a kernel of the caller's lab there, kept between runs of the
/// notebook as a notebook session keeps it. The outputs are written into the project signed by
/// that node, with the caller's signed request and the run's provenance, which every replica
/// checks.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/notebooks/{notebook}/cells/{cell}/run",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("notebook" = String, Path, description = "the notebook's id"),
        ("cell" = String, Path, description = "the cell's id"),
    ),
    responses(
        (status = 200, description = "the run, recorded (a cell that raised is a run too); with `Accept: application/x-ndjson`, each output as it arrives and then the run, one JSON object a line (`{\"output\": …}`, `{\"run\": …}`, or `{\"error\": {\"status\": …, \"error\": …}}`)", body = RunView),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
        (status = 503, description = "no lab, kernel or node to run it could be had; nothing was recorded", body = ErrorBody),
    )
)]
async fn run_cell(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, notebook, cell)): Path<(String, String, String)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let who = writer(&b, &headers, "labs").await?;
    if !who.scopes.iter().any(|s| s == "write") {
        return Err(ApiError::forbidden(
            "a run writes the cell's outputs: the credential needs the `write` scope as well as `labs`",
        ));
    }
    let cell = CellAddress {
        project,
        notebook,
        cell,
    };
    let streamed = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(NDJSON));
    let (tx, rx) = futures::channel::mpsc::unbounded();
    if !streamed {
        drop(rx);
        return Ok(Json(b.run_cell(who, cell, tx).await?).into_response());
    }
    // Each output as it arrives, then the run (or why it failed), one JSON object a line. The
    // run goes on if the client leaves: its outputs are recorded in the project.
    let (lines, end) = futures::channel::mpsc::unbounded::<RunLine>();
    let outputs = lines.clone();
    tokio::spawn(async move {
        let forward = rx.for_each(|o| {
            let _ = outputs.unbounded_send(RunLine::Output(o));
            futures::future::ready(())
        });
        let (ran, ()) = futures::join!(b.run_cell(who, cell, tx), forward);
        let last = match ran {
            Ok(run) => RunLine::Run(Box::new(run)),
            Err(e) => RunLine::Error {
                status: e.status.as_u16(),
                error: e.message,
            },
        };
        let _ = lines.unbounded_send(last);
    });
    let body = end.map(|line| {
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        Ok::<_, std::convert::Infallible>(bytes)
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, NDJSON)],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// The media type of a streamed run: one JSON object a line.
const NDJSON: &str = "application/x-ndjson";

/// Interrupts what the caller's kernel for a notebook runs (here, or on the node that ran the
/// caller's last cell of it).
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/notebooks/{notebook}/kernel/interrupt",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("notebook" = String, Path, description = "the notebook's id"),
    ),
    responses(
        (status = 204, description = "interrupted"),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential does not allow it", body = ErrorBody),
        (status = 404, description = "no such project, or no kernel of the caller's for the notebook", body = ErrorBody),
        (status = 503, description = "the kernel or its node could not be reached", body = ErrorBody),
    )
)]
async fn interrupt_kernel(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, notebook)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    kernel(&b, &headers, project, notebook, false).await
}

/// Restarts the caller's kernel for a notebook: its variables are lost; the next run starts
/// afresh.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/notebooks/{notebook}/kernel/restart",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("notebook" = String, Path, description = "the notebook's id"),
    ),
    responses(
        (status = 204, description = "restarted"),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential does not allow it", body = ErrorBody),
        (status = 404, description = "no such project, or no kernel of the caller's for the notebook", body = ErrorBody),
        (status = 503, description = "the kernel or its node could not be reached", body = ErrorBody),
    )
)]
async fn restart_kernel(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, notebook)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    kernel(&b, &headers, project, notebook, true).await
}

async fn kernel(
    b: &Shared,
    headers: &HeaderMap,
    project: String,
    notebook: String,
    restart: bool,
) -> Result<StatusCode, ApiError> {
    let who = writer(b, headers, "labs").await?;
    let a = b
        .edit_project(who, project, ProjectEdit::Kernel { notebook, restart })
        .await?;
    match a {
        ProjectAnswer::Done => Ok(StatusCode::NO_CONTENT),
        other => Err(ApiError::unavailable(format!(
            "the node answered with {other:?} where nothing was expected"
        ))),
    }
}
