//! Aggregates (`COUNT`, `MIN`, `MAX`, `SUM`, `AVG`), `GROUP BY`, and the aggregate comparisons
//! of `HAVING`. An aggregate takes a column or, for `COUNT` only, `*`: never another aggregate,
//! a function or an expression.

use super::*;

/// An aggregate before the table (and so its columns) is known.
pub(super) struct RawAggregate {
    function: AggregateFunction,
    distinct: bool,
    /// `None` for `COUNT(*)`.
    column: Option<Vec<Ident>>,
    at: usize,
}

impl Parser<'_> {
    /// The aggregate function the current word names, if it is one followed by `(`.
    fn aggregate_function(&self) -> Option<AggregateFunction> {
        match &self.peek().tok {
            Tok::Word(w) if self.peek_at(1).tok == Tok::LParen => AggregateFunction::named(w),
            _ => None,
        }
    }

    /// `FUNCTION([DISTINCT | ALL] column)` or `COUNT(*)`; `None`, reading nothing, when the
    /// current word is not an aggregate function.
    pub(super) fn aggregate(&mut self) -> Parsed<Option<RawAggregate>> {
        let Some(function) = self.aggregate_function() else {
            return Ok(None);
        };
        let at = self.peek().at;
        self.bump();
        self.bump();
        if function == AggregateFunction::Count && self.eat(&Tok::Star) {
            self.expect(&Tok::RParen, "`)` after COUNT(*")?;
            self.refuse_arithmetic()?;
            return Ok(Some(RawAggregate {
                function,
                distinct: false,
                column: None,
                at,
            }));
        }
        let distinct = self.eat_kw("DISTINCT");
        if !distinct {
            self.eat_kw("ALL");
        }
        let arg_at = self.peek().at;
        if self.aggregate_function().is_some() {
            return Err(AdqlError::NestedAggregate { at: arg_at });
        }
        if self.starts_ident() && self.peek_at(1).tok == Tok::LParen {
            return Err(unsupported(
                format!(
                    "the function {} inside {}",
                    self.word_upper(),
                    function.sql()
                ),
                arg_at,
            ));
        }
        match self.peek().tok {
            Tok::Star => {
                return Err(unsupported(
                    format!("{}(*) (only COUNT takes *)", function.sql()),
                    arg_at,
                ));
            }
            Tok::LParen | Tok::Str(_) | Tok::Num(_) | Tok::Minus | Tok::Plus => {
                return Err(unsupported(
                    format!(
                        "an expression inside {} (aggregate a column)",
                        function.sql()
                    ),
                    arg_at,
                ));
            }
            _ => {}
        }
        let column = self.dotted("a column name")?;
        self.refuse_arithmetic()?;
        self.expect(&Tok::RParen, "`)` closing the aggregate")?;
        self.refuse_arithmetic()?;
        Ok(Some(RawAggregate {
            function,
            distinct,
            column: Some(column),
            at,
        }))
    }

    /// Resolves the aggregate's column; `SUM` and `AVG` need numbers.
    pub(super) fn resolve_aggregate(
        &self,
        raw: RawAggregate,
        alias: Option<&Ident>,
    ) -> Parsed<Aggregate> {
        let column = match &raw.column {
            Some(name) => Some(self.resolve(name, alias)?),
            None => None,
        };
        if let Some(c) = column
            && matches!(
                raw.function,
                AggregateFunction::Sum | AggregateFunction::Avg
            )
            && c.datatype.is_text()
        {
            return Err(AdqlError::AggregateOfText {
                function: raw.function.sql(),
                column: c.name,
                at: raw.at,
            });
        }
        Ok(Aggregate {
            function: raw.function,
            column,
            distinct: raw.distinct,
        })
    }

    /// An aggregate where a condition starts: refused in `WHERE`; `None` when the current word
    /// is not an aggregate function.
    pub(super) fn condition_aggregate(&mut self, scope: Scope<'_>) -> Parsed<Option<Aggregate>> {
        if self.aggregate_function().is_none() {
            return Ok(None);
        }
        if scope.having.is_none() {
            return Err(AdqlError::AggregateInWhere { at: self.peek().at });
        }
        match self.aggregate()? {
            Some(raw) => Ok(Some(self.resolve_aggregate(raw, scope.alias)?)),
            None => Ok(None),
        }
    }

    /// `aggregate op value`; `left` is `value op` when written first (with `op` already
    /// turned to read `aggregate op value`).
    pub(super) fn aggregate_predicate(
        &mut self,
        aggregate: Aggregate,
        left: Option<(Literal, usize, Comparison)>,
    ) -> Parsed<Expr> {
        let (value, at, op) = match left {
            Some(left) => left,
            None => {
                let Some(op) = self.comparison() else {
                    if ["BETWEEN", "IN", "LIKE", "ILIKE", "NOT", "IS"]
                        .iter()
                        .any(|k| self.is_kw(k))
                    {
                        return Err(unsupported(
                            "BETWEEN, IN, LIKE or IS on an aggregate (compare it with a value)",
                            self.peek().at,
                        ));
                    }
                    return Err(self.syntax("a comparison operator after the aggregate"));
                };
                let Some((value, at)) = self.literal()? else {
                    return Err(self.syntax("a value: a number or a quoted string"));
                };
                self.refuse_arithmetic()?;
                (value, at, op)
            }
        };
        check_type(&aggregate.output(), &value, at)?;
        Ok(Expr::Aggregate {
            aggregate,
            op,
            value,
        })
    }

    /// The `GROUP BY` columns: names only, at most [`MAX_ITEMS`].
    pub(super) fn group_by(&mut self, alias: Option<&Ident>) -> Parsed<Vec<&'static Column>> {
        let list_at = self.peek().at;
        let mut columns = Vec::new();
        loop {
            if columns.len() == MAX_ITEMS {
                return Err(too_many("GROUP BY list", list_at));
            }
            let at = self.peek().at;
            if self.aggregate_function().is_some() {
                return Err(unsupported("an aggregate in GROUP BY", at));
            }
            if self.starts_ident() && self.peek_at(1).tok == Tok::LParen {
                return Err(unsupported(
                    format!("the function {} in GROUP BY", self.word_upper()),
                    at,
                ));
            }
            if matches!(self.peek().tok, Tok::Num(_)) {
                return Err(unsupported("GROUP BY a position (name the column)", at));
            }
            let name = self.dotted("a column to group by")?;
            columns.push(self.resolve(&name, alias)?);
            self.refuse_arithmetic()?;
            if !self.eat(&Tok::Comma) {
                return Ok(columns);
            }
        }
    }
}
