//! Who recent credentials stood for, kept for a moment so that a busy script or browser does
//! not cost a database read per request.
//!
//! An answer is kept for [`FRESH`]. A token revoked or a session ended through this node's API
//! is forgotten at once; one revoked from the command line (another process) stops working
//! within [`FRESH`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use orrery_web::{Credential, Principal};

/// How long an answer is kept.
pub(super) const FRESH: Duration = Duration::from_secs(1);
/// Most answers kept; when full, all are dropped (a flood of distinct credentials costs the
/// database reads it would have cost anyway, never memory).
const MAX: usize = 4096;

#[derive(Default)]
pub(super) struct AuthCache {
    kept: Mutex<HashMap<[u8; 32], (Instant, Principal)>>,
}

/// The key a credential is kept under: a hash, so no secret is held here.
fn key(c: &Credential) -> [u8; 32] {
    let (kind, secret) = match c {
        Credential::Bearer(s) => (b'b', s),
        Credential::Session(s) => (b's', s),
    };
    let mut h = blake3::Hasher::new();
    h.update(&[kind]);
    h.update(secret.as_bytes());
    *h.finalize().as_bytes()
}

impl AuthCache {
    /// The user a credential stood for, if known and fresh.
    pub(super) fn get(&self, c: &Credential) -> Option<Principal> {
        let kept = self.kept.lock().ok()?;
        let (at, p) = kept.get(&key(c))?;
        (at.elapsed() < FRESH).then(|| p.clone())
    }

    /// Keeps who a credential stands for.
    pub(super) fn put(&self, c: &Credential, p: &Principal) {
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() >= MAX {
                kept.clear();
            }
            kept.insert(key(c), (Instant::now(), p.clone()));
        }
    }

    /// Forgets a credential (a session ended).
    pub(super) fn forget(&self, c: &Credential) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.remove(&key(c));
        }
    }

    /// Forgets every credential of a user (one of their tokens was revoked).
    pub(super) fn forget_user(&self, user: &str) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.retain(|_, (_, p)| p.user != user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(user: &str) -> Principal {
        Principal {
            user: user.into(),
            name: user.into(),
            author: String::new(),
            scopes: vec!["read".into()],
            orcid: None,
        }
    }

    #[test]
    fn answers_are_kept_per_credential_and_forgotten_on_revocation() {
        let cache = AuthCache::default();
        let ada = Credential::Bearer("orr_a_1".into());
        let ada_session = Credential::Session("orr_a_1".into());
        let bob = Credential::Bearer("orr_b_1".into());
        cache.put(&ada, &principal("ada"));
        cache.put(&bob, &principal("bob"));
        assert_eq!(cache.get(&ada).map(|p| p.user), Some("ada".into()));
        // The same secret as a cookie is another credential.
        assert!(cache.get(&ada_session).is_none());
        cache.forget_user("ada");
        assert!(cache.get(&ada).is_none());
        assert!(cache.get(&bob).is_some());
        cache.forget(&bob);
        assert!(cache.get(&bob).is_none());
    }
}
