//! `orrery user` and `orrery token`: the people who sign in to this node, and their API tokens
//! for scripts.

use std::io::Write;

use anyhow::{Result, bail};
use clap::Subcommand;
use orrery_protocol::AuthorId;

use super::Ctx;
use super::render::{table, time};
use crate::store::Scope;

/// `orrery user`.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user, bound to an author this node holds (a new one unless --author names one).
    Add {
        /// The user's name, as credits and citations show it.
        #[arg(long)]
        name: String,
        /// An existing local author (id or a unique prefix) to edit as.
        #[arg(long)]
        author: Option<String>,
        /// An OpenID sign-in that is this user, as `PROVIDER:SUBJECT` (a provider id of the
        /// configuration; for ORCID the subject is the ORCID iD): they can be added to projects
        /// before they first sign in. May be repeated.
        #[arg(long = "sign-in", value_name = "PROVIDER:SUBJECT")]
        sign_in: Vec<String>,
    },
    /// List the users.
    List,
    /// Remove a user, their sign-in identities, tokens and sessions (their author key stays).
    Remove {
        /// The user's id.
        id: String,
    },
    /// Print a one-time link that signs the user in to this node's pages (for a node without
    /// an OpenID provider, or a user who cannot use it); it works once, within `--minutes`.
    Link {
        /// The user's id.
        id: String,
        /// Minutes until the link stops working (at most 1440).
        #[arg(long, default_value_t = 60)]
        minutes: i64,
    },
}

/// `orrery token`.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an API token for a user; it is printed once and only its hash is kept.
    Create {
        /// The user's id.
        #[arg(long)]
        user: String,
        /// What it may do: read, write, labs (comma-separated).
        #[arg(long, default_value = "read")]
        scope: String,
        /// Days until it stops working (at most 366).
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token at once.
    Revoke {
        /// The token's id.
        id: String,
    },
}

fn local_author(ctx: &Ctx, query: &str) -> Result<AuthorId> {
    let matches: Vec<AuthorId> = ctx
        .store
        .authors()?
        .into_iter()
        .map(|a| a.id)
        .filter(|id| id.to_string().starts_with(query))
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no local author matches `{query}`; `orrery author list` shows them"),
        _ => bail!(
            "`{query}` matches {} authors; give more of the id",
            matches.len()
        ),
    }
}

/// A `PROVIDER:SUBJECT` sign-in, checked against the configured providers and the identities
/// already bound: the provider's id, issuer and the subject.
fn identity(ctx: &Ctx, given: &str) -> Result<(String, String, String)> {
    let Some((provider, subject)) = given
        .split_once(':')
        .filter(|(p, s)| !p.is_empty() && !s.trim().is_empty())
    else {
        bail!(
            "--sign-in takes PROVIDER:SUBJECT (for example orcid:0000-0002-1825-0097), not `{given}`"
        );
    };
    let Some(config) = ctx.config.web.oidc.iter().find(|p| p.id == provider) else {
        let known: Vec<&str> = ctx.config.web.oidc.iter().map(|p| p.id.as_str()).collect();
        bail!(
            "no sign-in provider `{provider}` in this node's configuration (it has: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    };
    if let Some(u) = ctx.store.user_by_identity(&config.issuer, subject)? {
        bail!("{given} already signs in as user {} ({})", u.id, u.name);
    }
    Ok((
        provider.to_owned(),
        config.issuer.clone(),
        subject.to_owned(),
    ))
}

/// Runs `orrery user`.
pub(super) fn run_user(ctx: &mut Ctx, cmd: UserCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        UserCmd::Add {
            name,
            author,
            sign_in,
        } => {
            let identities = sign_in
                .iter()
                .map(|s| identity(ctx, s))
                .collect::<Result<Vec<_>>>()?;
            let author = match author {
                Some(q) => local_author(ctx, &q)?,
                None => crate::setup::new_author(&ctx.home, &mut ctx.store, &name, None, None)?,
            };
            let user = ctx.store.add_user(&name, author)?;
            writeln!(
                out,
                "user {} ({}) edits as author {}",
                user.id, user.name, author
            )?;
            for (provider, issuer, subject) in identities {
                ctx.store.add_identity(&user.id, &issuer, &subject)?;
                writeln!(out, "signs in with {provider} as {subject}")?;
            }
            writeln!(
                out,
                "next: `orrery token create --user {}` for scripts",
                user.id
            )?;
        }
        UserCmd::List => {
            let rows = ctx
                .store
                .users()?
                .into_iter()
                .map(|u| {
                    vec![
                        u.id,
                        u.name,
                        u.author.short(),
                        if u.orcid_attestation.is_some() {
                            "verified".into()
                        } else {
                            "-".into()
                        },
                    ]
                })
                .collect();
            writeln!(out, "{}", table(&["id", "name", "author", "ORCID"], rows))?;
        }
        UserCmd::Link { id, minutes } => {
            if ctx.store.user(&id)?.is_none() {
                bail!("no user `{id}`; `orrery user list` shows them");
            }
            if !(1..=1440).contains(&minutes) {
                bail!("a sign-in link lives 1 to 1440 minutes, not {minutes}");
            }
            let code = ctx.store.create_sign_in_link(&id, minutes * 60)?;
            let base = match &ctx.config.web.public_url {
                Some(url) => url.trim_end_matches('/').to_owned(),
                None => match std::fs::read_to_string(ctx.home.web_addr()) {
                    Ok(addr) => format!("http://{}", addr.trim()),
                    Err(_) => "http://<this node's web address>".into(),
                },
            };
            writeln!(out, "{base}/auth/link/{code}")?;
            writeln!(
                out,
                "it signs {id} in once, within {minutes} minutes; send it only to them"
            )?;
        }
        UserCmd::Remove { id } => {
            if !ctx.store.remove_user(&id)? {
                bail!("no user `{id}`; `orrery user list` shows them");
            }
            writeln!(
                out,
                "removed user {id}; their tokens and sessions no longer work"
            )?;
        }
    }
    Ok(())
}

/// Runs `orrery token`.
pub(super) fn run_token(ctx: &mut Ctx, cmd: TokenCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        TokenCmd::Create { user, scope, days } => {
            if ctx.store.user(&user)?.is_none() {
                bail!("no user `{user}`; `orrery user list` shows them");
            }
            let Some(scopes) = Scope::parse_list(&scope) else {
                bail!("scopes are read, write and labs, comma-separated; not `{scope}`");
            };
            if !(1..=366).contains(&days) {
                bail!("a token lives 1 to 366 days, not {days}");
            }
            let (id, secret) = ctx.store.create_token(&user, &scopes, days * 24 * 3600)?;
            writeln!(out, "token {id} for {user}, valid {days} days")?;
            writeln!(out, "{secret}")?;
            writeln!(
                out,
                "this is the only time it is shown: send it as `Authorization: Bearer <token>`"
            )?;
        }
        TokenCmd::List { user } => {
            let rows = ctx
                .store
                .tokens(user.as_deref())?
                .into_iter()
                .map(|t| {
                    vec![
                        t.id,
                        t.user,
                        t.scopes
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        time(t.expires_at),
                        t.last_used.map(time).unwrap_or_else(|| "never".into()),
                        if t.revoked { "revoked" } else { "" }.into(),
                    ]
                })
                .collect();
            writeln!(
                out,
                "{}",
                table(&["id", "user", "scopes", "expires", "last used", ""], rows)
            )?;
        }
        TokenCmd::Revoke { id } => {
            if !ctx.store.revoke_token(&id)? {
                bail!("no token `{id}`; `orrery token list` shows them");
            }
            writeln!(out, "revoked token {id}")?;
        }
    }
    Ok(())
}
