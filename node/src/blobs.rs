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
//!
//! Beside each blob, `parts/<hash>` holds the BLAKE3 of each of its [`CHUNK_BYTES`] parts, so a
//! part served to another node is checked on its own before it leaves (a whole-blob check per
//! part would cost the square of its size). A part that does not match its recorded hash makes
//! the whole blob be checked: if the blob is whole, only the record was damaged and is written
//! again; if not, the blob is moved to `quarantine/`, never served or exported again, and the
//! node fetches a good copy from another node that holds the project.

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

    fn parts_path(&self, id: &BlobRef) -> PathBuf {
        self.dir.join("parts").join(id.hex())
    }

    fn quarantine_dir(&self) -> PathBuf {
        self.dir.join("quarantine")
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
            let hashes = part_hashes(&mut b.bytes.as_slice()).map_err(Self::io(&tmp))?;
            self.write_parts(&b.id, &hashes)?;
            let path = self.path(&b.id);
            fs::rename(&tmp, &path).map_err(Self::io(&path))?;
        }
        Ok(())
    }

    /// Records the hash of each part of a blob.
    fn write_parts(&self, id: &BlobRef, hashes: &[[u8; 32]]) -> Result<(), BlobStoreError> {
        let dir = self.dir.join("parts");
        fs::create_dir_all(&dir).map_err(Self::io(&dir))?;
        let path = self.parts_path(id);
        let tmp = dir.join(format!(".{}.tmp", id.hex()));
        fs::write(&tmp, hashes.concat()).map_err(Self::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(Self::io(&path))
    }

    /// The recorded hash of part `index`, if the record is there and has it.
    fn part_hash(&self, id: &BlobRef, index: u64) -> Option<[u8; 32]> {
        let mut f = File::open(self.parts_path(id)).ok()?;
        f.seek(SeekFrom::Start(index.checked_mul(32)?)).ok()?;
        let mut h = [0u8; 32];
        f.read_exact(&mut h).ok()?;
        Some(h)
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

    /// Up to [`CHUNK_BYTES`] of a held blob from `offset`, for another node, checked against the
    /// recorded hash of its part (see the module's docs). [`Unreadable::Damaged`] means the blob was
    /// found damaged and has been quarantined.
    pub fn chunk(&self, id: &BlobRef, offset: u64) -> Result<Vec<u8>, Unreadable> {
        if offset >= id.len || !self.has(id) {
            return Err(Unreadable::Missing);
        }
        // Parts start at multiples of CHUNK_BYTES: a fetch resumes where its file ends, which
        // is always such a boundary, since whole parts are appended.
        if !offset.is_multiple_of(CHUNK_BYTES) {
            return Err(Unreadable::Missing);
        }
        let out = self.read_part(id, offset).ok_or(Unreadable::Missing)?;
        if self.part_hash(id, offset / CHUNK_BYTES) == Some(*blake3::hash(&out).as_bytes()) {
            return Ok(out);
        }
        // The part or its record differs: only the whole blob can say which.
        let path = self.path(id);
        let whole = File::open(&path)
            .and_then(|mut f| part_hashes(&mut f))
            .ok()
            .filter(|_| self.verify_whole(id));
        match whole {
            Some(hashes) => {
                let _ = self.write_parts(id, &hashes);
                Ok(out)
            }
            None => {
                self.quarantine(id);
                Err(Unreadable::Damaged)
            }
        }
    }

    fn read_part(&self, id: &BlobRef, offset: u64) -> Option<Vec<u8>> {
        let mut f = File::open(self.path(id)).ok()?;
        f.seek(SeekFrom::Start(offset)).ok()?;
        let want = CHUNK_BYTES.min(id.len - offset);
        let mut out = Vec::with_capacity(want as usize);
        f.take(want).read_to_end(&mut out).ok()?;
        (out.len() as u64 == want).then_some(out)
    }

    fn verify_whole(&self, id: &BlobRef) -> bool {
        let mut hasher = blake3::Hasher::new();
        File::open(self.path(id))
            .and_then(|mut f| hasher.update_reader(&mut f).map(|_| ()))
            .is_ok()
            && hasher.finalize().as_bytes() == &id.hash
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
    fn quarantine(&self, id: &BlobRef) {
        let dir = self.quarantine_dir();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let target = dir.join(format!("{}-{stamp}", id.hex()));
        let moved = fs::create_dir_all(&dir).and_then(|()| fs::rename(self.path(id), &target));
        let _ = fs::remove_file(self.parts_path(id));
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
        let hashes = File::open(&partial)
            .and_then(|mut f| part_hashes(&mut f))
            .map_err(Self::io(&partial))?;
        self.write_parts(id, &hashes)?;
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
                    let _ = fs::remove_file(self.dir.join("parts").join(&name));
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

/// Why a blob could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// It is not held here.
    Missing,
    /// It was held, its bytes no longer match its hash, and it has been quarantined.
    Damaged,
}

/// The BLAKE3 of each [`CHUNK_BYTES`] part of what `r` reads.
fn part_hashes<R: std::io::Read>(r: &mut R) -> std::io::Result<Vec<[u8; 32]>> {
    let mut out = Vec::new();
    loop {
        let mut hasher = blake3::Hasher::new();
        let n = std::io::copy(&mut r.by_ref().take(CHUNK_BYTES), &mut hasher)?;
        if n == 0 {
            return Ok(out);
        }
        out.push(*hasher.finalize().as_bytes());
        if n < CHUNK_BYTES {
            return Ok(out);
        }
    }
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
        assert_eq!(here.chunk(&b.id, b.id.len), Err(Unreadable::Missing));
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
        assert_eq!(
            root.for_project(q).chunk(&b.id, 0),
            Err(Unreadable::Missing)
        );
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
        assert!(!store.has(&b.id), "a damaged blob is quarantined");
        let quarantined = store.quarantined();
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0].0, b.id.hex(), "listed for `project show`");
    }

    #[test]
    fn a_damaged_part_is_never_served_and_the_blob_is_quarantined() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::new(dir.path());
        let b = blob(CHUNK_BYTES as usize * 2 + 100);
        store.put_all(std::slice::from_ref(&b)).expect("put");
        // Damage the second part on disk; the length stays the same.
        let mut damaged = b.bytes.clone();
        damaged[CHUNK_BYTES as usize + 5] ^= 0x01;
        fs::write(dir.path().join(b.id.hex()), &damaged).expect("damage");
        assert!(store.has(&b.id), "by length alone it still looks held");
        assert_eq!(
            store.chunk(&b.id, 0).expect("the first part is intact"),
            b.bytes[..CHUNK_BYTES as usize]
        );
        assert_eq!(
            store.chunk(&b.id, CHUNK_BYTES),
            Err(Unreadable::Damaged),
            "the damaged part is refused"
        );
        assert!(
            !store.has(&b.id),
            "and the blob quarantined, so it is fetched again"
        );
        assert_eq!(store.chunk(&b.id, 0), Err(Unreadable::Missing));
    }

    #[test]
    fn a_damaged_record_of_parts_is_rewritten_not_taken_for_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::new(dir.path());
        let b = blob(CHUNK_BYTES as usize + 10);
        store.put_all(std::slice::from_ref(&b)).expect("put");
        fs::write(dir.path().join("parts").join(b.id.hex()), [0u8; 64]).expect("damage");
        assert_eq!(
            store.chunk(&b.id, CHUNK_BYTES).expect("served"),
            b.bytes[CHUNK_BYTES as usize..]
        );
        assert!(store.has(&b.id));
        fs::remove_file(dir.path().join("parts").join(b.id.hex())).expect("rm");
        assert!(store.chunk(&b.id, 0).is_ok(), "a missing record is rebuilt");
    }
}
