//! Preservation across a federation of five real nodes on loopback. The publisher (ESA) asks for
//! three copies of its collection at distinct institutions; four members offer room, three of
//! them at the same institution (DLR), so the copies go to the publisher, CNES and one DLR node.
//! Every node computes the same holders; the two chosen besides the publisher fetch every file
//! over the data plane, verified against its BLAKE3, and list their copies in their adverts;
//! `orrery preservation status` at the publisher shows three complete copies at three
//! institutions, and the others hold nothing. A file damaged on a holder's disk is found by its
//! audit and fetched again; a holder stopped for good has its copy re-homed once it has been
//! away past the deadline.

use std::time::Duration;

use orrery_node::service::NodeHandle;
use orrery_tests::{
    TestNode, cli, eventually, federation_with, preservation_holders as holders_seen_by,
    preservation_status as status, publish_files,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i as u64 * 2_654_435_761) >> 9) as u8 ^ seed)
        .collect()
}

/// A federation of one node per institution named, the first publishing and the others
/// offering a GiB of room, looking every second.
async fn members_at(institutions: &[&'static str]) -> Vec<TestNode> {
    members_away(institutions, 1).await
}

/// The same, planning with a stopped member's advert for `away_secs` after it expires.
async fn members_away(institutions: &[&'static str], away_secs: u64) -> Vec<TestNode> {
    federation_with(institutions.len(), |i, c| {
        c.node.institution = institutions[i].into();
        c.preservation.spare_gib = u64::from(i > 0);
        c.preservation.check_secs = 1;
        c.preservation.audit_secs = 1;
        c.preservation.away_secs = away_secs;
    })
    .await
}

/// Where `node` keeps its copy of `publisher`'s `xmm-crab`.
fn copy_at(node: &TestNode, publisher: &TestNode) -> std::path::PathBuf {
    node.home
        .root()
        .join("preserved")
        .join(publisher.id.to_string())
        .join("xmm-crab")
}

/// The publisher asks for three copies of `xmm-crab` at distinct institutions.
fn ask_for_three_copies(publisher: &TestNode) {
    let said = cli(
        publisher,
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_reaches_three_holders_at_distinct_institutions() {
    let institutions = ["ESA", "DLR", "DLR", "DLR", "CNES"];
    let mut nodes = members_at(&institutions).await;
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
    ask_for_three_copies(&nodes[0]);

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
    assert_eq!(places, ["CNES", "DLR", "ESA"], "{s}");

    // Each holder has every file, byte for byte; no other node has any.
    for node in &nodes[1..] {
        let root = copy_at(node, publisher);
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

    // A holder's file is damaged on its disk: its audit finds it, and it is fetched again.
    let holder = nodes[1..]
        .iter()
        .find(|n| holders.contains(&n.id.to_string()))
        .expect("a holder besides the publisher");
    let damaged = copy_at(holder, publisher).join(&files[1].0);
    std::fs::write(&damaged, vec![0xAA; files[1].1.len()]).expect("damage the file");
    let original = files[1].1.clone();
    eventually(&handles, WAIT, "the damaged file is repaired", || {
        let repaired = std::fs::read(&damaged).ok().as_ref() == Some(&original);
        async move { repaired }
    })
    .await;
    eventually(&handles, WAIT, "three complete copies again", || {
        let s = status(publisher);
        async move { s[0]["complete"] == 3 }
    })
    .await;

    // A holder stops for good: once its advert has expired and it stays away past
    // `away_secs`, another node at its institution takes its copy over.
    let gone = nodes
        .iter()
        .position(|n| n.id == holder.id)
        .expect("the holder");
    let gone_id = nodes[gone].id.to_string();
    nodes[gone].stop().await;
    let running: Vec<NodeHandle> = nodes.iter().filter_map(|t| t.node.clone()).collect();
    let publisher = &nodes[0];
    eventually(&running, WAIT, "the copy re-homed", || {
        let s = status(publisher);
        let moved = s[0]["complete"] == 3
            && s[0]["holders"]
                .as_array()
                .is_some_and(|h| h.iter().all(|h| h["node"] != gone_id.as_str()));
        async move { moved }
    })
    .await;
    let s = status(publisher);
    let newcomer = nodes
        .iter()
        .find(|n| {
            n.id.to_string() != gone_id
                && !holders.contains(&n.id.to_string())
                && s[0]["holders"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|h| h["node"] == n.id.to_string().as_str()))
        })
        .expect("a new holder");
    let root = copy_at(newcomer, publisher);
    for (name, data) in &files {
        assert_eq!(
            std::fs::read(root.join(name)).ok().as_ref(),
            Some(data),
            "{name} at the new holder"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_institutions_leave_a_collection_at_risk_and_status_says_why() {
    let institutions = ["ESA", "DLR", "DLR"];
    let nodes = members_at(&institutions).await;
    let handles: Vec<NodeHandle> = nodes.iter().map(|t| t.handle().clone()).collect();
    publish_files(&nodes[0], "xmm-crab", &[("crab-0.fits", bytes(200_000, 7))]);
    ask_for_three_copies(&nodes[0]);
    let publisher = &nodes[0];
    eventually(&handles, WAIT, "the one copy DLR may hold", || {
        let s = status(publisher);
        async move { s[0]["complete"] == 2 }
    })
    .await;
    let s = status(publisher);
    let risk: Vec<&str> = s[0]["at_risk"]
        .as_array()
        .expect("at risk")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(risk.contains(&"2 of 3 copies complete"), "{s}");
    assert!(
        risk.iter()
            .any(|r| r.contains("at an institution that already holds a copy")),
        "{s}"
    );
    // The command says so in its exit status too.
    let argv = [
        "orrery",
        "--data-dir",
        publisher.home.root().to_str().expect("utf-8"),
        "preservation",
        "status",
    ];
    let mut out = Vec::new();
    let failed = orrery_node::cli::run(
        <orrery_node::cli::Cli as clap::Parser>::parse_from(argv),
        &mut out,
    );
    assert!(failed.is_err(), "{}", String::from_utf8_lossy(&out));
    assert!(
        String::from_utf8_lossy(&out).contains("AT RISK: 2 of 3 copies complete"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_no_longer_needed_is_released_once_the_others_are_complete() {
    let nodes = members_at(&["ESA", "DLR", "DLR"]).await;
    let handles: Vec<NodeHandle> = nodes.iter().map(|t| t.handle().clone()).collect();
    let data = bytes(150_000, 3);
    publish_files(&nodes[0], "xmm-crab", &[("crab-0.fits", data.clone())]);
    let publisher = &nodes[0];
    let copies = |n: &str| {
        cli(
            publisher,
            &["preservation", "set", "xmm-crab", "--copies", n],
        )
    };
    copies("3");
    eventually(&handles, WAIT, "three complete copies", || {
        let s = status(publisher);
        async move { s[0]["complete"] == 3 }
    })
    .await;
    for node in &nodes[1..] {
        let kept = std::fs::read(copy_at(node, publisher).join("crab-0.fits")).ok();
        assert_eq!(kept.as_ref(), Some(&data), "a copy at each DLR node");
    }
    // Two copies are enough now: one DLR node lets its copy go, the other keeps it.
    copies("2");
    eventually(&handles, WAIT, "one copy released", || {
        let kept = nodes[1..]
            .iter()
            .filter(|n| copy_at(n, publisher).join("crab-0.fits").exists())
            .count();
        let s = status(publisher);
        async move { kept == 1 && s[0]["complete"] == 2 && s[0]["copies"] == 2 }
    })
    .await;
    let s = status(publisher);
    assert_eq!(s[0]["at_risk"], serde_json::json!([]), "{s}");
}

/// The publisher narrows its collection's access policy to DLR: CNES, a holder until then,
/// removes its copy, is never chosen again, and the collection is at risk for want of
/// another node the policy names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_the_access_policy_does_not_name_holds_no_copy() {
    let nodes = members_at(&["ESA", "DLR", "CNES"]).await;
    let handles: Vec<NodeHandle> = nodes.iter().map(|t| t.handle().clone()).collect();
    let data = bytes(180_000, 5);
    publish_files(&nodes[0], "xmm-crab", &[("crab-0.fits", data.clone())]);
    let publisher = &nodes[0];
    ask_for_three_copies(publisher);
    eventually(&handles, WAIT, "three complete copies", || {
        let s = status(publisher);
        async move { s[0]["complete"] == 3 }
    })
    .await;
    let cnes = copy_at(&nodes[2], publisher).join("crab-0.fits");
    assert_eq!(std::fs::read(&cnes).ok().as_ref(), Some(&data));

    let only = nodes[1].id.to_string();
    let said = cli(
        publisher,
        &["dataset", "policy", "xmm-crab", "--only", &only],
    );
    assert!(said.contains(&only), "{said}");
    eventually(&handles, WAIT, "CNES's copy removed", || {
        let gone = !cnes.exists();
        let s = status(publisher);
        async move { gone && s[0]["complete"] == 2 }
    })
    .await;
    let s = status(publisher);
    let risk = s[0]["at_risk"].to_string();
    assert!(
        risk.contains("1 that its access policy does not let have its bytes"),
        "{s}"
    );
    let cnes_id = nodes[2].id.to_string();
    for node in &nodes {
        let holders = holders_seen_by(node);
        assert_eq!(holders.len(), 2, "{holders:?}");
        assert!(
            !holders.contains(&cnes_id),
            "CNES is no holder: {holders:?}"
        );
    }
    // DLR keeps its copy.
    let dlr = copy_at(&nodes[1], publisher).join("crab-0.fits");
    assert_eq!(std::fs::read(&dlr).ok().as_ref(), Some(&data));
}

/// With the publisher stopped, a holder's damaged file is fetched again from the other
/// holder's copy (served under the publisher's access policy from its last advert), with the
/// listing the holder kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_is_mended_from_another_holder_while_the_publisher_is_away() {
    let mut nodes = members_away(&["ESA", "DLR", "CNES"], 3600).await;
    let handles: Vec<NodeHandle> = nodes.iter().map(|t| t.handle().clone()).collect();
    let files: Vec<(String, Vec<u8>)> = (0..2)
        .map(|i| {
            (
                format!("crab-{i}.fits"),
                bytes(250_000 + i * 9_999, 20 + i as u8),
            )
        })
        .collect();
    let named: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    publish_files(&nodes[0], "xmm-crab", &named);
    ask_for_three_copies(&nodes[0]);
    eventually(&handles, WAIT, "three complete copies", || {
        let s = status(&nodes[0]);
        async move { s[0]["complete"] == 3 }
    })
    .await;

    nodes[0].stop().await;
    let running: Vec<NodeHandle> = nodes.iter().filter_map(|t| t.node.clone()).collect();
    let damaged = copy_at(&nodes[1], &nodes[0]).join(&files[0].0);
    std::fs::write(&damaged, vec![0x55; files[0].1.len()]).expect("damage the file");
    let original = files[0].1.clone();
    eventually(&running, WAIT, "the damaged file mended from CNES", || {
        let mended = std::fs::read(&damaged).ok().as_ref() == Some(&original);
        async move { mended }
    })
    .await;
    eventually(&running, WAIT, "DLR's copy complete again", || {
        let s = status(&nodes[2]);
        async move { s[0]["complete"] == 3 }
    })
    .await;
    for (name, data) in &files {
        let kept = std::fs::read(copy_at(&nodes[1], &nodes[0]).join(name)).ok();
        assert_eq!(kept.as_ref(), Some(data), "{name} at DLR");
    }
}

/// A project's owner asks for two copies at distinct institutions and pins CNES: CNES, which
/// hosts none of the project's members, receives the project and holds a complete copy; DLR,
/// neither hosting nor pinned, never does; every holder's status shows the same two holders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_s_owners_pin_a_copy_at_another_institution() {
    let nodes = members_at(&["ESA", "DLR", "CNES"]).await;
    let handles: Vec<NodeHandle> = nodes.iter().map(|t| t.handle().clone()).collect();
    let esa = &nodes[0];
    let project = esa
        .handle()
        .create_project(esa.author, "Crab timing", orrery_crdt::Visibility::Shared)
        .await
        .expect("project");
    let cnes = nodes[2].id.to_string();
    let said = cli(
        esa,
        &[
            "preservation",
            "set-project",
            &project.to_string(),
            "--copies",
            "2",
            "--distinct-institutions",
            "--pin",
            &cnes,
        ],
    );
    assert!(said.contains("2 copies at distinct institutions"), "{said}");
    eventually(&handles, WAIT, "CNES holds the project", || {
        let cnes = nodes[2].handle().clone();
        async move { orrery_tests::heads(&cnes, project).await.is_some() }
    })
    .await;
    eventually(&handles, WAIT, "two complete copies", || {
        let s = status(esa);
        async move { s[0]["complete"] == 2 }
    })
    .await;
    let s = status(esa);
    assert_eq!(s[0]["project"], project.to_string(), "{s}");
    assert_eq!(s[0]["at_risk"], serde_json::json!([]), "{s}");
    let holders = holders_seen_by(esa);
    assert!(
        holders.contains(&cnes) && holders.contains(&esa.id.to_string()),
        "{holders:?}"
    );
    assert_eq!(
        holders_seen_by(&nodes[2]),
        holders,
        "CNES computes the same holders"
    );
    assert!(
        orrery_tests::heads(nodes[1].handle(), project)
            .await
            .is_none(),
        "DLR hosts no member and is not pinned"
    );
}

/// A collection of more files than one search page holds is listed page by page at its
/// publisher and copied whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_of_more_than_a_page_of_files_is_copied_whole() {
    let nodes = members_at(&["ESA", "DLR"]).await;
    let handles: Vec<NodeHandle> = nodes.iter().map(|t| t.handle().clone()).collect();
    let names: Vec<String> = (0..1234)
        .map(|i| format!("d{}/part-{i:04}.fits", i % 7))
        .collect();
    let files: Vec<(&str, Vec<u8>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), bytes(64 + i % 300, i as u8)))
        .collect();
    for d in 0..7 {
        std::fs::create_dir_all(nodes[0].dir.path().join(format!("archive-xmm-crab/d{d}")))
            .expect("mkdir");
    }
    publish_files(&nodes[0], "xmm-crab", &files);
    let publisher = &nodes[0];
    let said = cli(
        publisher,
        &["preservation", "set", "xmm-crab", "--copies", "2"],
    );
    assert!(said.contains("2 copies"), "{said}");
    eventually(&handles, WAIT, "two complete copies", || {
        let s = status(publisher);
        async move { s[0]["complete"] == 2 }
    })
    .await;
    let root = copy_at(&nodes[1], publisher);
    for (name, data) in &files {
        assert_eq!(
            std::fs::read(root.join(name)).ok().as_ref(),
            Some(data),
            "{name} at DLR"
        );
    }
}
