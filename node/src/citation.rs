//! CITATION.cff for a project, from its verified history.
//!
//! Authors are everyone credited in the project, ordered by surviving characters then changes,
//! named by the signed profiles they published (with ORCID and affiliation where given).

use std::collections::BTreeMap;
use std::fmt::Write;

use orrery_crdt::Project;
use orrery_crdt::credit::Share;
use orrery_protocol::{AuthorId, AuthorProfile};

fn q(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Renders CITATION.cff (format 1.2.0). `extra` names authors known locally whose profiles the
/// project does not carry yet.
pub fn citation_cff(project: &Project, extra: &BTreeMap<AuthorId, AuthorProfile>) -> String {
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
                if let Some(orcid) = &p.orcid {
                    let _ = writeln!(out, "    orcid: {}", q(&orcid.url()));
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
