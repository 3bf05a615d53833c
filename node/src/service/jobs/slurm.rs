//! Jobs as batch jobs of the centre's Slurm cluster (`[jobs] backend = "slurm"`). Each run gets
//! a directory in the spool: the notebook's cells with the parameters injected and the labs'
//! sandbox described (`spec.json`), the record as far as the node knows it before the run
//! (`record.json`), and a one-line batch script. `sbatch` submits it; the node asks `squeue`
//! every few seconds whether it waits or runs (and says so in the job's note), and `sacct` how
//! it ended. Inside the batch job, `orrery job exec` runs the cells as a local run does and
//! writes what came of them after each cell; the node fills the record from that, signs it and
//! keeps it. A run Slurm ended early (its time limit, memory, a cancel) keeps the cells that
//! ran and says how it ended.
//!
//! The spool holds everything needed to follow a run, so a node that restarts while runs are in
//! Slurm follows them again instead of losing them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orrery_protocol::job::{JobCell, JobRecord, MAX_JOB_RECORD_BYTES};
use orrery_protocol::run::RunStatus;
use tracing::{info, warn};

use super::{Read, Watch};
use crate::batch::cells::with_parameters;
use crate::batch::exec::{BatchResult, BatchSpec, tail};
use crate::batch::slurm::{BatchState, Slurm};
use crate::config::Config;
use crate::home::Home;
use crate::labs::env::Environment;
use crate::service::runs::Runs;

/// Longest the sandbox's server may take to answer on a compute node.
const START_DEADLINE_SECS: u64 = 120;
/// How many times in a row the accounting may not know a job that left the queue before the
/// run is taken as ended without a state (slurmdbd lags behind the controller by seconds).
const LEAVING_LOOKS: u32 = 60;

/// The node's Slurm cluster, and where its runs' files go.
pub(in crate::service) struct Batch {
    slurm: Slurm,
    spool: PathBuf,
    poll: Duration,
}

/// A run in Slurm that a restarted node follows again.
pub(in crate::service) struct Resumed {
    pub(in crate::service) dir: PathBuf,
    pub(in crate::service) slurm_id: u64,
    pub(in crate::service) record: JobRecord,
}

impl Batch {
    /// The cluster `config` names, if jobs go to Slurm.
    pub(in crate::service) fn from_config(config: &Config, home: &Home) -> Option<Arc<Self>> {
        if config.jobs.backend != crate::config::JobBackend::Slurm {
            return None;
        }
        let s = &config.jobs.slurm;
        Some(Arc::new(Self {
            slurm: Slurm::from_config(s),
            spool: s
                .spool
                .clone()
                .unwrap_or_else(|| home.root().join("jobs").join("slurm")),
            poll: Duration::from_secs(s.poll_secs),
        }))
    }

    /// Says in the log whether the cluster answers, as the node starts.
    pub(in crate::service) async fn check(&self) {
        match self.slurm.check().await {
            Ok(()) => info!(spool = %self.spool.display(), "jobs go to Slurm"),
            Err(e) => warn!(
                error = %e,
                "jobs go to Slurm, which does not answer; each run fails saying why until it does"
            ),
        }
    }

    /// Makes `record`'s run of the notebook `read` in Slurm: submitted, followed until it
    /// ends, and filled in from what its batch job wrote.
    pub(in crate::service) async fn make_run(
        &self,
        runs: &Runs,
        mut record: JobRecord,
        read: Read,
        watch: &Watch,
    ) -> Result<JobRecord, String> {
        let environment = Environment::jupyter();
        record.heads = read.heads.clone();
        record.datasets = read.datasets.clone();
        record.environment = environment.id.clone();
        record.environment_lock = environment.hash();
        let dir = self.spool.join(run_dir_name(&record));
        fresh_dir(&dir).map_err(|e| format!("{} could not be made: {e}", dir.display()))?;
        let token = random_hex()?;
        let base_url = "/batch/";
        let sandbox = runs
            .labs
            .batch_sandbox(
                record.requester,
                &super::super::runs::collections_of(&read.datasets),
                &dir,
                base_url,
                &token,
            )
            .await?;
        let spec = BatchSpec {
            helper: sandbox.helper.clone(),
            uid: sandbox.uid,
            gid: sandbox.uid,
            sandbox: sandbox.argv,
            socket: sandbox.socket,
            base_url: base_url.into(),
            token,
            cells: with_parameters(read.cells, &record.parameters),
            cell_deadline_secs: super::super::runs::RUN_DEADLINE.as_secs(),
            start_deadline_secs: START_DEADLINE_SECS,
            log: dir.join("sandbox.log"),
            result: dir.join("result.json"),
        };
        // The cells the record lists, run or not, in order.
        record.cells = spec
            .cells
            .iter()
            .map(|(cell, source)| not_run(cell, source))
            .collect();
        let script = dir.join("run.sh");
        let written = (|| -> std::io::Result<()> {
            write_private(&dir.join("spec.json"), &serde_json::to_vec(&spec)?)?;
            write_private(&dir.join("record.json"), &serde_json::to_vec(&record)?)?;
            write_private(
                &script,
                batch_script(&spec.helper, &dir.join("spec.json"))?.as_bytes(),
            )?;
            rustix::fs::chmod(&script, rustix::fs::Mode::from_raw_mode(0o700))?;
            Ok(())
        })();
        written.map_err(|e| {
            format!(
                "the run's files in {} could not be written: {e}",
                dir.display()
            )
        })?;
        let name = format!("orrery-job-{}", &run_dir_name(&record)[..12]);
        let id = self
            .slurm
            .submit(&name, &script, &dir)
            .await
            .map_err(|e| format!("Slurm did not take the run: {e}"))?;
        std::fs::write(dir.join("slurm.id"), id.to_string()).map_err(|e| {
            format!("the run went to Slurm as job {id}, but its id could not be kept: {e}")
        })?;
        info!(job = %record.job, run = record.run, slurm = id, "a job's run went to Slurm");
        self.follow(
            Resumed {
                dir,
                slurm_id: id,
                record,
            },
            watch,
        )
        .await
    }

    /// Runs in Slurm an earlier run of this node submitted: every run directory with a Slurm id.
    pub(in crate::service) fn submitted(&self) -> Vec<Resumed> {
        let Ok(entries) = std::fs::read_dir(&self.spool) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for dir in entries.flatten().map(|e| e.path()) {
            let id = std::fs::read_to_string(dir.join("slurm.id"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let record = read_bounded(&dir.join("record.json"))
                .and_then(|b| serde_json::from_slice::<JobRecord>(&b).ok());
            if let (Some(slurm_id), Some(record)) = (id, record) {
                out.push(Resumed {
                    dir,
                    slurm_id,
                    record,
                });
            }
        }
        out
    }

    /// Gives up a run that no one follows any more: cancelled in Slurm, its files removed.
    pub(in crate::service) async fn abandon(&self, run: Resumed) {
        if let Err(e) = self.slurm.cancel(run.slurm_id).await {
            warn!(slurm = run.slurm_id, error = %e, "a run no one follows could not be cancelled in Slurm");
        }
        let _ = std::fs::remove_dir_all(&run.dir);
    }

    /// Follows a submitted run until Slurm says it has ended (cancelling it if its job is
    /// cancelled meanwhile), then fills its record from what its batch job wrote.
    pub(in crate::service) async fn follow(
        &self,
        run: Resumed,
        watch: &Watch,
    ) -> Result<JobRecord, String> {
        let Resumed {
            dir,
            slurm_id: id,
            mut record,
        } = run;
        let mut said = String::new();
        let mut leaving = 0;
        let mut cancelled = false;
        let (state, exit) = loop {
            if !cancelled && watch.cancelled().await {
                cancelled = true;
                info!(
                    slurm = id,
                    "a job was cancelled; its run in Slurm is cancelled"
                );
                if let Err(e) = self.slurm.cancel(id).await {
                    warn!(slurm = id, error = %e, "a cancelled job's run could not be cancelled in Slurm");
                }
            }
            let note = match self.slurm.state(id).await {
                Ok(BatchState::Ended { state, exit }) => break (state, exit),
                Ok(BatchState::Leaving) => {
                    leaving += 1;
                    if leaving > LEAVING_LOOKS {
                        warn!(
                            slurm = id,
                            "a run left Slurm's queue and its accounting never said how it ended"
                        );
                        break ("UNKNOWN".to_owned(), "?".to_owned());
                    }
                    format!("ending in Slurm as job {id}")
                }
                Ok(BatchState::Queued(why)) => format!("waiting in Slurm as job {id} ({why})"),
                Ok(BatchState::Running(_)) => format!("running in Slurm as job {id}"),
                Err(e) => {
                    warn!(slurm = id, error = %e, "Slurm could not be asked about a run; asking again");
                    format!("Slurm does not answer about job {id} ({e}); the node asks again")
                }
            };
            if note != said {
                watch.note(&note).await;
                said = note;
            }
            tokio::time::sleep(self.poll).await;
        };
        let result = [dir.join("result.json"), dir.join("result.partial")]
            .iter()
            .find_map(|p| read_bounded(p))
            .map(|b| serde_json::from_slice::<BatchResult>(&b));
        let ended_early = || match state.as_str() {
            "TIMEOUT" => format!(
                "the Slurm job {id} reached its time limit (`[jobs.slurm] time_limit_mins`)"
            ),
            "OUT_OF_MEMORY" => {
                format!("the Slurm job {id} ran out of memory (`[jobs.slurm] memory_mib`)")
            }
            "CANCELLED" => format!("the Slurm job {id} was cancelled"),
            _ => format!("the Slurm job {id} ended {state} (exit {exit})"),
        };
        let outcome = match result {
            Some(Ok(r)) if r.cells.is_empty() => Err(match r.status {
                RunStatus::Error(why) => why,
                RunStatus::Ok => "the run in Slurm ran no cell".into(),
            }),
            Some(Ok(r)) => {
                let done = dir.join("result.json").exists();
                record.started_at_ms = r.started_at_ms;
                record.ended_at_ms = r.ended_at_ms;
                record.status = if done {
                    r.status
                } else {
                    RunStatus::Error(ended_early())
                };
                // Cells the batch job never reached stay as not run.
                let ran = r.cells.len().min(record.cells.len());
                record.cells.splice(..ran, r.cells.into_iter().take(ran));
                Ok(record)
            }
            Some(Err(e)) => Err(format!(
                "the Slurm job {id} ended {state} and left a result that does not read: {e}"
            )),
            None => Err(format!(
                "{} before its first cell ran; its output ends:\n{}\n{}",
                ended_early(),
                tail(&dir.join("slurm.out"), 10),
                tail(&dir.join("sandbox.log"), 10),
            )),
        };
        match &outcome {
            Ok(r) if r.status == RunStatus::Ok => {
                let _ = std::fs::remove_dir_all(&dir);
            }
            _ => {
                // Its output is kept for the operator; what the run worked in goes.
                let _ = std::fs::remove_file(dir.join("slurm.id"));
                let _ = std::fs::remove_file(dir.join("spec.json"));
                let _ = std::fs::remove_dir_all(dir.join("workspace"));
                let _ = std::fs::remove_dir_all(dir.join("run"));
                warn!(slurm = id, dir = %dir.display(), "a run in Slurm did not end well; its output is kept there");
            }
        }
        if record_too_large(&outcome) {
            return Err("the run's record passes what a record may hold".into());
        }
        outcome
    }
}

fn record_too_large(outcome: &Result<JobRecord, String>) -> bool {
    outcome.as_ref().is_ok_and(|r| {
        r.cells
            .iter()
            .flat_map(|c| &c.outputs)
            .map(String::len)
            .sum::<usize>()
            > MAX_JOB_RECORD_BYTES
    })
}

fn not_run(cell: &str, source: &str) -> JobCell {
    JobCell {
        cell: cell.to_owned(),
        source_blake3: *blake3::hash(source.as_bytes()).as_bytes(),
        execution_count: None,
        outputs: Vec::new(),
        status: None,
    }
}

/// The run's directory name: a hash of what names the run (a job id from another node is not
/// a file name this node would choose).
fn run_dir_name(record: &JobRecord) -> String {
    let mut h = blake3::Hasher::new();
    h.update(record.job.as_bytes());
    h.update(&record.run.to_le_bytes());
    h.update(record.requester.key().as_bytes());
    h.finalize().to_hex()[..32].to_owned()
}

fn fresh_dir(dir: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    // Passable by the lab's user (its workspace and run directory are inside), readable by no
    // one but the node: the spec holds the server's token.
    rustix::fs::chmod(dir, rustix::fs::Mode::from_raw_mode(0o711))?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}

/// The batch script: `orrery job exec` on the spec, paths quoted for the shell.
fn batch_script(helper: &Path, spec: &Path) -> std::io::Result<String> {
    let quote = |p: &Path| -> std::io::Result<String> {
        let s = p.to_str().filter(|s| !s.contains('\'')).ok_or_else(|| {
            std::io::Error::other(format!("{} cannot be named in a batch script", p.display()))
        })?;
        Ok(format!("'{s}'"))
    };
    Ok(format!(
        "#!/bin/sh\n# A run of an Orrery job; the node follows it and reads its result.\nexec {} job exec --spec {}\n",
        quote(helper)?,
        quote(spec)?
    ))
}

/// Reads a result or record file, refusing one larger than any record may be.
fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    let len = std::fs::metadata(path).ok()?.len();
    if len > (MAX_JOB_RECORD_BYTES as u64) * 2 {
        warn!(path = %path.display(), len, "a run's file is larger than any record; it is not read");
        return None;
    }
    std::fs::read(path).ok()
}

fn random_hex() -> Result<String, String> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness for the run's token: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
