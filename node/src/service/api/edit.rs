//! Changes to a project through the REST API: the request's ids parsed and its notebook file
//! read outside the node's loop, the edit applied as the caller's author, and the answer read.

use std::sync::{Arc, Mutex};

use orrery_crdt::{CellKind, EditError, NewCell, NotebookId, Project, Role, Visibility};
use orrery_protocol::AuthorId;
use orrery_web::api::{ProjectAnswer, ProjectEdit};
use orrery_web::{ApiError, Principal};

use super::super::NodeHandle;
use super::{
    author_of, cell_view_in, comment_view, edit_error, members, node_error, not_found,
    notebook_view, parse, project_id, title, view, visible,
};

/// What an edit made, to answer with.
enum Made {
    Project,
    Members,
    Notebook(NotebookId),
    Cell(NotebookId, orrery_crdt::CellId),
    Reimported(NotebookId, String),
    Comment(orrery_crdt::CommentId),
    Nothing,
}

/// Applies one edit as `s`; a refusal that is not the document's own is put in `refusal`.
fn apply(
    p: &mut Project,
    s: &orrery_crdt::Session,
    edit: Prepared,
    refusal: &Mutex<Option<ApiError>>,
) -> Result<Made, EditError> {
    let refuse = |e: ApiError| {
        if let Ok(mut r) = refusal.lock() {
            *r = Some(e);
        }
        EditError::Malformed("refused before editing")
    };
    let owner = p.role_of(&s.author()) == Some(Role::Owner);
    if matches!(edit, Prepared::SetMember(..) | Prepared::RemoveMember(_)) && !owner {
        // Before the document's own checks, which would tell a non-owner about the founder.
        return Err(refuse(ApiError::forbidden(
            "only the project's owners may change its members",
        )));
    }
    Ok(match edit {
        Prepared::Patch {
            title,
            description,
            visibility,
        } => {
            // Checked first, so that a change the caller may only partly make changes nothing.
            if visibility.is_some() && !owner {
                return Err(refuse(ApiError::forbidden(
                    "only the project's owners may change its visibility",
                )));
            }
            if let Some(t) = title {
                p.set_title(s, &t)?;
            }
            if let Some(d) = description {
                p.set_description(s, &d)?;
            }
            if let Some(v) = visibility {
                p.set_visibility(s, v)?;
            }
            Made::Project
        }
        Prepared::SetMember(author, role) => {
            p.set_member(s, author, role)?;
            Made::Members
        }
        Prepared::RemoveMember(author) => {
            if p.role_of(&author).is_none() {
                return Err(refuse(ApiError::not_found(format!(
                    "{author} is not a member of this project"
                ))));
            }
            p.remove_member(s, author)?;
            Made::Members
        }
        Prepared::AddNotebook(title) => Made::Notebook(p.add_notebook(s, &title)?),
        Prepared::Import(parsed, title) => match p.import_parsed(s, *parsed, &title) {
            Ok(nb) => Made::Notebook(nb),
            Err(orrery_crdt::nbformat::NbformatError::Edit(e)) => return Err(e),
            Err(e) => return Err(refuse(ApiError::invalid(e.to_string()))),
        },
        Prepared::AddCell {
            notebook,
            kind,
            source,
            index,
        } => {
            let len = p.cell_ids(&notebook)?.len();
            let at = index.unwrap_or(len);
            if at > len {
                return Err(refuse(ApiError::invalid(format!(
                    "index {at} is past the end of the notebook ({len} cells)"
                ))));
            }
            let cell = p.insert_cell(s, &notebook, at, NewCell::new(kind, &source))?;
            Made::Cell(notebook, cell)
        }
        Prepared::SetSource {
            notebook,
            cell,
            source,
        } => {
            p.set_source(s, &notebook, &cell, &source)?;
            Made::Cell(notebook, cell)
        }
        Prepared::DeleteCell { notebook, cell } => {
            p.delete_cell(s, &notebook, &cell)?;
            Made::Nothing
        }
        Prepared::MoveCell {
            notebook,
            cell,
            index,
        } => {
            let len = p.cell_ids(&notebook)?.len();
            if index >= len {
                return Err(refuse(ApiError::invalid(format!(
                    "index {index} is past the last place ({} in a notebook of {len} cells)",
                    len.saturating_sub(1)
                ))));
            }
            p.move_cell(s, &notebook, &cell, index)?;
            Made::Notebook(notebook)
        }
        Prepared::Reimport { notebook, file } => match p.update_from_ipynb(s, &notebook, &file) {
            Ok(summary) => Made::Reimported(notebook, summary.to_string()),
            Err(orrery_crdt::nbformat::NbformatError::Edit(e)) => return Err(e),
            Err(e) => return Err(refuse(ApiError::invalid(e.to_string()))),
        },
        Prepared::Comment { target, text } => Made::Comment(p.comment(s, &target, &text)?),
        Prepared::AddDataset {
            node,
            product,
            checksum,
        } => {
            p.add_dataset_ref(s, &node, &product, &checksum)?;
            Made::Project
        }
    })
}

/// An edit with its ids parsed and its notebook file read, ready for the node's loop.
enum Prepared {
    Patch {
        title: Option<String>,
        description: Option<String>,
        visibility: Option<Visibility>,
    },
    SetMember(AuthorId, Role),
    RemoveMember(AuthorId),
    AddNotebook(String),
    Import(Box<orrery_crdt::nbformat::ParsedNotebook>, String),
    AddCell {
        notebook: NotebookId,
        kind: CellKind,
        source: String,
        index: Option<usize>,
    },
    SetSource {
        notebook: NotebookId,
        cell: orrery_crdt::CellId,
        source: String,
    },
    DeleteCell {
        notebook: NotebookId,
        cell: orrery_crdt::CellId,
    },
    MoveCell {
        notebook: NotebookId,
        cell: orrery_crdt::CellId,
        index: usize,
    },
    Reimport {
        notebook: NotebookId,
        file: Vec<u8>,
    },
    Comment {
        target: String,
        text: String,
    },
    AddDataset {
        node: String,
        product: String,
        checksum: String,
    },
}

/// Longest comment accepted, in characters.
const MAX_COMMENT: usize = 10_000;

fn prepare(edit: ProjectEdit) -> Result<Prepared, ApiError> {
    Ok(match edit {
        ProjectEdit::Patch(p) => Prepared::Patch {
            title: p
                .title
                .as_deref()
                .map(title)
                .transpose()?
                .map(str::to_owned),
            description: p.description,
            visibility: p
                .visibility
                .as_deref()
                .map(|v| parse("visibility (public, shared, restricted)", v))
                .transpose()?,
        },
        ProjectEdit::SetMember { author, role } => Prepared::SetMember(
            parse("author key", &author)?,
            parse("role (viewer, editor, owner)", &role)?,
        ),
        ProjectEdit::RemoveMember(author) => Prepared::RemoveMember(parse("author key", &author)?),
        ProjectEdit::AddNotebook(n) => Prepared::AddNotebook(title(&n.title)?.to_owned()),
        ProjectEdit::Import(file) => {
            let t = title(&file.title)?.to_owned();
            let bytes =
                serde_json::to_vec(&file.notebook).map_err(|e| ApiError::invalid(e.to_string()))?;
            let parsed = orrery_crdt::nbformat::parse(&bytes).map_err(|e| {
                ApiError::invalid(format!("not a notebook this node can import: {e}"))
            })?;
            Prepared::Import(Box::new(parsed), t)
        }
        ProjectEdit::AddCell { notebook, cell } => Prepared::AddCell {
            notebook: parse("notebook id", &notebook)?,
            kind: match cell.kind.as_deref() {
                None => CellKind::Code,
                Some(k) => parse("cell kind (code, markdown, raw)", k)?,
            },
            source: cell.source,
            index: cell.index,
        },
        ProjectEdit::SetSource {
            notebook,
            cell,
            source,
        } => Prepared::SetSource {
            notebook: parse("notebook id", &notebook)?,
            cell: parse("cell id", &cell)?,
            source,
        },
        ProjectEdit::DeleteCell { notebook, cell } => Prepared::DeleteCell {
            notebook: parse("notebook id", &notebook)?,
            cell: parse("cell id", &cell)?,
        },
        ProjectEdit::AddDataset(d) => {
            let checksum = d.checksum.to_ascii_lowercase();
            if checksum.len() != 64 || !checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::invalid(
                    "a dataset's checksum is its BLAKE3 as 64 hex digits (a federated search shows it)",
                ));
            }
            let node: orrery_protocol::NodeId = parse("node id", &d.node)?;
            let product = d.product.trim();
            if product.is_empty() || product.len() > orrery_protocol::limits::MAX_NAME_BYTES {
                return Err(ApiError::invalid("a product id is `collection/path`"));
            }
            Prepared::AddDataset {
                node: node.to_string(),
                product: product.to_owned(),
                checksum,
            }
        }
        // Taken before any edit is prepared (`edit` runs it); never an edit of its own.
        ProjectEdit::Kernel { .. } => {
            return Err(ApiError::unavailable(
                "a kernel's interrupt or restart is not an edit of the document",
            ));
        }
        ProjectEdit::MoveCell {
            notebook,
            cell,
            index,
        } => Prepared::MoveCell {
            notebook: parse("notebook id", &notebook)?,
            cell: parse("cell id", &cell)?,
            index,
        },
        ProjectEdit::Reimport { notebook, file } => Prepared::Reimport {
            notebook: parse("notebook id", &notebook)?,
            file: serde_json::to_vec(&file).map_err(|e| ApiError::invalid(e.to_string()))?,
        },
        ProjectEdit::Comment(c) => {
            let text = c.text.trim();
            if text.is_empty() || text.chars().count() > MAX_COMMENT {
                return Err(ApiError::invalid(format!(
                    "a comment must be 1 to {MAX_COMMENT} characters"
                )));
            }
            Prepared::Comment {
                target: c.target,
                text: text.to_owned(),
            }
        }
    })
}

/// Changes a project as `who`, and answers with what changed.
pub(in crate::service) async fn edit(
    node: &NodeHandle,
    who: Principal,
    id: String,
    what: ProjectEdit,
) -> Result<ProjectAnswer, ApiError> {
    let id = project_id(&id)?;
    let author = author_of(&who)?;
    let seen = node
        .read(id, move |p| p.is_some_and(|p| visible(p, Some(&author))))
        .await
        .map_err(node_error)?;
    if !seen {
        return Err(not_found(id));
    }
    if let ProjectEdit::Kernel { notebook, restart } = what {
        return super::run::kernel(node, author, id, notebook, restart).await;
    }
    let prepared = prepare(what)?;
    let made = Arc::new(Mutex::new(None));
    let refusal = Arc::new(Mutex::new(None));
    let (m, r) = (made.clone(), refusal.clone());
    let edited = node
        .edit(id, author, move |p, s| {
            let out = apply(p, s, prepared, &r)?;
            if let Ok(mut slot) = m.lock() {
                *slot = Some(out);
            }
            Ok(())
        })
        .await;
    if let Err(e) = edited {
        if let Some(refused) = refusal.lock().ok().and_then(|mut r| r.take()) {
            return Err(refused);
        }
        return Err(node_error(e));
    }
    let made = made
        .lock()
        .ok()
        .and_then(|mut m| m.take())
        .ok_or_else(|| ApiError::unavailable("the edit was made but its result was lost"))?;
    let answer = node
        .read(id, move |p| {
            let p = p.ok_or_else(|| not_found(id))?;
            Ok::<_, ApiError>(match made {
                Made::Project => ProjectAnswer::Project(view(p, Some(&author))),
                Made::Members => ProjectAnswer::Members(members(p)),
                Made::Notebook(nb) => ProjectAnswer::Notebook(notebook_view(
                    p,
                    p.notebook(&nb).map_err(|e| edit_error(&e))?,
                )),
                Made::Reimported(nb, summary) => {
                    ProjectAnswer::Reimported(orrery_web::api::Reimported {
                        summary,
                        notebook: notebook_view(p, p.notebook(&nb).map_err(|e| edit_error(&e))?),
                    })
                }
                Made::Cell(nb, cell) => ProjectAnswer::Cell(cell_view_in(
                    p,
                    &nb,
                    p.cell(&nb, &cell).map_err(|e| edit_error(&e))?,
                )),
                Made::Comment(c) => p
                    .comments()
                    .into_iter()
                    .find(|x| x.id == c)
                    .map(|c| ProjectAnswer::Comment(comment_view(c)))
                    .ok_or_else(|| {
                        ApiError::unavailable("the comment was made but is not found")
                    })?,
                Made::Nothing => ProjectAnswer::Done,
            })
        })
        .await
        .map_err(node_error)??;
    Ok(super::named(node, answer).await)
}
