//! Catalog benchmarks, written to the "Catalog" section of `BENCHMARKS.md`:
//!
//! 1. ingest of real FITS files (written by astropy through the project's `.venv`) into a fresh
//!    catalog, against raw BLAKE3 over the same files, and the re-scan that finds nothing changed;
//! 2. search latency over 1,000,000 described products (faceted text, cone, cone + time range),
//!    against the same searches as unindexed scans;
//! 3. federated search over 4 running nodes on loopback, against the same query on one node.
//!
//! Run with `cargo bench -p orrery-node --bench catalog`. `ORRERY_BENCH_ONLY=ingest`, `search`
//! or `federated` runs one part and leaves `BENCHMARKS.md` alone. The sample FITS files and the
//! 1M-product database are kept under `target/` and rebuilt only when their recipe changes.

#[path = "../../crdt/benches/support/sections.rs"]
mod sections;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use orrery_catalog::{Cone, Facet, Query, TimeRange};
use orrery_node::catalog::Catalog;
use orrery_node::catalog::ingest::{Described, IngestOptions, Silent, add_described, ingest};
use orrery_node::catalog::meta::ProductMeta;
use orrery_node::config::Config;
use orrery_node::home::Home;
use orrery_node::service::NodeHandle;
use tokio::sync::broadcast::error::RecvError;

// ---------------------------------------------------------------------------------------------
// Measuring and printing

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// p50, p95 and max of some latencies.
#[derive(Debug, Clone, Copy, Default)]
struct Latency {
    n: usize,
    p50: Duration,
    p95: Duration,
    max: Duration,
}

impl Latency {
    fn of(mut d: Vec<Duration>) -> Self {
        d.sort();
        Self {
            n: d.len(),
            p50: percentile(&d, 0.5),
            p95: percentile(&d, 0.95),
            max: d.last().copied().unwrap_or_default(),
        }
    }
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    percentile(&d, 0.5)
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => workspace().join("target"),
    }
}

/// The machine, as the other sections describe it.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(|| "unknown CPU".to_owned(), |m| m.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "{cores} cores ({model}), {:.0} GiB RAM, SQLite {} (bundled)",
        mem_kib as f64 / 1024.0 / 1024.0,
        rusqlite::version()
    )
}

// ---------------------------------------------------------------------------------------------
// 1. Ingest of FITS files

const FITS_COLLECTIONS: [&str; 4] = ["xmm-epic", "herschel-pacs", "caha-spectra", "alma-cubes"];
const FITS_PER_TARGET: u32 = 15;
/// Pixels per image side: 400 KiB images and 1.6 MiB cubes, so the MB/s figure means something.
const FITS_IMAGE_SIZE: u32 = 320;

/// Writes the sample FITS files under `target/` with astropy (once per recipe); returns their
/// directory, one sub-directory per collection.
fn sample_fits() -> PathBuf {
    let out = target_dir().join("bench-catalog-fits");
    let args: Vec<String> = vec![
        "--collections".into(),
        FITS_COLLECTIONS.join(","),
        "--per-target".into(),
        FITS_PER_TARGET.to_string(),
        "--image-size".into(),
        FITS_IMAGE_SIZE.to_string(),
    ];
    let script = workspace().join("scripts/make-sample-fits.py");
    let recipe = format!(
        "{}\n{}",
        args.join(" "),
        blake3::hash(&std::fs::read(&script).expect("read make-sample-fits.py")).to_hex()
    );
    let stamp = out.join(".recipe");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == recipe) {
        return out;
    }
    let _ = std::fs::remove_dir_all(&out);
    let env = Command::new(workspace().join("scripts/python-env"))
        .status()
        .expect("run scripts/python-env");
    assert!(env.success(), "scripts/python-env failed");
    eprintln!(
        "writing sample FITS files with astropy into {}…",
        out.display()
    );
    let made = Command::new(workspace().join(".venv/bin/python"))
        .arg(&script)
        .arg(&out)
        .args(&args)
        .status()
        .expect("run make-sample-fits.py");
    assert!(made.success(), "make-sample-fits.py failed");
    std::fs::write(&stamp, recipe).expect("write the recipe stamp");
    out
}

fn fits_files(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for c in FITS_COLLECTIONS {
        for e in std::fs::read_dir(root.join(c)).expect("read collection dir") {
            let e = e.expect("dir entry");
            let len = e.metadata().expect("metadata").len();
            out.push((e.path(), len));
        }
    }
    out.sort();
    out
}

/// Raw BLAKE3 of every file, one thread, as `b3sum --no-mmap` does.
fn hash_files(files: &[(PathBuf, u64)]) -> Duration {
    let t0 = Instant::now();
    for (path, _) in files {
        let mut hasher = blake3::Hasher::new();
        hasher
            .update_reader(File::open(path).expect("open"))
            .expect("hash");
        std::hint::black_box(hasher.finalize());
    }
    t0.elapsed()
}

/// Ingests every sample collection into a fresh catalog, then again (nothing changed).
fn ingest_run(root: &Path, files: usize) -> (Duration, Duration, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut catalog = Catalog::open(&dir.path().join("node.sqlite")).expect("catalog");
    let opts = |c: &str| IngestOptions {
        collection: c.to_owned(),
        root: root.join(c),
        ..IngestOptions::default()
    };
    let t0 = Instant::now();
    let (mut added, mut headers) = (0, 0);
    for c in FITS_COLLECTIONS {
        let r = ingest(&mut catalog, &opts(c), &Silent).expect("ingest");
        assert!(r.problems.is_empty(), "ingest problems: {:?}", r.problems);
        added += r.added;
        headers += r.headers;
    }
    let fresh = t0.elapsed();
    assert_eq!(added as usize, files, "every file becomes a product");
    let t1 = Instant::now();
    let mut unchanged = 0;
    for c in FITS_COLLECTIONS {
        let r = ingest(&mut catalog, &opts(c), &Silent).expect("re-ingest");
        assert_eq!(r.added + r.updated + r.removed, 0, "nothing changed");
        unchanged += r.unchanged;
    }
    let again = t1.elapsed();
    assert_eq!(unchanged as usize, files);
    (fresh, again, headers)
}

fn bench_ingest() -> String {
    let root = sample_fits();
    let files = fits_files(&root);
    let bytes: u64 = files.iter().map(|(_, n)| n).sum();
    // Page cache warm: every file read once.
    for (path, _) in &files {
        std::hint::black_box(std::fs::read(path).expect("read"));
    }
    let (mut hash, mut fresh, mut again) = (Vec::new(), Vec::new(), Vec::new());
    let mut headers = 0;
    for run in 0..3 {
        hash.push(hash_files(&files));
        let (f, a, h) = ingest_run(&root, files.len());
        eprintln!(
            "ingest run {run}: BLAKE3 {}, ingest {}, re-run {}",
            ms(hash[run]),
            ms(f),
            ms(a)
        );
        fresh.push(f);
        again.push(a);
        headers = h;
    }
    let (hash, fresh, again) = (median(hash), median(fresh), median(again));
    let mbs = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    let per_s = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    let ratio = mbs(fresh) / mbs(hash);
    let n = files.len() as u64;
    let kinds: Vec<String> = FITS_COLLECTIONS
        .iter()
        .map(|c| {
            let mine: Vec<u64> = files
                .iter()
                .filter(|(p, _)| p.parent().is_some_and(|d| d.ends_with(c)))
                .map(|(_, n)| *n)
                .collect();
            let mean = mine.iter().sum::<u64>() as f64 / mine.len().max(1) as f64;
            format!("{} × {c} of {:.0} KB", mine.len(), mean / 1e3)
        })
        .collect();
    let mut out = String::from("### Ingest of FITS files\n\n");
    out.push_str(&format!(
        "{n} FITS files written by astropy (`scripts/make-sample-fits.py OUT --collections {} --per-target {FITS_PER_TARGET} --image-size {FITS_IMAGE_SIZE}`: {}), {:.1} MB in all (MB = 10⁶ bytes), ingested as 4 collections into a catalog in a temporary directory on the same disk; page cache warm (every file read once before); each time the median of 3 runs.\n\n",
        FITS_COLLECTIONS.join(","),
        kinds.join(", "),
        bytes as f64 / 1e6
    ));
    out.push_str("| what | time | files/s | MB/s | ratio | goal |\n|---|---|---|---|---|---|\n");
    out.push_str(&format!(
        "| baseline: raw BLAKE3 of each file (`Hasher::update_reader`, one thread, as `b3sum --no-mmap`) | {} | {:.0} | {:.0} | 1.00× | |\n",
        ms(hash),
        per_s(n, hash),
        mbs(hash)
    ));
    out.push_str(&format!(
        "| `ingest()` of the 4 collections into a fresh catalog ({headers} FITS headers parsed, BLAKE3, FTS and sky index) | {} | {:.0} headers/s | {:.0} | {ratio:.2}× | ≥ 0.8×: {} |\n",
        ms(fresh),
        per_s(headers, fresh),
        mbs(fresh),
        met(ratio >= 0.8)
    ));
    out.push_str(&format!(
        "| `ingest()` again, nothing changed (size and mtime compared, no file read) | {} | {:.0} | | | |\n",
        ms(again),
        per_s(n, again)
    ));
    out.push_str(INGEST_FINDINGS);
    out
}

/// How ingest runs and where the time beyond hashing goes (from profiles of this benchmark).
const INGEST_FINDINGS: &str = "
How it runs and where the rest goes: files are read on a second thread (open, the first card, FITS headers with fitsrs, BLAKE3 streamed) while the first thread writes the database with cached statements, in transactions of 256 files; sidecars are known from the directory walk. Before that pipeline (one thread, statements prepared anew per file) the ratio was 0.56×. The reading thread now does what the baseline does plus parsing every header (about 17 % of the former extra time) and opening each file once more than the baseline, and the writing thread's FTS5, R*Tree and index inserts compete with it for the second core, so the two threads do not fully overlap on 2 cores: **0.74×, the goal of 0.8× is missed**. Reaching it needs the header read from the same buffer as the hash (one pass over the first blocks) or cheaper index writes (deferring FTS inserts to the end of a scan). Absolute MB/s depend on the page cache's state on this VM (files written just before read ~1.5× faster than the same bytes cached long ago), so compare the ratio, not MB/s, across runs.
";

// ---------------------------------------------------------------------------------------------
// Synthetic products

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.f64();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.f64()).cos()
    }
    /// An index drawn from cumulative weights.
    fn weighted(&mut self, cumulative: &[f64]) -> usize {
        let x = self.f64() * cumulative.last().copied().unwrap_or(1.0);
        cumulative
            .partition_point(|c| *c <= x)
            .min(cumulative.len() - 1)
    }
}

fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    weights
        .scan(0.0, |acc, w| {
            *acc += w;
            Some(*acc)
        })
        .collect()
}

/// MJD of 1 January of `year`.
fn mjd(year: f64) -> f64 {
    53_371.0 + (year - 2005.0) * 365.25
}

struct Mission {
    collection: &'static str,
    name: &'static str,
    facility: &'static str,
    instruments: &'static [&'static str],
    band: &'static str,
    types: &'static [&'static str],
    licence: &'static str,
    publisher: &'static str,
    years: (f64, f64),
    /// Exposure range, seconds (drawn log-uniform).
    exposure: (f64, f64),
    fov: f64,
    weight: f64,
}

#[rustfmt::skip]
const MISSIONS: [Mission; 10] = [
    Mission { collection: "xmm-newton", name: "XMM-Newton", facility: "XMM", instruments: &["EPIC-pn", "EPIC-MOS1", "EPIC-MOS2", "RGS", "OM"], band: "x-ray", types: &["image", "event", "spectrum"], licence: "ESA-PSA", publisher: "ESA", years: (2005.0, 2025.0), exposure: (1e3, 1.3e5), fov: 0.5, weight: 12.0 },
    Mission { collection: "chandra", name: "Chandra", facility: "CXO", instruments: &["ACIS-S", "ACIS-I", "HRC-I", "HETG"], band: "x-ray", types: &["image", "event", "spectrum"], licence: "CC0-1.0", publisher: "CXC", years: (2005.0, 2025.0), exposure: (1e3, 1.5e5), fov: 0.28, weight: 10.0 },
    Mission { collection: "herschel", name: "Herschel", facility: "Herschel", instruments: &["PACS", "SPIRE", "HIFI"], band: "infrared", types: &["image", "spectrum", "cube"], licence: "ESA-PSA", publisher: "ESA", years: (2009.4, 2013.3), exposure: (300.0, 3.6e4), fov: 0.1, weight: 8.0 },
    Mission { collection: "hst", name: "HST", facility: "HST", instruments: &["ACS", "WFC3", "STIS", "COS"], band: "optical", types: &["image", "spectrum"], licence: "CC0-1.0", publisher: "STScI", years: (2005.0, 2025.0), exposure: (100.0, 1e4), fov: 0.05, weight: 14.0 },
    Mission { collection: "jwst", name: "JWST", facility: "JWST", instruments: &["NIRCam", "MIRI", "NIRSpec", "NIRISS"], band: "infrared", types: &["image", "spectrum", "cube"], licence: "CC0-1.0", publisher: "STScI", years: (2022.5, 2025.0), exposure: (100.0, 2e4), fov: 0.04, weight: 6.0 },
    Mission { collection: "alma", name: "ALMA", facility: "ALMA", instruments: &["Band3", "Band6", "Band7", "Band9"], band: "millimeter", types: &["cube", "image", "visibility"], licence: "CC-BY-4.0", publisher: "ESO", years: (2011.8, 2025.0), exposure: (600.0, 3e4), fov: 0.01, weight: 9.0 },
    Mission { collection: "vlt", name: "VLT", facility: "ESO-VLT", instruments: &["MUSE", "UVES", "FORS2", "SPHERE", "X-shooter"], band: "optical", types: &["cube", "spectrum", "image"], licence: "CC-BY-4.0", publisher: "ESO", years: (2005.0, 2025.0), exposure: (60.0, 1e4), fov: 0.02, weight: 13.0 },
    Mission { collection: "gaia", name: "Gaia", facility: "Gaia", instruments: &["ASTRO", "BP-RP", "RVS"], band: "optical", types: &["timeseries", "spectrum", "catalog"], licence: "CC-BY-4.0", publisher: "ESA", years: (2014.6, 2025.0), exposure: (4.4, 60.0), fov: 0.7, weight: 12.0 },
    Mission { collection: "lofar", name: "LOFAR", facility: "LOFAR", instruments: &["HBA", "LBA"], band: "radio", types: &["image", "visibility", "cube"], licence: "CC-BY-4.0", publisher: "ASTRON", years: (2012.0, 2025.0), exposure: (3.6e3, 2.9e4), fov: 5.0, weight: 7.0 },
    Mission { collection: "fermi", name: "Fermi", facility: "Fermi", instruments: &["LAT", "GBM"], band: "gamma-ray", types: &["event", "image", "timeseries"], licence: "CC0-1.0", publisher: "NASA", years: (2008.5, 2025.0), exposure: (1e3, 8.6e4), fov: 10.0, weight: 9.0 },
];

/// Named targets: (name, RA, Dec, the word a user searches for). Some sit near RA = 0/360 and
/// the poles on purpose.
#[rustfmt::skip]
const TARGETS: [(&str, f64, f64, &str); 40] = [
    ("Crab Nebula", 83.6331, 22.0145, "crab"), ("M87", 187.7059, 12.3911, "m87"),
    ("Cas A", 350.85, 58.815, "cas"), ("Sgr A*", 266.4168, -29.0078, "sgr"),
    ("Vela Pulsar", 128.8361, -45.1764, "vela"), ("SN 1987A", 83.8667, -69.2697, "1987a"),
    ("3C 273", 187.2779, 2.0524, "3c"), ("Polaris", 37.9546, 89.2641, "polaris"),
    ("Alpha Centauri", 219.9021, -60.834, "centauri"), ("Andromeda Galaxy", 10.6847, 41.269, "andromeda"),
    ("Orion Nebula", 83.8221, -5.3911, "orion"), ("Eta Carinae", 161.2647, -59.6844, "carinae"),
    ("Cygnus X-1", 299.5903, 35.2016, "cygnus"), ("M82", 148.9685, 69.6797, "m82"),
    ("Centaurus A", 201.365, -43.0191, "centaurus"), ("Pleiades", 56.75, 24.1167, "pleiades"),
    ("Whirlpool Galaxy", 202.4696, 47.1952, "whirlpool"), ("Sombrero Galaxy", 189.9976, -11.6231, "sombrero"),
    ("Large Magellanic Cloud", 80.8938, -69.7561, "magellanic"), ("Betelgeuse", 88.7929, 7.4071, "betelgeuse"),
    ("Vega", 279.2347, 38.7837, "vega"), ("Sirius", 101.2872, -16.7161, "sirius"),
    ("Tycho SNR", 6.3342, 64.1383, "tycho"), ("NGC 7793", 359.4576, -32.5911, "7793"),
    ("WLM", 0.4923, -15.4608, "wlm"), ("Sculptor Galaxy", 11.888, -25.2883, "sculptor"),
    ("Triangulum Galaxy", 23.4621, 30.6599, "triangulum"), ("Ring Nebula", 283.3963, 33.0292, "ring"),
    ("Eagle Nebula", 274.7, -13.8067, "eagle"), ("Lagoon Nebula", 270.925, -24.3833, "lagoon"),
    ("Helix Nebula", 337.4107, -20.8372, "helix"), ("Perseus Cluster", 49.9508, 41.5117, "perseus"),
    ("Coma Cluster", 194.9531, 27.9807, "coma"), ("Abell 1689", 197.8729, -1.3411, "abell"),
    ("Hubble Deep Field", 189.2058, 62.2161, "hubble"), ("Chandra Deep Field South", 53.1225, -27.8053, "south"),
    ("COSMOS Field", 150.1192, 2.2058, "cosmos"), ("Sigma Octantis", 317.1954, -88.9565, "octantis"),
    ("Cygnus A", 299.8682, 40.7339, "\"cygnus a\""), ("Kepler Field", 290.6667, 44.5, "kepler"),
];

/// Words of descriptions, most common first (drawn with Zipf weights 1/rank).
const WORDS: &str = "observation data calibrated pipeline processed exposure source background \
    flux image spectrum field emission region point extended map counts energy band line \
    continuum survey deep pointing target mode detector filter level products science galaxy \
    star cluster nebula pulsar remnant supernova dust gas cloud molecular jet accretion disk \
    black hole binary variable transient burst flare outburst timing light curve photometry \
    astrometry proper motion parallax redshift velocity dispersion rotation kinematics \
    polarization absorption ionized neutral hydrogen carbon oxygen iron lines shock wind outflow \
    magnetic thermal nonthermal synchrotron compton radio infrared optical ultraviolet hard soft \
    mosaic tile raster stare dither chop nod calibration flat dark bias wavelength resolution \
    sensitivity noise artefact pileup contamination monitoring campaign follow-up archival \
    legacy program proposal cycle guest observer key project reprocessed quicklook";

fn words() -> Vec<&'static str> {
    WORDS.split_whitespace().collect()
}

/// Draws synthetic products for one mission.
struct Products {
    rng: Rng,
    words: Vec<&'static str>,
    word_weights: Vec<f64>,
    target_weights: Vec<f64>,
}

impl Products {
    fn new(seed: u64) -> Self {
        let words = words();
        let word_weights = cumulative((0..words.len()).map(|r| 1.0 / (r as f64 + 1.0)));
        let target_weights = cumulative((0..TARGETS.len()).map(|i| 1.0 / (1.0 + i as f64 / 4.0)));
        Self {
            rng: Rng::new(seed),
            words,
            word_weights,
            target_weights,
        }
    }

    /// 60 % of products point at a named target (scattered as several pointings would be),
    /// the rest anywhere on the sky.
    fn position(&mut self) -> (Option<&'static str>, f64, f64) {
        let rng = &mut self.rng;
        if rng.f64() < 0.6 {
            let (name, ra, dec, _) = TARGETS[rng.weighted(&self.target_weights)];
            let sigma = if rng.f64() < 0.9 { 0.15 } else { 1.0 };
            let mut d = dec + sigma * rng.normal();
            let mut r = ra + sigma * rng.normal() / dec.to_radians().cos().abs().max(0.01);
            if d > 90.0 {
                (d, r) = (180.0 - d, r + 180.0);
            } else if d < -90.0 {
                (d, r) = (-180.0 - d, r + 180.0);
            }
            (Some(name), r.rem_euclid(360.0) % 360.0, d)
        } else {
            let ra = 360.0 * rng.f64();
            let dec = (2.0 * rng.f64() - 1.0).asin().to_degrees();
            (None, ra, dec)
        }
    }

    fn description(&mut self) -> String {
        let n = 8 + self.rng.below(13);
        let mut out = String::new();
        for i in 0..n {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(self.words[self.rng.weighted(&self.word_weights)]);
        }
        out
    }

    fn product(&mut self, m: &Mission, i: usize) -> Described {
        let instrument = *self.rng.pick(m.instruments);
        let kind = *self.rng.pick(m.types);
        let (target, ra, dec) = self.position();
        let rng = &mut self.rng;
        let t_min = mjd(m.years.0) + rng.f64() * (mjd(m.years.1) - mjd(m.years.0));
        let exptime = m.exposure.0 * (m.exposure.1 / m.exposure.0).powf(rng.f64());
        let year = 2005 + ((t_min - mjd(2005.0)) / 365.25) as i32;
        let obs_id = format!("{}{i:07}", m.facility.to_ascii_uppercase());
        let path = format!("{year}/{instrument}/{obs_id}.fits");
        let title = match target {
            Some(t) => format!("{} {instrument} {kind} of {t}", m.name),
            None => format!("{} {instrument} {kind} at RA {ra:.3} Dec {dec:+.3}", m.name),
        };
        let licence = if rng.f64() < 0.92 {
            m.licence
        } else {
            "CC-BY-4.0"
        };
        let tags = (rng.f64() < 0.2).then(|| {
            let all = [
                "deep-field",
                "survey",
                "calibration",
                "snr",
                "agn",
                "star-forming",
            ];
            vec![(*rng.pick(&all)).to_owned()]
        });
        let size = (2e5 * (1e4f64).powf(rng.f64())) as u64;
        let calib_level = 1 + rng.below(3) as i64;
        let description = self.description();
        Described {
            blake3: *blake3::hash(format!("{}/{path}", m.collection).as_bytes()).as_bytes(),
            path,
            size,
            meta: ProductMeta {
                title: Some(title),
                description: Some(description),
                obs_id: Some(obs_id),
                mission: Some(m.name.into()),
                facility: Some(m.facility.into()),
                instrument: Some(instrument.into()),
                product_type: Some(kind.into()),
                calib_level: Some(calib_level),
                band: Some(m.band.into()),
                licence: Some(licence.into()),
                publisher: Some(m.publisher.into()),
                target: target.map(Into::into),
                ra: Some(ra),
                dec: Some(dec),
                fov: Some(m.fov),
                t_min: Some(t_min),
                exptime: Some(exptime),
                format: Some("application/fits".into()),
                tags,
                ..ProductMeta::default()
            },
        }
    }
}

/// Adds `n` products of mission `m` to collection `collection`.
fn add_mission(catalog: &mut Catalog, collection: &str, m: &'static Mission, n: usize, seed: u64) {
    let mut gen_ = Products::new(seed);
    let root = Path::new("/archive").join(collection);
    let stored = add_described(
        catalog,
        collection,
        &root,
        (0..n).map(|i| gen_.product(m, i)),
    )
    .expect("add described products");
    assert_eq!(stored as usize, n);
}

// ---------------------------------------------------------------------------------------------
// 2. Search over 1,000,000 products

const MILLION: usize = 1_000_000;
/// Bump when the generator changes; the catalog migration's checksum is part of the key too.
const MILLION_VERSION: u32 = 1;
const QUERIES: usize = 200;
/// Queries of each kind also run as unindexed scans (each scan reads every row).
const SCANS: usize = 20;

fn million_key() -> String {
    let migration = include_str!("../migrations/0003.sql");
    format!(
        "v{MILLION_VERSION} {MILLION} products, migration 0003 {}",
        &blake3::hash(migration.as_bytes()).to_hex()[..16]
    )
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// The cached 1M-product database, its build time, and whether this run built it.
fn million_db() -> (PathBuf, Option<Duration>, bool) {
    let path = target_dir().join("bench-catalog-1m.sqlite");
    // The key on the first line, the build time (seconds) on the second.
    let stamp = target_dir().join("bench-catalog-1m.sqlite.version");
    let key = million_key();
    if let Ok(s) = std::fs::read_to_string(&stamp)
        && path.exists()
        && s.lines().next() == Some(key.as_str())
    {
        let took = s.lines().nth(1).and_then(|t| t.parse::<f64>().ok());
        return (path, took.map(Duration::from_secs_f64), false);
    }
    let partial = target_dir().join("bench-catalog-1m.sqlite.partial");
    remove_db(&partial);
    remove_db(&path);
    let _ = std::fs::remove_file(&stamp);
    let mut catalog = Catalog::open(&partial).expect("catalog");
    let total: f64 = MISSIONS.iter().map(|m| m.weight).sum();
    let mut left = MILLION;
    let t0 = Instant::now();
    for (k, m) in MISSIONS.iter().enumerate() {
        let n = if k + 1 == MISSIONS.len() {
            left
        } else {
            (MILLION as f64 * m.weight / total) as usize
        };
        left -= n;
        add_mission(&mut catalog, m.collection, m, n, k as u64 + 1);
        eprintln!(
            "  {} products of {} added; {} in {:.1} s",
            n,
            m.name,
            MILLION - left,
            t0.elapsed().as_secs_f64()
        );
    }
    let took = t0.elapsed();
    drop(catalog);
    std::fs::rename(&partial, &path).expect("rename the built database");
    std::fs::write(&stamp, format!("{key}\n{:.3}\n", took.as_secs_f64()))
        .expect("write the version stamp");
    (path, Some(took), true)
}

struct SearchSets {
    text: Vec<Query>,
    /// Whether each text query is a target name (else a common word).
    text_is_target: Vec<bool>,
    cone: Vec<Query>,
    cone_time: Vec<Query>,
}

fn cone_centre(rng: &mut Rng, i: usize) -> (f64, f64) {
    match i % 5 {
        // Busy fields: a named target, slightly off.
        0 | 1 => {
            let (_, ra, dec, _) = TARGETS[rng.below(TARGETS.len())];
            let dec = (dec + 0.2 * rng.normal()).clamp(-90.0, 90.0);
            ((ra + 0.2 * rng.normal()).rem_euclid(360.0) % 360.0, dec)
        }
        // Anywhere.
        2 => (
            360.0 * rng.f64(),
            (2.0 * rng.f64() - 1.0).asin().to_degrees(),
        ),
        // Across RA = 0/360.
        3 => (
            (rng.f64() - 0.5).rem_euclid(360.0) % 360.0,
            (2.0 * rng.f64() - 1.0).asin().to_degrees(),
        ),
        // At a pole.
        _ => {
            let dec = 89.3 + 0.7 * rng.f64();
            (
                360.0 * rng.f64(),
                if rng.below(2) == 0 { dec } else { -dec },
            )
        }
    }
}

fn search_sets() -> SearchSets {
    let mut rng = Rng::new(4242);
    let common = &words()[8..40];
    let (mut text, mut text_is_target) = (Vec::new(), Vec::new());
    for i in 0..QUERIES {
        let word = if i % 2 == 0 {
            TARGETS[rng.below(TARGETS.len())].3
        } else {
            *rng.pick(common)
        };
        let mission = rng.pick(&MISSIONS).name;
        text.push(Query {
            text: Some(word.to_owned()),
            filters: BTreeMap::from([(Facet::Mission, vec![mission.to_owned()])]),
            facets: true,
            ..Query::default()
        });
        text_is_target.push(i % 2 == 0);
    }
    let cone = |rng: &mut Rng, i: usize| {
        let (ra, dec) = cone_centre(rng, i);
        Query {
            cone: Some(Cone {
                ra,
                dec,
                radius: 0.5,
            }),
            facets: true,
            ..Query::default()
        }
    };
    let cones: Vec<Query> = (0..QUERIES).map(|i| cone(&mut rng, i)).collect();
    let cone_time = (0..QUERIES)
        .map(|i| {
            let mut q = cone(&mut rng, i);
            let start = mjd(2005.0) + rng.f64() * (mjd(2024.0) - mjd(2005.0));
            q.time = Some(TimeRange {
                start: Some(start),
                end: Some(start + 365.25 * (1.0 + 4.0 * rng.f64())),
            });
            q
        })
        .collect();
    SearchSets {
        text,
        text_is_target,
        cone: cones,
        cone_time,
    }
}

/// Runs every query once, timed; returns the latencies and the totals.
fn run_searches(catalog: &Catalog, queries: &[Query]) -> (Vec<Duration>, Vec<u64>) {
    let (mut times, mut totals) = (Vec::new(), Vec::new());
    for q in queries {
        let t0 = Instant::now();
        let r = catalog.search(q).expect("search");
        times.push(t0.elapsed());
        totals.push(r.total);
    }
    (times, totals)
}

/// The unindexed scans: the text as `LIKE` over titles and descriptions with the mission, the
/// cone as the dot product over every stored position.
fn scan(conn: &rusqlite::Connection, q: &Query) -> (Duration, u64) {
    let t0 = Instant::now();
    let n: i64 = if let Some(cone) = &q.cone {
        let c = cone.sky().expect("cone");
        let mut sql =
            String::from("SELECT count(*) FROM products WHERE cx * ?1 + cy * ?2 + cz * ?3 >= ?4");
        if q.time.is_some() {
            sql.push_str(" AND coalesce(t_max, t_min) >= ?5 AND +t_min <= ?6");
        }
        let time = q.time.map_or((0.0, 0.0), |t| {
            (t.start.unwrap_or(0.0), t.end.unwrap_or(0.0))
        });
        let mut stmt = conn.prepare_cached(&sql).expect("prepare");
        let p = [
            c.centre.x,
            c.centre.y,
            c.centre.z,
            c.min_dot(),
            time.0,
            time.1,
        ];
        let p = &p[..if q.time.is_some() { 6 } else { 4 }];
        stmt.query_row(rusqlite::params_from_iter(p), |r| r.get(0))
            .expect("cone scan")
    } else {
        let text = q.text.as_deref().unwrap_or_default().replace('"', "");
        let mission = &q.filters[&Facet::Mission][0];
        conn.prepare_cached(
            "SELECT count(*) FROM products
             WHERE (title LIKE ?1 OR description LIKE ?1) AND +mission = ?2",
        )
        .expect("prepare")
        .query_row(rusqlite::params![format!("%{text}%"), mission], |r| {
            r.get(0)
        })
        .expect("text scan")
    };
    (t0.elapsed(), n.max(0) as u64)
}

/// SQLite's plan of the statements `search()` runs (rebuilt here the way `catalog/search.rs`
/// builds them) for one query of each kind.
fn explain(conn: &rusqlite::Connection) -> String {
    let mut out = String::new();
    let plans = [
        (
            "text + mission",
            "SELECT p.id FROM product_text JOIN products p ON p.id = product_text.rowid
             WHERE product_text MATCH '\"crab\"' AND p.mission IN ('HST')
             ORDER BY product_text.rank, p.collection, p.path LIMIT 20",
        ),
        (
            "cone",
            "SELECT p.id FROM products p WHERE 1 AND p.id IN (SELECT id FROM sky_index
             WHERE x1 >= 0.1 AND x0 <= 0.11 AND y1 >= 0.9 AND y0 <= 0.91 AND z1 >= 0.37 AND z0 <= 0.38)
             AND p.cx * 0.1 + p.cy * 0.9 + p.cz * 0.37 >= 0.99996
             ORDER BY 0.0, p.collection, p.path LIMIT 20",
        ),
        (
            "cone + time",
            "SELECT p.id FROM products p WHERE 1 AND p.id IN (SELECT id FROM sky_index
             WHERE x1 >= 0.1 AND x0 <= 0.11 AND y1 >= 0.9 AND y0 <= 0.91 AND z1 >= 0.37 AND z0 <= 0.38)
             AND p.cx * 0.1 + p.cy * 0.9 + p.cz * 0.37 >= 0.99996
             AND coalesce(p.t_max, p.t_min) >= 55000 AND p.t_min <= 56000
             ORDER BY 0.0, p.collection, p.path LIMIT 20",
        ),
    ];
    for (what, sql) in plans {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("explain")
            .collect::<Result<_, _>>()
            .expect("explain");
        out.push_str(&format!("{what}: `{}`; ", rows.join(" / ")));
    }
    eprintln!("query plans: {out}");
    out.trim_end_matches("; ").to_owned()
}

/// Latencies and totals of one kind of query, with a subset picked out.
struct Measured {
    times: Vec<Duration>,
    totals: Vec<u64>,
}

impl Measured {
    fn row(&self, what: &str, keep: impl Fn(usize) -> bool, rest: &str) -> String {
        let idx: Vec<usize> = (0..self.times.len()).filter(|i| keep(*i)).collect();
        let l = Latency::of(idx.iter().map(|i| self.times[*i]).collect());
        let mean =
            idx.iter().map(|i| self.totals[*i]).sum::<u64>() as f64 / idx.len().max(1) as f64;
        format!(
            "| {what} | {} | {mean:.0} | {} | {} | {} | {rest} |\n",
            l.n,
            ms(l.p50),
            ms(l.p95),
            ms(l.max)
        )
    }
}

fn bench_search() -> String {
    let (path, built, now) = million_db();
    if let (Some(t), true) = (built, now) {
        eprintln!("built the 1M-product catalog in {:.1} s", t.as_secs_f64());
    }
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    // Page cache warm: the database read once.
    std::io::copy(
        &mut File::open(&path).expect("open db"),
        &mut std::io::sink(),
    )
    .expect("read db");
    let writer = Catalog::open(&path).expect("catalog");
    let catalog = Catalog::open_read_only(&path).expect("catalog");
    // The scans read through the same page cache settings and memory map as the node's
    // connections, so the speedup is the indexes' alone.
    let conn = rusqlite::Connection::open(&path).expect("db");
    conn.pragma_update(None, "cache_size", -65_536)
        .expect("cache");
    conn.pragma_update(None, "temp_store", "MEMORY")
        .expect("temp store");
    conn.pragma_update(None, "mmap_size", 1_i64 << 30)
        .expect("mmap");
    let products: i64 = conn
        .query_row("SELECT count(*) FROM products", [], |r| r.get(0))
        .expect("count");
    assert_eq!(products as usize, MILLION);
    let plans = explain(&conn);
    let sets = search_sets();
    // Warm-up: a few of each kind.
    for q in sets
        .text
        .iter()
        .chain(&sets.cone)
        .chain(&sets.cone_time)
        .step_by(10)
    {
        catalog.search(q).expect("search");
    }
    let measure = |queries: &[Query]| {
        let (times, totals) = run_searches(&catalog, queries);
        Measured { times, totals }
    };
    let (text, cone, cone_time) = (
        measure(&sets.text),
        measure(&sets.cone),
        measure(&sets.cone_time),
    );
    for (i, n) in text.totals.iter().enumerate() {
        assert!(
            *n > 0 || !sets.text_is_target[i],
            "target query {:?} found nothing",
            sets.text[i].text
        );
    }
    // The unindexed scans; every cone finds what a scan finds.
    let (mut text_scan, mut cone_scan) = (Vec::new(), Vec::new());
    for i in 0..SCANS {
        text_scan.push(scan(&conn, &sets.text[i]).0);
        let (t, n) = scan(&conn, &sets.cone[i]);
        assert_eq!(n, cone.totals[i], "cone {i}: search and scan disagree");
        cone_scan.push(t);
        let (_, n) = scan(&conn, &sets.cone_time[i]);
        assert_eq!(
            n, cone_time.totals[i],
            "cone + time {i}: search and scan disagree"
        );
    }
    drop(writer);
    let goal = Duration::from_millis(50);
    let all = |_: usize| true;
    let first = |m: &Measured| median(m.times[..SCANS].to_vec());
    let speedup = |scan: Duration, m: &Measured| scan.as_secs_f64() / first(m).as_secs_f64();
    let (text_l, cone_l) = (
        Latency::of(text.times.clone()),
        Latency::of(cone.times.clone()),
    );
    let (text_base, cone_base) = (median(text_scan), median(cone_scan));
    let mut out = String::from("### Search over 1,000,000 products\n\n");
    out.push_str(&format!(
        "1,000,000 synthetic products added with `add_described()`: 10 missions with their instruments, bands, product types and licences; 60 % pointed at 40 named targets (the busiest holds about 6 % of all products, the least busy about 0.5 %), the rest anywhere on the sky; observation dates over 20 years; titles, and descriptions of 8–20 words drawn with Zipf weights from {}; a deterministic xorshift generator. Database {:.0} MB, cached under `target/` keyed by a version and the catalog migration's checksum{}. `Catalog::search` on a read-only connection as the node opens them, page cache warm, {QUERIES} queries of each kind, limit 20, facets counted. Baselines: the first {SCANS} queries of a and b run as unindexed scans, speedup = scan p50 ÷ search p50 over the same {SCANS}.\n\n",
        words().len(),
        size as f64 / 1e6,
        built.map_or_else(
            || " (reused: built by an earlier run)".to_owned(),
            |t| format!(
                "; built {} in {:.1} s ({:.0} products/s, release build)",
                if now { "in this run" } else { "by an earlier run" },
                t.as_secs_f64(),
                MILLION as f64 / t.as_secs_f64()
            )
        )
    ));
    out.push_str("| query | queries | matches (mean) | p50 | p95 | max | baseline, speedup, goal |\n|---|---|---|---|---|---|---|\n");
    out.push_str(&text.row(
        "a. text + one mission filter, facets",
        all,
        &format!(
            "scan (`LIKE '%word%'` over title and description, `+mission =`): p50 {}, {:.1}×; p95 < 50 ms: {}",
            ms(text_base),
            speedup(text_base, &text),
            met(text_l.p95 < goal)
        ),
    ));
    out.push_str(&text.row(
        "a′. of which the text is a target's name (\"crab\", \"m87\", …)",
        |i| sets.text_is_target[i],
        "",
    ));
    out.push_str(&text.row(
        "a″. of which the text is a common word of descriptions (Zipf ranks 9–40)",
        |i| !sets.text_is_target[i],
        "",
    ));
    out.push_str(&cone.row(
        "b. cone r = 0.5°, facets (centres: 2/5 near named targets, 1/5 anywhere, 1/5 across RA = 0/360, 1/5 within 0.7° of a pole)",
        all,
        &format!(
            "scan (dot product over every row): p50 {}, {:.0}×; p95 < 50 ms: {}",
            ms(cone_base),
            speedup(cone_base, &cone),
            met(cone_l.p95 < goal)
        ),
    ));
    out.push_str(&cone.row("b′. of which near a named target", |i| i % 5 < 2, ""));
    out.push_str(&cone.row("b″. of which elsewhere", |i| i % 5 >= 2, ""));
    out.push_str(&cone_time.row(
        "c. cone r = 0.5° + a time range of 1–5 years, facets",
        all,
        "",
    ));
    out.push_str(&format!(
        "\nEvery cone's total equals the scan's count (checked for the first {SCANS} of b and c).\n"
    ));
    out.push_str(&format!(
        "\nSQLite's plans (`EXPLAIN QUERY PLAN`): {plans}.\n"
    ));
    out.push_str(SEARCH_FINDINGS);
    out
}

/// How `search()` answers, as measured here.
const SEARCH_FINDINGS: &str = "
How the goals are met: the indexes hand over candidates fast (FTS5 a common word's ~220,000 in ~7 ms, the R*Tree a busy field's ~24,000 in 2–4 ms); what costs is reading each candidate's row. So (1) facet values are also tokens in the text index (a `facets` column), so a text query with facet filters is narrowed inside FTS5 and only rows that can match are read (~23,000 instead of ~220,000 for the slowest text queries); (2) the total, the facet counts and the page come from one pass over the matches, the page's full rows then read by id; (3) the catalog's connections read through a memory map (`mmap_size`), which halves the cost of each row read on this 820 MB file. Each of the three halved the p95 of the queries it applies to; before them the p95s were 366 ms (a) and 106 ms (b). A query's cost still grows with its number of matches (a facet pass reads every match); a query matching hundreds of thousands of products takes hundreds of milliseconds.
";

// ---------------------------------------------------------------------------------------------
// 3. Federated search over 4 nodes

const NODES: usize = 4;
const PER_NODE: usize = 25_000;

fn node_home(dir: &Path, name: &str) -> Home {
    let home = Home::new(dir.join(name));
    let mut config = Config::default();
    config.node.name = name.into();
    config.network = orrery_federation::Config::loopback();
    config.network.advert_interval_secs = 1;
    config.network.advert_ttl_secs = 60;
    config.web.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    orrery_node::setup::init(&home, &config).expect("init");
    home
}

/// Whether node 0 holds every other member's advert, with its collections.
async fn adverts_with_collections(h: &NodeHandle) -> bool {
    let Ok(status) = h.status().await else {
        return false;
    };
    status
        .members
        .iter()
        .filter(|m| m.node != h.id())
        .filter(|m| m.advert.as_ref().is_some_and(|a| !a.collections.is_empty()))
        .count()
        == NODES - 1
}

/// Runs `q` through node 0: its latency, or why not all nodes (or, with `local`, node 0)
/// answered with matches.
async fn federated_once(h: &NodeHandle, q: &Query, local: bool) -> Result<Duration, String> {
    let t0 = Instant::now();
    let r = h
        .search(q.clone(), local, Duration::from_secs(2))
        .await
        .expect("search");
    let took = t0.elapsed();
    let want = if local { 1 } else { NODES };
    let with_hits = r
        .results
        .facets
        .get(&Facet::Node)
        .map_or(0, |v| v.iter().filter(|c| c.count > 0).count());
    if r.answered.len() == want && r.missing.is_empty() && with_hits == want {
        Ok(took)
    } else {
        Err(format!(
            "query {:?}: answered {:?}, missing {:?}, not asked {}, {with_hits} nodes with matches (want {want})",
            q.text, r.answered, r.missing, r.not_asked
        ))
    }
}

async fn federated() -> (Latency, Latency, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut homes = Vec::new();
    for i in 0..NODES {
        let home = node_home(dir.path(), &format!("node{i}"));
        let mut catalog = Catalog::open(&home.database()).expect("catalog");
        // Different missions on each node: a collection of two missions' products.
        for (k, m) in [&MISSIONS[2 * i], &MISSIONS[2 * i + 1]]
            .into_iter()
            .enumerate()
        {
            add_mission(
                &mut catalog,
                m.collection,
                m,
                PER_NODE / 2,
                (10 * i + k) as u64 + 100,
            );
        }
        homes.push(home);
    }
    let mut nodes = Vec::new();
    for home in homes {
        nodes.push(orrery_node::service::start(home).await.expect("start"));
    }
    let first = nodes[0].0.clone();
    first.create_federation("bench").await.expect("found");
    for (h, _) in &nodes[1..] {
        let token = first
            .invite(Some(h.id()), None, 3600)
            .await
            .expect("invite");
        h.join(token).await.expect("join");
    }
    let mut events = first.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Re-checked after every event of node 0 (adverts are re-published every second).
    while !adverts_with_collections(&first).await {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) => panic!("node 0 stopped"),
            Err(_) => panic!("node 0 did not hold every advert with collections within 60 s"),
        }
    }
    let queries: Vec<Query> = (0..QUERIES)
        .map(|i| Query {
            text: Some(TARGETS[i % TARGETS.len()].3.to_owned()),
            facets: true,
            ..Query::default()
        })
        .collect();
    // Node 0's own view of the members and their adverts may lag its federation actor's: retry
    // after each event until a query reaches all 4 nodes, then warm up (connections, readers).
    loop {
        match federated_once(&first, &queries[0], false).await {
            Ok(_) => break,
            Err(why) => match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
                _ => panic!("no query reached all 4 nodes within 60 s: {why}"),
            },
        }
    }
    for q in &queries[..10] {
        federated_once(&first, q, false).await.expect("warm-up");
    }
    let mut fed = Vec::new();
    let mut local = Vec::new();
    for q in &queries {
        fed.push(federated_once(&first, q, false).await.expect("federated"));
        local.push(federated_once(&first, q, true).await.expect("local"));
    }
    for (h, _) in &nodes {
        h.shutdown();
    }
    for (_, task) in nodes {
        let _ = task.await;
    }
    (Latency::of(fed), Latency::of(local), queries.len())
}

fn bench_federated(runtime: &tokio::runtime::Runtime) -> String {
    let (fed, local, n) = runtime.block_on(federated());
    let mut out = String::from("### Federated search over 4 nodes on loopback\n\n");
    out.push_str(&format!(
        "4 nodes started in one process (`service::start`, libp2p on 127.0.0.1, 2 worker threads), one federation; each node holds {PER_NODE} described products of two missions of its own. After every node's advert with its collections has reached node 0, {n} queries (a target's name as text, facets counted, limit 20; each matches on all 4 nodes, checked: 4 answered, none missing, 4 nodes with matches) run from node 0 with `NodeHandle::search(query, false, 2 s)`, each followed by the same query with `local = true`.\n\n"
    ));
    out.push_str("| what | p50 | p95 | max | ratio (p50) | goal |\n|---|---|---|---|---|---|\n");
    out.push_str(&format!(
        "| baseline: node 0 alone (`local = true`) | {} | {} | {} | 1.00× | |\n",
        ms(local.p50),
        ms(local.p95),
        ms(local.max)
    ));
    out.push_str(&format!(
        "| federated: node 0 and 3 members over libp2p, answers merged | {} | {} | {} | {:.2}× | p95 < 200 ms: {} |\n",
        ms(fed.p50),
        ms(fed.p95),
        ms(fed.max),
        fed.p50.as_secs_f64() / local.p50.as_secs_f64(),
        met(fed.p95 < Duration::from_millis(200))
    ));
    out
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ORRERY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let only = std::env::var("ORRERY_BENCH_ONLY").ok();
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut out = format!(
        "Command: `cargo bench -p orrery-node --bench catalog` (release build). Machine: {}.\n\n",
        machine()
    );
    if run("ingest") {
        out.push_str(&bench_ingest());
        out.push('\n');
    }
    if run("search") {
        out.push_str(&bench_search());
        out.push('\n');
    }
    if run("federated") {
        out.push_str(&bench_federated(&runtime));
    }
    println!("{out}");
    if only.is_some() {
        return;
    }
    sections::write_section(
        env!("CARGO_MANIFEST_DIR"),
        "## Catalog (issue: Datasets)",
        &out,
    );
}
