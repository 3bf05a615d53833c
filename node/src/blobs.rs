//! The node's store of large outputs (see `orrery_crdt::outputs`): one file per blob under
//! `blobs/<project>/` in the node's directory, named by its BLAKE3 hash. Each project has its
//! own: a blob is served only under the project it was stored or fetched for, so naming another
//! project's hash in a document one may edit reaches nothing.
//!
//! A blob is written to a temporary file, synced and renamed into place, so a reader sees a
//! whole blob or none. Fetching from another node appends verified-length chunks to a partial
//! file and checks the whole against the hash before renaming it in; a blob that fails the check
//! is deleted. Every read checks the hash again (BLAKE3 reads several GiB/s), so a file damaged
//! on disk is reported, never exported.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use orrery_crdt::{Blob, BlobRef, BlobSource};

/// Largest stored output accepted from another node.
pub const MAX_BLOB_BYTES: u64 = 1 << 30;
/// Bytes per chunk on the wire.
pub const CHUNK_BYTES: u64 = 4 * 1024 * 1024;

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
    /// A part does not continue the fetch where it stands (the fetch starts over).
    #[error("a part of {0} does not continue its fetch")]
    OutOfStep(BlobRef),
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
        let _ = fs::remove_dir(self.dir.join("partial"));
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

    fn partial(&self, id: &BlobRef) -> PathBuf {
        self.dir
            .join("partial")
            .join(format!("{}-{}", id.hex(), id.len))
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
            let path = self.path(&b.id);
            fs::rename(&tmp, &path).map_err(Self::io(&path))?;
        }
        Ok(())
    }

    /// The whole blob, checked against its hash; `None` if absent or damaged.
    pub fn get(&self, id: &BlobRef) -> Option<Vec<u8>> {
        let bytes = fs::read(self.path(id)).ok()?;
        id.matches(&bytes).then_some(bytes)
    }

    /// Up to [`CHUNK_BYTES`] of a held blob from `offset`, for another node.
    pub fn chunk(&self, id: &BlobRef, offset: u64) -> Option<Vec<u8>> {
        if offset >= id.len || !self.has(id) {
            return None;
        }
        let mut f = File::open(self.path(id)).ok()?;
        f.seek(SeekFrom::Start(offset)).ok()?;
        let want = CHUNK_BYTES.min(id.len - offset);
        let mut out = Vec::with_capacity(want as usize);
        f.take(want).read_to_end(&mut out).ok()?;
        (out.len() as u64 == want).then_some(out)
    }

    /// How many bytes of a blob being fetched are already here.
    pub fn partial_len(&self, id: &BlobRef) -> u64 {
        fs::metadata(self.partial(id)).map_or(0, |m| m.len())
    }

    /// Appends a fetched chunk at `offset` (which must be where the partial file ends). When the
    /// blob is complete, checks it and moves it into place; returns whether it is now held.
    pub fn append(&self, id: &BlobRef, offset: u64, bytes: &[u8]) -> Result<bool, BlobStoreError> {
        if id.len > MAX_BLOB_BYTES {
            return Err(BlobStoreError::TooLarge(*id));
        }
        let partial = self.partial(id);
        let dir = self.dir.join("partial");
        fs::create_dir_all(&dir).map_err(Self::io(&dir))?;
        let have = self.partial_len(id);
        if offset != have {
            let _ = fs::remove_file(&partial);
            return Err(BlobStoreError::OutOfStep(*id));
        }
        if have + bytes.len() as u64 > id.len {
            // Longer than the blob: not what the hash names.
            let _ = fs::remove_file(&partial);
            return Err(BlobStoreError::Mismatch(*id));
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial)
            .map_err(Self::io(&partial))?;
        f.write_all(bytes).map_err(Self::io(&partial))?;
        if have + (bytes.len() as u64) < id.len {
            return Ok(false);
        }
        f.sync_all().map_err(Self::io(&partial))?;
        drop(f);
        let mut hasher = blake3::Hasher::new();
        let mut file = File::open(&partial).map_err(Self::io(&partial))?;
        hasher
            .update_reader(&mut file)
            .map_err(Self::io(&partial))?;
        if hasher.finalize().as_bytes() != &id.hash {
            let _ = fs::remove_file(&partial);
            return Err(BlobStoreError::Mismatch(*id));
        }
        let path = self.path(id);
        fs::rename(&partial, &path).map_err(Self::io(&path))?;
        Ok(true)
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
        deleted
    }
}

impl BlobSource for BlobStore {
    fn blob(&self, id: &BlobRef) -> Option<Vec<u8>> {
        self.get(id)
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
    fn stores_serves_and_fetches_in_chunks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let here = BlobStore::new(dir.path().join("a"));
        let there = BlobStore::new(dir.path().join("b"));
        let b = blob(CHUNK_BYTES as usize * 2 + 17);
        here.put_all(std::slice::from_ref(&b)).expect("put");
        assert!(here.has(&b.id) && !there.has(&b.id));
        let mut offset = 0;
        loop {
            let chunk = here.chunk(&b.id, offset).expect("chunk");
            let done = there.append(&b.id, offset, &chunk).expect("append");
            offset += chunk.len() as u64;
            if done {
                break;
            }
        }
        assert_eq!(offset, b.id.len);
        assert_eq!(there.get(&b.id), Some(b.bytes.clone()));
        assert_eq!(here.chunk(&b.id, b.id.len), None);
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
        assert_eq!(root.for_project(q).chunk(&b.id, 0), None);
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
        assert!(matches!(
            store.append(&b.id, 0, &wrong),
            Err(BlobStoreError::Mismatch(_))
        ));
        assert!(!store.has(&b.id), "a mismatch is not kept");
        assert_eq!(store.partial_len(&b.id), 0);
        assert!(matches!(
            store.append(&b.id, 5, &b.bytes[5..]),
            Err(BlobStoreError::OutOfStep(_))
        ));
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
    }
}
