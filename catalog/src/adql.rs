//! The ADQL subset a node answers, against its one table `ivoa.obscore`.
//!
//! [`parse`] turns ADQL text into a checked [`Select`]: every column exists, every literal has
//! its column's type, every cone is on the sky. Anything outside the subset is refused with an
//! [`AdqlError`] that names it and gives its byte offset. [`to_sql`] renders a `Select` as one
//! SQLite statement over the [`obscore::SQL_VIEW`] view: literals travel only as `?` parameters
//! and column names come only from [`obscore::COLUMNS`], so no user text reaches the SQL.
//!
//! The subset:
//!
//! ```text
//! SELECT [ALL] [TOP n] * | col [[AS] alias], ...
//! FROM ivoa.obscore [[AS] alias]
//! [WHERE condition]
//! [ORDER BY col | alias | position [ASC | DESC], ...]
//! ```
//!
//! where a condition combines with `AND`, `OR`, `NOT` and parentheses the predicates
//! `col op literal` (or `literal op col`; `op` one of `= != <> < <= > >=`),
//! `col [NOT] LIKE 'pattern'`, `col [NOT] ILIKE 'pattern'`, `col [NOT] BETWEEN lit AND lit`,
//! `col [NOT] IN (lit, ...)`, `col IS [NOT] NULL` and the cone test
//! `CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', ra, dec, radius)) = 1` (or `= 0`).
//! Columns may be qualified by the table's name or alias. `--` starts a comment.
//!
//! Input is bounded: [`MAX_QUERY_BYTES`], [`MAX_DEPTH`] and [`MAX_IN_VALUES`]. [`parse`] never
//! panics and its recursion is bounded by [`MAX_DEPTH`].

use crate::Value;
use crate::obscore::{self, Column};
use crate::sky::{SkyCone, SkyError};

mod lexer;
mod parser;
mod sql;
#[cfg(test)]
mod tests;

use lexer::{Tok, Token, lex};
use parser::Parser;
use sql::SqlWriter;

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// Deepest nesting of parentheses and `NOT` in a condition.
pub const MAX_DEPTH: usize = 64;
/// Most values one `IN` list may hold.
pub const MAX_IN_VALUES: usize = 1000;
/// Longest piece of the user's text quoted back in an error message, in characters.
const MAX_QUOTED_CHARS: usize = 60;

/// A checked query against `ivoa.obscore`.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// `TOP n`, if given.
    pub top: Option<u64>,
    /// The select list, never empty after [`parse`].
    pub items: Vec<SelectItem>,
    /// The table's alias, if given (`FROM ivoa.obscore AS o`).
    pub table_alias: Option<String>,
    /// The `WHERE` condition, if any.
    pub filter: Option<Expr>,
    /// The `ORDER BY` list (the row id is always appended when rendered).
    pub order_by: Vec<OrderItem>,
}

impl Select {
    /// The output columns in order, `*` expanded to every column in ObsCore order, each with
    /// its output name (the alias, or the column's name).
    pub fn output(&self) -> Vec<(String, &'static Column)> {
        let mut out = Vec::new();
        for item in &self.items {
            match item {
                SelectItem::All => {
                    out.extend(obscore::COLUMNS.iter().map(|c| (c.name.to_owned(), c)));
                }
                SelectItem::Column { column, alias } => {
                    let name = alias.clone().unwrap_or_else(|| column.name.to_owned());
                    out.push((name, *column));
                }
            }
        }
        out
    }
}

/// One entry of the select list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`: every column.
    All,
    /// One column, perhaps renamed.
    Column {
        /// The column.
        column: &'static Column,
        /// Its output name, if given with `AS`.
        alias: Option<String>,
    },
}

/// One entry of the `ORDER BY` list.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    /// The column sorted on.
    pub column: &'static Column,
    /// Whether the order is descending.
    pub descending: bool,
}

/// A literal value, of the type of the column it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An integer.
    Int(i64),
    /// A finite float.
    Double(f64),
    /// A string.
    Text(String),
}

impl Literal {
    fn is_numeric(&self) -> bool {
        !matches!(self, Literal::Text(_))
    }

    fn describe(&self) -> String {
        match self {
            Literal::Int(i) => format!("the number {i}"),
            Literal::Double(v) => format!("the number {v}"),
            Literal::Text(s) => format!("the text '{}'", shorten(s)),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Literal::Int(i) => Value::Int(*i),
            Literal::Double(v) => Value::Double(*v),
            Literal::Text(s) => Value::Text(s.clone()),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Comparison {
    /// The operator with its operands swapped: `5 < x` is `x > 5`.
    pub fn flipped(self) -> Self {
        match self {
            Comparison::Lt => Comparison::Gt,
            Comparison::Le => Comparison::Ge,
            Comparison::Gt => Comparison::Lt,
            Comparison::Ge => Comparison::Le,
            other => other,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Comparison::Eq => "=",
            Comparison::Ne => "<>",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        }
    }
}

/// A checked condition. Every literal has its column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every term holds (two or more terms after [`parse`]).
    And(Vec<Expr>),
    /// Some term holds (two or more terms after [`parse`]).
    Or(Vec<Expr>),
    /// The condition does not hold.
    Not(Box<Expr>),
    /// `column op value`, the column always on the left.
    Compare {
        /// The column.
        column: &'static Column,
        /// The operator.
        op: Comparison,
        /// The value.
        value: Literal,
    },
    /// `column [NOT] LIKE pattern` on a text column; `%` and `_` are the wildcards.
    Like {
        /// The column.
        column: &'static Column,
        /// The ADQL pattern, as written.
        pattern: String,
        /// `NOT LIKE`.
        negated: bool,
        /// `ILIKE`: letters match either case.
        case_insensitive: bool,
    },
    /// `column [NOT] BETWEEN low AND high`.
    Between {
        /// The column.
        column: &'static Column,
        /// The lower bound (inclusive).
        low: Literal,
        /// The upper bound (inclusive).
        high: Literal,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `column [NOT] IN (values)`, with 1 to [`MAX_IN_VALUES`] values.
    In {
        /// The column.
        column: &'static Column,
        /// The values.
        values: Vec<Literal>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `column IS [NOT] NULL`.
    IsNull {
        /// The column.
        column: &'static Column,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// The product's position (`s_ra`, `s_dec`) is inside (or outside) a cone. Products
    /// without a position are neither.
    Cone {
        /// The cone, checked to be on the sky.
        cone: SkyCone,
        /// Inside (`CONTAINS(...) = 1`) or outside (`= 0`).
        inside: bool,
    },
}

/// Why a query was refused. Each says what is wrong and where (a byte offset into the query).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdqlError {
    /// The query is longer than [`MAX_QUERY_BYTES`].
    #[error("the query is {len} bytes long; this service accepts at most {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Parentheses and `NOT` nest deeper than [`MAX_DEPTH`].
    #[error(
        "the condition nests parentheses or NOT more than {max} deep (at byte {at}); flatten it"
    )]
    TooDeep {
        /// The limit.
        max: usize,
        /// Where the limit was passed.
        at: usize,
    },
    /// An `IN` list holds more than [`MAX_IN_VALUES`] values.
    #[error("the IN list at byte {at} holds more than {max} values; split the query")]
    TooManyValues {
        /// The limit.
        max: usize,
        /// Where the list starts.
        at: usize,
    },
    /// Valid ADQL outside the subset this service answers.
    #[error("{what} is not supported by this service (at byte {at})")]
    Unsupported {
        /// What was found.
        what: String,
        /// Where.
        at: usize,
    },
    /// A table other than `ivoa.obscore`.
    #[error("only ivoa.obscore can be queried; found `{found}` at byte {at}")]
    UnknownTable {
        /// The table as written.
        found: String,
        /// Where.
        at: usize,
    },
    /// A column `ivoa.obscore` does not have.
    #[error(
        "unknown column \"{name}\" in ivoa.obscore (at byte {at}); the service's tables document lists its columns"
    )]
    UnknownColumn {
        /// The name as written.
        name: String,
        /// Where.
        at: usize,
    },
    /// A column qualified by something other than the table or its alias.
    #[error("`{qualifier}` at byte {at} is neither ivoa.obscore nor its alias")]
    UnknownQualifier {
        /// The qualifier as written.
        qualifier: String,
        /// Where.
        at: usize,
    },
    /// Text that is not ADQL at all.
    #[error("syntax error at byte {at}: expected {expected}, found {found}")]
    Syntax {
        /// What would have been understood there.
        expected: &'static str,
        /// What was found.
        found: String,
        /// Where.
        at: usize,
    },
    /// A literal of the wrong type for its column.
    #[error("column {column} holds {holds} but is compared with {found} at byte {at}")]
    TypeMismatch {
        /// The column.
        column: &'static str,
        /// What it holds: "numbers" or "text".
        holds: &'static str,
        /// What it was compared with.
        found: String,
        /// Where.
        at: usize,
    },
    /// A comparison between two literals, such as `1 = 1`.
    #[error("the condition at byte {at} compares two values; compare a column with a value")]
    LiteralComparison {
        /// Where.
        at: usize,
    },
    /// A string literal without its closing quote.
    #[error("the string starting at byte {at} has no closing quote (')")]
    UnterminatedString {
        /// Where it starts.
        at: usize,
    },
    /// A quoted identifier without its closing double quote.
    #[error("the quoted name starting at byte {at} has no closing double quote (\")")]
    UnterminatedIdentifier {
        /// Where it starts.
        at: usize,
    },
    /// A number that is malformed or too large for a double.
    #[error("`{text}` at byte {at} is not a number this service can use")]
    InvalidNumber {
        /// The number as written.
        text: String,
        /// Where.
        at: usize,
    },
    /// A coordinate system other than ICRS.
    #[error("coordinate system '{found}' at byte {at} is not supported; write 'ICRS'")]
    CoordinateSystem {
        /// The system as written.
        found: String,
        /// Where.
        at: usize,
    },
    /// A circle that is not on the sky.
    #[error("the circle at byte {at} is not on the sky: {source}")]
    Circle {
        /// Where the circle starts.
        at: usize,
        /// What is wrong with it.
        #[source]
        source: SkyError,
    },
}

/// The SQL for a [`Select`]: one statement, its parameters and the shape of its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlQuery {
    /// The statement. Every literal is a `?`; the last `?` is the row limit.
    pub sql: String,
    /// The values of the `?`s, in order.
    pub params: Vec<Value>,
    /// The output columns, in order.
    pub columns: Vec<&'static Column>,
    /// The output names, parallel to `columns` (aliases applied).
    pub names: Vec<String>,
    /// Rows to return: min(TOP, MAXREC). The statement asks for one more, so a result with more
    /// than `limit` rows overflowed and is cut at `limit`.
    pub limit: u64,
}

impl SqlQuery {
    /// The output fields as (name, column) pairs, as [`crate::votable::results`] takes them.
    pub fn fields(&self) -> Vec<(&str, &'static Column)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.columns.iter().copied())
            .collect()
    }
}

fn unsupported(what: impl Into<String>, at: usize) -> AdqlError {
    AdqlError::Unsupported {
        what: what.into(),
        at,
    }
}

/// At most [`MAX_QUOTED_CHARS`] characters of `text`, for an error message.
fn shorten(text: &str) -> String {
    let mut chars = text.chars();
    let mut short: String = chars.by_ref().take(MAX_QUOTED_CHARS).collect();
    if chars.next().is_some() {
        short.push('…');
    }
    short
}

/// Parses ADQL and checks it against `ivoa.obscore`.
pub fn parse(adql: &str) -> Result<Select, AdqlError> {
    if adql.len() > MAX_QUERY_BYTES {
        return Err(AdqlError::TooLong {
            len: adql.len(),
            max: MAX_QUERY_BYTES,
        });
    }
    let tokens = lex(adql)?;
    let mut parser = Parser {
        src: adql,
        tokens,
        end: Token {
            tok: Tok::End,
            at: adql.len(),
            end: adql.len(),
        },
        pos: 0,
        depth: 0,
    };
    let select = parser.select()?;
    parser.finish()?;
    Ok(select)
}

/// Renders a checked query as parameterised SQLite SQL over the [`obscore::SQL_VIEW`] view,
/// ordered by the requested columns and then the row id, limited to min(TOP, `maxrec`) + 1 rows.
pub fn to_sql(select: &Select, maxrec: u64) -> SqlQuery {
    let output = select.output();
    let limit = select.top.map_or(maxrec, |top| top.min(maxrec));
    let mut out = SqlWriter::default();
    out.sql.push_str("SELECT ");
    for (i, (_, column)) in output.iter().enumerate() {
        if i > 0 {
            out.sql.push_str(", ");
        }
        out.sql.push_str(column.name);
    }
    out.sql.push_str(" FROM ");
    out.sql.push_str(obscore::SQL_VIEW);
    if let Some(filter) = &select.filter {
        out.sql.push_str(" WHERE ");
        out.expr(filter);
    }
    out.sql.push_str(" ORDER BY ");
    for item in &select.order_by {
        out.sql.push_str(item.column.name);
        out.sql
            .push_str(if item.descending { " DESC, " } else { " ASC, " });
    }
    out.sql.push_str(obscore::ROW_ID);
    out.sql.push_str(" LIMIT ?");
    let sql_limit = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    out.params.push(Value::Int(sql_limit));
    let (names, columns) = output.into_iter().unzip();
    SqlQuery {
        sql: out.sql,
        params: out.params,
        columns,
        names,
        limit,
    }
}

/// An ADQL `LIKE` pattern as a case-sensitive SQLite `GLOB` pattern: `%` becomes `*`, `_`
/// becomes `?`, and GLOB's own `*`, `?` and `[` are matched literally.
pub fn like_to_glob(pattern: &str) -> String {
    let mut glob = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '%' => glob.push('*'),
            '_' => glob.push('?'),
            '*' => glob.push_str("[*]"),
            '?' => glob.push_str("[?]"),
            '[' => glob.push_str("[[]"),
            c => glob.push(c),
        }
    }
    glob
}

/// An ADQL `ILIKE` pattern as an SQLite `LIKE ... ESCAPE '\'` pattern: the wildcards are the
/// same, and a backslash is matched literally.
pub fn ilike_to_like(pattern: &str) -> String {
    pattern.replace('\\', "\\\\")
}
