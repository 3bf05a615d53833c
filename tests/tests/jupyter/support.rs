//! What the journeys share: nodes with a project, typists, waits that report every replica's
//! state when they time out, and views of the notebooks.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use orrery_crdt::nbformat::{NbformatError, parse};
use orrery_crdt::{
    Batch, CellId, EditError, Notebook, NotebookId, Project, Role, Session, Visibility,
};
use orrery_node::service::{NodeError, NodeHandle};
use orrery_protocol::{AuthorId, ChangeHash, ProjectId};
use orrery_tests::{TestNode, federation, running, same_heads, within};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// nbformat 4.5, every cell with an id.
pub(crate) const GAIA: &str = include_str!("../../../node/samples/gaia-variable-stars.ipynb");
/// nbformat 4.4, no cell ids (import invents them).
pub(crate) const XMM: &str = include_str!("../../../node/samples/xmm-spectrum.ipynb");

// Cells of the gaia sample.
pub(crate) const IMPORTS: &str = "b7e20c91-imports";
pub(crate) const LOAD: &str = "d41b7f08-load";
pub(crate) const LOMBSCARGLE: &str = "f2c8d610-lombscargle";
pub(crate) const FOLD: &str = "1b6f5c48-fold";
/// The cell the newer gaia file adds.
pub(crate) const NOTES: &str = "new-notes";
/// The line the newer gaia file adds to the load cell.
pub(crate) const FILE_LINE: &str = "print(len(lc), \"transits\")";

// ---- editing through nodes ----------------------------------------------------------------------

/// Runs `f` as an edit at a running node and hands back its value once the edit is durable.
pub(crate) async fn edit<T: Send + 'static>(
    node: &NodeHandle,
    p: ProjectId,
    author: AuthorId,
    f: impl FnOnce(&mut Project, &Session) -> Result<T, EditError> + Send + 'static,
) -> Result<T, NodeError> {
    let (tx, rx) = oneshot::channel();
    node.edit(p, author, move |proj, s| {
        let value = f(proj, s)?;
        let _ = tx.send(value);
        Ok(())
    })
    .await?;
    Ok(rx.await.expect("a successful edit hands back its value"))
}

/// An nbformat refusal as an edit error, inside node edits. The files are parsed beforehand, so
/// only the edit itself can fail.
pub(crate) fn nb_err(e: NbformatError) -> EditError {
    match e {
        NbformatError::Edit(e) => e,
        _ => EditError::Malformed("not a notebook file"),
    }
}

/// `file` imported as a new notebook by `author` at a running node.
pub(crate) async fn import(
    node: &NodeHandle,
    p: ProjectId,
    author: AuthorId,
    file: &'static str,
    title: &str,
) -> NotebookId {
    parse(file.as_bytes()).expect("the file is a notebook");
    let title = title.to_string();
    edit(node, p, author, move |proj, s| {
        proj.import_ipynb(s, file.as_bytes(), &title)
            .map_err(nb_err)
    })
    .await
    .expect("import")
}

/// A federation of `n` nodes in which node 0's author owns a project and every other node's
/// author is an editor; returned once every node holds it.
pub(crate) async fn setup(
    n: usize,
    title: &str,
    visibility: Visibility,
) -> (Vec<TestNode>, ProjectId) {
    let nodes = federation(n).await;
    let owner = nodes[0].author;
    let editors: Vec<AuthorId> = nodes[1..].iter().map(|n| n.author).collect();
    let p = nodes[0]
        .handle()
        .create_project(owner, title, visibility)
        .await
        .expect("project");
    edit(nodes[0].handle(), p, owner, move |proj, s| {
        editors
            .iter()
            .try_for_each(|a| proj.set_member(s, *a, Role::Editor))
    })
    .await
    .expect("editors");
    converge(&nodes, p, "the project reaches every node").await;
    (nodes, p)
}

// ---- typing -------------------------------------------------------------------------------------

/// Where a burst of typing goes in a cell's source.
#[derive(Debug, Clone, Copy)]
pub(crate) enum At {
    Start,
    End,
    /// Just before the first occurrence of this text (at the end if it is gone).
    Before(&'static str),
}

/// One acknowledged edit: who typed what into which cell.
#[derive(Debug, Clone)]
pub(crate) struct Typed {
    pub(crate) who: &'static str,
    pub(crate) cell: CellId,
    pub(crate) text: String,
}

pub(crate) fn cell(id: &str) -> CellId {
    id.parse().expect("cell id")
}

/// Types `text` into `cell` at `at` as one splice, placed by the replica's text as it is now.
pub(crate) fn type_into(
    p: &mut Project,
    s: &Session,
    nb: &NotebookId,
    cell: &CellId,
    at: At,
    text: &str,
) -> Result<(), EditError> {
    let src = p.cell(nb, cell)?.source;
    let end = src.chars().count();
    let pos = match at {
        At::Start => 0,
        At::End => end,
        At::Before(anchor) => src.find(anchor).map_or(end, |b| src[..b].chars().count()),
    };
    p.splice_source(s, nb, cell, pos, 0, text)
}

/// An author typing at a running node into one notebook.
pub(crate) struct Typist {
    pub(crate) who: &'static str,
    pub(crate) node: NodeHandle,
    pub(crate) author: AuthorId,
    pub(crate) p: ProjectId,
    pub(crate) nb: NotebookId,
}

impl Typist {
    /// `node`'s author, called `who` in messages, typing into notebook `nb` of project `p`.
    pub(crate) fn new(node: &TestNode, who: &'static str, p: ProjectId, nb: &NotebookId) -> Typist {
        Typist {
            who,
            node: node.handle().clone(),
            author: node.author,
            p,
            nb: nb.clone(),
        }
    }

    /// Types `text` into `cell` at `at`; returns the edit once acknowledged.
    pub(crate) async fn types(&self, cell: &CellId, at: At, text: &str) -> Typed {
        let (nb, c, t) = (self.nb.clone(), cell.clone(), text.to_string());
        edit(&self.node, self.p, self.author, move |proj, s| {
            type_into(proj, s, &nb, &c, at, &t)
        })
        .await
        .unwrap_or_else(|e| panic!("{}'s edit {text:?} refused: {e}", self.who));
        Typed {
            who: self.who,
            cell: cell.clone(),
            text: text.to_string(),
        }
    }
}

/// `who` types offline into a stopped node's store; returns the edit once durable.
pub(crate) fn type_offline(
    node: &TestNode,
    p: ProjectId,
    who: &'static str,
    nb: &NotebookId,
    cell: &CellId,
    at: At,
    text: &str,
) -> Typed {
    node.edit_offline(p, node.author, |proj, s| {
        type_into(proj, s, nb, cell, at, text)
    })
    .unwrap_or_else(|e| panic!("{who}'s offline edit {text:?} refused: {e}"));
    Typed {
        who,
        cell: cell.clone(),
        text: text.to_string(),
    }
}

/// The acknowledged edits whose text is not in their cell of `nb`.
pub(crate) fn missing<'a>(typed: &'a [Typed], nb: &Notebook) -> Vec<&'a Typed> {
    typed
        .iter()
        .filter(|t| {
            !nb.cells
                .iter()
                .any(|c| c.id == t.cell && c.source.contains(&t.text))
        })
        .collect()
}

// ---- waiting, and saying why a wait failed ------------------------------------------------------

/// Runs `f` on a running node's live replica of `p` (through an edit as `author` that is then
/// refused, so the node commits, publishes and sends nothing of its own).
pub(crate) async fn inspect<T: Send + 'static>(
    node: &NodeHandle,
    p: ProjectId,
    author: AuthorId,
    f: impl FnOnce(&mut Project) -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    let _ = node
        .edit(p, author, move |proj, _| {
            let _ = tx.send(f(proj));
            Err(EditError::Malformed("inspection only"))
        })
        .await;
    rx.await.ok()
}

/// The project's members at the first running node that holds `p`.
pub(crate) async fn members(nodes: &[TestNode], p: ProjectId) -> Vec<AuthorId> {
    for n in nodes.iter().filter_map(|n| n.node.as_ref()) {
        let held = n
            .read(p, |x| {
                x.map(|x| x.members().into_iter().map(|m| m.author).collect())
            })
            .await;
        if let Ok(Some(members)) = held {
            return members;
        }
    }
    Vec::new()
}

/// Where one running node's view of another running node lets it down for `p`: the other hosts
/// a member of `p`, yet this node's latest advert of it does not list that member (so this node
/// neither sends `p` to it nor accepts `p` from it), or is older than three advert rounds (its
/// adverts stopped arriving).
pub(crate) async fn advert_report(nodes: &[TestNode], p: ProjectId) -> String {
    let members = members(nodes, p).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut out = String::new();
    for (i, n) in nodes.iter().enumerate() {
        let Some(Ok(status)) = (match &n.node {
            Some(h) => Some(h.status().await),
            None => None,
        }) else {
            continue;
        };
        for (j, other) in nodes.iter().enumerate() {
            // A stopped node sends no adverts; its last one lapses as it should.
            if j == i || other.node.is_none() || !members.contains(&other.author) {
                continue;
            }
            let advert = status
                .members
                .iter()
                .find(|m| m.node == other.id)
                .and_then(|m| m.advert.as_ref());
            let (lists, age) = match advert {
                Some(a) => (
                    a.hosted_authors().contains(&other.author),
                    now - a.issued_at,
                ),
                None => (false, i64::MAX),
            };
            if !lists || age > 6 {
                let age = if age == i64::MAX {
                    "none".to_string()
                } else {
                    format!("issued {age}s ago")
                };
                let _ = writeln!(
                    out,
                    "  STALE ADVERT: node {i}'s latest advert of node {j} ({age}) {} node {j}'s \
                     author, a member: node {i} will not sync the project with node {j}",
                    if lists { "lists" } else { "does not list" }
                );
            }
        }
    }
    out
}

/// What each running node holds of `p`, for the message of a wait that timed out; names a node
/// stuck in the sync livelock (see the module docs).
pub(crate) async fn replica_report(nodes: &[TestNode], p: ProjectId) -> String {
    let mut out = String::new();
    for (i, n) in nodes.iter().enumerate() {
        let Some(h) = &n.node else {
            let _ = writeln!(out, "  node {i}: stopped");
            continue;
        };
        let held = h
            .read(p, |x| x.map(|x| (x.change_count(), x.heads())))
            .await
            .ok()
            .flatten();
        let Some((count, heads)) = held else {
            let _ = writeln!(out, "  node {i}: does not hold the project");
            continue;
        };
        // An empty ingest retries the waiting changes and reports how many still wait.
        let waiting = inspect(h, p, n.author, |x| {
            x.ingest(Batch::default()).map(|r| r.pending).unwrap_or(0)
        })
        .await
        .unwrap_or(0);
        let _ = writeln!(
            out,
            "  node {i}: {count} changes, heads {heads:?}, {waiting} waiting for a dependency"
        );
        if waiting > 0 {
            let _ = writeln!(
                out,
                "  SYNC LIVELOCK: node {i} holds changes whose dependency its peers never send"
            );
        }
    }
    out
}

/// Waits until `check` holds, re-checked on every event of the running nodes; on timeout panics
/// with `what`, what every node holds of `p`, and how the nodes' adverts of each other stood
/// when the wait began and when it ended.
pub(crate) async fn wait_for<F, Fut>(nodes: &[TestNode], p: ProjectId, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let before = advert_report(nodes, p).await;
    if !within(&running(nodes), WAIT, check).await {
        panic!(
            "timed out after {WAIT:?} waiting until {what}\nreplicas:\n{}adverts when the wait \
             began:\n{before}adverts now:\n{}",
            replica_report(nodes, p).await,
            advert_report(nodes, p).await,
        );
    }
}

/// Waits until every running node holds `p` with the same heads, and returns them.
pub(crate) async fn converge(nodes: &[TestNode], p: ProjectId, what: &str) -> Vec<ChangeHash> {
    let all = running(nodes);
    let check = all.clone();
    wait_for(nodes, p, what, || {
        let check = check.clone();
        async move { same_heads(&check, p).await.is_some() }
    })
    .await;
    same_heads(&all, p).await.unwrap_or_default()
}

// ---- the end state ------------------------------------------------------------------------------

/// One replica's view: its heads, and each notebook read and exported.
pub(crate) type View = (Vec<ChangeHash>, Vec<(Notebook, String)>);

pub(crate) async fn view(node: &NodeHandle, p: ProjectId) -> Option<View> {
    node.read(p, |proj| {
        let proj = proj?;
        let mut notebooks = Vec::new();
        for (id, _) in proj.notebook_ids() {
            notebooks.push((proj.notebook(&id).ok()?, proj.export_ipynb(&id).ok()?));
        }
        Some((proj.heads(), notebooks))
    })
    .await
    .ok()
    .flatten()
}

/// Waits until every running node holds `p` with the same heads, then checks that every one
/// holds the same notebooks, exports the same JSON for each, and has no cell id twice in a
/// notebook. Returns the notebooks (ordered by title, then id).
pub(crate) async fn settled(nodes: &[TestNode], p: ProjectId, what: &str) -> Vec<Notebook> {
    let heads = converge(nodes, p, what).await;
    let mut first: Option<Vec<(Notebook, String)>> = None;
    for (i, node) in nodes.iter().enumerate() {
        let Some(node) = &node.node else { continue };
        let (h, notebooks) = view(node, p).await.expect("every node holds the project");
        assert_eq!(h, heads, "node {i} moved on after converging");
        for (nb, _) in &notebooks {
            let ids: BTreeSet<&CellId> = nb.cells.iter().map(|c| &c.id).collect();
            assert_eq!(
                ids.len(),
                nb.cells.len(),
                "node {i}: a cell id twice in notebook {}",
                nb.id
            );
        }
        match &first {
            None => first = Some(notebooks),
            Some(f) => {
                let ids = |v: &[(Notebook, String)]| -> Vec<NotebookId> {
                    v.iter().map(|(n, _)| n.id.clone()).collect()
                };
                assert_eq!(ids(&notebooks), ids(f), "node {i}: other notebooks");
                for ((n, json), (n0, json0)) in notebooks.iter().zip(f) {
                    assert_eq!(
                        json, json0,
                        "node {i} exports notebook {} differently",
                        n.id
                    );
                    assert!(n == n0, "node {i} holds notebook {} differently", n.id);
                }
            }
        }
    }
    first
        .unwrap_or_default()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

pub(crate) fn ids_of(nb: &Notebook) -> Vec<CellId> {
    nb.cells.iter().map(|c| c.id.clone()).collect()
}

pub(crate) fn source<'a>(nb: &'a Notebook, id: &CellId) -> &'a str {
    &nb.cells
        .iter()
        .find(|c| &c.id == id)
        .unwrap_or_else(|| panic!("cell {id} is gone"))
        .source
}

// ---- nbformat files -----------------------------------------------------------------------------

pub(crate) fn joined(source: &Value) -> String {
    match source {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

pub(crate) fn lines(source: &str) -> Value {
    Value::Array(
        source
            .split_inclusive('\n')
            .map(|l| Value::String(l.into()))
            .collect(),
    )
}

/// The gaia sample as its importer edited it in Jupyter since importing it: a line added to the
/// load cell, a notes cell added where the Lomb–Scargle explanation was, which is removed.
/// Returns the file and its cell ids in order.
pub(crate) fn gaia_edited_in_jupyter() -> (String, Vec<CellId>) {
    let mut file: Value = serde_json::from_str(GAIA).expect("json");
    let cells = file["cells"].as_array_mut().expect("cells");
    assert_eq!(cells[3]["id"], LOAD);
    let load = joined(&cells[3]["source"]);
    let at = load.find("\ngood").expect("a line to add after");
    cells[3]["source"] = lines(&format!("{}\n{FILE_LINE}{}", &load[..at], &load[at..]));
    assert_eq!(cells[5]["id"], LOMBSCARGLE);
    cells[5] = json!({"cell_type": "markdown", "id": NOTES, "metadata": {},
        "source": lines("## Notes\n\nAdded in Jupyter.")});
    let ids = cells
        .iter()
        .map(|c| cell(c["id"].as_str().expect("id")))
        .collect();
    (serde_json::to_string_pretty(&file).expect("serialise"), ids)
}

// ---- the tests ----------------------------------------------------------------------------------
