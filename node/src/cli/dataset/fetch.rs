//! `orrery dataset fetch`: a product found in a federated search, brought to this node over the
//! data plane — with a progress bar, resumed after an interruption from what was verified,
//! checked against the BLAKE3 the holder's catalog gives, and recorded in the node (so a lab can
//! mount it later). `orrery dataset policy` and `orrery dataset fetched` beside it.
//!
//! The running node finds the holders (a federated search through its HTTP face) and has
//! learned their data-plane addresses; the transfer itself runs in this process, on an endpoint
//! with the node's own key, so the holders judge the request as they would the node's. A holder
//! caught sending wrong bytes is recorded in the store; the running node penalises it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use orrery_catalog::{Hit, Query};
use orrery_protocol::NodeId;

use super::super::Ctx;
use super::human_bytes;
use crate::catalog::{Catalog, check_collection_id};
use crate::dataplane::{endpoint, fetch, products};

/// Hits asked for per page while looking for a product's holders.
const PAGE: u32 = 1000;

/// Arguments of `orrery dataset fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The product, as `orrery search` names it: COLLECTION/PATH.
    pub product: String,
    /// The directory to put it in (default: `fetched/COLLECTION` in the data directory).
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Fetch only from this node (its name, or its id or the start of it).
    #[arg(long, value_name = "NODE")]
    pub from: Option<String>,
    /// How long the federated search that finds the holders may wait for other nodes.
    #[arg(long, default_value = "10s")]
    pub timeout: humantime::Duration,
}

/// `orrery dataset fetch`.
pub(in crate::cli) fn run(ctx: &Ctx, args: FetchArgs, out: &mut dyn Write) -> Result<()> {
    let Some((collection, path)) = args.product.split_once('/') else {
        bail!(
            "name the product as COLLECTION/PATH, as `orrery search` lists it (not {:?})",
            args.product
        );
    };
    check_collection_id(collection)?;
    let name = file_name(path)?;
    let me = NodeId(crate::home::read_key(&ctx.home.node_key())?.public());
    let mut holders: Vec<Hit> = holders(ctx, collection, &args.product, args.timeout.into())?
        .into_iter()
        .filter(|h| h.node.as_deref() != Some(&me.to_string()))
        .filter(|h| args.from.as_deref().is_none_or(|f| names(h, f)))
        .collect();
    if holders.is_empty() {
        bail!(
            "no other member node holds {}{}; `orrery search --collection {collection}` lists what the federation holds",
            args.product,
            args.from
                .as_deref()
                .map(|f| format!(" (asked only {f})"))
                .unwrap_or_default()
        );
    }
    holders.truncate(8);
    let dir = args
        .to
        .unwrap_or_else(|| ctx.home.root().join("fetched").join(collection));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dest = dir.join(name);
    let partial = dir.join(format!(".{name}.partial"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(fetch_from(
        ctx,
        &args.product,
        &holders,
        &dest,
        &partial,
        out,
    ))
}

/// Tries each holder in turn until one delivers the verified file.
async fn fetch_from(
    ctx: &Ctx,
    product: &str,
    holders: &[Hit],
    dest: &Path,
    partial: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    let key = crate::home::read_key(&ctx.home.node_key())?;
    let mut listen = ctx.config.data.listen_addr(&ctx.config.network.listen);
    listen.set_port(0);
    let ep = endpoint::bind(&key, listen).await?;
    let mut failures = Vec::new();
    for hit in holders {
        let who = hit.node_name.clone().unwrap_or_else(|| "?".into());
        let (Some(node), Ok(hash)) = (
            hit.node.as_deref().and_then(|n| n.parse::<NodeId>().ok()),
            parse_hash(&hit.blake3),
        ) else {
            continue;
        };
        if dest.exists() {
            if already_here(dest, hash, hit.size)? {
                record(ctx, product, node, hash, hit.size, dest)?;
                writeln!(
                    out,
                    "{product} is already at {} (BLAKE3 verified); nothing fetched",
                    dest.display()
                )?;
                ep.close().await;
                return Ok(());
            }
            bail!(
                "{} exists and is not {product}; remove it or choose another directory with --to",
                dest.display()
            );
        }
        let addrs = ctx.store.data_addrs(node)?;
        if addrs.is_empty() {
            failures.push(format!(
                "{who}: its data-plane address is not known here yet (the running node learns it once connected to {who}); try again shortly"
            ));
            continue;
        }
        let bar = ProgressBar::with_draw_target(Some(hit.size), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(format!("{product} from {who}"));
        let mut report = |n: u64| bar.set_position(n);
        let got = fetch::fetch(&ep, node, &addrs, hash, hit.size, partial, &mut report).await;
        bar.finish_and_clear();
        match got {
            Ok(done) => {
                std::fs::rename(partial, dest)
                    .with_context(|| format!("moving the fetched file to {}", dest.display()))?;
                record(ctx, product, node, hash, hit.size, dest)?;
                writeln!(
                    out,
                    "fetched {product} ({}) from {who} to {}; BLAKE3 verified against its catalog{}",
                    human_bytes(hit.size),
                    dest.display(),
                    if done.resumed_from > 0 {
                        format!(
                            "; resumed after {} already verified",
                            human_bytes(done.resumed_from)
                        )
                    } else {
                        String::new()
                    }
                )?;
                ep.close().await;
                return Ok(());
            }
            Err(e) if e.is_offence() => {
                tracing::warn!(peer = %node.short(), error = %e, "a holder sent bytes that do not match the catalog's checksum; trying another holder");
                // The running node penalises it through the federation at its next poll.
                ctx.store.record_data_offence(node, &e.to_string())?;
                writeln!(
                    out,
                    "warning: {who} sent bytes that do not match {product}'s checksum (nothing of them was kept); trying another holder"
                )?;
                failures.push(format!("{who}: {e}"));
            }
            Err(e) => failures.push(format!("{who}: {e}")),
        }
    }
    ep.close().await;
    bail!(
        "{product} was not fetched:\n  {}\nwhat arrived verified is kept and the next run resumes from it",
        failures.join("\n  ")
    )
}

/// Every hit for `product` in the federation, paging through `collection` (bounded by the
/// query's depth limit).
pub(in crate::cli) fn holders(
    ctx: &Ctx,
    collection: &str,
    product: &str,
    timeout: Duration,
) -> Result<Vec<Hit>> {
    let mut found = Vec::new();
    let mut offset = 0;
    loop {
        let q = Query::collection_page(collection, offset, PAGE);
        let r = match crate::web_client::search(&ctx.home, &q, timeout) {
            Ok(r) => r,
            Err(crate::web_client::ClientError::NotRunning(addr)) => bail!(
                "the node is not running (nothing answers on {addr}): start it with `orrery run`; it finds the holders and their addresses"
            ),
            Err(e) => return Err(e.into()),
        };
        let n = r.results.hits.len() as u32;
        found.extend(r.results.hits.into_iter().filter(|h| h.id == product));
        offset += PAGE;
        if n < PAGE
            || u64::from(offset) >= r.results.total
            || offset + PAGE > orrery_catalog::query::MAX_DEPTH
        {
            return Ok(found);
        }
    }
}

/// Whether `--from` names the hit's node.
pub(in crate::cli) fn names(hit: &Hit, from: &str) -> bool {
    hit.node_name.as_deref() == Some(from)
        || hit
            .node
            .as_deref()
            .is_some_and(|n| !from.is_empty() && n.starts_with(from))
}

/// The file name a product is kept under: the last part of its path, which another node's
/// catalog gave, so checked to be a plain name.
fn file_name(path: &str) -> Result<&str> {
    let name = path.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name == "." || name == ".." || name.contains('\0') {
        bail!("{path:?} does not end in a file name");
    }
    Ok(name)
}

fn parse_hash(hex: &str) -> Result<[u8; 32]> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(hex, &mut h).context("a holder gave a malformed BLAKE3")?;
    Ok(h)
}

/// Whether `path` already holds the product.
fn already_here(path: &Path, hash: [u8; 32], size: u64) -> Result<bool> {
    let f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    if f.metadata()?.len() != size {
        return Ok(false);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(f)?;
    Ok(hasher.finalize().as_bytes() == &hash)
}

fn record(
    ctx: &Ctx,
    product: &str,
    origin: NodeId,
    hash: [u8; 32],
    size: u64,
    path: &Path,
) -> Result<()> {
    let catalog = Catalog::open(&ctx.home.database())?;
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    products::record_fetched(
        &catalog,
        &products::Fetched {
            product: product.to_owned(),
            origin,
            blake3: hex::encode(hash),
            size,
            path: path.display().to_string(),
            fetched_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        },
        &hash,
    )?;
    Ok(())
}

/// `orrery dataset fetched`.
pub(in crate::cli) fn list(catalog: &Catalog, json: bool, out: &mut dyn Write) -> Result<()> {
    let list = products::fetched(catalog)?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    if list.is_empty() {
        writeln!(
            out,
            "nothing fetched yet; `orrery dataset fetch COLLECTION/PATH` brings a product here"
        )?;
        return Ok(());
    }
    let rows = list
        .into_iter()
        .map(|f| {
            vec![
                f.product,
                f.origin.short(),
                human_bytes(f.size),
                f.path,
                crate::cli::render::time(f.fetched_at),
            ]
        })
        .collect();
    writeln!(
        out,
        "{}",
        crate::cli::render::table(&["product", "from", "size", "kept at", "fetched"], rows)
    )?;
    Ok(())
}

/// `orrery dataset policy`.
pub(in crate::cli) fn policy(
    catalog: &Catalog,
    id: &str,
    only: &[NodeId],
    open: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if open {
        products::set_holders(catalog, id, None)?;
    } else if !only.is_empty() {
        products::set_holders(catalog, id, Some(only))?;
    }
    match products::holders(catalog, id)? {
        None => writeln!(
            out,
            "{id}: every member of the federation may fetch its files"
        )?,
        Some(nodes) if nodes.is_empty() => writeln!(
            out,
            "{id}: no node may fetch its files; `orrery dataset policy {id} --open` lets every member"
        )?,
        Some(nodes) => writeln!(
            out,
            "{id}: only these nodes may fetch its files: {}",
            nodes.join(", ")
        )?,
    }
    Ok(())
}
