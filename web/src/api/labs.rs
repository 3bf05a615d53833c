//! Labs: the caller's sandboxed Jupyter labs on this node (ESA Datalabs' `datalabs`,
//! `createDatalab`, `destroyDatalab`). Every call needs the `labs` scope.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::{holder, writer};
use super::model::{AddDataset, LabAnswer, LabCall, LabProgress, LabView, NewLab};
use super::{ApiError, ErrorBody};
use crate::backend::Shared;

pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list_labs, create_lab))
        .routes(routes!(lab_events))
        .routes(routes!(show_lab, stop_lab))
        .routes(routes!(start_lab))
        .routes(routes!(add_dataset))
        .routes(routes!(lab_logs))
        .routes(routes!(open_lab))
}

fn lab(a: LabAnswer) -> Result<LabView, ApiError> {
    match a {
        LabAnswer::Lab(l) => Ok(l),
        other => Err(ApiError::unavailable(format!(
            "the node answered {other:?} where a lab was expected"
        ))),
    }
}

/// A read of labs: a signed-in user whose credential may use labs.
async fn owner(b: &Shared, headers: &HeaderMap) -> Result<crate::Principal, ApiError> {
    holder(b, headers, "labs")
        .await?
        .ok_or_else(ApiError::unauthenticated)
}

/// Every step of the caller's labs from now on, as server-sent events (`event: lab`, data: a
/// `LabProgress`): the states of a start as it goes (pending, placed, provisioning with what it
/// installs, starting, running or failed with its reason), notices (an idle lab about to be
/// stopped), stops; for labs on this node and on the nodes that run the caller's other labs.
#[utoipa::path(
    get,
    path = "/api/v1/labs/events",
    tag = "labs",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "a stream of `lab` events, each a LabProgress", body = LabProgress, content_type = "text/event-stream"),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential may not use labs", body = ErrorBody),
    )
)]
async fn lab_events(State(b): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    use futures::StreamExt;
    let who = owner(&b, &headers).await?;
    let stream = b.lab_events(who).await?.map(|p| {
        axum::response::sse::Event::default()
            .event("lab")
            .json_data(&p)
            .map_err(|e| ApiError::unavailable(e.to_string()))
    });
    Ok(axum::response::sse::Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response())
}

/// The caller's labs on this node.
#[utoipa::path(
    get,
    path = "/api/v1/labs",
    tag = "labs",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "the caller's labs", body = Vec<LabView>),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential may not use labs", body = ErrorBody),
    )
)]
async fn list_labs(
    State(b): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Vec<LabView>>, ApiError> {
    let who = owner(&b, &headers).await?;
    match b.labs(who, LabCall::List).await? {
        LabAnswer::Labs(l) => Ok(Json(l)),
        other => Err(ApiError::unavailable(format!(
            "the node answered {other:?}"
        ))),
    }
}

/// Starts a lab next to this node's data; answers once it runs or failed (with its reason).
/// The first lab of an environment provisions it, which takes longer.
#[utoipa::path(
    post,
    path = "/api/v1/labs",
    tag = "labs",
    security(("bearer" = []), ("session" = [])),
    request_body = NewLab,
    responses(
        (status = 201, description = "made: running, or failed with its reason", body = LabView),
        (status = 400, description = "the request is malformed or impossible", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential may not use labs", body = ErrorBody),
        (status = 404, description = "no such environment or collection here", body = ErrorBody),
        (status = 409, description = "a quota refused it", body = ErrorBody),
        (status = 503, description = "labs cannot run on this node", body = ErrorBody),
    )
)]
async fn create_lab(
    State(b): State<Shared>,
    headers: HeaderMap,
    body: Result<Json<NewLab>, JsonRejection>,
) -> Result<(StatusCode, Json<LabView>), ApiError> {
    let who = writer(&b, &headers, "labs").await?;
    let Json(new) = body?;
    let made = lab(b.labs(who, LabCall::Create(new)).await?)?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// One of the caller's labs.
#[utoipa::path(
    get,
    path = "/api/v1/labs/{lab}",
    tag = "labs",
    security(("bearer" = []), ("session" = [])),
    params(("lab" = String, Path, description = "the lab's id")),
    responses(
        (status = 200, description = "the lab", body = LabView),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential may not use labs", body = ErrorBody),
        (status = 404, description = "no such lab of the caller's", body = ErrorBody),
    )
)]
async fn show_lab(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<LabView>, ApiError> {
    let who = owner(&b, &headers).await?;
    lab(b.labs(who, LabCall::Show(id)).await?).map(Json)
}

/// Stops a lab: nothing of it runs when this answers; its workspace stays.
#[utoipa::path(
    delete,
    path = "/api/v1/labs/{lab}",
    tag = "labs",
    security(("bearer" = []), ("session" = [])),
    params(("lab" = String, Path, description = "the lab's id")),
    responses(
        (status = 200, description = "stopped", body = LabView),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential may not use labs", body = ErrorBody),
        (status = 404, description = "no such lab of the caller's", body = ErrorBody),
    )
)]
async fn stop_lab(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<LabView>, ApiError> {
    let who = writer(&b, &headers, "labs").await?;
    lab(b.labs(who, LabCall::Stop(id)).await?).map(Json)
}

/// Starts a stopped or failed lab again, with its workspace.
#[utoipa::path(
    post,
    path = "/api/v1/labs/{lab}/start",
    tag = "labs",
    security(("bearer" = []), ("session" = [])),
    params(("lab" = String, Path, description = "the lab's id")),
    responses(
        (status = 200, description = "running, or failed with its reason", body = LabView),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential may not use labs", body = ErrorBody),
        (status = 404, description = "no such lab of the caller's", body = ErrorBody),
        (status = 409, description = "it runs, or a quota refused it", body = ErrorBody),
    )
)]
async fn start_lab(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<LabView>, ApiError> {
    let who = writer(&b, &headers, "labs").await?;
    lab(b.labs(who, LabCall::Start(id)).await?).map(Json)
}

/// Adds a collection to a running lab, read-only at `/data/<dataset>`, without restarting it.
#[utoipa::path(
    post,
    path = "/api/v1/labs/{lab}/datasets",
    tag = "labs",
    security(("bearer" = []), ("session" = [])),
    params(("lab" = String, Path, description = "the lab's id")),
    request_body = AddDataset,
    responses(
        (status = 200, description = "the lab, with the collection among its datasets", body = LabView),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential may not use labs, or the collection's policy does not let the caller's node read it", body = ErrorBody),
        (status = 404, description = "no such lab of the caller's, or the node running it holds no such collection", body = ErrorBody),
        (status = 409, description = "the lab is not running", body = ErrorBody),
    )
)]
async fn add_dataset(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<AddDataset>, JsonRejection>,
) -> Result<Json<LabView>, ApiError> {
    let who = writer(&b, &headers, "labs").await?;
    let Json(add) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    lab(b.labs(who, LabCall::Attach(id, add.dataset)).await?).map(Json)
}

/// The last lines of a lab's server output.
#[utoipa::path(
    get,
    path = "/api/v1/labs/{lab}/logs",
    tag = "labs",
    security(("bearer" = []), ("session" = [])),
    params(("lab" = String, Path, description = "the lab's id")),
    responses(
        (status = 200, description = "the output", body = String, content_type = "text/plain"),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential may not use labs", body = ErrorBody),
        (status = 404, description = "no such lab of the caller's", body = ErrorBody),
    )
)]
async fn lab_logs(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = owner(&b, &headers).await?;
    match b.labs(who, LabCall::Logs(id)).await? {
        LabAnswer::Logs(text) => Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            text,
        )
            .into_response()),
        other => Err(ApiError::unavailable(format!(
            "the node answered {other:?}"
        ))),
    }
}

/// Opens a lab in the browser: a redirect to the lab's own host with a one-time code, which
/// signs the browser into the lab (the lab never sees the node's session).
#[utoipa::path(
    get,
    path = "/api/v1/labs/{lab}/open",
    tag = "labs",
    security(("bearer" = []), ("session" = [])),
    params(("lab" = String, Path, description = "the lab's id")),
    responses(
        (status = 303, description = "to the lab's own host"),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential may not use labs", body = ErrorBody),
        (status = 404, description = "no such lab of the caller's", body = ErrorBody),
        (status = 409, description = "the lab is not running", body = ErrorBody),
        (status = 503, description = "the node is reached by an IP address, so labs have no origin of their own", body = ErrorBody),
    )
)]
async fn open_lab(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = owner(&b, &headers).await?;
    // It must be the caller's, and running.
    if let LabAnswer::Lab(lab) = b.labs(who.clone(), LabCall::Show(id.clone())).await?
        && lab.state != "running"
    {
        return Err(ApiError::conflict(format!(
            "lab {id} is {}; start it first",
            lab.state
        )));
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let code = b.lab_sessions().code(&id, who);
    let url = crate::lab_proxy::lab_url(host, &id, b.base_url(), &code)?;
    Ok(axum::response::Redirect::to(&url).into_response())
}
