//! Credit: who wrote what, computed from the verified history, never asserted.
//!
//! For the project, each notebook and each cell, credit lists every author with the number of
//! characters of theirs that survive in the text today (each character is attributed to the
//! author whose change inserted it, read from the operation id) and the number of changes of
//! theirs that touched it.

use std::collections::{BTreeMap, HashMap, HashSet};

use automerge::legacy::{Key, ObjectId};
use automerge::{ObjId, ObjType, ReadDoc, Value};
use orrery_protocol::AuthorId;

use crate::ids::{CellId, NotebookId};
use crate::project::Project;
use crate::schema::*;
use crate::session::AuthorCache;

/// One author's share of something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The author.
    pub author: AuthorId,
    /// Surviving characters they inserted.
    pub chars: usize,
    /// Changes of theirs that touched it.
    pub changes: usize,
}

/// Credit for one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellCredit {
    /// The cell.
    pub cell: CellId,
    /// Its authors, most characters first.
    pub shares: Vec<Share>,
}

/// Credit for one notebook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotebookCredit {
    /// The notebook.
    pub notebook: NotebookId,
    /// Its title.
    pub title: String,
    /// Its authors, most characters first.
    pub shares: Vec<Share>,
    /// Its cells, in order.
    pub cells: Vec<CellCredit>,
}

/// Credit for a whole project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credits {
    /// The project's authors (all text, all changes), most characters first.
    pub shares: Vec<Share>,
    /// Per notebook.
    pub notebooks: Vec<NotebookCredit>,
}

type Tally = BTreeMap<AuthorId, (usize, usize)>;

fn shares(t: &Tally) -> Vec<Share> {
    let mut v: Vec<Share> = t
        .iter()
        .map(|(a, (chars, changes))| Share {
            author: *a,
            chars: *chars,
            changes: *changes,
        })
        .collect();
    v.sort_by(|a, b| {
        b.chars
            .cmp(&a.chars)
            .then(b.changes.cmp(&a.changes))
            .then(a.author.cmp(&b.author))
    });
    v
}

fn key_of(id: &ObjId) -> Option<(u64, Vec<u8>)> {
    match id {
        ObjId::Id(c, a, _) => Some((*c, a.to_bytes().to_vec())),
        ObjId::Root => None,
    }
}

#[derive(Clone, Copy)]
enum Target {
    Notebooks,
    Notebook(usize),
    Cells(usize),
    Cell(usize, usize),
}

impl Project {
    /// Characters of a text object per author who inserted them.
    pub fn text_authors(&self, text: &ObjId) -> BTreeMap<AuthorId, usize> {
        let mut out = BTreeMap::new();
        let mut authors = AuthorCache::default();
        for item in self.doc.list_range(text, ..) {
            if let ObjId::Id(_, actor, _) = item.id()
                && let Some(a) = authors.of(&actor)
            {
                *out.entry(a).or_insert(0) += 1;
            }
        }
        out
    }

    /// Computes credit for the project, each notebook and each cell.
    pub fn credits(&self) -> Credits {
        let mut project: Tally = BTreeMap::new();
        let mut notebooks = Vec::new();
        let mut targets: HashMap<(u64, Vec<u8>), Target> = HashMap::new();
        let mut cell_index: Vec<HashMap<String, usize>> = Vec::new();
        let mut nb_index: HashMap<String, usize> = HashMap::new();
        let mut nb_tallies: Vec<(Tally, Vec<Tally>)> = Vec::new();
        let mut nb_meta: Vec<(NotebookId, String, Vec<CellId>)> = Vec::new();

        let roots = self.roots.clone();
        if let Some(roots) = &roots {
            if let Some(k) = key_of(&roots.notebooks) {
                targets.insert(k, Target::Notebooks);
            }
            for a in self.text_authors(&roots.description).into_iter() {
                project.entry(a.0).or_default().0 += a.1;
            }
            for (ni, (nb_id, title)) in self.notebook_ids().into_iter().enumerate() {
                nb_index.insert(nb_id.to_string(), ni);
                let mut nb_tally: Tally = BTreeMap::new();
                let mut cell_tallies = Vec::new();
                let mut cells_map = HashMap::new();
                if let Ok(Some((Value::Object(ObjType::Map), nb_obj))) =
                    self.doc.get(&roots.notebooks, nb_id.as_str())
                {
                    if let Some(k) = key_of(&nb_obj) {
                        targets.insert(k, Target::Notebook(ni));
                    }
                    if let Ok(Some((Value::Object(ObjType::Map), cells_obj))) =
                        self.doc.get(&nb_obj, K_CELLS)
                        && let Some(k) = key_of(&cells_obj)
                    {
                        targets.insert(k, Target::Cells(ni));
                    }
                }
                let cell_ids = self.cell_ids(&nb_id).unwrap_or_default();
                for (ci, cell) in cell_ids.iter().enumerate() {
                    cells_map.insert(cell.to_string(), ci);
                    let mut tally: Tally = BTreeMap::new();
                    if let Ok(cell_obj) = self.cell_obj_pub(&nb_id, cell) {
                        if let Some(k) = key_of(&cell_obj) {
                            targets.insert(k, Target::Cell(ni, ci));
                        }
                        for key in [K_SOURCE, K_OUTPUTS] {
                            if let Ok(Some((Value::Object(_), o))) = self.doc.get(&cell_obj, key) {
                                if let Some(k) = key_of(&o) {
                                    targets.insert(k, Target::Cell(ni, ci));
                                }
                                if key == K_SOURCE {
                                    for (a, n) in self.text_authors(&o) {
                                        tally.entry(a).or_default().0 += n;
                                        nb_tally.entry(a).or_default().0 += n;
                                        project.entry(a).or_default().0 += n;
                                    }
                                }
                            }
                        }
                    }
                    cell_tallies.push(tally);
                }
                cell_index.push(cells_map);
                nb_tallies.push((nb_tally, cell_tallies));
                nb_meta.push((nb_id, title, cell_ids));
            }
        }

        // Change counts, from each change's operations.
        let mut authors = AuthorCache::default();
        for change in self.doc.get_changes(&[]) {
            let Some(author) = authors.of(change.actor_id()) else {
                continue;
            };
            project.entry(author).or_default().1 += 1;
            let mut touched_nb: HashSet<usize> = HashSet::new();
            let mut touched_cell: HashSet<(usize, usize)> = HashSet::new();
            for op in change.decode().operations {
                let ObjectId::Id(opid) = &op.obj else {
                    continue;
                };
                let key = (opid.0, opid.1.to_bytes().to_vec());
                let Some(t) = targets.get(&key) else { continue };
                let map_key = match &op.key {
                    Key::Map(k) => Some(k.as_str()),
                    Key::Seq(_) => None,
                };
                match *t {
                    Target::Notebooks => {
                        if let Some(&ni) = map_key.and_then(|k| nb_index.get(k)) {
                            touched_nb.insert(ni);
                        }
                    }
                    Target::Notebook(ni) => {
                        touched_nb.insert(ni);
                    }
                    Target::Cells(ni) => {
                        touched_nb.insert(ni);
                        if let Some(&ci) = map_key.and_then(|k| cell_index[ni].get(k)) {
                            touched_cell.insert((ni, ci));
                        }
                    }
                    Target::Cell(ni, ci) => {
                        touched_nb.insert(ni);
                        touched_cell.insert((ni, ci));
                    }
                }
            }
            for ni in touched_nb {
                nb_tallies[ni].0.entry(author).or_default().1 += 1;
            }
            for (ni, ci) in touched_cell {
                nb_tallies[ni].1[ci].entry(author).or_default().1 += 1;
            }
        }

        for ((nb_id, title, cell_ids), (nb_tally, cell_tallies)) in
            nb_meta.into_iter().zip(nb_tallies)
        {
            notebooks.push(NotebookCredit {
                notebook: nb_id,
                title,
                shares: shares(&nb_tally),
                cells: cell_ids
                    .into_iter()
                    .zip(cell_tallies)
                    .map(|(cell, t)| CellCredit {
                        cell,
                        shares: shares(&t),
                    })
                    .collect(),
            });
        }
        Credits {
            shares: shares(&project),
            notebooks,
        }
    }
}

/// A run of a cell's source text inserted by one author (`None`: by no one known, e.g. a
/// change whose author is not a member any more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Who inserted it.
    pub author: Option<AuthorId>,
    /// The text.
    pub text: String,
}

impl Project {
    /// Who wrote each part of a cell's source: its text cut into runs by the author of the
    /// change that inserted each character (concatenated, the runs are the source).
    pub fn authorship(
        &self,
        nb: &NotebookId,
        cell: &CellId,
    ) -> Result<Vec<Span>, crate::EditError> {
        let text = self.source_obj(nb, cell)?;
        let mut authors = AuthorCache::default();
        let mut spans: Vec<Span> = Vec::new();
        for item in self.doc.list_range(&text, ..) {
            let author = match item.id() {
                ObjId::Id(_, actor, _) => authors.of(&actor),
                ObjId::Root => None,
            };
            let piece = match &item.value {
                automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(t)) => t.to_string(),
                _ => continue,
            };
            match spans.last_mut() {
                Some(last) if last.author == author => last.text.push_str(&piece),
                _ => spans.push(Span {
                    author,
                    text: piece,
                }),
            }
        }
        Ok(spans)
    }
}
