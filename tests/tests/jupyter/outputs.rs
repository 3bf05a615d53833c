//! Large and many outputs: a cell with 20 MB of output and 1 MB of source, many small outputs,
//! and damaged or lost stored outputs fetched again.

use orrery_crdt::{NotebookId, Visibility};
use orrery_node::service::NodeEvent;
use orrery_protocol::ProjectId;
use orrery_tests::{TestNode, running, within};
use serde_json::{Value, json};

use crate::support::*;

/// A notebook whose one code cell has `source_bytes` of source and an image output of about
/// `output_bytes` (as a plotting library writes a large mosaic), beside a small text output.
fn mosaic_notebook(source_bytes: usize, output_bytes: usize) -> String {
    let source: String = (0..source_bytes / 40)
        .map(|i| format!("tiles[{i:07}] = load_tile({i:07}, band='r')\n"))
        .collect();
    let image: String = (0..output_bytes)
        .map(|i| char::from(b'A' + ((i * 13 + i / 4096) % 26) as u8))
        .collect();
    serde_json::to_string_pretty(&json!({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "cells": [
            {"cell_type": "markdown", "id": "about", "metadata": {},
             "source": ["# An all-sky mosaic\n"]},
            {"cell_type": "code", "id": "mosaic", "metadata": {}, "execution_count": 7,
             "source": source,
             "outputs": [
                {"output_type": "stream", "name": "stdout", "text": ["mosaic done\n"]},
                {"output_type": "display_data", "metadata": {},
                 "data": {"image/png": image, "text/plain": ["<Figure 8000x4000>"]}}
             ]}
        ]
    }))
    .expect("serialises")
}

/// Every running node's export of `nb`, its large outputs read from its own blob store, once
/// every node has fetched them; `None` while some node cannot export yet.
async fn exports_with_blobs(
    nodes: &[TestNode],
    p: ProjectId,
    nb: &NotebookId,
) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for node in nodes {
        let Some(handle) = &node.node else { continue };
        let blobs = orrery_node::blobs::BlobStore::new(node.home.blobs()).for_project(p);
        let nb = nb.clone();
        let json = handle
            .read(p, move |x| {
                x.and_then(|x| x.export_ipynb_with(&nb, &blobs).ok())
            })
            .await
            .ok()
            .flatten()?;
        out.push(json);
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_very_large_cell_syncs() {
    let (nodes, p) = setup(3, "All-sky mosaic", Visibility::Shared).await;
    let a = nodes[0].author;
    let file = mosaic_notebook(1 << 20, 20 << 20);
    let original: Value = serde_json::from_str(&file).expect("json");
    let nb = edit(nodes[0].handle(), p, a, move |proj, s| {
        proj.import_ipynb(s, file.as_bytes(), "mosaic")
            .map_err(nb_err)
    })
    .await
    .expect("A imports the notebook");
    converge(&nodes, p, "the large cell reaches every node").await;

    // Two others type into the 1 MB source once it has arrived.
    let mosaic = cell("mosaic");
    let typed = vec![
        Typist::new(&nodes[1], "B", p, &nb)
            .types(&mosaic, At::Start, "# B: check the seams\n")
            .await,
        Typist::new(&nodes[2], "C", p, &nb)
            .types(&mosaic, At::End, "# C: r band only\n")
            .await,
    ];
    converge(&nodes, p, "the typing reaches every node").await;
    let all = running(&nodes);
    let ok = within(&all, WAIT, || async {
        exports_with_blobs(&nodes, p, &nb).await.is_some()
    })
    .await;
    assert!(
        ok,
        "a node did not fetch the stored output\n{}",
        replica_report(&nodes, p).await
    );
    let exports = exports_with_blobs(&nodes, p, &nb)
        .await
        .expect("every node exports");
    assert!(
        exports.iter().all(|e| *e == exports[0]),
        "the exports differ"
    );
    let exported: Value = serde_json::from_str(&exports[0]).expect("json");
    assert_eq!(
        exported["cells"][1]["outputs"], original["cells"][1]["outputs"],
        "the 20 MB output arrived intact"
    );
    let source = joined(&exported["cells"][1]["source"]);
    assert!(source.len() > 1 << 20, "the 1 MB source arrived");
    for t in &typed {
        assert!(source.contains(&t.text), "{}'s edit is lost", t.who);
    }
    assert_eq!(
        exported["cells"].as_array().map(Vec::len),
        Some(2),
        "no cell doubled"
    );

    // The output travelled beside the document, never inside a change or a sync message.
    for (i, node) in all.iter().enumerate() {
        let (largest, saved) = node
            .read(p, |x| {
                x.map(|x| {
                    let h = x.history();
                    (
                        h.changes.iter().map(Vec::len).max().unwrap_or(0),
                        x.save().len(),
                    )
                })
            })
            .await
            .expect("read")
            .expect("held");
        assert!(
            largest < orrery_protocol::limits::MAX_CHANGE_BYTES / 4,
            "node {i}: a change of {largest} bytes"
        );
        assert!(saved < 4 << 20, "node {i}: the document is {saved} bytes");
    }

    damaged_and_lost_outputs_are_fetched_again(&nodes, p, &nb).await;
}

/// A cell of 300 small plots (9 MB in all) and one of 50,000 printed lines: no change nears
/// the limit every peer enforces, and both reach the other node whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_small_outputs_replicate() {
    let (nodes, p) = setup(2, "Light curves", Visibility::Shared).await;
    let a = nodes[0].author;
    let plots: Vec<Value> = (0..300)
        .map(|i| {
            json!({"output_type": "display_data", "metadata": {},
                   "data": {"image/png": format!("{i:05}{}", "Q".repeat(30 * 1024 - 90)),
                            "text/plain": [format!("<Figure {i}>")]}})
        })
        .collect();
    let lines: Vec<Value> = (0..50_000)
        .map(|i| json!({"output_type": "stream", "name": "stdout", "text": [format!("{i}\n")]}))
        .collect();
    let file = serde_json::to_string(&json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            {"cell_type": "code", "id": "plots", "metadata": {}, "execution_count": 1,
             "source": ["for s in stars: plot(s)\n"], "outputs": plots},
            {"cell_type": "code", "id": "log", "metadata": {}, "execution_count": 2,
             "source": ["for i in range(50000): print(i)\n"], "outputs": lines}
        ]
    }))
    .expect("json");
    let original: Value = serde_json::from_str(&file).expect("json");
    let nb = edit(nodes[0].handle(), p, a, move |proj, s| {
        proj.import_ipynb(s, file.as_bytes(), "curves")
            .map_err(nb_err)
    })
    .await
    .expect("A imports the notebook");
    converge(&nodes, p, "the notebook reaches B").await;
    let all = running(&nodes);
    let ok = within(&all, WAIT, || async {
        exports_with_blobs(&nodes, p, &nb).await.is_some()
    })
    .await;
    assert!(
        ok,
        "B did not fetch the stored outputs\n{}",
        replica_report(&nodes, p).await
    );
    let exports = exports_with_blobs(&nodes, p, &nb).await.expect("exports");
    let exported: Value = serde_json::from_str(&exports[1]).expect("json");
    assert_eq!(
        exported["cells"][0]["outputs"],
        original["cells"][0]["outputs"]
    );
    assert_eq!(
        exported["cells"][1]["outputs"],
        original["cells"][1]["outputs"]
    );
    for node in &all {
        let largest = node
            .read(p, |x| {
                x.map(|x| x.history().changes.iter().map(Vec::len).max().unwrap_or(0))
            })
            .await
            .expect("read")
            .expect("held");
        assert!(
            largest < orrery_protocol::limits::MAX_CHANGE_BYTES / 8,
            "a change of {largest} bytes"
        );
    }
}

/// B's copy of the stored output is damaged on disk and C's is lost. C fetches it again (B
/// checks each part before serving it and refuses a damaged one), B finds its damage (when
/// serving, or at the latest when exported), quarantines it and fetches a good copy, and nobody
/// is penalised for B's disk.
async fn damaged_and_lost_outputs_are_fetched_again(
    nodes: &[TestNode],
    p: ProjectId,
    nb: &NotebookId,
) {
    let all = running(nodes);
    let blob = all[0]
        .read(p, |x| x.and_then(|x| x.blob_refs().into_iter().next()))
        .await
        .expect("read")
        .expect("the notebook has a stored output");
    let store = |i: usize| orrery_node::blobs::BlobStore::new(nodes[i].home.blobs()).for_project(p);
    let file = |i: usize| nodes[i].home.blobs().join(p.to_string()).join(blob.hex());
    let mut events: Vec<_> = all.iter().map(|n| n.subscribe()).collect();
    let mut bytes = std::fs::read(file(1)).expect("B holds the output");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(file(1), &bytes).expect("damage B's copy");
    std::fs::remove_file(file(2)).expect("lose C's copy");

    let ok = within(&all, WAIT, || async { store(2).get(&blob).is_some() }).await;
    assert!(ok, "C did not fetch the output again");
    // Exporting at B reads the whole output: a damage not yet found is found now.
    let export = all[1]
        .read(p, {
            let nb = nb.clone();
            let blobs = store(1);
            move |x| x.map(|x| x.export_ipynb_with(&nb, &blobs).map(|_| ()))
        })
        .await
        .expect("read")
        .expect("held");
    if let Err(e) = export {
        let e = e.to_string();
        assert!(e.contains("damaged") || e.contains("not held"), "{e}");
    }
    let ok = within(&all, WAIT, || async { store(1).get(&blob).is_some() }).await;
    assert!(ok, "B did not fetch a good copy");
    let quarantined =
        std::fs::read_dir(nodes[1].home.blobs().join(p.to_string()).join("quarantine"))
            .map(|d| d.count())
            .unwrap_or(0);
    assert_eq!(quarantined, 1, "B's damaged copy is kept in quarantine");
    // B reports damage when it finds it while serving; an export finds it without the node.
    for (i, rx) in events.iter_mut().enumerate() {
        loop {
            let e = match rx.try_recv() {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            match e {
                NodeEvent::Banned { node, .. } => panic!("node {i} banned {}", node.short()),
                NodeEvent::Rejected { peer, .. } => {
                    panic!("node {i} refused data from {}", peer.short())
                }
                NodeEvent::BlobDamaged { .. } if i != 1 => panic!("node {i} reports damage"),
                _ => {}
            }
        }
    }
}
