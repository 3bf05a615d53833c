//! GraphQL at a node, driven by a real GraphQL client (Python's `gql`, over HTTP and WebSocket):
//! a federated search with a facet filter, the federation, a refused query, and a subscription
//! that hears a collection published while it listens.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use orrery_tests::{publish, python, two_archives};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graphql_client_searches_and_hears_a_catalog_change() {
    let (nodes, asker) = two_archives().await;
    let base = format!("http://{}", asker.web_addr().expect("web"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/graphql_client.py");
    let mut child = Command::new(python())
        .arg(&script)
        .arg(&base)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let errors = std::sync::Mutex::new(Some(errors));
    let next = |what: &str| match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(v) => v,
        Err(_) => {
            let text = errors
                .lock()
                .ok()
                .and_then(|mut e| e.take())
                .and_then(|h| h.join().ok())
                .unwrap_or_default();
            panic!("the client never reported {what}:\n{text}")
        }
    };

    let search = next("its search");
    assert_eq!(search["step"], "search", "{search}");
    let answer = &search["answer"]["search"];
    assert_eq!(answer["total"], 6, "{search}");
    assert!(
        answer["hits"].as_array().is_some_and(|h| h
            .iter()
            .all(|h| h["mission"] == "XMM-Newton" && h["nodeName"] == "node0")),
        "{search}"
    );
    let members = search["answer"]["federation"]["members"]
        .as_array()
        .expect("members");
    assert_eq!(members.len(), 2, "{search}");

    let refused = next("the refused query");
    assert_eq!(refused["refused"], true, "{refused}");

    let subscribed = next("its subscription");
    assert_eq!(subscribed["step"], "subscribed");
    // Published by another process while the client listens: the node notices within a poll.
    publish(&nodes[0], "xmm-m87", "XMM-Newton", "M87", 187.7, 12.39, 2);
    let change = next("a change");
    assert_eq!(change["change"]["changes"]["kind"], "catalog", "{change}");
    let status = child.wait().expect("python ends");
    assert!(status.success(), "the client failed");
}
