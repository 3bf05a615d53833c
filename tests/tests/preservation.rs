//! Preservation across a federation of five real nodes on loopback. The publisher (ESA) asks for
//! three copies of its collection at distinct institutions; four members offer room, two of
//! them at the same institution. Every node computes the same holders; the two chosen besides
//! the publisher fetch every file over the data plane, verified against its BLAKE3, and list
//! their copies in their adverts; `orrery preservation status` at the publisher shows three
//! complete copies at three institutions, and the others hold nothing.

use std::time::Duration;

use orrery_node::service::NodeHandle;
use orrery_tests::{TestNode, cli, eventually, federation_with, publish_files};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i as u64 * 2_654_435_761) >> 9) as u8 ^ seed)
        .collect()
}

/// `orrery preservation status --json` at `node`, which exits non-zero while copies are
/// missing (its output is still the JSON).
fn status(node: &TestNode) -> Value {
    let mut argv = vec![
        "orrery".to_owned(),
        "--data-dir".to_owned(),
        node.home.root().display().to_string(),
    ];
    argv.extend(["preservation", "status", "--json"].map(String::from));
    let mut out = Vec::new();
    let _ = orrery_node::cli::run(
        <orrery_node::cli::Cli as clap::Parser>::parse_from(argv),
        &mut out,
    );
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_reaches_three_holders_at_distinct_institutions() {
    let institutions = ["ESA", "CNES", "DLR", "DLR", "INAF"];
    let nodes = federation_with(5, |i, c| {
        c.node.institution = institutions[i].into();
        c.preservation.spare_gib = u64::from(i > 0);
        c.preservation.check_secs = 1;
    })
    .await;
    let handles: Vec<NodeHandle> = nodes.iter().map(|t| t.handle().clone()).collect();
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| {
            (
                format!("crab-{i}.fits"),
                bytes(300_000 + i * 70_001, i as u8),
            )
        })
        .collect();
    let named: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    publish_files(&nodes[0], "xmm-crab", &named);
    let said = cli(
        &nodes[0],
        &[
            "preservation",
            "set",
            "xmm-crab",
            "--copies",
            "3",
            "--distinct-institutions",
        ],
    );
    assert!(said.contains("3 copies at distinct institutions"), "{said}");

    // The publisher sees three complete copies.
    let publisher = &nodes[0];
    eventually(&handles, WAIT, "three complete copies", || {
        let s = status(publisher);
        async move { s[0]["complete"] == 3 }
    })
    .await;
    let s = status(publisher);
    let shown = &s[0];
    assert_eq!(shown["collection"], "xmm-crab", "{s}");
    assert_eq!(shown["at_risk"], serde_json::json!([]), "{s}");
    let holders: Vec<String> = shown["holders"]
        .as_array()
        .expect("holders")
        .iter()
        .map(|h| h["node"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(holders.len(), 3, "{s}");
    assert!(holders.contains(&publisher.id.to_string()), "{s}");
    // At three institutions.
    let mut places: Vec<&str> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| holders.contains(&n.id.to_string()))
        .map(|(i, _)| institutions[i])
        .collect();
    places.sort_unstable();
    places.dedup();
    assert_eq!(places.len(), 3, "{s}");

    // Each holder has every file, byte for byte; no other node has any.
    for node in &nodes[1..] {
        let root = node
            .home
            .root()
            .join("preserved")
            .join(publisher.id.to_string())
            .join("xmm-crab");
        let holds = holders.contains(&node.id.to_string());
        for (name, data) in &files {
            let kept = std::fs::read(root.join(name)).ok();
            if holds {
                assert_eq!(kept.as_ref(), Some(data), "{name} at a holder");
            } else {
                assert!(kept.is_none(), "{name} at a node that is no holder");
            }
        }
        // Every node computes the same holders.
        let theirs = status(node);
        let their_holders: Vec<&str> = theirs[0]["holders"]
            .as_array()
            .expect("holders")
            .iter()
            .filter_map(|h| h["node"].as_str())
            .collect();
        assert_eq!(their_holders, holders, "{theirs}");
    }
}
