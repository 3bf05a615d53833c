//! The node's store of large outputs (see `orrery_crdt::outputs`): one file per blob under
//! `blobs/<project>/` in the node's directory, named by its BLAKE3 hash. Each project has its
//! own: a blob is served only under a project that refers to it, to nodes that may hold that
//! project, so naming another project's hash in a document one may edit reaches nothing.
//!
//! A blob is written to a temporary file, synced and renamed into place, so a reader sees a
//! whole blob or none. Beside each blob, `outboard/<hash>` holds its BLAKE3 tree
//! (`crate::dataplane::outboard`), with which the data plane serves any part of it with its
//! proof and checks each 16 KiB group against the hash as it is read. Every whole read checks
//! the hash again (BLAKE3 reads several GiB/s), so a file damaged on disk is reported, never
//! exported or served: a damaged blob is moved to `quarantine/` and fetched again from another
//! node that holds the project.
//!
//! Fetching from another node writes into `partial/<hash>-<len>` (a verified prefix, see
//! `crate::dataplane::fetch`), which [`BlobStore::adopt`] moves into place once whole and
//! checked.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use orrery_crdt::{Blob, BlobRef, BlobSource};

use crate::dataplane::outboard;

/// Largest stored output accepted from another node.
pub const MAX_BLOB_BYTES: u64 = 1 << 30;

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobStoreError {
    /// The file system refused.
    #[error("blob store at {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The bytes do not match the reference.
    #[error("the bytes received for {0} do not match its hash")]
    Mismatch(BlobRef),
    /// The blob is larger than [`MAX_BLOB_BYTES`].
    #[error("{0} is above the limit of {MAX_BLOB_BYTES} bytes")]
    TooLarge(BlobRef),
}

/// The blob directory of a node.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// The store in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The store of one project's blobs, in a directory of this one.
    pub fn for_project(&self, project: orrery_protocol::ProjectId) -> Self {
        Self {
            dir: self.dir.join(project.to_string()),
        }
    }

    /// The projects that have a store here, and their stores.
    pub fn projects(&self) -> Vec<(orrery_protocol::ProjectId, Self)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let mut id = [0u8; 32];
                hex::decode_to_slice(&name, &mut id).ok()?;
                Some((orrery_protocol::ProjectId(id), Self { dir: e.path() }))
            })
            .collect()
    }

    /// Deletes this store's directory if nothing is left in it.
    pub fn remove_if_empty(&self) {
        for sub in ["partial", "outboard", "parts"] {
            let _ = fs::remove_dir(self.dir.join(sub));
        }
        let _ = fs::remove_dir(&self.dir);
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobStoreError + '_ {
        move |source| BlobStoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn path(&self, id: &BlobRef) -> PathBuf {
        self.dir.join(id.hex())
    }

    fn outboard_path(&self, id: &BlobRef) -> PathBuf {
        self.dir.join("outboard").join(id.hex())
    }

    fn quarantine_dir(&self) -> PathBuf {
        self.dir.join("quarantine")
    }

    /// Where a fetch of `id` from another node keeps what it verified so far.
    pub fn partial_path(&self, id: &BlobRef) -> PathBuf {
        self.dir
            .join("partial")
            .join(format!("{}-{}", id.hex(), id.len))
    }

    /// The reference of the blob held here under `hash`, if one is (its length from its file).
    pub fn by_hash(&self, hash: [u8; 32]) -> Option<BlobRef> {
        let probe = BlobRef { hash, len: 0 };
        let len = fs::metadata(self.path(&probe)).ok()?.len();
        Some(BlobRef { hash, len })
    }

    /// Whether the blob is held (by its file's presence and length).
    pub fn has(&self, id: &BlobRef) -> bool {
        fs::metadata(self.path(id)).is_ok_and(|m| m.len() == id.len)
    }

    /// Stores blobs made by local edits (their references are computed from their bytes).
    pub fn put_all(&self, blobs: &[Blob]) -> Result<(), BlobStoreError> {
        for b in blobs {
            if !b.id.matches(&b.bytes) {
                return Err(BlobStoreError::Mismatch(b.id));
            }
            if self.has(&b.id) {
                continue;
            }
            fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
            let tmp = self.dir.join(format!(".{}.tmp", b.id.hex()));
            let mut f = File::create(&tmp).map_err(Self::io(&tmp))?;
            f.write_all(&b.bytes).map_err(Self::io(&tmp))?;
            f.sync_all().map_err(Self::io(&tmp))?;
            let (_, tree) = outboard::compute(b.bytes.as_slice(), b.id.len)
                .map_err(|_| BlobStoreError::TooLarge(b.id))?;
            self.write_outboard(&b.id, &tree)?;
            let path = self.path(&b.id);
            fs::rename(&tmp, &path).map_err(Self::io(&path))?;
        }
        Ok(())
    }

    /// Records a blob's outboard.
    fn write_outboard(&self, id: &BlobRef, tree: &[u8]) -> Result<(), BlobStoreError> {
        let dir = self.dir.join("outboard");
        fs::create_dir_all(&dir).map_err(Self::io(&dir))?;
        let path = self.outboard_path(id);
        let tmp = dir.join(format!(".{}.tmp", id.hex()));
        fs::write(&tmp, tree).map_err(Self::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(Self::io(&path))
    }

    /// The whole blob, checked against its hash; `None` if absent or damaged. A damaged blob is
    /// quarantined.
    pub fn get(&self, id: &BlobRef) -> Option<Vec<u8>> {
        self.read(id).ok()
    }

    /// The whole blob: its bytes, [`Unreadable::Missing`], or [`Unreadable::Damaged`] (then it has been
    /// quarantined and is no longer held).
    pub fn read(&self, id: &BlobRef) -> Result<Vec<u8>, Unreadable> {
        let bytes = fs::read(self.path(id)).map_err(|_| Unreadable::Missing)?;
        if id.matches(&bytes) {
            Ok(bytes)
        } else {
            self.quarantine(id);
            Err(Unreadable::Damaged)
        }
    }

    /// A held blob opened for the data plane, with its outboard (each group is checked against
    /// it while served). A missing or damaged outboard is rebuilt from the blob, which is then
    /// read whole: [`Unreadable::Damaged`] means the blob did not match and was quarantined.
    pub fn open_for_serving(&self, id: &BlobRef) -> Result<(File, Vec<u8>), Unreadable> {
        if !self.has(id) {
            return Err(Unreadable::Missing);
        }
        let file = File::open(self.path(id)).map_err(|_| Unreadable::Missing)?;
        let expected = outboard::tree(id.len).outboard_size();
        if let Ok(tree) = fs::read(self.outboard_path(id))
            && tree.len() as u64 == expected
        {
            return Ok((file, tree));
        }
        let rebuilt = outboard::compute(std::io::BufReader::new(&file), id.len);
        match rebuilt {
            Ok((root, tree)) if root == id.hash => {
                let _ = self.write_outboard(id, &tree);
                Ok((file, tree))
            }
            _ => {
                self.quarantine(id);
                Err(Unreadable::Damaged)
            }
        }
    }

    /// Moves a fetched blob, whole and checked (`crate::dataplane::fetch`), from its partial file
    /// into place with its outboard.
    pub fn adopt(&self, id: &BlobRef, tree: &[u8]) -> Result<(), BlobStoreError> {
        self.write_outboard(id, tree)?;
        let path = self.path(id);
        fs::rename(self.partial_path(id), &path).map_err(Self::io(&path))
    }

    /// The damaged copies moved to quarantine: (blob hash in hex, when, seconds since the epoch).
    pub fn quarantined(&self) -> Vec<(String, u64)> {
        let Ok(entries) = fs::read_dir(self.quarantine_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<(String, u64)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (hex, stamp) = name.rsplit_once('-')?;
                Some((hex.to_owned(), stamp.parse().ok()?))
            })
            .collect();
        out.sort();
        out
    }

    /// Moves a damaged blob out of the way (kept for inspection, never served), so that it
    /// counts as missing and is fetched again.
    pub fn quarantine(&self, id: &BlobRef) {
        if !self.path(id).exists() {
            return;
        }
        let dir = self.quarantine_dir();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let target = dir.join(format!("{}-{stamp}", id.hex()));
        let moved = fs::create_dir_all(&dir).and_then(|()| fs::rename(self.path(id), &target));
        let _ = fs::remove_file(self.outboard_path(id));
        match moved {
            Ok(()) => tracing::warn!(
                blob = %id,
                quarantined = %target.display(),
                "a stored output was damaged on disk: moved to quarantine; it is fetched again from the nodes that hold its project"
            ),
            Err(e) => tracing::warn!(
                blob = %id,
                error = %e,
                "a stored output was damaged on disk and could not be moved to quarantine"
            ),
        }
    }
}

impl BlobStore {
    /// Deletes the blobs that no hash in `keep` names and that are older than `grace` (so that
    /// one stored just before the change naming it is never taken), and fetches left unfinished
    /// for longer than a day. Returns how many files were deleted.
    pub fn collect_garbage(
        &self,
        keep: &std::collections::HashSet<[u8; 32]>,
        grace: std::time::Duration,
    ) -> usize {
        let old = |path: &Path, age: std::time::Duration| {
            fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|e| e >= age)
        };
        let mut deleted = 0;
        let hash_of = |name: &str| -> Option<[u8; 32]> {
            let h = blake3::Hash::from_hex(name).ok()?;
            Some(*h.as_bytes())
        };
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(hash) = hash_of(&name) else { continue };
                if !keep.contains(&hash)
                    && old(&e.path(), grace)
                    && fs::remove_file(e.path()).is_ok()
                {
                    let _ = fs::remove_file(self.dir.join("outboard").join(&name));
                    deleted += 1;
                }
            }
        }
        let day = std::time::Duration::from_secs(24 * 3600);
        if let Ok(entries) = fs::read_dir(self.dir.join("partial")) {
            for e in entries.flatten() {
                if old(&e.path(), day.max(grace)) && fs::remove_file(e.path()).is_ok() {
                    deleted += 1;
                }
            }
        }
        // Records of the transfer the data plane replaced.
        let _ = fs::remove_dir_all(self.dir.join("parts"));
        deleted
    }
}

/// Why a blob could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// It is not held here.
    Missing,
    /// It was held, its bytes no longer match its hash, and it has been quarantined.
    Damaged,
}

impl BlobSource for BlobStore {
    /// The held bytes, damaged or not: the caller checks them, and a damaged blob is quarantined
    /// here so that it is fetched again.
    fn blob(&self, id: &BlobRef) -> Option<Vec<u8>> {
        let bytes = fs::read(self.path(id)).ok()?;
        if !id.matches(&bytes) {
            self.quarantine(id);
        }
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: usize) -> Blob {
        let bytes: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
        Blob {
            id: BlobRef::of(&bytes),
            bytes,
        }
    }

    #[test]
    fn each_project_has_its_own_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = BlobStore::new(dir.path());
        let (p, q) = (
            orrery_protocol::ProjectId([1; 32]),
            orrery_protocol::ProjectId([2; 32]),
        );
        let b = blob(300);
        root.for_project(p)
            .put_all(std::slice::from_ref(&b))
            .expect("put");
        assert!(root.for_project(p).has(&b.id));
        assert!(
            !root.for_project(q).has(&b.id),
            "not reachable through another project"
        );
        assert!(matches!(
            root.for_project(q).open_for_serving(&b.id),
            Err(Unreadable::Missing)
        ));
        let listed: Vec<_> = root.projects().into_iter().map(|(id, _)| id).collect();
        assert_eq!(listed, vec![p]);
    }

    #[test]
    fn garbage_is_what_nothing_names_after_the_grace_period() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::new(dir.path());
        let (kept, dropped) = (blob(100), blob(200));
        store
            .put_all(&[kept.clone(), dropped.clone()])
            .expect("put");
        let keep = [kept.id.hash].into();
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(store.collect_garbage(&keep, hour), 0, "too young to go");
        assert_eq!(store.collect_garbage(&keep, std::time::Duration::ZERO), 1);
        assert!(store.has(&kept.id) && !store.has(&dropped.id));
        fs::write(dir.path().join("notes.txt"), b"not a blob").expect("write");
        assert_eq!(store.collect_garbage(&keep, std::time::Duration::ZERO), 0);
        assert!(
            dir.path().join("notes.txt").exists(),
            "only blobs are touched"
        );
    }

    #[test]
    fn refuses_wrong_bytes_and_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::new(dir.path());
        let b = blob(1000);
        let mut wrong = b.bytes.clone();
        wrong[10] ^= 1;
        assert!(
            store
                .put_all(&[Blob {
                    id: b.id,
                    bytes: wrong.clone()
                }])
                .is_err()
        );
        store.put_all(std::slice::from_ref(&b)).expect("put");
        fs::write(dir.path().join(b.id.hex()), &wrong).expect("damage");
        assert_eq!(store.get(&b.id), None, "damage is never served");
        assert!(!store.has(&b.id), "a damaged blob is quarantined");
        let quarantined = store.quarantined();
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0].0, b.id.hex(), "listed for `project show`");
    }

    #[test]
    fn serves_with_an_outboard_and_rebuilds_a_lost_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::new(dir.path());
        let b = blob(100_000);
        store.put_all(std::slice::from_ref(&b)).expect("put");
        let (_, tree) = store.open_for_serving(&b.id).expect("served");
        let expected =
            crate::dataplane::outboard::compute(b.bytes.as_slice(), b.id.len).expect("outboard");
        assert_eq!((b.id.hash, tree.clone()), expected);
        fs::remove_file(dir.path().join("outboard").join(b.id.hex())).expect("lose it");
        assert_eq!(store.open_for_serving(&b.id).expect("rebuilt").1, tree);
        assert!(dir.path().join("outboard").join(b.id.hex()).exists());
        // A blob whose outboard is lost and whose bytes are damaged is quarantined.
        fs::remove_file(dir.path().join("outboard").join(b.id.hex())).expect("lose it");
        let mut damaged = b.bytes.clone();
        damaged[5] ^= 1;
        fs::write(dir.path().join(b.id.hex()), &damaged).expect("damage");
        assert!(matches!(
            store.open_for_serving(&b.id),
            Err(Unreadable::Damaged)
        ));
        assert!(!store.has(&b.id));
    }

    #[test]
    fn a_fetched_blob_is_adopted_from_its_partial_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::new(dir.path());
        let b = blob(40_000);
        let partial = store.partial_path(&b.id);
        fs::create_dir_all(partial.parent().expect("dir")).expect("mkdir");
        fs::write(&partial, &b.bytes).expect("write");
        let (_, tree) =
            crate::dataplane::outboard::compute(b.bytes.as_slice(), b.id.len).expect("outboard");
        store.adopt(&b.id, &tree).expect("adopt");
        assert_eq!(store.get(&b.id), Some(b.bytes.clone()));
        assert!(!partial.exists());
        assert_eq!(store.open_for_serving(&b.id).expect("served").1, tree);
    }
}
