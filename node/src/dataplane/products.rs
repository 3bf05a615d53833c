//! Dataset products on the data plane. A product is named by the BLAKE3 the catalog keeps for
//! it (the same hash iroh-blobs uses); it is served from where the archive keeps it, opened
//! confined to its collection's root (`crate::catalog::confined`), never copied. Its outboard is
//! made on first serve, one file at a time, and kept under `outboards/<hash>` in the data
//! directory; every later serve checks the file against it group by group, so a file changed
//! since it was catalogued stops being served at the first changed group.
//!
//! A collection's policy (`collections.holders`, set by `orrery dataset policy`) names the
//! member nodes that may fetch its files; without one, every member may. The gate checks it
//! before the file is opened.

use std::path::{Path, PathBuf};

use orrery_protocol::NodeId;
use orrery_protocol::advert::CollectionSummary;
use rusqlite::{OptionalExtension, params};
use tracing::warn;

use super::outboards::Outboards;
use super::serve::{Refusal, Source};
use crate::catalog::{Catalog, CatalogError};
use crate::home::Home;

/// Catalog rows looked at for one hash (the same bytes in several collections).
const MAX_ROWS: usize = 16;

/// Serves dataset products to the data plane.
#[derive(Debug, Clone)]
pub struct Products {
    db: PathBuf,
    outboards: Outboards,
}

/// A catalogued copy of the bytes asked for.
struct Row {
    collection: String,
    path: String,
    size: u64,
    root: String,
    holders: Option<String>,
}

impl Products {
    /// The products of the node at `home`.
    pub fn new(home: &Home, outboards: Outboards) -> Self {
        Self {
            db: home.database(),
            outboards,
        }
    }

    /// The product whose bytes hash to `hash`, opened for `peer` if a collection holding it
    /// lets `peer` have it.
    pub async fn open(&self, peer: NodeId, hash: [u8; 32]) -> Result<Source, Refusal> {
        let db = self.db.clone();
        let rows = tokio::task::spawn_blocking(move || rows(&db, &hash))
            .await
            .map_err(|_| Refusal::Busy)?
            .map_err(|e| {
                warn!(error = %e, "the catalog could not be read for a data-plane request");
                Refusal::Busy
            })?;
        let Some(row) = rows.iter().find(|r| allows(r.holders.as_deref(), peer)) else {
            return Err(match rows.first() {
                Some(r) => Refusal::NotPermitted {
                    rule: format!(
                        "collection {} lets only the nodes its policy names fetch its files (`orrery dataset policy`)",
                        r.collection
                    ),
                },
                None => Refusal::Missing,
            });
        };
        let product = format!("{}/{}", row.collection, row.path);
        let damaged = product.clone();
        self.outboards
            .serve(
                PathBuf::from(&row.root),
                row.path.clone(),
                row.size,
                hash,
                product,
                move || {
                    warn!(product = %damaged, "a product's file no longer matches its catalogued BLAKE3: it is not served until `orrery dataset add` catalogues it again");
                },
            )
            .await
    }
}

fn rows(db: &Path, hash: &[u8; 32]) -> Result<Vec<Row>, CatalogError> {
    let catalog = Catalog::open_read_only(db)?;
    let mut stmt = catalog.conn.prepare(
        "SELECT p.collection, p.path, p.size, c.root, c.holders FROM products p
         JOIN collections c ON c.id = p.collection
         WHERE p.blake3 = ?1 AND c.scan_started_at IS NULL LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![hash.as_slice(), MAX_ROWS as i64], |r| {
            Ok(Row {
                collection: r.get(0)?,
                path: r.get(1)?,
                size: r.get::<_, i64>(2)?.max(0) as u64,
                root: r.get(3)?,
                holders: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Whether a collection's policy (`holders`, JSON list of node ids, or none) lets `peer`
/// fetch its files. A policy that does not parse lets no one.
fn allows(holders: Option<&str>, peer: NodeId) -> bool {
    let Some(list) = holders else { return true };
    serde_json::from_str::<Vec<String>>(list).is_ok_and(|nodes| {
        nodes
            .iter()
            .any(|n| n.parse::<NodeId>().is_ok_and(|n| n == peer))
    })
}

/// Why a collection's policy could not be set.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The catalog refused.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// SQLite refused.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// No such collection.
    #[error("no collection {0} on this node; `orrery dataset list` shows them")]
    NoCollection(String),
    /// More nodes than an advert names.
    #[error("a collection's policy names at most {max} nodes, not {0}", max = orrery_protocol::advert::CollectionSummary::MAX_READERS)]
    TooMany(usize),
}

/// Sets which member nodes may fetch `collection`'s files over the data plane: `None` lets
/// every member; `Some(nodes)` only those.
pub fn set_holders(
    catalog: &Catalog,
    collection: &str,
    holders: Option<&[NodeId]>,
) -> Result<(), PolicyError> {
    if let Some(h) = holders.filter(|h| h.len() > CollectionSummary::MAX_READERS) {
        return Err(PolicyError::TooMany(h.len()));
    }
    let json = holders.map(|h| {
        serde_json::Value::from(h.iter().map(ToString::to_string).collect::<Vec<_>>()).to_string()
    });
    // A changed policy changes the advert (its readers): the running node re-advertises.
    let tx = catalog.conn.unchecked_transaction()?;
    let n = tx.execute(
        "UPDATE collections SET holders = ?2 WHERE id = ?1",
        params![collection, json],
    )?;
    if n == 0 {
        return Err(PolicyError::NoCollection(collection.to_owned()));
    }
    crate::catalog::bump_generation(&tx)?;
    tx.commit()?;
    Ok(())
}

/// The nodes a collection's policy names (`None`: every member).
pub fn holders(catalog: &Catalog, collection: &str) -> Result<Option<Vec<String>>, PolicyError> {
    let row: Option<Option<String>> = catalog
        .conn
        .query_row(
            "SELECT holders FROM collections WHERE id = ?1",
            [collection],
            |r| r.get(0),
        )
        .optional()?;
    let Some(holders) = row else {
        return Err(PolicyError::NoCollection(collection.to_owned()));
    };
    Ok(holders.map(|h| serde_json::from_str(&h).unwrap_or_default()))
}

/// A product fetched to this node from another one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fetched {
    /// `collection/path` at the node it came from.
    pub product: String,
    /// That node (its id in hex in JSON).
    #[serde(serialize_with = "as_text")]
    pub origin: NodeId,
    /// Its BLAKE3 (verified).
    pub blake3: String,
    /// Its size.
    pub size: u64,
    /// Where it is kept on this node.
    pub path: String,
    /// When it arrived (seconds since the epoch).
    pub fetched_at: i64,
}

fn as_text<S: serde::Serializer>(node: &NodeId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(node)
}

/// Records a fetched product (replacing an earlier record of the same product).
pub fn record_fetched(catalog: &Catalog, f: &Fetched, hash: &[u8; 32]) -> Result<(), PolicyError> {
    catalog.conn.execute(
        "INSERT INTO fetched_products (product, origin, blake3, size, path, fetched_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (product) DO UPDATE SET origin = ?2, blake3 = ?3, size = ?4, path = ?5,
             fetched_at = ?6",
        params![
            f.product,
            f.origin.0.as_bytes().as_slice(),
            hash.as_slice(),
            f.size as i64,
            f.path,
            f.fetched_at
        ],
    )?;
    Ok(())
}

/// The products fetched to this node, newest first.
pub fn fetched(catalog: &Catalog) -> Result<Vec<Fetched>, PolicyError> {
    let mut stmt = catalog.conn.prepare(
        "SELECT product, origin, blake3, size, path, fetched_at FROM fetched_products
         ORDER BY fetched_at DESC, product",
    )?;
    let rows = stmt
        .query_map([], |r| {
            let origin: Vec<u8> = r.get(1)?;
            let hash: Vec<u8> = r.get(2)?;
            Ok((
                r.get::<_, String>(0)?,
                origin,
                hex::encode(hash),
                r.get::<_, i64>(3)?.max(0) as u64,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(product, origin, blake3, size, path, fetched_at)| {
            let origin = orrery_protocol::PublicKey::from_bytes(&origin).ok()?;
            Some(Fetched {
                product,
                origin: NodeId(origin),
                blake3,
                size,
                path,
                fetched_at,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_names_the_nodes_that_may_fetch() {
        let a = NodeId(
            orrery_protocol::SecretKey::generate()
                .expect("key")
                .public(),
        );
        let b = NodeId(
            orrery_protocol::SecretKey::generate()
                .expect("key")
                .public(),
        );
        assert!(allows(None, a), "no policy: every member");
        let only_a = serde_json::json!([a.to_string()]).to_string();
        assert!(allows(Some(&only_a), a));
        assert!(!allows(Some(&only_a), b));
        assert!(!allows(Some("not json"), a), "a broken policy lets no one");
        assert!(!allows(Some("[]"), a));
    }
}
