//! Presence: who is in which notebook and cell, shared live between nodes as statements signed by
//! their authors, never written into the project document.

use std::time::Duration;

use orrery_crdt::{Role, Visibility};
use orrery_protocol::presence::Presence;
use orrery_protocol::wire::{Refusal, Request, Response};
use orrery_protocol::{AuthorId, NodeId, ProjectId, SecretKey, Signed};
use orrery_tests::{HostileMember, eventually, federation, hostile_member};

const WAIT: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_travels_between_nodes_and_is_never_stored() {
    let nodes = federation(2).await;
    let handles: Vec<_> = nodes.iter().map(|n| n.handle().clone()).collect();
    let (alice, bob) = (nodes[0].author, nodes[1].author);
    let p = handles[0]
        .create_project(alice, "Rosetta OSIRIS", Visibility::Shared)
        .await
        .expect("project");
    handles[0]
        .edit(p, alice, move |proj, s| {
            proj.set_member(s, bob, Role::Editor)
        })
        .await
        .expect("bob joins the project");
    let b = handles[1].clone();
    eventually(&handles, WAIT, "the project reaches node 1", || {
        let b = b.clone();
        async move {
            b.read(p, move |proj| {
                proj.is_some_and(|x| x.role_of(&bob).is_some())
            })
            .await
            .unwrap_or(false)
        }
    })
    .await;
    let count = |h: orrery_node::service::NodeHandle| async move {
        h.read(p, |proj| proj.map(|x| x.change_count()))
            .await
            .expect("read")
            .expect("held")
    };
    let before = (
        count(handles[0].clone()).await,
        count(handles[1].clone()).await,
    );

    // Bob opens a cell at node 1; Alice's node sees him there.
    handles[1]
        .set_presence(
            bob,
            p,
            Some("nb-1".into()),
            Some("cell-7".into()),
            None,
            true,
        )
        .await
        .expect("presence");
    let a = handles[0].clone();
    eventually(&handles, WAIT, "node 0 sees Bob in cell-7", || {
        let a = a.clone();
        async move {
            a.presence(p).await.is_ok_and(|who| {
                who.iter()
                    .any(|w| w.author == bob && w.cell.as_deref() == Some("cell-7"))
            })
        }
    })
    .await;
    // He moves on, his caret with him; then leaves.
    let caret = orrery_protocol::presence::Caret {
        left: Some(orrery_protocol::presence::CharId {
            actor: vec![1, 3, 7, 9],
            counter: 12,
        }),
        right: None,
    };
    handles[1]
        .set_presence(
            bob,
            p,
            Some("nb-1".into()),
            Some("cell-9".into()),
            Some(caret.clone()),
            true,
        )
        .await
        .expect("presence");
    eventually(&handles, WAIT, "node 0 follows Bob to cell-9", || {
        let (a, caret) = (a.clone(), caret.clone());
        async move {
            a.presence(p).await.is_ok_and(|who| {
                who.len() == 1
                    && who[0].cell.as_deref() == Some("cell-9")
                    && who[0].caret.as_ref() == Some(&caret)
            })
        }
    })
    .await;
    handles[1]
        .set_presence(bob, p, None, None, None, false)
        .await
        .expect("presence");
    eventually(&handles, WAIT, "node 0 sees Bob leave", || {
        let a = a.clone();
        async move { a.presence(p).await.is_ok_and(|who| who.is_empty()) }
    })
    .await;
    // None of it is in the document.
    let after = (
        count(handles[0].clone()).await,
        count(handles[1].clone()).await,
    );
    assert_eq!(before, after);
    // A local author who does not exist, or a project not held, is refused.
    assert!(
        handles[0]
            .set_presence(bob, p, None, None, None, true)
            .await
            .is_err(),
        "Bob's key is not at node 0"
    );
    assert!(
        handles[0]
            .set_presence(alice, ProjectId([9; 32]), None, None, None, true)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_presence_from_a_member_is_refused() {
    let nodes = federation(1).await;
    let handle = nodes[0].handle().clone();
    let alice = nodes[0].author;
    let p = handle
        .create_project(alice, "Planck maps", Visibility::Public)
        .await
        .expect("project");

    // A member node running hostile software.
    let HostileMember {
        key: mallory_key,
        id: mallory,
        fed,
        cancel,
    } = hostile_member(&nodes[0]).await;

    let statement = |author: AuthorId, node: NodeId, project: ProjectId, seq: u64| Presence {
        project,
        author,
        node,
        notebook: Some("nb".into()),
        cell: Some("cell".into()),
        caret: None,
        active: true,
        seq,
        at_ms: now_ms(),
    };
    let stranger = SecretKey::generate().expect("random");
    let stranger_id = AuthorId(stranger.public());
    let cases = vec![
        // Alice's presence signed by Mallory.
        (
            "signed by another key",
            Signed::sign(&mallory_key, statement(alice, mallory, p, 1)),
        ),
        // Someone not in the project.
        (
            "not a project member",
            Signed::sign(&stranger, statement(stranger_id, mallory, p, 1)),
        ),
        // Claims to work at another node.
        (
            "names another node",
            Signed::sign(&stranger, statement(stranger_id, nodes[0].id, p, 2)),
        ),
    ];
    for (what, signed) in cases {
        let answer = fed
            .request(nodes[0].id, Request::Presence(signed.into_unverified()))
            .await;
        assert!(
            matches!(answer, Ok(Response::Refused(Refusal::Rejected))),
            "{what}: {answer:?}"
        );
    }
    // A project this node does not hold.
    let other = Signed::sign(
        &stranger,
        statement(stranger_id, mallory, ProjectId([3; 32]), 3),
    );
    let answer = fed
        .request(nodes[0].id, Request::Presence(other.into_unverified()))
        .await;
    assert!(
        matches!(answer, Ok(Response::Refused(Refusal::NotReplicated))),
        "{answer:?}"
    );
    assert!(handle.presence(p).await.expect("presence").is_empty());
    cancel.cancel();
}
