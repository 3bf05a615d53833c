//! Where a notebook file stands in the document's history: its base.
//!
//! [`Project::update_from_ipynb`] applies a file as the difference between the file and the
//! notebook *as it was at the file's base* (the document heads the file corresponds to), made on
//! a branch at those heads and then merged, so that what collaborators did since the base, which
//! this replica may already hold, merges with the file's edits instead of being taken for
//! something the file removed. The base of a file is, in this order:
//!
//! 1. For a file Orrery exported from this notebook (its `metadata.orrery` names this notebook
//!    and heads this replica holds, see [`FileOrigin`]): the change at which the notebook last
//!    matched a version of that export brought in by an update (the export's record, below), or
//!    else the heads the export names.
//! 2. For any other file (one Jupyter saved from the imported file, an export of another
//!    notebook, or an export naming heads this replica lacks): the change at which the notebook
//!    last matched such a file, brought in by its import or a later update (the import record).
//! 3. For a notebook with no import record (imported before records were kept, or created in
//!    Orrery): the current heads. The file is then compared with the notebook as it is now, and
//!    what others added since the file was saved counts as removed by the file.
//!
//! If the author could not edit at that base (they became an editor later), the change that
//! gave them their role is added to the base: changes made there would otherwise be refused by
//! every replica, which judges a change by the membership in its causal past. Whatever that
//! change's past adds beyond the file's base is then compared as in case 3.
//!
//! # Records
//!
//! A record is a key of the notebook's map, `file_base:import` or, for one export,
//! `file_base:<its heads in hex, joined by +>`, whose value (JSON, `{"file": [the export's
//! heads], "base": [the heads the update started from]}`) is written in the last change of the
//! import or update that brought the file in. The notebook
//! equals that file at *the change that wrote the record*, which is where a later version of the
//! same file starts from: so applying a file a second time changes nothing, and a file edited
//! again after an update brings in only its new edits. Writing the record in the update's own
//! last change (rather than naming heads in a change of its own) keeps an update one change.
//! A record is replaced only by a change that descends from it (an update from its own lineage
//! starts from the change that wrote it). An update writing an export record deletes the oldest
//! of those the notebook held at its base beyond [`MAX_EXPORT_RECORDS`]; the import record is
//! kept for good.
//!
//! # Limits
//!
//! * A file that names no base but is not a version of the imported file (an export whose
//!   metadata was stripped, or one written before exports named their base) is applied from the
//!   import record: text others typed after the import that the file contains is typed again,
//!   except in cells that already read as the file says.
//! * Two replicas updating from versions of the same file at the same time each write the
//!   lineage's record; one wins everywhere. Applying the losing side's file again later starts
//!   from the winner's update and can type its edits a second time.
//! * Branching copies the history up to the base (`Automerge::fork_at`), so an update whose base
//!   is not the current state costs time in proportion to the history's length.

use automerge::{ObjId, ReadDoc, ScalarValue, Value as AmValue};
use orrery_protocol::{AuthorId, ChangeHash};
use serde_json::{Value, json};

use crate::ids::NotebookId;
use crate::project::{EditError, Project, from_hash};
use crate::schema::{K_FILE_BASE, Role};

/// The notebook metadata key under which an export records where it came from.
pub(crate) const K_ORRERY_METADATA: &str = "orrery";

/// Most heads an export's origin may name; a file naming more is treated as having no origin.
const MAX_ORIGIN_HEADS: usize = 64;

/// Most export records a notebook keeps; writing one more deletes the oldest.
pub const MAX_EXPORT_RECORDS: usize = 8;

/// Where an exported notebook file came from, as its `metadata.orrery` says:
/// `{"notebook": "<notebook id>", "heads": ["<change hash hex>", …]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOrigin {
    /// The notebook exported.
    pub notebook: NotebookId,
    /// The document's heads when it was exported: the file is the notebook at these heads.
    pub heads: Vec<ChangeHash>,
}

impl FileOrigin {
    /// The origin as the JSON object export writes.
    pub(crate) fn to_json(&self) -> Value {
        let heads: Vec<String> = self.heads.iter().map(ToString::to_string).collect();
        json!({"notebook": self.notebook.as_str(), "heads": heads})
    }

    /// Takes `orrery` out of notebook metadata (the key is Orrery's own, never the notebook's)
    /// and returns the origin it names, if it is well-formed.
    pub(crate) fn take(metadata: &mut Value) -> Option<FileOrigin> {
        let value = metadata.as_object_mut()?.remove(K_ORRERY_METADATA)?;
        let notebook = value.get("notebook")?.as_str()?.parse().ok()?;
        let heads = value.get("heads")?.as_array()?;
        if heads.is_empty() || heads.len() > MAX_ORIGIN_HEADS {
            return None;
        }
        let heads = heads
            .iter()
            .map(|h| h.as_str()?.parse().ok())
            .collect::<Option<Vec<ChangeHash>>>()?;
        Some(FileOrigin { notebook, heads })
    }
}

/// The files whose last-applied state one record keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lineage {
    /// Files without an origin in this notebook: the imported file and its later versions.
    Import,
    /// Versions of one export of this notebook, named by the export's heads (sorted).
    Export(Vec<ChangeHash>),
}

impl Lineage {
    /// The notebook map key of its record.
    pub(crate) fn key(&self) -> String {
        match self {
            Lineage::Import => format!("{K_FILE_BASE}import"),
            Lineage::Export(heads) => {
                let hex: Vec<String> = heads.iter().map(ToString::to_string).collect();
                format!("{K_FILE_BASE}{}", hex.join("+"))
            }
        }
    }

    /// The value of its record, for a file applied from `base` (empty for an import).
    ///
    /// Naming the base also makes every record differ from the one it replaces (an update of a
    /// lineage starts from the change that wrote its record), which matters: automerge makes no
    /// operation for a put of the value a key already holds, and the writing change is the
    /// record's meaning.
    pub(crate) fn value(&self, base: &[automerge::ChangeHash]) -> String {
        let file: &[ChangeHash] = match self {
            Lineage::Import => &[],
            Lineage::Export(heads) => heads,
        };
        let file: Vec<String> = file.iter().map(ToString::to_string).collect();
        let base: Vec<String> = base.iter().map(ToString::to_string).collect();
        json!({ "file": file, "base": base }).to_string()
    }
}

/// Where a file is applied from.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    /// The heads to branch at (sorted).
    pub(crate) heads: Vec<automerge::ChangeHash>,
    /// The lineage whose record the update writes.
    pub(crate) lineage: Lineage,
}

impl Project {
    /// The base of a file with `origin` for notebook `nb`, edited by `author` (see the module
    /// docs for the order).
    pub(crate) fn file_base(
        &self,
        nb: &NotebookId,
        origin: Option<&FileOrigin>,
        author: &AuthorId,
    ) -> Result<Base, EditError> {
        let nb_obj = self.notebook_obj(nb)?;
        let lineage = match origin {
            Some(o) if &o.notebook == nb && o.heads.iter().all(|h| self.has_change(h)) => {
                let mut heads = o.heads.clone();
                heads.sort_unstable();
                heads.dedup();
                Lineage::Export(heads)
            }
            _ => Lineage::Import,
        };
        let mut heads = match (self.recorded(&nb_obj, &lineage), &lineage) {
            (Some(at), _) => vec![at],
            (None, Lineage::Export(heads)) => heads.iter().map(|h| from_hash(*h)).collect(),
            (None, Lineage::Import) => self.doc.get_heads(),
        };
        if !self.can_edit_at(author, &heads)
            && let Some(grant) = self.role_grant(author)
        {
            heads.push(grant);
        }
        heads.sort_unstable();
        heads.dedup();
        Ok(Base { heads, lineage })
    }

    /// The change that wrote `lineage`'s record in the notebook (object `nb_obj`), if any.
    fn recorded(&self, nb_obj: &ObjId, lineage: &Lineage) -> Option<automerge::ChangeHash> {
        match self.doc.get(nb_obj, lineage.key()) {
            Ok(Some((AmValue::Scalar(s), op))) if matches!(s.as_ref(), ScalarValue::Str(_)) => {
                self.doc.hash_for_opid(&op)
            }
            _ => None,
        }
    }

    /// Whether `author` could edit content at `heads`.
    fn can_edit_at(&self, author: &AuthorId, heads: &[automerge::ChangeHash]) -> bool {
        self.roots.as_ref().is_some_and(|r| {
            crate::ingest::role_at(&self.doc, &r.members, author, heads).is_some_and(Role::can_edit)
        })
    }

    /// The change that wrote `author`'s current role, if a change did (not for the founder).
    fn role_grant(&self, author: &AuthorId) -> Option<automerge::ChangeHash> {
        let roots = self.roots.as_ref()?;
        let (_, op) = self.doc.get(&roots.members, author.to_string()).ok()??;
        self.doc.hash_for_opid(&op)
    }

    /// The export records of the notebook (object `nb_obj`) to delete so that, with `lineage`'s
    /// written, at most [`MAX_EXPORT_RECORDS`] remain: the oldest (by operation counter).
    pub(crate) fn stale_records(&self, nb_obj: &ObjId, lineage: &Lineage) -> Vec<String> {
        if *lineage == Lineage::Import {
            return Vec::new();
        }
        let (import, own) = (Lineage::Import.key(), lineage.key());
        let mut records: Vec<(u64, String)> = self
            .doc
            .map_range(nb_obj, ..)
            .filter(|item| item.key.starts_with(K_FILE_BASE) && item.key != import)
            .filter(|item| item.key != own)
            .map(|item| {
                let counter = match item.id() {
                    ObjId::Id(counter, _, _) => counter,
                    ObjId::Root => 0,
                };
                (counter, item.key.to_string())
            })
            .collect();
        let excess = (records.len() + 1).saturating_sub(MAX_EXPORT_RECORDS);
        records.sort();
        records.into_iter().take(excess).map(|(_, k)| k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_taken_out_of_the_metadata() {
        let nb: NotebookId = "nb-1".parse().expect("id");
        let origin = FileOrigin {
            notebook: nb,
            heads: vec![ChangeHash([7; 32])],
        };
        let mut metadata = json!({"kernelspec": {"name": "python3"}, "orrery": origin.to_json()});
        assert_eq!(FileOrigin::take(&mut metadata), Some(origin));
        assert_eq!(metadata, json!({"kernelspec": {"name": "python3"}}));

        // Malformed: the key is still Orrery's, so it goes, but names no origin.
        let mut metadata = json!({"orrery": {"notebook": "nb-1", "heads": ["07"]}});
        assert_eq!(FileOrigin::take(&mut metadata), None);
        assert_eq!(metadata, json!({}));
        let mut metadata = json!({"other": 1});
        assert_eq!(FileOrigin::take(&mut metadata), None);
        assert_eq!(metadata, json!({"other": 1}));
    }

    #[test]
    fn lineages_have_distinct_keys() {
        let a = Lineage::Export(vec![ChangeHash([1; 32]), ChangeHash([2; 32])]);
        let b = Lineage::Export(vec![ChangeHash([1; 32])]);
        assert_ne!(a.key(), b.key());
        assert_ne!(a.key(), Lineage::Import.key());
        assert!(a.key().starts_with(K_FILE_BASE));
        assert_eq!(Lineage::Import.value(&[]), r#"{"file":[],"base":[]}"#);
    }
}
