//! Why a peer was penalised: every offence is charged with a reason, logged with the peer, and
//! kept with a ban so that the operator can see why a peer was shut out.

use std::fmt;

/// What a peer did to be penalised. Each variant is something only a lying or broken peer does;
/// limits and library failures are never offences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offence {
    /// It sent project changes (or a snapshot) that failed verification: forged seals, changes
    /// its author may not make, malformed or altered bytes.
    BadChanges {
        /// The verification error, as text.
        detail: String,
    },
    /// A change it sent earlier waited for a dependency and failed verification once the
    /// dependency arrived (from whichever peer): it, not the peer that completed it, is charged.
    BadParkedChange {
        /// The verification error, as text.
        detail: String,
    },
    /// It served stored-output bytes that do not match the hash they were asked for by.
    BadOutput {
        /// The mismatch, as text.
        detail: String,
    },
    /// It relayed a gossip message that failed validation.
    BadGossip,
}

impl Offence {
    /// A short fixed description of the kind of offence, for log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Offence::BadChanges { .. } => "refused changes",
            Offence::BadParkedChange { .. } => "refused parked change",
            Offence::BadOutput { .. } => "refused stored output",
            Offence::BadGossip => "invalid gossip",
        }
    }
}

impl fmt::Display for Offence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offence::BadChanges { detail }
            | Offence::BadParkedChange { detail }
            | Offence::BadOutput { detail } => write!(f, "{}: {detail}", self.kind()),
            Offence::BadGossip => f.write_str(self.kind()),
        }
    }
}

/// A peer banned now, and the offence that banned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// The banned node.
    pub node: orrery_protocol::NodeId,
    /// The offence that reached the limit.
    pub reason: Offence,
    /// Seconds left until the ban ends.
    pub remaining_secs: u64,
}
