//! The cone test: `CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE(...)) = 1 | 0`, only on a table
//! whose SQL carries positions ([`Table::sky`]).

use super::*;

impl Parser<'_> {
    /// `CONTAINS(POINT(...), CIRCLE(...)) op 0|1`; `left` is `value op` when written first
    /// (with `op` already turned to read `CONTAINS(...) op value`).
    pub(super) fn cone(
        &mut self,
        alias: Option<&Ident>,
        left: Option<(Literal, usize, Comparison)>,
    ) -> Parsed<Expr> {
        let at = self.peek().at;
        if !self.table.sky {
            return Err(unsupported(
                format!(
                    "CONTAINS on {}, which has no positions",
                    self.table.qualified()
                ),
                at,
            ));
        }
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
