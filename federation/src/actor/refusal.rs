//! Peers this node refuses (removed, banned, or asked to join without a valid invitation), and
//! how long each must wait before a new connection is even looked at: a per-peer backoff that
//! doubles with every refused attempt, in a bounded table.
//!
//! Sans-I/O: the actor asks, this module answers; time comes in as an argument.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// How many refused peers are remembered.
const MAX_REFUSED: usize = 4096;
/// The first backoff.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Why a peer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It was removed from the federation.
    Removed,
    /// It was banned for repeated offences.
    Banned,
    /// It asked to join without a valid invitation.
    JoinRefused,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Removed => "removed from the federation",
            Reason::Banned => "banned for repeated offences",
            Reason::JoinRefused => "asked to join without a valid invitation",
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    reason: Reason,
    attempts: u64,
    backoff: Duration,
    until: Instant,
    last: Instant,
}

/// The refused peers and their backoff.
#[derive(Debug, Default)]
pub(super) struct Refused {
    peers: HashMap<PeerId, Entry>,
}

/// What to do with a refused peer that connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Its backoff has not ended: close the connection at once.
    Close {
        /// Connection attempts counted so far.
        attempts: u64,
    },
    /// Its backoff ended: it may stay briefly to hear why it is refused (then it waits longer).
    Tell {
        /// Connection attempts counted so far.
        attempts: u64,
    },
}

impl Refused {
    /// Counts a connection from `peer`, refused for `reason`, and says what to do with it.
    pub(super) fn connected(&mut self, peer: PeerId, reason: Reason, now: Instant) -> Verdict {
        self.make_room(&peer);
        let e = self.peers.entry(peer).or_insert(Entry {
            reason,
            attempts: 0,
            backoff: FIRST_BACKOFF / 2,
            until: now,
            last: now,
        });
        e.reason = reason;
        e.attempts += 1;
        e.last = now;
        if now < e.until {
            return Verdict::Close {
                attempts: e.attempts,
            };
        }
        e.backoff = (e.backoff * 2).min(MAX_BACKOFF);
        e.until = now + e.backoff;
        Verdict::Tell {
            attempts: e.attempts,
        }
    }

    /// Whether `peer` is refused (so its connections go through [`Refused::connected`]).
    pub(super) fn is_refused(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// Records that `peer` was refused for `reason` now, starting its backoff.
    pub(super) fn note(&mut self, peer: PeerId, reason: Reason, now: Instant) {
        let _ = self.connected(peer, reason, now);
    }

    /// Forgets `peer` (its backoff ended and it may try again from scratch).
    pub(super) fn forgive(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// The refused peers: reason and connection attempts counted.
    pub(super) fn list(&self) -> impl Iterator<Item = (PeerId, Reason, u64)> + '_ {
        self.peers.iter().map(|(p, e)| (*p, e.reason, e.attempts))
    }

    fn make_room(&mut self, peer: &PeerId) {
        if self.peers.contains_key(peer) || self.peers.len() < MAX_REFUSED {
            return;
        }
        let quiet = self
            .peers
            .iter()
            .min_by_key(|(_, e)| e.last)
            .map(|(p, _)| *p);
        if let Some(q) = quiet {
            self.peers.remove(&q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_peer_is_told_once_then_closed_until_its_backoff_ends() {
        let mut r = Refused::default();
        let p = PeerId::random();
        let t = Instant::now();
        assert_eq!(
            r.connected(p, Reason::Removed, t),
            Verdict::Tell { attempts: 1 }
        );
        for i in 0..100 {
            let at = t + Duration::from_millis(i);
            assert!(matches!(
                r.connected(p, Reason::Removed, at),
                Verdict::Close { .. }
            ));
        }
        let later = t + FIRST_BACKOFF;
        assert!(matches!(
            r.connected(p, Reason::Removed, later),
            Verdict::Tell { .. }
        ));
        // The next backoff is twice as long.
        let soon = later + FIRST_BACKOFF + Duration::from_secs(1);
        assert!(matches!(
            r.connected(p, Reason::Removed, soon),
            Verdict::Close { .. }
        ));
        assert_eq!(r.list().next().map(|(_, _, n)| n), Some(103));
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut r = Refused::default();
        let t = Instant::now();
        for i in 0..(MAX_REFUSED as u64 + 10) {
            r.connected(
                PeerId::random(),
                Reason::JoinRefused,
                t + Duration::from_millis(i),
            );
        }
        assert_eq!(r.peers.len(), MAX_REFUSED);
    }
}
