//! What keeps a project from replicating, told to the operator: a warning when it starts (not
//! on every retry), a record in the store that `orrery project show` and `orrery federation
//! status` read, and a note when it passes.

use orrery_protocol::wire::Refusal;

use super::*;
use crate::store::Direction;

impl NodeActor {
    /// The peer's name as its advert gives it, or its short id.
    fn peer_name(&self, peer: NodeId) -> String {
        self.adverts.get(&peer).map_or_else(
            || peer.short(),
            |a| format!("{} ({})", a.name, peer.short()),
        )
    }

    /// `project` does not replicate `direction` `peer`, for `reason`.
    pub(super) async fn replication_failed(
        &mut self,
        project: ProjectId,
        peer: NodeId,
        direction: Direction,
        reason: String,
    ) {
        let key = (project, peer, direction);
        if self.problems.get(&key) == Some(&reason) {
            return;
        }
        match direction {
            Direction::To => warn!(
                project = %project.short(),
                peer = %self.peer_name(peer),
                %reason,
                "a project is not replicated to a peer"
            ),
            Direction::From => warn!(
                project = %project.short(),
                peer = %self.peer_name(peer),
                %reason,
                "a peer's data for a project was refused"
            ),
        }
        self.problems.insert(key, reason.clone());
        let _ = self
            .store
            .run(move |s| s.set_replication_problem(project, peer, direction, &reason))
            .await;
    }

    /// A frame passed `direction` `peer` for `project`: whatever was recorded is over.
    pub(super) async fn replication_ok(
        &mut self,
        project: ProjectId,
        peer: NodeId,
        direction: Direction,
    ) {
        if self.problems.remove(&(project, peer, direction)).is_none() {
            return;
        }
        info!(project = %project.short(), peer = %self.peer_name(peer), "replication resumed");
        let _ = self
            .store
            .run(move |s| s.clear_replication_problem(project, peer, direction))
            .await;
    }
}

/// Why a peer's answer means the frame did not go through, in words an operator can act on;
/// `None` for a passing answer or a transient one.
pub(super) fn refusal_reason(refusal: &Refusal) -> Option<String> {
    Some(match refusal {
        Refusal::Rejected => "the peer refused the changes this node sent: they failed its verification (its log says which check); nothing of them was stored there".into(),
        Refusal::Malformed => "the peer refused a frame as malformed or above its size limits".into(),
        Refusal::NotReplicated => "the peer does not replicate this project: by its adverts it hosts none of the project's members".into(),
        Refusal::NotAMember => "the peer does not take this node for a member of the federation".into(),
        Refusal::Busy | Refusal::Missing | Refusal::JoinRefused => return None,
    })
}
