//! Projects: listing and creating them, their notebooks and cells, members, credits, history and
//! comments, and Jupyter notebook files in and out.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::{reader, writer};
use super::model::*;
use super::{ApiError, ErrorBody};
use crate::backend::Shared;

pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, patch))
        .routes(routes!(members))
        .routes(routes!(set_member, remove_member))
        .routes(routes!(add_notebook))
        .routes(routes!(import_notebook))
        .routes(routes!(notebook))
        .routes(routes!(export_notebook, reimport_notebook))
        .routes(routes!(move_cell))
        .routes(routes!(reference_dataset))
        .routes(routes!(stored_output))
        .routes(routes!(authorship))
        .routes(routes!(add_cell))
        .routes(routes!(set_source, delete_cell))
        .routes(routes!(credits))
        .routes(routes!(history))
        .routes(routes!(comments, add_comment))
}

/// The answer a handler expected, or a 503 naming what came instead (a node bug, never the
/// caller's fault).
macro_rules! expect {
    ($answer:expr, $variant:ident) => {
        match $answer {
            ProjectAnswer::$variant(v) => Ok(v),
            other => Err(ApiError::unavailable(format!(
                "the node answered with {other:?} where {} was expected",
                stringify!($variant)
            ))),
        }
    };
}

async fn read(
    b: &Shared,
    headers: &HeaderMap,
    project: String,
    what: ProjectRead,
) -> Result<ProjectAnswer, ApiError> {
    let who = reader(b, headers).await?;
    b.read_project(who, project, what).await
}

async fn edit(
    b: &Shared,
    headers: &HeaderMap,
    project: String,
    what: ProjectEdit,
) -> Result<ProjectAnswer, ApiError> {
    let who = writer(b, headers, "write").await?;
    b.edit_project(who, project, what).await
}

/// An edit carried by a JSON body: the caller is checked first, so that a stranger learns
/// nothing from how the body is refused.
async fn edit_with<T>(
    b: &Shared,
    headers: &HeaderMap,
    project: String,
    body: Result<Json<T>, JsonRejection>,
    what: impl FnOnce(T) -> ProjectEdit,
) -> Result<ProjectAnswer, ApiError> {
    let who = writer(b, headers, "write").await?;
    let Json(value) = body?;
    b.edit_project(who, project, what(value)).await
}

/// The projects the caller may see on this node: the public ones, and those they belong to.
#[utoipa::path(
    get,
    path = "/api/v1/projects",
    tag = "projects",
    security((), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "what was asked for", body = Vec<ProjectSummary>),
        (status = 401, description = "no valid credential", body = ErrorBody),
    )
)]
async fn list(
    State(b): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Vec<ProjectSummary>>, ApiError> {
    let who = reader(&b, &headers).await?;
    b.projects(who).await.map(Json)
}

/// Creates a project; the caller is its founder and owner.
#[utoipa::path(
    post,
    path = "/api/v1/projects",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    request_body = NewProject,
    responses(
        (status = 201, description = "made", body = ProjectSummary),
        (status = 400, description = "the request is malformed or impossible", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
    )
)]
async fn create(
    State(b): State<Shared>,
    headers: HeaderMap,
    body: Result<Json<NewProject>, JsonRejection>,
) -> Result<(StatusCode, Json<ProjectSummary>), ApiError> {
    let who = writer(&b, &headers, "write").await?;
    let Json(new) = body?;
    let made = b.create_project(who, new).await?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// A project: title, description, visibility, members, notebooks.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}",
    tag = "projects",
    security((), ("bearer" = []), ("session" = [])),
    params(("project" = String, Path, description = "the project's id")),
    responses(
        (status = 200, description = "what was asked for", body = ProjectView),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn show(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    let a = read(&b, &headers, project, ProjectRead::Project).await?;
    expect!(a, Project).map(Json)
}

/// Changes a project's title or description (editors) or visibility (owners).
#[utoipa::path(
    patch,
    path = "/api/v1/projects/{project}",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(("project" = String, Path, description = "the project's id")),
    request_body = ProjectPatch,
    responses(
        (status = 200, description = "what was asked for", body = ProjectView),
        (status = 400, description = "the request is malformed or impossible", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn patch(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Result<Json<ProjectPatch>, JsonRejection>,
) -> Result<Json<ProjectView>, ApiError> {
    let a = edit_with(&b, &headers, project, body, ProjectEdit::Patch).await?;
    expect!(a, Project).map(Json)
}

/// A project's members and their roles.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/members",
    tag = "projects",
    security((), ("bearer" = []), ("session" = [])),
    params(("project" = String, Path, description = "the project's id")),
    responses(
        (status = 200, description = "what was asked for", body = Vec<ProjectMember>),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn members(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Json<Vec<ProjectMember>>, ApiError> {
    let a = read(&b, &headers, project, ProjectRead::Members).await?;
    expect!(a, Members).map(Json)
}

/// Adds a member or changes their role (owners).
#[utoipa::path(
    put,
    path = "/api/v1/projects/{project}/members/{author}",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("author" = String, Path, description = "the member's author key"),
    ),
    request_body = MemberRole,
    responses(
        (status = 200, description = "what was asked for", body = Vec<ProjectMember>),
        (status = 400, description = "the request is malformed or impossible", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn set_member(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, author)): Path<(String, String)>,
    body: Result<Json<MemberRole>, JsonRejection>,
) -> Result<Json<Vec<ProjectMember>>, ApiError> {
    let set = |MemberRole { role }| ProjectEdit::SetMember { author, role };
    let a = edit_with(&b, &headers, project, body, set).await?;
    expect!(a, Members).map(Json)
}

/// Removes a member (owners).
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project}/members/{author}",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("author" = String, Path, description = "the member's author key"),
    ),
    responses(
        (status = 200, description = "what was asked for", body = Vec<ProjectMember>),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
        (status = 409, description = "the last owner cannot be removed", body = ErrorBody),
    )
)]
async fn remove_member(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, author)): Path<(String, String)>,
) -> Result<Json<Vec<ProjectMember>>, ApiError> {
    let a = edit(&b, &headers, project, ProjectEdit::RemoveMember(author)).await?;
    expect!(a, Members).map(Json)
}

/// Adds an empty notebook (editors).
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/notebooks",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(("project" = String, Path, description = "the project's id")),
    request_body = NewNotebook,
    responses(
        (status = 201, description = "made", body = NotebookView),
        (status = 400, description = "the request is malformed or impossible", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn add_notebook(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Result<Json<NewNotebook>, JsonRejection>,
) -> Result<(StatusCode, Json<NotebookView>), ApiError> {
    let a = edit_with(&b, &headers, project, body, ProjectEdit::AddNotebook).await?;
    Ok((StatusCode::CREATED, Json(expect!(a, Notebook)?)))
}

/// Imports a Jupyter notebook (nbformat 4) as a new notebook (editors).
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/notebooks/import",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(("project" = String, Path, description = "the project's id")),
    request_body = ImportNotebook,
    responses(
        (status = 201, description = "made", body = NotebookView),
        (status = 400, description = "not a notebook this node can import", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn import_notebook(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Result<Json<ImportNotebook>, JsonRejection>,
) -> Result<(StatusCode, Json<NotebookView>), ApiError> {
    let a = edit_with(&b, &headers, project, body, ProjectEdit::Import).await?;
    Ok((StatusCode::CREATED, Json(expect!(a, Notebook)?)))
}

/// A notebook with its cells.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/notebooks/{notebook}",
    tag = "projects",
    security((), ("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("notebook" = String, Path, description = "the notebook's id"),
    ),
    responses(
        (status = 200, description = "what was asked for", body = NotebookView),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn notebook(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, nb)): Path<(String, String)>,
) -> Result<Json<NotebookView>, ApiError> {
    let a = read(&b, &headers, project, ProjectRead::Notebook(nb)).await?;
    expect!(a, Notebook).map(Json)
}

/// Who wrote each part of a notebook's cells: each cell's source cut into runs by the author
/// whose signed change inserted each character (the runs, joined, are the source).
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/notebooks/{notebook}/authorship",
    tag = "projects",
    security((), ("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("notebook" = String, Path, description = "the notebook's id"),
    ),
    responses(
        (status = 200, description = "what was asked for", body = NotebookAuthorship),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn authorship(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, nb)): Path<(String, String)>,
) -> Result<Json<NotebookAuthorship>, ApiError> {
    let a = read(&b, &headers, project, ProjectRead::Authorship(nb)).await?;
    expect!(a, Authorship).map(Json)
}

/// A notebook as a Jupyter notebook file (nbformat 4.5).
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/notebooks/{notebook}/ipynb",
    tag = "projects",
    security((), ("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("notebook" = String, Path, description = "the notebook's id"),
    ),
    responses(
        (status = 200, description = "the notebook file", body = Object, content_type = "application/x-ipynb+json"),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn export_notebook(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, nb)): Path<(String, String)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let a = read(&b, &headers, project, ProjectRead::Ipynb(nb)).await?;
    let file = expect!(a, Ipynb)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ipynb+json")],
        Json(file),
    )
        .into_response())
}

/// Updates a notebook in place from a newer version of its file (editors): only what changed
/// since the file it was imported from is applied, merged with what others did meanwhile.
#[utoipa::path(
    put,
    path = "/api/v1/projects/{project}/notebooks/{notebook}/ipynb",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("notebook" = String, Path, description = "the notebook's id"),
    ),
    request_body(content = Object, description = "the notebook file (nbformat 4 JSON)"),
    responses(
        (status = 200, description = "what changed", body = Reimported),
        (status = 400, description = "not a notebook this node can import", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn reimport_notebook(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, notebook)): Path<(String, String)>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<Reimported>, ApiError> {
    let update = |file| ProjectEdit::Reimport { notebook, file };
    let a = edit_with(&b, &headers, project, body, update).await?;
    expect!(a, Reimported).map(Json)
}

/// Moves a cell (editors).
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/notebooks/{notebook}/cells/{cell}/move",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("notebook" = String, Path, description = "the notebook's id"),
        ("cell" = String, Path, description = "the cell's id"),
    ),
    request_body = CellPlace,
    responses(
        (status = 200, description = "the notebook now", body = NotebookView),
        (status = 400, description = "the request is malformed or impossible", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn move_cell(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, notebook, cell)): Path<(String, String, String)>,
    body: Result<Json<CellPlace>, JsonRejection>,
) -> Result<Json<NotebookView>, ApiError> {
    let place = |CellPlace { index }| ProjectEdit::MoveCell {
        notebook,
        cell,
        index,
    };
    let a = edit_with(&b, &headers, project, body, place).await?;
    expect!(a, Notebook).map(Json)
}

/// Adds a cell (editors).
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/notebooks/{notebook}/cells",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("notebook" = String, Path, description = "the notebook's id"),
    ),
    request_body = NewCell,
    responses(
        (status = 201, description = "made", body = CellView),
        (status = 400, description = "the request is malformed or impossible", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn add_cell(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, notebook)): Path<(String, String)>,
    body: Result<Json<NewCell>, JsonRejection>,
) -> Result<(StatusCode, Json<CellView>), ApiError> {
    let add = |cell| ProjectEdit::AddCell { notebook, cell };
    let a = edit_with(&b, &headers, project, body, add).await?;
    Ok((StatusCode::CREATED, Json(expect!(a, Cell)?)))
}

/// Replaces a cell's source (editors). Concurrent edits by others are merged, not lost: the
/// change is made as the smallest splice from the current source.
#[utoipa::path(
    put,
    path = "/api/v1/projects/{project}/notebooks/{notebook}/cells/{cell}",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("notebook" = String, Path, description = "the notebook's id"),
        ("cell" = String, Path, description = "the cell's id"),
    ),
    request_body = CellSource,
    responses(
        (status = 200, description = "what was asked for", body = CellView),
        (status = 400, description = "the request is malformed or impossible", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn set_source(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, notebook, cell)): Path<(String, String, String)>,
    body: Result<Json<CellSource>, JsonRejection>,
) -> Result<Json<CellView>, ApiError> {
    let set = |CellSource { source }| ProjectEdit::SetSource {
        notebook,
        cell,
        source,
    };
    let a = edit_with(&b, &headers, project, body, set).await?;
    expect!(a, Cell).map(Json)
}

/// Removes a cell (editors).
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project}/notebooks/{notebook}/cells/{cell}",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("notebook" = String, Path, description = "the notebook's id"),
        ("cell" = String, Path, description = "the cell's id"),
    ),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn delete_cell(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, notebook, cell)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let what = ProjectEdit::DeleteCell { notebook, cell };
    edit(&b, &headers, project, what).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who wrote what, from the verified history, with the ORCID iDs a node attested.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/credits",
    tag = "projects",
    security((), ("bearer" = []), ("session" = [])),
    params(("project" = String, Path, description = "the project's id")),
    responses(
        (status = 200, description = "what was asked for", body = CreditsView),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn credits(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Json<CreditsView>, ApiError> {
    let a = read(&b, &headers, project, ProjectRead::Credits).await?;
    expect!(a, Credits).map(Json)
}

/// How much history to show.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryOptions {
    /// At most this many changes, newest first (1 to 1 000; 100 if not given).
    limit: Option<usize>,
}

/// A project's history, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/history",
    tag = "projects",
    security((), ("bearer" = []), ("session" = [])),
    params(("project" = String, Path, description = "the project's id"), HistoryOptions),
    responses(
        (status = 200, description = "what was asked for", body = Vec<ChangeView>),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn history(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    UrlQuery(opts): UrlQuery<HistoryOptions>,
) -> Result<Json<Vec<ChangeView>>, ApiError> {
    let limit = opts.limit.unwrap_or(100).clamp(1, 1000);
    let a = read(&b, &headers, project, ProjectRead::History(limit)).await?;
    expect!(a, History).map(Json)
}

/// A project's comments.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/comments",
    tag = "projects",
    security((), ("bearer" = []), ("session" = [])),
    params(("project" = String, Path, description = "the project's id")),
    responses(
        (status = 200, description = "what was asked for", body = Vec<CommentView>),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn comments(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Json<Vec<CommentView>>, ApiError> {
    let a = read(&b, &headers, project, ProjectRead::Comments).await?;
    expect!(a, Comments).map(Json)
}

/// Comments on a project, notebook or cell (editors).
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/comments",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(("project" = String, Path, description = "the project's id")),
    request_body = NewComment,
    responses(
        (status = 201, description = "made", body = CommentView),
        (status = 400, description = "the request is malformed or impossible", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn add_comment(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Result<Json<NewComment>, JsonRejection>,
) -> Result<(StatusCode, Json<CommentView>), ApiError> {
    let a = edit_with(&b, &headers, project, body, ProjectEdit::Comment).await?;
    Ok((StatusCode::CREATED, Json(expect!(a, Comment)?)))
}

/// References a dataset (editors), as a federated search shows it: the node holding it, the
/// product, and its checksum. Runs of the project's cells are placed at the member holding its
/// datasets, and their provenance names them.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/datasets",
    tag = "projects",
    security(("bearer" = []), ("session" = [])),
    params(("project" = String, Path, description = "the project's id")),
    request_body = NewDatasetRef,
    responses(
        (status = 201, description = "referenced: the project now", body = ProjectView),
        (status = 400, description = "the request is malformed", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such project that the caller may see", body = ErrorBody),
    )
)]
async fn reference_dataset(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Result<Json<NewDatasetRef>, JsonRejection>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    let a = edit_with(&b, &headers, project, body, ProjectEdit::AddDataset).await?;
    Ok((StatusCode::CREATED, Json(expect!(a, Project)?)))
}

/// An output stored beside the project, as a notebook's cells name it (`{"output_type":
/// "orrery:stored", "blake3": …}`; large outputs are kept so): the nbformat output, or for
/// `orrery:stored-list` the list of outputs stored together.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/outputs/{blake3}",
    tag = "projects",
    security((), ("bearer" = []), ("session" = [])),
    params(
        ("project" = String, Path, description = "the project's id"),
        ("blake3" = String, Path, description = "the output's BLAKE3, 64 hex digits"),
    ),
    responses(
        (status = 200, description = "the output, or the list of outputs", body = Object),
        (status = 400, description = "not a BLAKE3", body = ErrorBody),
        (status = 401, description = "a credential was sent and is not valid", body = ErrorBody),
        (status = 404, description = "no such project the caller may see, or the output is not held here (yet: it is fetched from the node that wrote it)", body = ErrorBody),
    )
)]
async fn stored_output(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path((project, blake3)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let a = read(&b, &headers, project, ProjectRead::StoredOutput(blake3)).await?;
    expect!(a, Stored).map(Json)
}
