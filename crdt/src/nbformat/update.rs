//! Bringing a newer version of a notebook file into the notebook it was imported as.
//!
//! A notebook gets its identity once, when it is imported; a later version of the same file is
//! applied to it as a three-way merge over the document's history, in place, so that what
//! others edit meanwhile survives and no cell is duplicated:
//!
//! * the file's *base* is the state of the document the file corresponds to: the heads an
//!   export names, or where the notebook last matched the file (see [`super::base`] for the
//!   order);
//! * the update is planned as the difference between the file and the notebook *as it was at
//!   the base*, and made on a branch of the history at the base, as new changes that depend on
//!   the base only, by a fresh session of the updating author ([`Session::fresh`]); those
//!   changes are then brought into the replica, where automerge merges them with everything
//!   made since the base as concurrent edits, and the author's next seal covers them;
//! * when the base is the current state, the update is made in place by the author's session.
//!
//! The difference itself:
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
//! Where the file and what others did since the base disagree about a cell, the others win:
//!
//! * a cell the file removes but someone edited since the base is kept, with their edits
//!   ([`UpdateSummary::kept`]);
//! * a cell the file edits but someone deleted since the base stays deleted
//!   ([`UpdateSummary::left_deleted`]) — what automerge itself does with edits to a deleted
//!   object, and the file's edits stay in the history;
//! * a cell the file adds whose id someone has used since the base is left as it is now;
//! * a source the file changed that already reads as the file says (someone made the same
//!   edit, or the file was saved from a later state) is left alone, so it is not typed twice.
//!
//! A file that matches the notebook at its base makes no change at all, so exporting a notebook
//! and updating it from the export adds nothing to its history. An update's last change records
//! the file's new base in the notebook, so applying the same file again changes nothing either.

use std::fmt;

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType, ReadDoc, ScalarValue};

use super::base::Base;
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
    /// Cells the file removes that others edited since the file's base: kept, with their edits.
    pub kept: usize,
    /// Cells the file changes that others deleted since the file's base: they stay deleted.
    pub left_deleted: usize,
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
            (self.kept, "kept (others edited it since the file's base)"),
            (
                self.left_deleted,
                "left deleted (others deleted it since the file's base)",
            ),
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
    Outputs {
        obj: ObjId,
        outputs: Vec<ScalarValue>,
    },
    /// A splice of a cell's source.
    Splice { text: ObjId, splice: Splice },
    /// The file's lineage recorded in the notebook (object `obj`), stale records removed.
    Record {
        obj: ObjId,
        key: String,
        value: String,
        stale: Vec<String>,
    },
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
                Op::Outputs { outputs, .. } => outputs
                    .iter()
                    .map(|o| match o {
                        ScalarValue::Str(s) => s.len(),
                        _ => SMALL,
                    })
                    .sum(),
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
                    tx.insert(&list, i, out.clone())?;
                }
            }
            Op::Splice { text, splice } => {
                tx.splice_text(text, splice.at, splice.delete as isize, &splice.insert)?
            }
            Op::Record {
                obj,
                key,
                value,
                stale,
            } => {
                tx.put(obj, key.as_str(), value.as_str())?;
                for key in stale {
                    tx.delete(obj, key.as_str())?;
                }
            }
        }
        Ok(())
    }
}

/// Where a notebook cell is at the base: its position key and its object.
struct Current {
    pos: String,
    obj: ObjId,
}

/// What became of a cell of the base by now, in the replica the update is for.
#[derive(Debug)]
enum Since {
    /// As it was (or the base is now).
    Same,
    /// Changed; its source now.
    Changed(String),
    /// Deleted.
    Gone,
}

impl Since {
    /// For each of `cells` (notebook `nb` at the base), what became of it in `now`, the replica
    /// the update is for (`None`: the base is now).
    fn of(cells: &[Cell], nb: &NotebookId, now: Option<&Project>) -> Vec<Since> {
        cells
            .iter()
            .map(|cell| match now.map(|now| now.cell(nb, &cell.id)) {
                None => Since::Same,
                Some(Ok(c)) if c == *cell => Since::Same,
                Some(Ok(c)) => Since::Changed(c.source),
                Some(Err(_)) => Since::Gone,
            })
            .collect()
    }
}

/// Deletes the notebook cells (`cells`, at the base) that no file cell matched, except those
/// changed since the base (kept) or already deleted.
fn plan_removals(
    cells: &[Cell],
    since: &[Since],
    matched: &[Option<usize>],
    ops: &mut Vec<Op<'_>>,
    summary: &mut UpdateSummary,
) {
    let mut still_there = vec![false; cells.len()];
    for &i in matched.iter().flatten() {
        still_there[i] = true;
    }
    for (i, cell) in cells.iter().enumerate().filter(|(i, _)| !still_there[*i]) {
        match since[i] {
            Since::Same => {
                ops.push(Op::Delete(cell.id.clone()));
                summary.removed += 1;
            }
            Since::Changed(_) => summary.kept += 1,
            Since::Gone => {}
        }
    }
}

impl Project {
    /// Updates notebook `nb` to match a newer version of the file it was imported from
    /// (editors), applying only the difference from the file's base and merging it with what
    /// others did since (see [`crate::nbformat::update`]). Commits no change at all when the
    /// notebook at the base already matches the file.
    ///
    /// Changes made on a branch at the base are by a fresh session of `session`'s author and
    /// are covered by `session`'s next seal ([`Project::seal`]), like its own.
    pub fn update_from_ipynb(
        &mut self,
        session: &Session,
        nb: &NotebookId,
        bytes: &[u8],
    ) -> Result<UpdateSummary, NbformatError> {
        let mut file = parse(bytes)?;
        // Stored outputs are handed over even if the update then fails: an unreferenced blob
        // is harmless, a reference to nothing is not.
        self.new_blobs.append(&mut file.blobs);
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
        let base = self.file_base(nb, &file, &session.author())?;
        let mut now = self.doc.get_heads();
        now.sort_unstable();
        if base.heads == now {
            return Ok(self.apply_update(session, nb, &file, &base, None)?);
        }
        let mut branch = self.branch_at(&base.heads)?;
        let fresh = session.fresh().map_err(NbformatError::Session)?;
        let summary = branch.apply_update(&fresh, nb, &file, &base, Some(self))?;
        self.adopt(&mut branch, &fresh, session)?;
        Ok(summary)
    }

    /// Makes notebook `nb` of this replica (at `base`) match `file` as `session`, writing the
    /// record of the base's lineage with the last change. `now` is the replica the update is
    /// for, when this is a branch of it.
    fn apply_update(
        &mut self,
        session: &Session,
        nb: &NotebookId,
        file: &ParsedNotebook,
        base: &Base,
        now: Option<&Project>,
    ) -> Result<UpdateSummary, EditError> {
        let lineage = &base.lineage;
        let mut summary = UpdateSummary::default();
        let mut ops = self.plan_update(nb, file, now, &mut summary)?;
        if ops.is_empty() {
            return Ok(summary);
        }
        let nb_obj = self.notebook_obj(nb)?;
        ops.push(Op::Record {
            stale: self.stale_records(&nb_obj),
            obj: nb_obj,
            key: lineage.version_key(),
            value: lineage.value(&base.heads),
        });
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

    /// The writes that make notebook `nb` match `file`, counted into `summary`; `now` as for
    /// [`Project::apply_update`].
    fn plan_update<'a>(
        &self,
        nb: &NotebookId,
        file: &'a ParsedNotebook,
        now: Option<&Project>,
        summary: &mut UpdateSummary,
    ) -> Result<Vec<Op<'a>>, EditError> {
        let nb_obj = self.notebook_obj(nb)?;
        let mut current = Vec::new();
        let mut cells = Vec::new();
        for (pos, id, obj) in self.ordered_cells(nb)? {
            cells.push(self.read_cell(id, &obj));
            current.push(Current { pos, obj });
        }
        let since = Since::of(&cells, nb, now);
        let matched = match_cells(&cells, &file.cells, &file.invented);

        let mut ops = Vec::new();
        plan_removals(&cells, &since, &matched, &mut ops, summary);
        for (new, i) in file.cells.iter().zip(&matched) {
            let Some(i) = *i else { continue };
            let obj = &current[i].obj;
            match &since[i] {
                Since::Gone => {
                    let (mut scratch, mut counts) = (Vec::new(), UpdateSummary::default());
                    self.plan_cell(obj, &cells[i], new, None, &mut scratch, &mut counts)?;
                    if !scratch.is_empty() {
                        summary.left_deleted += 1;
                    }
                }
                Since::Changed(source) => {
                    self.plan_cell(obj, &cells[i], new, Some(source), &mut ops, summary)?
                }
                Since::Same => self.plan_cell(obj, &cells[i], new, None, &mut ops, summary)?,
            }
        }
        // Cells the file adds whose id is taken by now are left as they are.
        let taken: Vec<bool> = file
            .cells
            .iter()
            .zip(&matched)
            .map(|(cell, m)| {
                m.is_none() && now.is_some_and(|now| now.cell_obj_pub(nb, &cell.id).is_ok())
            })
            .collect();
        let gone: Vec<bool> = since.iter().map(|s| matches!(s, Since::Gone)).collect();
        Order {
            current: &current,
            file,
            matched: &matched,
            gone: &gone,
            taken: &taken,
            ops: &mut ops,
            summary,
        }
        .plan();
        self.plan_notebook(nb_obj, file, &mut ops, summary);
        Ok(ops)
    }

    /// The writes that make the notebook's own fields (object `nb_obj`) match `file`'s.
    fn plan_notebook(
        &self,
        nb_obj: ObjId,
        file: &ParsedNotebook,
        ops: &mut Vec<Op<'_>>,
        summary: &mut UpdateSummary,
    ) {
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
    }

    /// The writes that make cell `cur` (object `obj`) match the file's cell `new`. Its source
    /// is left alone if it reads `source_now` in the replica the update is for and that is
    /// already the file's.
    fn plan_cell<'a>(
        &self,
        obj: &ObjId,
        cur: &Cell,
        new: &'a NewCell,
        source_now: Option<&str>,
        ops: &mut Vec<Op<'a>>,
        summary: &mut UpdateSummary,
    ) -> Result<(), EditError> {
        let edits = if source_now == Some(new.source.as_str()) {
            Vec::new()
        } else {
            splices(&cur.source, &new.source)
        };
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
                    outputs: new.outputs.iter().map(crate::outputs::to_scalar).collect(),
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
    /// For each notebook cell, whether it was deleted since the base (it is not moved).
    gone: &'p [bool],
    /// For each file cell, whether it is new but its id was taken since the base (it is not
    /// inserted).
    taken: &'p [bool],
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
                Some(i) if self.gone[i] => {}
                None if self.taken[j] => {}
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
