//! `/api/federation`: the federation as this node knows it, for the browser's federation page —
//! members with their institutions, reachability, collections (with sky coverage) and compute
//! offers. What it shows is what every member already publishes in its signed adverts.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use orrery_protocol::advert::{CollectionSummary, ComputeOffer};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{AppState, Port, json_error};

/// The federation as this node knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FederationView {
    /// The federation's name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// This node's id.
    pub this_node: String,
    /// The members, this node among them.
    pub members: Vec<MemberView>,
}

/// One member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    /// Its node id.
    pub node: String,
    /// The id's short form.
    pub short: String,
    /// Its name.
    pub name: String,
    /// Its institution.
    pub institution: String,
    /// Whether this node reaches it.
    pub reach: Reach,
    /// When its current advert was issued (seconds since the Unix epoch), if one is held.
    pub advert_issued_at: Option<i64>,
    /// The collections it publishes.
    #[schema(value_type = Vec<Object>)]
    pub collections: Vec<CollectionSummary>,
    /// The labs it offers.
    #[schema(value_type = Vec<Object>)]
    pub compute: Vec<ComputeOffer>,
}

/// Whether this node reaches a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Reach {
    /// It is this node.
    ThisNode,
    /// Connected now.
    Connected,
    /// Not connected; last seen then (seconds since the Unix epoch).
    LastSeen {
        /// When.
        at: i64,
    },
    /// Never seen.
    NeverSeen,
}

/// `GET /api/federation`.
pub(crate) async fn federation<P: Port>(State(s): State<Arc<AppState<P>>>) -> Response {
    match s.port.federation().await {
        Ok(Some(view)) => axum::Json(view).into_response(),
        Ok(None) => json_error(
            StatusCode::NOT_FOUND,
            "this node belongs to no federation yet (`orrery federation create` or `join`)",
        ),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}
