//! Cross-crate journeys for Orrery: several nodes on one machine, driven through their public
//! interfaces. The single-node journeys live beside the binary in `node/tests/`.
