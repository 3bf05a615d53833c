//! Run and job orders between nodes, from a hostile member: a node runs nothing for a request
//! that is replayed, stale, meant for another node, relayed by a node that does not host its author,
//! made by someone who is no editor, or sent with a project that does not verify; it answers
//! questions about a run only to the node that sent it; and outputs written by a node the
//! request does not name are refused by every replica.

use std::time::Duration;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ReadDoc};
use orrery_crdt::{CellKind, NewCell, Project, Session, Visibility};
use orrery_node::home::read_key;
use orrery_protocol::job::{JobOrder, JobRequest};
use orrery_protocol::run::{RunOrder, RunReply, RunRequest};
use orrery_protocol::wire::{Refusal, Request, Response, SyncFrame};
use orrery_protocol::{ChangeHash, ChangeSeal, NodeId, SecretKey, Signed, Verified};
use orrery_tests::{converged, federation, heads, hostile_member_hosting, running};

const WAIT: Duration = Duration::from_secs(30);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A request by `author` that `node` run the first cell of the first notebook of `p`.
fn request(
    author: &SecretKey,
    p: &Project,
    node: NodeId,
    issued_at: i64,
) -> Signed<RunRequest, Verified> {
    let (nb, _) = p.notebook_ids().remove(0);
    let cell = p.cell_ids(&nb).expect("cells").remove(0);
    Signed::sign(
        author,
        RunRequest {
            project: p.id(),
            notebook: nb.to_string(),
            cell: cell.to_string(),
            heads: p.heads(),
            node,
            id: rand_id(),
            issued_at,
        },
    )
}

fn rand_id() -> [u8; 16] {
    *blake3::hash(SecretKey::generate().expect("random").public().as_bytes())
        .as_bytes()
        .first_chunk()
        .expect("16 bytes")
}

fn order(request: Signed<RunRequest, Verified>, p: &Project) -> Request {
    Request::Run(RunOrder {
        request: request.into_unverified(),
        snapshot: p.snapshot(),
        seals: p.seals(),
    })
}

/// A project of `author`'s with one notebook and one code cell.
fn project_of(author: &SecretKey) -> Project {
    let s = Session::new(author.clone()).expect("session");
    let (mut p, _) = Project::create(&s, "Eve's", Visibility::Shared).expect("create");
    let nb = p.add_notebook(&s, "n").expect("notebook");
    p.insert_cell(&s, &nb, 0, NewCell::new(CellKind::Code, "1 + 1"))
        .expect("cell");
    p.seal(&s);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_orders_are_judged_before_anything_runs_and_forged_outputs_are_refused_everywhere() {
    let nodes = federation(2).await;
    let all = running(&nodes);
    let (a, b) = (&nodes[0], &nodes[1]);
    // Mallory hosts Eve, and says so in her advert (with Eve's consent), as an honest node does.
    let eve = SecretKey::generate().expect("random");
    let (mallory, _events) = hostile_member_hosting(b, &[&eve]).await;
    let fed = mallory.fed.clone();

    let eves = project_of(&eve);
    let ask = |r: Request| {
        let fed = fed.clone();
        async move { fed.request(b.id, r).await.expect("B answers") }
    };
    let refused = |answer: Response, why: &str| match answer {
        Response::Run(RunReply::Refused(reason)) => {
            assert!(reason.contains(why), "refused for {reason:?}, not {why:?}");
        }
        other => panic!("expected a refusal ({why}), got {other:?}"),
    };

    // Eve's own run, sent by the node hosting her: taken. Sent again: a replay.
    let honest = request(&eve, &eves, b.id, now());
    let id = honest.value().id;
    match ask(order(honest.clone(), &eves)).await {
        Response::Run(RunReply::Accepted) => {}
        other => panic!("Eve's run was not taken: {other:?}"),
    }
    refused(ask(order(honest, &eves)).await, "replay");
    // B has no labs: the run fails, and B says so to the node that asked, never silently.
    let ended = loop {
        match ask(Request::RunProgress { id, from: 0 }).await {
            Response::Run(RunReply::Progress {
                ended: Some(end), ..
            }) => break end,
            Response::Run(RunReply::Progress { ended: None, .. }) => {}
            other => panic!("a progress question was answered with {other:?}"),
        }
    };
    assert!(
        matches!(ended, orrery_protocol::run::RunEnd::Failed(_)),
        "{ended:?}"
    );

    // A job's run is judged alike: taken once, refused as a replay.
    let job = Signed::sign(
        &eve,
        JobRequest {
            project: eves.id(),
            notebook: eves.notebook_ids().remove(0).0.to_string(),
            heads: eves.heads(),
            parameters: vec![("n".into(), "3".into())],
            node: b.id,
            job: "job-eve".into(),
            run: 1,
            id: rand_id(),
            issued_at: now(),
        },
    );
    let job_order = || {
        Request::Job(JobOrder {
            request: job.clone().into_unverified(),
            snapshot: eves.snapshot(),
            seals: eves.seals(),
        })
    };
    match ask(job_order()).await {
        Response::Run(RunReply::Accepted) => {}
        other => panic!("Eve's job was not taken: {other:?}"),
    }
    refused(ask(job_order()).await, "replay");

    // Stale, or from the future.
    refused(
        ask(order(request(&eve, &eves, b.id, now() - 3600), &eves)).await,
        "stale",
    );
    refused(
        ask(order(request(&eve, &eves, b.id, now() + 3600), &eves)).await,
        "stale",
    );
    // Meant for another node.
    refused(
        ask(order(request(&eve, &eves, a.id, now()), &eves)).await,
        "meant for node",
    );
    // Ada's request (say, copied from the wire), relayed by a node that does not host her.
    let ada = read_key(&a.home.author_key(&a.author)).expect("Ada's key");
    let adas = project_of(&ada);
    refused(
        ask(order(request(&ada, &adas, b.id, now()), &adas)).await,
        "not hosted by",
    );
    // Eve asking to run a cell of a project she is no editor of.
    refused(
        ask(order(request(&eve, &adas, b.id, now()), &adas)).await,
        "not an editor",
    );
    // A project that does not verify: one byte of the snapshot changed.
    let mut tampered = eves.snapshot();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    let r = request(&eve, &eves, b.id, now());
    refused(
        ask(Request::Run(RunOrder {
            request: r.into_unverified(),
            snapshot: tampered,
            seals: eves.seals(),
        }))
        .await,
        "does not verify",
    );
    // A question about a run Mallory did not send.
    refused(
        ask(Request::RunProgress {
            id: rand_id(),
            from: 0,
        })
        .await,
        "no cell by that request",
    );

    // Ada's public project, at both nodes.
    let p = a
        .handle()
        .create_project(a.author, "Crab timing", Visibility::Public)
        .await
        .expect("project");
    a.handle()
        .edit(p, a.author, |proj, s| {
            let nb = proj.add_notebook(s, "n")?;
            proj.insert_cell(s, &nb, 0, NewCell::new(CellKind::Code, "len(lc)"))?;
            Ok(())
        })
        .await
        .expect("cell");
    let synced = converged(&all, p, WAIT, "the project synced").await;
    let replica = a
        .handle()
        .read(p, |x| x.map(Project::history))
        .await
        .expect("read")
        .expect("held");
    let mut replica_project = Project::empty(p);
    replica_project.ingest(replica).expect("replica");

    // Mallory writes outputs for a cell, with Ada's genuine request that B run it.
    let asked = request(&ada, &replica_project, b.id, now());
    let record = orrery_protocol::run::RunRecord {
        request: asked.into_unverified(),
        provenance: orrery_protocol::run::Provenance {
            source_blake3: [0; 32],
            environment: "jupyter".into(),
            environment_lock: "0".into(),
            datasets: Vec::new(),
            started_at_ms: 0,
            ended_at_ms: 0,
            status: orrery_protocol::run::RunStatus::Ok,
        },
    };
    let node_session = Session::new(mallory.key.clone()).expect("session");
    let change = {
        let mut doc = Automerge::load(&replica_project.save()).expect("load");
        doc.set_actor(node_session.actor().clone());
        let (nb, _) = replica_project.notebook_ids().remove(0);
        let cell_id = replica_project.cell_ids(&nb).expect("cells").remove(0);
        let (_, nbs) = doc
            .get(automerge::ROOT, "notebooks")
            .expect("get")
            .expect("notebooks");
        let (_, nbo) = doc.get(&nbs, nb.as_str()).expect("get").expect("notebook");
        let (_, cells) = doc.get(&nbo, "cells").expect("get").expect("cells");
        let (_, cell) = doc
            .get(&cells, cell_id.as_str())
            .expect("get")
            .expect("cell");
        let mut tx = doc.transaction();
        let list = tx
            .put_object(&cell, "outputs", automerge::ObjType::List)
            .expect("list");
        tx.insert(
            &list,
            0,
            r#"{"output_type":"stream","name":"stdout","text":"42\n"}"#,
        )
        .expect("output");
        tx.put(&cell, "run", orrery_protocol::encoding::encode(&record))
            .expect("record");
        let (h, _) = tx.commit_with(CommitOptions::default());
        doc.get_change_by_hash(&h.expect("a change"))
            .expect("change")
            .raw_bytes()
            .to_vec()
    };
    let c = automerge::Change::try_from(change.as_slice()).expect("parses");
    let seal = Signed::sign(
        &mallory.key,
        ChangeSeal {
            project: p,
            heads: vec![ChangeHash(c.hash().0)],
        },
    )
    .into_unverified();
    for node in [a, b] {
        let message = automerge::sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: automerge::sync::ChunkList::from(vec![change.clone()]),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        };
        let mut bytes = vec![orrery_crdt::sync::NEGOTIATE];
        bytes.extend(message.encode());
        let frame = SyncFrame {
            project: p,
            message: bytes,
            seals: vec![seal.clone()],
        };
        match fed.request(node.id, Request::Sync(frame)).await {
            Ok(Response::Refused(Refusal::Rejected)) => {}
            other => panic!("{} took the forged outputs: {other:?}", node.id.short()),
        }
    }
    for h in &all {
        assert_eq!(heads(h, p).await.expect("held"), synced, "nothing changed");
    }
    mallory.cancel.cancel();
}
