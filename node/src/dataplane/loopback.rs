//! Two endpoints on loopback: resuming, refusing, and catching a peer that sends wrong bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use iroh::Endpoint;
use iroh::protocol::Router;
use orrery_protocol::{NodeId, SecretKey};

use super::endpoint::{ALPN, bind, own_addrs};
use super::fetch::{FetchError, GROUP_BYTES, fetch};
use super::outboard;
use super::rogue::Rogue;
use super::serve::{Gate, Provider, Refusal, Source};

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i as u64 * 2_654_435_761) >> 7) as u8 ^ seed)
        .collect()
}

async fn endpoint() -> (Endpoint, NodeId) {
    let key = SecretKey::generate().expect("key");
    let ep = bind(&key, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    (ep, NodeId(key.public()))
}

/// Serves one file to the nodes it lets in, counting the files it opened. It always says the
/// file has the size it was made with, so a file cut short on disk ends its answer early.
struct OneFile {
    path: PathBuf,
    size: u64,
    hash: [u8; 32],
    outboard: Vec<u8>,
    allowed: Option<NodeId>,
    opened: Arc<AtomicUsize>,
    damaged: Arc<AtomicUsize>,
}

impl OneFile {
    fn new(path: &Path, data: &[u8], allowed: Option<NodeId>) -> Self {
        std::fs::write(path, data).expect("write");
        let (hash, outboard) = outboard::compute(data, data.len() as u64).expect("outboard");
        Self {
            path: path.to_path_buf(),
            size: data.len() as u64,
            hash,
            outboard,
            allowed,
            opened: Arc::default(),
            damaged: Arc::default(),
        }
    }
}

impl Gate for OneFile {
    async fn open(&self, peer: NodeId, hash: [u8; 32]) -> Result<Source, Refusal> {
        if self.allowed.is_some_and(|a| a != peer) {
            return Err(Refusal::NotPermitted {
                rule: "not the allowed node".into(),
            });
        }
        if hash != self.hash {
            return Err(Refusal::Missing);
        }
        self.opened.fetch_add(1, Ordering::SeqCst);
        let file = std::fs::File::open(&self.path).map_err(|_| Refusal::Missing)?;
        let size = self.size;
        let damaged = self.damaged.clone();
        Ok(Source {
            file,
            size,
            outboard: self.outboard.clone(),
            on_damage: Some(Box::new(move || {
                damaged.fetch_add(1, Ordering::SeqCst);
            })),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_cut_halfway_resumes_without_resending_what_arrived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = bytes(16 << 20, 1);
    let size = data.len() as u64;
    let (server, _) = endpoint().await;
    let served = dir.path().join("served");
    let gate = OneFile::new(&served, &data, None);
    let hash = gate.hash;
    // The server has only the first three quarters on its disk: its answer stops there, however
    // fast loopback is.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&served)
        .and_then(|f| f.set_len(size / 4 * 3))
        .expect("cut the served file");
    let addrs = own_addrs(&server);
    let server_id = super::endpoint::node_of(server.id()).expect("node");
    let router = Router::builder(server)
        .accept(ALPN, Provider::new(gate, 4))
        .spawn();
    let (client, _) = endpoint().await;
    let partial = dir.path().join("partial");

    // First attempt: cut, with at least half the blob verified and kept.
    let mut quiet = |_| {};
    let cut = fetch(&client, server_id, &addrs, hash, size, &partial, &mut quiet).await;
    assert!(cut.is_err(), "the transfer should have been cut");
    let kept = std::fs::metadata(&partial).expect("partial").len();
    assert!(kept >= size / 2 && kept < size, "kept {kept} of {size}");
    std::fs::write(&served, &data).expect("the whole file again");

    // Second attempt: only the rest crosses the wire.
    let mut quiet = |_| {};
    let done = fetch(&client, server_id, &addrs, hash, size, &partial, &mut quiet)
        .await
        .expect("resumed");
    assert!(done.resumed_from >= kept - GROUP_BYTES && done.resumed_from <= kept);
    assert_eq!(
        done.received,
        size - done.resumed_from,
        "nothing that arrived before was sent again"
    );
    assert_eq!(std::fs::read(&partial).expect("read"), data);
    assert_eq!(
        done.outboard,
        outboard::compute(&data[..], size).expect("ob").1
    );
    router.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_may_not_have_the_bytes_is_refused_before_any_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = bytes(100_000, 2);
    let (server, _) = endpoint().await;
    let (allowed, allowed_id) = endpoint().await;
    let (stranger, _) = endpoint().await;
    let gate = OneFile::new(&dir.path().join("served"), &data, Some(allowed_id));
    let (hash, opened) = (gate.hash, gate.opened.clone());
    let addrs = own_addrs(&server);
    let server_id = super::endpoint::node_of(server.id()).expect("node");
    let router = Router::builder(server)
        .accept(ALPN, Provider::new(gate, 4))
        .spawn();
    let mut quiet = |_| {};
    let partial = dir.path().join("stranger");
    let refused = fetch(
        &stranger,
        server_id,
        &addrs,
        hash,
        data.len() as u64,
        &partial,
        &mut quiet,
    )
    .await;
    assert!(
        matches!(refused, Err(FetchError::NotSent { .. })),
        "{refused:?}"
    );
    assert!(!refused.as_ref().is_err_and(FetchError::is_offence));
    assert_eq!(std::fs::metadata(&partial).map_or(0, |m| m.len()), 0);
    assert_eq!(
        opened.load(Ordering::SeqCst),
        0,
        "nothing was opened for it"
    );
    let partial = dir.path().join("allowed");
    let got = fetch(
        &allowed,
        server_id,
        &addrs,
        hash,
        data.len() as u64,
        &partial,
        &mut quiet,
    )
    .await
    .expect("the allowed node gets it");
    assert_eq!(std::fs::read(&partial).expect("read"), data);
    assert_eq!(
        got.outboard,
        outboard::compute(&data[..], data.len() as u64)
            .expect("outboard")
            .1,
        "the hash pairs that came with the groups are the outboard"
    );
    router.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_damaged_on_disk_stops_being_served_at_the_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = bytes(1 << 20, 3);
    let (server, _) = endpoint().await;
    let path = dir.path().join("served");
    let gate = OneFile::new(&path, &data, None);
    let (hash, damaged) = (gate.hash, gate.damaged.clone());
    let mut bad = data.clone();
    bad[600_000] ^= 1;
    std::fs::write(&path, &bad).expect("damage");
    let addrs = own_addrs(&server);
    let server_id = super::endpoint::node_of(server.id()).expect("node");
    let router = Router::builder(server)
        .accept(ALPN, Provider::new(gate, 4))
        .spawn();
    let (client, _) = endpoint().await;
    let partial = dir.path().join("partial");
    let mut quiet = |_| {};
    let r = fetch(
        &client,
        server_id,
        &addrs,
        hash,
        data.len() as u64,
        &partial,
        &mut quiet,
    )
    .await;
    // The stream is reset: whatever the reset overtook is lost, and nobody is blamed.
    assert!(
        matches!(
            r,
            Err(FetchError::Interrupted { .. } | FetchError::NotSent { .. })
        ),
        "an honest server stops instead of sending damage: {r:?}"
    );
    let kept = std::fs::metadata(&partial).map_or(0, |m| m.len());
    assert!(kept <= 600_000, "nothing past the damage: {kept}");
    assert_eq!(damaged.load(Ordering::SeqCst), 1, "the owner is told");
    router.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_wrong_bytes_is_caught_within_one_chunk_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = bytes(8 << 20, 4);
    let size = data.len() as u64;
    let (hash, _) = outboard::compute(&data[..], size).expect("outboard");
    let flipped = 5 * (1 << 20) + 12_345;
    let mut bad = data.clone();
    bad[flipped] ^= 0x80;
    let key = SecretKey::generate().expect("key");
    let server_id = NodeId(key.public());
    let (router, addrs) = Rogue::new(&data, bad).serve(&key).await;
    let (client, _) = endpoint().await;
    let partial = dir.path().join("partial");
    let mut quiet = |_| {};
    let r = fetch(&client, server_id, &addrs, hash, size, &partial, &mut quiet).await;
    let group = flipped as u64 / GROUP_BYTES * GROUP_BYTES;
    match r {
        Err(e @ FetchError::Corrupt { peer, at }) => {
            assert!(e.is_offence());
            assert_eq!(peer, server_id, "the peer that sent them is named");
            assert_eq!(at, group, "caught at the chunk group holding the bad byte");
        }
        other => panic!("wrong bytes went unnoticed: {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(&partial).expect("partial").len(),
        group,
        "only the verified groups before it were kept"
    );
    assert_eq!(
        std::fs::read(&partial).expect("read"),
        data[..group as usize]
    );
    router.shutdown().await.expect("shutdown");
}
