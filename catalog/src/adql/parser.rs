//! The recursive-descent parser and the checks it makes: names, types, cones, bounds.

use super::*;

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

pub(super) struct Parser<'a> {
    pub(super) src: &'a str,
    pub(super) tokens: Vec<Token>,
    /// Stands for every position past the last token.
    pub(super) end: Token,
    pub(super) pos: usize,
    pub(super) depth: usize,
}

pub(super) type Parsed<T> = Result<T, AdqlError>;

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

    pub(super) fn select(&mut self) -> Parsed<Select> {
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
