//! What an operator and a researcher see of a run at the data from the command line: credits
//! put the code under its authors and the outputs under the node that computed them, and
//! `orrery project provenance` prints the run's record.

use orrery_crdt::{CellKind, NewCell, Project, Session, Visibility};
use orrery_node::home::read_key;
use orrery_node::store::Store;
use orrery_protocol::NodeId;
use orrery_protocol::run::{DatasetRead, Provenance, RunStatus};
use orrery_tests::{TestNode, cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_and_provenance_show_who_computed_a_cells_outputs() {
    let mut node = TestNode::create("esac").await;
    node.stop().await;
    let author =
        Session::new(read_key(&node.home.author_key(&node.author)).expect("key")).expect("session");
    let node_key = read_key(&node.home.node_key()).expect("node key");
    let (mut p, mut batch) =
        Project::create(&author, "Crab light curve", Visibility::Shared).expect("create");
    let nb = p.add_notebook(&author, "analysis").expect("notebook");
    let cell = p
        .insert_cell(&author, &nb, 0, NewCell::new(CellKind::Code, "len(lc)"))
        .expect("cell");
    let rest = p.seal(&author);
    batch.changes.extend(rest.changes);
    batch.seals.extend(rest.seals);
    let mut store = Store::open(&node.home.database()).expect("store");
    store.create_project(&p, &batch).expect("stored");

    let request = p
        .request_run(&author, &nb, &cell, NodeId(node_key.public()))
        .expect("request");
    let provenance = Provenance {
        source_blake3: *blake3::hash(b"len(lc)").as_bytes(),
        environment: "jupyter".into(),
        environment_lock: "b3:4f1c".into(),
        datasets: vec![DatasetRead {
            node: NodeId(node_key.public()),
            product: "xmm-epic/crab-0001.fits".into(),
            blake3: [5; 32],
        }],
        started_at_ms: 1_780_000_000_000,
        ended_at_ms: 1_780_000_000_420,
        status: RunStatus::Ok,
    };
    let outputs = vec![serde_json::json!({
        "output_type": "execute_result", "execution_count": 1,
        "data": {"text/plain": "41"}, "metadata": {}
    })];
    let (_, run) = p
        .record_run(&node_key, &request, &outputs, Some(1), provenance)
        .expect("recorded");
    store.append(&p, &run).expect("stored");
    drop(store);

    let id = p.id().to_string();
    let credits = cli(&node, &["project", "credits", &id]);
    assert!(
        credits.contains("outputs computed by") && credits.contains("esac researcher"),
        "{credits}"
    );
    let shown = cli(
        &node,
        &[
            "project",
            "provenance",
            &id,
            "analysis",
            &cell.as_str()[..6],
        ],
    );
    for expected in [
        "computed by",
        "asked by      esac researcher",
        "environment   jupyter (lock b3:4f1c)",
        "for 420 ms",
        "ended         ok",
        "dataset read  xmm-epic/crab-0001.fits",
        "the cell's outputs are this run's",
    ] {
        assert!(
            shown.contains(expected),
            "missing {expected:?} in:\n{shown}"
        );
    }
}
