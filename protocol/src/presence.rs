//! Presence: who is in a notebook, in which cell and where their caret is, right now.
//!
//! A presence statement is signed by the author it is about and sent to the nodes that hold the
//! project; it is never written into the project document or stored. Each author's statements
//! carry a rising sequence number, so a replayed or reordered one never overwrites a newer one,
//! and each lapses [`PRESENCE_TTL_MS`] after it was made unless renewed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::signing::{Domain, SignatureError, Signed, SignedPayload, Unverified};
use crate::{AuthorId, NodeId, ProjectId};

/// How long a statement holds without renewal, in milliseconds.
pub const PRESENCE_TTL_MS: i64 = 30_000;
/// How far a statement's clock may be from the receiver's, in milliseconds.
pub const MAX_SKEW_MS: i64 = 60_000;
/// Longest notebook or cell id in a statement.
pub const MAX_ID_BYTES: usize = 128;
/// Longest actor id in a caret.
pub const MAX_ACTOR_BYTES: usize = 64;
/// Most statements a book keeps (oldest dropped first).
pub const MAX_ENTRIES: usize = 4096;

/// Where an author is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The project.
    pub project: ProjectId,
    /// The author (who signs).
    pub author: AuthorId,
    /// The node the author works at.
    pub node: NodeId,
    /// The notebook open, if any.
    pub notebook: Option<String>,
    /// The cell the cursor is in, if any.
    pub cell: Option<String>,
    /// Where in that cell's source the caret is, if known.
    pub caret: Option<Caret>,
    /// False when the author leaves the project.
    pub active: bool,
    /// Rises with every statement of this author.
    pub seq: u64,
    /// When it was made (milliseconds since the epoch).
    pub at_ms: i64,
}

/// A caret in a cell's source that stays put as others edit: it names the characters either
/// side of it, not an offset, so an offset is worked out at whatever version the reader holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caret {
    /// The character before it (`None`: the caret is at the start).
    pub left: Option<CharId>,
    /// The character after it (`None`: the caret is at the end).
    pub right: Option<CharId>,
}

/// A character of a text as the document names it: the actor that inserted it, and that
/// actor's counter for the insertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharId {
    /// The actor (at most [`MAX_ACTOR_BYTES`]).
    pub actor: Vec<u8>,
    /// The counter.
    pub counter: u64,
}

impl Caret {
    fn oversized(&self) -> bool {
        [&self.left, &self.right]
            .iter()
            .any(|c| c.as_ref().is_some_and(|c| c.actor.len() > MAX_ACTOR_BYTES))
    }
}

impl SignedPayload for Presence {
    const DOMAIN: Domain = Domain::Presence;
    const MAX_BYTES: usize = 512;
    const NAME: &'static str = "presence";
}

/// Why a presence statement was refused.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// The signature does not verify.
    #[error("the presence statement's signature does not verify")]
    Signature(#[from] SignatureError),
    /// Signed by someone other than the author it names.
    #[error("a presence statement for one author signed by another key")]
    NotTheAuthor,
    /// A notebook or cell id, or a caret, is too long.
    #[error(
        "a presence statement with an id over {MAX_ID_BYTES} bytes or an actor over {MAX_ACTOR_BYTES}"
    )]
    Oversize,
    /// Its clock is too far from ours.
    #[error("a presence statement made {0} ms away from this node's clock")]
    Skewed(i64),
}

/// The latest presence of every author in every project, as far as this node knows.
#[derive(Debug, Clone, Default)]
pub struct PresenceBook {
    entries: BTreeMap<(ProjectId, AuthorId), Presence>,
}

impl PresenceBook {
    /// Verifies a statement and keeps it if it is the newest of its author in its project.
    /// Returns the verified statement when it changed what the book says, `None` when it was
    /// old news (a replay or a reordered statement).
    pub fn offer(
        &mut self,
        signed: Signed<Presence, Unverified>,
        now_ms: i64,
    ) -> Result<Option<Presence>, PresenceError> {
        let verified = signed.verify()?;
        if verified.signer() != verified.value().author.key() {
            return Err(PresenceError::NotTheAuthor);
        }
        let p = verified.value().clone();
        if [&p.notebook, &p.cell]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| v.len() > MAX_ID_BYTES))
            || p.caret.as_ref().is_some_and(Caret::oversized)
        {
            return Err(PresenceError::Oversize);
        }
        let skew = p.at_ms.saturating_sub(now_ms);
        if skew.abs() > MAX_SKEW_MS {
            return Err(PresenceError::Skewed(skew));
        }
        let key = (p.project, p.author);
        if self.entries.get(&key).is_some_and(|old| old.seq >= p.seq) {
            return Ok(None);
        }
        self.entries.insert(key, p.clone());
        self.prune(now_ms);
        Ok(Some(p))
    }

    /// Who is in a project now: active statements that have not lapsed, by author.
    pub fn in_project(&self, project: &ProjectId, now_ms: i64) -> Vec<Presence> {
        self.entries
            .iter()
            .filter(|((p, _), _)| p == project)
            .map(|(_, v)| v)
            .filter(|p| p.active && p.at_ms + PRESENCE_TTL_MS > now_ms)
            .cloned()
            .collect()
    }

    /// Drops lapsed statements, and the oldest beyond [`MAX_ENTRIES`].
    pub fn prune(&mut self, now_ms: i64) {
        self.entries
            .retain(|_, p| p.at_ms + PRESENCE_TTL_MS + MAX_SKEW_MS > now_ms);
        while self.entries.len() > MAX_ENTRIES {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, p)| p.at_ms)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    self.entries.remove(&k);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;

    fn statement(
        key: &SecretKey,
        author: AuthorId,
        seq: u64,
        at_ms: i64,
    ) -> Signed<Presence, Unverified> {
        Signed::sign(
            key,
            Presence {
                project: ProjectId([7; 32]),
                author,
                node: NodeId(key.public()),
                notebook: Some("nb".into()),
                cell: Some(format!("cell-{seq}")),
                caret: None,
                active: true,
                seq,
                at_ms,
            },
        )
        .into_unverified()
    }

    #[test]
    fn newest_wins_and_replays_are_old_news() {
        let key = SecretKey::generate().expect("key");
        let author = AuthorId(key.public());
        let mut book = PresenceBook::default();
        let now = 1_000_000;
        assert!(
            book.offer(statement(&key, author, 2, now), now)
                .expect("ok")
                .is_some()
        );
        assert!(
            book.offer(statement(&key, author, 1, now), now)
                .expect("ok")
                .is_none()
        );
        assert!(
            book.offer(statement(&key, author, 2, now), now)
                .expect("ok")
                .is_none()
        );
        let here = book.in_project(&ProjectId([7; 32]), now);
        assert_eq!(here.len(), 1);
        assert_eq!(here[0].cell.as_deref(), Some("cell-2"));
        // It lapses.
        assert!(
            book.in_project(&ProjectId([7; 32]), now + PRESENCE_TTL_MS)
                .is_empty()
        );
        assert!(book.in_project(&ProjectId([8; 32]), now).is_empty());
    }

    #[test]
    fn forged_and_skewed_statements_are_refused() {
        let key = SecretKey::generate().expect("key");
        let other = SecretKey::generate().expect("key");
        let mut book = PresenceBook::default();
        let now = 1_000_000;
        let forged = statement(&other, AuthorId(key.public()), 1, now);
        assert!(matches!(
            book.offer(forged, now),
            Err(PresenceError::NotTheAuthor)
        ));
        let skewed = statement(&key, AuthorId(key.public()), 1, now + 2 * MAX_SKEW_MS);
        assert!(matches!(
            book.offer(skewed, now),
            Err(PresenceError::Skewed(_))
        ));
        assert!(book.in_project(&ProjectId([7; 32]), now).is_empty());
    }

    #[test]
    fn a_caret_travels_and_an_oversized_one_is_refused() {
        let key = SecretKey::generate().expect("key");
        let author = AuthorId(key.public());
        let mut book = PresenceBook::default();
        let now = 1_000_000;
        let caret = |len: usize| Caret {
            left: None,
            right: Some(CharId {
                actor: vec![1; len],
                counter: 9,
            }),
        };
        let with = |c: Caret, seq: u64| {
            let mut p = statement(&key, author, seq, now)
                .verify()
                .expect("ok")
                .value()
                .clone();
            p.caret = Some(c);
            Signed::sign(&key, p).into_unverified()
        };
        let big = with(caret(MAX_ACTOR_BYTES + 1), 1);
        assert!(matches!(book.offer(big, now), Err(PresenceError::Oversize)));
        let kept = book
            .offer(with(caret(48), 2), now)
            .expect("ok")
            .expect("news");
        assert_eq!(kept.caret, Some(caret(48)));
        // The largest statement allowed fits the limit of its kind.
        let mut p = statement(&key, author, 3, now)
            .verify()
            .expect("ok")
            .value()
            .clone();
        p.notebook = Some("n".repeat(MAX_ID_BYTES));
        p.cell = Some("c".repeat(MAX_ID_BYTES));
        p.caret = Some(Caret {
            left: caret(MAX_ACTOR_BYTES).right,
            right: caret(MAX_ACTOR_BYTES).right,
        });
        assert!(crate::encoding::encode(&p).len() <= Presence::MAX_BYTES);
    }
}
