//! Removal and demotion take effect: a change made concurrently with its author's removal is
//! held unless a still-authorised member built on it, whatever order changes arrive in.

use orrery_crdt::{Batch, CellKind, NewCell, NotebookId, Project, Role, Session, Visibility};
use orrery_protocol::{ChangeHash, SecretKey};

fn session() -> Session {
    Session::new(SecretKey::generate().expect("random")).expect("random")
}

fn replica_of(p: &Project) -> Project {
    let mut r = Project::empty(p.id());
    r.ingest(p.history()).expect("history ingests");
    r
}

/// Alice founds the project with one cell; Bob and Carol are editors. Returns Alice's replica.
fn team(
    alice: &Session,
    bob: &Session,
    carol: &Session,
) -> (Project, NotebookId, orrery_crdt::CellId) {
    let (mut p, _) = Project::create(alice, "Vega photometry", Visibility::Shared).expect("create");
    let nb = p.add_notebook(alice, "analysis").expect("notebook");
    let cell = p
        .insert_cell(alice, &nb, 0, NewCell::new(CellKind::Code, "print(1)"))
        .expect("cell");
    p.set_member(alice, bob.author(), Role::Editor)
        .expect("bob");
    p.set_member(alice, carol.author(), Role::Editor)
        .expect("carol");
    p.seal(alice);
    (p, nb, cell)
}

fn hashes(batch: &Batch) -> Vec<ChangeHash> {
    batch
        .changes
        .iter()
        .map(|c| {
            ChangeHash(
                automerge::Change::try_from(&c[..])
                    .expect("parses")
                    .hash()
                    .0,
            )
        })
        .collect()
}

/// Every order of delivering `batches` to a fresh copy of `base`: all permutations.
fn every_order(n: usize) -> Vec<Vec<usize>> {
    fn go(prefix: &mut Vec<usize>, n: usize, out: &mut Vec<Vec<usize>>) {
        if prefix.len() == n {
            out.push(prefix.clone());
            return;
        }
        for i in 0..n {
            if !prefix.contains(&i) {
                prefix.push(i);
                go(prefix, n, out);
                prefix.pop();
            }
        }
    }
    let mut out = Vec::new();
    go(&mut Vec::new(), n, &mut out);
    out
}

/// Delivers `batches` to a copy of `base` in `order`, each batch retried until nothing waits.
fn deliver(base: &Project, batches: &[Batch], order: &[usize]) -> Project {
    let mut r = replica_of(base);
    for &i in order {
        r.ingest(batches[i].clone())
            .unwrap_or_else(|e| panic!("batch {i} refused: {e}"));
    }
    let report = r.ingest(Batch::default()).expect("empty batch");
    assert_eq!(report.pending, 0, "something still waits");
    r
}

#[test]
fn a_backdated_edit_after_a_demotion_never_takes_effect() {
    let (alice, bob, carol) = (session(), session(), session());
    let (mut a, nb, cell) = team(&alice, &bob, &carol);
    // Bob keeps a copy of the project from before his demotion.
    let mut stale = replica_of(&a);
    let base = replica_of(&a);
    a.set_member(&alice, bob.author(), Role::Viewer)
        .expect("demote bob");
    let demotion = a.seal(&alice);
    // Bob has seen his demotion, then signs an edit on the stale copy: its causal past is a
    // state where he was still an editor.
    stale
        .splice_source(&bob, &nb, &cell, 0, 0, "# backdated\n")
        .expect("stale copy allows it");
    stale.set_title(&bob, "taken over").expect("title");
    let backdated = stale.seal(&bob);
    let bad = hashes(&backdated);
    // Carol keeps editing, after the demotion.
    let mut c = replica_of(&a);
    c.set_title(&carol, "Vega photometry, 2026").expect("carol");
    let carols = c.seal(&carol);

    let batches = [demotion, backdated, carols];
    let mut heads = None;
    for order in every_order(batches.len()) {
        let r = deliver(&base, &batches, &order);
        assert_eq!(r.title(), "Vega photometry, 2026", "order {order:?}");
        assert_eq!(
            r.cell(&nb, &cell).expect("cell").source,
            "print(1)",
            "order {order:?}: the backdated edit took effect"
        );
        let held: Vec<ChangeHash> = r.held().into_iter().map(|(h, _)| h).collect();
        for h in &bad {
            assert!(held.contains(h), "order {order:?}: {h} not held");
            assert!(!r.has_change(h), "order {order:?}: {h} applied");
        }
        assert!(r.held().iter().all(|(_, who)| *who == bob.author()));
        assert_eq!(r.role_of(&bob.author()), Some(Role::Viewer));
        match &heads {
            None => heads = Some(r.heads()),
            Some(h) => assert_eq!(&r.heads(), h, "order {order:?}: heads differ"),
        }
    }

    // The replica that made the demotion reports the held changes on ingest.
    let report = a.ingest(batches[1].clone()).expect("ingest");
    assert!(report.applied.is_empty());
    assert_eq!(report.held.len(), bad.len());
}

#[test]
fn an_offline_edit_a_member_built_on_survives_everywhere() {
    let (alice, bob, carol) = (session(), session(), session());
    let (mut a, nb, cell) = team(&alice, &bob, &carol);
    let base = replica_of(&a);
    let mut b = replica_of(&a);
    let mut c = replica_of(&a);
    // Offline, Bob edits; he syncs with Carol, who builds on his edit, before anyone hears of
    // his removal, which Alice makes concurrently.
    b.splice_source(&bob, &nb, &cell, 0, 0, "# bob\n")
        .expect("bob edits");
    let bobs = b.seal(&bob);
    c.ingest(bobs.clone()).expect("carol gets bob's edit");
    c.splice_source(&carol, &nb, &cell, 0, 0, "# carol\n")
        .expect("carol builds on it");
    let carols = c.seal(&carol);
    a.remove_member(&alice, bob.author()).expect("remove bob");
    let removal = a.seal(&alice);

    let batches = [removal, bobs, carols];
    let mut heads = None;
    for order in every_order(batches.len()) {
        let r = deliver(&base, &batches, &order);
        assert_eq!(
            r.cell(&nb, &cell).expect("cell").source,
            "# carol\n# bob\nprint(1)",
            "order {order:?}"
        );
        assert!(r.held().is_empty(), "order {order:?}: something held");
        assert_eq!(r.role_of(&bob.author()), None);
        match &heads {
            None => heads = Some(r.heads()),
            Some(h) => assert_eq!(&r.heads(), h, "order {order:?}: heads differ"),
        }
    }
}

#[test]
fn an_offline_edit_nobody_built_on_is_held_until_an_editor_accepts_it() {
    let (alice, bob, carol) = (session(), session(), session());
    let (mut a, nb, cell) = team(&alice, &bob, &carol);
    let mut b = replica_of(&a);
    let mut c = replica_of(&a);
    b.splice_source(&bob, &nb, &cell, 0, 0, "# bob\n")
        .expect("bob edits offline");
    let bobs = b.seal(&bob);
    a.remove_member(&alice, bob.author()).expect("remove bob");
    let removal = a.seal(&alice);

    // Bob's edit arrives first at Carol's replica, the removal first at Alice's.
    c.ingest(bobs.clone()).expect("bob's edit");
    assert!(
        c.cell(&nb, &cell)
            .expect("cell")
            .source
            .starts_with("# bob")
    );
    let report = c.ingest(removal.clone()).expect("removal");
    assert_eq!(report.held, hashes(&bobs), "the applied edit is taken out");
    a.ingest(bobs.clone()).expect("bob's edit");
    for r in [&a, &c] {
        assert_eq!(r.cell(&nb, &cell).expect("cell").source, "print(1)");
        assert_eq!(r.held().len(), 1);
    }
    assert_eq!(a.heads(), c.heads());

    // A removed author cannot accept their own edit; Carol, an editor, can.
    assert!(c.accept_held(&bob, &hashes(&bobs)).is_err());
    assert_eq!(c.accept_held(&carol, &hashes(&bobs)).expect("accept"), 1);
    let acceptance = c.seal(&carol);
    assert!(c.held().is_empty());
    assert!(
        c.cell(&nb, &cell)
            .expect("cell")
            .source
            .starts_with("# bob")
    );
    // Alice's replica, which holds Bob's edit, applies it on the acceptance alone.
    a.ingest(acceptance.clone()).expect("acceptance");
    assert!(a.held().is_empty());
    assert_eq!(a.heads(), c.heads());
    // A replica that never saw Bob's edit gets it with the acceptance.
    let mut fresh = Project::empty(a.id());
    fresh.ingest(c.history()).expect("history");
    assert_eq!(fresh.heads(), c.heads());
    assert!(
        fresh
            .cell(&nb, &cell)
            .expect("cell")
            .source
            .starts_with("# bob")
    );
}

#[test]
fn two_owners_removing_each_other_concurrently_are_both_held() {
    let (alice, bob, carol) = (session(), session(), session());
    let (mut a, _, _) = team(&alice, &bob, &carol);
    a.set_member(&alice, bob.author(), Role::Owner)
        .expect("bob owner");
    a.set_member(&alice, carol.author(), Role::Owner)
        .expect("carol owner");
    a.seal(&alice);
    let base = replica_of(&a);
    let mut b = replica_of(&a);
    let mut c = replica_of(&a);
    b.remove_member(&bob, carol.author())
        .expect("bob removes carol");
    let bobs = b.seal(&bob);
    c.remove_member(&carol, bob.author())
        .expect("carol removes bob");
    let carols = c.seal(&carol);
    let batches = [bobs, carols];
    let mut heads = None;
    for order in every_order(2) {
        let r = deliver(&base, &batches, &order);
        assert_eq!(r.held().len(), 2, "order {order:?}");
        assert_eq!(r.role_of(&bob.author()), Some(Role::Owner));
        assert_eq!(r.role_of(&carol.author()), Some(Role::Owner));
        match &heads {
            None => heads = Some(r.heads()),
            Some(h) => assert_eq!(&r.heads(), h),
        }
    }
}

#[test]
fn held_changes_survive_save_and_restore() {
    let (alice, bob, carol) = (session(), session(), session());
    let (mut a, nb, cell) = team(&alice, &bob, &carol);
    let mut b = replica_of(&a);
    b.splice_source(&bob, &nb, &cell, 0, 0, "# bob\n")
        .expect("bob edits offline");
    let bobs = b.seal(&bob);
    a.remove_member(&alice, bob.author()).expect("remove bob");
    a.seal(&alice);
    a.ingest(bobs.clone()).expect("held");
    assert_eq!(a.held().len(), 1);

    let restored =
        Project::restore(a.id(), Some(&a.save()), Vec::new(), Vec::new()).expect("restore");
    assert_eq!(restored.heads(), a.heads());
    assert_eq!(restored.held(), a.held());
    assert_eq!(restored.cell(&nb, &cell).expect("cell").source, "print(1)");

    // Restored from loose changes as the node stores them (every change that passed its
    // causal-past check, held ones included), the same.
    let mut changes = a.history().changes;
    changes.extend(bobs.changes);
    let loose = Project::restore(a.id(), None, changes, Vec::new()).expect("restore");
    assert_eq!(loose.heads(), a.heads());
    assert_eq!(loose.held(), a.held());
}

#[test]
fn a_snapshot_holds_what_change_by_change_ingest_holds() {
    let (alice, bob, carol) = (session(), session(), session());
    let (mut a, nb, cell) = team(&alice, &bob, &carol);
    let mut stale = replica_of(&a);
    a.set_member(&alice, bob.author(), Role::Viewer)
        .expect("demote bob");
    a.seal(&alice);
    stale
        .splice_source(&bob, &nb, &cell, 0, 0, "# backdated\n")
        .expect("stale");
    let backdated = stale.seal(&bob);
    a.ingest(backdated.clone()).expect("held");
    assert_eq!(a.held().len(), 1);

    let mut change_by_change = Project::empty(a.id());
    change_by_change.ingest(a.history()).expect("history");
    change_by_change.ingest(backdated.clone()).expect("held");

    let mut from_snapshot = Project::empty(a.id());
    let report = from_snapshot
        .receive_snapshot(&a.snapshot(), a.seals())
        .expect("snapshot");
    assert_eq!(report.held, hashes(&backdated));
    assert_eq!(from_snapshot.heads(), change_by_change.heads());
    assert_eq!(from_snapshot.held(), change_by_change.held());
    assert_eq!(
        from_snapshot.cell(&nb, &cell).expect("cell").source,
        "print(1)"
    );

    // A snapshot of a replica that applied the backdated change and never saw the demotion,
    // followed by the demotion: the same again.
    let mut sender = replica_of(&stale);
    sender.ingest(backdated).expect("dup");
    let mut late = Project::empty(a.id());
    late.receive_snapshot(&sender.snapshot(), sender.seals())
        .expect("snapshot");
    assert!(
        late.cell(&nb, &cell)
            .expect("cell")
            .source
            .starts_with("# backdated")
    );
    late.ingest(a.history()).expect("demotion");
    assert_eq!(late.heads(), change_by_change.heads());
    assert_eq!(late.held(), change_by_change.held());
}

#[test]
fn a_removal_arriving_after_a_concurrent_edit_takes_it_out_and_one_after_it_does_not() {
    let (alice, bob, carol) = (session(), session(), session());
    let (mut a, nb, cell) = team(&alice, &bob, &carol);
    let mut b = replica_of(&a);
    b.splice_source(&bob, &nb, &cell, 0, 0, "# bob\n")
        .expect("bob edits");
    let bobs = b.seal(&bob);
    // Alice's replica applies Bob's edit (made before it heard of any removal), then Alice
    // removes Bob without having built on it.
    let mut stale = replica_of(&a);
    a.ingest(bobs.clone()).expect("applied");
    assert!(
        a.cell(&nb, &cell)
            .expect("cell")
            .source
            .starts_with("# bob")
    );
    stale.remove_member(&alice, bob.author()).expect("remove");
    let removal = stale.seal(&alice);
    // The removal, made at a state without Bob's edit, is concurrent with it.
    a.ingest(removal).expect("removal");
    assert_eq!(a.cell(&nb, &cell).expect("cell").source, "print(1)");
    // A removal made here, after the edit was applied, does not contest it: the edit is in its
    // causal past.
    let mut d = replica_of(&b);
    d.remove_member(&alice, bob.author()).expect("remove");
    assert!(d.held().is_empty());
    assert!(
        d.cell(&nb, &cell)
            .expect("cell")
            .source
            .starts_with("# bob")
    );
}

/// Runs the sync protocol until both sides are quiet.
fn sync(a: &mut Project, b: &mut Project) {
    use orrery_crdt::sync::PeerState;
    let (mut sa, mut sb) = (PeerState::new(), PeerState::new());
    for _ in 0..50 {
        let mut quiet = true;
        if let Some((m, seals)) = a.sync_message(&mut sa) {
            b.receive_sync_message(&mut sb, &m, seals)
                .expect("b accepts");
            quiet = false;
        }
        if let Some((m, seals)) = b.sync_message(&mut sb) {
            a.receive_sync_message(&mut sa, &m, seals)
                .expect("a accepts");
            quiet = false;
        }
        if quiet {
            return;
        }
    }
    panic!("sync did not settle");
}

#[test]
fn a_replica_serves_a_held_change_to_a_peer_that_needs_it() {
    let (alice, bob, carol) = (session(), session(), session());
    let (mut a, nb, cell) = team(&alice, &bob, &carol);
    let mut b = replica_of(&a);
    let mut c = replica_of(&a);
    b.splice_source(&bob, &nb, &cell, 0, 0, "# bob\n")
        .expect("bob edits offline");
    let bobs = b.seal(&bob);
    a.remove_member(&alice, bob.author()).expect("remove bob");
    a.seal(&alice);
    a.ingest(bobs.clone()).expect("held at alice's");
    assert_eq!(a.held().len(), 1);
    // Carol built on Bob's edit; a replica with the removal gets only her change, which waits
    // for Bob's. Alice's replica, which holds it, serves it when asked.
    c.ingest(bobs).expect("bob's edit");
    c.splice_source(&carol, &nb, &cell, 0, 0, "# carol\n")
        .expect("carol builds on it");
    let carols = c.seal(&carol);
    let mut p = replica_of(&a);
    assert_eq!(p.ingest(carols).expect("waits").pending, 1);
    sync(&mut p, &mut a);
    let report = p.ingest(orrery_crdt::Batch::default()).expect("empty");
    assert_eq!(report.pending, 0);
    for r in [&a, &p] {
        assert!(r.held().is_empty());
        assert_eq!(
            r.cell(&nb, &cell).expect("cell").source,
            "# carol\n# bob\nprint(1)"
        );
    }
    assert_eq!(a.heads(), p.heads());
}

#[test]
fn a_held_change_travels_in_live_sync_so_its_author_is_not_its_only_keeper() {
    let (alice, bob, carol) = (session(), session(), session());
    let (mut a, nb, cell) = team(&alice, &bob, &carol);
    let mut b = replica_of(&a);
    let mut c = replica_of(&a);
    b.splice_source(&bob, &nb, &cell, 0, 0, "# bob\n")
        .expect("bob edits offline");
    b.seal(&bob);
    a.remove_member(&alice, bob.author()).expect("remove bob");
    let removal = a.seal(&alice);
    // Bob's replica learns of the removal before it ever syncs: his edit is held there, out of
    // the document, so it is not among the changes a peer's heads say it lacks.
    assert_eq!(b.ingest(removal.clone()).expect("removal").held.len(), 1);
    c.ingest(removal).expect("removal");
    assert_eq!(b.heads(), c.heads());
    assert!(c.held().is_empty());
    sync(&mut b, &mut c);
    assert_eq!(
        c.held(),
        b.held(),
        "Carol's replica keeps Bob's held edit too"
    );
    assert_eq!(c.cell(&nb, &cell).expect("cell").source, "print(1)");
    assert_eq!(b.heads(), c.heads());
    // Carol accepts it from her own replica, without Bob's.
    assert_eq!(
        c.accept_held(
            &carol,
            &b.held().iter().map(|(h, _)| *h).collect::<Vec<_>>()
        )
        .expect("accept"),
        1
    );
    assert!(
        c.cell(&nb, &cell)
            .expect("cell")
            .source
            .starts_with("# bob")
    );
}
