//! Who of the peers that are not members may stay connected, and for how long: a few slots for
//! strangers (a node with an invitation needs one to ask to join), handed out oldest-first so
//! that throwaway identities cannot hold them all, and a per-address budget of new stranger
//! connections so that one address cannot churn through the slots.
//!
//! Sans-I/O: the actor asks, this module answers; time comes in as an argument.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// How many non-members may be connected at once.
pub(super) const MAX_STRANGERS: usize = 16;
/// How many addresses the per-address budget remembers.
const MAX_ADDRESSES: usize = 1024;
/// New stranger connections one address may open at once.
const ADDRESS_BURST: f64 = 32.0;
/// New stranger connections one address may open per second, on average.
const ADDRESS_REFILL_PER_SEC: f64 = 1.0;

/// What to do with a stranger that just connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// It holds a free slot.
    Room,
    /// It holds the slot of this older stranger, which must be disconnected.
    Evict(PeerId),
    /// Its address opened too many stranger connections lately: disconnect it.
    RateLimited,
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    tokens: f64,
    at: Instant,
}

/// The stranger slots and the per-address budget of new stranger connections.
#[derive(Debug, Default)]
pub(super) struct Strangers {
    slots: HashMap<PeerId, Instant>,
    budgets: HashMap<IpAddr, Budget>,
}

impl Strangers {
    /// Whether `peer` holds a slot.
    pub(super) fn contains(&self, peer: &PeerId) -> bool {
        self.slots.contains_key(peer)
    }

    /// Gives `peer`, connected from `ip`, a slot if its address has budget left, evicting the
    /// oldest stranger when every slot is taken: a newcomer always gets a slot, and holds it
    /// until [`MAX_STRANGERS`] newer strangers came or its grace period ends.
    pub(super) fn admit(&mut self, peer: PeerId, ip: Option<IpAddr>, now: Instant) -> Admit {
        if self.slots.contains_key(&peer) {
            return Admit::Room;
        }
        if let Some(ip) = ip
            && !self.spend(ip, now)
        {
            return Admit::RateLimited;
        }
        let evicted = if self.slots.len() >= MAX_STRANGERS {
            let oldest = self
                .slots
                .iter()
                .min_by_key(|(_, since)| **since)
                .map(|(p, _)| *p);
            if let Some(p) = oldest {
                self.slots.remove(&p);
            }
            oldest
        } else {
            None
        };
        self.slots.insert(peer, now);
        evicted.map_or(Admit::Room, Admit::Evict)
    }

    /// Frees `peer`'s slot (it disconnected or became a member).
    pub(super) fn remove(&mut self, peer: &PeerId) {
        self.slots.remove(peer);
    }

    /// Frees and returns the slots held longer than `grace`.
    pub(super) fn expire(&mut self, now: Instant, grace: Duration) -> Vec<PeerId> {
        let expired: Vec<PeerId> = self
            .slots
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) > grace)
            .map(|(p, _)| *p)
            .collect();
        for p in &expired {
            self.slots.remove(p);
        }
        expired
    }

    /// Takes one new connection from `ip`'s budget; false if it has none left.
    fn spend(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.budgets.contains_key(&ip) && self.budgets.len() >= MAX_ADDRESSES {
            // Forget the address that was quiet longest; a full budget is what it would have.
            let quiet = self
                .budgets
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(ip, _)| *ip);
            if let Some(q) = quiet {
                self.budgets.remove(&q);
            }
        }
        let budget = self.budgets.entry(ip).or_insert(Budget {
            tokens: ADDRESS_BURST,
            at: now,
        });
        let elapsed = now.saturating_duration_since(budget.at).as_secs_f64();
        budget.tokens = (budget.tokens + elapsed * ADDRESS_REFILL_PER_SEC).min(ADDRESS_BURST);
        budget.at = now;
        if budget.tokens >= 1.0 {
            budget.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn a_newcomer_evicts_the_oldest_stranger_when_the_slots_are_full() {
        let mut s = Strangers::default();
        let t = Instant::now();
        let first = PeerId::random();
        assert_eq!(s.admit(first, ip(1), t), Admit::Room);
        for i in 1..MAX_STRANGERS {
            let at = t + Duration::from_millis(i as u64);
            assert_eq!(s.admit(PeerId::random(), ip(1), at), Admit::Room);
        }
        let joiner = PeerId::random();
        let later = t + Duration::from_secs(1);
        assert_eq!(s.admit(joiner, ip(2), later), Admit::Evict(first));
        assert!(s.contains(&joiner));
        assert!(!s.contains(&first));
    }

    #[test]
    fn one_address_cannot_churn_through_the_slots() {
        let mut s = Strangers::default();
        let t = Instant::now();
        for _ in 0..ADDRESS_BURST as usize {
            assert_ne!(s.admit(PeerId::random(), ip(1), t), Admit::RateLimited);
        }
        assert_eq!(s.admit(PeerId::random(), ip(1), t), Admit::RateLimited);
        // Another address is not affected, and the budget refills with time.
        assert_ne!(s.admit(PeerId::random(), ip(2), t), Admit::RateLimited);
        let later = t + Duration::from_secs(2);
        assert_ne!(s.admit(PeerId::random(), ip(1), later), Admit::RateLimited);
    }

    #[test]
    fn the_address_table_stays_bounded() {
        let mut s = Strangers::default();
        let t = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            let a = IpAddr::from(i.to_be_bytes());
            let _ = s.admit(
                PeerId::random(),
                Some(a),
                t + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(s.budgets.len() <= MAX_ADDRESSES);
        assert!(s.slots.len() <= MAX_STRANGERS);
    }

    #[test]
    fn expired_slots_are_freed() {
        let mut s = Strangers::default();
        let t = Instant::now();
        let p = PeerId::random();
        s.admit(p, None, t);
        assert!(
            s.expire(t + Duration::from_secs(1), Duration::from_secs(5))
                .is_empty()
        );
        assert_eq!(
            s.expire(t + Duration::from_secs(6), Duration::from_secs(5)),
            vec![p]
        );
        assert!(!s.contains(&p));
    }
}
