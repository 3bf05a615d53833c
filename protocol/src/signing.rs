//! Domain-separated signatures and the verified-by-type [`Signed`] wrapper.
//!
//! Every signature Orrery makes is over `len(context) ‖ context ‖ message`, where the context is
//! a distinct string per kind of signed thing ([`Domain`]). A signature over a change seal can
//! therefore never be replayed as an author profile or a node advert, even if the bytes agree.
//!
//! Signed data travels as [`Signed<T, Unverified>`]: the exact payload bytes, the signer and the
//! signature. Only [`Signed::verify`] turns it into [`Signed<T, Verified>`], and only a verified
//! value exposes its decoded payload.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::encoding::{self, DecodeError};
use crate::identity::{PublicKey, SecretKey, Signature};

/// The kinds of signed things, each with its own signature context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// An author's self-signed profile.
    AuthorProfile,
    /// A seal by an author over heads of a project's change history.
    ChangeSeal,
    /// A node's advert of its collections and compute.
    NodeAdvert,
    /// A federation's founding statement.
    FederationFounding,
    /// An invitation to join a federation.
    FederationInvitation,
    /// A node's request to join a federation.
    FederationJoin,
    /// A member's admission of a joining node.
    FederationAdmission,
    /// The founder's removal of a member.
    FederationRemoval,
    /// An ephemeral presence message.
    Presence,
    /// A node's signature over outputs it computed.
    Output,
    /// An author's statement that a node hosts them.
    Hosting,
    /// A node's statement that an author signed in there with an ORCID iD.
    OrcidAttestation,
    /// How many copies of a collection or project the federation keeps.
    PreservationPolicy,
    /// An author's request that a node run a cell.
    RunRequest,
    /// An author's order to a node's labs.
    LabOrder,
    /// A node's record of a job it ran.
    JobRecord,
    /// An author's request that a node make a run of a job.
    JobRequest,
}

impl Domain {
    /// The context string mixed into every signature of this kind.
    pub fn context(self) -> &'static str {
        match self {
            Domain::AuthorProfile => "orrery/v1/author-profile",
            Domain::ChangeSeal => "orrery/v1/change-seal",
            Domain::NodeAdvert => "orrery/v1/node-advert",
            Domain::FederationFounding => "orrery/v1/federation-founding",
            Domain::FederationInvitation => "orrery/v1/federation-invitation",
            Domain::FederationJoin => "orrery/v1/federation-join",
            Domain::FederationAdmission => "orrery/v1/federation-admission",
            Domain::FederationRemoval => "orrery/v1/federation-removal",
            Domain::Presence => "orrery/v1/presence",
            Domain::Output => "orrery/v1/output",
            Domain::Hosting => "orrery/v1/author-hosting",
            Domain::OrcidAttestation => "orrery/v1/orcid-attestation",
            Domain::PreservationPolicy => "orrery/v1/preservation-policy",
            Domain::RunRequest => "orrery/v1/run-request",
            Domain::LabOrder => "orrery/v1/lab-order",
            Domain::JobRecord => "orrery/v1/job-record",
            Domain::JobRequest => "orrery/v1/job-request",
        }
    }
}

/// The bytes actually signed: the context's length and text, then the message.
pub(crate) fn frame(domain: Domain, message: &[u8]) -> Vec<u8> {
    let ctx = domain.context().as_bytes();
    let mut out = Vec::with_capacity(1 + ctx.len() + message.len());
    // Contexts are short constants; their length always fits a byte.
    out.push(ctx.len() as u8);
    out.extend_from_slice(ctx);
    out.extend_from_slice(message);
    out
}

/// Why a signature or signed message was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The signature does not verify under the signer's key in this domain.
    #[error("the signature claimed by {signer} does not verify: the message was forged or altered")]
    Forged {
        /// The key that supposedly signed.
        signer: PublicKey,
    },
    /// The signer's key is not a valid public key.
    #[error("the signer's key is not a valid ed25519 public key")]
    InvalidKey,
    /// The payload could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// A type that is signed as a whole and carries its own domain and size limit.
pub trait SignedPayload: Serialize + DeserializeOwned {
    /// The domain its signatures are made in.
    const DOMAIN: Domain;
    /// Largest encoded size accepted.
    const MAX_BYTES: usize;
    /// A name for error messages.
    const NAME: &'static str;
}

/// Marker: the signature has not been checked.
#[derive(Debug, Clone, Copy)]
pub struct Unverified;
/// Marker: the signature was checked and the payload decoded.
#[derive(Debug, Clone, Copy)]
pub struct Verified;

/// A signed payload. `S` says whether the signature has been checked.
#[derive(Clone, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Signed<T, S = Unverified> {
    signer: PublicKey,
    #[serde(with = "serde_bytes_vec")]
    payload: Vec<u8>,
    signature: Signature,
    #[serde(skip)]
    value: Option<T>,
    #[serde(skip)]
    _state: PhantomData<S>,
}

mod serde_bytes_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let v: &[u8] = Deserialize::deserialize(d)?;
        Ok(v.to_vec())
    }
}

impl<T, S> PartialEq for Signed<T, S> {
    fn eq(&self, other: &Self) -> bool {
        self.signer == other.signer
            && self.signature == other.signature
            && self.payload == other.payload
    }
}

impl<T, S> Eq for Signed<T, S> {}

impl<T: fmt::Debug, S> fmt::Debug for Signed<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("signer", &self.signer)
            .field("value", &self.value)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl<T: SignedPayload> Signed<T, Verified> {
    /// Signs `value` with `key`. The result is verified by construction.
    pub fn sign(key: &SecretKey, value: T) -> Self {
        let payload = encoding::encode(&value);
        let signature = key.sign(T::DOMAIN, &payload);
        Self {
            signer: key.public(),
            payload,
            signature,
            value: Some(value),
            _state: PhantomData,
        }
    }

    /// The verified payload.
    pub fn value(&self) -> &T {
        // A verified value always carries its decoded payload (set by `sign` and `verify`).
        self.value
            .as_ref()
            .unwrap_or_else(|| unreachable!("verified signed value without payload"))
    }

    /// Forgets the verification, for sending.
    pub fn into_unverified(self) -> Signed<T, Unverified> {
        Signed {
            signer: self.signer,
            payload: self.payload,
            signature: self.signature,
            value: None,
            _state: PhantomData,
        }
    }
}

impl<T: SignedPayload> Signed<T, Unverified> {
    /// Assembles an unverified signed value from its parts (as read from a wire or a store).
    pub fn from_parts(signer: PublicKey, payload: Vec<u8>, signature: Signature) -> Self {
        Self {
            signer,
            payload,
            signature,
            value: None,
            _state: PhantomData,
        }
    }

    /// Checks size, signature and encoding, in that order.
    pub fn verify(self) -> Result<Signed<T, Verified>, SignatureError> {
        if self.payload.len() > T::MAX_BYTES {
            return Err(DecodeError::TooLarge {
                what: T::NAME,
                len: self.payload.len(),
                limit: T::MAX_BYTES,
            }
            .into());
        }
        self.signer
            .verify(T::DOMAIN, &self.payload, &self.signature)?;
        self.assume_verified()
    }

    /// Decodes the payload of a signature that was already checked in a batch.
    fn assume_verified(self) -> Result<Signed<T, Verified>, SignatureError> {
        let value = encoding::decode(T::NAME, &self.payload, T::MAX_BYTES)?;
        Ok(Signed {
            signer: self.signer,
            payload: self.payload,
            signature: self.signature,
            value: Some(value),
            _state: PhantomData,
        })
    }

    /// Verifies many signed values at once (ed25519 batch verification, about half the cost of
    /// one by one). On failure every item is checked alone, so the error names the culprit; the
    /// results keep the order of the input.
    pub fn verify_all(items: Vec<Self>) -> Vec<Result<Signed<T, Verified>, SignatureError>> {
        if items.len() < 2 || items.iter().any(|s| s.payload.len() > T::MAX_BYTES) {
            return items.into_iter().map(Self::verify).collect();
        }
        let framed: Vec<Vec<u8>> = items.iter().map(|s| frame(T::DOMAIN, &s.payload)).collect();
        let keys: Result<Vec<_>, _> = items.iter().map(|s| s.signer.verifying_key()).collect();
        let batch_ok = keys.is_ok_and(|keys| {
            let msgs: Vec<&[u8]> = framed.iter().map(Vec::as_slice).collect();
            let sigs: Vec<ed25519_dalek::Signature> = items
                .iter()
                .map(|s| ed25519_dalek::Signature::from_bytes(&s.signature.0))
                .collect();
            ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
        });
        if batch_ok {
            items.into_iter().map(Self::assume_verified).collect()
        } else {
            items.into_iter().map(Self::verify).collect()
        }
    }
}

impl<T, S> Signed<T, S> {
    /// The key that signed (or claims to have signed) the payload.
    pub fn signer(&self) -> &PublicKey {
        &self.signer
    }

    /// The exact payload bytes that were signed.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Note {
        text: String,
    }
    impl SignedPayload for Note {
        const DOMAIN: Domain = Domain::Presence;
        const MAX_BYTES: usize = 128;
        const NAME: &'static str = "note";
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct OtherNote {
        text: String,
    }
    impl SignedPayload for OtherNote {
        const DOMAIN: Domain = Domain::NodeAdvert;
        const MAX_BYTES: usize = 128;
        const NAME: &'static str = "other note";
    }

    fn note(text: &str) -> Note {
        Note { text: text.into() }
    }

    #[test]
    fn signed_values_verify_and_tampering_is_caught() {
        let key = SecretKey::generate().expect("random");
        let signed = Signed::sign(&key, note("hello")).into_unverified();
        let ok = signed.clone().verify().expect("verifies");
        assert_eq!(ok.value(), &note("hello"));

        let mut payload = signed.payload().to_vec();
        let last = payload.len() - 1;
        payload[last] ^= 1;
        let tampered = Signed::<Note>::from_parts(*signed.signer(), payload, *signed.signature());
        assert!(matches!(
            tampered.verify(),
            Err(SignatureError::Forged { .. })
        ));

        let other = SecretKey::generate().expect("random").public();
        let wrong_signer =
            Signed::<Note>::from_parts(other, signed.payload().to_vec(), *signed.signature());
        assert!(matches!(
            wrong_signer.verify(),
            Err(SignatureError::Forged { .. })
        ));
    }

    #[test]
    fn a_signature_does_not_cross_domains() {
        let key = SecretKey::generate().expect("random");
        let signed = Signed::sign(&key, note("same bytes")).into_unverified();
        let moved = Signed::<OtherNote>::from_parts(
            *signed.signer(),
            signed.payload().to_vec(),
            *signed.signature(),
        );
        assert!(matches!(moved.verify(), Err(SignatureError::Forged { .. })));
    }

    #[test]
    fn batch_verification_names_the_forgery() {
        let key = SecretKey::generate().expect("random");
        let mut items: Vec<Signed<Note>> = (0..5)
            .map(|i| Signed::sign(&key, note(&format!("n{i}"))).into_unverified())
            .collect();
        let results = Signed::verify_all(items.clone());
        assert!(results.iter().all(Result::is_ok));
        let forged = Signed::<Note>::from_parts(
            *items[2].signer(),
            encoding::encode(&note("forged")),
            *items[2].signature(),
        );
        items[2] = forged;
        let results = Signed::verify_all(items);
        let failed: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_err())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(failed, vec![2]);
    }

    #[test]
    fn oversize_payloads_are_refused_before_verifying() {
        let key = SecretKey::generate().expect("random");
        let big = Signed::sign(&key, note(&"x".repeat(200))).into_unverified();
        assert!(matches!(
            big.verify(),
            Err(SignatureError::Decode(DecodeError::TooLarge { .. }))
        ));
    }
}
