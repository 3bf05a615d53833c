//! Editing sessions: an author's key plus the automerge actor id their changes are made under.
//!
//! An actor id is the author's 32-byte public key followed by a 16-byte random session part, so
//! every change names its author, and one author editing from two devices (or two processes)
//! never produces two changes with the same actor and sequence number.

use std::collections::HashMap;

use automerge::ActorId;
use orrery_protocol::{AuthorId, KeyError, PublicKey, SecretKey};

/// Length of the per-session part of an actor id.
pub const SESSION_LEN: usize = 16;
/// Length of an Orrery actor id: author key plus session part.
pub const ACTOR_LEN: usize = 32 + SESSION_LEN;

/// An author's editing session.
#[derive(Debug, Clone)]
pub struct Session {
    key: SecretKey,
    author: AuthorId,
    actor: ActorId,
}

impl Session {
    /// Starts a session with a fresh random session part.
    pub fn new(key: SecretKey) -> Result<Self, KeyError> {
        let mut part = [0u8; SESSION_LEN];
        getrandom::fill(&mut part).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::with_session_part(key, part))
    }

    /// Starts a session with a given session part (for tests and replays that must be
    /// deterministic).
    pub fn with_session_part(key: SecretKey, part: [u8; SESSION_LEN]) -> Self {
        let author = AuthorId(key.public());
        let mut bytes = Vec::with_capacity(ACTOR_LEN);
        bytes.extend_from_slice(author.key().as_bytes());
        bytes.extend_from_slice(&part);
        Self {
            key,
            author,
            actor: ActorId::from(bytes),
        }
    }

    /// Another session of the same author: the same key, a fresh random session part.
    ///
    /// Its changes are the author's and are sealed with the same key, and its sequence numbers
    /// start again from 1 under an actor no replica has seen, so changes it makes on a branch of
    /// the history (one that lacks some of this session's changes) can never reuse one of this
    /// session's sequence numbers, which every replica would refuse as equivocation.
    pub fn fresh(&self) -> Result<Session, KeyError> {
        Session::new(self.key.clone())
    }

    /// The author editing.
    pub fn author(&self) -> AuthorId {
        self.author
    }

    /// The automerge actor id of this session.
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// The author's secret key, which signs this session's seals.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }
}

/// The author an actor id names, if it is a well-formed Orrery actor id.
pub fn author_of(actor: &ActorId) -> Option<AuthorId> {
    let bytes = actor.to_bytes();
    if bytes.len() != ACTOR_LEN {
        return None;
    }
    PublicKey::from_bytes(&bytes[..32]).ok().map(AuthorId)
}

/// [`author_of`] with each actor decoded once. Checking that a key is a valid curve point costs
/// more than applying a keystroke's change, and a history names few actors, so code that reads
/// the author of every change or character asks this cache instead.
#[derive(Debug, Default)]
pub(crate) struct AuthorCache(HashMap<ActorId, Option<AuthorId>>);

impl AuthorCache {
    /// The author `actor` names, as [`author_of`] says.
    pub(crate) fn of(&mut self, actor: &ActorId) -> Option<AuthorId> {
        if let Some(author) = self.0.get(actor) {
            return *author;
        }
        let author = author_of(actor);
        self.0.insert(actor.clone(), author);
        author
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_name_their_author_and_differ_per_session() {
        let key = SecretKey::generate().expect("random");
        let a = Session::new(key.clone()).expect("random");
        let b = Session::new(key).expect("random");
        assert_eq!(author_of(a.actor()), Some(a.author()));
        assert_eq!(a.author(), b.author());
        assert_ne!(a.actor(), b.actor());
        let c = a.fresh().expect("random");
        assert_eq!(c.author(), a.author());
        assert_ne!(c.actor(), a.actor());
        assert_eq!(author_of(&ActorId::from(vec![1u8; 16])), None);
    }
}
