//! Live co-editing of one notebook from a browser, over a WebSocket
//! (`/api/v1/projects/{project}/notebooks/{notebook}/live`).
//!
//! The browser holds no replica. It types into its own copy of the cell sources and sends
//! what it typed as splices against the version it last heard of (`base`), one message in
//! flight at a time; the node makes them as one change at that version, signed for the
//! signed-in user, and they merge with everything since as a concurrent edit would. The node
//! answers with an `ack`: what changed from the browser's own change to now, which the browser
//! applies to the text it typed. Between its edits it receives `update`s (what changed from
//! the version it holds to now). An update that arrives while an edit is in flight is dropped
//! by the browser: the ack that follows covers it. Either side may lose the connection; the
//! browser keeps what it typed and sends it against its last version when it is back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::api::{ApiError, CellView, NotebookView};
use crate::backend::Shared;

/// Splices of one cell's source (positions in Unicode code points), in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSplices {
    /// The cell.
    pub cell: String,
    /// `[position, deleted, inserted]`, each applying to the text the previous left.
    pub splices: Vec<(usize, usize, String)>,
}

/// What changed in a notebook between two versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LiveDelta {
    /// The version reached.
    pub heads: Vec<String>,
    /// Source splices of cells the browser holds.
    pub texts: Vec<LiveSplices>,
    /// Cells added, or whose kind, outputs or place changed (a browser that holds one keeps
    /// its own source).
    pub cells: Vec<CellView>,
    /// Cells deleted.
    pub removed: Vec<String>,
    /// The cells' order, when it changed.
    pub order: Option<Vec<String>>,
    /// Who else is in the notebook (carets at `heads`): always in an answer to an edit, and in
    /// an update when it changed.
    pub presence: Option<Vec<LivePresence>>,
}

/// Someone in the notebook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivePresence {
    /// Their author key.
    pub author: String,
    /// Their name.
    pub name: String,
    /// The node they edit at.
    pub node: String,
    /// The cell they are in, if any.
    pub cell: Option<String>,
    /// Where their caret is in that cell's text, at the version of the message that tells it
    /// (code points), if known.
    pub caret: Option<usize>,
}

/// Where the user's caret is: a position (code points) in a cell's text as it is at `base`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaretAt {
    /// The position.
    pub pos: usize,
    /// The version it is a position in (one the session sent).
    pub base: Vec<String>,
}

/// The notebook as the browser first sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveHello {
    /// The version it shows.
    pub heads: Vec<String>,
    /// The notebook.
    pub notebook: NotebookView,
    /// The signed-in user's author key (changes are signed with it).
    pub author: String,
    /// When the browser came back (`since` given): whether the edit it had in flight was made.
    pub landed: bool,
    /// When the browser came back: what changed from the version it held (with its edit in
    /// flight, if that was made) to now. The notebook above is then only for reference.
    pub delta: Option<LiveDelta>,
}

/// Where a browser's session picks up.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Resume {
    /// The session part of the browser's actor (32 hexadecimal digits), kept across
    /// reconnections; a fresh one if not given.
    pub session: Option<String>,
    /// The version the browser held when it lost its connection (change hashes, comma
    /// separated).
    pub since: Option<String>,
}

/// One browser's live session in one notebook, as the node runs it.
pub trait LiveNotebook: Send {
    /// The notebook as it is now.
    fn hello(&mut self) -> BoxFuture<'_, Result<LiveHello, ApiError>>;
    /// Makes `edits` as one change at `base`; answers with what changed from that change to now.
    fn edit(
        &mut self,
        base: Vec<String>,
        edits: Vec<LiveSplices>,
    ) -> BoxFuture<'_, Result<LiveDelta, ApiError>>;
    /// Waits until the notebook (or who is in it) changes after `from`; answers with what changed.
    fn changed(&mut self, from: Vec<String>) -> BoxFuture<'_, Result<LiveDelta, ApiError>>;
    /// Says which cell the user is in (`None`: none), and where their caret is in it.
    fn presence(
        &mut self,
        cell: Option<String>,
        caret: Option<CaretAt>,
    ) -> BoxFuture<'_, Result<(), ApiError>>;
}

/// What the browser sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum FromBrowser {
    Edit {
        base: Vec<String>,
        edits: Vec<LiveSplices>,
    },
    Presence {
        cell: Option<String>,
        #[serde(default)]
        caret: Option<CaretAt>,
    },
}

/// What the browser is sent.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ToBrowser<'a> {
    Hello(&'a LiveHello),
    Ack(&'a LiveDelta),
    Update(&'a LiveDelta),
    /// An edit or message refused; `resync` says the browser must start again from a hello.
    Refused {
        message: String,
        resync: bool,
    },
}

/// Versions an edit may be based on: those sent since (and including) the last ack. An edit
/// based on anything else would lack the session's own latest change.
const BASES: usize = 64;

/// Largest message accepted from a browser.
const MAX_MESSAGE: usize = 1 << 20;

/// Live sessions a node runs at once; more are refused, saying so.
const MAX_SESSIONS: usize = 512;

/// Live sessions running now.
static SESSIONS: AtomicUsize = AtomicUsize::new(0);

/// One running session, counted while it lives.
struct Counted;

impl Counted {
    fn take() -> Option<Counted> {
        let taken = SESSIONS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_SESSIONS).then(|| n + 1)
        });
        // Made only when counted: dropping one uncounts it.
        taken.is_ok().then(|| Counted)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        SESSIONS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `GET /api/v1/projects/{project}/notebooks/{notebook}/live`: a WebSocket for live editing.
pub(crate) async fn live(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, notebook)): Path<(String, String)>,
    axum::extract::Query(resume): axum::extract::Query<Resume>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // A page of another site may open a WebSocket with this node's cookie: `writer` takes a
    // session cookie only from the node's own pages.
    let who = crate::api::guard::writer(&b, &headers, "write").await?;
    let Some(counted) = Counted::take() else {
        warn!(
            limit = MAX_SESSIONS,
            "live editing refused: the node runs as many live sessions as it may"
        );
        return Err(ApiError::unavailable(
            "this node is running as many live editing sessions as it may; try again in a minute",
        ));
    };
    let session = b.live(who, project, notebook, resume).await?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            run(socket, session).await;
            drop(counted);
        })
        .into_response())
}

async fn run(mut socket: WebSocket, mut live: Box<dyn LiveNotebook>) {
    let hello = match live.hello().await {
        Ok(h) => h,
        Err(e) => {
            let _ = send(&mut socket, &refused(&e, true)).await;
            return;
        }
    };
    if send(&mut socket, &ToBrowser::Hello(&hello)).await.is_err() {
        return;
    }
    let mut known = hello.heads.clone();
    let mut bases: VecDeque<Vec<String>> = VecDeque::from([known.clone()]);
    loop {
        let message = tokio::select! {
            m = socket.recv() => m,
            d = live.changed(known.clone()) => {
                match d {
                    Ok(delta) => {
                        known = delta.heads.clone();
                        if bases.len() == BASES {
                            bases.pop_front();
                        }
                        bases.push_back(known.clone());
                        if send(&mut socket, &ToBrowser::Update(&delta)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = send(&mut socket, &refused(&e, true)).await;
                        return;
                    }
                }
                continue;
            }
        };
        let text = match message {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => return,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                debug!(error = %e, "live editing socket closed");
                return;
            }
        };
        match serde_json::from_str::<FromBrowser>(&text) {
            Ok(FromBrowser::Edit { base, edits }) => {
                if !bases.contains(&base) {
                    let why = "the edit is based on a version this session did not send";
                    let _ = send(
                        &mut socket,
                        &ToBrowser::Refused {
                            message: why.into(),
                            resync: true,
                        },
                    )
                    .await;
                    return;
                }
                match live.edit(base, edits).await {
                    Ok(delta) => {
                        known = delta.heads.clone();
                        bases = VecDeque::from([known.clone()]);
                        if send(&mut socket, &ToBrowser::Ack(&delta)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // The browser holds text the node did not take: it must start again,
                        // and says so to its user.
                        warn!(error = %e.message, "a live edit was refused");
                        let _ = send(&mut socket, &refused(&e, true)).await;
                        return;
                    }
                }
            }
            Ok(FromBrowser::Presence { cell, caret }) => {
                if let Err(e) = live.presence(cell, caret).await {
                    let _ = send(&mut socket, &refused(&e, false)).await;
                }
            }
            Err(e) => {
                let message = format!("not a live-editing message: {e}");
                let _ = send(
                    &mut socket,
                    &ToBrowser::Refused {
                        message,
                        resync: false,
                    },
                )
                .await;
            }
        }
    }
}

fn refused(e: &ApiError, resync: bool) -> ToBrowser<'static> {
    ToBrowser::Refused {
        message: e.message.clone(),
        resync,
    }
}

async fn send(socket: &mut WebSocket, m: &ToBrowser<'_>) -> Result<(), axum::Error> {
    let text = serde_json::to_string(m).unwrap_or_default();
    socket.send(Message::Text(text.into())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_beyond_the_limit_are_refused_until_one_ends() {
        let held: Vec<Counted> = (0..MAX_SESSIONS)
            .map(|_| Counted::take().expect("room"))
            .collect();
        assert!(Counted::take().is_none(), "one more than the limit");
        drop(held);
        assert!(Counted::take().is_some(), "room again once they end");
    }
}
