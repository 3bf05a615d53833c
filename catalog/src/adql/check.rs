//! The rules of a query that groups rows (a `GROUP BY`, a `HAVING`, or an aggregate in the
//! select list or `ORDER BY`): outside aggregates it may name only grouped columns, and never
//! `*`. The parser has already resolved every name against the table; these checks make sure
//! SQLite is never asked for a column whose value would be taken from an arbitrary row.

use super::*;
use parser::Parsed;

/// Checks the select list and `ORDER BY` of `select`; `item_at` and `order_at` are where
/// their entries start, in order.
pub(super) fn grouping(select: &Select, item_at: &[usize], order_at: &[usize]) -> Parsed<()> {
    if !select.aggregates() {
        return Ok(());
    }
    for (item, &at) in select.items.iter().zip(item_at) {
        match item {
            SelectItem::All => return Err(AdqlError::StarWithAggregates { at }),
            SelectItem::Column { column, .. } => grouped(column, &select.group_by, at)?,
            SelectItem::Aggregate { .. } => {}
        }
    }
    for (item, &at) in select.order_by.iter().zip(order_at) {
        if let OrderKey::Column(column) = &item.key {
            grouped(column, &select.group_by, at)?;
        }
    }
    Ok(())
}

/// In `HAVING` (`having` holds the grouped columns), a column outside an aggregate must be
/// grouped; in `WHERE` (`None`) any column will do.
pub(super) fn grouped_in_having(
    column: &'static Column,
    having: Option<&[&'static Column]>,
    at: usize,
) -> Parsed<()> {
    match having {
        Some(group_by) => grouped(column, group_by, at),
        None => Ok(()),
    }
}

fn grouped(column: &'static Column, group_by: &[&'static Column], at: usize) -> Parsed<()> {
    if group_by.iter().any(|g| g.name == column.name) {
        Ok(())
    } else {
        Err(AdqlError::NotGrouped {
            column: column.name,
            at,
        })
    }
}
