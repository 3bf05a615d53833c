//! Live editing for an editor that holds no replica (a browser): it sends splices made against
//! the version it last saw; they are made as one change at that version, so they merge with
//! everything since as any concurrent edit does. What changed between two versions is told
//! back as splices of cell sources and whole cells.

use automerge::{Prop, patches::PatchAction};

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
            .filter(|t| !added.contains(&t.cell) && !delta.removed.contains(&t.cell))
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
