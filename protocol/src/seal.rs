//! Change seals: one author signature that vouches for a run of their changes.
//!
//! Automerge names every change by the SHA-256 hash of its bytes, and every change names the
//! hashes of the changes it depends on. A signature over one change hash therefore fixes that
//! change and its whole ancestry. A [`ChangeSeal`] is an author's signature over the latest
//! changes they made (the heads of their own history); it covers every change of theirs that is
//! an ancestor of a named head. One seal per commit window or per sync batch covers thousands of
//! keystrokes for the price of one signature.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::limits::MAX_SEAL_HEADS;
use crate::signing::{Domain, SignedPayload};

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The first 12 hex digits, for tables and logs.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..6])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseHashError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bytes = hex::decode(s.trim()).map_err(|_| ParseHashError { text: s.into() })?;
                let arr: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| ParseHashError { text: s.into() })?;
                Ok(Self(arr))
            }
        }
    };
}

hash_id!(
    /// The hash of an automerge change (SHA-256 of its bytes).
    ChangeHash
);
hash_id!(
    /// A project's identity: the hash of its genesis change, so that a project id names exactly
    /// one starting point and its creator.
    ProjectId
);

/// The text is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a hash: expected 64 hex digits")]
pub struct ParseHashError {
    /// The text given.
    pub text: String,
}

/// An author's signed statement: "the changes named here, and every change of mine in their
/// ancestry, are mine". Bound to one project so it cannot be replayed elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSeal {
    /// The project the changes belong to.
    pub project: ProjectId,
    /// The sealed heads; each must be a change whose actor is the signing author.
    pub heads: Vec<ChangeHash>,
}

impl SignedPayload for ChangeSeal {
    const DOMAIN: Domain = Domain::ChangeSeal;
    const MAX_BYTES: usize = 48 + MAX_SEAL_HEADS * 33;
    const NAME: &'static str = "change seal";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_and_print() {
        let h = ChangeHash([7; 32]);
        assert_eq!(h.to_string().parse::<ChangeHash>().expect("parses"), h);
        assert!("07".parse::<ChangeHash>().is_err());
        assert!("zz".parse::<ProjectId>().is_err());
    }
}
