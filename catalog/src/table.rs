//! The tables a node serves over TAP and their columns: `ivoa.obscore` and the five
//! `TAP_SCHEMA` tables that describe them.
//!
//! [`TABLES`] is the one list the VOSI tables document, the `TAP_SCHEMA` rows and the ADQL
//! checks are all made from, so what a client reads in one place it finds in the others. Each
//! table names the SQL table or view behind it ([`Table::sql`]); names are fixed here, never
//! taken from a query.

use crate::{obscore, tap_schema};

/// A column's type, as VOTable and TAP_SCHEMA name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    /// ASCII text (`char`, `arraysize="*"`; ADQL `VARCHAR`).
    Char,
    /// Unicode text (`unicodeChar`, `arraysize="*"`; ADQL `VARCHAR`).
    UnicodeChar,
    /// 32-bit integer (`int`; ADQL `INTEGER`).
    Int,
    /// 64-bit integer (`long`; ADQL `BIGINT`).
    Long,
    /// 64-bit float (`double`; ADQL `DOUBLE`).
    Double,
}

impl Datatype {
    /// The VOTable datatype.
    pub fn votable(self) -> &'static str {
        match self {
            Datatype::Char => "char",
            Datatype::UnicodeChar => "unicodeChar",
            Datatype::Int => "int",
            Datatype::Long => "long",
            Datatype::Double => "double",
        }
    }

    /// The ADQL datatype.
    pub fn adql(self) -> &'static str {
        match self {
            Datatype::Char | Datatype::UnicodeChar => "VARCHAR",
            Datatype::Int => "INTEGER",
            Datatype::Long => "BIGINT",
            Datatype::Double => "DOUBLE",
        }
    }

    /// The VOTable `arraysize`: `*` for text, none for numbers.
    pub fn arraysize(self) -> Option<&'static str> {
        self.is_text().then_some("*")
    }

    /// Whether values are numbers.
    pub fn is_numeric(self) -> bool {
        !self.is_text()
    }

    /// Whether values are text.
    pub fn is_text(self) -> bool {
        matches!(self, Datatype::Char | Datatype::UnicodeChar)
    }
}

/// One column of a served table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name (lower case, a plain SQL identifier).
    pub name: &'static str,
    /// Its type.
    pub datatype: Datatype,
    /// Its unit, if any.
    pub unit: Option<&'static str>,
    /// Its UCD, if any.
    pub ucd: Option<&'static str>,
    /// Its utype, if any.
    pub utype: Option<&'static str>,
    /// What it holds.
    pub description: &'static str,
    /// Whether it is shown by default (TAP_SCHEMA `principal`).
    pub principal: bool,
    /// Whether the database indexes it (TAP_SCHEMA `indexed`).
    pub indexed: bool,
}

impl Column {
    /// Its name as TAP_SCHEMA and the VOSI tables document publish it: delimited with double
    /// quotes when it is an ADQL reserved word (`"size"`), as TAP 1.1 asks.
    pub fn published_name(&self) -> std::borrow::Cow<'static, str> {
        if is_adql_reserved(self.name) {
            format!("\"{}\"", self.name).into()
        } else {
            self.name.into()
        }
    }
}

/// Whether `word` is reserved in ADQL 2.1 (its own words and SQL-92's), in any case.
pub fn is_adql_reserved(word: &str) -> bool {
    ADQL_RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

/// ADQL 2.1's reserved words: its functions and SQL-92's reserved words.
const ADQL_RESERVED: &[&str] = &[
    "ABS",
    "ACOS",
    "AREA",
    "ASIN",
    "ATAN",
    "ATAN2",
    "BOX",
    "CEILING",
    "CENTROID",
    "CIRCLE",
    "CONTAINS",
    "COORD1",
    "COORD2",
    "COORDSYS",
    "COS",
    "COT",
    "DEGREES",
    "DISTANCE",
    "EXP",
    "FLOOR",
    "ILIKE",
    "INTERSECTS",
    "LOG",
    "LOG10",
    "MOD",
    "OFFSET",
    "PI",
    "POINT",
    "POLYGON",
    "POWER",
    "RADIANS",
    "REGION",
    "RAND",
    "ROUND",
    "SIN",
    "SQRT",
    "TOP",
    "TAN",
    "TRUNCATE",
    "ABSOLUTE",
    "ACTION",
    "ADD",
    "ALL",
    "ALLOCATE",
    "ALTER",
    "AND",
    "ANY",
    "ARE",
    "AS",
    "ASC",
    "ASSERTION",
    "AT",
    "AUTHORIZATION",
    "AVG",
    "BEGIN",
    "BETWEEN",
    "BIT",
    "BIT_LENGTH",
    "BOTH",
    "BY",
    "CASCADE",
    "CASCADED",
    "CASE",
    "CAST",
    "CATALOG",
    "CHAR",
    "CHARACTER",
    "CHAR_LENGTH",
    "CHARACTER_LENGTH",
    "CHECK",
    "CLOSE",
    "COALESCE",
    "COLLATE",
    "COLLATION",
    "COLUMN",
    "COMMIT",
    "CONNECT",
    "CONNECTION",
    "CONSTRAINT",
    "CONSTRAINTS",
    "CONTINUE",
    "CONVERT",
    "CORRESPONDING",
    "COUNT",
    "CREATE",
    "CROSS",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURRENT_USER",
    "CURSOR",
    "DATE",
    "DAY",
    "DEALLOCATE",
    "DECIMAL",
    "DECLARE",
    "DEFAULT",
    "DEFERRABLE",
    "DEFERRED",
    "DELETE",
    "DESC",
    "DESCRIBE",
    "DESCRIPTOR",
    "DIAGNOSTICS",
    "DISCONNECT",
    "DISTINCT",
    "DOMAIN",
    "DOUBLE",
    "DROP",
    "ELSE",
    "END",
    "END-EXEC",
    "ESCAPE",
    "EXCEPT",
    "EXCEPTION",
    "EXEC",
    "EXECUTE",
    "EXISTS",
    "EXTERNAL",
    "EXTRACT",
    "FALSE",
    "FETCH",
    "FIRST",
    "FLOAT",
    "FOR",
    "FOREIGN",
    "FOUND",
    "FROM",
    "FULL",
    "GET",
    "GLOBAL",
    "GO",
    "GOTO",
    "GRANT",
    "GROUP",
    "HAVING",
    "HOUR",
    "IDENTITY",
    "IMMEDIATE",
    "IN",
    "INDICATOR",
    "INITIALLY",
    "INNER",
    "INPUT",
    "INSENSITIVE",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "ISOLATION",
    "JOIN",
    "KEY",
    "LANGUAGE",
    "LAST",
    "LEADING",
    "LEFT",
    "LEVEL",
    "LIKE",
    "LOCAL",
    "LOWER",
    "MATCH",
    "MAX",
    "MIN",
    "MINUTE",
    "MODULE",
    "MONTH",
    "NAMES",
    "NATIONAL",
    "NATURAL",
    "NCHAR",
    "NEXT",
    "NO",
    "NOT",
    "NULL",
    "NULLIF",
    "NUMERIC",
    "OCTET_LENGTH",
    "OF",
    "ON",
    "ONLY",
    "OPEN",
    "OPTION",
    "OR",
    "ORDER",
    "OUTER",
    "OUTPUT",
    "OVERLAPS",
    "PAD",
    "PARTIAL",
    "POSITION",
    "PRECISION",
    "PREPARE",
    "PRESERVE",
    "PRIMARY",
    "PRIOR",
    "PRIVILEGES",
    "PROCEDURE",
    "PUBLIC",
    "READ",
    "REAL",
    "REFERENCES",
    "RELATIVE",
    "RESTRICT",
    "REVOKE",
    "RIGHT",
    "ROLLBACK",
    "ROWS",
    "SCHEMA",
    "SCROLL",
    "SECOND",
    "SECTION",
    "SELECT",
    "SESSION",
    "SESSION_USER",
    "SET",
    "SIZE",
    "SMALLINT",
    "SOME",
    "SPACE",
    "SQL",
    "SQLCODE",
    "SQLERROR",
    "SQLSTATE",
    "SUBSTRING",
    "SUM",
    "SYSTEM_USER",
    "TABLE",
    "TEMPORARY",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TIMEZONE_HOUR",
    "TIMEZONE_MINUTE",
    "TO",
    "TRAILING",
    "TRANSACTION",
    "TRANSLATE",
    "TRANSLATION",
    "TRIM",
    "TRUE",
    "UNION",
    "UNIQUE",
    "UNKNOWN",
    "UPDATE",
    "UPPER",
    "USAGE",
    "USER",
    "USING",
    "VALUE",
    "VALUES",
    "VARCHAR",
    "VARYING",
    "VIEW",
    "WHEN",
    "WHENEVER",
    "WHERE",
    "WITH",
    "WORK",
    "WRITE",
    "YEAR",
    "ZONE",
];

/// A foreign key: columns of one table that name rows of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignKey {
    /// Its identifier in `TAP_SCHEMA.keys`.
    pub id: &'static str,
    /// The qualified table it refers to.
    pub target: &'static str,
    /// (column of this table, column of the target) pairs.
    pub columns: &'static [(&'static str, &'static str)],
}

/// Whether a table is stored or computed (TAP_SCHEMA `table_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// A stored table.
    Table,
    /// A view.
    View,
}

impl TableKind {
    /// Its name in TAP_SCHEMA and the VOSI tables document.
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Table => "table",
            TableKind::View => "view",
        }
    }
}

/// A table a node serves over TAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// The schema it belongs to.
    pub schema: &'static str,
    /// Its name within the schema.
    pub name: &'static str,
    /// Table or view.
    pub kind: TableKind,
    /// What it holds.
    pub description: &'static str,
    /// Its utype, if any.
    pub utype: Option<&'static str>,
    /// Its columns, in order.
    pub columns: &'static [Column],
    /// Its foreign keys.
    pub foreign_keys: &'static [ForeignKey],
    /// The SQL table or view behind it.
    pub sql: &'static str,
    /// The SQL column that orders its rows when nothing else does.
    pub row_id: &'static str,
    /// Whether its SQL has the unit vectors and sky index of [`obscore`] (cones work on it).
    pub sky: bool,
}

impl Table {
    /// `schema.name`, as ADQL and TAP_SCHEMA write it.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The column of that name, in any case.
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// A schema of served tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// Its name.
    pub name: &'static str,
    /// What it holds.
    pub description: &'static str,
    /// Its utype, if any.
    pub utype: Option<&'static str>,
}

/// Every schema, in the order of [`TABLES`].
pub const SCHEMAS: &[Schema] = &[
    Schema {
        name: obscore::SCHEMA_NAME,
        description: "The IVOA data models",
        utype: None,
    },
    Schema {
        name: tap_schema::SCHEMA_NAME,
        description: "The tables and columns this service answers queries on (TAP 1.1)",
        utype: None,
    },
];

/// Every served table, grouped by schema in the order of [`SCHEMAS`].
pub const TABLES: &[&Table] = &[
    &obscore::TABLE,
    &tap_schema::SCHEMAS,
    &tap_schema::TABLES,
    &tap_schema::COLUMNS,
    &tap_schema::KEYS,
    &tap_schema::KEY_COLUMNS,
];

/// The table named `schema.name`, each part matched in any case unless `exact` says it was
/// quoted (then it must match as written).
pub fn find(schema: (&str, bool), name: (&str, bool)) -> Option<&'static Table> {
    let same = |want: &str, (given, exact): (&str, bool)| {
        if exact {
            want == given
        } else {
            want.eq_ignore_ascii_case(given)
        }
    };
    TABLES
        .iter()
        .copied()
        .find(|t| same(t.schema, schema) && same(t.name, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_column_names_are_delimited() {
        let size = crate::tap_schema::COLUMNS.column("size").expect("size");
        assert_eq!(size.published_name(), "\"size\"");
        let ra = crate::obscore::column("s_ra").expect("s_ra");
        assert_eq!(ra.published_name(), "s_ra");
    }

    #[test]
    fn tables_are_found_in_any_case_unless_quoted() {
        let found = find(("tap_schema", false), ("COLUMNS", false));
        assert_eq!(
            found.map(Table::qualified).as_deref(),
            Some("TAP_SCHEMA.columns")
        );
        assert!(find(("tap_schema", true), ("columns", false)).is_none());
        assert!(find(("TAP_SCHEMA", true), ("columns", true)).is_some());
        assert!(find(("ivoa", false), ("sqlite_master", false)).is_none());
    }

    #[test]
    fn every_table_has_unique_plain_names_and_a_known_schema() {
        for (i, t) in TABLES.iter().enumerate() {
            assert!(SCHEMAS.iter().any(|s| s.name == t.schema), "{}", t.name);
            assert!(TABLES[i + 1..].iter().all(|u| u.sql != t.sql));
            for (j, c) in t.columns.iter().enumerate() {
                assert!(
                    c.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{}",
                    c.name
                );
                assert!(t.columns[j + 1..].iter().all(|d| d.name != c.name));
            }
            for key in t.foreign_keys {
                let target = TABLES.iter().find(|u| u.qualified() == key.target);
                let target = target.expect("a foreign key names a served table");
                for (from, to) in key.columns {
                    assert!(t.column(from).is_some() && target.column(to).is_some());
                }
            }
        }
    }
}
