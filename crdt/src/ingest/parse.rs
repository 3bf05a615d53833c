//! Stage 1–2: a raw change parsed with panics contained, nothing but an uncompressed change
//! chunk accepted.

use super::*;

pub(super) const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
pub(super) const CHUNK_CHANGE: u8 = 1;

/// Parses one raw change, refusing anything but an uncompressed change chunk.
pub(crate) fn parse_change(index: usize, bytes: &[u8]) -> Result<Change, IngestError> {
    if bytes.len() > MAX_CHANGE_BYTES {
        return Err(IngestError::Oversize {
            what: "a change",
            len: bytes.len(),
            limit: MAX_CHANGE_BYTES,
        });
    }
    if bytes.len() < 9 || bytes[..4] != MAGIC {
        return Err(IngestError::Malformed {
            index,
            reason: "not an automerge chunk",
        });
    }
    if bytes[8] != CHUNK_CHANGE {
        return Err(IngestError::Malformed {
            index,
            reason: "only uncompressed change chunks are accepted",
        });
    }
    match guarded("a change", || Change::try_from(bytes)) {
        // The chunk's checksum is the first four bytes of its hash: a mismatch means the bytes
        // were altered after the change was made.
        Ok(Ok(c)) if c.hash().0[..4] != bytes[4..8] => Err(IngestError::Tampered { index }),
        Ok(Ok(c)) => Ok(c),
        Ok(Err(_)) => Err(IngestError::Malformed {
            index,
            reason: "the change does not decode or its checksum is wrong",
        }),
        Err(_) => Err(IngestError::Malformed {
            index,
            reason: "the change crashed the decoder",
        }),
    }
}
