//! The federation actor's handle: commands in, replies through `oneshot`, events out.

use libp2p::Multiaddr;
use orrery_protocol::advert::NodeAdvert;
use orrery_protocol::federation::{JoinRequest, MembershipEvent};
use orrery_protocol::wire::{Request, Response};
use orrery_protocol::{NodeId, Signed, Unverified};
use tokio::sync::{mpsc, oneshot};

/// Why a federation call failed.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The actor has stopped.
    #[error("the federation layer has stopped")]
    Stopped,
    /// The peer is not reachable or the request failed in transit.
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: NodeId,
        /// What happened.
        reason: String,
    },
    /// The peer is not a member.
    #[error("{0} is not a member of the federation")]
    NotAMember(NodeId),
    /// The node is not in a federation.
    #[error("this node is not in a federation yet; create one or join with an invitation")]
    NoFederation,
    /// Joining failed.
    #[error("joining failed: {0}")]
    Join(String),
    /// This node was removed from the federation: it asks no member anything.
    #[error("this node was removed from the federation; ask its founder for a new invitation")]
    Removed,
    /// A listen address could not be used.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// What the actor reports.
// Events are handled and dropped one at a time; boxing the request would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Event {
    /// The swarm listens on a new address.
    Listening(Multiaddr),
    /// A member connected.
    Connected(NodeId),
    /// A member disconnected.
    Disconnected(NodeId),
    /// A newer advert of a member was accepted.
    Advert(Box<NodeAdvert>),
    /// The membership changed; here is every event, for storing.
    Membership(Vec<MembershipEvent>),
    /// A member sent a request that the node must answer (sync).
    Request {
        /// Who sent it.
        from: NodeId,
        /// The request.
        request: Request,
        /// Where the answer goes.
        reply: oneshot::Sender<Response>,
    },
    /// A peer was disconnected and banned for repeated offences.
    Banned {
        /// The banned peer.
        node: NodeId,
        /// The offence that reached the limit.
        reason: crate::offence::Offence,
    },
    /// This node was removed from the federation.
    RemovedSelf,
}

/// The status of one member.
#[derive(Debug, Clone)]
pub struct MemberStatus {
    /// The member.
    pub node: NodeId,
    /// The name it joined under.
    pub name: String,
    /// Its latest advert, if any.
    pub advert: Option<NodeAdvert>,
    /// Whether a connection to it is open.
    pub connected: bool,
}

/// The federation as seen from this node.
#[derive(Debug, Clone)]
pub struct Status {
    /// This node.
    pub me: NodeId,
    /// The federation's name and id, if in one.
    pub federation: Option<(String, orrery_protocol::federation::FederationId)>,
    /// Current members.
    pub members: Vec<MemberStatus>,
    /// Removed nodes.
    pub removed: Vec<NodeId>,
    /// Addresses listened on.
    pub listening: Vec<Multiaddr>,
    /// Peers connected now (members and strangers).
    pub connections: usize,
    /// Why this node was removed from the federation, if it was; it then dials no member.
    pub removed_self: Option<RemovedSelf>,
    /// Peers this node refuses, with the connection attempts it counted from each.
    pub refused: Vec<RefusedPeer>,
    /// Peers banned now, each with the offence that banned it.
    pub banned: Vec<crate::offence::Ban>,
}

/// This node's removal, as signed by the founder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedSelf {
    /// Who removed it (the founder).
    pub by: NodeId,
    /// When (Unix seconds).
    pub at: i64,
    /// The reason given.
    pub reason: String,
}

/// A peer this node refuses to serve, and how often it tried to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedPeer {
    /// The peer's libp2p id.
    pub peer: libp2p::PeerId,
    /// The node behind it, if it uses a node key.
    pub node: Option<NodeId>,
    /// Why it is refused.
    pub reason: crate::RefusalReason,
    /// Connections it opened since it was first refused (while remembered).
    pub attempts: u64,
}

pub(crate) enum Command {
    Request {
        to: NodeId,
        request: Request,
        reply: oneshot::Sender<Result<Response, FederationError>>,
    },
    SetAdvert {
        advert: Box<NodeAdvert>,
    },
    Join {
        request: Signed<JoinRequest, Unverified>,
        inviter: NodeId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<Vec<MembershipEvent>, FederationError>>,
    },
    Invite {
        invitee: Option<NodeId>,
        code: Option<[u8; 32]>,
        expires_at: i64,
        reply: oneshot::Sender<
            Result<Signed<orrery_protocol::federation::Invitation, Unverified>, FederationError>,
        >,
    },
    Remove {
        node: NodeId,
        reason: String,
        reply: oneshot::Sender<Result<(), FederationError>>,
    },
    Penalise {
        peer: NodeId,
        reason: crate::offence::Offence,
    },
    Dial {
        addr: Multiaddr,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    IsMember {
        node: NodeId,
        reply: oneshot::Sender<bool>,
    },
    Provide {
        key: Vec<u8>,
    },
    Adopt {
        membership: Box<orrery_protocol::federation::Membership>,
    },
    Announce {
        events: Vec<MembershipEvent>,
    },
}

/// A cheap, cloneable handle to the federation actor.
#[derive(Clone)]
pub struct FederationHandle {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) me: NodeId,
}

impl std::fmt::Debug for FederationHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationHandle")
            .field("me", &self.me)
            .finish()
    }
}

impl FederationHandle {
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, FederationError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| FederationError::Stopped)?;
        rx.await.map_err(|_| FederationError::Stopped)
    }

    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Sends a request to a member and waits for its answer.
    pub async fn request(&self, to: NodeId, request: Request) -> Result<Response, FederationError> {
        self.call(|reply| Command::Request { to, request, reply })
            .await?
    }

    /// Replaces this node's advert (the actor numbers, signs and gossips it, now and
    /// periodically).
    pub async fn set_advert(&self, advert: NodeAdvert) -> Result<(), FederationError> {
        self.tx
            .send(Command::SetAdvert {
                advert: Box::new(advert),
            })
            .await
            .map_err(|_| FederationError::Stopped)
    }

    /// Joins a federation through an inviter reachable at `addrs`; answers with the
    /// federation's membership events, for the caller to keep before it says it joined.
    pub async fn join(
        &self,
        request: Signed<JoinRequest, Unverified>,
        inviter: NodeId,
        addrs: Vec<Multiaddr>,
    ) -> Result<Vec<MembershipEvent>, FederationError> {
        self.call(|reply| Command::Join {
            request,
            inviter,
            addrs,
            reply,
        })
        .await?
    }

    /// Issues an invitation signed by this node.
    pub async fn invite(
        &self,
        invitee: Option<NodeId>,
        code: Option<[u8; 32]>,
        expires_at: i64,
    ) -> Result<Signed<orrery_protocol::federation::Invitation, Unverified>, FederationError> {
        self.call(|reply| Command::Invite {
            invitee,
            code,
            expires_at,
            reply,
        })
        .await?
    }

    /// Removes a member from the federation.
    pub async fn remove(&self, node: NodeId, reason: &str) -> Result<(), FederationError> {
        self.call(|reply| Command::Remove {
            node,
            reason: reason.into(),
            reply,
        })
        .await?
    }

    /// Reports an offence by a peer (forged or unauthorised data), with what it did: logged at
    /// each offence and kept with the ban when the peer reaches the limit.
    pub async fn penalise(
        &self,
        peer: NodeId,
        reason: crate::offence::Offence,
    ) -> Result<(), FederationError> {
        self.tx
            .send(Command::Penalise { peer, reason })
            .await
            .map_err(|_| FederationError::Stopped)
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), FederationError> {
        self.tx
            .send(Command::Dial { addr })
            .await
            .map_err(|_| FederationError::Stopped)
    }

    /// The federation as seen from here.
    pub async fn status(&self) -> Result<Status, FederationError> {
        self.call(|reply| Command::Status { reply }).await
    }

    /// Whether `node` is a member now.
    pub async fn is_member(&self, node: NodeId) -> Result<bool, FederationError> {
        self.call(|reply| Command::IsMember { node, reply }).await
    }

    /// Starts acting as a member of `membership` (after founding a federation, or when the stored
    /// member list appears).
    pub async fn adopt(
        &self,
        membership: orrery_protocol::federation::Membership,
    ) -> Result<(), FederationError> {
        self.tx
            .send(Command::Adopt {
                membership: Box::new(membership),
            })
            .await
            .map_err(|_| FederationError::Stopped)
    }

    /// Applies membership events made elsewhere on this node (e.g. a removal signed by the
    /// command line) and gossips the new ones.
    pub async fn announce(&self, events: Vec<MembershipEvent>) -> Result<(), FederationError> {
        self.tx
            .send(Command::Announce { events })
            .await
            .map_err(|_| FederationError::Stopped)
    }

    /// Publishes a provider record for `key` in the DHT.
    pub async fn provide(&self, key: Vec<u8>) -> Result<(), FederationError> {
        self.tx
            .send(Command::Provide { key })
            .await
            .map_err(|_| FederationError::Stopped)
    }
}
