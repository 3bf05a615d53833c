//! The node's Prometheus metrics: one registry per running node, counted where events already
//! flow (federation events, sync frames, refused changes, search and TAP calls) and encoded as
//! OpenMetrics text for `/metrics` on the metrics listener.
//!
//! Counters only ever grow while the node runs; gauges about the federation (members, adverts,
//! connections) are read from the federation's status at scrape time, so they are never stale.
//! Every label takes values from a fixed set (no peer ids, no project ids, no user text), so the
//! number of series is bounded. Labs do not exist yet and have no metrics.

use std::time::Duration;

use orrery_crdt::IngestError;
use orrery_federation::{Event as FedEvent, Offence};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which way a sync frame travelled.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Direction {
    /// Sent by this node.
    Sent,
    /// Received from a peer.
    Received,
}

/// Where a search ran.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Scope {
    /// This node's catalog only.
    Local,
    /// This node and every member whose advert can match.
    Federated,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// It answered.
    Ok,
    /// It was refused or failed.
    Error,
}

/// Label values are the variants' names in lower case.
macro_rules! lowercase_label {
    ($t:ty) => {
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                let name = format!("{self:?}").to_ascii_lowercase();
                EncodeLabelValue::encode(&name.as_str(), encoder)
            }
        }
    };
}
lowercase_label!(Direction);
lowercase_label!(Scope);
lowercase_label!(Outcome);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: Direction,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    scope: Scope,
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LabStateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    node: String,
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 1 ms to about 33 s (doubling): a local search takes milliseconds, a
/// federated one waits up to its deadline.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// What the federation looks like now, as the metrics need it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FederationGauges {
    /// Members of the federation, this node included.
    pub members: i64,
    /// Members with an open connection to this node.
    pub members_connected: i64,
    /// Members whose current advert this node holds.
    pub adverts_held: i64,
    /// Open connections (members and strangers asking to join).
    pub connections: i64,
}

/// The node's metrics. Cheap to update from any task (atomics); shared as an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    members: Gauge,
    members_connected: Gauge,
    adverts_held: Gauge,
    connections: Gauge,
    adverts: Counter,
    membership_changes: Counter,
    sync_frames: Family<DirectionLabel, Counter>,
    sync_bytes: Family<DirectionLabel, Counter>,
    refused: Family<ReasonLabel, Counter>,
    bans: Family<ReasonLabel, Counter>,
    search: HistogramFamily<ScopeLabel>,
    tap: HistogramFamily<OutcomeLabel>,
    labs: Family<LabStateLabel, Gauge>,
}

impl Metrics {
    /// A fresh registry for the node `node`.
    pub fn new(node: &str) -> Self {
        let mut registry = Registry::with_prefix("orrery");
        let info: Family<InfoLabels, Gauge> = Family::default();
        info.get_or_create(&InfoLabels {
            node: node.to_owned(),
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
        registry.register("node_info", "This node's id and version (always 1)", info);
        let m = Self {
            members: Gauge::default(),
            members_connected: Gauge::default(),
            adverts_held: Gauge::default(),
            connections: Gauge::default(),
            adverts: Counter::default(),
            membership_changes: Counter::default(),
            sync_frames: Family::default(),
            sync_bytes: Family::default(),
            refused: Family::default(),
            bans: Family::default(),
            search: Family::new_with_constructor(latency_histogram),
            tap: Family::new_with_constructor(latency_histogram),
            labs: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "members",
            "Members of the federation, this node included",
            m.members.clone(),
        );
        r.register(
            "members_connected",
            "Members with an open connection to this node",
            m.members_connected.clone(),
        );
        r.register(
            "adverts_held",
            "Members whose current advert this node holds",
            m.adverts_held.clone(),
        );
        r.register(
            "peer_connections",
            "Open peer connections (members and strangers asking to join)",
            m.connections.clone(),
        );
        r.register(
            "adverts_received",
            "Newer member adverts accepted",
            m.adverts.clone(),
        );
        r.register(
            "membership_updates",
            "Membership changes received from the federation",
            m.membership_changes.clone(),
        );
        r.register(
            "sync_frames",
            "Project sync frames, by direction",
            m.sync_frames.clone(),
        );
        r.register(
            "sync_bytes",
            "Bytes of project sync messages, by direction",
            m.sync_bytes.clone(),
        );
        r.register(
            "refused_changes",
            "Sync data refused after verification, by reason (nothing of it was stored)",
            m.refused.clone(),
        );
        r.register(
            "peers_banned",
            "Peers banned for repeated offences, by the offence that banned them",
            m.bans.clone(),
        );
        r.register(
            "search_duration_seconds",
            "Searches through the HTTP face, by scope and outcome",
            m.search.clone(),
        );
        r.register(
            "tap_duration_seconds",
            "TAP queries through the HTTP face, by outcome",
            m.tap.clone(),
        );
        r.register("labs", "Labs on this node, by state", m.labs.clone());
        Self { registry, ..m }
    }

    /// Sets how many labs are in each state (every state is listed, zero or not).
    pub fn set_labs(&self, counts: &[(&'static str, i64)]) {
        for (state, n) in counts {
            self.labs.get_or_create(&LabStateLabel { state }).set(*n);
        }
    }

    /// Counts what a federation event says (adverts, membership changes, bans).
    pub fn on_federation(&self, event: &FedEvent) {
        match event {
            FedEvent::Advert(_) => {
                self.adverts.inc();
            }
            FedEvent::Membership(_) => {
                self.membership_changes.inc();
            }
            FedEvent::Banned { reason, .. } => {
                self.bans
                    .get_or_create(&ReasonLabel {
                        reason: offence_label(reason),
                    })
                    .inc();
            }
            _ => {}
        }
    }

    /// Counts one sync frame of `bytes` bytes.
    pub fn sync_frame(&self, direction: Direction, bytes: usize) {
        let label = DirectionLabel { direction };
        self.sync_frames.get_or_create(&label).inc();
        self.sync_bytes
            .get_or_create(&label)
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// Counts sync data refused for `error`.
    pub fn refused(&self, error: &IngestError) {
        self.refused
            .get_or_create(&ReasonLabel {
                reason: ingest_label(error),
            })
            .inc();
    }

    /// Records a search through the HTTP face.
    pub fn search(&self, scope: Scope, outcome: Outcome, took: Duration) {
        self.search
            .get_or_create(&ScopeLabel { scope, outcome })
            .observe(took.as_secs_f64());
    }

    /// Records a TAP query through the HTTP face.
    pub fn tap(&self, outcome: Outcome, took: Duration) {
        self.tap
            .get_or_create(&OutcomeLabel { outcome })
            .observe(took.as_secs_f64());
    }

    /// Sets the federation gauges (read from the federation's status before a scrape).
    pub fn set_federation(&self, g: FederationGauges) {
        self.members.set(g.members);
        self.members_connected.set(g.members_connected);
        self.adverts_held.set(g.adverts_held);
        self.connections.set(g.connections);
    }

    /// Every metric as OpenMetrics text ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a metric.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        out
    }
}

/// The label of a refusal: the kind of verification failure, never its details.
fn ingest_label(e: &IngestError) -> &'static str {
    match e {
        IngestError::Oversize { .. } => "oversize",
        IngestError::Malformed { .. } => "malformed",
        IngestError::BadMessage(_) => "bad_message",
        IngestError::BadSnapshot(_) => "bad_snapshot",
        IngestError::Tampered { .. } => "tampered",
        IngestError::BadActor { .. } => "bad_actor",
        IngestError::ForgedSeal(_) => "forged_seal",
        IngestError::WrongProject { .. } => "wrong_project",
        IngestError::SealNamesOthers { .. } => "seal_names_others",
        IngestError::Unsigned { .. } => "unsigned",
        IngestError::NotPermitted { .. } => "not_permitted",
        IngestError::Forbidden { .. } => "forbidden",
        IngestError::SecondRoot { .. } => "second_root",
        IngestError::BadGenesis { .. } => "bad_genesis",
        IngestError::Equivocation { .. } => "equivocation",
        IngestError::TooManyPending { .. } => "too_many_pending",
        IngestError::Library { .. } => "library",
        IngestError::Corrupt(_) => "corrupt",
    }
}

/// The label of an offence.
fn offence_label(o: &Offence) -> &'static str {
    match o {
        Offence::BadChanges { .. } => "bad_changes",
        Offence::BadParkedChange { .. } => "bad_parked_change",
        Offence::BadOutput { .. } => "bad_output",
        Offence::BadGossip => "bad_gossip",
    }
}
