//! Identifiers of things inside a project document.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{text}` is not a valid {what}: use 1 to 64 letters, digits, `-` or `_`")]
pub struct BadId {
    what: &'static str,
    text: String,
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A fresh random identifier (16 hex digits).
            pub fn random() -> Self {
                Self(random_hex())
            }

            /// The identifier's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = BadId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if valid(s) {
                    Ok(Self(s.to_string()))
                } else {
                    Err(BadId { what: $what, text: s.into() })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = BadId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                value.parse()
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

/// Whether `s` is a valid identifier: the nbformat 4.5 cell id alphabet and length.
pub(crate) fn valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    // Without a random source the id falls back to zeros and a collision is caught at insert.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

string_id!(
    /// A notebook within a project.
    NotebookId, "notebook id"
);
string_id!(
    /// A cell within a notebook (the nbformat cell id).
    CellId, "cell id"
);
string_id!(
    /// A comment within a project.
    CommentId, "comment id"
);
string_id!(
    /// A dataset reference within a project.
    DatasetRefId, "dataset reference id"
);
