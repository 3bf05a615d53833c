//! The REST API's projects over the running node: who may see and change what.
//!
//! A project is seen by anyone when it is public, else only by its members; one the caller may
//! not see is answered as not found, so that its existence is not told. Changes are made as the
//! caller's author key, and the project's own rules decide what their role allows (the same
//! rules every other node applies when the change arrives).

use std::collections::BTreeMap;

use orrery_crdt::{EditError, Notebook, NotebookId, Project, Visibility};
use orrery_protocol::{AuthorId, ProjectId};
use orrery_web::api::{
    CellAuthorship, CellView, ChangeView, CommentView, CreditsView, NewProject, NotebookAuthorship,
    NotebookCreditView, NotebookSummary, NotebookView, ProjectAnswer, ProjectMember, ProjectRead,
    ProjectSummary, ProjectView, ShareView, SpanView,
};
use orrery_web::{ApiError, Principal};

use super::{NodeError, NodeHandle};
use crate::home::Home;

mod edit;
pub(super) mod jobs;
mod live;
pub(super) mod run;
pub(super) use edit::edit;
pub(super) use live::open as live;

/// Longest title or notebook title accepted.
const MAX_TITLE: usize = 200;

fn author_of(who: &Principal) -> Result<AuthorId, ApiError> {
    who.author
        .parse()
        .map_err(|_| ApiError::unavailable("the user's author key is not readable"))
}

fn project_id(text: &str) -> Result<ProjectId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no project `{text}` here")))
}

fn not_found(id: ProjectId) -> ApiError {
    ApiError::not_found(format!(
        "no project {id} that you may see on this node (sign in, or ask an owner to add you)"
    ))
}

fn parse<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, ApiError> {
    text.parse()
        .map_err(|_| ApiError::invalid(format!("`{text}` is not a valid {what}")))
}

fn title(text: &str) -> Result<&str, ApiError> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > MAX_TITLE {
        return Err(ApiError::invalid(format!(
            "a title must be 1 to {MAX_TITLE} characters"
        )));
    }
    Ok(t)
}

fn visible(p: &Project, who: Option<&AuthorId>) -> bool {
    p.visibility() == Visibility::Public || who.is_some_and(|a| p.role_of(a).is_some())
}

/// An edit's refusal as the API answers it.
fn edit_error(e: &EditError) -> ApiError {
    match e {
        EditError::NotPermitted { .. } => ApiError::forbidden(e.to_string()),
        EditError::NoNotebook(_) | EditError::NoCell { .. } => ApiError::not_found(e.to_string()),
        EditError::LastOwner(_) | EditError::Founder(_) => ApiError::conflict(e.to_string()),
        EditError::OutOfRange { .. } | EditError::DuplicateId(_) => {
            ApiError::invalid(e.to_string())
        }
        _ => ApiError::unavailable(e.to_string()),
    }
}

fn node_error(e: NodeError) -> ApiError {
    match e {
        NodeError::NoProject(id) => not_found(id),
        NodeError::NoAuthor(_) => {
            ApiError::unavailable("your author key is not on this node; ask its operator")
        }
        NodeError::Edit(e) => edit_error(&e),
        e => ApiError::unavailable(e.to_string()),
    }
}

fn names(p: &Project) -> impl Fn(&AuthorId) -> Option<String> {
    let profiles = p.profiles();
    move |a| profiles.get(a).map(|p| p.name.clone())
}

fn summary(p: &Project, who: Option<&AuthorId>) -> ProjectSummary {
    ProjectSummary {
        id: p.id().to_string(),
        title: p.title(),
        visibility: p.visibility().as_str().into(),
        role: who.and_then(|a| p.role_of(a)).map(|r| r.as_str().into()),
        notebooks: p.notebook_ids().len(),
    }
}

fn members(p: &Project) -> Vec<ProjectMember> {
    let name = names(p);
    p.members()
        .into_iter()
        .map(|m| ProjectMember {
            author: m.author.to_string(),
            name: name(&m.author),
            role: m.role.as_str().into(),
        })
        .collect()
}

fn view(p: &Project, who: Option<&AuthorId>) -> ProjectView {
    ProjectView {
        id: p.id().to_string(),
        title: p.title(),
        description: p.description(),
        visibility: p.visibility().as_str().into(),
        created_at: p.created_at(),
        role: who.and_then(|a| p.role_of(a)).map(|r| r.as_str().into()),
        members: members(p),
        notebooks: p
            .notebook_ids()
            .into_iter()
            .map(|(id, title)| NotebookSummary {
                id: id.to_string(),
                title,
            })
            .collect(),
        heads: p.heads().iter().map(ToString::to_string).collect(),
        datasets: p
            .datasets()
            .into_iter()
            .map(|d| orrery_web::api::DatasetRefView {
                id: d.id.to_string(),
                node: d.node,
                node_name: None,
                product: d.dataset,
                checksum: d.checksum,
                added_by: d.added_by.map(|a| a.to_string()),
            })
            .collect(),
        environment: p
            .pinned_environment()
            .map(|_| super::runs::environment_of(p).name()),
    }
}

/// A cell as the API shows it, without its run record.
fn cell_view(c: orrery_crdt::Cell) -> CellView {
    CellView {
        id: c.id.to_string(),
        kind: c.kind.as_str().into(),
        source: c.source,
        outputs: c.outputs,
        execution_count: c.execution_count,
        run: None,
    }
}

/// A cell of `nb` in `p` as the API shows it, with the checked record of its last run.
fn cell_view_in(p: &Project, nb: &orrery_crdt::NotebookId, c: orrery_crdt::Cell) -> CellView {
    let run = p.run_record(nb, &c.id).map(|r| {
        let pr = r.provenance;
        let source_current = *blake3::hash(c.source.as_bytes()).as_bytes() == pr.source_blake3;
        orrery_web::api::RunRecordView {
            node: r.node.to_string(),
            node_name: None,
            requester: r.requester.to_string(),
            status: match pr.status {
                orrery_protocol::run::RunStatus::Ok => "ok".into(),
                orrery_protocol::run::RunStatus::Error(e) => e,
            },
            started_at_ms: pr.started_at_ms,
            ended_at_ms: pr.ended_at_ms,
            environment: pr.environment,
            environment_lock: pr.environment_lock,
            source_blake3: hex::encode(pr.source_blake3),
            source_current,
            outputs_current: r.outputs_current,
            datasets: pr
                .datasets
                .into_iter()
                .map(|d| orrery_web::api::DatasetReadView {
                    node: d.node.to_string(),
                    product: d.product,
                    blake3: hex::encode(d.blake3),
                })
                .collect(),
        }
    });
    CellView {
        run,
        ..cell_view(c)
    }
}

fn notebook_view(p: &Project, nb: Notebook) -> NotebookView {
    NotebookView {
        id: nb.id.to_string(),
        title: nb.title,
        cells: nb
            .cells
            .into_iter()
            .map(|c| cell_view_in(p, &nb.id, c))
            .collect(),
    }
}

fn credits(
    p: &Project,
    orcids: &BTreeMap<AuthorId, crate::citation::VerifiedOrcid>,
) -> CreditsView {
    let name = names(p);
    let shares = |shares: &[orrery_crdt::credit::Share]| -> Vec<ShareView> {
        shares
            .iter()
            .map(|s| ShareView {
                author: s.author.to_string(),
                name: name(&s.author),
                chars: s.chars,
                changes: s.changes,
                orcid_verified: orcids.get(&s.author).map(|v| v.orcid.to_string()),
            })
            .collect()
    };
    let c = p.credits();
    CreditsView {
        authors: shares(&c.shares),
        notebooks: c
            .notebooks
            .iter()
            .map(|nb| NotebookCreditView {
                notebook: nb.notebook.to_string(),
                title: nb.title.clone(),
                authors: shares(&nb.shares),
            })
            .collect(),
    }
}

fn comment_view(c: orrery_crdt::Comment) -> CommentView {
    CommentView {
        id: c.id.to_string(),
        target: c.target,
        text: c.text,
        author: c.author.map(|a| a.to_string()),
        created_at: c.created_at,
    }
}

/// The projects `who` may see.
pub(super) async fn projects(
    node: &NodeHandle,
    who: Option<Principal>,
) -> Result<Vec<ProjectSummary>, ApiError> {
    let me = who.as_ref().map(author_of).transpose()?;
    let mut list = node
        .read_all(move |all| {
            all.filter(|p| p.founder().is_some() && visible(p, me.as_ref()))
                .map(|p| summary(p, me.as_ref()))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(node_error)?;
    list.sort_by(|a, b| a.title.cmp(&b.title).then_with(|| a.id.cmp(&b.id)));
    Ok(list)
}

/// Creates a project founded by `who`.
pub(super) async fn create(
    node: &NodeHandle,
    who: Principal,
    new: NewProject,
) -> Result<ProjectSummary, ApiError> {
    let author = author_of(&who)?;
    let t = title(&new.title)?.to_owned();
    let visibility: Visibility = match new.visibility.as_deref() {
        None => Visibility::Shared,
        Some(v) => parse("visibility (public, shared, restricted)", v)?,
    };
    let id = node
        .create_project(author, &t, visibility)
        .await
        .map_err(node_error)?;
    if let Some(text) = new.description.filter(|d| !d.trim().is_empty()) {
        node.edit(id, author, move |p, s| p.set_description(s, &text))
            .await
            .map_err(node_error)?;
    }
    node.read(id, move |p| p.map(|p| summary(p, Some(&author))))
        .await
        .map_err(node_error)?
        .ok_or_else(|| not_found(id))
}

/// `answer` with the computing nodes of its cells' run records named (a member by the name it
/// joined under, this node by its own).
pub(super) async fn named(node: &NodeHandle, mut answer: ProjectAnswer) -> ProjectAnswer {
    fn runs<'a>(
        cells: impl Iterator<Item = &'a mut CellView>,
    ) -> Vec<(&'a String, &'a mut Option<String>)> {
        cells
            .filter_map(|c| c.run.as_mut())
            .map(|r| (&r.node, &mut r.node_name))
            .collect()
    }
    // Every node id with the name it should get.
    let slots = match &mut answer {
        ProjectAnswer::Notebook(nb) => runs(nb.cells.iter_mut()),
        ProjectAnswer::Reimported(r) => runs(r.notebook.cells.iter_mut()),
        ProjectAnswer::Cell(c) => runs(std::iter::once(c)),
        ProjectAnswer::Project(p) => p
            .datasets
            .iter_mut()
            .map(|d| (&d.node, &mut d.node_name))
            .collect(),
        _ => Vec::new(),
    };
    if slots.is_empty() {
        return answer;
    }
    let names = node.node_names().await;
    for (id, name) in slots {
        *name = id.parse().ok().and_then(|n| names.get(&n).cloned());
    }
    answer
}

/// The output (or list of outputs) stored in `blobs` under the BLAKE3 `hex`.
fn stored_output(
    blobs: &crate::blobs::BlobStore,
    hex: &str,
) -> Result<serde_json::Value, ApiError> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex, &mut hash)
        .map_err(|_| ApiError::invalid("a stored output is named by its BLAKE3, 64 hex digits"))?;
    let missing = || {
        ApiError::not_found(
            "this node does not hold that output (yet: it fetches outputs from the node that wrote them)",
        )
    };
    let id = blobs.by_hash(hash).ok_or_else(missing)?;
    let bytes = blobs.get(&id).ok_or_else(missing)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::unavailable(format!("a stored output does not parse: {e}")))
}

/// What a read needs from outside the project: the nodes whose ORCID attestations count.
pub(super) struct Trust {
    pub(super) me: orrery_protocol::NodeId,
    pub(super) membership: Option<orrery_protocol::federation::Membership>,
}

/// Reads part of a project `who` may see.
pub(super) async fn read(
    node: &NodeHandle,
    home: &Home,
    who: Option<Principal>,
    id: String,
    what: ProjectRead,
) -> Result<ProjectAnswer, ApiError> {
    let id = project_id(&id)?;
    let me = who.as_ref().map(author_of).transpose()?;
    let trust = match what {
        ProjectRead::Credits => {
            let home = home.clone();
            let membership = tokio::task::spawn_blocking(move || {
                crate::store::Store::open(&home.database()).and_then(|s| s.membership())
            })
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
            Some(Trust {
                me: node.id(),
                membership,
            })
        }
        _ => None,
    };
    let blobs = crate::blobs::BlobStore::new(home.blobs()).for_project(id);
    // A stored output is read off the node's loop: it may be tens of megabytes.
    if let ProjectRead::StoredOutput(hex) = what {
        let seen = node
            .read(id, move |p| {
                p.is_some_and(|p| p.founder().is_some() && visible(p, me.as_ref()))
            })
            .await
            .map_err(node_error)?;
        if !seen {
            return Err(not_found(id));
        }
        return tokio::task::spawn_blocking(move || stored_output(&blobs, &hex))
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?
            .map(ProjectAnswer::Stored);
    }
    let answer = node
        .read(id, move |p| {
            let p = p
                .filter(|p| p.founder().is_some() && visible(p, me.as_ref()))
                .ok_or_else(|| not_found(id))?;
            Ok::<_, ApiError>(match what {
                ProjectRead::Project => ProjectAnswer::Project(view(p, me.as_ref())),
                ProjectRead::Members => ProjectAnswer::Members(members(p)),
                ProjectRead::Notebook(nb) => {
                    let nb: NotebookId = parse("notebook id", &nb)?;
                    ProjectAnswer::Notebook(notebook_view(
                        p,
                        p.notebook(&nb).map_err(|e| edit_error(&e))?,
                    ))
                }
                ProjectRead::Ipynb(nb) => {
                    let nb: NotebookId = parse("notebook id", &nb)?;
                    let text = p
                        .export_ipynb_as(&nb, &blobs, true)
                        .map_err(|e| edit_error(&e))?;
                    ProjectAnswer::Ipynb(
                        serde_json::from_str(&text)
                            .map_err(|e| ApiError::unavailable(e.to_string()))?,
                    )
                }
                ProjectRead::Authorship(nb) => {
                    let nb: NotebookId = parse("notebook id", &nb)?;
                    let cells = p
                        .cell_ids(&nb)
                        .map_err(|e| edit_error(&e))?
                        .into_iter()
                        .map(|cell| {
                            let spans = p.authorship(&nb, &cell).map_err(|e| edit_error(&e))?;
                            Ok(CellAuthorship {
                                cell: cell.to_string(),
                                spans: spans
                                    .into_iter()
                                    .map(|s| SpanView {
                                        author: s.author.map(|a| a.to_string()),
                                        text: s.text,
                                    })
                                    .collect(),
                            })
                        })
                        .collect::<Result<Vec<_>, ApiError>>()?;
                    ProjectAnswer::Authorship(NotebookAuthorship {
                        notebook: nb.to_string(),
                        cells,
                    })
                }
                ProjectRead::Credits => {
                    let orcids = trust.map_or_else(BTreeMap::new, |t| {
                        crate::citation::verified_orcids(p, t.membership.as_ref(), t.me)
                    });
                    ProjectAnswer::Credits(credits(p, &orcids))
                }
                ProjectRead::History(limit) => ProjectAnswer::History(
                    p.log()
                        .into_iter()
                        .rev()
                        .take(limit)
                        .map(|e| ChangeView {
                            hash: e.hash.to_string(),
                            author: e.author.map(|a| a.to_string()),
                            time: e.time,
                            seq: e.seq,
                            ops: e.ops,
                        })
                        .collect(),
                ),
                ProjectRead::Comments => {
                    ProjectAnswer::Comments(p.comments().into_iter().map(comment_view).collect())
                }
                ProjectRead::StoredOutput(_) => {
                    return Err(ApiError::unavailable("a stored output is read apart"));
                }
            })
        })
        .await
        .map_err(node_error)??;
    Ok(named(node, answer).await)
}
