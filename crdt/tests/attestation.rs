//! ORCID attestations: a node's signed statement that an author signed in there with an ORCID
//! iD, published by the author in the project and read back by every replica; no author can
//! publish one about somebody else, not even by bypassing the local checks.

use automerge::ReadDoc;
use automerge::transaction::Transactable;
use orrery_crdt::ingest::IngestError;
use orrery_crdt::{Batch, EditError, Project, Role, Session, Visibility};
use orrery_protocol::{Orcid, OrcidAttestation, SecretKey, Signed, Verified};

#[path = "support/forge.rs"]
mod forge;

fn session() -> Session {
    Session::new(SecretKey::generate().expect("random")).expect("random")
}

fn attestation(
    node: &SecretKey,
    about: &Session,
    orcid: &str,
) -> Signed<OrcidAttestation, Verified> {
    Signed::sign(
        node,
        OrcidAttestation {
            author: about.author(),
            orcid: orcid.parse::<Orcid>().expect("an iD"),
            issuer: "https://orcid.org".into(),
            attested_at: 1_780_000_000,
        },
    )
}

#[test]
fn an_attestation_published_by_its_author_is_read_by_every_replica() {
    let (alice, bob) = (session(), session());
    let node = SecretKey::generate().expect("random");
    let (mut p, _) =
        Project::create(&alice, "Vega photometry", Visibility::Shared).expect("create");
    p.set_member(&alice, bob.author(), Role::Editor)
        .expect("bob");
    p.seal(&alice);
    let mut replica = Project::empty(p.id());
    replica.ingest(p.history()).expect("history");

    let bobs = attestation(&node, &bob, "0000-0002-1825-0097");
    // Alice cannot publish it for Bob.
    assert!(matches!(
        p.publish_orcid_attestation(&alice, &bobs),
        Err(EditError::NotPermitted { .. })
    ));
    replica
        .publish_orcid_attestation(&bob, &bobs)
        .expect("bob publishes his own");
    // Publishing the same one again changes nothing.
    let heads = replica.heads();
    replica
        .publish_orcid_attestation(&bob, &bobs)
        .expect("again");
    assert_eq!(replica.heads(), heads);
    let batch = replica.seal(&bob);
    p.ingest(batch).expect("alice's replica takes it");
    let read = p.orcid_attestations();
    let got = read.get(&bob.author()).expect("bob's attestation");
    assert_eq!(*got.signer(), node.public());
    assert_eq!(got.value().orcid.to_string(), "0000-0002-1825-0097");
    assert_eq!(read.len(), 1);
}

#[test]
fn nobody_writes_an_attestation_under_another_authors_key() {
    let (alice, bob) = (session(), session());
    let node = SecretKey::generate().expect("random");
    let (mut p, _) =
        Project::create(&alice, "Vega photometry", Visibility::Shared).expect("create");
    p.set_member(&alice, bob.author(), Role::Editor)
        .expect("bob");
    p.seal(&alice);
    let mut replica = Project::empty(p.id());
    replica.ingest(p.history()).expect("history");
    let before = replica.heads();

    // Bob, an editor, writes an attestation of his own iD under Alice's key, bypassing the
    // local checks: every replica refuses it.
    let claim = attestation(&node, &alice, "0000-0002-1825-0097");
    let bytes = orrery_protocol::encoding::encode(&claim.into_unverified());
    let profiles = p.doc().get(automerge::ROOT, "profiles").expect("get");
    let Some((_, profiles)) = profiles else {
        panic!("the project has a profiles map");
    };
    let key = format!("{}:orcid", alice.author());
    let change = forge::rogue(&p, bob.actor().clone(), |tx| {
        tx.put(&profiles, key.as_str(), bytes.clone()).expect("put");
    })
    .1;
    let seal = forge::seal_over(&p, bob.key(), &change);
    let err = replica
        .ingest(Batch {
            changes: vec![change],
            seals: vec![seal],
        })
        .expect_err("refused");
    assert!(matches!(err, IngestError::Forbidden { .. }), "{err}");
    assert_eq!(replica.heads(), before);
    assert!(replica.orcid_attestations().is_empty());
}

#[test]
fn an_attestation_under_the_wrong_key_or_with_a_bad_signature_is_not_read() {
    let (alice, bob) = (session(), session());
    let node = SecretKey::generate().expect("random");
    let (mut p, _) =
        Project::create(&alice, "Vega photometry", Visibility::Shared).expect("create");
    // Alice publishes, under her own key, an attestation that is about Bob: it is hers to
    // write, but it says nothing about her, so it is not read as hers (or his).
    let about_bob = attestation(&node, &bob, "0000-0002-1825-0097");
    let bytes = orrery_protocol::encoding::encode(&about_bob.into_unverified());
    let key = format!("{}:orcid", alice.author());
    let (doc, change) = forge::rogue(&p, alice.actor().clone(), |tx| {
        let profiles = match tx.get(automerge::ROOT, "profiles").expect("get") {
            Some((_, id)) => id,
            None => panic!("profiles"),
        };
        tx.put(&profiles, key.as_str(), bytes.clone()).expect("put");
    });
    drop(doc);
    let seal = forge::seal_over(&p, alice.key(), &change);
    p.ingest(Batch {
        changes: vec![change],
        seals: vec![seal],
    })
    .expect("her own key");
    assert!(p.orcid_attestations().is_empty());

    // A signature that does not verify.
    let good = attestation(&node, &alice, "0000-0002-1825-0097");
    let forged = Signed::<OrcidAttestation>::from_parts(
        node.public(),
        good.payload().to_vec(),
        *attestation(&node, &bob, "0000-0002-1825-0097").signature(),
    );
    let bytes = orrery_protocol::encoding::encode(&forged);
    let change = forge::rogue(&p, alice.actor().clone(), |tx| {
        let profiles = match tx.get(automerge::ROOT, "profiles").expect("get") {
            Some((_, id)) => id,
            None => panic!("profiles"),
        };
        tx.put(&profiles, key.as_str(), bytes.clone()).expect("put");
    })
    .1;
    let seal = forge::seal_over(&p, alice.key(), &change);
    p.ingest(Batch {
        changes: vec![change],
        seals: vec![seal],
    })
    .expect("her own key");
    assert!(p.orcid_attestations().is_empty());
}
