//! `orrery job`: notebooks run whole as jobs at the data (pipelines), through the running
//! node's REST API as one of its users: submitted once or on a schedule with parameters,
//! listed, cancelled, and their runs shown and compared from the records the node signed.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{Map, Value, json};

use super::Ctx;
use super::ephemeral::{Ephemeral, call};
use super::project::{load, resolve_notebook};
use crate::store::Scope;

const CALL: Duration = Duration::from_secs(60);

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Run a notebook whole on this node, once or every so often, with parameters injected
    /// after its cell tagged `parameters` (as papermill does).
    Submit {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        /// Notebook id or title.
        notebook: String,
        /// A parameter, `name=value`; the value is read as JSON (a number, `true`, a quoted
        /// string, a list…), else taken as a string.
        #[arg(long = "parameter", short = 'p', value_name = "NAME=VALUE")]
        parameters: Vec<String>,
        /// Run again this long after each run starts (`90s`, `10m`, `1h`), until cancelled.
        #[arg(long)]
        every: Option<humantime::Duration>,
        /// As this user of the node (by default, the user of its default author).
        #[arg(long)]
        user: Option<String>,
    },
    /// Internal: a run inside a batch job of the centre's cluster (the whole batch script).
    /// Not meant to be typed.
    #[command(hide = true)]
    Exec {
        /// The run's spec, written by the node.
        #[arg(long)]
        spec: std::path::PathBuf,
    },
    /// The user's jobs on this node.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// A job's runs: status, duration, parameters, and each cell's outputs.
    Runs {
        /// The job's id.
        job: String,
        #[arg(long)]
        user: Option<String>,
    },
    /// Two runs of a job side by side: parameters, how each ended, and the cells whose outputs
    /// differ.
    Compare {
        /// The job's id.
        job: String,
        /// A run (1 is the first).
        a: u32,
        /// Another run.
        b: u32,
        #[arg(long)]
        user: Option<String>,
    },
    /// Cancel a job: no further run starts.
    Cancel {
        /// The job's id.
        job: String,
        #[arg(long)]
        user: Option<String>,
    },
}

/// `name=value`, the value as JSON if it reads as JSON, else as a string.
fn parameter(text: &str) -> Result<(String, Value)> {
    let (name, value) = text
        .split_once('=')
        .with_context(|| format!("`{text}` is not NAME=VALUE"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((name.trim().to_owned(), value))
}

fn line(out: &mut dyn Write, j: &Value) -> Result<()> {
    let every = j["every_secs"]
        .as_i64()
        .map_or(String::new(), |s| format!("  every {s} s"));
    writeln!(
        out,
        "{}  {}  notebook {}  {} run(s){every}{}",
        j["id"].as_str().unwrap_or("?"),
        j["state"].as_str().unwrap_or("?"),
        j["notebook"].as_str().unwrap_or("?"),
        j["runs"].as_u64().unwrap_or(0),
        j["note"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map_or(String::new(), |n| format!("  ({n})")),
    )?;
    Ok(())
}

fn params(r: &Value) -> String {
    r["parameters"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|kv| {
                    format!(
                        "{}={}",
                        kv[0].as_str().unwrap_or("?"),
                        kv[1].as_str().unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Outputs as a terminal shows them (as `orrery project run` prints them).
fn text_of(outputs: &Value) -> String {
    let mut text = Vec::new();
    for o in outputs.as_array().into_iter().flatten() {
        // Writing into memory cannot fail.
        let _ = super::run::show(o, &mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// How long a run took, in seconds.
fn took(r: &Value) -> f64 {
    (r["ended_at_ms"].as_i64().unwrap_or(0) - r["started_at_ms"].as_i64().unwrap_or(0)) as f64
        / 1000.0
}

fn show_run(out: &mut dyn Write, r: &Value) -> Result<()> {
    writeln!(
        out,
        "run {}  {}  {:.2} s  at node {}  {}  [{}]",
        r["run"],
        r["status"].as_str().unwrap_or("?"),
        took(r),
        r["node"].as_str().map_or("?", |n| n.get(..12).unwrap_or(n)),
        if r["verified"] == true {
            "signature checked"
        } else {
            "SIGNATURE DOES NOT HOLD"
        },
        params(r),
    )?;
    for c in r["cells"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  cell {}  {}",
            c["cell"].as_str().unwrap_or("?"),
            c["status"].as_str().unwrap_or("?")
        )?;
        for l in text_of(&c["outputs"]).lines() {
            writeln!(out, "    {l}")?;
        }
    }
    Ok(())
}

pub(super) fn run(ctx: &Ctx, cmd: JobCmd, out: &mut dyn Write) -> Result<()> {
    let home = &ctx.home;
    let token = |user: Option<&str>, write: bool| {
        let scopes: &[Scope] = if write {
            &[Scope::Read, Scope::Write, Scope::Labs]
        } else {
            &[Scope::Read, Scope::Labs]
        };
        Ephemeral::make(home, user, scopes)
    };
    let runs_of = |job: &str, user: Option<&str>| -> Result<Vec<Value>> {
        let t = token(user, false)?;
        let path = format!("/api/v1/jobs/{job}/runs");
        let runs = call(home, &t, "GET", &path, None, CALL)?;
        Ok(runs.as_array().cloned().unwrap_or_default())
    };
    match cmd {
        JobCmd::Submit {
            project,
            notebook,
            parameters,
            every,
            user,
        } => {
            let p = load(ctx, &project)?;
            let nb = resolve_notebook(&p, &notebook)?;
            let parameters: Map<String, Value> = parameters
                .iter()
                .map(|t| parameter(t))
                .collect::<Result<_>>()?;
            let every = every.map(|d| d.as_secs() as i64);
            let body = json!({ "parameters": parameters, "every_secs": every });
            let t = token(user.as_deref(), true)?;
            let path = format!("/api/v1/projects/{}/notebooks/{nb}/jobs", p.id());
            let job = call(home, &t, "POST", &path, Some(body), CALL)?;
            line(out, &job)?;
            writeln!(
                out,
                "`orrery job runs {}` shows its runs",
                job["id"].as_str().unwrap_or("?")
            )?;
        }
        JobCmd::List { user } => {
            let t = token(user.as_deref(), false)?;
            let jobs = call(home, &t, "GET", "/api/v1/jobs", None, CALL)?;
            let jobs = jobs.as_array().cloned().unwrap_or_default();
            if jobs.is_empty() {
                writeln!(out, "no jobs")?;
            }
            for j in &jobs {
                line(out, j)?;
            }
        }
        JobCmd::Runs { job, user } => {
            let runs = runs_of(&job, user.as_deref())?;
            if runs.is_empty() {
                writeln!(out, "no run kept yet")?;
            }
            for r in &runs {
                show_run(out, r)?;
            }
        }
        JobCmd::Compare { job, a, b, user } => {
            let runs = runs_of(&job, user.as_deref())?;
            let find = |n: u32| {
                runs.iter()
                    .find(|r| r["run"] == n)
                    .cloned()
                    .with_context(|| format!("job {job} kept no run {n}"))
            };
            let (ra, rb) = (find(a)?, find(b)?);
            for (what, x, y) in [
                ("parameters", params(&ra), params(&rb)),
                ("status", ra["status"].to_string(), rb["status"].to_string()),
                (
                    "environment lock",
                    ra["environment_lock"].to_string(),
                    rb["environment_lock"].to_string(),
                ),
                (
                    "notebook heads",
                    ra["heads"].to_string(),
                    rb["heads"].to_string(),
                ),
            ] {
                let same = if x == y { "same" } else { "differs" };
                writeln!(out, "{what:<17} {same}: run {a} {x} | run {b} {y}")?;
            }
            writeln!(
                out,
                "{:<17} run {a} {:.2} s | run {b} {:.2} s",
                "duration",
                took(&ra),
                took(&rb)
            )?;
            let cells = |r: &Value| r["cells"].as_array().cloned().unwrap_or_default();
            let (ca, cb) = (cells(&ra), cells(&rb));
            let mut differ = 0;
            for c in &ca {
                let id = &c["cell"];
                let other = cb.iter().find(|o| &o["cell"] == id);
                let (x, y) = (
                    text_of(&c["outputs"]),
                    other.map(|o| text_of(&o["outputs"])).unwrap_or_default(),
                );
                if x != y {
                    differ += 1;
                    writeln!(out, "cell {} differs:", id.as_str().unwrap_or("?"))?;
                    for l in x.lines() {
                        writeln!(out, "  - {l}")?;
                    }
                    for l in y.lines() {
                        writeln!(out, "  + {l}")?;
                    }
                }
            }
            if differ == 0 {
                writeln!(out, "every cell's outputs are the same")?;
            }
        }
        JobCmd::Cancel { job, user } => {
            let t = token(user.as_deref(), true)?;
            let j = call(
                home,
                &t,
                "DELETE",
                &format!("/api/v1/jobs/{job}"),
                None,
                CALL,
            )?;
            line(out, &j)?;
        }
        JobCmd::Exec { spec } => crate::batch::exec::run(&spec)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_read_as_json_else_as_strings() {
        assert_eq!(parameter("n=3").expect("parses"), ("n".into(), json!(3)));
        assert_eq!(
            parameter("name=crab").expect("parses"),
            ("name".into(), json!("crab"))
        );
        assert_eq!(
            parameter("xs=[1, 2]").expect("parses"),
            ("xs".into(), json!([1, 2]))
        );
        assert!(parameter("nothing").is_err());
    }
}
