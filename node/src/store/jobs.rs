//! Jobs (pipelines) and the signed records of their runs.

use orrery_protocol::job::JobRecord;
use orrery_protocol::{AuthorId, ProjectId, PublicKey, Signed, Unverified};
use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for its time, or for the node to run it.
    Queued,
    /// Running now.
    Running,
    /// Ran (and does not repeat).
    Done,
    /// Its last run failed (and it does not repeat), or the node stopped while it ran.
    Failed,
    /// Cancelled by its requester.
    Cancelled,
}

impl JobState {
    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Failed,
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// The project.
    pub project: ProjectId,
    /// The notebook's id.
    pub notebook: String,
    /// Who asked for it.
    pub author: AuthorId,
    /// Names and Python literals.
    pub parameters: Vec<(String, String)>,
    /// Seconds between runs, if it repeats.
    pub every_secs: Option<i64>,
    /// When it runs next (seconds since the epoch).
    pub next_at: i64,
    /// Where it is.
    pub state: JobState,
    /// How many runs it has kept.
    pub runs: u32,
    /// Why it is where it is, when that needs saying.
    pub note: String,
    /// When it was asked for.
    pub created_at: i64,
}

type Row = (
    String,
    Vec<u8>,
    String,
    Vec<u8>,
    String,
    Option<i64>,
    i64,
    String,
    u32,
    String,
    i64,
);

const COLUMNS: &str =
    "id, project, notebook, author, parameters, every_secs, next_at, state, runs, note, created_at";

fn job(row: Row) -> Option<Job> {
    let (
        id,
        project,
        notebook,
        author,
        parameters,
        every_secs,
        next_at,
        state,
        runs,
        note,
        created_at,
    ) = row;
    Some(Job {
        id,
        project: ProjectId(project.try_into().ok()?),
        notebook,
        author: AuthorId(PublicKey::from_bytes(&author).ok()?),
        parameters: serde_json::from_str(&parameters).ok()?,
        every_secs,
        next_at,
        state: JobState::parse(&state),
        runs,
        note,
        created_at,
    })
}

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

impl Store {
    /// Queues a job, unless `author` already has `quota` jobs queued or running.
    #[allow(clippy::too_many_arguments)]
    pub fn queue_job(
        &mut self,
        id: &str,
        project: ProjectId,
        notebook: &str,
        author: AuthorId,
        parameters: &[(String, String)],
        every_secs: Option<i64>,
        quota: usize,
    ) -> Result<Option<Job>, StoreError> {
        let tx = self.conn.transaction()?;
        let open: i64 = tx.query_row(
            "SELECT count(*) FROM jobs WHERE author = ?1 AND state IN ('queued', 'running')",
            params![author.key().as_bytes().as_slice()],
            |r| r.get(0),
        )?;
        if open as usize >= quota {
            return Ok(None);
        }
        let at = now();
        tx.execute(
            "INSERT INTO jobs (id, project, notebook, author, parameters, every_secs, next_at, state, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?7)",
            params![
                id,
                project.0.as_slice(),
                notebook,
                author.key().as_bytes().as_slice(),
                serde_json::to_string(parameters).unwrap_or_default(),
                every_secs,
                at
            ],
        )?;
        tx.commit()?;
        self.job(id)
    }

    /// One job.
    pub fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                params![id],
                read,
            )
            .optional()?;
        Ok(row.and_then(job))
    }

    /// Every job, or `author`'s, newest first.
    pub fn jobs(&self, author: Option<AuthorId>) -> Result<Vec<Job>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE ?1 IS NULL OR author = ?1 ORDER BY created_at DESC, id"
        ))?;
        let key = author.map(|a| a.key().as_bytes().to_vec());
        let rows = stmt.query_map(params![key], read)?;
        let mut out = Vec::new();
        for row in rows {
            out.extend(job(row?));
        }
        Ok(out)
    }

    /// The queued job due first, if one is due at `at`, marked running.
    pub fn take_due_job(&mut self, at: i64) -> Result<Option<Job>, StoreError> {
        let tx = self.conn.transaction()?;
        let row = tx
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM jobs WHERE state = 'queued' AND next_at <= ?1
                     ORDER BY next_at, created_at LIMIT 1"
                ),
                params![at],
                read,
            )
            .optional()?;
        let Some(row) = row else { return Ok(None) };
        tx.execute(
            "UPDATE jobs SET state = 'running', note = '' WHERE id = ?1",
            params![row.0],
        )?;
        tx.commit()?;
        Ok(job(row).map(|j| Job {
            state: JobState::Running,
            note: String::new(),
            ..j
        }))
    }

    /// When the next queued job is due, if any is queued.
    pub fn next_job_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT min(next_at) FROM jobs WHERE state = 'queued'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Keeps a run's signed record, and moves the job on: queued again at `next_at` if it
    /// repeats and was not cancelled meanwhile, else done or failed (with `note`).
    pub fn finish_job_run(
        &mut self,
        id: &str,
        record: Option<&Signed<JobRecord, Unverified>>,
        failed: bool,
        note: &str,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let (runs, every, state): (u32, Option<i64>, String) = tx.query_row(
            "SELECT runs, every_secs, state FROM jobs WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let mut runs = runs;
        if let Some(record) = record {
            runs += 1;
            tx.execute(
                "INSERT INTO job_runs (job, run, record) VALUES (?1, ?2, ?3)",
                params![id, runs, orrery_protocol::encoding::encode(record)],
            )?;
        }
        let cancelled = state == "cancelled";
        let note = match (cancelled, note.is_empty()) {
            (true, true) => "cancelled by its requester".to_owned(),
            (true, false) => format!("cancelled by its requester; its last run: {note}"),
            _ => note.to_owned(),
        };
        let (state, next_at) = match (state.as_str(), every) {
            _ if cancelled => ("cancelled", None),
            (_, Some(every)) => ("queued", Some(now().saturating_add(every))),
            _ if failed => ("failed", None),
            _ => ("done", None),
        };
        tx.execute(
            "UPDATE jobs SET runs = ?2, state = ?3, next_at = coalesce(?4, next_at), note = ?5 WHERE id = ?1",
            params![id, runs, state, next_at, note],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Cancels a job of `author`'s (a run in a lab here finishes first; one in Slurm is
    /// cancelled there when the node next looks at it). Whether it was theirs and not over.
    pub fn cancel_job(&mut self, id: &str, author: AuthorId) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE jobs SET state = 'cancelled', note = 'cancelled by its requester'
             WHERE id = ?1 AND author = ?2 AND state IN ('queued', 'running')",
            params![id, author.key().as_bytes().as_slice()],
        )?;
        Ok(n == 1)
    }

    /// Says where a running job's run is (`note`), if the job still runs.
    pub fn set_job_note(&mut self, id: &str, note: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE jobs SET note = ?2 WHERE id = ?1 AND state = 'running'",
            params![id, note],
        )?;
        Ok(())
    }

    /// Whether job `id` was cancelled.
    pub fn job_cancelled(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT state = 'cancelled' FROM jobs WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// After a restart: jobs that were running are failed, saying so (a repeating one is queued
    /// again, saying its run was lost), but those in `resumed` (whose runs go on elsewhere, in a
    /// batch system, and are followed again); returns the failed ones, and how many queued jobs
    /// go on.
    pub fn fail_interrupted_jobs(
        &mut self,
        resumed: &[String],
    ) -> Result<(Vec<String>, usize), StoreError> {
        let tx = self.conn.transaction()?;
        let interrupted: Vec<String> = {
            let mut stmt = tx.prepare("SELECT id FROM jobs WHERE state = 'running'")?;
            let ids = stmt.query_map([], |r| r.get::<_, String>(0))?;
            ids.filter(|id| id.as_ref().map_or(true, |id| !resumed.contains(id)))
                .collect::<Result<_, _>>()?
        };
        for id in &interrupted {
            tx.execute(
                "UPDATE jobs SET state = 'failed',
                     note = 'the node stopped while it ran; that run was lost: submit the job again'
                 WHERE id = ?1 AND every_secs IS NULL",
                params![id],
            )?;
            tx.execute(
                "UPDATE jobs SET state = 'queued', next_at = ?2,
                     note = 'the node stopped during a run, which was lost; the job goes on'
                 WHERE id = ?1 AND state = 'running'",
                params![id, now()],
            )?;
        }
        let queued: i64 = tx.query_row(
            "SELECT count(*) FROM jobs WHERE state = 'queued'",
            [],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok((interrupted, queued as usize))
    }

    /// The records of a job's runs, in order.
    pub fn job_runs(&self, id: &str) -> Result<Vec<Signed<JobRecord, Unverified>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM job_runs WHERE job = ?1 ORDER BY run")?;
        let rows = stmt.query_map(params![id], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            let bytes = row?;
            if let Ok(r) = orrery_protocol::encoding::decode(
                "a job record",
                &bytes,
                orrery_protocol::job::MAX_JOB_RECORD_BYTES * 2,
            ) {
                out.push(r);
            }
        }
        Ok(out)
    }
}
