//! Keys and the identities made of them.
//!
//! Every node and every author is an ed25519 key pair. A [`NodeId`] or [`AuthorId`] is the public
//! half, written as 64 lowercase hex digits. The two are different types so that a node key can
//! never be passed where an author is meant, even though both are keys of the same kind.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::signing::{Domain, SignatureError, frame};

/// Length of a secret key file's contents and of a public key, in bytes.
pub const KEY_LEN: usize = 32;

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key had the wrong number of bytes.
    #[error("a key must be {expected} bytes, found {found}")]
    WrongLength {
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// The text is not 64 hex digits.
    #[error("`{text}` is not a key: expected 64 hex digits")]
    NotHex {
        /// The text given.
        text: String,
    },
    /// The bytes do not encode a point on the curve.
    #[error("the bytes are not a valid ed25519 public key")]
    InvalidPoint,
    /// The operating system's random source failed.
    #[error("the system random source failed: {0}")]
    Random(String),
}

/// An ed25519 public key. Its bytes are always a valid curve point.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "[u8; 32]", into = "[u8; 32]")]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// Reads a public key from its 32 bytes, checking that they are a curve point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| KeyError::WrongLength {
            expected: KEY_LEN,
            found: bytes.len(),
        })?;
        let key = VerifyingKey::from_bytes(&arr).map_err(|_| KeyError::InvalidPoint)?;
        // Small-order keys verify forged signatures under batch verification.
        if key.is_weak() {
            return Err(KeyError::InvalidPoint);
        }
        Ok(Self(arr))
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn verifying_key(&self) -> Result<VerifyingKey, SignatureError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError::InvalidKey)
    }

    /// Checks `signature` over `message` in `domain` by this key (strict verification: no
    /// malleable or small-order signatures are accepted).
    pub fn verify(
        &self,
        domain: Domain,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        let key = self.verifying_key()?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(&frame(domain, message), &sig)
            .map_err(|_| SignatureError::Forged { signer: *self })
    }
}

impl TryFrom<[u8; 32]> for PublicKey {
    type Error = KeyError;
    fn try_from(value: [u8; 32]) -> Result<Self, Self::Error> {
        Self::from_bytes(&value)
    }
}

impl From<PublicKey> for [u8; 32] {
    fn from(value: PublicKey) -> Self {
        value.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &hex::encode(self.0)[..12])
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s.trim()).map_err(|_| KeyError::NotHex { text: s.into() })?;
        if bytes.len() != KEY_LEN {
            return Err(KeyError::NotHex { text: s.into() });
        }
        Self::from_bytes(&bytes)
    }
}

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "sig_bytes")] pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", &hex::encode(&self.0[..6]))
    }
}

mod sig_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: &[u8] = Deserialize::deserialize(d)?;
        v.try_into()
            .map_err(|_| serde::de::Error::invalid_length(v.len(), &"64 bytes"))
    }
}

/// An ed25519 secret key. Never printed, compared or serialised implicitly.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// Makes a new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; KEY_LEN];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// Reads a key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| KeyError::WrongLength {
            expected: KEY_LEN,
            found: bytes.len(),
        })?;
        Ok(Self(SigningKey::from_bytes(&arr)))
    }

    /// The 32 secret bytes, for writing to an owner-only key file.
    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.0.to_bytes()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` in `domain`. A signature made in one domain never verifies in another.
    pub fn sign(&self, domain: Domain, message: &[u8]) -> Signature {
        Signature(self.0.sign(&frame(domain, message)).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public: {})", self.public())
    }
}

macro_rules! key_identity {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub PublicKey);

        impl $name {
            /// The identity's public key.
            pub fn key(&self) -> &PublicKey {
                &self.0
            }

            /// The first 8 hex digits, for tables and logs.
            pub fn short(&self) -> String {
                self.0.to_string()[..8].to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                PublicKey::from_str(s).map(Self)
            }
        }
    };
}

key_identity!(
    /// A node of the federation, named by its public key.
    NodeId
);
key_identity!(
    /// An author (a researcher), named by their public key.
    AuthorId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_text_and_bytes() {
        let sk = SecretKey::generate().expect("random");
        let pk = sk.public();
        assert_eq!(pk.to_string().parse::<PublicKey>().expect("parses"), pk);
        let again = SecretKey::from_bytes(&sk.to_bytes()).expect("32 bytes");
        assert_eq!(again.public(), pk);
        let author = AuthorId(pk);
        assert_eq!(
            author.to_string().parse::<AuthorId>().expect("parses"),
            author
        );
    }

    #[test]
    fn wrong_lengths_and_text_are_refused() {
        assert!(matches!(
            SecretKey::from_bytes(&[0u8; 31]),
            Err(KeyError::WrongLength {
                expected: 32,
                found: 31
            })
        ));
        assert!(matches!(
            PublicKey::from_bytes(&[0u8; 33]),
            Err(KeyError::WrongLength { .. })
        ));
        assert!(matches!(
            "xyz".parse::<PublicKey>(),
            Err(KeyError::NotHex { .. })
        ));
        assert!(matches!(
            "abcd".parse::<AuthorId>(),
            Err(KeyError::NotHex { .. })
        ));
    }
}
