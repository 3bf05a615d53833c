//! Convergence under random concurrent editing, membership changes and messy delivery.
//!
//! Four replicas, one author each: an owner, two editors and a viewer. They make random local
//! edits (concurrent splices in the same cells, cells inserted, moved and deleted, notebooks
//! added, the title set, members added, removed and re-roled by whoever is an owner at the time),
//! seal them, and deliver sealed batches to each other in random order, with duplicates and
//! often before their dependencies. Every local edit is checked against the role the author has
//! in their own replica: refused exactly when that role does not allow it, and then nothing is
//! committed. Every batch is honest (made by local, checked edits), so every ingest must
//! succeed. At the end every replica ingests everything and all must equal a reference replica
//! that ingested every batch in creation order.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use orrery_crdt::{
    Batch, CellId, CellKind, EditError, NewCell, NotebookId, Project, Role, Session, Visibility,
};
use orrery_protocol::{AuthorId, SecretKey};
use proptest::prelude::*;

const OWNER: usize = 0;
const VIEWER: usize = 3;
const REPLICAS: usize = 4;

fn session(i: usize) -> Session {
    let key = SecretKey::from_bytes(&[i as u8 + 1; 32]).expect("32 bytes");
    Session::with_session_part(key, [i as u8 + 1; 16])
}

/// One random step. Indexes are taken modulo what the acting replica sees at the time.
#[derive(Debug, Clone)]
enum Step {
    Splice {
        who: usize,
        cell: usize,
        pos: usize,
        del: usize,
        text: String,
    },
    InsertCell {
        who: usize,
        notebook: usize,
        at: usize,
    },
    MoveCell {
        who: usize,
        cell: usize,
        to: usize,
    },
    DeleteCell {
        who: usize,
        cell: usize,
    },
    AddNotebook {
        who: usize,
    },
    SetTitle {
        who: usize,
        title: String,
    },
    SetRole {
        who: usize,
        target: usize,
        role: Role,
    },
    Remove {
        who: usize,
        target: usize,
    },
    Seal {
        who: usize,
    },
    Deliver {
        to: usize,
        batch: usize,
    },
    /// Several consecutive batches joined into one, as a sync round would send them.
    DeliverRun {
        to: usize,
        start: usize,
        len: usize,
    },
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        3 => Just(Role::Editor),
        2 => Just(Role::Viewer),
        1 => Just(Role::Owner),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0..REPLICAS;
    prop_oneof![
        8 => (who.clone(), any::<usize>(), any::<usize>(), 0..3usize, "[a-cé\n]{0,3}").prop_map(
            |(who, cell, pos, del, text)| Step::Splice { who, cell, pos, del, text }
        ),
        3 => (who.clone(), any::<usize>(), any::<usize>())
            .prop_map(|(who, notebook, at)| Step::InsertCell { who, notebook, at }),
        2 => (who.clone(), any::<usize>(), any::<usize>())
            .prop_map(|(who, cell, to)| Step::MoveCell { who, cell, to }),
        1 => (who.clone(), any::<usize>()).prop_map(|(who, cell)| Step::DeleteCell { who, cell }),
        1 => who.clone().prop_map(|who| Step::AddNotebook { who }),
        1 => (who.clone(), "[xyz]{1,3}").prop_map(|(who, title)| Step::SetTitle { who, title }),
        2 => (who.clone(), 0..REPLICAS, role())
            .prop_map(|(who, target, role)| Step::SetRole { who, target, role }),
        1 => (who.clone(), 0..REPLICAS).prop_map(|(who, target)| Step::Remove { who, target }),
        4 => who.clone().prop_map(|who| Step::Seal { who }),
        8 => (who.clone(), any::<usize>()).prop_map(|(to, batch)| Step::Deliver { to, batch }),
        2 => (who, any::<usize>(), 2..6usize)
            .prop_map(|(to, start, len)| Step::DeliverRun { to, start, len }),
    ]
}

/// Why an edit is expected to fail, if it is.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Ok,
    NotPermitted,
    LastOwner,
    Founder,
}

struct World {
    sessions: Vec<Session>,
    replicas: Vec<Project>,
    /// Every sealed batch, in the order made.
    pool: Vec<Batch>,
    inserted: BTreeSet<CellId>,
    deleted: BTreeSet<CellId>,
    next_id: usize,
    refused: usize,
}

impl World {
    /// The owner creates the project, makes replicas 1 and 2 editors and replica 3 a viewer,
    /// and adds a notebook with two cells; every other replica starts from that history.
    fn new() -> Self {
        let sessions: Vec<Session> = (0..REPLICAS).map(session).collect();
        let owner = &sessions[OWNER];
        let (mut p, genesis) = Project::create(owner, "start", Visibility::Shared).expect("create");
        for (i, s) in sessions.iter().enumerate().skip(1) {
            let role = if i == VIEWER {
                Role::Viewer
            } else {
                Role::Editor
            };
            p.set_member(owner, s.author(), role).expect("add member");
        }
        let nb = p.add_notebook(owner, "nb0").expect("notebook");
        let mut inserted = BTreeSet::new();
        for (i, text) in ["alpha", "beta"].into_iter().enumerate() {
            let mut cell = NewCell::new(CellKind::Code, text);
            cell.id = format!("c{i}").parse().expect("id");
            inserted.insert(p.insert_cell(owner, &nb, i, cell).expect("cell"));
        }
        let setup = p.seal(owner);
        let mut replicas = vec![p];
        for _ in 1..REPLICAS {
            let mut r = Project::empty(replicas[0].id());
            r.ingest(genesis.clone()).expect("genesis ingests");
            r.ingest(setup.clone()).expect("setup ingests");
            replicas.push(r);
        }
        World {
            sessions,
            replicas,
            pool: vec![genesis, setup],
            inserted,
            deleted: BTreeSet::new(),
            next_id: 2,
            refused: 0,
        }
    }

    fn author(&self, i: usize) -> AuthorId {
        self.sessions[i].author()
    }

    /// The cells replica `who` sees, across its notebooks, in order.
    fn cells(&self, who: usize) -> Vec<(NotebookId, CellId)> {
        let r = &self.replicas[who];
        r.notebook_ids()
            .into_iter()
            .flat_map(|(nb, _)| {
                r.cell_ids(&nb)
                    .expect("listed notebook")
                    .into_iter()
                    .map(move |c| (nb.clone(), c))
            })
            .collect()
    }

    /// What replica `who` must say to an edit needing `need`.
    fn expect(&self, who: usize, need: Role) -> Expect {
        let role = self.replicas[who].role_of(&self.author(who));
        if role.is_some_and(|r| r >= need) {
            Expect::Ok
        } else {
            Expect::NotPermitted
        }
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Seal { who } => {
                let batch = self.replicas[*who].seal(&self.sessions[*who]);
                assert!(!self.replicas[*who].has_unsealed());
                if !batch.is_empty() {
                    self.pool.push(batch);
                }
            }
            Step::Deliver { to, batch } => {
                let batch = self.pool[batch % self.pool.len()].clone();
                let r = &mut self.replicas[*to];
                if let Err(e) = r.ingest(batch) {
                    panic!("replica {to} refused an honest batch: {e}");
                }
            }
            Step::DeliverRun { to, start, len } => {
                let start = start % self.pool.len();
                let end = (start + len).min(self.pool.len());
                let mut batch = Batch::default();
                for b in &self.pool[start..end] {
                    batch.changes.extend(b.changes.iter().cloned());
                    batch.seals.extend(b.seals.iter().cloned());
                }
                if let Err(e) = self.replicas[*to].ingest(batch) {
                    panic!("replica {to} refused honest batches {start}..{end}: {e}");
                }
            }
            _ => self.edit(step),
        }
    }

    fn edit(&mut self, step: &Step) {
        let who = match step {
            Step::Splice { who, .. }
            | Step::InsertCell { who, .. }
            | Step::MoveCell { who, .. }
            | Step::DeleteCell { who, .. }
            | Step::AddNotebook { who }
            | Step::SetTitle { who, .. }
            | Step::SetRole { who, .. }
            | Step::Remove { who, .. } => *who,
            Step::Seal { .. } | Step::Deliver { .. } | Step::DeliverRun { .. } => {
                unreachable!("not an edit")
            }
        };
        let cells = self.cells(who);
        let before = self.replicas[who].heads();
        let (expect, result): (Expect, Result<(), EditError>) = match step {
            Step::Splice {
                cell,
                pos,
                del,
                text,
                ..
            } => {
                let Some((nb, cell)) = pick(&cells, *cell) else {
                    return;
                };
                let len = self.replicas[who]
                    .cell(nb, cell)
                    .expect("listed cell")
                    .source
                    .chars()
                    .count();
                let pos = pos % (len + 1);
                let del = (*del).min(len - pos);
                let expect = self.expect(who, Role::Editor);
                let s = &self.sessions[who];
                let r = self.replicas[who].splice_source(s, nb, cell, pos, del, text);
                (expect, r)
            }
            Step::InsertCell { notebook, at, .. } => {
                let nbs = self.replicas[who].notebook_ids();
                let Some((nb, _)) = pick(&nbs, *notebook) else {
                    return;
                };
                let count = self.replicas[who].cell_ids(nb).expect("listed").len();
                let mut cell = NewCell::new(CellKind::Markdown, "new");
                cell.id = format!("c{}", self.next_id).parse().expect("id");
                self.next_id += 1;
                let id = cell.id.clone();
                let expect = self.expect(who, Role::Editor);
                let s = &self.sessions[who];
                let r = self.replicas[who].insert_cell(s, nb, at % (count + 1), cell);
                if r.is_ok() {
                    self.inserted.insert(id);
                }
                (expect, r.map(drop))
            }
            Step::MoveCell { cell, to, .. } => {
                let Some((nb, cell)) = pick(&cells, *cell) else {
                    return;
                };
                let count = self.replicas[who].cell_ids(nb).expect("listed").len();
                let expect = self.expect(who, Role::Editor);
                let s = &self.sessions[who];
                let r = self.replicas[who].move_cell(s, nb, cell, to % count);
                (expect, r)
            }
            Step::DeleteCell { cell, .. } => {
                let Some((nb, cell)) = pick(&cells, *cell) else {
                    return;
                };
                let expect = self.expect(who, Role::Editor);
                let s = &self.sessions[who];
                let r = self.replicas[who].delete_cell(s, nb, cell);
                if r.is_ok() {
                    self.deleted.insert(cell.clone());
                }
                (expect, r)
            }
            Step::AddNotebook { .. } => {
                let expect = self.expect(who, Role::Editor);
                let title = format!("nb{}", self.next_id);
                self.next_id += 1;
                let s = &self.sessions[who];
                let r = self.replicas[who].add_notebook(s, &title);
                (expect, r.map(drop))
            }
            Step::SetTitle { title, .. } => {
                let expect = self.expect(who, Role::Editor);
                let s = &self.sessions[who];
                (expect, self.replicas[who].set_title(s, title))
            }
            Step::SetRole { target, role, .. } => {
                let target_author = self.author(*target);
                let expect = if *role != Role::Owner && self.is_founder(who, target_author) {
                    Expect::Founder
                } else if *role != Role::Owner && self.only_owner(who, target_author) {
                    Expect::LastOwner
                } else {
                    self.expect(who, Role::Owner)
                };
                let s = &self.sessions[who];
                let r = self.replicas[who].set_member(s, target_author, *role);
                (expect, r)
            }
            Step::Remove { target, .. } => {
                let target_author = self.author(*target);
                let expect = if self.is_founder(who, target_author) {
                    Expect::Founder
                } else if self.only_owner(who, target_author) {
                    Expect::LastOwner
                } else {
                    self.expect(who, Role::Owner)
                };
                let s = &self.sessions[who];
                let r = self.replicas[who].remove_member(s, target_author);
                (expect, r)
            }
            Step::Seal { .. } | Step::Deliver { .. } | Step::DeliverRun { .. } => {
                unreachable!("not an edit")
            }
        };
        let got = match &result {
            Ok(()) => Expect::Ok,
            Err(EditError::NotPermitted { .. }) => Expect::NotPermitted,
            Err(EditError::LastOwner(_)) => Expect::LastOwner,
            Err(EditError::Founder(_)) => Expect::Founder,
            Err(e) => panic!("replica {who}: {step:?} failed unexpectedly: {e}"),
        };
        assert_eq!(got, expect, "replica {who}: {step:?} gave {result:?}");
        if got != Expect::Ok {
            self.refused += 1;
            assert_eq!(
                self.replicas[who].heads(),
                before,
                "a refused edit committed something"
            );
        }
    }

    /// Whether `author` is the only owner replica `who` knows of.
    fn is_founder(&self, who: usize, author: AuthorId) -> bool {
        self.replicas[who].founder() == Some(author)
    }

    fn only_owner(&self, who: usize, author: AuthorId) -> bool {
        let owners: Vec<AuthorId> = self.replicas[who]
            .members()
            .into_iter()
            .filter(|m| m.role == Role::Owner)
            .map(|m| m.author)
            .collect();
        owners == [author]
    }
}

fn pick<T>(items: &[T], i: usize) -> Option<&T> {
    if items.is_empty() {
        None
    } else {
        items.get(i % items.len())
    }
}

/// A deterministic shuffle (xorshift), so a failing case replays exactly.
fn shuffled(n: usize, mut seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    seed |= 1;
    for i in (1..n).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        order.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    order
}

/// Everything a reader can see of a replica, for comparing replicas.
fn snapshot(p: &Project) -> (String, Vec<orrery_crdt::Member>, Vec<orrery_crdt::Notebook>) {
    let notebooks = p
        .notebook_ids()
        .into_iter()
        .map(|(nb, _)| p.notebook(&nb).expect("listed notebook"))
        .collect();
    (p.title(), p.members(), notebooks)
}

fn run(steps: &[Step], seed: u64) {
    let mut world = World::new();
    for step in steps {
        world.apply(step);
    }
    for who in 0..REPLICAS {
        world.apply(&Step::Seal { who });
    }

    // The reference: every batch, in the order made (dependencies always first).
    let mut reference = Project::empty(world.replicas[0].id());
    for (i, batch) in world.pool.iter().enumerate() {
        let report = reference
            .ingest(batch.clone())
            .unwrap_or_else(|e| panic!("the reference refused batch {i}: {e}"));
        assert_eq!(
            report.pending, 0,
            "batch {i} waited although made after its deps"
        );
    }
    let want = snapshot(&reference);

    // Every replica receives everything, each in its own random order.
    for (who, r) in world.replicas.iter_mut().enumerate() {
        for i in shuffled(world.pool.len(), seed.wrapping_add(who as u64)) {
            if let Err(e) = r.ingest(world.pool[i].clone()) {
                panic!("replica {who} refused batch {i}: {e}");
            }
        }
        let report = r.ingest(Batch::default()).expect("an empty batch");
        assert_eq!(report.pending, 0, "replica {who} still waits for something");
        assert_eq!(r.heads(), reference.heads(), "replica {who}: heads differ");
        let got = snapshot(r);
        assert_eq!(got.0, want.0, "replica {who}: title differs");
        assert_eq!(got.1, want.1, "replica {who}: members differ");
        assert_eq!(got.2, want.2, "replica {who}: notebooks differ");
        assert_eq!(
            r.credits(),
            reference.credits(),
            "replica {who}: credit differs"
        );
    }

    // No cell duplicated or lost: exactly the cells inserted and never deleted survive, each
    // once, each in one notebook.
    let mut seen: BTreeMap<CellId, usize> = BTreeMap::new();
    for nb in &want.2 {
        let ids: HashSet<&CellId> = nb.cells.iter().map(|c| &c.id).collect();
        assert_eq!(
            ids.len(),
            nb.cells.len(),
            "a cell appears twice in a notebook"
        );
        for c in &nb.cells {
            *seen.entry(c.id.clone()).or_default() += 1;
        }
    }
    assert!(seen.values().all(|&n| n == 1), "a cell is in two notebooks");
    let expected: BTreeSet<CellId> = world.inserted.difference(&world.deleted).cloned().collect();
    let survived: BTreeSet<CellId> = seen.into_keys().collect();
    // Held changes (made concurrently with their author's removal, see `orrery_crdt::contest`)
    // insert and delete nothing, on every replica alike: the cells they touch are not those
    // the world recorded.
    if reference.held().is_empty() {
        assert_eq!(survived, expected, "cells lost or resurrected");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Kept small for debug test runs; set PROPTEST_CASES for a longer hunt.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(24),
        max_shrink_iters: 2000,
        // Failing seeds go to tests/convergence.proptest-regressions, which is kept in git.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn replicas_converge_whatever_the_delivery_order(
        steps in prop::collection::vec(step(), 10..60),
        seed in any::<u64>(),
    ) {
        run(&steps, seed);
    }
}

/// The viewer's every kind of edit is refused locally and leaves nothing to seal.
#[test]
fn a_viewer_is_refused_every_edit_and_commits_nothing() {
    let mut world = World::new();
    let steps = [
        Step::Splice {
            who: VIEWER,
            cell: 0,
            pos: 1,
            del: 1,
            text: "x".into(),
        },
        Step::InsertCell {
            who: VIEWER,
            notebook: 0,
            at: 0,
        },
        Step::MoveCell {
            who: VIEWER,
            cell: 0,
            to: 1,
        },
        Step::DeleteCell {
            who: VIEWER,
            cell: 1,
        },
        Step::AddNotebook { who: VIEWER },
        Step::SetTitle {
            who: VIEWER,
            title: "mine".into(),
        },
        Step::SetRole {
            who: VIEWER,
            target: VIEWER,
            role: Role::Owner,
        },
        Step::Remove {
            who: VIEWER,
            target: 1,
        },
    ];
    for step in &steps {
        world.apply(step);
    }
    assert_eq!(world.refused, steps.len());
    assert!(!world.replicas[VIEWER].has_unsealed());
    assert!(
        world.replicas[VIEWER]
            .seal(&world.sessions[VIEWER])
            .is_empty()
    );
}

/// A fixed scenario that exercises what random runs only sometimes hit: an editor removed while
/// typing, a batch delivered before its dependencies, duplicates, and a promotion.
#[test]
fn a_removal_concurrent_with_typing_and_out_of_order_delivery_converge() {
    let steps = vec![
        Step::Splice {
            who: 1,
            cell: 0,
            pos: 0,
            del: 0,
            text: "e1".into(),
        },
        Step::Seal { who: 1 },
        Step::Remove {
            who: OWNER,
            target: 2,
        },
        Step::Seal { who: OWNER },
        Step::Splice {
            who: 2,
            cell: 0,
            pos: 2,
            del: 1,
            text: "e2".into(),
        },
        Step::Seal { who: 2 },
        Step::Splice {
            who: 2,
            cell: 1,
            pos: 0,
            del: 0,
            text: "more".into(),
        },
        Step::Seal { who: 2 },
        // Replica 3 gets editor 2's second batch before its first.
        Step::Deliver { to: 3, batch: 5 },
        Step::Deliver { to: 3, batch: 5 },
        Step::Deliver { to: 3, batch: 4 },
        // Editor 2 learns of the removal: refused from now on.
        Step::Deliver { to: 2, batch: 3 },
        Step::Splice {
            who: 2,
            cell: 0,
            pos: 0,
            del: 0,
            text: "late".into(),
        },
        Step::SetRole {
            who: OWNER,
            target: VIEWER,
            role: Role::Editor,
        },
        Step::Seal { who: OWNER },
        Step::Deliver { to: 3, batch: 6 },
        Step::InsertCell {
            who: VIEWER,
            notebook: 0,
            at: 1,
        },
    ];
    run(&steps, 7);
}

/// Setting a key to the value that already wins a conflict makes automerge emit a *delete* of
/// the losing values instead of a put. Such honest edits of the title, the visibility and a
/// member's role must be accepted everywhere.
#[test]
fn a_put_that_resolves_a_conflict_is_accepted() {
    let owner = session(0);
    let other = session(1);
    let (mut a, genesis) = Project::create(&owner, "t", Visibility::Shared).expect("create");
    a.set_member(&owner, other.author(), Role::Owner)
        .expect("second owner");
    a.set_member(&owner, session(2).author(), Role::Viewer)
        .expect("viewer");
    let setup = a.seal(&owner);
    let mut b = Project::empty(a.id());
    b.ingest(genesis.clone()).expect("genesis");
    b.ingest(setup.clone()).expect("setup");

    // Concurrently, both owners write the same values.
    a.set_title(&owner, "same").expect("title");
    a.set_visibility(&owner, Visibility::Public)
        .expect("visibility");
    a.set_member(&owner, session(2).author(), Role::Editor)
        .expect("role");
    let from_a = a.seal(&owner);
    b.set_title(&other, "same").expect("title");
    b.set_visibility(&other, Visibility::Public)
        .expect("visibility");
    b.set_member(&other, session(2).author(), Role::Editor)
        .expect("role");
    let from_b = b.seal(&other);
    a.ingest(from_b.clone()).expect("b's writes");
    b.ingest(from_a.clone()).expect("a's writes");

    // Each key now holds two equal values; writing the value again resolves the conflict.
    b.set_title(&other, "same").expect("title");
    b.set_visibility(&other, Visibility::Public)
        .expect("visibility");
    b.set_member(&other, session(2).author(), Role::Editor)
        .expect("role");
    let resolving = b.seal(&other);
    let deletes = resolving
        .changes
        .iter()
        .flat_map(|c| {
            automerge::Change::try_from(&c[..])
                .expect("parses")
                .decode()
                .operations
        })
        .filter(|op| op.action == automerge::legacy::OpType::Delete)
        .count();
    assert_eq!(deletes, 3, "automerge resolves each conflict with a delete");
    a.ingest(resolving.clone())
        .expect("conflict resolutions are honest edits");
    let mut c = Project::empty(a.id());
    for batch in [genesis, setup, from_a, from_b, resolving] {
        c.ingest(batch).expect("a fresh replica accepts them too");
    }
    assert_eq!(a.heads(), b.heads());
    assert_eq!(c.heads(), b.heads());
    assert_eq!(c.title(), "same");
    assert_eq!(c.visibility(), Visibility::Public);
    assert_eq!(c.role_of(&session(2).author()), Some(Role::Editor));
}
