//! A kernel in a lab's Jupyter Server, driven as a notebook front end drives it: started,
//! interrupted, restarted and shut down over the server's REST API; code sent as an
//! `execute_request` over the kernel's WebSocket (Jupyter's JSON messages, protocol 5.3); what
//! the kernel says back gathered as nbformat outputs, each also handed to the caller as it
//! arrives, so that a cell's output can be shown while it runs.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::endpoint::Endpoint;
use super::jupyter::{self, JupyterError};

/// Most output one execution keeps (text and encoded images together); past it, what follows
/// is dropped and a note says so.
pub const MAX_OUTPUT_BYTES: usize = 32 << 20;

/// How long a cell past its deadline is given to stop once interrupted.
const INTERRUPT_GRACE: Duration = Duration::from_secs(10);

/// Why a kernel could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The server could not be reached.
    #[error(transparent)]
    Server(#[from] JupyterError),
    /// The server refused.
    #[error("Jupyter Server answered {status} when asked to {what}: {body}")]
    Refused {
        /// What was asked.
        what: &'static str,
        /// Its status.
        status: u16,
        /// What it said.
        body: String,
    },
    /// The kernel's WebSocket failed.
    #[error("the kernel's channels failed: {0}")]
    Channels(String),
    /// The kernel's channels closed before the cell finished.
    #[error("the kernel went away while the cell ran (it may have run out of memory)")]
    Gone,
    /// The cell ran past its deadline.
    #[error("the cell ran for more than {} s", .0.as_secs())]
    Timeout(Duration),
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The cell ran to its end.
    Ok,
    /// The cell raised an exception (its traceback is among the outputs).
    Error {
        /// The exception's name.
        ename: String,
        /// Its message.
        evalue: String,
    },
    /// The kernel did not run it (an earlier cell of the same request failed).
    Aborted,
}

/// What one execution produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// Its outputs, as nbformat stores them.
    pub outputs: Vec<Value>,
    /// The kernel's execution counter for it.
    pub execution_count: Option<i64>,
    /// How it ended.
    pub ended: Ended,
}

/// A running kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    endpoint: Endpoint,
    base: String,
    token: String,
    id: String,
    session: String,
}

/// The server refused `what`: its status and the start of what it said.
fn refused(what: &'static str, status: u16, body: &[u8]) -> KernelError {
    KernelError::Refused {
        what,
        status,
        body: String::from_utf8_lossy(body).chars().take(500).collect(),
    }
}

fn random_hex() -> Result<String, KernelError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| KernelError::Channels(format!("no randomness: {e}")))?;
    Ok(hex::encode(b))
}

impl Kernel {
    /// Starts a Python kernel in the server at `endpoint` (under `base_url`, with `token`).
    pub async fn start(
        endpoint: &Endpoint,
        base_url: &str,
        token: &str,
    ) -> Result<Kernel, KernelError> {
        let path = format!("{base_url}api/kernels");
        let (status, body) = jupyter::call(
            endpoint,
            hyper::Method::POST,
            &path,
            token,
            Some(&json!({ "name": "python3" })),
        )
        .await?;
        let what = "start a kernel";
        if !(200..300).contains(&status) {
            return Err(refused(what, status, &body));
        }
        let id = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
            .ok_or_else(|| refused(what, status, &body))?;
        Ok(Kernel {
            endpoint: endpoint.clone(),
            base: base_url.to_owned(),
            token: token.to_owned(),
            id,
            session: random_hex()?,
        })
    }

    /// The kernel's id in its server.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Asks the server `method` on this kernel (`path` after its URL, if any); an answer
    /// outside 2xx, or `also`, is a refusal of `what`.
    async fn ask(
        &self,
        what: &'static str,
        method: hyper::Method,
        path: &str,
        also: Option<u16>,
    ) -> Result<(), KernelError> {
        let path = format!("{}api/kernels/{}{path}", self.base, self.id);
        let json = (method == hyper::Method::POST).then(|| json!({}));
        let (status, body) =
            jupyter::call(&self.endpoint, method, &path, &self.token, json.as_ref()).await?;
        if (200..300).contains(&status) || also == Some(status) {
            Ok(())
        } else {
            Err(refused(what, status, &body))
        }
    }

    /// Interrupts what the kernel runs (the cell ends with `KeyboardInterrupt`).
    pub async fn interrupt(&self) -> Result<(), KernelError> {
        self.ask(
            "interrupt the kernel",
            hyper::Method::POST,
            "/interrupt",
            None,
        )
        .await
    }

    /// Restarts the kernel: its variables are gone, its id stays.
    pub async fn restart(&self) -> Result<(), KernelError> {
        self.ask("restart the kernel", hyper::Method::POST, "/restart", None)
            .await
    }

    /// Shuts the kernel down (one already gone is shut down).
    pub async fn shutdown(&self) -> Result<(), KernelError> {
        self.ask("shut the kernel down", hyper::Method::DELETE, "", Some(404))
            .await
    }

    /// Runs `code`, handing each output to `seen` as it arrives; gives up after `deadline`
    /// (the kernel is then interrupted, and the cell given a few seconds to stop).
    pub async fn execute(
        &self,
        code: &str,
        deadline: Duration,
        seen: &mut (dyn FnMut(&Value) + Send),
    ) -> Result<Execution, KernelError> {
        let channels = |e: &dyn std::fmt::Display| KernelError::Channels(e.to_string());
        let url = format!(
            "ws://lab{}api/kernels/{}/channels?session_id={}",
            self.base, self.id, self.session
        );
        let mut request = url.into_client_request().map_err(|e| channels(&e))?;
        request.headers_mut().insert(
            hyper::header::AUTHORIZATION,
            format!("token {}", self.token)
                .parse()
                .map_err(|e| channels(&e))?,
        );
        let stream = self.endpoint.connect().await.map_err(|e| channels(&e))?;
        let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|e| channels(&e))?;
        let msg_id = random_hex()?;
        let message = json!({
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "username": "orrery",
                "session": self.session,
                "date": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": false,
                "store_history": true,
                "user_expressions": {},
                "allow_stdin": false,
                "stop_on_error": true,
            },
            "channel": "shell",
            "buffers": [],
        });
        ws.send(Message::text(message.to_string()))
            .await
            .map_err(|e| channels(&e))?;
        let mut until = Instant::now() + deadline;
        let mut outputs = Outputs::default();
        let mut reply: Option<Value> = None;
        let mut idle = false;
        let mut timed_out = false;
        while reply.is_none() || !idle {
            let next = match tokio::time::timeout_at(until, ws.next()).await {
                Ok(next) => next,
                Err(_) if timed_out => return Err(KernelError::Timeout(deadline)),
                Err(_) => {
                    // Interrupted, and waited for (a little), so that the kernel is free for
                    // the next cell rather than aborting it.
                    timed_out = true;
                    self.interrupt().await?;
                    until = Instant::now() + INTERRUPT_GRACE;
                    continue;
                }
            };
            let text = match next {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(_))) | None => return Err(KernelError::Gone),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(channels(&e)),
            };
            let Ok(m) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if m["parent_header"]["msg_id"].as_str() != Some(&msg_id) {
                continue;
            }
            let kind = m["header"]["msg_type"].as_str().unwrap_or_default();
            let content = &m["content"];
            match (m["channel"].as_str(), kind) {
                (Some("shell"), "execute_reply") => reply = Some(content.clone()),
                (Some("iopub"), "status") => {
                    idle |= content["execution_state"].as_str() == Some("idle");
                }
                (Some("iopub"), kind) => {
                    if let Some(out) = outputs.take(kind, content) {
                        seen(&out);
                    }
                }
                _ => {}
            }
        }
        if timed_out {
            return Err(KernelError::Timeout(deadline));
        }
        let reply = reply.unwrap_or_default();
        let ended = match reply["status"].as_str() {
            Some("ok") => Ended::Ok,
            Some("aborted") => Ended::Aborted,
            _ => Ended::Error {
                ename: reply["ename"].as_str().unwrap_or_default().to_owned(),
                evalue: reply["evalue"].as_str().unwrap_or_default().to_owned(),
            },
        };
        let _ = ws.close(None).await;
        Ok(Execution {
            outputs: outputs.list,
            execution_count: reply["execution_count"].as_i64(),
            ended,
        })
    }
}

/// Outputs as a front end keeps them: consecutive streams of one name joined, cleared when
/// the kernel says so, cut at [`MAX_OUTPUT_BYTES`].
#[derive(Debug, Default)]
struct Outputs {
    list: Vec<Value>,
    clear_on_next: bool,
    bytes: usize,
    cut: bool,
}

impl Outputs {
    /// Takes one iopub message; the output it made, if any.
    fn take(&mut self, kind: &str, c: &Value) -> Option<Value> {
        let out = match kind {
            "stream" => json!({ "output_type": "stream", "name": c["name"], "text": c["text"] }),
            "display_data" => json!({
                "output_type": "display_data", "data": c["data"], "metadata": c["metadata"],
            }),
            "execute_result" => json!({
                "output_type": "execute_result",
                "execution_count": c["execution_count"],
                "data": c["data"],
                "metadata": c["metadata"],
            }),
            "error" => json!({
                "output_type": "error",
                "ename": c["ename"],
                "evalue": c["evalue"],
                "traceback": c["traceback"],
            }),
            "clear_output" => {
                if c["wait"].as_bool() == Some(true) {
                    self.clear_on_next = true;
                } else {
                    self.clear();
                }
                return None;
            }
            _ => return None,
        };
        if self.clear_on_next {
            self.clear();
        }
        let size = out.to_string().len();
        if self.bytes + size > MAX_OUTPUT_BYTES {
            if !self.cut {
                self.cut = true;
                let note = format!(
                    "[output past {} MiB was not kept]\n",
                    MAX_OUTPUT_BYTES >> 20
                );
                self.list
                    .push(json!({ "output_type": "stream", "name": "stderr", "text": note }));
            }
            return None;
        }
        self.bytes += size;
        let joined = match (self.list.last_mut(), kind) {
            (Some(last), "stream")
                if last["output_type"] == "stream" && last["name"] == out["name"] =>
            {
                let text = format!(
                    "{}{}",
                    last["text"].as_str().unwrap_or_default(),
                    out["text"].as_str().unwrap_or_default()
                );
                last["text"] = Value::String(text);
                true
            }
            _ => false,
        };
        if !joined {
            self.list.push(out.clone());
        }
        Some(out)
    }

    fn clear(&mut self) {
        self.list.clear();
        self.bytes = 0;
        self.clear_on_next = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_join_clearing_waits_and_output_is_cut_at_its_limit() {
        let mut o = Outputs::default();
        o.take("stream", &json!({ "name": "stdout", "text": "a\n" }));
        o.take("stream", &json!({ "name": "stdout", "text": "b\n" }));
        o.take("stream", &json!({ "name": "stderr", "text": "!\n" }));
        assert_eq!(o.list.len(), 2);
        assert_eq!(o.list[0]["text"], "a\nb\n");
        // A clear that waits keeps what is shown until the next output.
        o.take("clear_output", &json!({ "wait": true }));
        assert_eq!(o.list.len(), 2);
        o.take(
            "execute_result",
            &json!({ "execution_count": 3, "data": { "text/plain": "2" }, "metadata": {} }),
        );
        assert_eq!(o.list.len(), 1);
        assert_eq!(o.list[0]["output_type"], "execute_result");
        // Unknown messages make nothing.
        assert!(o.take("comm_msg", &json!({})).is_none());
        // Past the limit, one note, and nothing more.
        let big = "x".repeat(MAX_OUTPUT_BYTES / 2);
        for _ in 0..4 {
            o.take("stream", &json!({ "name": "stdout", "text": big }));
        }
        let notes = o
            .list
            .iter()
            .filter(|v| {
                v["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("was not kept"))
            })
            .count();
        assert_eq!(notes, 1);
        assert!(o.bytes <= MAX_OUTPUT_BYTES);
    }
}
