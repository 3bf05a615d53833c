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

// ---------------------------------------------------------------------------------------------
// Rendering

#[derive(Default)]
struct SqlWriter {
    sql: String,
    params: Vec<Value>,
}

impl SqlWriter {
    fn param(&mut self, value: Value) {
        self.sql.push('?');
        self.params.push(value);
    }

    fn column(&mut self, column: &Column, negated: bool, keyword: &str) {
        self.sql.push_str(column.name);
        self.sql.push_str(if negated { " NOT " } else { " " });
        self.sql.push_str(keyword);
        self.sql.push(' ');
    }

    fn expr(&mut self, expr: &Expr) {
        match expr {
            Expr::And(terms) => self.terms(terms, " AND ", "1"),
            Expr::Or(terms) => self.terms(terms, " OR ", "0"),
            Expr::Not(inner) => {
                self.sql.push_str("NOT (");
                self.expr(inner);
                self.sql.push(')');
            }
            Expr::Compare { column, op, value } => {
                self.column(column, false, op.sql());
                self.param(value.to_value());
            }
            Expr::Like {
                column,
                pattern,
                negated,
                case_insensitive,
            } => self.like(column, pattern, *negated, *case_insensitive),
            Expr::Between {
                column,
                low,
                high,
                negated,
            } => {
                self.column(column, *negated, "BETWEEN");
                self.param(low.to_value());
                self.sql.push_str(" AND ");
                self.param(high.to_value());
            }
            Expr::In {
                column,
                values,
                negated,
            } => {
                self.column(column, *negated, "IN");
                self.sql.push('(');
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(", ");
                    }
                    self.param(value.to_value());
                }
                self.sql.push(')');
            }
            Expr::IsNull { column, negated } => {
                self.sql.push_str(column.name);
                self.sql
                    .push_str(if *negated { " IS NOT NULL" } else { " IS NULL" });
            }
            Expr::Cone { cone, inside: true } => self.cone(cone),
            Expr::Cone {
                cone,
                inside: false,
            } => {
                self.sql.push('(');
                self.sql.push_str(obscore::SKY_X);
                self.sql.push_str(" IS NOT NULL AND NOT ");
                self.cone(cone);
                self.sql.push(')');
            }
        }
    }

    /// SQLite's LIKE ignores ASCII case and ADQL's does not, so LIKE becomes GLOB.
    fn like(&mut self, column: &Column, pattern: &str, negated: bool, case_insensitive: bool) {
        if case_insensitive {
            self.column(column, negated, "LIKE");
            self.param(Value::Text(ilike_to_like(pattern)));
            self.sql.push_str(" ESCAPE '\\'");
        } else {
            self.column(column, negated, "GLOB");
            self.param(Value::Text(like_to_glob(pattern)));
        }
    }

    fn terms(&mut self, terms: &[Expr], joiner: &str, empty: &str) {
        if terms.is_empty() {
            self.sql.push_str(empty);
            return;
        }
        self.sql.push('(');
        for (i, term) in terms.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(joiner);
            }
            self.expr(term);
        }
        self.sql.push(')');
    }

    /// The R*Tree narrows the candidates to the cone's box; the dot product decides.
    fn cone(&mut self, cone: &SkyCone) {
        let b = cone.bounding_box();
        let c = cone.centre;
        self.sql.push('(');
        self.sql.push_str(obscore::ROW_ID);
        self.sql.push_str(" IN (SELECT id FROM ");
        self.sql.push_str(obscore::SKY_INDEX);
        self.sql.push_str(" WHERE ");
        for (i, (axis, (lo, hi))) in [("x", b.x), ("y", b.y), ("z", b.z)].into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(" AND ");
            }
            // An entry overlaps the box when its upper end is above the box's lower end and
            // its lower end below the box's upper end.
            self.sql.push_str(axis);
            self.sql.push_str("1 >= ");
            self.param(Value::Double(lo));
            self.sql.push_str(" AND ");
            self.sql.push_str(axis);
            self.sql.push_str("0 <= ");
            self.param(Value::Double(hi));
        }
        self.sql.push_str(") AND (");
        for (i, (name, component)) in [
            (obscore::SKY_X, c.x),
            (obscore::SKY_Y, c.y),
            (obscore::SKY_Z, c.z),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                self.sql.push_str(" + ");
            }
            self.sql.push_str(name);
            self.sql.push_str(" * ");
            self.param(Value::Double(component));
        }
        self.sql.push_str(") >= ");
        self.param(Value::Double(cone.min_dot()));
        self.sql.push(')');
    }
}

// ---------------------------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A keyword or an unquoted name, as written.
    Word(String),
    /// A double-quoted name, unescaped.
    Quoted(String),
    /// A single-quoted string, unescaped.
    Str(String),
    /// An unsigned number, as written.
    Num(String),
    Comma,
    LParen,
    RParen,
    Dot,
    Star,
    Semicolon,
    Plus,
    Minus,
    Slash,
    Concat,
    Cmp(Comparison),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Byte offset of its first character.
    at: usize,
    /// Byte offset just past it.
    end: usize,
}

/// Splits the query into tokens. Every offset lies on a character boundary.
fn lex(src: &str) -> Result<Vec<Token>, AdqlError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let at = i;
        let next = bytes.get(i + 1).copied();
        let tok = match b {
            b'-' if next == Some(b'-') => {
                while bytes.get(i).is_some_and(|&b| b != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'/' if next == Some(b'*') => {
                return Err(unsupported(
                    "a /* */ comment (ADQL comments start with --)",
                    at,
                ));
            }
            b'\'' => {
                let (text, end) =
                    quoted(src, at, '\'').ok_or(AdqlError::UnterminatedString { at })?;
                i = end;
                Tok::Str(text)
            }
            b'"' => {
                let (text, end) =
                    quoted(src, at, '"').ok_or(AdqlError::UnterminatedIdentifier { at })?;
                i = end;
                Tok::Quoted(text)
            }
            b'0'..=b'9' => {
                i = number_end(bytes, at)?;
                Tok::Num(src.get(at..i).unwrap_or_default().to_owned())
            }
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                i = number_end(bytes, at)?;
                Tok::Num(src.get(at..i).unwrap_or_default().to_owned())
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while bytes
                    .get(i)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    i += 1;
                }
                Tok::Word(src.get(at..i).unwrap_or_default().to_owned())
            }
            _ => match operator(b, next) {
                Some((tok, len)) => {
                    i += len;
                    tok
                }
                None => {
                    let c = src.get(at..).and_then(|s| s.chars().next()).unwrap_or(' ');
                    if c.is_whitespace() {
                        i += c.len_utf8();
                        continue;
                    }
                    return Err(AdqlError::Syntax {
                        expected: "a keyword, a name, a value or an operator",
                        found: format!("`{}`", c.escape_debug()),
                        at,
                    });
                }
            },
        };
        tokens.push(Token { tok, at, end: i });
    }
    Ok(tokens)
}

/// The operator or punctuation starting with `b` (followed by `next`), and its length.
fn operator(b: u8, next: Option<u8>) -> Option<(Tok, usize)> {
    Some(match (b, next) {
        (b'<', Some(b'=')) => (Tok::Cmp(Comparison::Le), 2),
        (b'<', Some(b'>')) | (b'!', Some(b'=')) => (Tok::Cmp(Comparison::Ne), 2),
        (b'>', Some(b'=')) => (Tok::Cmp(Comparison::Ge), 2),
        (b'|', Some(b'|')) => (Tok::Concat, 2),
        (b'<', _) => (Tok::Cmp(Comparison::Lt), 1),
        (b'>', _) => (Tok::Cmp(Comparison::Gt), 1),
        (b'=', _) => (Tok::Cmp(Comparison::Eq), 1),
        (b',', _) => (Tok::Comma, 1),
        (b'(', _) => (Tok::LParen, 1),
        (b')', _) => (Tok::RParen, 1),
        (b'.', _) => (Tok::Dot, 1),
        (b'*', _) => (Tok::Star, 1),
        (b';', _) => (Tok::Semicolon, 1),
        (b'+', _) => (Tok::Plus, 1),
        (b'-', _) => (Tok::Minus, 1),
        (b'/', _) => (Tok::Slash, 1),
        _ => return None,
    })
}

/// The text of a literal quoted by `quote` starting at `at` (doubled quotes stand for one), and
/// the offset past its closing quote; `None` when it is not closed.
fn quoted(src: &str, at: usize, quote: char) -> Option<(String, usize)> {
    let mut text = String::new();
    let mut i = at + 1;
    loop {
        let close = i + src.get(i..)?.find(quote)?;
        text.push_str(src.get(i..close)?);
        if src.get(close + 1..)?.starts_with(quote) {
            text.push(quote);
            i = close + 2;
        } else {
            return Some((text, close + 1));
        }
    }
}

/// The end of the number starting at `at`: digits, an optional fraction, an optional exponent.
fn number_end(bytes: &[u8], at: usize) -> Result<usize, AdqlError> {
    let digits = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = digits(at);
    if bytes.get(i) == Some(&b'.') {
        i = digits(i + 1);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let end = digits(j);
        if end == j {
            let text = String::from_utf8_lossy(bytes.get(at..j).unwrap_or_default());
            return Err(AdqlError::InvalidNumber {
                text: text.into_owned(),
                at,
            });
        }
        i = end;
    }
    Ok(i)
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Words that end a name or an alias; they cannot name a column without double quotes.
const RESERVED: &[&str] = &[
    "ALL",
    "AND",
    "AS",
    "ASC",
    "BETWEEN",
    "BY",
    "CROSS",
    "DESC",
    "DISTINCT",
    "ESCAPE",
    "EXCEPT",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "ILIKE",
    "IN",
    "INNER",
    "INTERSECT",
    "IS",
    "JOIN",
    "LEFT",
    "LIKE",
    "LIMIT",
    "NATURAL",
    "NOT",
    "NULL",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "RIGHT",
    "SELECT",
    "TOP",
    "UNION",
    "USING",
    "WHERE",
    "WITH",
];

/// Clauses that may follow a query but are outside the subset.
const UNSUPPORTED_CLAUSES: &[(&str, &str)] = &[
    ("GROUP", "GROUP BY"),
    ("HAVING", "HAVING"),
    ("OFFSET", "OFFSET"),
    ("LIMIT", "LIMIT (ADQL writes SELECT TOP n)"),
    ("UNION", "UNION"),
    ("INTERSECT", "INTERSECT"),
    ("EXCEPT", "EXCEPT"),
];

/// Words that start a join after the table.
const JOIN_WORDS: &[&str] = &[
    "JOIN", "INNER", "LEFT", "RIGHT", "FULL", "OUTER", "CROSS", "NATURAL",
];

/// A name as written: unquoted names match in any case, quoted ones exactly.
#[derive(Debug, Clone)]
struct Ident {
    text: String,
    quoted: bool,
    at: usize,
    end: usize,
}

impl Ident {
    fn is(&self, name: &str) -> bool {
        if self.quoted {
            self.text == name
        } else {
            self.text.eq_ignore_ascii_case(name)
        }
    }

    fn matches(&self, other: &Ident) -> bool {
        if self.quoted && other.quoted {
            self.text == other.text
        } else {
            self.text.eq_ignore_ascii_case(&other.text)
        }
    }
}

/// A select-list entry before the table (and so its alias) is known.
enum RawItem {
    All {
        qualifier: Vec<Ident>,
    },
    Column {
        name: Vec<Ident>,
        alias: Option<String>,
    },
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    /// Stands for every position past the last token.
    end: Token,
    pos: usize,
    depth: usize,
}

type Parsed<T> = Result<T, AdqlError>;

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

fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

impl Parser<'_> {
    // --- token access

    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> &Token {
        self.tokens.get(self.pos + n).unwrap_or(&self.end)
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    fn prev_end(&self) -> usize {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .map_or(0, |t| t.end)
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.is_kw(kw);
        if found {
            self.bump();
        }
        found
    }

    fn expect_kw(&mut self, kw: &str, expected: &'static str) -> Parsed<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        let found = self.peek().tok == *tok;
        if found {
            self.bump();
        }
        found
    }

    fn expect(&mut self, tok: &Tok, expected: &'static str) -> Parsed<()> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    fn text(&self, from: usize, to: usize) -> String {
        shorten(self.src.get(from..to).unwrap_or_default())
    }

    fn syntax(&self, expected: &'static str) -> AdqlError {
        let t = self.peek();
        let found = match t.tok {
            Tok::End => "the end of the query".to_owned(),
            _ => format!("`{}`", self.text(t.at, t.end)),
        };
        AdqlError::Syntax {
            expected,
            found,
            at: t.at,
        }
    }

    /// The current word in upper case, for naming it in an error.
    fn word_upper(&self) -> String {
        let t = self.peek();
        self.text(t.at, t.end).to_ascii_uppercase()
    }

    fn enter(&mut self, at: usize) -> Parsed<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(AdqlError::TooDeep { max: MAX_DEPTH, at });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // --- names

    /// A name that may denote a column, table or alias: an unreserved word or a quoted name.
    fn ident(&mut self) -> Option<Ident> {
        let t = self.peek();
        let ident = match &t.tok {
            Tok::Word(w) if !is_reserved(w) => Ident {
                text: w.clone(),
                quoted: false,
                at: t.at,
                end: t.end,
            },
            Tok::Quoted(q) => Ident {
                text: q.clone(),
                quoted: true,
                at: t.at,
                end: t.end,
            },
            _ => return None,
        };
        self.bump();
        Some(ident)
    }

    fn starts_ident(&self) -> bool {
        match &self.peek().tok {
            Tok::Word(w) => !is_reserved(w),
            Tok::Quoted(_) => true,
            _ => false,
        }
    }

    /// `name(.name)*`; stops before `.*`.
    fn dotted(&mut self, expected: &'static str) -> Parsed<Vec<Ident>> {
        let first = self.ident().ok_or_else(|| self.syntax(expected))?;
        let mut parts = vec![first];
        while self.peek().tok == Tok::Dot && self.peek_at(1).tok != Tok::Star {
            self.bump();
            let part = self
                .ident()
                .ok_or_else(|| self.syntax("a name after `.`"))?;
            parts.push(part);
        }
        Ok(parts)
    }

    /// Checks that `qualifier` names the table: its alias, `obscore` or `ivoa.obscore`.
    fn check_qualifier(&self, qualifier: &[Ident], alias: Option<&Ident>) -> Parsed<()> {
        let fine = match qualifier {
            [] => true,
            [t] => alias.is_some_and(|a| a.matches(t)) || t.is("obscore"),
            [s, t] => s.is(obscore::SCHEMA_NAME) && t.is("obscore"),
            _ => false,
        };
        match (fine, qualifier.first(), qualifier.last()) {
            (false, Some(first), Some(last)) => Err(AdqlError::UnknownQualifier {
                qualifier: self.text(first.at, last.end),
                at: first.at,
            }),
            _ => Ok(()),
        }
    }

    fn resolve(&self, name: &[Ident], alias: Option<&Ident>) -> Parsed<&'static Column> {
        let Some((column, qualifier)) = name.split_last() else {
            return Err(self.syntax("a column name"));
        };
        self.check_qualifier(qualifier, alias)?;
        let found = if column.quoted {
            obscore::COLUMNS.iter().find(|c| c.name == column.text)
        } else {
            obscore::column(&column.text)
        };
        found.ok_or_else(|| AdqlError::UnknownColumn {
            name: shorten(&column.text),
            at: column.at,
        })
    }

    // --- the statement

    fn select(&mut self) -> Parsed<Select> {
        if self.is_kw("WITH") {
            return Err(unsupported(
                "WITH (common table expressions)",
                self.peek().at,
            ));
        }
        self.expect_kw("SELECT", "SELECT")?;
        if self.is_kw("DISTINCT") {
            return Err(unsupported("DISTINCT", self.peek().at));
        }
        self.eat_kw("ALL");
        let top = if self.eat_kw("TOP") {
            Some(self.top()?)
        } else {
            None
        };
        let mut raw = vec![self.select_item()?];
        while self.eat(&Tok::Comma) {
            raw.push(self.select_item()?);
        }
        self.expect_kw("FROM", "`,` or FROM after the select list")?;
        let alias = self.table_clause()?;
        let mut items = Vec::with_capacity(raw.len());
        for item in raw {
            items.push(match item {
                RawItem::All { qualifier } => {
                    self.check_qualifier(&qualifier, alias.as_ref())?;
                    SelectItem::All
                }
                RawItem::Column { name, alias: out } => SelectItem::Column {
                    column: self.resolve(&name, alias.as_ref())?,
                    alias: out,
                },
            });
        }
        let mut select = Select {
            top,
            items,
            table_alias: alias.as_ref().map(|a| a.text.clone()),
            filter: None,
            order_by: Vec::new(),
        };
        if self.eat_kw("WHERE") {
            select.filter = Some(self.or_expr(alias.as_ref())?);
        }
        self.refuse_clause()?;
        if self.eat_kw("ORDER") {
            self.expect_kw("BY", "BY after ORDER")?;
            select.order_by = self.order_by(&select, alias.as_ref())?;
        }
        Ok(select)
    }

    fn top(&mut self) -> Parsed<u64> {
        match &self.peek().tok {
            Tok::Num(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                // Only overflow can fail here, and a huge TOP means "no TOP".
                let n = n.parse().unwrap_or(u64::MAX);
                self.bump();
                Ok(n)
            }
            _ => Err(self.syntax("a whole number after TOP")),
        }
    }

    fn select_item(&mut self) -> Parsed<RawItem> {
        let at = self.peek().at;
        match &self.peek().tok {
            Tok::Star => {
                self.bump();
                return Ok(RawItem::All {
                    qualifier: Vec::new(),
                });
            }
            Tok::Str(_) | Tok::Num(_) | Tok::Minus | Tok::Plus => {
                return Err(unsupported(
                    "a value in the select list (select columns or *)",
                    at,
                ));
            }
            Tok::LParen => {
                return Err(unsupported("an expression in the select list", at));
            }
            _ => {}
        }
        if self.starts_ident() && self.peek_at(1).tok == Tok::LParen {
            return Err(unsupported(
                format!("the function {}", self.word_upper()),
                at,
            ));
        }
        let name = self.dotted("a column name or *")?;
        if self.peek().tok == Tok::Dot {
            // `qualifier.*`
            self.bump();
            self.bump();
            return Ok(RawItem::All { qualifier: name });
        }
        self.refuse_arithmetic()?;
        let alias = if self.eat_kw("AS") {
            Some(
                self.ident()
                    .ok_or_else(|| self.syntax("an alias after AS"))?,
            )
        } else {
            self.ident()
        };
        Ok(RawItem::Column {
            name,
            alias: alias.map(|a| a.text),
        })
    }

    fn refuse_arithmetic(&self) -> Parsed<()> {
        match self.peek().tok {
            Tok::Plus | Tok::Minus | Tok::Star | Tok::Slash | Tok::Concat => Err(unsupported(
                "arithmetic and concatenation (+ - * / ||)",
                self.peek().at,
            )),
            _ => Ok(()),
        }
    }

    fn refuse_clause(&self) -> Parsed<()> {
        for (kw, what) in UNSUPPORTED_CLAUSES {
            if self.is_kw(kw) {
                return Err(unsupported(*what, self.peek().at));
            }
        }
        Ok(())
    }

    /// `FROM ivoa.obscore [[AS] alias]`, refusing any other table and any join.
    fn table_clause(&mut self) -> Parsed<Option<Ident>> {
        self.table()?;
        let alias = if self.eat_kw("AS") {
            Some(
                self.ident()
                    .ok_or_else(|| self.syntax("an alias after AS"))?,
            )
        } else {
            self.ident()
        };
        let at = self.peek().at;
        let joins = JOIN_WORDS.iter().any(|w| self.is_kw(w));
        if joins || self.peek().tok == Tok::Comma {
            self.bump();
            while JOIN_WORDS.iter().any(|w| self.is_kw(w)) {
                self.bump();
            }
            // Name a forbidden table first: that is the more useful message.
            self.table()?;
            return Err(unsupported("joining tables", at));
        }
        Ok(alias)
    }

    fn table(&mut self) -> Parsed<()> {
        let at = self.peek().at;
        if self.peek().tok == Tok::LParen {
            return Err(unsupported("a subquery in FROM", at));
        }
        let name = self.dotted("a table name")?;
        let obscore =
            matches!(name.as_slice(), [s, t] if s.is(obscore::SCHEMA_NAME) && t.is("obscore"));
        if !obscore {
            return Err(AdqlError::UnknownTable {
                found: self.text(at, self.prev_end()),
                at,
            });
        }
        if self.peek().tok == Tok::LParen {
            return Err(unsupported("a table-valued function", self.peek().at));
        }
        Ok(())
    }

    fn order_by(&mut self, select: &Select, alias: Option<&Ident>) -> Parsed<Vec<OrderItem>> {
        let output = select.output();
        let mut order = Vec::new();
        loop {
            let at = self.peek().at;
            let column = match &self.peek().tok {
                Tok::Num(n) => {
                    let position = n.parse::<usize>().ok().and_then(|p| p.checked_sub(1));
                    let Some((_, column)) = position.and_then(|p| output.get(p)) else {
                        return Err(self.syntax("a position in the select list"));
                    };
                    let column = *column;
                    self.bump();
                    column
                }
                _ if self.starts_ident() && self.peek_at(1).tok == Tok::LParen => {
                    return Err(unsupported(
                        format!("the function {} in ORDER BY", self.word_upper()),
                        at,
                    ));
                }
                _ => {
                    let name = self.dotted("a column to order by")?;
                    let by_alias = match name.as_slice() {
                        [single] => select.items.iter().find_map(|item| match item {
                            SelectItem::Column {
                                column,
                                alias: Some(a),
                            } if single.is(a) => Some(*column),
                            _ => None,
                        }),
                        _ => None,
                    };
                    match by_alias {
                        Some(column) => column,
                        None => self.resolve(&name, alias)?,
                    }
                }
            };
            self.refuse_arithmetic()?;
            let descending = self.eat_kw("DESC");
            if !descending {
                self.eat_kw("ASC");
            }
            if self.is_kw("NULLS") {
                return Err(unsupported("NULLS FIRST or LAST", self.peek().at));
            }
            order.push(OrderItem { column, descending });
            if !self.eat(&Tok::Comma) {
                return Ok(order);
            }
        }
    }

    /// Accepts one trailing `;`, then nothing.
    fn finish(&mut self) -> Parsed<()> {
        self.refuse_clause()?;
        let at = self.peek().at;
        if self.eat(&Tok::Semicolon) && self.peek().tok != Tok::End {
            return Err(unsupported("a second statement after `;`", at));
        }
        match self.peek().tok {
            Tok::End => Ok(()),
            _ => Err(self.syntax("the end of the query")),
        }
    }

    // --- conditions

    fn or_expr(&mut self, alias: Option<&Ident>) -> Parsed<Expr> {
        let mut terms = vec![self.and_expr(alias)?];
        while self.eat_kw("OR") {
            terms.push(self.and_expr(alias)?);
        }
        Ok(flatten(terms, Expr::Or))
    }

    fn and_expr(&mut self, alias: Option<&Ident>) -> Parsed<Expr> {
        let mut terms = vec![self.not_expr(alias)?];
        while self.eat_kw("AND") {
            terms.push(self.not_expr(alias)?);
        }
        Ok(flatten(terms, Expr::And))
    }

    fn not_expr(&mut self, alias: Option<&Ident>) -> Parsed<Expr> {
        let at = self.peek().at;
        if self.eat_kw("NOT") {
            self.enter(at)?;
            let inner = self.not_expr(alias)?;
            self.leave();
            return Ok(negate(inner));
        }
        if self.peek().tok == Tok::LParen {
            self.enter(at)?;
            self.bump();
            if self.is_kw("SELECT") {
                return Err(unsupported("a subquery", self.peek().at));
            }
            let inner = self.or_expr(alias)?;
            self.expect(&Tok::RParen, "`)`")?;
            self.leave();
            return Ok(inner);
        }
        self.predicate(alias)
    }

    fn predicate(&mut self, alias: Option<&Ident>) -> Parsed<Expr> {
        let at = self.peek().at;
        if self.is_kw("EXISTS") {
            return Err(unsupported("EXISTS", at));
        }
        if matches!(&self.peek().tok, Tok::Word(w) if !is_reserved(w))
            && self.peek_at(1).tok == Tok::LParen
        {
            if self.is_kw("CONTAINS") {
                return self.cone(alias, None);
            }
            return Err(unsupported(
                format!("the function {}", self.word_upper()),
                at,
            ));
        }
        if self.starts_ident() {
            let name = self.dotted("a column name")?;
            let column = self.resolve(&name, alias)?;
            return self.column_predicate(column);
        }
        match self.peek().tok {
            Tok::Str(_) | Tok::Num(_) | Tok::Minus | Tok::Plus => self.value_first(alias),
            _ => Err(self.syntax("a condition")),
        }
    }

    /// `value op column` or `value op CONTAINS(...)`.
    fn value_first(&mut self, alias: Option<&Ident>) -> Parsed<Expr> {
        let Some((value, at)) = self.literal()? else {
            return Err(self.syntax("a condition"));
        };
        self.refuse_arithmetic()?;
        let Some(op) = self.comparison() else {
            if ["BETWEEN", "IN", "LIKE", "ILIKE", "NOT", "IS"]
                .iter()
                .any(|k| self.is_kw(k))
            {
                return Err(unsupported(
                    "a value before BETWEEN, IN, LIKE or IS (put the column first)",
                    self.peek().at,
                ));
            }
            return Err(self.syntax("a comparison operator"));
        };
        if self.is_kw("CONTAINS") && self.peek_at(1).tok == Tok::LParen {
            return self.cone(alias, Some((value, at, op.flipped())));
        }
        if self.starts_ident() {
            let name = self.dotted("a column name")?;
            let column = self.resolve(&name, alias)?;
            check_type(column, &value, at)?;
            self.refuse_arithmetic()?;
            return Ok(Expr::Compare {
                column,
                op: op.flipped(),
                value,
            });
        }
        if matches!(
            self.peek().tok,
            Tok::Str(_) | Tok::Num(_) | Tok::Minus | Tok::Plus
        ) {
            return Err(AdqlError::LiteralComparison { at });
        }
        Err(self.syntax("a column name"))
    }

    fn comparison(&mut self) -> Option<Comparison> {
        match self.peek().tok {
            Tok::Cmp(op) => {
                self.bump();
                Some(op)
            }
            _ => None,
        }
    }

    /// What follows a column: a comparison, LIKE, BETWEEN, IN or IS NULL.
    fn column_predicate(&mut self, column: &'static Column) -> Parsed<Expr> {
        self.refuse_arithmetic()?;
        if let Some(op) = self.comparison() {
            let value = self.value_for(column)?;
            return Ok(Expr::Compare { column, op, value });
        }
        let negated = self.eat_kw("NOT");
        if self.is_kw("LIKE") || self.is_kw("ILIKE") {
            return self.like(column, negated);
        }
        if self.eat_kw("BETWEEN") {
            let low = self.value_for(column)?;
            self.expect_kw("AND", "AND between the bounds of BETWEEN")?;
            let high = self.value_for(column)?;
            return Ok(Expr::Between {
                column,
                low,
                high,
                negated,
            });
        }
        if self.is_kw("IN") {
            return self.in_list(column, negated);
        }
        if !negated && self.eat_kw("IS") {
            let negated = self.eat_kw("NOT");
            self.expect_kw("NULL", "NULL or NOT NULL after IS")?;
            return Ok(Expr::IsNull { column, negated });
        }
        Err(self.syntax(if negated {
            "LIKE, BETWEEN or IN after NOT"
        } else {
            "a comparison, LIKE, BETWEEN, IN or IS NULL after the column"
        }))
    }

    /// A literal of `column`'s type.
    fn value_for(&mut self, column: &'static Column) -> Parsed<Literal> {
        let at = self.peek().at;
        if let Some((value, at)) = self.literal()? {
            check_type(column, &value, at)?;
            self.refuse_arithmetic()?;
            return Ok(value);
        }
        if self.is_kw("NULL") {
            return Err(unsupported(
                "comparing with NULL (write IS NULL or IS NOT NULL)",
                at,
            ));
        }
        if self.starts_ident() {
            return Err(unsupported("comparing two columns", at));
        }
        if self.peek().tok == Tok::LParen {
            return Err(unsupported("a subquery or an expression as a value", at));
        }
        Err(self.syntax("a value: a number or a quoted string"))
    }

    /// A string or a signed number.
    fn literal(&mut self) -> Parsed<Option<(Literal, usize)>> {
        let at = self.peek().at;
        let negative = match &self.peek().tok {
            Tok::Str(s) => {
                let text = s.clone();
                self.bump();
                return Ok(Some((Literal::Text(text), at)));
            }
            Tok::Num(_) => false,
            sign @ (Tok::Minus | Tok::Plus) if matches!(self.peek_at(1).tok, Tok::Num(_)) => {
                let negative = *sign == Tok::Minus;
                self.bump();
                negative
            }
            _ => return Ok(None),
        };
        let (Tok::Num(num), num_at) = (self.peek().tok.clone(), self.peek().at) else {
            return Ok(None);
        };
        self.bump();
        let sign = if negative { "-" } else { "" };
        if num.bytes().all(|b| b.is_ascii_digit())
            && let Ok(i) = format!("{sign}{num}").parse::<i64>()
        {
            return Ok(Some((Literal::Int(i), at)));
        }
        match format!("{sign}{num}").parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some((Literal::Double(v), at))),
            _ => Err(AdqlError::InvalidNumber {
                text: shorten(&num),
                at: num_at,
            }),
        }
    }

    fn like(&mut self, column: &'static Column, negated: bool) -> Parsed<Expr> {
        let at = self.peek().at;
        let case_insensitive = self.is_kw("ILIKE");
        self.bump();
        let pattern = match &self.peek().tok {
            Tok::Str(s) => s.clone(),
            _ => return Err(self.syntax("a quoted pattern after LIKE")),
        };
        if column.datatype.is_numeric() {
            return Err(AdqlError::TypeMismatch {
                column: column.name,
                holds: "numbers",
                found: "a LIKE pattern".to_owned(),
                at,
            });
        }
        self.bump();
        self.refuse_arithmetic()?;
        if self.is_kw("ESCAPE") {
            return Err(unsupported("LIKE with ESCAPE", self.peek().at));
        }
        Ok(Expr::Like {
            column,
            pattern,
            negated,
            case_insensitive,
        })
    }

    fn in_list(&mut self, column: &'static Column, negated: bool) -> Parsed<Expr> {
        let at = self.peek().at;
        self.bump();
        self.expect(&Tok::LParen, "`(` after IN")?;
        if self.is_kw("SELECT") {
            return Err(unsupported("a subquery", self.peek().at));
        }
        let mut values = Vec::new();
        loop {
            if values.len() == MAX_IN_VALUES {
                return Err(AdqlError::TooManyValues {
                    max: MAX_IN_VALUES,
                    at,
                });
            }
            values.push(self.value_for(column)?);
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect(&Tok::RParen, "`,` or `)` in the IN list")?;
        Ok(Expr::In {
            column,
            values,
            negated,
        })
    }

    // --- the cone

    /// `CONTAINS(POINT(...), CIRCLE(...)) op 0|1`; `left` is `value op` when written first
    /// (with `op` already turned to read `CONTAINS(...) op value`).
    fn cone(
        &mut self,
        alias: Option<&Ident>,
        left: Option<(Literal, usize, Comparison)>,
    ) -> Parsed<Expr> {
        let at = self.peek().at;
        self.bump();
        self.expect(&Tok::LParen, "`(` after CONTAINS")?;
        self.point_of_columns(alias)?;
        self.expect(&Tok::Comma, "`,` between POINT and CIRCLE")?;
        let cone = self.circle()?;
        self.expect(&Tok::RParen, "`)` closing CONTAINS")?;
        let (value, value_at, op) = match left {
            Some(left) => left,
            None => {
                let op = self
                    .comparison()
                    .ok_or_else(|| self.syntax("`= 1` or `= 0` after CONTAINS(...)"))?;
                let (value, value_at) = self
                    .literal()?
                    .ok_or_else(|| self.syntax("1 or 0 after CONTAINS(...) ="))?;
                self.refuse_arithmetic()?;
                (value, value_at, op)
            }
        };
        let truth = match value {
            Literal::Int(1) => true,
            Literal::Int(0) => false,
            _ => {
                return Err(unsupported(
                    "comparing CONTAINS(...) with anything but 1 or 0",
                    value_at,
                ));
            }
        };
        let inside = match op {
            Comparison::Eq => truth,
            Comparison::Ne => !truth,
            _ => {
                return Err(unsupported(
                    "CONTAINS(...) with < or > (write = 1 or = 0)",
                    at,
                ));
            }
        };
        Ok(Expr::Cone { cone, inside })
    }

    /// `POINT(['ICRS',] s_ra, s_dec)`: the only point this service can test.
    fn point_of_columns(&mut self, alias: Option<&Ident>) -> Parsed<()> {
        let at = self.peek().at;
        let only = "CONTAINS on anything but POINT('ICRS', s_ra, s_dec)";
        if !self.is_kw("POINT") {
            return Err(unsupported(only, at));
        }
        self.bump();
        self.expect(&Tok::LParen, "`(` after POINT")?;
        self.coordinate_system()?;
        let mut columns = [""; 2];
        for (i, slot) in columns.iter_mut().enumerate() {
            if i > 0 {
                self.expect(&Tok::Comma, "`,` between the POINT's coordinates")?;
            }
            if !self.starts_ident() {
                return Err(unsupported(only, self.peek().at));
            }
            let name = self.dotted("a column name")?;
            *slot = self.resolve(&name, alias)?.name;
        }
        self.expect(&Tok::RParen, "`)` closing POINT")?;
        if columns != ["s_ra", "s_dec"] {
            return Err(unsupported(only, at));
        }
        Ok(())
    }

    /// `CIRCLE(['ICRS',] ra, dec, radius)` or `CIRCLE(['ICRS',] POINT(ra, dec), radius)`.
    fn circle(&mut self) -> Parsed<SkyCone> {
        let at = self.peek().at;
        if !self.is_kw("CIRCLE") {
            if matches!(self.peek().tok, Tok::Word(_)) {
                let what = format!("CONTAINS in a {} (only CIRCLE)", self.word_upper());
                return Err(unsupported(what, at));
            }
            return Err(self.syntax("CIRCLE(...)"));
        }
        self.bump();
        self.expect(&Tok::LParen, "`(` after CIRCLE")?;
        self.coordinate_system()?;
        let (ra, dec) = if self.eat_kw("POINT") {
            self.expect(&Tok::LParen, "`(` after POINT")?;
            self.coordinate_system()?;
            let ra = self.number()?;
            self.expect(&Tok::Comma, "`,` between the centre's coordinates")?;
            let dec = self.number()?;
            self.expect(&Tok::RParen, "`)` closing POINT")?;
            (ra, dec)
        } else {
            let ra = self.number()?;
            self.expect(&Tok::Comma, "`,` between the centre's coordinates")?;
            (ra, self.number()?)
        };
        self.expect(&Tok::Comma, "`,` before the radius")?;
        let radius = self.number()?;
        self.expect(&Tok::RParen, "`)` closing CIRCLE")?;
        SkyCone::new(ra, dec, radius).map_err(|source| AdqlError::Circle { at, source })
    }

    /// An optional `'ICRS',` (or `'',`) opening a POINT or a CIRCLE.
    fn coordinate_system(&mut self) -> Parsed<()> {
        let t = self.peek();
        if let Tok::Str(system) = &t.tok {
            let trimmed = system.trim();
            if !(trimmed.is_empty() || trimmed.eq_ignore_ascii_case("ICRS")) {
                return Err(AdqlError::CoordinateSystem {
                    found: shorten(system),
                    at: t.at,
                });
            }
            self.bump();
            self.expect(&Tok::Comma, "`,` after the coordinate system")?;
        }
        Ok(())
    }

    fn number(&mut self) -> Parsed<f64> {
        let at = self.peek().at;
        match self.literal()? {
            Some((Literal::Int(i), _)) => Ok(i as f64),
            Some((Literal::Double(v), _)) => Ok(v),
            Some((Literal::Text(_), _)) => {
                Err(unsupported("a CIRCLE argument that is not a number", at))
            }
            None => {
                if self.starts_ident() {
                    return Err(unsupported("a CIRCLE argument that is not a number", at));
                }
                Err(self.syntax("a number"))
            }
        }
    }
}

/// One term stays itself; several become `make(terms)`.
fn flatten(mut terms: Vec<Expr>, make: fn(Vec<Expr>) -> Expr) -> Expr {
    if terms.len() == 1
        && let Some(term) = terms.pop()
    {
        return term;
    }
    make(terms)
}

/// `NOT expr`, turning a cone inside out and dropping double negations.
fn negate(expr: Expr) -> Expr {
    match expr {
        Expr::Not(inner) => *inner,
        Expr::Cone { cone, inside } => Expr::Cone {
            cone,
            inside: !inside,
        },
        other => Expr::Not(Box::new(other)),
    }
}

fn check_type(column: &'static Column, value: &Literal, at: usize) -> Parsed<()> {
    let numeric = column.datatype.is_numeric();
    if numeric == value.is_numeric() {
        return Ok(());
    }
    Err(AdqlError::TypeMismatch {
        column: column.name,
        holds: if numeric { "numbers" } else { "text" },
        found: value.describe(),
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CONE: &str = "SELECT TOP 5 obs_id, s_ra, s_dec FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 83.6, 22.0, 0.5)) = 1 AND dataproduct_type = 'image' ORDER BY t_min DESC";

    fn ok(adql: &str) -> Select {
        parse(adql).unwrap_or_else(|e| panic!("{adql:?} was refused: {e}"))
    }

    fn refused(adql: &str) -> AdqlError {
        match parse(adql) {
            Ok(select) => panic!("{adql:?} was accepted: {select:?}"),
            Err(e) => e,
        }
    }

    fn filter(condition: &str) -> Expr {
        ok(&format!("SELECT * FROM ivoa.obscore WHERE {condition}"))
            .filter
            .expect("a filter")
    }

    fn refused_filter(condition: &str) -> AdqlError {
        refused(&format!("SELECT * FROM ivoa.obscore WHERE {condition}"))
    }

    fn col(name: &str) -> &'static Column {
        obscore::column(name).expect("an obscore column")
    }

    fn unsupported_what(e: &AdqlError) -> &str {
        match e {
            AdqlError::Unsupported { what, .. } => what,
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }

    /// Every word of the SQL is one the renderer writes itself: no user text gets in.
    fn sql_is_ours(sql: &str) -> bool {
        const OURS: &[&str] = &[
            "SELECT",
            "FROM",
            "WHERE",
            "AND",
            "OR",
            "NOT",
            "IN",
            "IS",
            "NULL",
            "BETWEEN",
            "LIKE",
            "GLOB",
            "ESCAPE",
            "ORDER",
            "BY",
            "ASC",
            "DESC",
            "LIMIT",
            "obscore",
            "sky_index",
            "id",
            "_id",
            "_cx",
            "_cy",
            "_cz",
            "x0",
            "x1",
            "y0",
            "y1",
            "z0",
            "z1",
        ];
        let without_escape = sql.replace(" ESCAPE '\\'", "");
        !without_escape.contains(['\'', '"', ';', '-'])
            && without_escape
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .all(|w| OURS.contains(&w) || obscore::COLUMNS.iter().any(|c| c.name == w))
    }

    #[test]
    fn the_pyvo_cone_query_parses() {
        let select = ok(CONE);
        assert_eq!(select.top, Some(5));
        let names: Vec<_> = select.output().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["obs_id", "s_ra", "s_dec"]);
        let cone = SkyCone::new(83.6, 22.0, 0.5).expect("valid cone");
        assert_eq!(
            select.filter,
            Some(Expr::And(vec![
                Expr::Cone { cone, inside: true },
                Expr::Compare {
                    column: col("dataproduct_type"),
                    op: Comparison::Eq,
                    value: Literal::Text("image".into()),
                },
            ]))
        );
        assert_eq!(
            select.order_by,
            [OrderItem {
                column: col("t_min"),
                descending: true
            }]
        );
    }

    #[test]
    fn the_cone_query_renders_with_the_index_and_the_dot_product() {
        let sql = to_sql(&ok(CONE), 1000);
        assert_eq!(
            sql.sql,
            "SELECT obs_id, s_ra, s_dec FROM obscore WHERE ((_id IN (SELECT id FROM sky_index \
             WHERE x1 >= ? AND x0 <= ? AND y1 >= ? AND y0 <= ? AND z1 >= ? AND z0 <= ?) \
             AND (_cx * ? + _cy * ? + _cz * ?) >= ?) AND dataproduct_type = ?) \
             ORDER BY t_min DESC, _id LIMIT ?"
        );
        let cone = SkyCone::new(83.6, 22.0, 0.5).expect("valid cone");
        let b = cone.bounding_box();
        let c = cone.centre;
        let expected: Vec<Value> = [b.x.0, b.x.1, b.y.0, b.y.1, b.z.0, b.z.1]
            .into_iter()
            .chain([c.x, c.y, c.z, cone.min_dot()])
            .map(Value::Double)
            .chain([Value::Text("image".into()), Value::Int(6)])
            .collect();
        assert_eq!(sql.params, expected);
        assert_eq!(sql.limit, 5);
        assert_eq!(sql.names, ["obs_id", "s_ra", "s_dec"]);
        assert_eq!(sql.fields()[1], ("s_ra", col("s_ra")));
    }

    #[test]
    fn every_predicate_renders_with_parameters() {
        let select = ok("select top 10 * from IVOA.ObsCore where calib_level >= 2 \
             and obs_collection in ('HST', 'JWST') and target_name like 'M_1%' \
             and s_fov not between 0.1 and 1 and t_exptime is not null \
             and not (obs_id ilike 'a\\b%' or em_min <> 1e-7)");
        let sql = to_sql(&select, 3);
        let columns: Vec<_> = obscore::COLUMNS.iter().map(|c| c.name).collect();
        assert_eq!(
            sql.sql,
            format!(
                "SELECT {} FROM obscore WHERE (calib_level >= ? AND obs_collection IN (?, ?) \
                 AND target_name GLOB ? AND s_fov NOT BETWEEN ? AND ? AND t_exptime IS NOT NULL \
                 AND NOT ((obs_id LIKE ? ESCAPE '\\' OR em_min <> ?))) ORDER BY _id LIMIT ?",
                columns.join(", ")
            )
        );
        assert_eq!(
            sql.params,
            [
                Value::Int(2),
                Value::Text("HST".into()),
                Value::Text("JWST".into()),
                Value::Text("M?1*".into()),
                Value::Double(0.1),
                Value::Int(1),
                Value::Text("a\\\\b%".into()),
                Value::Double(1e-7),
                Value::Int(4),
            ]
        );
        assert_eq!(sql.limit, 3);
        assert_eq!(sql.columns.len(), obscore::COLUMNS.len());
        assert!(sql_is_ours(&sql.sql), "{}", sql.sql);
    }

    #[test]
    fn the_limit_is_the_smaller_of_top_and_maxrec_plus_one() {
        let rendered = |q: &str, maxrec| {
            let sql = to_sql(&ok(q), maxrec);
            (sql.limit, sql.params.last().cloned())
        };
        let all = "SELECT s_ra FROM ivoa.obscore";
        assert_eq!(rendered(all, 100), (100, Some(Value::Int(101))));
        let top = "SELECT TOP 7 s_ra FROM ivoa.obscore";
        assert_eq!(rendered(top, 100), (7, Some(Value::Int(8))));
        assert_eq!(rendered(top, 2), (2, Some(Value::Int(3))));
        let zero = "SELECT TOP 0 s_ra FROM ivoa.obscore";
        assert_eq!(rendered(zero, 100), (0, Some(Value::Int(1))));
        let huge = "SELECT TOP 99999999999999999999999 s_ra FROM ivoa.obscore";
        assert_eq!(
            rendered(huge, u64::MAX),
            (u64::MAX, Some(Value::Int(i64::MAX)))
        );
    }

    #[test]
    fn names_are_case_insensitive_unless_quoted_and_may_be_qualified() {
        for q in [
            "SELECT o.s_ra FROM ivoa.obscore AS o WHERE o.s_dec > 0",
            "select O.S_RA from Ivoa.ObsCore o where O.s_dec > 0",
            "SELECT ivoa.obscore.s_ra FROM ivoa.obscore WHERE obscore.s_dec > 0",
            "SELECT \"s_ra\" FROM \"ivoa\".\"obscore\" WHERE \"s_dec\" > 0",
            "SELECT \"o\".s_ra FROM ivoa.obscore \"o\" WHERE s_dec > 0",
        ] {
            let select = ok(q);
            assert_eq!(
                select.items,
                [SelectItem::Column {
                    column: col("s_ra"),
                    alias: None
                }],
                "{q}"
            );
        }
        assert_eq!(
            refused("SELECT \"S_RA\" FROM ivoa.obscore"),
            AdqlError::UnknownColumn {
                name: "S_RA".into(),
                at: 7
            }
        );
        assert_eq!(
            refused("SELECT x.s_ra FROM ivoa.obscore AS o"),
            AdqlError::UnknownQualifier {
                qualifier: "x".into(),
                at: 7
            }
        );
        assert_eq!(
            refused("SELECT tap_schema.tables.s_ra FROM ivoa.obscore").to_string(),
            "`tap_schema.tables` at byte 7 is neither ivoa.obscore nor its alias"
        );
        let star = ok("SELECT o.*, s_ra AS ra FROM ivoa.obscore o");
        let output = star.output();
        assert_eq!(output.len(), obscore::COLUMNS.len() + 1);
        assert_eq!(output.last(), Some(&("ra".to_owned(), col("s_ra"))));
    }

    #[test]
    fn aliases_name_the_output() {
        let select = ok("SELECT s_ra AS ra, s_dec \"Dec\", obs_id FROM ivoa.obscore");
        let sql = to_sql(&select, 10);
        assert_eq!(sql.names, ["ra", "Dec", "obs_id"]);
        assert_eq!(
            sql.sql,
            "SELECT s_ra, s_dec, obs_id FROM obscore ORDER BY _id LIMIT ?"
        );
    }

    #[test]
    fn literals_of_every_form() {
        let value = |condition: &str| match filter(condition) {
            Expr::Compare { value, .. } => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(value("s_ra = 12"), Literal::Int(12));
        assert_eq!(value("s_ra = -12"), Literal::Int(-12));
        assert_eq!(value("s_ra = +12"), Literal::Int(12));
        assert_eq!(value("s_ra = 1.5"), Literal::Double(1.5));
        assert_eq!(value("s_ra = .5"), Literal::Double(0.5));
        assert_eq!(value("s_ra = 5."), Literal::Double(5.0));
        assert_eq!(value("s_ra = -2.5E+2"), Literal::Double(-250.0));
        assert_eq!(value("s_ra = 1e-3"), Literal::Double(1e-3));
        assert_eq!(value("s_ra = -9223372036854775808"), Literal::Int(i64::MIN));
        assert_eq!(value("s_ra = 99999999999999999999"), Literal::Double(1e20));
        assert_eq!(
            value("obs_id = 'O''Brien'"),
            Literal::Text("O'Brien".into())
        );
        assert_eq!(value("obs_id = ''"), Literal::Text(String::new()));
        assert_eq!(
            value("obs_id = 'étoile ✨'"),
            Literal::Text("étoile ✨".into())
        );
    }

    #[test]
    fn a_value_first_is_turned_around() {
        assert_eq!(
            filter("5 < s_ra"),
            Expr::Compare {
                column: col("s_ra"),
                op: Comparison::Gt,
                value: Literal::Int(5)
            }
        );
        assert_eq!(
            filter("'image' = dataproduct_type"),
            Expr::Compare {
                column: col("dataproduct_type"),
                op: Comparison::Eq,
                value: Literal::Text("image".into())
            }
        );
        assert_eq!(
            filter("-1.5 >= s_dec"),
            Expr::Compare {
                column: col("s_dec"),
                op: Comparison::Le,
                value: Literal::Double(-1.5)
            }
        );
    }

    #[test]
    fn not_and_or_and_parentheses_nest() {
        let expr = filter("NOT (s_ra > 1 OR s_ra < 0) AND (obs_id = 'a' OR NOT NOT obs_id = 'b')");
        let gt = Expr::Compare {
            column: col("s_ra"),
            op: Comparison::Gt,
            value: Literal::Int(1),
        };
        let lt = Expr::Compare {
            column: col("s_ra"),
            op: Comparison::Lt,
            value: Literal::Int(0),
        };
        let text = |s: &str| Expr::Compare {
            column: col("obs_id"),
            op: Comparison::Eq,
            value: Literal::Text(s.into()),
        };
        assert_eq!(
            expr,
            Expr::And(vec![
                Expr::Not(Box::new(Expr::Or(vec![gt, lt]))),
                Expr::Or(vec![text("a"), text("b")]),
            ])
        );
        assert_eq!(
            filter("s_ra IS NULL OR s_dec IS NOT NULL"),
            Expr::Or(vec![
                Expr::IsNull {
                    column: col("s_ra"),
                    negated: false
                },
                Expr::IsNull {
                    column: col("s_dec"),
                    negated: true
                },
            ])
        );
    }

    #[test]
    fn cones_in_every_spelling() {
        let inside = |condition: &str| match filter(condition) {
            Expr::Cone { inside, .. } => inside,
            other => panic!("{other:?}"),
        };
        let point = "POINT('ICRS', s_ra, s_dec)";
        assert!(inside(&format!(
            "CONTAINS({point}, CIRCLE('ICRS', 10, -5, 1)) = 1"
        )));
        assert!(inside(&format!(
            "1 = CONTAINS({point}, CIRCLE('ICRS', 10, -5, 1))"
        )));
        assert!(!inside(&format!(
            "CONTAINS({point}, CIRCLE('ICRS', 10, -5, 1)) = 0"
        )));
        assert!(!inside(&format!(
            "CONTAINS({point}, CIRCLE('ICRS', 10, -5, 1)) <> 1"
        )));
        assert!(!inside(&format!(
            "NOT CONTAINS({point}, CIRCLE('ICRS', 10, -5, 1)) = 1"
        )));
        assert!(inside(
            "contains(point('', s_ra, s_dec), circle('icrs', 359.9, -89.5, 2.5e-1)) = 1"
        ));
        assert!(inside(
            "CONTAINS(POINT(obscore.s_ra, s_dec), CIRCLE(POINT(10, 20), 1)) = 1"
        ));
        assert!(inside(
            " CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', POINT('ICRS', 10, 20), 1))=1"
        ));
    }

    #[test]
    fn an_outside_cone_skips_products_without_a_position() {
        let select = ok("SELECT obs_id FROM ivoa.obscore WHERE \
             CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10, 20, 1)) = 0");
        let sql = to_sql(&select, 10).sql;
        assert!(
            sql.contains("WHERE (_cx IS NOT NULL AND NOT (_id IN (SELECT id FROM sky_index"),
            "{sql}"
        );
    }

    #[test]
    fn bad_cones_say_why() {
        let point = "POINT('ICRS', s_ra, s_dec)";
        let e = refused_filter(&format!(
            "CONTAINS({point}, CIRCLE('GALACTIC', 10, 20, 1)) = 1"
        ));
        assert!(
            matches!(e, AdqlError::CoordinateSystem { ref found, .. } if found == "GALACTIC"),
            "{e:?}"
        );
        let e = refused_filter(&format!("CONTAINS({point}, CIRCLE('ICRS', 10, 95, 1)) = 1"));
        assert!(
            matches!(
                e,
                AdqlError::Circle {
                    source: SkyError::Dec(_),
                    ..
                }
            ),
            "{e:?}"
        );
        let e = refused_filter(&format!("CONTAINS({point}, CIRCLE('ICRS', 10, 20, 0)) = 1"));
        assert!(
            matches!(
                e,
                AdqlError::Circle {
                    source: SkyError::Radius(_),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("radius 0 is outside (0, 180] degrees"),
            "{e}"
        );
        let e = refused_filter("CONTAINS(POINT('ICRS', s_dec, s_ra), CIRCLE('ICRS', 1, 2, 1)) = 1");
        assert!(unsupported_what(&e).contains("POINT('ICRS', s_ra, s_dec)"));
        let e = refused_filter("CONTAINS(POINT('ICRS', 1, 2), CIRCLE('ICRS', 1, 2, 1)) = 1");
        assert!(unsupported_what(&e).contains("POINT('ICRS', s_ra, s_dec)"));
        let e = refused_filter(&format!(
            "CONTAINS({point}, CIRCLE('ICRS', s_ra, 2, 1)) = 1"
        ));
        assert!(unsupported_what(&e).contains("not a number"));
        let e = refused_filter(&format!(
            "CONTAINS({point}, POLYGON('ICRS', 1, 2, 3, 4, 5, 6)) = 1"
        ));
        assert!(unsupported_what(&e).contains("POLYGON"));
        let e = refused_filter(&format!("CONTAINS({point}, CIRCLE('ICRS', 1, 2, 1)) = 2"));
        assert!(unsupported_what(&e).contains("1 or 0"));
        let e = refused_filter(&format!("CONTAINS({point}, CIRCLE('ICRS', 1, 2, 1)) > 0"));
        assert!(unsupported_what(&e).contains("< or >"));
        let e = refused_filter(&format!("CONTAINS({point}, CIRCLE('ICRS', 1, 2, 1))"));
        assert!(matches!(e, AdqlError::Syntax { .. }), "{e:?}");
    }

    #[test]
    fn order_by_columns_aliases_and_positions() {
        let select =
            ok("SELECT s_ra AS ra, obs_id FROM ivoa.obscore o ORDER BY ra DESC, 2, o.t_min ASC");
        let order: Vec<_> = select
            .order_by
            .iter()
            .map(|o| (o.column.name, o.descending))
            .collect();
        assert_eq!(order, [("s_ra", true), ("obs_id", false), ("t_min", false)]);
        assert!(
            to_sql(&select, 1)
                .sql
                .ends_with("ORDER BY s_ra DESC, obs_id ASC, t_min ASC, _id LIMIT ?")
        );
        let e = refused("SELECT s_ra FROM ivoa.obscore ORDER BY 2");
        assert!(matches!(e, AdqlError::Syntax { at: 39, .. }), "{e:?}");
        let e = refused("SELECT s_ra FROM ivoa.obscore ORDER BY 0");
        assert!(matches!(e, AdqlError::Syntax { .. }), "{e:?}");
        let e = refused("SELECT s_ra FROM ivoa.obscore ORDER BY s_ra NULLS LAST");
        assert_eq!(unsupported_what(&e), "NULLS FIRST or LAST");
    }

    #[test]
    fn comments_and_a_final_semicolon_are_fine() {
        let select =
            ok("-- a cone\nSELECT s_ra -- the RA\nFROM ivoa.obscore -- the table\n;\n-- done");
        assert_eq!(select.items.len(), 1);
        ok("SELECT s_ra FROM ivoa.obscore;");
        assert!(matches!(
            refused("SELECT s_ra FROM ivoa.obscore;;"),
            AdqlError::Unsupported { .. }
        ));
    }

    #[test]
    fn like_becomes_a_case_sensitive_glob() {
        assert_eq!(like_to_glob("M_1%"), "M?1*");
        assert_eq!(like_to_glob("a*b?c[d]e"), "a[*]b[?]c[[]d]e");
        assert_eq!(like_to_glob("100\\%"), "100\\*");
        assert_eq!(like_to_glob("été_"), "été?");
        assert_eq!(ilike_to_like("a\\b%_"), "a\\\\b%_");
        let sql = to_sql(
            &ok("SELECT s_ra FROM ivoa.obscore WHERE obs_id NOT LIKE 'x*%'"),
            1,
        );
        assert!(
            sql.sql.contains("WHERE obs_id NOT GLOB ? ORDER BY"),
            "{}",
            sql.sql
        );
        assert_eq!(sql.params[0], Value::Text("x[*]*".into()));
        assert!(matches!(
            filter("obs_id NOT ILIKE 'A%'"),
            Expr::Like {
                negated: true,
                case_insensitive: true,
                ..
            }
        ));
    }

    #[test]
    fn literals_must_match_the_column_type() {
        for (condition, message) in [
            (
                "s_ra = 'x'",
                "column s_ra holds numbers but is compared with the text 'x' at byte 40",
            ),
            (
                "obs_id = 5",
                "column obs_id holds text but is compared with the number 5 at byte 42",
            ),
            (
                "'1' < calib_level",
                "column calib_level holds numbers but is compared with the text '1' at byte 33",
            ),
            (
                "s_ra LIKE '1%'",
                "column s_ra holds numbers but is compared with a LIKE pattern at byte 38",
            ),
        ] {
            assert_eq!(
                refused_filter(condition).to_string(),
                message,
                "{condition}"
            );
        }
        assert!(matches!(
            refused_filter("obs_id BETWEEN 1 AND 2"),
            AdqlError::TypeMismatch { .. }
        ));
        assert!(matches!(
            refused_filter("obs_id IN ('a', 1)"),
            AdqlError::TypeMismatch { .. }
        ));
        assert!(matches!(
            refused_filter("s_ra IN (1, 'a')"),
            AdqlError::TypeMismatch { .. }
        ));
        ok("SELECT * FROM ivoa.obscore WHERE calib_level = 2.5");
    }

    #[test]
    fn unknown_columns_are_named() {
        assert_eq!(
            refused("SELECT foo FROM ivoa.obscore").to_string(),
            "unknown column \"foo\" in ivoa.obscore (at byte 7); the service's tables document lists its columns"
        );
        assert_eq!(
            refused_filter("_id = 1"),
            AdqlError::UnknownColumn {
                name: "_id".into(),
                at: 33
            }
        );
        assert!(matches!(
            refused("SELECT s_ra FROM ivoa.obscore ORDER BY password"),
            AdqlError::UnknownColumn { .. }
        ));
    }

    #[test]
    fn only_ivoa_obscore_can_be_queried() {
        for (q, found) in [
            ("SELECT * FROM sqlite_master", "sqlite_master"),
            ("SELECT name FROM sqlite_master", "sqlite_master"),
            ("SELECT * FROM TAP_SCHEMA.tables", "TAP_SCHEMA.tables"),
            ("SELECT * FROM products", "products"),
            ("SELECT * FROM obscore", "obscore"),
            ("SELECT * FROM ivoa.obscore, sqlite_master", "sqlite_master"),
            (
                "SELECT * FROM ivoa.obscore o JOIN products p ON o.obs_id = p.id",
                "products",
            ),
            (
                "SELECT * FROM ivoa.obscore LEFT OUTER JOIN main.products",
                "main.products",
            ),
        ] {
            match refused(q) {
                AdqlError::UnknownTable { found: f, .. } => assert_eq!(f, found, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
        assert_eq!(
            refused("SELECT * FROM sqlite_master").to_string(),
            "only ivoa.obscore can be queried; found `sqlite_master` at byte 14"
        );
        let e = refused("SELECT * FROM ivoa.obscore a JOIN ivoa.obscore b ON a.obs_id = b.obs_id");
        assert_eq!(unsupported_what(&e), "joining tables");
        let e = refused("SELECT * FROM (SELECT * FROM sqlite_master) AS t");
        assert_eq!(unsupported_what(&e), "a subquery in FROM");
    }

    #[test]
    fn everything_else_is_refused_with_its_name() {
        let base = "SELECT s_ra FROM ivoa.obscore";
        for (q, what) in [
            (
                "SELECT DISTINCT s_ra FROM ivoa.obscore".to_owned(),
                "DISTINCT",
            ),
            (format!("{base} GROUP BY s_ra"), "GROUP BY"),
            (
                format!("{base} WHERE s_ra > 1 GROUP BY s_ra HAVING s_ra > 2"),
                "GROUP BY",
            ),
            (format!("{base} HAVING s_ra > 2"), "HAVING"),
            (format!("{base} ORDER BY s_ra OFFSET 10"), "OFFSET"),
            (
                format!("{base} LIMIT 10"),
                "LIMIT (ADQL writes SELECT TOP n)",
            ),
            (
                format!("{base} UNION SELECT name FROM sqlite_master"),
                "UNION",
            ),
            (
                format!("{base} WHERE s_ra > 1 UNION SELECT s_ra FROM ivoa.obscore"),
                "UNION",
            ),
            (
                format!("{base} WHERE obs_id IN (SELECT obs_id FROM ivoa.obscore)"),
                "a subquery",
            ),
            (format!("{base} WHERE (SELECT 1) = 1"), "a subquery"),
            (format!("{base} WHERE EXISTS (SELECT 1)"), "EXISTS"),
            (
                "SELECT COUNT(*) FROM ivoa.obscore".to_owned(),
                "the function COUNT",
            ),
            (
                format!(
                    "{base} WHERE DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', 1, 2)) < 1"
                ),
                "the function DISTANCE",
            ),
            (
                format!("{base} WHERE lower(obs_id) = 'a'"),
                "the function LOWER",
            ),
            (
                "SELECT s_ra + 1 FROM ivoa.obscore".to_owned(),
                "arithmetic and concatenation (+ - * / ||)",
            ),
            (
                format!("{base} WHERE s_ra * 2 > 5"),
                "arithmetic and concatenation (+ - * / ||)",
            ),
            (
                format!("{base} WHERE s_ra > 5 - 1"),
                "arithmetic and concatenation (+ - * / ||)",
            ),
            (
                format!("{base} WHERE obs_id = 'a' || 'b'"),
                "arithmetic and concatenation (+ - * / ||)",
            ),
            (
                format!("{base} WHERE s_ra > s_dec"),
                "comparing two columns",
            ),
            (
                format!("{base} WHERE s_ra = NULL"),
                "comparing with NULL (write IS NULL or IS NOT NULL)",
            ),
            (
                format!("{base} WHERE 5 BETWEEN s_ra AND s_dec"),
                "a value before BETWEEN, IN, LIKE or IS (put the column first)",
            ),
            (
                format!("{base} WHERE obs_id LIKE 'a!%' ESCAPE '!'"),
                "LIKE with ESCAPE",
            ),
            (
                format!("{base} /* hidden */"),
                "a /* */ comment (ADQL comments start with --)",
            ),
            (
                "WITH t AS (SELECT 1) SELECT * FROM t".to_owned(),
                "WITH (common table expressions)",
            ),
            (
                "SELECT 1 FROM ivoa.obscore".to_owned(),
                "a value in the select list (select columns or *)",
            ),
            (
                "SELECT s_ra FROM ivoa.obscore; DROP TABLE products".to_owned(),
                "a second statement after `;`",
            ),
        ] {
            let e = refused(&q);
            assert_eq!(unsupported_what(&e), what, "{q}");
            assert!(
                e.to_string()
                    .contains("is not supported by this service (at byte"),
                "{e}"
            );
        }
        assert_eq!(
            refused(&format!("{base} GROUP BY s_ra")).to_string(),
            "GROUP BY is not supported by this service (at byte 30)"
        );
    }

    #[test]
    fn injection_attempts_are_refused() {
        let e = refused("SELECT * FROM ivoa.obscore WHERE obs_id = ''; DROP TABLE products; --'");
        assert_eq!(unsupported_what(&e), "a second statement after `;`");
        let e = refused_filter("obs_id = 'x' OR 1=1");
        assert_eq!(e, AdqlError::LiteralComparison { at: 49 });
        assert!(matches!(
            refused_filter("'a' = 'a'"),
            AdqlError::LiteralComparison { .. }
        ));
        assert!(matches!(
            refused_filter("obs_id = 'x' OR 'x'"),
            AdqlError::Syntax { .. }
        ));
        // Hostile text inside a literal is only ever a parameter.
        let sql = to_sql(
            &ok("SELECT * FROM ivoa.obscore WHERE obs_id = '''; DROP TABLE products; --'"),
            5,
        );
        assert_eq!(
            sql.params[0],
            Value::Text("'; DROP TABLE products; --".into())
        );
        assert!(sql_is_ours(&sql.sql), "{}", sql.sql);
        let sql = to_sql(
            &ok("SELECT s_ra AS \"x; DROP TABLE products\" FROM ivoa.obscore"),
            5,
        );
        assert!(sql_is_ours(&sql.sql), "{}", sql.sql);
        assert_eq!(sql.names, ["x; DROP TABLE products"]);
    }

    #[test]
    fn hostile_sizes_are_bounded() {
        let nested = |depth: usize| {
            format!(
                "SELECT * FROM ivoa.obscore WHERE {}s_ra > 1{}",
                "(".repeat(depth),
                ")".repeat(depth)
            )
        };
        assert!(matches!(
            refused(&nested(100_000)),
            AdqlError::TooLong { .. }
        ));
        let deep = nested(30_000);
        assert_eq!(
            refused(&deep),
            AdqlError::TooDeep {
                max: MAX_DEPTH,
                at: 97
            }
        );
        let nots = format!(
            "SELECT * FROM ivoa.obscore WHERE {}s_ra > 1",
            "NOT ".repeat(10_000)
        );
        assert!(matches!(refused(&nots), AdqlError::TooDeep { .. }));
        let fine = format!("{}s_ra > 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        filter(&fine);
        let huge = format!(
            "SELECT * FROM ivoa.obscore WHERE obs_id = '{}'",
            "x".repeat(10 << 20)
        );
        assert_eq!(
            refused(&huge),
            AdqlError::TooLong {
                len: huge.len(),
                max: MAX_QUERY_BYTES
            }
        );
        let many = |n: usize| format!("s_ra IN ({})", vec!["1"; n].join(","));
        assert!(
            matches!(filter(&many(MAX_IN_VALUES)), Expr::In { ref values, .. } if values.len() == MAX_IN_VALUES)
        );
        assert!(matches!(
            refused_filter(&many(MAX_IN_VALUES + 1)),
            AdqlError::TooManyValues { .. }
        ));
        // A long flat chain is not deep.
        let chain = vec!["s_ra > 1"; 5000].join(" AND ");
        let sql = to_sql(
            &ok(&format!("SELECT s_ra FROM ivoa.obscore WHERE {chain}")),
            1,
        );
        assert_eq!(sql.params.len(), 5001);
    }

    #[test]
    fn malformed_text_is_a_syntax_error_with_its_place() {
        assert_eq!(
            refused("SELECT * FROM ivoa.obscore WHERE obs_id = 'open"),
            AdqlError::UnterminatedString { at: 42 }
        );
        assert_eq!(
            refused("SELECT \"s_ra FROM ivoa.obscore"),
            AdqlError::UnterminatedIdentifier { at: 7 }
        );
        assert!(matches!(
            refused_filter("s_ra > 1e"),
            AdqlError::InvalidNumber { .. }
        ));
        assert!(matches!(
            refused_filter("s_ra > 1e999"),
            AdqlError::InvalidNumber { .. }
        ));
        assert_eq!(
            refused("").to_string(),
            "syntax error at byte 0: expected SELECT, found the end of the query"
        );
        assert_eq!(
            refused("SELECT FROM ivoa.obscore").to_string(),
            "syntax error at byte 7: expected a column name or *, found `FROM`"
        );
        assert_eq!(
            refused("DELETE FROM products").to_string(),
            "syntax error at byte 0: expected SELECT, found `DELETE`"
        );
        assert_eq!(
            refused("SELECT * FROM ivoa.obscore WHERE s_ra # 1").to_string(),
            "syntax error at byte 38: expected a keyword, a name, a value or an operator, found `#`"
        );
        assert!(matches!(
            refused("SELECT * FROM ivoa.obscore WHERE"),
            AdqlError::Syntax { .. }
        ));
        assert!(matches!(
            refused("SELECT * FROM ivoa.obscore WHERE (s_ra > 1"),
            AdqlError::Syntax { .. }
        ));
        assert!(matches!(
            refused("SELECT * FROM ivoa.obscore WHERE s_ra > 1)"),
            AdqlError::Syntax { .. }
        ));
        assert!(matches!(
            refused("SELECT * FROM ivoa.obscore WHERE s_ra IN ()"),
            AdqlError::Syntax { .. }
        ));
        assert!(matches!(
            refused("SELECT TOP -1 * FROM ivoa.obscore"),
            AdqlError::Syntax { .. }
        ));
        assert!(matches!(
            refused("SELECT TOP 1.5 * FROM ivoa.obscore"),
            AdqlError::Syntax { .. }
        ));
        let long_name = format!("SELECT {} FROM ivoa.obscore", "a".repeat(1000));
        let message = refused(&long_name).to_string();
        assert!(message.len() < 200, "{message}");
    }

    const SOUP: &[&str] = &[
        "SELECT",
        "TOP",
        "5",
        "*",
        "FROM",
        "ivoa.obscore",
        "ivoa",
        ".",
        "obscore",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "(",
        ")",
        "s_ra",
        "s_dec",
        "obs_id",
        "o.s_ra",
        "=",
        "<",
        ">=",
        "<>",
        "!=",
        "'x'",
        "''",
        "'ICRS'",
        "1",
        "0",
        "-2.5",
        "1e3",
        "-",
        "+",
        "CONTAINS",
        "POINT",
        "CIRCLE",
        ",",
        "LIKE",
        "ILIKE",
        "'%a_'",
        "BETWEEN",
        "IN",
        "IS",
        "NULL",
        "ORDER",
        "BY",
        "DESC",
        "ASC",
        ";",
        "--",
        "\n",
        "\"",
        "\"s_ra\"",
        "o",
        "AS",
        "UNION",
        "GROUP",
        "sqlite_master",
        "COUNT",
        "'",
        "é",
        "\u{0}",
        "||",
        "/*",
        "NULLS",
        "ESCAPE",
        "JOIN",
        "DISTINCT",
        "999999999999999999999",
    ];

    fn soup() -> impl Strategy<Value = String> {
        let prefix = prop::sample::select(vec![
            "",
            "SELECT * FROM ivoa.obscore WHERE ",
            "SELECT TOP 3 s_ra AS r FROM ivoa.obscore AS o WHERE ",
            "SELECT * FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), ",
        ]);
        let words = prop::collection::vec(prop::sample::select(SOUP), 0..40);
        (prefix, words).prop_map(|(prefix, words)| format!("{prefix}{}", words.join(" ")))
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in any::<String>()) {
            if let Ok(select) = parse(&text) {
                prop_assert!(sql_is_ours(&to_sql(&select, 10).sql));
            }
        }

        #[test]
        fn never_panics_on_keyword_soup(text in soup()) {
            if let Ok(select) = parse(&text) {
                let sql = to_sql(&select, 10);
                prop_assert!(sql_is_ours(&sql.sql), "{}", sql.sql);
                prop_assert_eq!(sql.sql.matches('?').count(), sql.params.len());
            }
        }

        #[test]
        fn every_comparison_of_a_number_round_trips(
            column in prop::sample::select(vec!["s_ra", "t_min", "calib_level", "s_xel1"]),
            value in -1e12f64..1e12,
            op in prop::sample::select(vec!["=", "<>", "!=", "<", "<=", ">", ">="]),
        ) {
            let sql = to_sql(&ok(&format!("SELECT * FROM ivoa.obscore WHERE {column} {op} {value:?}")), 1);
            prop_assert_eq!(&sql.params[0], &Value::Double(value));
            prop_assert!(sql_is_ours(&sql.sql));
        }
    }
}
