//! Searching the local catalog with the one query model.
//!
//! A query becomes one parameterised SQL statement: the text through the FTS5 index, facets on
//! indexed columns, the cone through the R*Tree box and then the exact dot product, the time
//! range as an overlap. The page is sorted by SQL with the product id last, so pages are
//! stable; the total and the facet counts come from one more pass over the matches.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use orrery_catalog::query::MAX_FACET_VALUES;
use orrery_catalog::{Facet, FacetCount, Hit, Query, SearchResults, Sort};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use serde::Serialize;

use super::CatalogError;

/// The longest a local search may run.
pub const SEARCH_DEADLINE: Duration = Duration::from_secs(5);

/// The product column behind a facet, if it has one.
fn facet_column(facet: Facet) -> Option<&'static str> {
    Some(match facet {
        Facet::Mission => "p.mission",
        Facet::Instrument => "p.instrument",
        Facet::ProductType => "p.product_type",
        Facet::Band => "p.band",
        Facet::Licence => "p.licence",
        Facet::Publisher => "p.publisher",
        Facet::Node => return None,
    })
}

/// The facet filters with a token in the text index: (facet, token prefix).
const FACET_TOKENS: [(Facet, char); 6] = [
    (Facet::Mission, 'm'),
    (Facet::Instrument, 'i'),
    (Facet::ProductType, 't'),
    (Facet::Band, 'b'),
    (Facet::Licence, 'l'),
    (Facet::Publisher, 'p'),
];

/// A facet value as one token of the text index's `facets` column: a prefix naming the facet,
/// `x`, then the value's letters and digits in lower case (`XMM-Newton` → `mxxmmnewton`). Two
/// values may share a token; the exact filter runs after, so that only costs a row.
fn facet_token(prefix: char, value: &str) -> String {
    let mut t = String::with_capacity(value.len() + 2);
    t.push(prefix);
    t.push('x');
    t.extend(
        value
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase),
    );
    t
}

/// The `facets` column of a product's text entry.
pub(crate) fn facet_tokens(m: &super::meta::ProductMeta) -> String {
    let mission = m.mission.as_ref().or(m.facility.as_ref());
    [
        ('m', mission),
        ('i', m.instrument.as_ref()),
        ('t', m.product_type.as_ref()),
        ('b', m.band.as_ref()),
        ('l', m.licence.as_ref()),
        ('p', m.publisher.as_ref()),
    ]
    .iter()
    .filter_map(|(p, v)| v.map(|v| facet_token(*p, v)))
    .collect::<Vec<_>>()
    .join(" ")
}

/// Turns free text into an FTS5 query that means "all these words": every word is quoted, so no
/// FTS5 syntax from the user is interpreted; `"a phrase"` stays a phrase; `word*` stays a prefix.
pub fn fts_query(text: &str) -> Option<String> {
    let mut terms = Vec::new();
    let mut in_phrase = false;
    for (i, part) in text.split('"').enumerate() {
        if i > 0 {
            in_phrase = !in_phrase;
        }
        if in_phrase {
            let words: Vec<String> = words(part).map(|(w, _)| w).collect();
            if !words.is_empty() {
                terms.push(format!("\"{}\"", words.join(" ")));
            }
        } else {
            for (word, prefix) in words(part) {
                terms.push(if prefix {
                    format!("\"{word}\"*")
                } else {
                    format!("\"{word}\"")
                });
            }
        }
    }
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// The words of a text: runs of letters and digits, and whether each ended in `*`.
fn words(text: &str) -> impl Iterator<Item = (String, bool)> + '_ {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else if !word.is_empty() {
            let prefix = c == '*';
            out.push((std::mem::take(&mut word), prefix));
        }
        if word.len() > 128 {
            out.push((std::mem::take(&mut word), false));
        }
    }
    if !word.is_empty() {
        out.push((word, false));
    }
    out.into_iter().take(32)
}

/// The FROM and WHERE of a query, with its parameters, and the rank expression.
struct Plan {
    from_where: String,
    params: Vec<SqlValue>,
    rank: &'static str,
}

fn plan(q: &Query) -> Result<Plan, CatalogError> {
    let mut sql = String::new();
    let mut params: Vec<SqlValue> = Vec::new();
    let rank;
    if let Some(text) = &q.text {
        let words = fts_query(text).ok_or(orrery_catalog::QueryError::Text)?;
        // The words are looked for in the text columns; facet filters also narrow the index
        // search through their tokens, so fewer rows are read to apply them exactly.
        let mut fts = format!("{{title description target header}} : ({words})");
        for (facet, prefix) in FACET_TOKENS {
            if let Some(values) = q.filters.get(&facet) {
                let tokens: Vec<String> = values
                    .iter()
                    .map(|v| format!("\"{}\"", facet_token(prefix, v)))
                    .collect();
                fts.push_str(&format!(" AND facets : ({})", tokens.join(" OR ")));
            }
        }
        sql.push_str(
            " FROM product_text JOIN products p ON p.id = product_text.rowid WHERE product_text MATCH ?",
        );
        params.push(SqlValue::Text(fts));
        rank = "product_text.rank";
    } else {
        sql.push_str(" FROM products p WHERE 1");
        rank = "0.0";
    }
    let list = |sql: &mut String, params: &mut Vec<SqlValue>, column: &str, values: &[String]| {
        sql.push_str(&format!(" AND {column} IN ("));
        for (i, v) in values.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
            params.push(SqlValue::Text(v.trim().to_owned()));
        }
        sql.push(')');
    };
    for (facet, values) in &q.filters {
        if let Some(column) = facet_column(*facet) {
            list(&mut sql, &mut params, column, values);
        }
    }
    if !q.collections.is_empty() {
        list(&mut sql, &mut params, "p.collection", &q.collections);
    }
    for tag in &q.tags {
        sql.push_str(" AND p.id IN (SELECT product FROM product_tags WHERE tag = ?)");
        params.push(SqlValue::Text(tag.trim().to_owned()));
    }
    if let Some(cone) = &q.cone {
        let cone = cone.sky().map_err(orrery_catalog::QueryError::from)?;
        let b = cone.bounding_box();
        sql.push_str(
            " AND p.id IN (SELECT id FROM sky_index WHERE x1 >= ? AND x0 <= ? AND y1 >= ? AND y0 <= ? AND z1 >= ? AND z0 <= ?)
              AND p.cx * ? + p.cy * ? + p.cz * ? >= ?",
        );
        for v in [b.x.0, b.x.1, b.y.0, b.y.1, b.z.0, b.z.1] {
            params.push(SqlValue::Real(v));
        }
        for v in [cone.centre.x, cone.centre.y, cone.centre.z, cone.min_dot()] {
            params.push(SqlValue::Real(v));
        }
    }
    if let Some(time) = &q.time {
        if let Some(start) = time.start {
            sql.push_str(" AND coalesce(p.t_max, p.t_min) >= ?");
            params.push(SqlValue::Real(start));
        }
        if let Some(end) = time.end {
            sql.push_str(" AND p.t_min <= ?");
            params.push(SqlValue::Real(end));
        }
    }
    Ok(Plan {
        from_where: sql,
        params,
        rank,
    })
}

fn order_by(sort: Sort, rank: &str) -> String {
    let key = match sort {
        Sort::Relevance => format!("{rank}, "),
        Sort::Time => "p.t_min IS NULL, p.t_min, ".into(),
        Sort::TimeDesc => "p.t_min IS NULL, p.t_min DESC, ".into(),
        Sort::Title => "p.title, ".into(),
        Sort::Id => String::new(),
    };
    format!(" ORDER BY {key}p.collection, p.path")
}

/// Runs `f`, interrupting its statement once `deadline` passes.
pub(crate) fn with_deadline<T>(
    conn: &Connection,
    deadline: Duration,
    f: impl FnOnce() -> Result<T, rusqlite::Error>,
) -> Result<T, CatalogError> {
    // A watchdog interrupts the statement at the deadline; finishing first disarms it.
    let interrupt = conn.get_interrupt_handle();
    let (disarm, armed) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if armed.recv_timeout(deadline) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            interrupt.interrupt();
        }
    });
    let result = f();
    drop(disarm);
    let _ = watchdog.join();
    match result {
        Ok(v) => Ok(v),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            Err(CatalogError::Timeout(deadline))
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs a query on the local catalog.
pub fn search(conn: &Connection, q: &Query) -> Result<SearchResults, CatalogError> {
    search_within(conn, q, SEARCH_DEADLINE)
}

/// Runs a query, stopping it after `deadline`.
pub fn search_within(
    conn: &Connection,
    q: &Query,
    deadline: Duration,
) -> Result<SearchResults, CatalogError> {
    q.validate()?;
    let plan = plan(q)?;
    with_deadline(conn, deadline, || {
        if q.facets {
            one_pass(conn, q, &plan)
        } else {
            let hits = page(conn, q, &plan)?;
            let total = conn
                .prepare_cached(&format!("SELECT count(*) {}", plan.from_where))?
                .query_row(params_from_iter(plan.params.iter()), |r| r.get::<_, i64>(0))?
                .max(0) as u64;
            Ok(SearchResults {
                total,
                hits,
                facets: BTreeMap::new(),
            })
        }
    })
}

/// The columns of a hit, after `SELECT`.
const HIT_COLUMNS: &str = "p.collection, p.path, p.title, p.mission, p.instrument, p.product_type,
    p.band, p.target, p.ra, p.dec, p.t_min, p.t_max, p.size, p.blake3, p.licence";

/// The download address of a product, as SQL.
const URL_COLUMN: &str = "(SELECT value FROM catalog_settings WHERE key = 'public_url')
    || '/data/' || p.collection || '/' || p.path";

fn hit_from_row(r: &rusqlite::Row<'_>, rank: f64) -> rusqlite::Result<Hit> {
    let collection: String = r.get(0)?;
    let path: String = r.get(1)?;
    let hash: Vec<u8> = r.get(13)?;
    Ok(Hit {
        node: None,
        node_name: None,
        id: format!("{collection}/{path}"),
        collection,
        title: r.get(2)?,
        mission: r.get(3)?,
        instrument: r.get(4)?,
        product_type: r.get(5)?,
        band: r.get(6)?,
        target: r.get(7)?,
        ra: r.get(8)?,
        dec: r.get(9)?,
        t_min: r.get(10)?,
        t_max: r.get(11)?,
        size: r.get::<_, i64>(12)?.max(0) as u64,
        blake3: hex::encode(hash),
        licence: r.get(14)?,
        url: r.get(15)?,
        rank,
    })
}

/// The page, sorted by SQL.
fn page(conn: &Connection, q: &Query, plan: &Plan) -> rusqlite::Result<Vec<Hit>> {
    let sql = format!(
        "SELECT {HIT_COLUMNS}, {URL_COLUMN}, {} {} {} LIMIT ? OFFSET ?",
        plan.rank,
        plan.from_where,
        order_by(q.sort, plan.rank)
    );
    let mut params = plan.params.clone();
    params.push(SqlValue::Integer(i64::from(q.page.limit)));
    params.push(SqlValue::Integer(i64::from(q.page.offset)));
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_map(params_from_iter(params.iter()), |r| {
        let rank = r.get(16)?;
        hit_from_row(r, rank)
    })?
    .collect()
}

/// One match's sort key.
struct Key {
    id: i64,
    rank: f64,
    t_min: Option<f64>,
    title: String,
    collection: String,
    path: String,
}

fn compare(a: &Key, b: &Key, sort: Sort) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let time = |a: Option<f64>, b: Option<f64>, desc: bool| match (a, b) {
        (Some(x), Some(y)) => {
            if desc {
                y.total_cmp(&x)
            } else {
                x.total_cmp(&y)
            }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    let primary = match sort {
        Sort::Relevance => a.rank.total_cmp(&b.rank),
        Sort::Time => time(a.t_min, b.t_min, false),
        Sort::TimeDesc => time(a.t_min, b.t_min, true),
        Sort::Title => a.title.cmp(&b.title),
        Sort::Id => Ordering::Equal,
    };
    primary
        .then_with(|| a.collection.cmp(&b.collection))
        .then_with(|| a.path.cmp(&b.path))
}

/// The total, the facet counts and the page in one pass over the matches: each matching row is
/// read once. The page's full rows are then read by id.
fn one_pass(conn: &Connection, q: &Query, plan: &Plan) -> rusqlite::Result<SearchResults> {
    let columns: Vec<(Facet, &str)> = Facet::ALL
        .iter()
        .filter_map(|f| facet_column(*f).map(|c| (*f, c)))
        .collect();
    let title = if q.sort == Sort::Title {
        "p.title"
    } else {
        "''"
    };
    let sql = format!(
        "SELECT p.id, {}, p.t_min, {title}, p.collection, p.path, {} {}",
        plan.rank,
        columns
            .iter()
            .map(|(_, c)| *c)
            .collect::<Vec<_>>()
            .join(", "),
        plan.from_where
    );
    let mut counts: Vec<HashMap<String, u64>> = vec![HashMap::new(); columns.len()];
    let mut keys: Vec<Key> = Vec::new();
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(plan.params.iter()))?;
    while let Some(row) = rows.next()? {
        keys.push(Key {
            id: row.get(0)?,
            rank: row.get(1)?,
            t_min: row.get(2)?,
            title: row.get(3)?,
            collection: row.get(4)?,
            path: row.get(5)?,
        });
        for (i, c) in counts.iter_mut().enumerate() {
            if let rusqlite::types::ValueRef::Text(t) = row.get_ref(6 + i)? {
                // Facet values are compared without case; counted as first seen.
                let key = String::from_utf8_lossy(t);
                match c.get_mut(key.as_ref()) {
                    Some(v) => *v += 1,
                    None => {
                        c.insert(key.into_owned(), 1);
                    }
                }
            }
        }
    }
    let total = keys.len() as u64;
    let end = (q.page.offset as usize + q.page.limit as usize).min(keys.len());
    let start = (q.page.offset as usize).min(end);
    if end > 0 {
        // Only the first `end` need ordering.
        keys.select_nth_unstable_by(end - 1, |a, b| compare(a, b, q.sort));
        keys.truncate(end);
        keys.sort_by(|a, b| compare(a, b, q.sort));
    }
    let wanted = &keys[start..end];
    let mut hits = Vec::with_capacity(wanted.len());
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {HIT_COLUMNS}, {URL_COLUMN} FROM products p WHERE p.id = ?1"
    ))?;
    for k in wanted {
        hits.push(stmt.query_row([k.id], |r| hit_from_row(r, k.rank))?);
    }
    let mut facets = BTreeMap::new();
    for ((facet, _), c) in columns.iter().zip(counts) {
        facets.insert(*facet, top_values(c));
    }
    Ok(SearchResults {
        total,
        hits,
        facets,
    })
}

/// The most frequent values, most frequent first, ties by value; values differing only in
/// case are counted together.
fn top_values(counts: HashMap<String, u64>) -> Vec<FacetCount> {
    let mut merged: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for (value, count) in counts {
        let e = merged
            .entry(value.to_lowercase())
            .or_insert_with(|| (value.clone(), 0));
        e.1 += count;
    }
    let mut out: Vec<FacetCount> = merged
        .into_values()
        .map(|(value, count)| FacetCount { value, count })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    out.truncate(MAX_FACET_VALUES);
    out
}

/// Everything stored about one product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductDetail {
    /// `collection/path`.
    pub id: String,
    /// The row of `ivoa.obscore` for it, column by column.
    pub obscore: Vec<(String, serde_json::Value)>,
}

pub(super) fn product_detail(
    conn: &Connection,
    collection: &str,
    path: &str,
) -> Result<Option<ProductDetail>, CatalogError> {
    let names: Vec<&str> = orrery_catalog::obscore::COLUMNS
        .iter()
        .map(|c| c.name)
        .collect();
    let sql = format!(
        "SELECT {} FROM obscore o JOIN products p ON p.id = o._id WHERE p.collection = ?1 AND p.path = ?2",
        names
            .iter()
            .map(|n| format!("o.{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let row = conn
        .query_row(&sql, [collection, path], |r| {
            let mut out = Vec::new();
            for (i, n) in names.iter().enumerate() {
                let v = match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => continue,
                    rusqlite::types::ValueRef::Integer(v) => serde_json::Value::from(v),
                    rusqlite::types::ValueRef::Real(v) => serde_json::Value::from(v),
                    rusqlite::types::ValueRef::Text(t) => {
                        serde_json::Value::from(String::from_utf8_lossy(t).into_owned())
                    }
                    rusqlite::types::ValueRef::Blob(_) => continue,
                };
                out.push(((*n).to_owned(), v));
            }
            Ok(out)
        })
        .optional()?;
    Ok(row.map(|obscore| ProductDetail {
        id: format!("{collection}/{path}"),
        obscore,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_syntax_from_users_is_quoted() {
        assert_eq!(
            fts_query("crab nebula").as_deref(),
            Some("\"crab\" \"nebula\"")
        );
        assert_eq!(
            fts_query("\"crab nebula\" xmm*").as_deref(),
            Some("\"crab nebula\" \"xmm\"*")
        );
        assert_eq!(
            fts_query("a OR b NOT c) NEAR(").as_deref(),
            Some("\"a\" \"OR\" \"b\" \"NOT\" \"c\" \"NEAR\"")
        );
        assert_eq!(
            fts_query("'; DROP TABLE products; --").as_deref(),
            Some("\"DROP\" \"TABLE\" \"products\"")
        );
        assert_eq!(fts_query("*** ---"), None);
    }
}
