//! Who the authors are: their self-signed profiles (name, ORCID iD, affiliation), published in
//! the project so every replica can name them in credits and citations, and the attestations
//! of nodes where an author signed in with their ORCID iD.
//!
//! Both live in the `profiles` map, under keys only the author may write: their author id for
//! the profile, and `<author id>:orcid` for an attestation.

use std::collections::BTreeMap;

use automerge::{ReadDoc, ScalarValue, Value};
use orrery_protocol::{
    AuthorId, AuthorProfile, OrcidAttestation, Signed, SignedPayload, Unverified, Verified,
};

use super::*;

/// The suffix of an author's attestation key in the `profiles` map.
pub(crate) const ATTESTATION_SUFFIX: &str = ":orcid";

impl Project {
    /// Publishes the session author's signed profile in the project, so that every replica can
    /// name them in credits and citations (editors and owners; each author writes only their
    /// own entry). Does nothing if the same profile is already there.
    pub fn publish_profile(
        &mut self,
        session: &Session,
        profile: &Signed<AuthorProfile, Verified>,
    ) -> Result<(), EditError> {
        if profile.value().author != session.author() {
            return Err(EditError::NotPermitted {
                author: session.author(),
                action: "publish another author's profile",
                role: "any".into(),
            });
        }
        let bytes = orrery_protocol::encoding::encode(&profile.clone().into_unverified());
        if self.entry_bytes(&session.author().to_string()).as_deref() == Some(&bytes[..]) {
            return Ok(());
        }
        self.edit(session, Role::Editor, "publish a profile", |tx, roots| {
            tx.put(&roots.profiles, session.author().to_string(), bytes)?;
            Ok(())
        })
    }

    /// The verified profiles published in the project. Entries that do not verify, are not
    /// self-signed, or sit under another author's key are skipped.
    pub fn profiles(&self) -> BTreeMap<AuthorId, AuthorProfile> {
        let Some(roots) = &self.roots else {
            return BTreeMap::new();
        };
        self.doc
            .map_range(&roots.profiles, ..)
            .filter_map(|item| {
                let author: AuthorId = item.key.parse().ok()?;
                let signed: Signed<AuthorProfile, Unverified> = decode_entry(&item.value)?;
                let verified = AuthorProfile::verify(signed).ok()?;
                (verified.value().author == author).then(|| (author, verified.value().clone()))
            })
            .collect()
    }

    /// Publishes a node's attestation that the session's author signed in with an ORCID iD
    /// (editors and owners; each author publishes only attestations about themselves). Does
    /// nothing if the same attestation is already there.
    pub fn publish_orcid_attestation(
        &mut self,
        session: &Session,
        attestation: &Signed<OrcidAttestation, Verified>,
    ) -> Result<(), EditError> {
        if attestation.value().author != session.author() {
            return Err(EditError::NotPermitted {
                author: session.author(),
                action: "publish an attestation about another author",
                role: "any".into(),
            });
        }
        let key = format!("{}{ATTESTATION_SUFFIX}", session.author());
        let bytes = orrery_protocol::encoding::encode(&attestation.clone().into_unverified());
        if self.entry_bytes(&key).as_deref() == Some(&bytes[..]) {
            return Ok(());
        }
        self.edit(
            session,
            Role::Editor,
            "publish an ORCID attestation",
            |tx, roots| {
                tx.put(&roots.profiles, key.as_str(), bytes)?;
                Ok(())
            },
        )
    }

    /// The attestations published in the project whose signature verifies and that are about
    /// the author whose key they sit under. Whether their signers are to be trusted (members of
    /// the federation) is for the caller to judge.
    pub fn orcid_attestations(&self) -> BTreeMap<AuthorId, Signed<OrcidAttestation, Verified>> {
        let Some(roots) = &self.roots else {
            return BTreeMap::new();
        };
        self.doc
            .map_range(&roots.profiles, ..)
            .filter_map(|item| {
                let author: AuthorId = item.key.strip_suffix(ATTESTATION_SUFFIX)?.parse().ok()?;
                let signed: Signed<OrcidAttestation, Unverified> = decode_entry(&item.value)?;
                let verified = OrcidAttestation::verify(signed).ok()?;
                (verified.value().author == author).then_some((author, verified))
            })
            .collect()
    }

    /// The bytes under `key` in the `profiles` map, if any.
    fn entry_bytes(&self, key: &str) -> Option<Vec<u8>> {
        let roots = self.roots.as_ref()?;
        match self.doc.get(&roots.profiles, key) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Bytes(b) => Some(b.clone()),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A signed value stored as bytes in the `profiles` map.
fn decode_entry<T: SignedPayload>(
    value: &automerge::ValueRef<'_>,
) -> Option<Signed<T, Unverified>> {
    let bytes = match value {
        automerge::ValueRef::Scalar(automerge::ScalarValueRef::Bytes(b)) => b.to_vec(),
        _ => return None,
    };
    orrery_protocol::encoding::decode(
        T::NAME,
        &bytes,
        orrery_protocol::limits::MAX_SIGNED_PAYLOAD * 2,
    )
    .ok()
}
