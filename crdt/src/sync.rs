//! Sync between two replicas, with every change a peer sends verified by [`Project::ingest`]
//! before it touches the document.
//!
//! # Two modes
//!
//! **Live.** Each side remembers, per peer, the heads the peer is known to hold (`shared`: heads
//! the peer reported that are all known here). A message carries the sender's heads, the hashes
//! it is missing (dependencies of changes waiting here) and the changes the peer lacks: those
//! that are not ancestors of `shared`, minus those already sent and not yet reflected in the
//! peer's heads. Computing them costs the number of new changes, not the length of the history,
//! so a keystroke costs the same on the first day of a project and after a year of typing.
//! (Automerge's own protocol walks every ancestor of the peer's heads on every message it
//! receives, which at 260,000 changes costs 10–18 ms a message.)
//!
//! **Negotiation.** When neither side knows the other's heads (both changed while apart), there
//! is no known common base; the sides then run automerge's sync protocol (bloom filters of the
//! changes since the last common heads) until one knows the other's heads, and switch to live.
//! Automerge's `receive_sync_message` would apply the message's changes unchecked: here the
//! changes are taken out, verified and applied as a batch with the seals that came with them,
//! and only the rest of the message reaches automerge. Peers are kept on version-1 messages
//! (individual change chunks): the flags that would offer a whole compressed document are never
//! passed on.
//!
//! A fresh peer state starts by announcing its heads, with no changes (a probe); a peer that knows
//! them answers in live mode at once, so negotiation runs only after real divergence.
//!
//! **Snapshot.** A peer that has nothing gets the whole project as one compressed document with
//! the kept seals ([`crate::snapshot`]), verified as a whole, instead of every change one by one
//! (218 times the size for the `automerge-paper` history).
//!
//! Every message starts with one byte naming its mode: [`LIVE`], [`NEGOTIATE`] or [`SNAPSHOT`].

use std::collections::HashSet;

use automerge::sync::{ChunkList, Message, State, SyncDoc};
use automerge::{Change, ChangeHash as AmHash, ReadDoc};
use orrery_protocol::limits::MAX_BATCH_BYTES;
use orrery_protocol::{ChangeHash, ChangeSeal, Signed, Unverified};
use serde::{Deserialize, Serialize};

use crate::ingest::{IngestError, IngestReport, Origin, guarded};
use crate::project::{Batch, Project, from_hash, to_hash};

/// An encoded sync message and the seals covering the changes it carries.
type Outgoing = (Vec<u8>, Vec<Signed<ChangeSeal, Unverified>>);

/// First byte of a live message.
pub const LIVE: u8 = b'L';
/// First byte of a negotiation message (an automerge sync message follows).
pub const NEGOTIATE: u8 = b'N';
/// First byte of a snapshot message: the whole project for a replica with nothing.
pub const SNAPSHOT: u8 = b'S';

/// A snapshot message.
#[derive(Debug, Serialize, Deserialize)]
struct Whole {
    /// The sender's heads.
    heads: Vec<ChangeHash>,
    /// [`Project::snapshot`].
    document: serde_bytes_vec::Bytes,
}

/// Largest total of change bytes in one message; the rest follows in the next.
pub const MAX_MESSAGE_CHANGE_BYTES: usize = 16 * 1024 * 1024;

/// Largest snapshot sent in one message; a larger project goes to an empty peer in parts.
pub const MAX_SNAPSHOT_MESSAGE_BYTES: usize = 48 * 1024 * 1024;

/// Most changes a peer may ask for by name in one message.
const MAX_NEED: usize = 1024;

/// Above this many changes to send, they are collected in one pass over the history instead of
/// one by one.
const BULK_CHANGES: usize = 256;

/// A live message.
#[derive(Debug, Serialize, Deserialize)]
struct Live {
    /// Whether the sender's state for the receiver is fresh (it knows nothing of the receiver).
    probe: bool,
    /// The sender's heads.
    heads: Vec<ChangeHash>,
    /// Changes the sender is missing (dependencies of changes waiting there).
    need: Vec<ChangeHash>,
    /// Changes the receiver lacks, as far as the sender knows.
    changes: Vec<serde_bytes_vec::Bytes>,
}

/// Byte strings encoded as such (postcard writes a `Vec<u8>` element by element otherwise).
mod serde_bytes_vec {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Debug)]
    pub(super) struct Bytes(pub(super) Vec<u8>);

    impl Serialize for Bytes {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let v: &[u8] = Deserialize::deserialize(d)?;
            Ok(Bytes(v.to_vec()))
        }
    }
}

/// A peer's sync state for one project.
#[derive(Debug, Default)]
pub struct PeerState {
    /// Automerge's state, for negotiation.
    negotiation: State,
    /// Heads the peer is known to hold, all known here; `None` until such heads are known.
    shared: Option<Vec<AmHash>>,
    /// Changes sent to the peer that its reported heads do not yet reflect.
    sent: HashSet<AmHash>,
    /// Held changes (see [`crate::contest`]) sent to the peer on this connection: they are not
    /// in the document, so the peer's heads never reflect them.
    held_sent: HashSet<AmHash>,
    /// This side's heads as last announced to the peer.
    told: Option<Vec<AmHash>>,
    /// Changes the peer asked for by name.
    their_need: Vec<AmHash>,
    /// Whether the peer's last message came from a replica with no history at all.
    peer_empty: bool,
    /// Whether this side's probe was sent.
    probed: bool,
    /// Whether a snapshot was sent since the peer last spoke.
    snapshot_sent: bool,
    /// Whether the peer refused a snapshot before: it then gets changes in parts.
    no_snapshots: bool,
    /// The missing dependencies last asked for: asked again only when they change (or with
    /// other news), so two replicas missing a change neither has do not ask each other for ever.
    asked: Vec<AmHash>,
    /// Largest total of change bytes in one message (default [`MAX_MESSAGE_CHANGE_BYTES`]).
    message_limit: Option<usize>,
    /// Who the peer is, remembered for the changes of its messages that wait for dependencies.
    origin: Origin,
}

impl PeerState {
    /// A fresh state (a new connection).
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh state whose messages carry at most `bytes` of changes each (at least one change).
    pub fn with_message_limit(bytes: usize) -> Self {
        Self {
            message_limit: Some(bytes),
            ..Self::default()
        }
    }

    /// A fresh state for a peer that refused a snapshot: it gets whole histories in parts.
    pub fn without_snapshots() -> Self {
        Self {
            no_snapshots: true,
            ..Self::default()
        }
    }

    /// This state for a peer known as `origin`: changes of its messages that have to wait for
    /// their dependencies are remembered as sent by it, so a failure once they are complete is
    /// reported against it ([`IngestReport::refused`]).
    pub fn with_origin(self, origin: Origin) -> Self {
        Self { origin, ..self }
    }

    /// Whether the two sides have a known common base (live mode).
    pub fn is_live(&self) -> bool {
        self.shared.is_some()
    }
}

/// What an incoming sync message did.
#[derive(Debug, Default)]
pub struct Received {
    /// The ingest report.
    pub report: IngestReport,
    /// The changes that were applied and the seals that came with them: what to store.
    pub applied: Batch,
    /// Whether the replica was empty and is now the whole project from a snapshot (`applied`
    /// is then empty: store the document itself).
    pub whole: bool,
}

impl Project {
    /// The next sync message for a peer and the seals covering its changes, or `None` when the
    /// peer is up to date.
    pub fn sync_message(&self, state: &mut PeerState) -> Option<Outgoing> {
        // Changes waiting here for a dependency are outside automerge's view: ask for the
        // missing dependencies by name.
        let missing = self.pending.missing_deps(&self.doc);
        let heads = self.doc.get_heads();
        let Some(shared) = state.shared.clone() else {
            if !state.probed {
                // A probe: the peer answers in live mode if it knows these heads.
                state.probed = true;
                state.told = Some(heads.clone());
                return Some(self.live_message(true, heads, &missing, Vec::new()));
            }
            return self.negotiation_message(state, missing);
        };
        let mut candidates: Vec<AmHash> = self
            .doc
            .get_changes_meta(&shared)
            .into_iter()
            .map(|m| m.hash)
            .collect();
        let still: HashSet<AmHash> = candidates.iter().copied().collect();
        state.sent.retain(|h| still.contains(h));
        candidates.retain(|h| !state.sent.contains(h));
        let listed: HashSet<AmHash> = candidates.iter().copied().collect();
        for h in std::mem::take(&mut state.their_need) {
            // A held change is served too, so that a change building on it applies there.
            let here =
                self.doc.get_change_meta_by_hash(&h).is_some() || self.contest.holds(&to_hash(h));
            if !listed.contains(&h) && here {
                candidates.push(h);
            }
        }
        // Held changes travel too, once a connection, so that an edit held here is not kept by
        // this replica alone (the peer holds it as well, or applies it if a member there built
        // on it).
        if self.contest.held().next().is_some() {
            let queued: HashSet<AmHash> = candidates.iter().copied().collect();
            for h in self.contest.held().map(|(h, _)| from_hash(*h)) {
                if !state.held_sent.contains(&h) && !queued.contains(&h) {
                    candidates.push(h);
                }
            }
        }
        let ask = !missing.is_empty() && missing != state.asked;
        if candidates.is_empty() && !ask && state.told.as_ref() == Some(&heads) {
            return None;
        }
        state.asked = missing.clone();
        // A peer with nothing gets the compressed document, once (unless it is too large for one
        // message: then the changes go in parts).
        if state.peer_empty
            && shared.is_empty()
            && !heads.is_empty()
            && state.sent.is_empty()
            && !state.no_snapshots
        {
            if state.snapshot_sent {
                return None;
            }
            let document = self.snapshot_fits().then(|| self.snapshot());
            if let Some(document) = document.filter(|d| d.len() <= MAX_SNAPSHOT_MESSAGE_BYTES) {
                state.snapshot_sent = true;
                state.told = Some(heads.clone());
                // The snapshot carries the held changes.
                state
                    .held_sent
                    .extend(self.contest.held().map(|(h, _)| from_hash(*h)));
                let whole = Whole {
                    heads: heads.into_iter().map(to_hash).collect(),
                    document: serde_bytes_vec::Bytes(document),
                };
                let mut out = vec![SNAPSHOT];
                out.extend(orrery_protocol::encoding::encode(&whole));
                return Some((out, self.seals()));
            }
            // Too large for one: parts, without building the snapshot again for every one.
            state.no_snapshots = true;
        }
        let limit = state.message_limit.unwrap_or(MAX_MESSAGE_CHANGE_BYTES);
        let changes = self.changes_to_send(&shared, &candidates, state.peer_empty, limit);
        for c in &changes {
            let h = c.hash();
            if self.contest.holds(&to_hash(h)) {
                state.held_sent.insert(h);
            } else {
                state.sent.insert(h);
            }
        }
        state.told = Some(heads.clone());
        let raw: Vec<Vec<u8>> = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
        Some(self.live_message(false, heads, &missing, raw))
    }

    /// The changes named by `candidates` (not ancestors of `shared`), in causal order, up to
    /// [`MAX_MESSAGE_CHANGE_BYTES`].
    fn changes_to_send(
        &self,
        shared: &[AmHash],
        candidates: &[AmHash],
        bulk: bool,
        limit: usize,
    ) -> Vec<Change> {
        let wanted: HashSet<AmHash> = candidates.iter().copied().collect();
        let all: Vec<Change> = if bulk || candidates.len() > BULK_CHANGES {
            let mut all: Vec<Change> = self
                .doc
                .get_changes(shared)
                .into_iter()
                .filter(|c| wanted.contains(&c.hash()))
                .collect();
            // Held changes asked for too (the receiver orders what it gets).
            all.extend(
                self.contest
                    .held()
                    .filter(|(h, _)| wanted.contains(&crate::project::from_hash(**h)))
                    .map(|(_, c)| c.clone()),
            );
            all
        } else {
            candidates
                .iter()
                .filter_map(|h| {
                    self.doc.get_change_by_hash(h).or_else(|| {
                        // A held change is served to a peer that asks for it, so that a change
                        // building on it can be applied there.
                        self.contest.get(&crate::project::to_hash(*h)).cloned()
                    })
                })
                .collect()
        };
        let mut out = Vec::with_capacity(all.len());
        let mut bytes = 0;
        for c in all {
            let len = c.raw_bytes().len();
            if !out.is_empty() && bytes + len > limit {
                break;
            }
            bytes += len;
            out.push(c);
        }
        out
    }

    fn live_message(
        &self,
        probe: bool,
        heads: Vec<AmHash>,
        missing: &[AmHash],
        changes: Vec<Vec<u8>>,
    ) -> Outgoing {
        let seals = self.seals_for(&changes);
        let live = Live {
            probe,
            heads: heads.into_iter().map(to_hash).collect(),
            need: missing.iter().copied().map(to_hash).collect(),
            changes: changes.into_iter().map(serde_bytes_vec::Bytes).collect(),
        };
        let mut out = vec![LIVE];
        out.extend(orrery_protocol::encoding::encode(&live));
        (out, seals)
    }

    fn negotiation_message(&self, state: &mut PeerState, missing: Vec<AmHash>) -> Option<Outgoing> {
        let mut message = match self.doc.generate_sync_message(&mut state.negotiation) {
            Some(m) => m,
            None if missing.is_empty() || missing == state.asked => return None,
            None => Message {
                heads: self.doc.get_heads(),
                need: Vec::new(),
                have: Vec::new(),
                changes: ChunkList::empty(),
                flags: None,
                version: automerge::sync::MessageVersion::V1,
            },
        };
        message.need.retain(|h| !self.pending.holds(h));
        for h in &missing {
            if !message.need.contains(h) {
                message.need.push(*h);
            }
        }
        message.flags = None;
        state.asked = missing;
        state.told = Some(message.heads.clone());
        let changes: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
        let seals = self.seals_for(&changes);
        let mut out = vec![NEGOTIATE];
        out.extend(message.encode());
        Some((out, seals))
    }

    /// Verifies and applies a peer's sync message. On error nothing was applied.
    pub fn receive_sync_message(
        &mut self,
        state: &mut PeerState,
        bytes: &[u8],
        seals: Vec<Signed<ChangeSeal, Unverified>>,
    ) -> Result<Received, IngestError> {
        let (&mode, body) = bytes
            .split_first()
            .ok_or(IngestError::BadMessage("it is empty"))?;
        state.snapshot_sent = false;
        let (their_heads, received) = match mode {
            LIVE => self.receive_live(state, body, seals)?,
            NEGOTIATE => self.receive_negotiation(state, body, seals)?,
            SNAPSHOT => self.receive_whole(body, seals)?,
            _ => return Err(IngestError::BadMessage("it has an unknown mode")),
        };
        state.peer_empty = their_heads.is_empty();
        // Heads all known here are a base both sides hold: live from now on.
        if their_heads
            .iter()
            .all(|h| self.doc.get_change_meta_by_hash(h).is_some())
        {
            state.shared = Some(their_heads);
        }
        Ok(received)
    }

    fn receive_live(
        &mut self,
        state: &mut PeerState,
        body: &[u8],
        seals: Vec<Signed<ChangeSeal, Unverified>>,
    ) -> Result<(Vec<AmHash>, Received), IngestError> {
        let live: Live = orrery_protocol::encoding::decode("a sync message", body, MAX_BATCH_BYTES)
            .map_err(|_| IngestError::BadMessage("it does not decode"))?;
        let changes: Vec<Vec<u8>> = live.changes.into_iter().map(|b| b.0).collect();
        let (report, applied) =
            self.ingest_collecting(Batch { changes, seals }, state.origin, true)?;
        // An honest peer asks for the few dependencies it lacks; a longer list is cut.
        state.their_need = live
            .need
            .into_iter()
            .take(MAX_NEED)
            .map(from_hash)
            .collect();
        if live.probe && state.shared.is_some() {
            // The peer knows nothing of this side: the answer must carry these heads.
            state.told = None;
        }
        let heads = live.heads.into_iter().map(from_hash).collect();
        Ok((heads, self.received(report, applied)))
    }

    fn receive_negotiation(
        &mut self,
        state: &mut PeerState,
        body: &[u8],
        seals: Vec<Signed<ChangeSeal, Unverified>>,
    ) -> Result<(Vec<AmHash>, Received), IngestError> {
        let mut message = match guarded("a sync message", || Message::decode(body))? {
            Ok(m) => m,
            Err(_) => return Err(IngestError::BadMessage("it does not decode")),
        };
        let changes: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
        message.changes = ChunkList::empty();
        message.flags = None;
        let heads = message.heads.clone();
        // A negotiating peer waits for an answer carrying this side's heads.
        if state.shared.is_some() {
            state.told = None;
        }
        let (report, applied) =
            self.ingest_collecting(Batch { changes, seals }, state.origin, true)?;
        guarded("a sync message", || {
            self.doc
                .receive_sync_message(&mut state.negotiation, message)
        })?
        .map_err(|_| IngestError::Library {
            what: "a sync message",
        })?;
        Ok((heads, self.received(report, applied)))
    }

    fn receive_whole(
        &mut self,
        body: &[u8],
        seals: Vec<Signed<ChangeSeal, Unverified>>,
    ) -> Result<(Vec<AmHash>, Received), IngestError> {
        let whole: Whole =
            orrery_protocol::encoding::decode("a sync message", body, MAX_BATCH_BYTES)
                .map_err(|_| IngestError::BadMessage("it does not decode"))?;
        let heads: Vec<AmHash> = whole.heads.into_iter().map(from_hash).collect();
        if !self.doc.get_heads().is_empty() {
            // Changes arrived from elsewhere meanwhile: the answer's heads tell the peer what
            // to send instead.
            return Ok((heads, Received::default()));
        }
        let report = self.receive_snapshot(&whole.document.0, seals)?;
        Ok((
            heads,
            Received {
                report,
                applied: Batch::default(),
                whole: true,
            },
        ))
    }

    fn received(&self, report: IngestReport, applied: Vec<Vec<u8>>) -> Received {
        // The kept seals covering what was applied (waiting changes that applied now included),
        // not whatever the peer attached.
        let seals = self.seals_for(&applied);
        Received {
            report,
            applied: Batch {
                changes: applied,
                seals,
            },
            whole: false,
        }
    }
}
