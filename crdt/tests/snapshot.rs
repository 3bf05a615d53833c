//! A replica with nothing receives the whole project as one compressed document, verified as a
//! whole: it is refused for exactly what `Project::ingest` refuses of the same changes, and
//! nothing of a refused snapshot is kept.

use std::io::Write;

use automerge::transaction::{Transactable, Transaction};
use automerge::{Automerge, ReadDoc};
use orrery_crdt::ingest::IngestError;
use orrery_crdt::sync::{PeerState, SNAPSHOT};
use orrery_crdt::{Batch, CellKind, NewCell, Project, Role, Session, Visibility};
use orrery_protocol::{ChangeSeal, SecretKey, Signed, Unverified};

#[path = "support/forge.rs"]
mod forge;
use forge::seal_over;

fn session() -> Session {
    Session::new(SecretKey::generate().expect("random")).expect("random")
}

/// A snapshot of an arbitrary document, in the form `Project::snapshot` sends.
fn snapshot_of(doc: &Automerge) -> Vec<u8> {
    let bytes = doc.save_with_options(automerge::SaveOptions {
        deflate: false,
        retain_orphans: false,
    });
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&bytes).expect("write");
    z.finish().expect("finish")
}

/// An edit made bypassing every local check.
type RogueEdit = Box<dyn FnOnce(&mut Transaction<'_>)>;

/// Alice's project with Bob as a viewer and Carol as an editor, a notebook and some typing.
fn project() -> (Project, Session, Session, Session) {
    let (alice, bob, carol) = (session(), session(), session());
    let (mut p, _) = Project::create(&alice, "Cepheids", Visibility::Shared).expect("create");
    p.set_member(&alice, bob.author(), Role::Viewer)
        .expect("bob");
    p.set_member(&alice, carol.author(), Role::Editor)
        .expect("carol");
    let nb = p.add_notebook(&alice, "periods").expect("nb");
    let cell = p
        .insert_cell(&alice, &nb, 0, NewCell::new(CellKind::Code, "x = 1\n"))
        .expect("cell");
    p.seal(&alice);
    for i in 0..50 {
        p.splice_source(&carol, &nb, &cell, 0, 0, &format!("# {i}\n"))
            .expect("carol types");
    }
    p.seal(&carol);
    (p, alice, bob, carol)
}

/// What `ingest` and `receive_snapshot` each say of `doc` with `seals`, on empty replicas.
fn judged(
    p: &Project,
    doc: &Automerge,
    seals: Vec<Signed<ChangeSeal, Unverified>>,
) -> (Result<(), IngestError>, Result<(), IngestError>) {
    let mut by_batch = Project::empty(p.id());
    let batch = Batch {
        changes: doc
            .get_changes(&[])
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect(),
        seals: seals.clone(),
    };
    let a = by_batch.ingest(batch).map(|_| ());
    let mut by_snapshot = Project::empty(p.id());
    let b = by_snapshot
        .receive_snapshot(&snapshot_of(doc), seals)
        .map(|_| ());
    if b.is_err() {
        assert!(
            by_snapshot.heads().is_empty(),
            "a refused snapshot left something"
        );
    } else {
        assert_eq!(by_snapshot.heads(), by_batch.heads());
    }
    (a, b)
}

#[test]
fn an_empty_replica_gets_the_compressed_document() {
    let (mut p, ..) = project();
    let mut r = Project::empty(p.id());
    let (mut sp, mut sr) = (PeerState::new(), PeerState::new());
    let mut snapshot_bytes = None;
    for _ in 0..10 {
        let mut quiet = true;
        if let Some((m, seals)) = p.sync_message(&mut sp) {
            if m[0] == SNAPSHOT {
                snapshot_bytes = Some(m.len());
            }
            r.receive_sync_message(&mut sr, &m, seals)
                .expect("r accepts");
            quiet = false;
        }
        if let Some((m, seals)) = r.sync_message(&mut sr) {
            p.receive_sync_message(&mut sp, &m, seals)
                .expect("p accepts");
            quiet = false;
        }
        if quiet {
            break;
        }
    }
    assert_eq!(r.heads(), p.heads());
    let sent = snapshot_bytes.expect("the history travelled as a snapshot");
    let saved = p.save().len();
    assert!(
        (sent as f64) < 1.5 * saved as f64,
        "the snapshot message is {sent} bytes; save() is {saved}"
    );
    // The replica keeps the seals: it can hand the history on, verifiably.
    let mut next = Project::empty(p.id());
    next.ingest(r.history())
        .expect("the replica's history verifies");
    assert_eq!(next.heads(), p.heads());
    assert_eq!(r.log().len(), p.log().len());
}

#[test]
fn a_snapshot_is_refused_for_what_a_batch_is_refused_for() {
    let (p, alice, bob, carol) = project();
    let members = p
        .doc()
        .get(automerge::ROOT, "members")
        .expect("get")
        .expect("members")
        .1;
    let stranger = session();
    let cases: Vec<(&str, Session, RogueEdit)> = vec![
        (
            "a viewer edits",
            bob.clone(),
            Box::new(|tx: &mut Transaction<'_>| {
                tx.put(automerge::ROOT, "title", "viewer edit")
                    .expect("put");
            }),
        ),
        ("an editor promotes herself", carol.clone(), {
            let (members, carol) = (members.clone(), carol.author());
            Box::new(move |tx: &mut Transaction<'_>| {
                tx.put(&members, carol.to_string(), "owner").expect("put");
            })
        }),
        (
            "a stranger edits",
            stranger.clone(),
            Box::new(|tx: &mut Transaction<'_>| {
                tx.put(automerge::ROOT, "title", "stranger").expect("put");
            }),
        ),
        (
            "an owner replaces a schema container",
            alice.clone(),
            Box::new(|tx: &mut Transaction<'_>| {
                tx.put_object(automerge::ROOT, "members", automerge::ObjType::Map)
                    .expect("put");
            }),
        ),
    ];
    for (what, who, f) in cases {
        let (doc, change) = forge::rogue(&p, who.actor().clone(), f);
        let mut seals = p.seals();
        seals.push(seal_over(&p, who.key(), &change));
        let (by_batch, by_snapshot) = judged(&p, &doc, seals);
        let (Err(a), Err(b)) = (&by_batch, &by_snapshot) else {
            panic!("{what}: batch {by_batch:?}, snapshot {by_snapshot:?}");
        };
        assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "{what}: batch says {a}, snapshot says {b}"
        );
    }

    // A change no seal covers.
    let (doc, _) = forge::rogue(&p, alice.actor().clone(), |tx| {
        tx.put(automerge::ROOT, "title", "unsealed").expect("put");
    });
    let (a, b) = judged(&p, &doc, p.seals());
    assert!(
        matches!(a, Err(IngestError::Unsigned { .. }) | Ok(())),
        "{a:?}"
    );
    assert!(matches!(b, Err(IngestError::Unsigned { .. })), "{b:?}");

    // The honest document passes both ways.
    let doc = Automerge::load(&p.save()).expect("loads");
    let (a, b) = judged(&p, &doc, p.seals());
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
}

#[test]
fn removal_is_judged_at_each_changes_own_past() {
    let (mut a, alice, _, carol) = project();
    let nb = a.notebook_ids()[0].0.clone();
    let cell = a.cell_ids(&nb).expect("cells")[0].clone();
    let mut c = Project::empty(a.id());
    c.ingest(a.history()).expect("replica");
    // Concurrently: Alice removes Carol; Carol types.
    a.remove_member(&alice, carol.author()).expect("remove");
    a.seal(&alice);
    c.splice_source(&carol, &nb, &cell, 0, 0, "# before I knew\n")
        .expect("carol types");
    let concurrent = c.seal(&carol);
    a.ingest(concurrent).expect("concurrent edit kept");
    let doc = Automerge::load(&a.save()).expect("loads");
    let (x, y) = judged(&a, &doc, a.seals());
    assert!(x.is_ok() && y.is_ok(), "{x:?} {y:?}");
    // A change of Carol's made after she saw her removal is refused both ways.
    let (doc, change) = forge::rogue(&a, carol.actor().clone(), |tx| {
        tx.put(automerge::ROOT, "title", "too late").expect("put");
    });
    let mut seals = a.seals();
    seals.push(seal_over(&a, carol.key(), &change));
    let (x, y) = judged(&a, &doc, seals);
    assert!(
        matches!(x, Err(IngestError::NotPermitted { role: "none", .. })),
        "{x:?}"
    );
    assert!(
        matches!(y, Err(IngestError::NotPermitted { role: "none", .. })),
        "{y:?}"
    );
}

#[test]
fn bad_snapshots_change_nothing() {
    let (p, ..) = project();
    let (other, ..) = project();
    let doc = Automerge::load(&p.save()).expect("loads");
    let mut r = Project::empty(p.id());
    // Another project's document, with its seals or with these.
    let theirs = Automerge::load(&other.save()).expect("loads");
    assert!(
        r.receive_snapshot(&snapshot_of(&theirs), other.seals())
            .is_err()
    );
    assert!(
        r.receive_snapshot(&snapshot_of(&theirs), p.seals())
            .is_err()
    );
    // Not deflated, compressed columns, garbage, cut short.
    let plain = doc.save_nocompress();
    assert!(r.receive_snapshot(&plain, p.seals()).is_err());
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&doc.save()).expect("write");
    let compressed_columns = z.finish().expect("finish");
    assert!(r.receive_snapshot(&compressed_columns, p.seals()).is_err());
    assert!(r.receive_snapshot(b"garbage", p.seals()).is_err());
    let good = snapshot_of(&doc);
    assert!(
        r.receive_snapshot(&good[..good.len() / 2], p.seals())
            .is_err()
    );
    // No seals at all.
    assert!(r.receive_snapshot(&good, Vec::new()).is_err());
    assert!(r.heads().is_empty(), "nothing was kept");
    r.receive_snapshot(&good, p.seals())
        .expect("the real one passes");
    assert_eq!(r.heads(), p.heads());
    // Only for a replica with nothing.
    assert!(r.receive_snapshot(&good, p.seals()).is_err());
}
