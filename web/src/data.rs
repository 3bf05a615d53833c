//! `/data/{collection}/{path}`: a product's file, checked against its catalogued size and BLAKE3
//! while it is sent.
//!
//! The node opens the file (confined to its collection, no links followed) and this module
//! streams it. The response declares the catalogued length; the last piece of the file is held
//! back until the whole has been hashed, and is sent only if the hash and the length match. A
//! file whose bytes changed on disk therefore never reaches a client as a complete response: the
//! connection is cut before its end, which every HTTP client reports as an error.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio::io::AsyncReadExt;

use crate::{AppState, Port};

/// Bytes read at a time.
const PIECE: usize = 256 * 1024;

/// A product's file, as the node hands it out.
#[derive(Debug)]
pub struct ProductFile {
    /// The file, opened by the node and positioned at its start.
    pub file: std::fs::File,
    /// Its catalogued size.
    pub size: u64,
    /// Its catalogued BLAKE3.
    pub blake3: [u8; 32],
    /// Its MIME type.
    pub format: String,
}

/// Why a product's file is not served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FileRefusal {
    /// The node holds no such product.
    #[error("no such product on this node")]
    NotFound,
    /// The node holds it, but will not serve its file now (replaced, changed or unreadable since
    /// it was catalogued). The reason is for the operator's log; the client gets a fixed text.
    #[error("the product's file is not available: {0}")]
    Unavailable(String),
}

pub(crate) async fn product<P: Port>(
    State(s): State<Arc<AppState<P>>>,
    Path((collection, path)): Path<(String, String)>,
) -> Response {
    let name = format!("{collection}/{path}");
    let file = match s.port.product_file(collection, path).await {
        Ok(f) => f,
        Err(FileRefusal::NotFound) => {
            return (StatusCode::NOT_FOUND, "no such product on this node\n").into_response();
        }
        Err(FileRefusal::Unavailable(_)) => {
            return (
                StatusCode::GONE,
                "the product's file changed on this node since it was catalogued and is not served; its operator has been told\n",
            )
                .into_response();
        }
    };
    let hex = hex::encode(file.blake3);
    let (size, format) = (file.size, file.format.clone());
    let body = Body::from_stream(verified(file, name));
    (
        [
            (header::CONTENT_TYPE, format),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::HeaderName::from_static("x-blake3"), hex),
        ],
        body,
    )
        .into_response()
}

struct Reading {
    file: tokio::fs::File,
    hasher: blake3::Hasher,
    held: Option<Bytes>,
    read: u64,
    size: u64,
    expected: [u8; 32],
    done: bool,
    name: String,
}

/// The file's bytes, the last piece released only once the whole matched its size and hash.
fn verified(
    file: ProductFile,
    name: String,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let state = Reading {
        file: tokio::fs::File::from_std(file.file),
        hasher: blake3::Hasher::new(),
        held: None,
        read: 0,
        size: file.size,
        expected: file.blake3,
        done: false,
        name,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let mut buf = vec![0u8; PIECE];
            let n = match st.file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
            };
            if n == 0 {
                st.done = true;
                let whole = st.read == st.size && st.hasher.finalize().as_bytes() == &st.expected;
                return match (whole, st.held.take()) {
                    (true, Some(last)) => Some((Ok(last), st)),
                    (true, None) => None,
                    (false, _) => Some((Err(mismatch(&st.name)), st)),
                };
            }
            buf.truncate(n);
            st.read += n as u64;
            if st.read > st.size {
                st.done = true;
                return Some((Err(mismatch(&st.name)), st));
            }
            st.hasher.update(&buf);
            if let Some(previous) = st.held.replace(Bytes::from(buf)) {
                return Some((Ok(previous), st));
            }
        }
    })
}

fn mismatch(name: &str) -> std::io::Error {
    tracing::warn!(
        product = name,
        "a product's file no longer matches its catalogued size and BLAKE3; the download was cut before its end. Run `orrery dataset add` for its collection again"
    );
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "the file's bytes do not match its catalogued size and BLAKE3",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    /// Streams a file holding `on_disk` that was catalogued as `catalogued`: the bytes that
    /// arrived, and whether the stream ended in an error.
    async fn stream(on_disk: &[u8], catalogued: &[u8]) -> (Vec<u8>, bool) {
        let mut tmp = tempfile::NamedTempFile::new().expect("tmp");
        std::io::Write::write_all(&mut tmp, on_disk).expect("write");
        let file = ProductFile {
            file: std::fs::File::open(tmp.path()).expect("open"),
            size: catalogued.len() as u64,
            blake3: *blake3::hash(catalogued).as_bytes(),
            format: "application/fits".into(),
        };
        let mut out = Vec::new();
        let mut failed = false;
        let mut s = std::pin::pin!(verified(file, "c/p".into()));
        while let Some(piece) = s.next().await {
            match piece {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => failed = true,
            }
        }
        (out, failed)
    }

    #[tokio::test]
    async fn matching_bytes_are_sent_whole() {
        let bytes: Vec<u8> = (0..PIECE * 3 + 7).map(|i| (i % 251) as u8).collect();
        let (out, failed) = stream(&bytes, &bytes).await;
        assert!(!failed);
        assert_eq!(out, bytes);
    }

    #[tokio::test]
    async fn damaged_bytes_never_arrive_whole() {
        let bytes: Vec<u8> = (0..PIECE * 3 + 7).map(|i| (i % 251) as u8).collect();
        let mut damaged = bytes.clone();
        damaged[PIECE + 3] ^= 0x40;
        let (out, failed) = stream(&damaged, &bytes).await;
        assert!(failed, "the stream ends in an error");
        assert!(
            out.len() < bytes.len(),
            "the last piece is withheld: {} of {}",
            out.len(),
            bytes.len()
        );
    }

    #[tokio::test]
    async fn a_file_that_grew_is_cut() {
        let bytes = b"0123456789".to_vec();
        let (out, failed) = stream(b"0123456789 and more", &bytes).await;
        assert!(failed);
        assert!(out.len() < bytes.len(), "nothing past the catalogued size");
    }
}
