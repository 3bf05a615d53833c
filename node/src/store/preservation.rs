//! Preservation: this node's policies for the collections it publishes, and the copies it keeps
//! of other members' collections, file by file.

use orrery_protocol::preservation::{HeldCopy, PreservationPolicy, Subject};
use orrery_protocol::{NodeId, PublicKey, Signed, Unverified};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

/// A file of a copy kept here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreservedFile {
    /// The node that publishes the collection.
    pub publisher: NodeId,
    /// The collection's id there.
    pub collection: String,
    /// The file's path in the collection.
    pub path: String,
    /// Its BLAKE3.
    pub blake3: [u8; 32],
    /// Its size.
    pub size: u64,
    /// When it was last checked against its BLAKE3.
    pub checked_at: i64,
    /// Whether it matched.
    pub intact: bool,
}

impl Store {
    /// Keeps a policy this node signed for its collection `collection`, replacing the one
    /// before.
    pub fn set_preservation_policy(
        &mut self,
        collection: &str,
        policy: &Signed<PreservationPolicy, Unverified>,
        seq: u64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO preservation_policies (collection, seq, policy) VALUES (?1, ?2, ?3)
             ON CONFLICT (collection) DO UPDATE SET seq = excluded.seq, policy = excluded.policy",
            params![
                collection,
                seq as i64,
                orrery_protocol::encoding::encode(policy)
            ],
        )?;
        Ok(())
    }

    /// The sequence number of the policy kept for `collection`, if any.
    pub fn preservation_seq(&self, collection: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq FROM preservation_policies WHERE collection = ?1",
                params![collection],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|s| s as u64))
    }

    /// How many policies this node set and the sum of their sequence numbers: changes with
    /// every policy set.
    pub fn preservation_mark(&self) -> Result<(i64, i64), StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*), coalesce(sum(seq), 0) FROM preservation_policies",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// The policies this node signed, as its advert carries them.
    pub fn preservation_policies(
        &self,
    ) -> Result<Vec<Signed<PreservationPolicy, Unverified>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT policy FROM preservation_policies ORDER BY collection")?;
        let rows: Vec<Vec<u8>> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for b in rows {
            match orrery_protocol::encoding::decode("preservation policy", &b, 64 * 1024) {
                Ok(p) => out.push(p),
                Err(e) => {
                    tracing::warn!(error = %e, "a preservation policy kept here does not decode; set it again with `orrery preservation set`")
                }
            }
        }
        Ok(out)
    }

    /// Records a file of a copy, as just fetched or checked.
    pub fn put_preserved_file(&mut self, f: &PreservedFile) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO preserved_files (publisher, collection, path, blake3, size, checked_at, intact)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (publisher, collection, path) DO UPDATE SET blake3 = excluded.blake3,
                 size = excluded.size, checked_at = excluded.checked_at, intact = excluded.intact",
            params![
                f.publisher.key().as_bytes().as_slice(),
                f.collection,
                f.path,
                f.blake3.as_slice(),
                f.size as i64,
                f.checked_at,
                f.intact
            ],
        )?;
        Ok(())
    }

    /// Records how many files and bytes the publisher lists for a copy kept here.
    pub fn set_preserved_copy(
        &mut self,
        publisher: NodeId,
        collection: &str,
        files: u64,
        bytes: u64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO preserved_copies (publisher, collection, files, bytes) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (publisher, collection) DO UPDATE SET files = excluded.files, bytes = excluded.bytes",
            params![
                publisher.key().as_bytes().as_slice(),
                collection,
                files as i64,
                bytes as i64
            ],
        )?;
        Ok(())
    }

    /// The files kept of `publisher`'s `collection`.
    pub fn preserved_files(
        &self,
        publisher: NodeId,
        collection: &str,
    ) -> Result<Vec<PreservedFile>, StoreError> {
        self.preserved_where(
            "publisher = ?1 AND collection = ?2 ORDER BY path",
            params![publisher.key().as_bytes().as_slice(), collection],
        )
    }

    /// The intact kept files whose bytes hash to `blake3` (the same bytes may be in several
    /// copies; at most 1024 are looked at).
    pub fn preserved_files_with(
        &self,
        blake3: &[u8; 32],
    ) -> Result<Vec<PreservedFile>, StoreError> {
        self.preserved_where(
            "blake3 = ?1 AND intact = 1 LIMIT 1024",
            params![blake3.as_slice()],
        )
    }

    /// Marks a kept file damaged, if it is still recorded.
    pub fn mark_preserved_damaged(&self, f: &PreservedFile) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE preserved_files SET intact = 0
             WHERE publisher = ?1 AND collection = ?2 AND path = ?3",
            params![
                f.publisher.key().as_bytes().as_slice(),
                f.collection,
                f.path
            ],
        )?;
        Ok(())
    }

    /// Files of copies last checked before `before`, the longest unchecked first, at most
    /// `limit`.
    pub fn preserved_files_due(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<Vec<PreservedFile>, StoreError> {
        self.preserved_where(
            "checked_at < ?1 AND intact = 1 ORDER BY checked_at LIMIT ?2",
            params![before, limit as i64],
        )
    }

    /// The kept files matching `filter` (an SQL condition with its order and limit).
    fn preserved_where(
        &self,
        filter: &str,
        values: impl rusqlite::Params,
    ) -> Result<Vec<PreservedFile>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT publisher, collection, path, blake3, size, checked_at, intact
             FROM preserved_files WHERE {filter}"
        ))?;
        let rows = stmt.query_map(values, |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, bool>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (publisher, collection, path, hash, size, checked_at, intact) = row?;
            let (Ok(key), Ok(blake3)) = (
                PublicKey::from_bytes(&publisher),
                <[u8; 32]>::try_from(hash.as_slice()),
            ) else {
                continue;
            };
            out.push(PreservedFile {
                publisher: NodeId(key),
                collection,
                path,
                blake3,
                size: size as u64,
                checked_at,
                intact,
            });
        }
        Ok(out)
    }

    /// Forgets a copy kept here, and its files' records.
    pub fn delete_preserved_copy(
        &mut self,
        publisher: NodeId,
        collection: &str,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let key = publisher.key().as_bytes().to_vec();
        tx.execute(
            "DELETE FROM preserved_files WHERE publisher = ?1 AND collection = ?2",
            params![key, collection],
        )?;
        tx.execute(
            "DELETE FROM preserved_copies WHERE publisher = ?1 AND collection = ?2",
            params![key, collection],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets the files of a copy its publisher no longer lists (not in `listed`); their
    /// paths, for the caller to remove from disk.
    pub fn retain_preserved_files(
        &mut self,
        publisher: NodeId,
        collection: &str,
        listed: &[(String, [u8; 32])],
    ) -> Result<Vec<String>, StoreError> {
        let stale: Vec<String> = self
            .preserved_files(publisher, collection)?
            .into_iter()
            .filter(|f| !listed.iter().any(|(p, h)| *p == f.path && *h == f.blake3))
            .map(|f| f.path)
            .collect();
        for path in &stale {
            self.conn.execute(
                "DELETE FROM preserved_files WHERE publisher = ?1 AND collection = ?2 AND path = ?3",
                params![publisher.key().as_bytes().as_slice(), collection, path],
            )?;
        }
        Ok(stale)
    }

    /// The copies kept here, as this node's advert lists them: complete when every file the
    /// publisher listed is held and matched its hash when last checked.
    pub fn held_copies(&self) -> Result<Vec<HeldCopy>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT c.publisher, c.collection, c.files, c.bytes,
                    count(f.path), coalesce(sum(f.size), 0), coalesce(min(f.intact), 0),
                    coalesce(min(f.checked_at), 0)
             FROM preserved_copies c LEFT JOIN preserved_files f
                 ON f.publisher = c.publisher AND f.collection = c.collection
             GROUP BY c.publisher, c.collection ORDER BY c.collection",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, bool>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (publisher, id, listed, _bytes, files, bytes, intact, checked_at) = row?;
            let Ok(key) = PublicKey::from_bytes(&publisher) else {
                continue;
            };
            out.push(HeldCopy {
                subject: Subject::Collection {
                    publisher: NodeId(key),
                    id,
                },
                files: files as u64,
                bytes: bytes as u64,
                complete: files == listed && intact,
                checked_at,
            });
        }
        Ok(out)
    }

    /// Bytes kept here for other members' collections.
    pub fn preserved_bytes(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT coalesce(sum(size), 0) FROM preserved_files",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }
}
