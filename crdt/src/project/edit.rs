//! Editing a project: every edit is checked against the editor's role, then committed as one
//! automerge change.

use super::*;

impl Project {
    pub(crate) fn require(
        &self,
        session: &Session,
        need: Role,
        action: &'static str,
        heads: &[automerge::ChangeHash],
    ) -> Result<Option<Role>, EditError> {
        let role = match &self.role_memo {
            Some(m) if m.author == session.author() && m.heads == heads => m.role,
            _ => self.role_of(&session.author()),
        };
        if role.is_some_and(|r| r >= need) {
            Ok(role)
        } else {
            Err(EditError::NotPermitted {
                author: session.author(),
                action,
                role: role.map_or("none".into(), |r| r.to_string()),
            })
        }
    }

    /// Runs `f` in one transaction as `session`, after checking the role; commits one change.
    pub(crate) fn edit<T>(
        &mut self,
        session: &Session,
        need: Role,
        action: &'static str,
        f: impl FnOnce(&mut Transaction<'_>, &Roots) -> Result<T, EditError>,
    ) -> Result<T, EditError> {
        self.edit_at(session, need, action, None, f)
    }

    /// Like [`Project::edit`], but the change is made as if at `base` (earlier heads): it
    /// depends on them only, and merges with whatever happened since as a concurrent change.
    /// The role is checked as it is now. The session's own changes must all be in `base`'s
    /// past (else automerge would make the change under another actor).
    pub(crate) fn edit_at<T>(
        &mut self,
        session: &Session,
        need: Role,
        action: &'static str,
        base: Option<&[automerge::ChangeHash]>,
        f: impl FnOnce(&mut Transaction<'_>, &Roots) -> Result<T, EditError>,
    ) -> Result<T, EditError> {
        let heads = self.doc.get_heads();
        let role = self.require(session, need, action, &heads)?;
        // Borrowed, not cloned: the transaction borrows only `doc`.
        let roots = self.roots.as_ref().ok_or(EditError::Empty)?;
        if self.doc.get_actor() != session.actor() {
            self.doc.set_actor(session.actor().clone());
        }
        let first = self
            .unsealed
            .get(session.actor())
            .is_none_or(|u| u.hashes.is_empty());
        let before = if first { heads } else { Vec::new() };
        let mut tx = match base {
            None => self.doc.transaction(),
            Some(base) => self
                .doc
                .transaction_at(automerge::PatchLog::null(), base)
                .map_err(|_| EditError::Malformed("an isolated transaction was refused"))?,
        };
        match f(&mut tx, roots) {
            Ok(value) => {
                let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now()));
                if let Some(hash) = hash {
                    // A local change depends on all heads, so it is now the only one (unless
                    // it was made at earlier heads).
                    let now = match base {
                        None => vec![hash],
                        Some(_) => self.doc.get_heads(),
                    };
                    self.role_memo = (need < Role::Owner).then(|| RoleMemo {
                        author: session.author(),
                        role,
                        heads: now,
                    });
                    let unsealed = match self.unsealed.get_mut(session.actor()) {
                        Some(u) => u,
                        None => self.unsealed.entry(session.actor().clone()).or_default(),
                    };
                    if first {
                        unsealed.since = before;
                    }
                    unsealed.hashes.push(to_hash(hash));
                    unsealed.own = Some(to_hash(hash));
                    // A local removal or demotion takes out, at once, the changes it contests
                    // that this replica had applied (see [`crate::contest`]).
                    if need == Role::Owner {
                        self.settle().map_err(|_| {
                            EditError::Malformed("the history could not be judged again")
                        })?;
                    }
                }
                Ok(value)
            }
            Err(e) => {
                tx.rollback();
                Err(e)
            }
        }
    }

    /// Sets the title (editors).
    pub fn set_title(&mut self, session: &Session, title: &str) -> Result<(), EditError> {
        self.edit(session, Role::Editor, "change the title", |tx, _| {
            tx.put(automerge::ROOT, K_TITLE, title)?;
            Ok(())
        })
    }

    /// Replaces the description with `text`, as a minimal text edit (editors).
    pub fn set_description(&mut self, session: &Session, text: &str) -> Result<(), EditError> {
        self.edit(
            session,
            Role::Editor,
            "change the description",
            |tx, roots| {
                tx.update_text(&roots.description, text)?;
                Ok(())
            },
        )
    }

    /// Sets who may see the project (owners).
    pub fn set_visibility(&mut self, session: &Session, v: Visibility) -> Result<(), EditError> {
        self.edit(session, Role::Owner, "change visibility", |tx, _| {
            tx.put(automerge::ROOT, K_VISIBILITY, v.as_str())?;
            Ok(())
        })
    }

    /// Adds a member or changes their role (owners). Demoting the last owner is refused.
    pub fn set_member(
        &mut self,
        session: &Session,
        author: AuthorId,
        role: Role,
    ) -> Result<(), EditError> {
        if role != Role::Owner {
            self.check_not_last_owner(&author)?;
        }
        self.edit(session, Role::Owner, "change members", |tx, roots| {
            tx.put(&roots.members, author.to_string(), role.as_str())?;
            Ok(())
        })
    }

    /// Removes a member (owners). Removing the last owner is refused.
    pub fn remove_member(&mut self, session: &Session, author: AuthorId) -> Result<(), EditError> {
        self.check_not_last_owner(&author)?;
        self.edit(session, Role::Owner, "change members", |tx, roots| {
            tx.delete(&roots.members, author.to_string())?;
            Ok(())
        })
    }

    fn check_not_last_owner(&self, author: &AuthorId) -> Result<(), EditError> {
        if self.founder() == Some(*author) {
            return Err(EditError::Founder(*author));
        }
        let owners: Vec<AuthorId> = self
            .members()
            .into_iter()
            .filter(|m| m.role == Role::Owner)
            .map(|m| m.author)
            .collect();
        if owners == [*author] {
            return Err(EditError::LastOwner(*author));
        }
        Ok(())
    }

    /// Adds an empty notebook (editors).
    pub fn add_notebook(
        &mut self,
        session: &Session,
        title: &str,
    ) -> Result<NotebookId, EditError> {
        let id = NotebookId::random();
        self.add_notebook_with(session, id.clone(), title, serde_json::json!({}), 5, &[])?;
        Ok(id)
    }

    /// Adds a notebook with metadata and cells (editors): one change for the notebook, then
    /// the cells in changes of bounded size. Used by import.
    pub fn add_notebook_with(
        &mut self,
        session: &Session,
        id: NotebookId,
        title: &str,
        metadata: serde_json::Value,
        nbformat_minor: i64,
        cells: &[NewCell],
    ) -> Result<(), EditError> {
        self.add_notebook_recording(session, id, title, metadata, nbformat_minor, cells, None)
    }

    /// [`Project::add_notebook_with`], also putting `record` (a key and a string value) in the
    /// notebook's map with the last of its changes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_notebook_recording(
        &mut self,
        session: &Session,
        id: NotebookId,
        title: &str,
        metadata: serde_json::Value,
        nbformat_minor: i64,
        cells: &[NewCell],
        record: Option<(&str, &str)>,
    ) -> Result<(), EditError> {
        if self.notebook_obj(&id).is_ok() {
            return Err(EditError::DuplicateId(id.to_string()));
        }
        // Handed over even if an edit below fails: an unreferenced blob is harmless, a
        // reference to nothing is not.
        let cells = externalise_cells(cells, &mut self.new_blobs);
        let cells = &cells[..];
        let positions = position::spread(cells.len());
        let put_record = |tx: &mut Transaction<'_>, nb: &ObjId| -> Result<(), EditError> {
            if let Some((key, value)) = record {
                tx.put(nb, key, value)?;
            }
            Ok(())
        };
        self.edit(session, Role::Editor, "add notebooks", |tx, roots| {
            let nb = tx.put_object(&roots.notebooks, id.as_str(), ObjType::Map)?;
            tx.put(&nb, K_TITLE, title)?;
            tx.put(&nb, K_METADATA, metadata.to_string())?;
            tx.put(&nb, K_NBFORMAT_MINOR, nbformat_minor)?;
            tx.put_object(&nb, K_CELLS, ObjType::Map)?;
            if cells.is_empty() {
                put_record(tx, &nb)?;
            }
            Ok(())
        })?;
        // Cells go in changes of bounded size, so that no change nears the ingest limit.
        let nb_obj = self.notebook_obj(&id)?;
        let cells_obj = self.cells_obj(&id)?;
        let mut start = 0;
        while start < cells.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < cells.len()
                && (end == start || bytes + cell_size(&cells[end]) <= CHUNK_BYTES)
            {
                bytes += cell_size(&cells[end]);
                end += 1;
            }
            self.edit(session, Role::Editor, "add cells", |tx, _| {
                for (cell, pos) in cells[start..end].iter().zip(&positions[start..end]) {
                    write_cell(tx, &cells_obj, cell, pos)?;
                }
                if end == cells.len() {
                    put_record(tx, &nb_obj)?;
                }
                Ok(())
            })?;
            start = end;
        }
        Ok(())
    }

    /// Renames a notebook (editors).
    pub fn rename_notebook(
        &mut self,
        session: &Session,
        nb: &NotebookId,
        title: &str,
    ) -> Result<(), EditError> {
        let obj = self.notebook_obj(nb)?;
        self.edit(session, Role::Editor, "rename notebooks", |tx, _| {
            tx.put(&obj, K_TITLE, title)?;
            Ok(())
        })
    }

    /// Deletes a notebook (editors).
    pub fn delete_notebook(&mut self, session: &Session, nb: &NotebookId) -> Result<(), EditError> {
        self.notebook_obj(nb)?;
        self.edit(session, Role::Editor, "delete notebooks", |tx, roots| {
            tx.delete(&roots.notebooks, nb.as_str())?;
            Ok(())
        })
    }

    /// Position key for a new cell placed at `index` among the current cells.
    fn position_at(
        &self,
        nb: &NotebookId,
        index: usize,
        skip: Option<&CellId>,
    ) -> Result<String, EditError> {
        let order: Vec<(String, CellId, ObjId)> = self
            .ordered_cells(nb)?
            .into_iter()
            .filter(|(_, id, _)| Some(id) != skip)
            .collect();
        if index > order.len() {
            return Err(EditError::OutOfRange {
                what: "notebook",
                index,
                len: order.len(),
            });
        }
        let lo = index.checked_sub(1).map(|i| order[i].0.as_str());
        let hi = order.get(index).map(|c| c.0.as_str());
        Ok(position::between(lo, hi))
    }

    /// Inserts a cell at `index` (editors). Returns its id.
    pub fn insert_cell(
        &mut self,
        session: &Session,
        nb: &NotebookId,
        index: usize,
        cell: NewCell,
    ) -> Result<CellId, EditError> {
        let cells = self.cells_obj(nb)?;
        if self
            .get_obj(&cells, cell.id.as_str(), ObjType::Map)
            .is_some()
        {
            return Err(EditError::DuplicateId(cell.id.to_string()));
        }
        let pos = self.position_at(nb, index, None)?;
        let id = cell.id.clone();
        let mut cell = cell;
        cell.outputs = externalise_all(&cell.outputs, &mut self.new_blobs);
        self.edit(session, Role::Editor, "add cells", |tx, _| {
            write_cell(tx, &cells, &cell, &pos)?;
            Ok(())
        })?;
        Ok(id)
    }

    /// Moves a cell to `index` in the order without it (editors).
    pub fn move_cell(
        &mut self,
        session: &Session,
        nb: &NotebookId,
        cell: &CellId,
        index: usize,
    ) -> Result<(), EditError> {
        let obj = self.cell_obj(nb, cell)?;
        let pos = self.position_at(nb, index, Some(cell))?;
        self.edit(session, Role::Editor, "move cells", |tx, _| {
            tx.put(&obj, K_POS, pos)?;
            Ok(())
        })
    }

    /// Deletes a cell (editors).
    pub fn delete_cell(
        &mut self,
        session: &Session,
        nb: &NotebookId,
        cell: &CellId,
    ) -> Result<(), EditError> {
        self.cell_obj(nb, cell)?;
        let cells = self.cells_obj(nb)?;
        self.edit(session, Role::Editor, "delete cells", |tx, _| {
            tx.delete(&cells, cell.as_str())?;
            Ok(())
        })
    }

    /// The source text object of a cell, for repeated edits.
    pub fn source_obj(&self, nb: &NotebookId, cell: &CellId) -> Result<ObjId, EditError> {
        let obj = self.cell_obj(nb, cell)?;
        self.get_obj(&obj, K_SOURCE, ObjType::Text)
            .ok_or(EditError::Malformed("cell without source text"))
    }

    /// Deletes `delete` characters at `pos` in a cell's source and inserts `insert` there
    /// (editors). Positions count Unicode code points.
    pub fn splice_source(
        &mut self,
        session: &Session,
        nb: &NotebookId,
        cell: &CellId,
        pos: usize,
        delete: usize,
        insert: &str,
    ) -> Result<(), EditError> {
        let text = self.source_obj(nb, cell)?;
        self.splice_text(session, &text, pos, delete, insert)
    }

    /// Like [`Project::splice_source`] on a text object found with [`Project::source_obj`].
    pub fn splice_text(
        &mut self,
        session: &Session,
        text: &ObjId,
        pos: usize,
        delete: usize,
        insert: &str,
    ) -> Result<(), EditError> {
        let len = self.doc.length(text);
        if pos > len || delete > len - pos {
            return Err(EditError::OutOfRange {
                what: "source",
                index: pos + delete,
                len,
            });
        }
        self.edit(session, Role::Editor, "edit cells", |tx, _| {
            tx.splice_text(text, pos, delete as isize, insert)?;
            Ok(())
        })
    }

    /// Replaces a cell's source with `text` as a minimal text edit (editors).
    pub fn set_source(
        &mut self,
        session: &Session,
        nb: &NotebookId,
        cell: &CellId,
        text: &str,
    ) -> Result<(), EditError> {
        let obj = self.source_obj(nb, cell)?;
        self.edit(session, Role::Editor, "edit cells", |tx, _| {
            tx.update_text(&obj, text)?;
            Ok(())
        })
    }

    /// Replaces a cell's outputs and execution metadata (editors).
    pub fn set_outputs(
        &mut self,
        session: &Session,
        nb: &NotebookId,
        cell: &CellId,
        outputs: &[serde_json::Value],
        execution_count: Option<i64>,
        execution: Option<&serde_json::Value>,
    ) -> Result<(), EditError> {
        let obj = self.cell_obj(nb, cell)?;
        let outputs = externalise_all(outputs, &mut self.new_blobs);
        self.edit(session, Role::Editor, "set outputs", |tx, _| {
            write_outputs(tx, &obj, &outputs, execution_count)?;
            if let Some(ex) = execution {
                tx.put(&obj, K_EXECUTION, ex.to_string())?;
            }
            Ok(())
        })
    }

    /// Replaces a cell's metadata (editors).
    pub fn set_cell_metadata(
        &mut self,
        session: &Session,
        nb: &NotebookId,
        cell: &CellId,
        metadata: &serde_json::Value,
    ) -> Result<(), EditError> {
        let obj = self.cell_obj(nb, cell)?;
        self.edit(session, Role::Editor, "edit cells", |tx, _| {
            tx.put(&obj, K_METADATA, metadata.to_string())?;
            Ok(())
        })
    }

    /// Adds a reference to a dataset held by a node (editors).
    pub fn add_dataset_ref(
        &mut self,
        session: &Session,
        node: &str,
        dataset: &str,
        checksum: &str,
    ) -> Result<DatasetRefId, EditError> {
        let id = DatasetRefId::random();
        self.edit(session, Role::Editor, "reference datasets", |tx, roots| {
            let obj = tx.put_object(&roots.datasets, id.as_str(), ObjType::Map)?;
            tx.put(&obj, K_NODE, node)?;
            tx.put(&obj, K_DATASET, dataset)?;
            tx.put(&obj, K_CHECKSUM, checksum)?;
            Ok(())
        })?;
        Ok(id)
    }

    /// Removes a dataset reference (editors).
    pub fn remove_dataset_ref(
        &mut self,
        session: &Session,
        id: &DatasetRefId,
    ) -> Result<(), EditError> {
        self.edit(session, Role::Editor, "reference datasets", |tx, roots| {
            tx.delete(&roots.datasets, id.as_str())?;
            Ok(())
        })
    }

    /// Adds a comment (editors) on `target`: `project`, `notebook/<id>` or
    /// `cell/<notebook>/<cell>`.
    pub fn comment(
        &mut self,
        session: &Session,
        target: &str,
        text: &str,
    ) -> Result<CommentId, EditError> {
        let id = CommentId::random();
        self.edit(session, Role::Editor, "comment", |tx, roots| {
            let obj = tx.put_object(&roots.comments, id.as_str(), ObjType::Map)?;
            tx.put(&obj, K_TARGET, target)?;
            tx.put(&obj, K_TEXT, text)?;
            tx.put(&obj, K_CREATED, now())?;
            Ok(())
        })?;
        Ok(id)
    }
}

/// Writes a cell's outputs (already externalised) as a new list, and its execution count.
pub(crate) fn write_outputs(
    tx: &mut impl Transactable,
    cell: &ObjId,
    outputs: &[serde_json::Value],
    execution_count: Option<i64>,
) -> Result<(), automerge::AutomergeError> {
    let list = tx.put_object(cell, K_OUTPUTS, ObjType::List)?;
    for (i, out) in outputs.iter().enumerate() {
        tx.insert(&list, i, to_scalar(out))?;
    }
    match execution_count {
        Some(n) => tx.put(cell, K_EXEC_COUNT, n),
        None => tx.put(cell, K_EXEC_COUNT, ScalarValue::Null),
    }
}

/// Content bytes per change when many cells are written at once.
pub(crate) const CHUNK_BYTES: usize = 1024 * 1024;

pub(crate) fn cell_size(cell: &NewCell) -> usize {
    cell.source.len()
        + cell
            .outputs
            .iter()
            .map(|o| o.to_string().len())
            .sum::<usize>()
}

/// `cells` with their large outputs externalised (see [`crate::outputs`]).
pub(crate) fn externalise_cells(cells: &[NewCell], blobs: &mut Vec<Blob>) -> Vec<NewCell> {
    cells
        .iter()
        .map(|c| NewCell {
            outputs: externalise_all(&c.outputs, blobs),
            ..c.clone()
        })
        .collect()
}

/// Writes a new cell whose outputs are already externalised.
pub(crate) fn write_cell(
    tx: &mut Transaction<'_>,
    cells: &ObjId,
    cell: &NewCell,
    pos: &str,
) -> Result<(), EditError> {
    let obj = tx.put_object(cells, cell.id.as_str(), ObjType::Map)?;
    tx.put(&obj, K_KIND, cell.kind.as_str())?;
    tx.put(&obj, K_POS, pos)?;
    let text = tx.put_object(&obj, K_SOURCE, ObjType::Text)?;
    if !cell.source.is_empty() {
        tx.splice_text(&text, 0, 0, &cell.source)?;
    }
    tx.put(&obj, K_METADATA, cell.metadata.to_string())?;
    if let Some(att) = &cell.attachments {
        tx.put(&obj, K_ATTACHMENTS, att.to_string())?;
    }
    if cell.kind == CellKind::Code {
        let list = tx.put_object(&obj, K_OUTPUTS, ObjType::List)?;
        for (i, out) in cell.outputs.iter().enumerate() {
            tx.insert(&list, i, to_scalar(out))?;
        }
        match cell.execution_count {
            Some(n) => tx.put(&obj, K_EXEC_COUNT, n)?,
            None => tx.put(&obj, K_EXEC_COUNT, ScalarValue::Null)?,
        }
    }
    Ok(())
}
