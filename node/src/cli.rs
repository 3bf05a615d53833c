//! The `orrery` command line: its arguments and the commands behind them.
//!
//! Every command writes its result to the writer it is given (standard output in the binary),
//! so commands are tested without spawning processes; errors carry what to do next.

mod author;
mod project;
mod render;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::home::{Home, write_key};
use crate::store::Store;

pub use project::ProjectCmd;

/// Orrery: a peer-to-peer federation for science archives.
#[derive(Debug, Parser)]
#[command(name = "orrery", version, propagate_version = true)]
#[command(about = "A peer-to-peer federation for science archives: datasets, labs next to the data, and co-edited projects with signed authorship.")]
pub struct Cli {
    /// The node's data directory (default: $XDG_DATA_HOME/orrery or ~/.local/share/orrery).
    #[arg(long, global = true, env = "ORRERY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node: its key, configuration and database. Refuses to overwrite an existing node.
    Init(InitArgs),
    /// Manage the researchers who edit from this node.
    #[command(subcommand)]
    Author(author::AuthorCmd),
    /// Create, inspect and edit projects.
    #[command(subcommand)]
    Project(ProjectCmd),
}

/// Arguments of `orrery init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The node's display name, e.g. "ESAC".
    #[arg(long, default_value = "orrery-node")]
    pub name: String,
    /// The institution running the node.
    #[arg(long, default_value = "")]
    pub institution: String,
    /// A contact address for the node's operators.
    #[arg(long, default_value = "")]
    pub contact: String,
}

/// What commands work with: the data directory, its configuration and store.
pub(crate) struct Ctx {
    pub(crate) home: Home,
    pub(crate) config: Config,
    pub(crate) store: Store,
}

impl Ctx {
    fn open(home: Home) -> Result<Self> {
        if !home.config().exists() {
            bail!(
                "{} is not an Orrery node; run `orrery init --data-dir {}` first",
                home.root().display(),
                home.root().display()
            );
        }
        let config = Config::load(&home.config())?;
        let store = Store::open(&home.database())
            .with_context(|| format!("opening {}", home.database().display()))?;
        Ok(Self {
            home,
            config,
            store,
        })
    }
}

/// Runs a parsed command line, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let home = Home::new(cli.data_dir.unwrap_or_else(Home::default_root));
    match cli.command {
        Command::Init(args) => init(&home, args, out),
        Command::Author(cmd) => author::run(&mut Ctx::open(home)?, cmd, out),
        Command::Project(cmd) => project::run(&mut Ctx::open(home)?, cmd, out),
    }
}

fn init(home: &Home, args: InitArgs, out: &mut dyn Write) -> Result<()> {
    if home.config().exists() || home.node_key().exists() {
        bail!(
            "{} already holds an Orrery node; refusing to overwrite it (choose another --data-dir)",
            home.root().display()
        );
    }
    let mut config = Config::default();
    config.node.name = args.name;
    config.node.institution = args.institution;
    config.node.contact = args.contact;
    config.validate()?;
    std::fs::create_dir_all(home.root())
        .with_context(|| format!("creating {}", home.root().display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.root(), std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", home.root().display()))?;
    }
    let key = orrery_protocol::SecretKey::generate()?;
    write_key(&home.node_key(), &key)?;
    std::fs::write(home.config(), config.to_commented_toml())
        .with_context(|| format!("writing {}", home.config().display()))?;
    Store::open(&home.database())?;
    writeln!(out, "initialised node {:?} in {}", config.node.name, home.root().display())?;
    writeln!(out, "node id: {}", key.public())?;
    writeln!(out, "next: `orrery author new --name \"Your Name\"`")?;
    Ok(())
}
