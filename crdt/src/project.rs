//! A project: one automerge document, the seals that vouch for its history, and typed access.
//!
//! Reading is free for anyone holding the replica. Every edit goes through a [`Session`] and is
//! checked against the editor's role *before* it is committed, exactly as a remote replica will
//! check it on ingest (see [`crate::ingest`]). Each edit is one automerge change; [`Project::seal`]
//! signs the session's latest change and returns the batch of changes it covers, ready to be
//! stored and sent.

use std::collections::{BTreeMap, HashMap};

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{ActorId, Automerge, ObjId, ObjType, ReadDoc, ScalarValue, TextEncoding, Value};
use orrery_protocol::{AuthorId, ChangeHash, ChangeSeal, ProjectId, Signed, Unverified, Verified};

use crate::ids::{CellId, CommentId, DatasetRefId, NotebookId};
use crate::outputs::{Blob, BlobError, externalise_all, to_scalar};
use crate::position;
use crate::schema::*;
use crate::session::{Session, author_of};

mod authors;
pub(crate) use authors::ATTESTATION_SUFFIX;
mod branch;
mod edit;
mod environment;
mod preservation;
pub use environment::{MAX_LOCK_BYTES, PinnedEnvironment, image_by_digest};
pub(crate) use preservation::parse_policy;
mod history;
mod live;
mod run;
pub use live::{CellSplices, NotebookDelta, Splice};
pub use run::{RunRecordError, VerifiedRun};

pub(crate) use edit::{CHUNK_BYTES, cell_size, write_cell};

/// Why a local edit was refused. Nothing is committed when an edit fails.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The author has no role that allows this edit.
    #[error("{author} may not {action} in this project: their role is {role}")]
    NotPermitted {
        /// Who tried.
        author: AuthorId,
        /// What they tried.
        action: &'static str,
        /// Their role (`none` if not a member).
        role: String,
    },
    /// The notebook does not exist.
    #[error("no notebook `{0}` in this project; `orrery project show` lists them")]
    NoNotebook(NotebookId),
    /// The cell does not exist.
    #[error("no cell `{cell}` in notebook `{notebook}`")]
    NoCell {
        /// The notebook.
        notebook: NotebookId,
        /// The missing cell.
        cell: CellId,
    },
    /// An index or range is outside the text or list.
    #[error("position {index} is outside the {what} (length {len})")]
    OutOfRange {
        /// What was indexed.
        what: &'static str,
        /// The index given.
        index: usize,
        /// The length.
        len: usize,
    },
    /// The last owner cannot be removed or demoted.
    #[error("{0} is the last owner; add another owner first")]
    LastOwner(AuthorId),
    /// The founder's role cannot change.
    #[error("{0} founded the project and stays its owner; their role cannot change")]
    Founder(AuthorId),
    /// An identifier is already used.
    #[error("the id `{0}` is already used in this project")]
    DuplicateId(String),
    /// An edit was made against a version this replica does not hold, or one that lacks the
    /// session's own latest change: the editor must read the document again.
    #[error(
        "the edit was made against a version this node cannot edit from ({0}); read the notebook again"
    )]
    Stale(&'static str),
    /// The project has no genesis change yet (an empty replica waiting for sync).
    #[error("the project has not been received yet")]
    Empty,
    /// The document is not shaped like a project (a container is missing or of the wrong type).
    #[error("the project document is malformed: {0}")]
    Malformed(&'static str),
    /// A stored output could not be read (see [`crate::outputs`]).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A value outside the project's limits.
    #[error("{0}")]
    Invalid(String),
    /// Automerge refused the operation.
    #[error("the document refused the edit")]
    Automerge(#[from] automerge::AutomergeError),
}

/// Object ids of the root containers, fixed by the genesis change.
#[derive(Debug, Clone)]
pub(crate) struct Roots {
    pub(crate) members: ObjId,
    pub(crate) notebooks: ObjId,
    pub(crate) datasets: ObjId,
    pub(crate) comments: ObjId,
    pub(crate) profiles: ObjId,
    pub(crate) description: ObjId,
}

impl Roots {
    pub(crate) fn read(doc: &Automerge) -> Option<Roots> {
        let obj = |key: &str, ty: ObjType| match doc.get(automerge::ROOT, key) {
            Ok(Some((Value::Object(t), id))) if t == ty => Some(id),
            _ => None,
        };
        Some(Roots {
            members: obj(K_MEMBERS, ObjType::Map)?,
            notebooks: obj(K_NOTEBOOKS, ObjType::Map)?,
            datasets: obj(K_DATASETS, ObjType::Map)?,
            comments: obj(K_COMMENTS, ObjType::Map)?,
            profiles: obj(K_PROFILES, ObjType::Map)?,
            description: obj(K_DESCRIPTION, ObjType::Text)?,
        })
    }
}

/// A member of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The author.
    pub author: AuthorId,
    /// Their role.
    pub role: Role,
}

/// A notebook, read from the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Notebook {
    /// Its id.
    pub id: NotebookId,
    /// Its title.
    pub title: String,
    /// Notebook-level metadata (nbformat `metadata`), a JSON object.
    pub metadata: serde_json::Value,
    /// The nbformat minor version it was imported from (or 5).
    pub nbformat_minor: i64,
    /// Who created it.
    pub created_by: Option<AuthorId>,
    /// Its cells in order.
    pub cells: Vec<Cell>,
}

/// A notebook cell, read from the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Its id (the nbformat cell id).
    pub id: CellId,
    /// Code, markdown or raw.
    pub kind: CellKind,
    /// Its source text.
    pub source: String,
    /// Its outputs, each an nbformat output object.
    pub outputs: Vec<serde_json::Value>,
    /// The execution counter of its last run, if any.
    pub execution_count: Option<i64>,
    /// Execution metadata of its last run (who ran it, where, when), a JSON object.
    pub execution: Option<serde_json::Value>,
    /// Cell metadata, a JSON object.
    pub metadata: serde_json::Value,
    /// Cell attachments (markdown and raw cells), a JSON object.
    pub attachments: Option<serde_json::Value>,
    /// Who created it.
    pub created_by: Option<AuthorId>,
}

/// A reference to a dataset held by some node of the federation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRef {
    /// The reference's id within the project.
    pub id: DatasetRefId,
    /// The node holding the dataset (its node id).
    pub node: String,
    /// The dataset's id at that node.
    pub dataset: String,
    /// The dataset's checksum (BLAKE3, hex).
    pub checksum: String,
    /// Who added the reference.
    pub added_by: Option<AuthorId>,
}

/// A comment on the project, a notebook or a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// Its id.
    pub id: CommentId,
    /// What it is about: `project`, `notebook/<id>` or `cell/<notebook>/<cell>`.
    pub target: String,
    /// The text.
    pub text: String,
    /// When it was written (seconds since the epoch, as the author's clock said).
    pub created_at: i64,
    /// Its author, from the signed history.
    pub author: Option<AuthorId>,
}

/// Changes and the seals that cover them: the unit that is stored and sent.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Raw (uncompressed) automerge change chunks.
    pub changes: Vec<Vec<u8>>,
    /// Seals covering every change above.
    pub seals: Vec<Signed<ChangeSeal, Unverified>>,
}

impl Batch {
    /// Whether the batch carries nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.seals.is_empty()
    }

    /// Total bytes of the changes.
    pub fn change_bytes(&self) -> usize {
        self.changes.iter().map(Vec::len).sum()
    }
}

/// A seal just made, with the changes it covers (by hash).
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The signed seal.
    pub seal: Signed<ChangeSeal, Verified>,
    since: Vec<automerge::ChangeHash>,
    /// The changes it covers, in commit order.
    pub hashes: Vec<ChangeHash>,
}

/// An Orrery project replica.
pub struct Project {
    pub(crate) id: ProjectId,
    pub(crate) doc: Automerge,
    pub(crate) roots: Option<Roots>,
    /// The kept seals: for each actor, the seal naming its latest change.
    pub(crate) seals: crate::ingest::SealBook,
    /// Changes waiting for their dependencies.
    pub(crate) pending: crate::ingest::Pending,
    /// Changes contested by a concurrent removal of their author, and what judging them needs.
    pub(crate) contest: crate::contest::Contest,
    /// Local changes not yet sealed, per actor, in commit order.
    unsealed: HashMap<ActorId, Unsealed>,
    /// The role the last edit's author was found to have, while provably unchanged.
    role_memo: Option<RoleMemo>,
    /// Blobs of outputs externalised by local edits, for the caller to store.
    pub(crate) new_blobs: Vec<crate::outputs::Blob>,
}

/// A role looked up for an edit, and the heads at which it still holds.
///
/// The memo is carried from one edit to the next only by edits that cannot change the members
/// map (those needing less than [`Role::Owner`]), and only while the document's heads are
/// exactly those that edit left: any other change (an ingest, an owner's edit) moves the heads
/// and the role is looked up again. This saves a members-map read per keystroke.
#[derive(Debug)]
struct RoleMemo {
    author: AuthorId,
    role: Option<Role>,
    heads: Vec<automerge::ChangeHash>,
}

/// One session's local changes awaiting a seal: its own, and those of the sessions adopted into
/// it (see [`Project::adopt`]).
#[derive(Debug, Default)]
struct Unsealed {
    /// The document's heads just before the first of them was committed or adopted: none of
    /// them is an ancestor of these, so the changes since these heads include them all.
    since: Vec<automerge::ChangeHash>,
    /// Their hashes, in the order they entered the document.
    hashes: Vec<ChangeHash>,
    /// The session's own latest change.
    own: Option<ChangeHash>,
    /// The latest change of each adopted session: the seal names these beside `own`, because
    /// a replica keeps one seal per actor and an adopted actor needs one of its own.
    adopted: Vec<ChangeHash>,
}

/// Below this many changes, [`Project::seal`] fetches each by hash; above, it collects all
/// changes since the first of them in one pass, which automerge does several times faster per
/// change (building a change back from the document's columns has a cost per call).
const SEAL_BY_HASH_MAX: usize = 4;

impl std::fmt::Debug for Project {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Project")
            .field("id", &self.id)
            .field("heads", &self.doc.get_heads().len())
            .finish()
    }
}

pub(crate) fn new_doc() -> Automerge {
    Automerge::new_with_encoding(TextEncoding::UnicodeCodePoint)
}

pub(crate) fn to_hash(h: automerge::ChangeHash) -> ChangeHash {
    ChangeHash(h.0)
}

pub(crate) fn from_hash(h: ChangeHash) -> automerge::ChangeHash {
    automerge::ChangeHash(h.0)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn str_of(v: &Value<'_>) -> Option<String> {
    match v {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    }
}

fn int_of(v: &Value<'_>) -> Option<i64> {
    match v {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Int(i) => Some(*i),
            ScalarValue::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The founder of a project: the author of the genesis change, which created the members map.
pub(crate) fn founder_of(members: &ObjId) -> Option<AuthorId> {
    creator(members)
}

fn creator(id: &ObjId) -> Option<AuthorId> {
    match id {
        ObjId::Id(_, actor, _) => author_of(actor),
        ObjId::Root => None,
    }
}

pub(crate) fn json_of(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| crate::json::parse_str(&t))
}

impl Project {
    /// Creates a project: the genesis change makes `session`'s author its only owner.
    /// Returns the project and the sealed genesis batch.
    pub fn create(
        session: &Session,
        title: &str,
        visibility: Visibility,
    ) -> Result<(Project, Batch), EditError> {
        let mut doc = new_doc();
        doc.set_actor(session.actor().clone());
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, K_SCHEMA, SCHEMA)?;
        tx.put(automerge::ROOT, K_CREATED, now())?;
        tx.put(automerge::ROOT, K_TITLE, title)?;
        tx.put_object(automerge::ROOT, K_DESCRIPTION, ObjType::Text)?;
        tx.put(automerge::ROOT, K_VISIBILITY, visibility.as_str())?;
        let members = tx.put_object(automerge::ROOT, K_MEMBERS, ObjType::Map)?;
        tx.put(&members, session.author().to_string(), Role::Owner.as_str())?;
        tx.put_object(automerge::ROOT, K_NOTEBOOKS, ObjType::Map)?;
        tx.put_object(automerge::ROOT, K_DATASETS, ObjType::Map)?;
        tx.put_object(automerge::ROOT, K_COMMENTS, ObjType::Map)?;
        tx.put_object(automerge::ROOT, K_PROFILES, ObjType::Map)?;
        let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now()));
        let hash = hash.ok_or(EditError::Malformed("genesis change is empty"))?;
        if Roots::read(&doc).is_none() {
            return Err(EditError::Malformed("genesis lacks containers"));
        }
        let mut project = Project::from_doc(ProjectId(hash.0), doc);
        project.unsealed.insert(
            session.actor().clone(),
            Unsealed {
                since: Vec::new(),
                hashes: vec![to_hash(hash)],
                own: Some(to_hash(hash)),
                adopted: Vec::new(),
            },
        );
        let batch = project.seal(session);
        Ok((project, batch))
    }

    /// An empty replica of project `id`, waiting for its genesis change to arrive by ingest.
    pub fn empty(id: ProjectId) -> Project {
        Project::from_doc(id, new_doc())
    }

    /// A replica of project `id` holding `doc`, with nothing sealed, waiting or unsealed.
    pub(crate) fn from_doc(id: ProjectId, doc: Automerge) -> Project {
        Project {
            id,
            roots: Roots::read(&doc),
            doc,
            seals: Default::default(),
            pending: Default::default(),
            contest: Default::default(),
            unsealed: HashMap::new(),
            role_memo: None,
            new_blobs: Vec::new(),
        }
    }

    /// The project's id (the hash of its genesis change).
    pub fn id(&self) -> ProjectId {
        self.id
    }

    /// The underlying automerge document (read-only).
    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// The current heads of the history.
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads().into_iter().map(to_hash).collect()
    }

    /// Whether the history holds a change.
    pub fn has_change(&self, hash: &ChangeHash) -> bool {
        self.doc
            .get_change_meta_by_hash(&from_hash(*hash))
            .is_some()
    }

    /// Number of changes in the history.
    ///
    /// This decodes the metadata of every change: linear in the history. Hot paths ask
    /// [`Project::heads`] instead.
    pub fn change_count(&self) -> usize {
        self.doc.get_changes_meta(&[]).len()
    }

    fn roots(&self) -> Result<&Roots, EditError> {
        self.roots.as_ref().ok_or(EditError::Empty)
    }

    pub(crate) fn get_str(&self, obj: &ObjId, key: &str) -> Option<String> {
        match self.doc.get(obj, key) {
            Ok(Some((v, _))) => str_of(&v),
            _ => None,
        }
    }

    pub(crate) fn get_int(&self, obj: &ObjId, key: &str) -> Option<i64> {
        match self.doc.get(obj, key) {
            Ok(Some((v, _))) => int_of(&v),
            _ => None,
        }
    }

    pub(crate) fn get_obj(&self, obj: &ObjId, key: &str, ty: ObjType) -> Option<ObjId> {
        match self.doc.get(obj, key) {
            Ok(Some((Value::Object(t), id))) if t == ty => Some(id),
            _ => None,
        }
    }

    /// The project title.
    pub fn title(&self) -> String {
        self.get_str(&automerge::ROOT, K_TITLE).unwrap_or_default()
    }

    /// The project description.
    pub fn description(&self) -> String {
        self.roots
            .as_ref()
            .and_then(|r| self.doc.text(&r.description).ok())
            .unwrap_or_default()
    }

    /// Creation time, seconds since the epoch (as the creator's clock said).
    pub fn created_at(&self) -> i64 {
        self.get_int(&automerge::ROOT, K_CREATED).unwrap_or(0)
    }

    /// Who may see the project.
    pub fn visibility(&self) -> Visibility {
        self.get_str(&automerge::ROOT, K_VISIBILITY)
            .and_then(|v| v.parse().ok())
            .unwrap_or(Visibility::Restricted)
    }

    /// The members and their roles, ordered by author id.
    pub fn members(&self) -> Vec<Member> {
        let Some(roots) = &self.roots else {
            return Vec::new();
        };
        let founder = founder_of(&roots.members);
        let mut members: Vec<Member> = self
            .doc
            .map_range(&roots.members, ..)
            .filter_map(|item| {
                let author = item.key.parse().ok()?;
                let role = match &item.value {
                    automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s)) => {
                        s.parse().ok()?
                    }
                    _ => return None,
                };
                Some(Member { author, role })
            })
            .filter(|m| Some(m.author) != founder)
            .collect();
        if let Some(f) = founder {
            members.push(Member {
                author: f,
                role: Role::Owner,
            });
            members.sort_by_key(|m| m.author);
        }
        members
    }

    /// The project's founder: the author of its genesis change, an owner for good.
    pub fn founder(&self) -> Option<AuthorId> {
        self.roots.as_ref().and_then(|r| founder_of(&r.members))
    }

    /// The role of `author`, if they are a member. The founder is always an owner.
    pub fn role_of(&self, author: &AuthorId) -> Option<Role> {
        let roots = self.roots.as_ref()?;
        if founder_of(&roots.members) == Some(*author) {
            return Some(Role::Owner);
        }
        self.get_str(&roots.members, &author.to_string())?
            .parse()
            .ok()
    }

    pub(crate) fn notebook_obj(&self, id: &NotebookId) -> Result<ObjId, EditError> {
        let roots = self.roots()?;
        self.get_obj(&roots.notebooks, id.as_str(), ObjType::Map)
            .ok_or_else(|| EditError::NoNotebook(id.clone()))
    }

    pub(crate) fn cells_obj(&self, nb: &NotebookId) -> Result<ObjId, EditError> {
        let nb_obj = self.notebook_obj(nb)?;
        self.get_obj(&nb_obj, K_CELLS, ObjType::Map)
            .ok_or(EditError::Malformed("notebook without cells"))
    }

    fn cell_obj(&self, nb: &NotebookId, cell: &CellId) -> Result<ObjId, EditError> {
        let cells = self.cells_obj(nb)?;
        self.get_obj(&cells, cell.as_str(), ObjType::Map)
            .ok_or_else(|| EditError::NoCell {
                notebook: nb.clone(),
                cell: cell.clone(),
            })
    }

    pub(crate) fn cell_obj_pub(&self, nb: &NotebookId, cell: &CellId) -> Result<ObjId, EditError> {
        self.cell_obj(nb, cell)
    }

    /// The ids and titles of the notebooks, ordered by title then id.
    pub fn notebook_ids(&self) -> Vec<(NotebookId, String)> {
        let Some(roots) = &self.roots else {
            return Vec::new();
        };
        let mut out: Vec<(NotebookId, String)> = self
            .doc
            .map_range(&roots.notebooks, ..)
            .filter_map(|item| {
                let id: NotebookId = item.key.parse().ok()?;
                let obj = item.id();
                let title = self.get_str(&obj, K_TITLE).unwrap_or_default();
                Some((id, title))
            })
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        out
    }

    /// Cell ids of a notebook with their positions, in display order.
    pub(crate) fn ordered_cells(
        &self,
        nb: &NotebookId,
    ) -> Result<Vec<(String, CellId, ObjId)>, EditError> {
        let cells = self.cells_obj(nb)?;
        let mut out: Vec<(String, CellId, ObjId)> = self
            .doc
            .map_range(&cells, ..)
            .filter_map(|item| {
                let id: CellId = item.key.parse().ok()?;
                let obj = item.id();
                if !matches!(item.value, automerge::ValueRef::Object(ObjType::Map)) {
                    return None;
                }
                let pos = self.get_str(&obj, K_POS).unwrap_or_default();
                Some((pos, id, obj))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        Ok(out)
    }

    /// The cell ids of a notebook in order.
    pub fn cell_ids(&self, nb: &NotebookId) -> Result<Vec<CellId>, EditError> {
        Ok(self
            .ordered_cells(nb)?
            .into_iter()
            .map(|(_, id, _)| id)
            .collect())
    }

    pub(crate) fn read_cell(&self, id: CellId, obj: &ObjId) -> Cell {
        let kind = self
            .get_str(obj, K_KIND)
            .and_then(|k| k.parse().ok())
            .unwrap_or(CellKind::Raw);
        let source = self
            .get_obj(obj, K_SOURCE, ObjType::Text)
            .and_then(|t| self.doc.text(&t).ok())
            .unwrap_or_default();
        let outputs = self
            .get_obj(obj, K_OUTPUTS, ObjType::List)
            .map(|list| {
                self.doc
                    .list_range(&list, ..)
                    .filter_map(|item| crate::outputs::from_item(&item.value))
                    .collect()
            })
            .unwrap_or_default();
        Cell {
            id,
            kind,
            source,
            outputs,
            execution_count: self.get_int(obj, K_EXEC_COUNT),
            execution: json_of(self.get_str(obj, K_EXECUTION)),
            metadata: json_of(self.get_str(obj, K_METADATA))
                .unwrap_or_else(|| serde_json::json!({})),
            attachments: json_of(self.get_str(obj, K_ATTACHMENTS)),
            created_by: creator(obj),
        }
    }

    /// One cell.
    pub fn cell(&self, nb: &NotebookId, cell: &CellId) -> Result<Cell, EditError> {
        let obj = self.cell_obj(nb, cell)?;
        Ok(self.read_cell(cell.clone(), &obj))
    }

    /// A whole notebook.
    pub fn notebook(&self, id: &NotebookId) -> Result<Notebook, EditError> {
        let obj = self.notebook_obj(id)?;
        let cells = self
            .ordered_cells(id)?
            .into_iter()
            .map(|(_, cid, cobj)| self.read_cell(cid, &cobj))
            .collect();
        Ok(Notebook {
            id: id.clone(),
            title: self.get_str(&obj, K_TITLE).unwrap_or_default(),
            metadata: json_of(self.get_str(&obj, K_METADATA))
                .unwrap_or_else(|| serde_json::json!({})),
            nbformat_minor: self.get_int(&obj, K_NBFORMAT_MINOR).unwrap_or(5),
            created_by: creator(&obj),
            cells,
        })
    }

    /// The dataset references.
    pub fn datasets(&self) -> Vec<DatasetRef> {
        let Some(roots) = &self.roots else {
            return Vec::new();
        };
        self.doc
            .map_range(&roots.datasets, ..)
            .filter_map(|item| {
                let id: DatasetRefId = item.key.parse().ok()?;
                let obj = item.id();
                Some(DatasetRef {
                    id,
                    node: self.get_str(&obj, K_NODE)?,
                    dataset: self.get_str(&obj, K_DATASET)?,
                    checksum: self.get_str(&obj, K_CHECKSUM).unwrap_or_default(),
                    added_by: creator(&obj),
                })
            })
            .collect()
    }

    /// The comments, oldest first.
    pub fn comments(&self) -> Vec<Comment> {
        let Some(roots) = &self.roots else {
            return Vec::new();
        };
        let mut out: Vec<Comment> = self
            .doc
            .map_range(&roots.comments, ..)
            .filter_map(|item| {
                let id: CommentId = item.key.parse().ok()?;
                let obj = item.id();
                Some(Comment {
                    id,
                    target: self.get_str(&obj, K_TARGET).unwrap_or_default(),
                    text: self.get_str(&obj, K_TEXT).unwrap_or_default(),
                    created_at: self.get_int(&obj, K_CREATED).unwrap_or(0),
                    author: creator(&obj),
                })
            })
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        out
    }
}

/// One change in the log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Its hash.
    pub hash: ChangeHash,
    /// Its author, from the actor id.
    pub author: Option<AuthorId>,
    /// The actor's sequence number.
    pub seq: u64,
    /// Commit time as the author's clock said (seconds since the epoch).
    pub time: i64,
    /// Number of operations.
    pub ops: u64,
    /// The changes it depends on.
    pub deps: Vec<ChangeHash>,
}

/// A cell to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCell {
    /// Its id.
    pub id: CellId,
    /// Its kind.
    pub kind: CellKind,
    /// Its source.
    pub source: String,
    /// Its outputs.
    pub outputs: Vec<serde_json::Value>,
    /// Its execution count.
    pub execution_count: Option<i64>,
    /// Its metadata (a JSON object).
    pub metadata: serde_json::Value,
    /// Its attachments, if any.
    pub attachments: Option<serde_json::Value>,
}

impl NewCell {
    /// A cell of `kind` with `source` and a fresh id.
    pub fn new(kind: CellKind, source: &str) -> Self {
        Self {
            id: CellId::random(),
            kind,
            source: source.to_string(),
            outputs: Vec::new(),
            execution_count: None,
            metadata: serde_json::json!({}),
            attachments: None,
        }
    }
}
