//! Stage 5: changes parked until their dependencies arrive, bounded per origin.

use super::*;

/// Changes waiting for their dependencies (each with the origin that sent it), with the seals
/// that came with them.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(super) changes: Vec<(ChangeHash, Change, Origin)>,
    pub(super) seals: Vec<Signed<ChangeSeal, Verified>>,
    /// Most parked changes per origin ([`MAX_PENDING_PER_ORIGIN`]; lower in tests).
    pub(super) per_origin: usize,
    /// Most parked changes in all ([`MAX_PENDING_CHANGES`]; lower in tests).
    pub(super) total: usize,
}

impl Default for Pending {
    fn default() -> Self {
        Self {
            changes: Vec::new(),
            seals: Vec::new(),
            per_origin: MAX_PENDING_PER_ORIGIN,
            total: MAX_PENDING_CHANGES,
        }
    }
}

impl Pending {
    /// The changes the waiting ones depend on that are neither in `doc` nor waiting: what to
    /// ask a peer for. Automerge cannot know them, because waiting changes are held here and
    /// not in its own queue.
    pub(crate) fn missing_deps(&self, doc: &Automerge) -> Vec<automerge::ChangeHash> {
        let waiting: HashSet<ChangeHash> = self.changes.iter().map(|(h, _, _)| *h).collect();
        let mut deps: Vec<automerge::ChangeHash> = self
            .changes
            .iter()
            .flat_map(|(_, c, _)| c.deps().iter().copied())
            .filter(|d| !waiting.contains(&to_hash(*d)))
            .collect();
        deps.sort_unstable();
        deps.dedup();
        deps.retain(|d| doc.get_change_by_hash(d).is_none());
        deps
    }

    /// Whether a change is waiting here.
    pub(crate) fn holds(&self, hash: &automerge::ChangeHash) -> bool {
        let h = to_hash(*hash);
        self.changes.iter().any(|(w, _, _)| *w == h)
    }
}

impl Pending {
    /// Bounds the changes about to wait (`waiting`, indices into `origins`): more than
    /// `per_origin` from the batch's `sender` refuses the batch; past the total, parked changes
    /// of the other origin holding the most are evicted, never the sender's for another's sake.
    pub(super) fn bound(
        &self,
        waiting: &mut Vec<usize>,
        origins: &[Origin],
        sender: Origin,
    ) -> Result<(), IngestError> {
        let mut per: HashMap<Origin, usize> = HashMap::new();
        for &w in waiting.iter() {
            *per.entry(origins[w]).or_default() += 1;
        }
        let mine = per.get(&sender).copied().unwrap_or(0);
        if mine > self.per_origin {
            return Err(IngestError::TooManyPending {
                count: mine,
                limit: self.per_origin,
            });
        }
        while waiting.len() > self.total {
            let Some((&largest, _)) = per
                .iter()
                .filter(|(o, n)| **o != sender && **n > 0)
                .max_by_key(|(o, n)| (**n, **o))
            else {
                break;
            };
            let excess = waiting.len() - self.total;
            let mut removed = 0;
            waiting.retain(|&w| {
                if removed < excess && origins[w] == largest {
                    removed += 1;
                    false
                } else {
                    true
                }
            });
            per.insert(largest, 0);
        }
        Ok(())
    }
}
