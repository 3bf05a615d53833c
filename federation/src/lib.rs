//! The Orrery network layer: a libp2p swarm for the control plane (discovery, gossip of signed
//! adverts, request-response) and an iroh endpoint for bulk data, run as an actor behind a
//! handle.
//!
//! This crate holds no code yet: the node runs alone. It must never import `node` or `web`, and
//! it knows nothing of SQL or HTTP.
