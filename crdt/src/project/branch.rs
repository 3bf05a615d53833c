//! Branches: the project as it was at earlier heads, edited there, and the edits brought back.
//!
//! A change made on a branch depends on the branch's heads, not on everything the replica holds,
//! so once brought back automerge merges it with everything made or received since those heads
//! as a concurrent edit: text typed meanwhile stays where it was typed, cells added meanwhile
//! stay. Updating a notebook from a file relative to the state the file started from is built on
//! this (see [`crate::nbformat::update`]).
//!
//! Changes on a branch are made by a session of their own ([`Session::fresh`]): the branch lacks
//! whatever the replica's sessions did after its heads, so one of those sessions would reuse its
//! own sequence numbers there. [`Project::adopt`] brings a branch session's changes into the
//! replica and hands them to the author's session, whose next seal names them too.

use super::*;

impl Project {
    /// A detached replica of this project as it was at `heads` (all in its history), to edit as
    /// a branch. It holds no seals and nothing waiting; edits on it are checked against the
    /// membership at `heads`, as every replica checks them on ingest.
    pub(crate) fn branch_at(&self, heads: &[automerge::ChangeHash]) -> Result<Project, EditError> {
        Ok(Project::from_doc(self.id, self.doc.fork_at(heads)?))
    }

    /// Brings the changes `maker` made on `branch` into this replica, to be covered by `owner`'s
    /// next seal ([`Project::seal`] names the latest of them beside `owner`'s own). Returns how
    /// many changes were brought. `maker` must be a session of `owner`'s author: the seal is
    /// signed with `owner`'s key.
    pub(crate) fn adopt(
        &mut self,
        branch: &mut Project,
        maker: &Session,
        owner: &Session,
    ) -> Result<usize, EditError> {
        if maker.author() != owner.author() {
            return Err(EditError::NotPermitted {
                author: owner.author(),
                action: "seal another author's changes",
                role: "any".into(),
            });
        }
        let Some(made) = branch.unsealed.remove(maker.actor()) else {
            return Ok(0);
        };
        let Some(last) = made.own else {
            return Ok(0);
        };
        let changes = made
            .hashes
            .iter()
            .map(|h| {
                branch
                    .doc
                    .get_change_by_hash(&from_hash(*h))
                    .ok_or(EditError::Malformed("a change made on a branch is missing"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let before = self.doc.get_heads();
        self.doc.apply_changes(changes)?;
        self.role_memo = None;
        let unsealed = self.unsealed.entry(owner.actor().clone()).or_default();
        if unsealed.hashes.is_empty() {
            unsealed.since = before;
        }
        unsealed.hashes.extend(made.hashes.iter().copied());
        unsealed.adopted.push(last);
        Ok(made.hashes.len())
    }
}
