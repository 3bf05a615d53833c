//! Outputs of a run at the data: written by the computing node with its own key, accepted by
//! every replica only with an editor's request for that cell, that node and that state; every
//! forgery refused, by change-by-change ingest and by snapshot alike.

use automerge::ReadDoc;
use automerge::transaction::Transactable;
use orrery_crdt::ingest::IngestError;
use orrery_crdt::{
    Batch, CellId, CellKind, NewCell, NotebookId, Project, Role, Session, Visibility,
};
use orrery_protocol::run::{Provenance, RunRecord, RunRequest, RunStatus};
use orrery_protocol::{ChangeHash, NodeId, SecretKey, Signed, Unverified, Verified};
use serde_json::json;

#[path = "support/forge.rs"]
mod forge;

fn session() -> Session {
    Session::new(SecretKey::generate().expect("random")).expect("random")
}

struct World {
    alice: Session,
    viewer: Session,
    project: Project,
    nb: NotebookId,
    cell: CellId,
    other_cell: CellId,
    node: SecretKey,
}

fn world() -> World {
    let (alice, viewer) = (session(), session());
    let (mut p, _) =
        Project::create(&alice, "Crab light curve", Visibility::Shared).expect("create");
    let nb = p.add_notebook(&alice, "analysis").expect("notebook");
    let cell = p
        .insert_cell(&alice, &nb, 0, NewCell::new(CellKind::Code, "1 + 1"))
        .expect("cell");
    let other_cell = p
        .insert_cell(&alice, &nb, 1, NewCell::new(CellKind::Code, "2 + 2"))
        .expect("cell");
    p.set_member(&alice, viewer.author(), Role::Viewer)
        .expect("viewer");
    p.seal(&alice);
    World {
        alice,
        viewer,
        project: p,
        nb,
        cell,
        other_cell,
        node: SecretKey::generate().expect("random"),
    }
}

fn provenance() -> Provenance {
    Provenance {
        source_blake3: *blake3::hash(b"1 + 1").as_bytes(),
        environment: "jupyter".into(),
        environment_lock: "b3:0123".into(),
        datasets: Vec::new(),
        started_at_ms: 1_780_000_000_000,
        ended_at_ms: 1_780_000_000_250,
        status: RunStatus::Ok,
    }
}

fn outputs() -> Vec<serde_json::Value> {
    vec![
        json!({"output_type": "execute_result", "execution_count": 1, "data": {"text/plain": "2"}, "metadata": {}}),
    ]
}

fn replica(p: &Project) -> Project {
    let mut r = Project::empty(p.id());
    r.ingest(p.history()).expect("history");
    r
}

fn snapshot_replica(p: &Project) -> Result<Project, IngestError> {
    let mut r = Project::empty(p.id());
    r.receive_snapshot(&p.snapshot(), p.seals())?;
    Ok(r)
}

#[test]
fn a_requested_run_is_recorded_and_verified_by_every_replica() {
    let mut w = world();
    let mut other = replica(&w.project);
    let request = w
        .project
        .request_run(&w.alice, &w.nb, &w.cell, NodeId(w.node.public()))
        .expect("alice may ask");
    let (report, batch) = w
        .project
        .record_run(&w.node, &request, &outputs(), Some(1), provenance())
        .expect("recorded");
    assert_eq!(report.applied.len(), 1);
    // Another replica takes the node's change, as it would from the network.
    other.ingest(batch).expect("another replica accepts it");
    for r in [
        &w.project,
        &other,
        &snapshot_replica(&w.project).expect("snapshot"),
    ] {
        let run = r.run_record(&w.nb, &w.cell).expect("a verified run");
        assert_eq!(run.requester, w.alice.author());
        assert_eq!(run.node, NodeId(w.node.public()));
        assert_eq!(run.provenance, provenance());
        assert!(run.outputs_current);
        let cell = r.cell(&w.nb, &w.cell).expect("cell");
        assert_eq!(cell.outputs, outputs());
        assert_eq!(cell.execution_count, Some(1));
    }
    assert_eq!(other.heads(), w.project.heads());
    // The other cell has no run.
    assert!(w.project.run_record(&w.nb, &w.other_cell).is_none());
    // An editor who later replaces the outputs leaves the record, marked as no longer current.
    w.project
        .set_outputs(&w.alice, &w.nb, &w.cell, &[], None, None)
        .expect("clear");
    let run = w
        .project
        .run_record(&w.nb, &w.cell)
        .expect("still recorded");
    assert!(!run.outputs_current);
}

#[test]
fn a_run_whose_outputs_are_stored_beside_the_project_is_recorded_everywhere() {
    let mut w = world();
    let mut other = replica(&w.project);
    let request = w
        .project
        .request_run(&w.alice, &w.nb, &w.cell, NodeId(w.node.public()))
        .expect("alice may ask");
    // A 1 MB image: kept as a blob, the document holding its reference.
    let png = "A".repeat(1 << 20);
    let big = vec![serde_json::json!({
        "output_type": "display_data",
        "data": { "image/png": png },
        "metadata": {},
    })];
    let (report, batch) = w
        .project
        .record_run(&w.node, &request, &big, Some(2), provenance())
        .expect("recorded");
    assert_eq!(report.applied.len(), 1);
    let blobs = w.project.take_blobs();
    assert_eq!(blobs.len(), 1, "the image is stored beside the project");
    other.ingest(batch).expect("another replica accepts it");
    let run = other.run_record(&w.nb, &w.cell).expect("a verified run");
    assert!(run.outputs_current);
    let cell = other.cell(&w.nb, &w.cell).expect("cell");
    assert_eq!(cell.outputs.len(), 1);
    assert_ne!(
        cell.outputs, big,
        "the replica holds the reference, not the bytes"
    );
}

/// A request as an attacker would craft it: any signer, any node, any heads.
fn request(
    signer: &SecretKey,
    p: &Project,
    nb: &NotebookId,
    cell: &CellId,
    node: NodeId,
    heads: Vec<ChangeHash>,
) -> Signed<RunRequest, Verified> {
    Signed::sign(
        signer,
        RunRequest {
            project: p.id(),
            notebook: nb.as_str().into(),
            cell: cell.as_str().into(),
            heads,
            node,
            id: [7; 16],
            issued_at: 0,
        },
    )
}

/// What a replica says of a run change recorded, bypassing local checks, on a copy of `p`.
fn judged(p: &Project, batch: Batch) -> (Result<(), IngestError>, Result<(), IngestError>) {
    let mut by_change = replica(p);
    let one = by_change.ingest(batch.clone()).map(|_| ());
    // The same change reaching an empty replica inside a snapshot.
    let carrier = replica(p);
    let mut doc = automerge::Automerge::load(&carrier.save()).expect("load");
    let two = match automerge::Change::try_from(&batch.changes[0][..]) {
        Ok(c) => {
            doc.apply_changes([c]).expect("raw apply");
            let mut seals = carrier.seals();
            seals.extend(batch.seals.clone());
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut z, &doc.save_nocompress()).expect("deflate");
            let snapshot = z.finish().expect("deflate");
            let mut fresh = Project::empty(p.id());
            fresh.receive_snapshot(&snapshot, seals).map(|_| ())
        }
        Err(_) => Ok(()),
    };
    (one, two)
}

fn forged_run(
    w: &World,
    writer: &SecretKey,
    record_request: Signed<RunRequest, Unverified>,
    cell: &CellId,
    extra: impl FnOnce(&mut automerge::transaction::Transaction<'_>, &automerge::ObjId),
) -> Batch {
    let writer_session = Session::new(writer.clone()).expect("random");
    let record = RunRecord {
        request: record_request,
        provenance: provenance(),
    };
    let bytes = orrery_protocol::encoding::encode(&record);
    let doc = automerge::Automerge::load(&w.project.save()).expect("load");
    let cells = {
        let (_, nbs) = doc
            .get(automerge::ROOT, "notebooks")
            .expect("get")
            .expect("notebooks");
        let (_, nb) = doc.get(&nbs, w.nb.as_str()).expect("get").expect("nb");
        let (_, cells) = doc.get(&nb, "cells").expect("get").expect("cells");
        cells
    };
    let (_, obj) = doc.get(&cells, cell.as_str()).expect("get").expect("cell");
    let (_, change) = forge::rogue(&w.project, writer_session.actor().clone(), |tx| {
        let list = tx
            .put_object(&obj, "outputs", automerge::ObjType::List)
            .expect("list");
        tx.insert(
            &list,
            0,
            "{\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"forged\"}",
        )
        .expect("insert");
        tx.put(&obj, "run", bytes.clone()).expect("run");
        extra(tx, &obj);
    });
    let seal = forge::seal_over(&w.project, writer, &change);
    Batch {
        changes: vec![change],
        seals: vec![seal],
    }
}

fn heads(p: &Project) -> Vec<ChangeHash> {
    p.heads()
}

fn refused_everywhere(w: &World, batch: Batch, what: &str) {
    let (one, two) = judged(&w.project, batch);
    assert!(
        matches!(
            one,
            Err(IngestError::NotPermitted { .. } | IngestError::Forbidden { .. })
        ),
        "{what}: change-by-change ingest took it: {one:?}"
    );
    assert!(two.is_err(), "{what}: a snapshot carrying it was taken");
}

#[test]
fn outputs_nobody_asked_for_are_refused() {
    let w = world();
    let node_id = NodeId(w.node.public());
    // A node writes outputs with no request at all.
    let mut plain = replica(&w.project);
    let node_actor = Session::new(w.node.clone())
        .expect("random")
        .actor()
        .clone();
    let (_, change) = forge::rogue(&w.project, node_actor, |tx| {
        tx.put(automerge::ROOT, "title", "a node's title")
            .expect("put");
    });
    let seal = forge::seal_over(&w.project, &w.node, &change);
    assert!(matches!(
        plain.ingest(Batch {
            changes: vec![change],
            seals: vec![seal]
        }),
        Err(IngestError::NotPermitted { .. })
    ));

    // Requests for the first cell, as of `heads`, signed by `signer`.
    let ask = |signer: &SecretKey, heads: Vec<ChangeHash>| {
        request(signer, &w.project, &w.nb, &w.cell, node_id, heads).into_unverified()
    };
    // A run change writing only outputs and the run record, by `writer`.
    let run = |writer: &SecretKey, req: Signed<RunRequest, Unverified>, cell: &CellId| {
        forged_run(&w, writer, req, cell, |_, _| {})
    };
    let good = ask(w.alice.key(), heads(&w.project));
    let by_viewer = ask(w.viewer.key(), heads(&w.project));
    let mut old = heads(&w.project);
    old[0] = ChangeHash([9; 32]);
    let tampered = Signed::<RunRequest>::from_parts(
        *good.signer(),
        good.payload().to_vec(),
        *by_viewer.signature(),
    );
    let stranger = SecretKey::generate().expect("random");
    for (batch, what) in [
        // The request is the viewer's, who may not run anything.
        (
            run(&w.node, by_viewer.clone(), &w.cell),
            "a viewer's request",
        ),
        // The request names another node.
        (run(&stranger, good.clone(), &w.cell), "another node"),
        // The node writes to a cell the request does not name.
        (run(&w.node, good.clone(), &w.other_cell), "another cell"),
        // The node writes more than outputs: the cell's kind.
        (
            forged_run(&w, &w.node, good.clone(), &w.cell, |tx, obj| {
                tx.put(obj, "kind", "markdown").expect("put");
            }),
            "more than outputs",
        ),
        // A request for other heads (a replay of an older request on today's notebook).
        (
            run(&w.node, ask(w.alice.key(), old), &w.cell),
            "other heads",
        ),
        // A request whose signature was tampered with.
        (run(&w.node, tampered, &w.cell), "a tampered request"),
        // An editor forging a run record under their own key (claiming a node computed it).
        (
            run(w.alice.key(), good.clone(), &w.cell),
            "an editor writing a run record",
        ),
    ] {
        refused_everywhere(&w, batch, what);
    }
    // And the honest one passes the same path, so the refusals above are about what differs.
    let (one, two) = judged(&w.project, run(&w.node, good, &w.cell));
    one.expect("the honest run, change by change");
    two.expect("the honest run, in a snapshot");
}
