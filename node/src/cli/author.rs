//! `orrery author ...`: the researchers who edit from this node.

use std::io::Write;

use anyhow::Result;
use clap::Subcommand;
use orrery_protocol::Orcid;

use super::Ctx;
use super::render::table;

/// Author commands.
#[derive(Debug, Subcommand)]
pub enum AuthorCmd {
    /// Create an author: a key kept on this node and a self-signed profile.
    New {
        /// Display name, as it should appear in credits and citations.
        #[arg(long)]
        name: String,
        /// ORCID iD, e.g. 0000-0002-1825-0097.
        #[arg(long)]
        orcid: Option<Orcid>,
        /// Institute or affiliation.
        #[arg(long)]
        affiliation: Option<String>,
    },
    /// List the authors on this node.
    List,
}

pub(super) fn run(ctx: &mut Ctx, cmd: AuthorCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        AuthorCmd::New {
            name,
            orcid,
            affiliation,
        } => {
            let author =
                crate::setup::new_author(&ctx.home, &mut ctx.store, &name, orcid, affiliation)?;
            writeln!(out, "author id: {author}")?;
            Ok(())
        }
        AuthorCmd::List => {
            let rows = ctx
                .store
                .authors()?
                .into_iter()
                .map(|a| {
                    let p = a.profile.value();
                    vec![
                        a.id.to_string(),
                        p.name.clone(),
                        p.orcid
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        p.affiliation.clone().unwrap_or_default(),
                        if a.is_default {
                            "yes".into()
                        } else {
                            String::new()
                        },
                    ]
                })
                .collect();
            writeln!(
                out,
                "{}",
                table(&["id", "name", "orcid", "affiliation", "default"], rows)
            )?;
            Ok(())
        }
    }
}
