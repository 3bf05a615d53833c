//! Runs at the data as the command line shows them: `orrery project provenance` prints a cell's
//! run record, and `orrery project credits` lists whose outputs came from which node.

use std::io::Write;

use anyhow::{Result, bail};
use orrery_crdt::{CellId, NotebookId, Project, VerifiedRun};
use orrery_protocol::run::RunStatus;
use orrery_protocol::{AuthorId, NodeId};

use super::Ctx;
use super::render::time;

/// Names nodes as the federation knows them (this node by its configured name), else by short
/// id; this node's key and the membership are read once.
fn node_namer(ctx: &Ctx) -> impl Fn(&NodeId) -> String + '_ {
    let me = crate::home::read_key(&ctx.home.node_key())
        .ok()
        .map(|k| NodeId(k.public()));
    let members = ctx
        .store
        .membership()
        .ok()
        .flatten()
        .map(|m| m.members())
        .unwrap_or_default();
    move |node| {
        if me.as_ref() == Some(node) {
            return format!("{} ({}, this node)", ctx.config.node.name, node.short());
        }
        members.iter().find(|(n, _)| n == node).map_or_else(
            || node.short(),
            |(_, name)| format!("{name} ({})", node.short()),
        )
    }
}

fn status(run: &VerifiedRun) -> String {
    match &run.provenance.status {
        RunStatus::Ok => "ok".into(),
        RunStatus::Error(e) => format!("error: {e}"),
    }
}

/// Every cell of `p` whose outputs a node computed, as lines for `orrery project credits`.
pub(super) fn run_lines(ctx: &Ctx, p: &Project, name: &dyn Fn(&AuthorId) -> String) -> Vec<String> {
    let node_name = node_namer(ctx);
    let mut lines = Vec::new();
    for (nb, title) in p.notebook_ids() {
        for cell in p.cell_ids(&nb).unwrap_or_default() {
            if let Some(run) = p.run_record(&nb, &cell) {
                lines.push(format!(
                    "  {title} / cell {cell}: outputs computed by {} for {}{} ({})",
                    node_name(&run.node),
                    name(&run.requester),
                    if run.outputs_current {
                        ""
                    } else {
                        ", since replaced"
                    },
                    status(&run)
                ));
            }
        }
    }
    lines
}

/// `orrery project provenance`: the run record of one cell.
pub(super) fn provenance(
    ctx: &Ctx,
    p: &Project,
    nb: &NotebookId,
    cell: &CellId,
    name: &dyn Fn(&AuthorId) -> String,
    out: &mut dyn Write,
) -> Result<()> {
    let Some(run) = p.run_record(nb, cell) else {
        bail!(
            "cell {cell} has no verified run: its outputs, if any, were written by its editors \
             (`orrery project credits` shows who)"
        );
    };
    let node_name = node_namer(ctx);
    let pr = &run.provenance;
    writeln!(out, "cell          {cell}")?;
    writeln!(out, "computed by   {}", node_name(&run.node))?;
    writeln!(out, "asked by      {}", name(&run.requester))?;
    writeln!(out, "request       {}", hex::encode(run.request.id))?;
    writeln!(
        out,
        "on the state  {}",
        run.request
            .heads
            .iter()
            .map(|h| h.short())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(
        out,
        "source        blake3 {}",
        hex::encode(pr.source_blake3)
    )?;
    writeln!(
        out,
        "environment   {} (lock {})",
        pr.environment, pr.environment_lock
    )?;
    writeln!(
        out,
        "ran           {} for {} ms",
        time(pr.started_at_ms / 1000),
        pr.ended_at_ms.saturating_sub(pr.started_at_ms)
    )?;
    writeln!(out, "ended         {}", status(&run))?;
    writeln!(
        out,
        "outputs       {}",
        if run.outputs_current {
            "the cell's outputs are this run's"
        } else {
            "replaced since by an editor"
        }
    )?;
    if pr.datasets.is_empty() {
        writeln!(out, "datasets read none recorded")?;
    }
    for d in &pr.datasets {
        writeln!(
            out,
            "dataset read  {} at {} (blake3 {})",
            d.product,
            node_name(&d.node),
            hex::encode(d.blake3)
        )?;
    }
    Ok(())
}
