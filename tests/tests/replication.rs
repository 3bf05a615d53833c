//! A peer that refuses what a node sends: the node says so, with a warning and a record that
//! `orrery project show` and `orrery federation status` print, until frames pass again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use orrery_crdt::Visibility;
use orrery_federation::Event;
use orrery_node::store::{Direction, Store};
use orrery_protocol::wire::{Refusal, Request, Response, SyncFrame};
use orrery_tests::{TestNode, cli, federation, hostile_member_advertising, within};

fn problems(node: &TestNode) -> Vec<orrery_node::store::ReplicationProblem> {
    Store::open(&node.home.database())
        .expect("store")
        .replication_problems()
        .expect("problems")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_frame_is_reported_until_frames_pass_again() {
    let nodes = federation(1).await;
    let a = &nodes[0];
    let (mallory, mut events) = hostile_member_advertising(a, Vec::new()).await;
    // Mallory refuses every sync frame until told otherwise, then answers with nothing to say.
    let refuse = Arc::new(AtomicBool::new(true));
    let refusing = refuse.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Request {
                request: Request::Sync(frame),
                reply,
                ..
            } = event
            {
                let _ = reply.send(if refusing.load(Ordering::SeqCst) {
                    Response::Refused(Refusal::Rejected)
                } else {
                    Response::Sync(SyncFrame {
                        project: frame.project,
                        message: Vec::new(),
                        seals: Vec::new(),
                    })
                });
            }
        }
    });
    let all = vec![a.handle().clone()];
    let known = within(&all, Duration::from_secs(30), || async {
        a.handle().status().await.is_ok_and(|s| {
            s.members
                .iter()
                .any(|m| m.node == mallory.id && m.advert.is_some() && m.connected)
        })
    })
    .await;
    assert!(known, "A never held Mallory's advert");

    let p = a
        .handle()
        .create_project(a.author, "Open data", Visibility::Public)
        .await
        .expect("project");
    let reported = within(&all, Duration::from_secs(30), || async {
        problems(a)
            .iter()
            .any(|r| r.project == p && r.peer == mallory.id && r.direction == Direction::To)
    })
    .await;
    assert!(reported, "the refusal was not recorded");
    let show = cli(a, &["project", "show", "Open data"]);
    assert!(show.contains("not replicated to Mallory"), "{show}");
    assert!(show.contains("failed its verification"), "{show}");
    let status = cli(a, &["federation", "status"]);
    assert!(
        status.contains("\"Open data\": not replicated to Mallory"),
        "{status}"
    );

    // Mallory takes frames again: the next edit passes, and the record goes.
    refuse.store(false, Ordering::SeqCst);
    a.handle()
        .edit(p, a.author, |proj, s| proj.set_description(s, "All of it."))
        .await
        .expect("edit");
    let cleared = within(&all, Duration::from_secs(30), || async {
        problems(a).is_empty()
    })
    .await;
    assert!(cleared, "the record stayed after frames passed");
    assert!(!cli(a, &["project", "show", "Open data"]).contains("not replicated"));
    mallory.cancel.cancel();
}
