//! Hostile bytes: mutated changes, seals and notebook files never panic and never change a
//! document. A property-based fuzzer over every decoder that reads outside input.

use orrery_crdt::{Batch, CellKind, NewCell, Project, Session, Visibility};
use orrery_protocol::{ChangeSeal, SecretKey, Signed};
use proptest::prelude::*;

fn session() -> Session {
    Session::with_session_part(
        SecretKey::from_bytes(&[7u8; 32]).expect("32 bytes"),
        [1u8; 16],
    )
}

/// A project, its history at some point, and a batch of honest edits made after that point.
fn fixture() -> (Project, Batch, Batch) {
    let alice = session();
    let (mut p, _) = Project::create(&alice, "Hostile", Visibility::Public).expect("create");
    let nb = p.add_notebook(&alice, "nb").expect("nb");
    let cell = p
        .insert_cell(&alice, &nb, 0, NewCell::new(CellKind::Code, "x = 1"))
        .expect("cell");
    p.seal(&alice);
    let base = p.history();
    p.splice_source(&alice, &nb, &cell, 5, 0, "\ny = 2")
        .expect("edit");
    p.set_title(&alice, "Hostile, edited").expect("title");
    let batch = p.seal(&alice);
    (p, base, batch)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { change: usize, at: usize, bit: u8 },
    Truncate { change: usize, len: usize },
    Insert { change: usize, at: usize, byte: u8 },
    DropSeal,
    SwapSealPayload { at: usize, byte: u8 },
    Duplicate { change: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 0u8..8).prop_map(|(change, at, bit)| Mutation::Flip {
            change,
            at,
            bit
        }),
        (any::<usize>(), any::<usize>())
            .prop_map(|(change, len)| Mutation::Truncate { change, len }),
        (any::<usize>(), any::<usize>(), any::<u8>())
            .prop_map(|(change, at, byte)| Mutation::Insert { change, at, byte }),
        Just(Mutation::DropSeal),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SwapSealPayload { at, byte }),
        any::<usize>().prop_map(|change| Mutation::Duplicate { change }),
    ]
}

fn apply(batch: &mut Batch, m: &Mutation) {
    let n = batch.changes.len();
    match *m {
        Mutation::Flip { change, at, bit } => {
            let c = &mut batch.changes[change % n];
            if !c.is_empty() {
                let i = at % c.len();
                c[i] ^= 1 << bit;
            }
        }
        Mutation::Truncate { change, len } => {
            let c = &mut batch.changes[change % n];
            let l = len % c.len().max(1);
            c.truncate(l);
        }
        Mutation::Insert { change, at, byte } => {
            let c = &mut batch.changes[change % n];
            let i = at % (c.len() + 1);
            c.insert(i, byte);
        }
        Mutation::DropSeal => batch.seals.clear(),
        Mutation::SwapSealPayload { at, byte } => {
            if let Some(seal) = batch.seals.first().cloned()
                && !seal.payload().is_empty()
            {
                let mut payload = seal.payload().to_vec();
                let i = at % payload.len();
                payload[i] = byte;
                batch.seals[0] =
                    Signed::<ChangeSeal>::from_parts(*seal.signer(), payload, *seal.signature());
            }
        }
        Mutation::Duplicate { change } => {
            let c = batch.changes[change % n].clone();
            batch.changes.push(c);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_batches_never_panic_and_never_corrupt(mutations in proptest::collection::vec(mutation(), 1..4)) {
        let (p, base, honest) = fixture();
        let mut target = Project::empty(p.id());
        // The replica has everything up to the honest batch.
        target.ingest(base).expect("base history");
        let before = target.heads();
        let title = target.title();

        let mut batch = honest.clone();
        for m in &mutations {
            apply(&mut batch, m);
        }
        let changed = batch.changes != honest.changes
            || batch.seals.iter().map(|s| s.payload().to_vec()).collect::<Vec<_>>()
                != honest.seals.iter().map(|s| s.payload().to_vec()).collect::<Vec<_>>();
        match target.ingest(batch) {
            Ok(report) => {
                // Only harmless mutations (duplicates) may be accepted, and then the result is
                // exactly the honest one.
                prop_assert!(report.applied.is_empty() || target.heads() == p.heads());
                if report.applied.is_empty() {
                    prop_assert_eq!(target.heads(), before);
                }
            }
            Err(_) => {
                let only_duplicates = mutations.iter().all(|m| matches!(m, Mutation::Duplicate { .. }));
                prop_assert!(changed || only_duplicates, "an honest batch was refused");
                prop_assert_eq!(target.heads(), before);
                prop_assert_eq!(target.title(), title);
            }
        }
    }

    #[test]
    fn random_bytes_are_refused_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512), header in any::<bool>()) {
        let (p, _, _) = fixture();
        let mut target = Project::empty(p.id());
        target.ingest(p.history()).expect("history");
        let before = target.heads();
        let mut change = if header { vec![0x85, 0x6f, 0x4a, 0x83] } else { Vec::new() };
        change.extend(bytes);
        let result = target.ingest(Batch { changes: vec![change], seals: vec![] });
        prop_assert!(result.is_err());
        prop_assert_eq!(target.heads(), before);
    }

    #[test]
    fn random_sync_messages_are_refused_cleanly(
        mode in prop_oneof![Just(b'L'), Just(b'N'), Just(b'S'), any::<u8>()],
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let (p, _, _) = fixture();
        let mut target = Project::empty(p.id());
        target.ingest(p.history()).expect("history");
        let before = target.heads();
        let mut message = vec![mode];
        message.extend(bytes);
        let mut state = orrery_crdt::sync::PeerState::new();
        let _ = target.receive_sync_message(&mut state, &message, vec![]);
        prop_assert_eq!(target.heads(), before);
        // An empty replica takes a snapshot message: random ones leave it empty.
        let mut empty = Project::empty(p.id());
        let _ = empty.receive_sync_message(&mut orrery_crdt::sync::PeerState::new(), &message, p.seals());
        prop_assert!(empty.heads().is_empty());
    }

    #[test]
    fn mutated_snapshots_never_panic_and_are_all_or_nothing(
        flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let (p, _, _) = fixture();
        let mut snapshot = p.snapshot();
        for (at, bit) in flips {
            let i = at % snapshot.len();
            snapshot[i] ^= 1 << bit;
        }
        if let Some(c) = cut {
            snapshot.truncate(c % (snapshot.len() + 1));
        }
        let mut r = Project::empty(p.id());
        match r.receive_snapshot(&snapshot, p.seals()) {
            // A flip inside a part that does not change the document (deflate's slack) may pass:
            // then the replica is exactly the project.
            Ok(_) => prop_assert_eq!(r.heads(), p.heads()),
            Err(_) => prop_assert!(r.heads().is_empty()),
        }
    }

    #[test]
    fn documents_altered_with_a_valid_checksum_never_panic_and_are_all_or_nothing(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        use sha2::Digest;
        use std::io::Write;
        let (p, _, _) = fixture();
        let mut doc = p.doc().save_nocompress();
        // The body starts after magic, checksum, type and the length (LEB128).
        let mut body = 9;
        while doc[body] & 0x80 != 0 {
            body += 1;
        }
        body += 1;
        for (at, byte) in edits {
            let i = body + at % (doc.len() - body);
            doc[i] = byte;
        }
        let mut hasher = sha2::Sha256::new();
        hasher.update([0u8]);
        hasher.update(&doc[9..body]);
        hasher.update(&doc[body..]);
        let hash = hasher.finalize();
        doc[4..8].copy_from_slice(&hash[..4]);
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&doc).expect("write");
        let snapshot = z.finish().expect("finish");
        let mut r = Project::empty(p.id());
        match r.receive_snapshot(&snapshot, p.seals()) {
            Ok(_) => prop_assert_eq!(r.heads(), p.heads()),
            Err(_) => prop_assert!(r.heads().is_empty()),
        }
    }

    #[test]
    fn notebook_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = orrery_crdt::nbformat::parse(&bytes);
    }

    #[test]
    fn notebook_parser_survives_json_of_the_wrong_shape(cells in proptest::collection::vec(
        prop_oneof![
            Just(serde_json::json!(null)),
            Just(serde_json::json!({"cell_type": "code"})),
            Just(serde_json::json!({"cell_type": "code", "source": 7, "outputs": {}})),
            Just(serde_json::json!({"cell_type": "markdown", "source": ["a", 3]})),
            Just(serde_json::json!({"cell_type": "code", "source": "x", "outputs": [{}]})),
            Just(serde_json::json!({"cell_type": "raw", "id": "", "metadata": []})),
        ], 0..6)) {
        let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells});
        let _ = orrery_crdt::nbformat::parse(nb.to_string().as_bytes());
    }
}
