//! Bringing a newer version of a notebook file into the notebook it was imported as.
//!
//! A notebook gets its identity once, when it is imported; a later version of the same file is
//! applied to it as the difference between the notebook and the file, in place, so that what
//! others edit meanwhile survives and no cell is duplicated:
//!
//! * cells are matched by nbformat cell id, or, for cells the file gives no id, by position and
//!   content (see the `matching` module);
//! * a matched cell's source changes by character splices computed by a diff, never by
//!   replacement; its kind, outputs, execution count, metadata and attachments are written only
//!   when they differ;
//! * cells the file lacks are deleted, new ones are inserted between their neighbours, and only
//!   the cells whose order relative to the others changed are moved (those outside a longest
//!   increasing subsequence of the matched cells' places, so one moved cell is one move);
//! * the notebook's metadata is written only when it differs.
//!
//! A file that matches the notebook makes no change at all, so exporting a notebook and
//! updating it from the export adds nothing to its history.

use std::fmt;

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType, ReadDoc, ScalarValue};
use serde_json::Value;

use super::matching::{keep_in_place, match_cells};
use super::splice::{Splice, splices};
use super::{NbformatError, ParsedNotebook, parse};
use crate::ids::{CellId, NotebookId};
use crate::position;
use crate::project::{
    CHUNK_BYTES, Cell, EditError, NewCell, Project, cell_size, json_of, write_cell,
};
use crate::schema::*;
use crate::session::Session;

/// What [`Project::update_from_ipynb`] changed. All zero (and `changes == 0`) when the notebook
/// already matched the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    /// Cells the file has and the notebook had not, now inserted.
    pub added: usize,
    /// Cells the notebook had and the file has not, now deleted.
    pub removed: usize,
    /// Cells whose place among the others changed, now moved.
    pub moved: usize,
    /// Cells whose source changed, now edited.
    pub edited: usize,
    /// Cells whose kind, outputs, execution count, metadata or attachments changed.
    pub refreshed: usize,
    /// Code points inserted into sources.
    pub chars_inserted: usize,
    /// Code points deleted from sources.
    pub chars_deleted: usize,
    /// Whether the notebook's metadata or nbformat minor version changed.
    pub notebook_metadata: bool,
    /// Automerge changes committed.
    pub changes: usize,
}

impl UpdateSummary {
    /// Whether nothing changed: the notebook already matched the file.
    pub fn is_unchanged(&self) -> bool {
        self.changes == 0
    }
}

impl fmt::Display for UpdateSummary {
    /// For example `1 cell added, 2 edited (+14 −3 chars), 1 moved`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unchanged() {
            return f.write_str("no change");
        }
        let edited = format!(
            "edited (+{} −{} chars)",
            self.chars_inserted, self.chars_deleted
        );
        let items = [
            (self.added, "added"),
            (self.edited, edited.as_str()),
            (self.moved, "moved"),
            (self.removed, "removed"),
            (self.refreshed, "with new outputs or metadata"),
        ];
        let mut first = true;
        for (n, what) in items.into_iter().filter(|(n, _)| *n > 0) {
            if first {
                write!(f, "{n} cell{} {what}", if n == 1 { "" } else { "s" })?;
                first = false;
            } else {
                write!(f, ", {n} {what}")?;
            }
        }
        if self.notebook_metadata {
            if !first {
                f.write_str(", ")?;
            }
            f.write_str("notebook metadata updated")?;
        }
        Ok(())
    }
}

/// One write of an update.
#[derive(Debug)]
enum Op<'a> {
    /// A new cell at a position.
    Insert { cell: &'a NewCell, pos: String },
    /// A cell deleted.
    Delete(CellId),
    /// A scalar written under a key of a map (a cell or the notebook).
    Put {
        obj: ObjId,
        key: &'static str,
        value: ScalarValue,
    },
    /// A key removed from a map.
    Remove { obj: ObjId, key: &'static str },
    /// A cell's outputs replaced (each serialised as JSON).
    Outputs { obj: ObjId, outputs: Vec<String> },
    /// A splice of a cell's source.
    Splice { text: ObjId, splice: Splice },
}

impl Op<'_> {
    /// Content bytes the write carries, for sizing changes.
    fn size(&self) -> usize {
        const SMALL: usize = 64;
        SMALL
            + match self {
                Op::Insert { cell, .. } => cell_size(cell),
                Op::Put {
                    value: ScalarValue::Str(s),
                    ..
                } => s.len(),
                Op::Outputs { outputs, .. } => outputs.iter().map(String::len).sum(),
                Op::Splice { splice, .. } => splice.insert.len(),
                _ => 0,
            }
    }

    fn apply(&self, tx: &mut Transaction<'_>, cells: &ObjId) -> Result<(), EditError> {
        match self {
            Op::Insert { cell, pos } => write_cell(tx, cells, cell, pos)?,
            Op::Delete(id) => tx.delete(cells, id.as_str())?,
            Op::Put { obj, key, value } => tx.put(obj, *key, value.clone())?,
            Op::Remove { obj, key } => tx.delete(obj, *key)?,
            Op::Outputs { obj, outputs } => {
                let list = tx.put_object(obj, K_OUTPUTS, ObjType::List)?;
                for (i, out) in outputs.iter().enumerate() {
                    tx.insert(&list, i, out.as_str())?;
                }
            }
            Op::Splice { text, splice } => {
                tx.splice_text(text, splice.at, splice.delete as isize, &splice.insert)?
            }
        }
        Ok(())
    }
}

/// Where a notebook cell is now: its position key and its object.
struct Current {
    pos: String,
    obj: ObjId,
}

impl Project {
    /// Updates notebook `nb` to match a newer version of the file it was imported from
    /// (editors), applying only the difference (see [`crate::nbformat::update`]). Commits no
    /// change at all when the notebook already matches the file.
    pub fn update_from_ipynb(
        &mut self,
        session: &Session,
        nb: &NotebookId,
        bytes: &[u8],
    ) -> Result<UpdateSummary, NbformatError> {
        let file = parse(bytes)?;
        // Asked first, so that a viewer is refused even when nothing would change.
        let role = self.role_of(&session.author());
        if !role.is_some_and(Role::can_edit) {
            return Err(EditError::NotPermitted {
                author: session.author(),
                action: "update notebooks",
                role: role.map_or("none".into(), |r| r.to_string()),
            }
            .into());
        }
        let mut summary = UpdateSummary::default();
        let ops = self.plan_update(nb, &file, &mut summary)?;
        let cells = self.cells_obj(nb)?;
        // Writes go in changes of bounded size, so that no change nears the ingest limit.
        let mut start = 0;
        while start < ops.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < ops.len() && (end == start || bytes + ops[end].size() <= CHUNK_BYTES) {
                bytes += ops[end].size();
                end += 1;
            }
            self.edit(session, Role::Editor, "update notebooks", |tx, _| {
                ops[start..end]
                    .iter()
                    .try_for_each(|op| op.apply(tx, &cells))
            })?;
            summary.changes += 1;
            start = end;
        }
        Ok(summary)
    }

    /// The writes that make notebook `nb` match `file`, counted into `summary`.
    fn plan_update<'a>(
        &self,
        nb: &NotebookId,
        file: &'a ParsedNotebook,
        summary: &mut UpdateSummary,
    ) -> Result<Vec<Op<'a>>, EditError> {
        let nb_obj = self.notebook_obj(nb)?;
        let mut current = Vec::new();
        let mut cells = Vec::new();
        for (pos, id, obj) in self.ordered_cells(nb)? {
            cells.push(self.read_cell(id, &obj));
            current.push(Current { pos, obj });
        }
        let matched = match_cells(&cells, &file.cells, &file.invented);

        let mut ops = Vec::new();
        let mut still_there = vec![false; cells.len()];
        for &i in matched.iter().flatten() {
            still_there[i] = true;
        }
        for (cell, _) in cells.iter().zip(&still_there).filter(|(_, kept)| !**kept) {
            ops.push(Op::Delete(cell.id.clone()));
            summary.removed += 1;
        }
        for (new, i) in file.cells.iter().zip(&matched) {
            if let Some(i) = *i {
                self.plan_cell(&current[i].obj, &cells[i], new, &mut ops, summary)?;
            }
        }
        Order {
            current: &current,
            file,
            matched: &matched,
            ops: &mut ops,
            summary,
        }
        .plan();

        let metadata =
            json_of(self.get_str(&nb_obj, K_METADATA)).unwrap_or_else(|| serde_json::json!({}));
        if metadata != file.metadata {
            ops.push(Op::Put {
                obj: nb_obj.clone(),
                key: K_METADATA,
                value: ScalarValue::Str(file.metadata.to_string().into()),
            });
            summary.notebook_metadata = true;
        }
        // Export writes at least 4.5, so a notebook from 4.4 and its export agree.
        let minor = self.get_int(&nb_obj, K_NBFORMAT_MINOR).unwrap_or(5);
        if minor.max(5) != file.nbformat_minor.max(5) {
            ops.push(Op::Put {
                obj: nb_obj,
                key: K_NBFORMAT_MINOR,
                value: ScalarValue::Int(file.nbformat_minor),
            });
            summary.notebook_metadata = true;
        }
        Ok(ops)
    }

    /// The writes that make cell `cur` (object `obj`) match the file's cell `new`.
    fn plan_cell<'a>(
        &self,
        obj: &ObjId,
        cur: &Cell,
        new: &'a NewCell,
        ops: &mut Vec<Op<'a>>,
        summary: &mut UpdateSummary,
    ) -> Result<(), EditError> {
        let edits = splices(&cur.source, &new.source);
        if !edits.is_empty() {
            let text = self
                .get_obj(obj, K_SOURCE, ObjType::Text)
                .ok_or(EditError::Malformed("cell without source text"))?;
            summary.edited += 1;
            for splice in edits {
                summary.chars_inserted += splice.inserted();
                summary.chars_deleted += splice.delete;
                ops.push(Op::Splice {
                    text: text.clone(),
                    splice,
                });
            }
        }

        let before = ops.len();
        let put = |key, value| Op::Put {
            obj: obj.clone(),
            key,
            value,
        };
        let remove_if_there = |key, ops: &mut Vec<Op<'a>>| {
            if matches!(self.doc.get(obj, key), Ok(Some(_))) {
                ops.push(Op::Remove {
                    obj: obj.clone(),
                    key,
                });
            }
        };
        let was_code = cur.kind == CellKind::Code;
        if cur.kind != new.kind {
            ops.push(put(K_KIND, ScalarValue::Str(new.kind.as_str().into())));
            if was_code {
                for key in [K_OUTPUTS, K_EXEC_COUNT, K_EXECUTION] {
                    remove_if_there(key, ops);
                }
            }
        }
        if new.kind == CellKind::Code {
            if !was_code || cur.outputs != new.outputs {
                ops.push(Op::Outputs {
                    obj: obj.clone(),
                    outputs: new.outputs.iter().map(Value::to_string).collect(),
                });
                // The record of who ran the cell where no longer describes these outputs.
                if was_code {
                    remove_if_there(K_EXECUTION, ops);
                }
            }
            if !was_code || cur.execution_count != new.execution_count {
                let count = new
                    .execution_count
                    .map_or(ScalarValue::Null, ScalarValue::Int);
                ops.push(put(K_EXEC_COUNT, count));
            }
        }
        if cur.metadata != new.metadata {
            ops.push(put(
                K_METADATA,
                ScalarValue::Str(new.metadata.to_string().into()),
            ));
        }
        if cur.attachments != new.attachments {
            match &new.attachments {
                Some(att) => ops.push(put(K_ATTACHMENTS, ScalarValue::Str(att.to_string().into()))),
                None => remove_if_there(K_ATTACHMENTS, ops),
            }
        }
        if ops.len() > before {
            summary.refreshed += 1;
        }
        Ok(())
    }
}

/// Positions for the cells that move and the cells that are new, so that the notebook's order
/// becomes the file's. Matched cells in a longest increasing run of their current places keep
/// their position keys; every other cell gets a key between its kept neighbours.
struct Order<'a, 'p> {
    current: &'p [Current],
    file: &'a ParsedNotebook,
    /// For each file cell, the index of the notebook cell it is.
    matched: &'p [Option<usize>],
    ops: &'p mut Vec<Op<'a>>,
    summary: &'p mut UpdateSummary,
}

impl<'a, 'p> Order<'a, 'p> {
    fn plan(mut self) {
        let (current, matched) = (self.current, self.matched);
        let places: Vec<usize> = matched.iter().flatten().copied().collect();
        let mut keep = keep_in_place(&places).into_iter();
        let kept: Vec<bool> = matched
            .iter()
            .map(|m| m.is_some() && keep.next().unwrap_or(false))
            .collect();
        let mut lo: Option<&'p str> = None;
        let mut run: Vec<usize> = Vec::new();
        for (j, m) in matched.iter().enumerate() {
            match (kept[j], *m) {
                (true, Some(i)) => {
                    let key = current[i].pos.as_str();
                    // Keys can tie after concurrent inserts; nothing fits between equal keys,
                    // so the later of the two moves instead.
                    if !run.is_empty() && lo.is_some_and(|lo| lo >= key) {
                        run.push(j);
                        continue;
                    }
                    self.place(&run, lo, Some(key));
                    run.clear();
                    lo = Some(key);
                }
                _ => run.push(j),
            }
        }
        self.place(&run, lo, None);
    }

    /// Gives the file cells `run` (indexes) keys between `lo` and `hi`, in order.
    fn place(&mut self, run: &[usize], lo: Option<&str>, hi: Option<&str>) {
        let keys = position::spread_between(lo, hi, run.len());
        for (&j, pos) in run.iter().zip(keys) {
            match self.matched[j] {
                Some(i) => {
                    self.ops.push(Op::Put {
                        obj: self.current[i].obj.clone(),
                        key: K_POS,
                        value: ScalarValue::Str(pos.into()),
                    });
                    self.summary.moved += 1;
                }
                None => {
                    self.ops.push(Op::Insert {
                        cell: &self.file.cells[j],
                        pos,
                    });
                    self.summary.added += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_reads_as_a_sentence() {
        let s = UpdateSummary {
            added: 1,
            edited: 2,
            chars_inserted: 14,
            chars_deleted: 3,
            moved: 1,
            changes: 1,
            ..Default::default()
        };
        assert_eq!(
            s.to_string(),
            "1 cell added, 2 edited (+14 −3 chars), 1 moved"
        );
        let s = UpdateSummary {
            removed: 2,
            notebook_metadata: true,
            changes: 1,
            ..Default::default()
        };
        assert_eq!(s.to_string(), "2 cells removed, notebook metadata updated");
        assert_eq!(UpdateSummary::default().to_string(), "no change");
        assert!(UpdateSummary::default().is_unchanged());
    }
}
