//! Reaching a lab: its Jupyter Server, through this node, on an origin of its own.
//!
//! A request whose `Host` is `lab-<id>.<anything>` goes to lab `<id>` and nowhere else: a
//! notebook's HTML output runs on the lab's origin, never on the node's, so it cannot use the
//! node's pages or a signed-in browser's session (the session cookie is the node host's alone).
//! The caller must own the lab and send a credential with the `labs` scope; the proxy then sends
//! the request, WebSocket upgrades included, over the lab server's Unix socket with the lab's own
//! token in place of the caller's credential. No lab has a TCP port.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;
use crate::backend::Shared;

/// The lab a `Host` names (`lab-<id>` as its first label), if any.
fn lab_of(host: &str) -> Option<&str> {
    let first = host.split(['.', ':']).next()?;
    let id = first.strip_prefix("lab-")?;
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(first)
}

/// Sends requests for a lab's host to the lab; everything else to the node's routes.
pub(crate) async fn route(State(b): State<Shared>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    match lab_of(&host) {
        Some(lab) => {
            let lab = lab.to_owned();
            proxy(&b, &lab, &host, request).await
        }
        None => next.run(request).await,
    }
}

async fn proxy(b: &Shared, lab: &str, host: &str, mut request: Request) -> Response {
    let prefix = format!("/labs/{lab}/");
    if !request.uri().path().starts_with(&prefix) {
        return ApiError::not_found(format!("this host serves lab {lab} under {prefix}"))
            .into_response();
    }
    let who = match crate::api::guard::reader(b, request.headers()).await {
        Ok(Some(who)) => who,
        Ok(None) => return ApiError::unauthenticated().into_response(),
        Err(e) => return e.into_response(),
    };
    if !who.scopes.iter().any(|s| s == "labs") {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "this credential may not use labs: make a token with the `labs` scope",
        )
        .into_response();
    }
    // A page of another origin may not open the lab's WebSockets or change anything in it.
    if let Some(origin) = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    {
        let authority = origin.split_once("://").map(|(_, a)| a);
        if authority != Some(host) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "another origin may not reach this lab",
            )
            .into_response();
        }
    }
    let (socket, token) = match b.lab_upstream(who, lab.to_owned()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let stream = match tokio::net::UnixStream::connect(&socket).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(lab, error = %e, "a lab's server could not be reached on its socket");
            return ApiError::unavailable(
                "the lab's server does not answer; `orrery lab logs` shows why",
            )
            .into_response();
        }
    };
    // The caller's credential stays here; the lab's server gets its own token.
    let headers = request.headers_mut();
    headers.remove(header::COOKIE);
    match HeaderValue::from_str(&format!("token {token}")) {
        Ok(v) => {
            headers.insert(header::AUTHORIZATION, v);
        }
        Err(_) => {
            return ApiError::unavailable("the lab's token is not a header value").into_response();
        }
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let Ok(uri) = format!("http://{host}{path}").parse() else {
        return ApiError::invalid("the request's path is not a valid URI").into_response();
    };
    let policy = axum_reverse_proxy::ProxyPolicy::default();
    match axum_reverse_proxy::proxy_request_on_stream(uri, request.map(Body::new), stream, &policy)
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::lab_of;

    #[test]
    fn only_a_lab_host_names_a_lab() {
        assert_eq!(lab_of("lab-1a2b.localhost:7480"), Some("lab-1a2b"));
        assert_eq!(lab_of("lab-1a2b.archive.example.org"), Some("lab-1a2b"));
        assert_eq!(lab_of("archive.example.org"), None);
        assert_eq!(lab_of("127.0.0.1:7480"), None);
        assert_eq!(lab_of("lab-.localhost"), None);
        assert_eq!(lab_of("lab-../x"), None);
    }
}
