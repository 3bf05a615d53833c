//! Runs of jobs this node makes for other nodes' authors: the notebook's data is here. The order
//! was judged by the actor as a run order is; the project it carries is verified the same way;
//! the notebook runs whole in a fresh kernel of the author's lab here (as the job's own node
//! would run it), and the answer is the record this node signs, carrying the author's request.

use orrery_protocol::job::JobRequest;
use orrery_protocol::run::{RunEnd, RunReply};
use orrery_protocol::{ChangeSeal, SecretKey, Unverified};

use super::hosted::{editable, refuse};
use super::*;
use crate::service::jobs::{Read, Watch, header, make_run, read_notebook};
use crate::store::{Job, JobState};

impl Runs {
    /// Makes the run `request` asks for, for `home`'s author, with the project it carries;
    /// answers `reply` once it is taken (or refused) and keeps its end for `home` to ask.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::service) async fn host_job(
        &self,
        me: NodeId,
        node_key: SecretKey,
        home: NodeId,
        request: Signed<JobRequest, Verified>,
        snapshot: Vec<u8>,
        seals: Vec<Signed<ChangeSeal, Unverified>>,
        reply: oneshot::Sender<Response>,
    ) {
        let refuse = |reply, why| refuse(reply, home, "job", why);
        let r = request.value().clone();
        let author = AuthorId(*request.signer());
        let Ok(nb) = r.notebook.parse::<NotebookId>() else {
            return refuse(reply, "the request's notebook id does not parse".into());
        };
        let (id, heads, asked) = (r.project, r.heads.clone(), nb.clone());
        let read: Result<Read, String> = self
            .verified(move || {
                let p = editable(id, &heads, author, &snapshot, seals)?;
                read_notebook(&p, &asked, me)
            })
            .await;
        let read = match read {
            Ok(read) => read,
            Err(why) => return refuse(reply, why),
        };
        if let Err(why) = self
            .labs
            .readable_by(home, &collections_of(&read.datasets))
            .await
        {
            return refuse(reply, why);
        }
        let tx = match self.register(r.id, home, (author, r.project, nb)) {
            Ok(tx) => tx,
            Err(why) => return refuse(reply, why),
        };
        let _ = reply.send(Response::Run(RunReply::Accepted));
        let job = Job {
            id: r.job.clone(),
            project: r.project,
            notebook: r.notebook.clone(),
            author,
            parameters: r.parameters.clone(),
            every_secs: None,
            next_at: 0,
            state: JobState::Running,
            runs: r.run.saturating_sub(1),
            note: String::new(),
            created_at: 0,
        };
        let record = header(&job, me, Some(request.into_unverified()));
        let ended = match make_run(self, record, read, &Watch::Hosted).await {
            Ok(record) => RunEnd::Job(Box::new(Signed::sign(&node_key, record).into_unverified())),
            Err(why) => RunEnd::Failed(why),
        };
        self.end(r.id, home, &tx, ended);
    }
}
