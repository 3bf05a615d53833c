//! The REST API, for scripts and the browser UI: `/api/v1/...`, described by an OpenAPI 3.1
//! document generated from these handlers (`/api/openapi.json`), with a reference page at
//! `/api/docs` (Swagger UI, from its npm package, built into the UI).
//!
//! Reading public data needs no credential. Reading anything else, and every change, needs a
//! signed-in user: a session cookie, or `Authorization: Bearer <token>`. What they may do follows
//! their credential's scopes ([`guard`]) and their role in the project, which the node checks.
//! Every error is JSON, `{"error": {"code", "message"}}`, with a stable code ([`ApiError`]).

mod account;
mod catalog;
mod error;
pub(crate) mod guard;
mod jobs;
mod labs;
mod model;
mod projects;
mod runs;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use model::*;

use crate::backend::Shared;

/// The security schemes every protected operation lists: a bearer token or the session cookie.
const BEARER: &str = "bearer";
const SESSION: &str = "session";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orrery node API",
        description = "A node of an Orrery federation: the federation, search over its catalogs, \
                       projects with their notebooks, members, credits and history, labs next to \
                       the data, and the caller's API tokens. Errors are JSON with a stable code.",
    ),
    components(schemas(ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "federation", description = "The federation and its catalogs"),
        (name = "projects", description = "Projects, notebooks, cells, members, credits"),
        (name = "labs", description = "Sandboxed Jupyter labs next to this node's data"),
        (name = "jobs", description = "Notebooks run whole as jobs at the data (pipelines)"),
        (name = "account", description = "The signed-in user and their API tokens"),
    )
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`orrery token add`, or POST /api/v1/tokens)",
                    ))
                    .build(),
            ),
        );
        let mut cookie = ApiKeyValue::new(crate::SESSION_COOKIE);
        cookie.description = Some(
            "The browser session set at sign-in; changes must come from this node's pages".into(),
        );
        components.add_security_scheme(SESSION, SecurityScheme::ApiKey(ApiKey::Cookie(cookie)));
    }
}

/// The API's routes, and its OpenAPI document.
pub(crate) fn router(backend: Shared) -> (Router, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(catalog::routes())
        .merge(projects::routes())
        .merge(runs::routes())
        .merge(labs::routes())
        .merge(jobs::routes())
        .merge(account::routes())
        .split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    let router = router.route(
        "/api/v1/projects/{project}/notebooks/{notebook}/live",
        axum::routing::get(crate::live::live),
    );
    (router.with_state(backend), doc)
}

/// `GET /api/openapi.json`.
pub(crate) fn document(doc: &utoipa::openapi::OpenApi) -> Response {
    match doc.to_json() {
        Ok(json) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            json,
        )
            .into_response(),
        Err(e) => ApiError::unavailable(format!("the API document did not serialise: {e}"))
            .into_response(),
    }
}
