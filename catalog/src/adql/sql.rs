//! Rendering a checked [`Select`] as parameterised SQLite SQL: table and column names come from
//! [`crate::table`], every literal is a parameter.

use super::*;

#[derive(Default)]
pub(super) struct SqlWriter {
    pub(super) sql: String,
    pub(super) params: Vec<Value>,
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

    /// Everything before `LIMIT`.
    pub(super) fn select(&mut self, select: &Select) {
        self.sql.push_str("SELECT ");
        if select.distinct {
            self.sql.push_str("DISTINCT ");
        }
        let mut first = true;
        for item in &select.items {
            let mut next = |out: &mut Self| {
                if !std::mem::take(&mut first) {
                    out.sql.push_str(", ");
                }
            };
            match item {
                SelectItem::All => {
                    for column in select.table.columns {
                        next(self);
                        self.sql.push_str(column.name);
                    }
                }
                SelectItem::Column { column, .. } => {
                    next(self);
                    self.sql.push_str(column.name);
                }
                SelectItem::Aggregate { aggregate, .. } => {
                    next(self);
                    self.aggregate(aggregate);
                }
            }
        }
        self.sql.push_str(" FROM ");
        self.sql.push_str(select.table.sql);
        if let Some(filter) = &select.filter {
            self.sql.push_str(" WHERE ");
            self.expr(filter);
        }
        for (i, column) in select.group_by.iter().enumerate() {
            self.sql.push_str(if i == 0 { " GROUP BY " } else { ", " });
            self.sql.push_str(column.name);
        }
        if let Some(having) = &select.having {
            self.sql.push_str(" HAVING ");
            self.expr(having);
        }
        self.sql.push_str(" ORDER BY ");
        for item in &select.order_by {
            match &item.key {
                OrderKey::Column(column) => self.sql.push_str(column.name),
                OrderKey::Aggregate(aggregate) => self.aggregate(aggregate),
            }
            self.sql
                .push_str(if item.descending { " DESC, " } else { " ASC, " });
        }
        if select.aggregates() || select.distinct {
            // Rows are groups or distinct values: every output column, by position, makes
            // the order total.
            let n = select.output().len();
            for position in 1..=n {
                if position > 1 {
                    self.sql.push_str(", ");
                }
                self.sql.push_str(&position.to_string());
            }
        } else {
            self.sql.push_str(select.table.row_id);
        }
    }

    fn aggregate(&mut self, aggregate: &Aggregate) {
        self.sql.push_str(aggregate.function.sql());
        self.sql.push('(');
        if aggregate.distinct {
            self.sql.push_str("DISTINCT ");
        }
        match aggregate.column {
            Some(column) => self.sql.push_str(column.name),
            None => self.sql.push('*'),
        }
        self.sql.push(')');
    }

    pub(super) fn expr(&mut self, expr: &Expr) {
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
            Expr::Aggregate {
                aggregate,
                op,
                value,
            } => {
                self.aggregate(aggregate);
                self.sql.push(' ');
                self.sql.push_str(op.sql());
                self.sql.push(' ');
                self.param(value.to_value());
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
