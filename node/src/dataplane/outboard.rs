//! Outboards: the BLAKE3 tree of a file (pre-order hash pairs, 16 KiB chunk groups, no size
//! prefix) that lets any range of it be served with the proof that it belongs to the file's
//! hash. About 1/256 of the file's size.
//!
//! The root of the tree is the file's plain BLAKE3 hash, so the hash a catalog or a project
//! already keeps is the iroh-blobs hash of the same bytes (tested below).

use std::io::Read;

use bao_tree::BaoTree;
use bao_tree::io::outboard::PreOrderMemOutboard;
use iroh_blobs::store::IROH_BLOCK_SIZE;

/// Largest file an outboard is made for (its outboard is then 64 MiB).
pub const MAX_FILE_BYTES: u64 = 16 << 30;

/// An outboard that does not fit a file.
#[derive(Debug, thiserror::Error)]
pub enum OutboardError {
    /// The file is above [`MAX_FILE_BYTES`].
    #[error("{size} bytes is above the data plane's limit of {MAX_FILE_BYTES} bytes per file")]
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// Reading the file failed (or it was shorter than announced).
    #[error("reading the file: {0}")]
    Read(#[from] std::io::Error),
    /// A stored outboard has the wrong length for the file.
    #[error("a stored outboard of {found} bytes cannot belong to a file of {size} bytes")]
    WrongLength {
        /// The file's size.
        size: u64,
        /// The outboard's length.
        found: u64,
    },
}

/// The tree of a file of `size` bytes.
pub fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, IROH_BLOCK_SIZE)
}

/// Computes the outboard of the `size` bytes `data` reads, and their BLAKE3 hash.
pub fn compute(data: impl Read, size: u64) -> Result<([u8; 32], Vec<u8>), OutboardError> {
    if size > MAX_FILE_BYTES {
        return Err(OutboardError::TooLarge { size });
    }
    let tree = tree(size);
    let len =
        usize::try_from(tree.outboard_size()).map_err(|_| OutboardError::TooLarge { size })?;
    let mut out = PreOrderMemOutboard {
        root: blake3::Hash::from([0; 32]),
        tree,
        data: vec![0u8; len],
    };
    let root = bao_tree::io::sync::outboard(data, tree, &mut out)?;
    Ok((*root.as_bytes(), out.data))
}

/// An outboard read back from disk, for serving the file of `size` bytes whose hash is `hash`
/// (checked against the data as it is served).
pub fn from_stored(
    hash: [u8; 32],
    size: u64,
    data: Vec<u8>,
) -> Result<PreOrderMemOutboard, OutboardError> {
    let tree = tree(size);
    if data.len() as u64 != tree.outboard_size() {
        return Err(OutboardError::WrongLength {
            size,
            found: data.len() as u64,
        });
    }
    Ok(PreOrderMemOutboard {
        root: blake3::Hash::from(hash),
        tree,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blake3_of_a_file_is_its_iroh_blobs_hash() {
        for size in [0usize, 1, 1024, 16 * 1024, 16 * 1024 + 1, 1_000_003] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let (root, outboard) = compute(data.as_slice(), size as u64).expect("outboard");
            // What the catalog and the project keep: BLAKE3 of the whole file.
            assert_eq!(root, *blake3::hash(&data).as_bytes(), "size {size}");
            // What iroh-blobs computes for the same bytes.
            assert_eq!(
                iroh_blobs::Hash::new(&data).as_bytes(),
                &root,
                "size {size}"
            );
            assert_eq!(outboard.len() as u64, tree(size as u64).outboard_size());
            assert!(from_stored(root, size as u64, outboard).is_ok());
        }
        assert!(matches!(
            from_stored([0; 32], 1 << 20, vec![0; 3]),
            Err(OutboardError::WrongLength { .. })
        ));
        assert!(
            compute(&b"short"[..], 10).is_err(),
            "a file shorter than announced"
        );
    }
}
