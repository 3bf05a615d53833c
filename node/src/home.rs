//! The node's data directory: its layout and its key files.
//!
//! ```text
//! DATA_DIR/
//! ├── orrery.toml          configuration
//! ├── node.key             the node's ed25519 secret key (owner-only)
//! ├── authors/<id>.key     each local author's secret key (owner-only)
//! ├── orrery.db            the SQLite store (WAL)
//! ├── node.lock           locked by the running node (`orrery run`) while it runs
//! ├── web.addr            where the running node serves HTTP
//! ├── https.addr          where it serves HTTPS, when `[web] tls_listen` is set
//! └── metrics.addr        where the running node serves `/metrics`
//! ```
//!
//! Key files hold the 32 secret bytes and nothing else. They are created with mode 0600 and
//! refused when they are readable by anyone else or have the wrong length.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use orrery_protocol::{AuthorId, KeyError, SecretKey};

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file exists already.
    #[error("{} already exists; refusing to overwrite a key", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file is missing.
    #[error("no key at {}; run `orrery init` (node) or `orrery author new` (author) first", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// Others may read the file.
    #[error("{path} has mode {mode:o}, readable by others; run `chmod 600 {path}`", path = path.display())]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The contents are not a key.
    #[error("{path} is not a key file: {source}", path = path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: KeyError,
    },
    /// Reading or writing failed.
    #[error("cannot access {path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Writes a new key file with owner-only permissions; never overwrites.
pub fn write_key(path: &Path, key: &SecretKey) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                io(e)
            }
        })?;
    file.write_all(&key.to_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// Reads a key file, refusing symlinks, group- or world-accessible files and wrong lengths.
/// The file is opened once and checked through the open handle, so it cannot be swapped
/// between the check and the read.
pub fn read_key(path: &Path) -> Result<SecretKey, KeyFileError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow())
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => KeyFileError::Missing {
                path: path.to_path_buf(),
            },
            _ => io(e),
        })?;
    let meta = file.metadata().map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut bytes = Vec::with_capacity(32);
    file.take(64).read_to_end(&mut bytes).map_err(io)?;
    SecretKey::from_bytes(&bytes).map_err(|source| KeyFileError::BadKey {
        path: path.to_path_buf(),
        source,
    })
}

/// `O_NOFOLLOW` on Linux: opening a symlink fails instead of following it.
fn libc_o_nofollow() -> i32 {
    0o400000
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        // Absolute, so that paths handed to others (a lab's sandbox, a helper process) mean the
        // same wherever they run.
        let root = std::path::absolute(&root).unwrap_or(root);
        Self { root }
    }

    /// The default data directory: `$XDG_DATA_HOME/orrery` or `~/.local/share/orrery`.
    pub fn default_root() -> PathBuf {
        if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
            return PathBuf::from(x).join("orrery");
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".local/share/orrery")
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The configuration file.
    pub fn config(&self) -> PathBuf {
        self.root.join("orrery.toml")
    }

    /// The node key.
    pub fn node_key(&self) -> PathBuf {
        self.root.join("node.key")
    }

    /// A local author's key.
    pub fn author_key(&self, author: &AuthorId) -> PathBuf {
        self.root.join("authors").join(format!("{author}.key"))
    }

    /// The store of large cell outputs.
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// The database.
    pub fn database(&self) -> PathBuf {
        self.root.join("orrery.db")
    }

    /// The file a running node holds locked.
    pub fn run_lock(&self) -> PathBuf {
        self.root.join("node.lock")
    }

    /// Where the running node wrote the address of its HTTP face.
    pub fn web_addr(&self) -> PathBuf {
        self.root.join("web.addr")
    }

    /// Where the running node wrote the address of its HTTPS listener.
    pub fn https_addr(&self) -> PathBuf {
        self.root.join("https.addr")
    }

    /// Where the running node wrote the address of its metrics listener.
    pub fn metrics_addr(&self) -> PathBuf {
        self.root.join("metrics.addr")
    }
}

/// An exclusive advisory lock (`flock`) on `node.lock`, held by a running node for as long as
/// it runs: a second node on the same data directory is refused, and `orrery doctor` can tell
/// whether the node is running. The kernel drops the lock when the holder exits, however it
/// exits, so a crash never leaves a stale lock behind.
#[derive(Debug)]
pub struct RunLock {
    _file: fs::File,
}

impl RunLock {
    /// Takes the lock, or `None` if another process (or another node in this process) holds it.
    pub fn acquire(home: &Home) -> std::io::Result<Option<RunLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(home.run_lock())?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(RunLock { _file: file })),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a node runs on `home` now (someone holds the lock). A data directory without a
    /// lock file has no running node.
    pub fn is_held(home: &Home) -> std::io::Result<bool> {
        let file = match OpenOptions::new().read(true).open(home.run_lock()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
            Ok(()) => Ok(false),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(true),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_owner_only_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.key");
        let key = SecretKey::generate().expect("random");
        write_key(&path, &key).expect("writes");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key(&path).expect("reads").public(), key.public());
        assert!(matches!(
            write_key(&path, &key),
            Err(KeyFileError::Exists { .. })
        ));

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            read_key(&path),
            Err(KeyFileError::Permissions { mode: 0o644, .. })
        ));

        let short = dir.path().join("short.key");
        fs::write(&short, [1u8; 16]).expect("write");
        fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(read_key(&short), Err(KeyFileError::BadKey { .. })));
        assert!(matches!(
            read_key(&dir.path().join("none.key")),
            Err(KeyFileError::Missing { .. })
        ));
    }

    #[test]
    fn one_node_at_a_time_holds_the_run_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path());
        assert!(!RunLock::is_held(&home).expect("checks"));
        let lock = RunLock::acquire(&home).expect("locks").expect("free");
        assert!(RunLock::is_held(&home).expect("checks"));
        assert!(RunLock::acquire(&home).expect("tries").is_none());
        drop(lock);
        assert!(!RunLock::is_held(&home).expect("checks"));
        assert!(RunLock::acquire(&home).expect("locks").is_some());
    }
}
