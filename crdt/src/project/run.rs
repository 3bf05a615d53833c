//! Runs at the data, as the project sees them: an editor's signed request that a node run a
//! cell, the node's change recording the outputs (built on the request's heads, signed with a
//! fresh session of the node's key, and judged by [`Project::ingest`] like any other change), and
//! the record read back with its signatures checked.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ReadDoc, ScalarValue, Value};
use orrery_protocol::run::{Provenance, RunRecord, RunRequest};
use orrery_protocol::{AuthorId, ChangeSeal, NodeId, SecretKey, Signed, Unverified, Verified};

use super::*;
use crate::ingest::{IngestError, IngestReport};
use crate::outputs::externalise_all;

/// Why a run could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RunRecordError {
    /// The request does not fit this project or its history.
    #[error("the run request cannot be honoured here: {0}")]
    Request(&'static str),
    /// The cell is not in the notebook as of the request's heads.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// This project refused the change recording the run (it says why).
    #[error(transparent)]
    Refused(#[from] IngestError),
    /// The document refused the change.
    #[error("the document refused the run's change")]
    Automerge(#[from] automerge::AutomergeError),
}

/// A run as a cell records it, its signatures checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRun {
    /// What was asked.
    pub request: RunRequest,
    /// Who asked.
    pub requester: AuthorId,
    /// The node that ran it and wrote the outputs.
    pub node: NodeId,
    /// What ran, on what, and how it ended.
    pub provenance: Provenance,
    /// Whether the cell's outputs are still the ones the run wrote (not replaced since).
    pub outputs_current: bool,
}

impl Project {
    /// A request, signed by `session`'s author (an editor or owner), that `node` run `cell` of
    /// `nb` as the notebook stands now.
    pub fn request_run(
        &self,
        session: &Session,
        nb: &NotebookId,
        cell: &CellId,
        node: NodeId,
    ) -> Result<Signed<RunRequest, Verified>, EditError> {
        let heads = self.doc.get_heads();
        self.require(session, Role::Editor, "ask for a run", &heads)?;
        self.cell_obj(nb, cell)?;
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|_| EditError::Malformed("no randomness"))?;
        Ok(Signed::sign(
            session.key(),
            RunRequest {
                project: self.id,
                notebook: nb.as_str().to_owned(),
                cell: cell.as_str().to_owned(),
                heads: heads.into_iter().map(to_hash).collect(),
                node,
                id,
                issued_at: now(),
            },
        ))
    }

    /// Records the outputs of a run this node (`node_key`) made for `request`: one change built
    /// directly on the request's heads, sealed with the node's key, and taken in through
    /// [`Project::ingest`], so that this replica judges it exactly as every other will. Returns
    /// what ingest reported; the change is then in the history, to store and send like any.
    pub fn record_run(
        &mut self,
        node_key: &SecretKey,
        request: &Signed<RunRequest, Verified>,
        outputs: &[serde_json::Value],
        execution_count: Option<i64>,
        provenance: Provenance,
    ) -> Result<(IngestReport, Batch), RunRecordError> {
        let r = request.value();
        if r.project != self.id {
            return Err(RunRecordError::Request("it is for another project"));
        }
        if r.node.key() != &node_key.public() {
            return Err(RunRecordError::Request("it names another node"));
        }
        let heads: Vec<automerge::ChangeHash> = r.heads.iter().map(|h| from_hash(*h)).collect();
        if heads
            .iter()
            .any(|h| self.doc.get_change_meta_by_hash(h).is_none())
        {
            return Err(RunRecordError::Request(
                "its heads are not in this replica's history",
            ));
        }
        let record = RunRecord {
            request: request.clone().into_unverified(),
            provenance,
        };
        let record_bytes = orrery_protocol::encoding::encode(&record);
        let outputs = externalise_all(outputs, &mut self.new_blobs);
        // A fresh session: its sequence numbers can never collide with another run's, made on
        // another branch of the history.
        let node =
            Session::new(node_key.clone()).map_err(|_| EditError::Malformed("no randomness"))?;
        let mut fork = self.doc.fork_at(&heads).map_err(EditError::from)?;
        fork.set_actor(node.actor().clone());
        let nb: NotebookId = r
            .notebook
            .parse()
            .map_err(|_| EditError::Malformed("the request's notebook id"))?;
        let cell: CellId = r
            .cell
            .parse()
            .map_err(|_| EditError::Malformed("the request's cell id"))?;
        let obj = {
            let roots = Roots::read(&fork).ok_or(EditError::Empty)?;
            let child = |obj: &ObjId, key: &str| match fork.get(obj, key) {
                Ok(Some((Value::Object(_), id))) => Some(id),
                _ => None,
            };
            child(&roots.notebooks, nb.as_str())
                .and_then(|n| child(&n, K_CELLS))
                .and_then(|cells| child(&cells, cell.as_str()))
                .ok_or(EditError::NoCell {
                    notebook: nb.clone(),
                    cell: cell.clone(),
                })?
        };
        let mut tx = fork.transaction();
        super::edit::write_outputs(&mut tx, &obj, &outputs, execution_count)?;
        tx.put(&obj, K_RUN, record_bytes)?;
        let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now()));
        let hash = hash.ok_or(EditError::Malformed("the run made no change"))?;
        let change = fork
            .get_change_by_hash(&hash)
            .ok_or(EditError::Malformed("the run's change is missing"))?
            .raw_bytes()
            .to_vec();
        let seal: Signed<ChangeSeal, Unverified> = Signed::sign(
            node_key,
            ChangeSeal {
                project: self.id,
                heads: vec![to_hash(hash)],
            },
        )
        .into_unverified();
        let batch = Batch {
            changes: vec![change],
            seals: vec![seal],
        };
        let report = self.ingest(batch.clone())?;
        Ok((report, batch))
    }

    /// The run `cell` of `nb` records, if any and if it verifies: written by the node its request
    /// names, the request signed by its requester. A record that does not verify is not shown as
    /// a run (ingest refuses such changes; this guards a replica restored from older data).
    pub fn run_record(&self, nb: &NotebookId, cell: &CellId) -> Option<VerifiedRun> {
        let obj = self.cell_obj(nb, cell).ok()?;
        let (value, id) = self.doc.get(&obj, K_RUN).ok()??;
        let bytes = match value {
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Bytes(b) => b.clone(),
                _ => return None,
            },
            Value::Object(_) => return None,
        };
        let record: RunRecord = orrery_protocol::encoding::decode(
            "a run record",
            &bytes,
            orrery_protocol::limits::MAX_SIGNED_PAYLOAD * 2,
        )
        .ok()?;
        let request = record.request.verify().ok()?;
        let writer = crate::session::author_of(op_actor(&id)?)?;
        if request.value().node.key() != writer.key() {
            return None;
        }
        let outputs_current = match self.doc.get(&obj, K_OUTPUTS) {
            Ok(Some((Value::Object(_), list))) => op_actor(&list) == op_actor(&id),
            _ => false,
        };
        Some(VerifiedRun {
            requester: AuthorId(*request.signer()),
            node: request.value().node,
            request: request.value().clone(),
            provenance: record.provenance,
            outputs_current,
        })
    }
}

/// The actor of the operation an id names (`None` for the root).
fn op_actor(id: &ObjId) -> Option<&automerge::ActorId> {
    match id {
        ObjId::Id(_, actor, _) => Some(actor),
        ObjId::Root => None,
    }
}
