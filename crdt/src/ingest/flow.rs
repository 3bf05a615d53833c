//! The ingest itself: the stages in order, the rounds of judging and applying, and parked
//! changes judged apart from the batch that completed them.

use super::*;

impl Project {
    /// Verifies a batch from another replica and applies what is ready. See the module docs for
    /// the checks; on any error the document is unchanged.
    pub fn ingest(&mut self, batch: Batch) -> Result<IngestReport, IngestError> {
        self.ingest_from(batch, Origin::default())
    }

    /// Like [`Project::ingest`], remembering `origin` as the sender of whatever this batch
    /// parks. An `Err` is the batch's own fault (charge `origin`); parked changes refused on the
    /// way are in [`IngestReport::refused`] with their own origins.
    pub fn ingest_from(
        &mut self,
        batch: Batch,
        origin: Origin,
    ) -> Result<IngestReport, IngestError> {
        self.ingest_collecting(batch, origin, false)
            .map(|(report, _)| report)
    }

    /// Like [`Project::ingest_from`], also returning the raw bytes of the applied changes (in
    /// the order applied) when `collect` is set, for storing them.
    pub(crate) fn ingest_collecting(
        &mut self,
        batch: Batch,
        origin: Origin,
        collect: bool,
    ) -> Result<(IngestReport, Vec<Vec<u8>>), IngestError> {
        if batch.changes.len() > MAX_BATCH_CHANGES {
            return Err(IngestError::Oversize {
                what: "the batch's change count",
                len: batch.changes.len(),
                limit: MAX_BATCH_CHANGES,
            });
        }
        let total = batch.change_bytes();
        if total > MAX_BATCH_BYTES {
            return Err(IngestError::Oversize {
                what: "the batch",
                len: total,
                limit: MAX_BATCH_BYTES,
            });
        }

        // An honest batch carries at most one seal per change (usually far fewer); more only
        // costs signature checks.
        let seal_limit = batch.changes.len().saturating_mul(2).saturating_add(16);
        if batch.seals.len() > seal_limit {
            return Err(IngestError::Oversize {
                what: "the batch's seal count",
                len: batch.seals.len(),
                limit: seal_limit,
            });
        }

        // Parse everything first: a malformed change anywhere refuses the batch.
        let mut parsed = Vec::with_capacity(batch.changes.len());
        for (i, bytes) in batch.changes.iter().enumerate() {
            parsed.push(parse_change(i, bytes)?);
        }

        // Seals.
        let mut seals = Vec::with_capacity(batch.seals.len());
        for r in Signed::verify_all(batch.seals) {
            let seal = r.map_err(IngestError::ForgedSeal)?;
            if seal.value().project != self.id {
                return Err(IngestError::WrongProject {
                    found: seal.value().project,
                });
            }
            seals.push(seal);
        }

        // New changes, minus those already known or repeated.
        let mut report = IngestReport::default();
        // An empty replica (the usual receiver of a whole history) knows nothing: skip asking.
        let known: HashSet<ChangeHash> = if self.doc.get_heads().is_empty() {
            HashSet::new()
        } else {
            let hashes: Vec<automerge::ChangeHash> = parsed.iter().map(Change::hash).collect();
            let missing: HashSet<automerge::ChangeHash> =
                self.doc.get_missing_deps(&hashes).into_iter().collect();
            hashes
                .iter()
                .filter(|h| !missing.contains(h))
                .map(|h| to_hash(*h))
                .collect()
        };
        let mut authors = AuthorCache::default();
        let mut items: Vec<Item> = Vec::with_capacity(parsed.len() + self.pending.changes.len());
        let mut index: HashMap<ChangeHash, usize> = HashMap::new();
        // Who sent each item: this batch's origin for its own changes, the remembered one for
        // parked changes.
        let mut origins: Vec<Origin> = Vec::with_capacity(items.capacity());
        let mut fresh = Vec::new();
        for change in parsed {
            let hash = to_hash(change.hash());
            if known.contains(&hash) || index.contains_key(&hash) || self.contest.holds(&hash) {
                report.duplicates += 1;
                continue;
            }
            let author = authors
                .of(change.actor_id())
                .ok_or(IngestError::BadActor { hash })?;
            index.insert(hash, items.len());
            fresh.push(items.len());
            origins.push(origin);
            items.push(Item {
                hash,
                author,
                change: Rc::new(change),
            });
        }
        for (hash, change, from) in &self.pending.changes {
            if index.contains_key(hash) {
                continue;
            }
            let author = authors
                .of(change.actor_id())
                .ok_or(IngestError::BadActor { hash: *hash })?;
            index.insert(*hash, items.len());
            origins.push(*from);
            items.push(Item {
                hash: *hash,
                author,
                change: Rc::new(change.clone()),
            });
        }
        // Held changes that the new or waiting ones build on are judged again with them.
        let held_from = items.len();
        let needed = self
            .contest
            .needed_by(items.iter().flat_map(|it| it.change.deps()));
        for (hash, change) in needed {
            if index.contains_key(&hash) {
                continue;
            }
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
        let mut all_seals = self.pending.seals.clone();
        let waiting_seals = all_seals.len();
        all_seals.extend(seals.iter().cloned());

        // Coverage: every new change must be an ancestor-or-self of a head sealed by its author.
        let (mut covered, gaps) = coverage(&items, &index, &all_seals, waiting_seals, |d| {
            self.doc.get_change_meta_by_hash(d).is_none()
        })?;
        // Held changes passed every check when they arrived.
        for c in covered.iter_mut().skip(held_from) {
            *c = true;
        }
        // A seal whose head has not arrived yet (it may be on its way), or whose ancestry here
        // has a gap (a change between the head and older ones is still on its way), lets its
        // author's uncovered changes wait instead of failing.
        let unresolved: HashSet<AuthorId> = {
            let heads: Vec<automerge::ChangeHash> = all_seals
                .iter()
                .flat_map(|s| s.value().heads.iter())
                .filter(|h| !index.contains_key(h))
                .map(|h| from_hash(*h))
                .collect();
            let missing: HashSet<ChangeHash> = self
                .doc
                .get_missing_deps(&heads)
                .into_iter()
                .map(to_hash)
                .collect();
            all_seals
                .iter()
                .filter(|s| s.value().heads.iter().any(|h| missing.contains(h)))
                .map(|s| AuthorId(*s.signer()))
                .chain(gaps)
                .collect()
        };
        let mut held: HashSet<usize> = HashSet::new();
        let mut dropped: HashSet<usize> = HashSet::new();
        for &i in &fresh {
            if !covered[i] {
                if unresolved.contains(&items[i].author) {
                    held.insert(i);
                    continue;
                }
                return Err(IngestError::Unsigned {
                    hash: items[i].hash,
                    author: items[i].author,
                });
            }
        }
        // Waiting changes that no seal covers any more (their author's seals all resolved without
        // covering them) are dropped: whoever sent them lied about them. (`items` holds the fresh
        // changes first, then the waiting ones.)
        for i in fresh.len()..items.len() {
            if !covered[i] && !unresolved.contains(&items[i].author) {
                held.insert(i);
                dropped.insert(i);
            }
        }
        // Held changes, and (through the topological order below) every change that depends on
        // one, wait.

        // Readiness: topological order of the changes whose dependencies are all present.
        let (ready, mut waiting) = self.ready_order(&items, &index, &held);
        waiting.retain(|w| !dropped.contains(w));
        waiting.sort_unstable();
        self.pending.bound(&mut waiting, &origins, origin)?;

        // The applied changes' bytes, for the caller to store, taken before applying moves the
        // changes into the document.
        let mut bytes: HashMap<usize, Vec<u8>> = if collect {
            ready
                .iter()
                .map(|&i| (i, items[i].change.raw_bytes().to_vec()))
                .collect()
        } else {
            HashMap::new()
        };
        let nfresh = fresh.len();
        let (own, after): (Vec<usize>, Vec<usize>) = {
            // A ready change is the batch's own unless it was parked or depends on one that was
            // (`ready` is in causal order, so its dependencies are classified before it).
            let mut later: HashSet<usize> = HashSet::new();
            for &i in &ready {
                let on_parked = i >= nfresh
                    || items[i]
                        .change
                        .deps()
                        .iter()
                        .any(|d| index.get(&to_hash(*d)).is_some_and(|j| later.contains(j)));
                if on_parked {
                    later.insert(i);
                }
            }
            ready.iter().partition(|i| !later.contains(i))
        };
        let mut order = Vec::with_capacity(ready.len());
        if !own.is_empty() {
            let own_index = sub_index(&items, &own);
            self.judge_and_apply(&mut items, &own_index, &own)?;
            order.extend(own.iter().copied());
        }
        // Parked changes (and what depends on them) are judged apart from the batch: nothing they
        // do can refuse it.
        for &i in &dropped {
            report.refused.push(Refused {
                origin: origins[i],
                hash: items[i].hash,
                error: Arc::new(IngestError::Unsigned {
                    hash: items[i].hash,
                    author: items[i].author,
                }),
            });
        }
        if !after.is_empty() {
            self.judge_parked(
                &mut items,
                &index,
                &origins,
                &after,
                &mut order,
                &mut report,
            )?;
        }
        report.applied = order.iter().map(|&i| items[i].hash).collect();
        let applied_bytes = order
            .iter()
            .filter_map(|i| bytes.remove(i))
            .collect::<Vec<_>>();

        // Keep the seals; those naming a change not yet in the document wait with the changes.
        let heads: Vec<automerge::ChangeHash> = all_seals
            .iter()
            .flat_map(|s| s.value().heads.iter().map(|h| from_hash(*h)))
            .collect();
        let absent: HashSet<ChangeHash> = self
            .doc
            .get_missing_deps(&heads)
            .into_iter()
            .map(to_hash)
            .collect();
        let mut seen = HashSet::new();
        let mut still = Vec::new();
        for seal in all_seals {
            self.seals.keep(&self.doc, seal.clone());
            let waits = seal.value().heads.iter().any(|h| absent.contains(h));
            if waits && seen.insert(seal.signature().0) {
                still.push(seal);
            }
        }
        still.truncate(MAX_PENDING_SEALS);
        self.pending.seals = still;
        self.pending.changes = waiting
            .iter()
            .map(|&w| (items[w].hash, (*items[w].change).clone(), origins[w]))
            .collect();
        report.pending = self.pending.changes.len();
        // The second judgement: changes contested by a concurrent removal of their author are
        // held, and held ones an authorised member built on are applied (see `contest`).
        if !report.applied.is_empty() {
            report.held = self.settle()?;
            report.applied.retain(|h| !report.held.contains(h));
        } else {
            report.held = self.held().into_iter().map(|(h, _)| h).collect();
        }
        Ok((report, applied_bytes))
    }

    /// Judges and applies the ready changes that were parked (or depend on parked ones), in
    /// causal order `after`, apart from the batch: all at once when they all pass, otherwise one
    /// by one, dropping each that fails (listed in `report.refused` with its origin) and every
    /// change that depends on a dropped one.
    pub(super) fn judge_parked(
        &mut self,
        items: &mut [Item],
        index: &HashMap<ChangeHash, usize>,
        origins: &[Origin],
        after: &[usize],
        order: &mut Vec<usize>,
        report: &mut IngestReport,
    ) -> Result<(), IngestError> {
        // Applying moves changes out of `items`; keep them for the one-by-one pass.
        let kept: Vec<Rc<Change>> = after.iter().map(|&i| items[i].change.clone()).collect();
        let all = sub_index(items, after);
        if self.judge_and_apply(items, &all, after).is_ok() {
            order.extend(after.iter().copied());
            return Ok(());
        }
        for (&i, change) in after.iter().zip(kept) {
            items[i].change = change;
        }
        let mut failed: HashSet<usize> = HashSet::new();
        for &i in after {
            let behind_failed = items[i]
                .change
                .deps()
                .iter()
                .any(|d| index.get(&to_hash(*d)).is_some_and(|j| failed.contains(j)));
            if behind_failed {
                failed.insert(i);
                report.abandoned += 1;
                continue;
            }
            let one = sub_index(items, &[i]);
            match self.judge_and_apply(items, &one, &[i]) {
                Ok(()) => order.push(i),
                // A library failure is nobody's offence and may hit the next change too.
                Err(e @ IngestError::Library { .. }) => return Err(e),
                Err(e) => {
                    failed.insert(i);
                    report.refused.push(Refused {
                        origin: origins[i],
                        hash: items[i].hash,
                        error: Arc::new(e),
                    });
                }
            }
        }
        Ok(())
    }

    /// Splits `items` into a topological order of those ready to apply and those waiting.
    pub(super) fn ready_order(
        &self,
        items: &[Item],
        index: &HashMap<ChangeHash, usize>,
        held: &HashSet<usize>,
    ) -> (Vec<usize>, Vec<usize>) {
        // Dependencies missing from both the document and the batch.
        let mut outside: Vec<automerge::ChangeHash> = items
            .iter()
            .flat_map(|it| it.change.deps().iter().copied())
            .filter(|d| !index.contains_key(&to_hash(*d)))
            .collect();
        outside.sort_unstable();
        outside.dedup();
        let absent: HashSet<ChangeHash> = self
            .doc
            .get_missing_deps(&outside)
            .into_iter()
            .map(to_hash)
            .collect();
        let mut indegree = vec![0usize; items.len()];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); items.len()];
        let mut blocked: Vec<bool> = (0..items.len()).map(|i| held.contains(&i)).collect();
        for (i, it) in items.iter().enumerate() {
            for d in it.change.deps() {
                let d = to_hash(*d);
                if let Some(&j) = index.get(&d) {
                    indegree[i] += 1;
                    children[j].push(i);
                } else if absent.contains(&d) {
                    blocked[i] = true;
                }
            }
        }
        let mut order = Vec::with_capacity(items.len());
        let mut stack: Vec<usize> = (0..items.len())
            .filter(|&i| indegree[i] == 0 && !blocked[i])
            .collect();
        stack.sort_by_key(|&i| std::cmp::Reverse(i));
        while let Some(i) = stack.pop() {
            order.push(i);
            for &c in &children[i] {
                indegree[c] -= 1;
                if indegree[c] == 0 && !blocked[c] {
                    stack.push(c);
                }
            }
        }
        let in_order: HashSet<usize> = order.iter().copied().collect();
        let waiting = (0..items.len()).filter(|i| !in_order.contains(i)).collect();
        (order, waiting)
    }

    /// Judges the ready changes against the membership in their causal past and applies them.
    pub(super) fn judge_and_apply(
        &mut self,
        items: &mut [Item],
        index: &HashMap<ChangeHash, usize>,
        ready: &[usize],
    ) -> Result<(), IngestError> {
        let genesis_needed = self.roots.is_none();
        // Classify every ready change (decoding its operations).
        let roots_now = self.roots.clone();
        let mut needs: HashMap<usize, Option<Needs>> = HashMap::new();
        let mut genesis = None;
        for &i in ready {
            let it = &items[i];
            if it.change.deps().is_empty() {
                if genesis_needed && genesis.is_none() && it.hash.0 == self.id.0 {
                    genesis = Some(i);
                    needs.insert(i, None);
                    continue;
                }
                return Err(IngestError::SecondRoot { hash: it.hash });
            }
        }
        if genesis_needed && genesis.is_none() {
            // Everything ready depends on something, yet the document is empty: impossible
            // unless the genesis is missing, in which case nothing would be ready.
            return Err(IngestError::BadGenesis {
                hash: items[ready[0]].hash,
                reason: "the batch's history does not start at this project's genesis",
            });
        }

        let mut working: Automerge;
        let mut roots;
        let in_place;
        if let Some(g) = genesis {
            let doc = apply_genesis(&items[g])?;
            roots = Roots::read(&doc);
            working = doc;
            in_place = false;
        } else {
            roots = self.roots.clone();
            // Several rounds are needed when a membership change has a descendant in the batch,
            // or a run change's base arrives with it (the base must be in the document first).
            let multi = ready.iter().any(|&i| {
                matches!(
                    classify(&items[i], roots_now.as_ref()),
                    Ok(Some(n)) if n.role == Role::Owner || n.run.is_some()
                )
            }) && ready.len() > 1;
            if multi {
                working = guarded("a fork", || self.doc.fork())?;
                in_place = false;
            } else {
                working = Automerge::new();
                in_place = true;
            }
        }

        let mut remaining: Vec<usize> = ready
            .iter()
            .copied()
            .filter(|&i| Some(i) != genesis)
            .collect();
        let mut applied: HashSet<usize> = genesis.into_iter().collect();
        while !remaining.is_empty() {
            let doc: &Automerge = if in_place { &self.doc } else { &working };
            let round_roots = roots.clone().ok_or(IngestError::Library {
                what: "project roots",
            })?;
            let members = round_roots.members.clone();
            // Frontier per change: the applied changes its unapplied ancestry bottoms out at.
            let mut frontier: HashMap<usize, Rc<Vec<automerge::ChangeHash>>> = HashMap::new();
            let mut gov_blocked: HashSet<usize> = HashSet::new();
            let mut round = Vec::new();
            let mut later = Vec::new();
            let mut role_cache: HashMap<
                (*const Vec<automerge::ChangeHash>, AuthorId),
                Option<Role>,
            > = HashMap::new();
            let mut gov_in_round: HashSet<usize> = HashSet::new();
            for &i in &remaining {
                let it = &items[i];
                let mut blocked = false;
                let mut parts: Vec<Rc<Vec<automerge::ChangeHash>>> = Vec::new();
                let mut direct = Vec::new();
                for d in it.change.deps() {
                    match index.get(&to_hash(*d)) {
                        Some(j) if !applied.contains(j) => {
                            if gov_blocked.contains(j) || gov_in_round.contains(j) {
                                blocked = true;
                            } else if let Some(f) = frontier.get(j) {
                                parts.push(f.clone());
                            } else {
                                blocked = true;
                            }
                        }
                        _ => direct.push(*d),
                    }
                }
                if blocked {
                    gov_blocked.insert(i);
                    later.push(i);
                    continue;
                }
                let f = if direct.is_empty() && parts.len() == 1 {
                    parts[0].clone()
                } else {
                    let mut all = direct;
                    for p in &parts {
                        all.extend(p.iter().copied());
                    }
                    all.sort_unstable();
                    all.dedup();
                    Rc::new(all)
                };
                let need = classify(it, Some(&round_roots))?
                    .unwrap_or_else(|| Needs::of(Role::Editor, "change content"));
                if let Some(claim) = &need.run {
                    // Its base must be in the document to judge which cell it writes to.
                    if !parts.is_empty() {
                        gov_blocked.insert(i);
                        later.push(i);
                        continue;
                    }
                    check_run(doc, &round_roots, self.id, it.hash, claim)?;
                }
                let who = need.judged_author(it.author);
                let key = (Rc::as_ptr(&f), who);
                let role = match role_cache.get(&key) {
                    Some(r) => *r,
                    None => {
                        let r = role_at(doc, &members, &who, &f);
                        role_cache.insert(key, r);
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
                if need.role == Role::Owner {
                    gov_in_round.insert(i);
                }
                frontier.insert(i, f);
                round.push(i);
            }
            if round.is_empty() {
                return Err(IngestError::Library {
                    what: "ordering the batch",
                });
            }
            // Move the changes into the document instead of copying them; the slots keep a
            // shared stand-in (only waiting changes are read after this).
            let stand_in = items[round[0]].change.clone();
            let changes: Vec<Change> = round
                .iter()
                .map(|&i| {
                    let rc = std::mem::replace(&mut items[i].change, stand_in.clone());
                    Rc::try_unwrap(rc).unwrap_or_else(|shared| (*shared).clone())
                })
                .collect();
            let target: &mut Automerge = if in_place {
                &mut self.doc
            } else {
                &mut working
            };
            apply_checked(target, changes, "applying changes")?;
            applied.extend(round.iter().copied());
            remaining = later;
            if roots.is_none() {
                roots = Roots::read(target);
            }
        }
        if !in_place {
            self.doc = working;
        }
        if self.roots.is_none() {
            self.roots = Roots::read(&self.doc);
        }
        Ok(())
    }
}

/// An index of just the `chosen` items: their dependencies on anything else are looked up in the
/// document.
pub(super) fn sub_index(items: &[Item], chosen: &[usize]) -> HashMap<ChangeHash, usize> {
    chosen.iter().map(|&i| (items[i].hash, i)).collect()
}
