//! The Orrery network layer: a libp2p swarm (TCP and QUIC, Noise, Yamux, identify, Kademlia,
//! gossipsub, request-response, optional mDNS) whose identity is the node key, run as an actor
//! behind a [`FederationHandle`].
//!
//! The actor holds the federation's member list and the newest advert of every member. It lets
//! only members into gossip and answers only members' requests (a stranger may only ask to
//! join); it disconnects removed nodes and bans peers reported for repeated offences.
//!
//! Outsiders cannot keep an invited node out or make a member dial-storm: non-members share a
//! few stranger slots handed out oldest-first (a newcomer evicts the oldest stranger), each IP
//! address has a budget of new stranger connections, and refused peers (removed, banned, or
//! refused a join) wait out a doubling per-peer backoff during which their connections are
//! closed at once. A removed node that connects is sent its signed removal (and answered with it
//! if it asks), records it ([`Status::removed_self`]) and stops dialling and asking members. Every refusal is logged
//! at `warn` with its reason.
//!
//! Kademlia is served to members only: a connection gets the Kademlia protocol only if its peer
//! was a member when it connected, and only members' addresses enter the routing table, so an
//! outsider's FIND_NODE learns no member's id or address. Project
//! sync requests are handed to the node as [`Event::Request`] with a reply channel: this crate
//! knows nothing of projects, SQL or HTTP, and never imports `node` or `web`.

mod actor;
pub mod codec;
pub mod config;
mod handle;
pub mod offence;
pub mod peer;

pub use actor::{RefusalReason, spawn};
pub use config::Config;
pub use handle::{
    Event, FederationError, FederationHandle, MemberStatus, RefusedPeer, RemovedSelf, Status,
};
pub use libp2p::Multiaddr;
pub use offence::{Ban, Offence};
