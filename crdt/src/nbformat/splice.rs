//! The text edits that turn one cell source into another.
//!
//! Positions and lengths count Unicode code points, as the project document's text objects do
//! (it is created with [`automerge::TextEncoding::UnicodeCodePoint`]). The edits are computed by
//! a character diff with semantic cleanup (`dissimilar`), so they touch only what changed, and a
//! concurrent edit elsewhere in the same text survives them.

use dissimilar::Chunk;

/// Above this many changed code points (both sides, after the common start and end are taken
/// off), the changed middle is replaced whole instead of diffed: the diff's cost grows with the
/// product of length and difference.
const DIFF_MAX_CHARS: usize = 32 * 1024;

/// At code point `at`, delete `delete` code points, then insert `insert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Splice {
    /// Where, in the text as the earlier splices of the same list left it.
    pub(crate) at: usize,
    /// How many code points to delete.
    pub(crate) delete: usize,
    /// What to insert.
    pub(crate) insert: String,
}

impl Splice {
    /// Code points inserted.
    pub(crate) fn inserted(&self) -> usize {
        self.insert.chars().count()
    }
}

/// The splices that turn `old` into `new`, in the order to apply them. Empty when equal.
pub(crate) fn splices(old: &str, new: &str) -> Vec<Splice> {
    let (prefix_chars, prefix_bytes) = common_prefix(old, new);
    let (old_rest, new_rest) = (&old[prefix_bytes..], &new[prefix_bytes..]);
    let suffix_bytes = common_suffix(old_rest, new_rest);
    let old_mid = &old_rest[..old_rest.len() - suffix_bytes];
    let new_mid = &new_rest[..new_rest.len() - suffix_bytes];
    if old_mid.is_empty() && new_mid.is_empty() {
        return Vec::new();
    }
    let old_chars = old_mid.chars().count();
    if old_mid.is_empty()
        || new_mid.is_empty()
        || old_chars + new_mid.chars().count() > DIFF_MAX_CHARS
    {
        return vec![Splice {
            at: prefix_chars,
            delete: old_chars,
            insert: new_mid.to_string(),
        }];
    }
    let mut out = Vec::new();
    let mut at = prefix_chars;
    let mut open: Option<Splice> = None;
    for chunk in dissimilar::diff(old_mid, new_mid) {
        match chunk {
            Chunk::Equal(s) => {
                if let Some(done) = open.take() {
                    at = done.at + done.inserted();
                    out.push(done);
                }
                at += s.chars().count();
            }
            Chunk::Delete(s) => {
                open.get_or_insert_with(|| empty_at(at)).delete += s.chars().count();
            }
            Chunk::Insert(s) => open.get_or_insert_with(|| empty_at(at)).insert.push_str(s),
        }
    }
    out.extend(open);
    out
}

fn empty_at(at: usize) -> Splice {
    Splice {
        at,
        delete: 0,
        insert: String::new(),
    }
}

/// Whether `new` is close enough to `old` to be an edit of it rather than another text: at
/// least half of their code points, counted over both, are common to them.
pub(crate) fn similar(old: &str, new: &str) -> bool {
    let (a, b) = (old.chars().count(), new.chars().count());
    if a + b == 0 {
        return true;
    }
    // Common code points are at most min(a, b); skip the diff when that cannot be enough.
    if 4 * a.min(b) < a + b {
        return false;
    }
    let deleted: usize = splices(old, new).iter().map(|s| s.delete).sum();
    4 * (a - deleted) >= a + b
}

/// Length of the common start, in code points and bytes.
fn common_prefix(a: &str, b: &str) -> (usize, usize) {
    let mut chars = 0;
    let mut bytes = 0;
    for (x, y) in a.chars().zip(b.chars()) {
        if x != y {
            break;
        }
        chars += 1;
        bytes += x.len_utf8();
    }
    (chars, bytes)
}

/// Length of the common end, in bytes.
fn common_suffix(a: &str, b: &str) -> usize {
    a.chars()
        .rev()
        .zip(b.chars().rev())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Applies splices to a string the way the document does, positions in code points.
    fn apply(text: &str, splices: &[Splice]) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for s in splices {
            chars.splice(s.at..s.at + s.delete, s.insert.chars());
        }
        chars.into_iter().collect()
    }

    #[test]
    fn edits_touch_only_what_changed() {
        let old = "import numpy as np\nx = np.arange(10)\nprint(x)\n";
        let new = "import numpy as np\nx = np.arange(20)\nprint(x)\n";
        let s = splices(old, new);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].delete <= 2 && s[0].at >= 15, "{s:?}");
        assert_eq!(apply(old, &s), new);
        assert!(splices(old, old).is_empty());
    }

    #[test]
    fn positions_count_code_points() {
        let old = "café 🎉 naïve";
        let new = "café 🎉🚀 naïf";
        let s = splices(old, new);
        assert_eq!(apply(old, &s), new);
        // The rocket goes after the party popper: code point 6, not byte 9 or UTF-16 unit 7.
        assert_eq!(s[0].at, 6, "{s:?}");
        assert_eq!(s[0].insert, "🚀");
    }

    #[test]
    fn similarity_is_about_shared_text() {
        assert!(similar("x = 1\nprint(x)\n", "x = 2\nprint(x)\n"));
        assert!(!similar("x = 1\nprint(x)\n", "# A heading\n"));
        assert!(!similar("", "something"));
        assert!(similar("", ""));
    }

    proptest! {
        #[test]
        fn splices_turn_old_into_new(old in "[ab é🎉\n]{0,40}", new in "[ab é🎉\n]{0,40}") {
            let s = splices(&old, &new);
            prop_assert_eq!(apply(&old, &s), new);
        }
    }
}
