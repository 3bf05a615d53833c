//! A whole project for a replica that has nothing: the compressed document and the kept seals,
//! verified as a whole before it becomes the replica.
//!
//! Sent change by change, the `automerge-paper` history is 218 times its saved size; the saved
//! document is the compact form. A snapshot is automerge's document without column compression
//! (`save_nocompress`, no orphans), deflated as one stream, so that the receiver bounds what it
//! inflates ([`MAX_SNAPSHOT_BYTES`]) and hands automerge a document chunk with no compressed
//! column inside (automerge inflates those without a bound).
//!
//! The receiver loads it only to take the changes out (bounded first by their number and their
//! operations), and adopts nothing it did not rebuild: automerge's loader does not check that
//! operations are stored in their canonical order, so a crafted document could show text or a
//! winning value that its changes do not make, with every hash intact. The changes are checked
//! for everything [`Project::ingest`] checks of them (the genesis is this project's and well
//! formed, there is one root, every change is covered by a seal of its author, every change was
//! allowed by the membership in its own causal past) and applied to a fresh document in one call,
//! which is what the replica becomes. The rebuild needs nothing the checks find, so it runs on a
//! second thread while they run; the second judgement ([`crate::contest`]) reuses what the checks
//! learnt of each change instead of decoding the whole history again. The membership changes only through changes that need an
//! owner (and the genesis), so a change's role depends only on which of those it descends from:
//! roles are read from the rebuilt document (`get_at`) once per such set and author.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::rc::Rc;

use automerge::{Automerge, ChangeHash as AmHash, LoadOptions, TextEncoding};
use orrery_protocol::limits::MAX_BATCH_BYTES;
use orrery_protocol::{AuthorId, ChangeSeal, Signed, Unverified};

use crate::ingest::{
    IngestError, IngestReport, Item, Needs, apply_checked, apply_genesis, check_run, classify,
    coverage, guarded, role_at,
};
use crate::project::{Project, Roots, new_doc, to_hash};
use crate::schema::Role;
use crate::session::AuthorCache;

/// Largest document a snapshot may inflate to.
pub const MAX_SNAPSHOT_BYTES: usize = MAX_BATCH_BYTES;
/// Most changes a snapshot may hold.
pub const MAX_SNAPSHOT_CHANGES: usize = 8_000_000;
/// Most operations a snapshot may hold.
pub const MAX_SNAPSHOT_OPS: u64 = 64_000_000;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_DOCUMENT: u8 = 0;
/// The bit of a column specification marking a deflated column.
const COLUMN_DEFLATE: u64 = 0b1000;

fn bad(reason: &'static str) -> IngestError {
    IngestError::BadSnapshot(reason)
}

impl Project {
    /// The project as a snapshot for a replica with nothing (see the module docs).
    ///
    /// Held changes (see [`crate::contest`]) are in it too, so that the receiver holds what
    /// this replica holds.
    pub fn snapshot(&self) -> Vec<u8> {
        let full = match self.contest.held().next() {
            Some(_) => self.doc_with_held().ok(),
            None => None,
        };
        let doc = full
            .as_ref()
            .unwrap_or(&self.doc)
            .save_with_options(automerge::SaveOptions {
                deflate: false,
                retain_orphans: false,
            });
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing into a Vec cannot fail.
        let _ = z.write_all(&doc);
        z.finish().unwrap_or_default()
    }

    /// Whether a receiver's limits take this project as one snapshot ([`MAX_SNAPSHOT_CHANGES`],
    /// [`MAX_SNAPSHOT_OPS`]); a larger one goes in parts.
    pub fn snapshot_fits(&self) -> bool {
        let (count, ops) = op_counts(&self.doc);
        count <= MAX_SNAPSHOT_CHANGES && ops <= MAX_SNAPSHOT_OPS
    }

    /// Makes this empty replica the project in `snapshot`, once every change in it has passed
    /// the checks of [`Project::ingest`] (see the module docs). On error nothing changes.
    pub fn receive_snapshot(
        &mut self,
        snapshot: &[u8],
        seals: Vec<Signed<ChangeSeal, Unverified>>,
    ) -> Result<IngestReport, IngestError> {
        if !self.doc.get_heads().is_empty() {
            return Err(bad("it is only for a replica with nothing"));
        }
        let bytes = inflate(snapshot)?;
        check_document_chunk(&bytes)?;
        let loaded = guarded("a snapshot", || {
            Automerge::load_with_options(
                &bytes,
                LoadOptions::new().text_encoding(TextEncoding::UnicodeCodePoint),
            )
        })?
        .map_err(|_| bad("it does not load"))?;
        drop(bytes);
        // Bounded before the changes are rebuilt: a small document can stand for many ops.
        let (count, ops) = op_counts(&loaded);
        if count > MAX_SNAPSHOT_CHANGES || ops > MAX_SNAPSHOT_OPS {
            return Err(IngestError::Oversize {
                what: "the snapshot's change and operation count",
                len: count,
                limit: MAX_SNAPSHOT_CHANGES,
            });
        }
        // The changes are what the seals vouch for. The loaded document itself is not adopted:
        // automerge's loader does not check that the operations are stored in their canonical
        // order, so a document can show content its changes do not make.
        let changes = guarded("a snapshot", || loaded.get_changes(&[]))?;
        drop(loaded);
        for change in &changes {
            let len = change.raw_bytes().len();
            if len > orrery_protocol::limits::MAX_CHANGE_BYTES {
                return Err(IngestError::Oversize {
                    what: "a change",
                    len,
                    limit: orrery_protocol::limits::MAX_CHANGE_BYTES,
                });
            }
        }
        // The rebuild needs nothing the checks find, so it runs beside them on another thread
        // (with its own copy of the changes); its document is dropped unless every check passes.
        let copies = changes.clone();
        let (judged, built) = std::thread::scope(|scope| {
            let rebuild = scope.spawn(move || {
                let mut doc = new_doc();
                apply_checked(&mut doc, changes, "applying a snapshot")?;
                Ok::<_, IngestError>(doc)
            });
            let judged = self.judge_snapshot(copies, seals);
            let built = rebuild.join().unwrap_or(Err(IngestError::Library {
                what: "applying a snapshot",
            }));
            (judged, built)
        });
        let Judged {
            items,
            needs,
            roots,
            verified,
        } = judged?;
        let doc = built?;

        // Every change judged against the membership in its own causal past.
        let mut roles: HashMap<(*const Vec<AmHash>, AuthorId), Option<Role>> = HashMap::new();
        for (it, (past, need)) in items.iter().zip(&needs) {
            if need.role == Role::Viewer {
                continue;
            }
            if let Some(claim) = &need.run {
                check_run(&doc, &roots, self.id, it.hash, claim)?;
            }
            let who = need.judged_author(it.author);
            let key = (Rc::as_ptr(past), who);
            let role = match roles.get(&key) {
                Some(r) => *r,
                None => {
                    let r = role_at(&doc, &roots.members, &who, past);
                    roles.insert(key, r);
                    r
                }
            };
            if role.is_none_or(|r| r < need.role) {
                return Err(IngestError::NotPermitted {
                    hash: it.hash,
                    author: who,
                    action: need.action,
                    role: role.map_or("none", Role::as_str),
                });
            }
        }

        // Whatever was waiting here is superseded by the whole history.
        let mut report = IngestReport {
            applied: items.iter().map(|it| it.hash).collect(),
            duplicates: 0,
            pending: 0,
            ..IngestReport::default()
        };
        *self = Project::from_doc(self.id, doc);
        for seal in verified {
            self.seals.keep(&self.doc, seal);
        }
        // The same second judgement as change-by-change ingest: changes contested by a
        // concurrent removal of their author are held (see [`crate::contest`]). What each
        // change needs is known already, so only membership changes are described again.
        let needed = items
            .iter()
            .zip(&needs)
            .map(|(it, (_, need))| (it, need.role, need.judged_author(it.author)));
        report.held = self.settle_judged(needed)?;
        report.applied.retain(|h| !report.held.contains(h));
        Ok(report)
    }

    /// Checks a snapshot's changes (in the document's causal order) against `seals` and
    /// classifies each: everything but the role each change's author held, which needs the
    /// rebuilt document.
    fn judge_snapshot(
        &self,
        changes: Vec<automerge::Change>,
        seals: Vec<Signed<ChangeSeal, Unverified>>,
    ) -> Result<Judged, IngestError> {
        let seal_limit = changes.len().saturating_mul(2).saturating_add(16);
        if seals.len() > seal_limit {
            return Err(IngestError::Oversize {
                what: "the snapshot's seal count",
                len: seals.len(),
                limit: seal_limit,
            });
        }
        let mut verified = Vec::with_capacity(seals.len());
        for r in Signed::verify_all(seals) {
            let seal = r.map_err(IngestError::ForgedSeal)?;
            if seal.value().project != self.id {
                return Err(IngestError::WrongProject {
                    found: seal.value().project,
                });
            }
            verified.push(seal);
        }

        let mut authors = AuthorCache::default();
        let mut items = Vec::with_capacity(changes.len());
        let mut index = HashMap::with_capacity(changes.len());
        for change in changes {
            let hash = to_hash(change.hash());
            let author = authors
                .of(change.actor_id())
                .ok_or(IngestError::BadActor { hash })?;
            index.insert(hash, items.len());
            items.push(Item {
                hash,
                author,
                change: Rc::new(change),
            });
        }
        // Kept seals may also name other authors' changes (a seal is kept for the heads that
        // are its signer's own): those names are passed over, as ingest passes over them.
        let (covered, _) = coverage(&items, &index, &verified, verified.len(), |_| true)?;
        if let Some(i) = covered.iter().position(|c| !c) {
            return Err(IngestError::Unsigned {
                hash: items[i].hash,
                author: items[i].author,
            });
        }

        // The genesis: the one change without dependencies, this project's.
        let mut genesis = None;
        for (i, it) in items.iter().enumerate() {
            if it.change.deps().is_empty() {
                if genesis.is_some() || it.hash.0 != self.id.0 {
                    return Err(IngestError::SecondRoot { hash: it.hash });
                }
                genesis = Some(i);
            }
        }
        let g = genesis.ok_or(IngestError::BadGenesis {
            hash: items
                .first()
                .map_or(orrery_protocol::ChangeHash([0; 32]), |i| i.hash),
            reason: "the snapshot's history does not start at this project's genesis",
        })?;
        // The containers are the genesis's: a later change may have tried to replace one (it is
        // refused below).
        let roots = Roots::read(&apply_genesis(&items[g])?).ok_or(IngestError::BadGenesis {
            hash: items[g].hash,
            reason: "it lacks the project's containers",
        })?;

        // What each change needs, and the membership changes (and the genesis) it descends
        // from: its role is read as of those.
        let mut governance: HashMap<AmHash, Rc<Vec<AmHash>>> = HashMap::new();
        let mut interned: HashMap<Vec<AmHash>, Rc<Vec<AmHash>>> = HashMap::new();
        let genesis_hash = items[g].change.hash();
        let root_set = Rc::new(vec![genesis_hash]);
        let mut needs: Vec<(Rc<Vec<AmHash>>, Needs)> = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            let hash = it.change.hash();
            if i == g {
                governance.insert(hash, root_set.clone());
                needs.push((
                    root_set.clone(),
                    Needs::of(Role::Viewer, "start the project"),
                ));
                continue;
            }
            let mut parts: Vec<Rc<Vec<AmHash>>> = Vec::new();
            for d in it.change.deps() {
                match governance.get(d) {
                    Some(p) => parts.push(p.clone()),
                    None => return Err(bad("its changes are not in causal order")),
                }
            }
            let past = match parts.as_slice() {
                [one] => one.clone(),
                _ => {
                    let mut all: Vec<AmHash> =
                        parts.iter().flat_map(|p| p.iter().copied()).collect();
                    all.sort_unstable();
                    all.dedup();
                    interned
                        .entry(all.clone())
                        .or_insert_with(|| Rc::new(all))
                        .clone()
                }
            };
            let need = classify(it, Some(&roots))?
                .unwrap_or_else(|| Needs::of(Role::Editor, "change content"));
            let own = if need.role == Role::Owner {
                let mut with: Vec<AmHash> = past.iter().copied().chain([hash]).collect();
                with.sort_unstable();
                interned
                    .entry(with.clone())
                    .or_insert_with(|| Rc::new(with))
                    .clone()
            } else {
                past.clone()
            };
            governance.insert(hash, own);
            needs.push((past, need));
        }
        Ok(Judged {
            items,
            needs,
            roots,
            verified,
        })
    }
}

/// What the checks of a snapshot found: its changes in causal order, what each needs (and the
/// membership changes its role is read as of), the project's containers and the verified seals.
struct Judged {
    items: Vec<Item>,
    needs: Vec<(Rc<Vec<AmHash>>, Needs)>,
    roots: Roots,
    verified: Vec<Signed<ChangeSeal, orrery_protocol::Verified>>,
}

/// The number of changes in `doc` and of the operations they make.
fn op_counts(doc: &Automerge) -> (usize, u64) {
    doc.get_changes_meta(&[])
        .iter()
        .fold((0usize, 0u64), |(n, o), m| {
            (
                n + 1,
                o.saturating_add(m.max_op.saturating_sub(m.start_op) + 1),
            )
        })
}

/// Inflates a snapshot, refusing more than [`MAX_SNAPSHOT_BYTES`].
fn inflate(bytes: &[u8]) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::new();
    let read = flate2::read::DeflateDecoder::new(bytes)
        .take(MAX_SNAPSHOT_BYTES as u64 + 1)
        .read_to_end(&mut out);
    match read {
        Err(_) => Err(bad("it does not inflate")),
        Ok(n) if n > MAX_SNAPSHOT_BYTES => Err(IngestError::Oversize {
            what: "the inflated snapshot",
            len: n,
            limit: MAX_SNAPSHOT_BYTES,
        }),
        Ok(_) => Ok(out),
    }
}

fn uleb(bytes: &[u8], at: &mut usize) -> Result<u64, IngestError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or_else(|| bad("it is cut short"))?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(bad("it has an over-long number"))
}

fn skip(bytes: &[u8], at: &mut usize, n: u64) -> Result<(), IngestError> {
    let n = usize::try_from(n).map_err(|_| bad("it is cut short"))?;
    *at = at
        .checked_add(n)
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| bad("it is cut short"))?;
    Ok(())
}

/// Checks that `bytes` are exactly one automerge document chunk whose columns are all stored
/// uncompressed.
fn check_document_chunk(bytes: &[u8]) -> Result<(), IngestError> {
    if bytes.len() < 9 || bytes[..4] != MAGIC || bytes[8] != CHUNK_DOCUMENT {
        return Err(bad("it is not an automerge document"));
    }
    let mut at = 9;
    let len = uleb(bytes, &mut at)?;
    if usize::try_from(len).ok() != bytes.len().checked_sub(at) {
        return Err(bad("it holds more or less than one document"));
    }
    let actors = uleb(bytes, &mut at)?;
    for _ in 0..actors {
        let n = uleb(bytes, &mut at)?;
        skip(bytes, &mut at, n)?;
    }
    let heads = uleb(bytes, &mut at)?;
    skip(bytes, &mut at, heads.saturating_mul(32))?;
    for _ in 0..2 {
        let columns = uleb(bytes, &mut at)?;
        for _ in 0..columns {
            let spec = uleb(bytes, &mut at)?;
            if spec & COLUMN_DEFLATE != 0 {
                return Err(bad("it has a compressed column"));
            }
            uleb(bytes, &mut at)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_check_refuses_compressed_columns_and_extra_chunks() {
        let mut doc = crate::project::new_doc();
        {
            use automerge::transaction::Transactable;
            let mut tx = doc.transaction();
            let t = tx
                .put_object(automerge::ROOT, "t", automerge::ObjType::Text)
                .expect("text");
            tx.splice_text(&t, 0, 0, &"a fairly long text ".repeat(100))
                .expect("splice");
            tx.commit();
        }
        let plain = doc.save_nocompress();
        check_document_chunk(&plain).expect("an uncompressed document passes");
        assert!(
            check_document_chunk(&doc.save()).is_err(),
            "compressed columns"
        );
        let mut two = plain.clone();
        two.extend_from_slice(&plain);
        assert!(check_document_chunk(&two).is_err(), "two chunks");
        for cut in [0, 5, 9, 12, plain.len() / 2] {
            assert!(check_document_chunk(&plain[..cut]).is_err());
        }
    }

    #[test]
    fn inflation_is_bounded() {
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(MAX_SNAPSHOT_BYTES >> 20) + 1 {
            z.write_all(&zeros).expect("write");
        }
        let bomb = z.finish().expect("finish");
        assert!(bomb.len() < 1 << 20, "a small bomb: {} bytes", bomb.len());
        assert!(matches!(inflate(&bomb), Err(IngestError::Oversize { .. })));
        assert!(inflate(b"not deflate at all").is_err());
    }
}
