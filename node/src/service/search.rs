//! Federated search: the query goes to this node's catalog and to every member whose advert can
//! match, all at once; answers that arrive before the deadline are merged, and the members that
//! did not answer are named.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orrery_catalog::query::MAX_FACET_VALUES;
use orrery_catalog::sky::{SkyCone, UnitVector};
use orrery_catalog::{Facet, FacetCount, FederatedResults, Hit, Query, SearchResults};
use orrery_federation::FederationHandle;
use orrery_protocol::NodeId;
use orrery_protocol::advert::{CollectionSummary, NodeAdvert};
use orrery_protocol::wire::{Request, Response};

use crate::catalog::{Catalog, CatalogError};

/// Queries that may run at once; more wait up to [`QUEUE_WAIT`], then are refused as busy.
const MAX_RUNNING: usize = 4;
/// How long a query waits for its turn.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Read-only catalog connections, reused across queries, with a bound on how many queries run
/// at once so a flood of requests cannot take every thread.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    pool: Mutex<Vec<Catalog>>,
    running: Arc<tokio::sync::Semaphore>,
    /// Recent complete answers (see [`super::search_cache`]).
    pub(crate) cache: super::search_cache::SearchCache,
}

impl Readers {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            pool: Mutex::new(Vec::new()),
            running: Arc::new(tokio::sync::Semaphore::new(MAX_RUNNING)),
            cache: Default::default(),
        }
    }

    /// Runs `f` on a read-only connection, on a blocking thread.
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Catalog) -> Result<T, CatalogError> + Send + 'static,
    ) -> Result<T, CatalogError> {
        let permit = tokio::time::timeout(QUEUE_WAIT, self.running.clone().acquire_owned())
            .await
            .map_err(|_| CatalogError::Busy)?
            .map_err(|_| CatalogError::Busy)?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let taken = me
                .pool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let catalog = match taken {
                Some(c) => c,
                None => Catalog::open_read_only(&me.path)?,
            };
            let result = f(&catalog);
            let mut pool = me
                .pool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if pool.len() < 4 {
                pool.push(catalog);
            }
            result
        })
        .await
        .unwrap_or_else(|e| {
            Err(CatalogError::Io {
                path: "catalog".into(),
                source: std::io::Error::other(e.to_string()),
            })
        })
    }
}

/// Whether any collection of a member's advert could hold a product matching `q`. False
/// positives only cost a request; a false negative would hide results, so every test here only
/// excludes what the summary rules out.
pub(crate) fn could_match(q: &Query, advert: &NodeAdvert) -> bool {
    advert.collections.iter().any(|c| summary_could_match(q, c))
}

fn listed(list: &Option<Vec<String>>, wanted: &[String]) -> bool {
    match list {
        None => true,
        Some(list) => wanted
            .iter()
            .any(|w| list.iter().any(|v| v.eq_ignore_ascii_case(w.trim()))),
    }
}

fn summary_could_match(q: &Query, c: &CollectionSummary) -> bool {
    for (facet, values) in &q.filters {
        let list = match facet {
            Facet::Mission => &c.missions,
            Facet::Instrument => &c.instruments,
            Facet::ProductType => &c.product_types,
            Facet::Band => &c.bands,
            Facet::Licence => &c.licences,
            Facet::Publisher => &c.publishers,
            Facet::Node => continue,
        };
        if !listed(list, values) {
            return false;
        }
    }
    if c.id != "*" && !q.collections.is_empty() && !q.collections.iter().any(|x| x == &c.id) {
        return false;
    }
    if let Some(tags) = &c.tags
        && !q
            .tags
            .iter()
            .all(|t| tags.iter().any(|x| x.eq_ignore_ascii_case(t.trim())))
    {
        return false;
    }
    if let Some(t) = &q.time {
        let Some((lo, hi)) = c.time else {
            return false;
        };
        if t.start.is_some_and(|s| s > hi) || t.end.is_some_and(|e| e < lo) {
            return false;
        }
    }
    if let Some(cone) = &q.cone {
        let Ok(cone) = cone.sky() else {
            return false;
        };
        let any = (0..CollectionSummary::SKY_CELLS)
            .filter(|i| c.has_sky_cell(*i))
            .any(|i| cell_may_meet(&cone, i / 36, i % 36));
        if !any {
            return false;
        }
    }
    true
}

/// Whether the 10° × 10° cell (`row` of Dec, `col` of RA) may meet the cone: its centre is
/// within the cone's radius plus the cell's own covering radius (the farthest corner; on a
/// cell bounded by meridians and parallels the farthest point is a corner).
fn cell_may_meet(cone: &SkyCone, row: usize, col: usize) -> bool {
    let dec0 = -90.0 + 10.0 * row as f64;
    let ra0 = 10.0 * col as f64;
    let centre = UnitVector::from_radec(ra0 + 5.0, dec0 + 5.0);
    let reach = [
        (ra0, dec0),
        (ra0, dec0 + 10.0),
        (ra0 + 10.0, dec0),
        (ra0 + 10.0, dec0 + 10.0),
    ]
    .iter()
    .map(|(ra, dec)| centre.separation_deg(&UnitVector::from_radec(*ra, *dec)))
    .fold(0.0, f64::max);
    centre.separation_deg(&cone.centre) <= cone.radius_deg + reach + 0.01
}

/// A member to ask: its id and display name.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) node: NodeId,
    pub(crate) name: String,
}

/// Whether a node passes the query's node filter (by name, or by a prefix of its id).
pub(crate) fn node_selected(q: &Query, node: &NodeId, name: &str) -> bool {
    let Some(wanted) = q.filters.get(&Facet::Node) else {
        return true;
    };
    let id = node.to_string();
    wanted.iter().any(|w| {
        let w = w.trim();
        name.eq_ignore_ascii_case(w) || (w.len() >= 6 && id.starts_with(&w.to_ascii_lowercase()))
    })
}

/// Keeps a peer's answer within what was asked: no more hits than the page, bounded facets,
/// and the origin set by this node (never taken from the answer).
fn sanitise(mut r: SearchResults, asked: &Query, from: &Target) -> SearchResults {
    r.hits.truncate(asked.page.limit as usize);
    for h in &mut r.hits {
        h.node = Some(from.node.to_string());
        h.node_name = Some(from.name.clone());
        // A link is kept only if it is a plain web address of sensible length.
        if h.url.as_ref().is_some_and(|u| {
            u.len() > 2048 || !(u.starts_with("http://") || u.starts_with("https://"))
        }) {
            h.url = None;
        }
    }
    r.facets.remove(&Facet::Node);
    for values in r.facets.values_mut() {
        values.truncate(MAX_FACET_VALUES);
        for v in values.iter_mut() {
            if v.value.len() > 256 {
                v.value = v.value.chars().take(64).collect();
            }
        }
    }
    if !asked.facets {
        r.facets.clear();
    }
    r.total = r.total.max(r.hits.len() as u64);
    r
}

/// Runs `q` here (when `local` names this node) and at every target, merging what answers
/// within `deadline`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn federated(
    me: Target,
    include_local: bool,
    readers: Arc<Readers>,
    fed: FederationHandle,
    targets: Vec<Target>,
    not_asked: u64,
    q: Query,
    deadline: Duration,
) -> Result<FederatedResults, CatalogError> {
    let asked = q.for_peers();
    let mut tasks = tokio::task::JoinSet::new();
    for t in targets {
        let fed = fed.clone();
        let asked = asked.clone();
        tasks.spawn(async move {
            let answer = tokio::time::timeout(
                deadline,
                fed.request(t.node, Request::Search(asked.clone())),
            )
            .await;
            let outcome = match answer {
                Ok(Ok(Response::Search(r))) => Ok(sanitise(r, &asked, &t)),
                Ok(Ok(Response::Refused(why))) => Err(format!("refused: {why:?}")),
                Ok(Ok(_)) => Err("answered something else".to_owned()),
                Ok(Err(e)) => Err(format!("unreachable: {e}")),
                Err(_) => Err(format!("no answer within {deadline:?}")),
            };
            (t, outcome)
        });
    }
    let mut parts: Vec<(String, SearchResults)> = Vec::new();
    if include_local {
        let local_q = asked.clone();
        let mut r = readers
            .run(move |c| crate::catalog::search::search(&c.conn, &local_q))
            .await?;
        for h in &mut r.hits {
            h.node = Some(me.node.to_string());
            h.node_name = Some(me.name.clone());
        }
        parts.push((me.name.clone(), r));
    }
    let mut missing = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let Ok((t, outcome)) = done else { continue };
        match outcome {
            Ok(r) => parts.push((t.name, r)),
            Err(why) => missing.push((t.name, why)),
        }
    }
    missing.sort();
    Ok(merge(&q, parts, missing, not_asked))
}

/// Merges the answers of several nodes into one page in the query's order.
pub(crate) fn merge(
    q: &Query,
    parts: Vec<(String, SearchResults)>,
    missing: Vec<(String, String)>,
    not_asked: u64,
) -> FederatedResults {
    let mut total = 0u64;
    let mut hits: Vec<Hit> = Vec::new();
    let mut counts: HashMap<Facet, HashMap<String, (String, u64)>> = HashMap::new();
    let mut answered = Vec::new();
    let mut per_node = Vec::new();
    for (name, r) in parts {
        total = total.saturating_add(r.total);
        per_node.push(FacetCount {
            value: name.clone(),
            count: r.total,
        });
        answered.push(name);
        hits.extend(r.hits);
        for (facet, values) in r.facets {
            let slot = counts.entry(facet).or_default();
            for v in values {
                let e = slot
                    .entry(v.value.to_lowercase())
                    .or_insert_with(|| (v.value.clone(), 0));
                e.1 = e.1.saturating_add(v.count);
            }
        }
    }
    hits.sort_by(|a, b| a.compare(b, q.sort));
    let hits: Vec<Hit> = hits
        .into_iter()
        .skip(q.page.offset as usize)
        .take(q.page.limit as usize)
        .collect();
    let mut facets = std::collections::BTreeMap::new();
    if q.facets {
        for (facet, slot) in counts {
            let mut values: Vec<FacetCount> = slot
                .into_values()
                .map(|(value, count)| FacetCount { value, count })
                .collect();
            values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            values.truncate(MAX_FACET_VALUES);
            facets.insert(facet, values);
        }
        per_node.retain(|v| v.count > 0);
        per_node.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        facets.insert(Facet::Node, per_node);
    }
    answered.sort();
    FederatedResults {
        results: SearchResults {
            total,
            hits,
            facets,
        },
        answered,
        missing,
        not_asked,
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use orrery_catalog::Cone;

    fn summary() -> CollectionSummary {
        let mut sky = vec![0u8; CollectionSummary::SKY_CELLS.div_ceil(8)];
        // The Crab: RA 83.6, Dec 22.0 → row 11, column 8.
        let i = CollectionSummary::sky_cell(11, 8);
        sky[i / 8] |= 1 << (i % 8);
        CollectionSummary {
            id: "xmm-crab".into(),
            title: "XMM".into(),
            missions: Some(vec!["XMM-Newton".into()]),
            instruments: Some(vec!["EPN".into()]),
            product_types: Some(vec!["image".into()]),
            bands: Some(vec!["x-ray".into()]),
            licences: None,
            publishers: Some(vec![]),
            tags: Some(vec!["snr".into()]),
            products: 3,
            bytes: 100,
            sky,
            time: Some((59_000.0, 59_100.0)),
            complete: true,
            readers: None,
        }
    }

    #[test]
    fn summaries_exclude_only_what_cannot_match() {
        let c = summary();
        let mut q = Query::default();
        assert!(summary_could_match(&q, &c));
        q.filters.insert(Facet::Mission, vec!["xmm-newton".into()]);
        assert!(summary_could_match(&q, &c));
        q.filters.insert(Facet::Licence, vec!["anything".into()]);
        assert!(summary_could_match(&q, &c), "an unlisted facet may match");
        q.filters.insert(Facet::Publisher, vec!["ESA".into()]);
        assert!(!summary_could_match(&q, &c), "no product has a publisher");
        let mut q = Query::default();
        q.cone = Some(Cone {
            ra: 83.63,
            dec: 22.01,
            radius: 0.5,
        });
        assert!(summary_could_match(&q, &c));
        q.cone = Some(Cone {
            ra: 266.4,
            dec: -29.0,
            radius: 1.0,
        });
        assert!(!summary_could_match(&q, &c));
        // A large cone centred elsewhere still reaches the cell.
        q.cone = Some(Cone {
            ra: 100.0,
            dec: 20.0,
            radius: 12.0,
        });
        assert!(summary_could_match(&q, &c));
        let mut q = Query::default();
        q.time = Some(orrery_catalog::TimeRange {
            start: Some(59_200.0),
            end: None,
        });
        assert!(!summary_could_match(&q, &c));
        q.time = Some(orrery_catalog::TimeRange {
            start: Some(59_050.0),
            end: Some(70_000.0),
        });
        assert!(summary_could_match(&q, &c));
        let mut q = Query::default();
        q.tags = vec!["SNR".into()];
        assert!(summary_could_match(&q, &c));
        q.tags = vec!["agn".into()];
        assert!(!summary_could_match(&q, &c));
    }

    fn hit(id: &str, t: f64) -> Hit {
        Hit {
            node: None,
            node_name: None,
            collection: "c".into(),
            id: format!("c/{id}"),
            title: id.into(),
            mission: None,
            instrument: None,
            product_type: None,
            band: None,
            target: None,
            ra: None,
            dec: None,
            t_min: Some(t),
            t_max: None,
            size: 1,
            blake3: String::new(),
            licence: None,
            url: None,
            rank: 0.0,
        }
    }

    #[test]
    fn merge_pages_across_nodes_in_order() {
        let mut q = Query {
            sort: orrery_catalog::Sort::Time,
            facets: true,
            ..Query::default()
        };
        q.page = orrery_catalog::Page {
            offset: 1,
            limit: 2,
        };
        let a = SearchResults {
            total: 2,
            hits: vec![hit("a1", 1.0), hit("a2", 4.0)],
            facets: [(
                Facet::Mission,
                vec![FacetCount {
                    value: "Gaia".into(),
                    count: 2,
                }],
            )]
            .into(),
        };
        let b = SearchResults {
            total: 5,
            hits: vec![hit("b1", 2.0), hit("b2", 3.0)],
            facets: [(
                Facet::Mission,
                vec![FacetCount {
                    value: "gaia".into(),
                    count: 5,
                }],
            )]
            .into(),
        };
        let m = merge(
            &q,
            vec![("A".into(), a), ("B".into(), b)],
            vec![("C".into(), "timeout".into())],
            1,
        );
        assert_eq!(m.results.total, 7);
        let ids: Vec<&str> = m.results.hits.iter().map(|h| h.title.as_str()).collect();
        assert_eq!(ids, ["b1", "b2"]);
        assert_eq!(m.results.facets[&Facet::Mission][0].count, 7);
        assert_eq!(m.results.facets[&Facet::Node][0].value, "B");
        assert_eq!(m.missing.len(), 1);
        assert_eq!(m.answered, ["A", "B"]);
    }
}
