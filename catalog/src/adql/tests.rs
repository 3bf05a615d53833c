//! Tests of the parser, the checks and the rendering.

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
            key: OrderKey::Column(col("t_min")),
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
            table: "ivoa.obscore".into(),
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
        "`tap_schema.tables` at byte 7 is neither the table queried nor its alias"
    );
    let star = ok("SELECT o.*, s_ra AS ra FROM ivoa.obscore o");
    let output = star.output();
    assert_eq!(output.len(), obscore::COLUMNS.len() + 1);
    assert_eq!(output.last(), Some(&("ra".to_owned(), *col("s_ra"))));
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
        .map(|o| match &o.key {
            OrderKey::Column(c) => (c.name, o.descending),
            OrderKey::Aggregate(_) => ("aggregate", o.descending),
        })
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
    let select = ok("-- a cone\nSELECT s_ra -- the RA\nFROM ivoa.obscore -- the table\n;\n-- done");
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
        "unknown column \"foo\" in ivoa.obscore (at byte 7); TAP_SCHEMA.columns lists its columns"
    );
    assert_eq!(
        refused_filter("_id = 1"),
        AdqlError::UnknownColumn {
            table: "ivoa.obscore".into(),
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
fn only_served_tables_can_be_queried() {
    for (q, found) in [
        ("SELECT * FROM TAP_SCHEMA.secrets", "TAP_SCHEMA.secrets"),
        ("SELECT * FROM tap_schema_columns", "tap_schema_columns"),
        ("SELECT * FROM sqlite_master", "sqlite_master"),
        ("SELECT name FROM sqlite_master", "sqlite_master"),
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
        "unknown table `sqlite_master` at byte 14; this service has ivoa.obscore and TAP_SCHEMA.schemas, .tables, .columns, .keys and .key_columns"
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
            "SELECT UPPER(obs_id) FROM ivoa.obscore".to_owned(),
            "the function UPPER",
        ),
        (
            format!("{base} WHERE DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', 1, 2)) < 1"),
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
        refused(&format!("{base} GROUP BY s_dec")).to_string(),
        "column s_ra at byte 7 is neither in GROUP BY nor inside an aggregate; add it to GROUP BY or aggregate it"
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

#[test]
fn aggregates_group_by_and_having_render_and_hostile_ones_are_refused() {
    let q = to_sql(
        &ok(
            "SELECT target_name, COUNT(*) AS n, AVG(s_ra), MAX(obs_id) FROM ivoa.obscore \
             GROUP BY target_name HAVING COUNT(DISTINCT obs_id) > 1 ORDER BY n DESC",
        ),
        10,
    );
    assert_eq!(
        q.sql,
        "SELECT target_name, COUNT(*), AVG(s_ra), MAX(obs_id) FROM obscore GROUP BY target_name \
         HAVING COUNT(DISTINCT obs_id) > ? ORDER BY COUNT(*) DESC, 1, 2, 3, 4 LIMIT ?"
    );
    let types: Vec<_> = q.columns.iter().map(|c| c.datatype).collect();
    assert_eq!(
        types,
        [
            Datatype::Char,
            Datatype::Long,
            Datatype::Double,
            Datatype::Char
        ]
    );
    assert_eq!(q.names[2], "avg_s_ra");
    let q = to_sql(&ok("SELECT DISTINCT datatype FROM tap_schema.COLUMNS"), 10);
    assert_eq!(
        q.sql,
        "SELECT DISTINCT datatype FROM tap_schema_columns ORDER BY 1 LIMIT ?"
    );
    let e = |adql: &str| refused(adql).to_string();
    assert!(e("SELECT COUNT(MAX(s_ra)) FROM ivoa.obscore").contains("nested"));
    assert!(e("SELECT obs_id FROM ivoa.obscore WHERE COUNT(*) > 1").contains("WHERE"));
    assert!(e("SELECT SUM(obs_id) FROM ivoa.obscore").contains("holds text"));
    assert!(e("SELECT *, COUNT(*) FROM ivoa.obscore").contains("SELECT *"));
    assert!(e("SELECT * FROM TAP_SCHEMA.passwords").contains("unknown table"));
    assert!(e("SELECT * FROM TAP_SCHEMA.columns WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 1, 2, 3)) = 1").contains("no positions"));
    let long = vec!["s_ra"; MAX_ITEMS + 1].join(", ");
    let err = refused(&format!(
        "SELECT COUNT(*) FROM ivoa.obscore GROUP BY {long}"
    ));
    assert!(matches!(err, AdqlError::TooManyItems { .. }), "{err}");
}
