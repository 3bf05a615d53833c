//! The recursive-descent parser and the checks it makes: names, types, bounds. Aggregates,
//! `GROUP BY` and `HAVING` are parsed in `parser/aggregate`, cones in `parser/cone`; the
//! grouping rules are `adql/check`.

use super::*;

mod aggregate;
mod cone;

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
pub(super) struct Ident {
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
    Aggregate {
        raw: aggregate::RawAggregate,
        alias: Option<String>,
    },
}

/// Where a condition is: `WHERE` takes no aggregate; `HAVING` takes aggregates and, outside
/// them, only the grouped columns.
#[derive(Clone, Copy)]
pub(super) struct Scope<'s> {
    alias: Option<&'s Ident>,
    /// In `HAVING`: the grouped columns.
    having: Option<&'s [&'static Column]>,
}

pub(super) struct Parser<'a> {
    pub(super) src: &'a str,
    pub(super) tokens: Vec<Token>,
    /// Stands for every position past the last token.
    pub(super) end: Token,
    pub(super) pos: usize,
    pub(super) depth: usize,
    /// The table queried, once `FROM` is read.
    pub(super) table: &'static Table,
}

pub(super) type Parsed<T> = Result<T, AdqlError>;

fn too_many(what: &'static str, at: usize) -> AdqlError {
    AdqlError::TooManyItems {
        what,
        max: MAX_ITEMS,
        at,
    }
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

    /// Checks that `qualifier` names the table: its alias, its name, or schema and name.
    fn check_qualifier(&self, qualifier: &[Ident], alias: Option<&Ident>) -> Parsed<()> {
        let fine = match qualifier {
            [] => true,
            [t] => alias.is_some_and(|a| a.matches(t)) || t.is(self.table.name),
            [s, t] => s.is(self.table.schema) && t.is(self.table.name),
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
            self.table.columns.iter().find(|c| c.name == column.text)
        } else {
            self.table.column(&column.text)
        };
        found.ok_or_else(|| AdqlError::UnknownColumn {
            name: shorten(&column.text),
            table: self.table.qualified(),
            at: column.at,
        })
    }

    // --- the statement

    pub(super) fn select(&mut self) -> Parsed<Select> {
        if self.is_kw("WITH") {
            return Err(unsupported(
                "WITH (common table expressions)",
                self.peek().at,
            ));
        }
        self.expect_kw("SELECT", "SELECT")?;
        let distinct = self.eat_kw("DISTINCT");
        if !distinct {
            self.eat_kw("ALL");
        }
        let top = if self.eat_kw("TOP") {
            Some(self.top()?)
        } else {
            None
        };
        let list_at = self.peek().at;
        let mut raw = Vec::new();
        loop {
            if raw.len() == MAX_ITEMS {
                return Err(too_many("select list", list_at));
            }
            raw.push((self.peek().at, self.select_item()?));
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect_kw("FROM", "`,` or FROM after the select list")?;
        let alias = self.table_clause()?;
        let mut items = Vec::with_capacity(raw.len());
        let mut item_at = Vec::with_capacity(raw.len());
        for (at, item) in raw {
            item_at.push(at);
            items.push(match item {
                RawItem::All { qualifier } => {
                    self.check_qualifier(&qualifier, alias.as_ref())?;
                    SelectItem::All
                }
                RawItem::Column { name, alias: out } => SelectItem::Column {
                    column: self.resolve(&name, alias.as_ref())?,
                    alias: out,
                },
                RawItem::Aggregate { raw, alias: out } => SelectItem::Aggregate {
                    aggregate: self.resolve_aggregate(raw, alias.as_ref())?,
                    alias: out,
                },
            });
        }
        let mut select = Select {
            table: self.table,
            distinct,
            top,
            items,
            table_alias: alias.as_ref().map(|a| a.text.clone()),
            filter: None,
            group_by: Vec::new(),
            having: None,
            order_by: Vec::new(),
        };
        let scope = Scope {
            alias: alias.as_ref(),
            having: None,
        };
        if self.eat_kw("WHERE") {
            select.filter = Some(self.or_expr(scope)?);
        }
        if self.eat_kw("GROUP") {
            self.expect_kw("BY", "BY after GROUP")?;
            select.group_by = self.group_by(alias.as_ref())?;
        }
        if self.eat_kw("HAVING") {
            let having = Scope {
                alias: alias.as_ref(),
                having: Some(&select.group_by),
            };
            select.having = Some(self.or_expr(having)?);
        }
        self.refuse_clause()?;
        let mut order_at = Vec::new();
        if self.eat_kw("ORDER") {
            self.expect_kw("BY", "BY after ORDER")?;
            (select.order_by, order_at) = self.order_by(&select, alias.as_ref())?;
        }
        check::grouping(&select, &item_at, &order_at)?;
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
            let Some(raw) = self.aggregate()? else {
                return Err(unsupported(
                    format!("the function {}", self.word_upper()),
                    at,
                ));
            };
            let alias = self.alias()?;
            return Ok(RawItem::Aggregate { raw, alias });
        }
        let name = self.dotted("a column name or *")?;
        if self.peek().tok == Tok::Dot {
            // `qualifier.*`
            self.bump();
            self.bump();
            return Ok(RawItem::All { qualifier: name });
        }
        self.refuse_arithmetic()?;
        let alias = self.alias()?;
        Ok(RawItem::Column { name, alias })
    }

    /// `[AS] alias` after a select-list entry, if there is one.
    fn alias(&mut self) -> Parsed<Option<String>> {
        let alias = if self.eat_kw("AS") {
            Some(
                self.ident()
                    .ok_or_else(|| self.syntax("an alias after AS"))?,
            )
        } else {
            self.ident()
        };
        Ok(alias.map(|a| a.text))
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

    /// `FROM schema.table [[AS] alias]`, refusing unknown tables and any join.
    fn table_clause(&mut self) -> Parsed<Option<Ident>> {
        self.table = self.table()?;
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

    /// A table of [`crate::table::TABLES`], named with its schema.
    fn table(&mut self) -> Parsed<&'static Table> {
        let at = self.peek().at;
        if self.peek().tok == Tok::LParen {
            return Err(unsupported("a subquery in FROM", at));
        }
        let name = self.dotted("a table name")?;
        let found = match name.as_slice() {
            [s, t] => crate::table::find((&s.text, s.quoted), (&t.text, t.quoted)),
            _ => None,
        };
        let Some(table) = found else {
            return Err(AdqlError::UnknownTable {
                found: self.text(at, self.prev_end()),
                at,
            });
        };
        if self.peek().tok == Tok::LParen {
            return Err(unsupported("a table-valued function", self.peek().at));
        }
        Ok(table)
    }

    /// The `ORDER BY` list, with where each entry starts.
    fn order_by(
        &mut self,
        select: &Select,
        alias: Option<&Ident>,
    ) -> Parsed<(Vec<OrderItem>, Vec<usize>)> {
        let output: Vec<OrderKey> = select
            .items
            .iter()
            .flat_map(|item| match item {
                SelectItem::All => select.table.columns.iter().map(OrderKey::Column).collect(),
                SelectItem::Column { column, .. } => vec![OrderKey::Column(column)],
                SelectItem::Aggregate { aggregate, .. } => {
                    vec![OrderKey::Aggregate(aggregate.clone())]
                }
            })
            .collect();
        let list_at = self.peek().at;
        let mut order = Vec::new();
        let mut order_at = Vec::new();
        loop {
            if order.len() == MAX_ITEMS {
                return Err(too_many("ORDER BY list", list_at));
            }
            let at = self.peek().at;
            let key = match &self.peek().tok {
                Tok::Num(n) => {
                    let position = n.parse::<usize>().ok().and_then(|p| p.checked_sub(1));
                    let Some(key) = position.and_then(|p| output.get(p)) else {
                        return Err(self.syntax("a position in the select list"));
                    };
                    let key = key.clone();
                    self.bump();
                    key
                }
                _ if self.starts_ident() && self.peek_at(1).tok == Tok::LParen => {
                    let Some(raw) = self.aggregate()? else {
                        return Err(unsupported(
                            format!("the function {} in ORDER BY", self.word_upper()),
                            at,
                        ));
                    };
                    OrderKey::Aggregate(self.resolve_aggregate(raw, alias)?)
                }
                _ => {
                    let name = self.dotted("a column to order by")?;
                    let by_alias = match name.as_slice() {
                        [single] => select.items.iter().find_map(|item| match item {
                            SelectItem::Column {
                                column,
                                alias: Some(a),
                            } if single.is(a) => Some(OrderKey::Column(column)),
                            SelectItem::Aggregate {
                                aggregate,
                                alias: Some(a),
                            } if single.is(a) => Some(OrderKey::Aggregate(aggregate.clone())),
                            _ => None,
                        }),
                        _ => None,
                    };
                    match by_alias {
                        Some(key) => key,
                        None => OrderKey::Column(self.resolve(&name, alias)?),
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
            order.push(OrderItem { key, descending });
            order_at.push(at);
            if !self.eat(&Tok::Comma) {
                return Ok((order, order_at));
            }
        }
    }

    /// Accepts one trailing `;`, then nothing.
    pub(super) fn finish(&mut self) -> Parsed<()> {
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

    fn or_expr(&mut self, scope: Scope<'_>) -> Parsed<Expr> {
        let mut terms = vec![self.and_expr(scope)?];
        while self.eat_kw("OR") {
            terms.push(self.and_expr(scope)?);
        }
        Ok(flatten(terms, Expr::Or))
    }

    fn and_expr(&mut self, scope: Scope<'_>) -> Parsed<Expr> {
        let mut terms = vec![self.not_expr(scope)?];
        while self.eat_kw("AND") {
            terms.push(self.not_expr(scope)?);
        }
        Ok(flatten(terms, Expr::And))
    }

    fn not_expr(&mut self, scope: Scope<'_>) -> Parsed<Expr> {
        let at = self.peek().at;
        if self.eat_kw("NOT") {
            self.enter(at)?;
            let inner = self.not_expr(scope)?;
            self.leave();
            return Ok(negate(inner));
        }
        if self.peek().tok == Tok::LParen {
            self.enter(at)?;
            self.bump();
            if self.is_kw("SELECT") {
                return Err(unsupported("a subquery", self.peek().at));
            }
            let inner = self.or_expr(scope)?;
            self.expect(&Tok::RParen, "`)`")?;
            self.leave();
            return Ok(inner);
        }
        self.predicate(scope)
    }

    fn predicate(&mut self, scope: Scope<'_>) -> Parsed<Expr> {
        let at = self.peek().at;
        if self.is_kw("EXISTS") {
            return Err(unsupported("EXISTS", at));
        }
        if matches!(&self.peek().tok, Tok::Word(w) if !is_reserved(w))
            && self.peek_at(1).tok == Tok::LParen
        {
            if self.is_kw("CONTAINS") {
                return self.cone(scope.alias, None);
            }
            if let Some(aggregate) = self.condition_aggregate(scope)? {
                return self.aggregate_predicate(aggregate, None);
            }
            return Err(unsupported(
                format!("the function {}", self.word_upper()),
                at,
            ));
        }
        if self.starts_ident() {
            let name = self.dotted("a column name")?;
            let column = self.resolve(&name, scope.alias)?;
            check::grouped_in_having(column, scope.having, at)?;
            return self.column_predicate(column);
        }
        match self.peek().tok {
            Tok::Str(_) | Tok::Num(_) | Tok::Minus | Tok::Plus => self.value_first(scope),
            _ => Err(self.syntax("a condition")),
        }
    }

    /// `value op column` or `value op CONTAINS(...)`.
    fn value_first(&mut self, scope: Scope<'_>) -> Parsed<Expr> {
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
            return self.cone(scope.alias, Some((value, at, op.flipped())));
        }
        if self.starts_ident()
            && self.peek_at(1).tok == Tok::LParen
            && let Some(aggregate) = self.condition_aggregate(scope)?
        {
            return self.aggregate_predicate(aggregate, Some((value, at, op.flipped())));
        }
        if self.starts_ident() {
            let column_at = self.peek().at;
            let name = self.dotted("a column name")?;
            let column = self.resolve(&name, scope.alias)?;
            check::grouped_in_having(column, scope.having, column_at)?;
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

pub(super) fn check_type(column: &Column, value: &Literal, at: usize) -> Parsed<()> {
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
