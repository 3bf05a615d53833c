//! Data-plane throughput on loopback, the same bytes three ways in the same run:
//!
//! 1. **Orrery's data plane**: a stored output served by the node's provider (the gate's file
//!    and outboard from the node's `BlobStore`, each 16 KiB group checked against the outboard
//!    as it is read) and fetched by the node's fetcher (every group verified before it is
//!    written to the partial file, the whole file read back, checked and its outboard made,
//!    then moved into place) — what a node does to replicate an output, less the one libp2p
//!    request that asks for the peer's address and the actor's one-message grant;
//! 2. **plain iroh-blobs**: the same bytes in an iroh-blobs `MemStore`, served by its own
//!    `BlobsProtocol` and fetched into another `MemStore` (`remote().fetch`), nothing on disk;
//! 3. **the transfer it replaces**: 4 MiB parts over libp2p request-response between two
//!    federation actors, each part hashed by the server before it leaves, appended by the
//!    receiver, and the whole file hashed at the end (and its part hashes recorded), as the
//!    removed `Request::Blob` transfer did.
//!
//! Files live in `/dev/shm` when there is one, so the disk does not decide. Each way runs
//! `ROUNDS` times; the median is reported. Size: `DATAPLANE_MIB` (default 256).
//!
//! Run with `cargo bench -p orrery-node --bench dataplane`.

#[path = "support/plain_blobs.rs"]
mod plain_blobs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use iroh::protocol::Router;
use orrery_crdt::{Blob, BlobRef};
use orrery_node::blobs::BlobStore;
use orrery_node::dataplane::endpoint::{ALPN, bind, own_addrs};
use orrery_node::dataplane::fetch::fetch;
use orrery_node::dataplane::serve::{Gate, Provider, Refusal, Source};
use orrery_protocol::federation::{JoinRequest, Membership};
use orrery_protocol::wire::{Request, Response, SyncFrame};
use orrery_protocol::{NodeId, ProjectId, SecretKey, Signed};

const ROUNDS: usize = 3;
const PART: usize = 4 * 1024 * 1024;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("tempdir")
    } else {
        tempfile::tempdir().expect("tempdir")
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rate(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// Serves one project's stored outputs to anyone, as the node's gate does after its grant.
struct StoreGate {
    store: BlobStore,
    blob: BlobRef,
}

impl Gate for StoreGate {
    async fn open(&self, _peer: NodeId, hash: [u8; 32]) -> Result<Source, Refusal> {
        if hash != self.blob.hash {
            return Err(Refusal::Missing);
        }
        let (store, blob) = (self.store.clone(), self.blob);
        let (file, outboard) = tokio::task::spawn_blocking(move || store.open_for_serving(&blob))
            .await
            .map_err(|_| Refusal::Busy)?
            .map_err(|_| Refusal::Missing)?;
        Ok(Source {
            file,
            size: self.blob.len,
            outboard,
            on_damage: None,
        })
    }
}

async fn orrery(data: &[u8]) -> Vec<Duration> {
    let dir = scratch();
    let blob = Blob {
        id: BlobRef::of(data),
        bytes: data.to_vec(),
    };
    let id = blob.id;
    let project = ProjectId([7; 32]);
    let served = BlobStore::new(dir.path().join("a")).for_project(project);
    served.put_all(&[blob]).expect("put");
    let server_key = SecretKey::generate().expect("key");
    let ep = bind(&server_key, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addrs: Vec<SocketAddr> = own_addrs(&ep);
    let router = Router::builder(ep)
        .accept(
            ALPN,
            Provider::new(
                StoreGate {
                    store: served,
                    blob: id,
                },
                16,
            ),
        )
        .spawn();
    let client = bind(
        &SecretKey::generate().expect("key"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("bind");
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let here = BlobStore::new(dir.path().join(format!("b{round}"))).for_project(project);
        let t0 = Instant::now();
        let mut quiet = |_| {};
        let done = fetch(
            &client,
            NodeId(server_key.public()),
            &addrs,
            id.hash,
            id.len,
            &here.partial_path(&id),
            &mut quiet,
        )
        .await
        .expect("fetched");
        here.adopt(&id, &done.outboard).expect("adopt");
        times.push(t0.elapsed());
        assert!(here.has(&id));
        drop(here);
        let _ = std::fs::remove_dir_all(dir.path().join(format!("b{round}")));
    }
    client.close().await;
    router.shutdown().await.expect("shutdown");
    times
}

/// Two federation actors that are members of one federation, the second connected to the
/// first.
async fn two_members() -> (
    orrery_federation::FederationHandle,
    tokio::sync::mpsc::Receiver<orrery_federation::Event>,
    orrery_federation::FederationHandle,
    NodeId,
    tokio_util::sync::CancellationToken,
) {
    let keys = [
        SecretKey::generate().expect("key"),
        SecretKey::generate().expect("key"),
    ];
    let mut m = Membership::found(&keys[0], "bench", now()).expect("found");
    let inv = m
        .invite(
            &keys[0],
            Some(NodeId(keys[1].public())),
            None,
            now() + 3600,
            [0; 16],
        )
        .expect("invite");
    let req = Signed::sign(
        &keys[1],
        JoinRequest {
            invitation: inv.into_unverified(),
            node: NodeId(keys[1].public()),
            name: "b".into(),
            code: None,
            at: now(),
        },
    );
    m.accept(&keys[0], req.into_unverified(), now())
        .expect("accept");
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut config = orrery_federation::Config::loopback();
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    let (a, mut a_events, _) = orrery_federation::spawn(
        keys[0].clone(),
        config.clone(),
        Some(m.clone()),
        cancel.child_token(),
    )
    .expect("spawn");
    let addr = loop {
        if let Some(orrery_federation::Event::Listening(addr)) = a_events.recv().await {
            break format!("{addr}/p2p/{}", orrery_federation::peer::peer_id(&a.me()));
        }
    };
    config.bootstrap = vec![addr];
    let (b, mut b_events, _) =
        orrery_federation::spawn(keys[1].clone(), config, Some(m), cancel.child_token())
            .expect("spawn");
    let a_id = NodeId(keys[0].public());
    loop {
        match b_events.recv().await {
            Some(orrery_federation::Event::Connected(n)) if n == a_id => break,
            Some(_) => {}
            None => panic!("the federation actor stopped"),
        }
    }
    tokio::spawn(async move { while b_events.recv().await.is_some() {} });
    (a, a_events, b, a_id, cancel)
}

/// The replaced transfer, over the same libp2p request-response, framing and limits: the
/// offset travels in a request, a part of at most 4 MiB comes back.
async fn libp2p_parts(data: &[u8]) -> Vec<Duration> {
    let dir = scratch();
    let source = dir.path().join("source");
    std::fs::write(&source, data).expect("write");
    let hash = *blake3::hash(data).as_bytes();
    let (_a, mut a_events, b, a_id, cancel) = two_members().await;
    let served = source.clone();
    tokio::spawn(async move {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(&served).expect("open");
        while let Some(e) = a_events.recv().await {
            let orrery_federation::Event::Request {
                request: Request::Sync(frame),
                reply,
                ..
            } = e
            else {
                continue;
            };
            let offset = u64::from_le_bytes(frame.message[..8].try_into().expect("8 bytes"));
            let mut part = vec![0u8; PART];
            let n = file.read_at(&mut part, offset).expect("read");
            part.truncate(n);
            // The old server checked each part against its recorded hash before sending it.
            std::hint::black_box(blake3::hash(&part));
            let _ = reply.send(Response::Sync(SyncFrame {
                project: frame.project,
                message: part,
                seals: Vec::new(),
            }));
        }
    });
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let partial = dir.path().join(format!("partial{round}"));
        let t0 = Instant::now();
        receive_parts(&b, a_id, data.len() as u64, &partial).await;
        // Whole-file check and the record of part hashes, as the old `append` did.
        let (whole, parts) = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&partial).expect("read");
            let parts: Vec<_> = bytes.chunks(PART).map(blake3::hash).collect();
            let whole = blake3::hash(&bytes);
            let _ = std::fs::remove_file(&partial);
            (whole, parts.len())
        })
        .await
        .expect("check");
        assert_eq!(whole.as_bytes(), &hash);
        std::hint::black_box(parts);
        times.push(t0.elapsed());
    }
    cancel.cancel();
    times
}

async fn receive_parts(
    b: &orrery_federation::FederationHandle,
    from: NodeId,
    len: u64,
    partial: &PathBuf,
) {
    use std::io::Write;
    let mut file = std::fs::File::create(partial).expect("create");
    let mut offset = 0u64;
    while offset < len {
        let answer = b
            .request(
                from,
                Request::Sync(SyncFrame {
                    project: ProjectId([7; 32]),
                    message: offset.to_le_bytes().to_vec(),
                    seals: Vec::new(),
                }),
            )
            .await
            .expect("answered");
        let Response::Sync(frame) = answer else {
            panic!("unexpected answer")
        };
        file.write_all(&frame.message).expect("append");
        offset += frame.message.len() as u64;
    }
    file.sync_all().expect("sync");
}

fn main() {
    let mib: usize = std::env::var("DATAPLANE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let data: Vec<u8> = (0..mib << 20)
        .map(|i| ((i as u64 * 2_654_435_761) >> 11) as u8)
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ours = median(rt.block_on(orrery(&data)));
    let plain = median(rt.block_on(plain_blobs::fetch_times(&[data.to_vec()], ROUNDS)));
    let old = median(rt.block_on(libp2p_parts(&data)));
    println!("data plane, {mib} MiB on loopback, median of {ROUNDS}:");
    println!(
        "  orrery data plane (node serve + fetch, verified, to disk): {:>8.1} MB/s  ({:.2} s)",
        rate(data.len(), ours),
        ours.as_secs_f64()
    );
    println!(
        "  plain iroh-blobs (MemStore to MemStore):                  {:>8.1} MB/s  ({:.2} s)",
        rate(data.len(), plain),
        plain.as_secs_f64()
    );
    println!(
        "  replaced: 4 MiB parts over libp2p request-response:       {:>8.1} MB/s  ({:.2} s)",
        rate(data.len(), old),
        old.as_secs_f64()
    );
    println!(
        "  ratio to plain iroh-blobs: {:.2}x; to the replaced transfer: {:.2}x",
        plain.as_secs_f64() / ours.as_secs_f64(),
        old.as_secs_f64() / ours.as_secs_f64()
    );
}
