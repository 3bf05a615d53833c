//! What keeps projects from replicating, as the running node records it for the command line.

use orrery_protocol::{NodeId, ProjectId, PublicKey};
use rusqlite::params;

use super::{Store, StoreError, now};

/// Which way a project does not replicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The peer refused what this node sent, or it could not be delivered.
    To,
    /// This node refused what the peer sent.
    From,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::To => "to",
            Direction::From => "from",
        }
    }
}

/// A project that does not replicate between this node and a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationProblem {
    /// The project.
    pub project: ProjectId,
    /// The peer.
    pub peer: NodeId,
    /// Which way.
    pub direction: Direction,
    /// Since when (seconds since the epoch).
    pub since: i64,
    /// Why, in words a user can act on.
    pub reason: String,
}

/// A stored problem: project, peer, direction, since, reason.
type Row = (Vec<u8>, Vec<u8>, String, i64, String);

impl Store {
    /// Records that `project` does not replicate `direction` `peer`, keeping the time it first
    /// happened while the problem lasts.
    pub fn set_replication_problem(
        &mut self,
        project: ProjectId,
        peer: NodeId,
        direction: Direction,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO replication_problems (project, peer, direction, since, reason)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (project, peer, direction) DO UPDATE SET reason = excluded.reason",
            params![
                project.0.as_slice(),
                peer.key().as_bytes().as_slice(),
                direction.as_str(),
                now(),
                reason
            ],
        )?;
        Ok(())
    }

    /// Forgets a problem: a frame passed again.
    pub fn clear_replication_problem(
        &mut self,
        project: ProjectId,
        peer: NodeId,
        direction: Direction,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM replication_problems WHERE project = ?1 AND peer = ?2 AND direction = ?3",
            params![
                project.0.as_slice(),
                peer.key().as_bytes().as_slice(),
                direction.as_str()
            ],
        )?;
        Ok(())
    }

    /// Every recorded problem, oldest first.
    pub fn replication_problems(&self) -> Result<Vec<ReplicationProblem>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT project, peer, direction, since, reason FROM replication_problems
             ORDER BY since, project, peer",
        )?;
        let rows: Vec<Row> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(p, n, d, since, reason)| {
                Some(ReplicationProblem {
                    project: ProjectId(p.try_into().ok()?),
                    peer: NodeId(PublicKey::from_bytes(&n).ok()?),
                    direction: if d == "to" {
                        Direction::To
                    } else {
                        Direction::From
                    },
                    since,
                    reason,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_keeps_its_start_until_cleared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("orrery.db")).expect("store");
        let (project, peer) = (
            ProjectId([3; 32]),
            NodeId(
                orrery_protocol::SecretKey::from_bytes(&[5; 32])
                    .expect("key")
                    .public(),
            ),
        );
        store
            .set_replication_problem(project, peer, Direction::To, "first")
            .expect("set");
        let since = store.replication_problems().expect("list")[0].since;
        store
            .set_replication_problem(project, peer, Direction::To, "second")
            .expect("set");
        store
            .set_replication_problem(project, peer, Direction::From, "refused")
            .expect("set");
        let all = store.replication_problems().expect("list");
        assert_eq!(all.len(), 2);
        let to = all
            .iter()
            .find(|p| p.direction == Direction::To)
            .expect("to");
        assert_eq!((to.since, to.reason.as_str()), (since, "second"));
        store
            .clear_replication_problem(project, peer, Direction::To)
            .expect("clear");
        let all = store.replication_problems().expect("list");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].direction, Direction::From);
    }
}
