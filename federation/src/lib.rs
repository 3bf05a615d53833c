//! The Orrery network layer: a libp2p swarm (TCP and QUIC, Noise, Yamux, identify, Kademlia,
//! gossipsub, request-response, optional mDNS) whose identity is the node key, run as an actor
//! behind a [`FederationHandle`].
//!
//! The actor holds the federation's member list and the newest advert of every member. It lets
//! only members into gossip and answers only members' requests (a stranger may only ask to
//! join); it disconnects removed nodes and bans peers reported for repeated offences. Project
//! sync requests are handed to the node as [`Event::Request`] with a reply channel: this crate
//! knows nothing of projects, SQL or HTTP, and never imports `node` or `web`.

mod actor;
pub mod codec;
pub mod config;
mod handle;
pub mod offence;
pub mod peer;

pub use actor::spawn;
pub use config::Config;
pub use handle::{Event, FederationError, FederationHandle, MemberStatus, Status};
pub use libp2p::Multiaddr;
pub use offence::{Ban, Offence};
