//! The metrics face: `GET /metrics` in the OpenMetrics text format, served on the node's
//! metrics listener (apart from the public routes, so it can stay on an internal network).
//!
//! The node renders the text; this module only serves it through a [`MetricsPort`].

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The content type of `/metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the metrics face needs from a node.
pub trait MetricsPort: Send + Sync + 'static {
    /// Every metric as OpenMetrics text, current as of the call.
    fn metrics(&self) -> impl Future<Output = String> + Send;
}

/// The metrics routes: `/metrics`, and `/` saying where they are.
pub fn metrics_router<M: MetricsPort>(port: M) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<M>))
        .route("/", get(index))
        .with_state(Arc::new(port))
}

async fn metrics<M: MetricsPort>(State(port): State<Arc<M>>) -> Response {
    ([(header::CONTENT_TYPE, OPENMETRICS)], port.metrics().await).into_response()
}

async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Orrery node metrics: GET /metrics (OpenMetrics)\n",
    )
        .into_response()
}
