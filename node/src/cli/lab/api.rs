//! The lab commands a user types (`start`, `list`, `show`, `stop`, `logs`), through the running
//! node's REST API, as one of the node's users. The command line holds the node's store, so it
//! makes a short-lived token for the user with the `labs` scope, and revokes it when done: no
//! credential outlives the command.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::home::Home;
use crate::store::{Scope, Store};
use crate::web_client;

/// How long a start may take: the first lab of an environment provisions it.
const START_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A token for `user` (or the user of this node's default author), revoked when dropped.
struct Ephemeral {
    home: Home,
    id: String,
    secret: String,
}

impl Ephemeral {
    fn make(home: &Home, user: Option<&str>) -> Result<Self> {
        let mut store = Store::open(&home.database())?;
        let user = match user {
            Some(u) => store
                .user(u)?
                .with_context(|| format!("no user `{u}`; `orrery user list` shows them"))?,
            None => {
                let author = store
                    .authors()?
                    .into_iter()
                    .find(|a| a.is_default)
                    .context("this node has no author yet: `orrery author new`")?;
                store
                    .users()?
                    .into_iter()
                    .find(|u| u.author == author.id)
                    .context("no user edits as this node's default author: `orrery user add --name <name> --author <id>`, or pass --user")?
            }
        };
        let (id, secret) = store.create_token(&user.id, &[Scope::Read, Scope::Labs], 3600)?;
        Ok(Self {
            home: home.clone(),
            id,
            secret,
        })
    }
}

impl Drop for Ephemeral {
    fn drop(&mut self) {
        match Store::open(&self.home.database()).and_then(|mut s| s.revoke_token(&self.id)) {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(token = %self.id, error = %e, "the command's token could not be revoked; `orrery token revoke` it")
            }
        }
    }
}

fn call(
    home: &Home,
    token: &Ephemeral,
    method: &str,
    path: &str,
    body: Option<Value>,
    timeout: Duration,
) -> Result<Value> {
    web_client::api(home, method, path, &token.secret, body.as_ref(), timeout)
        .with_context(|| format!("{method} {path}"))
}

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
    let token = Ephemeral::make(home, user)?;
    writeln!(
        out,
        "starting (the first lab of an environment provisions it first, which takes minutes)"
    )?;
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
    show(out, &made)?;
    if made["state"] != "running" {
        bail!(
            "the lab did not start; `orrery lab logs {}` shows its output",
            made["id"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// `orrery lab list`.
pub(super) fn list(home: &Home, user: Option<&str>, out: &mut dyn Write) -> Result<()> {
    let token = Ephemeral::make(home, user)?;
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
    let token = Ephemeral::make(home, user)?;
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
    let token = Ephemeral::make(home, user)?;
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
    let token = Ephemeral::make(home, user)?;
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
    let token = Ephemeral::make(home, user)?;
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
