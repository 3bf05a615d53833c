//! The Orrery HTTP face: REST with an OpenAPI document, GraphQL, WebSocket and the browser UI.
//!
//! This crate holds no code yet: the node is driven from its command line. It must never import
//! `node`, SQL or libp2p; it will define the port (trait) it needs from a node.
