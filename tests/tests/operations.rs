//! Operating a node: its Prometheus metrics as a scraper reads them, after real federation
//! traffic, a refused frame from a hostile member, and HTTP searches and TAP queries.

use std::collections::BTreeMap;
use std::time::Duration;

use orrery_crdt::Visibility;
use orrery_protocol::wire::{Refusal, Request, Response, SyncFrame};
use orrery_tests::{HostileMember, converged, federation, hostile_member, running};

const WAIT: Duration = Duration::from_secs(60);

/// One scraped sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// The value of the sample named `name` whose labels include `labels` (summed over the rest).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_node_did() {
    let nodes = federation(2).await;
    let all = running(&nodes);
    let alice = nodes[0].author;
    let p = nodes[0]
        .handle()
        .create_project(alice, "Metrics", Visibility::Public)
        .await
        .expect("project");
    converged(&all, p, WAIT, "the public project reaches node 1").await;

    // A hostile member sends bytes that are no sync message: refused, nothing stored.
    let HostileMember { fed, cancel, .. } = hostile_member(&nodes[0]).await;
    let frame = SyncFrame {
        project: p,
        message: vec![orrery_crdt::sync::NEGOTIATE, 0xde, 0xad, 0xbe, 0xef],
        seals: vec![],
    };
    let answer = fed
        .request(nodes[0].id, Request::Sync(frame))
        .await
        .expect("answered");
    assert!(
        matches!(answer, Response::Refused(Refusal::Rejected)),
        "garbage was not refused: {answer:?}"
    );

    let web = format!(
        "http://{}",
        nodes[0].handle().web_addr().expect("serves HTTP")
    );
    let metrics_addr =
        std::fs::read_to_string(nodes[0].home.metrics_addr()).expect("metrics.addr written");
    let search = serde_json::to_string(&orrery_catalog::Query {
        text: Some("crab".into()),
        ..Default::default()
    })
    .expect("json");
    let stdout = orrery_tests::python_client(
        "metrics_scrape.py",
        &[&web, &format!("http://{}", metrics_addr.trim()), &search],
    )
    .await;
    let samples: Vec<Sample> = serde_json::from_str(&stdout).expect("samples as JSON");
    let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);

    let me = nodes[0].id.to_string();
    assert_eq!(v("orrery_node_info", &[("node", &me)]), 1.0, "{samples:?}");
    assert_eq!(
        v("orrery_members", &[]),
        3.0,
        "two nodes and the hostile one"
    );
    assert!(v("orrery_members_connected", &[]) >= 1.0);
    assert!(v("orrery_adverts_held", &[]) >= 2.0);
    assert!(v("orrery_adverts_received_total", &[]) >= 1.0);
    for direction in ["sent", "received"] {
        let d = [("direction", direction)];
        assert!(
            v("orrery_sync_frames_total", &d) >= 1.0,
            "{direction}: {samples:?}"
        );
        assert!(v("orrery_sync_bytes_total", &d) > 0.0, "{direction}");
    }
    assert_eq!(
        v("orrery_refused_changes_total", &[]),
        1.0,
        "the garbage frame, by reason: {:?}",
        samples
            .iter()
            .filter(|s| s.0 == "orrery_refused_changes_total")
            .collect::<Vec<_>>()
    );
    let local_ok = [("scope", "local"), ("outcome", "ok")];
    assert_eq!(v("orrery_search_duration_seconds_count", &local_ok), 1.0);
    assert_eq!(
        v(
            "orrery_search_duration_seconds_count",
            &[("scope", "federated")]
        ),
        0.0
    );
    assert_eq!(
        v("orrery_tap_duration_seconds_count", &[("outcome", "ok")]),
        1.0
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_the_same_data_directory_is_refused() {
    let mut node = orrery_tests::TestNode::create("alone").await;
    match orrery_node::service::start(node.home.clone()).await {
        Err(orrery_node::service::NodeError::Running(dir)) => assert_eq!(dir, node.home.root()),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a second node started on the same data directory"),
    }
    // Once the first has stopped, the directory is free again.
    node.stop().await;
    node.start().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_serves_https_with_its_certificate() {
    let mut node = orrery_tests::TestNode::create("secure").await;
    node.stop().await;
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
    let tls = node.home.root().join("tls");
    std::fs::create_dir_all(&tls).expect("mkdir");
    std::fs::write(tls.join("cert.pem"), cert.cert.pem()).expect("cert written");
    std::fs::write(tls.join("key.pem"), cert.key_pair.serialize_pem()).expect("key written");
    let path = node.home.config();
    let mut config = orrery_node::config::Config::load(&path).expect("config");
    config.web.tls_listen = Some("127.0.0.1:0".parse().expect("addr"));
    config.web.tls_cert = Some("tls/cert.pem".into());
    config.web.tls_key = Some("tls/key.pem".into());
    std::fs::write(&path, config.to_commented_toml()).expect("config written");
    node.start().await;

    let addr = std::fs::read_to_string(node.home.https_addr()).expect("https.addr written");
    let cert = tls.join("cert.pem");
    orrery_tests::python_client(
        "https_client.py",
        &[
            &format!("https://{}", addr.trim()),
            cert.to_str().expect("utf-8"),
        ],
    )
    .await;

    // A key that does not belong to the certificate stops the node at start, saying so.
    node.stop().await;
    let other =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
    std::fs::write(tls.join("key.pem"), other.key_pair.serialize_pem()).expect("key written");
    match orrery_node::service::start(node.home.clone()).await {
        Err(e @ orrery_node::service::NodeError::Tls(_)) => {
            assert!(e.to_string().contains("tls"), "{e}");
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("the node started with a key that is not its certificate's"),
    }
}
