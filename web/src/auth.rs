//! Signing in and who a request comes from.
//!
//! A browser signs in through an OpenID provider the node is configured with
//! (`/auth/login/{provider}` → the provider → `/auth/callback/{provider}`), and gets a session
//! cookie (`HttpOnly`, `SameSite=Lax`, `Secure` when the node's address is https). A script sends
//! an API token as `Authorization: Bearer <token>`. The node's port says which user either stands
//! for ([`Port::authenticate`]); this module never sees a password or stores a secret.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::warn;

use crate::oidc::{PendingSignIn, Provider, SignedIn};
use crate::{AppState, Port};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "orrery_session";
/// Most sign-ins waiting for their provider at once; the oldest go first.
const MAX_PENDING: usize = 1024;

/// What a request presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API token.
    Bearer(String),
    /// A browser session's secret.
    Session(String),
}

/// Who a request comes from.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    async_graphql::SimpleObject,
)]
pub struct Principal {
    /// The user's id.
    pub user: String,
    /// The user's name.
    pub name: String,
    /// The author key the user edits as.
    pub author: String,
    /// What the credential may do (`read`, `write`, `labs`); a browser session may do all.
    pub scopes: Vec<String>,
    /// The user's ORCID iD, when this node verified it at sign-in.
    pub orcid: Option<String>,
}

/// Sign-in state: providers discovered so far, and sign-ins gone to their provider.
#[derive(Default)]
pub(crate) struct AuthState {
    providers: Mutex<HashMap<String, Provider>>,
    pending: Mutex<Vec<(String, PendingSignIn)>>,
}

/// A JSON error with a stable code.
pub(crate) fn api_error(status: StatusCode, code: &'static str, message: &str) -> Response {
    crate::ApiError::new(status, code, message).into_response()
}

/// The credential a request carries, if any: a bearer token first, else the session cookie.
pub(crate) fn credential(headers: &HeaderMap) -> Option<Credential> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let token = v.strip_prefix("Bearer ")?.trim();
        return (!token.is_empty() && token.len() <= 512).then(|| Credential::Bearer(token.into()));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == SESSION_COOKIE && !v.is_empty() && v.len() <= 128)
                .then(|| Credential::Session(v.into()))
        })
}

async fn provider<P: Port>(s: &AppState<P>, id: &str) -> Result<Provider, Response> {
    if let Some(p) = s.auth.providers.lock().await.get(id) {
        return Ok(p.clone());
    }
    let Some(config) = s.port.providers().into_iter().find(|p| p.id == id) else {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            "no_such_provider",
            &format!("this node offers no sign-in `{id}`"),
        ));
    };
    let redirect = format!("{}/auth/callback/{id}", s.config.base_url);
    match Provider::discover(config, &redirect).await {
        Ok(p) => {
            s.auth
                .providers
                .lock()
                .await
                .insert(id.to_owned(), p.clone());
            Ok(p)
        }
        Err(e) => {
            warn!(provider = id, error = %e, "an OpenID provider could not be used");
            Err(api_error(
                StatusCode::BAD_GATEWAY,
                "provider_unavailable",
                &e.to_string(),
            ))
        }
    }
}

/// `GET /auth/login/{provider}`: off to the provider.
pub(crate) async fn login<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
) -> Response {
    let provider = match provider(&s, &id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (url, pending) = provider.begin();
    let mut waiting = s.auth.pending.lock().await;
    waiting.retain(|(_, p)| !p.expired());
    if waiting.len() >= MAX_PENDING {
        warn!(
            "{MAX_PENDING} sign-ins are waiting for their provider; the oldest is dropped (its user must start again)"
        );
        waiting.remove(0);
    }
    waiting.push((id, pending));
    Redirect::to(&url).into_response()
}

/// What a provider sends the browser back with.
#[derive(Debug, Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback/{provider}`: the provider sent the browser back.
pub(crate) async fn callback<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(id): Path<String>,
    UrlQuery(cb): UrlQuery<Callback>,
) -> Response {
    if let Some(e) = cb.error {
        let why = cb.error_description.unwrap_or_default();
        return api_error(
            StatusCode::UNAUTHORIZED,
            "sign_in_refused",
            &format!("the provider refused the sign-in: {e} {why}"),
        );
    }
    let (Some(code), Some(state)) = (cb.code, cb.state) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad_callback",
            "the provider sent no code and state",
        );
    };
    let pending = {
        let mut waiting = s.auth.pending.lock().await;
        let at = waiting
            .iter()
            .position(|(p, w)| *p == id && w.state() == state);
        at.map(|i| waiting.swap_remove(i).1)
    };
    let Some(pending) = pending else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "unknown_sign_in",
            "this sign-in was not started here or has expired; start again",
        );
    };
    let provider = match provider(&s, &id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let who: SignedIn = match provider.finish(pending, code, &state).await {
        Ok(w) => w,
        Err(e) => {
            warn!(provider = %id, error = %e, "a sign-in failed");
            return api_error(StatusCode::UNAUTHORIZED, "sign_in_failed", &e.to_string());
        }
    };
    let secret = match s.port.sign_in(who).await {
        Ok(secret) => secret,
        Err(e) => {
            warn!(provider = %id, error = %e, "a signed-in user could not be recorded");
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the node could not record the sign-in",
            );
        }
    };
    signed_in(&s.config.base_url, &secret)
}

/// Off to the pages, with the session's cookie.
fn signed_in(base_url: &str, secret: &str) -> Response {
    let secure = if base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={secret}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
        12 * 3600
    );
    let mut response = Redirect::to("/ui/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `GET /auth/link/{code}`: a one-time sign-in link an operator made (`orrery user link`).
pub(crate) async fn link<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path(code): Path<String>,
) -> Response {
    if code.len() != 64 || !code.bytes().all(|b| b.is_ascii_hexdigit()) {
        return api_error(
            StatusCode::NOT_FOUND,
            "unknown_link",
            "no such sign-in link",
        );
    }
    match s.port.redeem_link(code).await {
        Ok(Some(secret)) => signed_in(&s.config.base_url, &secret),
        Ok(None) => {
            warn!("a sign-in link was refused: used, expired or unknown");
            api_error(
                StatusCode::GONE,
                "link_spent",
                "this sign-in link was used or has expired: ask the node's operator for a new one (`orrery user link`)",
            )
        }
        Err(e) => {
            warn!(error = %e, "a sign-in link could not be checked");
            api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the node could not check the link",
            )
        }
    }
}
