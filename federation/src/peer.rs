//! Node identities as libp2p peers: the node key is the swarm identity.

use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey, ed25519};
use orrery_protocol::{NodeId, SecretKey};

/// The libp2p keypair of a node key.
pub fn keypair(key: &SecretKey) -> Keypair {
    let mut bytes = key.to_bytes();
    match ed25519::SecretKey::try_from_bytes(&mut bytes) {
        Ok(secret) => Keypair::from(ed25519::Keypair::from(secret)),
        // 32 bytes always form an ed25519 secret key.
        Err(_) => unreachable!("a 32-byte ed25519 secret"),
    }
}

/// The peer id of a node.
pub fn peer_id(node: &NodeId) -> PeerId {
    match ed25519::PublicKey::try_from_bytes(node.key().as_bytes()) {
        Ok(pk) => PublicKey::from(pk).to_peer_id(),
        // NodeId always holds a valid curve point.
        Err(_) => unreachable!("a valid ed25519 public key"),
    }
}

/// The node behind a peer id, if the peer uses an ed25519 identity (all Orrery nodes do).
pub fn node_id(peer: &PeerId) -> Option<NodeId> {
    let mh = peer.as_ref();
    if mh.code() != 0 {
        return None;
    }
    let pk = PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    let ed = pk.try_into_ed25519().ok()?;
    orrery_protocol::PublicKey::from_bytes(&ed.to_bytes())
        .ok()
        .map(NodeId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_peer_ids_correspond() {
        let key = SecretKey::generate().expect("random");
        let node = NodeId(key.public());
        let peer = peer_id(&node);
        assert_eq!(keypair(&key).public().to_peer_id(), peer);
        assert_eq!(node_id(&peer), Some(node));
    }
}
