//! Stage 3–4: the kept seals, and which changes a seal of their author covers.

use super::*;

/// The kept seals: for each actor, the seal naming its highest-sequence change.
///
/// Because an actor's changes form a chain, the seal over its latest change covers all of
/// them, so a replica keeps one seal per actor however long the history grows.
#[derive(Debug, Default, Clone)]
pub(crate) struct SealBook {
    pub(super) by_actor: HashMap<Vec<u8>, KeptSeal>,
}

/// The sequence number of the change a kept seal names, and the seal.
type KeptSeal = (u64, Arc<Signed<ChangeSeal, Verified>>);

impl SealBook {
    pub(crate) fn keep(&mut self, doc: &Automerge, seal: Signed<ChangeSeal, Verified>) {
        let seal = Arc::new(seal);
        for head in &seal.value().heads {
            let Some(meta) = doc.get_change_meta_by_hash(&from_hash(*head)) else {
                continue;
            };
            // A seal only ever vouches for its signer's own changes.
            if crate::session::author_of(&meta.actor).map(|a| *a.key()) != Some(*seal.signer()) {
                continue;
            }
            let actor = meta.actor.to_bytes().to_vec();
            let better = self
                .by_actor
                .get(&actor)
                .is_none_or(|(seq, _)| *seq < meta.seq);
            if better {
                self.by_actor.insert(actor, (meta.seq, seal.clone()));
            }
        }
    }

    pub(crate) fn all(&self) -> Vec<Arc<Signed<ChangeSeal, Verified>>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (_, seal) in self.by_actor.values() {
            if seen.insert(seal.signature().0) {
                out.push(seal.clone());
            }
        }
        out.sort_by_key(|s| s.signature().0);
        out
    }

    /// The kept seals of the given actors.
    pub(crate) fn for_actors<'a>(
        &self,
        actors: impl IntoIterator<Item = &'a [u8]>,
    ) -> Vec<Signed<ChangeSeal, orrery_protocol::Unverified>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for actor in actors {
            if let Some((_, seal)) = self.by_actor.get(actor)
                && seen.insert(seal.signature().0)
            {
                out.push((**seal).clone().into_unverified());
            }
        }
        out
    }

    pub(crate) fn all_unverified(&self) -> Vec<Signed<ChangeSeal, orrery_protocol::Unverified>> {
        self.all()
            .into_iter()
            .map(|s| (*s).clone().into_unverified())
            .collect()
    }
}

/// For each item, whether a seal of its author covers it; and the signers whose walk back from
/// their sealed heads met a dependency that is neither among the items nor in the document
/// (`absent`): a gap, behind which more of their changes may be covered.
///
/// Seals from index `fresh_from` on came with this batch: one naming another author's change is
/// refused. Earlier (waiting) seals that turn out to name another author's change are ignored,
/// so that a lie told earlier cannot make an honest later batch fail.
pub(crate) fn coverage(
    items: &[Item],
    index: &HashMap<ChangeHash, usize>,
    seals: &[Signed<ChangeSeal, Verified>],
    fresh_from: usize,
    absent: impl Fn(&automerge::ChangeHash) -> bool,
) -> Result<(Vec<bool>, HashSet<AuthorId>), IngestError> {
    let mut covered = vec![false; items.len()];
    let mut gaps = HashSet::new();
    // Walk back from each sealed head through the batch; visited sets are per signer.
    let mut visited: HashMap<AuthorId, HashSet<usize>> = HashMap::new();
    for (n, seal) in seals.iter().enumerate() {
        let signer = AuthorId(*seal.signer());
        let seen = visited.entry(signer).or_default();
        let mut stack = Vec::new();
        for head in &seal.value().heads {
            if let Some(&i) = index.get(head) {
                if items[i].author != signer {
                    if n < fresh_from {
                        continue;
                    }
                    return Err(IngestError::SealNamesOthers {
                        signer,
                        head: *head,
                    });
                }
                stack.push(i);
            }
        }
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            if items[i].author == signer {
                covered[i] = true;
            }
            for d in items[i].change.deps() {
                match index.get(&to_hash(*d)) {
                    Some(&j) => stack.push(j),
                    None if !gaps.contains(&signer) && absent(d) => {
                        gaps.insert(signer);
                    }
                    None => {}
                }
            }
        }
    }
    Ok((covered, gaps))
}
