//! `orrery doctor`: checks a node's configuration, data directory, keys, database, ports, HTTP
//! face, federation reachability and disk, prints one row per check (OK, WARN or FAIL) with what
//! to do, and fails (a non-zero exit) when any check fails.
//!
//! It never changes the node: the database is opened read-only (pending migrations are
//! reported, not run), and ports are probed by binding and releasing them only when the node is
//! not running. Whether the node runs is read from its run lock (`node.lock`).

mod network;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use crate::config::Config;
use crate::home::{Home, RunLock};

/// Arguments of `orrery doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Seconds to wait for each federation peer and the HTTP face to answer.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub timeout: u64,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Ok,
    Warn,
    Fail,
}

/// One row of the report.
#[derive(Debug)]
pub(crate) struct Check {
    name: &'static str,
    level: Level,
    detail: String,
    fix: String,
}

/// The checks made so far.
#[derive(Debug, Default)]
pub(crate) struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, name: &'static str, level: Level, detail: String, fix: impl Into<String>) {
        self.checks.push(Check {
            name,
            level,
            detail,
            fix: fix.into(),
        });
    }
    pub(crate) fn ok(&mut self, name: &'static str, detail: String) {
        self.add(name, Level::Ok, detail, "");
    }
    pub(crate) fn warn(&mut self, name: &'static str, detail: String, fix: impl Into<String>) {
        self.add(name, Level::Warn, detail, fix);
    }
    pub(crate) fn fail(&mut self, name: &'static str, detail: String, fix: impl Into<String>) {
        self.add(name, Level::Fail, detail, fix);
    }
}

/// What the checks found out about the node, for the checks that follow.
struct Facts {
    config: Option<Config>,
    running: bool,
    schema_current: bool,
}

/// Runs every check on `home` and prints the report.
pub(super) fn run(home: &Home, args: DoctorArgs, out: &mut dyn Write) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    let mut r = Report::default();
    let facts = Facts {
        config: check_config(home, &mut r),
        running: check_running(home, &mut r),
        schema_current: false,
    };
    check_data_dir(home, &mut r);
    check_keys(home, &mut r);
    let facts = Facts {
        schema_current: check_database(home, &mut r),
        ..facts
    };
    if let Some(config) = &facts.config {
        network::check_http(home, config, facts.running, timeout, &mut r);
        network::check_https(home, config, facts.running, &mut r);
        network::check_metrics(home, config, facts.running, timeout, &mut r);
        network::check_p2p(config, facts.running, &mut r);
        network::check_federation(home, config, facts.schema_current, timeout, &mut r);
    }
    check_disk(home, &mut r);
    print(&r, out)?;
    let failed = r.checks.iter().filter(|c| c.level == Level::Fail).count();
    if failed > 0 {
        bail!(
            "{failed} of {} checks failed; fix them and run `orrery doctor` again",
            r.checks.len()
        );
    }
    Ok(())
}

fn print(r: &Report, out: &mut dyn Write) -> Result<()> {
    let rows = r
        .checks
        .iter()
        .map(|c| {
            let level = match c.level {
                Level::Ok => "OK",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            vec![
                c.name.to_owned(),
                level.to_owned(),
                c.detail.clone(),
                c.fix.clone(),
            ]
        })
        .collect();
    writeln!(
        out,
        "{}",
        super::render::table(&["check", "status", "found", "what to do"], rows)
    )?;
    Ok(())
}

fn check_config(home: &Home, r: &mut Report) -> Option<Config> {
    let path = home.config();
    if !path.exists() {
        r.fail(
            "config",
            format!("{} does not exist", path.display()),
            format!(
                "this is not an Orrery node: run `orrery init --data-dir {}`, or point --data-dir (ORRERY_DATA_DIR) at the node",
                home.root().display()
            ),
        );
        return None;
    }
    match Config::load(&path) {
        Ok(c) => {
            r.ok("config", format!("{} parses and is valid", path.display()));
            Some(c)
        }
        Err(e) => {
            r.fail(
                "config",
                e.to_string(),
                format!(
                    "correct {} (deploy/orrery.example.toml documents every key)",
                    path.display()
                ),
            );
            None
        }
    }
}

fn check_running(home: &Home, r: &mut Report) -> bool {
    match RunLock::is_held(home) {
        Ok(true) => {
            r.ok("node", "running (it holds node.lock)".into());
            true
        }
        Ok(false) => {
            r.ok("node", "not running".into());
            false
        }
        Err(e) => {
            r.warn(
                "node",
                format!("cannot tell whether it runs: {e}"),
                format!("check the permissions of {}", home.run_lock().display()),
            );
            false
        }
    }
}

fn check_data_dir(home: &Home, r: &mut Report) {
    let root = home.root();
    let meta = match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            r.fail(
                "data dir",
                format!("{} is not a directory", root.display()),
                "point --data-dir at the node's data directory",
            );
            return;
        }
        Err(e) => {
            r.fail(
                "data dir",
                format!("{}: {e}", root.display()),
                "point --data-dir at the node's data directory, or run `orrery init`",
            );
            return;
        }
    };
    if rustix::fs::access(root, rustix::fs::Access::WRITE_OK).is_err() {
        r.fail(
            "data dir",
            format!("{} is not writable by this user", root.display()),
            format!(
                "run as the node's user, or `chown -R <node user> {}`",
                root.display()
            ),
        );
        return;
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        r.warn(
            "data dir",
            format!("{} has mode {mode:o}: others may list it", root.display()),
            format!("chmod 700 {}", root.display()),
        );
    } else {
        r.ok("data dir", format!("{} (mode {mode:o})", root.display()));
    }
}

/// Most author keys looked at.
const MAX_KEYS: usize = 1000;

fn check_keys(home: &Home, r: &mut Report) {
    let mut keys = vec![home.node_key()];
    if let Ok(entries) = std::fs::read_dir(home.root().join("authors")) {
        keys.extend(
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "key"))
                .take(MAX_KEYS),
        );
    }
    let mut bad = 0;
    for path in &keys {
        if let Some((detail, fix)) = key_problem(path) {
            bad += 1;
            r.fail("keys", detail, fix);
        }
    }
    if bad == 0 {
        r.ok(
            "keys",
            format!("{} key file(s), owner-only, well formed", keys.len()),
        );
    }
}

/// What is wrong with a key file, and what to do about it.
fn key_problem(path: &Path) -> Option<(String, String)> {
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some((
                format!("{shown} is missing"),
                "restore it from your backup; without it the node has another identity".into(),
            ));
        }
        Err(e) => return Some((format!("{shown}: {e}"), "check its permissions".into())),
    };
    if meta.file_type().is_symlink() {
        return Some((
            format!("{shown} is a symbolic link"),
            format!("replace it with the key file itself (owner-only, `chmod 600 {shown}`)"),
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Some((
            format!("{shown} has mode {mode:o}: readable by others"),
            format!("chmod 600 {shown}"),
        ));
    }
    match crate::home::read_key(path) {
        Ok(_) => None,
        Err(e) => Some((e.to_string(), "restore the key from your backup".into())),
    }
}

/// Checks the database read-only; returns whether its schema is the one this build runs.
fn check_database(home: &Home, r: &mut Report) -> bool {
    use rusqlite::OpenFlags;
    let path = home.database();
    if !path.exists() {
        r.fail(
            "database",
            format!("{} is missing", path.display()),
            "restore it from your backup, or run `orrery init` for a new node",
        );
        return false;
    }
    let version = rusqlite::Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.busy_timeout(Duration::from_secs(5))?;
            c.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
        });
    let known = crate::store::SCHEMA_VERSION;
    match version.map(|v| usize::try_from(v).unwrap_or(usize::MAX)) {
        Ok(v) if v == known => {
            r.ok("database", format!("opens; schema {v} is current"));
            true
        }
        Ok(v) if v < known => {
            r.warn(
                "database",
                format!("schema {v}; this orrery runs {known}"),
                "`orrery run` migrates it on start (back up orrery.db first)",
            );
            false
        }
        Ok(v) => {
            r.fail(
                "database",
                format!("schema {v} is newer than this orrery knows ({known})"),
                "run the newer orrery that wrote it",
            );
            false
        }
        Err(e) => {
            r.fail(
                "database",
                format!("{} does not open: {e}", path.display()),
                "check its owner and permissions; restore it from your backup if it is damaged",
            );
            false
        }
    }
}

/// Free space below which the node is about to fail.
const DISK_FAIL: u64 = 256 * 1024 * 1024;
/// Free space below which an operator should act soon.
const DISK_WARN: u64 = 2 * 1024 * 1024 * 1024;

fn check_disk(home: &Home, r: &mut Report) {
    let Ok(st) = rustix::fs::statvfs(home.root()) else {
        r.warn(
            "disk",
            "free space unknown".into(),
            "check the data directory exists",
        );
        return;
    };
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let total = st.f_blocks.saturating_mul(st.f_frsize).max(1);
    let shown = format!(
        "{} MiB free of {} MiB ({}%)",
        free / (1024 * 1024),
        total / (1024 * 1024),
        free.saturating_mul(100) / total
    );
    let fix = "free space on the data directory's file system, or move the data directory";
    if free < DISK_FAIL {
        r.fail("disk", shown, fix);
    } else if free < DISK_WARN || free.saturating_mul(20) < total {
        r.warn("disk", shown, fix);
    } else {
        r.ok("disk", shown);
    }
}
