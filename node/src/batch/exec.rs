//! A job's run inside a batch job of the centre's cluster. The batch script is one line,
//! `orrery job exec --spec FILE`: this process starts the labs' sandbox on the compute node (the
//! same helper, bubblewrap and Jupyter server as a lab here, without the node's cgroup: the batch
//! system's allocation holds it), runs the notebook's cells with the loop a local run uses
//! ([`super::cells::run_cells`]), and leaves what came of it in the result file beside the spec,
//! which the node reads once Slurm says the job has ended. The node signs the record; nothing
//! in the batch job holds a key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use orrery_protocol::job::JobCell;
use orrery_protocol::run::RunStatus;
use serde::{Deserialize, Serialize};

use crate::labs::endpoint::Endpoint;
use crate::labs::kernel::Kernel;

/// Everything a run in a batch job needs, written by the node beside the batch script.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchSpec {
    /// The `orrery` binary whose `lab exec` drops to the lab's user and starts the sandbox.
    pub helper: PathBuf,
    /// The lab's unprivileged uid.
    pub uid: u32,
    /// The lab's gid.
    pub gid: u32,
    /// bubblewrap and its arguments (the Jupyter server inside is the last of them).
    pub sandbox: Vec<String>,
    /// The server's socket, in the run's directory.
    pub socket: PathBuf,
    /// The URL path the server is served under.
    pub base_url: String,
    /// The server's token.
    pub token: String,
    /// The cells to run, in order, as (id, source), the parameters injected.
    pub cells: Vec<(String, String)>,
    /// Longest one cell may run.
    pub cell_deadline_secs: u64,
    /// Longest the server may take to answer.
    pub start_deadline_secs: u64,
    /// Where the sandbox's own output goes.
    pub log: PathBuf,
    /// Where the result goes.
    pub result: PathBuf,
}

/// What a run in a batch job gave: the cells as the record keeps them, and how it ended. A run
/// that could not start has no cells and says why in its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    /// When the run began, in milliseconds since the epoch.
    pub started_at_ms: i64,
    /// When it ended.
    pub ended_at_ms: i64,
    /// How it ended.
    pub status: RunStatus,
    /// Every cell, those not run included.
    pub cells: Vec<JobCell>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Most bytes of the sandbox's own output kept in its log; the rest is dropped (a notebook
/// decides how much it writes there).
const MAX_LOG_BYTES: u64 = 16 << 20;

/// The last `lines` lines of the file at `path`, from its last 64 KiB (empty if it cannot be
/// read).
pub fn tail(path: &Path, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map_or(0, |m| m.len());
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 << 10)));
        let _ = f.take(64 << 10).read_to_end(&mut text);
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Copies what `from` says into `log` until it ends, keeping at most [`MAX_LOG_BYTES`] of it.
fn drain(mut from: impl std::io::Read + Send + 'static, log: Arc<Mutex<std::fs::File>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut log = log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let written = log.metadata().map_or(u64::MAX, |m| m.len());
            if written < MAX_LOG_BYTES {
                let _ = std::io::Write::write_all(&mut *log, &buf[..n]);
            }
        }
    });
}

/// `orrery job exec --spec FILE`: the run, its result written beside the spec (whole or not at
/// all). Fails only when the spec cannot be read or the result cannot be written.
pub fn run(spec: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    // Nothing this run writes is for other users of the cluster.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let text = std::fs::read(spec).with_context(|| format!("reading {}", spec.display()))?;
    let spec: BatchSpec = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a run's spec", spec.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(run_in(&spec));
    if let RunStatus::Error(e) = &result.status {
        eprintln!("orrery job exec: the run ended with an error: {e}");
    }
    write_whole(&spec.result, &result).with_context(|| format!("writing {}", spec.result.display()))
}

/// Writes `result` to `path` whole or not at all (a reader never sees half of it).
fn write_whole(path: &Path, result: &BatchResult) -> std::io::Result<()> {
    let writing = path.with_extension("writing");
    std::fs::write(&writing, serde_json::to_vec(result)?)?;
    std::fs::rename(&writing, path)
}

async fn run_in(spec: &BatchSpec) -> BatchResult {
    let started_at_ms = now_ms();
    let failed = |why: String| BatchResult {
        started_at_ms,
        ended_at_ms: now_ms(),
        status: RunStatus::Error(why),
        cells: Vec::new(),
    };
    // What an earlier attempt of this batch job left (Slurm may start it again) is not this
    // run's.
    let _ = std::fs::remove_file(spec.result.with_extension("partial"));
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
    {
        Ok(log) => Arc::new(Mutex::new(log)),
        Err(e) => {
            return failed(format!(
                "the sandbox's log {} could not be opened: {e}",
                spec.log.display()
            ));
        }
    };
    let Some((bwrap, args)) = spec.sandbox.split_first() else {
        return failed("the run's spec names no sandbox".into());
    };
    let mut child = match std::process::Command::new(&spec.helper)
        .args([
            "lab",
            "exec",
            "--uid",
            &spec.uid.to_string(),
            "--gid",
            &spec.gid.to_string(),
            "--",
        ])
        .arg(bwrap)
        .args(args)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return failed(format!(
                "the sandbox did not start ({}): {e}",
                spec.helper.display()
            ));
        }
    };
    if let Some(out) = child.stdout.take() {
        drain(out, log.clone());
    }
    if let Some(err) = child.stderr.take() {
        drain(err, log);
    }
    let endpoint = Endpoint::Unix(spec.socket.clone());
    let mut ended = None;
    let ready = crate::labs::jupyter::ready(
        &endpoint,
        &spec.base_url,
        &spec.token,
        Duration::from_secs(spec.start_deadline_secs),
        &mut || match child.try_wait() {
            Ok(None) => true,
            Ok(Some(how)) => {
                ended = Some(how.to_string());
                false
            }
            Err(e) => {
                ended = Some(e.to_string());
                false
            }
        },
    )
    .await;
    let result = match ready {
        Err(e) => {
            let why =
                ended.map_or_else(|| e.to_string(), |how| format!("its server ended ({how})"));
            failed(format!(
                "the lab's server did not start on the compute node: {why}; its last output:\n{}",
                tail(&spec.log, 15)
            ))
        }
        Ok(()) => match Kernel::start(&endpoint, &spec.base_url, &spec.token).await {
            Err(e) => failed(format!(
                "no kernel could be started on the compute node: {e}"
            )),
            Ok(kernel) => {
                // What ran so far is kept after each cell: a run the batch system ends early
                // (its time limit, its memory) keeps the cells before.
                let partial = spec.result.with_extension("partial");
                let (cells, status) = super::cells::run_cells(
                    &kernel,
                    spec.cells.clone(),
                    Duration::from_secs(spec.cell_deadline_secs),
                    &mut |cells, status| {
                        let so_far = BatchResult {
                            started_at_ms,
                            ended_at_ms: now_ms(),
                            status: status.clone(),
                            cells: cells.to_vec(),
                        };
                        if let Err(e) = write_whole(&partial, &so_far) {
                            eprintln!("orrery job exec: the cells so far could not be kept: {e}");
                        }
                    },
                )
                .await;
                if let Err(e) = kernel.shutdown().await {
                    eprintln!(
                        "orrery job exec: the kernel could not be shut down ({e}); the sandbox is stopped"
                    );
                }
                BatchResult {
                    started_at_ms,
                    ended_at_ms: now_ms(),
                    status,
                    cells,
                }
            }
        },
    };
    // The sandbox's first process is bubblewrap's init: its end ends everything inside.
    let _ = child.kill();
    let _ = child.wait();
    result
}
