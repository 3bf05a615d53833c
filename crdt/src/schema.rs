//! The shape of a project document: its keys and the enumerations stored in it.
//!
//! ```text
//! ROOT
//! ├── orrery: "project/1"             schema marker, written once by the genesis change
//! ├── created_at: int                 seconds since the Unix epoch
//! ├── title: str                      editors
//! ├── description: text               editors
//! ├── visibility: str                 owners: public | shared | restricted
//! ├── environment: str                owners: the pinned lab environment (JSON, see
//! │                                   `project::environment`); absent: the node's default
//! ├── preservation: str               owners: how many copies are kept, where (JSON, see
//! │                                   `project::preservation`)
//! ├── members: map author-hex → role  owners: owner | editor | viewer
//! ├── notebooks: map notebook-id → { title, metadata (JSON), nbformat_minor,
//! │                                  file_base:<lineage>[@<version>] (JSON, see nbformat::base),
//! │                                  cells: map cell-id → { kind, pos, source: text,
//! │                                         outputs: list of JSON, execution_count,
//! │                                         execution (JSON), metadata (JSON),
//! │                                         attachments (JSON),
//! │                                         run (bytes: the computing node's RunRecord) } }
//! ├── profiles: map author-hex → bytes   each author writes only their own signed profile
//! ├── datasets: map ref-id → { node, dataset, checksum, title }
//! └── comments: map comment-id → { target, text, created_at }
//! ```
//!
//! Every container under the root is created by the genesis change, so replicas never create
//! competing copies of the same container. The author of a notebook, cell or comment is never a
//! field: it is read from the id of the operation that created it, which names the author's key.

use std::fmt;
use std::str::FromStr;

/// Schema marker value.
pub const SCHEMA: &str = "project/1";

pub(crate) const K_SCHEMA: &str = "orrery";
pub(crate) const K_CREATED: &str = "created_at";
pub(crate) const K_TITLE: &str = "title";
pub(crate) const K_DESCRIPTION: &str = "description";
pub(crate) const K_VISIBILITY: &str = "visibility";
pub(crate) const K_ENVIRONMENT: &str = "environment";
pub(crate) const K_PRESERVATION: &str = "preservation";
pub(crate) const K_MEMBERS: &str = "members";
pub(crate) const K_NOTEBOOKS: &str = "notebooks";
pub(crate) const K_DATASETS: &str = "datasets";
pub(crate) const K_COMMENTS: &str = "comments";
pub(crate) const K_PROFILES: &str = "profiles";

pub(crate) const K_CELLS: &str = "cells";
pub(crate) const K_METADATA: &str = "metadata";
pub(crate) const K_NBFORMAT_MINOR: &str = "nbformat_minor";
pub(crate) const K_KIND: &str = "kind";
pub(crate) const K_POS: &str = "pos";
pub(crate) const K_SOURCE: &str = "source";
pub(crate) const K_OUTPUTS: &str = "outputs";
pub(crate) const K_EXEC_COUNT: &str = "execution_count";
pub(crate) const K_EXECUTION: &str = "execution";
pub(crate) const K_RUN: &str = "run";
pub(crate) const K_ATTACHMENTS: &str = "attachments";
/// Prefix of a notebook's keys recording where a file it was imported or updated from stands
/// in the history (see `nbformat::base`).
pub(crate) const K_FILE_BASE: &str = "file_base:";

pub(crate) const K_NODE: &str = "node";
pub(crate) const K_DATASET: &str = "dataset";
pub(crate) const K_CHECKSUM: &str = "checksum";
pub(crate) const K_TARGET: &str = "target";
pub(crate) const K_TEXT: &str = "text";

/// Root keys that may be written after the genesis change, and who may write them.
pub(crate) fn root_key_rule(key: &str) -> Option<Role> {
    match key {
        K_TITLE => Some(Role::Editor),
        K_VISIBILITY => Some(Role::Owner),
        K_ENVIRONMENT => Some(Role::Owner),
        K_PRESERVATION => Some(Role::Owner),
        _ => None,
    }
}

/// Why a stored or typed enumeration value was not understood.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{value}` is not a {what}; expected one of: {expected}")]
pub struct ParseEnumError {
    what: &'static str,
    value: String,
    expected: &'static str,
}

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseEnumError {
                        what: $what,
                        value: s.into(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }
    };
}

text_enum!(
    /// A member's role. Ordered by power: `Viewer < Editor < Owner`.
    Role, "role", {
        /// Reads only.
        Viewer => "viewer",
        /// Edits content: notebooks, cells, comments, dataset references, title, description.
        Editor => "editor",
        /// Edits content and also members, roles and visibility.
        Owner => "owner",
    }
);

text_enum!(
    /// Who may see a project.
    Visibility, "visibility", {
        /// Anyone in the federation.
        Public => "public",
        /// The members and the nodes that host them.
        Shared => "shared",
        /// The members only; never replicated beyond member nodes.
        Restricted => "restricted",
    }
);

text_enum!(
    /// A notebook cell's kind.
    CellKind, "cell kind", {
        /// Executable code.
        Code => "code",
        /// Markdown prose.
        Markdown => "markdown",
        /// Raw text passed through untouched.
        Raw => "raw",
    }
);

impl Role {
    /// Whether this role may change content.
    pub fn can_edit(self) -> bool {
        self >= Role::Editor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_order() {
        for r in [Role::Viewer, Role::Editor, Role::Owner] {
            assert_eq!(r.as_str().parse::<Role>().expect("parses"), r);
        }
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Owner);
        assert!("admin".parse::<Role>().is_err());
        assert_eq!(
            "shared".parse::<Visibility>().expect("parses"),
            Visibility::Shared
        );
        assert_eq!(
            "markdown".parse::<CellKind>().expect("parses"),
            CellKind::Markdown
        );
    }
}
