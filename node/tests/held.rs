//! Changes held because their author was removed concurrently survive the node's store: a
//! restart (load) and a compaction keep them held, and an acceptance stored later releases them.

use orrery_crdt::{CellKind, NewCell, Project, Role, Session, Visibility};
use orrery_node::store::Store;
use orrery_protocol::SecretKey;

fn session() -> Session {
    Session::new(SecretKey::generate().expect("random")).expect("random")
}

#[test]
fn held_changes_survive_load_and_compaction() {
    let (alice, bob, carol) = (session(), session(), session());
    let (mut a, mut batch) = Project::create(&alice, "Vega", Visibility::Shared).expect("create");
    let nb = a.add_notebook(&alice, "analysis").expect("notebook");
    let cell = a
        .insert_cell(&alice, &nb, 0, NewCell::new(CellKind::Code, "print(1)"))
        .expect("cell");
    a.set_member(&alice, bob.author(), Role::Editor)
        .expect("bob");
    a.set_member(&alice, carol.author(), Role::Editor)
        .expect("carol");
    let rest = a.seal(&alice);
    batch.changes.extend(rest.changes);
    batch.seals.extend(rest.seals);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("node.db")).expect("store");
    store.create_project(&a, &batch).expect("stored");

    let mut b = Project::empty(a.id());
    b.ingest(a.history()).expect("history");
    b.splice_source(&bob, &nb, &cell, 0, 0, "# bob\n")
        .expect("bob edits offline");
    let bobs = b.seal(&bob);
    a.remove_member(&alice, bob.author()).expect("remove bob");
    let removal = a.seal(&alice);
    store.append(&a, &removal).expect("stored");
    let report = a.ingest(bobs.clone()).expect("held");
    assert_eq!(report.held.len(), 1);
    // What the node stores of an ingest: every change that passed its causal-past check.
    store.append(&a, &bobs).expect("stored");

    let loaded = store.load(a.id()).expect("load");
    assert_eq!(loaded.held(), a.held());
    assert_eq!(loaded.heads(), a.heads());
    assert_eq!(loaded.cell(&nb, &cell).expect("cell").source, "print(1)");

    store.compact(&a).expect("compact");
    let mut loaded = store.load(a.id()).expect("load");
    assert_eq!(loaded.held(), a.held());
    assert_eq!(loaded.heads(), a.heads());

    // Carol accepts; her change is stored; a restart shows Bob's edit.
    let hashes: Vec<_> = loaded.held().into_iter().map(|(h, _)| h).collect();
    loaded.accept_held(&carol, &hashes).expect("accept");
    let acceptance = loaded.seal(&carol);
    store.append(&loaded, &acceptance).expect("stored");
    let reloaded = store.load(a.id()).expect("load");
    assert!(reloaded.held().is_empty());
    assert!(
        reloaded
            .cell(&nb, &cell)
            .expect("cell")
            .source
            .starts_with("# bob")
    );
}
