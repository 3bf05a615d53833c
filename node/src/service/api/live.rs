//! A browser's live editing session in one notebook, over the running node (see
//! [`orrery_web::live`]): splices made at the version the browser holds, signed with the user's
//! author key under an actor of the session's own, and what changed told back as deltas.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use orrery_crdt::{CellId, CellSplices, NotebookDelta, NotebookId, Splice};
use orrery_protocol::{AuthorId, ChangeHash, ProjectId};
use orrery_web::live::{
    CaretAt, LiveDelta, LiveHello, LiveNotebook, LivePresence, LiveSplices, Resume,
};
use orrery_web::{ApiError, Principal};
use tokio::sync::broadcast;

use super::super::{NodeEvent, NodeHandle};
use super::{
    author_of, cell_view, edit_error, node_error, not_found, notebook_view, parse, project_id,
    visible,
};

/// Most splices taken in one message.
const MAX_SPLICES: usize = 4096;

struct Live {
    node: NodeHandle,
    project: ProjectId,
    notebook: NotebookId,
    author: AuthorId,
    part: [u8; orrery_crdt::session::SESSION_LEN],
    events: broadcast::Receiver<NodeEvent>,
    /// Who else was in the notebook, as last told.
    present: Vec<LivePresence>,
    /// The version the browser held when it came back, if it did.
    since: Option<Vec<ChangeHash>>,
}

/// Opens `who`'s live session in a notebook they may see.
pub(in crate::service) async fn open(
    node: &NodeHandle,
    who: Principal,
    project: String,
    notebook: String,
    resume: Resume,
) -> Result<Box<dyn LiveNotebook>, ApiError> {
    let project = project_id(&project)?;
    let notebook: NotebookId = parse("notebook id", &notebook)?;
    let author = author_of(&who)?;
    let nb = notebook.clone();
    node.read(project, move |p| match p {
        Some(p) if visible(p, Some(&author)) => {
            p.notebook(&nb).map(|_| ()).map_err(|e| edit_error(&e))
        }
        _ => Err(not_found(project)),
    })
    .await
    .map_err(node_error)??;
    let mut part = [0u8; orrery_crdt::session::SESSION_LEN];
    match resume.session.as_deref() {
        Some(given) => hex::decode_to_slice(given, &mut part)
            .map_err(|_| ApiError::invalid("`session` must be 32 hexadecimal digits"))?,
        None => getrandom::fill(&mut part).map_err(|e| ApiError::unavailable(e.to_string()))?,
    }
    let since = match resume.since.as_deref() {
        Some(s) => Some(hashes(
            &s.split(',').map(str::to_owned).collect::<Vec<_>>(),
        )?),
        None => None,
    };
    let events = node.subscribe();
    Ok(Box::new(Live {
        node: node.clone(),
        project,
        notebook,
        author,
        part,
        events,
        present: Vec::new(),
        since,
    }))
}

impl Live {
    async fn delta(&self, from: Vec<ChangeHash>) -> Result<NotebookDelta, ApiError> {
        let nb = self.notebook.clone();
        let project = self.project;
        self.node
            .read(project, move |p| {
                p.ok_or_else(|| not_found(project))?
                    .notebook_delta(&nb, &from)
                    .map_err(|e| edit_error(&e))
            })
            .await
            .map_err(node_error)?
    }

    /// Who else is in the notebook now (at this node or another), with their carets where
    /// they are in the version `at`.
    async fn who_is_in(&self, at: &[String]) -> Result<Vec<LivePresence>, ApiError> {
        let statements = self.node.presence(self.project).await.map_err(node_error)?;
        let nb_text = self.notebook.to_string();
        let statements: Vec<_> = statements
            .into_iter()
            .filter(|s| {
                s.active && s.author != self.author && s.notebook.as_deref() == Some(&nb_text)
            })
            .collect();
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        let (project, nb, at) = (self.project, self.notebook.clone(), hashes(at)?);
        let mut out = self
            .node
            .read(project, move |p| {
                let named = p.map(|p| p.profiles()).unwrap_or_default();
                statements
                    .into_iter()
                    .map(|s| {
                        let caret = p.zip(s.cell.as_deref()).zip(s.caret.as_ref()).and_then(
                            |((p, cell), caret)| {
                                let cell = cell.parse::<CellId>().ok()?;
                                p.caret_position(&nb, &cell, caret, &at)
                            },
                        );
                        LivePresence {
                            author: s.author.to_string(),
                            name: named
                                .get(&s.author)
                                .map_or_else(|| s.author.short(), |p| p.name.clone()),
                            node: s.node.to_string(),
                            cell: s.cell,
                            caret,
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(node_error)?;
        out.sort_by(|a, b| a.author.cmp(&b.author));
        Ok(out)
    }
}

fn hashes(heads: &[String]) -> Result<Vec<ChangeHash>, ApiError> {
    heads
        .iter()
        .map(|h| parse("version (change hash)", h))
        .collect()
}

fn to_web(d: NotebookDelta) -> LiveDelta {
    LiveDelta {
        heads: d.heads.iter().map(ToString::to_string).collect(),
        texts: d
            .texts
            .into_iter()
            .map(|t| LiveSplices {
                cell: t.cell.to_string(),
                splices: t
                    .splices
                    .into_iter()
                    .map(|s| (s.pos, s.delete, s.insert))
                    .collect(),
            })
            .collect(),
        cells: d.cells.into_iter().map(cell_view).collect(),
        removed: d.removed.iter().map(ToString::to_string).collect(),
        order: d.order.map(|o| o.iter().map(ToString::to_string).collect()),
        presence: None,
    }
}

impl LiveNotebook for Live {
    fn hello(&mut self) -> BoxFuture<'_, Result<LiveHello, ApiError>> {
        Box::pin(async move {
            let (project, nb) = (self.project, self.notebook.clone());
            let (heads, notebook) = self
                .node
                .read(project, move |p| {
                    let p = p.ok_or_else(|| not_found(project))?;
                    let notebook = p.notebook(&nb).map_err(|e| edit_error(&e))?;
                    Ok::<_, ApiError>((p.heads(), notebook_view(p, notebook)))
                })
                .await
                .map_err(node_error)??;
            let (mut landed, mut delta) = (false, None);
            if let Some(since) = self.since.take() {
                let (author, part, s) = (self.author, self.part, since.clone());
                let own = self
                    .node
                    .read(project, move |p| {
                        p.ok_or_else(|| not_found(project))?
                            .session_change_since(&author, &part, &s)
                            .map_err(|e| edit_error(&e))
                    })
                    .await
                    .map_err(node_error)??;
                landed = own.is_some();
                delta = Some(to_web(self.delta(own.map_or(since, |o| vec![o])).await?));
            }
            let heads: Vec<String> = match &delta {
                Some(d) => d.heads.clone(),
                None => heads.iter().map(ToString::to_string).collect(),
            };
            Ok(LiveHello {
                heads,
                notebook,
                author: self.author.to_string(),
                landed,
                delta,
            })
        })
    }

    fn edit(
        &mut self,
        base: Vec<String>,
        edits: Vec<LiveSplices>,
    ) -> BoxFuture<'_, Result<LiveDelta, ApiError>> {
        Box::pin(async move {
            let base = hashes(&base)?;
            if edits.iter().map(|e| e.splices.len()).sum::<usize>() > MAX_SPLICES {
                return Err(ApiError::invalid(format!(
                    "at most {MAX_SPLICES} splices in one message"
                )));
            }
            let edits = edits
                .into_iter()
                .map(|e| {
                    Ok(CellSplices {
                        cell: parse::<CellId>("cell id", &e.cell)?,
                        splices: e
                            .splices
                            .into_iter()
                            .map(|(pos, delete, insert)| Splice {
                                pos,
                                delete,
                                insert,
                            })
                            .collect(),
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let made = Arc::new(Mutex::new(None));
            let slot = made.clone();
            let nb = self.notebook.clone();
            self.node
                .edit_in(self.project, self.author, self.part, move |p, s| {
                    let own = p.splice_at(s, &nb, &base, &edits)?;
                    if let Ok(mut m) = slot.lock() {
                        *m = Some(own);
                    }
                    Ok(())
                })
                .await
                .map_err(node_error)?;
            let own = made.lock().ok().and_then(|mut m| m.take()).ok_or_else(|| {
                ApiError::unavailable("the edit was made but its version was lost")
            })?;
            let mut out = to_web(self.delta(vec![own]).await?);
            // Others' carets, where they are in the version the browser now holds.
            let present = self.who_is_in(&out.heads).await?;
            self.present = present.clone();
            out.presence = Some(present);
            Ok(out)
        })
    }

    fn changed(&mut self, from: Vec<String>) -> BoxFuture<'_, Result<LiveDelta, ApiError>> {
        Box::pin(async move {
            let from = hashes(&from)?;
            loop {
                let delta = self.delta(from.clone()).await?;
                let newer = delta.heads != from;
                let mut out = to_web(delta);
                let present = self.who_is_in(&out.heads).await?;
                let moved = present != self.present;
                if newer || moved {
                    if moved {
                        self.present = present.clone();
                        out.presence = Some(present);
                    }
                    return Ok(out);
                }
                // Cancel-safe: an event not taken now stays queued for the next call.
                loop {
                    match self.events.recv().await {
                        Ok(NodeEvent::ProjectChanged { project, .. })
                        | Ok(NodeEvent::Presence { project, .. })
                            if project == self.project =>
                        {
                            break;
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => {
                            return Err(ApiError::unavailable("the node is stopping"));
                        }
                    }
                }
            }
        })
    }

    fn presence(
        &mut self,
        cell: Option<String>,
        caret: Option<CaretAt>,
    ) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            // A caret at a version this node no longer knows, or outside the text, is left out:
            // the cell still says where the user is.
            let caret = match (cell.as_deref().map(str::parse::<CellId>), caret) {
                (Some(Ok(id)), Some(c)) => {
                    let (project, nb, base) =
                        (self.project, self.notebook.clone(), hashes(&c.base)?);
                    self.node
                        .read(project, move |p| {
                            p.and_then(|p| p.caret_at(&nb, &id, c.pos, &base).ok())
                        })
                        .await
                        .map_err(node_error)?
                }
                _ => None,
            };
            self.node
                .set_presence(
                    self.author,
                    self.project,
                    Some(self.notebook.to_string()),
                    cell,
                    caret,
                    true,
                )
                .await
                .map_err(node_error)
        })
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // The user left the notebook: others stop seeing them in it.
        let (node, author, project) = (self.node.clone(), self.author, self.project);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = node
                    .set_presence(author, project, None, None, None, false)
                    .await;
            });
        }
    }
}
