//! Who may touch an asynchronous job.
//!
//! A job created with a credential (an API token, or a signed-in browser's session) belongs to
//! its user: only that user's requests may read, run, change or delete it, its `ownerId` names
//! them, and listing `/tap/async` with the credential shows their jobs. A job created without
//! one belongs to whoever holds its URL (its random id is the capability) and, for listing, the
//! owner cookie set when it was made.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::error;
use crate::auth::credential;
use crate::{AppState, Credential, Port, Principal};

/// The user a request comes from: `Ok(None)` without a credential, an error answer for a
/// credential that is not valid (never quietly taken as anonymous).
pub(super) async fn requester<P: Port>(
    s: &AppState<P>,
    headers: &HeaderMap,
) -> Result<Option<Principal>, Response> {
    let Some(c) = credential(headers) else {
        return Ok(None);
    };
    match s.port.authenticate(c).await {
        Ok(Some(p)) => Ok(Some(p)),
        Ok(None) => Err(error(
            StatusCode::UNAUTHORIZED,
            "the credential is not valid (expired or revoked?); send a valid API token or sign in again",
        )),
        Err(e) => {
            tracing::warn!(error = %e, "a credential could not be checked");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node could not check the credential",
            ))
        }
    }
}

/// The job id a path under `/tap/async/` names.
fn job_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/tap/async/")?;
    let id = rest.split('/').next()?;
    (!id.is_empty()).then_some(id)
}

/// Lets a request for a user's job through only if it comes from that user (and, with a
/// session cookie, for a change, from this node's own pages).
pub(crate) async fn guard<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(id) = job_of(request.uri().path()) else {
        return next.run(request).await;
    };
    let owner = s.jobs.lock().get(id).and_then(|j| j.user.clone());
    let Some(owner) = owner else {
        return next.run(request).await;
    };
    let who = match requester(&s, request.headers()).await {
        Ok(who) => who,
        Err(refused) => return refused,
    };
    match who {
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "this job belongs to a signed-in user: send their API token",
            );
        }
        Some(p) if p.user != owner.id => {
            return error(StatusCode::FORBIDDEN, "this job belongs to another user");
        }
        Some(_) => {}
    }
    let change = request.method() != Method::GET && request.method() != Method::HEAD;
    let browser = matches!(credential(request.headers()), Some(Credential::Session(_)));
    if change && browser && !crate::api::guard::same_origin(request.headers(), &s.config.base_url) {
        return error(
            StatusCode::FORBIDDEN,
            "a change made with a session cookie must come from this node's own pages",
        );
    }
    next.run(request).await
}

/// A job's owning user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct JobUser {
    /// The user's id.
    pub(super) id: String,
    /// Their name, shown as the job's `ownerId`.
    pub(super) name: String,
}

impl From<&Principal> for JobUser {
    fn from(p: &Principal) -> Self {
        JobUser {
            id: p.user.clone(),
            name: p.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::job_of;

    #[test]
    fn the_job_is_read_from_the_path() {
        assert_eq!(job_of("/tap/async/abc/phase"), Some("abc"));
        assert_eq!(job_of("/tap/async/abc"), Some("abc"));
        assert_eq!(job_of("/tap/async/"), None);
        assert_eq!(job_of("/tap/async"), None);
        assert_eq!(job_of("/tap/sync"), None);
    }
}
