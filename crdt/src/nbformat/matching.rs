//! Which cell of a notebook each cell of a file is, and which matched cells changed place.
//!
//! A file cell with its own id is the notebook cell of that id, or a new cell. A file cell
//! without one (see [`super::ParsedNotebook::invented`]) is matched among the notebook cells no
//! id claimed: first the longest common run of identical cells (same kind and source) in order,
//! then, between those anchors, each file cell with the next notebook cell of the same kind and
//! similar source, by position. Everything here is pure and bounded.

use std::collections::{BTreeSet, HashMap};

use super::splice::similar;
use crate::ids::CellId;
use crate::project::{Cell, NewCell};
use crate::schema::CellKind;

/// Above this many notebook-cell × file-cell pairs, identical cells are matched only at the
/// start and end of the unmatched stretch (the longest-common-subsequence table would be large).
const LCS_MAX_PAIRS: usize = 1 << 20;

/// How far ahead, in notebook cells, a file cell looks for a similar cell to be an edit of.
const WINDOW: usize = 8;

/// For each file cell, the index of the notebook cell it is, if any.
pub(crate) fn match_cells(
    current: &[Cell],
    file: &[NewCell],
    invented: &BTreeSet<CellId>,
) -> Vec<Option<usize>> {
    let by_id: HashMap<&CellId, usize> = current
        .iter()
        .enumerate()
        .map(|(i, c)| (&c.id, i))
        .collect();
    let mut matched = vec![None; file.len()];
    let mut claimed = vec![false; current.len()];
    for (j, cell) in file.iter().enumerate() {
        if invented.contains(&cell.id) {
            continue;
        }
        if let Some(&i) = by_id.get(&cell.id) {
            matched[j] = Some(i);
            claimed[i] = true;
        }
    }
    let old: Vec<usize> = (0..current.len()).filter(|&i| !claimed[i]).collect();
    let new: Vec<usize> = (0..file.len())
        .filter(|&j| invented.contains(&file[j].id))
        .collect();
    if old.is_empty() || new.is_empty() {
        return matched;
    }
    let old_cells: Vec<(CellKind, &str)> = old
        .iter()
        .map(|&i| (current[i].kind, current[i].source.as_str()))
        .collect();
    let new_cells: Vec<(CellKind, &str)> = new
        .iter()
        .map(|&j| (file[j].kind, file[j].source.as_str()))
        .collect();
    for (a, b) in by_content(&old_cells, &new_cells) {
        matched[new[b]] = Some(old[a]);
    }
    matched
}

/// Pairs (old index, new index), increasing in both, of cells that are the same cell.
fn by_content(old: &[(CellKind, &str)], new: &[(CellKind, &str)]) -> Vec<(usize, usize)> {
    let exact = identical(old, new);
    let mut pairs = Vec::with_capacity(new.len());
    let (mut a, mut b) = (0, 0);
    for &(x, y) in exact.iter().chain(std::iter::once(&(old.len(), new.len()))) {
        for (i, j) in by_position(&old[a..x], &new[b..y]) {
            pairs.push((a + i, b + j));
        }
        if x < old.len() {
            pairs.push((x, y));
        }
        (a, b) = (x + 1, y + 1);
    }
    pairs
}

/// A longest common subsequence of identical cells, as index pairs.
fn identical<'a>(old: &[(CellKind, &'a str)], new: &[(CellKind, &'a str)]) -> Vec<(usize, usize)> {
    // Intern cells so that comparisons are of integers.
    let mut ids: HashMap<(CellKind, &'a str), u32> = HashMap::new();
    let mut intern = |cells: &[(CellKind, &'a str)]| -> Vec<u32> {
        cells
            .iter()
            .map(|c| {
                let next = ids.len() as u32;
                *ids.entry(*c).or_insert(next)
            })
            .collect()
    };
    let xs = intern(old);
    let ys = intern(new);
    let prefix = xs.iter().zip(&ys).take_while(|(x, y)| x == y).count();
    let suffix = xs[prefix..]
        .iter()
        .rev()
        .zip(ys[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (mx, my) = (
        &xs[prefix..xs.len() - suffix],
        &ys[prefix..ys.len() - suffix],
    );
    let mut pairs: Vec<(usize, usize)> = (0..prefix).map(|k| (k, k)).collect();
    if mx.len().saturating_mul(my.len()) <= LCS_MAX_PAIRS {
        pairs.extend(
            lcs(mx, my)
                .into_iter()
                .map(|(i, j)| (prefix + i, prefix + j)),
        );
    }
    let (ox, oy) = (xs.len() - suffix, ys.len() - suffix);
    pairs.extend((0..suffix).map(|k| (ox + k, oy + k)));
    pairs
}

/// The classic dynamic-programming longest common subsequence (inputs are bounded by the caller).
fn lcs(xs: &[u32], ys: &[u32]) -> Vec<(usize, usize)> {
    let (n, m) = (xs.len(), ys.len());
    let w = m + 1;
    // table[i * w + j]: LCS length of xs[i..] and ys[j..].
    let mut table = vec![0u32; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i * w + j] = if xs[i] == ys[j] {
                table[(i + 1) * w + j + 1] + 1
            } else {
                table[(i + 1) * w + j].max(table[i * w + j + 1])
            };
        }
    }
    let mut pairs = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if xs[i] == ys[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if table[(i + 1) * w + j] >= table[i * w + j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// Between two anchors: each new cell is the first of the next few old cells that has its kind
/// and a similar source; old cells passed over are gone.
fn by_position(old: &[(CellKind, &str)], new: &[(CellKind, &str)]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let mut next = 0;
    for (j, (kind, source)) in new.iter().enumerate() {
        let end = (next + WINDOW).min(old.len());
        if let Some(i) = (next..end).find(|&i| old[i].0 == *kind && similar(old[i].1, source)) {
            pairs.push((i, j));
            next = i + 1;
        }
    }
    pairs
}

/// Which entries of `seq` (distinct values) to keep in place: a longest strictly increasing
/// subsequence, so that the fewest cells move.
pub(crate) fn keep_in_place(seq: &[usize]) -> Vec<bool> {
    // tails[k]: index in seq of the smallest tail of an increasing run of length k + 1.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<Option<usize>> = vec![None; seq.len()];
    for (i, &v) in seq.iter().enumerate() {
        let k = tails.partition_point(|&t| seq[t] < v);
        prev[i] = k.checked_sub(1).map(|p| tails[p]);
        if k == tails.len() {
            tails.push(i);
        } else {
            tails[k] = i;
        }
    }
    let mut keep = vec![false; seq.len()];
    let mut at = tails.last().copied();
    while let Some(i) = at {
        keep[i] = true;
        at = prev[i];
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(id: &str, kind: CellKind, source: &str) -> Cell {
        Cell {
            id: id.parse().expect("id"),
            kind,
            source: source.into(),
            outputs: Vec::new(),
            execution_count: None,
            execution: None,
            metadata: serde_json::json!({}),
            attachments: None,
            created_by: None,
        }
    }

    fn anonymous(cells: &[(CellKind, &str)]) -> (Vec<NewCell>, BTreeSet<CellId>) {
        let cells: Vec<NewCell> = cells.iter().map(|(k, s)| NewCell::new(*k, s)).collect();
        let ids = cells.iter().map(|c| c.id.clone()).collect();
        (cells, ids)
    }

    use CellKind::{Code, Markdown};

    #[test]
    fn ids_win_over_content() {
        let current = [cell("a", Code, "x = 1"), cell("b", Code, "y = 2")];
        let mut file = vec![NewCell::new(Code, "y = 2"), NewCell::new(Code, "x = 1")];
        file[0].id = "a".parse().expect("id");
        file[1].id = "c".parse().expect("id");
        let m = match_cells(&current, &file, &BTreeSet::new());
        assert_eq!(
            m,
            [Some(0), None],
            "a real id that is not there is a new cell"
        );
    }

    #[test]
    fn cells_without_ids_match_by_content_then_position() {
        let current = [
            cell("a", Markdown, "# Title"),
            cell("b", Code, "import numpy as np\nx = np.arange(10)"),
            cell("c", Code, "print(x)"),
            cell("d", Markdown, "The end"),
        ];
        let (file, invented) = anonymous(&[
            (Markdown, "# Title"),
            (Markdown, "A new paragraph, unlike anything"),
            (Code, "import numpy as np\nx = np.arange(20)"),
            (Markdown, "The end"),
        ]);
        let m = match_cells(&current, &file, &invented);
        assert_eq!(m, [Some(0), None, Some(1), Some(3)]);
    }

    #[test]
    fn repeated_identical_cells_keep_their_order() {
        let current = [
            cell("a", Code, "x"),
            cell("b", Code, "x"),
            cell("c", Code, "x"),
        ];
        let (file, invented) = anonymous(&[(Code, "x"), (Code, "x")]);
        assert_eq!(match_cells(&current, &file, &invented), [Some(0), Some(1)]);
    }

    #[test]
    fn one_moved_cell_is_one_move() {
        // Notebook order a b c d e; file order b c d a e.
        assert_eq!(
            keep_in_place(&[1, 2, 3, 0, 4]),
            [true, true, true, false, true]
        );
        assert_eq!(keep_in_place(&[0, 1, 2]), [true, true, true]);
        assert_eq!(keep_in_place(&[]), Vec::<bool>::new());
        let keep = keep_in_place(&[4, 0, 1, 2, 3]);
        assert_eq!(keep.iter().filter(|k| !**k).count(), 1);
    }
}
