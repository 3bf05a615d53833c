//! `orrery project pin-environment`: a project's lab environment pinned in the project itself.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use orrery_crdt::{PinnedEnvironment, Project};

use super::Ctx;
use super::project::{As, commit, load, session};
use crate::labs::env::{Environment, check_lock};

/// How `project show` names the project's environment.
pub(super) fn shown(p: &Project) -> String {
    match p.pinned_environment() {
        Some(pin) => {
            let env = Environment {
                id: pin.id,
                description: String::new(),
                lock: pin.lock,
                image: pin.image,
            };
            format!(
                "{} (pinned {}; its lock is kept in the project{})",
                env.name(),
                super::render::time(pin.pinned_at),
                env.image
                    .as_deref()
                    .map(|i| format!("; image {i}"))
                    .unwrap_or_default()
            )
        }
        None => "each node's default (not pinned)".into(),
    }
}

/// Pins `project` to the lock at `lock` (the node's default `jupyter` lock if none) and
/// `image`, or unpins it.
pub(super) fn pin(
    ctx: &mut Ctx,
    project: &str,
    lock: Option<&Path>,
    image: Option<String>,
    unpin: bool,
    who: &As,
    out: &mut dyn Write,
) -> Result<()> {
    let mut p = load(ctx, project)?;
    let (session, _) = session(ctx, who)?;
    if unpin {
        p.pin_environment(&session, None)?;
        commit(ctx, &mut p, &session)?;
        writeln!(
            out,
            "{}: unpinned; its cells run in each node's default environment",
            p.title()
        )?;
        return Ok(());
    }
    let env = match lock {
        Some(path) => Environment {
            lock: std::fs::read_to_string(path)
                .with_context(|| format!("reading the lock {}", path.display()))?,
            ..Environment::jupyter()
        },
        None => Environment::jupyter(),
    };
    if let Err(why) = check_lock(&env.lock) {
        bail!("{why}");
    }
    if let Some(i) = image
        .as_deref()
        .filter(|i| !orrery_crdt::image_by_digest(i))
    {
        bail!(
            "{i:?} does not name an image by its digest: give it as registry/repo@sha256:<64 hex digits> (a tag can change under the project)"
        );
    }
    let pin = PinnedEnvironment {
        id: env.id.clone(),
        lock: env.lock.clone(),
        pinned_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        image: image.clone(),
    };
    p.pin_environment(&session, Some(&pin))?;
    commit(ctx, &mut p, &session)?;
    let pinned = Environment { image, ..env };
    writeln!(
        out,
        "{}: pinned to {}; every run of its cells uses this lock{}",
        p.title(),
        pinned.name(),
        if pinned.image.is_some() {
            " (or this image, at nodes whose labs run from images)"
        } else {
            ""
        }
    )?;
    Ok(())
}
