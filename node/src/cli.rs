//! The `orrery` command line: its arguments and the commands behind them.
//!
//! Every command writes its result to the writer it is given (standard output in the binary),
//! so commands are tested without spawning processes; errors carry what to do next.

mod author;
mod dataset;
mod doctor;
mod environment;
mod ephemeral;
mod federation;
mod job;
mod lab;
mod preservation;
mod project;
mod provenance;
mod reference;
mod render;
mod run;
mod user;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::home::Home;
use crate::store::Store;

pub use project::ProjectCmd;

/// Orrery: a peer-to-peer federation for science archives.
#[derive(Debug, Parser)]
#[command(name = "orrery", version, propagate_version = true)]
#[command(
    about = "A peer-to-peer federation for science archives: datasets, labs next to the data, and co-edited projects with signed authorship."
)]
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
    /// Manage the people who sign in to this node (each edits as one of its authors).
    #[command(subcommand)]
    User(user::UserCmd),
    /// Manage API tokens for scripts.
    #[command(subcommand)]
    Token(user::TokenCmd),
    /// Publish data: scan directories into collections, list and remove them.
    #[command(subcommand)]
    Dataset(dataset::DatasetCmd),
    /// Search the federation's catalogs (or this node's, with --local).
    Search(Box<dataset::SearchArgs>),
    /// Found, join and manage the federation this node belongs to.
    #[command(subcommand)]
    Federation(federation::FederationCmd),
    /// Sandboxed labs on this node: `orrery lab check` says whether this machine can run them.
    #[command(subcommand)]
    Lab(lab::LabCmd),
    /// Notebooks run whole as jobs at the data (pipelines): submit, list, runs, compare, cancel.
    #[command(subcommand)]
    Job(job::JobCmd),
    /// Copies of collections across the federation: set a policy, see where copies stand.
    #[command(subcommand)]
    Preservation(preservation::PreservationCmd),
    /// Run the node: join the federation's network, publish adverts, sync projects.
    Run,
    /// Print this node's id (what another node's operator needs to invite it).
    Id,
    /// Check this node's configuration, keys, database, ports and federation, and say what to
    /// fix. Exits non-zero when a check fails.
    Doctor(doctor::DoctorArgs),
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
    /// Listen for other nodes on every network interface (port 4100, TCP and QUIC), as an
    /// archive centre's node does. Without it the node listens on loopback only, so a node on a
    /// single machine is reachable from nowhere else until `[network] listen` says otherwise.
    #[arg(long)]
    pub public: bool,
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
        Command::User(cmd) => user::run_user(&mut Ctx::open(home)?, cmd, out),
        Command::Token(cmd) => user::run_token(&mut Ctx::open(home)?, cmd, out),
        Command::Dataset(cmd) => dataset::run(&mut Ctx::open(home)?, cmd, out),
        Command::Search(args) => dataset::search_cmd(&Ctx::open(home)?, *args, out),
        Command::Federation(cmd) => federation::run(&mut Ctx::open(home)?, cmd, out),
        Command::Lab(cmd) => lab::run(&home, cmd, out),
        Command::Job(job::JobCmd::Exec { spec }) => crate::batch::exec::run(&spec),
        Command::Job(cmd) => job::run(&Ctx::open(home)?, cmd, out),
        Command::Preservation(cmd) => preservation::run(&mut Ctx::open(home)?, cmd, out),
        Command::Run => federation::run_node(&Ctx::open(home)?, out),
        Command::Doctor(args) => doctor::run(&home, args, out),
        Command::Id => {
            let ctx = Ctx::open(home)?;
            let key = crate::home::read_key(&ctx.home.node_key())?;
            writeln!(out, "{}", key.public())?;
            Ok(())
        }
    }
}

fn init(home: &Home, args: InitArgs, out: &mut dyn Write) -> Result<()> {
    let mut config = Config::default();
    config.node.name = args.name;
    config.node.institution = args.institution;
    config.node.contact = args.contact;
    if !args.public {
        config.network.listen = vec![
            "/ip4/127.0.0.1/tcp/4100".into(),
            "/ip4/127.0.0.1/udp/4100/quic-v1".into(),
        ];
    }
    let node = crate::setup::init(home, &config)?;
    writeln!(
        out,
        "initialised node {:?} in {}",
        config.node.name,
        home.root().display()
    )?;
    writeln!(out, "node id: {node}")?;
    writeln!(
        out,
        "listens for other nodes on {}; serves HTTP at http://{} (this machine only)",
        config.network.listen.join(", "),
        config.web.listen
    )?;
    writeln!(out, "next: `orrery author new --name \"Your Name\"`")?;
    Ok(())
}
