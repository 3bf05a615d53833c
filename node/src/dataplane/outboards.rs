//! The outboards of files served from where the node keeps them (dataset products, preserved
//! copies): made on first serve, one file at a time, checking the file against its hash on the
//! way, and kept under `outboards/<hash>` in the data directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tracing::warn;

use super::outboard;
use super::serve::{Refusal, Source};
use crate::home::Home;

/// How long a request waits for another file's outboard to be made before it is refused as
/// busy (the peer asks again later).
const OUTBOARD_WAIT: Duration = Duration::from_secs(60);

/// The node's kept outboards.
#[derive(Debug, Clone)]
pub struct Outboards {
    dir: PathBuf,
    making: Arc<Semaphore>,
}

impl Outboards {
    /// The outboards of the node at `home`.
    pub fn new(home: &Home) -> Self {
        Self {
            dir: home.root().join("outboards"),
            making: Arc::new(Semaphore::new(1)),
        }
    }

    /// Where the outboard of the bytes named `hash` is kept.
    pub fn path(&self, hash: &[u8; 32]) -> PathBuf {
        self.dir.join(hex::encode(hash))
    }

    /// `rel` under `root` (`size` bytes named `hash`), opened confined to `root` and ready to
    /// serve with its outboard; `what` names it in warnings. If its bytes turn out not to match
    /// while served, its outboard is forgotten and `damaged` runs.
    pub async fn serve(
        &self,
        root: PathBuf,
        rel: String,
        size: u64,
        hash: [u8; 32],
        what: String,
        damaged: impl FnOnce() + Send + 'static,
    ) -> Result<Source, Refusal> {
        let file =
            tokio::task::spawn_blocking(move || crate::catalog::confined::open(&root, &rel, size))
                .await
                .map_err(|_| Refusal::Busy)?
                .map_err(|e| {
                    warn!(file = %what, error = %e, "a file is not served over the data plane");
                    Refusal::Missing
                })?;
        let outboard = self.of(&file, hash, size, &what).await?;
        let forget = self.path(&hash);
        Ok(Source {
            file,
            size,
            outboard,
            on_damage: Some(Box::new(move || {
                let _ = std::fs::remove_file(forget);
                damaged();
            })),
        })
    }

    /// The outboard of `file` (`size` bytes, named `hash`), kept or made now; `what` names the
    /// file in warnings. A file that does not hash to `hash` is not served.
    pub async fn of(
        &self,
        file: &std::fs::File,
        hash: [u8; 32],
        size: u64,
        what: &str,
    ) -> Result<Vec<u8>, Refusal> {
        match std::fs::read(self.path(&hash)) {
            Ok(t) if t.len() as u64 == outboard::tree(size).outboard_size() => Ok(t),
            _ => self.make(file, hash, size, what).await,
        }
    }

    async fn make(
        &self,
        file: &std::fs::File,
        hash: [u8; 32],
        size: u64,
        what: &str,
    ) -> Result<Vec<u8>, Refusal> {
        let permit = tokio::time::timeout(OUTBOARD_WAIT, self.making.clone().acquire_owned())
            .await
            .map_err(|_| Refusal::Busy)?
            .map_err(|_| Refusal::Busy)?;
        let reader = file.try_clone().map_err(|_| Refusal::Missing)?;
        let made = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            outboard::compute(
                std::io::BufReader::with_capacity(1 << 20, PositionedRead(reader, 0)),
                size,
            )
        })
        .await
        .map_err(|_| Refusal::Busy)?;
        match made {
            Ok((root, tree)) if root == hash => {
                let stored = self.path(&hash);
                let tmp = self.dir.join(format!(".{}.tmp", hex::encode(hash)));
                let kept = std::fs::create_dir_all(&self.dir)
                    .and_then(|()| std::fs::write(&tmp, &tree))
                    .and_then(|()| std::fs::rename(&tmp, &stored));
                if let Err(e) = kept {
                    warn!(path = %stored.display(), error = %e, "an outboard could not be kept; it is made again on the next request");
                }
                Ok(tree)
            }
            Ok(_) => {
                warn!(file = %what, "a file no longer matches its BLAKE3: not served");
                Err(Refusal::Missing)
            }
            Err(e) => {
                warn!(file = %what, error = %e, "a file's outboard could not be made: not served");
                Err(Refusal::Missing)
            }
        }
    }
}

/// Reads a file from an offset without moving a shared cursor (the file is also served).
struct PositionedRead(std::fs::File, u64);

impl std::io::Read for PositionedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.0.read_at(buf, self.1)?;
        self.1 += n as u64;
        Ok(n)
    }
}
