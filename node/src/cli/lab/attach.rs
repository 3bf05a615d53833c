//! The hidden `orrery lab attach`: adds a dataset to a running lab, read-only, at
//! `/data/<collection>`, without restarting it.
//!
//! As root and single-threaded: the helper stages a read-only bind of the collection in a mount
//! namespace of its own (a read-only remount does not propagate to copies, so the read-only
//! mount is made privately first), clones it as a detached mount (`open_tree`), enters the
//! lab's mount namespace and root, and attaches the clone there (`move_mount`). Nothing changes
//! in the node's own mount namespace, and the lab sees the new directory at once.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use rustix::fs::{CWD, Mode, OFlags};
use rustix::mount::{
    MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, mount, mount_bind,
    mount_change, mount_remount, move_mount, open_tree,
};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use crate::labs::cgroup::CgroupDriver;
use crate::labs::sandbox::DATA_DIR;

/// Where the helper stages the read-only bind, in its own mount namespace.
const STAGE: &str = "/run/orrery-lab-attach";

/// Arguments of the hidden `orrery lab attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The lab (its cgroup's name).
    #[arg(long)]
    lab: String,
    /// The cgroup filesystem's mount point.
    #[arg(long)]
    cgroup_root: PathBuf,
    /// Where labs live inside each hierarchy.
    #[arg(long)]
    cgroup_prefix: PathBuf,
    /// The directory on the node that holds the collection.
    #[arg(long)]
    source: PathBuf,
    /// The collection: the data appears at /data/<collection>.
    #[arg(long)]
    collection: String,
    /// The lab's mount point for it on the node (under the directory that is its /data).
    #[arg(long)]
    mountpoint: PathBuf,
}

/// A process of the lab inside its sandbox. The lab's cgroup holds the helper that became
/// bubblewrap (in the helper's own staging mount namespace) and, below it, the sandbox's
/// processes (in the sandbox's namespace): the one sought is in another namespace than both this
/// process and its parent.
fn sandboxed_process(args: &AttachArgs) -> Result<u32> {
    let driver = CgroupDriver::detect_at(&args.cgroup_root, &args.cgroup_prefix)?;
    let ns = |pid: &str| {
        std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
            .map(|m| m.ino())
            .ok()
    };
    let own = ns("self").context("reading this process's mount namespace")?;
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.get(stat.rfind(')')? + 2..)?
            .split(' ')
            .nth(1)?
            .parse()
            .ok()
    };
    let pids = driver.pids(&args.lab)?;
    pids.iter()
        .copied()
        .find(|&pid| {
            let (Some(mine), Some(up)) = (ns(&pid.to_string()), parent(pid)) else {
                return false;
            };
            let theirs = ns(&up.to_string());
            mine != own && pids.contains(&up) && theirs.is_some_and(|t| t != own && t != mine)
        })
        .with_context(|| {
            format!(
                "lab {} has no process in a sandbox: is it running?",
                args.lab
            )
        })
}

pub(super) fn attach(args: AttachArgs) -> Result<()> {
    let c = &args.collection;
    let plain = !c.is_empty()
        && c.len() <= 128
        && c != "."
        && c != ".."
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !plain {
        bail!("invalid collection name {c:?} for /data");
    }
    if !args.source.is_absolute() || !args.source.is_dir() {
        bail!(
            "{} is not a directory given by its absolute path",
            args.source.display()
        );
    }
    let pid = sandboxed_process(&args)?;
    // The mount point, made on the node's side: the lab's /data is that directory, read-only.
    match std::fs::create_dir(&args.mountpoint) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("the lab already has /data/{c}")
        }
        Err(e) => {
            return Err(e).with_context(|| format!("creating {}", args.mountpoint.display()));
        }
    }
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .context("opening the lab's mount namespace")?;
    let root = rustix::fs::open(
        format!("/proc/{pid}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("opening the lab's root")?;

    // Sound here: this process runs no other thread (the command line's `lab attach` mode
    // starts no runtime).
    #[allow(deprecated)]
    rustix::thread::unshare(UnshareFlags::NEWNS).context("a mount namespace for the helper")?;
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .context("making the helper's mounts private")?;
    std::fs::create_dir_all(STAGE).with_context(|| format!("creating {STAGE}"))?;
    mount(
        "tmpfs",
        STAGE,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        c"mode=0700",
    )
    .with_context(|| format!("a staging tmpfs on {STAGE}"))?;
    let staged = PathBuf::from(STAGE).join("data");
    std::fs::create_dir(&staged).context("staging")?;
    mount_bind(&args.source, &staged).context("binding the collection")?;
    mount_remount(
        &staged,
        MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
        c"",
    )
    .context("making the staged collection read-only")?;
    let tree = open_tree(
        CWD,
        &staged,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .context("cloning the read-only mount")?;

    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&ns),
        Some(LinkNameSpaceType::Mount),
    )
    .context("entering the lab's mount namespace")?;
    rustix::process::fchdir(&root).context("entering the lab's root")?;
    rustix::process::chroot(".").context("entering the lab's root")?;
    let target = PathBuf::from(DATA_DIR).join(c);
    if !target.is_dir() {
        bail!(
            "{} is not in the lab: it was started without a data volume",
            target.display()
        );
    }
    move_mount(
        &tree,
        c"",
        CWD,
        &target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .with_context(|| format!("attaching the collection at {}", target.display()))?;
    Ok(())
}
