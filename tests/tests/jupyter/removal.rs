//! An author removed while their edits are in flight.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, ReadDoc};
use orrery_crdt::nbformat::parse;
use orrery_crdt::{
    Batch, CellId, CellKind, EditError, IngestError, NewCell, Role, Session, Visibility,
};
use orrery_node::service::NodeError;
use orrery_protocol::{ChangeHash, ChangeSeal, ProjectId, Signed};
use orrery_tests::{running, within};

use crate::support::*;

/// A change by `session`'s author on top of `saved` (a replica's document), made by software
/// that skips the local permission check, sealed with the author's key.
fn rogue_edit(
    saved: &[u8],
    p: ProjectId,
    session: &Session,
    text: &automerge::ObjId,
    insert: &str,
) -> Batch {
    let mut doc = Automerge::load(saved).expect("loads");
    doc.set_actor(session.actor().clone());
    let mut tx = doc.transaction();
    tx.splice_text(text, 0, 0, insert).expect("splice");
    let (hash, _) = tx.commit_with(CommitOptions::default());
    let hash = hash.expect("a change");
    let change = doc
        .get_change_by_hash(&hash)
        .expect("present")
        .raw_bytes()
        .to_vec();
    let seal = Signed::sign(
        session.key(),
        ChangeSeal {
            project: p,
            heads: vec![ChangeHash(hash.0)],
        },
    )
    .into_unverified();
    Batch {
        changes: vec![change],
        seals: vec![seal],
    }
}

/// The owner removes editor B while B's node is down and B types offline. As the crate docs
/// promise (`orrery_crdt`, "An edit concurrent with its author's removal"): B's edits whose
/// causal past lacks the removal are kept by every replica; once B's node has the removal, B's
/// edits are refused, locally and by every replica.
///
/// The project is public: a shared project is no longer replicated to a node that hosts none of
/// its members, so B's node (hosting only B) would be cut off with B and the document rule could
/// not be observed across nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_author_removed_while_edits_are_in_flight() {
    let (mut nodes, p) = setup(3, "RR Lyrae period", Visibility::Public).await;
    let (a, b) = (nodes[0].author, nodes[1].author);
    let nb = import(nodes[0].handle(), p, a, GAIA, "gaia-variable-stars").await;
    converge(&nodes, p, "the notebook reaches every node").await;
    let load = cell(LOAD);
    let carol = Typist::new(&nodes[2], "C", p, &nb);

    // B's node goes down; the owner removes B; C goes on typing in the cell B types in.
    nodes[1].stop().await;
    let awake = running(&nodes);
    edit(&awake[0], p, a, move |proj, s| proj.remove_member(s, b))
        .await
        .expect("the owner removes B");
    let mut typed = vec![carol.types(&load, At::Start, "# C: after B left\n").await];

    // B, unaware, types offline into the same cell and adds a cell: concurrent with the removal.
    typed.push(type_offline(
        &nodes[1],
        p,
        "B (offline)",
        &nb,
        &load,
        At::End,
        "\n# B: written before I knew",
    ));
    let (b_cell, b_heads) = nodes[1]
        .edit_offline(p, b, |proj, s| {
            assert_eq!(proj.role_of(&b), Some(Role::Editor), "B has not seen it");
            let id = proj.insert_cell(s, &nb, 2, NewCell::new(CellKind::Markdown, "B: notes"))?;
            Ok::<_, EditError>((id, proj.heads()))
        })
        .expect("B adds a cell offline");

    nodes[1].start().await;
    let all = running(&nodes);
    let notebooks = settled(&nodes, p, "B's node rejoins and everyone converges").await;
    // B's edits are concurrent with the removal and nobody built on them: held (kept, applied
    // nowhere). Every node holds them (they travel like any change, so they do not live on B's
    // node alone) and says so; C's edit is applied everywhere.
    let final_nb = &notebooks[0];
    let lost = missing(&typed, final_nb);
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert_eq!(lost[0].who, "B (offline)");
    assert!(
        final_nb.cells.iter().all(|c| c.id != b_cell),
        "B's held cell is applied nowhere"
    );
    let expected: Vec<CellId> = parse(GAIA.as_bytes())
        .expect("parses")
        .cells
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids_of(final_nb), expected);
    let held_everywhere = within(&all, WAIT, || async {
        let mut counts = Vec::new();
        for node in &all {
            counts.push(
                node.read(p, |x| x.map(|x| x.held().len()))
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(0),
            );
        }
        counts.iter().all(|&n| n >= 2)
    })
    .await;
    assert!(
        held_everywhere,
        "every node keeps both of B's offline changes, held\n{}",
        replica_report(&nodes, p).await
    );
    let _ = &b_heads;
    for (i, node) in all.iter().enumerate() {
        let role = node
            .read(p, move |x| x.map(|x| x.role_of(&b)))
            .await
            .expect("read")
            .expect("held");
        assert_eq!(role, None, "node {i}: B is removed");
    }
    let heads = converge(&nodes, p, "still converged").await;

    // B's node now has the removal: B's next edit is refused there, and nothing changes.
    let (nb2, load2) = (nb.clone(), load.clone());
    let refused = edit(&all[1], p, b, move |proj, s| {
        type_into(proj, s, &nb2, &load2, At::Start, "# B: too late\n")
    })
    .await;
    assert!(
        matches!(
            refused,
            Err(NodeError::Edit(EditError::NotPermitted { .. }))
        ),
        "B's edit after seeing the removal: {refused:?}"
    );

    // A change of B's that depends on the removal, made by software skipping the local check
    // and sealed with B's key, is refused by every replica (each node's live replica, reached
    // through `inspect`).
    let (saved, text) = {
        let (nb, load) = (nb.clone(), load.clone());
        all[1]
            .read(p, move |x| {
                x.and_then(|x| Some((x.save(), x.source_obj(&nb, &load).ok()?)))
            })
            .await
            .expect("read")
            .expect("held")
    };
    let key = orrery_node::home::read_key(&nodes[1].home.author_key(&b)).expect("B's key");
    let rogue = rogue_edit(
        &saved,
        p,
        &Session::new(key).expect("session"),
        &text,
        "# B: too late\n",
    );
    for (i, node) in all.iter().enumerate() {
        let batch = rogue.clone();
        let result = inspect(node, p, nodes[i].author, move |proj| {
            // Refused as the batch's failure or, when it builds on B's held changes, in the
            // report, charged to its sender.
            match proj.ingest(batch) {
                Err(e) => (
                    matches!(e, IngestError::NotPermitted { role: "none", .. }),
                    format!("{e}"),
                ),
                Ok(r) => (
                    // A node without B's held changes parks it: it waits for them, and is
                    // judged (refused) only if they ever come.
                    r.applied.is_empty()
                        && (r.pending > 0
                            || r.refused.iter().any(|x| {
                                matches!(*x.error, IngestError::NotPermitted { role: "none", .. })
                            })),
                    format!("{r:?}"),
                ),
            }
        })
        .await
        .expect("the replica was reached");
        assert!(
            result.0,
            "node {i} took B's change made after the removal: {}",
            result.1
        );
    }
    assert_eq!(
        converge(&nodes, p, "nothing changed").await,
        heads,
        "a refused edit changed the history"
    );
    let after = settled(&nodes, p, "the replicas are still identical").await;
    assert!(after == notebooks, "a refused edit changed a notebook");
}
