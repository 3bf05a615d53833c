//! The node actor's part of jobs between nodes: placing a job's run at the member holding its
//! notebook's data (signing the author's request naming it), and judging such an order from
//! another node before its run is made here.

use orrery_protocol::job::{JobOrder, JobRequest};

use super::actor::sendable;
use super::*;
use crate::store::Job;

impl NodeActor {
    /// Where the next run of `job` goes: `None` for here, or the member holding its notebook's
    /// data with the order to send it (the author's request, signed here with their key).
    pub(in crate::service) async fn place_job(
        &mut self,
        job: Job,
    ) -> Result<Option<(NodeId, JobOrder)>, NodeError> {
        let session = self.session_of(job.author).await?;
        let p = self
            .projects
            .get(&job.project)
            .ok_or(NodeError::NoProject(job.project))?;
        if p.role_of(&job.author)
            .is_none_or(|r| r < orrery_crdt::Role::Editor)
        {
            return Err(run_error(
                "the job's requester is no longer an editor of the project; the job was not run",
            ));
        }
        let node = self.place_project(p)?;
        if node == self.me {
            return Ok(None);
        }
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| run_error(format!("no randomness: {e}")))?;
        let request = Signed::sign(
            session.key(),
            JobRequest {
                project: job.project,
                notebook: job.notebook.clone(),
                heads: p.heads(),
                parameters: job.parameters.clone(),
                node,
                job: job.id.clone(),
                run: job.runs + 1,
                id,
                issued_at: now(),
            },
        );
        let (snapshot, seals) = sendable(p, node)?;
        Ok(Some((
            node,
            JobOrder {
                request: request.into_unverified(),
                snapshot,
                seals,
            },
        )))
    }

    /// Answers `peer`'s order to make a run of a job here: judged as a run order is, then made
    /// off the loop.
    pub(in crate::service) fn answer_job_order(
        &mut self,
        peer: NodeId,
        order: JobOrder,
        reply: oneshot::Sender<Response>,
    ) {
        let request = match self.judge_request(peer, order.request) {
            Ok(r) => r,
            Err(why) => return super::hosted::refuse(reply, peer, "job", why),
        };
        let (runs, key, me) = (self.runs.clone(), self.key.clone(), self.me);
        tokio::spawn(async move {
            runs.host_job(me, key, peer, request, order.snapshot, order.seals, reply)
                .await;
        });
    }
}
