//! `orrery project ...`: create, inspect and edit projects.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use orrery_crdt::{Batch, EditError, NotebookId, Project, Role, Session, Visibility};
use orrery_protocol::{AuthorId, AuthorProfile};

use super::Ctx;
use super::render::{table, time};
use crate::citation::citation_cff;
use crate::home::read_key;

/// Project commands.
#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    /// Create a project owned by an author of this node.
    New {
        /// The project's title.
        title: String,
        /// Who may see it.
        #[arg(long, default_value = "shared", value_parser = parse_visibility)]
        visibility: Visibility,
        /// A short description.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        who: As,
    },
    /// List the projects on this node.
    List,
    /// Show a project: members, notebooks, datasets, comments.
    Show {
        /// Project id (or a unique prefix) or exact title.
        project: String,
    },
    /// Accept the changes held because their author was removed or demoted concurrently with
    /// them (editors and owners other than their author): they take effect on every replica.
    Accept {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// Accept only the held changes of this author (an author id).
        #[arg(long, value_name = "AUTHOR_ID")]
        by: Option<AuthorId>,
        #[command(flatten)]
        who: As,
    },
    /// Show a project's history, newest first.
    Log {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// Show at most this many changes.
        #[arg(long, default_value_t = 30)]
        limit: usize,
    },
    /// Show who wrote what: per project, notebook and cell, from the verified history.
    Credits {
        /// Project id (or a unique prefix) or exact title.
        project: String,
    },
    /// Show the provenance of a cell's outputs computed at the data: which node ran it, for
    /// whom, on what state, environment and datasets, and how it ended.
    Provenance {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// Notebook id or title.
        notebook: String,
        /// Cell id (or a unique prefix).
        cell: String,
    },
    /// Run code cells at the data, through the running node: in a kernel of your lab there
    /// (kept between runs, as a notebook's session keeps it). Each cell's outputs are written
    /// into the project signed by the node, with your signed request and the run's provenance.
    Run {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// Notebook id or title.
        notebook: String,
        /// Cells (ids or unique prefixes), run in this order; every code cell if none.
        cells: Vec<String>,
        /// Run as this user of the node (by default, the user of its default author).
        #[arg(long)]
        user: Option<String>,
    },
    /// Reference a dataset found in the federation (a product `collection/path`), through the
    /// running node: the project's cells then run at the node holding it.
    Reference {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// The product, as a federated search shows it (`collection/path`).
        product: String,
        /// The holder to reference (a node's name or id prefix), when several hold it.
        #[arg(long)]
        from: Option<String>,
        /// Reference as this user of the node (by default, the user of its default author).
        #[arg(long)]
        user: Option<String>,
    },
    /// Write a CITATION.cff listing the project's authors.
    Cite {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Import a Jupyter notebook (.ipynb, nbformat 4) as a new notebook of the project, or,
    /// with --into, apply a newer version of the file to the notebook it was imported as.
    ///
    /// Every plain import makes a new notebook, even of a file imported before. With --into,
    /// only the difference is applied: cells are matched by cell id (or, in files without ids,
    /// by position and content), sources are edited in place, and cells are added, removed and
    /// moved as such, so edits others made meanwhile survive. A file that matches the notebook
    /// changes nothing.
    ImportIpynb {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// The notebook file.
        file: PathBuf,
        /// The new notebook's title (default: the file name).
        #[arg(long)]
        title: Option<String>,
        /// Update this notebook (id, a unique prefix, or exact title) from the file instead.
        #[arg(long, value_name = "NOTEBOOK", conflicts_with = "title")]
        into: Option<String>,
        #[command(flatten)]
        who: As,
    },
    /// Export a notebook as a Jupyter notebook file (nbformat 4.5).
    ExportIpynb {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// Notebook id (or a unique prefix) or exact title.
        notebook: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Leave out `metadata.orrery` (where the file came from in the project's history), for
        /// publishing. Brought back with `import-ipynb --into`, such a file is taken as a version
        /// of the imported file, not of this export.
        #[arg(long)]
        clean: bool,
    },
    /// Add, remove or change members (owners only).
    #[command(subcommand)]
    Member(MemberCmd),
    /// Pin the project's lab environment (owners only): its package lock is kept in the
    /// project, replicated and preserved with it, and every run of its cells, here or at
    /// another node, uses it instead of that node's default.
    PinEnvironment {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// The lock to pin (a pip requirements file of `name==version` lines); by default the
        /// lock of this node's `jupyter` environment.
        #[arg(long, conflicts_with = "unpin")]
        lock: Option<PathBuf>,
        /// The image nodes whose labs run from images (Kubernetes) start instead, by digest
        /// (`registry/repo@sha256:<64 hex digits>`).
        #[arg(long, conflicts_with = "unpin")]
        image: Option<String>,
        /// Unpin: runs use each node's default environment again.
        #[arg(long)]
        unpin: bool,
        #[command(flatten)]
        who: As,
    },
    /// Append each line of standard input to a cell, acknowledging each edit once it is durable.
    Append {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// Notebook id (or a unique prefix) or exact title.
        notebook: String,
        /// Cell id (or a unique prefix).
        cell: String,
        #[command(flatten)]
        who: As,
    },
    /// Comment on the project, a notebook or a cell.
    Comment {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// The comment.
        text: String,
        /// What it is about: `project`, `notebook/<id>` or `cell/<notebook>/<cell>`.
        #[arg(long, default_value = "project")]
        on: String,
        #[command(flatten)]
        who: As,
    },
}

/// Member commands.
#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Add a member, or change their role.
    Add {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// The member's author id (64 hex digits).
        author: AuthorId,
        /// Their role: owner, editor or viewer.
        #[arg(long, default_value = "editor", value_parser = parse_role)]
        role: Role,
        #[command(flatten)]
        who: As,
    },
    /// Remove a member.
    Remove {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// The member's author id.
        author: AuthorId,
        #[command(flatten)]
        who: As,
    },
}

/// Which local author acts.
#[derive(Debug, Args)]
pub struct As {
    /// Act as this local author (name or id prefix; default: the node's default author).
    #[arg(long = "as", value_name = "AUTHOR")]
    pub acting_as: Option<String>,
}

fn parse_visibility(s: &str) -> Result<Visibility, String> {
    s.parse()
        .map_err(|e: orrery_crdt::schema::ParseEnumError| e.to_string())
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
        .map_err(|e: orrery_crdt::schema::ParseEnumError| e.to_string())
}

pub(super) fn run(ctx: &mut Ctx, cmd: ProjectCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        ProjectCmd::New {
            title,
            visibility,
            description,
            who,
        } => {
            let (session, profile) = session(ctx, &who)?;
            let (mut project, mut batch) = Project::create(&session, &title, visibility)?;
            publish_author(ctx, &mut project, &session, &profile)?;
            if let Some(d) = description {
                project.set_description(&session, &d)?;
            }
            let rest = project.seal(&session);
            batch.changes.extend(rest.changes);
            batch.seals.extend(rest.seals);
            ctx.store.create_project(&project, &batch)?;
            writeln!(out, "project id: {}", project.id())?;
            Ok(())
        }
        ProjectCmd::List => list(ctx, out),
        ProjectCmd::Show { project } => show(ctx, &project, out),
        ProjectCmd::Accept { project, by, who } => {
            let (session, _) = session(ctx, &who)?;
            let mut p = load(ctx, &project)?;
            let hashes: Vec<orrery_protocol::ChangeHash> = p
                .held()
                .into_iter()
                .filter(|(_, author)| by.is_none_or(|b| b == *author))
                .map(|(h, _)| h)
                .collect();
            if hashes.is_empty() {
                writeln!(out, "no held changes to accept")?;
                return Ok(());
            }
            let accepted = p.accept_held(&session, &hashes)?;
            commit(ctx, &mut p, &session)?;
            writeln!(out, "accepted {accepted} held changes")?;
            Ok(())
        }
        ProjectCmd::Log { project, limit } => log(ctx, &project, limit, out),
        ProjectCmd::Credits { project } => credits(ctx, &project, out),
        ProjectCmd::Provenance {
            project,
            notebook,
            cell,
        } => {
            let p = load(ctx, &project)?;
            let nb = resolve_notebook(&p, &notebook)?;
            let cell = resolve_cell(&p, &nb, &cell)?;
            let name = namer(ctx, &p)?;
            super::provenance::provenance(ctx, &p, &nb, &cell, &name, out)
        }
        ProjectCmd::Run {
            project,
            notebook,
            cells,
            user,
        } => super::run::run(ctx, &project, &notebook, &cells, user.as_deref(), out),
        ProjectCmd::Reference {
            project,
            product,
            from,
            user,
        } => super::reference::reference(
            ctx,
            &project,
            &product,
            from.as_deref(),
            user.as_deref(),
            out,
        ),
        ProjectCmd::Cite { project, output } => {
            let p = load(ctx, &project)?;
            let text = citation_cff(&p, &local_profiles(ctx)?, &trusted_orcids(ctx, &p)?);
            emit(out, output, &text)
        }
        ProjectCmd::ImportIpynb {
            project,
            file,
            title,
            into,
            who,
        } => import_ipynb(ctx, &project, &file, title, into.as_deref(), &who, out),
        ProjectCmd::ExportIpynb {
            project,
            notebook,
            output,
            clean,
        } => {
            let p = load(ctx, &project)?;
            let nb = resolve_notebook(&p, &notebook)?;
            let blobs = crate::blobs::BlobStore::new(ctx.home.blobs()).for_project(p.id());
            let json = p
                .export_ipynb_as(&nb, &blobs, !clean)
                .map_err(|e| match e {
                    EditError::Blob(b) => anyhow::anyhow!("{}", blob_advice(&b)),
                    e => e.into(),
                })?;
            emit(out, output, &json)
        }
        ProjectCmd::PinEnvironment {
            project,
            lock,
            image,
            unpin,
            who,
        } => super::environment::pin(ctx, &project, lock.as_deref(), image, unpin, &who, out),
        ProjectCmd::Member(MemberCmd::Add {
            project,
            author,
            role,
            who,
        }) => {
            let mut p = load(ctx, &project)?;
            let (session, _) = session(ctx, &who)?;
            p.set_member(&session, author, role)?;
            commit(ctx, &mut p, &session)?;
            writeln!(out, "{author} is now {role} of {}", p.title())?;
            Ok(())
        }
        ProjectCmd::Member(MemberCmd::Remove {
            project,
            author,
            who,
        }) => {
            let mut p = load(ctx, &project)?;
            let (session, _) = session(ctx, &who)?;
            p.remove_member(&session, author)?;
            commit(ctx, &mut p, &session)?;
            writeln!(out, "{author} is no longer a member of {}", p.title())?;
            Ok(())
        }
        ProjectCmd::Append {
            project,
            notebook,
            cell,
            who,
        } => append(ctx, &project, &notebook, &cell, &who, out),
        ProjectCmd::Comment {
            project,
            text,
            on,
            who,
        } => {
            let mut p = load(ctx, &project)?;
            let (session, profile) = session(ctx, &who)?;
            let id = p.comment(&session, &on, &text)?;
            publish_author(ctx, &mut p, &session, &profile)?;
            commit(ctx, &mut p, &session)?;
            writeln!(out, "comment {id} added")?;
            Ok(())
        }
    }
}

/// `import-ipynb`: a new notebook from the file, or, with `into`, that notebook updated to it.
fn import_ipynb(
    ctx: &mut Ctx,
    project: &str,
    file: &Path,
    title: Option<String>,
    into: Option<&str>,
    who: &As,
    out: &mut dyn Write,
) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut p = load(ctx, project)?;
    let (session, profile) = session(ctx, who)?;
    if let Some(into) = into {
        let nb = resolve_notebook(&p, into)?;
        let summary = p
            .update_from_ipynb(&session, &nb, &bytes)
            .with_context(|| format!("updating notebook {nb} from {}", file.display()))?;
        if summary.is_unchanged() {
            writeln!(out, "unchanged: the notebook already matches the file")?;
            return Ok(());
        }
        publish_author(ctx, &mut p, &session, &profile)?;
        commit(ctx, &mut p, &session)?;
        writeln!(out, "updated notebook {nb}: {summary}")?;
        return Ok(());
    }
    let title = title.unwrap_or_else(|| {
        file.file_stem()
            .map_or("notebook".into(), |s| s.to_string_lossy().into_owned())
    });
    let parsed = orrery_crdt::nbformat::parse(&bytes)
        .with_context(|| format!("importing {}", file.display()))?;
    let repairs = parsed.repairs.clone();
    let nb = p
        .import_parsed(&session, parsed, &title)
        .with_context(|| format!("importing {}", file.display()))?;
    publish_author(ctx, &mut p, &session, &profile)?;
    commit(ctx, &mut p, &session)?;
    let cells = p.cell_ids(&nb)?.len();
    writeln!(
        out,
        "imported {} as notebook {nb} ({cells} cells)",
        file.display()
    )?;
    for r in &repairs {
        writeln!(
            out,
            "  cell {} {}: {}; it is now {}",
            r.index + 1,
            r.was
                .as_deref()
                .map_or_else(String::new, |w| format!("(id {w:?})")),
            r.why,
            r.now
        )?;
    }
    Ok(())
}

/// Starts an editing session as a local author.
pub(super) fn session(
    ctx: &Ctx,
    who: &As,
) -> Result<(
    Session,
    orrery_protocol::Signed<AuthorProfile, orrery_protocol::Verified>,
)> {
    let author = ctx.store.author(who.acting_as.as_deref()).map_err(|e| {
        anyhow::anyhow!("{e}; create one with `orrery author new --name \"Your Name\"`")
    })?;
    let key = read_key(&ctx.home.author_key(&author.id))?;
    if key.public() != *author.id.key() {
        bail!(
            "the key file of author {} holds another key; restore it from backup",
            author.id
        );
    }
    Ok((Session::new(key)?, author.profile))
}

/// Publishes the session author's profile in the project, and the node's attestation of their
/// ORCID iD when they signed in with ORCID here.
fn publish_author(
    ctx: &Ctx,
    p: &mut Project,
    session: &Session,
    profile: &orrery_protocol::Signed<AuthorProfile, orrery_protocol::Verified>,
) -> Result<()> {
    p.publish_profile(session, profile)?;
    if let Some(attestation) = ctx.store.orcid_attestation_of(session.author())? {
        p.publish_orcid_attestation(session, &attestation)?;
    }
    Ok(())
}

pub(super) fn load(ctx: &Ctx, query: &str) -> Result<Project> {
    let row = ctx.store.resolve(query)?;
    Ok(ctx.store.load(row.id)?)
}

/// Seals the session's edits and stores them durably, compacting when enough have accumulated.
pub(super) fn commit(ctx: &mut Ctx, project: &mut Project, session: &Session) -> Result<Batch> {
    // Large outputs moved out of the document go to the blob store before the changes naming
    // them are stored.
    crate::blobs::BlobStore::new(ctx.home.blobs())
        .for_project(project.id())
        .put_all(&project.take_blobs())?;
    let batch = project.seal(session);
    if batch.is_empty() {
        return Ok(batch);
    }
    ctx.store.append(project, &batch)?;
    if ctx.store.loose_changes(project.id())? >= ctx.config.store.compact_after_changes {
        ctx.store.compact(project)?;
    }
    Ok(batch)
}

fn emit(out: &mut dyn Write, output: Option<PathBuf>, text: &str) -> Result<()> {
    match output {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            writeln!(out, "wrote {}", path.display())?;
        }
        None => out.write_all(text.as_bytes())?,
    }
    Ok(())
}

pub(super) fn resolve_notebook(p: &Project, query: &str) -> Result<NotebookId> {
    let all = p.notebook_ids();
    let exact: Vec<&(NotebookId, String)> = all.iter().filter(|(_, t)| t == query).collect();
    let found: Vec<&(NotebookId, String)> = if exact.is_empty() {
        all.iter()
            .filter(|(id, _)| id.as_str().starts_with(query))
            .collect()
    } else {
        exact
    };
    match found.as_slice() {
        [(id, _)] => Ok(id.clone()),
        [] => bail!("no notebook matches `{query}`; `orrery project show` lists them"),
        _ => bail!(
            "`{query}` matches {} notebooks; give more of the id",
            found.len()
        ),
    }
}

fn local_profiles(ctx: &Ctx) -> Result<BTreeMap<AuthorId, AuthorProfile>> {
    Ok(ctx
        .store
        .authors()?
        .into_iter()
        .map(|a| (a.id, a.profile.value().clone()))
        .collect())
}

/// Names for authors: published profiles, then local ones, else the short id.
fn namer(ctx: &Ctx, p: &Project) -> Result<impl Fn(&AuthorId) -> String> {
    let mut names = local_profiles(ctx)?;
    names.extend(p.profiles());
    Ok(move |a: &AuthorId| {
        names
            .get(a)
            .map_or_else(|| a.short(), |p| format!("{} ({})", p.name, a.short()))
    })
}

fn list(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let mut rows = Vec::new();
    for row in ctx.store.projects()? {
        let p = ctx.store.load(row.id)?;
        rows.push(vec![
            row.id.short(),
            p.title(),
            p.visibility().to_string(),
            p.members().len().to_string(),
            p.notebook_ids().len().to_string(),
            p.change_count().to_string(),
            time(row.updated_at),
        ]);
    }
    writeln!(
        out,
        "{}",
        table(
            &[
                "id",
                "title",
                "visibility",
                "members",
                "notebooks",
                "changes",
                "updated"
            ],
            rows
        )
    )?;
    Ok(())
}

fn show(ctx: &Ctx, query: &str, out: &mut dyn Write) -> Result<()> {
    let p = load(ctx, query)?;
    let name = namer(ctx, &p)?;
    writeln!(out, "{}", p.title())?;
    writeln!(out, "id:          {}", p.id())?;
    writeln!(out, "visibility:  {}", p.visibility())?;
    writeln!(out, "environment: {}", super::environment::shown(&p))?;
    writeln!(out, "created:     {}", time(p.created_at()))?;
    writeln!(
        out,
        "changes:     {} (heads {})",
        p.change_count(),
        p.heads()
            .iter()
            .map(|h| h.short())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    let description = p.description();
    if !description.is_empty() {
        writeln!(out, "description: {description}")?;
    }
    let members = p
        .members()
        .into_iter()
        .map(|m| vec![name(&m.author), m.role.to_string(), m.author.to_string()])
        .collect();
    writeln!(
        out,
        "\nmembers\n{}",
        table(&["author", "role", "id"], members)
    )?;
    let mut held: BTreeMap<AuthorId, usize> = BTreeMap::new();
    for (_, author) in p.held() {
        *held.entry(author).or_default() += 1;
    }
    for (author, n) in held {
        writeln!(
            out,
            "\n{n} changes by {} made concurrently with their removal are held; an editor can accept them with `orrery project accept {} --by {author}`",
            name(&author),
            p.id()
        )?;
    }
    let mut nbs = Vec::new();
    for (id, title) in p.notebook_ids() {
        let nb = p.notebook(&id)?;
        let code = nb
            .cells
            .iter()
            .filter(|c| c.kind == orrery_crdt::CellKind::Code)
            .count();
        nbs.push(vec![
            id.to_string(),
            title,
            nb.cells.len().to_string(),
            code.to_string(),
            nb.created_by.as_ref().map(&name).unwrap_or_default(),
        ]);
    }
    writeln!(
        out,
        "\nnotebooks\n{}",
        table(&["id", "title", "cells", "code", "created by"], nbs)
    )?;
    let datasets: Vec<Vec<String>> = p
        .datasets()
        .into_iter()
        .map(|d| vec![d.dataset, d.node, d.checksum])
        .collect();
    if !datasets.is_empty() {
        writeln!(
            out,
            "\ndatasets\n{}",
            table(&["dataset", "node", "checksum"], datasets)
        )?;
    }
    stored_outputs(ctx, &p, out)?;
    let problems: Vec<_> = ctx
        .store
        .replication_problems()?
        .into_iter()
        .filter(|r| r.project == p.id())
        .collect();
    if !problems.is_empty() {
        writeln!(out, "\nreplication")?;
        for line in super::render::replication_problems(&ctx.store, &problems, false)? {
            writeln!(out, "  {line}")?;
        }
    }
    let comments: Vec<Vec<String>> = p
        .comments()
        .into_iter()
        .map(|c| {
            vec![
                time(c.created_at),
                c.author.as_ref().map(&name).unwrap_or_default(),
                c.target,
                c.text,
            ]
        })
        .collect();
    if !comments.is_empty() {
        writeln!(
            out,
            "\ncomments\n{}",
            table(&["when", "author", "on", "text"], comments)
        )?;
    }
    Ok(())
}

fn log(ctx: &Ctx, query: &str, limit: usize, out: &mut dyn Write) -> Result<()> {
    let p = load(ctx, query)?;
    let name = namer(ctx, &p)?;
    let entries = p.log();
    let total = entries.len();
    let rows = entries
        .into_iter()
        .rev()
        .take(limit)
        .map(|e| {
            vec![
                e.hash.short(),
                e.author.as_ref().map(&name).unwrap_or_else(|| "?".into()),
                time(e.time),
                e.seq.to_string(),
                e.ops.to_string(),
            ]
        })
        .collect();
    writeln!(
        out,
        "{}",
        table(&["change", "author", "time", "seq", "ops"], rows)
    )?;
    if total > limit {
        writeln!(out, "({} older changes; use --limit)", total - limit)?;
    }
    Ok(())
}

/// The ORCID iDs attested in `p` by this node or a member of its federation.
fn trusted_orcids(
    ctx: &Ctx,
    p: &Project,
) -> Result<BTreeMap<AuthorId, crate::citation::VerifiedOrcid>> {
    let me = orrery_protocol::NodeId(read_key(&ctx.home.node_key())?.public());
    let membership = ctx.store.membership()?;
    Ok(crate::citation::verified_orcids(p, membership.as_ref(), me))
}

fn credits(ctx: &Ctx, query: &str, out: &mut dyn Write) -> Result<()> {
    let p = load(ctx, query)?;
    let name = namer(ctx, &p)?;
    let c = p.credits();
    let mut rows = Vec::new();
    for s in &c.shares {
        rows.push(vec![
            "project".into(),
            name(&s.author),
            s.chars.to_string(),
            s.changes.to_string(),
        ]);
    }
    let verified = trusted_orcids(ctx, &p)?;
    let mut profiles = local_profiles(ctx)?;
    profiles.extend(p.profiles());
    let ids: Vec<String> = c
        .shares
        .iter()
        .filter_map(|s| {
            let declared = profiles.get(&s.author).and_then(|p| p.orcid.as_ref());
            crate::citation::orcid_note(declared, verified.get(&s.author))
                .map(|note| format!("  {}: ORCID {note}", name(&s.author)))
        })
        .collect();
    for nb in &c.notebooks {
        for s in &nb.shares {
            rows.push(vec![
                format!("notebook {}", nb.title),
                name(&s.author),
                s.chars.to_string(),
                s.changes.to_string(),
            ]);
        }
        for cell in &nb.cells {
            for s in &cell.shares {
                rows.push(vec![
                    format!("  cell {}", cell.cell),
                    name(&s.author),
                    s.chars.to_string(),
                    s.changes.to_string(),
                ]);
            }
        }
    }
    writeln!(
        out,
        "{}",
        table(&["scope", "author", "characters", "changes"], rows)
    )?;
    let runs = super::provenance::run_lines(ctx, &p, &name);
    if !runs.is_empty() {
        writeln!(
            out,
            "\noutputs computed at the data (the code stays its authors'; `orrery project provenance` shows each run)"
        )?;
        for line in runs {
            writeln!(out, "{line}")?;
        }
    }
    if !ids.is_empty() {
        writeln!(out, "\nORCID iDs")?;
        for line in ids {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// The one cell of `nb` whose id starts with `query`.
pub(super) fn resolve_cell(
    p: &Project,
    nb: &NotebookId,
    query: &str,
) -> Result<orrery_crdt::CellId> {
    let cells: Vec<_> = p
        .cell_ids(nb)?
        .into_iter()
        .filter(|c| c.as_str().starts_with(query))
        .collect();
    match cells.as_slice() {
        [cell] => Ok(cell.clone()),
        _ => bail!(
            "`{query}` matches {} cells of the notebook; give the cell id",
            cells.len()
        ),
    }
}

fn append(
    ctx: &mut Ctx,
    project: &str,
    notebook: &str,
    cell: &str,
    who: &As,
    out: &mut dyn Write,
) -> Result<()> {
    let mut p = load(ctx, project)?;
    let nb = resolve_notebook(&p, notebook)?;
    let cell = &resolve_cell(&p, &nb, cell)?;
    let (session, profile) = session(ctx, who)?;
    publish_author(ctx, &mut p, &session, &profile)?;
    commit(ctx, &mut p, &session)?;
    let text = p.source_obj(&nb, cell)?;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading standard input")?;
        let end = automerge::ReadDoc::length(p.doc(), &text);
        p.splice_text(&session, &text, end, 0, &format!("{line}\n"))?;
        let batch = commit(ctx, &mut p, &session)?;
        for change in &batch.changes {
            writeln!(
                out,
                "durable {}",
                hex::encode(crate::store::change_hash(change))
            )?;
        }
        out.flush()?;
    }
    Ok(())
}

/// The large outputs the project refers to: how many are on this node, and every copy found
/// damaged here.
fn stored_outputs(ctx: &Ctx, p: &Project, out: &mut dyn Write) -> Result<()> {
    let refs = p.blob_refs();
    let store = crate::blobs::BlobStore::new(ctx.home.blobs()).for_project(p.id());
    let quarantined = store.quarantined();
    if refs.is_empty() && quarantined.is_empty() {
        return Ok(());
    }
    let missing = refs.iter().filter(|b| !store.has(b)).count();
    writeln!(
        out,
        "\nstored outputs: {} on this node, {missing} not{}",
        refs.len() - missing,
        if missing > 0 {
            " (a running node fetches them from the other nodes that hold the project)"
        } else {
            ""
        }
    )?;
    for (hex, when) in quarantined {
        let now = refs
            .iter()
            .find(|b| b.hex() == hex)
            .map_or("no longer referred to", |b| {
                if store.has(b) {
                    "a good copy is held again"
                } else {
                    "being fetched again"
                }
            });
        writeln!(
            out,
            "  {hex}: damaged on this node's disk, moved to quarantine {}; {now}",
            time(when as i64)
        )?;
    }
    Ok(())
}

/// What a user reads when a notebook cannot be exported for want of a stored output.
fn blob_advice(e: &orrery_crdt::BlobError) -> String {
    let after = match e {
        orrery_crdt::BlobError::Missing(_) => "",
        orrery_crdt::BlobError::Damaged(_) => {
            " It was moved to `quarantine/` in the node's blob directory and is never served."
        }
    };
    format!(
        "cannot export: {e}.{after} A running node (`orrery run`) fetches it from another node that holds this project, if one does and is reachable (`orrery federation status` lists the members); export again once it has arrived. If this node held the only copy, the output is lost: run the cell again."
    )
}
