//! Every way ingest refuses a batch, each leaving the document untouched, and the ways it
//! accepts one.

use automerge::transaction::{Transactable, Transaction};
use automerge::{ActorId, ReadDoc};
use orrery_crdt::ingest::IngestError;
use orrery_crdt::{Batch, CellKind, NewCell, NotebookId, Project, Role, Session, Visibility};
use orrery_protocol::{ChangeSeal, SecretKey, Signed};

#[path = "support/forge.rs"]
mod forge;
use forge::seal_over;

fn session() -> Session {
    Session::new(SecretKey::generate().expect("random")).expect("random")
}

fn replica_of(p: &Project) -> Project {
    let mut r = Project::empty(p.id());
    r.ingest(p.history()).expect("history ingests");
    r
}

/// A project owned by `owner` with one notebook and one code cell.
fn project_with_cell(owner: &Session) -> (Project, NotebookId, orrery_crdt::CellId) {
    let (mut p, _) = Project::create(owner, "Vega photometry", Visibility::Shared).expect("create");
    let nb = p.add_notebook(owner, "analysis").expect("notebook");
    let cell = p
        .insert_cell(owner, &nb, 0, NewCell::new(CellKind::Code, "print(1)"))
        .expect("cell");
    p.seal(owner);
    (p, nb, cell)
}

/// Makes a change on a copy of `p`'s document as `actor`, bypassing every local check, as a
/// hostile replica would. Returns the raw change bytes.
fn rogue_change(p: &Project, actor: ActorId, f: impl FnOnce(&mut Transaction<'_>)) -> Vec<u8> {
    forge::rogue(p, actor, f).1
}

fn title_edit(title: &'static str) -> impl FnOnce(&mut Transaction<'_>) {
    move |tx| {
        tx.put(automerge::ROOT, "title", title).expect("put");
    }
}

fn assert_untouched(p: &Project, before: &[orrery_protocol::ChangeHash], title: &str) {
    assert_eq!(p.heads(), before, "heads changed");
    assert_eq!(p.title(), title, "content changed");
}

#[test]
fn a_replica_built_from_history_equals_the_original() {
    let alice = session();
    let (mut p, nb, cell) = project_with_cell(&alice);
    p.splice_source(&alice, &nb, &cell, 8, 0, "\nprint(2)")
        .expect("edit");
    p.seal(&alice);
    let r = replica_of(&p);
    assert_eq!(r.heads(), p.heads());
    assert_eq!(r.notebook(&nb).expect("nb"), p.notebook(&nb).expect("nb"));
    assert_eq!(r.members(), p.members());
}

#[test]
fn a_forged_seal_is_refused() {
    let alice = session();
    let (p, _, _) = project_with_cell(&alice);
    let mut r = replica_of(&p);
    let before = r.heads();
    let change = rogue_change(&p, alice.actor().clone(), title_edit("forged"));
    let good = seal_over(&p, &SecretKey::generate().expect("random"), &change);
    // Alice's key as signer, someone else's signature.
    let forged = Signed::<ChangeSeal>::from_parts(
        *alice.author().key(),
        good.payload().to_vec(),
        *good.signature(),
    );
    let err = r
        .ingest(Batch {
            changes: vec![change],
            seals: vec![forged],
        })
        .expect_err("refused");
    assert!(matches!(err, IngestError::ForgedSeal(_)), "{err}");
    assert_untouched(&r, &before, "Vega photometry");
}

#[test]
fn an_actor_naming_a_key_that_did_not_sign_is_refused() {
    let alice = session();
    let mallory = SecretKey::generate().expect("random");
    let (p, _, _) = project_with_cell(&alice);
    let mut r = replica_of(&p);
    let before = r.heads();
    // Mallory makes a change under Alice's actor id.
    let change = rogue_change(&p, alice.actor().clone(), title_edit("mallory was here"));
    // Sealed by Mallory: the seal names a change that is not hers.
    let err = r
        .ingest(Batch {
            changes: vec![change.clone()],
            seals: vec![seal_over(&p, &mallory, &change)],
        })
        .expect_err("refused");
    assert!(matches!(err, IngestError::SealNamesOthers { .. }), "{err}");
    // Not sealed at all.
    let err = r
        .ingest(Batch {
            changes: vec![change],
            seals: vec![],
        })
        .expect_err("refused");
    assert!(
        matches!(err, IngestError::Unsigned { author, .. } if author == alice.author()),
        "{err}"
    );
    assert_untouched(&r, &before, "Vega photometry");
}

#[test]
fn tampered_bytes_are_refused() {
    let alice = session();
    let (p, _, _) = project_with_cell(&alice);
    let mut r = replica_of(&p);
    let before = r.heads();
    let change = rogue_change(&p, alice.actor().clone(), title_edit("honest"));
    let seal = seal_over(&p, alice.key(), &change);
    // Flip one byte anywhere after the header: the checksum no longer matches.
    for at in [change.len() - 1, change.len() / 2, 12] {
        let mut flipped = change.clone();
        flipped[at] ^= 0x01;
        let err = r
            .ingest(Batch {
                changes: vec![flipped],
                seals: vec![seal.clone()],
            })
            .expect_err("refused");
        assert!(
            matches!(
                err,
                IngestError::Tampered { .. } | IngestError::Malformed { .. }
            ),
            "{err}"
        );
    }
    // A well-formed change with other content under the honest seal: its hash differs, so the
    // seal does not cover it. Until the sealed change itself arrives it waits, applied nowhere;
    // once it arrives the impostor is dropped.
    let other = rogue_change(&p, alice.actor().clone(), title_edit("altered"));
    let report = r
        .ingest(Batch {
            changes: vec![other],
            seals: vec![seal.clone()],
        })
        .expect("waits for the sealed change");
    assert!(report.applied.is_empty());
    assert_eq!(report.pending, 1);
    assert_untouched(&r, &before, "Vega photometry");
    let report = r
        .ingest(Batch {
            changes: vec![change],
            seals: vec![seal],
        })
        .expect("the sealed change applies");
    assert_eq!(report.applied.len(), 1);
    assert_eq!(report.pending, 0, "the impostor is dropped");
    assert_eq!(r.title(), "honest");
}

#[test]
fn authors_without_permission_are_refused() {
    let alice = session();
    let bob = session();
    let carol = session();
    let (mut p, _, _) = project_with_cell(&alice);
    p.set_member(&alice, bob.author(), Role::Viewer)
        .expect("owner adds viewer");
    p.set_member(&alice, carol.author(), Role::Editor)
        .expect("owner adds editor");
    p.seal(&alice);
    let mut r = replica_of(&p);
    let before = r.heads();

    // A viewer writes content.
    let change = rogue_change(&p, bob.actor().clone(), title_edit("viewer edit"));
    let err = r
        .ingest(Batch {
            seals: vec![seal_over(&p, bob.key(), &change)],
            changes: vec![change],
        })
        .expect_err("refused");
    assert!(
        matches!(err, IngestError::NotPermitted { role: "viewer", .. }),
        "{err}"
    );

    // An editor promotes herself.
    let members = p
        .doc()
        .get(automerge::ROOT, "members")
        .expect("get")
        .expect("members")
        .1;
    let change = rogue_change(&p, carol.actor().clone(), |tx| {
        tx.put(&members, carol.author().to_string(), "owner")
            .expect("put");
    });
    let err = r
        .ingest(Batch {
            seals: vec![seal_over(&p, carol.key(), &change)],
            changes: vec![change],
        })
        .expect_err("refused");
    assert!(
        matches!(
            err,
            IngestError::NotPermitted {
                role: "editor",
                action: "change members",
                ..
            }
        ),
        "{err}"
    );

    // A stranger writes.
    let dave = session();
    let change = rogue_change(&p, dave.actor().clone(), title_edit("stranger"));
    let err = r
        .ingest(Batch {
            seals: vec![seal_over(&p, dave.key(), &change)],
            changes: vec![change],
        })
        .expect_err("refused");
    assert!(
        matches!(err, IngestError::NotPermitted { role: "none", .. }),
        "{err}"
    );

    // Even an owner may not replace a schema container.
    let change = rogue_change(&p, alice.actor().clone(), |tx| {
        tx.put_object(automerge::ROOT, "members", automerge::ObjType::Map)
            .expect("put");
    });
    let err = r
        .ingest(Batch {
            seals: vec![seal_over(&p, alice.key(), &change)],
            changes: vec![change],
        })
        .expect_err("refused");
    assert!(matches!(err, IngestError::Forbidden { .. }), "{err}");
    assert_untouched(&r, &before, "Vega photometry");
}

#[test]
fn malformed_and_oversize_bytes_are_refused() {
    let alice = session();
    let (p, _, _) = project_with_cell(&alice);
    let mut r = replica_of(&p);
    let before = r.heads();
    let good = rogue_change(&p, alice.actor().clone(), title_edit("fine"));
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        b"not automerge at all".to_vec(),
        good[..good.len() / 2].to_vec(),
        {
            // Claim to be a compressed change chunk.
            let mut c = good.clone();
            c[8] = 2;
            c
        },
        {
            // A document chunk where a change is expected.
            p.save()
        },
    ];
    for bytes in cases {
        let err = r
            .ingest(Batch {
                changes: vec![bytes],
                seals: vec![],
            })
            .expect_err("refused");
        assert!(matches!(err, IngestError::Malformed { .. }), "{err}");
    }
    let huge = vec![0u8; orrery_protocol::limits::MAX_CHANGE_BYTES + 1];
    let err = r
        .ingest(Batch {
            changes: vec![huge],
            seals: vec![],
        })
        .expect_err("refused");
    assert!(matches!(err, IngestError::Oversize { .. }), "{err}");
    assert_untouched(&r, &before, "Vega photometry");
}

#[test]
fn a_seal_for_another_project_is_refused() {
    let alice = session();
    let (p, _, _) = project_with_cell(&alice);
    let (other, _) = Project::create(&alice, "other", Visibility::Public).expect("create");
    let mut r = replica_of(&p);
    let change = rogue_change(&p, alice.actor().clone(), title_edit("x"));
    let seal = seal_over(&other, alice.key(), &change);
    let err = r
        .ingest(Batch {
            changes: vec![change],
            seals: vec![seal],
        })
        .expect_err("refused");
    assert!(matches!(err, IngestError::WrongProject { .. }), "{err}");
}

#[test]
fn a_second_root_is_refused() {
    let alice = session();
    let (p, _, _) = project_with_cell(&alice);
    let mut r = replica_of(&p);
    let (other, genesis) = Project::create(&alice, "other", Visibility::Public).expect("create");
    let mut batch = genesis;
    // Re-seal the other project's genesis as if it belonged to this project.
    let c = automerge::Change::try_from(&batch.changes[0][..]).expect("parses");
    batch.seals = vec![
        Signed::sign(
            alice.key(),
            ChangeSeal {
                project: p.id(),
                heads: vec![orrery_protocol::ChangeHash(c.hash().0)],
            },
        )
        .into_unverified(),
    ];
    let err = r.ingest(batch).expect_err("refused");
    assert!(matches!(err, IngestError::SecondRoot { .. }), "{err}");
    assert_ne!(other.id(), p.id());
}

#[test]
fn changes_wait_for_missing_dependencies() {
    let alice = session();
    let (mut p, nb, cell) = project_with_cell(&alice);
    let mut r = replica_of(&p);
    p.splice_source(&alice, &nb, &cell, 0, 0, "a")
        .expect("edit");
    let first = p.seal(&alice);
    p.splice_source(&alice, &nb, &cell, 1, 0, "b")
        .expect("edit");
    let second = p.seal(&alice);
    let report = r.ingest(second).expect("waits");
    assert!(report.applied.is_empty());
    assert_eq!(report.pending, 1);
    assert_eq!(r.cell(&nb, &cell).expect("cell").source, "print(1)");
    let report = r.ingest(first).expect("applies");
    assert_eq!(report.applied.len(), 2);
    assert_eq!(report.pending, 0);
    assert_eq!(r.cell(&nb, &cell).expect("cell").source, "abprint(1)");
    assert_eq!(r.heads(), p.heads());
}

#[test]
fn duplicates_are_ignored() {
    let alice = session();
    let (p, _, _) = project_with_cell(&alice);
    let mut r = replica_of(&p);
    let report = r.ingest(p.history()).expect("ingests");
    assert!(report.applied.is_empty());
    assert!(report.duplicates > 0);
    assert_eq!(r.heads(), p.heads());
}

#[test]
fn an_edit_concurrent_with_the_authors_removal_is_held_and_later_ones_refused() {
    let alice = session();
    let bob = session();
    let (mut a, nb, cell) = project_with_cell(&alice);
    a.set_member(&alice, bob.author(), Role::Editor)
        .expect("add bob");
    a.seal(&alice);
    let mut b = replica_of(&a);
    let mut c = replica_of(&a);
    assert_eq!(b.role_of(&bob.author()), Some(Role::Editor));

    // Concurrently: Alice removes Bob; Bob edits the cell.
    a.remove_member(&alice, bob.author()).expect("remove bob");
    let removal = a.seal(&alice);
    b.splice_source(&bob, &nb, &cell, 0, 0, "# bob\n")
        .expect("bob edits");
    let concurrent = b.seal(&bob);

    // Replica C receives them in one order, A in the other: both hold Bob's edit (valid at its
    // causal past, but concurrent with his removal and built on by nobody).
    c.ingest(removal.clone()).expect("removal");
    c.ingest(concurrent.clone())
        .expect("concurrent edit judged at its past");
    a.ingest(concurrent)
        .expect("concurrent edit judged at its past");
    b.ingest(removal).expect("removal reaches bob");
    assert_eq!(a.heads(), c.heads());
    assert_eq!(a.heads(), b.heads());
    for r in [&a, &b, &c] {
        assert_eq!(r.cell(&nb, &cell).expect("cell").source, "print(1)");
        assert_eq!(r.held().len(), 1);
    }
    assert_eq!(a.role_of(&bob.author()), None);

    // Bob has now seen his removal; his next edit depends on it and is refused everywhere.
    let before = a.heads();
    let later = rogue_change(&b, bob.actor().clone(), title_edit("too late"));
    let batch = Batch {
        seals: vec![seal_over(&b, bob.key(), &later)],
        changes: vec![later],
    };
    // It builds on his held edit, so it is judged with the changes that waited for it: refused
    // either as the batch's own failure or, charged to its sender, in the report.
    let refused_here = |r: Result<orrery_crdt::IngestReport, IngestError>| match r {
        Err(err) => matches!(err, IngestError::NotPermitted { role: "none", .. }),
        Ok(report) => {
            report.applied.is_empty()
                && report
                    .refused
                    .iter()
                    .any(|x| matches!(*x.error, IngestError::NotPermitted { role: "none", .. }))
        }
    };
    assert!(refused_here(a.ingest(batch.clone())), "refused at A");
    assert!(refused_here(c.ingest(batch)), "refused at C");
    assert_eq!(a.heads(), before);
}

#[test]
fn a_member_added_and_editing_in_one_batch_is_accepted() {
    let alice = session();
    let bob = session();
    let (mut a, nb, cell) = project_with_cell(&alice);
    let mut r = replica_of(&a);
    a.set_member(&alice, bob.author(), Role::Editor)
        .expect("add bob");
    let mut batch = a.seal(&alice);
    a.splice_source(&bob, &nb, &cell, 0, 0, "bob: ")
        .expect("bob edits");
    let b2 = a.seal(&bob);
    batch.changes.extend(b2.changes);
    batch.seals.extend(b2.seals);
    let report = r.ingest(batch).expect("accepted in two rounds");
    assert_eq!(report.applied.len(), 2);
    assert_eq!(r.heads(), a.heads());
    assert_eq!(r.cell(&nb, &cell).expect("cell").source, "bob: print(1)");
    // Local checks refuse what ingest would refuse.
    let carol = session();
    assert!(a.set_title(&carol, "nope").is_err());
}

#[test]
fn the_founder_stays_owner_whatever_concurrent_demotions_say() {
    let alice = session();
    let bob = session();
    let (mut a, _, _) = project_with_cell(&alice);
    a.set_member(&alice, bob.author(), Role::Owner)
        .expect("bob owner");
    a.seal(&alice);
    assert!(matches!(
        a.remove_member(&bob, alice.author()),
        Err(orrery_crdt::EditError::Founder(_))
    ));
    let mut b = replica_of(&a);
    // Bob bypasses the local check and demotes Alice; Alice concurrently demotes Bob.
    let members = a
        .doc()
        .get(automerge::ROOT, "members")
        .expect("get")
        .expect("members")
        .1;
    let demote_alice = rogue_change(&b, bob.actor().clone(), |tx| {
        tx.put(&members, alice.author().to_string(), "viewer")
            .expect("put");
    });
    b.ingest(Batch {
        seals: vec![seal_over(&b, bob.key(), &demote_alice)],
        changes: vec![demote_alice],
    })
    .expect("an owner may change roles");
    a.set_member(&alice, bob.author(), Role::Viewer)
        .expect("demote bob");
    let from_a = a.seal(&alice);
    b.ingest(from_a).expect("merge");
    a.ingest(b.history()).expect("merge");
    assert_eq!(a.heads(), b.heads());
    // The project still has an owner, and it is the founder.
    assert_eq!(a.role_of(&alice.author()), Some(Role::Owner));
    assert_eq!(a.founder(), Some(alice.author()));
    assert!(
        a.members()
            .iter()
            .any(|m| m.author == alice.author() && m.role == Role::Owner)
    );
    a.set_title(&alice, "still governed")
        .expect("the founder can act");
}

#[test]
fn two_changes_with_one_sequence_number_are_named_as_equivocation() {
    let alice = session();
    let (p, _, _) = project_with_cell(&alice);
    let mut r = replica_of(&p);
    // Alice makes two different changes from the same state with the same actor: both get the
    // same sequence number.
    let one = rogue_change(&p, alice.actor().clone(), title_edit("one"));
    let two = rogue_change(&p, alice.actor().clone(), title_edit("two"));
    r.ingest(Batch {
        seals: vec![seal_over(&p, alice.key(), &one)],
        changes: vec![one],
    })
    .expect("the first is fine");
    let before = r.heads();
    let err = r
        .ingest(Batch {
            seals: vec![seal_over(&p, alice.key(), &two)],
            changes: vec![two],
        })
        .expect_err("refused");
    assert!(
        matches!(err, IngestError::Equivocation { author: Some(a), .. } if a == alice.author()),
        "{err}"
    );
    assert_eq!(r.heads(), before);
    assert_eq!(r.title(), "one");
}

/// A project where `bob` is a viewer, a replica of it, and then one more honest edit by alice
/// that the replica has not seen (returned as its sealed batch).
fn viewer_behind_an_unseen_edit(alice: &Session, bob: &Session) -> (Project, Project, Batch) {
    let (mut p, nb, cell) = project_with_cell(alice);
    p.set_member(alice, bob.author(), Role::Viewer)
        .expect("owner adds viewer");
    p.seal(alice);
    let r = replica_of(&p);
    p.splice_source(alice, &nb, &cell, 0, 0, "# honest\n")
        .expect("edit");
    let honest = p.seal(alice);
    (p, r, honest)
}

#[test]
fn a_parked_bad_change_is_refused_apart_from_the_honest_batch_that_completes_it() {
    let alice = session();
    let bob = session();
    let (p, mut r, honest) = viewer_behind_an_unseen_edit(&alice, &bob);
    let mallory_peer = orrery_crdt::Origin([7; 32]);
    let honest_peer = orrery_crdt::Origin([9; 32]);

    // The viewer writes content on top of alice's edit, which the replica lacks: it is parked.
    let forged = rogue_change(&p, bob.actor().clone(), title_edit("viewer edit"));
    let report = r
        .ingest_from(
            Batch {
                seals: vec![seal_over(&p, bob.key(), &forged)],
                changes: vec![forged.clone()],
            },
            mallory_peer,
        )
        .expect("parked: its dependency has not arrived");
    assert!(report.applied.is_empty());
    assert_eq!(report.pending, 1);

    // An honest peer delivers alice's edit: it applies, and the parked change is refused and
    // named as the viewer's sender's, not the honest peer's.
    let report = r
        .ingest_from(honest, honest_peer)
        .expect("the honest batch is not refused for the parked change");
    assert_eq!(report.applied.len(), 1, "the honest edit applied");
    assert_eq!(report.pending, 0, "the refused change no longer waits");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    let refused = &report.refused[0];
    assert_eq!(refused.origin, mallory_peer);
    assert_eq!(
        refused.hash.0,
        automerge::Change::try_from(&forged[..])
            .expect("parses")
            .hash()
            .0
    );
    assert!(
        matches!(
            *refused.error,
            IngestError::NotPermitted { role: "viewer", .. }
        ),
        "{}",
        refused.error
    );
    assert_eq!(
        r.title(),
        "Vega photometry",
        "the forged title never applied"
    );
    assert_eq!(r.heads(), p.heads(), "the replica holds alice's edit");
}

#[test]
fn a_parked_good_change_applies_with_the_batch_that_completes_it() {
    let alice = session();
    let bob = session();
    let (mut p, mut r, first) = viewer_behind_an_unseen_edit(&alice, &bob);
    p.add_notebook(&alice, "more").expect("notebook");
    let second = p.seal(&alice);
    let report = r
        .ingest_from(second, orrery_crdt::Origin([1; 32]))
        .expect("parked");
    assert_eq!(report.pending, 1);
    let report = r
        .ingest_from(first, orrery_crdt::Origin([2; 32]))
        .expect("applies");
    assert_eq!(report.applied.len(), 2);
    assert!(report.refused.is_empty());
    assert_eq!(r.heads(), p.heads());
}

/// The pinned environment replicates with the project; only owners may set it, and a forged
/// pin (an editor's, or one that is no environment) is refused.
#[test]
fn only_owners_pin_the_environment_and_it_replicates() {
    let alice = session();
    let bob = session();
    let (mut p, _, _) = project_with_cell(&alice);
    p.set_member(&alice, bob.author(), Role::Editor)
        .expect("editor");
    p.seal(&alice);
    let pin = orrery_crdt::PinnedEnvironment {
        id: "jupyter".into(),
        lock: "numpy==2.1.3\nastropy==6.1.4\n".into(),
        pinned_at: 1_780_000_000,
        image: Some(format!(
            "registry.example.org/labs/jupyter@sha256:{}",
            "ab".repeat(32)
        )),
    };
    p.pin_environment(&alice, Some(&pin))
        .expect("an owner pins");
    p.seal(&alice);
    let mut r = replica_of(&p);
    assert_eq!(r.pinned_environment(), Some(pin.clone()));

    let err = r
        .pin_environment(&bob, None)
        .expect_err("an editor may not unpin");
    assert!(
        err.to_string().contains("may not pin the environment"),
        "{err}"
    );
    let oversize = orrery_crdt::PinnedEnvironment {
        lock: "x".repeat(orrery_crdt::MAX_LOCK_BYTES + 1),
        ..pin.clone()
    };
    assert!(p.pin_environment(&alice, Some(&oversize)).is_err());
    for tag in ["jupyter:latest", "jupyter@sha256:abc", "Evil@sha256:"] {
        let by_tag = orrery_crdt::PinnedEnvironment {
            image: Some(tag.into()),
            ..pin.clone()
        };
        assert!(p.pin_environment(&alice, Some(&by_tag)).is_err(), "{tag}");
    }

    let before = r.heads();
    let forged = |text: &'static str| {
        move |tx: &mut Transaction<'_>| {
            tx.put(automerge::ROOT, "environment", text).expect("put");
        }
    };
    let by_editor = rogue_change(
        &p,
        bob.actor().clone(),
        forged(r#"{"id":"jupyter","lock":"evil==1\n","pinned_at":0}"#),
    );
    let err = r
        .ingest(Batch {
            seals: vec![seal_over(&p, bob.key(), &by_editor)],
            changes: vec![by_editor],
        })
        .expect_err("refused");
    assert!(matches!(err, IngestError::NotPermitted { .. }), "{err}");
    let not_a_pin = rogue_change(&p, alice.actor().clone(), forged("rm -rf /"));
    let err = r
        .ingest(Batch {
            seals: vec![seal_over(&p, alice.key(), &not_a_pin)],
            changes: vec![not_a_pin],
        })
        .expect_err("refused");
    assert!(matches!(err, IngestError::Forbidden { .. }), "{err}");
    assert_eq!(r.heads(), before);
    assert_eq!(r.pinned_environment(), Some(pin));

    // Unpinned by an owner, everywhere.
    p.pin_environment(&alice, None).expect("an owner unpins");
    let batch = p.seal(&alice);
    r.ingest(batch).expect("accepted");
    assert_eq!(r.pinned_environment(), None);
}

/// A project's preservation policy is the owners' to set; a forged one is refused.
#[test]
fn only_owners_set_the_preservation_policy() {
    use orrery_protocol::preservation::{PreservationPolicy, Subject};
    let alice = session();
    let bob = session();
    let (mut p, _, _) = project_with_cell(&alice);
    p.set_member(&alice, bob.author(), Role::Editor)
        .expect("editor");
    p.seal(&alice);
    let policy = PreservationPolicy {
        subject: Subject::Project(p.id()),
        copies: 2,
        distinct_institutions: true,
        pinned: Vec::new(),
        seq: 1,
        issued_at: 0,
    };
    p.set_preservation_policy(&alice, Some(&policy))
        .expect("an owner sets it");
    p.seal(&alice);
    let mut r = replica_of(&p);
    assert_eq!(r.preservation_policy(), Some(policy.clone()));
    assert!(
        r.set_preservation_policy(&bob, None).is_err(),
        "an editor may not"
    );
    let text = serde_json::to_string(&PreservationPolicy {
        copies: 1,
        ..policy.clone()
    })
    .expect("json");
    let forged = rogue_change(&p, bob.actor().clone(), move |tx| {
        tx.put(automerge::ROOT, "preservation", text.as_str())
            .expect("put");
    });
    let err = r
        .ingest(Batch {
            seals: vec![seal_over(&p, bob.key(), &forged)],
            changes: vec![forged],
        })
        .expect_err("refused");
    assert!(matches!(err, IngestError::NotPermitted { .. }), "{err}");
    let zero = rogue_change(&p, alice.actor().clone(), |tx| {
        tx.put(automerge::ROOT, "preservation", "{\"copies\":0}")
            .expect("put");
    });
    let err = r
        .ingest(Batch {
            seals: vec![seal_over(&p, alice.key(), &zero)],
            changes: vec![zero],
        })
        .expect_err("refused");
    assert!(matches!(err, IngestError::Forbidden { .. }), "{err}");
    assert_eq!(r.preservation_policy(), Some(policy));
}
