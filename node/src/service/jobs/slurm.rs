//! Jobs as batch jobs of the centre's Slurm cluster (`[jobs] backend = "slurm"`). Each run gets
//! a directory of its own in the spool, readable by the node alone: the notebook's cells with the
//! parameters injected and the labs' sandbox described (`spec.json`), the record as far as the
//! node knows it before the run (`record.json`), and a one-line batch script. `sbatch` submits
//! it; the node asks `squeue` every few seconds whether it waits or runs (and says so in the
//! job's note), and `sacct` how it ended. Inside the batch job, `orrery job exec` runs the cells
//! as a local run does and writes what came of them after each cell; the node fills the record
//! from that, signs it and keeps it. A run Slurm ended early (its time limit, memory, a cancel)
//! keeps the cells that ran and says how it ended.
//!
//! The spool holds everything needed to follow a run, so a node that restarts while runs are in
//! Slurm follows them again instead of losing them. A run's directory goes once its record is
//! kept; a failed run's output stays for the operator for a week.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orrery_protocol::job::{JobCell, JobRecord, MAX_JOB_RECORD_BYTES};
use orrery_protocol::run::RunStatus;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::{Read, Watch};
use crate::batch::cells::with_parameters;
use crate::batch::exec::{BatchResult, BatchSpec, tail};
use crate::batch::slurm::{BatchState, Slurm};
use crate::config::Config;
use crate::home::Home;
use crate::service::runs::Runs;

/// Longest the sandbox's server may take to answer on a compute node.
const START_DEADLINE_SECS: u64 = 120;
/// How many looks in a row a job that left the queue may stay unknown to the accounting before
/// the run is given up (slurmdbd lags behind the controller by seconds).
const LEAVING_LOOKS: u32 = 60;
/// How many looks a completed run's result may take to show (a shared filesystem's caches).
const RESULT_LOOKS: u32 = 10;
/// How long a failed run's directory is kept for the operator.
const KEEP_FAILED: Duration = Duration::from_secs(7 * 24 * 3600);

/// The node's Slurm cluster, and where its runs' files go.
pub(in crate::service) struct Batch {
    slurm: Slurm,
    spool: PathBuf,
    poll: Duration,
    /// Runs in Slurm at once, this node's jobs and other nodes' together.
    submitted: Arc<Semaphore>,
}

/// A run in Slurm, followed until it ends.
pub(in crate::service) struct Submitted {
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
            submitted: Arc::new(Semaphore::new(s.max_submitted)),
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

    /// Makes `record`'s run of the notebook `read` in Slurm: submitted (once fewer than
    /// `max_submitted` runs are there), followed until it ends, and filled in from what its
    /// batch job wrote.
    pub(in crate::service) async fn make_run(
        &self,
        runs: &Runs,
        mut record: JobRecord,
        read: Read,
        watch: &Watch,
    ) -> Result<JobRecord, String> {
        let _permit = self.submitted.clone().acquire_owned().await;
        let environment = read.environment.clone();
        record.heads = read.heads.clone();
        record.datasets = read.datasets.clone();
        record.environment = environment.id.clone();
        record.environment_lock = environment.hash();
        let token = random_hex()?;
        let dir = self
            .spool
            .join(format!("{}-{}", run_name(&record), &token[..8]));
        new_dir(&dir).map_err(|e| format!("{} could not be made: {e}", dir.display()))?;
        let prepared = self.prepare(runs, &mut record, read, &dir, token).await;
        let script = match prepared {
            Ok(script) => script,
            Err(why) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(why);
            }
        };
        let name = format!("orrery-job-{}", run_name(&record));
        let id = match self.slurm.submit(&name, &script, &dir).await {
            Ok(id) => id,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("Slurm did not take the run: {e}"));
            }
        };
        if let Err(e) = std::fs::write(dir.join("slurm.id"), id.to_string()) {
            // Not followed after a restart, so not left running.
            let _ = self.slurm.cancel(id).await;
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!(
                "the run went to Slurm as job {id}, but its id could not be kept ({e}); it was cancelled"
            ));
        }
        info!(job = %record.job, run = record.run, slurm = id, "a job's run went to Slurm");
        self.follow(
            Submitted {
                dir,
                slurm_id: id,
                record,
            },
            watch,
        )
        .await
    }

    /// Writes the run's files in `dir`; the batch script.
    async fn prepare(
        &self,
        runs: &Runs,
        record: &mut JobRecord,
        read: Read,
        dir: &Path,
        token: String,
    ) -> Result<PathBuf, String> {
        let base_url = "/batch/";
        let sandbox = runs
            .labs
            .batch_sandbox(
                record.requester,
                &super::super::runs::collections_of(&read.datasets),
                &read.environment,
                dir,
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
        Ok(script)
    }

    /// Runs in Slurm an earlier run of this node submitted (every run directory with a Slurm
    /// id); failed runs' directories past their week are removed on the way.
    pub(in crate::service) fn submitted(&self) -> Vec<Submitted> {
        let Ok(entries) = std::fs::read_dir(&self.spool) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for dir in entries.flatten().map(|e| e.path()) {
            let id = std::fs::read_to_string(dir.join("slurm.id"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let Some(slurm_id) = id else {
                let old = std::fs::metadata(&dir)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > KEEP_FAILED);
                if old && let Err(e) = std::fs::remove_dir_all(&dir) {
                    warn!(dir = %dir.display(), error = %e, "a failed run's directory could not be removed");
                }
                continue;
            };
            let record = read_bounded(&dir.join("record.json"))
                .and_then(|b| serde_json::from_slice::<JobRecord>(&b).ok());
            match record {
                Some(record) => out.push(Submitted {
                    dir,
                    slurm_id,
                    record,
                }),
                None => {
                    warn!(dir = %dir.display(), slurm = slurm_id, "a run in Slurm has no readable record beside it; it is not followed (cancel it with scancel)")
                }
            }
        }
        out
    }

    /// Gives up runs no one follows any more (made for other nodes before a restart, or of jobs
    /// no longer running): cancelled in Slurm, their files removed.
    pub(in crate::service) async fn abandon(&self, runs: Vec<Submitted>) {
        for run in runs {
            warn!(
                job = %run.record.job,
                run = run.record.run,
                slurm = run.slurm_id,
                "a run in Slurm that no one follows after the restart is cancelled"
            );
            if let Err(e) = self.slurm.cancel(run.slurm_id).await {
                warn!(slurm = run.slurm_id, error = %e, "a run no one follows could not be cancelled in Slurm; cancel it with scancel");
            }
            clean(&run.dir, false);
        }
    }

    /// Follows a submitted run until Slurm says it has ended (cancelling it if its job is
    /// cancelled meanwhile), then fills its record from what its batch job wrote. Its directory
    /// is left to `watch` to clean once the record is kept.
    pub(in crate::service) async fn follow(
        &self,
        run: Submitted,
        watch: &Watch,
    ) -> Result<JobRecord, String> {
        let Submitted {
            dir,
            slurm_id: id,
            record,
        } = run;
        let (mut said, mut leaving, mut cancelled) = (String::new(), 0, false);
        let mut result_looks = 0;
        let outcome = loop {
            if !cancelled && watch.cancelled().await {
                match self.slurm.cancel(id).await {
                    Ok(()) => {
                        cancelled = true;
                        info!(slurm = id, "a job was cancelled; so is its run in Slurm");
                    }
                    Err(e) => {
                        warn!(slurm = id, error = %e, "a cancelled job's run could not be cancelled in Slurm; trying again")
                    }
                }
            }
            let note = match self.slurm.state(id).await {
                Ok(BatchState::Ended { state, exit }) => {
                    let finished = dir.join("result.json").exists();
                    // A completed run's result may take a moment to show on a shared filesystem.
                    if state == "COMPLETED" && !finished && result_looks < RESULT_LOOKS {
                        result_looks += 1;
                        tokio::time::sleep(self.poll).await;
                        continue;
                    }
                    break self.outcome(id, &dir, record, &state, &exit);
                }
                Ok(BatchState::Leaving) => {
                    leaving += 1;
                    if leaving > LEAVING_LOOKS {
                        warn!(
                            slurm = id,
                            "a run left Slurm's queue and neither its accounting nor its controller says how it ended; it is given up"
                        );
                        let _ = self.slurm.cancel(id).await;
                        break self.outcome(id, &dir, record, "UNKNOWN", "?");
                    }
                    format!("ending in Slurm as job {id}")
                }
                Ok(BatchState::Queued(why)) => format!("waiting in Slurm as job {id} ({why})"),
                Ok(BatchState::Running(_)) => format!("running in Slurm as job {id}"),
                Err(e) => {
                    format!("Slurm does not answer about job {id} ({e}); the node asks again")
                }
            };
            if note != said {
                if note.starts_with("Slurm does not answer") {
                    warn!(slurm = id, %note, "Slurm could not be asked about a run");
                }
                watch.note(&note).await;
                said = note;
            }
            tokio::time::sleep(self.poll).await;
        };
        let ok = matches!(&outcome, Ok(r) if r.status == RunStatus::Ok);
        if !ok {
            warn!(slurm = id, dir = %dir.display(), "a run in Slurm did not end well; its output is kept there for a week");
        }
        watch.leave(dir, ok);
        outcome
    }

    /// The record of run `id`, which Slurm says ended in `state` with `exit`, from what its
    /// batch job wrote in `dir`.
    fn outcome(
        &self,
        id: u64,
        dir: &Path,
        mut record: JobRecord,
        state: &str,
        exit: &str,
    ) -> Result<JobRecord, String> {
        let ended_early = || match state {
            "TIMEOUT" => format!(
                "the Slurm job {id} reached its time limit (`[jobs.slurm] time_limit_mins`)"
            ),
            "OUT_OF_MEMORY" => {
                format!("the Slurm job {id} ran out of memory (`[jobs.slurm] memory_mib`)")
            }
            "CANCELLED" => format!("the Slurm job {id} was cancelled"),
            _ => format!("the Slurm job {id} ended {state} (exit {exit})"),
        };
        // The whole result if the run finished, else what it kept after its last cell.
        let (finished, result) = match read_bounded(&dir.join("result.json")) {
            Some(bytes) => (true, Some(bytes)),
            None => (false, read_bounded(&dir.join("result.partial"))),
        };
        let result = result.map(|b| serde_json::from_slice::<BatchResult>(&b));
        let outcome = match result {
            Some(Ok(r)) if r.cells.is_empty() && r.status != RunStatus::Ok => Err(match r.status {
                RunStatus::Error(why) => why,
                RunStatus::Ok => unreachable!("matched above"),
            }),
            Some(Ok(r)) => {
                record.started_at_ms = r.started_at_ms;
                record.ended_at_ms = r.ended_at_ms;
                record.status = if finished {
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
        if outcome.as_ref().is_ok_and(|r| {
            r.cells
                .iter()
                .flat_map(|c| &c.outputs)
                .map(String::len)
                .sum::<usize>()
                > MAX_JOB_RECORD_BYTES
        }) {
            return Err("the run's record passes what a record may hold".into());
        }
        outcome
    }
}

/// Removes a run's directory once its record is kept; a failed run's output stays (its
/// workspace, spec and Slurm id go).
pub(super) fn clean(dir: &Path, ok: bool) {
    // First, so that a directory half removed is never followed again.
    if let Err(e) = std::fs::remove_file(dir.join("slurm.id"))
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(dir = %dir.display(), error = %e, "a finished run's Slurm id could not be removed; a restart would follow it again");
    }
    let removed = if ok {
        std::fs::remove_dir_all(dir)
    } else {
        let _ = std::fs::remove_file(dir.join("spec.json"));
        let _ = std::fs::remove_dir_all(dir.join("workspace"));
        std::fs::remove_dir_all(dir.join("run"))
    };
    if let Err(e) = removed
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(dir = %dir.display(), error = %e, "a finished run's files could not all be removed");
    }
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

/// A name for the run: a hash of what names it (a job id from another node is not a file name
/// this node would choose).
fn run_name(record: &JobRecord) -> String {
    let mut h = blake3::Hasher::new();
    h.update(record.job.as_bytes());
    h.update(&record.run.to_le_bytes());
    h.update(record.requester.key().as_bytes());
    h.finalize().to_hex()[..16].to_owned()
}

/// Makes a run's directory, which must not exist yet; readable by the node alone (the lab's
/// binds are staged by the sandbox's helper as root, so the lab's user needs no way in).
fn new_dir(dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::create_dir(dir)?;
    rustix::fs::chmod(dir, rustix::fs::Mode::from_raw_mode(0o700))?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create_new(true)
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
        "#!/bin/sh\n# A run of an Orrery job; the node follows it and reads its result.\numask 077\nexec {} job exec --spec {}\n",
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
