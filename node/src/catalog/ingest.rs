//! `orrery dataset add`: a directory scanned into a collection.
//!
//! The walk follows no symbolic link, and a directory that holds the node's own data directory
//! (or lies inside it) is refused. Each regular file is read once for
//! its BLAKE3 checksum; FITS files (by their first card, whatever their name) also give their
//! headers, other files need a sidecar `NAME.meta.json` or `NAME.meta.toml`. A file whose size
//! and modification time are unchanged since the last scan is skipped. A file that cannot be
//! read or parsed is reported with its path and skipped; nothing else is lost. Files gone since
//! the last scan leave the catalog.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use super::meta::{ProductMeta, from_fits_header};
use super::{Catalog, CatalogError, check_collection_id};

/// Most HDUs read from one FITS file.
const MAX_HDUS: usize = 256;
/// Largest sidecar file.
const MAX_SIDECAR_BYTES: u64 = 1024 * 1024;
/// Files written per transaction.
const BATCH: usize = 256;

/// What to scan and the collection's own metadata.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// The collection id.
    pub collection: String,
    /// The directory.
    pub root: PathBuf,
    /// Collection title (default: the id, or the stored one).
    pub title: Option<String>,
    /// Collection description.
    pub description: Option<String>,
    /// Defaults every product inherits unless its header or sidecar says otherwise.
    pub defaults: ProductMeta,
    /// Directories that may be neither inside the collection nor hold it: the node's data
    /// directory, so its keys and database can never be served as products.
    pub protected: Vec<PathBuf>,
    /// The collection may be scanned from another directory than before (it moved).
    pub moved: bool,
}

/// Progress of a scan, for a progress bar.
pub trait Progress {
    /// The scan found `files` files of `bytes` bytes.
    fn start(&self, files: u64, bytes: u64);
    /// One file was done, `bytes` long.
    fn file_done(&self, bytes: u64);
    /// A problem worth printing now.
    fn warn(&self, message: &str);
    /// The scan ended.
    fn finish(&self);
}

/// No progress shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: u64, _: u64) {}
    fn file_done(&self, _: u64) {}
    fn warn(&self, _: &str) {}
    fn finish(&self) {}
}

/// What a scan did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    /// Products added.
    pub added: u64,
    /// Products whose file changed and were read again.
    pub updated: u64,
    /// Files unchanged since the last scan.
    pub unchanged: u64,
    /// Products removed because their file is gone or no longer readable.
    pub removed: u64,
    /// Files with the same content as a product already in the collection: (path, the
    /// product it repeats).
    pub duplicates: Vec<(String, String)>,
    /// Files skipped, with the reason.
    pub problems: Vec<(String, String)>,
    /// Bytes read and checksummed.
    pub bytes_read: u64,
    /// FITS headers parsed.
    pub headers: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// The collection's defaults changed since its last scan, so every file was read again.
    pub defaults_changed: bool,
}

struct Candidate {
    /// Path relative to the root, '/'-separated.
    rel: String,
    /// Its sidecar, if the walk saw one.
    sidecar: Option<PathBuf>,
    /// Path to open.
    path: PathBuf,
    size: u64,
    mtime_ns: i64,
}

/// Scans `opts.root` into collection `opts.collection`.
pub fn ingest(
    catalog: &mut Catalog,
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport, CatalogError> {
    let started = Instant::now();
    check_collection_id(&opts.collection)?;
    let root = opts
        .root
        .canonicalize()
        .map_err(|source| CatalogError::Io {
            path: opts.root.display().to_string(),
            source,
        })?;
    if !root.is_dir() {
        return Err(CatalogError::Io {
            path: root.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    for p in &opts.protected {
        let p = p.canonicalize().unwrap_or_else(|_| p.clone());
        if p.starts_with(&root) || root.starts_with(&p) {
            return Err(CatalogError::ProtectedRoot {
                root: root.display().to_string(),
                data: p.display().to_string(),
            });
        }
    }
    let mut report = IngestReport::default();
    // Flags given now win; those not given keep the values of the last scan.
    let stored = stored_collection(catalog, &opts.collection)?;
    let stored_defaults = match &stored {
        Some((stored_root, defaults)) => {
            if Path::new(stored_root) != root && !opts.moved {
                return Err(CatalogError::RootChanged {
                    collection: opts.collection.clone(),
                    stored: stored_root.clone(),
                    given: root.display().to_string(),
                });
            }
            defaults.clone()
        }
        None => ProductMeta::default(),
    };
    let defaults = opts.defaults.clone().or(&stored_defaults);
    let reread = stored.is_some() && defaults != stored_defaults;
    report.defaults_changed = reread;
    // Marked incomplete until the last transaction of the scan clears it: a scan that is
    // interrupted leaves the collection advertised as incomplete, never as whole.
    upsert_collection(catalog, opts, &root, &defaults)?;

    let candidates = walk(&root, &mut report, progress);
    progress.start(
        candidates.len() as u64,
        candidates.iter().map(|c| c.size).sum(),
    );

    // What the catalog holds of this collection, to skip unchanged files without asking.
    let existing: HashMap<String, (i64, i64)> = catalog
        .conn
        .prepare("SELECT path, size, mtime_ns FROM products WHERE collection = ?1")?
        .query_map([&opts.collection], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))
        })?
        .collect::<Result<_, _>>()?;
    let seen: HashSet<String> = candidates.iter().map(|c| c.rel.clone()).collect();

    // Files are read (headers, checksums) on a second thread while this one writes the
    // database: on two cores the two overlap.
    std::thread::scope(|scope| -> Result<(), CatalogError> {
        let (tx_read, rx_read) = std::sync::mpsc::sync_channel::<(usize, FileRead)>(64);
        let candidates = &candidates;
        let existing = &existing;
        scope.spawn(move || {
            for (i, c) in candidates.iter().enumerate() {
                let read = match existing.get(&c.rel) {
                    Some(&(size, mtime))
                        if !reread && size == c.size as i64 && mtime == c.mtime_ns =>
                    {
                        FileRead::Unchanged
                    }
                    _ => read_one(&defaults, c),
                };
                if tx_read.send((i, read)).is_err() {
                    return;
                }
            }
        });
        let mut rx = rx_read.into_iter().peekable();
        while rx.peek().is_some() {
            let tx = catalog
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for (i, read) in rx.by_ref().take(BATCH) {
                let c = &candidates[i];
                let known = existing.contains_key(&c.rel);
                let result = write_one(&tx, &opts.collection, c, read, known, &mut report);
                if let Err(reason) = result {
                    // One line per problem, however the parser formats its message.
                    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
                    // A file that changed and no longer reads leaves the catalog: its old
                    // entry would describe bytes that are not there.
                    if known && let Some(id) = product_id(&tx, &opts.collection, &c.rel)? {
                        delete_product(&tx, id)?;
                        report.removed += 1;
                    }
                    progress.warn(&format!("{}: {reason}", c.rel));
                    report.problems.push((c.rel.clone(), reason));
                }
                progress.file_done(c.size);
            }
            tx.commit()?;
        }
        Ok(())
    })?;

    // Products whose files are gone.
    let tx = catalog
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let stored: Vec<(i64, String)> = tx
        .prepare("SELECT id, path FROM products WHERE collection = ?1")?
        .query_map([&opts.collection], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, path) in stored {
        if !seen.contains(&path) {
            delete_product(&tx, id)?;
            report.removed += 1;
        }
    }
    tx.execute(
        "UPDATE collections SET updated_at = ?2, scan_started_at = NULL WHERE id = ?1",
        params![opts.collection, now()],
    )?;
    super::bump_generation(&tx)?;
    tx.commit()?;
    progress.finish();
    report.elapsed = started.elapsed();
    Ok(report)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn upsert_collection(
    catalog: &mut Catalog,
    opts: &IngestOptions,
    root: &Path,
    d: &ProductMeta,
) -> Result<(), CatalogError> {
    let tags = serde_json::to_string(d.tags.as_deref().unwrap_or_default()).unwrap_or_default();
    let defaults = serde_json::to_string(d).unwrap_or_default();
    catalog.conn.execute(
        "INSERT INTO collections (id, title, description, mission, licence, publisher, band, tags,
                                  root, created_at, updated_at, scan_started_at, defaults)
         VALUES (?1, coalesce(?2, ?1), coalesce(?3, ''), ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET
             title = coalesce(?2, title), description = coalesce(?3, description),
             mission = coalesce(?4, mission), licence = coalesce(?5, licence),
             publisher = coalesce(?6, publisher), band = coalesce(?7, band),
             tags = CASE WHEN ?8 = '[]' THEN tags ELSE ?8 END,
             root = ?9, updated_at = ?10, scan_started_at = ?10, defaults = ?11",
        params![
            opts.collection,
            opts.title,
            opts.description,
            d.mission,
            d.licence,
            d.publisher,
            d.band,
            tags,
            root.to_string_lossy(),
            now(),
            defaults
        ],
    )?;
    Ok(())
}

/// The directory a collection was scanned from and the defaults its products were read with,
/// if it exists.
fn stored_collection(
    catalog: &Catalog,
    id: &str,
) -> Result<Option<(String, ProductMeta)>, CatalogError> {
    let row: Option<(String, Option<String>)> = catalog
        .conn
        .query_row(
            "SELECT root, defaults FROM collections WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.map(|(root, defaults)| {
        let defaults = defaults
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or_default();
        (root, defaults)
    }))
}

fn is_sidecar(name: &str) -> bool {
    name.ends_with(".meta.json") || name.ends_with(".meta.toml")
}

/// Lists the regular files under `root`; symbolic links are reported and not followed.
fn walk(root: &Path, report: &mut IngestReport, progress: &dyn Progress) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut sidecars: HashSet<String> = HashSet::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e
                    .path()
                    .and_then(|p| p.strip_prefix(root).ok())
                    .map_or_else(|| "?".to_owned(), |p| p.display().to_string());
                let reason = format!(
                    "cannot be read: {}",
                    e.io_error()
                        .map_or_else(|| e.to_string(), ToString::to_string)
                );
                progress.warn(&format!("{path}: {reason}"));
                report.problems.push((path, reason));
                continue;
            }
        };
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let Some(rel_str) = rel
            .to_str()
            .map(|s| s.replace(std::path::MAIN_SEPARATOR, "/"))
        else {
            report.problems.push((
                rel.display().to_string(),
                "the file name is not UTF-8".into(),
            ));
            continue;
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if is_sidecar(&rel_str) {
            sidecars.insert(rel_str);
            continue;
        }
        let path = if ft.is_symlink() {
            // Links are never followed: the node serves a product by opening its catalogued
            // path with no link resolved (see `super::confined`), so a link could not be served.
            let reason = match std::fs::canonicalize(entry.path()) {
                Ok(target) if target.starts_with(root) && target.is_file() => {
                    "symbolic link; not followed: the file it leads to is catalogued under its own name".to_owned()
                }
                Ok(_) => "symbolic link to a place outside the collection (or not to a file); not followed".to_owned(),
                Err(e) => format!("broken symbolic link: {e}"),
            };
            report.problems.push((rel_str, reason));
            continue;
        } else if ft.is_file() {
            entry.path().to_path_buf()
        } else {
            report.problems.push((
                rel_str,
                "not a regular file (device, socket or pipe)".into(),
            ));
            continue;
        };
        match std::fs::metadata(&path) {
            Ok(m) => out.push(Candidate {
                sidecar: None,
                rel: rel_str,
                size: m.len(),
                mtime_ns: mtime_ns(&m),
                path,
            }),
            Err(e) => report
                .problems
                .push((rel_str, format!("cannot be read: {e}"))),
        }
    }
    // Sidecars are known from the walk: no file needs a lookup of its own.
    for c in &mut out {
        c.sidecar = ["meta.json", "meta.toml"]
            .iter()
            .map(|ext| format!("{}.{ext}", c.rel))
            .find(|name| sidecars.contains(name))
            .map(|name| root.join(name));
    }
    out
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

fn product_id(
    tx: &Transaction<'_>,
    collection: &str,
    rel: &str,
) -> Result<Option<i64>, rusqlite::Error> {
    tx.query_row(
        "SELECT id FROM products WHERE collection = ?1 AND path = ?2",
        params![collection, rel],
        |r| r.get(0),
    )
    .optional()
}

/// What reading one file gave.
enum FileRead {
    /// Same size and time as stored: not read.
    Unchanged,
    /// Read: its metadata and checksum, and whether a FITS header was parsed.
    Done {
        meta: Box<ProductMeta>,
        hash: [u8; 32],
        fits: bool,
    },
    /// Skipped, with the reason.
    Problem(String),
}

/// Reads one file: its headers or sidecar and its checksum. Touches no database.
fn read_one(defaults: &ProductMeta, c: &Candidate) -> FileRead {
    match read_file(defaults, c) {
        Ok((meta, hash, fits)) => FileRead::Done {
            meta: Box::new(meta),
            hash,
            fits,
        },
        Err(reason) => FileRead::Problem(reason),
    }
}

fn read_file(
    defaults: &ProductMeta,
    c: &Candidate,
) -> Result<(ProductMeta, [u8; 32], bool), String> {
    let mut file = File::open(&c.path).map_err(|e| format!("cannot be read: {e}"))?;
    let handle_meta = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?;
    if !handle_meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut first = [0u8; 30];
    let n = read_up_to(&mut file, &mut first).map_err(|e| format!("cannot be read: {e}"))?;
    let is_fits = n >= 30 && first.starts_with(b"SIMPLE  =") && first[29] == b'T';

    let sidecar = match &c.sidecar {
        Some(path) => Some(read_sidecar(path)?),
        None => None,
    };
    let mut meta = if is_fits {
        file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        read_fits(&file, handle_meta.len()).map_err(|e| format!("corrupt FITS file: {e}"))?
    } else if sidecar.is_some() {
        ProductMeta::default()
    } else {
        return Err(format!(
            "not a FITS file and no sidecar; describe it in {}.meta.json or .meta.toml",
            c.rel.rsplit('/').next().unwrap_or(&c.rel)
        ));
    };
    if let Some(s) = sidecar {
        meta = s.or(&meta);
    }
    let mut meta = meta.or(defaults);
    // FITS has no mission keyword: without a sidecar's or a flag's, the telescope stands for it.
    if meta.mission.is_none() {
        meta.mission = meta.facility.clone();
    }
    let meta = meta.finish().map_err(|e| format!("bad metadata: {e}"))?;

    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(&mut file)
        .map_err(|e| format!("cannot be read: {e}"))?;
    Ok((meta, *hasher.finalize().as_bytes(), is_fits))
}

/// Stores what reading one file gave; an `Err` is the reason it was skipped.
fn write_one(
    tx: &Transaction<'_>,
    collection: &str,
    c: &Candidate,
    read: FileRead,
    known: bool,
    report: &mut IngestReport,
) -> Result<(), String> {
    let (meta, hash, fits) = match read {
        FileRead::Unchanged => {
            report.unchanged += 1;
            return Ok(());
        }
        FileRead::Problem(reason) => return Err(reason),
        FileRead::Done { meta, hash, fits } => (meta, hash, fits),
    };
    if fits {
        report.headers += 1;
    }
    report.bytes_read += c.size;
    // The same bytes already in this collection under another path.
    let twin: Option<String> = tx
        .prepare_cached(
            "SELECT path FROM products WHERE blake3 = ?1 AND collection = ?2 AND path != ?3 LIMIT 1",
        )
        .and_then(|mut st| {
            st.query_row(params![hash.as_slice(), collection, c.rel], |r| r.get(0))
                .optional()
        })
        .map_err(|e| e.to_string())?;
    if let Some(twin) = twin {
        report
            .duplicates
            .push((c.rel.clone(), format!("{collection}/{twin}")));
        return Ok(());
    }
    store(tx, collection, c, &hash, &meta, known).map_err(|e| format!("database error: {e}"))?;
    if known {
        report.updated += 1;
    } else {
        report.added += 1;
    }
    Ok(())
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn read_sidecar(side: &Path) -> Result<ProductMeta, String> {
    let meta =
        std::fs::symlink_metadata(side).map_err(|e| format!("sidecar cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err(format!("sidecar {} is not a regular file", side.display()));
    }
    if meta.len() > MAX_SIDECAR_BYTES {
        return Err(format!("sidecar is larger than {MAX_SIDECAR_BYTES} bytes"));
    }
    let text = std::fs::read_to_string(side).map_err(|e| format!("sidecar cannot be read: {e}"))?;
    ProductMeta::from_sidecar(side, &text).map_err(|e| {
        format!(
            "sidecar {}: {e}",
            side.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        )
    })
}

/// Reads every header of a FITS file of `len` bytes and checks that the file holds all the
/// data they announce.
pub fn read_fits<R: Read + Seek + std::fmt::Debug>(
    file: R,
    len: u64,
) -> Result<ProductMeta, String> {
    // The FITS library is not written for hostile input; a panic in it is a corrupt file.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        read_fits_headers(file)
    }));
    let (cards, extnames, naxis, end) = match parsed {
        Ok(r) => r?,
        Err(_) => return Err("the header could not be parsed".into()),
    };
    if end > len {
        return Err(format!(
            "truncated: the headers announce {end} bytes, the file has {len}"
        ));
    }
    Ok(from_fits_header(&cards, &extnames, &naxis))
}

type Headers = (
    Vec<(String, fitsrs::card::Value)>,
    Vec<String>,
    Vec<u64>,
    u64,
);

fn read_fits_headers<R: Read + Seek + std::fmt::Debug>(file: R) -> Result<Headers, String> {
    use fitsrs::HDU;
    use fitsrs::card::Card;
    let fits = fitsrs::Fits::from_reader(BufReader::new(file));
    let mut cards = Vec::new();
    let mut extnames = Vec::new();
    let mut naxis: Vec<u64> = Vec::new();
    let mut end = 0u64;
    let mut count = 0;
    for hdu in fits {
        let hdu = hdu.map_err(|e| e.to_string())?;
        count += 1;
        if count > MAX_HDUS {
            return Err(format!("more than {MAX_HDUS} HDUs"));
        }
        let data_end = hdu
            .get_data_unit_byte_offset()
            .saturating_add(hdu.get_data_unit_byte_size());
        end = end.max(data_end);
        let push_cards = |cards: &mut Vec<_>, it: &mut dyn Iterator<Item = &Card>| {
            for card in it {
                if let Card::Value { name, value } | Card::Hierarch { name, value } = card {
                    cards.push((name.clone(), value.clone()));
                }
            }
        };
        match &hdu {
            HDU::Primary(h) => {
                naxis = h.get_header().get_xtension().get_naxis().to_vec();
                push_cards(&mut cards, &mut h.get_header().cards());
            }
            HDU::XImage(h) => {
                if let Some(fitsrs::card::Value::String { value, .. }) =
                    h.get_header().get("EXTNAME")
                {
                    extnames.push(value.trim().to_owned());
                }
                if naxis.iter().all(|n| *n <= 1) {
                    naxis = h.get_header().get_xtension().get_naxis().to_vec();
                    // The primary header often holds only the pointing; the image's own
                    // header holds its WCS.
                    push_cards(&mut cards, &mut h.get_header().cards());
                }
            }
            HDU::XBinaryTable(h) => {
                if let Some(fitsrs::card::Value::String { value, .. }) =
                    h.get_header().get("EXTNAME")
                {
                    extnames.push(value.trim().to_owned());
                }
            }
            HDU::XASCIITable(h) => {
                if let Some(fitsrs::card::Value::String { value, .. }) =
                    h.get_header().get("EXTNAME")
                {
                    extnames.push(value.trim().to_owned());
                }
            }
        }
    }
    if count == 0 {
        return Err("no header".into());
    }
    Ok((cards, extnames, naxis, end))
}

fn store(
    tx: &Transaction<'_>,
    collection: &str,
    c: &Candidate,
    hash: &[u8; 32],
    m: &ProductMeta,
    known: bool,
) -> Result<(), rusqlite::Error> {
    let file_name = c.rel.rsplit('/').next().unwrap_or(&c.rel);
    let stem = file_name.split('.').next().unwrap_or(file_name);
    let title = m.title.clone().unwrap_or_else(|| {
        let mut parts: Vec<&str> = Vec::new();
        for p in [&m.target, &m.instrument, &m.mission].into_iter().flatten() {
            parts.push(p);
        }
        if parts.is_empty() {
            file_name.to_owned()
        } else {
            format!("{} ({file_name})", parts.join(" · "))
        }
    });
    let vector =
        m.ra.zip(m.dec)
            .map(|(ra, dec)| orrery_catalog::sky::UnitVector::from_radec(ra, dec));
    let axis = |i: usize| {
        m.naxis
            .as_ref()
            .and_then(|n| n.get(i))
            .and_then(|v| i64::try_from(*v).ok())
    };
    let format = m
        .format
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    tx.prepare_cached(
        "INSERT INTO products (collection, path, size, mtime_ns, blake3, format, title, description,
            obs_id, mission, facility, instrument, product_type, calib_level, band, licence,
            publisher, target, ra, dec, cx, cy, cz, fov, t_min, t_max, exptime, em_min, em_max,
            naxis1, naxis2, naxis3, bunit)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)
         ON CONFLICT (collection, path) DO UPDATE SET
            size = excluded.size, mtime_ns = excluded.mtime_ns, blake3 = excluded.blake3,
            format = excluded.format, title = excluded.title, description = excluded.description,
            obs_id = excluded.obs_id, mission = excluded.mission, facility = excluded.facility,
            instrument = excluded.instrument, product_type = excluded.product_type,
            calib_level = excluded.calib_level, band = excluded.band, licence = excluded.licence,
            publisher = excluded.publisher, target = excluded.target, ra = excluded.ra,
            dec = excluded.dec, cx = excluded.cx, cy = excluded.cy, cz = excluded.cz,
            fov = excluded.fov, t_min = excluded.t_min, t_max = excluded.t_max,
            exptime = excluded.exptime, em_min = excluded.em_min, em_max = excluded.em_max,
            naxis1 = excluded.naxis1, naxis2 = excluded.naxis2, naxis3 = excluded.naxis3,
            bunit = excluded.bunit
         RETURNING id",
    )?
    .query_row(
        params![
            collection,
            c.rel,
            c.size as i64,
            c.mtime_ns,
            hash.as_slice(),
            format,
            title,
            m.description.clone().unwrap_or_default(),
            m.obs_id.clone().unwrap_or_else(|| stem.to_owned()),
            m.mission.clone().or_else(|| m.facility.clone()),
            m.facility,
            m.instrument,
            m.product_type,
            m.calib_level,
            m.band,
            m.licence,
            m.publisher,
            m.target,
            m.ra,
            m.dec,
            vector.map(|v| v.x),
            vector.map(|v| v.y),
            vector.map(|v| v.z),
            m.fov,
            m.t_min,
            m.t_max,
            m.exptime,
            m.em_min,
            m.em_max,
            axis(0),
            axis(1),
            axis(2),
            m.bunit,
        ],
        |r| r.get::<_, i64>(0),
    )
    .and_then(|id| index_product(tx, id, &title, m, vector, known))
}

/// Writes a product's text, sky and tag index entries, replacing old ones.
pub(crate) fn index_product(
    tx: &Transaction<'_>,
    id: i64,
    title: &str,
    m: &ProductMeta,
    vector: Option<orrery_catalog::sky::UnitVector>,
    known: bool,
) -> Result<(), rusqlite::Error> {
    if known {
        tx.prepare_cached("DELETE FROM product_text WHERE rowid = ?1")?
            .execute([id])?;
        tx.prepare_cached("DELETE FROM sky_index WHERE id = ?1")?
            .execute([id])?;
        tx.prepare_cached("DELETE FROM product_tags WHERE product = ?1")?
            .execute([id])?;
    }
    let mut header = m.header_text.clone();
    for extra in [
        &m.mission,
        &m.facility,
        &m.instrument,
        &m.product_type,
        &m.band,
    ]
    .into_iter()
    .flatten()
    {
        header.push(' ');
        header.push_str(extra);
    }
    tx.prepare_cached(
        "INSERT INTO product_text (rowid, title, description, target, header, facets)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id,
        title,
        m.description.clone().unwrap_or_default(),
        m.target.clone().unwrap_or_default(),
        header,
        super::search::facet_tokens(m),
    ])?;
    if let Some(v) = vector {
        tx.prepare_cached(
            "INSERT INTO sky_index (id, x0, x1, y0, y1, z0, z1) VALUES (?1, ?2, ?2, ?3, ?3, ?4, ?4)",
        )?
        .execute(params![id, v.x, v.y, v.z])?;
    }
    for tag in m.tags.iter().flatten() {
        let tag = tag.trim();
        if !tag.is_empty() {
            tx.prepare_cached("INSERT OR IGNORE INTO product_tags (tag, product) VALUES (?1, ?2)")?
                .execute(params![tag, id])?;
        }
    }
    Ok(())
}

/// Removes a product and its index entries.
pub(crate) fn delete_product(tx: &Transaction<'_>, id: i64) -> Result<(), rusqlite::Error> {
    tx.execute("DELETE FROM product_text WHERE rowid = ?1", [id])?;
    tx.execute("DELETE FROM sky_index WHERE id = ?1", [id])?;
    tx.execute("DELETE FROM product_tags WHERE product = ?1", [id])?;
    tx.execute("DELETE FROM products WHERE id = ?1", [id])?;
    Ok(())
}

/// A product described without a file to read: catalogs exported from elsewhere, and
/// benchmarks.
#[derive(Debug, Clone)]
pub struct Described {
    /// Path relative to the collection's root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the bytes.
    pub blake3: [u8; 32],
    /// What is known of it.
    pub meta: ProductMeta,
}

/// Adds described products to a collection (created if needed, rooted at `root`), committing
/// every 10 000. Returns how many were stored.
pub fn add_described(
    catalog: &mut Catalog,
    collection: &str,
    root: &Path,
    products: impl IntoIterator<Item = Described>,
) -> Result<u64, CatalogError> {
    check_collection_id(collection)?;
    let opts = IngestOptions {
        collection: collection.to_owned(),
        root: root.to_path_buf(),
        ..IngestOptions::default()
    };
    upsert_collection(catalog, &opts, root, &ProductMeta::default())?;
    let mut n = 0u64;
    let mut products = products.into_iter().peekable();
    while products.peek().is_some() {
        let tx = catalog
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for p in products.by_ref().take(10_000) {
            let meta = p
                .meta
                .finish()
                .map_err(|e| CatalogError::NoProduct(format!("{}: {e}", p.path)))?;
            let c = Candidate {
                sidecar: None,
                rel: p.path,
                path: PathBuf::new(),
                size: p.size,
                mtime_ns: 0,
            };
            let known = product_id(&tx, collection, &c.rel)?.is_some();
            store(&tx, collection, &c, &p.blake3, &meta, known)?;
            n += 1;
        }
        super::bump_generation(&tx)?;
        tx.commit()?;
    }
    catalog.conn.execute(
        "UPDATE collections SET scan_started_at = NULL WHERE id = ?1",
        [collection],
    )?;
    Ok(n)
}
