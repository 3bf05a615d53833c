//! The lab commands a user types (`start`, `list`, `show`, `stop`, `logs`), through the running
//! node's REST API, as one of the node's users. The command line holds the node's store, so it
//! makes a short-lived token for the user with the `labs` scope, and revokes it when done: no
//! credential outlives the command.

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::super::ephemeral::{Ephemeral, call};
use crate::home::Home;
use crate::store::Scope;
use crate::web_client;

/// How long a start may take: the first lab of an environment provisions it.
const START_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

fn show(out: &mut dyn Write, lab: &Value) -> Result<()> {
    let datasets: Vec<&str> = lab["datasets"]
        .as_array()
        .map(|d| d.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    writeln!(
        out,
        "lab {}  {}  at node {}  environment {}  data {}",
        lab["id"].as_str().unwrap_or("?"),
        lab["state"].as_str().unwrap_or("?"),
        lab["node"].as_str().unwrap_or("?"),
        lab["environment"].as_str().unwrap_or("?"),
        if datasets.is_empty() {
            "-".to_owned()
        } else {
            datasets.join(", ")
        },
    )?;
    if let Some(reason) = lab["reason"].as_str() {
        writeln!(out, "  failed: {reason}")?;
    }
    if let Some(notice) = lab["notice"].as_str() {
        writeln!(out, "  note: {notice}")?;
    }
    Ok(())
}

/// `orrery lab start`: a new lab, or `lab` again.
pub(super) fn start(
    home: &Home,
    user: Option<&str>,
    lab: Option<&str>,
    environment: &str,
    data: &[String],
    out: &mut dyn Write,
) -> Result<()> {
    let token = Ephemeral::make(home, user, &[Scope::Read, Scope::Labs])?;
    writeln!(
        out,
        "starting (the first lab of an environment provisions it first, which takes minutes)"
    )?;
    out.flush()?;
    let shown = follow(home, &token.secret, lab.map(str::to_owned));
    let made = match lab {
        Some(id) => call(
            home,
            &token,
            "POST",
            &format!("/api/v1/labs/{id}/start"),
            None,
            START_TIMEOUT,
        )?,
        None => call(
            home,
            &token,
            "POST",
            "/api/v1/labs",
            Some(json!({ "environment": environment, "datasets": data })),
            START_TIMEOUT,
        )?,
    };
    // The last step is shown before the answer (it is on its way when the answer comes).
    if let (Some(steps), Some(id)) = (shown, made["id"].as_str()) {
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match steps.recv_timeout(left) {
                Ok((lab, state)) if lab == id && made["state"] == state.as_str() => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    show(out, &made)?;
    if made["state"] != "running" {
        bail!(
            "the lab did not start; `orrery lab logs {}` shows its output",
            made["id"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// Prints the steps of the user's labs (of `lab` only, if given) on standard error as they
/// happen, from the node's event stream, while the start runs; nothing if the stream does not
/// open (the start's answer still says how it ended).
/// Returns the steps shown, as they are shown.
fn follow(
    home: &Home,
    secret: &str,
    lab: Option<String>,
) -> Option<std::sync::mpsc::Receiver<(String, String)>> {
    let base = web_client::node_url(home)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .get(&format!("{base}/api/v1/labs/events"))
        .header("authorization", format!("Bearer {secret}"))
        .call()
        .ok()
        .filter(|r| r.status().as_u16() == 200)?;
    let reader = response.into_body().into_reader();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut last = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(reader)) {
            let Ok(line) = line else { break };
            let Some(step) = line
                .strip_prefix("data:")
                .and_then(|d| serde_json::from_str::<Value>(d.trim()).ok())
            else {
                continue;
            };
            let id = step["lab"]["id"].as_str().unwrap_or("?");
            if lab.as_deref().is_some_and(|l| l != id) {
                continue;
            }
            let state = step["lab"]["state"].as_str().unwrap_or("?");
            let shown = match step["detail"].as_str() {
                Some(detail) => format!("  {id}  {state}: {detail}"),
                None => format!("  {id}  {state}"),
            };
            if shown != last {
                eprintln!("{shown}");
                last = shown;
            }
            if tx.send((id.to_owned(), state.to_owned())).is_err() {
                break;
            }
        }
    });
    Some(rx)
}

/// `orrery lab list`.
pub(super) fn list(home: &Home, user: Option<&str>, out: &mut dyn Write) -> Result<()> {
    let token = Ephemeral::make(home, user, &[Scope::Read, Scope::Labs])?;
    let labs = call(home, &token, "GET", "/api/v1/labs", None, CALL_TIMEOUT)?;
    let labs = labs.as_array().cloned().unwrap_or_default();
    if labs.is_empty() {
        writeln!(
            out,
            "no labs; `orrery lab start --data <collection>` starts one"
        )?;
    }
    for lab in &labs {
        show(out, lab)?;
    }
    Ok(())
}

/// `orrery lab show`.
pub(super) fn show_one(
    home: &Home,
    user: Option<&str>,
    id: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let token = Ephemeral::make(home, user, &[Scope::Read, Scope::Labs])?;
    let lab = call(
        home,
        &token,
        "GET",
        &format!("/api/v1/labs/{id}"),
        None,
        CALL_TIMEOUT,
    )?;
    show(out, &lab)
}

/// `orrery lab stop`.
pub(super) fn stop(home: &Home, user: Option<&str>, id: &str, out: &mut dyn Write) -> Result<()> {
    let token = Ephemeral::make(home, user, &[Scope::Read, Scope::Labs])?;
    let lab = call(
        home,
        &token,
        "DELETE",
        &format!("/api/v1/labs/{id}"),
        None,
        CALL_TIMEOUT,
    )?;
    show(out, &lab)
}

/// `orrery lab add-data`.
pub(super) fn add_data(
    home: &Home,
    user: Option<&str>,
    id: &str,
    collection: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let token = Ephemeral::make(home, user, &[Scope::Read, Scope::Labs])?;
    let lab = call(
        home,
        &token,
        "POST",
        &format!("/api/v1/labs/{id}/datasets"),
        Some(json!({ "dataset": collection })),
        CALL_TIMEOUT,
    )?;
    show(out, &lab)
}

/// `orrery lab logs`.
pub(super) fn logs(home: &Home, user: Option<&str>, id: &str, out: &mut dyn Write) -> Result<()> {
    let token = Ephemeral::make(home, user, &[Scope::Read, Scope::Labs])?;
    let text = call(
        home,
        &token,
        "GET",
        &format!("/api/v1/labs/{id}/logs"),
        None,
        CALL_TIMEOUT,
    )?;
    writeln!(out, "{}", text.as_str().unwrap_or_default())?;
    Ok(())
}
