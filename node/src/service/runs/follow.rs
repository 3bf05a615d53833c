//! Following a run sent to another member: the order goes out, the outputs are asked for as
//! they come (each question is answered when there is something new), and the change that
//! records the run is taken in by the actor, judged as any replica judges it.

use std::time::Instant;

use orrery_protocol::run::{RunEnd, RunReply};

use super::*;

/// How long the computing node may stay unreachable during a run before the run is given up
/// here (its outcome, if it comes, is then not taken in).
const UNREACHABLE_FOR: Duration = Duration::from_secs(60);
/// Longest a run (a job's whole notebook included) on another node is followed.
const FOLLOW_FOR: Duration = Duration::from_secs(24 * 3600);

/// The runs this node's authors have on other nodes: the last one per kernel, for interrupting
/// it or restarting its kernel.
#[derive(Default)]
pub(super) struct Following(std::sync::Mutex<HashMap<KernelKey, (NodeId, [u8; 16])>>);

impl Following {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KernelKey, (NodeId, [u8; 16])>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Runs {
    /// Sends `order` to `node`, hands each output to `seen` as it arrives, and has the actor
    /// take in the change that records the run.
    pub(super) async fn follow(
        &self,
        handle: &NodeHandle,
        node: NodeId,
        order: orrery_protocol::run::RunOrder,
        seen: &mut (dyn FnMut(&Value) + Send),
    ) -> Result<RunOutcome, NodeError> {
        // The request was signed here a moment ago.
        let verified = order.request.clone().verify().map_err(run_error)?;
        let author = AuthorId(*verified.signer());
        let request = verified.value().clone();
        let failed = |why: String| {
            warn!(peer = %node.short(), project = %request.project.short(), %why, "a run on another node failed; nothing was recorded");
            run_error(why)
        };
        match self.fed.request(node, Request::Run(order)).await {
            Ok(Response::Run(RunReply::Accepted)) => {}
            Ok(Response::Run(RunReply::Refused(why))) => {
                return Err(failed(format!("{} refused the run: {why}", node.short())));
            }
            Ok(other) => {
                return Err(failed(format!(
                    "{} answered the run with {other:?}",
                    node.short()
                )));
            }
            Err(e) => {
                return Err(failed(format!("{} could not be asked: {e}", node.short())));
            }
        }
        let nb: NotebookId = request
            .notebook
            .parse()
            .map_err(|_| run_error("the request's notebook id"))?;
        let key: KernelKey = (author, request.project, nb);
        self.following.lock().insert(key, (node, request.id));
        let end = self
            .until_end(node, request.id, seen)
            .await
            .map_err(failed)?;
        let (change, seals, blobs, lab) = match end {
            RunEnd::Recorded {
                change,
                seals,
                blobs,
                lab,
            } => (change, seals, blobs, lab),
            RunEnd::Failed(why) => {
                return Err(failed(format!(
                    "{} could not run the cell: {why}",
                    node.short()
                )));
            }
            RunEnd::Job(_) => {
                return Err(failed(format!(
                    "{} answered a cell's run with a job's record",
                    node.short()
                )));
            }
        };
        let asked = request.clone();
        let provenance = handle
            .call(|reply| Command::TakeRun {
                from: node,
                request: asked,
                change,
                seals,
                blobs: blobs.into_iter().map(|b| b.0).collect(),
                reply,
            })
            .await?;
        Ok(RunOutcome {
            request,
            node,
            provenance,
            lab,
        })
    }

    /// Asks `node` what the run `id` it makes for this node produced, handing each new output
    /// to `seen`, until it ended; gives up if `node` stays unreachable.
    async fn until_end(
        &self,
        node: NodeId,
        id: [u8; 16],
        seen: &mut (dyn FnMut(&Value) + Send),
    ) -> Result<RunEnd, String> {
        let mut outputs = 0u32;
        let mut reached = Instant::now();
        let deadline = Instant::now() + FOLLOW_FOR;
        loop {
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not finish the run within {} h; it is no longer followed",
                    node.short(),
                    FOLLOW_FOR.as_secs() / 3600
                ));
            }
            let asked = Request::RunProgress { id, from: outputs };
            let sent = Instant::now();
            match self.fed.request(node, asked).await {
                Ok(Response::Run(RunReply::Progress {
                    outputs: new,
                    ended,
                })) => {
                    reached = Instant::now();
                    // An answer with nothing should have waited for something; one that did
                    // not is not asked again at once.
                    if new.is_empty() && ended.is_none() && sent.elapsed() < Duration::from_secs(1)
                    {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    for o in &new {
                        let Ok(v) = serde_json::from_str::<Value>(o) else {
                            return Err(format!(
                                "{} sent an output that is not JSON",
                                node.short()
                            ));
                        };
                        seen(&v);
                    }
                    outputs = outputs.saturating_add(new.len() as u32);
                    if let Some(end) = ended {
                        return Ok(end);
                    }
                }
                Ok(Response::Run(RunReply::Refused(why))) => {
                    return Err(format!("{} lost the run: {why}", node.short()));
                }
                Ok(other) => {
                    return Err(format!(
                        "{} answered a question about the run with {other:?}",
                        node.short()
                    ));
                }
                Err(e) if reached.elapsed() < UNREACHABLE_FOR => {
                    tracing::debug!(peer = %node.short(), error = %e, "a run's node did not answer; asking again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    return Err(format!(
                        "{} stopped answering during the run ({e}); if it finishes, its outputs are not taken in",
                        node.short()
                    ));
                }
            }
        }
    }

    /// Sends a job's run to `node` (which holds its data) and waits for the record it signs:
    /// it must be signed by `node`, for this very request.
    pub(in crate::service) async fn follow_job(
        &self,
        node: NodeId,
        order: orrery_protocol::job::JobOrder,
    ) -> Result<Signed<orrery_protocol::job::JobRecord, Verified>, String> {
        let sent = order.request.clone();
        let asked = sent
            .clone()
            .verify()
            .map_err(|e| e.to_string())?
            .value()
            .clone();
        match self.fed.request(node, Request::Job(order)).await {
            Ok(Response::Run(RunReply::Accepted)) => {}
            Ok(Response::Run(RunReply::Refused(why))) => {
                return Err(format!("{} refused the job's run: {why}", node.short()));
            }
            Ok(other) => {
                return Err(format!("{} answered the job with {other:?}", node.short()));
            }
            Err(e) => return Err(format!("{} could not be asked: {e}", node.short())),
        }
        match self.until_end(node, asked.id, &mut |_| {}).await? {
            RunEnd::Job(record) => {
                let record = (*record).verify().map_err(|e| {
                    format!("{}'s record of the run does not verify: {e}", node.short())
                })?;
                let r = record.value();
                // The very request sent (same signer, same bytes), and a record that says what
                // it asked.
                let same = r
                    .request
                    .as_ref()
                    .is_some_and(|q| q.signer() == sent.signer() && q.payload() == sent.payload());
                let sorted = |h: &[orrery_protocol::ChangeHash]| {
                    let mut h = h.to_vec();
                    h.sort_unstable();
                    h
                };
                let matches = r.project == asked.project
                    && r.notebook == asked.notebook
                    && sorted(&r.heads) == sorted(&asked.heads)
                    && r.parameters == asked.parameters
                    && r.job == asked.job
                    && r.run == asked.run
                    && r.requester.key() == sent.signer();
                if record.signer() != node.key() || r.node != node || !same || !matches {
                    return Err(format!(
                        "{} answered with a record that is not its run of this job",
                        node.short()
                    ));
                }
                Ok(record)
            }
            RunEnd::Failed(why) => Err(format!("{} could not run the job: {why}", node.short())),
            RunEnd::Recorded { .. } => Err(format!(
                "{} answered a job with a cell's record",
                node.short()
            )),
        }
    }

    /// Interrupts the last run of `key` on another node, or restarts its kernel there.
    pub(super) async fn control_elsewhere(
        &self,
        key: &KernelKey,
        restart: bool,
    ) -> Result<bool, NodeError> {
        let Some((node, id)) = self.following.lock().get(key).copied() else {
            return Ok(false);
        };
        match self
            .fed
            .request(node, Request::RunControl { id, restart })
            .await
        {
            Ok(Response::Run(RunReply::Accepted)) => Ok(true),
            Ok(Response::Run(RunReply::Refused(why))) => {
                Err(run_error(format!("{}: {why}", node.short())))
            }
            Ok(other) => Err(run_error(format!(
                "{} answered with {other:?}",
                node.short()
            ))),
            Err(e) => Err(run_error(format!(
                "{} could not be asked: {e}",
                node.short()
            ))),
        }
    }
}
