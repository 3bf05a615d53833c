//! `orrery federation ...` and `orrery run`: membership, invitations and the running node.

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use orrery_protocol::NodeId;
use orrery_protocol::federation::Membership;

use super::Ctx;
use super::render::{table, time};
use crate::home::read_key;
use crate::service::{InviteToken, NodeEvent};

/// Federation commands.
#[derive(Debug, Subcommand)]
pub enum FederationCmd {
    /// Found a federation with this node as its first member.
    Create {
        /// The federation's name, e.g. "esa-archives".
        name: String,
    },
    /// Invite a node (by its node id) or whoever holds a one-time code.
    Invite {
        /// The invited node's id (64 hex digits), as `orrery init` printed it.
        #[arg(long, conflicts_with = "code")]
        node: Option<NodeId>,
        /// Make a one-time code instead of naming a node.
        #[arg(long)]
        code: bool,
        /// Hours until the invitation expires.
        #[arg(long, default_value_t = 24)]
        ttl_hours: i64,
        /// Address where the joining node can reach this one (multiaddr); default: where the
        /// running node listens, else the configured listen addresses.
        #[arg(long)]
        address: Vec<String>,
    },
    /// Join a federation with an invitation token.
    Join {
        /// The token, as `orrery federation invite` printed it.
        token: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Remove a member: the others stop talking to it and refuse its adverts and changes.
    Remove {
        /// The member's node id.
        node: NodeId,
        /// Why, for the other operators.
        #[arg(long, default_value = "removed by an operator")]
        reason: String,
    },
    /// List the members, their adverts and whether the running node reaches them.
    Status,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn membership(ctx: &Ctx) -> Result<Membership> {
    ctx.store.membership()?.ok_or_else(|| {
        anyhow::anyhow!(
            "this node is not in a federation; `orrery federation create NAME` founds one, \
             `orrery federation join TOKEN` joins one"
        )
    })
}

pub(super) fn run(ctx: &mut Ctx, cmd: FederationCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        FederationCmd::Create { name } => {
            if let Some(m) = ctx.store.membership()? {
                bail!(
                    "this node already belongs to federation {:?} ({})",
                    m.name(),
                    m.id()
                );
            }
            let key = read_key(&ctx.home.node_key())?;
            let m = Membership::found(&key, &name, now())?;
            ctx.store.add_membership_events(&m.events())?;
            writeln!(out, "founded federation {:?}: {}", m.name(), m.id())?;
            writeln!(
                out,
                "next: `orrery run`, then `orrery federation invite --node <node id>`"
            )?;
            Ok(())
        }
        FederationCmd::Invite {
            node,
            code,
            ttl_hours,
            address,
        } => {
            if node.is_none() && !code {
                bail!("name the node to invite with --node <node id>, or make a one-time --code");
            }
            let m = membership(ctx)?;
            let key = read_key(&ctx.home.node_key())?;
            let secret = if code {
                let mut c = [0u8; 32];
                getrandom::fill(&mut c).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
                Some(c)
            } else {
                None
            };
            let mut nonce = [0u8; 16];
            getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
            let invitation = m.invite(&key, node, secret, now() + ttl_hours * 3600, nonce)?;
            let peer = orrery_federation::peer::peer_id(&NodeId(key.public()));
            let mut addrs = address;
            if addrs.is_empty() {
                addrs = ctx.store.listen_addrs()?;
            }
            if addrs.is_empty() {
                addrs = ctx.config.network.listen.clone();
            }
            let addrs = addrs
                .into_iter()
                .map(|a| {
                    if a.contains("/p2p/") {
                        a
                    } else {
                        format!("{a}/p2p/{peer}")
                    }
                })
                .collect();
            let token = InviteToken {
                invitation: invitation.into_unverified(),
                addrs,
                code: secret,
            };
            writeln!(out, "{}", token.encode())?;
            Ok(())
        }
        FederationCmd::Join { token, timeout } => {
            if let Some(m) = ctx.store.membership()? {
                bail!("this node already belongs to federation {:?}", m.name());
            }
            let token = InviteToken::decode(&token)?;
            let home = ctx.home.clone();
            let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
            runtime.block_on(async move {
                let (node, task) = crate::service::start(home).await?;
                let mut events = node.subscribe();
                let joined = tokio::time::timeout(std::time::Duration::from_secs(timeout), async {
                    node.join(token).await?;
                    // The member list is stored when the federation layer reports it.
                    loop {
                        match events.recv().await {
                            Ok(NodeEvent::Membership) => return Ok::<(), anyhow::Error>(()),
                            Ok(_) => continue,
                            Err(e) => bail!("the node stopped while joining: {e}"),
                        }
                    }
                })
                .await;
                node.shutdown();
                let _ = task.await;
                match joined {
                    Ok(r) => r,
                    Err(_) => bail!("no answer from the inviter within {timeout} s; is its node running and reachable?"),
                }
            })?;
            let m = membership(ctx)?;
            writeln!(
                out,
                "joined federation {:?} ({} members)",
                m.name(),
                m.members().len()
            )?;
            writeln!(out, "next: `orrery run`")?;
            Ok(())
        }
        FederationCmd::Remove { node, reason } => {
            let mut m = membership(ctx)?;
            if !m.is_member(&node) {
                bail!("{node} is not a member");
            }
            let key = read_key(&ctx.home.node_key())?;
            m.remove(&key, node, &reason, now())?;
            ctx.store.add_membership_events(&m.events())?;
            writeln!(out, "removed {node}; the running node tells the federation")?;
            Ok(())
        }
        FederationCmd::Status => {
            let m = membership(ctx)?;
            let me = NodeId(read_key(&ctx.home.node_key())?.public());
            let view = crate::federation_view::view(&ctx.home, &ctx.config, &ctx.store)?
                .ok_or_else(|| anyhow::anyhow!("this node belongs to no federation"))?;
            writeln!(out, "federation {:?} ({})", view.name, view.id)?;
            let rows = view
                .members
                .into_iter()
                .map(|member| {
                    let reach = match member.reach {
                        orrery_web::Reach::ThisNode => "this node".to_string(),
                        orrery_web::Reach::Connected => "connected".into(),
                        orrery_web::Reach::LastSeen { at } => format!("last seen {}", time(at)),
                        orrery_web::Reach::NeverSeen => "never seen".into(),
                    };
                    let describe = |compute: &[orrery_protocol::advert::ComputeOffer]| {
                        compute
                            .iter()
                            .map(|c| {
                                format!(
                                    "{}: {} cores, {} GiB{}, {} free",
                                    c.environment,
                                    c.cores,
                                    c.memory_mib / 1024,
                                    if c.gpus > 0 {
                                        format!(", {} GPU", c.gpus)
                                    } else {
                                        String::new()
                                    },
                                    c.free_slots
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    };
                    vec![
                        member.short,
                        member.name,
                        member.institution,
                        describe(&member.compute),
                        member
                            .advert_issued_at
                            .map(time)
                            .unwrap_or_else(|| "-".into()),
                        reach,
                    ]
                })
                .collect();
            writeln!(
                out,
                "{}",
                table(
                    &[
                        "node",
                        "name",
                        "institution",
                        "compute",
                        "advert issued",
                        "reachability"
                    ],
                    rows
                )
            )?;
            let problems = ctx.store.replication_problems()?;
            if !problems.is_empty() {
                writeln!(out, "\nreplication problems")?;
                for line in super::render::replication_problems(&ctx.store, &problems, true)? {
                    writeln!(out, "  {line}")?;
                }
            }
            let bans = ctx.store.bans()?;
            if !bans.is_empty() {
                writeln!(out, "\nbanned peers (this node refuses their connections)")?;
                for b in &bans {
                    writeln!(
                        out,
                        "  {} since {} until {}: {}",
                        b.peer.short(),
                        time(b.since),
                        time(b.until),
                        b.reason
                    )?;
                }
                writeln!(
                    out,
                    "  a ban ends by itself; if the peer is a member that misbehaves, ask its operator to check its logs"
                )?;
            }
            let removed = m.removed();
            if removed.contains(&me) {
                writeln!(
                    out,
                    "\nthis node was removed from the federation: members no longer sync with it or answer its searches. To take part again, ask a member's operator for a new invitation (`orrery federation invite` there, then `orrery federation join` here)."
                )?;
            }
            if !removed.is_empty() {
                writeln!(
                    out,
                    "removed: {}",
                    removed
                        .iter()
                        .map(NodeId::short)
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
            Ok(())
        }
    }
}

/// `orrery run`: the node until interrupted.
pub(super) fn run_node(ctx: &Ctx, out: &mut dyn Write) -> Result<()> {
    let home = ctx.home.clone();
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let (node, task) = crate::service::start(home).await?;
        writeln!(out, "node {} running; Ctrl-C stops it", node.id())?;
        out.flush()?;
        let mut events = node.subscribe();
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                ev = events.recv() => match ev {
                    Ok(NodeEvent::Connected(n)) => tracing::info!(peer = %n.short(), "connected"),
                    Ok(NodeEvent::Rejected { peer, project }) => {
                        tracing::warn!(peer = %peer.short(), project = %project.short(), "refused forged or unauthorised changes");
                    }
                    Ok(NodeEvent::Banned { node, reason }) => {
                        tracing::warn!(peer = %node.short(), %reason, "peer banned");
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                },
            }
        }
        node.shutdown();
        let _ = task.await;
        Ok(())
    })
}
