//! `orrery lab`: labs on this node. For now `check` (can this node run labs, and if not, which
//! isolation layer is missing) and the hidden `exec` helper the node runs each lab through.

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
    /// Report whether this machine can run sandboxed labs: bubblewrap, unprivileged user
    /// namespaces, the cgroup version and Landlock.
    Check,
    /// Internal: join a lab's cgroup, drop to the lab uid and exec the sandbox. The node runs
    /// this; it is not meant to be typed.
    #[command(hide = true)]
    Exec(ExecArgs),
}

/// Arguments of the hidden `orrery lab exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The lab (its cgroup's name).
    #[arg(long)]
    lab: String,
    /// The cgroup filesystem's mount point.
    #[arg(long)]
    cgroup_root: PathBuf,
    /// Where labs live inside each hierarchy.
    #[arg(long)]
    cgroup_prefix: PathBuf,
    /// The uid to run the sandbox as.
    #[arg(long)]
    uid: u32,
    /// The gid to run the sandbox as.
    #[arg(long)]
    gid: u32,
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
            let report = crate::labs::check::run(&labs.bwrap, labs.uid);
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
    }
}

fn exec(args: ExecArgs) -> Result<()> {
    let driver = CgroupDriver::detect_at(&args.cgroup_root, &args.cgroup_prefix)?;
    driver
        .add(&args.lab, std::process::id())
        .context("joining the lab's cgroup")?;
    let (program, rest) = args
        .command
        .split_first()
        .context("no sandbox program given")?;
    // Only returns on failure.
    let err = std::process::Command::new(program)
        .args(rest)
        .uid(args.uid)
        .gid(args.gid)
        .exec();
    Err(err).with_context(|| format!("cannot exec {}", PathBuf::from(program).display()))
}
