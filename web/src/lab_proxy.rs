//! Reaching a lab: its Jupyter Server, through this node, on an origin of its own.
//!
//! A request whose `Host` is `lab-<id>.<anything>` goes to lab `<id>` and nowhere else: a
//! notebook's HTML output runs on the lab's origin, never on the node's, so it cannot use the
//! node's pages or a signed-in browser's session (the session cookie is the node host's alone).
//! The caller must own the lab and send a credential with the `labs` scope; the proxy then sends
//! the request, WebSocket upgrades included, over the lab server's Unix socket with the lab's own
//! token in place of the caller's credential. No lab has a TCP port; a lab running on another
//! node is reached through the federation's authenticated transport (the node's port opens the
//! stream, wherever the lab runs).
//!
//! A browser signed in on the node opens a lab with `GET /api/v1/labs/{id}/open`: the node
//! answers with a redirect to the lab's host carrying a one-time code, which the lab's host
//! exchanges for a cookie of its own (`HttpOnly`, `SameSite=Lax`, the lab's path only). Scripts
//! send their API token.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::backend::Shared;
use crate::{ApiError, Principal};

/// The cookie a lab's host keeps a browser's sign-in in.
const LAB_COOKIE: &str = "orrery_lab";
/// How long a one-time code may wait to be used.
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// How long a browser stays signed into a lab.
const LAB_SESSION: Duration = Duration::from_secs(12 * 3600);
/// Most codes and lab sessions kept; past it the oldest go (their users open the lab again).
const MAX_KEPT: usize = 4096;

/// One-time codes on their way to a lab's host, and browsers signed into labs.
#[derive(Default)]
pub(crate) struct Sessions {
    codes: Mutex<HashMap<String, (String, Principal, Instant)>>,
    signed_in: Mutex<HashMap<String, (String, Principal, Instant)>>,
}

fn secret() -> String {
    let mut b = [0u8; 24];
    if let Err(e) = getrandom::fill(&mut b) {
        // Without randomness there is no safe secret: an empty one never matches.
        tracing::warn!(error = %e, "no randomness for a lab sign-in; the browser is refused and must open the lab again");
        return String::new();
    }
    hex::encode(b)
}

fn keep(
    map: &Mutex<HashMap<String, (String, Principal, Instant)>>,
    lab: &str,
    who: Principal,
    lifetime: Duration,
) -> String {
    let key = secret();
    if key.is_empty() {
        return key;
    }
    let mut m = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    m.retain(|_, (_, _, until)| *until > Instant::now());
    if m.len() >= MAX_KEPT {
        tracing::warn!(
            "{MAX_KEPT} lab sign-ins are kept; the oldest are dropped (their users open their labs again)"
        );
        let mut by_age: Vec<(String, Instant)> =
            m.iter().map(|(k, (_, _, t))| (k.clone(), *t)).collect();
        by_age.sort_by_key(|(_, t)| *t);
        for (k, _) in by_age.into_iter().take(MAX_KEPT / 4) {
            m.remove(&k);
        }
    }
    m.insert(
        key.clone(),
        (lab.to_owned(), who, Instant::now() + lifetime),
    );
    key
}

impl Sessions {
    /// A one-time code that signs a browser into `lab` as `who`.
    pub(crate) fn code(&self, lab: &str, who: Principal) -> String {
        keep(&self.codes, lab, who, CODE_LIFETIME)
    }

    /// Uses a code: a lab session's secret, if the code was for `lab` and is fresh.
    fn exchange(&self, lab: &str, code: &str) -> Option<String> {
        let found = self
            .codes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(code)?;
        let (for_lab, who, until) = found;
        (for_lab == lab && until > Instant::now())
            .then(|| keep(&self.signed_in, lab, who, LAB_SESSION))
    }

    /// The user a lab cookie stands for, in `lab`.
    fn user(&self, lab: &str, secret: &str) -> Option<Principal> {
        let m = self
            .signed_in
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (for_lab, who, until) = m.get(secret)?;
        (for_lab == lab && *until > Instant::now()).then(|| who.clone())
    }
}

fn lab_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == LAB_COOKIE && !v.is_empty() && v.len() <= 128).then(|| v.to_owned())
        })
}

/// Where a browser at the node's `host` opens `lab`: the lab's own host, or why there is none.
pub(crate) fn lab_url(
    host: &str,
    lab: &str,
    base_url: &str,
    code: &str,
) -> Result<String, ApiError> {
    let https = base_url.starts_with("https://");
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (n, Some(p)),
        _ => (host, None),
    };
    let name = match name {
        "127.0.0.1" | "localhost" | "[::1]" => "localhost",
        n if n.parse::<std::net::IpAddr>().is_ok() || n.starts_with('[') => {
            return Err(ApiError::unavailable(
                "a lab gets an origin of its own, lab-<id>.<host>, which needs the node reached by a DNS name (with a wildcard record), not an IP address",
            ));
        }
        n => n,
    };
    let scheme = if https { "https" } else { "http" };
    let port = port.map_or_else(String::new, |p| format!(":{p}"));
    Ok(format!(
        "{scheme}://{lab}.{name}{port}/labs/{lab}/orrery-open?code={code}"
    ))
}

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
    if request.uri().path() == format!("{prefix}orrery-open") {
        return open(b, lab, &prefix, &request);
    }
    let signed_in = lab_cookie(request.headers()).and_then(|c| b.lab_sessions().user(lab, &c));
    // On a lab's host only the lab's own cookie or an API token count: never the node's
    // session, whatever a browser might send.
    let bearer = matches!(
        crate::auth::credential(request.headers()),
        Some(crate::Credential::Bearer(_))
    );
    let who = match signed_in {
        Some(who) => who,
        None if !bearer => return ApiError::unauthenticated().into_response(),
        None => match crate::api::guard::holder(b, request.headers(), "labs").await {
            Ok(Some(who)) => who,
            Ok(None) => return ApiError::unauthenticated().into_response(),
            Err(e) => return e.into_response(),
        },
    };
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
    let crate::LabConnection { stream, token } = match b.lab_connect(who, lab.to_owned()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
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

/// The lab's host takes a one-time code and signs the browser in with a cookie of its own.
fn open(b: &Shared, lab: &str, prefix: &str, request: &Request) -> Response {
    let code = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap_or_default();
    let Some(secret) = b
        .lab_sessions()
        .exchange(lab, code)
        .filter(|s| !s.is_empty())
    else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this link was used or has expired: open the lab again from the node",
        )
        .into_response();
    };
    let secure = if b.base_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{LAB_COOKIE}={secret}; HttpOnly; SameSite=Lax; Path={prefix}; Max-Age={}{secure}",
        LAB_SESSION.as_secs()
    );
    let mut r = axum::response::Redirect::to(&format!("{prefix}lab")).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
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
