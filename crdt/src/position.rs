//! Fractional positions that order cells in a notebook.
//!
//! A cell's place is a string key; cells sort by (key, cell id). Moving a cell rewrites only its
//! own key (a last-writer-wins register), so two people moving the same cell at once leave it in
//! one place — never duplicated, never lost — and inserting between two cells never touches the
//! others.
//!
//! Keys are strings over the digits `0-9A-Za-z` (base 62, ordered as ASCII) read as fractions in
//! [0, 1); they never end in `0`, so there is always room between two of them.

const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE: usize = 62;

fn digit(c: Option<&u8>) -> usize {
    c.and_then(|c| DIGITS.iter().position(|d| d == c))
        .unwrap_or(0)
}

/// A key strictly between `lo` and `hi` (either may be absent: the start or end of the list).
///
/// If `lo >= hi` (possible when concurrent edits produced equal keys) the result is just after
/// `lo`; callers order ties by cell id, so the result is still usable.
pub fn between(lo: Option<&str>, hi: Option<&str>) -> String {
    let lo = lo.unwrap_or("").as_bytes();
    let hi = hi.map(str::as_bytes);
    if hi.is_some_and(|h| h <= lo) {
        return after(lo);
    }
    let mut out = Vec::new();
    let mut open = hi.is_none();
    let mut i = 0;
    loop {
        let l = digit(lo.get(i));
        let h = if open {
            BASE
        } else {
            digit(hi.and_then(|h| h.get(i)))
        };
        if h > l + 1 {
            out.push(DIGITS[(l + h) / 2]);
            return String::from_utf8_lossy(&out).into_owned();
        }
        out.push(DIGITS[l]);
        if h == l + 1 {
            open = true;
        }
        i += 1;
    }
}

fn after(lo: &[u8]) -> String {
    let mut out = lo.to_vec();
    out.push(DIGITS[BASE / 2]);
    String::from_utf8_lossy(&out).into_owned()
}

/// `n` evenly spread keys, for importing a whole notebook at once.
pub fn spread(n: usize) -> Vec<String> {
    let mut keys = Vec::with_capacity(n);
    let mut prev: Option<String> = None;
    for _ in 0..n {
        let next = between(prev.as_deref(), None);
        keys.push(next.clone());
        prev = Some(next);
    }
    keys
}

/// `n` keys in increasing order, all strictly between `lo` and `hi` (when `lo < hi`), spread so
/// that their length grows with the logarithm of `n`: for placing a run of cells at once.
pub fn spread_between(lo: Option<&str>, hi: Option<&str>, n: usize) -> Vec<String> {
    let mut keys = Vec::with_capacity(n);
    fill(lo, hi, n, &mut keys);
    keys
}

fn fill(lo: Option<&str>, hi: Option<&str>, n: usize, keys: &mut Vec<String>) {
    if n == 0 {
        return;
    }
    let mid = between(lo, hi);
    let left = n / 2;
    fill(lo, Some(&mid), left, keys);
    keys.push(mid.clone());
    fill(Some(&mid), hi, n - left - 1, keys);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn simple_cases() {
        let a = between(None, None);
        let b = between(Some(&a), None);
        let c = between(Some(&a), Some(&b));
        let d = between(None, Some(&a));
        assert!(d < a && a < c && c < b, "{d} {a} {c} {b}");
        let keys = spread(50);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn spread_between_stays_inside_and_short() {
        let (lo, hi) = (between(None, None), spread(2)[1].clone());
        let keys = spread_between(Some(&lo), Some(&hi), 1000);
        assert_eq!(keys.len(), 1000);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert!(lo < keys[0] && keys[999] < hi);
        // About log2(1000) = 10 halvings of 6 bits each: a few digits, not one per key.
        assert!(keys.iter().all(|k| k.len() <= 6), "{:?}", keys.last());
        assert!(spread_between(Some("V"), None, 0).is_empty());
    }

    proptest! {
        #[test]
        fn always_strictly_between(ops in proptest::collection::vec((any::<bool>(), any::<u16>()), 1..200)) {
            let mut keys: Vec<String> = vec![between(None, None)];
            for (front, at) in ops {
                let i = if front { 0 } else { (at as usize) % (keys.len() + 1) };
                let lo = if i == 0 { None } else { Some(keys[i - 1].as_str()) };
                let hi = keys.get(i).map(String::as_str);
                let k = between(lo, hi);
                if let Some(lo) = lo { prop_assert!(lo < k.as_str(), "{lo} !< {k}"); }
                if let Some(hi) = hi { prop_assert!(k.as_str() < hi, "{k} !< {hi}"); }
                prop_assert!(!k.ends_with('0'));
                keys.insert(i, k);
            }
        }

        #[test]
        fn spread_between_is_ordered_and_inside(at in any::<u16>(), n in 0..300usize, len in 1..40usize) {
            let keys = spread(len);
            let i = (at as usize) % (len + 1);
            let lo = if i == 0 { None } else { Some(keys[i - 1].as_str()) };
            let hi = keys.get(i).map(String::as_str);
            let run = spread_between(lo, hi, n);
            prop_assert_eq!(run.len(), n);
            prop_assert!(run.windows(2).all(|w| w[0] < w[1]));
            for k in &run {
                if let Some(lo) = lo { prop_assert!(lo < k.as_str()); }
                if let Some(hi) = hi { prop_assert!(k.as_str() < hi); }
            }
        }
    }
}
