//! Runs this node makes for other nodes' authors. The order was judged by the actor (a member
//! sent it for an author it hosts, fresh, once); here the project it carries is verified as any
//! replica verifies a snapshot, the requester must be an editor of it as of the request's heads,
//! and the collections read must be ones their policies let the home node's researchers read.
//! The project is kept only for the run: the answer is the one change recording it. The home
//! node asks for the outputs as they come (a long poll), and may interrupt the run or restart
//! its kernel; a run is forgotten some minutes after it ended.

use std::time::Instant;

use orrery_crdt::Role;
use orrery_protocol::run::{BlobBytes, RunEnd, RunReply};
use orrery_protocol::{ChangeSeal, SecretKey, Unverified};
use tokio::sync::watch;

use super::actor::datasets_at;
use super::*;

/// How long a progress question waits for something new before it is answered with nothing.
const PROGRESS_WAIT: Duration = Duration::from_secs(10);
/// How long a run's outcome is kept for its home node after it ended.
const KEEP_ENDED: Duration = Duration::from_secs(600);
/// Most bytes of outputs one progress answer carries (the rest go in the next).
const MAX_PROGRESS_BYTES: usize = 16 << 20;
/// Most runs kept at once for other nodes.
const MAX_HOSTED: usize = 1024;
/// Most runs going on at once for any one node.
const MAX_HOSTED_PER_NODE: usize = 32;

/// A run's outputs so far and, once it ended, how.
#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    outputs: Vec<String>,
    ended: Option<RunEnd>,
}

struct HostedRun {
    home: NodeId,
    key: KernelKey,
    progress: watch::Receiver<Progress>,
    ended_at: Option<Instant>,
}

/// Most orders whose projects are verified at once (each verification checks every change of
/// a project); more are refused as busy.
const MAX_VERIFYING: usize = 2;

/// The runs made here for other nodes, by request id.
pub(super) struct Hosted {
    runs: std::sync::Mutex<HashMap<[u8; 16], HostedRun>>,
    verifying: tokio::sync::Semaphore,
}

impl Default for Hosted {
    fn default() -> Self {
        Self {
            runs: std::sync::Mutex::default(),
            verifying: tokio::sync::Semaphore::new(MAX_VERIFYING),
        }
    }
}

impl Hosted {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], HostedRun>> {
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Refuses `peer`'s order (`what`: "run", "job") with `why`, logged: nothing ran.
pub(super) fn refuse(reply: oneshot::Sender<Response>, peer: NodeId, what: &str, why: String) {
    warn!(peer = %peer.short(), %why, "a {what} order was refused; nothing ran");
    let _ = reply.send(Response::Run(RunReply::Refused(why)));
}

/// A verified run order: the project as of the request, the cell's source, what it reads here.
struct Prepared {
    project: Project,
    source: String,
    datasets: Vec<DatasetRead>,
    environment: crate::labs::env::Environment,
}

/// The project an order carries, verified as an empty replica verifies a snapshot: it must be
/// `id` as of `heads`, and `requester` an editor of it.
pub(super) fn editable(
    id: ProjectId,
    heads: &[orrery_protocol::ChangeHash],
    requester: AuthorId,
    snapshot: &[u8],
    seals: Vec<Signed<ChangeSeal, Unverified>>,
) -> Result<Project, String> {
    let mut project = Project::empty(id);
    project
        .receive_snapshot(snapshot, seals)
        .map_err(|e| format!("the project sent with the request does not verify: {e}"))?;
    let mut held = project.heads();
    let mut asked = heads.to_vec();
    held.sort_unstable();
    asked.sort_unstable();
    asked.dedup();
    if held != asked {
        return Err("the project sent is not the one the request names (other heads)".into());
    }
    if project.role_of(&requester).is_none_or(|r| r < Role::Editor) {
        return Err(format!(
            "{} may not run this project's notebooks: they are not an editor of it",
            requester.short()
        ));
    }
    Ok(project)
}

/// Verifies the project a run order carries and finds the cell to run in it.
fn prepare(
    me: NodeId,
    request: &Signed<RunRequest, Verified>,
    snapshot: &[u8],
    seals: Vec<Signed<ChangeSeal, Unverified>>,
) -> Result<Prepared, String> {
    let r = request.value();
    let project = editable(
        r.project,
        &r.heads,
        AuthorId(*request.signer()),
        snapshot,
        seals,
    )?;
    let (nb, cell): (NotebookId, CellId) = match (r.notebook.parse(), r.cell.parse()) {
        (Ok(nb), Ok(cell)) => (nb, cell),
        _ => return Err("the request's notebook or cell id does not parse".into()),
    };
    let cell = project
        .cell(&nb, &cell)
        .map_err(|e| format!("the request names no cell of the project: {e}"))?;
    if cell.kind != orrery_crdt::CellKind::Code {
        return Err("only code cells run".into());
    }
    let datasets = datasets_at(&project, me);
    Ok(Prepared {
        environment: super::environment_of(&project),
        project,
        source: cell.source,
        datasets,
    })
}

impl Runs {
    /// Runs `request` for `home`'s author with the project it carries, answering `reply` once
    /// the run is taken (or refused) and keeping its progress for `home` to ask.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::service) async fn host(
        &self,
        me: NodeId,
        node_key: SecretKey,
        home: NodeId,
        request: Signed<RunRequest, Verified>,
        snapshot: Vec<u8>,
        seals: Vec<Signed<ChangeSeal, Unverified>>,
        reply: oneshot::Sender<Response>,
    ) {
        let refuse = |reply, why| refuse(reply, home, "run", why);
        let asked = request.clone();
        let prepared = self
            .verified(move || prepare(me, &asked, &snapshot, seals))
            .await;
        let Prepared {
            mut project,
            source,
            datasets,
            environment,
        } = match prepared {
            Ok(p) => p,
            Err(why) => return refuse(reply, why),
        };
        let collections = collections_of(&datasets);
        if let Err(why) = self.labs.readable_by(home, &collections).await {
            return refuse(reply, why);
        }
        let r = request.value().clone();
        let Ok(nb) = r.notebook.parse::<NotebookId>() else {
            return refuse(reply, "the request's notebook id does not parse".into());
        };
        let key: KernelKey = (AuthorId(*request.signer()), r.project, nb);
        let tx = match self.register(r.id, home, key.clone()) {
            Ok(tx) => tx,
            Err(why) => return refuse(reply, why),
        };
        let _ = reply.send(Response::Run(RunReply::Accepted));
        let mut seen = |v: &Value| {
            tx.send_modify(|p| p.outputs.push(v.to_string()));
        };
        let ended = match self
            .execute(key, &source, &datasets, &environment, &mut seen)
            .await
        {
            Err(e) => RunEnd::Failed(e.to_string()),
            Ok(ran) => {
                let recorded = project.record_run(
                    &node_key,
                    &request,
                    &ran.execution.outputs,
                    ran.execution.execution_count,
                    ran.provenance,
                );
                match recorded {
                    Ok((_, mut batch)) if batch.changes.len() == 1 => RunEnd::Recorded {
                        change: batch.changes.remove(0),
                        seals: batch.seals,
                        blobs: project
                            .take_blobs()
                            .into_iter()
                            .map(|b| BlobBytes(b.bytes))
                            .collect(),
                        lab: ran.lab,
                    },
                    Ok(_) => RunEnd::Failed("the run's record is not one change".into()),
                    Err(e) => {
                        warn!(peer = %home.short(), error = %e, "a cell ran for another node but could not be recorded");
                        RunEnd::Failed(format!("the cell ran but could not be recorded: {e}"))
                    }
                }
            }
        };
        self.end(r.id, home, &tx, ended);
    }

    /// Runs `prepare` (which verifies the project an order carries) off the async threads, if
    /// fewer than [`MAX_VERIFYING`] orders are being verified.
    pub(super) async fn verified<T: Send + 'static>(
        &self,
        prepare: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let Ok(_turn) = self.hosted.verifying.try_acquire() else {
            return Err(
                "this node is verifying other orders' projects; try again in a moment".into(),
            );
        };
        tokio::task::spawn_blocking(prepare)
            .await
            .map_err(|_| "the node is stopping".to_owned())?
    }

    /// Keeps the progress of the run `id` made for `home` in the kernel of `key`.
    pub(super) fn register(
        &self,
        id: [u8; 16],
        home: NodeId,
        key: KernelKey,
    ) -> Result<watch::Sender<Progress>, String> {
        let (tx, rx) = watch::channel(Progress::default());
        let mut hosted = self.hosted.lock();
        hosted.retain(|_, h| h.ended_at.is_none_or(|t| t.elapsed() < KEEP_ENDED));
        if hosted.contains_key(&id) {
            return Err("a run by that request's id is already here".into());
        }
        let theirs = hosted
            .values()
            .filter(|h| h.home == home && h.ended_at.is_none())
            .count();
        if theirs >= MAX_HOSTED_PER_NODE {
            return Err(format!(
                "this node already runs {theirs} cells or jobs for yours, the most it takes from one node; try again when they end"
            ));
        }
        if hosted.len() >= MAX_HOSTED {
            return Err("this node runs too much for other nodes now; try again later".into());
        }
        hosted.insert(
            id,
            HostedRun {
                home,
                key,
                progress: rx,
                ended_at: None,
            },
        );
        Ok(tx)
    }

    /// Says how the run `id` ended, to be asked for some minutes.
    pub(super) fn end(
        &self,
        id: [u8; 16],
        home: NodeId,
        tx: &watch::Sender<Progress>,
        ended: RunEnd,
    ) {
        if let RunEnd::Failed(why) = &ended {
            warn!(peer = %home.short(), %why, "a run for another node failed; nothing was recorded");
        }
        tx.send_modify(|p| p.ended = Some(ended));
        if let Some(h) = self.hosted.lock().get_mut(&id) {
            h.ended_at = Some(Instant::now());
        }
    }

    /// What the run `id` made for `home` produced from output `from` on: answered when there is
    /// something new, when it ended, or after [`PROGRESS_WAIT`].
    pub(in crate::service) async fn progress(
        &self,
        home: NodeId,
        id: [u8; 16],
        from: u32,
    ) -> RunReply {
        let rx = match self.hosted.lock().get(&id) {
            Some(h) if h.home == home => h.progress.clone(),
            _ => return RunReply::Refused("this node runs no cell by that request for your node (it ended long ago, or never was)".into()),
        };
        let from = from as usize;
        let mut rx = rx;
        let _ = tokio::time::timeout(
            PROGRESS_WAIT,
            rx.wait_for(|p| p.outputs.len() > from || p.ended.is_some()),
        )
        .await;
        let p = rx.borrow();
        let mut outputs = Vec::new();
        let mut bytes = 0;
        for o in p.outputs.iter().skip(from) {
            if bytes + o.len() > MAX_PROGRESS_BYTES && !outputs.is_empty() {
                break;
            }
            bytes += o.len();
            outputs.push(o.clone());
        }
        // The end goes alone or with little else, so no answer carries both many outputs and
        // the record that repeats them.
        let all = from + outputs.len() >= p.outputs.len();
        let ended = (all && bytes < (1 << 20))
            .then(|| p.ended.clone())
            .flatten();
        RunReply::Progress { outputs, ended }
    }

    /// Interrupts the run `id` made for `home`, or restarts its kernel.
    pub(in crate::service) async fn control(
        &self,
        home: NodeId,
        id: [u8; 16],
        restart: bool,
    ) -> RunReply {
        let key = match self.hosted.lock().get(&id) {
            Some(h) if h.home == home => h.key.clone(),
            _ => {
                return RunReply::Refused(
                    "this node runs no cell by that request for your node".into(),
                );
            }
        };
        let done = if restart {
            self.restart(&key).await
        } else {
            self.interrupt(&key).await
        };
        match done {
            Ok(true) => RunReply::Accepted,
            Ok(false) => RunReply::Refused("the run's kernel is not running".into()),
            Err(e) => RunReply::Refused(e.to_string()),
        }
    }
}
