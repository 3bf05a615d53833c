//! Accounts: users bound to author keys, the OpenID identities they sign in with, API tokens and
//! browser sessions. Secrets are random 32 bytes from the operating system; only their BLAKE3
//! is stored, so a copy of the database signs nobody in.

use orrery_protocol::{AuthorId, PublicKey};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now};

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read what the user may read.
    Read,
    /// Change what the user may change.
    Write,
    /// Start and stop the user's labs.
    Labs,
}

impl Scope {
    /// Its name in the CLI and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Labs => "labs",
        }
    }

    /// Parses a comma-separated list (`read,write`).
    pub fn parse_list(text: &str) -> Option<Vec<Scope>> {
        let mut out = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            out.push(match word {
                "read" => Scope::Read,
                "write" => Scope::Write,
                "labs" => Scope::Labs,
                _ => return None,
            });
        }
        out.sort_unstable();
        out.dedup();
        (!out.is_empty()).then_some(out)
    }

    fn list(scopes: &[Scope]) -> String {
        scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A user of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The author key it edits with.
    pub author: AuthorId,
    /// The node's attestation of its ORCID iD (encoded), if it signed in with ORCID.
    pub orcid_attestation: Option<Vec<u8>>,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Its id (shown, not secret).
    pub id: String,
    /// Whose it is.
    pub user: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it stops working.
    pub expires_at: i64,
    /// When it was last used.
    pub last_used: Option<i64>,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// Longest a token may live: a year.
pub const MAX_TOKEN_SECS: i64 = 366 * 24 * 3600;
/// How finely a token's last use is noted, in seconds.
const LAST_USED_GRAIN: i64 = 60;
/// How long a browser session lives.
pub const SESSION_SECS: i64 = 12 * 3600;

fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(hex::encode(b))
}

fn hash(secret: &str) -> [u8; 32] {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

/// A stored user: id, name, author key, ORCID attestation.
type UserRow = (String, String, Vec<u8>, Option<Vec<u8>>);

fn user_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn to_user((id, name, author, orcid_attestation): UserRow) -> Option<User> {
    Some(User {
        id,
        name,
        author: AuthorId(PublicKey::from_bytes(&author).ok()?),
        orcid_attestation,
    })
}

impl Store {
    /// Adds a user bound to `author` (an author key this node holds).
    pub fn add_user(&mut self, name: &str, author: AuthorId) -> Result<User, StoreError> {
        let id = random_hex(8)?;
        self.conn.execute(
            "INSERT INTO users (id, name, author, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, name, author.key().as_bytes().as_slice(), now()],
        )?;
        Ok(User {
            id,
            name: name.to_owned(),
            author,
            orcid_attestation: None,
        })
    }

    /// Every user.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, author, orcid_attestation FROM users ORDER BY name, id")?;
        let rows = stmt.query_map([], user_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.extend(to_user(r?));
        }
        Ok(out)
    }

    /// A user by id.
    pub fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, author, orcid_attestation FROM users WHERE id = ?1",
                params![id],
                user_row,
            )
            .optional()?
            .and_then(to_user))
    }

    /// Removes a user, their identities, tokens and sessions (their author key stays).
    pub fn remove_user(&mut self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM users WHERE id = ?1", params![id])?
            > 0)
    }

    /// The user an OpenID identity belongs to.
    pub fn user_by_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<User>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT u.id, u.name, u.author, u.orcid_attestation FROM identities i
                 JOIN users u ON u.id = i.user WHERE i.issuer = ?1 AND i.subject = ?2",
                params![issuer, subject],
                user_row,
            )
            .optional()?
            .and_then(to_user))
    }

    /// Binds an OpenID identity to a user.
    pub fn add_identity(
        &mut self,
        user: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO identities (issuer, subject, user) VALUES (?1, ?2, ?3)",
            params![issuer, subject, user],
        )?;
        Ok(())
    }

    /// The node's attestation of the ORCID iD of the user editing as `author`, if it verifies.
    pub fn orcid_attestation_of(
        &self,
        author: AuthorId,
    ) -> Result<
        Option<
            orrery_protocol::Signed<orrery_protocol::OrcidAttestation, orrery_protocol::Verified>,
        >,
        StoreError,
    > {
        let bytes: Option<Option<Vec<u8>>> = self
            .conn
            .query_row(
                "SELECT orcid_attestation FROM users WHERE author = ?1",
                params![author.key().as_bytes().as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(bytes.flatten().and_then(|b| {
            let signed: orrery_protocol::Signed<
                orrery_protocol::OrcidAttestation,
                orrery_protocol::Unverified,
            > = orrery_protocol::encoding::decode(
                "an ORCID attestation",
                &b,
                orrery_protocol::limits::MAX_SIGNED_PAYLOAD,
            )
            .ok()?;
            orrery_protocol::OrcidAttestation::verify(signed).ok()
        }))
    }

    /// Keeps the node's attestation of a user's ORCID iD.
    pub fn set_orcid_attestation(
        &mut self,
        user: &str,
        attestation: &[u8],
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE users SET orcid_attestation = ?2 WHERE id = ?1",
            params![user, attestation],
        )?;
        Ok(())
    }

    /// A new token for `user`, valid for `secs` seconds (at most [`MAX_TOKEN_SECS`]); returns
    /// its id and its secret, which is shown once and not kept.
    pub fn create_token(
        &mut self,
        user: &str,
        scopes: &[Scope],
        secs: i64,
    ) -> Result<(String, String), StoreError> {
        let id = random_hex(6)?;
        let secret = format!("orr_{id}_{}", random_hex(32)?);
        let t = now();
        self.conn.execute(
            "INSERT INTO tokens (id, user, hash, scopes, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                user,
                hash(&secret).as_slice(),
                Scope::list(scopes),
                t,
                t.saturating_add(secs.clamp(1, MAX_TOKEN_SECS))
            ],
        )?;
        Ok((id, secret))
    }

    /// Every token of `user` (or of everyone).
    pub fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, user, scopes, expires_at, last_used, revoked FROM tokens
             WHERE ?1 IS NULL OR user = ?1 ORDER BY created_at",
        )?;
        let rows = stmt.query_map(params![user], |r| {
            Ok(TokenInfo {
                id: r.get(0)?,
                user: r.get(1)?,
                scopes: Scope::parse_list(&r.get::<_, String>(2)?).unwrap_or_default(),
                expires_at: r.get(3)?,
                last_used: r.get(4)?,
                revoked: r.get::<_, i64>(5)? != 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a token; whether there was one.
    pub fn revoke_token(&mut self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("UPDATE tokens SET revoked = 1 WHERE id = ?1", params![id])?
            > 0)
    }

    /// The user and scopes a token secret stands for, if it is valid now (not expired, not
    /// revoked); notes its use.
    pub fn use_token(&mut self, secret: &str) -> Result<Option<(User, Vec<Scope>)>, StoreError> {
        type Found = (String, String, i64, i64, Option<i64>);
        let found: Option<Found> = self
            .conn
            .query_row(
                "SELECT id, scopes, expires_at, revoked, last_used FROM tokens WHERE hash = ?1",
                params![hash(secret).as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((id, scopes, expires_at, revoked, last_used)) = found else {
            return Ok(None);
        };
        let t = now();
        if revoked != 0 || expires_at <= t {
            return Ok(None);
        }
        // Noted to the minute: a token in steady use costs no write per request.
        if last_used.is_none_or(|l| t - l >= LAST_USED_GRAIN) {
            self.conn.execute(
                "UPDATE tokens SET last_used = ?2 WHERE id = ?1",
                params![id, t],
            )?;
        }
        let user: Option<String> = self
            .conn
            .query_row("SELECT user FROM tokens WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(user) = user.map(|u| self.user(&u)).transpose()?.flatten() else {
            return Ok(None);
        };
        Ok(Some((user, Scope::parse_list(&scopes).unwrap_or_default())))
    }

    /// A new browser session for `user`; returns its secret (for the cookie), which is not kept.
    pub fn create_session(&mut self, user: &str) -> Result<String, StoreError> {
        let secret = random_hex(32)?;
        let t = now();
        // Ended sessions go as new ones come.
        self.conn
            .execute("DELETE FROM sessions WHERE expires_at <= ?1", params![t])?;
        self.conn.execute(
            "INSERT INTO sessions (hash, user, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![hash(&secret).as_slice(), user, t, t + SESSION_SECS],
        )?;
        Ok(secret)
    }

    /// The user a session secret stands for, if the session has not ended.
    pub fn session_user(&self, secret: &str) -> Result<Option<User>, StoreError> {
        let user: Option<String> = self
            .conn
            .query_row(
                "SELECT user FROM sessions WHERE hash = ?1 AND expires_at > ?2",
                params![hash(secret).as_slice(), now()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(user.map(|u| self.user(&u)).transpose()?.flatten())
    }

    /// A one-time sign-in link's code for `user`, valid for `secs` seconds; only its hash is kept.
    pub fn create_sign_in_link(&mut self, user: &str, secs: i64) -> Result<String, StoreError> {
        let code = random_hex(32)?;
        let t = now();
        self.conn.execute(
            "DELETE FROM sign_in_links WHERE expires_at <= ?1",
            params![t],
        )?;
        self.conn.execute(
            "INSERT INTO sign_in_links (hash, user, expires_at) VALUES (?1, ?2, ?3)",
            params![hash(&code).as_slice(), user, t + secs],
        )?;
        Ok(code)
    }

    /// Spends a sign-in link: a new session's secret, or `None` if the code was used, has
    /// expired or never was.
    pub fn redeem_sign_in_link(&mut self, code: &str) -> Result<Option<String>, StoreError> {
        let tx = self.conn.transaction()?;
        let user: Option<String> = tx
            .query_row(
                "DELETE FROM sign_in_links WHERE hash = ?1 AND expires_at > ?2 RETURNING user",
                params![hash(code).as_slice(), now()],
                |r| r.get(0),
            )
            .optional()?;
        tx.commit()?;
        match user {
            Some(u) => self.create_session(&u).map(Some),
            None => Ok(None),
        }
    }

    /// Ends a session.
    pub fn end_session(&mut self, secret: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM sessions WHERE hash = ?1",
            params![hash(secret).as_slice()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use orrery_protocol::SecretKey;

    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("store");
        (dir, store)
    }

    #[test]
    fn a_sign_in_link_opens_one_session_once_and_not_after_it_expires() {
        let (_dir, mut s) = store();
        let author = AuthorId(SecretKey::generate().expect("random").public());
        let u = s.add_user("Ada", author).expect("user");
        let code = s.create_sign_in_link(&u.id, 600).expect("link");
        let secret = s
            .redeem_sign_in_link(&code)
            .expect("redeem")
            .expect("a session");
        assert_eq!(
            s.session_user(&secret).expect("user").map(|x| x.id),
            Some(u.id.clone())
        );
        assert_eq!(
            s.redeem_sign_in_link(&code).expect("again"),
            None,
            "used once"
        );
        let expired = s.create_sign_in_link(&u.id, -1).expect("link");
        assert_eq!(s.redeem_sign_in_link(&expired).expect("expired"), None);
        assert_eq!(s.redeem_sign_in_link("00").expect("unknown"), None);
    }

    #[test]
    fn tokens_are_kept_hashed_scoped_and_end() {
        let (_dir, mut s) = store();
        let author = AuthorId(SecretKey::generate().expect("random").public());
        let u = s.add_user("Ada", author).expect("user");
        let (id, secret) = s.create_token(&u.id, &[Scope::Read], 3600).expect("token");
        assert!(secret.starts_with(&format!("orr_{id}_")));
        // Only the hash is stored.
        let stored: Vec<u8> = s
            .conn
            .query_row("SELECT hash FROM tokens WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .expect("row");
        assert_ne!(stored, secret.as_bytes());
        let (who, scopes) = s.use_token(&secret).expect("use").expect("valid");
        assert_eq!(
            (who.id.as_str(), scopes.as_slice()),
            (u.id.as_str(), &[Scope::Read][..])
        );
        assert!(s.use_token("orr_forged").expect("use").is_none());
        assert!(s.use_token(&format!("{secret}x")).expect("use").is_none());
        assert!(s.tokens(Some(&u.id)).expect("list")[0].last_used.is_some());
        assert!(s.revoke_token(&id).expect("revoke"));
        assert!(s.use_token(&secret).expect("use").is_none(), "revoked");
        // An expired one.
        let (old, old_secret) = s.create_token(&u.id, &[Scope::Write], 60).expect("token");
        s.conn
            .execute(
                "UPDATE tokens SET expires_at = 0 WHERE id = ?1",
                params![old],
            )
            .expect("age");
        assert!(s.use_token(&old_secret).expect("use").is_none(), "expired");
        // Removing the user ends everything.
        let (_, kept) = s.create_token(&u.id, &[Scope::Read], 60).expect("token");
        let session = s.create_session(&u.id).expect("session");
        assert!(s.session_user(&session).expect("session").is_some());
        assert!(s.remove_user(&u.id).expect("remove"));
        assert!(s.use_token(&kept).expect("use").is_none());
        assert!(s.session_user(&session).expect("session").is_none());
    }

    #[test]
    fn scopes_parse_strictly() {
        assert_eq!(
            Scope::parse_list("write, read,read"),
            Some(vec![Scope::Read, Scope::Write])
        );
        assert_eq!(Scope::parse_list("admin"), None);
        assert_eq!(Scope::parse_list(""), None);
    }
}
