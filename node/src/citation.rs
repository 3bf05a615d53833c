//! CITATION.cff for a project, from its verified history.
//!
//! Authors are everyone credited in the project, ordered by surviving characters then changes,
//! named by the signed profiles they published (with ORCID and affiliation where given). An ORCID
//! iD is *verified* when a member node attested that the author signed in there with it (see
//! [`verified_orcids`]); otherwise it is only declared in the author's own profile, and the file
//! says which.

use std::collections::BTreeMap;
use std::fmt::Write;

use orrery_crdt::Project;
use orrery_crdt::credit::Share;
use orrery_protocol::federation::Membership;
use orrery_protocol::{AuthorId, AuthorProfile, NodeId, Orcid};

/// An ORCID iD a node vouched for: the author signed in there with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedOrcid {
    /// The iD.
    pub orcid: Orcid,
    /// The node that attested it.
    pub by: NodeId,
    /// That node's name in the federation (its short id when it has none).
    pub by_name: String,
}

/// The ORCID iDs attested in `project` by a node this node trusts: a current member of its
/// federation (`membership`), or this node itself (`me`).
pub fn verified_orcids(
    project: &Project,
    membership: Option<&Membership>,
    me: NodeId,
) -> BTreeMap<AuthorId, VerifiedOrcid> {
    let names: BTreeMap<NodeId, String> = membership
        .map(|m| m.members().into_iter().collect())
        .unwrap_or_default();
    project
        .orcid_attestations()
        .into_iter()
        .filter_map(|(author, a)| {
            let by = NodeId(*a.signer());
            let trusted = by == me || membership.is_some_and(|m| m.is_member(&by));
            trusted.then(|| {
                (
                    author,
                    VerifiedOrcid {
                        orcid: a.value().orcid.clone(),
                        by,
                        by_name: names.get(&by).cloned().unwrap_or_else(|| by.short()),
                    },
                )
            })
        })
        .collect()
}

/// How an author's ORCID iD is known, in words: verified by a node, or declared.
pub fn orcid_note(declared: Option<&Orcid>, verified: Option<&VerifiedOrcid>) -> Option<String> {
    match (declared, verified) {
        (_, Some(v)) => Some(format!(
            "{} (verified by {} through an ORCID sign-in)",
            v.orcid, v.by_name
        )),
        (Some(d), None) => Some(format!("{d} (declared, not verified)")),
        (None, None) => None,
    }
}

fn q(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Renders CITATION.cff (format 1.2.0). `extra` names authors known locally whose profiles the
/// project does not carry yet; `verified` are the iDs trusted nodes attested
/// ([`verified_orcids`]), which win over an iD a profile only declares.
pub fn citation_cff(
    project: &Project,
    extra: &BTreeMap<AuthorId, AuthorProfile>,
    verified: &BTreeMap<AuthorId, VerifiedOrcid>,
) -> String {
    let credits = project.credits();
    let mut profiles = extra.clone();
    profiles.extend(project.profiles());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by Orrery from the signed history of project {}.",
        project.id()
    );
    let _ = writeln!(out, "cff-version: 1.2.0");
    let _ = writeln!(
        out,
        "message: \"If you use this work, please cite it as below.\""
    );
    let _ = writeln!(out, "type: software");
    let _ = writeln!(out, "title: {}", q(&project.title()));
    let description = project.description();
    if !description.trim().is_empty() {
        let _ = writeln!(out, "abstract: {}", q(description.trim()));
    }
    let _ = writeln!(out, "identifiers:");
    let _ = writeln!(out, "  - type: other");
    let _ = writeln!(
        out,
        "    value: {}",
        q(&format!("orrery:project:{}", project.id()))
    );
    let _ = writeln!(
        out,
        "    description: \"Orrery project id (the hash of its genesis change)\""
    );
    let _ = writeln!(out, "authors:");
    let contributors: Vec<&Share> = credits
        .shares
        .iter()
        .filter(|s| s.chars > 0 || s.changes > 0)
        .collect();
    for share in contributors {
        match profiles.get(&share.author) {
            Some(p) => {
                let name = p.name.trim();
                match name.rsplit_once(' ') {
                    Some((given, family)) => {
                        let _ = writeln!(out, "  - given-names: {}", q(given.trim()));
                        let _ = writeln!(out, "    family-names: {}", q(family));
                    }
                    None => {
                        let _ = writeln!(out, "  - family-names: {}", q(name));
                    }
                }
                match verified.get(&share.author) {
                    Some(v) => {
                        let by = v.by.short();
                        let name = v.by_name.replace(['\n', '\r'], " ");
                        let who = if name == by {
                            by
                        } else {
                            format!("{name} ({by})")
                        };
                        let _ = writeln!(
                            out,
                            "    orcid: {}  # verified by {who} through an ORCID sign-in",
                            q(&v.orcid.url()),
                        );
                    }
                    None => {
                        if let Some(orcid) = &p.orcid {
                            let _ = writeln!(
                                out,
                                "    orcid: {}  # declared by the author, not verified",
                                q(&orcid.url())
                            );
                        }
                    }
                }
                if let Some(aff) = &p.affiliation {
                    let _ = writeln!(out, "    affiliation: {}", q(aff));
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "  - name: {}",
                    q(&format!("Orrery author {}", share.author))
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use orrery_crdt::{Session, Visibility};
    use orrery_protocol::{OrcidAttestation, SecretKey, Signed, Verified};

    use super::*;

    fn profile(session: &Session, name: &str, orcid: &str) -> Signed<AuthorProfile, Verified> {
        Signed::sign(
            session.key(),
            AuthorProfile {
                author: session.author(),
                name: name.into(),
                orcid: Some(orcid.parse().expect("an iD")),
                affiliation: None,
                created_at: 1_780_000_000,
            },
        )
    }

    fn attest(
        node: &SecretKey,
        session: &Session,
        orcid: &str,
    ) -> Signed<OrcidAttestation, Verified> {
        Signed::sign(
            node,
            OrcidAttestation {
                author: session.author(),
                orcid: orcid.parse().expect("an iD"),
                issuer: "https://orcid.org".into(),
                attested_at: 1_780_000_000,
            },
        )
    }

    #[test]
    fn only_an_attestation_by_a_trusted_node_verifies_an_orcid_id() {
        let alice = Session::new(SecretKey::generate().expect("random")).expect("random");
        let bob = Session::new(SecretKey::generate().expect("random")).expect("random");
        let here = SecretKey::generate().expect("random");
        let stranger = SecretKey::generate().expect("random");
        let (mut p, _) = Project::create(&alice, "Vega", Visibility::Shared).expect("create");
        p.set_member(&alice, bob.author(), orrery_crdt::Role::Editor)
            .expect("bob");
        p.publish_profile(
            &alice,
            &profile(&alice, "Alice Ames", "0000-0002-1825-0097"),
        )
        .expect("alice's profile");
        p.publish_profile(&bob, &profile(&bob, "Bob Berg", "0000-0001-5109-3700"))
            .expect("bob's profile");
        p.publish_orcid_attestation(&alice, &attest(&here, &alice, "0000-0002-1825-0097"))
            .expect("alice's attestation");
        // Bob's attestation comes from a node that is neither this one nor a member.
        p.publish_orcid_attestation(&bob, &attest(&stranger, &bob, "0000-0001-5109-3700"))
            .expect("bob's attestation");
        let me = NodeId(here.public());
        let verified = verified_orcids(&p, None, me);
        assert_eq!(verified.len(), 1, "{verified:?}");
        let v = verified
            .get(&alice.author())
            .expect("alice's iD is verified");
        assert_eq!(
            (v.by, v.orcid.to_string().as_str()),
            (me, "0000-0002-1825-0097")
        );
        assert!(!verified.contains_key(&bob.author()));

        // Alice typed, Bob typed: both are authors of the citation.
        let nb = p.add_notebook(&alice, "analysis").expect("notebook");
        p.insert_cell(
            &bob,
            &nb,
            0,
            orrery_crdt::NewCell::new(orrery_crdt::CellKind::Code, "x = 1"),
        )
        .expect("bob's cell");
        let cff = citation_cff(&p, &BTreeMap::new(), &verified);
        let line = |id: &str| {
            cff.lines()
                .find(|l| l.contains(id))
                .unwrap_or_else(|| panic!("{id} missing:\n{cff}"))
                .to_owned()
        };
        assert!(
            line("0000-0002-1825-0097").contains("# verified by"),
            "{cff}"
        );
        assert!(
            line("0000-0001-5109-3700").contains("# declared by the author, not verified"),
            "{cff}"
        );
    }
}
