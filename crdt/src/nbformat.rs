//! Jupyter notebook (nbformat 4) import and export.
//!
//! Import keeps every cell's id (when the file has valid, unique ids), kind, source, outputs,
//! execution count, metadata and attachments, and the notebook's metadata. Export writes nbformat
//! 4.5 or later (cell ids are required from 4.5 on), one space of indentation and sources split
//! into lines, as Jupyter itself writes files. A file from before 4.5 gains cell ids on export.
//!
//! Every import makes a new notebook with a fresh random id, so two people importing the same
//! file get two notebooks, never one merged history. A newer version of the file is brought into
//! an existing notebook by [`Project::update_from_ipynb`] ([`update`]), which applies only the
//! difference between the file and the notebook as it was at the file's base ([`base`]).
//!
//! Export writes where the file stands in the history into the notebook metadata, as
//! `metadata.orrery = {"notebook": "<notebook id>", "heads": ["<change hash>", …]}` (metadata
//! keys are free-form in nbformat, and Jupyter keeps them when it saves). Parsing takes that key
//! out again ([`ParsedNotebook::origin`]): it is never part of a notebook's own metadata.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::ids::{CellId, NotebookId};
use crate::outputs::{
    Blob, BlobRef, BlobSource, NoBlobs, STORED_OUTPUT_TYPE, externalise_all, resolve,
};
use crate::project::{EditError, NewCell, Notebook, Project};
use crate::schema::CellKind;
use crate::session::Session;

/// Largest notebook file accepted, in bytes.
pub const MAX_IPYNB_BYTES: usize = 256 * 1024 * 1024;

/// Why a notebook file was refused.
#[derive(Debug, thiserror::Error)]
pub enum NbformatError {
    /// The file is larger than [`MAX_IPYNB_BYTES`].
    #[error("the notebook is {len} bytes, above the limit of {MAX_IPYNB_BYTES}")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// The file is not JSON.
    #[error("the notebook is not valid JSON (line {line}, column {column})")]
    NotJson {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// The file is JSON but not an nbformat 4 notebook.
    #[error("not an nbformat 4 notebook: {0}")]
    NotNotebook(String),
    /// The edit was refused.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// No session could be started for changes made on a branch of the history.
    #[error("could not start an editing session for the update; try again")]
    Session(#[source] orrery_protocol::KeyError),
}

pub mod base;
mod matching;
mod splice;
pub mod update;

pub use base::FileOrigin;
pub use update::UpdateSummary;

fn not_nb(msg: impl Into<String>) -> NbformatError {
    NbformatError::NotNotebook(msg.into())
}

/// A notebook file, parsed and checked, ready to import.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedNotebook {
    /// Notebook metadata (a JSON object), without Orrery's own `orrery` key.
    pub metadata: Value,
    /// Where the file came from, if Orrery exported it (its `metadata.orrery`).
    pub origin: Option<FileOrigin>,
    /// The file's nbformat minor version.
    pub nbformat_minor: i64,
    /// Its cells in order.
    pub cells: Vec<NewCell>,
    /// The ids of `cells` that the file did not give: the file had no id for the cell (nbformat
    /// before 4.5), an invalid one, or one an earlier cell already had. Such a cell has no
    /// identity of its own; [`Project::update_from_ipynb`] matches it by position and content.
    pub invented: BTreeSet<CellId>,
    /// Outputs too large to keep in the document, which `cells` name by stubs (see
    /// [`crate::outputs`]).
    pub blobs: Vec<Blob>,
}

fn source_text(v: Option<&Value>, at: usize) -> Result<String, NbformatError> {
    match v {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| {
                p.as_str()
                    .ok_or_else(|| not_nb(format!("cell {at}: source lines must be strings")))
            })
            .collect(),
        Some(_) => Err(not_nb(format!(
            "cell {at}: source must be a string or a list"
        ))),
    }
}

/// Parses and checks a notebook file.
pub fn parse(bytes: &[u8]) -> Result<ParsedNotebook, NbformatError> {
    if bytes.len() > MAX_IPYNB_BYTES {
        return Err(NbformatError::TooLarge { len: bytes.len() });
    }
    let root: Value = serde_json::from_slice(bytes).map_err(|e| NbformatError::NotJson {
        line: e.line(),
        column: e.column(),
    })?;
    let obj = root
        .as_object()
        .ok_or_else(|| not_nb("the top level is not an object"))?;
    match obj.get("nbformat").and_then(Value::as_i64) {
        Some(4) => {}
        Some(v) => {
            return Err(not_nb(format!(
                "nbformat {v} is not supported; convert to 4 with `jupyter nbconvert --to notebook`"
            )));
        }
        None => return Err(not_nb("the `nbformat` field is missing")),
    }
    let minor = obj
        .get("nbformat_minor")
        .and_then(Value::as_i64)
        .ok_or_else(|| not_nb("the `nbformat_minor` field is missing"))?;
    let mut metadata = match obj.get("metadata") {
        Some(m @ Value::Object(_)) => m.clone(),
        None => json!({}),
        Some(_) => return Err(not_nb("`metadata` is not an object")),
    };
    let origin = FileOrigin::take(&mut metadata);
    let cells_json = obj
        .get("cells")
        .and_then(Value::as_array)
        .ok_or_else(|| not_nb("`cells` is missing or not a list"))?;
    let mut seen = std::collections::HashSet::new();
    let mut invented = BTreeSet::new();
    let mut blobs = Vec::new();
    let mut cells = Vec::with_capacity(cells_json.len());
    for (i, c) in cells_json.iter().enumerate() {
        let c = c
            .as_object()
            .ok_or_else(|| not_nb(format!("cell {i} is not an object")))?;
        let kind: CellKind = c
            .get("cell_type")
            .and_then(Value::as_str)
            .ok_or_else(|| not_nb(format!("cell {i} has no cell_type")))?
            .parse()
            .map_err(|e| not_nb(format!("cell {i}: {e}")))?;
        let id = c
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<CellId>().ok())
            .filter(|id| !seen.contains(id))
            .unwrap_or_else(|| {
                let id = CellId::random();
                invented.insert(id.clone());
                id
            });
        seen.insert(id.clone());
        let source = source_text(c.get("source"), i)?;
        let cell_meta = match c.get("metadata") {
            Some(m @ Value::Object(_)) => m.clone(),
            None => json!({}),
            Some(_) => return Err(not_nb(format!("cell {i}: metadata is not an object"))),
        };
        let outputs = match (kind, c.get("outputs")) {
            (CellKind::Code, Some(Value::Array(outs))) => {
                for o in outs {
                    match o.get("output_type").and_then(Value::as_str) {
                        None => {
                            return Err(not_nb(format!("cell {i}: an output has no output_type")));
                        }
                        Some(STORED_OUTPUT_TYPE) => {
                            return Err(not_nb(format!(
                                "cell {i}: the output type `{STORED_OUTPUT_TYPE}` is reserved"
                            )));
                        }
                        Some(_) => {}
                    }
                }
                externalise_all(outs, &mut blobs)
            }
            (CellKind::Code, None) => Vec::new(),
            (CellKind::Code, Some(_)) => {
                return Err(not_nb(format!("cell {i}: outputs is not a list")));
            }
            _ => Vec::new(),
        };
        let execution_count = c.get("execution_count").and_then(Value::as_i64);
        let attachments = c.get("attachments").filter(|a| a.is_object()).cloned();
        cells.push(NewCell {
            id,
            kind,
            source,
            outputs,
            execution_count,
            metadata: cell_meta,
            attachments,
        });
    }
    Ok(ParsedNotebook {
        metadata,
        origin,
        nbformat_minor: minor,
        cells,
        invented,
        blobs,
    })
}

impl Project {
    /// Imports a notebook file as a new notebook titled `title` (editors). The last change of
    /// the import records it as the base of later versions of the file ([`base`]); an origin
    /// the file names (it was exported from some notebook) is not the new notebook's.
    pub fn import_ipynb(
        &mut self,
        session: &Session,
        bytes: &[u8],
        title: &str,
    ) -> Result<NotebookId, NbformatError> {
        let mut parsed = parse(bytes)?;
        self.new_blobs.append(&mut parsed.blobs);
        let id = NotebookId::random();
        let lineage = base::Lineage::Import;
        self.add_notebook_recording(
            session,
            id.clone(),
            title,
            parsed.metadata,
            parsed.nbformat_minor,
            &parsed.cells,
            Some((&lineage.key(), &lineage.value(&[]))),
        )?;
        Ok(id)
    }

    /// Exports a notebook as nbformat 4 JSON text, with the document's current heads as the
    /// file's origin in `metadata.orrery` (see the module docs), so that the file, edited and
    /// brought back by [`Project::update_from_ipynb`], is applied relative to this state.
    ///
    /// Fails with [`EditError::Blob`] if the notebook has a stored output; see
    /// [`Project::export_ipynb_with`].
    pub fn export_ipynb(&self, nb: &NotebookId) -> Result<String, EditError> {
        self.export_ipynb_with(nb, &NoBlobs)
    }

    /// [`Project::export_ipynb`], reading stored outputs from `blobs` and checking each against
    /// its hash.
    pub fn export_ipynb_with(
        &self,
        nb: &NotebookId,
        blobs: &dyn BlobSource,
    ) -> Result<String, EditError> {
        let mut notebook = self.notebook(nb)?;
        for cell in &mut notebook.cells {
            if cell.outputs.iter().any(|o| BlobRef::from_stub(o).is_some()) {
                cell.outputs = resolve(&cell.outputs, blobs)?;
            }
        }
        let origin = FileOrigin {
            notebook: nb.clone(),
            heads: self.heads(),
        };
        if let Value::Object(m) = &mut notebook.metadata {
            m.insert(base::K_ORRERY_METADATA.into(), origin.to_json());
        }
        Ok(to_ipynb(&notebook))
    }
}

fn lines(source: &str) -> Value {
    Value::Array(
        source
            .split_inclusive('\n')
            .map(|l| Value::String(l.to_string()))
            .collect(),
    )
}

/// Renders a notebook as nbformat 4 JSON text, the way Jupyter writes it, without an origin
/// (see [`Project::export_ipynb`]).
pub fn to_ipynb(nb: &Notebook) -> String {
    let cells: Vec<Value> = nb
        .cells
        .iter()
        .map(|cell| {
            // Keys in sorted order, as nbformat writes them.
            let mut c = Map::new();
            if let Some(att) = &cell.attachments {
                c.insert("attachments".into(), att.clone());
            }
            c.insert("cell_type".into(), Value::String(cell.kind.as_str().into()));
            if cell.kind == CellKind::Code {
                c.insert(
                    "execution_count".into(),
                    cell.execution_count.map_or(Value::Null, Value::from),
                );
            }
            c.insert("id".into(), Value::String(cell.id.to_string()));
            c.insert("metadata".into(), cell.metadata.clone());
            if cell.kind == CellKind::Code {
                c.insert("outputs".into(), Value::Array(cell.outputs.clone()));
            }
            c.insert("source".into(), lines(&cell.source));
            Value::Object(c)
        })
        .collect();
    let mut root = Map::new();
    root.insert("cells".into(), Value::Array(cells));
    root.insert("metadata".into(), nb.metadata.clone());
    root.insert("nbformat".into(), Value::from(4));
    root.insert(
        "nbformat_minor".into(),
        Value::from(nb.nbformat_minor.max(5)),
    );
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising a Value into a Vec cannot fail.
    let _ = serde::Serialize::serialize(&Value::Object(root), &mut ser);
    let mut text = String::from_utf8(out).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_notebook() {
        assert!(matches!(parse(b"{"), Err(NbformatError::NotJson { .. })));
        assert!(matches!(parse(b"[]"), Err(NbformatError::NotNotebook(_))));
        assert!(matches!(
            parse(br#"{"nbformat": 3, "nbformat_minor": 0, "cells": []}"#),
            Err(NbformatError::NotNotebook(_))
        ));
        assert!(matches!(
            parse(br#"{"nbformat": 4, "nbformat_minor": 5, "cells": [{"cell_type": "weird"}]}"#),
            Err(NbformatError::NotNotebook(_))
        ));
    }

    #[test]
    fn duplicate_and_invalid_ids_are_replaced() {
        let nb = parse(
            br#"{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
                {"cell_type": "markdown", "id": "a", "metadata": {}, "source": "x"},
                {"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["y\n", "z"]},
                {"cell_type": "markdown", "id": "not valid!", "metadata": {}, "source": ""}]}"#,
        )
        .expect("parses");
        assert_eq!(nb.cells[0].id.as_str(), "a");
        assert_ne!(nb.cells[1].id.as_str(), "a");
        assert_ne!(nb.cells[2].id.as_str(), "not valid!");
        assert_eq!(nb.cells[1].source, "y\nz");
        let invented: BTreeSet<CellId> = [nb.cells[1].id.clone(), nb.cells[2].id.clone()].into();
        assert_eq!(
            nb.invented, invented,
            "only the file's own valid, unique ids are real"
        );
    }
}
