//! Large outputs live outside the document: a cell with 20 MB of output and 1 MB of source is
//! imported, replicated and exported without any change nearing the ingest limit, and the
//! document stays small.

use std::collections::HashMap;

use orrery_crdt::nbformat::{NbformatError, parse};
use orrery_crdt::outputs::{INLINE_OUTPUT_BYTES, STORED_OUTPUT_TYPE};
use orrery_crdt::{BlobRef, CellKind, EditError, NewCell, Project, Role, Session, Visibility};
use orrery_protocol::SecretKey;
use orrery_protocol::limits::MAX_CHANGE_BYTES;
use serde_json::{Value, json};

fn session(i: u8) -> Session {
    let key = SecretKey::from_bytes(&[i; 32]).expect("32 bytes");
    Session::with_session_part(key, [i; 16])
}

/// A notebook whose second cell has `source_bytes` of source and one output of `output_bytes`
/// (an image, as a plotting library writes it), beside a small output.
fn big_notebook(source_bytes: usize, output_bytes: usize, seed: u8) -> String {
    let source: String = (0..source_bytes / 32)
        .map(|i| format!("x_{i:08} = {seed} * {i:010}\n"))
        .collect::<String>();
    let image: String = (0..output_bytes)
        .map(|i| char::from(b'A' + ((i * 7 + seed as usize) % 26) as u8))
        .collect();
    let nb = json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3"}},
        "cells": [
            {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": ["# A big cell\n"]},
            {"cell_type": "code", "id": "big", "metadata": {}, "execution_count": 1,
             "source": source,
             "outputs": [
                {"output_type": "stream", "name": "stdout", "text": ["done\n"]},
                {"output_type": "display_data", "metadata": {},
                 "data": {"image/png": image, "text/plain": ["<Figure>"]}}
             ]}
        ]
    });
    serde_json::to_string_pretty(&nb).expect("serialises")
}

fn held(blobs: &[orrery_crdt::Blob]) -> HashMap<BlobRef, Vec<u8>> {
    blobs.iter().map(|b| (b.id, b.bytes.clone())).collect()
}

#[test]
fn a_twenty_megabyte_output_stays_outside_the_document() {
    let (alice, bob) = (session(1), session(2));
    let (mut p, _) = Project::create(&alice, "Big", Visibility::Shared).expect("create");
    p.set_member(&alice, bob.author(), Role::Editor)
        .expect("bob");
    let file = big_notebook(1 << 20, 20 << 20, 1);
    let nb = p
        .import_ipynb(&alice, file.as_bytes(), "big")
        .expect("import");
    p.seal(&alice);
    let blobs = p.take_blobs();
    assert_eq!(blobs.len(), 1, "only the image leaves the document");
    assert!(blobs[0].bytes.len() > 20 << 20);
    assert!(p.take_blobs().is_empty(), "handed over once");
    assert_eq!(
        p.blob_refs().into_iter().collect::<Vec<_>>(),
        vec![blobs[0].id]
    );

    let history = p.history();
    let largest = history.changes.iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        largest < MAX_CHANGE_BYTES / 4,
        "the largest change is {largest} bytes"
    );
    let saved = p.save().len();
    assert!(saved < 4 << 20, "the saved document is {saved} bytes");

    // Another replica gets the document, then the blob, and exports the same file.
    let mut q = Project::empty(p.id());
    q.ingest(history).expect("replicates");
    assert_eq!(q.blob_refs(), p.blob_refs());
    match q.export_ipynb(&nb) {
        Err(EditError::Blob(e)) => assert!(e.to_string().contains("not held on this node"), "{e}"),
        other => panic!("exported without the blob: {other:?}"),
    }
    let here = p.export_ipynb_with(&nb, &held(&blobs)).expect("exports");
    let there = q.export_ipynb_with(&nb, &held(&blobs)).expect("exports");
    assert_eq!(here, there);
    let exported: Value = serde_json::from_str(&there).expect("json");
    let original: Value = serde_json::from_str(&file).expect("json");
    assert_eq!(
        exported["cells"][1]["outputs"],
        original["cells"][1]["outputs"]
    );
    assert_eq!(
        exported["cells"][1]["source"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).collect::<String>()),
        original["cells"][1]["source"].as_str().map(str::to_string)
    );

    // Damaged bytes are refused, not exported.
    let mut damaged = held(&blobs);
    damaged.values_mut().for_each(|b| b[100] ^= 1);
    assert!(matches!(
        q.export_ipynb_with(&nb, &damaged),
        Err(EditError::Blob(_))
    ));

    // The exported file brought back unchanged changes nothing; a new image is a new blob.
    let heads = p.heads();
    p.update_from_ipynb(&alice, &nb, here.as_bytes())
        .expect("update");
    assert_eq!(
        p.heads(),
        heads,
        "an unchanged 20 MB output is not rewritten"
    );
    assert!(
        p.take_blobs().iter().all(|b| b.id == blobs[0].id),
        "nothing new to store"
    );
    let newer = big_notebook(1 << 20, 20 << 20, 2);
    let mut newer: Value = serde_json::from_str(&newer).expect("json");
    newer["metadata"] = serde_json::from_str::<Value>(&here).expect("json")["metadata"].clone();
    p.update_from_ipynb(&alice, &nb, newer.to_string().as_bytes())
        .expect("update");
    let second = p.take_blobs();
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].id, blobs[0].id);
    assert_eq!(
        p.blob_refs().into_iter().collect::<Vec<_>>(),
        vec![second[0].id]
    );
}

#[test]
fn small_outputs_stay_inline_and_api_writes_are_externalised_too() {
    let alice = session(1);
    let (mut p, _) = Project::create(&alice, "Small", Visibility::Shared).expect("create");
    let nb = p
        .import_ipynb(&alice, big_notebook(4096, 1024, 1).as_bytes(), "small")
        .expect("import");
    assert!(p.take_blobs().is_empty());
    assert!(p.blob_refs().is_empty());
    p.export_ipynb(&nb)
        .expect("exports without any blob source");

    let mut cell = NewCell::new(CellKind::Code, "plot()");
    let big = json!({"output_type": "stream", "name": "stdout",
                     "text": "y".repeat(INLINE_OUTPUT_BYTES + 1)});
    cell.outputs = vec![big.clone()];
    let id = p.insert_cell(&alice, &nb, 0, cell).expect("insert");
    let blobs = p.take_blobs();
    assert_eq!(blobs.len(), 1);
    let stored = p.cell(&nb, &id).expect("cell");
    assert_eq!(
        BlobRef::from_stub(&stored.outputs[0]),
        Some(blobs[0].id),
        "the cell shows a stub"
    );
    p.set_outputs(&alice, &nb, &id, &[big.clone(), big], Some(2), None)
        .expect("outputs");
    assert_eq!(p.take_blobs().len(), 1, "the same output is one blob");
}

#[test]
fn a_file_may_not_name_the_reserved_output_type() {
    let forged = json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "id": "c", "metadata": {}, "execution_count": null,
                   "source": "", "outputs": [BlobRef::of(b"someone else's").stub()]}]
    });
    match parse(forged.to_string().as_bytes()) {
        Err(NbformatError::NotNotebook(why)) => assert!(why.contains(STORED_OUTPUT_TYPE), "{why}"),
        other => panic!("accepted a forged stub: {other:?}"),
    }
}
