//! The centre's Slurm cluster, driven through its own commands: `sbatch` submits a run,
//! `squeue` tells whether it waits or runs, and once it has left the queue `sacct` tells how it
//! ended (`scontrol` when the cluster keeps no accounting); `scancel` stops it. Which cluster is
//! Slurm's own configuration (`SLURM_CONF`, or its default).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::SlurmSection;

/// Longest a Slurm command may take before it is given up (a controller that does not answer).
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// Why Slurm could not be asked, or what it refused.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// The command could not be started (not installed, or not on the path given).
    #[error(
        "`{command}` could not be run: {source} (is Slurm installed? `[jobs.slurm] bin` names where its commands are)"
    )]
    Run {
        /// The command.
        command: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The command ran and failed.
    #[error("`{command}` failed: {said}")]
    Refused {
        /// The command.
        command: String,
        /// What it wrote on standard error.
        said: String,
    },
    /// The command did not end in time.
    #[error("`{0}` did not answer within a minute (is slurmctld up?)")]
    Timeout(String),
    /// The command's answer is not what this version understands.
    #[error("`{command}` answered {said:?}, which is not understood")]
    Unparsable {
        /// The command.
        command: String,
        /// Its answer.
        said: String,
    },
}

/// Where a submitted run is, as Slurm tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchState {
    /// Waiting in the queue, with Slurm's reason (`Priority`, `Resources`…).
    Queued(String),
    /// Running, or being set up or torn down on its node.
    Running(String),
    /// Out of the queue, and the accounting does not know it yet.
    Leaving,
    /// Ended: Slurm's state (`COMPLETED`, `FAILED`, `TIMEOUT`, `CANCELLED`, `OUT_OF_MEMORY`…)
    /// and exit code (`code:signal`).
    Ended {
        /// The job's final state.
        state: String,
        /// Its exit code and the signal that ended it, as `code:signal`.
        exit: String,
    },
}

/// A Slurm cluster and what each run asks of it.
#[derive(Debug, Clone)]
pub struct Slurm {
    bin: Option<PathBuf>,
    partition: Option<String>,
    account: Option<String>,
    time_limit_mins: u64,
    memory_mib: u64,
    cpus: u32,
}

impl Slurm {
    /// The cluster as `[jobs.slurm]` describes it.
    pub fn from_config(c: &SlurmSection) -> Self {
        Self {
            bin: c.bin.clone(),
            partition: c.partition.clone(),
            account: c.account.clone(),
            time_limit_mins: c.time_limit_mins,
            memory_mib: c.memory_mib,
            cpus: c.cpus,
        }
    }

    /// Runs Slurm's `program` with `args`; its standard output.
    async fn ask(&self, program: &str, args: &[String]) -> Result<String, SlurmError> {
        let path = self
            .bin
            .as_ref()
            .map_or_else(|| PathBuf::from(program), |b| b.join(program));
        let command = format!("{program} {}", args.join(" "));
        let run = tokio::process::Command::new(&path)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = match tokio::time::timeout(COMMAND_DEADLINE, run).await {
            Err(_) => return Err(SlurmError::Timeout(command)),
            Ok(Err(source)) => return Err(SlurmError::Run { command, source }),
            Ok(Ok(out)) => out,
        };
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(SlurmError::Refused {
                command,
                said: if said.is_empty() {
                    out.status.to_string()
                } else {
                    said
                },
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Submits `script` as a batch job named `name`, working in `dir` (its output goes to
    /// `dir/slurm.out`), with no variable of the node's environment; its Slurm job id.
    pub async fn submit(&self, name: &str, script: &Path, dir: &Path) -> Result<u64, SlurmError> {
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name={name}"),
            format!("--chdir={}", dir.display()),
            format!("--output={}", dir.join("slurm.out").display()),
            format!("--time={}", self.time_limit_mins),
            format!("--mem={}M", self.memory_mib),
            format!("--cpus-per-task={}", self.cpus),
            "--ntasks=1".to_owned(),
            "--export=NONE".to_owned(),
            // A run Slurm would start again after a node failure starts from nothing; the job
            // says it failed, and its next run (if it repeats) goes on.
            "--no-requeue".to_owned(),
        ];
        args.extend(self.partition.iter().map(|p| format!("--partition={p}")));
        args.extend(self.account.iter().map(|a| format!("--account={a}")));
        args.push(script.display().to_string());
        let said = self.ask("sbatch", &args).await?;
        parse_sbatch(&said).ok_or(SlurmError::Unparsable {
            command: "sbatch".into(),
            said,
        })
    }

    /// Where job `id` is: in the queue (`squeue`), or how it ended (`sacct`; `scontrol` on a
    /// cluster that keeps no accounting).
    pub async fn state(&self, id: u64) -> Result<BatchState, SlurmError> {
        let queued = self
            .ask(
                "squeue",
                &[
                    "--noheader".into(),
                    format!("--jobs={id}"),
                    "--format=%T|%r".into(),
                ],
            )
            .await;
        match queued {
            Ok(said) => {
                if let Some(state) = parse_squeue(&said) {
                    return Ok(state);
                }
            }
            // A job the controller has forgotten is no longer queued: accounting knows it.
            Err(SlurmError::Refused { said, .. }) if said.contains("Invalid job id") => {}
            Err(e) => return Err(e),
        }
        let accounted = self
            .ask(
                "sacct",
                &[
                    "--noheader".into(),
                    "--parsable2".into(),
                    "--allocations".into(),
                    format!("--jobs={id}"),
                    "--format=State,ExitCode".into(),
                ],
            )
            .await;
        match accounted {
            Ok(said) => Ok(parse_sacct(&said).unwrap_or(BatchState::Leaving)),
            Err(SlurmError::Refused { said, .. })
                if said.contains("accounting storage is disabled") =>
            {
                let said = self
                    .ask(
                        "scontrol",
                        &[
                            "--oneliner".into(),
                            "show".into(),
                            "job".into(),
                            id.to_string(),
                        ],
                    )
                    .await;
                match said {
                    Ok(said) => parse_scontrol(&said).ok_or(SlurmError::Unparsable {
                        command: "scontrol show job".into(),
                        said,
                    }),
                    // Forgotten by the controller too (past its MinJobAge): how it ended is
                    // known nowhere; the caller gives it up after a while.
                    Err(SlurmError::Refused { said, .. }) if said.contains("Invalid job id") => {
                        Ok(BatchState::Leaving)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the cluster answers: its controller is reached and this user may ask about it.
    pub async fn check(&self) -> Result<(), SlurmError> {
        let args = ["--me".into(), "--noheader".into(), "--format=%i".into()];
        self.ask("squeue", &args).await.map(drop)
    }

    /// Cancels job `id` (Slurm signals its processes and ends it).
    pub async fn cancel(&self, id: u64) -> Result<(), SlurmError> {
        self.ask("scancel", &[id.to_string()]).await.map(drop)
    }
}

/// `sbatch --parsable` answers `id` or `id;cluster`.
fn parse_sbatch(said: &str) -> Option<u64> {
    said.trim().split(';').next()?.parse().ok()
}

/// `squeue --format=%T|%r` for one job: nothing once it has left the queue.
fn parse_squeue(said: &str) -> Option<BatchState> {
    let line = said.lines().map(str::trim).find(|l| !l.is_empty())?;
    let (state, reason) = line.split_once('|').unwrap_or((line, ""));
    let reason = reason.trim().to_owned();
    Some(match state.trim() {
        "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "SUSPENDED" | "STOPPED"
        | "RESV_DEL_HOLD" | "SPECIAL_EXIT" => BatchState::Queued(format!(
            "{}{}",
            state.trim(),
            if reason.is_empty() || reason == "None" {
                String::new()
            } else {
                format!(": {reason}")
            }
        )),
        "RUNNING" | "CONFIGURING" | "COMPLETING" | "SIGNALING" | "STAGE_OUT" | "RESIZING" => {
            BatchState::Running(state.trim().to_owned())
        }
        // Ended but still listed: how it ended comes from accounting.
        _ => return None,
    })
}

/// `sacct --allocations --parsable2 --format=State,ExitCode` for one job: its state (`CANCELLED
/// by 0` is `CANCELLED`) and exit code; nothing while accounting has not heard of it, and still
/// queued or running while it says so.
fn parse_sacct(said: &str) -> Option<BatchState> {
    let line = said.lines().map(str::trim).find(|l| !l.is_empty())?;
    let (state, exit) = line.split_once('|')?;
    let state = state.split_whitespace().next()?.to_owned();
    Some(match state.as_str() {
        "PENDING" | "REQUEUED" | "SUSPENDED" => BatchState::Queued(state),
        "RUNNING" | "COMPLETING" => BatchState::Running(state),
        _ => BatchState::Ended {
            state,
            exit: exit.trim().to_owned(),
        },
    })
}

/// `scontrol --oneliner show job`: its `JobState=` and `ExitCode=`.
fn parse_scontrol(said: &str) -> Option<BatchState> {
    let field = |name: &str| {
        said.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(str::to_owned)
    };
    let state = field("JobState=")?;
    match state.as_str() {
        "PENDING" => Some(BatchState::Queued(format!(
            "PENDING{}",
            field("Reason=").map_or(String::new(), |r| format!(": {r}"))
        ))),
        "RUNNING" | "CONFIGURING" | "COMPLETING" => Some(BatchState::Running(state)),
        _ => Some(BatchState::Ended {
            state,
            exit: field("ExitCode=")?,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submissions_are_read_with_or_without_a_cluster_name() {
        assert_eq!(parse_sbatch("42\n"), Some(42));
        assert_eq!(parse_sbatch("42;orrerytest\n"), Some(42));
        assert_eq!(parse_sbatch("Submitted batch job 42"), None);
        assert_eq!(parse_sbatch(""), None);
    }

    #[test]
    fn the_queue_tells_waiting_from_running_and_forgets_the_ended() {
        assert_eq!(
            parse_squeue("PENDING|Resources\n"),
            Some(BatchState::Queued("PENDING: Resources".into()))
        );
        assert_eq!(
            parse_squeue("PENDING|None\n"),
            Some(BatchState::Queued("PENDING".into()))
        );
        assert_eq!(
            parse_squeue("RUNNING|None\n"),
            Some(BatchState::Running("RUNNING".into()))
        );
        assert_eq!(parse_squeue(""), None);
        assert_eq!(parse_squeue("COMPLETED|None\n"), None);
    }

    #[test]
    fn accounting_gives_the_state_and_exit_code() {
        assert_eq!(
            parse_sacct("COMPLETED|0:0\n"),
            Some(BatchState::Ended {
                state: "COMPLETED".into(),
                exit: "0:0".into()
            })
        );
        assert_eq!(
            parse_sacct("CANCELLED by 0|0:15\n"),
            Some(BatchState::Ended {
                state: "CANCELLED".into(),
                exit: "0:15".into()
            })
        );
        assert_eq!(
            parse_sacct("RUNNING|0:0\n"),
            Some(BatchState::Running("RUNNING".into()))
        );
        assert_eq!(parse_sacct("\n"), None);
        assert_eq!(parse_sacct("garbage"), None);
    }

    #[test]
    fn scontrol_stands_in_for_accounting() {
        let said = "JobId=7 JobName=x UserId=root(0) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) ExitCode=0:1 RunTime=00:01:00";
        assert_eq!(
            parse_scontrol(said),
            Some(BatchState::Ended {
                state: "TIMEOUT".into(),
                exit: "0:1".into()
            })
        );
        assert_eq!(
            parse_scontrol("JobId=7 JobState=PENDING Reason=Priority ExitCode=0:0"),
            Some(BatchState::Queued("PENDING: Priority".into()))
        );
        assert_eq!(parse_scontrol("nothing here"), None);
    }
}
