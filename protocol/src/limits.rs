//! Size limits checked before anything from outside is decoded.
//!
//! Each limit is the largest value an honest peer or file produces with room to spare; anything
//! larger is refused with a typed error before a decoder sees it.

/// Largest encoded payload of a signed message (profile, seal, advert).
pub const MAX_SIGNED_PAYLOAD: usize = 64 * 1024;
/// Largest single automerge change accepted from outside, in bytes (uncompressed chunk).
pub const MAX_CHANGE_BYTES: usize = 8 * 1024 * 1024;
/// Largest number of changes in one ingest batch.
pub const MAX_BATCH_CHANGES: usize = 1_000_000;
/// Largest total size of one ingest batch, in bytes.
pub const MAX_BATCH_BYTES: usize = 256 * 1024 * 1024;
/// Largest number of heads one change seal may name.
pub const MAX_SEAL_HEADS: usize = 1024;
/// Largest number of changes kept waiting for missing dependencies, per project.
pub const MAX_PENDING_CHANGES: usize = 1_000_000;
/// Largest display name, affiliation or title, in bytes.
pub const MAX_NAME_BYTES: usize = 512;
