//! Messages that cross a node boundary, with the limits checked before they are decoded.
//!
//! Two channels carry them: gossip (one topic per federation, [`Gossip`]) and request-response
//! ([`Request`] / [`Response`]). Every message is encoded canonically ([`crate::encoding`]) and
//! decoded only after its length was checked against the limit of its channel.

use serde::{Deserialize, Serialize};

use crate::advert::NodeAdvert;
use crate::encoding::{self, DecodeError};
use crate::federation::{JoinRequest, MembershipEvent};
use crate::seal::{ChangeSeal, ProjectId};
use crate::signing::{Signed, Unverified};

/// Largest gossip message.
pub const MAX_GOSSIP_BYTES: usize = 512 * 1024;
/// Largest request or response.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// What is gossiped to every member.
// Messages are decoded, handled and dropped one at a time; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Gossip {
    /// A node's advert.
    Advert(Signed<NodeAdvert, Unverified>),
    /// A membership event.
    Membership(MembershipEvent),
}

/// One step of the sync protocol for one project: an automerge sync message whose changes are
/// verified against the seals before anything is applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncFrame {
    /// The project.
    pub project: ProjectId,
    /// An automerge sync message (`automerge::sync::Message::encode`), or empty when the sender
    /// has nothing to say.
    #[serde(with = "bytes")]
    pub message: Vec<u8>,
    /// Seals covering the changes in the message.
    pub seals: Vec<Signed<ChangeSeal, Unverified>>,
}

/// Why a request was refused, in words the other operator can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The sender is not a member of the federation.
    NotAMember,
    /// The join request was refused (bad invitation, expired, wrong code).
    JoinRefused,
    /// This node does not replicate that project (no member of it lives here, or it is not
    /// public).
    NotReplicated,
    /// The frame's changes failed verification.
    Rejected,
    /// The request is malformed or too large.
    Malformed,
    /// The node is busy; try again later.
    Busy,
    /// The node does not hold what was asked for (yet).
    Missing,
}

/// A request from one node to another.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Join the federation with an invitation.
    Join(Signed<JoinRequest, Unverified>),
    /// Send me every membership event you hold.
    Membership,
    /// Send me the newest advert you hold of every member.
    Adverts,
    /// A sync step.
    Sync(SyncFrame),
    /// Search your catalog (federated search asks each member whose adverts can match).
    Search(orrery_catalog::Query),
    /// Where an author is in a project you hold (never stored).
    Presence(Signed<crate::presence::Presence, Unverified>),
    /// Where your data plane (the iroh endpoint that carries stored outputs and dataset files)
    /// can be dialled.
    DataPlane,
    /// An author's order to your labs.
    Lab(Signed<crate::lab::LabOrder, Unverified>),
    /// You were removed from the federation: the founder's signed removal. A member sends it
    /// when a removed node connects, so the removed node learns it without having to ask.
    Removed(MembershipEvent),
    /// Run a cell of a project for one of my authors (see [`crate::run`]).
    Run(crate::run::RunOrder),
    /// What the run of this request (its id) produced, from output `from` on; answered when
    /// there is something new, when it ends, or after a few seconds with nothing.
    RunProgress {
        /// The request's id.
        id: [u8; 16],
        /// How many outputs the asker already has.
        from: u32,
    },
    /// Make a run of a job for one of my authors (see [`crate::job`]); asked about as a run.
    Job(crate::job::JobOrder),
    /// Interrupt the run of this request (its id), or restart the kernel it ran in.
    RunControl {
        /// The request's id.
        id: [u8; 16],
        /// Restart the kernel (its variables are lost) instead of interrupting it.
        restart: bool,
    },
}

/// The answer to a [`Request`].
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    /// The membership events the responder holds (answer to `Join` and `Membership`).
    Membership(Vec<MembershipEvent>),
    /// The next sync step.
    Sync(SyncFrame),
    /// The adverts the responder holds (answer to `Adverts`).
    Adverts(Vec<Signed<NodeAdvert, Unverified>>),
    /// The responder's catalog results (answer to `Search`).
    Search(orrery_catalog::SearchResults),
    /// Taken note of (answer to `Presence`).
    Noted,
    /// The responder's data-plane addresses (answer to `DataPlane`; at most 16 are used).
    DataPlane(Vec<std::net::SocketAddr>),
    /// The answer to a lab order.
    Lab(crate::lab::LabReply),
    /// The answer to a run order, or to a question about one.
    Run(crate::run::RunReply),
    /// The request was refused.
    Refused(Refusal),
}

pub(crate) mod bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let v: &[u8] = Deserialize::deserialize(d)?;
        Ok(v.to_vec())
    }
}

impl Gossip {
    /// Encodes for the wire.
    pub fn encode(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decodes, refusing anything above [`MAX_GOSSIP_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode("gossip message", bytes, MAX_GOSSIP_BYTES)
    }
}

impl Request {
    /// Encodes for the wire.
    pub fn encode(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decodes, refusing anything above [`MAX_FRAME_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode("request", bytes, MAX_FRAME_BYTES)
    }
}

impl Response {
    /// Encodes for the wire.
    pub fn encode(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Decodes, refusing anything above [`MAX_FRAME_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode("response", bytes, MAX_FRAME_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Gossip::decode(&bytes);
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }
    }

    #[test]
    fn frames_round_trip() {
        let f = Request::Sync(SyncFrame {
            project: ProjectId([3; 32]),
            message: vec![1, 2, 3],
            seals: vec![],
        });
        match Request::decode(&f.encode()).expect("decodes") {
            Request::Sync(s) => assert_eq!(s.message, vec![1, 2, 3]),
            other => panic!("unexpected {other:?}"),
        }
    }
}
