//! Who wrote each part of a cell: the source cut into runs by the author of each character's
//! insertion, across replicas and after deletions.

use orrery_crdt::{NewCell, Project, Role, Session, Visibility};
use orrery_protocol::SecretKey;

fn session(i: u8) -> Session {
    let key = SecretKey::from_bytes(&[i; 32]).expect("32 bytes");
    Session::with_session_part(key, [i; 16])
}

#[test]
fn a_cell_s_source_is_cut_into_runs_by_who_typed_them() {
    let (alice, bob) = (session(1), session(2));
    let (mut p, _) = Project::create(&alice, "Timing", Visibility::Shared).expect("create");
    p.set_member(&alice, bob.author(), Role::Editor)
        .expect("bob");
    let nb = p.add_notebook(&alice, "Residuals").expect("notebook");
    let cell = p
        .insert_cell(
            &alice,
            &nb,
            0,
            NewCell::new(orrery_crdt::CellKind::Code, "period = 0.0334"),
        )
        .expect("cell");
    p.seal(&alice);
    // Bob, on his replica, adds digits in the middle and a comment at the end.
    let mut theirs = Project::empty(p.id());
    theirs.ingest(p.history()).expect("history");
    theirs
        .splice_source(&bob, &nb, &cell, 15, 0, "  # seconds")
        .expect("comment");
    theirs
        .splice_source(&bob, &nb, &cell, 13, 0, "38")
        .expect("digits");
    let from_bob = theirs.seal(&bob);
    p.ingest(from_bob).expect("bob's changes");
    // Alice deletes a character of Bob's: what is gone is nobody's.
    p.splice_source(&alice, &nb, &cell, 13, 1, "")
        .expect("delete");
    p.seal(&alice);

    let spans = p.authorship(&nb, &cell).expect("authorship");
    let runs: Vec<(Option<orrery_protocol::AuthorId>, &str)> =
        spans.iter().map(|s| (s.author, s.text.as_str())).collect();
    assert_eq!(
        runs,
        vec![
            (Some(alice.author()), "period = 0.03"),
            (Some(bob.author()), "8"),
            (Some(alice.author()), "34"),
            (Some(bob.author()), "  # seconds"),
        ]
    );
    let source: String = spans.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(source, p.cell(&nb, &cell).expect("cell").source);
}
