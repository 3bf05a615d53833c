//! The federation and search over its catalogs.

use std::time::Duration;

use axum::Json;
use axum::extract::{Query as UrlQuery, State};
use axum::http::HeaderMap;
use orrery_catalog::{FederatedResults, Query};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::reader;
use super::{ApiError, ErrorBody};
use crate::FederationView;
use crate::backend::Shared;

pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(federation))
        .routes(routes!(search))
}

/// The federation as this node knows it: members, reachability, collections, compute offers.
#[utoipa::path(
    get,
    path = "/api/v1/federation",
    tag = "federation",
    responses(
        (status = 200, description = "what was asked for", body = FederationView),
        (status = 404, description = "this node belongs to no federation yet", body = ErrorBody),
    )
)]
async fn federation(State(b): State<Shared>) -> Result<Json<FederationView>, ApiError> {
    match b.federation().await {
        Ok(Some(view)) => Ok(Json(view)),
        Ok(None) => Err(ApiError::not_found(
            "this node belongs to no federation yet (`orrery federation create` or `join`)",
        )),
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

/// How far a search reaches.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchOptions {
    /// Search this node only.
    #[serde(default)]
    local: bool,
    /// Milliseconds to wait for other nodes (1 to 30 000; 3 000 if not given).
    timeout_ms: Option<u64>,
}

/// Searches the federation's catalogs (or this node's, with `local=true`). The body is the
/// search model: `text`, `cone`, `time`, `filters`, `facets`, `page`.
#[utoipa::path(
    post,
    path = "/api/v1/search",
    tag = "federation",
    security((), ("bearer" = []), ("session" = [])),
    params(SearchOptions),
    request_body(content = Object, description = "the query", content_type = "application/json"),
    responses(
        (status = 200, description = "the hits, facet counts, and which nodes answered", body = Object),
        (status = 400, description = "the request is malformed or impossible", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
    )
)]
async fn search(
    State(b): State<Shared>,
    headers: HeaderMap,
    UrlQuery(opts): UrlQuery<SearchOptions>,
    body: Result<Json<Query>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<FederatedResults>, ApiError> {
    // A credential, when sent, must be valid (the answer is the same for every user).
    reader(&b, &headers).await?;
    let Json(query) = body?;
    query
        .validate()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let deadline = Duration::from_millis(opts.timeout_ms.unwrap_or(3000).clamp(1, 30_000));
    b.search(query, opts.local, deadline)
        .await
        .map(Json)
        .map_err(ApiError::invalid)
}
