//! The automerge sync protocol with verification: one [`automerge::sync::State`] per peer, and
//! every change a peer sends goes through [`Project::ingest`] before the message is processed.
//!
//! Automerge's `receive_sync_message` would apply the message's changes unchecked. Here the
//! changes are taken out of the message, verified and applied as a batch with the seals that
//! came with them, and only the rest of the message (heads, needs, bloom filter) reaches
//! automerge. Peers are kept on version-1 messages (individual change chunks): the flags that
//! would offer a whole compressed document are never passed on.

use automerge::sync::{ChunkList, Message, State, SyncDoc};
use orrery_protocol::{ChangeSeal, Signed, Unverified};

use crate::ingest::{IngestError, IngestReport, guarded};
use crate::project::{Batch, Project};

/// An encoded sync message and the seals covering the changes it carries.
type Outgoing = (Vec<u8>, Vec<Signed<ChangeSeal, Unverified>>);

/// A peer's sync state for one project.
#[derive(Debug, Default)]
pub struct PeerState(State);

impl PeerState {
    /// A fresh state (a new connection).
    pub fn new() -> Self {
        Self(State::new())
    }
}

/// What an incoming sync message did.
#[derive(Debug, Default)]
pub struct Received {
    /// The ingest report.
    pub report: IngestReport,
    /// The changes that were applied and the seals that came with them: what to store.
    pub applied: Batch,
}

impl Project {
    /// The next sync message for a peer and the seals covering its changes, or `None` when the
    /// peer is up to date.
    pub fn sync_message(&self, state: &mut PeerState) -> Option<Outgoing> {
        // Changes waiting here for a dependency are outside automerge's view: it would ask for
        // the waiting change itself (which the peer believes it sent) instead of the one that
        // is missing, and the two sides would trade empty messages for ever. Ask for the
        // missing dependencies instead.
        let missing = self.pending.missing_deps(&self.doc);
        let mut message = match self.doc.generate_sync_message(&mut state.0) {
            Some(m) => m,
            None if missing.is_empty() => return None,
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
        for h in missing {
            if !message.need.contains(&h) {
                message.need.push(h);
            }
        }
        message.flags = None;
        let changes: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
        let seals = self.seals_for(&changes);
        Some((message.encode(), seals))
    }

    /// Verifies and applies a peer's sync message. On error nothing was applied.
    pub fn receive_sync_message(
        &mut self,
        state: &mut PeerState,
        bytes: &[u8],
        seals: Vec<Signed<ChangeSeal, Unverified>>,
    ) -> Result<Received, IngestError> {
        let mut message = match guarded("a sync message", || Message::decode(bytes))? {
            Ok(m) => m,
            Err(_) => {
                return Err(IngestError::Malformed {
                    index: 0,
                    reason: "the sync message does not decode",
                });
            }
        };
        let changes: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
        message.changes = ChunkList::empty();
        message.flags = None;
        let (report, applied_changes) = self.ingest_collecting(Batch { changes, seals }, true)?;
        guarded("a sync message", || {
            self.doc.receive_sync_message(&mut state.0, message)
        })?
        .map_err(|_| IngestError::Library {
            what: "a sync message",
        })?;
        // The kept seals covering what was applied (waiting changes that applied now included),
        // not whatever the peer attached.
        let seals = self.seals_for(&applied_changes);
        Ok(Received {
            report,
            applied: Batch {
                changes: applied_changes,
                seals,
            },
        })
    }
}
