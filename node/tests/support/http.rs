//! HTTP calls from the process-level tests, as a script would make them.

use serde_json::Value;

/// A call with an optional bearer token and JSON body: the status and the JSON (or text) answer.
#[allow(dead_code)]
pub(crate) fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    call_at(method, url, None, token, body)
}

/// A call with the `Host` a browser would send for `host`'s URL.
#[allow(dead_code)]
pub(crate) fn call_at(
    method: &str,
    url: &str,
    host: Option<&str>,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .build()
        .into();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let bytes = body
        .map(|b| serde_json::to_vec(&b).expect("json"))
        .unwrap_or_default();
    let mut r = agent
        .run(
            req.header("content-type", "application/json")
                .body(bytes)
                .expect("request"),
        )
        .expect("the node answers");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
