//! Where a notebook file stands in the document's history: its base.
//!
//! [`Project::update_from_ipynb`] applies a file as the difference between the file and the
//! notebook *as it was at the file's base* (the document heads the file corresponds to), made on
//! a branch at those heads and then merged, so that what collaborators did since the base, which
//! this replica may already hold, merges with the file's edits instead of being taken for
//! something the file removed.
//!
//! A file belongs to a *lineage*: the versions of one export of this notebook (its
//! `metadata.orrery` names this notebook and heads this replica holds, see [`FileOrigin`]), or
//! else the versions of the imported file (a file Jupyter saved from the imported one, an
//! export of another notebook, a `--clean` export, an export naming heads this replica lacks).
//! Copies of one file are edited apart (two people each take the same export) and come back one
//! after the other, so the base of a file is chosen among the states its lineage is known to
//! have had:
//!
//! * the lineage's start: the heads an export names, or the change that imported the file;
//! * every version of it brought in by an update: the change that wrote its record (below),
//!   where the notebook equals that version.
//!
//! The file is derived from the candidate it differs least from: the sum over cells (matched
//! by id) of the characters a diff inserts and deletes in their sources, a cell only one side
//! has counting its whole source. A copy edited beside an applied version is nearer the start
//! than that version (which holds the other person's edits as well), so both sets of edits
//! merge; a version edited again after it was applied is nearest that version, so only its new
//! edits apply, and the same file applied twice changes nothing. When two candidates with
//! different contents are equally near, the file cannot be placed: the update is refused with
//! [`NbformatError::AmbiguousBase`] instead of guessing. A notebook with no record at all
//! (created in Orrery) has the current heads as the only candidate.
//!
//! If the author could not edit at the chosen base (they became an editor later), the change
//! that gave them their role is added to the base: changes made there would otherwise be
//! refused by every replica, which judges a change by the membership in its causal past.
//!
//! # Records
//!
//! Keys of the notebook's map. `file_base:import` is written by the import itself and names the
//! imported file's start. Each update writes `<lineage key>@<random>` (the lineage key being
//! `file_base:import`, or for an export `file_base:<its heads in hex, joined by +>`), whose value
//! (JSON, `{"file": [the export's heads], "base": [the heads the update started from]}`) is
//! written in the update's last change: the notebook equals the version brought in at *the change
//! that wrote the record*. Writing it in the update's own last change keeps an update one change.
//! The notebook keeps at most [`MAX_EXPORT_RECORDS`] update records; writing one more deletes the
//! oldest (by operation counter). The import record is kept for good.
//!
//! # Limits
//!
//! * A file that names no base and is no version of the imported file (an export whose metadata
//!   was stripped, from a notebook created in Orrery) is compared with the notebook as it is
//!   now: what others added since the file was saved counts as removed by the file, except
//!   cells others edited since, which are kept.
//! * Branching copies the history up to the base (`Automerge::fork_at`), so an update whose base
//!   is not the current state costs time in proportion to the history's length; choosing among
//!   candidates reads each one's sources at its heads.

use std::collections::HashMap;

use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value as AmValue};
use orrery_protocol::{AuthorId, ChangeHash};
use serde_json::{Value, json};

use super::{NbformatError, ParsedNotebook};
use crate::ids::NotebookId;
use crate::project::NewCell;
use crate::project::{Project, from_hash};
use crate::schema::{
    K_ATTACHMENTS, K_CELLS, K_EXEC_COUNT, K_FILE_BASE, K_KIND, K_METADATA, K_OUTPUTS, K_POS,
    K_SOURCE, Role,
};

/// The notebook metadata key under which an export records where it came from.
pub(crate) const K_ORRERY_METADATA: &str = "orrery";

/// Most heads an export's origin may name; a file naming more is treated as having no origin.
const MAX_ORIGIN_HEADS: usize = 64;

/// Most update records a notebook keeps; writing one more deletes the oldest.
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

    /// The key of a record of one version brought in by an update: the lineage's key and a
    /// random part, so that concurrent updates keep a record each.
    pub(crate) fn version_key(&self) -> String {
        format!("{}@{}", self.key(), crate::ids::random_hex())
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
    /// The base of `file` for notebook `nb`, edited by `author` (see the module docs).
    pub(crate) fn file_base(
        &self,
        nb: &NotebookId,
        file: &ParsedNotebook,
        author: &AuthorId,
    ) -> Result<Base, NbformatError> {
        let nb_obj = self.notebook_obj(nb)?;
        let lineage = match &file.origin {
            Some(o) if &o.notebook == nb && o.heads.iter().all(|h| self.has_change(h)) => {
                let mut heads = o.heads.clone();
                heads.sort_unstable();
                heads.dedup();
                Lineage::Export(heads)
            }
            _ => Lineage::Import,
        };
        let mut candidates: Vec<Vec<automerge::ChangeHash>> = Vec::new();
        match &lineage {
            Lineage::Export(heads) => {
                candidates.push(heads.iter().map(|h| from_hash(*h)).collect())
            }
            Lineage::Import => {
                if let Some(at) = self.written_by(&nb_obj, &lineage.key()) {
                    candidates.push(vec![at]);
                }
            }
        }
        candidates.extend(
            self.versions(&nb_obj, &lineage)
                .into_iter()
                .map(|at| vec![at]),
        );
        if candidates.is_empty() {
            candidates.push(self.doc.get_heads());
        }
        let mut heads = self.nearest(&nb_obj, file, candidates)?;
        if !self.can_edit_at(author, &heads)
            && let Some(grant) = self.role_grant(author)
        {
            heads.push(grant);
        }
        heads.sort_unstable();
        heads.dedup();
        Ok(Base { heads, lineage })
    }

    /// The candidate `file` differs least from; an error if two that differ are equally near.
    /// Of candidates equal in content, the last (the latest version) is taken: it counts fewer
    /// of others' edits as made since the file's base.
    fn nearest(
        &self,
        nb_obj: &ObjId,
        file: &ParsedNotebook,
        candidates: Vec<Vec<automerge::ChangeHash>>,
    ) -> Result<Vec<automerge::ChangeHash>, NbformatError> {
        if candidates.len() == 1 {
            return Ok(candidates.into_iter().next().unwrap_or_default());
        }
        let ours: Vec<CellAt> = file
            .cells
            .iter()
            .map(|c| CellAt::of_file(c, file.invented.contains(&c.id)))
            .collect();
        let mut best: Option<(usize, Vec<CellAt>, Vec<automerge::ChangeHash>)> = None;
        let mut tied = false;
        for heads in candidates {
            let theirs = self.cells_at(nb_obj, &heads);
            let d = distance(&ours, &theirs);
            match &best {
                Some((b, _, _)) if d > *b => {}
                Some((b, state, _)) if d == *b && *state != theirs => tied = true,
                Some((b, _, _)) if d == *b => best = Some((d, theirs, heads)),
                _ => {
                    tied = false;
                    best = Some((d, theirs, heads));
                }
            }
        }
        match best {
            Some((_, _, heads)) if !tied => Ok(heads),
            _ => Err(NbformatError::AmbiguousBase),
        }
    }

    /// The cells of the notebook (object `nb_obj`) as they were at `heads`, in order.
    fn cells_at(&self, nb_obj: &ObjId, heads: &[automerge::ChangeHash]) -> Vec<CellAt> {
        let cells = match self.doc.get_at(nb_obj, K_CELLS, heads) {
            Ok(Some((AmValue::Object(ObjType::Map), id))) => id,
            _ => return Vec::new(),
        };
        let text = |obj: &ObjId, key: &str| match self.doc.get_at(obj, key, heads) {
            Ok(Some((AmValue::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Str(t) => Some(t.to_string()),
                _ => None,
            },
            _ => None,
        };
        let mut out: Vec<(String, CellAt)> = self
            .doc
            .map_range_at(&cells, .., heads)
            .filter_map(|item| {
                let obj = item.id();
                let source = match self.doc.get_at(&obj, K_SOURCE, heads) {
                    Ok(Some((AmValue::Object(ObjType::Text), id))) => {
                        self.doc.text_at(&id, heads).ok()?
                    }
                    _ => String::new(),
                };
                let outputs: Vec<Value> = match self.doc.get_at(&obj, K_OUTPUTS, heads) {
                    Ok(Some((AmValue::Object(ObjType::List), id))) => self
                        .doc
                        .list_range_at(&id, .., heads)
                        .filter_map(|i| crate::outputs::from_item(&i.value))
                        .collect(),
                    _ => Vec::new(),
                };
                let exec = match self.doc.get_at(&obj, K_EXEC_COUNT, heads) {
                    Ok(Some((AmValue::Scalar(s), _))) => match s.as_ref() {
                        ScalarValue::Int(i) => Some(*i),
                        _ => None,
                    },
                    _ => None,
                };
                let json = |key| text(&obj, key).and_then(|t| crate::json::parse_str(&t));
                let rest = json!([
                    text(&obj, K_KIND),
                    json(K_METADATA).unwrap_or_else(|| json!({})),
                    exec,
                    outputs,
                    json(K_ATTACHMENTS),
                ]);
                let pos = text(&obj, K_POS).unwrap_or_default();
                let cell = CellAt {
                    id: Some(item.key.to_string()),
                    source,
                    rest,
                };
                Some((pos, cell))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
        out.into_iter().map(|(_, c)| c).collect()
    }

    /// The change that wrote `key` in the notebook (object `nb_obj`), if any.
    fn written_by(&self, nb_obj: &ObjId, key: &str) -> Option<automerge::ChangeHash> {
        match self.doc.get(nb_obj, key) {
            Ok(Some((AmValue::Scalar(s), op))) if matches!(s.as_ref(), ScalarValue::Str(_)) => {
                self.doc.hash_for_opid(&op)
            }
            _ => None,
        }
    }

    /// The changes that wrote the records of `lineage`'s versions brought in by updates.
    /// Oldest first (by operation counter).
    fn versions(&self, nb_obj: &ObjId, lineage: &Lineage) -> Vec<automerge::ChangeHash> {
        let prefix = format!("{}@", lineage.key());
        let mut keys: Vec<(u64, String)> = self
            .doc
            .map_range(nb_obj, ..)
            .filter(|item| item.key.starts_with(&prefix))
            .map(|item| {
                let counter = match item.id() {
                    ObjId::Id(counter, _, _) => counter,
                    ObjId::Root => 0,
                };
                (counter, item.key.to_string())
            })
            .collect();
        keys.sort();
        keys.iter()
            .filter_map(|(_, k)| self.written_by(nb_obj, k))
            .collect()
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

    /// The update records of the notebook (object `nb_obj`) to delete so that, with one more
    /// written, at most [`MAX_EXPORT_RECORDS`] remain: the oldest (by operation counter). The
    /// import record is never among them.
    pub(crate) fn stale_records(&self, nb_obj: &ObjId) -> Vec<String> {
        let import = Lineage::Import.key();
        let mut records: Vec<(u64, String)> = self
            .doc
            .map_range(nb_obj, ..)
            .filter(|item| item.key.starts_with(K_FILE_BASE) && item.key != import)
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

/// A cell as the distance between a file and a state of the notebook sees it.
#[derive(Debug, Clone, PartialEq)]
struct CellAt {
    /// Its id, unless the file gave it none (then it is matched by its place).
    id: Option<String>,
    source: String,
    /// Kind, metadata, execution count, outputs and attachments.
    rest: Value,
}

impl CellAt {
    fn of_file(c: &NewCell, invented: bool) -> Self {
        CellAt {
            id: (!invented).then(|| c.id.to_string()),
            source: c.source.clone(),
            rest: json!([
                c.kind.as_str(),
                c.metadata,
                c.execution_count,
                c.outputs,
                c.attachments,
            ]),
        }
    }
}

/// Characters a diff inserts and deletes to turn `a` into `b`.
fn edit_size(a: &str, b: &str) -> usize {
    if a == b {
        return 0;
    }
    dissimilar::diff(a, b)
        .iter()
        .map(|chunk| match chunk {
            dissimilar::Chunk::Equal(_) => 0,
            dissimilar::Chunk::Insert(s) | dissimilar::Chunk::Delete(s) => s.chars().count(),
        })
        .sum()
}

/// How far `file` is from `state`: for cells matched by id, the characters a diff inserts and
/// deletes in their sources, plus one when anything else of the cell differs; the cells left on
/// either side (the file's without ids, and those only one side has) compared in order as one
/// text, so that id-less cells are matched by their place.
fn distance(file: &[CellAt], state: &[CellAt]) -> usize {
    let theirs: HashMap<&str, &CellAt> = state
        .iter()
        .filter_map(|c| Some((c.id.as_deref()?, c)))
        .collect();
    let mut d = 0;
    let mut matched = std::collections::HashSet::new();
    let mut left_ours = String::new();
    for c in file {
        match c.id.as_deref().and_then(|id| theirs.get(id)) {
            Some(t) => {
                matched.insert(t.id.as_deref());
                d += edit_size(&t.source, &c.source) + usize::from(t.rest != c.rest);
            }
            None => {
                left_ours.push_str(&c.source);
                left_ours.push('\u{1}');
            }
        }
    }
    let left_theirs: String = state
        .iter()
        .filter(|c| !matched.contains(&c.id.as_deref()))
        .flat_map(|c| [c.source.as_str(), "\u{1}"])
        .collect();
    d + edit_size(&left_theirs, &left_ours)
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
