//! Opening a catalogued product's file for serving, confined to its collection's root.
//!
//! A file is catalogued by its path under the collection's root; what is on disk there may have
//! changed since (a file replaced by a symbolic link to the node's key, a directory on its path
//! swapped for a link to `/etc`). So a file is opened with `openat2(2)` relative to a descriptor
//! of the root, with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`: the kernel
//! refuses any symbolic link on the way and any path that leaves the root, with no window
//! between a check and the open. The root itself is opened without following links. What is
//! opened must be a regular file of the catalogued size; its bytes are checked against the
//! catalogued BLAKE3 while they are sent (see `orrery_web`).

use std::fs::File;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags, openat2};
use rustix::io::Errno;

/// Why a catalogued file is not served.
#[derive(Debug, thiserror::Error)]
pub enum ConfinedError {
    /// The catalogued path is not a plain relative path.
    #[error("the catalogued path is not a plain relative path")]
    BadPath,
    /// A symbolic link is on the path, or the path leads out of the collection.
    #[error(
        "a symbolic link is on the path or it leads out of the collection; the file was replaced after it was catalogued: run `orrery dataset add` again"
    )]
    Escapes,
    /// The file is gone.
    #[error("the file is no longer there; run `orrery dataset add` again")]
    Gone,
    /// What is there is not a regular file.
    #[error("the path no longer names a regular file; run `orrery dataset add` again")]
    NotAFile,
    /// The file's size differs from the catalogued one.
    #[error(
        "the file is {found} bytes, not the {catalogued} catalogued: it changed since it was catalogued; run `orrery dataset add` again"
    )]
    Changed {
        /// The size found.
        found: u64,
        /// The size catalogued.
        catalogued: u64,
    },
    /// The kernel has no `openat2` (Linux before 5.6).
    #[error("this kernel has no openat2 (Linux 5.6 or later is needed to serve files safely)")]
    Unsupported,
    /// Any other refusal by the system.
    #[error("the file cannot be opened: {0}")]
    Io(#[source] std::io::Error),
}

/// Opens `rel` (a '/'-separated path as catalogued) under `root` for reading, without following
/// any symbolic link and without leaving `root`, and checks it is a regular file of `size`
/// bytes.
pub fn open(root: &Path, rel: &str, size: u64) -> Result<File, ConfinedError> {
    if rel.is_empty()
        || rel.starts_with('/')
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\0'))
    {
        return Err(ConfinedError::BadPath);
    }
    let no_links = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let dir = openat2(
        rustix::fs::CWD,
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        no_links,
    )
    .map_err(refusal)?;
    // Non-blocking, so that a FIFO put in a file's place cannot hold the request open.
    let fd = openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        no_links | ResolveFlags::BENEATH,
    )
    .map_err(refusal)?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(ConfinedError::Io)?;
    if !meta.is_file() {
        return Err(ConfinedError::NotAFile);
    }
    if meta.len() != size {
        return Err(ConfinedError::Changed {
            found: meta.len(),
            catalogued: size,
        });
    }
    Ok(file)
}

fn refusal(e: Errno) -> ConfinedError {
    match e {
        Errno::LOOP | Errno::XDEV => ConfinedError::Escapes,
        Errno::NOENT => ConfinedError::Gone,
        Errno::NOTDIR => ConfinedError::NotAFile,
        Errno::NOSYS => ConfinedError::Unsupported,
        e => ConfinedError::Io(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("collection");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("sub/a.fits"), b"0123456789").expect("write");
        std::fs::write(tmp.path().join("secret.key"), b"SECRET").expect("write");
        (tmp, root)
    }

    #[test]
    fn a_catalogued_file_opens() {
        let (_tmp, root) = setup();
        let mut f = open(&root, "sub/a.fits", 10).expect("opens");
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).expect("read");
        assert_eq!(s, "0123456789");
    }

    #[test]
    fn a_file_replaced_by_a_link_is_refused() {
        let (tmp, root) = setup();
        std::fs::remove_file(root.join("sub/a.fits")).expect("rm");
        symlink(tmp.path().join("secret.key"), root.join("sub/a.fits")).expect("link");
        assert!(matches!(
            open(&root, "sub/a.fits", 6),
            Err(ConfinedError::Escapes)
        ));
        // A link that stays inside the collection is refused too: nothing is followed.
        std::fs::write(root.join("b.fits"), b"0123456789").expect("write");
        std::fs::remove_file(root.join("sub/a.fits")).expect("rm");
        symlink("../b.fits", root.join("sub/a.fits")).expect("link");
        assert!(matches!(
            open(&root, "sub/a.fits", 10),
            Err(ConfinedError::Escapes)
        ));
    }

    #[test]
    fn a_directory_replaced_by_a_link_is_refused() {
        let (tmp, root) = setup();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("a.fits"), b"0123456789").expect("write");
        std::fs::remove_dir_all(root.join("sub")).expect("rm");
        symlink(&outside, root.join("sub")).expect("link");
        assert!(matches!(
            open(&root, "sub/a.fits", 10),
            Err(ConfinedError::Escapes)
        ));
    }

    #[test]
    fn paths_out_of_the_root_are_refused() {
        let (_tmp, root) = setup();
        for bad in [
            "../secret.key",
            "/etc/passwd",
            "sub/../../secret.key",
            "",
            "sub//a.fits",
        ] {
            assert!(
                matches!(open(&root, bad, 6), Err(ConfinedError::BadPath)),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_root_that_became_a_link_is_refused() {
        let (tmp, root) = setup();
        let moved = tmp.path().join("moved");
        std::fs::rename(&root, &moved).expect("mv");
        symlink(&moved, &root).expect("link");
        assert!(matches!(
            open(&root, "sub/a.fits", 10),
            Err(ConfinedError::Escapes)
        ));
    }

    #[test]
    fn a_changed_size_or_a_fifo_is_refused() {
        let (_tmp, root) = setup();
        assert!(matches!(
            open(&root, "sub/a.fits", 11),
            Err(ConfinedError::Changed { found: 10, .. })
        ));
        std::fs::remove_file(root.join("sub/a.fits")).expect("rm");
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("sub/a.fits"))
            .status()
            .expect("mkfifo");
        assert!(status.success());
        assert!(matches!(
            open(&root, "sub/a.fits", 10),
            Err(ConfinedError::NotAFile)
        ));
        assert!(matches!(
            open(&root, "sub/none.fits", 10),
            Err(ConfinedError::Gone)
        ));
    }
}
