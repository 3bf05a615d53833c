//! The catalog: the collections and data products this node holds, searchable by text, facets,
//! a cone on the sky and a time range, and served as `ivoa.obscore` over TAP.
//!
//! It lives in the node's database (migration `0003.sql`) behind its own connection, so
//! searches read while an ingest writes (WAL). [`ingest`] fills it from a directory;
//! [`search`] answers the one query model of `orrery_catalog::Query`; [`tap`] runs checked ADQL.
//!
//! Every product has a `calib_level` (ObsCore makes it mandatory): a header, sidecar or option
//! sets it, and a product with none is level 1, instrumental data in a standard format
//! ([`meta::DEFAULT_CALIB_LEVEL`]; migration `0005.sql` gives it to products catalogued before).

pub mod confined;
pub mod ingest;
pub mod meta;
pub mod search;
pub mod tap;
mod tap_schema;

use std::path::Path;
use std::time::Duration;

use orrery_protocol::advert::CollectionSummary;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use crate::store::Store;

/// Why the catalog failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// Opening or migrating the database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// No such collection.
    #[error("no collection `{0}`; `orrery dataset list` shows them")]
    NoCollection(String),
    /// No such product.
    #[error("no product `{0}`; `orrery search` finds them")]
    NoProduct(String),
    /// A bad collection id.
    #[error(
        "collection id `{0}` must be 1-64 characters of letters, digits, '-', '_' or '.', starting with a letter or digit"
    )]
    BadCollectionId(String),
    /// The query is not valid.
    #[error("invalid query: {0}")]
    Query(#[from] orrery_catalog::QueryError),
    /// A file-system error, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Too many queries are running; try again shortly.
    #[error("the node is busy with other queries; try again shortly")]
    Busy,
    /// The search took too long and was stopped.
    #[error("the query took longer than {0:?} and was stopped; narrow it")]
    Timeout(Duration),
    /// A collection's directory holds (or is inside) the node's own data directory.
    #[error(
        "{root} holds the node's data directory {data} (its keys and database), or lies inside it; a collection must be a directory of its own"
    )]
    ProtectedRoot {
        /// The collection's directory.
        root: String,
        /// The node's data directory.
        data: String,
    },
    /// A collection id already names a collection scanned from another directory.
    #[error(
        "collection `{collection}` is scanned from {stored}, not {given}; if the directory moved, pass --moved to scan {given} into it instead; to publish {given} as another collection, choose another --collection id"
    )]
    RootChanged {
        /// The collection.
        collection: String,
        /// Where it is scanned from.
        stored: String,
        /// The directory given now.
        given: String,
    },
    /// A catalogued file is not served.
    #[error("product {product} is not served: {source}")]
    Confined {
        /// `collection/path`.
        product: String,
        /// Why.
        #[source]
        source: confined::ConfinedError,
    },
    /// The collection's policy names the nodes that may fetch its files: they do, over the data
    /// plane; nobody gets them over HTTP.
    #[error(
        "{0} belongs to a collection restricted to the nodes its policy names (`orrery dataset policy`); they fetch it with `orrery dataset fetch`, it is not served over HTTP"
    )]
    Restricted(String),
}

/// A collection, with its product count and size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Collection {
    /// Its id on this node.
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Mission.
    pub mission: Option<String>,
    /// Licence.
    pub licence: Option<String>,
    /// Publisher.
    pub publisher: Option<String>,
    /// Band.
    pub band: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// The directory it was scanned from.
    pub root: String,
    /// Number of products.
    pub products: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Last scan (seconds since the epoch).
    pub updated_at: i64,
    /// Whether its last scan finished. `false` while a scan runs, or after one was interrupted:
    /// then the collection holds only part of its directory until `orrery dataset add` runs
    /// again.
    pub complete: bool,
}

/// Most collection summaries one advert carries.
pub const ADVERTISED_COLLECTIONS: usize = 128;

/// A product's file, opened for serving.
#[derive(Debug)]
pub struct ProductFile {
    /// The file, open for reading.
    pub file: std::fs::File,
    /// Its catalogued size (the open file has this size).
    pub size: u64,
    /// Its catalogued BLAKE3.
    pub blake3: [u8; 32],
    /// Its MIME type.
    pub format: String,
}

/// Marks the catalog as changed (see [`Catalog::generation`]); call in every write transaction.
pub(crate) fn bump_generation(tx: &rusqlite::Transaction<'_>) -> Result<(), rusqlite::Error> {
    tx.execute(
        "INSERT INTO catalog_settings (key, value) VALUES ('generation', '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [],
    )?;
    Ok(())
}

/// Checks a collection id: a short slug safe in URLs, file names and ADQL strings.
pub fn check_collection_id(id: &str) -> Result<(), CatalogError> {
    let ok = (1..=64).contains(&id.len())
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CatalogError::BadCollectionId(id.to_owned()))
    }
}

/// The catalog, over one connection.
pub struct Catalog {
    pub(crate) conn: Connection,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "cache_size", -65_536)?; // 64 MiB
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Reading pages through a memory map skips a copy into the page cache for every row.
    conn.pragma_update(None, "mmap_size", 1_i64 << 30)?;
    // TAP_SCHEMA lives in this connection's temporary tables, made before any query_only.
    tap_schema::create(conn)?;
    Ok(())
}

impl Catalog {
    /// Opens the catalog of the node database at `path` for reading and writing, running
    /// pending migrations first.
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        drop(Store::open(path)?);
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        configure(&conn)?;
        Ok(Self { conn })
    }

    /// Opens the catalog read-only, as searches and TAP do: no query can write through it.
    pub fn open_read_only(path: &Path) -> Result<Self, CatalogError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        configure(&conn)?;
        conn.pragma_update(None, "query_only", "ON")?;
        Ok(Self { conn })
    }

    /// A number that changes with every write to the catalog: summaries need recomputing only
    /// when it moved.
    pub fn generation(&self) -> Result<i64, CatalogError> {
        Ok(self
            .conn
            .query_row(
                "SELECT CAST(value AS INTEGER) FROM catalog_settings WHERE key = 'generation'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Runs a query on this catalog.
    pub fn search(
        &self,
        q: &orrery_catalog::Query,
    ) -> Result<orrery_catalog::SearchResults, CatalogError> {
        search::search(&self.conn, q)
    }

    /// Runs an ADQL query on this catalog's `ivoa.obscore`, returning at most `maxrec` rows.
    pub fn tap(&self, adql: &str, maxrec: u64) -> Result<tap::TapRows, tap::TapQueryError> {
        tap::run(&self.conn, adql, maxrec)
    }

    /// The number of products, and a digest of every stored row (to show that something
    /// changed nothing).
    pub fn fingerprint(&self) -> Result<(u64, String), CatalogError> {
        let mut hasher = blake3::Hasher::new();
        let mut n = 0u64;
        let mut stmt = self.conn.prepare(
            "SELECT collection, path, blake3, title, mission, ra, dec FROM products ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            n += 1;
            for i in 0..7 {
                hasher.update(format!("{:?}|", r.get_ref(i)?).as_bytes());
            }
        }
        let collections: i64 =
            self.conn
                .query_row("SELECT count(*) FROM collections", [], |r| r.get(0))?;
        hasher.update(&collections.to_le_bytes());
        Ok((n, hasher.finalize().to_hex().to_string()))
    }

    /// Sets the address products are served from (the `access_url` prefix of `ivoa.obscore`).
    pub fn set_public_url(&self, url: &str) -> Result<(), CatalogError> {
        self.conn.execute(
            "INSERT INTO catalog_settings (key, value) VALUES ('public_url', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [url.trim_end_matches('/')],
        )?;
        Ok(())
    }

    /// Every collection, by id.
    pub fn collections(&self) -> Result<Vec<Collection>, CatalogError> {
        let mut stmt = self.conn.prepare(
            "SELECT c.id, c.title, c.description,
                    coalesce(c.mission, (SELECT group_concat(m, ', ') FROM (SELECT DISTINCT mission AS m
                        FROM products p WHERE p.collection = c.id AND mission IS NOT NULL LIMIT 4))),
                    c.licence, c.publisher, c.band, c.tags,
                    c.root, c.updated_at,
                    (SELECT count(*) FROM products p WHERE p.collection = c.id),
                    (SELECT coalesce(sum(size), 0) FROM products p WHERE p.collection = c.id),
                    c.scan_started_at IS NULL
             FROM collections c ORDER BY c.id",
        )?;
        let rows = stmt.query_map([], |r| {
            let tags: String = r.get(7)?;
            Ok(Collection {
                id: r.get(0)?,
                title: r.get(1)?,
                description: r.get(2)?,
                mission: r.get(3)?,
                licence: r.get(4)?,
                publisher: r.get(5)?,
                band: r.get(6)?,
                tags: serde_json::from_str(&tags).unwrap_or_default(),
                root: r.get(8)?,
                updated_at: r.get(9)?,
                products: r.get::<_, i64>(10)?.max(0) as u64,
                bytes: r.get::<_, i64>(11)?.max(0) as u64,
                complete: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One collection.
    pub fn collection(&self, id: &str) -> Result<Collection, CatalogError> {
        self.collections()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| CatalogError::NoCollection(id.to_owned()))
    }

    /// Removes a collection and its products from the catalog (the files stay).
    pub fn remove_collection(&mut self, id: &str) -> Result<u64, CatalogError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists: Option<String> = tx
            .query_row("SELECT id FROM collections WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_none() {
            return Err(CatalogError::NoCollection(id.to_owned()));
        }
        let ids: Vec<i64> = tx
            .prepare("SELECT id FROM products WHERE collection = ?1")?
            .query_map([id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for pid in &ids {
            ingest::delete_product(&tx, *pid)?;
        }
        tx.execute("DELETE FROM collections WHERE id = ?1", [id])?;
        bump_generation(&tx)?;
        tx.commit()?;
        Ok(ids.len() as u64)
    }

    /// One product by its id (`collection/path`): its stored row as JSON-ready fields.
    pub fn product(&self, id: &str) -> Result<search::ProductDetail, CatalogError> {
        let (collection, path) = id
            .split_once('/')
            .ok_or_else(|| CatalogError::NoProduct(id.to_owned()))?;
        search::product_detail(&self.conn, collection, path)?
            .ok_or_else(|| CatalogError::NoProduct(id.to_owned()))
    }

    /// The file of a product, if the catalog holds it, opened for reading without following
    /// links and without leaving its collection's root (see [`confined`]), for HTTP: refused
    /// for a collection restricted to named nodes ([`CatalogError::Restricted`]).
    pub fn product_file(
        &self,
        collection: &str,
        path: &str,
    ) -> Result<Option<ProductFile>, CatalogError> {
        let row = self
            .conn
            .query_row(
                "SELECT c.root, p.size, p.blake3, p.format, c.holders IS NOT NULL FROM products p
                 JOIN collections c ON c.id = p.collection
                 WHERE p.collection = ?1 AND p.path = ?2",
                params![collection, path],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, bool>(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((root, size, hash, format, restricted)) = row else {
            return Ok(None);
        };
        if restricted {
            return Err(CatalogError::Restricted(format!("{collection}/{path}")));
        }
        let Ok(blake3) = <[u8; 32]>::try_from(hash) else {
            return Ok(None);
        };
        let size = size.max(0) as u64;
        let file = confined::open(Path::new(&root), path, size).map_err(|source| {
            CatalogError::Confined {
                product: format!("{collection}/{path}"),
                source,
            }
        })?;
        Ok(Some(ProductFile {
            file,
            size,
            blake3,
            format,
        }))
    }

    /// Summaries of every collection for this node's advert: what its products hold, so other
    /// nodes ask only those whose adverts can match a query.
    ///
    /// An advert has room for [`ADVERTISED_COLLECTIONS`] summaries; a node with more folds the
    /// rest into one that may match anything, so it is still asked.
    pub fn summaries(&self) -> Result<Vec<CollectionSummary>, CatalogError> {
        let mut out = Vec::new();
        let collections = self.collections()?;
        if collections.len() > ADVERTISED_COLLECTIONS {
            let rest = &collections[ADVERTISED_COLLECTIONS - 1..];
            let time: (Option<f64>, Option<f64>) = self.conn.query_row(
                "SELECT min(t_min), max(coalesce(t_max, t_min)) FROM products",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            out.push(CollectionSummary {
                id: "*".into(),
                title: format!("{} more collections", rest.len()),
                missions: None,
                instruments: None,
                product_types: None,
                bands: None,
                licences: None,
                publishers: None,
                tags: None,
                products: rest.iter().map(|c| c.products).sum(),
                bytes: rest.iter().map(|c| c.bytes).sum(),
                sky: vec![0xff; CollectionSummary::SKY_CELLS.div_ceil(8)],
                time: time.0.zip(time.1),
                complete: rest.iter().all(|c| c.complete),
                readers: None,
            });
        }
        for c in collections.into_iter().take(ADVERTISED_COLLECTIONS - 1) {
            let values = |column: &str| -> Result<Option<Vec<String>>, CatalogError> {
                let sql = format!(
                    "SELECT DISTINCT {column} FROM products WHERE collection = ?1 AND {column} IS NOT NULL LIMIT {}",
                    CollectionSummary::MAX_VALUES + 1
                );
                let vals: Vec<String> = self
                    .conn
                    .prepare(&sql)?
                    .query_map([&c.id], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok((vals.len() <= CollectionSummary::MAX_VALUES).then_some(vals))
            };
            let time: (Option<f64>, Option<f64>) = self.conn.query_row(
                "SELECT min(t_min), max(coalesce(t_max, t_min)) FROM products WHERE collection = ?1",
                [&c.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let mut sky = vec![0u8; CollectionSummary::SKY_CELLS.div_ceil(8)];
            let mut stmt = self.conn.prepare(
                "SELECT DISTINCT CAST(((dec + 90.0) / 10.0) AS INTEGER), CAST((ra / 10.0) AS INTEGER)
                 FROM products WHERE collection = ?1 AND ra IS NOT NULL",
            )?;
            let cells =
                stmt.query_map([&c.id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
            for cell in cells {
                let (row, col) = cell?;
                let index = CollectionSummary::sky_cell(row, col);
                sky[index / 8] |= 1 << (index % 8);
            }
            let readers: Option<String> = self.conn.query_row(
                "SELECT holders FROM collections WHERE id = ?1",
                [&c.id],
                |r| r.get(0),
            )?;
            // A policy that does not parse lets no one (as the data plane's gate reads it).
            let readers = readers.map(|json| {
                let mut nodes: Vec<orrery_protocol::NodeId> =
                    serde_json::from_str::<Vec<String>>(&json)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|n| n.parse().ok())
                        .collect();
                nodes.truncate(CollectionSummary::MAX_READERS);
                nodes
            });
            out.push(CollectionSummary {
                readers,
                complete: c.complete,
                id: c.id.clone(),
                title: c.title.clone(),
                missions: values("mission")?,
                instruments: values("instrument")?,
                product_types: values("product_type")?,
                bands: values("band")?,
                licences: values("licence")?,
                publishers: values("publisher")?,
                tags: {
                    let tags: Vec<String> = self
                        .conn
                        .prepare(&format!(
                            "SELECT DISTINCT t.tag FROM product_tags t JOIN products p ON p.id = t.product
                             WHERE p.collection = ?1 LIMIT {}",
                            CollectionSummary::MAX_VALUES + 1
                        ))?
                        .query_map([&c.id], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    (tags.len() <= CollectionSummary::MAX_VALUES).then_some(tags)
                },
                products: c.products,
                bytes: c.bytes,
                sky,
                time: time.0.zip(time.1),
            });
        }
        Ok(out)
    }
}
