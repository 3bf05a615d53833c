//! The data plane: bulk bytes between nodes over iroh-blobs, beside the libp2p control plane.
//!
//! Each node runs one iroh endpoint whose identity is the node's own ed25519 key, so the iroh
//! endpoint id of a peer *is* its federation `NodeId` ([`endpoint::node_of`]). Relays and every
//! address lookup that would reach the internet (n0 DNS, pkarr) are off: nodes learn each
//! other's direct addresses over the control plane (`Request::DataPlane`), and iroh's handshake
//! proves the peer holds the key of the member it claims to be.
//!
//! Bytes travel in the iroh-blobs protocol (`/iroh-bytes/4`): the answer to a request is the
//! blob's BLAKE3 verified streaming encoding (bao, 16 KiB chunk groups), so a receiver checks
//! every chunk group against the hash before writing it and a transfer resumes from what it
//! already verified. The serving side is our own ([`serve`]): a request is answered only after
//! a [`serve::Gate`] said the asking node may have those bytes (the node's rules: a project's
//! stored outputs only to nodes that may hold the project, a collection's files only as its
//! policy allows), and the bytes are read from where the node keeps them — stored outputs from
//! the per-project store (`crate::blobs`), dataset products from their confined open in the
//! archive, never copied. The encoding is checked against the outboard (the bao tree of the
//! file, [`outboard`]) as it is read, so a file damaged on disk stops being served at the first
//! damaged chunk group.
//!
//! [`fetch`] is the receiving side: resumable into a partial file, every chunk group verified,
//! a peer that sends wrong bytes named in [`fetch::FetchError::Corrupt`] so the caller can
//! penalise it and ask another holder.
//!
//! Everything is bounded: streams served at once, fetches at once, the time a stalled transfer
//! may sit, the size of a request.

pub mod audit;
pub mod endpoint;
pub mod fetch;
pub mod outboard;
pub mod outboards;
pub mod preserved;
pub mod products;
#[cfg(any(test, feature = "test-peers"))]
pub mod rogue;
pub mod serve;

#[cfg(test)]
mod loopback;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// The `[data]` section of the configuration: where the data plane listens.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// The UDP address the iroh endpoint binds. By default the host of the first `/ip4/…`
    /// address in `network.listen` with a free port (so a node on loopback keeps its data
    /// plane on loopback), or `0.0.0.0:0`.
    pub listen: Option<SocketAddr>,
}

impl DataSection {
    /// The address to bind, given the control plane's listen addresses (multiaddrs).
    pub fn listen_addr(&self, network_listen: &[String]) -> SocketAddr {
        if let Some(a) = self.listen {
            return a;
        }
        let ip = network_listen
            .iter()
            .find_map(|m| m.strip_prefix("/ip4/")?.split('/').next()?.parse().ok())
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        SocketAddr::new(IpAddr::V4(ip), 0)
    }
}

/// Most addresses a peer may announce for its data plane.
pub const MAX_ADDRS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listens_where_the_control_plane_does_unless_told() {
        let loopback = vec!["/ip4/127.0.0.1/tcp/0".to_string()];
        assert_eq!(
            DataSection::default().listen_addr(&loopback),
            "127.0.0.1:0".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(
            DataSection::default().listen_addr(&["/ip6/::1/tcp/0".to_string()]),
            "0.0.0.0:0".parse::<SocketAddr>().expect("addr")
        );
        let told = DataSection {
            listen: Some("10.1.2.3:4200".parse().expect("addr")),
        };
        assert_eq!(told.listen_addr(&loopback), told.listen.expect("set"));
    }
}
