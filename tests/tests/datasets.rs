//! Datasets across the federation: federated search over three real nodes on loopback (one of
//! them stopped), and each node's TAP service driven by the real Python clients (pyvo, astropy).

use std::process::Command;
use std::time::Duration;

use futures::FutureExt as _;

use orrery_catalog::{Cone, Facet, Page, Query};
use orrery_node::service::NodeHandle;
use orrery_tests::{TestNode, eventually, federation, publish, publish_crabs};

/// Waits until `from` holds the adverts of `n` other members listing every collection, so that
/// a search for everything finds `total` products.
async fn adverts_with_collections(nodes: &[TestNode], from: usize, n: usize, total: u64) {
    let handles: Vec<NodeHandle> = nodes.iter().filter_map(|t| t.node.clone()).collect();
    let asker = nodes[from].handle().clone();
    eventually(
        &handles,
        Duration::from_secs(30),
        "adverts with collections reach the asking node",
        move || {
            let asker = asker.clone();
            async move {
                // A federated search that asks every member only once their adverts can match.
                let q = Query::default();
                let everything = asker
                    .search(q, false, Duration::from_secs(2))
                    .await
                    .is_ok_and(|r| r.answered.len() == n + 1 && r.results.total == total);
                // Every collection's summary, not just the first, has arrived: the last one
                // published (M87 at node 1) is found through its sky cell.
                let m87 = Query {
                    cone: Some(Cone {
                        ra: 187.7,
                        dec: 12.39,
                        radius: 0.5,
                    }),
                    ..Query::default()
                };
                everything
                    && asker
                        .search(m87, false, Duration::from_secs(2))
                        .await
                        .is_ok_and(|r| r.results.total == 3)
            }
        },
    )
    .await;
}

/// A node's answers to local searches are reused while its catalog is unchanged, and a
/// collection published meanwhile by another process (as `orrery dataset add` does) is found
/// at the next poll, not when a kept answer expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_search_sees_a_collection_published_while_the_node_runs() {
    let nodes = federation(1).await;
    let node = nodes[0].handle().clone();
    publish(
        &nodes[0],
        "xmm-crab",
        "XMM-Newton",
        "Crab Nebula",
        83.63,
        22.01,
        3,
    );
    let crab = Query {
        text: Some("crab".into()),
        ..Query::default()
    };
    let total = |node: NodeHandle, q: Query| async move {
        node.search(q, true, Duration::from_secs(2))
            .await
            .map(|r| r.results.total)
            .unwrap_or(0)
    };
    eventually(
        std::slice::from_ref(&node),
        Duration::from_secs(10),
        "the first collection is found",
        || total(node.clone(), crab.clone()).map(|n| n == 3),
    )
    .await;
    // Asked again, the same answer (the kept one).
    assert_eq!(total(node.clone(), crab.clone()).await, 3);
    publish(
        &nodes[0],
        "caha-crab",
        "CAHA",
        "Crab Nebula",
        83.64,
        22.02,
        4,
    );
    let started = std::time::Instant::now();
    eventually(
        std::slice::from_ref(&node),
        Duration::from_secs(5),
        "the new collection is found",
        || total(node.clone(), crab.clone()).map(|n| n == 7),
    )
    .await;
    assert!(
        started.elapsed() < SOONER_THAN_FRESH,
        "found only after {:?}, when a kept answer would have expired",
        started.elapsed()
    );
}

/// Less than the time a kept answer stays fresh (10 s): a change must be seen sooner.
const SOONER_THAN_FRESH: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn federated_search_merges_nodes_and_names_the_one_that_is_down() {
    let mut nodes = federation(3).await;
    publish_crabs(&nodes);
    publish(&nodes[1], "caha-m87", "CAHA", "M87", 187.7, 12.39, 3);
    // Node 2 is a researcher's laptop: no data, it asks.
    adverts_with_collections(&nodes, 2, 2, 13).await;
    let laptop = nodes[2].handle().clone();

    let crab = Query {
        text: Some("crab".into()),
        facets: true,
        page: Page {
            offset: 0,
            limit: 5,
        },
        ..Query::default()
    };
    let r = laptop
        .search(crab.clone(), false, Duration::from_secs(5))
        .await
        .expect("search");
    assert_eq!(r.results.total, 10, "{r:?}");
    assert_eq!(r.results.hits.len(), 5);
    assert!(r.missing.is_empty(), "{:?}", r.missing);
    let nodes_facet = &r.results.facets[&Facet::Node];
    let per_node: Vec<(&str, u64)> = nodes_facet
        .iter()
        .map(|f| (f.value.as_str(), f.count))
        .collect();
    assert_eq!(per_node, [("node0", 6), ("node1", 4)]);
    // Every hit names the node that holds it; the page continues without overlap.
    assert!(
        r.results
            .hits
            .iter()
            .all(|h| h.node_name.is_some() && h.node.is_some())
    );
    let next = laptop
        .search(
            Query {
                page: Page {
                    offset: 5,
                    limit: 5,
                },
                ..crab.clone()
            },
            false,
            Duration::from_secs(5),
        )
        .await
        .expect("search");
    let mut all: Vec<(Option<String>, String)> = r
        .results
        .hits
        .iter()
        .chain(next.results.hits.iter())
        .map(|h| (h.node.clone(), h.id.clone()))
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 10);

    // Only members whose adverts can match are asked.
    let m87 = Query {
        cone: Some(Cone {
            ra: 187.7,
            dec: 12.39,
            radius: 0.5,
        }),
        ..Query::default()
    };
    let r = laptop
        .search(m87, false, Duration::from_secs(5))
        .await
        .expect("search");
    assert_eq!(r.results.total, 3);
    assert_eq!(r.answered, ["node1", "node2"], "{r:?}");
    assert_eq!(r.not_asked, 1);
    let mut xmm = Query::default();
    xmm.filters
        .insert(Facet::Mission, vec!["xmm-newton".into()]);
    let r = laptop
        .search(xmm, false, Duration::from_secs(5))
        .await
        .expect("search");
    assert_eq!(r.results.total, 6);
    assert_eq!(r.answered, ["node0", "node2"]);

    // Every hit carries where its file is served, on the node that holds it.
    assert!(r.results.hits.iter().all(|h| {
        h.url
            .as_deref()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:"))
    }));
    // Asking for a node no member is named is an error, not an empty answer.
    let mut nowhere = Query::default();
    nowhere.filters.insert(Facet::Node, vec!["Nowhere".into()]);
    let err = laptop
        .search(nowhere, false, Duration::from_secs(2))
        .await
        .expect_err("unknown node");
    assert!(err.to_string().contains("Nowhere"), "{err}");
    let mut only = Query::default();
    only.filters.insert(Facet::Node, vec!["node0".into()]);
    let r = laptop
        .search(only, false, Duration::from_secs(2))
        .await
        .expect("search");
    assert_eq!(
        (r.results.total, r.answered.clone()),
        (6, vec!["node0".to_string()])
    );

    // One node stops: the answer comes within the deadline and names it.
    nodes[1].stop().await;
    let started = std::time::Instant::now();
    let r = laptop
        .search(crab.clone(), false, Duration::from_secs(2))
        .await
        .expect("search");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.results.total, 6, "{r:?}");
    assert_eq!(r.missing.len(), 1, "{r:?}");
    assert_eq!(r.missing[0].0, "node1");
    assert!(r.answered.contains(&"node0".to_string()));

    // A hostile page size is refused before anyone is asked.
    let absurd = Query {
        page: Page {
            offset: 0,
            limit: 1_000_000,
        },
        ..Query::default()
    };
    assert!(
        laptop
            .search(absurd, false, Duration::from_secs(2))
            .await
            .is_err()
    );
    for n in &mut nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pyvo_queries_a_node_tap_service() {
    let mut node = TestNode::create("esac").await;
    publish(
        &node,
        "xmm-crab",
        "XMM-Newton",
        "Crab Nebula",
        83.63,
        22.01,
        6,
    );
    publish(&node, "xmm-m87", "XMM-Newton", "M87", 187.7, 12.39, 3);
    let addr = node.handle().web_addr().expect("serves HTTP");
    let stdout =
        orrery_tests::python_client("tap_client.py", &[&format!("http://{addr}/tap")]).await;
    assert!(stdout.contains("all TAP checks passed"), "{stdout}");
    node.stop().await;
}

/// The totals line of a taplint report: (errors, warnings).
fn taplint_totals(report: &str) -> Option<(u64, u64)> {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with("Totals:"))?;
    let count = |name: &str| -> Option<u64> {
        let rest = &line[line.find(name)? + name.len()..];
        rest.trim_start_matches([':', ' '])
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((count("Errors")?, count("Warnings")?))
}

/// STILTS taplint, all stages, against a node with published products: no errors (TAP_SCHEMA,
/// aggregates, DISTINCT and `obs_title`'s declared type are all checked by it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn taplint_finds_no_errors_in_a_node_tap_service() {
    let mut node = TestNode::create("esac").await;
    publish(
        &node,
        "xmm-crab",
        "XMM-Newton",
        "Crab Nebula",
        83.63,
        22.01,
        6,
    );
    publish(&node, "xmm-m87", "XMM-Newton", "M87", 187.7, 12.39, 3);
    let addr = node.handle().web_addr().expect("serves HTTP");
    let url = format!("http://{addr}/tap");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("stilts")
            .arg("taplint")
            .arg(format!("tapurl={url}"))
            .arg("report=EW")
            .output()
            .expect("stilts runs (scripts/stilts-env installs it)")
    })
    .await
    .expect("joined");
    let report = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{report}\n{stderr}");
    let (errors, warnings) = taplint_totals(&report).expect("taplint printed its totals");
    println!("taplint: {errors} errors, {warnings} warnings");
    assert_eq!(errors, 0, "taplint found errors:\n{report}");
    node.stop().await;
}
