//! A short-lived API token for one command that goes through the running node's REST API as
//! one of its users: the command line holds the node's store, so it makes the token, and revokes
//! it when the command is done. No credential outlives the command.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::home::Home;
use crate::store::{Scope, Store};
use crate::web_client;

/// A token for `user` (or the user of this node's default author), revoked when dropped.
pub(super) struct Ephemeral {
    home: Home,
    id: String,
    pub(super) secret: String,
}

impl Ephemeral {
    /// A token of `scopes` for `user` (or the user of this node's default author).
    pub(super) fn make(home: &Home, user: Option<&str>, scopes: &[Scope]) -> Result<Self> {
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
        let (id, secret) = store.create_token(&user.id, scopes, 3600)?;
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

/// Runs `call` (about something this command line wrote to the store a moment ago) until the
/// running node knows of it: the node notices the store's changes within a poll (250 ms), so a
/// "not found" is asked again for a few seconds before it is believed.
pub(super) fn once_known<T>(
    mut call: impl FnMut() -> Result<T, web_client::ClientError>,
) -> Result<T, web_client::ClientError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match call() {
            Err(web_client::ClientError::NotFound(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

/// A call to the running node's REST API with `token`.
pub(super) fn call(
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
