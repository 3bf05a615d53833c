//! `orrery project run`: cells run at the data through the running node's REST API, their
//! outputs shown as a terminal can show them, as they arrive.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use orrery_crdt::{CellId, CellKind};
use serde_json::Value;

use super::Ctx;
use super::ephemeral::Ephemeral;
use super::project::{load, resolve_cell, resolve_notebook};
use crate::store::Scope;
use crate::web_client;

/// How long one cell may take, its lab's start included (the node interrupts a cell after an
/// hour).
const RUN_TIMEOUT: Duration = Duration::from_secs(2 * 3600);

/// Runs `cells` (every code cell if none) of `notebook` in `project`, in order, stopping at
/// the first that raises.
pub(super) fn run(
    ctx: &Ctx,
    project: &str,
    notebook: &str,
    cells: &[String],
    user: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    let p = load(ctx, project)?;
    let nb = resolve_notebook(&p, notebook)?;
    let cells: Vec<CellId> = if cells.is_empty() {
        p.notebook(&nb)?
            .cells
            .into_iter()
            .filter(|c| c.kind == CellKind::Code)
            .map(|c| c.id)
            .collect()
    } else {
        cells
            .iter()
            .map(|c| resolve_cell(&p, &nb, c))
            .collect::<Result<_>>()?
    };
    let (home, project) = (&ctx.home, p.id());
    if cells.is_empty() {
        bail!("the notebook has no code cell to run");
    }
    let token = Ephemeral::make(home, user, &[Scope::Read, Scope::Write, Scope::Labs])?;
    for (i, cell) in cells.iter().enumerate() {
        let path = format!("/api/v1/projects/{project}/notebooks/{nb}/cells/{cell}/run");
        // Each output as it arrives, then the run.
        let mut run = Value::Null;
        let mut each = |line: Value| -> Result<(), web_client::ClientError> {
            if let Some(o) = line.get("output") {
                show(o, out).map_err(|e| web_client::ClientError::Http(e.to_string()))?;
            } else if let Some(r) = line.get("run") {
                run = r.clone();
            } else if let Some(e) = line.get("error") {
                return Err(web_client::ClientError::Refused(
                    e["error"].as_str().unwrap_or("the run failed").to_owned(),
                ));
            }
            Ok(())
        };
        super::ephemeral::once_known(|| {
            web_client::api_lines(home, "POST", &path, &token.secret, RUN_TIMEOUT, &mut each)
        })
        .with_context(|| format!("POST {path}"))?;
        if run.is_null() {
            bail!(
                "the node stopped answering before cell {cell} ended; its outputs, if any, are recorded in the project"
            );
        }
        let took =
            run["ended_at_ms"].as_i64().unwrap_or(0) - run["started_at_ms"].as_i64().unwrap_or(0);
        let status = run["status"].as_str().unwrap_or("?");
        writeln!(
            out,
            "cell {cell}  [{}]  {status}  ({:.2} s, lab {} at {})",
            run["cell"]["execution_count"]
                .as_i64()
                .map_or(" ".into(), |n| n.to_string()),
            took as f64 / 1000.0,
            run["lab"].as_str().unwrap_or("?"),
            run["node_name"].as_str().map_or_else(
                || format!(
                    "node {}",
                    run["node"]
                        .as_str()
                        .map_or("?", |n| n.get(..12).unwrap_or(n))
                ),
                str::to_owned
            ),
        )?;
        if status != "ok" {
            let left = cells.len() - i - 1;
            if left > 0 {
                bail!("cell {cell} raised {status}; the {left} cell(s) after it were not run");
            }
            bail!("cell {cell} raised {status}");
        }
    }
    writeln!(
        out,
        "outputs are signed by the node; `orrery project provenance` shows a cell's record"
    )?;
    Ok(())
}

/// One output as text: streams and plain-text results as they are, errors with their
/// traceback, anything else by its kinds and sizes.
pub(super) fn show(o: &Value, out: &mut dyn Write) -> Result<()> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    };
    match o["output_type"].as_str() {
        Some("stream") => write!(out, "{}", text(&o["text"]))?,
        Some("error") => {
            for line in o["traceback"].as_array().into_iter().flatten() {
                writeln!(out, "{}", line.as_str().unwrap_or_default())?;
            }
        }
        Some("execute_result" | "display_data") => match o["data"].get("text/plain") {
            Some(plain) => writeln!(out, "{}", text(plain))?,
            None => {
                let kinds: Vec<String> = o["data"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}, {} bytes", text(v).len()))
                    .collect();
                writeln!(out, "[{}]", kinds.join("; "))?;
            }
        },
        _ => {}
    }
    Ok(())
}
