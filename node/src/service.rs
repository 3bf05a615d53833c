//! The running node: an actor that owns the projects in memory, talks to the store thread and
//! the federation actor, and keeps projects in sync with the nodes that should hold them.
//!
//! Who gets a project: a node that hosts one of the project's members (its advert lists the
//! member's author key) — or, for a public project, any member node. A node accepts a project it
//! does not hold yet only under the same rule, judged on the project's own verified members.
//!
//! Every change from a peer is verified by `Project::receive_sync_message` and stored (durably)
//! before the node answers; a peer whose changes fail verification is penalised and nothing of
//! its is stored. Edits made by other processes on the same data directory (the command line)
//! are noticed through SQLite's `data_version` and synced like local edits.

mod accounts;
mod actor;
mod api;
mod auth_cache;
mod authors;
mod blobs;
mod commands;
mod dataplane;
mod events;
mod federation_events;
mod handle;
mod invite;
mod jobs;
mod lab_orders;
mod labs;
mod metrics;
mod poll;
mod presence;
pub(crate) mod preservation;
mod replication;
mod runs;
pub use runs::RunOutcome;
mod search;
mod search_cache;
mod start;
mod store_thread;
mod sync;
mod web;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use orrery_catalog::{FederatedResults, Query};
use orrery_protocol::advert::CollectionSummary;
use orrery_protocol::presence::{Presence, PresenceBook};

use orrery_crdt::sync::PeerState;
use orrery_crdt::{EditError, Project, Session, Visibility};
use orrery_federation::{Event as FedEvent, FederationHandle};
use orrery_protocol::advert::NodeAdvert;
use orrery_protocol::federation::{JoinRequest, Membership};
use orrery_protocol::wire::{Refusal, Request, Response, SyncFrame};
use orrery_protocol::{
    AuthorId, AuthorProfile, NodeId, ProjectId, SecretKey, Signed, Unverified, Verified,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use events::{NodeError, NodeEvent};
pub use invite::InviteToken;
pub(crate) use search::Readers;
pub use start::start;
pub(crate) use store_thread::StoreHandle;
pub(crate) use sync::may_hold_project;

use crate::config::Config;
use crate::home::{Home, read_key};
use crate::store::{Store, StoreError};

type EditFn = Box<dyn FnOnce(&mut Project, &Session) -> Result<(), EditError> + Send>;
type ReadFn = Box<dyn FnOnce(Option<&Project>) + Send>;
type ReadAllFn = Box<dyn FnOnce(&mut dyn Iterator<Item = &Project>) + Send>;

enum Command {
    CreateFederation {
        name: String,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Invite {
        invitee: Option<NodeId>,
        code: Option<[u8; 32]>,
        ttl_secs: i64,
        reply: oneshot::Sender<Result<InviteToken, NodeError>>,
    },
    Join {
        token: InviteToken,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Remove {
        node: NodeId,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    CreateProject {
        author: AuthorId,
        title: String,
        visibility: Visibility,
        reply: oneshot::Sender<Result<ProjectId, NodeError>>,
    },
    Edit {
        project: ProjectId,
        author: AuthorId,
        /// The session part of the actor to edit under; `None`: the author's own on this node.
        part: Option<[u8; orrery_crdt::session::SESSION_LEN]>,
        edit: EditFn,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Read {
        project: ProjectId,
        read: ReadFn,
    },
    ReadAll {
        read: ReadAllFn,
    },
    Status {
        reply: oneshot::Sender<Result<orrery_federation::Status, NodeError>>,
    },
    SyncDone {
        project: ProjectId,
        peer: NodeId,
        result: Result<Response, orrery_federation::FederationError>,
    },
    Search {
        query: Query,
        local: bool,
        deadline: Duration,
        reply: oneshot::Sender<Result<FederatedResults, NodeError>>,
    },
    SetPresence {
        author: AuthorId,
        project: ProjectId,
        notebook: Option<String>,
        cell: Option<String>,
        caret: Option<orrery_protocol::presence::Caret>,
        active: bool,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    /// An author's request that this node run a cell, to sign.
    RequestRun {
        author: AuthorId,
        project: ProjectId,
        notebook: orrery_crdt::NotebookId,
        cell: orrery_crdt::CellId,
        reply: oneshot::Sender<Result<runs::Placed, NodeError>>,
    },
    /// Where a job's next run goes, with the order to send if elsewhere.
    PlaceJob {
        job: crate::store::Job,
        reply: oneshot::Sender<Result<Option<(NodeId, orrery_protocol::job::JobOrder)>, NodeError>>,
    },
    /// How a run sent to another node ended: the change recording it, to take in.
    TakeRun {
        from: NodeId,
        request: orrery_protocol::run::RunRequest,
        change: Vec<u8>,
        seals: Vec<Signed<orrery_protocol::ChangeSeal, Unverified>>,
        blobs: Vec<Vec<u8>>,
        reply: oneshot::Sender<Result<orrery_protocol::run::Provenance, NodeError>>,
    },
    /// A run's outputs and record, to write into its project signed by this node.
    RecordRun {
        request:
            orrery_protocol::Signed<orrery_protocol::run::RunRequest, orrery_protocol::Verified>,
        outputs: Vec<serde_json::Value>,
        execution_count: Option<i64>,
        provenance: orrery_protocol::run::Provenance,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    /// A user of this node authenticated: their author is hosted here from now on.
    LearnAuthor {
        author: AuthorId,
    },
    WhoIsIn {
        project: ProjectId,
        reply: oneshot::Sender<Result<Vec<Presence>, NodeError>>,
    },
    BlobDone {
        project: ProjectId,
        blob: orrery_crdt::BlobRef,
        held: bool,
    },
    BlobDamaged {
        project: ProjectId,
        blob: orrery_crdt::BlobRef,
    },
    DataRequest {
        peer: NodeId,
        hash: [u8; 32],
        reply: oneshot::Sender<dataplane::Grant>,
    },
    /// What each member (this node included) holds and offers, for placing a lab.
    LabCandidates {
        reply: oneshot::Sender<Vec<crate::labs::placement::Candidate>>,
    },
    /// An order to `node`'s labs, signed with a local author's key.
    SignLabOrder {
        author: AuthorId,
        node: NodeId,
        action: orrery_protocol::lab::LabAction,
        reply: oneshot::Sender<Result<Signed<orrery_protocol::lab::LabOrder, Unverified>, String>>,
    },
    /// Judges an order that came in on the data plane.
    JudgeLabOrder {
        peer: NodeId,
        order: Signed<orrery_protocol::lab::LabOrder, Unverified>,
        reply: oneshot::Sender<Result<(AuthorId, orrery_protocol::lab::LabAction), String>>,
    },
    /// The labs' free room changed: the advert is renewed.
    Readvertise,
}

/// A handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<NodeEvent>,
    id: NodeId,
    cancel: CancellationToken,
    readers: Arc<Readers>,
    web_addr: Option<SocketAddr>,
    metrics: Arc<crate::metrics::Metrics>,
    labs: Arc<labs::Labs>,
    runs: Arc<runs::Runs>,
    /// The node's name, as its operator set it.
    name: Arc<str>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").field("id", &self.id).finish()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Polls (of 250 ms) between collections of unreferenced stored outputs: 10 minutes.
const BLOB_GC_POLLS: u64 = 2400;
/// How old an unreferenced stored output must be to be deleted: one stored by the command line
/// just before the change naming it reaches the running node is never taken.
const BLOB_GRACE: Duration = Duration::from_secs(3600);

struct NodeActor {
    me: NodeId,
    home: Home,
    key: SecretKey,
    config: Config,
    store: StoreHandle,
    fed: FederationHandle,
    projects: HashMap<ProjectId, Project>,
    sessions: HashMap<AuthorId, Session>,
    profiles: HashMap<AuthorId, Signed<AuthorProfile, Verified>>,
    author_keys: Vec<(AuthorId, SecretKey)>,
    peers: HashMap<(ProjectId, NodeId), PeerState>,
    in_flight: HashSet<(ProjectId, NodeId)>,
    again: HashSet<(ProjectId, NodeId)>,
    refused: HashSet<(ProjectId, NodeId)>,
    /// Snapshots on their way, and peers that refused one (they get changes in parts).
    snapshot_in_flight: HashSet<(ProjectId, NodeId)>,
    snapshot_refused: HashSet<(ProjectId, NodeId)>,
    adverts: BTreeMap<NodeId, NodeAdvert>,
    connected: HashSet<NodeId>,
    membership: Option<Membership>,
    marks: HashMap<ProjectId, (i64, i64)>,
    data_version: i64,
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<NodeEvent>,
    readers: Arc<Readers>,
    collections: Vec<CollectionSummary>,
    catalog_generation: i64,
    /// The preservation policies this node set, as last advertised (how many, their seqs).
    preservation_mark: (i64, i64),
    presence: PresenceBook,
    presence_seq: u64,
    blobs: crate::blobs::BlobStore,
    /// Blobs being fetched from other nodes.
    fetching: HashSet<orrery_crdt::BlobRef>,
    /// Blobs each project refers to that were found here (cleared when blobs are deleted).
    held_blobs: HashMap<ProjectId, std::collections::BTreeSet<orrery_crdt::BlobRef>>,
    /// What keeps projects from replicating, as last recorded (see `replication`).
    problems: HashMap<(ProjectId, NodeId, crate::store::Direction), String>,
    /// The data plane: stored outputs and dataset files between nodes.
    data: dataplane::DataPlane,
    polls: u64,
    /// When the advert (and with it the authors' hosting consents) was last renewed.
    advert_renewed: std::time::Instant,
    metrics: Arc<crate::metrics::Metrics>,
    /// The node's labs (their offers go in the advert; orders from other nodes reach them).
    labs: Arc<labs::Labs>,
    /// Lab and run orders from other nodes already honoured (replays are refused).
    lab_orders_seen: crate::labs::order::Seen,
    /// Runs: the kernels, and the runs made here for other nodes.
    runs: Arc<runs::Runs>,
    /// Held while the node runs; released when the actor is dropped.
    _run_lock: crate::home::RunLock,
}

fn project_copy_meta(p: &Project) -> (ProjectId, String) {
    (p.id(), p.title())
}
