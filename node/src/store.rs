//! The node's SQLite store: authors, projects and their verified histories.
//!
//! One database per node, in WAL mode with `synchronous = FULL`: when a write returns, it is on
//! disk, and only then is a change acknowledged. The schema evolves through numbered migrations
//! (`migrations/NNNN.sql`) tracked in `PRAGMA user_version`.
//!
//! A project's history is kept compact: a snapshot (automerge's `save()`), the changes that
//! arrived since, and one seal per actor. [`Store::compact`] folds the changes into a new
//! snapshot in one transaction.

mod accounts;
mod bans;
mod data_addrs;
mod jobs;
mod preservation;
mod replication;

use std::collections::HashSet;
use std::path::Path;

use orrery_crdt::{Batch, Project};
use orrery_protocol::NodeId;
use orrery_protocol::advert::NodeAdvert;
use orrery_protocol::federation::{Membership, MembershipEvent};
use orrery_protocol::wire::MAX_FRAME_BYTES;
use orrery_protocol::{
    AuthorId, AuthorProfile, ChangeHash, ChangeSeal, ProjectId, PublicKey, Signed, Verified,
    identity::Signature,
};
use rusqlite::{Connection, OptionalExtension, params};

pub use accounts::{MAX_TOKEN_SECS, SESSION_SECS, Scope, TokenInfo, User};
pub use bans::PeerBan;
pub use jobs::{Job, JobState};
pub use preservation::PreservedFile;
pub use replication::{Direction, ReplicationProblem};

/// The schema version this build runs: the number of its migrations.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// The migrations, in order; `user_version` counts how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001.sql"),
    include_str!("../migrations/0002.sql"),
    include_str!("../migrations/0003.sql"),
    include_str!("../migrations/0004.sql"),
    include_str!("../migrations/0005.sql"),
    include_str!("../migrations/0006.sql"),
    include_str!("../migrations/0007.sql"),
    include_str!("../migrations/0008.sql"),
    include_str!("../migrations/0009.sql"),
    include_str!("../migrations/0010.sql"),
    include_str!("../migrations/0011.sql"),
    include_str!("../migrations/0012.sql"),
];

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The database was written by a newer Orrery.
    #[error(
        "the database has schema version {found}, newer than this orrery ({known}); upgrade orrery"
    )]
    TooNew {
        /// Version in the file.
        found: usize,
        /// Newest version known here.
        known: usize,
    },
    /// No project matches.
    #[error("no project matches `{0}`; `orrery project list` shows them")]
    NoProject(String),
    /// Several projects match.
    #[error("`{query}` matches {count} projects; give more of the id")]
    Ambiguous {
        /// What was asked.
        query: String,
        /// How many matched.
        count: usize,
    },
    /// No author matches.
    #[error("no local author matches `{0}`; `orrery author list` shows them")]
    NoAuthor(String),
    /// The store thread has stopped.
    #[error("the store has stopped")]
    Stopped,
    /// The operating system gave no randomness for a secret.
    #[error("no randomness for a secret: {0}")]
    Random(String),
    /// Stored federation data does not load.
    #[error("stored federation data is corrupt: {0}")]
    Federation(String),
    /// Stored data does not load.
    #[error("stored data of project {project} is corrupt: {reason}")]
    Corrupt {
        /// The project.
        project: ProjectId,
        /// What is wrong.
        reason: String,
    },
}

/// A project row.
#[derive(Debug, Clone)]
pub struct ProjectRow {
    /// Its id.
    pub id: ProjectId,
    /// Its title when last written.
    pub title: String,
    /// When it was first stored (seconds since the epoch).
    pub created_at: i64,
    /// When it was last written.
    pub updated_at: i64,
}

/// A local author.
#[derive(Debug, Clone)]
pub struct AuthorRow {
    /// The author's id.
    pub id: AuthorId,
    /// Their verified profile.
    pub profile: Signed<AuthorProfile, Verified>,
    /// Whether commands act as this author by default.
    pub is_default: bool,
}

/// What is stored for a project, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredSize {
    /// Snapshot bytes.
    pub snapshot: usize,
    /// Bytes of changes stored since the snapshot.
    pub changes: usize,
    /// Number of those changes.
    pub change_count: usize,
    /// Bytes of seals (payload, signer and signature).
    pub seals: usize,
}

impl StoredSize {
    /// All bytes.
    pub fn total(&self) -> usize {
        self.snapshot + self.changes + self.seals
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The store. Owns one connection; callers serialise access (one per process or actor).
pub struct Store {
    conn: Connection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        // Transactions take the write lock when they begin. A deferred one that reads, then
        // writes, fails at once (SQLITE_BUSY, with no wait) if another process wrote in between:
        // the command line beside a running node would then fail on `database is locked`.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut store = Self { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                found: version,
                known: MIGRATIONS.len(),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    // ---- authors ----

    /// Stores a local author's verified profile. The first author becomes the default.
    pub fn add_author(
        &mut self,
        profile: &Signed<AuthorProfile, Verified>,
    ) -> Result<(), StoreError> {
        let p = profile.value();
        let tx = self.conn.transaction()?;
        let count: i64 = tx.query_row("SELECT count(*) FROM authors", [], |r| r.get(0))?;
        tx.execute(
            "INSERT INTO authors (id, name, profile, is_default, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                p.author.key().as_bytes().as_slice(),
                p.name,
                orrery_protocol::encoding::encode(&profile.clone().into_unverified()),
                count == 0,
                now()
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The local authors, default first.
    pub fn authors(&self) -> Result<Vec<AuthorRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT profile, is_default FROM authors ORDER BY is_default DESC, created_at, name",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, bool>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (bytes, is_default) = row?;
            let signed: Signed<AuthorProfile> = orrery_protocol::encoding::decode(
                "author profile",
                &bytes,
                orrery_protocol::limits::MAX_SIGNED_PAYLOAD * 2,
            )
            .map_err(|e| StoreError::NoAuthor(e.to_string()))?;
            let profile =
                AuthorProfile::verify(signed).map_err(|e| StoreError::NoAuthor(e.to_string()))?;
            out.push(AuthorRow {
                id: profile.value().author,
                profile,
                is_default,
            });
        }
        Ok(out)
    }

    /// Finds a local author by id prefix or exact name; `None` picks the default.
    pub fn author(&self, query: Option<&str>) -> Result<AuthorRow, StoreError> {
        let authors = self.authors()?;
        let found: Vec<AuthorRow> = match query {
            None => authors.into_iter().filter(|a| a.is_default).collect(),
            Some(q) => {
                let by_name: Vec<AuthorRow> = authors
                    .iter()
                    .filter(|a| a.profile.value().name == q)
                    .cloned()
                    .collect();
                if by_name.is_empty() {
                    authors
                        .into_iter()
                        .filter(|a| a.id.to_string().starts_with(&q.to_lowercase()))
                        .collect()
                } else {
                    by_name
                }
            }
        };
        match found.len() {
            1 => Ok(found
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::NoAuthor(String::new()))?),
            0 => Err(StoreError::NoAuthor(
                query.unwrap_or("(default)").to_string(),
            )),
            n => Err(StoreError::Ambiguous {
                query: query.unwrap_or_default().to_string(),
                count: n,
            }),
        }
    }

    // ---- projects ----

    /// Stores a new project with its first batch.
    pub fn create_project(&mut self, project: &Project, batch: &Batch) -> Result<(), StoreError> {
        self.create_project_raw(project.id(), &project.title(), batch)
    }

    /// Stores a new project by id and title with its first (verified) batch.
    pub fn create_project_raw(
        &mut self,
        id: ProjectId,
        title: &str,
        batch: &Batch,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO projects (id, title, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
            params![id.0.as_slice(), title, now()],
        )?;
        insert_batch(&tx, id, batch)?;
        tx.commit()?;
        Ok(())
    }

    /// Appends a verified batch to a project's history. Durable when this returns.
    pub fn append(&mut self, project: &Project, batch: &Batch) -> Result<(), StoreError> {
        self.append_raw(project.id(), &project.title(), batch)
    }

    /// Appends a verified batch to a project by id, recording its current title.
    pub fn append_raw(
        &mut self,
        id: ProjectId,
        title: &str,
        batch: &Batch,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        insert_batch(&tx, id, batch)?;
        tx.execute(
            "UPDATE projects SET title = ?2, updated_at = ?3 WHERE id = ?1",
            params![id.0.as_slice(), title, now()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Number of changes stored since the snapshot.
    pub fn loose_changes(&self, id: ProjectId) -> Result<usize, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM changes WHERE project = ?1",
            [id.0.as_slice()],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// Folds the stored changes that `project` holds into a new snapshot, in one transaction.
    /// Rows another process appended meanwhile (changes the snapshot lacks) stay.
    pub fn compact(&mut self, project: &Project) -> Result<(), StoreError> {
        let id = project.id();
        let folded: HashSet<[u8; 32]> = self
            .loose_hashes(id)?
            .into_iter()
            .filter(|h| project.has_change(&ChangeHash(*h)))
            .collect();
        self.compact_raw(id, project.save(), &project.seals(), &folded)
    }

    /// The hashes of the changes stored since the snapshot.
    pub fn loose_hashes(&self, id: ProjectId) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT hash FROM changes WHERE project = ?1")?;
        let rows: Vec<Vec<u8>> = stmt
            .query_map([id.0.as_slice()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(rows.into_iter().filter_map(|h| h.try_into().ok()).collect())
    }

    /// Writes a snapshot, deletes the loose changes it now holds (`folded`) and the seals that
    /// only named those, and records the kept seals.
    pub fn compact_raw(
        &mut self,
        id: ProjectId,
        snapshot: Vec<u8>,
        seals: &[Signed<ChangeSeal>],
        folded: &HashSet<[u8; 32]>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO snapshots (project, doc, written_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (project) DO UPDATE SET doc = excluded.doc, written_at = excluded.written_at",
            params![id.0.as_slice(), snapshot, now()],
        )?;
        {
            let mut del =
                tx.prepare_cached("DELETE FROM changes WHERE project = ?1 AND hash = ?2")?;
            for h in folded {
                del.execute(params![id.0.as_slice(), h.as_slice()])?;
            }
            // Seals naming only folded changes are superseded by the kept ones.
            let mut stmt = tx.prepare("SELECT id, payload FROM seals WHERE project = ?1")?;
            let rows: Vec<(i64, Vec<u8>)> = stmt
                .query_map([id.0.as_slice()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (row, payload) in rows {
                let seal: Option<ChangeSeal> = orrery_protocol::encoding::decode(
                    "change seal",
                    &payload,
                    orrery_protocol::limits::MAX_SIGNED_PAYLOAD,
                )
                .ok();
                let superseded = seal.is_none_or(|s| s.heads.iter().all(|h| folded.contains(&h.0)));
                if superseded {
                    tx.execute("DELETE FROM seals WHERE id = ?1", [row])?;
                }
            }
        }
        insert_seals(&tx, id, seals)?;
        tx.commit()?;
        Ok(())
    }

    /// Loads a project from its snapshot, changes and seals.
    pub fn load(&self, id: ProjectId) -> Result<Project, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            project: id,
            reason,
        };
        let snapshot: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT doc FROM snapshots WHERE project = ?1",
                [id.0.as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        let mut stmt = self
            .conn
            .prepare("SELECT bytes FROM changes WHERE project = ?1 ORDER BY id")?;
        let changes: Vec<Vec<u8>> = stmt
            .query_map([id.0.as_slice()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT signer, payload, signature FROM seals WHERE project = ?1 ORDER BY id",
        )?;
        let raw: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = stmt
            .query_map([id.0.as_slice()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut seals = Vec::with_capacity(raw.len());
        for (signer, payload, signature) in raw {
            let signer = PublicKey::from_bytes(&signer).map_err(|e| corrupt(e.to_string()))?;
            let signature: [u8; 64] = signature
                .try_into()
                .map_err(|_| corrupt("a seal signature is not 64 bytes".into()))?;
            let seal = Signed::<ChangeSeal>::from_parts(signer, payload, Signature(signature))
                .verify()
                .map_err(|e| corrupt(e.to_string()))?;
            seals.push(seal);
        }
        Project::restore(id, snapshot.as_deref(), changes, seals)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// All projects, most recently written first.
    pub fn projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, title, created_at, updated_at FROM projects ORDER BY updated_at DESC, title",
        )?;
        let rows = stmt.query_map([], |r| {
            let id: Vec<u8> = r.get(0)?;
            Ok((id, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, title, created_at, updated_at) = row?;
            let id: [u8; 32] = id
                .try_into()
                .map_err(|_| StoreError::NoProject("a stored id is not 32 bytes".into()))?;
            out.push(ProjectRow {
                id: ProjectId(id),
                title,
                created_at,
                updated_at,
            });
        }
        Ok(out)
    }

    /// Finds a project by id prefix (hex) or exact title.
    pub fn resolve(&self, query: &str) -> Result<ProjectRow, StoreError> {
        let all = self.projects()?;
        let q = query.trim().to_lowercase();
        let mut found: Vec<ProjectRow> = all.iter().filter(|p| p.title == query).cloned().collect();
        if found.is_empty() && !q.is_empty() {
            found = all
                .into_iter()
                .filter(|p| p.id.to_string().starts_with(&q))
                .collect();
        }
        match found.len() {
            1 => found
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::NoProject(query.into())),
            0 => Err(StoreError::NoProject(query.into())),
            n => Err(StoreError::Ambiguous {
                query: query.into(),
                count: n,
            }),
        }
    }

    /// What is stored for a project.
    pub fn stored_size(&self, id: ProjectId) -> Result<StoredSize, StoreError> {
        let key = id.0.as_slice();
        let snapshot: Option<i64> = self
            .conn
            .query_row(
                "SELECT length(doc) FROM snapshots WHERE project = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?;
        let (changes, change_count): (i64, i64) = self.conn.query_row(
            "SELECT coalesce(sum(length(bytes)), 0), count(*) FROM changes WHERE project = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let seals: i64 = self.conn.query_row(
            "SELECT coalesce(sum(length(payload) + length(signer) + length(signature)), 0) FROM seals WHERE project = ?1",
            [key],
            |r| r.get(0),
        )?;
        Ok(StoredSize {
            snapshot: snapshot.unwrap_or(0) as usize,
            changes: changes as usize,
            change_count: change_count as usize,
            seals: seals as usize,
        })
    }

    /// Whether a change is stored (loose, not yet compacted).
    pub fn has_loose_change(&self, id: ProjectId, hash: ChangeHash) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM changes WHERE project = ?1 AND hash = ?2",
                params![id.0.as_slice(), hash.0.as_slice()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

impl Store {
    // ---- federation ----

    /// Adds membership events (already verified by the member list). Returns how many were new.
    pub fn add_membership_events(
        &mut self,
        events: &[MembershipEvent],
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO membership_events (event) VALUES (?1) ON CONFLICT DO NOTHING",
            )?;
            for e in events {
                added += stmt.execute([orrery_protocol::encoding::encode(e)])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// The stored member list, if this node belongs to a federation.
    pub fn membership(&self) -> Result<Option<Membership>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT event FROM membership_events ORDER BY id")?;
        let events: Vec<MembershipEvent> = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))?
            .filter_map(|b| b.ok())
            .filter_map(|b| {
                orrery_protocol::encoding::decode("membership event", &b, MAX_FRAME_BYTES).ok()
            })
            .collect();
        let Some(founding) = events.iter().find_map(|e| match e {
            MembershipEvent::Founding(f) => Some(f.clone()),
            _ => None,
        }) else {
            return Ok(None);
        };
        let mut m = Membership::from_founding(founding)
            .map_err(|e| StoreError::Federation(e.to_string()))?;
        for e in events {
            let _ = m.apply(e);
        }
        Ok(Some(m))
    }

    /// Keeps a member's advert, already verified by the federation layer (the newest wins).
    pub fn put_advert(&mut self, advert: &NodeAdvert) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO adverts (node, advert, seq, received_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (node) DO UPDATE SET advert = excluded.advert, seq = excluded.seq,
                 received_at = excluded.received_at WHERE excluded.seq > adverts.seq",
            params![
                advert.node.key().as_bytes().as_slice(),
                orrery_protocol::encoding::encode(advert),
                advert.seq as i64,
                now()
            ],
        )?;
        Ok(())
    }

    /// The stored advert of `node`, if there is one this version reads.
    pub fn advert(&self, node: NodeId) -> Result<Option<NodeAdvert>, StoreError> {
        let row: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT advert FROM adverts WHERE node = ?1",
                [node.key().as_bytes().as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(row.and_then(|b| orrery_protocol::encoding::decode("advert", &b, MAX_FRAME_BYTES).ok()))
    }

    /// The stored adverts.
    pub fn adverts(&self) -> Result<Vec<NodeAdvert>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT advert FROM adverts")?;
        let rows: Vec<Vec<u8>> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let kept = rows.len();
        let adverts: Vec<NodeAdvert> = rows
            .into_iter()
            .filter_map(|b| orrery_protocol::encoding::decode("advert", &b, MAX_FRAME_BYTES).ok())
            .collect();
        if adverts.len() < kept {
            // Written by another version of Orrery: the member's next advert replaces it.
            tracing::warn!(
                unreadable = kept - adverts.len(),
                "stored adverts of members do not decode; they are ignored until those members advertise again"
            );
        }
        Ok(adverts)
    }

    /// Records whether a member is connected now.
    pub fn set_peer(&mut self, node: NodeId, connected: bool) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO peers (node, connected, last_seen) VALUES (?1, ?2, ?3)
             ON CONFLICT (node) DO UPDATE SET connected = excluded.connected, last_seen = excluded.last_seen",
            params![node.key().as_bytes().as_slice(), connected, now()],
        )?;
        Ok(())
    }

    /// Records the addresses a member advertised, to reconnect after a restart.
    pub fn put_peer_addrs(&mut self, node: NodeId, addrs: &[String]) -> Result<(), StoreError> {
        let json = serde_json::to_string(addrs).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            "INSERT INTO peers (node, addrs) VALUES (?1, ?2)
             ON CONFLICT (node) DO UPDATE SET addrs = excluded.addrs",
            params![node.key().as_bytes().as_slice(), json],
        )?;
        Ok(())
    }

    /// The addresses members advertised.
    pub fn peer_addrs(&self) -> Result<Vec<(NodeId, Vec<String>)>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT node, addrs FROM peers")?;
        let rows: Vec<(Vec<u8>, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(n, a)| {
                Some((
                    NodeId(PublicKey::from_bytes(&n).ok()?),
                    serde_json::from_str(&a).unwrap_or_default(),
                ))
            })
            .collect())
    }

    /// Members the running node last saw connected, and when.
    pub fn peers(&self) -> Result<Vec<(NodeId, bool, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT node, connected, last_seen FROM peers")?;
        let rows: Vec<(Vec<u8>, bool, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(n, c, t)| Some((NodeId(PublicKey::from_bytes(&n).ok()?), c, t)))
            .collect())
    }

    /// Replaces the addresses the running node listens on.
    pub fn set_listen_addrs(&mut self, addrs: &[String]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM listen_addrs", [])?;
        for a in addrs {
            tx.execute(
                "INSERT INTO listen_addrs (addr) VALUES (?1) ON CONFLICT DO NOTHING",
                [a],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The addresses the running node last listened on.
    pub fn listen_addrs(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT addr FROM listen_addrs ORDER BY addr")?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// A number that changes whenever another connection commits to the database.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// The newest change row and snapshot time of every project, to notice writes by others.
    pub fn project_marks(&self) -> Result<Vec<(ProjectId, i64, i64)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT p.id,
                    coalesce((SELECT max(id) FROM changes c WHERE c.project = p.id), 0),
                    coalesce((SELECT written_at FROM snapshots s WHERE s.project = p.id), 0)
             FROM projects p",
        )?;
        let rows: Vec<(Vec<u8>, i64, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, a, b)| Some((ProjectId(id.try_into().ok()?), a, b)))
            .collect())
    }

    /// Whether a project is stored.
    pub fn has_project(&self, id: ProjectId) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM projects WHERE id = ?1",
                [id.0.as_slice()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

fn insert_batch(
    tx: &rusqlite::Transaction<'_>,
    project: ProjectId,
    batch: &Batch,
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO changes (project, hash, bytes) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    for bytes in &batch.changes {
        let hash = change_hash(bytes);
        stmt.execute(params![project.0.as_slice(), hash.as_slice(), bytes])?;
    }
    insert_seals(tx, project, &batch.seals)
}

fn insert_seals(
    tx: &rusqlite::Transaction<'_>,
    project: ProjectId,
    seals: &[Signed<ChangeSeal>],
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO seals (project, signer, payload, signature) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    )?;
    for seal in seals {
        stmt.execute(params![
            project.0.as_slice(),
            seal.signer().as_bytes().as_slice(),
            seal.payload(),
            seal.signature().0.as_slice()
        ])?;
    }
    Ok(())
}

/// The hash of a raw change chunk: automerge names a change by the SHA-256 of its chunk after
/// the 4-byte magic and 4-byte checksum (chunk type, length, data).
pub fn change_hash(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes.get(8..).unwrap_or_default()).into()
}
