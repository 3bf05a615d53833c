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
//! What nbformat allows but Orrery does not model is kept, for forward compatibility: keys of the
//! notebook and of a cell that nbformat 4 does not define, and cells of a type other than
//! `code`, `markdown` and `raw` (kept as raw cells that remember their type). They travel in the
//! metadata under [`K_KEPT`] and are written back in place on export, unchanged. Metadata and
//! outputs may nest up to [`crate::json::MAX_JSON_DEPTH`] levels.
//!
//! Export writes where the file stands in the history into the notebook metadata, as
//! `metadata.orrery = {"notebook": "<notebook id>", "heads": ["<change hash>", …]}` (metadata
//! keys are free-form in nbformat, and Jupyter keeps them when it saves). Parsing takes that key
//! out again ([`ParsedNotebook::origin`]): it is never part of a notebook's own metadata.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::ids::{CellId, NotebookId};
use crate::outputs::{
    Blob, BlobRef, BlobSource, NoBlobs, STORED_LIST_TYPE, STORED_OUTPUT_TYPE, externalise_all,
    resolve,
};
use crate::project::{EditError, NewCell, Notebook, Project};
use crate::schema::CellKind;
use crate::session::Session;

/// Largest notebook file accepted, in bytes.
pub const MAX_IPYNB_BYTES: usize = 256 * 1024 * 1024;

/// The metadata key (of the notebook, or of a cell) under which what Orrery does not model is
/// kept: the keys nbformat 4 does not define, and `cell_type` for a cell of another type. A file
/// whose metadata already holds it is refused.
pub const K_KEPT: &str = "orrery:kept";

/// The keys of a notebook that nbformat 4 defines.
const NOTEBOOK_KEYS: &[&str] = &["cells", "metadata", "nbformat", "nbformat_minor"];

/// The keys of a cell that Orrery models.
const CELL_KEYS: &[&str] = &[
    "attachments",
    "cell_type",
    "execution_count",
    "id",
    "metadata",
    "outputs",
    "source",
];

/// Why a notebook file was refused.
#[derive(Debug, thiserror::Error)]
pub enum NbformatError {
    /// The file is larger than [`MAX_IPYNB_BYTES`].
    #[error("the notebook is {len} bytes, above the limit of {MAX_IPYNB_BYTES}")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// The file nests arrays and objects deeper than [`crate::json::MAX_JSON_DEPTH`].
    #[error(
        "the notebook nests JSON more than {} levels deep, beyond what this node accepts",
        crate::json::MAX_JSON_DEPTH
    )]
    TooDeep,
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
    /// The file is as near to two different states of the notebook's history, so where it was
    /// derived from cannot be told (see [`base`]).
    #[error(
        "the file cannot be placed in the notebook's history: it differs as much from two versions of it that differ from each other. Export the notebook again, make your edits in that export, and bring it back"
    )]
    AmbiguousBase,
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

/// A cell whose id in the file could not be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRepair {
    /// The cell's position in the file, from 0.
    pub index: usize,
    /// The id the file gave, if any.
    pub was: Option<String>,
    /// Why it could not be kept.
    pub why: &'static str,
    /// The id it was given.
    pub now: CellId,
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
    /// What was wrong with the id of each cell in `invented`, in file order, for the user.
    pub repairs: Vec<IdRepair>,
    /// Outputs too large to keep in the document, which `cells` name by stubs (see
    /// [`crate::outputs`]).
    pub blobs: Vec<Blob>,
}

/// Moves the keys of `object` that are not `modelled` (and `cell_type`, for a cell of another
/// type) into `metadata[K_KEPT]`. Fails if the metadata already holds that key.
fn keep(
    metadata: &mut Value,
    object: &Map<String, Value>,
    modelled: &[&str],
    other_type: Option<&str>,
) -> Result<(), ()> {
    let Value::Object(meta) = metadata else {
        return Ok(());
    };
    if meta.contains_key(K_KEPT) {
        return Err(());
    }
    let mut kept: Map<String, Value> = object
        .iter()
        .filter(|(k, _)| !modelled.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(t) = other_type {
        kept.insert("cell_type".into(), Value::String(t.into()));
    }
    if !kept.is_empty() {
        meta.insert(K_KEPT.into(), Value::Object(kept));
    }
    Ok(())
}

/// Takes `metadata[K_KEPT]` out again, for export.
fn unkeep(metadata: &Value) -> (Value, Map<String, Value>) {
    let mut metadata = metadata.clone();
    let kept = match metadata.as_object_mut().and_then(|m| m.remove(K_KEPT)) {
        Some(Value::Object(kept)) => kept,
        _ => Map::new(),
    };
    (metadata, kept)
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
    let root: Value = crate::json::parse(bytes).map_err(|e| match e {
        crate::json::DeepJsonError::TooDeep => NbformatError::TooDeep,
        crate::json::DeepJsonError::Invalid { line, column } => {
            NbformatError::NotJson { line, column }
        }
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
    keep(&mut metadata, obj, NOTEBOOK_KEYS, None).map_err(|()| {
        not_nb(format!(
            "the notebook metadata holds `{K_KEPT}`, which is reserved"
        ))
    })?;
    let cells_json = obj
        .get("cells")
        .and_then(Value::as_array)
        .ok_or_else(|| not_nb("`cells` is missing or not a list"))?;
    let mut seen = std::collections::HashSet::new();
    let mut invented = BTreeSet::new();
    let mut repairs = Vec::new();
    let mut blobs = Vec::new();
    let mut cells = Vec::with_capacity(cells_json.len());
    for (i, c) in cells_json.iter().enumerate() {
        let c = c
            .as_object()
            .ok_or_else(|| not_nb(format!("cell {i} is not an object")))?;
        let cell_type = c
            .get("cell_type")
            .and_then(Value::as_str)
            .ok_or_else(|| not_nb(format!("cell {i} has no cell_type")))?;
        // A type nbformat may define later is kept as a raw cell that remembers its type.
        let (kind, other_type) = match cell_type.parse::<CellKind>() {
            Ok(kind) => (kind, None),
            Err(_) => (CellKind::Raw, Some(cell_type)),
        };
        let given = c.get("id").and_then(Value::as_str);
        let id = match given.map(|s| s.parse::<CellId>()) {
            Some(Ok(id)) if !seen.contains(&id) => id,
            other => {
                let id = CellId::random();
                invented.insert(id.clone());
                repairs.push(IdRepair {
                    index: i,
                    was: given.map(str::to_owned),
                    why: match other {
                        None => "the file gives it no id",
                        Some(Ok(_)) => "an earlier cell has the same id",
                        Some(Err(_)) => "its id is not a valid nbformat cell id",
                    },
                    now: id.clone(),
                });
                id
            }
        };
        seen.insert(id.clone());
        let source = source_text(c.get("source"), i)?;
        let mut cell_meta = match c.get("metadata") {
            Some(m @ Value::Object(_)) => m.clone(),
            None => json!({}),
            Some(_) => return Err(not_nb(format!("cell {i}: metadata is not an object"))),
        };
        // A cell of another type keeps everything but what every cell has.
        let modelled: &[&str] = match other_type {
            Some(_) => &["cell_type", "id", "metadata", "source"],
            None => CELL_KEYS,
        };
        keep(&mut cell_meta, c, modelled, other_type).map_err(|()| {
            not_nb(format!(
                "cell {i}: its metadata holds `{K_KEPT}`, which is reserved"
            ))
        })?;
        let outputs = match (kind, c.get("outputs")) {
            (CellKind::Code, Some(Value::Array(outs))) => {
                for o in outs {
                    match o.get("output_type").and_then(Value::as_str) {
                        None => {
                            return Err(not_nb(format!("cell {i}: an output has no output_type")));
                        }
                        Some(t @ (STORED_OUTPUT_TYPE | STORED_LIST_TYPE)) => {
                            return Err(not_nb(format!(
                                "cell {i}: the output type `{t}` is reserved"
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
        repairs,
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
        self.import_parsed(session, parse(bytes)?, title)
    }

    /// [`Project::import_ipynb`] of a file already parsed (to report its [`IdRepair`]s first).
    pub fn import_parsed(
        &mut self,
        session: &Session,
        mut parsed: ParsedNotebook,
        title: &str,
    ) -> Result<NotebookId, NbformatError> {
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
        self.export_ipynb_as(nb, blobs, true)
    }

    /// [`Project::export_ipynb_with`]; without `origin`, the file does not name where it came
    /// from (`metadata.orrery`): a clean file for publishing, which a later update takes as a
    /// version of the imported file rather than of this export.
    pub fn export_ipynb_as(
        &self,
        nb: &NotebookId,
        blobs: &dyn BlobSource,
        origin: bool,
    ) -> Result<String, EditError> {
        let mut notebook = self.notebook(nb)?;
        for cell in &mut notebook.cells {
            if cell
                .outputs
                .iter()
                .any(|o| BlobRef::from_stub(o).is_some() || BlobRef::from_list_stub(o).is_some())
            {
                cell.outputs = resolve(&cell.outputs, blobs)?;
            }
        }
        if origin && let Value::Object(m) = &mut notebook.metadata {
            let origin = FileOrigin {
                notebook: nb.clone(),
                heads: self.heads(),
            };
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
            let (metadata, kept) = unkeep(&cell.metadata);
            // Keys in sorted order, as nbformat writes them.
            let mut c = std::collections::BTreeMap::new();
            if let Some(att) = &cell.attachments {
                c.insert("attachments".to_owned(), att.clone());
            }
            c.insert(
                "cell_type".to_owned(),
                Value::String(cell.kind.as_str().into()),
            );
            if cell.kind == CellKind::Code {
                c.insert(
                    "execution_count".to_owned(),
                    cell.execution_count.map_or(Value::Null, Value::from),
                );
            }
            c.insert("id".to_owned(), Value::String(cell.id.to_string()));
            c.insert("metadata".to_owned(), metadata);
            if cell.kind == CellKind::Code {
                c.insert("outputs".to_owned(), Value::Array(cell.outputs.clone()));
            }
            c.insert("source".to_owned(), lines(&cell.source));
            // What the file had that Orrery does not model goes back as it was (a cell of
            // another type gets its type back).
            c.extend(kept);
            Value::Object(c.into_iter().collect())
        })
        .collect();
    let (metadata, kept) = unkeep(&nb.metadata);
    let mut root = std::collections::BTreeMap::new();
    root.insert("cells".to_owned(), Value::Array(cells));
    root.insert("metadata".to_owned(), metadata);
    root.insert("nbformat".to_owned(), Value::from(4));
    root.insert(
        "nbformat_minor".to_owned(),
        Value::from(nb.nbformat_minor.max(5)),
    );
    for (k, v) in kept {
        root.entry(k).or_insert(v);
    }
    let root: Map<String, Value> = root.into_iter().collect();
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
            parse(br#"{"nbformat": 4, "nbformat_minor": 5, "cells": [{"source": ""}]}"#),
            Err(NbformatError::NotNotebook(_))
        ));
    }

    #[test]
    fn a_cell_of_another_type_is_kept_as_raw_with_its_type() {
        let nb = parse(
            br#"{"nbformat": 4, "nbformat_minor": 99, "cells": [
                {"cell_type": "weird", "id": "w", "metadata": {"m": 1}, "source": "x", "extra": [1]}]}"#,
        )
        .expect("parses");
        assert_eq!(nb.cells[0].kind, CellKind::Raw);
        assert_eq!(
            nb.cells[0].metadata,
            json!({"m": 1, "orrery:kept": {"cell_type": "weird", "extra": [1]}})
        );
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
