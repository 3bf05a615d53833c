//! A cell run through the REST API: signed for the caller and run on this node (see
//! [`NodeHandle::run_cell`]), answered with the cell as the run left it.

use orrery_crdt::{CellId, NotebookId};
use orrery_protocol::ProjectId;
use orrery_protocol::run::RunStatus;
use orrery_web::api::{ProjectAnswer, RunView};
use orrery_web::{ApiError, Principal};

use super::super::NodeHandle;
use super::{author_of, cell_view, edit_error, node_error, not_found, parse};

/// Runs `cell` of `notebook` in project `id` (which `who` may see) as `who`.
pub(in crate::service) async fn run(
    node: &NodeHandle,
    who: Principal,
    id: ProjectId,
    notebook: String,
    cell: String,
) -> Result<ProjectAnswer, ApiError> {
    let author = author_of(&who)?;
    let nb: NotebookId = parse("notebook id", &notebook)?;
    let cell: CellId = parse("cell id", &cell)?;
    let outcome = node
        .run_cell(author, id, nb.clone(), cell.clone())
        .await
        .map_err(node_error)?;
    let view = node
        .read(id, move |p| {
            p.ok_or_else(|| not_found(id))?
                .cell(&nb, &cell)
                .map(cell_view)
                .map_err(|e| edit_error(&e))
        })
        .await
        .map_err(node_error)??;
    let p = &outcome.provenance;
    Ok(ProjectAnswer::Run(RunView {
        cell: view,
        node: node.id().to_string(),
        lab: outcome.lab,
        status: match &p.status {
            RunStatus::Ok => "ok".into(),
            RunStatus::Error(e) => e.clone(),
        },
        started_at_ms: p.started_at_ms,
        ended_at_ms: p.ended_at_ms,
    }))
}
