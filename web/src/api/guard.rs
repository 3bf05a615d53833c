//! Who a request comes from, and whether they may do what it asks.
//!
//! A request that changes something needs a user whose credential carries the scope for it
//! (`write`, or `labs` for labs). With a session cookie it must also come from this node's own
//! pages: its `Origin` (or, without one, `Sec-Fetch-Site: same-origin`) must be this node, so a
//! page elsewhere cannot act through a signed-in browser. API tokens are sent by programs, never
//! attached by a browser on its own, and need no such check.

use axum::http::{HeaderMap, header};

use super::ApiError;
use crate::auth::credential;
use crate::backend::Shared;
use crate::{Credential, Principal};

/// The user behind a read, if the request names one; a credential that is not valid is refused
/// (never quietly read as anonymous).
pub(crate) async fn reader(b: &Shared, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
    let Some(c) = credential(headers) else {
        return Ok(None);
    };
    let p = authenticate(b, c).await?;
    scope(&p, "read")?;
    Ok(Some(p))
}

/// The user a request's credential stands for, if it carries one, with `needed` among its
/// scopes (a token with only the `labs` scope reaches labs and nothing else).
pub(crate) async fn holder(
    b: &Shared,
    headers: &HeaderMap,
    needed: &str,
) -> Result<Option<Principal>, ApiError> {
    let Some(c) = credential(headers) else {
        return Ok(None);
    };
    let p = authenticate(b, c).await?;
    scope(&p, needed)?;
    Ok(Some(p))
}

/// The user behind a change, with `needed` among their credential's scopes.
pub(crate) async fn writer(
    b: &Shared,
    headers: &HeaderMap,
    needed: &str,
) -> Result<Principal, ApiError> {
    let c = credential(headers).ok_or_else(ApiError::unauthenticated)?;
    let browser = matches!(c, Credential::Session(_));
    let p = authenticate(b, c).await?;
    if browser && !same_origin(headers, b.base_url()) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "csrf",
            "a change made with a session cookie must come from this node's own pages; scripts use an API token",
        ));
    }
    scope(&p, needed)?;
    Ok(p)
}

async fn authenticate(b: &Shared, c: Credential) -> Result<Principal, ApiError> {
    match b.authenticate(c).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(ApiError::unauthenticated()),
        Err(e) => {
            tracing::warn!(error = %e, "a credential could not be checked");
            Err(ApiError::unavailable(
                "the node could not check the credential",
            ))
        }
    }
}

fn scope(p: &Principal, needed: &str) -> Result<(), ApiError> {
    if p.scopes.iter().any(|s| s == needed) {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "insufficient_scope",
        match needed {
            "labs" => "this credential may not use labs: make a token with the `labs` scope".into(),
            _ => {
                format!("this credential may not {needed}: make a token with the `{needed}` scope")
            }
        },
    ))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Whether a request comes from a page of this node: its `Origin` is the node's public origin,
/// or names the host the request was sent to; without an `Origin`, the browser says the request
/// is same-origin.
pub(crate) fn same_origin(headers: &HeaderMap, base_url: &str) -> bool {
    let text = |h| {
        headers
            .get(h)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    match text(header::ORIGIN) {
        Some("null") => false,
        Some(origin) => {
            let host = text(header::HOST);
            origin == origin_of(base_url)
                || host
                    .is_some_and(|h| origin_of(origin).split_once("://").map(|(_, a)| a) == Some(h))
        }
        None => text(header::HeaderName::from_static("sec-fetch-site")) == Some("same-origin"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_this_nodes_pages_pass() {
        let base = "https://archive.example.org/orrery";
        assert!(same_origin(
            &headers(&[("origin", "https://archive.example.org")]),
            base
        ));
        assert!(same_origin(
            &headers(&[
                ("origin", "http://127.0.0.1:7480"),
                ("host", "127.0.0.1:7480")
            ]),
            base
        ));
        assert!(same_origin(
            &headers(&[("sec-fetch-site", "same-origin")]),
            base
        ));
        assert!(!same_origin(
            &headers(&[
                ("origin", "https://evil.example"),
                ("host", "archive.example.org")
            ]),
            base
        ));
        assert!(!same_origin(&headers(&[("origin", "null")]), base));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "cross-site")]),
            base
        ));
        assert!(!same_origin(&headers(&[]), base));
        assert!(!same_origin(
            &headers(&[("origin", "https://archive.example.org.evil.example")]),
            base
        ));
    }
}
