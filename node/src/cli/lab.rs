//! `orrery lab`: labs on this node. `start`, `list`, `show`, `stop` and `logs` go through the
//! running node ([`api`]); `check` says whether this machine can run labs, and if not, which
//! isolation layer is missing; the hidden `exec` is the helper the node runs each lab through.

mod api;
mod attach;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::config::{Config, LabsSection};
use crate::home::Home;
use crate::labs::cgroup::CgroupDriver;

/// `orrery lab …`.
#[derive(Debug, Subcommand)]
pub enum LabCmd {
    /// Start a lab next to its data: on this node, or on the member that holds the collections
    /// (or, given a lab's id, start it again with its workspace). Answers once it runs, or says
    /// why it failed.
    Start {
        /// A lab that stopped or failed, to start again.
        lab: Option<String>,
        /// The environment.
        #[arg(long = "env", default_value = "jupyter")]
        environment: String,
        /// A collection to see read-only under /data (repeatable); held here or by another
        /// member, where the lab then runs.
        #[arg(long = "data")]
        data: Vec<String>,
        /// As this user (default: the user of this node's default author).
        #[arg(long)]
        user: Option<String>,
    },
    /// List the user's labs.
    List {
        /// As this user (default: the user of this node's default author).
        #[arg(long)]
        user: Option<String>,
    },
    /// Show a lab: its state, and why it failed if it did.
    Show {
        /// The lab's id.
        lab: String,
        /// As this user (default: the user of this node's default author).
        #[arg(long)]
        user: Option<String>,
    },
    /// Stop a lab; its workspace stays.
    Stop {
        /// The lab's id.
        lab: String,
        /// As this user (default: the user of this node's default author).
        #[arg(long)]
        user: Option<String>,
    },
    /// Add a collection to a running lab, read-only at /data/<collection>, without restarting
    /// it (the node running the lab must hold the collection).
    AddData {
        /// The lab's id.
        lab: String,
        /// The collection.
        collection: String,
        /// As this user (default: the user of this node's default author).
        #[arg(long)]
        user: Option<String>,
    },
    /// Print the last lines of a lab's server output.
    Logs {
        /// The lab's id.
        lab: String,
        /// As this user (default: the user of this node's default author).
        #[arg(long)]
        user: Option<String>,
    },
    /// Report whether this machine can run sandboxed labs: bubblewrap, unprivileged user
    /// namespaces, the cgroup version and Landlock.
    Check,
    /// Internal: join a lab's cgroup, drop to the lab uid and exec the sandbox. The node runs
    /// this; it is not meant to be typed.
    #[command(hide = true)]
    Exec(ExecArgs),
    /// Internal: add a dataset to a running lab's sandbox, read-only. The node runs this; it is
    /// not meant to be typed.
    #[command(hide = true)]
    Attach(attach::AttachArgs),
    /// Internal: the first process inside a lab's sandbox restricts itself with Landlock to
    /// the paths given, then execs the lab's program. Not meant to be typed.
    #[command(hide = true)]
    Confine(ConfineArgs),
}

/// Arguments of the hidden `orrery lab confine`.
#[derive(Debug, Args)]
pub struct ConfineArgs {
    /// Readable (and executable) beneath this path (repeatable).
    #[arg(long)]
    read: Vec<PathBuf>,
    /// Readable and writable beneath this path (repeatable).
    #[arg(long)]
    write: Vec<PathBuf>,
    /// A device directory: its devices read, written and controlled (repeatable).
    #[arg(long)]
    device: Vec<PathBuf>,
    /// The program and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<OsString>,
}

/// Arguments of the hidden `orrery lab exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The lab (its cgroup's name). None: the sandbox stays in the cgroup it was started in
    /// (a batch system's allocation).
    #[arg(long, requires_all = ["cgroup_root", "cgroup_prefix"])]
    lab: Option<String>,
    /// The cgroup filesystem's mount point.
    #[arg(long, requires = "lab")]
    cgroup_root: Option<PathBuf>,
    /// Where labs live inside each hierarchy.
    #[arg(long, requires = "lab")]
    cgroup_prefix: Option<PathBuf>,
    /// The uid to run the sandbox as.
    #[arg(long)]
    uid: u32,
    /// The gid to run the sandbox as.
    #[arg(long)]
    gid: u32,
    /// The lab's workspace image (ext4), mounted on `--workspace` inside the helper's own mount
    /// namespace: the workspace's size is then a hard limit.
    #[arg(long, requires = "workspace")]
    workspace_image: Option<PathBuf>,
    /// Where the workspace image is mounted (the workspace directory the sandbox binds).
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// The sandbox program and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<OsString>,
}

/// Runs `orrery lab …`. `check` works on a machine without a node (it then uses the default
/// `[labs]` settings).
pub(crate) fn run(home: &Home, cmd: LabCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        LabCmd::Check => {
            let labs = if home.config().exists() {
                Config::load(&home.config())?.labs
            } else {
                LabsSection::default()
            };
            if labs.backend == crate::config::LabBackend::Kubernetes {
                let cluster = crate::labs::kubernetes::Kubernetes::from_config(&labs, "check")
                    .map_err(|e| anyhow::anyhow!("labs cannot run in the cluster: {e}"))?;
                let (running, namespace) = cluster.probe().map_err(|e| {
                    anyhow::anyhow!("labs cannot run in the cluster: {e} (deploy/k8s/labs.yaml grants what the node needs)")
                })?;
                writeln!(
                    out,
                    "ok      cluster          the API answers; {running} lab pods run in namespace {namespace}"
                )?;
                writeln!(
                    out,
                    "labs run as pods of image {} (its pull is checked when a lab starts)",
                    labs.kubernetes.image
                )?;
                return Ok(());
            }
            let report = crate::labs::check::run(&labs.bwrap, labs.uid, labs.landlock);
            for layer in &report.layers {
                let mark = if layer.ok { "ok  " } else { "MISSING" };
                writeln!(out, "{mark:7} {:16} {}", layer.name, layer.detail)?;
            }
            match report.refusal() {
                None => writeln!(out, "labs can run on this machine")?,
                Some(why) => anyhow::bail!("labs cannot run here: {why}"),
            }
            Ok(())
        }
        LabCmd::Exec(args) => exec(args),
        LabCmd::Confine(args) => confine(args),
        LabCmd::Attach(args) => attach::attach(args),
        LabCmd::AddData {
            lab,
            collection,
            user,
        } => api::add_data(home, user.as_deref(), &lab, &collection, out),
        LabCmd::Start {
            lab,
            environment,
            data,
            user,
        } => api::start(
            home,
            user.as_deref(),
            lab.as_deref(),
            &environment,
            &data,
            out,
        ),
        LabCmd::List { user } => api::list(home, user.as_deref(), out),
        LabCmd::Show { lab, user } => api::show_one(home, user.as_deref(), &lab, out),
        LabCmd::Stop { lab, user } => api::stop(home, user.as_deref(), &lab, out),
        LabCmd::Logs { lab, user } => api::logs(home, user.as_deref(), &lab, out),
    }
}

fn exec(args: ExecArgs) -> Result<()> {
    if let (Some(lab), Some(root), Some(prefix)) =
        (&args.lab, &args.cgroup_root, &args.cgroup_prefix)
    {
        CgroupDriver::detect_at(root, prefix)?
            .add(lab, std::process::id())
            .context("joining the lab's cgroup")?;
    }
    let (program, rest) = args
        .command
        .split_first()
        .context("no sandbox program given")?;
    private_mounts()?;
    if let (Some(image), Some(dir)) = (&args.workspace_image, &args.workspace) {
        mount_image(image, dir)?;
    }
    let rest = stage_binds(rest)?;
    // Only returns on failure.
    let err = std::process::Command::new(program)
        .args(rest)
        .uid(args.uid)
        .gid(args.gid)
        .exec();
    Err(err).with_context(|| format!("cannot exec {}", PathBuf::from(program).display()))
}

fn confine(args: ConfineArgs) -> Result<()> {
    let (program, rest) = args
        .command
        .split_first()
        .context("no program to confine given")?;
    let enforced = crate::labs::landlock::restrict_self(&crate::labs::landlock::Confinement {
        read: args.read,
        write: args.write,
        devices: args.device,
    })
    .map_err(anyhow::Error::msg)?;
    eprintln!("orrery lab confine: {enforced}");
    let err = std::process::Command::new(program).args(rest).exec();
    Err(err).with_context(|| format!("cannot exec {}", PathBuf::from(program).display()))
}

/// Where the helper stages what a lab binds, in its own mount namespace.
const STAGE: &str = "/run/orrery-lab-stage";

/// Stages each of bubblewrap's `--bind`/`--ro-bind SRC DEST` sources (but `/usr`) under
/// [`STAGE`], still as root, and points bubblewrap there; the helper is in a mount namespace of
/// its own by then ([`private_mounts`]), so nothing of this is seen outside the lab.
/// The sandbox then starts as the lab's user without reaching SRC itself: a workspace inside
/// the node's data directory (kept `0700`: it holds keys and the database) is bound without
/// opening that directory to anyone.
/// Moves the helper into a mount namespace of its own with private propagation, so nothing it
/// mounts is seen outside the lab.
fn private_mounts() -> Result<()> {
    use rustix::mount::{MountPropagationFlags, mount_change};
    // Sound here: this process runs no other thread (the command line's `lab exec` mode starts
    // no runtime), and it execs bubblewrap right after.
    #[allow(deprecated)]
    rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNS)
        .context("a mount namespace for the lab's helper")?;
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .context("making the helper's mounts private")
}

/// Mounts the workspace image on `dir`, in the helper's namespace only: the mount (and its loop
/// device, released automatically) lives exactly as long as the lab's processes.
fn mount_image(image: &std::path::Path, dir: &std::path::Path) -> Result<()> {
    let out = std::process::Command::new("mount")
        .args(["-t", "ext4", "-o", "loop,nosuid,nodev"])
        .arg(image)
        .arg(dir)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .context("running mount for the workspace image")?;
    if !out.status.success() {
        anyhow::bail!(
            "the workspace image {} could not be mounted: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn stage_binds(args: &[OsString]) -> Result<Vec<OsString>> {
    use rustix::mount::{MountFlags, mount, mount_bind};
    std::fs::create_dir_all(STAGE).with_context(|| format!("creating {STAGE}"))?;
    mount(
        "tmpfs",
        STAGE,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        c"mode=0755",
    )
    .with_context(|| format!("mounting a staging tmpfs on {STAGE}"))?;
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    let mut staged = 0;
    while i < args.len() {
        let flag = args[i].to_str();
        if flag == Some("--") {
            // The lab's own command: passed as it is.
            out.extend(args[i..].iter().cloned());
            break;
        }
        if flag == Some("--setenv") {
            out.extend(args[i..(i + 3).min(args.len())].iter().cloned());
            i += 3;
            continue;
        }
        let is_bind = matches!(flag, Some("--bind" | "--ro-bind"));
        match (is_bind, args.get(i + 1), args.get(i + 2)) {
            (true, Some(src), Some(dest)) if !std::path::Path::new(src).starts_with("/usr") => {
                let target = std::path::Path::new(STAGE).join(staged.to_string());
                staged += 1;
                if std::path::Path::new(src).is_dir() {
                    std::fs::create_dir(&target)
                } else {
                    std::fs::write(&target, b"")
                }
                .with_context(|| format!("staging {}", target.display()))?;
                mount_bind(std::path::Path::new(src), &target).with_context(|| {
                    format!("staging {} for the sandbox", PathBuf::from(src).display())
                })?;
                out.push(args[i].clone());
                out.push(target.into_os_string());
                out.push(dest.clone());
                i += 3;
            }
            _ => {
                out.push(args[i].clone());
                i += 1;
            }
        }
    }
    Ok(out)
}
