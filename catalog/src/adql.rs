//! The ADQL subset a node answers, against the tables of [`crate::table::TABLES`]:
//! `ivoa.obscore` and the five `TAP_SCHEMA` tables.
//!
//! [`parse`] turns ADQL text into a checked [`Select`]: the table and every column exist, every
//! literal has its column's type, every cone is on the sky, and an aggregating query names only
//! grouped columns outside its aggregates (the rules of `adql/check`). Anything outside the
//! subset is refused with an [`AdqlError`] that names it and gives its byte offset. [`to_sql`]
//! renders a `Select` as one SQLite statement over the table's [`Table::sql`]: literals travel
//! only as `?` parameters and table and column names come only from [`crate::table`], so no
//! user text reaches the SQL.
//!
//! The subset:
//!
//! ```text
//! SELECT [ALL | DISTINCT] [TOP n] * | item [[AS] alias], ...
//! FROM schema.table [[AS] alias]
//! [WHERE condition]
//! [GROUP BY col, ...]
//! [HAVING condition]
//! [ORDER BY col | aggregate | alias | position [ASC | DESC], ...]
//! ```
//!
//! where an item is a column or an aggregate: `COUNT(*)`, `COUNT([DISTINCT] col)`,
//! `MIN(col)`, `MAX(col)`, `SUM(col)`, `AVG(col)` (SUM and AVG of numbers only, MIN and MAX
//! of any column; `DISTINCT` is taken by all of them). Aggregates are refused in `WHERE` and
//! inside each other; `HAVING` takes the predicates of `WHERE` on grouped columns and
//! `aggregate op value`.
//!
//! where a condition combines with `AND`, `OR`, `NOT` and parentheses the predicates
//! `col op literal` (or `literal op col`; `op` one of `= != <> < <= > >=`),
//! `col [NOT] LIKE 'pattern'`, `col [NOT] ILIKE 'pattern'`, `col [NOT] BETWEEN lit AND lit`,
//! `col [NOT] IN (lit, ...)`, `col IS [NOT] NULL` and the cone test
//! `CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', ra, dec, radius)) = 1` (or `= 0`).
//! Columns may be qualified by the table's name or alias. `--` starts a comment.
//!
//! Input is bounded: [`MAX_QUERY_BYTES`], [`MAX_DEPTH`], [`MAX_IN_VALUES`] and [`MAX_ITEMS`].
//! [`parse`] never panics and its recursion is bounded by [`MAX_DEPTH`].

use crate::Value;
use crate::obscore::{self, Column};
use crate::sky::{SkyCone, SkyError};
use crate::table::{Datatype, Table};

mod check;
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
/// Most entries of a select list, a `GROUP BY` or an `ORDER BY` list.
pub const MAX_ITEMS: usize = 100;
/// Longest piece of the user's text quoted back in an error message, in characters.
const MAX_QUOTED_CHARS: usize = 60;

/// A checked query against one of the served tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// The table queried.
    pub table: &'static Table,
    /// `SELECT DISTINCT`: equal rows are returned once.
    pub distinct: bool,
    /// `TOP n`, if given.
    pub top: Option<u64>,
    /// The select list, 1 to [`MAX_ITEMS`] entries after [`parse`].
    pub items: Vec<SelectItem>,
    /// The table's alias, if given (`FROM ivoa.obscore AS o`).
    pub table_alias: Option<String>,
    /// The `WHERE` condition, if any; it holds no aggregate.
    pub filter: Option<Expr>,
    /// The `GROUP BY` columns.
    pub group_by: Vec<&'static Column>,
    /// The `HAVING` condition, if any.
    pub having: Option<Expr>,
    /// The `ORDER BY` list (a tie-break is always appended when rendered).
    pub order_by: Vec<OrderItem>,
}

impl Select {
    /// The output columns in order, `*` expanded to every column of the table, each with its
    /// output name (the alias, the column's name, or for an aggregate its
    /// [`Aggregate::default_name`]) and the column describing its values (for an aggregate,
    /// [`Aggregate::output`]).
    pub fn output(&self) -> Vec<(String, Column)> {
        let mut out = Vec::new();
        for item in &self.items {
            match item {
                SelectItem::All => {
                    out.extend(self.table.columns.iter().map(|c| (c.name.to_owned(), *c)));
                }
                SelectItem::Column { column, alias } => {
                    let name = alias.clone().unwrap_or_else(|| column.name.to_owned());
                    out.push((name, **column));
                }
                SelectItem::Aggregate { aggregate, alias } => {
                    let name = alias.clone().unwrap_or_else(|| aggregate.default_name());
                    out.push((name, aggregate.output()));
                }
            }
        }
        out
    }

    /// Whether rows are grouped: a `GROUP BY`, a `HAVING`, or an aggregate in the select list
    /// or the `ORDER BY`.
    pub fn aggregates(&self) -> bool {
        !self.group_by.is_empty()
            || self.having.is_some()
            || self
                .items
                .iter()
                .any(|i| matches!(i, SelectItem::Aggregate { .. }))
            || self
                .order_by
                .iter()
                .any(|o| matches!(o.key, OrderKey::Aggregate(_)))
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
    /// An aggregate over the rows (or each group), perhaps renamed.
    Aggregate {
        /// The aggregate.
        aggregate: Aggregate,
        /// Its output name, if given with `AS`.
        alias: Option<String>,
    },
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    /// `COUNT`: rows, or non-null values.
    Count,
    /// `MIN`: the smallest value.
    Min,
    /// `MAX`: the largest value.
    Max,
    /// `SUM`: the sum of numbers.
    Sum,
    /// `AVG`: the mean of numbers.
    Avg,
}

impl AggregateFunction {
    /// The function named `word` in any case, if it is one.
    pub fn named(word: &str) -> Option<Self> {
        [
            ("COUNT", Self::Count),
            ("MIN", Self::Min),
            ("MAX", Self::Max),
            ("SUM", Self::Sum),
            ("AVG", Self::Avg),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|(_, f)| f)
    }

    /// Its name, as ADQL and SQLite write it.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Count => "COUNT",
            Self::Min => "MIN",
            Self::Max => "MAX",
            Self::Sum => "SUM",
            Self::Avg => "AVG",
        }
    }
}

/// The column describing a `COUNT`.
const COUNT_OUTPUT: Column = Column {
    name: "count",
    datatype: Datatype::Long,
    unit: None,
    ucd: Some("meta.number"),
    utype: None,
    description: "The number of rows, or of values that are not null",
    principal: true,
    indexed: false,
};

/// A checked aggregate: `SUM` and `AVG` are over numeric columns, `COUNT(*)` is the only one
/// without a column.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The function.
    pub function: AggregateFunction,
    /// Its column; `None` for `COUNT(*)`.
    pub column: Option<&'static Column>,
    /// `DISTINCT`: equal values count once.
    pub distinct: bool,
}

impl Aggregate {
    /// The output name when no alias is given: `count` for `COUNT(*)`, else the function and
    /// the column, e.g. `max_s_ra`.
    pub fn default_name(&self) -> String {
        let function = self.function.sql().to_ascii_lowercase();
        match self.column {
            None => function,
            Some(c) => format!("{function}_{}", c.name),
        }
    }

    /// The column describing its values: `COUNT` is a `long`, `AVG` a `double`, `SUM` a `long`
    /// over integers and a `double` over doubles, `MIN` and `MAX` have their column's type.
    pub fn output(&self) -> Column {
        let Some(column) = self.column else {
            return COUNT_OUTPUT;
        };
        let numeric = |datatype, description| Column {
            name: self.function.sql(),
            datatype,
            unit: column.unit,
            ucd: None,
            utype: None,
            description,
            principal: true,
            indexed: false,
        };
        match self.function {
            AggregateFunction::Count => COUNT_OUTPUT,
            AggregateFunction::Min | AggregateFunction::Max => *column,
            AggregateFunction::Sum if column.datatype == Datatype::Double => {
                numeric(Datatype::Double, "The sum of a column's values")
            }
            AggregateFunction::Sum => numeric(Datatype::Long, "The sum of a column's values"),
            AggregateFunction::Avg => numeric(Datatype::Double, "The mean of a column's values"),
        }
    }
}

/// What an `ORDER BY` entry sorts on.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderKey {
    /// A column.
    Column(&'static Column),
    /// An aggregate.
    Aggregate(Aggregate),
}

/// One entry of the `ORDER BY` list.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    /// What is sorted on.
    pub key: OrderKey,
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
    /// without a position are neither. Only on a table with [`Table::sky`].
    Cone {
        /// The cone, checked to be on the sky.
        cone: SkyCone,
        /// Inside (`CONTAINS(...) = 1`) or outside (`= 0`).
        inside: bool,
    },
    /// `aggregate op value`: only in `HAVING`.
    Aggregate {
        /// The aggregate.
        aggregate: Aggregate,
        /// The operator.
        op: Comparison,
        /// The value, of the aggregate's output type.
        value: Literal,
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
    /// A table not in `TAP_SCHEMA.tables`.
    #[error(
        "unknown table `{found}` at byte {at}; this service has ivoa.obscore and TAP_SCHEMA.schemas, .tables, .columns, .keys and .key_columns"
    )]
    UnknownTable {
        /// The table as written.
        found: String,
        /// Where.
        at: usize,
    },
    /// A column the table does not have.
    #[error(
        "unknown column \"{name}\" in {table} (at byte {at}); TAP_SCHEMA.columns lists its columns"
    )]
    UnknownColumn {
        /// The name as written.
        name: String,
        /// The table queried.
        table: String,
        /// Where.
        at: usize,
    },
    /// A column qualified by something other than the table or its alias.
    #[error("`{qualifier}` at byte {at} is neither the table queried nor its alias")]
    UnknownQualifier {
        /// The qualifier as written.
        qualifier: String,
        /// Where.
        at: usize,
    },
    /// A select list, `GROUP BY` or `ORDER BY` with more than [`MAX_ITEMS`] entries.
    #[error("the {what} at byte {at} has more than {max} entries; shorten it")]
    TooManyItems {
        /// Which list.
        what: &'static str,
        /// The limit.
        max: usize,
        /// Where the list starts.
        at: usize,
    },
    /// An aggregate inside another aggregate.
    #[error("aggregates cannot be nested (at byte {at}); aggregate a column")]
    NestedAggregate {
        /// Where the inner aggregate starts.
        at: usize,
    },
    /// An aggregate in `WHERE`.
    #[error(
        "an aggregate cannot be used in WHERE (at byte {at}); compare aggregates in HAVING, after GROUP BY"
    )]
    AggregateInWhere {
        /// Where.
        at: usize,
    },
    /// `SUM` or `AVG` of a text column.
    #[error("{function} at byte {at} needs a column of numbers; {column} holds text")]
    AggregateOfText {
        /// The function.
        function: &'static str,
        /// The column.
        column: &'static str,
        /// Where.
        at: usize,
    },
    /// A column outside any aggregate, in a query that groups rows, that is not grouped.
    #[error(
        "column {column} at byte {at} is neither in GROUP BY nor inside an aggregate; add it to GROUP BY or aggregate it"
    )]
    NotGrouped {
        /// The column.
        column: &'static str,
        /// Where.
        at: usize,
    },
    /// `*` in a query that groups rows.
    #[error(
        "SELECT * at byte {at} cannot be combined with GROUP BY or aggregates; name the grouped columns"
    )]
    StarWithAggregates {
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
    /// The columns describing the output, in order (an aggregate's is
    /// [`Aggregate::output`]).
    pub columns: Vec<Column>,
    /// The output names, parallel to `columns` (aliases applied).
    pub names: Vec<String>,
    /// Rows to return: min(TOP, MAXREC). The statement asks for one more, so a result with more
    /// than `limit` rows overflowed and is cut at `limit`.
    pub limit: u64,
}

impl SqlQuery {
    /// The output fields as (name, column) pairs, as [`crate::votable::results`] takes them.
    pub fn fields(&self) -> Vec<(&str, &Column)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(&self.columns)
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

/// Parses ADQL and checks it against the served tables.
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
        table: &obscore::TABLE,
    };
    let select = parser.select()?;
    parser.finish()?;
    Ok(select)
}

/// Renders a checked query as parameterised SQLite SQL over its table's [`Table::sql`],
/// ordered by the requested keys and then a tie-break (the row id, or for a query that groups
/// or drops duplicate rows every output column), limited to min(TOP, `maxrec`) + 1 rows.
pub fn to_sql(select: &Select, maxrec: u64) -> SqlQuery {
    let limit = select.top.map_or(maxrec, |top| top.min(maxrec));
    let mut out = SqlWriter::default();
    out.select(select);
    out.sql.push_str(" LIMIT ?");
    let sql_limit = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    out.params.push(Value::Int(sql_limit));
    let (names, columns) = select.output().into_iter().unzip();
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
