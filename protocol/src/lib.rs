//! The words Orrery nodes and authors say to each other, and the keys they sign them with.
//!
//! This crate holds keys and identities ([`identity`]), domain-separated signatures and the
//! verified-by-type [`Signed`] wrapper ([`signing`]), author profiles ([`profile`]), the change
//! seals that vouch for project history ([`seal`]), the size limits every decoder obeys
//! ([`limits`]) and the canonical encoding ([`encoding`]).
//!
//! It is pure: it never performs I/O, never spawns tasks and never reads the clock. Everything
//! decoded here from bytes that came from outside is size-checked first and returns a typed error,
//! never a panic.
#![warn(missing_docs)]

pub mod advert;
pub mod encoding;
pub mod federation;
pub mod identity;
pub mod job;
pub mod lab;
pub mod limits;
pub mod presence;
pub mod preservation;
pub mod profile;
pub mod run;
pub mod seal;
pub mod signing;
pub mod wire;

pub use identity::{AuthorId, KeyError, NodeId, PublicKey, SecretKey};
pub use profile::{AuthorProfile, Orcid, OrcidAttestation, ProfileError};
pub use seal::{ChangeHash, ChangeSeal, ProjectId};
pub use signing::{Domain, SignatureError, Signed, SignedPayload, Unverified, Verified};
