//! `orrery preservation`: how many copies of this node's collections the federation keeps
//! (`set`, a policy signed by the node and carried in its advert), and where every policy the
//! node knows of stands (`status`: its holders as every node computes them, each holder's copy
//! as its advert last described it, and what is at risk).

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use orrery_protocol::preservation::{PreservationPolicy, Subject};
use orrery_protocol::{NodeId, Signed};
use serde_json::json;

use super::Ctx;
use crate::catalog::Catalog;
use crate::service::preservation::{Described, Me, Plan, plans};

/// `orrery preservation …`.
#[derive(Debug, Subcommand)]
pub enum PreservationCmd {
    /// Ask the federation to keep copies of one of this node's collections.
    Set {
        /// The collection (as `orrery dataset list` names it).
        collection: String,
        #[command(flatten)]
        copies: Copies,
    },
    /// Ask the federation to keep copies of a project (its owners): the policy is kept in the
    /// project, and the nodes it pins may hold the project even when they host none of its
    /// members (unless it is restricted).
    SetProject {
        /// Project id (or a unique prefix) or exact title.
        project: String,
        #[command(flatten)]
        copies: Copies,
        #[command(flatten)]
        who: super::project::As,
    },
    /// Every policy this node knows of: its holders, their copies, and what is at risk.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// How many copies a policy keeps, and where.
#[derive(Debug, Args)]
pub struct Copies {
    /// How many copies to keep (1 to 9; a collection's publisher's own included).
    #[arg(long)]
    copies: u8,
    /// Every copy at a different institution.
    #[arg(long)]
    distinct_institutions: bool,
    /// A node that holds a copy whenever it can (its id; repeatable).
    #[arg(long = "pin", value_name = "NODE")]
    pinned: Vec<String>,
}

impl Copies {
    /// The policy for `subject`, numbered `seq`, checked.
    fn policy(&self, subject: Subject, seq: u64) -> Result<PreservationPolicy> {
        let pinned = self
            .pinned
            .iter()
            .map(|p| {
                p.parse::<NodeId>().map_err(|_| {
                    anyhow::anyhow!(
                        "{p:?} is not a node id (`orrery federation status` lists them)"
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let policy = PreservationPolicy {
            subject,
            copies: self.copies,
            distinct_institutions: self.distinct_institutions,
            pinned,
            seq,
            issued_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        };
        policy.validate()?;
        Ok(policy)
    }

    /// `3 copies at distinct institutions`, for the command's answer.
    fn said(&self) -> String {
        format!(
            "{} copies{}",
            self.copies,
            if self.distinct_institutions {
                " at distinct institutions"
            } else {
                ""
            }
        )
    }
}

/// Runs `orrery preservation …`.
pub(crate) fn run(ctx: &mut Ctx, cmd: PreservationCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        PreservationCmd::Set { collection, copies } => set(ctx, &collection, &copies, out),
        PreservationCmd::SetProject {
            project,
            copies,
            who,
        } => {
            let mut p = super::project::load(ctx, &project)?;
            let (session, _) = super::project::session(ctx, &who)?;
            let seq = p.preservation_policy().map_or(1, |old| old.seq + 1);
            let policy = copies.policy(Subject::Project(p.id()), seq)?;
            p.set_preservation_policy(&session, Some(&policy))?;
            super::project::commit(ctx, &mut p, &session)?;
            writeln!(
                out,
                "{}: {}; kept in the project, read by every node that holds it",
                p.title(),
                copies.said()
            )?;
            Ok(())
        }
        PreservationCmd::Status { json } => status(ctx, json, out),
    }
}

fn me(ctx: &Ctx) -> Result<NodeId> {
    Ok(NodeId(
        crate::home::read_key(&ctx.home.node_key())?.public(),
    ))
}

fn set(ctx: &mut Ctx, collection: &str, copies: &Copies, out: &mut dyn Write) -> Result<()> {
    let catalog = Catalog::open_read_only(&ctx.home.database())?;
    catalog.collection(collection).with_context(|| {
        format!(
            "this node publishes no collection {collection:?} (`orrery dataset list` lists them)"
        )
    })?;
    let key = crate::home::read_key(&ctx.home.node_key())?;
    let seq = ctx.store.preservation_seq(collection)?.unwrap_or(0) + 1;
    let subject = Subject::Collection {
        publisher: NodeId(key.public()),
        id: collection.to_owned(),
    };
    let signed = Signed::sign(&key, copies.policy(subject, seq)?).into_unverified();
    ctx.store
        .set_preservation_policy(collection, &signed, seq)?;
    writeln!(
        out,
        "{collection}: {}; the running node advertises it and holders fetch their copies (`orrery preservation status` follows them)",
        copies.said()
    )?;
    Ok(())
}

/// The state of one holder's copy.
fn copy_state(
    holder: &NodeId,
    subject: &Subject,
    me: &Me,
    adverts: &[orrery_protocol::advert::NodeAdvert],
) -> (String, bool) {
    if matches!(subject, Subject::Collection { publisher, .. } if publisher == holder) {
        return ("publisher (the original)".into(), true);
    }
    if *holder == me.node {
        return if me.holds.contains(subject) {
            ("complete here".into(), true)
        } else {
            ("being fetched here".into(), false)
        };
    }
    let held = adverts
        .iter()
        .find(|a| a.node == *holder)
        .and_then(|a| a.held.iter().find(|h| &h.subject == subject));
    match held {
        Some(h) if h.complete => (
            format!(
                "complete: {} files, {} bytes, checked at {}",
                h.files, h.bytes, h.checked_at
            ),
            true,
        ),
        Some(h) => (format!("incomplete: {} files so far", h.files), false),
        None => ("not yet held".into(), false),
    }
}

fn status(ctx: &Ctx, as_json: bool, out: &mut dyn Write) -> Result<()> {
    let node = me(ctx)?;
    let summaries = Catalog::open_read_only(&ctx.home.database())
        .and_then(|c| c.summaries())
        .context("reading this node's catalog")?;
    let mut own = Vec::new();
    for p in ctx.store.preservation_policies()? {
        let Ok(p) = p.verify().map(|v| v.value().clone()) else {
            eprintln!(
                "a policy kept here does not verify (was the node key replaced?); set it again with `orrery preservation set`"
            );
            continue;
        };
        own.push(Described::new(p, &summaries));
    }
    let (mut me, adverts) = Me::read(
        &ctx.store,
        node,
        ctx.config.node.institution.clone(),
        ctx.config.preservation.spare_bytes(),
        ctx.config.preservation.away_secs,
        own,
    )?;
    let mut titles = std::collections::BTreeMap::new();
    for row in ctx.store.projects()? {
        let p = ctx.store.load(row.id)?;
        let Some(policy) = p.preservation_policy() else {
            continue;
        };
        let readers = (p.visibility() != orrery_crdt::Visibility::Public).then(|| {
            let mut r: Vec<NodeId> = adverts
                .iter()
                .filter(|a| crate::service::may_hold_project(&p, a.node, Some(a)))
                .map(|a| a.node)
                .collect();
            r.push(node);
            r
        });
        let blobs = crate::blobs::BlobStore::new(ctx.home.blobs()).for_project(p.id());
        if crate::service::preservation::project_copy(&p, &blobs).complete {
            me.holds.push(policy.subject.clone());
        }
        titles.insert(p.id(), p.title());
        me.own.push(Described::project(policy, readers));
    }
    let name = |n: &NodeId| {
        if *n == node {
            return ctx.config.node.name.clone();
        }
        adverts
            .iter()
            .find(|a| a.node == *n)
            .map_or_else(|| n.short(), |a| a.name.clone())
    };
    let all: Vec<Plan> = plans(&me, &adverts);
    let mut shown = Vec::new();
    for plan in &all {
        let what = match &plan.policy.subject {
            Subject::Collection { publisher, id } => json!({
                "collection": id,
                "publisher": publisher.to_string(),
                "publisher_name": name(publisher),
            }),
            Subject::Project(p) => json!({
                "project": p.to_string(),
                "title": titles.get(p).cloned().unwrap_or_default(),
            }),
        };
        let holders: Vec<_> = plan
            .assignment
            .holders
            .iter()
            .map(|h| {
                let (state, safe) = copy_state(h, &plan.policy.subject, &me, &adverts);
                json!({ "node": h.to_string(), "name": name(h), "state": state, "complete": safe })
            })
            .collect();
        let complete = holders.iter().filter(|h| h["complete"] == true).count();
        let wanted = usize::from(plan.policy.copies);
        let mut risk = Vec::new();
        if complete < wanted {
            risk.push(format!("{complete} of {wanted} copies complete"));
        }
        if let Some(why) = &plan.assignment.shortfall {
            risk.push(why.clone());
        }
        let mut entry = json!({
            "copies": wanted,
            "distinct_institutions": plan.policy.distinct_institutions,
            "bytes": plan.bytes,
            "holders": holders,
            "complete": complete,
            "at_risk": risk,
        });
        if let (Some(e), Some(w)) = (entry.as_object_mut(), what.as_object()) {
            e.extend(w.clone());
        }
        shown.push(entry);
    }
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&shown)?)?;
        return Ok(());
    }
    if shown.is_empty() {
        writeln!(
            out,
            "no preservation policy is known here (`orrery preservation set` makes one for this node's collections)"
        )?;
        return Ok(());
    }
    for s in &shown {
        let what = match s["collection"].as_str() {
            Some(c) => format!(
                "{c} at {} ({} bytes)",
                s["publisher_name"].as_str().unwrap_or_default(),
                s["bytes"]
            ),
            None => format!(
                "project {} ({})",
                s["title"].as_str().unwrap_or_default(),
                s["project"]
                    .as_str()
                    .unwrap_or_default()
                    .get(..12)
                    .unwrap_or_default()
            ),
        };
        writeln!(
            out,
            "{what}: {} of {} copies complete",
            s["complete"], s["copies"]
        )?;
        for h in s["holders"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "  {:20} {}",
                h["name"].as_str().unwrap_or_default(),
                h["state"].as_str().unwrap_or_default()
            )?;
        }
        for r in s["at_risk"].as_array().into_iter().flatten() {
            writeln!(out, "  AT RISK: {}", r.as_str().unwrap_or_default())?;
        }
    }
    if shown
        .iter()
        .any(|s| s["at_risk"].as_array().is_some_and(|r| !r.is_empty()))
    {
        bail!("some collections or projects have fewer complete copies than their policies ask");
    }
    Ok(())
}
