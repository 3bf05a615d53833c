//! The five `TAP_SCHEMA` tables of TAP 1.1 and their rows, made from [`crate::table::TABLES`].
//!
//! Nothing is stored here: [`rows`] describes what each table holds, and the node puts those
//! rows in SQL tables named by [`Table::sql`] (so `TAP_SCHEMA.columns` is `tap_schema_columns`)
//! that TAP queries read like any other table. `TAP_SCHEMA.columns.datatype` holds the VOTable
//! datatype with its `arraysize`, as TAP 1.1 asks, the same type the VOSI tables document and
//! every result declare; a column whose name is an ADQL reserved word is listed delimited
//! (`"size"`). `keys` and `key_columns` hold the foreign keys TAP 1.1 gives `TAP_SCHEMA`
//! itself; `ivoa.obscore` has none.

use crate::Value;
use crate::table::{self, Column, Datatype, ForeignKey, Table, TableKind};

/// The schema's name.
pub const SCHEMA_NAME: &str = "TAP_SCHEMA";

const fn text(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        datatype: Datatype::Char,
        unit: None,
        ucd: None,
        utype: None,
        description,
        principal: true,
        indexed: false,
    }
}

const fn int(name: &'static str, description: &'static str) -> Column {
    Column {
        datatype: Datatype::Int,
        ..text(name, description)
    }
}

const fn tap_table(name: &'static str, sql: &'static str, columns: &'static [Column]) -> Table {
    Table {
        schema: SCHEMA_NAME,
        name,
        kind: TableKind::Table,
        description: "",
        utype: None,
        columns,
        foreign_keys: &[],
        sql,
        row_id: "rowid",
        sky: false,
    }
}

/// `TAP_SCHEMA.schemas`.
pub const SCHEMAS: Table = Table {
    description: "The schemas of this service",
    ..tap_table(
        "schemas",
        "tap_schema_schemas",
        &[
            text("schema_name", "The schema's name"),
            text("utype", "The schema's utype"),
            text("description", "What the schema holds"),
            int("schema_index", "Where the schema comes in the list"),
        ],
    )
};

/// `TAP_SCHEMA.tables`.
pub const TABLES: Table = Table {
    description: "The tables of this service",
    foreign_keys: &[ForeignKey {
        id: "tables_schema",
        target: "TAP_SCHEMA.schemas",
        columns: &[("schema_name", "schema_name")],
    }],
    ..tap_table(
        "tables",
        "tap_schema_tables",
        &[
            text("schema_name", "The schema the table belongs to"),
            text("table_name", "The table's name, qualified by its schema"),
            text("table_type", "table or view"),
            text("utype", "The table's utype"),
            text("description", "What the table holds"),
            int("table_index", "Where the table comes in the list"),
        ],
    )
};

/// `TAP_SCHEMA.columns`.
pub const COLUMNS: Table = Table {
    description: "The columns of this service's tables",
    foreign_keys: &[ForeignKey {
        id: "columns_table",
        target: "TAP_SCHEMA.tables",
        columns: &[("table_name", "table_name")],
    }],
    ..tap_table(
        "columns",
        "tap_schema_columns",
        &[
            text("table_name", "The table the column belongs to, qualified"),
            text("column_name", "The column's name"),
            text("utype", "The column's utype"),
            text("ucd", "The column's UCD"),
            text("unit", "The column's unit"),
            text("description", "What the column holds"),
            text("datatype", "The column's VOTable datatype"),
            text("arraysize", "The column's VOTable arraysize"),
            text("xtype", "The column's VOTable xtype"),
            int(
                "size",
                "The column's length (deprecated by TAP 1.1: see arraysize)",
            ),
            int("principal", "1 when the column is shown by default, else 0"),
            int("indexed", "1 when the column is indexed, else 0"),
            int("std", "1 when a standard defines the column, else 0"),
            int("column_index", "Where the column comes in its table"),
        ],
    )
};

/// `TAP_SCHEMA.keys`.
pub const KEYS: Table = Table {
    description: "The foreign keys between this service's tables",
    foreign_keys: &[
        ForeignKey {
            id: "keys_from",
            target: "TAP_SCHEMA.tables",
            columns: &[("from_table", "table_name")],
        },
        ForeignKey {
            id: "keys_target",
            target: "TAP_SCHEMA.tables",
            columns: &[("target_table", "table_name")],
        },
    ],
    ..tap_table(
        "keys",
        "tap_schema_keys",
        &[
            text("key_id", "The key's identifier"),
            text("from_table", "The table holding the key"),
            text("target_table", "The table the key refers to"),
            text("utype", "The key's utype"),
            text("description", "What the key means"),
        ],
    )
};

/// `TAP_SCHEMA.key_columns`.
pub const KEY_COLUMNS: Table = Table {
    description: "The columns of the foreign keys",
    foreign_keys: &[ForeignKey {
        id: "key_columns_key",
        target: "TAP_SCHEMA.keys",
        columns: &[("key_id", "key_id")],
    }],
    ..tap_table(
        "key_columns",
        "tap_schema_key_columns",
        &[
            text("key_id", "The key the pair belongs to"),
            text("from_column", "The column in the table holding the key"),
            text("target_column", "The column it refers to"),
        ],
    )
};

fn opt(text: Option<&str>) -> Value {
    text.map_or(Value::Null, |t| Value::Text(t.to_owned()))
}

fn index(i: usize) -> Value {
    Value::Int(i64::try_from(i).unwrap_or(i64::MAX))
}

/// The rows of one `TAP_SCHEMA` table, in the order of its columns; empty for any other table.
pub fn rows(of: &Table) -> Vec<Vec<Value>> {
    let owned = |s: &str| Value::Text(s.to_owned());
    if of.sql == SCHEMAS.sql {
        return table::SCHEMAS
            .iter()
            .enumerate()
            .map(|(i, s)| vec![owned(s.name), opt(s.utype), owned(s.description), index(i)])
            .collect();
    }
    if of.sql == TABLES.sql {
        return table::TABLES
            .iter()
            .enumerate()
            .map(|(i, t)| {
                vec![
                    owned(t.schema),
                    Value::Text(t.qualified()),
                    owned(t.kind.as_str()),
                    opt(t.utype),
                    owned(t.description),
                    index(i),
                ]
            })
            .collect();
    }
    if of.sql == COLUMNS.sql {
        return table::TABLES
            .iter()
            .flat_map(|&t| t.columns.iter().enumerate().map(move |(i, c)| (t, i, c)))
            .map(|(t, i, c)| {
                vec![
                    Value::Text(t.qualified()),
                    Value::Text(c.published_name().into_owned()),
                    opt(c.utype),
                    opt(c.ucd),
                    opt(c.unit),
                    owned(c.description),
                    owned(c.datatype.votable()),
                    opt(c.datatype.arraysize()),
                    Value::Null,
                    Value::Null,
                    Value::Int(i64::from(c.principal)),
                    Value::Int(i64::from(c.indexed)),
                    Value::Int(1),
                    index(i),
                ]
            })
            .collect();
    }
    let keys = table::TABLES
        .iter()
        .flat_map(|&t| t.foreign_keys.iter().map(move |k| (t, k)));
    if of.sql == KEYS.sql {
        return keys
            .map(|(t, k)| {
                vec![
                    owned(k.id),
                    Value::Text(t.qualified()),
                    owned(k.target),
                    Value::Null,
                    Value::Null,
                ]
            })
            .collect();
    }
    if of.sql == KEY_COLUMNS.sql {
        return keys
            .flat_map(|(_, k)| k.columns.iter().map(move |pair| (k, pair)))
            .map(|(k, (from, to))| vec![owned(k.id), owned(from), owned(to)])
            .collect();
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_fits_its_table() {
        for t in table::TABLES {
            for row in rows(t) {
                assert_eq!(row.len(), t.columns.len(), "{}", t.name);
                for (value, column) in row.iter().zip(t.columns) {
                    let fits = match value {
                        Value::Null => true,
                        Value::Text(_) => column.datatype.is_text(),
                        Value::Int(_) => column.datatype == Datatype::Int,
                        Value::Double(_) => false,
                    };
                    assert!(fits, "{}.{} holds {value:?}", t.name, column.name);
                }
            }
        }
    }

    #[test]
    fn columns_lists_every_column_of_every_table_once() {
        let all = rows(&COLUMNS);
        let total: usize = table::TABLES.iter().map(|t| t.columns.len()).sum();
        assert_eq!(all.len(), total);
        let title = all
            .iter()
            .find(|r| r.get(1) == Some(&Value::Text("obs_title".into())))
            .expect("obs_title is listed");
        assert_eq!(title.first(), Some(&Value::Text("ivoa.obscore".into())));
        assert_eq!(title.get(6), Some(&Value::Text("unicodeChar".into())));
        assert_eq!(title.get(7), Some(&Value::Text("*".into())));
        assert_eq!(rows(&TABLES).len(), table::TABLES.len());
        assert_eq!(rows(&SCHEMAS).len(), table::SCHEMAS.len());
        assert_eq!(rows(&KEYS).len(), 5);
        assert_eq!(rows(&KEY_COLUMNS).len(), 5);
    }
}
