//! Live editing for an editor that holds no replica (a browser): it sends splices made against
//! the version it last saw; they are made as one change at that version, so they merge with
//! everything since as any concurrent edit does. What changed between two versions is told
//! back as splices of cell sources and whole cells.

use automerge::{ObjId as ExId, Prop, patches::PatchAction};
use orrery_protocol::presence::{Caret, CharId};

use super::*;

/// Deletes `delete` characters at `pos` and inserts `insert` there. Positions count Unicode
/// code points.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Splice {
    /// Where, in code points.
    pub pos: usize,
    /// How many code points are deleted there.
    pub delete: usize,
    /// What is inserted there.
    pub insert: String,
}

/// Splices of one cell's source, each applying to the text the previous ones left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellSplices {
    /// The cell.
    pub cell: CellId,
    /// The splices, in order.
    pub splices: Vec<Splice>,
}

/// What changed in a notebook between two versions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotebookDelta {
    /// The version reached.
    pub heads: Vec<ChangeHash>,
    /// Source splices of cells present at both versions.
    pub texts: Vec<CellSplices>,
    /// Cells added, or whose kind, place, outputs or metadata changed, as they are now. A
    /// reader that already holds one keeps its own source: source changes come as splices.
    pub cells: Vec<Cell>,
    /// Cells deleted.
    pub removed: Vec<CellId>,
    /// The cells' order now, when a cell was added, deleted or moved.
    pub order: Option<Vec<CellId>>,
}

impl NotebookDelta {
    /// Whether nothing in the notebook changed.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
            && self.cells.is_empty()
            && self.removed.is_empty()
            && self.order.is_none()
    }
}

impl Project {
    /// Makes `edits` (splices of cell sources) as one change at `base`, a version this replica
    /// holds that includes every change `session` made. Splice positions are those of the
    /// texts at `base`. Answers with the change's hash.
    pub fn splice_at(
        &mut self,
        session: &Session,
        nb: &NotebookId,
        base: &[ChangeHash],
        edits: &[CellSplices],
    ) -> Result<ChangeHash, EditError> {
        let base = self.known_heads(base)?;
        if self
            .doc
            .get_changes(&base)
            .iter()
            .any(|c| c.actor_id() == session.actor())
        {
            return Err(EditError::Stale("it lacks this session's latest change"));
        }
        let mut texts = Vec::with_capacity(edits.len());
        for e in edits {
            let obj = self.source_obj(nb, &e.cell)?;
            let mut len = self.doc.length_at(&obj, &base);
            for s in &e.splices {
                if s.pos > len || s.delete > len - s.pos {
                    return Err(EditError::OutOfRange {
                        what: "source",
                        index: s.pos + s.delete,
                        len,
                    });
                }
                len = len - s.delete + s.insert.chars().count();
            }
            texts.push((obj, &e.splices));
        }
        self.edit_at(session, Role::Editor, "edit cells", Some(&base), |tx, _| {
            for (obj, splices) in &texts {
                for s in splices.iter() {
                    tx.splice_text(obj, s.pos, s.delete as isize, &s.insert)?;
                }
            }
            Ok(())
        })?;
        let own = self
            .unsealed
            .get(session.actor())
            .and_then(|u| u.own)
            .ok_or(EditError::Malformed("the edit made no change"))?;
        Ok(own)
    }

    /// What changed in notebook `nb` from `from` (a version this replica holds) to now.
    pub fn notebook_delta(
        &self,
        nb: &NotebookId,
        from: &[ChangeHash],
    ) -> Result<NotebookDelta, EditError> {
        let from = self.known_heads(from)?;
        let now = self.doc.get_heads();
        let mut delta = NotebookDelta {
            heads: now.iter().copied().map(to_hash).collect(),
            ..NotebookDelta::default()
        };
        if from == now {
            return Ok(delta);
        }
        let cells = self.cells_obj(nb)?;
        let mut added: Vec<CellId> = Vec::new();
        let mut changed: Vec<CellId> = Vec::new();
        let mut texts: Vec<CellSplices> = Vec::new();
        // Cells whose source text was replaced whole: their splices are of the new text.
        let mut replaced: Vec<CellId> = Vec::new();
        for patch in self.doc.diff(&from, &now) {
            if patch.obj == cells {
                match &patch.action {
                    PatchAction::PutMap { key, .. } => {
                        if let Ok(id) = key.parse::<CellId>() {
                            added.push(id);
                        }
                    }
                    PatchAction::DeleteMap { key } => {
                        if let Ok(id) = key.parse::<CellId>() {
                            delta.removed.push(id);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            // The cell the patch is inside of, and the key under the cell it goes through.
            let Some(at) = patch.path.iter().position(|(o, _)| *o == cells) else {
                continue;
            };
            let Some(Prop::Map(key)) = patch.path.get(at).map(|(_, p)| p) else {
                continue;
            };
            let Ok(cell) = key.parse::<CellId>() else {
                continue;
            };
            if patch.path.len() == at + 1
                && matches!(&patch.action, PatchAction::PutMap { key, .. } if key == K_SOURCE)
            {
                replaced.push(cell.clone());
            }
            let under = patch.path.get(at + 1).map(|(_, p)| p);
            let is_source =
                patch.path.len() == at + 2 && matches!(under, Some(Prop::Map(k)) if k == K_SOURCE);
            let splice = match (&patch.action, is_source) {
                (PatchAction::SpliceText { index, value, .. }, true) => Some(Splice {
                    pos: *index,
                    delete: 0,
                    insert: value.make_string(),
                }),
                (PatchAction::DeleteSeq { index, length }, true) => Some(Splice {
                    pos: *index,
                    delete: *length,
                    insert: String::new(),
                }),
                _ => None,
            };
            match splice {
                Some(s) => match texts.iter_mut().find(|t| t.cell == cell) {
                    Some(t) => t.splices.push(s),
                    None => texts.push(CellSplices {
                        cell,
                        splices: vec![s],
                    }),
                },
                // Anything else in the cell: its kind, place, outputs or metadata.
                None => {
                    if !changed.contains(&cell) {
                        changed.push(cell);
                    }
                }
            }
        }
        let reshaped = !added.is_empty() || !delta.removed.is_empty() || !changed.is_empty();
        delta.texts = texts
            .into_iter()
            .filter(|t| {
                ![&added, &delta.removed, &replaced]
                    .iter()
                    .any(|l| l.contains(&t.cell))
            })
            .collect();
        for id in added.iter().chain(changed.iter()) {
            if delta.removed.contains(id) || delta.cells.iter().any(|c| &c.id == id) {
                continue;
            }
            if let Ok(cell) = self.cell(nb, id) {
                delta.cells.push(cell);
            }
        }
        if reshaped {
            delta.order = Some(self.cell_ids(nb)?);
        }
        Ok(delta)
    }

    /// A caret at `pos` (code points) in the source of `cell`, as the text is at `at`: it
    /// names the characters either side, so it stays between them as others edit.
    pub fn caret_at(
        &self,
        nb: &NotebookId,
        cell: &CellId,
        pos: usize,
        at: &[ChangeHash],
    ) -> Result<Caret, EditError> {
        let at = self.known_heads(at)?;
        let obj = self.source_obj(nb, cell)?;
        let len = self.doc.length_at(&obj, &at);
        if pos > len {
            return Err(EditError::OutOfRange {
                what: "source",
                index: pos,
                len,
            });
        }
        let mut caret = Caret {
            left: None,
            right: None,
        };
        for item in self
            .doc
            .list_range_at(&obj, pos.saturating_sub(1)..(pos + 1).min(len), &at)
        {
            let ExId::Id(counter, actor, _) = item.id() else {
                continue;
            };
            let id = CharId {
                actor: actor.to_bytes().to_vec(),
                counter,
            };
            if item.index + 1 == pos {
                caret.left = Some(id);
            } else if item.index == pos {
                caret.right = Some(id);
            }
        }
        Ok(caret)
    }

    /// Where `caret` is in the source of `cell` at `at` (code points): before its right-hand
    /// character, or else after its left-hand one; `None` if neither is in that text at `at`.
    pub fn caret_position(
        &self,
        nb: &NotebookId,
        cell: &CellId,
        caret: &Caret,
        at: &[ChangeHash],
    ) -> Option<usize> {
        let at = self.known_heads(at).ok()?;
        let obj = self.source_obj(nb, cell).ok()?;
        let is = |c: &Option<CharId>, id: &ExId| {
            matches!((c, id), (Some(c), ExId::Id(counter, actor, _))
                if c.counter == *counter && c.actor == actor.to_bytes())
        };
        let mut after_left = None;
        for item in self.doc.list_range_at(&obj, .., &at) {
            let id = item.id();
            if is(&caret.right, &id) {
                return Some(item.index);
            }
            if is(&caret.left, &id) {
                after_left = Some(item.index + 1);
            }
        }
        match (after_left, &caret.left, &caret.right) {
            (Some(p), _, _) => Some(p),
            (None, _, None) => Some(self.doc.length_at(&obj, &at)),
            (None, None, _) => Some(0),
            _ => None,
        }
    }

    /// The latest change made in the session of `author` with session part `part` that is not
    /// in `since`'s past, if any: a browser that lost its connection with an edit in flight
    /// learns from it whether the edit was made.
    pub fn session_change_since(
        &self,
        author: &AuthorId,
        part: &[u8; crate::session::SESSION_LEN],
        since: &[ChangeHash],
    ) -> Result<Option<ChangeHash>, EditError> {
        let since = self.known_heads(since)?;
        let mut actor = author.key().as_bytes().to_vec();
        actor.extend_from_slice(part);
        let actor = ActorId::from(actor);
        Ok(self
            .doc
            .get_changes(&since)
            .iter()
            .filter(|c| c.actor_id() == &actor)
            .max_by_key(|c| c.seq())
            .map(|c| to_hash(c.hash())))
    }

    /// `heads` as automerge's hashes, if this replica holds every one.
    fn known_heads(&self, heads: &[ChangeHash]) -> Result<Vec<automerge::ChangeHash>, EditError> {
        if heads.is_empty() {
            return Err(EditError::Stale("no version given"));
        }
        let heads: Vec<automerge::ChangeHash> = heads.iter().copied().map(from_hash).collect();
        if heads
            .iter()
            .all(|h| self.doc.get_change_meta_by_hash(h).is_some())
        {
            Ok(heads)
        } else {
            Err(EditError::Stale("a version this node does not hold"))
        }
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use orrery_protocol::SecretKey;

    use super::*;
    use crate::{CellKind, NewCell, Visibility};

    #[test]
    fn a_source_replaced_whole_comes_as_the_cell_not_as_splices_of_the_new_text() {
        let key = SecretKey::from_bytes(&[1; 32]).expect("key");
        let s = Session::with_session_part(key, [1; 16]);
        let (mut p, _) = Project::create(&s, "Timing", Visibility::Shared).expect("create");
        let nb = p.add_notebook(&s, "Residuals").expect("notebook");
        let cell = p
            .insert_cell(&s, &nb, 0, NewCell::new(CellKind::Code, "old text"))
            .expect("cell");
        let before = p.heads();
        // As a peer's change could: a new text object under the cell's source.
        let obj = p.cell_obj(&nb, &cell).expect("cell");
        let mut tx = p.doc.transaction();
        let text = tx.put_object(&obj, K_SOURCE, ObjType::Text).expect("put");
        tx.splice_text(&text, 0, 0, "new").expect("splice");
        tx.commit();
        let d = p.notebook_delta(&nb, &before).expect("delta");
        assert!(d.texts.is_empty(), "{:?}", d.texts);
        assert_eq!(d.cells.len(), 1);
        assert_eq!(d.cells[0].source, "new");
    }
}
