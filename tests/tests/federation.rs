//! A federation of real nodes on 127.0.0.1: membership by invitation, adverts, removal,
//! strangers, project sync across partitions and restarts, and hostile members.

use std::time::Duration;

use automerge::sync::{ChunkList, Message, MessageVersion};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ReadDoc};
use orrery_crdt::{CellKind, NewCell, Project, Role, Visibility};
use orrery_node::service::NodeHandle;
use orrery_protocol::wire::{Refusal, Request, Response, SyncFrame};
use orrery_protocol::{ChangeHash, ChangeSeal, ProjectId, SecretKey, Signed};
use orrery_tests::{
    HostileMember, Squatters, TestNode, cli, eventually, federation, hostile_member, within,
};

const WAIT: Duration = Duration::from_secs(30);

fn handles(nodes: &[TestNode]) -> Vec<NodeHandle> {
    nodes.iter().filter_map(|n| n.node.clone()).collect()
}

async fn heads(node: &NodeHandle, p: ProjectId) -> Option<Vec<ChangeHash>> {
    node.read(p, |p| p.map(Project::heads)).await.ok().flatten()
}

/// Waits until every node holds the project with the same heads, and returns them.
async fn converged(nodes: &[NodeHandle], p: ProjectId, what: &str) -> Vec<ChangeHash> {
    let ns = nodes.to_vec();
    eventually(nodes, WAIT, what, || {
        let ns = ns.clone();
        async move {
            let mut first = None;
            for n in &ns {
                let h = heads(n, p).await;
                if h.is_none() {
                    return false;
                }
                match &first {
                    None => first = h,
                    Some(f) if Some(f) != h.as_ref() => return false,
                    _ => {}
                }
            }
            true
        }
    })
    .await;
    heads(&nodes[0], p).await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_federate_and_a_removed_node_is_cut_off() {
    let mut nodes = federation(5).await;
    let all = handles(&nodes);
    for h in &all {
        let status = h.status().await.expect("status");
        assert_eq!(status.members.len(), 5, "every node lists five members");
        for m in &status.members {
            if m.node != h.id() {
                let advert = m.advert.as_ref().expect("advert");
                assert!(advert.name.starts_with("node"));
                assert!(advert.institution.ends_with("institute"));
            }
        }
    }

    // The founder removes node 4: everyone else drops it.
    let removed = nodes[4].id;
    nodes[0].handle().remove(removed).await.expect("remove");
    let rest: Vec<NodeHandle> = all[..4].to_vec();
    let check = rest.clone();
    eventually(&rest, WAIT, "the removal reaches every member", || {
        let check = check.clone();
        async move {
            for h in &check {
                let s = h.status().await.expect("status");
                if s.members.iter().any(|m| m.node == removed) || !s.removed.contains(&removed) {
                    return false;
                }
                if s.members.iter().any(|m| m.node == removed && m.connected) {
                    return false;
                }
            }
            true
        }
    })
    .await;
    // Its later adverts are ignored: no member lists it, even after it re-publishes.
    nodes[4].stop().await;
    nodes[4].start().await;
    let after = rest.clone();
    // Wait for several advert rounds of the remaining members, then check again.
    let mut rounds = 0;
    eventually(&rest, WAIT, "a few advert rounds pass", || {
        rounds += 1;
        async move { rounds > 12 }
    })
    .await;
    for h in &after {
        let s = h.status().await.expect("status");
        assert!(!s.members.iter().any(|m| m.node == removed));
    }
    // The restarted node dialled the members it knew; they refuse to stay connected to it.
    let cut_off = nodes[4].handle().status().await.expect("status");
    assert!(
        cut_off
            .members
            .iter()
            .filter(|m| m.node != removed)
            .all(|m| !m.connected),
        "a removed node is still connected: {cut_off:?}"
    );

    // A stranger cannot join with an invitation it made itself, and hears no gossip.
    let stranger = TestNode::create("stranger").await;
    let forged = {
        let key = SecretKey::generate().expect("random");
        let m = orrery_protocol::federation::Membership::found(&key, "fake", 0).expect("found");
        m.invite(&key, Some(stranger.id), None, i64::MAX, [0; 16])
            .expect("invite")
    };
    let addrs = nodes[0]
        .handle()
        .invite(None, Some([1; 32]), 60)
        .await
        .expect("token")
        .addrs;
    let token = orrery_node::service::InviteToken {
        invitation: forged.into_unverified(),
        addrs,
        code: None,
    };
    let err = stranger.handle().join(token).await;
    assert!(err.is_err(), "a self-made invitation is refused");
    let s = stranger.handle().status().await.expect("status");
    assert!(s.federation.is_none());
    assert!(s.members.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_edited_at_three_nodes_converges_across_a_partition_and_a_restart() {
    let mut nodes = federation(3).await;
    let all = handles(&nodes);
    let authors: Vec<_> = nodes.iter().map(|n| n.author).collect();

    // Node 0's author creates a shared project and makes the others' authors editors.
    let p = nodes[0]
        .handle()
        .create_project(authors[0], "Comet 67P", Visibility::Shared)
        .await
        .expect("project");
    let (a1, a2) = (authors[1], authors[2]);
    let ids = std::sync::Arc::new(std::sync::Mutex::new(None));
    let ids2 = ids.clone();
    nodes[0]
        .handle()
        .edit(p, authors[0], move |proj, s| {
            proj.set_member(s, a1, Role::Editor)?;
            proj.set_member(s, a2, Role::Editor)?;
            let nb = proj.add_notebook(s, "coma")?;
            let cell =
                proj.insert_cell(s, &nb, 0, NewCell::new(CellKind::Code, "import numpy\n"))?;
            *ids2.lock().expect("lock") = Some((nb, cell));
            Ok(())
        })
        .await
        .expect("setup");
    let (nb, cell) = ids.lock().expect("lock").clone().expect("ids");
    converged(&all, p, "the project reaches every node").await;

    // Concurrent edits at all three nodes.
    for (i, n) in nodes.iter().enumerate() {
        let (nb, cell) = (nb.clone(), cell.clone());
        let line = format!("# node {i}\n");
        n.handle()
            .edit(p, authors[i], move |proj, s| {
                proj.splice_source(s, &nb, &cell, 0, 0, &line)
            })
            .await
            .expect("edit");
    }
    converged(&all, p, "concurrent edits converge").await;

    // Partition: node 2 goes down; node 2's author keeps working offline on its own store.
    nodes[2].stop().await;
    for i in 0..2 {
        let (nb, cell) = (nb.clone(), cell.clone());
        nodes[i]
            .handle()
            .edit(p, authors[i], move |proj, s| {
                let end = proj.cell(&nb, &cell)?.source.chars().count();
                proj.splice_source(s, &nb, &cell, end, 0, &format!("x{i} = {i}\n"))
            })
            .await
            .expect("edit during partition");
    }
    {
        let home = nodes[2].home.clone();
        let mut store = orrery_node::store::Store::open(&home.database()).expect("store");
        let mut proj = store.load(p).expect("load");
        let key = orrery_node::home::read_key(&home.author_key(&authors[2])).expect("key");
        let s = orrery_crdt::Session::new(key).expect("session");
        let new = proj
            .insert_cell(
                &s,
                &nb,
                1,
                NewCell::new(CellKind::Markdown, "offline notes"),
            )
            .expect("offline edit");
        let batch = proj.seal(&s);
        store.append(&proj, &batch).expect("durable");
        assert!(proj.cell(&nb, &new).is_ok());
    }
    let two: Vec<NodeHandle> = all[..2].to_vec();
    converged(&two, p, "the two connected nodes converge").await;

    // Node 2 restarts from its database, reconnects and everyone converges.
    nodes[2].start().await;
    let all = handles(&nodes);
    converged(&all, p, "the restarted node catches up and is caught up").await;
    let docs: Vec<_> = {
        let mut v = Vec::new();
        for h in &all {
            let nb = nb.clone();
            v.push(
                h.read(p, move |proj| {
                    proj.map(|x| x.notebook(&nb).expect("notebook"))
                })
                .await
                .expect("read")
                .expect("held"),
            );
        }
        v
    };
    assert!(docs.windows(2).all(|w| w[0] == w[1]), "identical notebooks");
    let src = &docs[0]
        .cells
        .iter()
        .find(|c| c.id == cell)
        .expect("cell")
        .source;
    for needle in [
        "# node 0\n",
        "# node 1\n",
        "# node 2\n",
        "x0 = 0\n",
        "x1 = 1\n",
        "import numpy\n",
    ] {
        assert!(src.contains(needle), "{needle:?} missing from {src:?}");
    }
    assert!(docs[0].cells.iter().any(|c| c.source == "offline notes"));
}

/// A member node running hostile software: it joined properly but sends crafted sync frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malicious_member_changes_nothing_and_is_banned() {
    let nodes = federation(2).await;
    let all = handles(&nodes);
    let alice = nodes[0].author;
    let p = nodes[0]
        .handle()
        .create_project(alice, "Gaia DR4 prep", Visibility::Public)
        .await
        .expect("project");
    converged(&all, p, "the public project reaches node 1").await;

    // Mallory's node joins legitimately.
    let HostileMember {
        fed,
        cancel,
        id: mallory,
        key,
    } = hostile_member(&nodes[0]).await;
    // A member that hosts none of a shared project's members cannot pull it by its id.
    let secret = nodes[0]
        .handle()
        .create_project(alice, "Embargoed proposal", Visibility::Restricted)
        .await
        .expect("project");
    let empty = Project::empty(secret);
    let (message, seals) = empty
        .sync_message(&mut orrery_crdt::sync::PeerState::new())
        .expect("a first message");
    let answer = fed
        .request(
            nodes[0].id,
            Request::Sync(SyncFrame {
                project: secret,
                message,
                seals,
            }),
        )
        .await
        .expect("answered");
    assert!(
        matches!(answer, Response::Refused(Refusal::NotReplicated)),
        "a restricted project leaked: {answer:?}"
    );
    // Nor any stored output of it, even knowing its hash.
    let big = serde_json::json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "id": "plot", "metadata": {}, "execution_count": 1,
                   "source": "plot()", "outputs": [{"output_type": "display_data", "metadata": {},
                   "data": {"image/png": "iVBOR".repeat(20_000)}}]}]
    })
    .to_string();
    nodes[0]
        .handle()
        .edit(secret, alice, move |proj, s| {
            proj.import_ipynb(s, big.as_bytes(), "embargoed plot")
                .map(|_| ())
                .map_err(|_| orrery_crdt::EditError::Malformed("not a notebook"))
        })
        .await
        .expect("import");
    let blob = nodes[0]
        .handle()
        .read(secret, |x| x.and_then(|x| x.blob_refs().into_iter().next()))
        .await
        .expect("read")
        .expect("the plot is a stored output");
    // Asked over the data plane, with her node's own key, her node gets nothing of it: the
    // output belongs to no project she may hold (the public project `p` does not refer to it).
    let Response::DataPlane(addrs) = fed
        .request(nodes[0].id, Request::DataPlane)
        .await
        .expect("answered")
    else {
        panic!("no data-plane addresses")
    };
    let endpoint =
        orrery_node::dataplane::endpoint::bind(&key, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("endpoint");
    let dir = tempfile::tempdir().expect("tempdir");
    let partial = dir.path().join("stolen");
    let mut quiet = |_| {};
    let stolen = orrery_node::dataplane::fetch::fetch(
        &endpoint,
        nodes[0].id,
        &addrs,
        blob.hash,
        blob.len,
        &partial,
        &mut quiet,
    )
    .await;
    assert!(
        matches!(
            stolen,
            Err(orrery_node::dataplane::fetch::FetchError::NotSent { .. })
        ),
        "a restricted project's output leaked: {stolen:?}"
    );
    assert_eq!(
        std::fs::metadata(&partial).map_or(0, |m| m.len()),
        0,
        "not a byte of it"
    );
    endpoint.close().await;

    // Mallory's author is a viewer of the project.
    let mallory_author = SecretKey::generate().expect("random");
    let m_session = orrery_crdt::Session::new(mallory_author.clone()).expect("session");
    let ma = m_session.author();
    nodes[0]
        .handle()
        .edit(p, alice, move |proj, s| {
            proj.set_member(s, ma, Role::Viewer)
        })
        .await
        .expect("viewer");
    let honest = converged(&all, p, "membership change synced").await;
    let history = nodes[0]
        .handle()
        .read(p, |proj| proj.map(Project::history))
        .await
        .expect("read")
        .expect("held");
    let mut replica = Project::empty(p);
    replica.ingest(history).expect("replica");

    // Three crafted changes.
    let alice_actor = replica
        .doc()
        .get_change_by_hash(&automerge::ChangeHash(p.0))
        .expect("genesis")
        .actor_id()
        .clone();
    let forged_title = rogue(&replica, alice_actor.clone(), "forged by mallory");
    let viewer_title = rogue(&replica, m_session.actor().clone(), "viewer was here");
    let seal = |key: &SecretKey, change: &[u8]| {
        let c = automerge::Change::try_from(change).expect("parses");
        Signed::sign(
            key,
            ChangeSeal {
                project: p,
                heads: vec![ChangeHash(c.hash().0)],
            },
        )
        .into_unverified()
    };
    let bad_signature = {
        let s = seal(&mallory_author, &forged_title);
        Signed::<ChangeSeal>::from_parts(*alice.key(), s.payload().to_vec(), *s.signature())
    };
    let frames = vec![
        // Forged signature: Alice's key, Mallory's signature.
        (forged_title.clone(), bad_signature),
        // Wrong author: a change under Alice's actor sealed by Mallory.
        (forged_title.clone(), seal(&mallory_author, &forged_title)),
        // A viewer writing, properly sealed.
        (viewer_title.clone(), seal(&mallory_author, &viewer_title)),
    ];
    for (n, (change, seal)) in frames.into_iter().enumerate() {
        let message = Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: ChunkList::from(vec![change]),
            flags: None,
            version: MessageVersion::V1,
        };
        // A negotiation message, as a diverged peer sends: its changes are verified like any.
        let mut bytes = vec![orrery_crdt::sync::NEGOTIATE];
        bytes.extend(message.encode());
        let frame = SyncFrame {
            project: p,
            message: bytes,
            seals: vec![seal],
        };
        match fed.request(nodes[0].id, Request::Sync(frame)).await {
            Ok(Response::Refused(Refusal::Rejected)) => {}
            // The third offence bans her; its answer may be lost to the disconnect.
            Err(_) if n == 2 => {}
            other => panic!("crafted frame {n} answered with {other:?}"),
        }
    }
    // After the third offence the node bans Mallory: it no longer answers her.
    eventually(&all, WAIT, "mallory is banned", || {
        let fed = fed.clone();
        let node0 = nodes[0].id;
        async move {
            matches!(
                fed.request(node0, Request::Membership).await,
                Err(_) | Ok(Response::Refused(_))
            )
        }
    })
    .await;
    // The ban says why.
    let status = nodes[0].handle().status().await.expect("status");
    let ban = status
        .banned
        .iter()
        .find(|b| b.node == mallory)
        .expect("mallory is listed as banned");
    assert!(
        matches!(&ban.reason, orrery_federation::Offence::BadChanges { detail } if detail.contains("may not")),
        "{}",
        ban.reason
    );
    // And the operator sees it: `orrery federation status` lists the ban with its reason.
    let shown = within(&all, WAIT, || async {
        let status = cli(&nodes[0], &["federation", "status"]);
        status.contains("banned peers") && status.contains(&mallory.short())
    })
    .await;
    let status = cli(&nodes[0], &["federation", "status"]);
    assert!(shown, "the ban is not in `federation status`:\n{status}");
    assert!(status.contains("may not"), "no reason given:\n{status}");
    // Nothing changed anywhere.
    for h in &all {
        assert_eq!(heads(h, p).await.expect("held"), honest);
        let title = h
            .read(p, |x| x.map(Project::title))
            .await
            .expect("read")
            .expect("held");
        assert_eq!(title, "Gaia DR4 prep");
    }
    cancel.cancel();
}

/// A member parks a change the receiver cannot judge yet (it depends on an honest edit not yet
/// delivered); when an honest node delivers that edit, the parked change is refused on its own
/// and charged to the member who sent it, while the honest batch applies and sync goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_forgery_is_charged_to_its_sender_not_to_the_honest_node_that_completes_it() {
    let mut nodes = federation(2).await;
    let alice = nodes[0].author;
    let bob = nodes[1].author;
    let p = nodes[0]
        .handle()
        .create_project(alice, "Kepler light curves", Visibility::Public)
        .await
        .expect("project");
    let HostileMember {
        fed,
        cancel,
        id: mallory,
        ..
    } = hostile_member(&nodes[0]).await;
    let mallory_author = SecretKey::generate().expect("random");
    let m_session = orrery_crdt::Session::new(mallory_author.clone()).expect("session");
    let ma = m_session.author();
    nodes[0]
        .handle()
        .edit(p, alice, move |proj, s| {
            proj.set_member(s, bob, Role::Editor)?;
            proj.set_member(s, ma, Role::Viewer)
        })
        .await
        .expect("members");
    converged(
        &handles(&nodes),
        p,
        "the project and its members reach node 1",
    )
    .await;

    // Node 1 edits while apart; node 0 has not seen the edit.
    nodes[1].stop().await;
    nodes[1]
        .edit_offline(p, bob, |proj, s| {
            proj.add_notebook(s, "offline notes").map(|_| ())
        })
        .expect("offline edit");
    let ahead = orrery_node::store::Store::open(&nodes[1].home.database())
        .expect("store")
        .load(p)
        .expect("held");
    let mut replica = Project::empty(p);
    replica.ingest(ahead.history()).expect("replica");

    // Mallory, a viewer, writes on top of that edit and sends it to node 0, where it waits.
    let mut events = nodes[0].handle().subscribe();
    let forged = rogue(&replica, m_session.actor().clone(), "viewer was here");
    let c = automerge::Change::try_from(&forged[..]).expect("parses");
    let seal = Signed::sign(
        &mallory_author,
        ChangeSeal {
            project: p,
            heads: vec![ChangeHash(c.hash().0)],
        },
    )
    .into_unverified();
    let message = Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: ChunkList::from(vec![forged]),
        flags: None,
        version: MessageVersion::V1,
    };
    let mut bytes = vec![orrery_crdt::sync::NEGOTIATE];
    bytes.extend(message.encode());
    let frame = SyncFrame {
        project: p,
        message: bytes,
        seals: vec![seal],
    };
    let answer = fed
        .request(nodes[0].id, Request::Sync(frame))
        .await
        .expect("answered");
    assert!(
        matches!(answer, Response::Sync(_)),
        "the change should wait for its dependency: {answer:?}"
    );

    // Node 1 comes back and delivers its edit: node 0 takes it and refuses the parked change,
    // charging Mallory.
    nodes[1].start().await;
    let all = handles(&nodes);
    let honest = converged(&all, p, "node 1's edit reaches node 0").await;
    assert_eq!(honest, ahead.heads(), "node 0 holds the honest edit");
    let rejected = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(orrery_node::service::NodeEvent::Rejected { peer, .. }) => return peer,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("a refusal is reported");
    assert_eq!(
        rejected, mallory,
        "the parked change is charged to its sender"
    );

    // Honest sync goes on both ways, and the honest node was never charged.
    nodes[1]
        .handle()
        .edit(p, bob, |proj, s| proj.add_notebook(s, "after").map(|_| ()))
        .await
        .expect("edit at node 1");
    nodes[0]
        .handle()
        .edit(p, alice, |proj, s| {
            proj.add_notebook(s, "reply").map(|_| ())
        })
        .await
        .expect("edit at node 0");
    let after = converged(&all, p, "honest sync continues").await;
    assert_ne!(after, honest);
    for h in &all {
        let title = h
            .read(p, |x| x.map(Project::title))
            .await
            .expect("read")
            .expect("held");
        assert_eq!(title, "Kepler light curves", "the forgery never applied");
    }
    loop {
        match events.try_recv() {
            Ok(orrery_node::service::NodeEvent::Rejected { peer, .. })
            | Ok(orrery_node::service::NodeEvent::Banned { node: peer, .. }) => {
                assert_ne!(peer, nodes[1].id, "the honest node was charged");
            }
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    let status = nodes[0].handle().status().await.expect("status");
    assert!(status.banned.is_empty(), "{:?}", status.banned);
    cancel.cancel();
}

/// A change setting the title, made on a copy of `replica` as `actor`, bypassing local checks.
fn rogue(replica: &Project, actor: automerge::ActorId, title: &str) -> Vec<u8> {
    let mut doc = Automerge::load(&replica.save()).expect("load");
    doc.set_actor(actor);
    let mut tx = doc.transaction();
    tx.put(automerge::ROOT, "title", title).expect("put");
    let (h, _) = tx.commit_with(CommitOptions::default());
    doc.get_change_by_hash(&h.expect("change"))
        .expect("change")
        .raw_bytes()
        .to_vec()
}

/// The TCP address of a running node (from an invitation token, as a joiner would learn it).
async fn tcp_address(node: &TestNode) -> libp2p::Multiaddr {
    let token = node
        .handle()
        .invite(None, Some([9; 32]), 60)
        .await
        .expect("token");
    token
        .addrs
        .iter()
        .filter_map(|a| a.parse::<libp2p::Multiaddr>().ok())
        .find(|a| {
            a.iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::Tcp(_)))
        })
        .expect("a tcp address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throwaway_identities_holding_every_stranger_slot_do_not_keep_an_invited_node_out() {
    let nodes = federation(1).await;
    let addr = tcp_address(&nodes[0]).await;
    // More throwaway identities than there are slots for strangers, all holding on.
    let squatters = Squatters::connect(24, addr, WAIT).await;
    assert_eq!(squatters.peers.len(), 24);

    let joiner = TestNode::create("joiner").await;
    let token = nodes[0]
        .handle()
        .invite(Some(joiner.id), None, 3600)
        .await
        .expect("invite");
    tokio::time::timeout(WAIT, joiner.handle().join(token))
        .await
        .expect("the join finishes in time")
        .expect("an invited node joins although strangers fill every slot");
    let status = joiner.handle().status().await.expect("status");
    assert_eq!(status.members.len(), 2);
    drop(squatters);
}

/// Connection attempts `member` counted from `node` since refusing it.
async fn refused_attempts(member: &NodeHandle, node: orrery_protocol::NodeId) -> u64 {
    let s = member.status().await.expect("status");
    s.refused
        .iter()
        .find(|r| r.node == Some(node))
        .map_or(0, |r| r.attempts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_removed_while_offline_learns_it_and_stops_dialling() {
    let mut nodes = federation(2).await;
    let removed = nodes[1].id;
    nodes[1].stop().await;
    nodes[0].handle().remove(removed).await.expect("remove");
    // It comes back and dials the member it knew, which tells it of its removal.
    nodes[1].start().await;
    let member = nodes[0].handle().clone();
    let gone = nodes[1].handle().clone();
    let both = [member.clone(), gone.clone()];
    let check = gone.clone();
    // A removed node that misses the window in which it is told (a loaded machine) is told
    // again when its backoff ends (5 s, then 10 s, 20 s…): allow for three rounds.
    eventually(
        &both,
        3 * WAIT,
        "the removed node knows it was removed",
        || {
            let check = check.clone();
            async move { check.status().await.is_ok_and(|s| s.removed_self.is_some()) }
        },
    )
    .await;
    let status = gone.status().await.expect("status");
    let told = status.removed_self.expect("removal reported");
    assert_eq!(told.by, nodes[0].id, "the founder removed it");
    // The running node stores what it was told; the command line reads the store.
    let told_operator = within(&both, WAIT, || async {
        cli(&nodes[1], &["federation", "status"])
            .contains("this node was removed from the federation")
    })
    .await;
    assert!(
        told_operator,
        "the removed node's operator is not told:\n{}",
        cli(&nodes[1], &["federation", "status"])
    );
    assert!(refused_attempts(&member, removed).await >= 1);

    // From now on it stops dialling: over a window of several advert rounds (each of which
    // dialled every member before), the member counts at most one more connection.
    let before = refused_attempts(&member, removed).await;
    let window = Duration::from_secs(10);
    let ended = orrery_tests::within(&both, window, || async { false }).await;
    assert!(!ended);
    let after = refused_attempts(&member, removed).await;
    assert!(
        after - before <= 1,
        "the removed node dialled {} times in {window:?}",
        after - before
    );
    let s = member.status().await.expect("status");
    assert!(s.members.iter().all(|m| m.node != removed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_learns_no_member_from_kademlia() {
    use futures::StreamExt;
    use libp2p::kad;
    use libp2p::swarm::SwarmEvent;
    let nodes = federation(3).await;
    let addr = tcp_address(&nodes[0]).await;
    let member = orrery_federation::peer::peer_id(&nodes[0].id);
    let others: Vec<libp2p::PeerId> = nodes[1..]
        .iter()
        .map(|n| orrery_federation::peer::peer_id(&n.id))
        .collect();

    // An outsider speaking the federation's Kademlia protocol, with a throwaway key.
    let mut outsider = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|key| {
            let mut config = kad::Config::new(libp2p::StreamProtocol::new("/orrery/kad/1"));
            config.set_query_timeout(Duration::from_secs(10));
            let id = key.public().to_peer_id();
            kad::Behaviour::with_config(id, kad::store::MemoryStore::new(id), config)
        })
        .expect("behaviour")
        .build();
    outsider.behaviour_mut().add_address(&member, addr);
    // Ask for the peers closest to each other member (FIND_NODE), and to a random key.
    for target in others.iter().copied().chain([libp2p::PeerId::random()]) {
        outsider.behaviour_mut().get_closest_peers(target);
    }
    let mut learned: Vec<(libp2p::PeerId, Vec<libp2p::Multiaddr>)> = Vec::new();
    let mut finished = 0;
    tokio::time::timeout(WAIT, async {
        while finished < others.len() + 1 {
            match outsider.select_next_some().await {
                SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed {
                    result: kad::QueryResult::GetClosestPeers(r),
                    step,
                    ..
                }) => {
                    let peers = match r {
                        Ok(ok) => ok.peers,
                        Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                    };
                    learned.extend(peers.into_iter().map(|p| (p.peer_id, p.addrs)));
                    if step.last {
                        finished += 1;
                    }
                }
                SwarmEvent::Behaviour(kad::Event::RoutingUpdated {
                    peer, addresses, ..
                }) => learned.push((peer, addresses.into_vec())),
                SwarmEvent::Behaviour(kad::Event::UnroutablePeer { peer }) => {
                    learned.push((peer, Vec::new()))
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the outsider's queries finish");
    for (peer, addrs) in &learned {
        assert!(
            !others.contains(peer),
            "the outsider learned member {peer} at {addrs:?}"
        );
    }
}

/// The member tells a removed node of its removal as soon as it connects; a removed node that
/// never asks (here, a swarm holding its key that sends nothing) still learns it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_that_never_asks_is_told_of_its_removal() {
    use futures::StreamExt;
    use libp2p::request_response::{self, ProtocolSupport};
    use libp2p::swarm::SwarmEvent;
    use orrery_federation::codec::{Codec, PROTOCOL};
    use orrery_protocol::federation::MembershipEvent;
    let mut nodes = federation(2).await;
    let removed = nodes[1].id;
    nodes[1].stop().await;
    nodes[0].handle().remove(removed).await.expect("remove");
    let key = orrery_node::home::read_key(&nodes[1].home.node_key()).expect("the node's key");
    let mut silent =
        libp2p::SwarmBuilder::with_existing_identity(orrery_federation::peer::keypair(&key))
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .expect("tcp")
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    Codec,
                    [(PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default(),
                )
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(WAIT))
            .build();
    silent.dial(tcp_address(&nodes[0]).await).expect("dial");
    let told = tokio::time::timeout(WAIT, async {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = silent.select_next_some().await
            {
                let _ = silent
                    .behaviour_mut()
                    .send_response(channel, Response::Noted);
                if let Request::Removed(event) = request {
                    return event;
                }
            }
        }
    })
    .await
    .expect("the member tells the removed node, unasked");
    let MembershipEvent::Removal(removal) = told else {
        panic!("not a removal: {told:?}");
    };
    let removal = removal.verify().expect("the removal is signed");
    assert_eq!(removal.value().node, removed, "the removal names the node");
    assert_eq!(
        orrery_protocol::NodeId(*removal.signer()),
        nodes[0].id,
        "the founder signed it"
    );
}

/// A node stopped the moment its join returns comes back a member: the join is kept before it
/// is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_right_after_joining_comes_back_a_member() {
    let nodes = federation(1).await;
    let mut joiner = orrery_tests::TestNode::create("joiner").await;
    let token = nodes[0]
        .handle()
        .invite(Some(joiner.id), None, 3600)
        .await
        .expect("invite");
    joiner.handle().join(token).await.expect("join");
    joiner.stop().await;
    joiner.start().await;
    let status = joiner.handle().status().await.expect("status");
    assert_eq!(
        status.members.len(),
        2,
        "the restarted node knows its federation: {:?}",
        status.members
    );
}
