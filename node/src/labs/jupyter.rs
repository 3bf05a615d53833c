//! A lab's Jupyter Server: started inside the lab's sandbox, listening on a Unix socket in the
//! lab's run directory (no TCP port per lab), with a token of its own, served under the lab's
//! base URL, and asked over that socket whether it is up.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;

use super::endpoint::Endpoint;
use super::env::Provisioned;
use super::sandbox::RUN_DIR;

/// The server's socket inside the sandbox.
pub const SOCKET: &str = "jupyter.sock";

/// Why the server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum JupyterError {
    /// Nothing answered before the deadline.
    #[error("Jupyter Server did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The server answered, but not as expected.
    #[error("Jupyter Server answered {status} to {path}")]
    Status {
        /// The path asked.
        path: String,
        /// The status.
        status: u16,
    },
    /// The request failed.
    #[error("talking to Jupyter Server: {0}")]
    Http(String),
}

/// Largest answer taken from a lab's server.
const MAX_ANSWER: usize = 8 << 20;

/// The server's settings wherever it runs.
const SETTINGS: [&str; 6] = [
    "--ServerApp.root_dir=/home/lab",
    // The node's proxy is the only client; it sends the lab's own Host.
    "--ServerApp.allow_remote_access=True",
    "--ServerApp.open_browser=False",
    "--ServerApp.log_level=WARN",
    // A lab has no network: JupyterLab is not to offer news or updates it cannot fetch.
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
];

/// The program and arguments that run the server inside the sandbox, and its environment.
pub fn command(
    env: &Provisioned,
    base_url: &str,
    token: &str,
) -> (Vec<OsString>, Vec<(String, String)>) {
    let socket = format!("{RUN_DIR}/{SOCKET}");
    let argv: Vec<OsString> = [
        env.bin("jupyter-server").into_os_string(),
        format!("--ServerApp.sock={socket}").into(),
        "--ServerApp.sock_mode=0600".into(),
        format!("--ServerApp.base_url={base_url}").into(),
        format!("--IdentityProvider.token={token}").into(),
    ]
    .into_iter()
    .chain(SETTINGS.iter().map(OsString::from))
    .collect();
    let vars = vec![
        // No password database inside: Python asks USER instead.
        ("USER".to_string(), "lab".to_string()),
        (
            "JUPYTER_RUNTIME_DIR".to_string(),
            format!("{RUN_DIR}/runtime"),
        ),
        (
            "JUPYTER_CONFIG_DIR".to_string(),
            format!("{RUN_DIR}/config"),
        ),
        ("IPYTHONDIR".to_string(), "/tmp/ipython".to_string()),
        ("MPLCONFIGDIR".to_string(), "/tmp/matplotlib".to_string()),
        (
            "PATH".to_string(),
            format!("{}:/usr/bin:/bin", env.root.join("bin").display()),
        ),
    ];
    (argv, vars)
}

/// The port the server listens on in a pod.
pub const POD_PORT: u16 = 8888;

/// The program and arguments that run the server in a pod of the lab's image, listening on
/// [`POD_PORT`] of the pod's address; its token comes from the environment (`JUPYTER_TOKEN`,
/// from the lab's Secret), so it is not in the pod's description.
pub fn pod_command(base_url: &str) -> Vec<String> {
    [
        "jupyter-server".into(),
        "--ServerApp.ip=0.0.0.0".into(),
        format!("--ServerApp.port={POD_PORT}"),
        "--ServerApp.port_retries=0".into(),
        format!("--ServerApp.base_url={base_url}"),
    ]
    .into_iter()
    .chain(SETTINGS.iter().map(|s| (*s).to_owned()))
    .collect()
}

/// The environment of the server in a pod (besides its token).
pub fn pod_env() -> Vec<(String, String)> {
    [
        ("HOME", "/home/lab"),
        ("USER", "lab"),
        ("JUPYTER_RUNTIME_DIR", "/tmp/jupyter/runtime"),
        ("JUPYTER_CONFIG_DIR", "/tmp/jupyter/config"),
        ("IPYTHONDIR", "/tmp/ipython"),
        ("MPLCONFIGDIR", "/tmp/matplotlib"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Sends `GET path` to the server at `endpoint` with the lab's token.
pub async fn get(
    endpoint: &Endpoint,
    path: &str,
    token: &str,
) -> Result<(u16, Bytes), JupyterError> {
    call(endpoint, hyper::Method::GET, path, token, None).await
}

/// Sends `method path` to the server at `endpoint` with the lab's token, and `json` as the body
/// if given; the answer's status and body.
pub async fn call(
    endpoint: &Endpoint,
    method: hyper::Method,
    path: &str,
    token: &str,
    json: Option<&serde_json::Value>,
) -> Result<(u16, Bytes), JupyterError> {
    let http = |e: &dyn std::fmt::Display| JupyterError::Http(e.to_string());
    let stream = endpoint.connect().await.map_err(|e| http(&e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| http(&e))?;
    let driver = tokio::spawn(connection);
    let body = json.map(|j| Bytes::from(j.to_string())).unwrap_or_default();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "lab")
        .header(hyper::header::AUTHORIZATION, format!("token {token}"));
    if json.is_some() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let request = request.body(Full::new(body)).map_err(|e| http(&e))?;
    let answer = sender.send_request(request).await.map_err(|e| http(&e));
    let result = match answer {
        Ok(r) => {
            let status = r.status().as_u16();
            // The server runs beside the lab's own code: its answers are bounded like any
            // peer's.
            let body = Limited::new(r.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| http(&e))?
                .to_bytes();
            Ok((status, body))
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}

/// Waits until the server answers `api/status` at `endpoint`, or `deadline` passes, or `alive`
/// says the lab's process ended.
pub async fn ready(
    endpoint: &Endpoint,
    base_url: &str,
    token: &str,
    deadline: Duration,
    alive: &mut (dyn FnMut() -> bool + Send),
) -> Result<(), JupyterError> {
    let started = Instant::now();
    let path = format!("{base_url}api/status");
    loop {
        if endpoint.present() {
            match get(endpoint, &path, token).await {
                Ok((200, _)) => return Ok(()),
                Ok((status, _)) => return Err(JupyterError::Status { path, status }),
                Err(_) => {}
            }
        }
        if !alive() || started.elapsed() > deadline {
            return Err(JupyterError::Timeout(started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The host path of a lab's server socket, given its run directory.
pub fn socket_in(run_dir: &Path) -> PathBuf {
    run_dir.join(SOCKET)
}
