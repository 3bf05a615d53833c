//! Reading a kept file again to check it against its BLAKE3, at a bounded rate, as the audits
//! of preserved copies do.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

/// The BLAKE3 of the file at `path`, read at most `rate` bytes a second.
pub fn hash_file(path: &Path, rate: u64) -> std::io::Result<[u8; 32]> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let started = Instant::now();
    let mut read = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        read += n as u64;
        // Paced, not synchronised: the audit reads no faster than its rate.
        let due = Duration::from_secs_f64(read as f64 / rate.max(1) as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hashes_as_blake3_does_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        assert_eq!(
            hash_file(&path, u64::MAX).expect("hashes"),
            *blake3::hash(&data).as_bytes()
        );
        assert!(hash_file(&dir.path().join("gone"), u64::MAX).is_err());
    }
}
