//! The HTTP face of a node: IVOA TAP over `ivoa.obscore`, the search API and product downloads.
//!
//! This crate knows nothing of SQL or the network: it asks a [`Port`] that the node implements.
//!
//! | path | what |
//! |---|---|
//! | `/tap/sync` | TAP synchronous queries (GET or POST; `LANG=ADQL`, `QUERY`, `MAXREC`) |
//! | `/tap/async` | TAP asynchronous jobs (UWS 1.1) |
//! | `/tap/tables`, `/tap/capabilities`, `/tap/availability` | VOSI |
//! | `/api/search` | the search query model as JSON (POST), federated unless `?local=true` |
//! | `/api/federation` | the members, their reachability, collections and compute offers (GET) |
//! | `/graphql` | GraphQL (POST), GraphiQL (GET in a browser), subscriptions at `/graphql/ws` |
//! | `/auth/login/{provider}`, `/auth/callback/{provider}` | OpenID Connect sign-in (session cookie) |
//! | `/api/v1/...` | the REST API: federation, search, projects, the caller's tokens ([`api`]) |
//! | `/api/openapi.json`, `/api/docs` | its OpenAPI 3.1 document, and the reference page |
//! | `/data/{collection}/{path}` | a product's file, with its BLAKE3 in `x-blake3` |
//! | `lab-<id>.<host>` `/labs/<id>/…` | a lab's Jupyter Server, proxied to its Unix socket ([`lab_proxy`]) |
//! | `/ui/` | the browser UI (built from `ui/` by `scripts/ui-build`); `/` sends browsers there |
//!
//! The same routes are served over HTTPS by [`serve_tls`] when the node has a certificate;
//! `/metrics` is served apart, on the node's metrics listener ([`metrics_router`]).

pub mod api;
mod auth;
mod backend;
mod data;
mod federation;
mod graphql;
mod lab_proxy;
pub mod live;
mod metrics;
pub mod oidc;
mod tap;
mod tls;
mod ui;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query as UrlQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use orrery_catalog::{FederatedResults, Query};
use serde::Deserialize;

pub use tap::{TapError, TapTable};

pub use api::ApiError;
pub use auth::{Credential, Principal, SESSION_COOKIE};
pub use data::{FileRefusal, ProductFile};
pub use federation::{FederationView, MemberView, Reach};
pub use graphql::WebEvent;
pub use metrics::{MetricsPort, OPENMETRICS, metrics_router};
pub use tls::{TlsError, TlsIdentity, serve_tls};

/// What the HTTP face needs from a node.
pub trait Port: Send + Sync + 'static {
    /// Runs an ADQL query against `ivoa.obscore`, returning at most `maxrec` rows.
    fn tap(
        &self,
        adql: String,
        maxrec: u64,
    ) -> impl Future<Output = Result<TapTable, TapError>> + Send;
    /// Runs a search, over the federation unless `local`, waiting at most `deadline` for other
    /// nodes.
    fn search(
        &self,
        query: Query,
        local: bool,
        deadline: Duration,
    ) -> impl Future<Output = Result<FederatedResults, String>> + Send;
    /// The file of a product this node holds, opened by the node (confined to its collection)
    /// with the size and BLAKE3 it was catalogued with; the bytes are checked against both while
    /// they are sent.
    fn product_file(
        &self,
        collection: String,
        path: String,
    ) -> impl Future<Output = Result<ProductFile, FileRefusal>> + Send;
    /// The federation as this node knows it (`None` when it belongs to none yet).
    fn federation(&self) -> impl Future<Output = Result<Option<FederationView>, String>> + Send;
    /// What changed, as it happens: public projects and this node's catalog (for GraphQL
    /// subscriptions).
    fn events(&self) -> tokio::sync::broadcast::Receiver<WebEvent>;
    /// The user a credential stands for, if it is valid now.
    fn authenticate(
        &self,
        credential: Credential,
    ) -> impl Future<Output = Result<Option<Principal>, String>> + Send;
    /// Records a verified sign-in (creating the user and their author on first sign-in) and
    /// opens a session; returns the session's secret for the cookie.
    fn sign_in(&self, who: oidc::SignedIn) -> impl Future<Output = Result<String, String>> + Send;
    /// Spends a one-time sign-in link: a new session's secret, or `None` if the link was used,
    /// expired or never was.
    fn redeem_link(
        &self,
        code: String,
    ) -> impl Future<Output = Result<Option<String>, String>> + Send;
    /// The OpenID providers users may sign in with.
    fn providers(&self) -> Vec<oidc::ProviderConfig>;
    /// Ends a browser session.
    fn sign_out(&self, session: String) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// The projects `who` may see here: the public ones, and those their author belongs to.
    fn projects(
        &self,
        who: Option<Principal>,
    ) -> impl Future<Output = Result<Vec<api::ProjectSummary>, ApiError>> + Send;
    /// Creates a project founded by `who`'s author.
    fn create_project(
        &self,
        who: Principal,
        new: api::NewProject,
    ) -> impl Future<Output = Result<api::ProjectSummary, ApiError>> + Send;
    /// Reads part of a project `who` may see (anyone, if it is public).
    fn read_project(
        &self,
        who: Option<Principal>,
        project: String,
        read: api::ProjectRead,
    ) -> impl Future<Output = Result<api::ProjectAnswer, ApiError>> + Send;
    /// Changes a project as `who`'s author, if their role allows it.
    fn edit_project(
        &self,
        who: Principal,
        project: String,
        edit: api::ProjectEdit,
    ) -> impl Future<Output = Result<api::ProjectAnswer, ApiError>> + Send;
    /// Submits, lists, shows or cancels `who`'s jobs, or reads a job's runs.
    fn jobs(
        &self,
        who: Principal,
        call: api::JobCall,
    ) -> impl Future<Output = Result<api::JobAnswer, ApiError>> + Send;
    /// Runs a code cell at the data as `who` (see [`api::RunView`]), handing each output to
    /// `outputs` as it arrives; answers once the run is recorded.
    fn run_cell(
        &self,
        who: Principal,
        cell: api::CellAddress,
        outputs: futures::channel::mpsc::UnboundedSender<serde_json::Value>,
    ) -> impl Future<Output = Result<api::RunView, ApiError>> + Send;
    /// `who`'s API tokens.
    fn tokens(
        &self,
        who: Principal,
    ) -> impl Future<Output = Result<Vec<api::TokenView>, ApiError>> + Send;
    /// Makes a token for `who`, with at most their credential's scopes.
    fn create_token(
        &self,
        who: Principal,
        new: api::NewToken,
    ) -> impl Future<Output = Result<api::CreatedToken, ApiError>> + Send;
    /// A live-editing session of `who` in a notebook (see [`live`]).
    fn live(
        &self,
        who: Principal,
        project: String,
        notebook: String,
        resume: live::Resume,
    ) -> impl Future<Output = Result<Box<dyn live::LiveNotebook>, ApiError>> + Send;
    /// A connection to `who`'s running lab's server (on this node or, through the federation,
    /// on the node that runs it) and the token the server expects.
    fn lab_connect(
        &self,
        who: Principal,
        lab: String,
    ) -> impl Future<Output = Result<LabConnection, ApiError>> + Send;
    /// Every step of `who`'s labs from now on (states, provisioning progress, notices), here
    /// and on the nodes that run them, until the stream is dropped.
    fn lab_events(
        &self,
        who: Principal,
    ) -> impl Future<
        Output = Result<futures::stream::BoxStream<'static, api::LabProgress>, ApiError>,
    > + Send;
    /// Lists, starts, shows, stops or reads the logs of `who`'s labs on this node.
    fn labs(
        &self,
        who: Principal,
        call: api::LabCall,
    ) -> impl Future<Output = Result<api::LabAnswer, ApiError>> + Send;
    /// Revokes one of `who`'s tokens.
    fn revoke_token(
        &self,
        who: Principal,
        id: String,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// Settings of the HTTP face.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The address clients use, without a trailing slash (e.g. `http://127.0.0.1:7480`).
    pub base_url: String,
    /// Rows a TAP query returns when it sets no `MAXREC`.
    pub default_maxrec: u64,
    /// Most rows a TAP query may return.
    pub hard_maxrec: u64,
}

impl WebConfig {
    /// Defaults for a node reached at `base_url`.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            default_maxrec: 10_000,
            hard_maxrec: 100_000,
        }
    }

    /// Whether clients reach the node over HTTPS (its own TLS listener or a proxy in front):
    /// cookies it sets must then be `Secure`.
    pub fn is_https(&self) -> bool {
        self.base_url.starts_with("https://")
    }
}

struct AppState<P> {
    port: P,
    config: WebConfig,
    jobs: tap::Jobs,
    auth: auth::AuthState,
    labs: lab_proxy::Sessions,
}

/// The routes, over a node's port.
pub fn router<P: Port>(port: P, config: WebConfig) -> Router {
    let state = Arc::new(AppState {
        port,
        config,
        jobs: tap::Jobs::default(),
        auth: auth::AuthState::default(),
        labs: lab_proxy::Sessions::default(),
    });
    // Every answer under /tap is a VOTable, the HTTP layer's own refusals included.
    let tap_routes = Router::new()
        .route("/tap", get(tap_root))
        .route("/tap/availability", get(tap::availability))
        .route("/tap/capabilities", get(tap::capabilities::<P>))
        .route("/tap/tables", get(tap::tables))
        .route("/tap/sync", get(tap::sync::<P>).post(tap::sync::<P>))
        .route(
            "/tap/async",
            get(tap::list_jobs::<P>).post(tap::create_job::<P>),
        )
        .route(
            "/tap/async/{id}",
            get(tap::job::<P>)
                .post(tap::job_action::<P>)
                .delete(tap::delete_job::<P>),
        )
        .route(
            "/tap/async/{id}/phase",
            get(tap::job_phase::<P>).post(tap::set_phase::<P>),
        )
        .route("/tap/async/{id}/results", get(tap::job_results::<P>))
        .route("/tap/async/{id}/results/result", get(tap::job_result::<P>))
        .route("/tap/async/{id}/error", get(tap::job_error::<P>))
        .route(
            "/tap/async/{id}/parameters",
            get(tap::job_parameters::<P>).post(tap::set_parameters::<P>),
        )
        .route("/tap/async/{id}/quote", get(tap::job_quote::<P>))
        .route(
            "/tap/async/{id}/executionduration",
            get(tap::job_duration::<P>),
        )
        .route(
            "/tap/async/{id}/destruction",
            get(tap::job_destruction::<P>),
        )
        .route("/tap/async/{id}/owner", get(tap::job_owner::<P>))
        .route("/tap/{*rest}", any(tap::unknown))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            tap::owner::guard::<P>,
        ))
        .layer(axum::middleware::map_response(tap::votable_errors));
    let backend: backend::Shared = Arc::new(backend::Over(state.clone()));
    let schema = graphql::schema(backend.clone());
    let (api_routes, api_doc) = api::router(backend.clone());
    let lab_backend = backend.clone();
    let api_doc = Arc::new(api_doc);
    // A notebook imported through the API may carry its outputs: more room than elsewhere.
    let api_routes = api_routes.layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024));
    let graphql_routes = Router::new()
        .route("/graphql", get(graphql::page).post(graphql::execute))
        .route_service(
            "/graphql/ws",
            async_graphql_axum::GraphQLSubscription::new(schema.clone()),
        )
        .with_state(graphql::GqlState {
            schema,
            backend: backend.clone(),
        });
    Router::new()
        .merge(graphql_routes)
        .route("/", get(index::<P>))
        .route(
            "/ui",
            get(|| async { axum::response::Redirect::permanent("/ui/") }),
        )
        .route("/ui/", get(ui::index))
        .route("/ui/{*path}", get(ui::asset))
        .merge(tap_routes)
        .route("/api/search", post(search::<P>))
        .route("/api/federation", get(federation::federation::<P>))
        .route("/auth/login/{provider}", get(auth::login::<P>))
        .route("/auth/callback/{provider}", get(auth::callback::<P>))
        .route("/auth/link/{code}", get(auth::link::<P>))
        .route("/data/{collection}/{*path}", get(data::product::<P>))
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
        .merge(api_routes)
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = api_doc.clone();
                async move { api::document(&doc) }
            }),
        )
        .route("/api/docs", get(|| ui::page("apidocs.html")))
        // Outermost: a lab's host reaches its lab and nothing of the node.
        .layer(axum::middleware::from_fn_with_state(
            lab_backend,
            lab_proxy::route,
        ))
}

async fn index<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if ui::wants_html(&headers) {
        return axum::response::Redirect::to("/ui/").into_response();
    }
    let base = &s.config.base_url;
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!(
            "Orrery node\n\nTAP service: {base}/tap  (pyvo.dal.TAPService(\"{base}/tap\"))\nSearch API: POST {base}/api/search\n"
        ),
    )
        .into_response()
}

async fn tap_root() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "IVOA TAP 1.1 service over ivoa.obscore: /tap/sync, /tap/async, /tap/tables, /tap/capabilities, /tap/availability\n",
    )
        .into_response()
}

/// Options of `/api/search`.
#[derive(Debug, Deserialize)]
struct SearchOptions {
    /// Search this node only.
    #[serde(default)]
    local: bool,
    /// Milliseconds to wait for other nodes (at most 30 000).
    timeout_ms: Option<u64>,
}

async fn search<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    UrlQuery(opts): UrlQuery<SearchOptions>,
    body: axum::body::Bytes,
) -> Response {
    let query: Query = match serde_json::from_slice(&body) {
        Ok(q) => q,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a query: {e}"),
            );
        }
    };
    if let Err(e) = query.validate() {
        return json_error(StatusCode::BAD_REQUEST, &e.to_string());
    }
    let deadline = Duration::from_millis(opts.timeout_ms.unwrap_or(3000).clamp(1, 30_000));
    match s.port.search(query, opts.local, deadline).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e),
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Serves the routes on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Small writes go out at once: a kernel's messages through the lab proxy and live edits
    // would otherwise wait for the peer's delayed acknowledgement (40 ms on Linux).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set on a connection");
        }
    });
    // The peer address is recorded for per-client limits (TAP asynchronous jobs).
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A byte stream to a lab's server.
pub trait LabIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> LabIo for T {}

/// A connection to a lab's server and the token it expects in place of the caller's credential.
pub struct LabConnection {
    /// The stream HTTP is spoken on.
    pub stream: Box<dyn LabIo>,
    /// The server's token.
    pub token: String,
}
