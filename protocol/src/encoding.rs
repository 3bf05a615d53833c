//! Canonical encoding of everything that is signed or crosses a node boundary.
//!
//! Orrery encodes with `postcard` (a compact, deterministic serde format). Signatures are always
//! made over the exact bytes that travel, so a verifier never re-encodes to check a signature.

use serde::{Serialize, de::DeserializeOwned};

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The input is longer than the limit for its kind.
    #[error("{what} is {len} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit it exceeds.
        limit: usize,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("{what} is malformed")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's complaint.
        #[source]
        source: postcard::Error,
    },
    /// Bytes were left over after the value.
    #[error("{what} has {extra} unexpected trailing bytes")]
    Trailing {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
}

/// Encodes a value canonically.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // postcard only fails on serialisers that cannot represent the data model (none of ours).
    postcard::to_stdvec(value).unwrap_or_default()
}

/// Decodes a value, refusing input above `limit` bytes and trailing bytes.
pub fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    limit: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            what,
            len: bytes.len(),
            limit,
        });
    }
    let (value, rest) = postcard::take_from_bytes(bytes)
        .map_err(|source| DecodeError::Malformed { what, source })?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing {
            what,
            extra: rest.len(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let v = (7u32, String::from("vega"));
        let bytes = encode(&v);
        let back: (u32, String) = decode("pair", &bytes, 64).expect("decodes");
        assert_eq!(back, v);
        assert!(matches!(
            decode::<(u32, String)>("pair", &bytes, 2),
            Err(DecodeError::TooLarge { .. })
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode::<(u32, String)>("pair", &longer, 64),
            Err(DecodeError::Trailing { extra: 1, .. })
        ));
        assert!(matches!(
            decode::<(u32, String)>("pair", &[0xff, 0xff], 64),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
