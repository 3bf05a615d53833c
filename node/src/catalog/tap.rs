//! TAP queries: ADQL parsed and checked by `orrery_catalog::adql`, run as parameterised SQL on
//! a read-only connection, with a deadline.

use std::time::Duration;

use orrery_catalog::Value;
use orrery_catalog::adql;
use orrery_catalog::obscore::{Column, Datatype};
use rusqlite::Connection;
use rusqlite::types::{Value as SqlValue, ValueRef};

use super::CatalogError;

/// The longest a TAP query may run.
pub const TAP_DEADLINE: Duration = Duration::from_secs(20);

/// The rows of a TAP query.
#[derive(Debug, Clone)]
pub struct TapRows {
    /// Output names and the columns describing them.
    pub columns: Vec<(String, Column)>,
    /// The rows.
    pub rows: Vec<Vec<Value>>,
    /// Whether more rows matched than `maxrec`.
    pub overflow: bool,
}

/// Why a TAP query failed.
#[derive(Debug, thiserror::Error)]
pub enum TapQueryError {
    /// The ADQL is invalid or unsupported.
    #[error("{0}")]
    Adql(#[from] adql::AdqlError),
    /// SQLite refused the statement as beyond its limits (expression depth, pattern length,
    /// terms, size): the client's query is too large, not the service broken.
    #[error(
        "the query is too large or too complex for this service ({reason}); simplify it, \
         e.g. fewer OR terms or ORDER BY keys, or a shorter pattern"
    )]
    TooComplex {
        /// SQLite's own words.
        reason: String,
    },
    /// The database failed or the query ran too long.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Whether SQLite refused a statement for exceeding one of its limits — a client's mistake
/// — rather than failing.
fn beyond_limits(e: &CatalogError) -> Option<String> {
    let CatalogError::Sql(rusqlite::Error::SqliteFailure(code, message)) = e else {
        return None;
    };
    let message = message.clone().unwrap_or_default();
    let words = [
        "too large",
        "too big",
        "too complex",
        "too many",
        "too deep",
        "too long",
        // SUM over integers that passes 64 bits.
        "integer overflow",
    ];
    let limit = code.code == rusqlite::ErrorCode::TooBig
        || words
            .iter()
            .any(|w| message.to_ascii_lowercase().contains(w));
    limit.then_some(if message.is_empty() {
        code.to_string()
    } else {
        message
    })
}

/// Parses, checks and runs one ADQL query.
pub fn run(conn: &Connection, text: &str, maxrec: u64) -> Result<TapRows, TapQueryError> {
    let select = adql::parse(text)?;
    let q = adql::to_sql(&select, maxrec);
    let params: Vec<SqlValue> = q
        .params
        .iter()
        .map(|v| match v {
            Value::Null => SqlValue::Null,
            Value::Int(i) => SqlValue::Integer(*i),
            Value::Double(d) => SqlValue::Real(*d),
            Value::Text(t) => SqlValue::Text(t.clone()),
        })
        .collect();
    let columns: Vec<(String, Column)> = q.names.iter().cloned().zip(q.columns.clone()).collect();
    let rows = super::search::with_deadline(conn, TAP_DEADLINE, || {
        let mut stmt = conn.prepare(&q.sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(columns.len());
            for (i, (_, c)) in columns.iter().enumerate() {
                cells.push(match (row.get_ref(i)?, c.datatype) {
                    (ValueRef::Null, _) => Value::Null,
                    (ValueRef::Integer(v), Datatype::Double) => Value::Double(v as f64),
                    (ValueRef::Integer(v), _) => Value::Int(v),
                    (ValueRef::Real(v), Datatype::Int | Datatype::Long) => Value::Int(v as i64),
                    (ValueRef::Real(v), _) => Value::Double(v),
                    (ValueRef::Text(t), _) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    (ValueRef::Blob(_), _) => Value::Null,
                });
            }
            out.push(cells);
        }
        Ok(out)
    })
    .map_err(|e| match beyond_limits(&e) {
        Some(reason) => TapQueryError::TooComplex { reason },
        None => TapQueryError::Catalog(e),
    })?;
    let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
    // OVERFLOW means MAXREC cut the answer (DALI); a TOP the query asked for is no overflow.
    let overflow = rows.len() > limit && select.top.is_none_or(|top| top > maxrec);
    let mut rows = rows;
    rows.truncate(limit);
    Ok(TapRows {
        columns,
        rows,
        overflow,
    })
}
