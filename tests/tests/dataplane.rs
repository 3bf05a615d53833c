//! Dataset products over the data plane between real nodes on loopback: `orrery dataset fetch`
//! brings a product found in a federated search, verified against its catalog's BLAKE3 and
//! recorded; a second run fetches nothing; an interrupted fetch resumes from what it verified;
//! and a collection restricted to other nodes gives a node not named nothing.

use std::time::Duration;

use orrery_catalog::Query;
use orrery_federation::Event;
use orrery_node::service::{NodeEvent, NodeHandle};
use orrery_protocol::NodeId;
use orrery_protocol::advert::CollectionSummary;
use orrery_protocol::wire::{Request, Response, SyncFrame};
use orrery_tests::{TestNode, eventually, federation, publish_files};

const WAIT: Duration = Duration::from_secs(30);

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i as u64 * 2_654_435_761) >> 9) as u8 ^ seed)
        .collect()
}

/// Runs the command line on `node`'s data directory in a thread of its own (it runs its own
/// transfer), returning its output or its error.
async fn run_cli(node: &TestNode, args: &[&str]) -> Result<String, String> {
    let mut argv: Vec<String> = vec![
        "orrery".into(),
        "--data-dir".into(),
        node.home.root().display().to_string(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let r = orrery_node::cli::run(
            <orrery_node::cli::Cli as clap::Parser>::parse_from(argv),
            &mut out,
        );
        let _ = tx.send(
            r.map(|()| String::from_utf8_lossy(&out).into_owned())
                .map_err(|e| format!("{e:#}")),
        );
    });
    tokio::time::timeout(Duration::from_secs(120), rx)
        .await
        .expect("the command finished")
        .expect("the command ran")
}

/// Waits until `asker` finds `product` at `holder` in a federated search, and knows where the
/// holder's data plane listens.
async fn holder_known(nodes: &[TestNode], asker: usize, holder: NodeId, product: &str) {
    let handles: Vec<NodeHandle> = nodes.iter().filter_map(|t| t.node.clone()).collect();
    let node = nodes[asker].handle().clone();
    let (holder_id, product) = (holder.to_string(), product.to_owned());
    let db = nodes[asker].home.database();
    eventually(
        &handles,
        WAIT,
        "the product is found and its holder reachable",
        || {
            let (node, holder_id, product, db) =
                (node.clone(), holder_id.clone(), product.clone(), db.clone());
            async move {
                let q = Query {
                    collections: vec!["xmm-crab".into()],
                    ..Query::default()
                };
                let found = node
                    .search(q, false, Duration::from_secs(3))
                    .await
                    .is_ok_and(|r| {
                        r.results
                            .hits
                            .iter()
                            .any(|h| h.id == product && h.node.as_deref() == Some(&holder_id))
                    });
                let addrs = orrery_node::store::Store::open(&db)
                    .and_then(|s| s.data_addrs(holder))
                    .is_ok_and(|a| !a.is_empty());
                found && addrs
            }
        },
    )
    .await;
}

fn fetched_file(node: &TestNode, name: &str) -> std::path::PathBuf {
    node.home.root().join("fetched").join("xmm-crab").join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_found_in_a_federated_search_is_fetched_verified_resumed_and_recorded() {
    let nodes = federation(2).await;
    let big = bytes(6 << 20, 1);
    let small = bytes(70_000, 2);
    publish_files(
        &nodes[0],
        "xmm-crab",
        &[("crab-0.fits", big.clone()), ("crab-1.fits", small.clone())],
    );
    holder_known(&nodes, 1, nodes[0].id, "xmm-crab/crab-0.fits").await;

    let out = run_cli(&nodes[1], &["dataset", "fetch", "xmm-crab/crab-0.fits"])
        .await
        .expect("fetched");
    assert!(out.contains("BLAKE3 verified"), "{out}");
    let here = fetched_file(&nodes[1], "crab-0.fits");
    assert_eq!(std::fs::read(&here).expect("the file is here"), big);

    // Recorded in the node, for labs to mount.
    let listed = run_cli(&nodes[1], &["dataset", "fetched", "--json"])
        .await
        .expect("listed");
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed[0]["product"], "xmm-crab/crab-0.fits");
    assert_eq!(listed[0]["origin"], nodes[0].id.to_string());
    assert_eq!(listed[0]["blake3"], blake3::hash(&big).to_hex().as_str());

    // Again: it is here and verified, nothing crosses the wire.
    let again = run_cli(&nodes[1], &["dataset", "fetch", "xmm-crab/crab-0.fits"])
        .await
        .expect("again");
    assert!(again.contains("already at"), "{again}");

    // An interrupted fetch (half of the file verified, then a torn write) resumes: only whole
    // verified chunk groups are kept, and only the rest is asked for.
    std::fs::remove_file(&here).expect("rm");
    let partial = here.with_file_name(".crab-0.fits.partial");
    let mut torn = big[..3 << 20].to_vec();
    torn.extend_from_slice(&[0xAA; 1000]);
    std::fs::write(&partial, &torn).expect("partial");
    let resumed = run_cli(&nodes[1], &["dataset", "fetch", "xmm-crab/crab-0.fits"])
        .await
        .expect("resumed");
    assert!(resumed.contains("resumed after 3.0 MiB"), "{resumed}");
    assert_eq!(std::fs::read(&here).expect("the file is here"), big);
    assert!(!partial.exists());

    // Into a directory of one's choice.
    let elsewhere = nodes[1].dir.path().join("mine");
    let to = elsewhere.display().to_string();
    run_cli(
        &nodes[1],
        &["dataset", "fetch", "xmm-crab/crab-1.fits", "--to", &to],
    )
    .await
    .expect("fetched");
    assert_eq!(
        std::fs::read(elsewhere.join("crab-1.fits")).expect("here"),
        small
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_the_collection_policy_does_not_name_gets_none_of_its_bytes() {
    let nodes = federation(3).await;
    let data = bytes(300_000, 3);
    publish_files(&nodes[0], "xmm-crab", &[("crab-0.fits", data.clone())]);
    let only = nodes[2].id.to_string();
    let policy = run_cli(
        &nodes[0],
        &["dataset", "policy", "xmm-crab", "--only", &only],
    )
    .await
    .expect("policy");
    assert!(policy.contains(&only), "{policy}");
    holder_known(&nodes, 1, nodes[0].id, "xmm-crab/crab-0.fits").await;
    holder_known(&nodes, 2, nodes[0].id, "xmm-crab/crab-0.fits").await;

    let refused = run_cli(&nodes[1], &["dataset", "fetch", "xmm-crab/crab-0.fits"]).await;
    let e = refused.expect_err("a node the policy does not name is refused");
    assert!(e.contains("did not send"), "{e}");
    let partial = fetched_file(&nodes[1], ".crab-0.fits.partial");
    assert_eq!(
        std::fs::metadata(&partial).map_or(0, |m| m.len()),
        0,
        "not a byte of it"
    );
    assert!(!fetched_file(&nodes[1], "crab-0.fits").exists());

    // Nor is it served to anyone over HTTP.
    let url = format!(
        "http://{}/data/xmm-crab/crab-0.fits",
        nodes[0].handle().web_addr().expect("serves HTTP")
    );
    let status = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent.get(&url).call().map(|r| r.status().as_u16())
    })
    .await
    .expect("ran")
    .expect("answered");
    assert!(
        status >= 400,
        "a restricted file was served over HTTP: {status}"
    );

    run_cli(&nodes[2], &["dataset", "fetch", "xmm-crab/crab-0.fits"])
        .await
        .expect("the node it names gets it");
    assert_eq!(
        std::fs::read(fetched_file(&nodes[2], "crab-0.fits")).expect("here"),
        data
    );
}

/// A member whose data plane sends wrong bytes for a stored output: the node catches them at
/// the first bad chunk group, keeps only what was verified before it, and penalises the member
/// through the federation until it is banned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_serving_wrong_bytes_is_caught_and_penalised_until_banned() {
    let nodes = federation(1).await;
    let a = &nodes[0];
    let (mallory, mut events) = orrery_tests::hostile_member_advertising(a, Vec::new()).await;

    // A public project with a 2 MB plot: Mallory, a member, may hold it.
    let plot = "iVBORw0KGgo".repeat(200_000);
    let notebook = serde_json::json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "id": "plot", "metadata": {}, "execution_count": 1,
                   "source": "plot()", "outputs": [{"output_type": "display_data", "metadata": {},
                   "data": {"image/png": plot}}]}]
    })
    .to_string();
    let p = a
        .handle()
        .create_project(a.author, "Open plots", orrery_crdt::Visibility::Public)
        .await
        .expect("project");
    a.handle()
        .edit(p, a.author, move |proj, s| {
            proj.import_ipynb(s, notebook.as_bytes(), "plots")
                .map(|_| ())
                .map_err(|_| orrery_crdt::EditError::Malformed("not a notebook"))
        })
        .await
        .expect("import");
    let blob = a
        .handle()
        .read(p, |x| x.and_then(|x| x.blob_refs().into_iter().next()))
        .await
        .expect("read")
        .expect("the plot is a stored output");
    let store = orrery_node::blobs::BlobStore::new(a.home.blobs()).for_project(p);
    let genuine = store.get(&blob).expect("A holds it");

    // Mallory's data plane sends it with one byte changed at 1.5 MB.
    let flipped = 1_500_000;
    let mut wrong = genuine.clone();
    wrong[flipped] ^= 0x01;
    let (rogue, rogue_addrs) = orrery_node::dataplane::rogue::Rogue::new(&genuine, wrong)
        .serve(&mallory.key)
        .await;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Event::Request { request, reply, .. } = event else {
                continue;
            };
            let _ = reply.send(match request {
                Request::Sync(frame) => Response::Sync(SyncFrame {
                    project: frame.project,
                    message: Vec::new(),
                    seals: Vec::new(),
                }),
                Request::DataPlane => Response::DataPlane(rogue_addrs.clone()),
                _ => Response::Noted,
            });
        }
    });

    // A loses its copy: Mallory is the only other holder it may ask.
    let mut seen = a.handle().subscribe();
    std::fs::remove_file(a.home.blobs().join(p.to_string()).join(blob.hex())).expect("lose it");
    let (mut caught, mut banned) = (0, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !banned {
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Ok(NodeEvent::BadBytes { peer })) if peer == mallory.id => caught += 1,
            Ok(Ok(NodeEvent::Banned { node, reason })) if node == mallory.id => {
                assert!(
                    matches!(reason, orrery_federation::Offence::BadOutput { .. }),
                    "{reason:?}"
                );
                banned = true;
            }
            Ok(_) => {}
            Err(_) => panic!("Mallory was not banned in time ({caught} offences seen)"),
        }
    }
    assert!(caught >= 1, "each wrong answer is charged");
    // Caught at the 16 KiB group holding the bad byte: the groups before it were kept (a later
    // attempt resumes from them), nothing from it on.
    let kept = std::fs::read(store.partial_path(&blob)).unwrap_or_default();
    let group = flipped / 16_384 * 16_384;
    assert_eq!(kept.len(), group, "{} bytes kept", kept.len());
    assert_eq!(kept, genuine[..kept.len()]);
    assert!(!store.has(&blob), "wrong bytes never become the output");
    rogue.shutdown().await.expect("shutdown");
    mallory.cancel.cancel();
}

/// A holder that sends a dataset file with one byte changed: `orrery dataset fetch` catches it
/// at the bad group, keeps only what was verified, fails with a warning, and the running node
/// penalises the holder through the federation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_sending_a_wrong_file_is_caught_by_dataset_fetch_and_penalised() {
    let nodes = federation(1).await;
    let a = &nodes[0];
    let everything = CollectionSummary {
        id: "*".into(),
        title: "everything".into(),
        missions: None,
        instruments: None,
        product_types: None,
        bands: None,
        licences: None,
        publishers: None,
        tags: None,
        products: 1,
        bytes: 1 << 20,
        sky: Vec::new(),
        time: None,
        complete: true,
        readers: None,
    };
    let (mallory, mut events) = orrery_tests::hostile_member_advertising(a, vec![everything]).await;
    let genuine = bytes(1 << 20, 5);
    let flipped = 700_000;
    let mut wrong = genuine.clone();
    wrong[flipped] ^= 0x40;
    let (rogue, rogue_addrs) = orrery_node::dataplane::rogue::Rogue::new(&genuine, wrong)
        .serve(&mallory.key)
        .await;
    let hit = orrery_catalog::Hit {
        node: None,
        node_name: None,
        collection: "xmm-crab".into(),
        id: "xmm-crab/crab-0.fits".into(),
        title: "Crab".into(),
        mission: None,
        instrument: None,
        product_type: None,
        band: None,
        target: None,
        ra: None,
        dec: None,
        t_min: None,
        t_max: None,
        size: genuine.len() as u64,
        blake3: blake3::hash(&genuine).to_hex().to_string(),
        licence: None,
        url: None,
        rank: 0.0,
    };
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Event::Request { request, reply, .. } = event else {
                continue;
            };
            let _ = reply.send(match request {
                Request::Search(_) => Response::Search(orrery_catalog::SearchResults {
                    total: 1,
                    hits: vec![hit.clone()],
                    facets: Default::default(),
                }),
                Request::DataPlane => Response::DataPlane(rogue_addrs.clone()),
                Request::Sync(frame) => Response::Sync(SyncFrame {
                    project: frame.project,
                    message: Vec::new(),
                    seals: Vec::new(),
                }),
                _ => Response::Noted,
            });
        }
    });
    holder_known(&nodes, 0, mallory.id, "xmm-crab/crab-0.fits").await;

    let mut seen = a.handle().subscribe();
    let from = mallory.id.to_string();
    let failed = run_cli(
        a,
        &["dataset", "fetch", "xmm-crab/crab-0.fits", "--from", &from],
    )
    .await
    .expect_err("wrong bytes are never accepted");
    assert!(failed.contains("do not match"), "{failed}");
    assert!(!fetched_file(a, "crab-0.fits").exists());
    let kept = std::fs::read(fetched_file(a, ".crab-0.fits.partial")).unwrap_or_default();
    assert_eq!(
        kept.len(),
        flipped / 16_384 * 16_384,
        "caught at the bad group"
    );
    assert_eq!(kept, genuine[..kept.len()]);
    // The running node penalises Mallory for it.
    let penalised = tokio::time::timeout(WAIT, async {
        loop {
            match seen.recv().await {
                Ok(NodeEvent::BadBytes { peer }) if peer == mallory.id => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert!(penalised.is_ok(), "the node did not penalise Mallory");
    rogue.shutdown().await.expect("shutdown");
    mallory.cancel.cancel();
}
