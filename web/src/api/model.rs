//! What the API sends and receives. The node fills these in; the OpenAPI document describes them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A project as listed.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, async_graphql::SimpleObject,
)]
pub struct ProjectSummary {
    /// The project's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// `public`, `shared` or `restricted`.
    pub visibility: String,
    /// The caller's role in it (`viewer`, `editor`, `owner`), if a member.
    pub role: Option<String>,
    /// How many notebooks it has.
    pub notebooks: usize,
}

/// A project: what it is, who is in it and its notebooks.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, async_graphql::SimpleObject,
)]
pub struct ProjectView {
    /// The project's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its description.
    pub description: String,
    /// `public`, `shared` or `restricted`.
    pub visibility: String,
    /// When it was created (seconds since the Unix epoch).
    pub created_at: i64,
    /// The caller's role in it, if a member.
    pub role: Option<String>,
    /// Its members.
    pub members: Vec<ProjectMember>,
    /// Its notebooks, in order.
    pub notebooks: Vec<NotebookSummary>,
    /// The current heads of its history.
    pub heads: Vec<String>,
    /// The datasets it references (a run is placed at the member holding them).
    pub datasets: Vec<DatasetRefView>,
    /// The lab environment its cells run in when pinned (`jupyter-<hash of its lock>`; the
    /// lock is kept in the project); none: each node's default.
    #[serde(default)]
    pub environment: Option<String>,
}

/// A dataset a project references, where it is held.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, async_graphql::SimpleObject,
)]
pub struct DatasetRefView {
    /// The reference's id in the project.
    pub id: String,
    /// The node holding it.
    pub node: String,
    /// That node's name, if this node knows it.
    #[serde(default)]
    pub node_name: Option<String>,
    /// The product there (`collection/path`).
    pub product: String,
    /// Its BLAKE3, hex.
    pub checksum: String,
    /// Who added the reference.
    pub added_by: Option<String>,
}

/// A dataset to reference, as a federated search shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDatasetRef {
    /// The node holding it (its id).
    pub node: String,
    /// The product there (`collection/path`).
    pub product: String,
    /// Its BLAKE3, hex (64 digits).
    pub checksum: String,
}

/// A member of a project.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, async_graphql::SimpleObject,
)]
pub struct ProjectMember {
    /// The member's author key.
    pub author: String,
    /// The name the author published, if any.
    pub name: Option<String>,
    /// `viewer`, `editor` or `owner`.
    pub role: String,
}

/// A notebook as listed.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, async_graphql::SimpleObject,
)]
pub struct NotebookSummary {
    /// The notebook's id.
    pub id: String,
    /// Its title.
    pub title: String,
}

/// A notebook with its cells.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, async_graphql::SimpleObject,
)]
pub struct NotebookView {
    /// The notebook's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its cells, in order.
    pub cells: Vec<CellView>,
}

/// A cell.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, async_graphql::SimpleObject,
)]
pub struct CellView {
    /// The cell's id.
    pub id: String,
    /// `code`, `markdown` or `raw`.
    pub kind: String,
    /// Its source.
    pub source: String,
    /// Its outputs (nbformat output objects; large ones name a stored blob).
    #[schema(value_type = Vec<Object>)]
    pub outputs: Vec<serde_json::Value>,
    /// Its execution count, for code cells that ran.
    pub execution_count: Option<i64>,
    /// The record of the run that wrote its outputs, checked, if a node ran it at the data.
    #[serde(default)]
    pub run: Option<RunRecordView>,
}

/// What a referee asks of a cell's outputs: the node that computed and signed them, who asked,
/// on what, and how it ended. Every replica checked both signatures before taking it in.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, async_graphql::SimpleObject,
)]
pub struct RunRecordView {
    /// The node that ran the cell and signed its outputs (its id).
    pub node: String,
    /// That node's name, if this node knows it (a member's, or its own).
    #[serde(default)]
    pub node_name: Option<String>,
    /// The author who asked for the run (their key).
    pub requester: String,
    /// `ok`, or the exception the cell raised.
    pub status: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// When it ended.
    pub ended_at_ms: i64,
    /// The lab environment (`jupyter`) and the hash of its package lock.
    pub environment: String,
    /// The hash of the environment's package lock.
    pub environment_lock: String,
    /// BLAKE3 of the source that ran, hex.
    pub source_blake3: String,
    /// Whether the cell's source is still the one that ran.
    pub source_current: bool,
    /// Whether the outputs shown are still the ones this run wrote.
    pub outputs_current: bool,
    /// The datasets it read.
    pub datasets: Vec<DatasetReadView>,
}

/// A dataset a run read.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, async_graphql::SimpleObject,
)]
pub struct DatasetReadView {
    /// The node holding it.
    pub node: String,
    /// The product (`collection/path`).
    pub product: String,
    /// BLAKE3 of its bytes, hex.
    pub blake3: String,
}

/// Who wrote what, from the verified history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreditsView {
    /// The project's authors, most characters first.
    pub authors: Vec<ShareView>,
    /// Per notebook.
    pub notebooks: Vec<NotebookCreditView>,
}

/// One author's share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShareView {
    /// The author key.
    pub author: String,
    /// The name the author published, if any.
    pub name: Option<String>,
    /// Characters written.
    pub chars: usize,
    /// Changes made.
    pub changes: usize,
    /// The ORCID iD, when a node of the federation attested it (not merely declared).
    pub orcid_verified: Option<String>,
}

/// Credit for one notebook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotebookCreditView {
    /// The notebook's id.
    pub notebook: String,
    /// Its title.
    pub title: String,
    /// Its authors, most characters first.
    pub authors: Vec<ShareView>,
}

/// A change in a project's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangeView {
    /// The change's hash.
    pub hash: String,
    /// Its author, when its seal names one.
    pub author: Option<String>,
    /// When it was made (seconds since the Unix epoch).
    pub time: i64,
    /// Its sequence number among its author's changes.
    pub seq: u64,
    /// How many operations it holds.
    pub ops: u64,
}

/// A comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommentView {
    /// The comment's id.
    pub id: String,
    /// What it is about: a notebook or cell id, or empty for the project.
    pub target: String,
    /// Its text.
    pub text: String,
    /// Its author.
    pub author: Option<String>,
    /// When it was written (seconds since the Unix epoch).
    pub created_at: i64,
}

/// A new project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// Its title.
    pub title: String,
    /// `public`, `shared` (the default) or `restricted`.
    pub visibility: Option<String>,
    /// A short description.
    pub description: Option<String>,
}

/// Changes to a project's title, description or visibility (only what is given changes).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    /// A new title (editors).
    pub title: Option<String>,
    /// A new description (editors).
    pub description: Option<String>,
    /// A new visibility (owners).
    pub visibility: Option<String>,
}

/// A new notebook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNotebook {
    /// Its title.
    pub title: String,
}

/// A Jupyter notebook to import as a new notebook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportNotebook {
    /// The new notebook's title.
    pub title: String,
    /// The notebook file's content (nbformat 4 JSON).
    #[schema(value_type = Object)]
    pub notebook: serde_json::Value,
}

/// A new cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCell {
    /// `code` (the default), `markdown` or `raw`.
    pub kind: Option<String>,
    /// Its source.
    pub source: String,
    /// Where in the notebook (0 is first); at the end if not given.
    pub index: Option<usize>,
}

/// A cell's new source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CellSource {
    /// The whole new source.
    pub source: String,
}

/// A member's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    /// `viewer`, `editor` or `owner`.
    pub role: String,
}

/// A new comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// What it is about: a notebook or cell id, or empty for the project.
    #[serde(default)]
    pub target: String,
    /// Its text.
    pub text: String,
}

/// A run of a cell's source inserted by one author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SpanView {
    /// The author's key (none: an author no longer known).
    pub author: Option<String>,
    /// The text.
    pub text: String,
}

/// Who wrote each part of one cell: its source, cut into runs by author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CellAuthorship {
    /// The cell.
    pub cell: String,
    /// Its source's runs, in order.
    pub spans: Vec<SpanView>,
}

/// Who wrote each part of a notebook's cells, from the signed history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotebookAuthorship {
    /// The notebook.
    pub notebook: String,
    /// Its cells, in order.
    pub cells: Vec<CellAuthorship>,
}

/// A way to sign in to the node: one of the OpenID providers it trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignInProvider {
    /// Its short name in the node's URLs.
    pub id: String,
    /// Its name for people.
    pub name: String,
    /// Where a browser goes to sign in with it (it comes back to the node's pages).
    pub url: String,
}

/// A browser's session: who is signed in, and how one signs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// The signed-in user, if any.
    pub signed_in: Option<crate::Principal>,
    /// The ways to sign in.
    pub providers: Vec<SignInProvider>,
}

/// An API token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// The token's id.
    pub id: String,
    /// What it may do: `read`, `write`, `labs`.
    pub scopes: Vec<String>,
    /// When it stops working (seconds since the Unix epoch).
    pub expires_at: i64,
    /// When it was last used.
    pub last_used: Option<i64>,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// A token to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What it may do: some of `read`, `write`, `labs` (at most what the caller may do).
    pub scopes: Vec<String>,
    /// How many days it lives (1 to 366; 30 if not given).
    pub days: Option<u32>,
}

/// A token just made: its secret is shown this once and not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token's id (to revoke it).
    pub id: String,
    /// The secret to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// What it may do.
    pub scopes: Vec<String>,
    /// When it stops working (seconds since the Unix epoch).
    pub expires_at: i64,
}

/// What to read of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRead {
    /// The project, its members and notebooks.
    Project,
    /// Its members.
    Members,
    /// One notebook with its cells.
    Notebook(String),
    /// One notebook as a Jupyter notebook file.
    Ipynb(String),
    /// Who wrote each part of a notebook's cells.
    Authorship(String),
    /// Who wrote what.
    Credits,
    /// The newest changes, at most this many.
    History(usize),
    /// Its comments.
    Comments,
    /// An output stored beside the project (large ones are), by its BLAKE3 in hex: the output,
    /// or the list of outputs stored together.
    StoredOutput(String),
}

/// A cell of a project's notebook, as a path names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellAddress {
    /// The project's id.
    pub project: String,
    /// The notebook's id.
    pub notebook: String,
    /// The cell's id.
    pub cell: String,
}

/// One line of a streamed run (`application/x-ndjson`): an output as it arrives, then the run,
/// or why it could not be made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunLine {
    /// An output (nbformat), as the kernel produced it.
    Output(serde_json::Value),
    /// The run, recorded.
    Run(Box<RunView>),
    /// The run could not be made or recorded: the status the plain answer would have had.
    Error {
        /// The HTTP status.
        status: u16,
        /// Why.
        error: String,
    },
}

/// A change to a project.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectEdit {
    /// Title, description, visibility.
    Patch(ProjectPatch),
    /// Add or change a member.
    SetMember {
        /// The member's author key.
        author: String,
        /// Their role.
        role: String,
    },
    /// Remove a member.
    RemoveMember(String),
    /// A new, empty notebook.
    AddNotebook(NewNotebook),
    /// A Jupyter notebook imported as a new notebook.
    Import(ImportNotebook),
    /// A new cell.
    AddCell {
        /// The notebook.
        notebook: String,
        /// The cell.
        cell: NewCell,
    },
    /// A cell's source replaced.
    SetSource {
        /// The notebook.
        notebook: String,
        /// The cell.
        cell: String,
        /// The new source.
        source: String,
    },
    /// A cell removed.
    DeleteCell {
        /// The notebook.
        notebook: String,
        /// The cell.
        cell: String,
    },
    /// A cell moved.
    MoveCell {
        /// The notebook.
        notebook: String,
        /// The cell.
        cell: String,
        /// Its place in the order without it (0 is first).
        index: usize,
    },
    /// Interrupt what the caller's kernel for a notebook runs, or restart that kernel.
    Kernel {
        /// The notebook.
        notebook: String,
        /// Restart (the kernel's variables are lost) instead of interrupting.
        restart: bool,
    },
    /// A dataset referenced.
    AddDataset(NewDatasetRef),
    /// A notebook updated in place from a newer version of its file.
    Reimport {
        /// The notebook.
        notebook: String,
        /// The file's content (nbformat 4 JSON).
        file: serde_json::Value,
    },
    /// A comment.
    Comment(NewComment),
}

/// Where a cell goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CellPlace {
    /// Its place in the order without it (0 is first).
    pub index: usize,
}

/// What updating a notebook from a newer file did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reimported {
    /// For example `1 cell added, 2 edited (+14 −3 chars), 1 moved`, or `no change`.
    pub summary: String,
    /// The notebook now.
    pub notebook: NotebookView,
}

/// What a project read or edit answers.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectAnswer {
    /// The project.
    Project(ProjectView),
    /// Its members.
    Members(Vec<ProjectMember>),
    /// A notebook.
    Notebook(NotebookView),
    /// A Jupyter notebook file.
    Ipynb(serde_json::Value),
    /// A cell.
    Cell(CellView),
    /// A notebook updated from a newer file.
    Reimported(Reimported),
    /// Who wrote each part of a notebook's cells.
    Authorship(NotebookAuthorship),
    /// Credits.
    Credits(CreditsView),
    /// History, newest first.
    History(Vec<ChangeView>),
    /// Comments.
    Comments(Vec<CommentView>),
    /// A comment.
    Comment(CommentView),
    /// A cell run at the data.
    Run(RunView),
    /// An output (or a list of outputs) stored beside the project.
    Stored(serde_json::Value),
    /// Done; nothing to show.
    Done,
}

/// A cell run at the data: what it produced and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    /// The cell as the run left it (its outputs and execution count).
    pub cell: CellView,
    /// The node that ran it and signed its outputs.
    pub node: String,
    /// That node's name, if this node knows it.
    #[serde(default)]
    pub node_name: Option<String>,
    /// The lab it ran in (the caller's, on that node).
    pub lab: String,
    /// `ok`, or the exception the cell raised (`ZeroDivisionError: division by zero`).
    pub status: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// When it ended.
    pub ended_at_ms: i64,
}

/// A lab as shown to its owner.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, async_graphql::SimpleObject,
)]
pub struct LabView {
    /// The lab's id.
    pub id: String,
    /// Its environment (`jupyter`).
    pub environment: String,
    /// The collections it sees read-only under `/data`.
    pub datasets: Vec<String>,
    /// `pending`, `placed`, `provisioning`, `starting`, `running`, `stopping`, `stopped` or
    /// `failed`.
    pub state: String,
    /// Why it failed, and what to do, when it failed.
    pub reason: Option<String>,
    /// When it was made (seconds since the Unix epoch).
    pub created_at: i64,
    /// The node that runs it.
    pub node: String,
    /// What its owner should know now: it is idle and will be stopped, or it was (its workspace
    /// kept), or its node does not answer.
    pub notice: Option<String>,
}

/// A step of one of the caller's labs, as it happens (`GET /api/v1/labs/events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LabProgress {
    /// The lab as it is now.
    pub lab: LabView,
    /// A line of progress (what provisioning is installing), if any.
    pub detail: Option<String>,
}

/// A collection to add to a running lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDataset {
    /// The collection (held by the node running the lab), read-only at `/data/<dataset>`.
    pub dataset: String,
}

/// A lab to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLab {
    /// The environment (`jupyter` if not given).
    pub environment: Option<String>,
    /// Collections of this node to see read-only under `/data/<collection>`.
    #[serde(default)]
    pub datasets: Vec<String>,
}

/// What to do with labs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabCall {
    /// The caller's labs.
    List,
    /// Start a new lab.
    Create(NewLab),
    /// One lab.
    Show(String),
    /// Start a stopped or failed lab again, with its workspace.
    Start(String),
    /// Stop a lab (its workspace stays).
    Stop(String),
    /// The last lines of a lab's server output.
    Logs(String),
    /// Add a collection to a running lab (its id, the collection).
    Attach(String, String),
}

/// What a lab call answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabAnswer {
    /// Labs.
    Labs(Vec<LabView>),
    /// A lab.
    Lab(LabView),
    /// Output lines.
    Logs(String),
}

/// A notebook to run whole as a job (a pipeline), once or on a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// Values injected as Python assignments after the cell tagged `parameters` (as papermill
    /// does): numbers, strings, booleans, null, lists and objects.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Run again this many seconds after each run starts, until cancelled.
    #[serde(default)]
    pub every_secs: Option<i64>,
}

/// A job: a notebook run whole at the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// The project.
    pub project: String,
    /// The notebook.
    pub notebook: String,
    /// The parameters: names and the Python literals injected.
    pub parameters: Vec<(String, String)>,
    /// Seconds between runs, if it repeats.
    pub every_secs: Option<i64>,
    /// When it runs next, if queued (seconds since the Unix epoch).
    pub next_at: Option<i64>,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    /// How many runs it has kept.
    pub runs: u32,
    /// Why it is where it is, when that needs saying.
    pub note: String,
    /// When it was asked for.
    pub created_at: i64,
}

/// One cell of a job's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobCellView {
    /// The cell (`injected-parameters` for the cell the job added).
    pub cell: String,
    /// `ok`, the error it raised, or `not run`.
    pub status: String,
    /// The kernel's counter for it.
    pub execution_count: Option<i64>,
    /// Its outputs (nbformat).
    #[schema(value_type = Vec<Object>)]
    pub outputs: Vec<serde_json::Value>,
}

/// One run of a job, from the record the computing node signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobRunView {
    /// Which run (1 is the first).
    pub run: u32,
    /// The node that ran it and signed the record.
    pub node: String,
    /// Whether the record's signature holds (it is checked each time it is read).
    pub verified: bool,
    /// `ok`, or the first error.
    pub status: String,
    /// The parameters injected.
    pub parameters: Vec<(String, String)>,
    /// The notebook's heads it ran on.
    pub heads: Vec<String>,
    /// The environment and the hash of its lock.
    pub environment: String,
    /// The hash of the environment's package lock.
    pub environment_lock: String,
    /// The datasets it could read, each `product blake3`.
    pub datasets: Vec<String>,
    /// Start, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// End.
    pub ended_at_ms: i64,
    /// Every code cell in order.
    pub cells: Vec<JobCellView>,
}

/// What the jobs API is asked.
#[derive(Debug, Clone, PartialEq)]
pub enum JobCall {
    /// Run a notebook of a project as a job.
    Submit {
        /// The project.
        project: String,
        /// The notebook.
        notebook: String,
        /// What to run it with.
        job: NewJob,
    },
    /// The caller's jobs.
    List,
    /// One job.
    Show(String),
    /// A job's runs.
    Runs(String),
    /// Cancel a job.
    Cancel(String),
}

/// What a jobs call answers.
#[derive(Debug, Clone, PartialEq)]
pub enum JobAnswer {
    /// A job.
    Job(JobView),
    /// Jobs.
    Jobs(Vec<JobView>),
    /// A job's runs.
    Runs(Vec<JobRunView>),
}
