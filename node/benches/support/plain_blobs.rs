//! The baseline of the data-plane benchmarks: plain iroh-blobs, the bytes served by its own
//! `BlobsProtocol` from a `MemStore` and fetched into a fresh `MemStore` on loopback, nothing
//! written to disk and no outboard kept.

use std::time::{Duration, Instant};

use iroh::protocol::Router;
use iroh_blobs::store::mem::MemStore;
use orrery_node::dataplane::endpoint::bind;
use orrery_protocol::SecretKey;

/// `rounds` times, the time to fetch every one of `blobs` (a connection each) into a fresh
/// store; the serving store is filled before any clock starts.
pub(crate) async fn fetch_times(blobs: &[Vec<u8>], rounds: usize) -> Vec<Duration> {
    let store = MemStore::new();
    let mut hashes = Vec::new();
    for b in blobs {
        let tag = store.add_bytes(b.clone()).with_tag().await.expect("add");
        hashes.push(tag.hash);
    }
    let ep = bind(
        &SecretKey::generate().expect("key"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("bind");
    let addr = ep.addr();
    let router = Router::builder(ep)
        .accept(
            iroh_blobs::ALPN,
            iroh_blobs::BlobsProtocol::new(&store, None),
        )
        .spawn();
    let client = bind(
        &SecretKey::generate().expect("key"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("bind");
    let mut times = Vec::new();
    for _ in 0..rounds {
        let here = MemStore::new();
        let t0 = Instant::now();
        for hash in &hashes {
            let conn = client
                .connect(addr.clone(), iroh_blobs::ALPN)
                .await
                .expect("connect");
            here.remote().fetch(conn, *hash).await.expect("fetched");
        }
        times.push(t0.elapsed());
        drop(here);
    }
    client.close().await;
    router.shutdown().await.expect("shutdown");
    times
}
