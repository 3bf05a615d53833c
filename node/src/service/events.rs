//! What a node reports: its errors and the events it broadcasts to whoever subscribed.

use super::*;

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
    /// A cell could not be run (its lab or kernel could not be had, or the record was
    /// refused); nothing was recorded.
    #[error("the cell could not be run: {0}")]
    Run(String),
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
    /// This node's catalog changed (a collection published, rescanned or removed, possibly by
    /// another process).
    CatalogChanged,
    /// Changes arrived that were made concurrently with their author's removal or demotion:
    /// they are kept but not applied until an editor accepts them (`orrery project accept`).
    Held {
        /// The project.
        project: ProjectId,
        /// How many changes are newly held.
        changes: usize,
    },
    /// A stored output (a large cell output) a project refers to arrived from another node.
    BlobFetched {
        /// The project it was fetched for.
        project: ProjectId,
        /// The blob.
        blob: orrery_crdt::BlobRef,
    },
    /// A peer sent bytes over the data plane that do not match the hash they were asked for
    /// by; it was penalised and another holder asked.
    BadBytes {
        /// The peer.
        peer: NodeId,
    },
    /// Someone's presence in a project changed (never stored).
    Presence {
        /// The project.
        project: ProjectId,
        /// The author.
        author: AuthorId,
    },
}
