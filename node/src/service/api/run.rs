//! A cell run through the REST API: signed for the caller and run at the data (see
//! [`NodeHandle::run_cell`]), answered with the cell as the run left it; and the caller's
//! kernel interrupted or restarted.

use futures::channel::mpsc::UnboundedSender;
use orrery_crdt::{CellId, NotebookId};
use orrery_protocol::ProjectId;
use orrery_protocol::run::RunStatus;
use orrery_web::api::{CellAddress, ProjectAnswer, RunView};
use orrery_web::{ApiError, Principal};

use super::super::NodeHandle;
use super::{
    author_of, cell_view_in, edit_error, node_error, not_found, parse, project_id, visible,
};

/// Runs `at` (a cell of a project `who` may see) as `who`, handing each output to `outputs`
/// as it arrives.
pub(in crate::service) async fn run(
    node: &NodeHandle,
    who: Principal,
    at: CellAddress,
    outputs: UnboundedSender<serde_json::Value>,
) -> Result<RunView, ApiError> {
    let id = project_id(&at.project)?;
    let author = author_of(&who)?;
    let seen = node
        .read(id, move |p| p.is_some_and(|p| visible(p, Some(&author))))
        .await
        .map_err(node_error)?;
    if !seen {
        return Err(not_found(id));
    }
    let nb: NotebookId = parse("notebook id", &at.notebook)?;
    let cell: CellId = parse("cell id", &at.cell)?;
    let mut each = |o: &serde_json::Value| {
        let _ = outputs.unbounded_send(o.clone());
    };
    let outcome = node
        .run_cell(author, id, nb.clone(), cell.clone(), &mut each)
        .await
        .map_err(node_error)?;
    let names = node.node_names().await;
    let mut view = node
        .read(id, move |p| {
            let p = p.ok_or_else(|| not_found(id))?;
            p.cell(&nb, &cell)
                .map(|c| cell_view_in(p, &nb, c))
                .map_err(|e| edit_error(&e))
        })
        .await
        .map_err(node_error)??;
    if let Some(r) = view.run.as_mut() {
        r.node_name = r.node.parse().ok().and_then(|n| names.get(&n).cloned());
    }
    let p = &outcome.provenance;
    Ok(RunView {
        cell: view,
        node: outcome.node.to_string(),
        node_name: names.get(&outcome.node).cloned(),
        lab: outcome.lab,
        status: match &p.status {
            RunStatus::Ok => "ok".into(),
            RunStatus::Error(e) => e.clone(),
        },
        started_at_ms: p.started_at_ms,
        ended_at_ms: p.ended_at_ms,
    })
}

/// Interrupts `author`'s kernel for `notebook` of project `id`, or restarts it.
pub(in crate::service) async fn kernel(
    node: &NodeHandle,
    author: orrery_protocol::AuthorId,
    id: ProjectId,
    notebook: String,
    restart: bool,
) -> Result<ProjectAnswer, ApiError> {
    let nb: NotebookId = parse("notebook id", &notebook)?;
    let done = if restart {
        node.restart_kernel(author, id, nb).await
    } else {
        node.interrupt_run(author, id, nb).await
    }
    .map_err(node_error)?;
    if !done {
        return Err(ApiError::not_found(
            "you have no kernel for this notebook: run a cell first",
        ));
    }
    Ok(ProjectAnswer::Done)
}
