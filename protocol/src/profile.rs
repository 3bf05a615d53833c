//! An author's self-signed profile: display name, optional ORCID iD, optional affiliation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::identity::AuthorId;
use crate::limits::{MAX_NAME_BYTES, MAX_SIGNED_PAYLOAD};
use crate::signing::{Domain, SignatureError, Signed, SignedPayload, Unverified, Verified};

/// An ORCID iD (`0000-0002-1825-0097`), with its ISO 7064 11,2 check digit verified.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Orcid(String);

impl Orcid {
    /// The iD as a resolvable URL, as CITATION.cff wants it.
    pub fn url(&self) -> String {
        format!("https://orcid.org/{}", self.0)
    }
}

impl fmt::Display for Orcid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Orcid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Orcid({})", self.0)
    }
}

impl FromStr for Orcid {
    type Err = ProfileError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s
            .trim()
            .trim_start_matches("https://orcid.org/")
            .trim_start_matches("http://orcid.org/");
        let bad = || ProfileError::BadOrcid { text: s.into() };
        let digits: Vec<char> = bare.chars().filter(|c| *c != '-').collect();
        let shape_ok = bare.len() == 19
            && bare.chars().enumerate().all(|(i, c)| {
                if i % 5 == 4 {
                    c == '-'
                } else if i == 18 {
                    c.is_ascii_digit() || c == 'X'
                } else {
                    c.is_ascii_digit()
                }
            });
        if !shape_ok || digits.len() != 16 {
            return Err(bad());
        }
        let mut total = 0u32;
        for c in &digits[..15] {
            total = (total + c.to_digit(10).ok_or_else(bad)?) * 2;
        }
        let check = (12 - total % 11) % 11;
        let expected = if check == 10 {
            'X'
        } else {
            char::from_digit(check, 10).ok_or_else(bad)?
        };
        if digits[15] != expected {
            return Err(bad());
        }
        Ok(Self(bare.to_string()))
    }
}

impl TryFrom<String> for Orcid {
    type Error = ProfileError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Orcid> for String {
    fn from(value: Orcid) -> Self {
        value.0
    }
}

/// Why a profile was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The ORCID iD is not of the form `0000-0000-0000-000X` with a valid check digit.
    #[error("`{text}` is not an ORCID iD: expected 0000-0000-0000-000X with a valid check digit")]
    BadOrcid {
        /// The text given.
        text: String,
    },
    /// The name is empty or too long.
    #[error("a display name must be 1 to {MAX_NAME_BYTES} bytes")]
    BadName,
    /// The affiliation is too long.
    #[error("an affiliation must be at most {MAX_NAME_BYTES} bytes")]
    BadAffiliation,
    /// An attestation's issuer is too long.
    #[error("an issuer must be at most {MAX_NAME_BYTES} bytes")]
    BadIssuer,
    /// The profile is signed by a key other than the author it describes.
    #[error("the profile of {author} is signed by another key; a profile must be self-signed")]
    NotSelfSigned {
        /// The author the profile describes.
        author: AuthorId,
    },
    /// The signature does not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// An author's profile. Always self-signed: the signer is the author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorProfile {
    /// Whom the profile describes.
    pub author: AuthorId,
    /// Display name, as it should appear in credits and citations.
    pub name: String,
    /// ORCID iD, if the author has one.
    pub orcid: Option<Orcid>,
    /// Institute or affiliation.
    pub affiliation: Option<String>,
    /// When the profile was made, in seconds since the Unix epoch.
    pub created_at: i64,
}

impl SignedPayload for AuthorProfile {
    const DOMAIN: Domain = Domain::AuthorProfile;
    const MAX_BYTES: usize = MAX_SIGNED_PAYLOAD;
    const NAME: &'static str = "author profile";
}

impl AuthorProfile {
    /// Checks the fields' limits.
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.name.trim().is_empty() || self.name.len() > MAX_NAME_BYTES {
            return Err(ProfileError::BadName);
        }
        if self
            .affiliation
            .as_ref()
            .is_some_and(|a| a.len() > MAX_NAME_BYTES)
        {
            return Err(ProfileError::BadAffiliation);
        }
        Ok(())
    }

    /// Verifies a profile: signature, self-signing and field limits.
    pub fn verify(
        signed: Signed<AuthorProfile, Unverified>,
    ) -> Result<Signed<AuthorProfile, Verified>, ProfileError> {
        let verified = signed.verify()?;
        let profile = verified.value();
        if profile.author.key() != verified.signer() {
            return Err(ProfileError::NotSelfSigned {
                author: profile.author,
            });
        }
        profile.validate()?;
        Ok(verified)
    }
}

/// A node's statement that `author` signed in there through an OpenID provider that vouched for
/// `orcid` (ORCID's own, or its sandbox): the iD is then *verified*, by that node, rather than
/// only declared in the author's self-signed profile. Signed by the node's key; other nodes
/// trust it as far as they trust the signer (a member of their federation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrcidAttestation {
    /// The author whose key the iD is bound to.
    pub author: AuthorId,
    /// The iD the provider vouched for (its `sub`).
    pub orcid: Orcid,
    /// The issuer of the verified identity token, e.g. `https://orcid.org`.
    pub issuer: String,
    /// When the sign-in happened, in seconds since the Unix epoch.
    pub attested_at: i64,
}

impl SignedPayload for OrcidAttestation {
    const DOMAIN: Domain = Domain::OrcidAttestation;
    const MAX_BYTES: usize = MAX_SIGNED_PAYLOAD;
    const NAME: &'static str = "ORCID attestation";
}

impl OrcidAttestation {
    /// Verifies an attestation's signature and limits; who signed it is for the caller to judge.
    pub fn verify(
        signed: Signed<OrcidAttestation, Unverified>,
    ) -> Result<Signed<OrcidAttestation, Verified>, ProfileError> {
        let verified = signed.verify()?;
        if verified.value().issuer.len() > MAX_NAME_BYTES {
            return Err(ProfileError::BadIssuer);
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SecretKey;

    #[test]
    fn orcid_check_digits() {
        assert!("0000-0002-1825-0097".parse::<Orcid>().is_ok());
        assert!(
            "https://orcid.org/0000-0001-5109-3700"
                .parse::<Orcid>()
                .is_ok()
        );
        assert!("0000-0002-1694-233X".parse::<Orcid>().is_ok());
        assert!("0000-0002-1825-0098".parse::<Orcid>().is_err());
        assert!("0000-0002-1825".parse::<Orcid>().is_err());
        assert!("0000 0002 1825 0097".parse::<Orcid>().is_err());
    }

    #[test]
    fn profiles_must_be_self_signed() {
        let alice = SecretKey::generate().expect("random");
        let mallory = SecretKey::generate().expect("random");
        let profile = AuthorProfile {
            author: AuthorId(alice.public()),
            name: "Alice Astro".into(),
            orcid: Some("0000-0002-1825-0097".parse().expect("valid")),
            affiliation: Some("ESAC".into()),
            created_at: 1_700_000_000,
        };
        let own = Signed::sign(&alice, profile.clone()).into_unverified();
        assert!(AuthorProfile::verify(own).is_ok());
        let forged = Signed::sign(&mallory, profile).into_unverified();
        assert!(matches!(
            AuthorProfile::verify(forged),
            Err(ProfileError::NotSelfSigned { .. })
        ));
    }
}
