//! `orrery dataset ...` and `orrery search`: the catalog from the command line.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use orrery_catalog::{Cone, Facet, Page, Query, Sort, TimeRange};

pub(super) mod fetch;

use super::Ctx;
use super::render::table;
use crate::catalog::ingest::{IngestOptions, IngestReport, Progress};
use crate::catalog::meta::{ProductMeta, iso_to_mjd, mjd_to_iso};
use crate::catalog::{Catalog, search};

/// Dataset commands.
#[derive(Debug, Subcommand)]
pub enum DatasetCmd {
    /// Scan a directory into a collection: FITS headers, sidecar metadata, BLAKE3 checksums.
    /// Running it again reads only files that changed.
    Add(Box<AddArgs>),
    /// List the collections on this node.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a collection, or one product given as COLLECTION/PATH.
    Show {
        /// A collection id, or a product id.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove a collection from the catalog. Its files are left alone.
    Remove {
        /// The collection id.
        id: String,
    },
    /// Fetch a product found in a federated search to this node over the data plane: resumed
    /// after an interruption, verified against the holder's catalogued BLAKE3, and recorded.
    Fetch(fetch::FetchArgs),
    /// The products fetched to this node from other nodes.
    Fetched {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Which member nodes may fetch a collection's files over the data plane (every member
    /// unless restricted). Without --only or --open, shows the policy.
    Policy {
        /// The collection id.
        id: String,
        /// Only these nodes (ids, comma-separated) may fetch its files.
        #[arg(long, value_delimiter = ',', conflicts_with = "open")]
        only: Vec<orrery_protocol::NodeId>,
        /// Every member may fetch its files.
        #[arg(long)]
        open: bool,
    },
}

/// Arguments of `orrery dataset add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The directory to scan (recursively; symbolic links out of it are not followed).
    pub dir: PathBuf,
    /// The collection id, e.g. `xmm-crab` (letters, digits, '-', '_', '.').
    #[arg(long)]
    pub collection: String,
    /// The collection's title.
    #[arg(long)]
    pub title: Option<String>,
    /// The collection's description.
    #[arg(long)]
    pub description: Option<String>,
    /// Mission or survey of the products (a sidecar's `mission` wins). Without it, a FITS
    /// product's mission is its TELESCOP. Flags given once are kept by later scans; a changed
    /// flag makes the next scan read every file again.
    #[arg(long)]
    pub mission: Option<String>,
    /// Licence, e.g. CC-BY-4.0.
    #[arg(long)]
    pub licence: Option<String>,
    /// Publisher, e.g. "ESA/ESAC".
    #[arg(long)]
    pub publisher: Option<String>,
    /// Spectral band: gamma-ray, x-ray, euv, uv, optical, infrared, millimeter or radio.
    #[arg(long)]
    pub band: Option<String>,
    /// ObsCore calibration level (0-4) of the products.
    #[arg(long)]
    pub calib_level: Option<i64>,
    /// Tags, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// The collection's directory moved: scan DIR into the collection scanned from elsewhere
    /// until now (without it, a collection id used for another directory is refused).
    #[arg(long)]
    pub moved: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How to order hits.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SortArg {
    /// Best text match first.
    Relevance,
    /// Earliest observation first.
    Time,
    /// Latest observation first.
    Latest,
    /// By title.
    Title,
    /// By product id.
    Id,
}

/// Arguments of `orrery search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to find in titles, descriptions, targets and header values.
    pub text: Vec<String>,
    /// Only this mission (repeatable).
    #[arg(long)]
    pub mission: Vec<String>,
    /// Only this instrument (repeatable).
    #[arg(long)]
    pub instrument: Vec<String>,
    /// Only this product type: image, cube, spectrum, timeseries, event, … (repeatable).
    #[arg(long = "type")]
    pub product_type: Vec<String>,
    /// Only this band (repeatable).
    #[arg(long)]
    pub band: Vec<String>,
    /// Only this licence (repeatable).
    #[arg(long)]
    pub licence: Vec<String>,
    /// Only this publisher (repeatable).
    #[arg(long)]
    pub publisher: Vec<String>,
    /// Only products with this tag (repeatable; all must match).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Only this collection (repeatable).
    #[arg(long)]
    pub collection: Vec<String>,
    /// Only products held by this node (name or id; repeatable).
    #[arg(long)]
    pub node: Vec<String>,
    /// A cone on the sky: RA,DEC,RADIUS in degrees (ICRS), e.g. 83.63,22.01,0.5.
    #[arg(long, value_name = "RA,DEC,RADIUS", allow_hyphen_values = true)]
    pub cone: Option<String>,
    /// Observed at or after this date (ISO 8601, e.g. 2021-03-01) or MJD.
    #[arg(long)]
    pub since: Option<String>,
    /// Observed at or before this date (ISO 8601) or MJD.
    #[arg(long)]
    pub until: Option<String>,
    /// Order of hits.
    #[arg(long, value_enum, default_value = "relevance")]
    pub sort: SortArg,
    /// Hits per page (1-1000).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Hits to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
    /// Count facet values over every match.
    #[arg(long)]
    pub facets: bool,
    /// Search this node only, not the federation.
    #[arg(long)]
    pub local: bool,
    /// How long to wait for other nodes, e.g. 2s.
    #[arg(long, default_value = "3s")]
    pub timeout: humantime::Duration,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn time_arg(s: &str) -> Result<f64> {
    if let Ok(mjd) = s.parse::<f64>()
        && mjd.is_finite()
    {
        return Ok(mjd);
    }
    iso_to_mjd(s)
        .with_context(|| format!("`{s}` is neither an ISO 8601 date (2021-03-01) nor an MJD"))
}

impl SearchArgs {
    /// The query these arguments ask.
    pub fn query(&self) -> Result<Query> {
        let mut q = Query {
            text: (!self.text.is_empty()).then(|| self.text.join(" ")),
            tags: self.tag.clone(),
            collections: self.collection.clone(),
            sort: match self.sort {
                SortArg::Relevance => Sort::Relevance,
                SortArg::Time => Sort::Time,
                SortArg::Latest => Sort::TimeDesc,
                SortArg::Title => Sort::Title,
                SortArg::Id => Sort::Id,
            },
            page: Page {
                offset: self.offset,
                limit: self.limit,
            },
            facets: self.facets,
            ..Query::default()
        };
        for (facet, values) in [
            (Facet::Mission, &self.mission),
            (Facet::Instrument, &self.instrument),
            (Facet::ProductType, &self.product_type),
            (Facet::Band, &self.band),
            (Facet::Licence, &self.licence),
            (Facet::Publisher, &self.publisher),
            (Facet::Node, &self.node),
        ] {
            if !values.is_empty() {
                q.filters.insert(facet, values.clone());
            }
        }
        if let Some(cone) = &self.cone {
            let parts: Vec<f64> = cone
                .split(',')
                .map(|p| p.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .ok()
                .filter(|p: &Vec<f64>| p.len() == 3)
                .with_context(|| {
                    format!("--cone `{cone}`: give RA,DEC,RADIUS in degrees, e.g. 83.63,22.01,0.5")
                })?;
            q.cone = Some(Cone {
                ra: parts[0],
                dec: parts[1],
                radius: parts[2],
            });
        }
        if self.since.is_some() || self.until.is_some() {
            q.time = Some(TimeRange {
                start: self.since.as_deref().map(time_arg).transpose()?,
                end: self.until.as_deref().map(time_arg).transpose()?,
            });
        }
        q.validate()?;
        Ok(q)
    }
}

/// The progress bar of a scan: bytes on the bar, files in the message.
struct Bar {
    bar: ProgressBar,
    done: AtomicU64,
    files: AtomicU64,
}

impl Progress for Bar {
    fn start(&self, files: u64, bytes: u64) {
        self.files.store(files, Ordering::Relaxed);
        self.bar.set_length(bytes);
        self.bar.set_message(format!("0/{files} files"));
    }
    fn file_done(&self, bytes: u64) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        self.bar.inc(bytes);
        self.bar.set_message(format!(
            "{done}/{} files",
            self.files.load(Ordering::Relaxed)
        ));
    }
    fn warn(&self, message: &str) {
        self.bar.suspend(|| eprintln!("warning: {message}"));
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

pub(super) fn run(ctx: &mut Ctx, cmd: DatasetCmd, out: &mut dyn Write) -> Result<()> {
    let mut catalog = Catalog::open(&ctx.home.database())?;
    match cmd {
        DatasetCmd::Fetch(args) => fetch::run(ctx, args, out),
        DatasetCmd::Fetched { json } => fetch::list(&catalog, json, out),
        DatasetCmd::Policy { id, only, open } => fetch::policy(&catalog, &id, &only, open, out),
        DatasetCmd::Add(args) => add(ctx, &mut catalog, *args, out),
        DatasetCmd::List { json } => {
            let list = catalog.collections()?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
                return Ok(());
            }
            if list.is_empty() {
                writeln!(
                    out,
                    "no collections yet; add one with `orrery dataset add DIR --collection ID`"
                )?;
                return Ok(());
            }
            let incomplete: Vec<String> = list
                .iter()
                .filter(|c| !c.complete)
                .map(|c| c.id.clone())
                .collect();
            let rows = list
                .into_iter()
                .map(|c| {
                    vec![
                        if c.complete {
                            c.id
                        } else {
                            format!("{} (incomplete)", c.id)
                        },
                        c.title,
                        c.mission.unwrap_or_default(),
                        c.products.to_string(),
                        human_bytes(c.bytes),
                        c.licence.unwrap_or_default(),
                    ]
                })
                .collect();
            writeln!(
                out,
                "{}",
                table(
                    &["id", "title", "mission", "products", "size", "licence"],
                    rows
                )
            )?;
            for id in incomplete {
                writeln!(out, "{}", incomplete_note(&id))?;
            }
            Ok(())
        }
        DatasetCmd::Show { id, json } => {
            if id.contains('/') {
                let p = catalog.product(&id)?;
                if json {
                    writeln!(out, "{}", serde_json::to_string_pretty(&p)?)?;
                } else {
                    writeln!(out, "{}", p.id)?;
                    for (k, v) in &p.obscore {
                        writeln!(
                            out,
                            "  {k:<18} {}",
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                        )?;
                    }
                }
                return Ok(());
            }
            let c = catalog.collection(&id)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&c)?)?;
                return Ok(());
            }
            writeln!(out, "{} — {}", c.id, c.title)?;
            if !c.description.is_empty() {
                writeln!(out, "{}", c.description)?;
            }
            for (k, v) in [
                ("mission", c.mission.clone()),
                ("licence", c.licence.clone()),
                ("publisher", c.publisher.clone()),
                ("band", c.band.clone()),
                ("tags", (!c.tags.is_empty()).then(|| c.tags.join(", "))),
                ("root", Some(c.root.clone())),
                (
                    "products",
                    Some(format!("{} ({})", c.products, human_bytes(c.bytes))),
                ),
                ("scanned", Some(super::render::time(c.updated_at))),
                ("state", (!c.complete).then(|| incomplete_note(&c.id))),
            ] {
                if let Some(v) = v {
                    writeln!(out, "  {k:<10} {v}")?;
                }
            }
            let q = Query {
                collections: vec![c.id.clone()],
                sort: Sort::Id,
                page: Page {
                    offset: 0,
                    limit: 10,
                },
                ..Query::default()
            };
            let r = search::search(&catalog.conn, &q)?;
            print_hits(&r.hits, false, out)?;
            if r.total > 10 {
                writeln!(
                    out,
                    "… and {} more: `orrery search --collection {}`",
                    r.total - 10,
                    c.id
                )?;
            }
            Ok(())
        }
        DatasetCmd::Remove { id } => {
            let n = catalog.remove_collection(&id)?;
            writeln!(
                out,
                "removed collection {id} ({n} products) from the catalog; its files are untouched"
            )?;
            Ok(())
        }
    }
}

/// What a user reads about a collection whose last scan did not finish.
fn incomplete_note(id: &str) -> String {
    format!(
        "{id}: its last scan did not finish (it is running, or was interrupted), so it holds only part of its directory and is advertised as incomplete; run `orrery dataset add` for it again"
    )
}

fn add(ctx: &Ctx, catalog: &mut Catalog, args: AddArgs, out: &mut dyn Write) -> Result<()> {
    if let Some(band) = &args.band
        && !crate::catalog::meta::band_names().any(|b| b.eq_ignore_ascii_case(band))
    {
        bail!(
            "--band `{band}` is not one of: {}",
            crate::catalog::meta::band_names()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let opts = IngestOptions {
        collection: args.collection.clone(),
        root: args.dir.clone(),
        title: args.title,
        description: args.description,
        defaults: ProductMeta {
            mission: args.mission,
            licence: args.licence,
            publisher: args.publisher,
            band: args.band,
            calib_level: args.calib_level,
            tags: (!args.tags.is_empty()).then_some(args.tags),
            ..ProductMeta::default()
        },
        protected: vec![ctx.home.root().to_path_buf()],
        moved: args.moved,
    };
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ({eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let bar = Bar {
        bar,
        done: AtomicU64::new(0),
        files: AtomicU64::new(0),
    };
    let report = crate::catalog::ingest::ingest(catalog, &opts, &bar)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_report(&args.collection, &report, out)?;
    }
    Ok(())
}

fn print_report(collection: &str, r: &IngestReport, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "collection {collection}: {} added, {} updated, {} unchanged, {} removed; {} read in {:.1?}",
        r.added,
        r.updated,
        r.unchanged,
        r.removed,
        human_bytes(r.bytes_read),
        r.elapsed
    )?;
    if r.defaults_changed {
        writeln!(
            out,
            "  the collection's flags changed since its last scan: every file was read again"
        )?;
    }
    for (path, of) in &r.duplicates {
        writeln!(out, "  duplicate  {path}: same bytes as {of}; skipped")?;
    }
    for (path, why) in &r.problems {
        writeln!(out, "  skipped    {path}: {why}")?;
    }
    Ok(())
}

pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub(super) fn print_hits(
    hits: &[orrery_catalog::Hit],
    with_node: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let rows = hits
        .iter()
        .map(|h| {
            let mut row = Vec::new();
            if with_node {
                row.push(
                    h.node_name
                        .clone()
                        .or_else(|| h.node.clone().map(|n| n.chars().take(12).collect()))
                        .unwrap_or_else(|| "this node".into()),
                );
            }
            row.extend([
                h.id.clone(),
                h.title.clone(),
                h.mission.clone().unwrap_or_default(),
                h.instrument.clone().unwrap_or_default(),
                h.product_type.clone().unwrap_or_default(),
                h.ra.zip(h.dec)
                    .map(|(r, d)| format!("{r:.4} {d:+.4}"))
                    .unwrap_or_default(),
                h.t_min
                    .map(|t| mjd_to_iso(t)[..10].to_owned())
                    .unwrap_or_default(),
                human_bytes(h.size),
            ]);
            row
        })
        .collect();
    let mut header = Vec::new();
    if with_node {
        header.push("node");
    }
    header.extend([
        "product",
        "title",
        "mission",
        "instrument",
        "type",
        "ra dec",
        "date",
        "size",
    ]);
    writeln!(out, "{}", table(&header, rows))?;
    Ok(())
}

/// `orrery search`: the federation through the running node, or this node alone.
pub(super) fn search_cmd(ctx: &Ctx, args: SearchArgs, out: &mut dyn Write) -> Result<()> {
    let q = args.query()?;
    let mut note = None;
    if !args.local {
        match crate::web_client::search(&ctx.home, &q, args.timeout.into()) {
            Ok(results) => return print_federated(&q, &results, args.json, out),
            Err(crate::web_client::ClientError::NotRunning(addr)) => {
                note = Some(format!(
                    "the node is not running (nothing answers on {addr}): searched this node only; start it with `orrery run` to search the federation"
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let catalog = Catalog::open_read_only(&ctx.home.database())?;
    let r = search::search(&catalog.conn, &q)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
        return Ok(());
    }
    if let Some(note) = note {
        writeln!(out, "note: {note}")?;
    }
    print_results(&q, r.total, &r.hits, &r.facets, false, out)
}

fn print_results(
    q: &Query,
    total: u64,
    hits: &[orrery_catalog::Hit],
    facets: &std::collections::BTreeMap<Facet, Vec<orrery_catalog::FacetCount>>,
    with_node: bool,
    out: &mut dyn Write,
) -> Result<()> {
    writeln!(
        out,
        "{total} products match; showing {}-{}",
        if hits.is_empty() {
            0
        } else {
            q.page.offset + 1
        },
        q.page.offset as usize + hits.len()
    )?;
    if !hits.is_empty() {
        print_hits(hits, with_node, out)?;
    }
    for (facet, values) in facets {
        if values.is_empty() {
            continue;
        }
        let list: Vec<String> = values
            .iter()
            .map(|v| format!("{} ({})", v.value, v.count))
            .collect();
        writeln!(out, "{:<12} {}", facet.name(), list.join(", "))?;
    }
    Ok(())
}

fn print_federated(
    q: &Query,
    r: &orrery_catalog::FederatedResults,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(r)?)?;
        return Ok(());
    }
    print_results(
        q,
        r.results.total,
        &r.results.hits,
        &r.results.facets,
        true,
        out,
    )?;
    writeln!(
        out,
        "answered: {}",
        if r.answered.is_empty() {
            "none".to_owned()
        } else {
            r.answered.join(", ")
        }
    )?;
    for (node, why) in &r.missing {
        writeln!(out, "did not answer: {node} ({why})")?;
    }
    Ok(())
}
