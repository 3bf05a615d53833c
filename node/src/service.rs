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

mod blobs;
mod metrics;
mod replication;
mod search;
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
use orrery_protocol::{AuthorId, AuthorProfile, NodeId, ProjectId, SecretKey, Signed, Verified};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub(crate) use search::Readers;
pub(crate) use store_thread::StoreHandle;

use crate::config::Config;
use crate::home::{Home, read_key};
use crate::store::{Store, StoreError};

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The federation layer failed.
    #[error(transparent)]
    Federation(#[from] orrery_federation::FederationError),
    /// An edit was refused.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// A key could not be read.
    #[error(transparent)]
    Key(#[from] crate::home::KeyFileError),
    /// The project is not held here.
    #[error("project {0} is not held by this node")]
    NoProject(ProjectId),
    /// The author is not local.
    #[error("author {0} does not live on this node")]
    NoAuthor(AuthorId),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// An invitation token does not decode.
    #[error("the invitation token is not valid: {0}")]
    BadToken(String),
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// A stored output could not be written.
    #[error(transparent)]
    Blobs(#[from] crate::blobs::BlobStoreError),
    /// Another node runs on this data directory.
    #[error("a node is already running on {0} (it holds node.lock); stop it first")]
    Running(std::path::PathBuf),
    /// The run lock could not be taken.
    #[error("cannot lock {path}: {source}", path = path.display())]
    Lock {
        /// The lock file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTPS certificate or key cannot be used.
    #[error("[web] tls_cert/tls_key: {0}")]
    Tls(#[from] orrery_web::TlsError),
    /// The HTTP face could not start.
    #[error("cannot serve HTTP on {addr}: {source}")]
    Web {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What a running node reports.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// A project's document changed (local edit or verified remote changes).
    ProjectChanged {
        /// The project.
        project: ProjectId,
        /// Its new heads.
        heads: Vec<orrery_protocol::ChangeHash>,
    },
    /// A member's advert was accepted.
    Advert {
        /// The member.
        node: NodeId,
        /// The advert's sequence number.
        seq: u64,
    },
    /// The member list changed.
    Membership,
    /// A member connected.
    Connected(NodeId),
    /// A member disconnected.
    Disconnected(NodeId),
    /// A peer's sync data failed verification; nothing of it was stored.
    Rejected {
        /// The peer.
        peer: NodeId,
        /// The project.
        project: ProjectId,
    },
    /// A peer was banned.
    Banned {
        /// The banned peer.
        node: NodeId,
        /// The offence that banned it.
        reason: orrery_federation::Offence,
    },
    /// A stored output was found damaged on this node's disk, quarantined, and is being
    /// fetched again.
    BlobDamaged {
        /// The project it belongs to.
        project: ProjectId,
        /// The blob.
        blob: orrery_crdt::BlobRef,
    },
    /// A stored output (a large cell output) a project refers to arrived from another node.
    BlobFetched {
        /// The project it was fetched for.
        project: ProjectId,
        /// The blob.
        blob: orrery_crdt::BlobRef,
    },
    /// Someone's presence in a project changed (never stored).
    Presence {
        /// The project.
        project: ProjectId,
        /// The author.
        author: AuthorId,
    },
}

/// An invitation as handed to the joining operator: the signed invitation, where to reach the
/// inviter, and the one-time code if there is one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InviteToken {
    /// The signed invitation.
    pub invitation: Signed<orrery_protocol::federation::Invitation>,
    /// The inviter's addresses.
    pub addrs: Vec<String>,
    /// The one-time code, for code invitations.
    pub code: Option<[u8; 32]>,
}

const TOKEN_PREFIX: &str = "orrery-invite-";

impl InviteToken {
    /// The token as text.
    pub fn encode(&self) -> String {
        format!(
            "{TOKEN_PREFIX}{}",
            hex::encode(orrery_protocol::encoding::encode(self))
        )
    }

    /// Reads a token.
    pub fn decode(text: &str) -> Result<Self, NodeError> {
        let hexpart = text
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(|| NodeError::BadToken(format!("it must start with {TOKEN_PREFIX}")))?;
        let bytes = hex::decode(hexpart).map_err(|e| NodeError::BadToken(e.to_string()))?;
        orrery_protocol::encoding::decode("invitation token", &bytes, 64 * 1024)
            .map_err(|e| NodeError::BadToken(e.to_string()))
    }
}

type EditFn = Box<dyn FnOnce(&mut Project, &Session) -> Result<(), EditError> + Send>;
type ReadFn = Box<dyn FnOnce(Option<&Project>) + Send>;

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
        edit: EditFn,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Read {
        project: ProjectId,
        read: ReadFn,
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
        active: bool,
        reply: oneshot::Sender<Result<(), NodeError>>,
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
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").field("id", &self.id).finish()
    }
}

impl NodeHandle {
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, NodeError>>) -> Command,
    ) -> Result<T, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Says where a local author is in a project (a notebook, a cell, or gone when `active` is
    /// false): signed by the author and sent to the nodes that hold the project; never stored.
    pub async fn set_presence(
        &self,
        author: AuthorId,
        project: ProjectId,
        notebook: Option<String>,
        cell: Option<String>,
        active: bool,
    ) -> Result<(), NodeError> {
        self.call(|reply| Command::SetPresence {
            author,
            project,
            notebook,
            cell,
            active,
            reply,
        })
        .await
    }

    /// Who is in a project now, as far as this node knows.
    pub async fn presence(&self, project: ProjectId) -> Result<Vec<Presence>, NodeError> {
        self.call(|reply| Command::WhoIsIn { project, reply }).await
    }

    /// Where the node serves HTTP (TAP at `/tap`).
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web_addr
    }

    /// Searches this node's catalog and, unless `local`, every member whose advert can match,
    /// waiting at most `deadline` for them.
    pub async fn search(
        &self,
        query: Query,
        local: bool,
        deadline: Duration,
    ) -> Result<FederatedResults, NodeError> {
        query
            .validate()
            .map_err(crate::catalog::CatalogError::from)?;
        self.call(|reply| Command::Search {
            query,
            local,
            deadline,
            reply,
        })
        .await
    }

    /// Runs an ADQL query on this node's `ivoa.obscore`.
    pub async fn tap(
        &self,
        adql: String,
        maxrec: u64,
    ) -> Result<crate::catalog::tap::TapRows, crate::catalog::tap::TapQueryError> {
        let readers = self.readers.clone();
        let (tx, rx) = oneshot::channel();
        let _ = readers
            .run(move |c| {
                let _ = tx.send(crate::catalog::tap::run(&c.conn, &adql, maxrec));
                Ok(())
            })
            .await;
        rx.await.unwrap_or_else(|_| {
            Err(crate::catalog::tap::TapQueryError::Catalog(
                crate::catalog::CatalogError::Timeout(crate::catalog::tap::TAP_DEADLINE),
            ))
        })
    }

    /// The file of a product this node holds, opened confined to its collection.
    pub async fn product_file(
        &self,
        collection: String,
        path: String,
    ) -> Result<Option<crate::catalog::ProductFile>, crate::catalog::CatalogError> {
        self.readers
            .run(move |c| c.product_file(&collection, &path))
            .await
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Founds a federation with this node as its first member.
    pub async fn create_federation(&self, name: &str) -> Result<(), NodeError> {
        let name = name.to_string();
        self.call(|reply| Command::CreateFederation { name, reply })
            .await
    }

    /// Issues an invitation for a named node or for a one-time code.
    pub async fn invite(
        &self,
        invitee: Option<NodeId>,
        code: Option<[u8; 32]>,
        ttl_secs: i64,
    ) -> Result<InviteToken, NodeError> {
        self.call(|reply| Command::Invite {
            invitee,
            code,
            ttl_secs,
            reply,
        })
        .await
    }

    /// Joins a federation with an invitation.
    pub async fn join(&self, token: InviteToken) -> Result<(), NodeError> {
        self.call(|reply| Command::Join { token, reply }).await
    }

    /// Removes a member.
    pub async fn remove(&self, node: NodeId) -> Result<(), NodeError> {
        self.call(|reply| Command::Remove { node, reply }).await
    }

    /// Creates a project owned by a local author.
    pub async fn create_project(
        &self,
        author: AuthorId,
        title: &str,
        visibility: Visibility,
    ) -> Result<ProjectId, NodeError> {
        let title = title.to_string();
        self.call(|reply| Command::CreateProject {
            author,
            title,
            visibility,
            reply,
        })
        .await
    }

    /// Edits a project as a local author; the edit is durable and on its way to peers when
    /// this returns.
    pub async fn edit(
        &self,
        project: ProjectId,
        author: AuthorId,
        edit: impl FnOnce(&mut Project, &Session) -> Result<(), EditError> + Send + 'static,
    ) -> Result<(), NodeError> {
        self.call(|reply| Command::Edit {
            project,
            author,
            edit: Box::new(edit),
            reply,
        })
        .await
    }

    /// Reads a project (or `None` if not held here).
    pub async fn read<T: Send + 'static>(
        &self,
        project: ProjectId,
        read: impl FnOnce(Option<&Project>) -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        let (reply, rx) = oneshot::channel();
        let f: ReadFn = Box::new(move |p| {
            let _ = reply.send(read(p));
        });
        self.tx
            .send(Command::Read { project, read: f })
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// The federation as seen from this node.
    pub async fn status(&self) -> Result<orrery_federation::Status, NodeError> {
        self.call(|reply| Command::Status { reply }).await
    }

    /// Stops the node (the federation actor and the node actor).
    pub fn shutdown(&self) {
        self.cancel.cancel();
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

/// Starts a node on its data directory. Returns its handle and the task running it.
pub async fn start(home: Home) -> Result<(NodeHandle, tokio::task::JoinHandle<()>), NodeError> {
    let config = Config::load(&home.config()).map_err(|e| NodeError::Config(e.to_string()))?;
    let key = read_key(&home.node_key())?;
    let me = NodeId(key.public());
    let run_lock = crate::home::RunLock::acquire(&home)
        .map_err(|source| NodeError::Lock {
            path: home.run_lock(),
            source,
        })?
        .ok_or_else(|| NodeError::Running(home.root().to_path_buf()))?;
    let metrics = Arc::new(crate::metrics::Metrics::new(&me.to_string()));
    let db = home.database();
    let store = tokio::task::spawn_blocking(move || Store::open(&db))
        .await
        .map_err(|_| NodeError::Stopped)??;
    let membership = store.membership()?;
    let authors = store.authors()?;
    let rows = store.projects()?;
    let mut projects = HashMap::new();
    for row in rows {
        match store.load(row.id) {
            Ok(p) => {
                projects.insert(row.id, p);
            }
            Err(e) => warn!(project = %row.id.short(), error = %e, "project not loaded"),
        }
    }
    let marks: HashMap<ProjectId, (i64, i64)> = store
        .project_marks()?
        .into_iter()
        .map(|(p, a, b)| (p, (a, b)))
        .collect();
    let data_version = store.data_version()?;
    let known_addrs = store.peer_addrs()?;
    let readers = Arc::new(Readers::new(home.database()));
    let catalog_generation = readers.run(|c| c.generation()).await.unwrap_or(0);
    let collections = readers.run(|c| c.summaries()).await.unwrap_or_else(|e| {
        warn!(error = %e, "catalog summaries not read");
        Vec::new()
    });
    let listener = web::bind(config.web.listen).await?;
    let web_addr = listener.local_addr().map_err(|source| NodeError::Web {
        addr: config.web.listen,
        source,
    })?;
    let https = web::bind_https(&config.web, &home).await?;
    let base_url = web::base_url(&config.web, web_addr, https.as_ref());
    {
        let db = home.database();
        let url = base_url.clone();
        tokio::task::spawn_blocking(move || {
            crate::catalog::Catalog::open(&db).and_then(|c| c.set_public_url(&url))
        })
        .await
        .map_err(|_| NodeError::Stopped)??;
    }
    std::fs::write(home.root().join("web.addr"), web_addr.to_string()).map_err(|source| {
        NodeError::Web {
            addr: web_addr,
            source,
        }
    })?;
    let store = StoreHandle::spawn(store);
    let cancel = CancellationToken::new();
    let (fed, fed_events, _fed_task) = orrery_federation::spawn(
        key.clone(),
        config.network.clone(),
        membership.clone(),
        cancel.child_token(),
    )?;
    let (tx, rx) = mpsc::channel(256);
    let (events, _) = broadcast::channel(4096);
    let mut sessions = HashMap::new();
    let mut profiles = HashMap::new();
    let mut author_keys = Vec::new();
    for a in &authors {
        let akey = read_key(&home.author_key(&a.id))?;
        author_keys.push((a.id, akey.clone()));
        sessions.insert(
            a.id,
            Session::new(akey).map_err(|e| NodeError::Config(e.to_string()))?,
        );
        profiles.insert(a.id, a.profile.clone());
    }
    let mut actor = NodeActor {
        me,
        key,
        config,
        store,
        fed,
        projects,
        sessions,
        profiles,
        author_keys,
        peers: HashMap::new(),
        in_flight: HashSet::new(),
        again: HashSet::new(),
        refused: HashSet::new(),
        snapshot_in_flight: HashSet::new(),
        snapshot_refused: HashSet::new(),
        adverts: BTreeMap::new(),
        connected: HashSet::new(),
        membership,
        marks,
        data_version,
        tx: tx.clone(),
        events: events.clone(),
        readers: readers.clone(),
        collections,
        catalog_generation,
        presence: PresenceBook::default(),
        presence_seq: 0,
        blobs: crate::blobs::BlobStore::new(home.blobs()),
        fetching: HashSet::new(),
        held_blobs: HashMap::new(),
        problems: HashMap::new(),
        fetch_permits: Arc::new(tokio::sync::Semaphore::new(4)),
        serve_permits: Arc::new(tokio::sync::Semaphore::new(8)),
        polls: 0,
        advert_renewed: std::time::Instant::now(),
        metrics: metrics.clone(),
        _run_lock: run_lock,
    };
    actor.publish_advert().await;
    // Reconnect to the members this node knew before it stopped.
    for (node, addrs) in known_addrs {
        if node == me {
            continue;
        }
        for a in addrs {
            if let Ok(addr) = a.parse() {
                let _ = actor.fed.dial(addr).await;
            }
        }
    }
    let handle = NodeHandle {
        tx,
        events,
        id: me,
        cancel: cancel.clone(),
        readers,
        web_addr: Some(web_addr),
        metrics,
    };
    let router = orrery_web::router(
        web::NodePort {
            node: handle.clone(),
        },
        orrery_web::WebConfig::new(&base_url),
    );
    web::serve_https(https, router.clone(), cancel.clone());
    let web_cancel = cancel.clone();
    tokio::spawn(async move {
        let stop = async move { web_cancel.cancelled().await };
        if let Err(e) = orrery_web::serve(listener, router, stop).await {
            warn!(error = %e, "HTTP server stopped");
        }
    });
    info!(addr = %web_addr, "serving TAP at http://{web_addr}/tap");
    metrics::serve(&actor.config.metrics, &home, handle.clone(), cancel.clone()).await?;
    let task = tokio::spawn(async move { actor.run(rx, fed_events, cancel).await });
    Ok((handle, task))
}

/// Polls (of 250 ms) between collections of unreferenced stored outputs: 10 minutes.
const BLOB_GC_POLLS: u64 = 2400;
/// How old an unreferenced stored output must be to be deleted: one stored by the command line
/// just before the change naming it reaches the running node is never taken.
const BLOB_GRACE: Duration = Duration::from_secs(3600);

struct NodeActor {
    me: NodeId,
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
    presence: PresenceBook,
    presence_seq: u64,
    blobs: crate::blobs::BlobStore,
    /// Blobs being fetched from other nodes.
    fetching: HashSet<orrery_crdt::BlobRef>,
    /// Blobs each project refers to that were found here (cleared when blobs are deleted).
    held_blobs: HashMap<ProjectId, std::collections::BTreeSet<orrery_crdt::BlobRef>>,
    /// What keeps projects from replicating, as last recorded (see `replication`).
    problems: HashMap<(ProjectId, NodeId, crate::store::Direction), String>,
    /// Fetches running at once (each holds one 4 MiB part in memory at a time).
    fetch_permits: Arc<tokio::sync::Semaphore>,
    /// Parts of stored outputs being read for other nodes at once; more are answered `Busy`.
    serve_permits: Arc<tokio::sync::Semaphore>,
    polls: u64,
    /// When the advert (and with it the authors' hosting consents) was last renewed.
    advert_renewed: std::time::Instant,
    metrics: Arc<crate::metrics::Metrics>,
    /// Held while the node runs; released when the actor is dropped.
    _run_lock: crate::home::RunLock,
}

impl NodeActor {
    async fn run(
        &mut self,
        mut commands: mpsc::Receiver<Command>,
        mut fed_events: mpsc::Receiver<FedEvent>,
        cancel: CancellationToken,
    ) {
        let mut poll = tokio::time::interval(Duration::from_millis(250));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(cmd) = commands.recv() => self.on_command(cmd).await,
                Some(ev) = fed_events.recv() => self.on_federation(ev).await,
                _ = poll.tick() => self.on_poll().await,
            }
        }
        info!(node = %self.me.short(), "node stopped");
    }

    fn emit(&self, e: NodeEvent) {
        let _ = self.events.send(e);
    }

    fn set_presence(
        &mut self,
        author: AuthorId,
        project: ProjectId,
        notebook: Option<String>,
        cell: Option<String>,
        active: bool,
    ) -> Result<(), NodeError> {
        let key = self
            .author_keys
            .iter()
            .find(|(a, _)| *a == author)
            .map(|(_, k)| k.clone())
            .ok_or(NodeError::NoAuthor(author))?;
        let p = self
            .projects
            .get(&project)
            .ok_or(NodeError::NoProject(project))?;
        let now = now_ms();
        // Milliseconds keep the sequence rising across restarts.
        self.presence_seq = (self.presence_seq + 1).max(u64::try_from(now).unwrap_or(0));
        let signed = Signed::sign(
            &key,
            Presence {
                project,
                author,
                node: self.me,
                notebook,
                cell,
                active,
                seq: self.presence_seq,
                at_ms: now,
            },
        )
        .into_unverified();
        if let Ok(Some(_)) = self.presence.offer(signed.clone(), now) {
            self.emit(NodeEvent::Presence { project, author });
        }
        for peer in self.targets(p) {
            let fed = self.fed.clone();
            let signed = signed.clone();
            tokio::spawn(async move {
                let _ = fed.request(peer, Request::Presence(signed)).await;
            });
        }
        Ok(())
    }

    /// A member's presence statement: kept only if its author signed it, works at the sending
    /// node, and is a member of a project held here.
    fn receive_presence(
        &mut self,
        from: NodeId,
        signed: Signed<Presence, orrery_protocol::Unverified>,
    ) -> Response {
        let claimed = signed.clone().verify().ok().map(|v| v.value().clone());
        let Some(p) = claimed else {
            return Response::Refused(Refusal::Rejected);
        };
        if p.node != from {
            return Response::Refused(Refusal::Rejected);
        }
        let Some(project) = self.projects.get(&p.project) else {
            return Response::Refused(Refusal::NotReplicated);
        };
        if project.role_of(&p.author).is_none() {
            return Response::Refused(Refusal::Rejected);
        }
        match self.presence.offer(signed, now_ms()) {
            Ok(Some(p)) => {
                self.emit(NodeEvent::Presence {
                    project: p.project,
                    author: p.author,
                });
                Response::Noted
            }
            Ok(None) => Response::Noted,
            Err(e) => {
                debug!(peer = %from.short(), error = %e, "presence refused");
                Response::Refused(Refusal::Rejected)
            }
        }
    }

    async fn publish_advert(&mut self) {
        self.advert_renewed = std::time::Instant::now();
        let federation = self
            .membership
            .as_ref()
            .map(Membership::id)
            .unwrap_or(orrery_protocol::federation::FederationId([0; 32]));
        let advert = NodeAdvert {
            federation,
            node: self.me,
            seq: 0,
            issued_at: 0,
            expires_at: 0,
            name: self.config.node.name.clone(),
            institution: self.config.node.institution.clone(),
            contact: self.config.node.contact.clone(),
            addresses: Vec::new(),
            // Consent to be hosted is bound to a federation: none before this node is in one.
            authors: self
                .author_keys
                .iter()
                .filter(|_| self.membership.is_some())
                .map(|(author, key)| {
                    Signed::sign(
                        key,
                        orrery_protocol::advert::Hosting {
                            author: *author,
                            node: self.me,
                            federation,
                            // Renewed with every advert; lapses soon after the node stops
                            // holding the author's key.
                            expires_at: now() + self.config.network.advert_ttl_secs as i64 * 2,
                        },
                    )
                    .into_unverified()
                })
                .collect(),
            collections: self.collections.clone(),
            compute: self.config.compute.clone(),
        };
        let _ = self.fed.set_advert(advert).await;
    }

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::CreateFederation { name, reply } => {
                let r = self.create_federation(&name).await;
                let _ = reply.send(r);
            }
            Command::Invite {
                invitee,
                code,
                ttl_secs,
                reply,
            } => {
                let r = async {
                    let invitation = self.fed.invite(invitee, code, now() + ttl_secs).await?;
                    let status = self.fed.status().await?;
                    let addrs = status
                        .listening
                        .iter()
                        .map(|a| format!("{a}/p2p/{}", orrery_federation::peer::peer_id(&self.me)))
                        .collect();
                    Ok(InviteToken {
                        invitation,
                        addrs,
                        code,
                    })
                }
                .await;
                let _ = reply.send(r);
            }
            Command::Join { token, reply } => {
                let r = self.join(token).await;
                let _ = reply.send(r);
            }
            Command::Remove { node, reply } => {
                let r = self
                    .fed
                    .remove(node, "removed by an operator")
                    .await
                    .map_err(NodeError::from);
                let _ = reply.send(r);
            }
            Command::CreateProject {
                author,
                title,
                visibility,
                reply,
            } => {
                let r = self.create_project(author, &title, visibility).await;
                let _ = reply.send(r);
            }
            Command::Edit {
                project,
                author,
                edit,
                reply,
            } => {
                let r = self.edit(project, author, edit).await;
                let _ = reply.send(r);
            }
            Command::Read { project, read } => read(self.projects.get(&project)),
            Command::SetPresence {
                author,
                project,
                notebook,
                cell,
                active,
                reply,
            } => {
                let r = self.set_presence(author, project, notebook, cell, active);
                let _ = reply.send(r);
            }
            Command::BlobDone {
                project,
                blob,
                held,
            } => {
                self.fetching.remove(&blob);
                if held {
                    self.emit(NodeEvent::BlobFetched { project, blob });
                }
            }
            Command::BlobDamaged { project, blob } => self.blob_damaged(project, blob),
            Command::WhoIsIn { project, reply } => {
                let _ = reply.send(Ok(self.presence.in_project(&project, now_ms())));
            }
            Command::Search {
                query,
                local,
                deadline,
                reply,
            } => {
                let me = search::Target {
                    node: self.me,
                    name: self.config.node.name.clone(),
                };
                let include_local = search::node_selected(&query, &me.node, &me.name);
                let mut targets = Vec::new();
                let mut not_asked = 0u64;
                if !local {
                    let members = self
                        .membership
                        .as_ref()
                        .map(Membership::members)
                        .unwrap_or_default();
                    for (node, joined_as) in members {
                        if node == self.me {
                            continue;
                        }
                        // A member whose advert has not arrived yet is asked anyway, under the
                        // name it joined with: only an advert can rule it out.
                        let (name, can_match) = match self.adverts.get(&node) {
                            Some(advert) => {
                                (advert.name.clone(), search::could_match(&query, advert))
                            }
                            None => (joined_as, true),
                        };
                        if search::node_selected(&query, &node, &name) && can_match {
                            targets.push(search::Target { node, name });
                        } else {
                            not_asked += 1;
                        }
                    }
                }
                if let Some(wanted) = query.filters.get(&orrery_catalog::Facet::Node) {
                    let known = include_local
                        || self.adverts.iter().any(|(node, advert)| {
                            search::node_selected(&query, node, &advert.name)
                        });
                    if !known {
                        let _ = reply.send(Err(NodeError::Config(format!(
                            "no member node is named {}; `orrery federation status` lists them",
                            wanted.join(" or ")
                        ))));
                        return;
                    }
                }
                let readers = self.readers.clone();
                let fed = self.fed.clone();
                tokio::spawn(async move {
                    let r = search::federated(
                        me,
                        include_local,
                        readers,
                        fed,
                        targets,
                        not_asked,
                        query,
                        deadline,
                    )
                    .await
                    .map_err(NodeError::from);
                    let _ = reply.send(r);
                });
            }
            Command::Status { reply } => {
                let _ = reply.send(self.fed.status().await.map_err(NodeError::from));
            }
            Command::SyncDone {
                project,
                peer,
                result,
            } => self.on_sync_done(project, peer, result).await,
        }
    }

    async fn create_federation(&mut self, name: &str) -> Result<(), NodeError> {
        let m = Membership::found(&self.key, name, now())
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let events = m.events();
        self.store
            .run(move |s| s.add_membership_events(&events).map(|_| ()))
            .await?;
        self.membership = Some(m.clone());
        self.fed.adopt(m).await?;
        self.publish_advert().await;
        Ok(())
    }

    async fn join(&mut self, token: InviteToken) -> Result<(), NodeError> {
        let inviter = NodeId(*token.invitation.signer());
        let request = Signed::sign(
            &self.key,
            JoinRequest {
                invitation: token.invitation.clone(),
                node: self.me,
                name: self.config.node.name.clone(),
                code: token.code,
                at: now(),
            },
        );
        let addrs = token.addrs.iter().filter_map(|a| a.parse().ok()).collect();
        self.fed
            .join(request.into_unverified(), inviter, addrs)
            .await?;
        // Remember where the inviter is, to reconnect after a restart. The member list itself
        // arrives as a federation event and is stored there.
        let addrs = token.addrs.clone();
        self.store
            .run(move |s| s.put_peer_addrs(inviter, &addrs))
            .await?;
        Ok(())
    }

    async fn create_project(
        &mut self,
        author: AuthorId,
        title: &str,
        visibility: Visibility,
    ) -> Result<ProjectId, NodeError> {
        let session = self
            .sessions
            .get(&author)
            .ok_or(NodeError::NoAuthor(author))?;
        let (mut project, mut batch) = Project::create(session, title, visibility)?;
        if let Some(profile) = self.profiles.get(&author) {
            project.publish_profile(session, profile)?;
            let rest = project.seal(session);
            batch.changes.extend(rest.changes);
            batch.seals.extend(rest.seals);
        }
        let id = project.id();
        let title = project.title();
        self.store
            .run(move |s| s.create_project_raw(id, &title, &batch))
            .await?;
        self.note_own_write(id).await;
        self.projects.insert(id, project);
        self.emit(NodeEvent::ProjectChanged {
            project: id,
            heads: self
                .projects
                .get(&id)
                .map(Project::heads)
                .unwrap_or_default(),
        });
        self.kick_all(id);
        Ok(id)
    }

    async fn edit(
        &mut self,
        id: ProjectId,
        author: AuthorId,
        edit: EditFn,
    ) -> Result<(), NodeError> {
        let session = self
            .sessions
            .get(&author)
            .ok_or(NodeError::NoAuthor(author))?
            .clone();
        let project = self.projects.get_mut(&id).ok_or(NodeError::NoProject(id))?;
        let result = edit(project, &session);
        // Large outputs the edit moved out of the document are stored before the changes that
        // name them.
        let blobs = project.take_blobs();
        if !blobs.is_empty() {
            let store = self.blobs.for_project(id);
            let stored = tokio::task::spawn_blocking(move || store.put_all(&blobs))
                .await
                .map_err(|_| NodeError::Stopped)?;
            if let Err(e) = stored {
                // The edit is undone: the replica goes back to what the store holds, so no
                // change naming a blob that was not stored is ever sealed or sent.
                warn!(error = %e, "could not store an edit's large outputs; the edit is undone");
                if let Ok(p) = self.store.run(move |s| s.load(id)).await {
                    self.projects.insert(id, p);
                }
                return Err(e.into());
            }
        }
        let project = self.projects.get_mut(&id).ok_or(NodeError::NoProject(id))?;
        if let Some(profile) = self.profiles.get(&author)
            && result.is_ok()
            && project.role_of(&author).is_some_and(|r| r.can_edit())
        {
            let _ = project.publish_profile(&session, profile);
        }
        let batch = project.seal(&session);
        let title = project.title();
        if !batch.is_empty() {
            self.store
                .run(move |s| s.append_raw(id, &title, &batch))
                .await?;
            self.note_own_write(id).await;
            if let Some(p) = self.projects.get(&id) {
                self.maybe_compact(p).await;
                self.emit(NodeEvent::ProjectChanged {
                    project: id,
                    heads: p.heads(),
                });
            }
            self.kick_all(id);
        }
        result.map_err(NodeError::from)
    }

    async fn on_federation(&mut self, event: FedEvent) {
        self.metrics.on_federation(&event);
        match event {
            FedEvent::Listening(addr) => {
                let addrs: Vec<String> = self
                    .fed
                    .status()
                    .await
                    .map(|s| s.listening.iter().map(ToString::to_string).collect())
                    .unwrap_or_else(|_| vec![addr.to_string()]);
                let _ = self.store.run(move |s| s.set_listen_addrs(&addrs)).await;
            }
            FedEvent::Connected(node) => {
                self.connected.insert(node);
                let _ = self.store.run(move |s| s.set_peer(node, true)).await;
                self.emit(NodeEvent::Connected(node));
                let ids: Vec<ProjectId> = self.projects.keys().copied().collect();
                for id in ids {
                    self.peers.remove(&(id, node));
                    self.refused.remove(&(id, node));
                    if self
                        .projects
                        .get(&id)
                        .is_some_and(|p| self.targets(p).contains(&node))
                    {
                        self.kick(id, node);
                    }
                }
            }
            FedEvent::Disconnected(node) => {
                self.connected.remove(&node);
                let _ = self.store.run(move |s| s.set_peer(node, false)).await;
                self.emit(NodeEvent::Disconnected(node));
            }
            FedEvent::Advert(advert) => {
                let node = advert.node;
                let seq = advert.seq;
                let newly_hosting = self
                    .adverts
                    .get(&node)
                    .is_none_or(|old| old.hosted_authors() != advert.hosted_authors());
                let addrs = advert.addresses.clone();
                self.adverts.insert(node, (*advert).clone());
                let stored = (*advert).clone();
                let _ = self
                    .store
                    .run(move |s| {
                        s.put_peer_addrs(node, &addrs)?;
                        s.put_advert(&stored)
                    })
                    .await;
                self.emit(NodeEvent::Advert { node, seq });
                if newly_hosting {
                    let ids: Vec<ProjectId> = self.projects.keys().copied().collect();
                    for id in ids {
                        if self
                            .projects
                            .get(&id)
                            .is_some_and(|p| self.targets(p).contains(&node))
                        {
                            self.kick(id, node);
                        }
                    }
                }
            }
            FedEvent::Membership(events) => {
                let stored = events.clone();
                let _ = self
                    .store
                    .run(move |s| s.add_membership_events(&stored).map(|_| ()))
                    .await;
                if let Ok(Some(m)) = self.store.run(|s| s.membership()).await {
                    let entered = self.membership.is_none();
                    self.membership = Some(m);
                    if entered {
                        self.publish_advert().await;
                    }
                }
                if let Some(m) = &self.membership {
                    self.adverts.retain(|n, _| m.is_member(n));
                }
                self.emit(NodeEvent::Membership);
            }
            FedEvent::Request {
                from,
                request,
                reply,
            } => {
                let response = match request {
                    Request::Sync(frame) => {
                        let project = frame.project;
                        let r = self.receive(from, frame).await;
                        debug!(peer = %from.short(), project = %project.short(), answer = ?r.as_ref().map(|f| f.as_ref().map(|f| f.message.len())), "sync request answered");
                        match r {
                            Ok(Some(f)) => {
                                let sent = crate::metrics::Direction::Sent;
                                self.metrics.sync_frame(sent, f.message.len());
                                Response::Sync(f)
                            }
                            Ok(None) => Response::Sync(SyncFrame {
                                project,
                                message: Vec::new(),
                                seals: Vec::new(),
                            }),
                            Err(r) => Response::Refused(r),
                        }
                    }
                    Request::Presence(signed) => self.receive_presence(from, signed),
                    Request::Blob(want) => {
                        // The permit first: checking a request walks the project's outputs.
                        let Ok(permit) = self.serve_permits.clone().try_acquire_owned() else {
                            let _ = reply.send(Response::Refused(Refusal::Busy));
                            return;
                        };
                        let (project, blob) = (
                            want.project,
                            orrery_crdt::BlobRef {
                                hash: want.hash,
                                len: want.len,
                            },
                        );
                        let Some(read) = self.serve_blob(from, want) else {
                            let _ = reply.send(Response::Refused(Refusal::Missing));
                            return;
                        };
                        let tx = self.tx.clone();
                        tokio::spawn(async move {
                            let _permit = permit;
                            let chunk = tokio::task::spawn_blocking(read)
                                .await
                                .unwrap_or(Err(crate::blobs::Unreadable::Missing));
                            if chunk == Err(crate::blobs::Unreadable::Damaged) {
                                let _ = tx.send(Command::BlobDamaged { project, blob }).await;
                            }
                            // A damaged blob is refused like a missing one: the peer asks
                            // another holder, and this node fetches a good copy.
                            let _ = reply.send(match chunk {
                                Ok(bytes) => {
                                    Response::Blob(orrery_protocol::wire::BlobChunk { bytes })
                                }
                                Err(_) => Response::Refused(Refusal::Missing),
                            });
                        });
                        return;
                    }
                    Request::Search(query) => {
                        if query.validate().is_err() {
                            Response::Refused(Refusal::Malformed)
                        } else {
                            let readers = self.readers.clone();
                            tokio::spawn(async move {
                                let r = readers
                                    .run(move |c| crate::catalog::search::search(&c.conn, &query))
                                    .await;
                                let _ = reply.send(match r {
                                    Ok(r) => Response::Search(r),
                                    Err(e) => {
                                        debug!(peer = %from.short(), error = %e, "search refused");
                                        Response::Refused(Refusal::Busy)
                                    }
                                });
                            });
                            return;
                        }
                    }
                    _ => Response::Refused(Refusal::Malformed),
                };
                let _ = reply.send(response);
            }
            FedEvent::Banned { node, reason } => self.emit(NodeEvent::Banned { node, reason }),
            FedEvent::RemovedSelf => warn!("this node was removed from the federation"),
        }
    }

    /// Notices writes by other processes (the command line) and syncs them.
    async fn on_poll(&mut self) {
        self.polls += 1;
        // The authors' hosting consents in the advert lapse after twice the advert's lifetime:
        // renew them well before.
        let ttl = Duration::from_secs(self.config.network.advert_ttl_secs);
        if self.advert_renewed.elapsed() >= ttl / 2 {
            self.publish_advert().await;
        }
        // Stored outputs nothing refers to any more (replaced outputs) are deleted now and then.
        if self.polls.is_multiple_of(BLOB_GC_POLLS) {
            let keep: HashMap<ProjectId, HashSet<[u8; 32]>> = self
                .projects
                .iter()
                .map(|(id, p)| (*id, p.blob_refs().into_iter().map(|b| b.hash).collect()))
                .collect();
            let root = self.blobs.clone();
            self.held_blobs.clear();
            tokio::task::spawn_blocking(move || {
                let none = HashSet::new();
                let mut deleted = 0;
                // A project no longer held here keeps nothing.
                for (id, store) in root.projects() {
                    deleted += store.collect_garbage(keep.get(&id).unwrap_or(&none), BLOB_GRACE);
                    store.remove_if_empty();
                }
                if deleted > 0 {
                    info!(deleted, "stored outputs no project refers to were deleted");
                }
            });
        }
        // Stored outputs that could not be fetched yet are asked for again every few seconds,
        // and those held are looked for on disk again: one that a local reader (an export)
        // found damaged and quarantined, or that was lost, is fetched again.
        if self.polls.is_multiple_of(20) {
            self.held_blobs.clear();
            let ids: Vec<ProjectId> = self.projects.keys().copied().collect();
            for id in ids {
                self.fetch_blobs(id, None);
            }
        }
        let Ok(v) = self.store.run(|s| s.data_version()).await else {
            return;
        };
        if v == self.data_version {
            return;
        }
        self.data_version = v;
        // The catalog's summaries cost a scan of its products: only when the catalog changed.
        if let Ok(generation) = self.readers.run(|c| c.generation()).await
            && generation != self.catalog_generation
            && let Ok(summaries) = self.readers.run(|c| c.summaries()).await
        {
            self.catalog_generation = generation;
            if summaries != self.collections {
                self.collections = summaries;
                self.publish_advert().await;
            }
        }
        if let Ok(Some(m)) = self.store.run(|s| s.membership()).await {
            let known = self.membership.as_ref().map(|x| x.events().len());
            if known != Some(m.events().len()) {
                if self.membership.as_ref().map(Membership::id) == Some(m.id()) {
                    let _ = self.fed.announce(m.events()).await;
                } else {
                    let _ = self.fed.adopt(m.clone()).await;
                }
                self.membership = Some(m);
                self.publish_advert().await;
            }
        }
        let Ok(marks) = self.store.run(|s| s.project_marks()).await else {
            return;
        };
        for (id, a, b) in marks {
            if self.marks.get(&id) == Some(&(a, b)) {
                continue;
            }
            self.marks.insert(id, (a, b));
            if let Ok(p) = self.store.run(move |s| s.load(id)).await {
                let changed = self.projects.get(&id).map(Project::heads) != Some(p.heads());
                // Keep anything only in memory (waiting changes) by merging the stored history in.
                match self.projects.get_mut(&id) {
                    Some(mine) => {
                        let _ = mine.ingest(p.history());
                    }
                    None => {
                        self.projects.insert(id, p);
                    }
                }
                if changed {
                    if let Some(p) = self.projects.get(&id) {
                        self.emit(NodeEvent::ProjectChanged {
                            project: id,
                            heads: p.heads(),
                        });
                    }
                    self.kick_all(id);
                }
            }
        }
    }
}

fn project_copy_meta(p: &Project) -> (ProjectId, String) {
    (p.id(), p.title())
}
