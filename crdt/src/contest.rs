//! Changes contested by a concurrent removal or demotion of their author.
//!
//! A change is first judged against the membership in its own causal past (see
//! [`crate::ingest`]). That alone lets a removed author keep writing: they sign a change whose
//! dependencies are an old state where they still had their role (a *backdated* change). This
//! module adds the second half of the rule, a deterministic function of the set of changes
//! (the DAG), so every replica that holds the same changes shows the same document:
//!
//! * A change `C` by author `A` that needs role `r` (editor for content, owner for members
//!   and visibility) is **contested** when the history holds a membership change `M` (itself
//!   valid at its causal past) that sets `A`'s role below `r` — lowering it from what it was
//!   before `M` — and `M` and `C` are concurrent (neither is an ancestor of the other). When
//!   `M` is an ancestor of `C` the causal-past check already refuses `C`; when `C` is an
//!   ancestor of `M`, `C` was made before the removal and stands.
//! * A contested change is **accepted** when some change `C'` by a different author, not
//!   itself contested, has `C` as an ancestor: a member still authorised built on it.
//! * Contested changes that are not accepted, and every change that depends on one, are
//!   **held**: kept beside the document (never lost, saved with it, sent to every peer once a
//!   connection in live sync, re-judged on every ingest) but not applied. A held change becomes part of the
//!   document as soon as an authorised member's change builds on it ([`Project::accept_held`]
//!   does that deliberately).
//!
//! `M` counts whether or not it is held itself: two owners removing each other concurrently
//! contest each other's removal, and both removals are held (the founder can never be demoted,
//! so a project always keeps an owner). Deciding on held-ness of `M` would need a fixpoint that
//! need not exist.
//!
//! Automerge cannot un-apply a change. When a membership change arrives that contests changes
//! a replica had already applied (they arrived first), the replica rebuilds its document from
//! its changes without the held ones: one fresh document and one `apply_changes`, a cost
//! linear in the history. It happens only on a demotion concurrent with applied changes of the
//! demoted author. Judging needs each change's author, role needed and membership effect, which
//! are kept per change (a few words each) so that an ingest only describes its new changes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use automerge::{Automerge, Change};
use orrery_protocol::{AuthorId, ChangeHash};

use crate::ingest::{IngestError, Item, classify, guarded, role_at};
use crate::project::EditError;
use crate::project::{Project, Roots, from_hash, new_doc, to_hash};
use crate::schema::Role;
use crate::session::Session;
use automerge::transaction::Transactable;

/// What judging needs to know of one change.
#[derive(Debug, Clone)]
struct Info {
    author: AuthorId,
    deps: Vec<ChangeHash>,
    /// The role the change needs.
    need: Role,
    /// Members whose role this change lowers, and the role it leaves them (`None`: removed).
    lowers: Vec<(AuthorId, Option<Role>)>,
}

/// The judged history: what is known of every change, and the held changes themselves.
#[derive(Debug, Default, Clone)]
pub(crate) struct Contest {
    known: HashMap<ChangeHash, Info>,
    held: BTreeMap<ChangeHash, Change>,
    /// The document's heads when its changes were last learned: every change up to them is in
    /// `known`.
    seen: Vec<automerge::ChangeHash>,
}

impl Contest {
    /// Whether `hash` is held.
    pub(crate) fn holds(&self, hash: &ChangeHash) -> bool {
        self.held.contains_key(hash)
    }

    /// A held change, by hash.
    pub(crate) fn get(&self, hash: &ChangeHash) -> Option<&Change> {
        self.held.get(hash)
    }

    /// The held changes, by hash.
    pub(crate) fn held(&self) -> impl Iterator<Item = (&ChangeHash, &Change)> {
        self.held.iter()
    }

    /// The held changes that `deps` reach (directly or through other held changes).
    pub(crate) fn needed_by<'a>(
        &self,
        deps: impl IntoIterator<Item = &'a automerge::ChangeHash>,
    ) -> Vec<(ChangeHash, Change)> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack: Vec<ChangeHash> = deps.into_iter().map(|d| to_hash(*d)).collect();
        while let Some(h) = stack.pop() {
            if let Some(c) = self.held.get(&h)
                && seen.insert(h)
            {
                stack.extend(c.deps().iter().map(|d| to_hash(*d)));
                out.push((h, c.clone()));
            }
        }
        out
    }

    /// The changes to hold: contested, not accepted, and their descendants.
    fn excluded(&self) -> HashSet<ChangeHash> {
        let lowering: Vec<(&ChangeHash, &Info)> = self
            .known
            .iter()
            .filter(|(_, i)| !i.lowers.is_empty())
            .collect();
        if lowering.is_empty() {
            return HashSet::new();
        }
        let mut children: HashMap<ChangeHash, Vec<ChangeHash>> = HashMap::new();
        for (h, i) in &self.known {
            for d in &i.deps {
                children.entry(*d).or_default().push(*h);
            }
        }
        let reach = |from: ChangeHash, up: bool| -> HashSet<ChangeHash> {
            let mut seen = HashSet::new();
            let mut stack = vec![from];
            while let Some(h) = stack.pop() {
                let next: &[ChangeHash] = if up {
                    self.known.get(&h).map_or(&[], |i| &i.deps)
                } else {
                    children.get(&h).map_or(&[], Vec::as_slice)
                };
                for n in next {
                    if seen.insert(*n) {
                        stack.push(*n);
                    }
                }
            }
            seen
        };
        let mut contested: HashSet<ChangeHash> = HashSet::new();
        for (m, info) in lowering {
            let before = reach(*m, true);
            let after = reach(*m, false);
            for (c, ci) in &self.known {
                if c == m || before.contains(c) || after.contains(c) {
                    continue;
                }
                let lowered = info
                    .lowers
                    .iter()
                    .any(|(a, left)| *a == ci.author && left.is_none_or(|r| r < ci.need));
                if lowered {
                    contested.insert(*c);
                }
            }
        }
        let mut out = HashSet::new();
        for c in &contested {
            let author = self.known.get(c).map(|i| i.author);
            let below = reach(*c, false);
            let accepted = below
                .iter()
                .any(|d| !contested.contains(d) && self.known.get(d).map(|i| i.author) != author);
            if !accepted {
                out.insert(*c);
                out.extend(below);
            }
        }
        out
    }
}

/// Describes a change that is in `doc`.
fn describe(doc: &Automerge, roots: &Roots, change: &Change) -> Result<Info, IngestError> {
    let hash = to_hash(change.hash());
    let author =
        crate::session::author_of(change.actor_id()).ok_or(IngestError::BadActor { hash })?;
    if change.deps().is_empty() {
        return describe_needing(doc, roots, change, author, Role::Owner);
    }
    let item = Item {
        hash,
        author,
        change: Rc::new(change.clone()),
    };
    // A run change is judged as its requester's: a request backdated by a removed author is
    // held like their own backdated edit.
    let need = classify(&item, Some(roots))?
        .unwrap_or_else(|| crate::ingest::Needs::of(Role::Editor, "change content"));
    describe_needing(doc, roots, change, need.judged_author(author), need.role)
}

/// Describes a change that is in `doc`, by `author`, that needs `need`: only a change that
/// needs an owner can lower anyone's role, so only those are decoded.
fn describe_needing(
    doc: &Automerge,
    roots: &Roots,
    change: &Change,
    author: AuthorId,
    need: Role,
) -> Result<Info, IngestError> {
    let deps: Vec<ChangeHash> = change.deps().iter().map(|d| to_hash(*d)).collect();
    if deps.is_empty() {
        // The genesis: it lowers nobody and nothing can contest its founder.
        return Ok(Info {
            author,
            deps,
            need: Role::Owner,
            lowers: Vec::new(),
        });
    }
    let mut lowers = Vec::new();
    if need == Role::Owner {
        let after = [change.hash()];
        let mut touched: Vec<AuthorId> = guarded("decoding a change", || change.decode())?
            .operations
            .iter()
            .filter(|op| match (&op.obj, &roots.members) {
                (automerge::legacy::ObjectId::Id(o), automerge::ObjId::Id(c, a, _)) => {
                    o.0 == *c && o.1 == *a
                }
                _ => false,
            })
            .filter_map(|op| match &op.key {
                automerge::legacy::Key::Map(k) => k.parse().ok(),
                automerge::legacy::Key::Seq(_) => None,
            })
            .collect();
        touched.sort_unstable_by_key(|a: &AuthorId| *a.key());
        touched.dedup();
        for a in touched {
            let was = role_at(doc, &roots.members, &a, change.deps());
            let left = role_at(doc, &roots.members, &a, &after);
            if left < was {
                lowers.push((a, left));
            }
        }
    }
    Ok(Info {
        author,
        deps,
        need,
        lowers,
    })
}

impl Project {
    /// Learns the document's changes it has not judged yet (ingested, made locally or
    /// adopted), then holds every change the rule holds and applies every held change it no
    /// longer holds, rebuilding the document when a change already applied must be taken out.
    /// Returns the changes held now.
    pub(crate) fn settle(&mut self) -> Result<Vec<ChangeHash>, IngestError> {
        let Some(roots) = self.roots.clone() else {
            return Ok(Vec::new());
        };
        let heads = self.doc.get_heads();
        if heads != self.contest.seen {
            let since = self.contest.seen.clone();
            let new = guarded("listing new changes", || self.doc.get_changes(&since))?;
            for change in new {
                let h = to_hash(change.hash());
                if self.contest.known.contains_key(&h) {
                    continue;
                }
                let info = describe(&self.doc, &roots, &change)?;
                self.contest.known.insert(h, info);
            }
        }
        let excluded = self.contest.excluded();
        let taken_out: Vec<ChangeHash> = excluded
            .iter()
            .filter(|h| self.doc.get_change_meta_by_hash(&from_hash(**h)).is_some())
            .copied()
            .collect();
        let released: Vec<ChangeHash> = self
            .contest
            .held
            .keys()
            .filter(|h| !excluded.contains(h))
            .copied()
            .collect();
        let mut released_changes = Vec::new();
        for h in &released {
            if let Some(c) = self.contest.held.remove(h) {
                released_changes.push(c);
            }
        }
        if taken_out.is_empty() {
            if !released_changes.is_empty() {
                guarded("applying accepted changes", || {
                    self.doc.apply_changes(released_changes)
                })?
                .map_err(|_| IngestError::Library {
                    what: "applying accepted changes",
                })?;
            }
        } else {
            let mut keep = Vec::new();
            for c in self.doc.get_changes(&[]) {
                let h = to_hash(c.hash());
                if excluded.contains(&h) {
                    self.contest.held.insert(h, c);
                } else {
                    keep.push(c);
                }
            }
            keep.extend(released_changes);
            let mut doc = new_doc();
            doc.set_actor(self.doc.get_actor().clone());
            guarded("rebuilding the document", || doc.apply_changes(keep))?.map_err(|_| {
                IngestError::Library {
                    what: "rebuilding the document",
                }
            })?;
            self.doc = doc;
        }
        self.contest.seen = self.doc.get_heads();
        Ok(self.contest.held.keys().copied().collect())
    }

    /// Learns every change of a document rebuilt from `judged` (each of its changes with the
    /// role it needs, as a snapshot's checks found them) and holds what the rule holds. Only
    /// the changes that need an owner are decoded again.
    pub(crate) fn settle_judged<'a>(
        &mut self,
        judged: impl Iterator<Item = (&'a Item, Role, AuthorId)>,
    ) -> Result<Vec<ChangeHash>, IngestError> {
        let Some(roots) = self.roots.clone() else {
            return Ok(Vec::new());
        };
        self.contest.known.clear();
        for (it, need, who) in judged {
            let info = describe_needing(&self.doc, &roots, &it.change, who, need)?;
            self.contest.known.insert(it.hash, info);
        }
        self.contest.seen = self.doc.get_heads();
        self.settle()
    }

    /// The held changes and their authors: changes made concurrently with their author's
    /// removal or demotion that no still-authorised member has built on (see
    /// [`crate::contest`]). They are kept, saved and served, but not part of the document.
    pub fn held(&self) -> Vec<(ChangeHash, AuthorId)> {
        self.contest
            .held
            .iter()
            .filter_map(|(h, c)| crate::session::author_of(c.actor_id()).map(|a| (*h, a)))
            .collect()
    }

    /// The document with its held changes too: what [`Project::save`] stores, so that a
    /// restore judges them again.
    pub(crate) fn doc_with_held(&self) -> Result<Automerge, IngestError> {
        let mut doc = guarded("a fork", || self.doc.fork())?;
        let held: Vec<Change> = self.contest.held.values().cloned().collect();
        guarded("applying held changes", || doc.apply_changes(held))?.map_err(|_| {
            IngestError::Library {
                what: "applying held changes",
            }
        })?;
        Ok(doc)
    }

    /// Accepts held changes as `session`'s author (an editor or owner other than their
    /// author): applies them, with the held changes they depend on, and commits a change of
    /// `session` that depends on them (a character inserted into the description and deleted again), so that
    /// every replica that receives it applies them too. Seal as after any edit. Returns how
    /// many changes were accepted.
    pub fn accept_held(
        &mut self,
        session: &Session,
        hashes: &[ChangeHash],
    ) -> Result<usize, EditError> {
        let wanted: Vec<automerge::ChangeHash> = hashes.iter().map(|h| from_hash(*h)).collect();
        let changes = self.contest.needed_by(&wanted);
        if changes.is_empty() {
            return Ok(0);
        }
        let me = session.author();
        let role = self.role_of(&me);
        let own = changes
            .iter()
            .any(|(_, c)| crate::session::author_of(c.actor_id()) == Some(me));
        if own || role.is_none_or(|r| r < Role::Editor) {
            return Err(EditError::NotPermitted {
                author: me,
                action: "accept held changes (an editor or owner other than their author may)",
                role: role.map_or("none".into(), |r| r.to_string()),
            });
        }
        let count = changes.len();
        self.doc
            .apply_changes(changes.into_iter().map(|(_, c)| c))?;
        // The marker: a character inserted into the description and deleted again. It changes
        // nothing a reader sees, but it is a change, and it depends on the accepted ones.
        self.edit(session, Role::Editor, "accept held changes", |tx, roots| {
            tx.splice_text(&roots.description, 0, 0, " ")?;
            tx.splice_text(&roots.description, 0, 1, "")?;
            Ok(())
        })?;
        self.settle()
            .map_err(|_| EditError::Malformed("the history could not be judged again"))?;
        Ok(count)
    }
}
