//! The catalog: ingest of real FITS files (made by astropy) next to corrupt, duplicate and
//! unreadable ones; search with every filter, including cones across RA = 0/360 and at the
//! poles; and hostile input that must get clear errors and change nothing.

#[path = "support/python.rs"]
mod python;

use std::path::Path;
use std::process::Command;

use orrery_catalog::{Cone, Facet, Page, Query, Sort, TimeRange};
use orrery_node::catalog::ingest::{Described, IngestOptions, Silent, add_described, ingest};
use orrery_node::catalog::meta::{ProductMeta, iso_to_mjd};
use orrery_node::catalog::{Catalog, CatalogError};

/// Writes sample FITS collections with astropy (and, with `broken`, the mixed directory).
fn make_fits(out: &Path, collections: &str, broken: bool) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-sample-fits.py");
    let mut cmd = Command::new(python::python());
    cmd.arg(script)
        .arg(out)
        .arg("--collections")
        .arg(collections)
        .arg("--per-target")
        .arg("1");
    if broken {
        cmd.arg("--broken");
    }
    let status = cmd.status().expect("python runs");
    assert!(status.success(), "make-sample-fits.py failed");
}

fn catalog(dir: &Path) -> Catalog {
    Catalog::open(&dir.join("node.sqlite")).expect("catalog opens")
}

fn options(collection: &str, root: &Path) -> IngestOptions {
    IngestOptions {
        collection: collection.into(),
        root: root.to_path_buf(),
        title: Some(format!("{collection} sample")),
        description: None,
        defaults: ProductMeta {
            licence: Some("CC-BY-4.0".into()),
            ..ProductMeta::default()
        },
        protected: Vec::new(),
        moved: false,
    }
}

fn problem<'a>(report: &'a orrery_node::catalog::ingest::IngestReport, path: &str) -> &'a str {
    report
        .problems
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, why)| why.as_str())
        .unwrap_or_else(|| panic!("{path} is not reported; problems: {:?}", report.problems))
}

#[test]
fn a_mixed_directory_is_ingested_and_every_bad_file_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    make_fits(&data, "", true);
    let mixed = data.join("mixed");
    let mut cat = catalog(tmp.path());

    let before = cat.generation().expect("generation");
    let r = ingest(&mut cat, &options("mixed", &mixed), &Silent).expect("ingest");
    assert!(
        cat.generation().expect("generation") > before,
        "a scan marks the catalog changed"
    );
    // good.fits, sub/good-deep.fits and the CSV with its sidecar.
    assert_eq!(r.added, 3, "{r:?}");
    assert_eq!(
        r.headers, 3,
        "two good FITS files plus the copy read before it was found a twin"
    );
    assert_eq!(
        r.duplicates,
        vec![(
            "sub/copy-of-good.fits".to_string(),
            "mixed/good.fits".to_string()
        )]
    );
    assert!(problem(&r, "truncated.fits").contains("truncated"));
    assert!(problem(&r, "garbage.fits").contains("corrupt FITS"));
    assert!(problem(&r, "notes.txt").contains("no sidecar"));
    assert!(problem(&r, "broken.csv").contains("sidecar"));
    assert!(problem(&r, "escape.fits").contains("outside the collection"));
    assert!(problem(&r, "dangling.fits").contains("broken symbolic link"));
    assert!(problem(&r, "pipe.fits").contains("not a regular file"));

    // What the header said is in the catalog.
    let good = cat.product("mixed/good.fits").expect("stored");
    let field = |name: &str| {
        good.obscore
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(field("target_name"), "Crab Nebula");
    assert_eq!(
        field("obs_collection"),
        "XMM",
        "without --mission, the mission is the TELESCOP"
    );
    assert_eq!(field("instrument_name"), "EPN");
    assert_eq!(field("dataproduct_type"), "image");
    assert_eq!(field("s_xel1"), 64);
    let ra = field("s_ra").as_f64().expect("number");
    assert!((ra - 83.6331).abs() < 0.5, "ra {ra}");
    let csv = cat.product("mixed/lightcurve.csv").expect("stored");
    assert!(
        csv.obscore
            .iter()
            .any(|(k, v)| k == "dataproduct_type" && v == "timeseries")
    );

    // A second scan reads nothing that did not change.
    let again = ingest(&mut cat, &options("mixed", &mixed), &Silent).expect("ingest");
    assert_eq!(
        (again.added, again.updated, again.unchanged),
        (0, 0, 3),
        "{again:?}"
    );
    // Only the duplicate, which is not stored, is read again (and reported again).
    let twin = std::fs::metadata(mixed.join("sub/copy-of-good.fits"))
        .expect("twin")
        .len();
    assert_eq!(again.bytes_read, twin, "unchanged files are not read again");
    assert_eq!(again.duplicates.len(), 1);

    // A changed file is read again; a removed one leaves the catalog; a file that turns
    // corrupt leaves it too, with its path named.
    let csv_path = mixed.join("lightcurve.csv");
    std::fs::write(&csv_path, "time,flux\n0,1.0\n1,1.2\n2,1.3\n").expect("write");
    std::fs::remove_file(mixed.join("sub/good-deep.fits")).expect("remove");
    let whole = std::fs::read(mixed.join("good.fits")).expect("read");
    std::fs::write(mixed.join("good.fits"), &whole[..4000]).expect("truncate");
    let third = ingest(&mut cat, &options("mixed", &mixed), &Silent).expect("ingest");
    assert_eq!(third.updated, 1, "{third:?}");
    assert!(problem(&third, "good.fits").contains("truncated"));
    // good-deep is gone, good.fits no longer reads; the copy of good.fits now has no twin.
    assert_eq!(third.removed, 2, "{third:?}");
    assert_eq!(
        third.added, 1,
        "the former duplicate is now the only copy: {third:?}"
    );
    assert!(matches!(
        cat.product("mixed/good.fits"),
        Err(CatalogError::NoProduct(_))
    ));
    let c = cat.collection("mixed").expect("collection");
    assert_eq!(c.products, 2);
    assert_eq!(c.title, "mixed sample");

    // Removing the collection removes its products from search, not its files.
    let before = cat.generation().expect("generation");
    assert_eq!(cat.remove_collection("mixed").expect("remove"), 2);
    assert!(
        cat.generation().expect("generation") > before,
        "a removal marks it changed"
    );
    assert!(csv_path.exists());
    assert_eq!(cat.search(&Query::default()).expect("search").total, 0);
    assert!(matches!(
        cat.remove_collection("mixed"),
        Err(CatalogError::NoCollection(_))
    ));
}

#[test]
fn bad_collection_ids_and_missing_directories_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cat = catalog(tmp.path());
    for bad in [
        "",
        "../x",
        "a b",
        "x';DROP TABLE products;--",
        &"x".repeat(65),
    ] {
        let err = ingest(&mut cat, &options(bad, tmp.path()), &Silent).expect_err(bad);
        assert!(
            matches!(err, CatalogError::BadCollectionId(_)),
            "{bad}: {err}"
        );
    }
    let err = ingest(
        &mut cat,
        &options("x", &tmp.path().join("nowhere")),
        &Silent,
    )
    .expect_err("missing directory");
    assert!(err.to_string().contains("nowhere"), "{err}");
    assert_eq!(cat.collections().expect("list").len(), 0);
}

/// Products at chosen places and times, for exact expectations.
fn described(id: &str, ra: f64, dec: f64, date: &str, mission: &str, kind: &str) -> Described {
    Described {
        path: format!("{id}.fits"),
        size: 1000,
        blake3: *blake3::hash(id.as_bytes()).as_bytes(),
        meta: ProductMeta {
            title: Some(format!("{id} observation of {mission}")),
            description: Some(format!("A {kind} taken with {mission}")),
            mission: Some(mission.into()),
            instrument: Some(format!("{mission}-cam")),
            product_type: Some(kind.into()),
            band: Some(if mission == "XMM" { "x-ray" } else { "optical" }.into()),
            licence: Some("CC-BY-4.0".into()),
            publisher: Some(if mission == "XMM" { "ESA" } else { "MPIA" }.into()),
            target: Some(id.into()),
            ra: Some(ra),
            dec: Some(dec),
            date_obs: Some(date.into()),
            exptime: Some(3600.0),
            tags: Some(vec![if dec > 80.0 { "polar" } else { "field" }.into()]),
            ..ProductMeta::default()
        },
    }
}

fn ids(q: &Query, cat: &Catalog) -> Vec<String> {
    let mut v: Vec<String> = cat
        .search(q)
        .expect("search")
        .hits
        .into_iter()
        .map(|h| {
            h.id.trim_start_matches("sky/")
                .trim_end_matches(".fits")
                .to_owned()
        })
        .collect();
    v.sort();
    v
}

fn sky_catalog(dir: &Path) -> Catalog {
    let mut cat = catalog(dir);
    let products = vec![
        described("east", 359.8, 0.0, "2020-01-01", "XMM", "image"),
        described("west", 0.2, 0.0, "2020-06-01", "XMM", "image"),
        described("far", 2.0, 0.0, "2021-01-01", "XMM", "spectrum"),
        described("pole-a", 0.0, 89.8, "2019-01-01", "Gaia", "image"),
        described("pole-b", 180.0, 89.8, "2019-02-01", "Gaia", "cube"),
        described("pole-c", 90.0, 88.0, "2019-03-01", "Gaia", "image"),
        described("south", 45.0, -89.9, "2018-01-01", "Gaia", "spectrum"),
        described("crab", 83.6331, 22.0145, "2015-05-05", "XMM", "event"),
    ];
    add_described(&mut cat, "sky", dir, products).expect("described");
    cat
}

#[test]
fn cones_are_right_across_ra_zero_and_at_the_poles() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cat = sky_catalog(tmp.path());
    let cone = |ra, dec, radius| Query {
        cone: Some(Cone { ra, dec, radius }),
        page: Page {
            offset: 0,
            limit: 100,
        },
        ..Query::default()
    };
    assert_eq!(ids(&cone(0.0, 0.0, 0.5), &cat), ["east", "west"]);
    assert_eq!(ids(&cone(359.9, 0.0, 0.15), &cat), ["east"]);
    assert_eq!(ids(&cone(0.1, 0.0, 0.15), &cat), ["west"]);
    // Across the pole: 0.4° between pole-a and pole-b.
    assert_eq!(ids(&cone(0.0, 90.0, 0.5), &cat), ["pole-a", "pole-b"]);
    assert_eq!(
        ids(&cone(0.0, 90.0, 2.1), &cat),
        ["pole-a", "pole-b", "pole-c"]
    );
    assert_eq!(ids(&cone(270.0, -90.0, 0.2), &cat), ["south"]);
    // A radius on the rim: the Crab is exactly 0° from itself; west is 0.2° from (0, 0).
    assert_eq!(ids(&cone(83.6331, 22.0145, 1e-9), &cat), ["crab"]);
    assert_eq!(ids(&cone(0.0, 0.0, 0.2), &cat), ["east", "west"]);
    // The whole sky.
    assert_eq!(ids(&cone(10.0, 10.0, 180.0), &cat).len(), 8);
    // Out of range.
    for (ra, dec, r) in [
        (0.0, 91.0, 1.0),
        (0.0, 0.0, 0.0),
        (0.0, 0.0, 200.0),
        (f64::NAN, 0.0, 1.0),
    ] {
        let err = cat.search(&cone(ra, dec, r)).expect_err("bad cone");
        assert!(matches!(err, CatalogError::Query(_)), "{err}");
    }
}

#[test]
fn every_filter_narrows_and_facets_count_all_matches() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cat = sky_catalog(tmp.path());
    let all = Query {
        page: Page {
            offset: 0,
            limit: 100,
        },
        facets: true,
        ..Query::default()
    };
    let r = cat.search(&all).expect("search");
    assert_eq!(r.total, 8);
    let missions = &r.facets[&Facet::Mission];
    // Four each; ties are listed by value.
    assert_eq!(
        missions
            .iter()
            .map(|f| (f.value.as_str(), f.count))
            .collect::<Vec<_>>(),
        [("Gaia", 4), ("XMM", 4)]
    );
    assert_eq!(
        r.facets[&Facet::ProductType]
            .iter()
            .map(|f| f.count)
            .sum::<u64>(),
        8
    );

    let with = |f: &dyn Fn(&mut Query)| {
        let mut q = all.clone();
        f(&mut q);
        ids(&q, &cat)
    };
    assert_eq!(with(&|q| q.text = Some("crab".into())), ["crab"]);
    assert_eq!(with(&|q| q.text = Some("spectrum gaia".into())), ["south"]);
    assert_eq!(
        with(&|q| q.text = Some("\"taken with xmm\"".into())).len(),
        4
    );
    assert_eq!(with(&|q| q.text = Some("pol*".into())).len(), 3);
    fn filter(facet: Facet, v: &'static str) -> impl Fn(&mut Query) {
        move |q: &mut Query| {
            q.filters.insert(facet, vec![v.to_owned()]);
        }
    }
    assert_eq!(
        with(&filter(Facet::Mission, "gaia")).len(),
        4,
        "case does not matter"
    );
    assert_eq!(with(&filter(Facet::Instrument, "XMM-cam")).len(), 4);
    assert_eq!(
        with(&filter(Facet::ProductType, "spectrum")),
        ["far", "south"]
    );
    assert_eq!(with(&filter(Facet::Band, "x-ray")).len(), 4);
    assert_eq!(with(&filter(Facet::Licence, "CC-BY-4.0")).len(), 8);
    assert_eq!(with(&filter(Facet::Publisher, "MPIA")).len(), 4);
    assert_eq!(
        with(&|q| q.tags = vec!["polar".into()]),
        ["pole-a", "pole-b", "pole-c"]
    );
    assert_eq!(with(&|q| q.collections = vec!["other".into()]).len(), 0);
    let mjd = |d: &str| iso_to_mjd(d).expect("date");
    assert_eq!(
        with(&|q| q.time = Some(TimeRange {
            start: Some(mjd("2019-01-15")),
            end: Some(mjd("2019-12-31"))
        })),
        ["pole-b", "pole-c"]
    );
    // An observation overlapping the start counts: pole-a runs from 00:00 to 01:00.
    assert_eq!(
        with(&|q| q.time = Some(TimeRange {
            start: Some(mjd("2019-01-01T00:30:00")),
            end: Some(mjd("2019-01-01T00:40:00"))
        })),
        ["pole-a"]
    );
    // Filters combine.
    assert_eq!(
        with(&|q| {
            q.filters.insert(Facet::Mission, vec!["XMM".into()]);
            q.cone = Some(Cone {
                ra: 0.0,
                dec: 0.0,
                radius: 3.0,
            });
            q.time = Some(TimeRange {
                start: Some(mjd("2020-03-01")),
                end: None,
            });
        }),
        ["far", "west"]
    );
}

#[test]
fn pages_are_stable_and_complete() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cat = sky_catalog(tmp.path());
    // With and without facets: two ways to the same pages.
    let sorts = [
        Sort::Relevance,
        Sort::Time,
        Sort::TimeDesc,
        Sort::Title,
        Sort::Id,
    ];
    let mut orders: Vec<Vec<String>> = Vec::new();
    for (sort, facets) in sorts.into_iter().flat_map(|s| [(s, false), (s, true)]) {
        let mut seen = Vec::new();
        for offset in (0..8).step_by(3) {
            let q = Query {
                sort,
                facets,
                page: Page { offset, limit: 3 },
                ..Query::default()
            };
            let r = cat.search(&q).expect("search");
            assert_eq!(r.total, 8);
            seen.extend(r.hits.into_iter().map(|h| h.id));
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 8, "{sort:?}: pages overlap or skip: {seen:?}");
        if sort == Sort::Time {
            assert!(seen[0].contains("crab"), "earliest first: {seen:?}");
        }
        if sort == Sort::TimeDesc {
            assert!(seen[0].contains("far"), "latest first: {seen:?}");
        }
        if facets {
            let without = orders.last().expect("the page order without facets");
            assert_eq!(&seen, without, "{sort:?}: facets change the order");
        }
        orders.push(seen);
    }
}

#[test]
fn hostile_queries_get_errors_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cat = sky_catalog(tmp.path());
    let before = cat.fingerprint().expect("fingerprint");
    let injections = [
        "'; DROP TABLE products; --",
        "\" OR 1=1 --",
        "x') UNION SELECT * FROM sqlite_master --",
        "crab NEAR(x y) OR title:*",
        "\0\u{202e}\u{feff}",
    ];
    for text in injections {
        let mut q = Query {
            text: Some(text.into()),
            ..Query::default()
        };
        // Text is matched as words, never as syntax.
        let _ = cat.search(&q).map(|r| assert!(r.total <= 8));
        q.text = None;
        for facet in Facet::ALL {
            q.filters.insert(facet, vec![text.into()]);
        }
        q.tags = vec![text.into()];
        q.collections = vec![text.into()];
        let r = cat.search(&q).expect("a filter value is only a value");
        assert_eq!(r.total, 0, "{text}");
    }
    for (offset, limit) in [(0, 0), (0, 1001), (u32::MAX, 10), (9_999, 2)] {
        let q = Query {
            page: Page { offset, limit },
            ..Query::default()
        };
        let err = cat.search(&q).expect_err("absurd page");
        assert!(matches!(err, CatalogError::Query(_)), "{err}");
    }
    let long = Query {
        text: Some("x".repeat(5000)),
        ..Query::default()
    };
    assert!(cat.search(&long).is_err());
    // ADQL that reaches past the served tables, or writes, is refused with words that say so.
    for adql in [
        "SELECT * FROM sqlite_master",
        "SELECT * FROM ivoa.obscore; DROP TABLE products",
        "SELECT * FROM ivoa.obscore UNION SELECT * FROM products",
        "SELECT * FROM ivoa.obscore WHERE obs_id = 'x' OR 1=1",
        "SELECT * FROM TAP_SCHEMA.secrets",
        "SELECT * FROM tap_schema_columns",
        "SELECT * FROM (SELECT * FROM products) AS p",
        "DELETE FROM products",
    ] {
        let err = cat.tap(adql, 100).expect_err(adql).to_string();
        assert!(!err.is_empty(), "{adql}");
    }
    let rows = cat
        .tap(
            "SELECT obs_id FROM ivoa.obscore WHERE obs_id = '''; DROP TABLE products; --'",
            100,
        )
        .expect("a string literal is only a value");
    assert!(rows.rows.is_empty());
    assert_eq!(cat.fingerprint().expect("fingerprint"), before);
}

#[test]
fn tap_answers_the_adql_subset_with_the_expected_rows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cat = sky_catalog(tmp.path());
    let rows = cat
        .tap(
            "SELECT TOP 10 target_name, s_ra FROM ivoa.obscore \
             WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 0, 0, 0.5)) = 1 ORDER BY s_ra",
            100,
        )
        .expect("cone");
    let names: Vec<&orrery_catalog::Value> = rows.rows.iter().map(|r| &r[0]).collect();
    assert_eq!(
        names,
        [
            &orrery_catalog::Value::Text("west".into()),
            &orrery_catalog::Value::Text("east".into())
        ]
    );
    let rows = cat
        .tap(
            "SELECT obs_id FROM ivoa.obscore WHERE dataproduct_type IN ('cube', 'event')",
            100,
        )
        .expect("in");
    assert_eq!(rows.rows.len(), 2);
    let rows = cat.tap("SELECT * FROM ivoa.obscore", 3).expect("maxrec");
    assert_eq!(rows.rows.len(), 3);
    assert!(rows.overflow);
    // A TOP the query asked for is not an overflow; MAXREC cutting below TOP is.
    let rows = cat
        .tap("SELECT TOP 2 * FROM ivoa.obscore", 100)
        .expect("top");
    assert_eq!(rows.rows.len(), 2);
    assert!(!rows.overflow);
    let rows = cat
        .tap("SELECT TOP 5 * FROM ivoa.obscore", 3)
        .expect("top over maxrec");
    assert!(rows.overflow);
    assert_eq!(rows.columns.len(), orrery_catalog::obscore::COLUMNS.len());
}

mod fits_fuzz {
    use std::io::Cursor;
    use std::sync::OnceLock;

    use orrery_node::catalog::ingest::read_fits;
    use proptest::prelude::*;

    /// Real FITS files made by astropy: an image and an event list with a binary table.
    fn samples() -> &'static [Vec<u8>] {
        static SAMPLES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        SAMPLES.get_or_init(|| {
            let tmp = tempfile::tempdir().expect("tempdir");
            super::make_fits(tmp.path(), "xmm-epic,xmm-events", false);
            ["xmm-epic", "xmm-events"]
                .iter()
                .map(|c| {
                    let dir = tmp.path().join(c);
                    let first = std::fs::read_dir(&dir)
                        .expect("dir")
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .min()
                        .expect("a file");
                    std::fs::read(first).expect("read")
                })
                .collect()
        })
    }

    #[test]
    fn the_samples_read() {
        for bytes in samples() {
            let meta = read_fits(Cursor::new(bytes), bytes.len() as u64).expect("reads");
            assert!(meta.target.is_some());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Bytes changed anywhere in the headers, or the file cut anywhere, give an answer or an
        /// error: never a panic, a hang or a runaway allocation.
        #[test]
        fn mutated_fits_never_panics(
            which in 0usize..2,
            edits in proptest::collection::vec((0usize..11_520, any::<u8>()), 1..24),
            cut in proptest::option::of(0usize..30_000),
        ) {
            let mut bytes = samples()[which].clone();
            for (at, b) in edits {
                if at < bytes.len() {
                    bytes[at] = b;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.min(bytes.len()));
            }
            let len = bytes.len() as u64;
            let _ = read_fits(Cursor::new(bytes), len);
        }

        /// Cards replaced by hostile ones: absurd axes, negative sizes, endless CONTINUEs.
        #[test]
        fn hostile_cards_never_panic(
            which in 0usize..2,
            card in 1usize..30,
            text in prop_oneof![
                Just("NAXIS1  =          99999999999".to_string()),
                Just("NAXIS   =                  999".to_string()),
                Just("NAXIS2  =                   -1".to_string()),
                Just("BITPIX  =                    7".to_string()),
                Just("TFIELDS =              9999999".to_string()),
                Just("PCOUNT  =  9223372036854775807".to_string()),
                Just("CONTINUE  '&'".to_string()),
                Just("END".to_string()),
                "[ -~]{0,80}",
            ],
        ) {
            let mut bytes = samples()[which].clone();
            let mut line = text.into_bytes();
            line.resize(80, b' ');
            let at = card * 80;
            bytes[at..at + 80].copy_from_slice(&line);
            let len = bytes.len() as u64;
            let _ = read_fits(Cursor::new(bytes), len);
        }
    }
}

/// Writes `n` small described files (a CSV each, with its sidecar) into `dir`.
/// Queries the parser accepts but SQLite's own limits refuse (expression depth 1000, LIKE
/// patterns of 50000 bytes, 2000 ORDER BY terms) are the client's mistake: a "too complex"
/// error (HTTP 400), never a service failure (HTTP 500).
#[test]
fn queries_beyond_sqlite_limits_are_the_clients_mistake() {
    use orrery_node::catalog::tap::TapQueryError;
    let tmp = tempfile::tempdir().expect("tempdir");
    let cat = sky_catalog(tmp.path());
    let or_chain = (0..1500)
        .map(|i| format!("obs_id = 'o{i}'"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let order_keys = vec!["s_ra"; 2100].join(", ");
    let queries = [
        (
            "a 1500-term OR chain",
            format!("SELECT obs_id FROM ivoa.obscore WHERE {or_chain}"),
        ),
        (
            "a 55000-character LIKE pattern",
            format!(
                "SELECT obs_id FROM ivoa.obscore WHERE obs_id LIKE '{}%'",
                "a".repeat(55_000)
            ),
        ),
        (
            "2100 ORDER BY keys",
            format!("SELECT obs_id FROM ivoa.obscore ORDER BY {order_keys}"),
        ),
    ];
    for (what, adql) in queries {
        match cat.tap(&adql, 100) {
            Err(TapQueryError::Adql(_) | TapQueryError::TooComplex { .. }) => {}
            Err(e @ TapQueryError::Catalog(_)) => panic!("{what}: a service failure: {e}"),
            Ok(rows) => panic!("{what}: answered with {} rows", rows.rows.len()),
        }
    }
}

fn described_files(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..n {
        std::fs::write(dir.join(format!("f{i:04}.csv")), format!("t,flux\n{i},1\n")).expect("csv");
        std::fs::write(
            dir.join(format!("f{i:04}.csv.meta.json")),
            format!(r#"{{"title": "file {i}", "mission": "Test", "format": "text/csv"}}"#),
        )
        .expect("sidecar");
    }
}

/// Stops a scan after `after` files, as a killed process or a stopped machine would.
struct Interrupt {
    after: u64,
    done: std::sync::atomic::AtomicU64,
}

impl orrery_node::catalog::ingest::Progress for Interrupt {
    fn start(&self, _: u64, _: u64) {}
    fn file_done(&self, _: u64) {
        if self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == self.after {
            panic!("interrupted");
        }
    }
    fn warn(&self, _: &str) {}
    fn finish(&self) {}
}

#[test]
fn an_interrupted_scan_leaves_the_collection_marked_incomplete() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("files");
    described_files(&dir, 300);
    let mut cat = catalog(tmp.path());
    let stop = Interrupt {
        after: 290,
        done: Default::default(),
    };
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ingest(&mut cat, &options("part", &dir), &stop)
    }));
    assert!(interrupted.is_err(), "the scan was interrupted");
    let c = cat.collection("part").expect("the collection exists");
    assert!(
        c.products > 0 && c.products < 300,
        "part of it was written: {}",
        c.products
    );
    assert!(!c.complete, "and it is marked incomplete");
    let summaries = cat.summaries().expect("summaries");
    assert!(
        summaries.iter().all(|s| s.id != "part" || !s.complete),
        "and advertised as incomplete"
    );

    let r = ingest(&mut cat, &options("part", &dir), &Silent).expect("a whole scan");
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let c = cat.collection("part").expect("collection");
    assert_eq!(c.products, 300);
    assert!(c.complete, "a finished scan marks it complete");
    assert!(
        cat.summaries()
            .expect("summaries")
            .iter()
            .any(|s| s.id == "part" && s.complete)
    );
}

#[test]
fn a_directory_holding_the_node_data_is_refused_and_links_are_not_followed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("node.key"), b"SECRET").expect("key");
    let mut cat = catalog(&data);
    for root in [tmp.path().to_path_buf(), data.clone(), data.join("inside")] {
        std::fs::create_dir_all(&root).expect("mkdir");
        let mut opts = options("everything", &root);
        opts.protected = vec![data.clone()];
        let err = ingest(&mut cat, &opts, &Silent).expect_err("refused");
        assert!(
            matches!(err, CatalogError::ProtectedRoot { .. }),
            "{}: {err}",
            root.display()
        );
        assert!(err.to_string().contains("data directory"), "{err}");
    }
    assert!(
        cat.collections().expect("list").is_empty(),
        "nothing written"
    );

    // Links, even to files inside the collection, are reported and never catalogued.
    let dir = tmp.path().join("files");
    described_files(&dir, 1);
    std::os::unix::fs::symlink(dir.join("f0000.csv"), dir.join("alias.csv")).expect("link");
    std::fs::copy(
        dir.join("f0000.csv.meta.json"),
        dir.join("alias.csv.meta.json"),
    )
    .expect("cp");
    std::os::unix::fs::symlink(data.join("node.key"), dir.join("key.csv")).expect("link");
    let mut opts = options("files", &dir);
    opts.protected = vec![data.clone()];
    let r = ingest(&mut cat, &opts, &Silent).expect("ingest");
    assert_eq!(r.added, 1);
    assert!(problem(&r, "alias.csv").contains("not followed"));
    assert!(problem(&r, "key.csv").contains("outside the collection"));
}

#[test]
fn changed_flags_reach_every_product_and_a_collection_keeps_its_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    make_fits(&data, "xmm-epic", false);
    let dir = data.join("xmm-epic");
    let mut cat = catalog(tmp.path());
    // Through TAP, as a client sees them: the distinct calibration levels and missions.
    let distinct = |cat: &Catalog, column: &str| -> Vec<String> {
        let rows = cat
            .tap(
                &format!("SELECT {column} FROM ivoa.obscore WHERE obs_publisher_did LIKE '%epic%'"),
                10_000,
            )
            .expect("tap");
        let mut v: Vec<String> = rows.rows.iter().map(|r| format!("{:?}", r[0])).collect();
        v.sort();
        v.dedup();
        v
    };
    let level = |cat: &Catalog| distinct(cat, "calib_level");
    let mut opts = options("epic", &dir);
    opts.defaults.calib_level = Some(1);
    opts.defaults.mission = Some("XMM-Newton".into());
    let first = ingest(&mut cat, &opts, &Silent).expect("ingest");
    assert!(first.added > 0 && !first.defaults_changed);
    assert_eq!(level(&cat), vec!["Int(1)"]);

    // The same scan without flags keeps them, and reads nothing again.
    let again = ingest(&mut cat, &options("epic", &dir), &Silent).expect("again");
    assert_eq!(
        (again.unchanged, again.defaults_changed),
        (first.added, false)
    );
    assert_eq!(level(&cat), vec!["Int(1)"]);

    // A changed flag reaches every product, unchanged files included.
    let mut changed = options("epic", &dir);
    changed.defaults.calib_level = Some(2);
    let r = ingest(&mut cat, &changed, &Silent).expect("changed");
    assert!(r.defaults_changed);
    assert_eq!(r.updated, first.added, "every file read again");
    assert_eq!(level(&cat), vec!["Int(2)"]);
    assert_eq!(
        distinct(&cat, "obs_collection"),
        vec!["Text(\"XMM-Newton\")"],
        "--mission applies over TELESCOP"
    );

    // The id names this directory: another one is refused unless it moved.
    let other = tmp.path().join("other");
    described_files(&other, 2);
    let err = ingest(&mut cat, &options("epic", &other), &Silent).expect_err("refused");
    assert!(matches!(err, CatalogError::RootChanged { .. }), "{err}");
    assert!(err.to_string().contains("--moved"), "{err}");
    assert_eq!(
        cat.collection("epic").expect("kept").products,
        first.added,
        "nothing changed"
    );
    let mut moved = options("epic", &other);
    moved.moved = true;
    let r = ingest(&mut cat, &moved, &Silent).expect("moved");
    assert_eq!((r.added, r.removed), (2, first.added));
}
