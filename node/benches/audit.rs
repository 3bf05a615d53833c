//! The audit of preserved copies against raw BLAKE3, on the same files in the same run: the
//! audit's reader (`dataplane::audit::hash_file`, unpaced: what an audit costs when its rate is
//! not the limit) against `blake3::Hasher::update_reader` on the same open file, each file read
//! once per round. Files live in `/dev/shm` when there is one, so the disk does not decide. Each
//! way runs `ROUNDS` times; the median is reported. Size: `AUDIT_MIB` (default 512), in files of
//! 64 MiB.
//!
//! Run with `cargo bench -p orrery-node --bench audit`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use orrery_node::dataplane::audit::hash_file;

const ROUNDS: usize = 5;
const FILE_MIB: usize = 64;

fn files(dir: &Path, total_mib: usize) -> Vec<(PathBuf, [u8; 32])> {
    (0..total_mib.div_ceil(FILE_MIB))
        .map(|i| {
            let data: Vec<u8> = (0..FILE_MIB << 20)
                .map(|j| ((j as u64).wrapping_mul(2_654_435_761) >> 13) as u8 ^ i as u8)
                .collect();
            let path = dir.join(format!("file-{i}"));
            std::fs::write(&path, &data).expect("write");
            (path, *blake3::hash(&data).as_bytes())
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let total: usize = std::env::var("AUDIT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");
    let files = files(dir.path(), total);
    let bytes = (files.len() * (FILE_MIB << 20)) as f64;
    let (mut audit, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for (path, hash) in &files {
            assert_eq!(&hash_file(path, u64::MAX).expect("audits"), hash);
        }
        audit.push(bytes / t.elapsed().as_secs_f64() / 1e6);
        let t = Instant::now();
        for (path, hash) in &files {
            let mut hasher = blake3::Hasher::new();
            hasher
                .update_reader(std::fs::File::open(path).expect("open"))
                .expect("reads");
            assert_eq!(hasher.finalize().as_bytes(), hash);
        }
        raw.push(bytes / t.elapsed().as_secs_f64() / 1e6);
    }
    let (audit, raw) = (median(audit), median(raw));
    println!(
        "audit of {} MiB in {} files, median of {ROUNDS} rounds:",
        files.len() * FILE_MIB,
        files.len()
    );
    println!("  the audit's reader (unpaced):        {audit:>8.1} MB/s");
    println!("  raw BLAKE3 (Hasher::update_reader):  {raw:>8.1} MB/s");
    println!("  ratio: {:.2}x (goal >= 0.8x)", audit / raw);
}
