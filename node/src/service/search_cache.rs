//! This node's answers to recent searches of its own catalog, reused while the catalog is
//! unchanged: a portal's search page asks the same question many times (paging back, several
//! users, a refresh).
//!
//! An answer is reused for at most [`FRESH_FOR`], and not after the catalog changed: the node
//! notices a change by another process (`orrery dataset add`) within a poll (250 ms) and its own
//! adverts, and either empties the cache. Federated answers
//! are not kept: whether each member answers is part of the answer, and a member that just went
//! away must be named at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use orrery_catalog::{FederatedResults, Query};

/// How long an answer may be reused.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(10);
/// Most answers kept; the oldest go first.
const MAX_ENTRIES: usize = 512;
/// Largest answer kept, in hits (a page of results is 20 to 200).
const MAX_HITS: usize = 1000;

type Key = String;

#[derive(Debug, Default)]
struct Entries {
    generation: u64,
    answers: HashMap<Key, (Instant, Arc<FederatedResults>)>,
}

/// Recent answers, keyed by the query.
#[derive(Debug, Default)]
pub(crate) struct SearchCache {
    entries: Mutex<Entries>,
}

fn key(query: &Query) -> Option<Key> {
    serde_json::to_string(query).ok()
}

impl SearchCache {
    /// A fresh answer to `query`, if one is kept.
    pub(crate) fn get(&self, query: &Query) -> Option<Arc<FederatedResults>> {
        let key = key(query)?;
        let entries = self.entries.lock().ok()?;
        let (at, answer) = entries.answers.get(&key)?;
        (at.elapsed() < FRESH_FOR).then(|| answer.clone())
    }

    /// The generation answers are kept under: an answer computed from an older one is dropped.
    pub(crate) fn generation(&self) -> u64 {
        self.entries.lock().map_or(0, |e| e.generation)
    }

    /// Keeps `answer` to `query`, computed while the cache was at `generation`, if it is
    /// complete and nothing changed meanwhile.
    pub(crate) fn put(&self, query: &Query, generation: u64, answer: &FederatedResults) {
        if !answer.missing.is_empty() || answer.results.hits.len() > MAX_HITS {
            return;
        }
        let (Some(key), Ok(mut entries)) = (key(query), self.entries.lock()) else {
            return;
        };
        if entries.generation != generation {
            return;
        }
        if entries.answers.len() >= MAX_ENTRIES {
            entries
                .answers
                .retain(|_, (at, _)| at.elapsed() < FRESH_FOR);
            if entries.answers.len() >= MAX_ENTRIES
                && let Some(oldest) = entries
                    .answers
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
            {
                entries.answers.remove(&oldest);
            }
        }
        entries
            .answers
            .insert(key, (Instant::now(), Arc::new(answer.clone())));
    }

    /// Something an answer depends on changed: every kept answer goes.
    pub(crate) fn invalidate(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.generation += 1;
            entries.answers.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(missing: bool) -> FederatedResults {
        FederatedResults {
            results: Default::default(),
            answered: vec!["here".into()],
            missing: if missing {
                vec![("there".into(), "no answer".into())]
            } else {
                Vec::new()
            },
            not_asked: 0,
        }
    }

    fn query(text: &str) -> Query {
        Query {
            text: Some(text.into()),
            ..Query::default()
        }
    }

    #[test]
    fn complete_answers_are_reused_until_something_changes() {
        let cache = SearchCache::default();
        let g = cache.generation();
        cache.put(&query("crab"), g, &answer(false));
        assert!(cache.get(&query("crab")).is_some());
        assert!(cache.get(&query("m87")).is_none());
        cache.invalidate();
        assert!(cache.get(&query("crab")).is_none());
        // An answer computed before the change is not kept after it.
        cache.put(&query("crab"), g, &answer(false));
        assert!(cache.get(&query("crab")).is_none());
    }

    #[test]
    fn an_incomplete_answer_is_not_kept() {
        let cache = SearchCache::default();
        cache.put(&query("crab"), cache.generation(), &answer(true));
        assert!(cache.get(&query("crab")).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = SearchCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(&query(&format!("q{i}")), cache.generation(), &answer(false));
        }
        let kept = cache.entries.lock().expect("lock").answers.len();
        assert!(kept <= MAX_ENTRIES, "{kept}");
        assert!(
            cache
                .get(&query(&format!("q{}", MAX_ENTRIES + 9)))
                .is_some()
        );
    }
}
