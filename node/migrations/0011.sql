-- Pipelines: notebooks run whole as jobs at the data, once or on a schedule. A job is queued
-- (or waits for its next time), runs, and is queued again if it repeats. Every run keeps the
-- record the node signed (its outputs, parameters, provenance, duration, how it ended).
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    project     BLOB NOT NULL,
    notebook    TEXT NOT NULL,
    author      BLOB NOT NULL,
    parameters  TEXT NOT NULL,
    every_secs  INTEGER,
    next_at     INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    runs        INTEGER NOT NULL DEFAULT 0,
    note        TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs (state, next_at);
CREATE TABLE job_runs (
    job         TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    run         INTEGER NOT NULL,
    record      BLOB NOT NULL,
    PRIMARY KEY (job, run)
);
