//! The `orrery` binary.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = orrery_node::cli::Cli::parse();
    init_logging(&cli);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match orrery_node::cli::run(cli, &mut out) {
        Ok(()) => {
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs as `ORRERY_LOG_FORMAT` says, else as the node's configuration says (if it reads).
fn init_logging(cli: &orrery_node::cli::Cli) {
    use orrery_node::logging;
    let env = std::env::var(logging::FORMAT_ENV).ok();
    let configured = if env.is_none() {
        let root = cli
            .data_dir
            .clone()
            .unwrap_or_else(orrery_node::home::Home::default_root);
        let home = orrery_node::home::Home::new(root);
        orrery_node::config::Config::load(&home.config())
            .ok()
            .map(|c| c.log.format)
    } else {
        None
    };
    let (format, unknown) = logging::choose(env.as_deref(), configured);
    logging::init(format);
    if let Some(e) = unknown {
        tracing::warn!(error = %e, "{} ignored", logging::FORMAT_ENV);
    }
}

/// A reader that stopped reading (`orrery ... | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
