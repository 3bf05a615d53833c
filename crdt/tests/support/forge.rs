//! Changes made the way a hostile replica makes them: on a copy of a document, bypassing every
//! local check, sealed with whatever key the forger holds.

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge, ReadDoc};
use orrery_crdt::Project;
use orrery_protocol::{ChangeSeal, SecretKey, Signed, Unverified};

/// `p`'s document with a change made as `actor` bypassing every local check, and that change's
/// raw bytes.
pub(crate) fn rogue(
    p: &Project,
    actor: ActorId,
    f: impl FnOnce(&mut Transaction<'_>),
) -> (Automerge, Vec<u8>) {
    let mut doc = Automerge::load(&p.save()).expect("loads");
    doc.set_actor(actor);
    let mut tx = doc.transaction();
    f(&mut tx);
    let (hash, _) = tx.commit_with(CommitOptions::default());
    let change = doc
        .get_change_by_hash(&hash.expect("a change"))
        .expect("present")
        .raw_bytes()
        .to_vec();
    (doc, change)
}

/// A seal by `key` over `change` for `p`.
pub(crate) fn seal_over(
    p: &Project,
    key: &SecretKey,
    change: &[u8],
) -> Signed<ChangeSeal, Unverified> {
    let c = automerge::Change::try_from(change).expect("parses");
    Signed::sign(
        key,
        ChangeSeal {
            project: p.id(),
            heads: vec![orrery_protocol::ChangeHash(c.hash().0)],
        },
    )
    .into_unverified()
}
