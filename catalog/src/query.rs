//! The one query model: `orrery search`, the HTTP API and federated search all send a [`Query`]
//! and get [`SearchResults`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sky::{SkyCone, SkyError};

/// Most hits one page may hold.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Deepest hit a query may reach (offset + limit). Deeper paging is a crawl, not a search.
pub const MAX_DEPTH: u32 = 10_000;
/// Longest free-text query, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Most values one filter may list.
pub const MAX_FILTER_VALUES: usize = 64;
/// Longest filter value, in bytes.
pub const MAX_VALUE_BYTES: usize = 256;
/// Most facet values returned per facet.
pub const MAX_FACET_VALUES: usize = 50;

/// The facets a search counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Facet {
    /// The mission or observatory (`obs_collection`).
    Mission,
    /// The instrument.
    Instrument,
    /// The ObsCore data product type (image, spectrum, cube, …).
    ProductType,
    /// The spectral band (radio … gamma-ray).
    Band,
    /// The licence, as an SPDX identifier or a URL.
    Licence,
    /// The publisher.
    Publisher,
    /// The node that holds the product (counted by federated search).
    Node,
}

impl Facet {
    /// Every facet, in display order.
    pub const ALL: [Facet; 7] = [
        Facet::Mission,
        Facet::Instrument,
        Facet::ProductType,
        Facet::Band,
        Facet::Licence,
        Facet::Publisher,
        Facet::Node,
    ];

    /// The facet's name in the CLI and the API.
    pub fn name(self) -> &'static str {
        match self {
            Facet::Mission => "mission",
            Facet::Instrument => "instrument",
            Facet::ProductType => "product_type",
            Facet::Band => "band",
            Facet::Licence => "licence",
            Facet::Publisher => "publisher",
            Facet::Node => "node",
        }
    }
}

/// A cone on the sky, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cone {
    /// Right ascension of the centre (ICRS).
    pub ra: f64,
    /// Declination of the centre (ICRS).
    pub dec: f64,
    /// Radius.
    pub radius: f64,
}

impl Cone {
    /// The checked cone.
    pub fn sky(&self) -> Result<SkyCone, SkyError> {
        SkyCone::new(self.ra, self.dec, self.radius)
    }
}

/// A time range as Modified Julian Dates; a product matches when its observation overlaps it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeRange {
    /// Earliest MJD, if bounded.
    pub start: Option<f64>,
    /// Latest MJD, if bounded.
    pub end: Option<f64>,
}

/// The order of hits. Every order ends with the product id, so pages never overlap or skip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sort {
    /// Best text match first (by id without text).
    #[default]
    Relevance,
    /// Earliest observation first.
    Time,
    /// Latest observation first.
    TimeDesc,
    /// By title.
    Title,
    /// By product id.
    Id,
}

/// Which hits to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Hits to skip.
    pub offset: u32,
    /// Hits to return, at most [`MAX_PAGE_SIZE`].
    pub limit: u32,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            offset: 0,
            limit: 20,
        }
    }
}

/// A search of the catalog. Every field may be left out (`{"text": "crab"}` is a query).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Query {
    /// Free text, matched against titles, descriptions, targets and header values. Words are
    /// all required; `"a phrase"` in quotes is matched as a phrase; a trailing `*` matches a
    /// prefix. No other syntax is interpreted.
    pub text: Option<String>,
    /// Facet filters: a product matches when, for every facet listed, its value is one of those
    /// given (case-insensitive).
    pub filters: BTreeMap<Facet, Vec<String>>,
    /// Products that carry every one of these tags.
    pub tags: Vec<String>,
    /// Products in one of these collections.
    pub collections: Vec<String>,
    /// A cone on the sky.
    pub cone: Option<Cone>,
    /// An observation time range.
    pub time: Option<TimeRange>,
    /// The order of hits.
    pub sort: Sort,
    /// Which hits.
    pub page: Page,
    /// Whether to count facet values over every match.
    pub facets: bool,
}

/// Why a query cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// Page size out of range.
    #[error("a page holds 1 to {MAX_PAGE_SIZE} hits, not {0}")]
    PageSize(u32),
    /// Paging too deep.
    #[error(
        "offset + limit may be at most {MAX_DEPTH}; narrow the query instead of paging that deep"
    )]
    TooDeep,
    /// Text too long or empty.
    #[error("the search text must be 1 to {MAX_TEXT_BYTES} bytes")]
    Text,
    /// Too many values, or a value too long or empty.
    #[error("filter {0}: give 1 to {MAX_FILTER_VALUES} values of 1 to {MAX_VALUE_BYTES} bytes")]
    Filter(&'static str),
    /// A bad cone.
    #[error("cone: {0}")]
    Cone(#[from] SkyError),
    /// A bad time range.
    #[error("time range: {0}")]
    Time(&'static str),
}

impl Query {
    /// Checks every limit; a query that passes can be run.
    pub fn validate(&self) -> Result<(), QueryError> {
        if self.page.limit == 0 || self.page.limit > MAX_PAGE_SIZE {
            return Err(QueryError::PageSize(self.page.limit));
        }
        if self.page.offset.saturating_add(self.page.limit) > MAX_DEPTH {
            return Err(QueryError::TooDeep);
        }
        if let Some(text) = &self.text
            && (text.trim().is_empty() || text.len() > MAX_TEXT_BYTES)
        {
            return Err(QueryError::Text);
        }
        let check = |name: &'static str, values: &[String]| {
            let ok = !values.is_empty()
                && values.len() <= MAX_FILTER_VALUES
                && values
                    .iter()
                    .all(|v| !v.trim().is_empty() && v.len() <= MAX_VALUE_BYTES);
            if ok {
                Ok(())
            } else {
                Err(QueryError::Filter(name))
            }
        };
        for (facet, values) in &self.filters {
            check(facet.name(), values)?;
        }
        if !self.tags.is_empty() {
            check("tag", &self.tags)?;
        }
        if !self.collections.is_empty() {
            check("collection", &self.collections)?;
        }
        if let Some(cone) = &self.cone {
            cone.sky()?;
        }
        if let Some(time) = &self.time {
            for bound in [time.start, time.end].into_iter().flatten() {
                if !bound.is_finite() {
                    return Err(QueryError::Time("bounds must be finite MJDs"));
                }
            }
            if let (Some(start), Some(end)) = (time.start, time.end)
                && start > end
            {
                return Err(QueryError::Time("the start is after the end"));
            }
        }
        Ok(())
    }

    /// One page of `collection`'s products in product-id order: `limit` from `offset`, to list
    /// a whole collection page by page.
    pub fn collection_page(collection: &str, offset: u32, limit: u32) -> Query {
        Query {
            collections: vec![collection.to_owned()],
            sort: Sort::Id,
            page: Page { offset, limit },
            ..Query::default()
        }
    }

    /// The query a node asks each peer in a federated search: the same filters, from the first
    /// hit to the last one this page needs, so the merge can page correctly.
    pub fn for_peers(&self) -> Query {
        let mut q = self.clone();
        q.page = Page {
            offset: 0,
            limit: self
                .page
                .offset
                .saturating_add(self.page.limit)
                .min(MAX_PAGE_SIZE),
        };
        // The node filter is applied by the asking node, never by the one asked.
        q.filters.remove(&Facet::Node);
        q
    }
}

/// One product found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The node holding it, as its node id (hex); `None` for the local node before merging.
    pub node: Option<String>,
    /// The node's display name, if known.
    pub node_name: Option<String>,
    /// The collection id.
    pub collection: String,
    /// The product id, unique within the node (`collection/relative/path`).
    pub id: String,
    /// A title.
    pub title: String,
    /// Mission or observatory.
    pub mission: Option<String>,
    /// Instrument.
    pub instrument: Option<String>,
    /// ObsCore product type.
    pub product_type: Option<String>,
    /// Spectral band.
    pub band: Option<String>,
    /// Target name.
    pub target: Option<String>,
    /// Position (RA, Dec) in degrees, if known.
    pub ra: Option<f64>,
    /// Declination in degrees, if known.
    pub dec: Option<f64>,
    /// Observation start, MJD.
    pub t_min: Option<f64>,
    /// Observation end, MJD.
    pub t_max: Option<f64>,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the file, hex.
    pub blake3: String,
    /// Licence.
    pub licence: Option<String>,
    /// Where the file can be fetched (the holding node's HTTP address), if it serves one.
    #[serde(default)]
    pub url: Option<String>,
    /// Sort key for relevance: lower is better (the text rank), 0 without text.
    pub rank: f64,
}

/// A facet value and how many matches have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetCount {
    /// The value.
    pub value: String,
    /// Matches with that value.
    pub count: u64,
}

/// The answer to a query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    /// Every match, not just this page.
    pub total: u64,
    /// This page of hits.
    pub hits: Vec<Hit>,
    /// Facet counts over every match (empty unless asked for).
    pub facets: BTreeMap<Facet, Vec<FacetCount>>,
}

/// The answer of a federated search: the merged results, and which nodes answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FederatedResults {
    /// Hits of every node that answered, merged in the query's order; the total and the facet
    /// counts are sums over those nodes.
    pub results: SearchResults,
    /// The nodes that answered, by name.
    pub answered: Vec<String>,
    /// The nodes asked that did not answer in time or refused, by name, with the reason.
    pub missing: Vec<(String, String)>,
    /// How many member nodes were not asked because their adverts cannot match.
    pub not_asked: u64,
}

impl Hit {
    /// The total order of [`Sort`]: the requested key, then the node and product id.
    pub fn compare(&self, other: &Hit, sort: Sort) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let opt = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let primary = match sort {
            Sort::Relevance => self.rank.total_cmp(&other.rank),
            Sort::Time => opt(self.t_min, other.t_min),
            Sort::TimeDesc => opt(other.t_min, self.t_min).then_with(|| {
                // Products without a time go last either way.
                match (self.t_min, other.t_min) {
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    _ => Ordering::Equal,
                }
            }),
            Sort::Title => self.title.cmp(&other.title),
            Sort::Id => Ordering::Equal,
        };
        // The id is `collection/path`: comparing the collection, then the id, is the order of
        // (collection, path) that a node's own SQL uses.
        primary
            .then_with(|| self.collection.cmp(&other.collection))
            .then_with(|| self.id.cmp(&other.id))
            .then_with(|| self.node.cmp(&other.node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> Query {
        Query::default()
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(query().validate(), Ok(()));
        let mut q = query();
        q.page.limit = 0;
        assert_eq!(q.validate(), Err(QueryError::PageSize(0)));
        q.page.limit = 5000;
        assert_eq!(q.validate(), Err(QueryError::PageSize(5000)));
        q.page = Page {
            offset: u32::MAX,
            limit: 10,
        };
        assert_eq!(q.validate(), Err(QueryError::TooDeep));
        let mut q = query();
        q.text = Some("  ".into());
        assert_eq!(q.validate(), Err(QueryError::Text));
        let mut q = query();
        q.filters.insert(Facet::Mission, vec![]);
        assert_eq!(q.validate(), Err(QueryError::Filter("mission")));
        let mut q = query();
        q.time = Some(TimeRange {
            start: Some(2.0),
            end: Some(1.0),
        });
        assert!(matches!(q.validate(), Err(QueryError::Time(_))));
        let mut q = query();
        q.cone = Some(Cone {
            ra: 0.0,
            dec: -91.0,
            radius: 1.0,
        });
        assert!(matches!(q.validate(), Err(QueryError::Cone(_))));
    }

    #[test]
    fn peers_are_asked_for_every_hit_up_to_the_page() {
        let mut q = query();
        q.page = Page {
            offset: 40,
            limit: 20,
        };
        q.filters.insert(Facet::Node, vec!["esac".into()]);
        let p = q.for_peers();
        assert_eq!(
            p.page,
            Page {
                offset: 0,
                limit: 60
            }
        );
        assert!(!p.filters.contains_key(&Facet::Node));
    }
}
