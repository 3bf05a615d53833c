use orrery_protocol::SecretKey;

use super::*;
use crate::{CellKind, NewCell, Session, Visibility};

/// A project, a replica lagging one edit behind, and three later edits each sealed on its
/// own (they all wait on the replica for the first).
fn lagging() -> (Project, Project, Batch, Vec<Batch>) {
    let alice = Session::new(SecretKey::generate().expect("random")).expect("random");
    let (mut p, _) = Project::create(&alice, "Vega", Visibility::Shared).expect("create");
    let nb = p.add_notebook(&alice, "analysis").expect("notebook");
    let cell = p
        .insert_cell(&alice, &nb, 0, NewCell::new(CellKind::Code, ""))
        .expect("cell");
    p.seal(&alice);
    let mut r = Project::empty(p.id());
    r.ingest(p.history()).expect("history");
    p.splice_source(&alice, &nb, &cell, 0, 0, "a")
        .expect("edit");
    let first = p.seal(&alice);
    let later = (0..3)
        .map(|n| {
            p.splice_source(&alice, &nb, &cell, n + 1, 0, "b")
                .expect("edit");
            p.seal(&alice)
        })
        .collect();
    (p, r, first, later)
}

#[test]
fn one_origin_cannot_fill_the_parked_queue_for_everyone() {
    let (p, mut r, first, mut later) = lagging();
    r.pending.per_origin = 2;
    r.pending.total = 3;
    let (noisy, other) = (Origin([1; 32]), Origin([2; 32]));
    let third = later.pop().expect("three");
    for batch in later {
        r.ingest_from(batch, noisy).expect("within its share");
    }
    let err = r
        .ingest_from(third.clone(), noisy)
        .expect_err("a third parked change from one origin is refused");
    assert!(
        matches!(err, IngestError::TooManyPending { count: 3, limit: 2 }),
        "{err}"
    );
    assert_eq!(r.pending.changes.len(), 2, "what it parked before stays");
    // Another origin still has room for the same change.
    let report = r.ingest_from(third, other).expect("another origin parks");
    assert_eq!(report.pending, 3);
    // The missing edit arrives: everything applies.
    let report = r.ingest_from(first, other).expect("applies");
    assert_eq!(report.applied.len(), 4);
    assert_eq!(r.heads(), p.heads());
}

#[test]
fn past_the_total_another_origins_parked_changes_make_room() {
    let (_, mut r, _, later) = lagging();
    r.pending.per_origin = 2;
    r.pending.total = 2;
    let (a, b) = (Origin([1; 32]), Origin([2; 32]));
    let mut later = later.into_iter();
    for batch in later.by_ref().take(2) {
        r.ingest_from(batch, a).expect("parks");
    }
    let report = r
        .ingest_from(later.next().expect("three"), b)
        .expect("room is made for another origin");
    assert_eq!(report.pending, 2);
    let from: Vec<Origin> = r.pending.changes.iter().map(|(_, _, o)| *o).collect();
    assert_eq!(from.iter().filter(|o| **o == b).count(), 1, "{from:?}");
}
