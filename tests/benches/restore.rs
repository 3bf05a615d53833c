//! Preservation: the time to restore k copies of 2 GiB after a holder is lost, on loopback.
//!
//! Four real nodes (ESA publishing, DLR, CNES and INAF offering room) keep three copies of an
//! 8-file, 2 GiB collection at distinct institutions. Once the three are complete, the holder
//! other than the publisher that was chosen first is stopped for good. The bench reports:
//!
//! - the deadline: from the stop until a new holder begins its copy (the stopped node's last
//!   advert expiring, `network.advert_ttl_secs`, plus `[preservation] away_secs`): a setting,
//!   not a speed;
//! - the restore: from the new holder's first byte until the publisher's status counts three
//!   complete copies again (every file fetched over the data plane from the publisher, each
//!   16 KiB group verified, written, hashed whole and recorded, then the holder's next advert);
//! - the baseline, in the same run: the same 8 files fetched with plain iroh-blobs, `MemStore`
//!   to `MemStore` on loopback, nothing written to disk.
//!
//! Run with `cargo bench -p orrery-tests --bench restore`. `RESTORE_MIB` (default 2048) sizes
//! the collection. The nodes' data directories are under the system's temporary directory,
//! which needs about 4 times that size free.

#[path = "../../node/benches/support/plain_blobs.rs"]
mod plain_blobs;

use std::path::Path;
use std::time::{Duration, Instant};

use orrery_tests::{
    TestNode, cli, federation_with, preservation_holders as holders, preservation_status,
    publish_files,
};

const FILES: usize = 8;
const INSTITUTIONS: [&str; 4] = ["ESA", "DLR", "CNES", "INAF"];
/// How long any phase may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(1800);

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    out
}

fn rate(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// Waits, looking every 200 ms (a look at the status costs a little of the 2 cores), until
/// `done` holds; the time it took.
async fn until(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < PATIENCE, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    t0.elapsed()
}

/// Whether `node` has begun a copy: a file under its `preserved` directory, partial or not.
fn begun(node: &TestNode) -> bool {
    fn any_file(dir: &Path) -> bool {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let p = e.path();
                if p.is_dir() {
                    any_file(&p)
                } else {
                    std::fs::metadata(&p).is_ok_and(|m| m.len() > 0)
                }
            })
        })
    }
    any_file(&node.home.root().join("preserved"))
}

fn complete(node: &TestNode) -> u64 {
    preservation_status(node)[0]["complete"]
        .as_u64()
        .unwrap_or(0)
}

async fn bench() {
    let mib: usize = std::env::var("RESTORE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let total = mib << 20;
    let files: Vec<Vec<u8>> = (0..FILES).map(|i| bytes(total / FILES, i as u8)).collect();
    let baseline = plain_blobs::fetch_times(&files, 1).await[0];

    let spare_gib = (mib as u64).div_ceil(1024) + 1;
    let mut nodes = federation_with(INSTITUTIONS.len(), |i, c| {
        c.node.institution = INSTITUTIONS[i].into();
        c.preservation.spare_gib = if i > 0 { spare_gib } else { 0 };
        c.preservation.check_secs = 1;
        c.preservation.away_secs = 1;
    })
    .await;
    let names: Vec<String> = (0..FILES).map(|i| format!("part-{i}.fits")).collect();
    let named: Vec<(&str, Vec<u8>)> = names.iter().map(String::as_str).zip(files).collect();
    publish_files(&nodes[0], "archive", &named);
    drop(named);
    let said = cli(
        &nodes[0],
        &[
            "preservation",
            "set",
            "archive",
            "--copies",
            "3",
            "--distinct-institutions",
        ],
    );
    assert!(said.contains("3 copies"), "{said}");
    let first = until("the first two copies", || complete(&nodes[0]) == 3).await;

    let before = holders(&nodes[0]);
    let gone = (1..nodes.len())
        .find(|i| before.contains(&nodes[*i].id.to_string()))
        .expect("a holder besides the publisher");
    let newcomer = (1..nodes.len())
        .find(|i| !before.contains(&nodes[*i].id.to_string()))
        .expect("a node that holds nothing");
    assert!(!begun(&nodes[newcomer]), "the spare node holds nothing yet");
    nodes[gone].stop().await;
    let deadline = until("a new holder to begin", || begun(&nodes[newcomer])).await;
    let gone_id = nodes[gone].id.to_string();
    let restore = until("three complete copies again", || {
        complete(&nodes[0]) == 3 && !holders(&nodes[0]).contains(&gone_id)
    })
    .await;

    println!("{mib} MiB in {FILES} files, 3 copies at distinct institutions, 4 nodes on loopback");
    println!(
        "first copies (2 holders fetching at once): {:.1} s",
        first.as_secs_f64()
    );
    println!(
        "deadline (advert expiry + away_secs): {:.1} s",
        deadline.as_secs_f64()
    );
    println!(
        "restore: {:.1} s, {:.1} MB/s",
        restore.as_secs_f64(),
        rate(total, restore)
    );
    println!(
        "plain iroh-blobs MemStore to MemStore (baseline): {:.1} s, {:.1} MB/s",
        baseline.as_secs_f64(),
        rate(total, baseline)
    );
    println!(
        "ratio: restore takes {:.2}x the baseline's time",
        restore.as_secs_f64() / baseline.as_secs_f64()
    );
    for node in &mut nodes {
        node.stop().await;
    }
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}
