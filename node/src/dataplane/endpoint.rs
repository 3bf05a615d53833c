//! The node's iroh endpoint: its identity is the node key, it uses no relay and looks no
//! address up anywhere; peers are dialled at the direct addresses they told us over the
//! control plane.

use std::net::SocketAddr;

use iroh::endpoint::presets;
use iroh::{Endpoint, EndpointAddr, EndpointId, RelayMode, TransportAddr};
use orrery_protocol::{NodeId, PublicKey, SecretKey};

/// The ALPN of the iroh-blobs protocol, the only one the data plane speaks.
pub const ALPN: &[u8] = iroh_blobs::ALPN;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The address could not be bound.
    #[error(
        "the data plane could not listen on {addr}: {detail}; set another address in `[data] listen`"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What iroh said.
        detail: String,
    },
}

/// Binds the node's endpoint at `listen` with the node's key: no relay, no address lookup.
pub async fn bind(key: &SecretKey, listen: SocketAddr) -> Result<Endpoint, EndpointError> {
    let bind_error = |detail: String| EndpointError::Bind {
        addr: listen,
        detail,
    };
    Endpoint::builder(presets::Minimal)
        .secret_key(iroh::SecretKey::from_bytes(&key.to_bytes()))
        .alpns(vec![ALPN.to_vec()])
        .relay_mode(RelayMode::Disabled)
        .clear_address_lookup()
        .clear_ip_transports()
        .bind_addr(listen)
        .map_err(|e| bind_error(e.to_string()))?
        .bind()
        .await
        .map_err(|e| bind_error(e.to_string()))
}

/// The federation node an iroh endpoint id belongs to (the same ed25519 key).
pub fn node_of(id: EndpointId) -> Option<NodeId> {
    PublicKey::from_bytes(id.as_bytes()).ok().map(NodeId)
}

/// The iroh endpoint id of a federation node.
pub fn endpoint_of(node: NodeId) -> Option<EndpointId> {
    EndpointId::from_bytes(node.0.as_bytes()).ok()
}

/// Where `node`'s data plane is reached: its id and the direct addresses it announced.
pub fn addr_of(node: NodeId, addrs: &[SocketAddr]) -> Option<EndpointAddr> {
    let id = endpoint_of(node)?;
    Some(EndpointAddr::from_parts(
        id,
        addrs
            .iter()
            .take(super::MAX_ADDRS)
            .map(|a| TransportAddr::Ip(*a)),
    ))
}

/// The direct addresses this endpoint can be dialled at, to tell peers over the control plane.
/// An endpoint bound to a specific address announces that; one bound to every interface
/// announces what iroh found on the interfaces.
pub fn own_addrs(endpoint: &Endpoint) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = endpoint
        .bound_sockets()
        .into_iter()
        .filter(|a| !a.ip().is_unspecified())
        .collect();
    for a in endpoint.addr().ip_addrs() {
        if !out.contains(a) {
            out.push(*a);
        }
    }
    out.truncate(super::MAX_ADDRS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_endpoint_id_is_the_node_key_and_loopback_needs_nothing_outside() {
        let key = SecretKey::generate().expect("key");
        let node = NodeId(key.public());
        let ep = bind(&key, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("binds without relays or lookups");
        assert_eq!(node_of(ep.id()), Some(node));
        assert_eq!(endpoint_of(node), Some(ep.id()));
        let addrs = own_addrs(&ep);
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()),
            "{addrs:?}"
        );
        ep.close().await;
    }
}
