//! The command line's way to the running node: its HTTP API on loopback.
//!
//! `orrery run` writes the address it serves HTTP on to `web.addr` in the data directory; a
//! command that needs the network (a federated search) asks the node there.

use std::time::Duration;

use orrery_catalog::{FederatedResults, Query};

use crate::home::Home;

/// Why the running node could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No node answers (it is not running).
    #[error("the node is not running (nothing answers on {0})")]
    NotRunning(String),
    /// The node answered with an error.
    #[error("the node refused: {0}")]
    Refused(String),
    /// The node does not know (or will not show) what was asked for.
    #[error("the node refused: {0}")]
    NotFound(String),
    /// The request failed on the way.
    #[error("asking the node failed: {0}")]
    Http(String),
}

/// The address the running node serves HTTP on, if it wrote one.
pub fn node_url(home: &Home) -> Option<String> {
    let addr = std::fs::read_to_string(home.root().join("web.addr")).ok()?;
    let addr = addr.trim();
    (!addr.is_empty()).then(|| format!("http://{addr}"))
}

/// A federated search through the running node, waiting at most `timeout` for other nodes.
pub fn search(
    home: &Home,
    query: &Query,
    timeout: Duration,
) -> Result<FederatedResults, ClientError> {
    let Some(base) = node_url(home) else {
        return Err(ClientError::NotRunning(
            "web.addr (no address written)".into(),
        ));
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout + Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("{base}/api/search?timeout_ms={}", timeout.as_millis());
    let mut response = match agent.post(&url).send_json(query) {
        Ok(r) => r,
        Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(ClientError::NotRunning(base));
        }
        Err(ureq::Error::ConnectionFailed) => return Err(ClientError::NotRunning(base)),
        Err(e) => return Err(ClientError::Http(e.to_string())),
    };
    let status = response.status();
    if !status.is_success() {
        let body: serde_json::Value = response
            .body_mut()
            .read_json()
            .unwrap_or(serde_json::Value::Null);
        let message = body
            .get("error")
            .and_then(|e| e.as_str())
            .map_or_else(|| status.to_string(), str::to_owned);
        return Err(ClientError::Refused(message));
    }
    response
        .body_mut()
        .read_json()
        .map_err(|e| ClientError::Http(e.to_string()))
}

/// A call to the running node's REST API with an API token; the answer's JSON, or the API's
/// refusal (its message) as [`ClientError::Refused`].
pub fn api(
    home: &Home,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> Result<serde_json::Value, ClientError> {
    let mut response = send(home, method, path, token, body, None, timeout)?;
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| ClientError::Http(e.to_string()))?;
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// A call whose answer streams as JSON lines (`application/x-ndjson`): each line is handed to
/// `each` as it arrives.
pub fn api_lines(
    home: &Home,
    method: &str,
    path: &str,
    token: &str,
    timeout: Duration,
    each: &mut dyn FnMut(serde_json::Value) -> Result<(), ClientError>,
) -> Result<(), ClientError> {
    use std::io::BufRead;
    let response = send(
        home,
        method,
        path,
        token,
        None,
        Some("application/x-ndjson"),
        timeout,
    )?;
    for line in std::io::BufReader::new(response.into_body().into_reader()).lines() {
        let line = line.map_err(|e| ClientError::Http(e.to_string()))?;
        let value = serde_json::from_str(&line)
            .map_err(|e| ClientError::Http(format!("a line of the answer is not JSON: {e}")))?;
        each(value)?;
    }
    Ok(())
}

/// Sends a call; the response if it succeeded, else the API's refusal.
fn send(
    home: &Home,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
    accept: Option<&str>,
    timeout: Duration,
) -> Result<ureq::http::Response<ureq::Body>, ClientError> {
    let Some(base) = node_url(home) else {
        return Err(ClientError::NotRunning(
            "web.addr (no address written)".into(),
        ));
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let bytes = body
        .map(|b| serde_json::to_vec(b).map_err(|e| ClientError::Http(e.to_string())))
        .transpose()?
        .unwrap_or_default();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(a) = accept {
        request = request.header("accept", a);
    }
    let request = request
        .body(bytes)
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let mut response = match agent.run(request) {
        Ok(r) => r,
        Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(ClientError::NotRunning(base));
        }
        Err(ureq::Error::ConnectionFailed) => return Err(ClientError::NotRunning(base)),
        Err(e) => return Err(ClientError::Http(e.to_string())),
    };
    let status = response.status();
    if !status.is_success() {
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        let message = value["error"]["message"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_owned);
        if status == ureq::http::StatusCode::NOT_FOUND {
            return Err(ClientError::NotFound(message));
        }
        return Err(ClientError::Refused(message));
    }
    Ok(response)
}
