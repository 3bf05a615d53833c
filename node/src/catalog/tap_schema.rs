//! `TAP_SCHEMA` in SQLite: the rows `orrery_catalog::tap_schema` describes, put in temporary
//! tables of each catalog connection (named by each table's `sql`, e.g. `tap_schema_columns`)
//! when it opens. They live in memory with the connection, so a read-only connection has them
//! too, and they always match the code that serves `/tap/tables` and checks ADQL.

use orrery_catalog::Value;
use orrery_catalog::table::{Datatype, TABLES, Table};
use orrery_catalog::tap_schema;
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

/// Creates and fills the `TAP_SCHEMA` tables of `conn`, replacing any it has.
pub(crate) fn create(conn: &Connection) -> Result<(), rusqlite::Error> {
    for table in TABLES
        .iter()
        .filter(|t| t.schema == tap_schema::SCHEMA_NAME)
    {
        create_table(conn, table)?;
    }
    Ok(())
}

fn create_table(conn: &Connection, table: &Table) -> Result<(), rusqlite::Error> {
    // Every name here is a constant of orrery_catalog::table, never outside text.
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let sql_type = match c.datatype {
                Datatype::Char | Datatype::UnicodeChar => "TEXT",
                Datatype::Int | Datatype::Long => "INTEGER",
                Datatype::Double => "REAL",
            };
            format!("{} {sql_type}", c.name)
        })
        .collect();
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS temp.{0}; CREATE TEMP TABLE {0} ({1});",
        table.sql,
        columns.join(", ")
    ))?;
    let marks = vec!["?"; table.columns.len()].join(", ");
    let mut insert = conn.prepare(&format!("INSERT INTO temp.{} VALUES ({marks})", table.sql))?;
    for row in tap_schema::rows(table) {
        let values = row.into_iter().map(|v| match v {
            Value::Null => SqlValue::Null,
            Value::Int(i) => SqlValue::Integer(i),
            Value::Double(d) => SqlValue::Real(d),
            Value::Text(t) => SqlValue::Text(t),
        });
        insert.execute(rusqlite::params_from_iter(values))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tap_schema_table_is_made_and_filled() -> Result<(), rusqlite::Error> {
        let conn = Connection::open_in_memory()?;
        create(&conn)?;
        create(&conn)?; // again, as a reopened connection would
        let count = |sql: &str| -> Result<i64, rusqlite::Error> {
            conn.query_row(&format!("SELECT count(*) FROM {sql}"), [], |r| r.get(0))
        };
        let all: usize = TABLES.iter().map(|t| t.columns.len()).sum();
        assert_eq!(count(tap_schema::COLUMNS.sql)?, all as i64);
        assert_eq!(count(tap_schema::TABLES.sql)?, TABLES.len() as i64);
        assert_eq!(count(tap_schema::KEYS.sql)?, 5);
        Ok(())
    }
}
