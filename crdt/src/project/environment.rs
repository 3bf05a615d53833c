//! A project's pinned lab environment: the package lock its notebooks are re-run with, kept in
//! the project document (owners pin it) so that it replicates, and is preserved, with the
//! notebooks it serves. A run of the project's cells anywhere uses this lock rather than the
//! node's default, so a notebook can be re-run years later with the software it was written for.

use serde::{Deserialize, Serialize};

use super::*;

/// Largest lock kept in a project.
pub const MAX_LOCK_BYTES: usize = 64 * 1024;

/// The environment a project is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedEnvironment {
    /// The environment's id, as nodes offer it (`jupyter`).
    pub id: String,
    /// Its package lock (a pip requirements file), verbatim.
    pub lock: String,
    /// When it was pinned, in seconds since the Unix epoch.
    pub pinned_at: i64,
    /// The image nodes whose labs run from images start instead, by digest
    /// (`registry/repo@sha256:<64 hex>`), if pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// Whether `image` names an image by its digest: `name@sha256:<64 hex digits>`, the name of
/// lowercase letters, digits and `.`, `/`, `:`, `_`, `-` (a registry's port, a path).
pub fn image_by_digest(image: &str) -> bool {
    image.len() <= 255
        && image.split_once("@sha256:").is_some_and(|(name, digest)| {
            !name.is_empty()
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name.chars().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, '.' | '/' | ':' | '_' | '-')
                })
                && digest.len() == 64
                && digest
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
}

impl PinnedEnvironment {
    /// The pin stored as `text`, if it is one within the limits.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > MAX_LOCK_BYTES + 1024 {
            return None;
        }
        serde_json::from_str::<Self>(text)
            .ok()
            .filter(Self::within_limits)
    }

    /// Whether its id is a plain name and its lock fits.
    pub fn within_limits(&self) -> bool {
        (1..=64).contains(&self.id.len())
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !self.lock.is_empty()
            && self.lock.len() <= MAX_LOCK_BYTES
            && self.image.as_deref().is_none_or(image_by_digest)
    }
}

impl Project {
    /// The environment the project is pinned to, if any.
    pub fn pinned_environment(&self) -> Option<PinnedEnvironment> {
        self.get_str(&automerge::ROOT, K_ENVIRONMENT)
            .and_then(|t| PinnedEnvironment::parse(&t))
    }

    /// Pins the project to `env`, or unpins it (owners).
    pub fn pin_environment(
        &mut self,
        session: &Session,
        env: Option<&PinnedEnvironment>,
    ) -> Result<(), EditError> {
        let text = match env {
            Some(e) if !e.within_limits() => {
                return Err(EditError::Invalid(format!(
                    "an environment's id is 1 to 64 letters, digits, '-', '_' and '.', its lock 1 to {MAX_LOCK_BYTES} bytes, and its image named by digest (name@sha256:<64 hex digits>)"
                )));
            }
            Some(e) => {
                Some(serde_json::to_string(e).map_err(|e| EditError::Invalid(e.to_string()))?)
            }
            None => None,
        };
        self.edit(session, Role::Owner, "pin the environment", |tx, _| {
            match &text {
                Some(t) => tx.put(automerge::ROOT, K_ENVIRONMENT, t.as_str())?,
                None => tx.delete(automerge::ROOT, K_ENVIRONMENT)?,
            }
            Ok(())
        })
    }
}
