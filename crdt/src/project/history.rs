//! Sealing local changes, the history as batches, restoring from a store, and the log.

use super::*;

impl Project {
    /// Signs the session's latest changes and returns them with the seal, or an empty batch if
    /// the session made no change since its last seal.
    pub fn seal(&mut self, session: &Session) -> Batch {
        match self.sign(session) {
            Some(sealed) => self.batch_of(&sealed),
            None => Batch::default(),
        }
    }

    /// Signs the session's latest change (one signature covering every change of the session
    /// since its last seal, and every change adopted into it) without collecting the changes'
    /// bytes. [`Project::batch_of`] collects them when they are to be stored or sent.
    pub fn sign(&mut self, session: &Session) -> Option<Sealed> {
        let Unsealed {
            since,
            hashes,
            own,
            adopted,
        } = self.unsealed.remove(session.actor())?;
        let heads: Vec<ChangeHash> = adopted.into_iter().chain(own).collect();
        if heads.is_empty() {
            return None;
        }
        let seal = Signed::sign(
            session.key(),
            ChangeSeal {
                project: self.id,
                heads,
            },
        );
        // A local change may be held (see [`crate::contest`]) and still needs its seal kept.
        let all_in_doc = seal
            .value()
            .heads
            .iter()
            .all(|h| self.doc.get_change_meta_by_hash(&from_hash(*h)).is_some());
        match all_in_doc {
            false => match self.doc_with_held() {
                Ok(full) => self.seals.keep(&full, seal.clone()),
                Err(_) => self.seals.keep(&self.doc, seal.clone()),
            },
            true => self.seals.keep(&self.doc, seal.clone()),
        }
        Some(Sealed {
            seal,
            since,
            hashes,
        })
    }

    /// The batch of changes a seal covers, with the seal.
    pub fn batch_of(&self, sealed: &Sealed) -> Batch {
        let hashes = &sealed.hashes;
        let mut collected: HashMap<automerge::ChangeHash, Vec<u8>> = HashMap::new();
        if hashes.len() > SEAL_BY_HASH_MAX {
            let wanted: std::collections::HashSet<automerge::ChangeHash> =
                hashes.iter().map(|h| from_hash(*h)).collect();
            collected = self
                .doc
                .get_changes(&sealed.since)
                .into_iter()
                .filter(|c| wanted.contains(&c.hash()))
                .map(|c| (c.hash(), c.raw_bytes().to_vec()))
                .collect();
        }
        let changes = hashes
            .iter()
            .filter_map(|h| {
                let h = from_hash(*h);
                collected.remove(&h).or_else(|| {
                    self.doc
                        .get_change_by_hash(&h)
                        .or_else(|| self.contest.get(&to_hash(h)).cloned())
                        .map(|c| c.raw_bytes().to_vec())
                })
            })
            .collect();
        Batch {
            changes,
            seals: vec![sealed.seal.clone().into_unverified()],
        }
    }

    /// Whether any local change awaits a seal.
    pub fn has_unsealed(&self) -> bool {
        self.unsealed.values().any(|u| !u.hashes.is_empty())
    }

    /// The whole history as one batch: every change and the kept seals that cover them.
    pub fn history(&self) -> Batch {
        Batch {
            changes: self
                .doc
                .get_changes(&[])
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect(),
            seals: self.seals.all_unverified(),
        }
    }

    /// The kept seals that cover the given raw changes (one per actor among them), to send with
    /// them. Changes that do not parse are skipped.
    pub fn seals_for(&self, changes: &[Vec<u8>]) -> Vec<Signed<ChangeSeal, Unverified>> {
        let actors: Vec<Vec<u8>> = changes
            .iter()
            .filter_map(|c| {
                chunk_actor(c).map(<[u8]>::to_vec).or_else(|| {
                    automerge::Change::try_from(&c[..])
                        .ok()
                        .map(|c| c.actor_id().to_bytes().to_vec())
                })
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        self.seals.for_actors(actors.iter().map(Vec::as_slice))
    }

    /// The kept seals (at most one per actor: the one naming its latest change).
    pub fn seals(&self) -> Vec<Signed<ChangeSeal, Unverified>> {
        self.seals.all_unverified()
    }

    /// Saves the document compactly (automerge's `save`), for snapshots.
    /// Held changes (see [`crate::contest`]) are saved too, so that a restore judges them again.
    pub fn save(&self) -> Vec<u8> {
        if self.contest.held().next().is_some()
            && let Ok(doc) = self.doc_with_held()
        {
            return doc.save();
        }
        self.doc.save()
    }

    /// Restores a replica from its own store: a snapshot, changes since it and the kept seals.
    ///
    /// The store only ever holds verified data, so nothing is re-verified here; data from any
    /// other source goes through [`Project::ingest`] instead.
    pub fn restore(
        id: ProjectId,
        snapshot: Option<&[u8]>,
        changes: Vec<Vec<u8>>,
        seals: Vec<Signed<ChangeSeal, Verified>>,
    ) -> Result<Project, crate::ingest::IngestError> {
        use crate::ingest::IngestError;
        let mut doc = match snapshot {
            Some(bytes) => crate::ingest::guarded("stored snapshot", || {
                Automerge::load_with_options(
                    bytes,
                    automerge::LoadOptions::new().text_encoding(TextEncoding::UnicodeCodePoint),
                )
            })?
            .map_err(|e| IngestError::Corrupt(e.to_string()))?,
            None => new_doc(),
        };
        let parsed: Vec<automerge::Change> = changes
            .iter()
            .map(|b| automerge::Change::try_from(&b[..]))
            .collect::<Result<_, _>>()
            .map_err(|e| IngestError::Corrupt(e.to_string()))?;
        crate::ingest::guarded("stored changes", || doc.apply_changes(parsed))?
            .map_err(|e| IngestError::Corrupt(e.to_string()))?;
        let mut project = Project::from_doc(id, doc);
        for seal in seals {
            project.seals.keep(&project.doc, seal);
        }
        // Stored changes include held ones (see [`crate::contest`]): judge them again.
        project.settle()?;
        Ok(project)
    }

    /// The log: every change with its author, time, sequence and size, in a causal order
    /// (dependencies first; concurrent changes by commit time, then hash).
    pub fn log(&self) -> Vec<LogEntry> {
        let entries: Vec<LogEntry> = self
            .doc
            .get_changes_meta(&[])
            .into_iter()
            .map(|m| LogEntry {
                hash: to_hash(m.hash),
                author: author_of(&m.actor),
                seq: m.seq,
                time: m.timestamp,
                ops: (m.max_op + 1).saturating_sub(m.start_op),
                deps: m.deps.iter().copied().map(to_hash).collect(),
            })
            .collect();
        let index: HashMap<ChangeHash, usize> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.hash, i))
            .collect();
        let mut indegree = vec![0usize; entries.len()];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
        for (i, e) in entries.iter().enumerate() {
            for d in &e.deps {
                if let Some(&j) = index.get(d) {
                    indegree[i] += 1;
                    children[j].push(i);
                }
            }
        }
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<(i64, ChangeHash, usize)>> =
            (0..entries.len())
                .filter(|&i| indegree[i] == 0)
                .map(|i| std::cmp::Reverse((entries[i].time, entries[i].hash, i)))
                .collect();
        let mut order = Vec::with_capacity(entries.len());
        while let Some(std::cmp::Reverse((_, _, i))) = ready.pop() {
            order.push(i);
            for &c in &children[i] {
                indegree[c] -= 1;
                if indegree[c] == 0 {
                    ready.push(std::cmp::Reverse((entries[c].time, entries[c].hash, c)));
                }
            }
        }
        let mut slots: Vec<Option<LogEntry>> = entries.into_iter().map(Some).collect();
        order.into_iter().filter_map(|i| slots[i].take()).collect()
    }

    /// Changes per author, from the history.
    pub fn change_counts(&self) -> BTreeMap<AuthorId, usize> {
        let mut counts = BTreeMap::new();
        for m in self.doc.get_changes_meta(&[]) {
            if let Some(a) = author_of(&m.actor) {
                *counts.entry(a).or_insert(0) += 1;
            }
        }
        counts
    }
}

/// Reads an unsigned LEB128 number.
fn uleb(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The actor id of an uncompressed change chunk, read from its header without decoding the
/// change: magic, checksum, type, length, dependencies, then the actor.
pub(crate) fn chunk_actor(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.get(8) != Some(&1) {
        return None;
    }
    let mut at = 9;
    uleb(bytes, &mut at)?;
    let deps = usize::try_from(uleb(bytes, &mut at)?).ok()?;
    at = at.checked_add(deps.checked_mul(32)?)?;
    let len = usize::try_from(uleb(bytes, &mut at)?).ok()?;
    bytes.get(at..at.checked_add(len)?)
}
