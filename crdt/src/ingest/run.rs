//! Stage 6, for a computing node's change: the outputs of a run, accepted only with the
//! author's request (see [`orrery_protocol::run`]).
//!
//! A change that writes a cell's `run` record is a *run change*, whoever made it, and must:
//! carry a [`RunRecord`] whose request is signed and well formed; be made by the node the
//! request names; be built directly on the request's heads (its dependencies are exactly those);
//! and write nothing but that cell's `outputs` (a new list of JSON strings and references to
//! stored outputs), `execution_count`,
//! `execution` and `run`. Once the document is at hand, the judge also checks that the request
//! is for this project, that the cell is the one the request names (as of its heads), and that
//! the requester was an editor or owner as of those heads: the role is the requester's, not the
//! node's, which is no member of the project.

use orrery_protocol::run::{RunRecord, RunRequest};

use super::*;

/// What a run change claims, checked against the document by [`check_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunClaim {
    /// Who asked for the run.
    pub(crate) requester: AuthorId,
    /// The request.
    pub(crate) request: RunRequest,
    /// The cell object the change writes to.
    pub(crate) cell_obj: (u64, automerge::ActorId),
}

fn refused(it: &Item, why: &'static str) -> IngestError {
    IngestError::Forbidden {
        hash: it.hash,
        key: K_RUN.to_string(),
        why,
    }
}

/// The run `it` claims to record, if it writes a `run` record; an error if the claim is
/// malformed or the change writes anything a run may not.
pub(crate) fn run_claim(
    it: &Item,
    ops: &[automerge::legacy::Op],
) -> Result<Option<RunClaim>, IngestError> {
    let record = ops
        .iter()
        .find_map(|op| match (&op.obj, &op.key, &op.action) {
            (ObjectId::Id(cell), Key::Map(k), OpType::Put(ScalarValue::Bytes(b))) if k == K_RUN => {
                Some((cell.clone(), b))
            }
            _ => None,
        });
    let Some((cell, bytes)) = record else {
        return Ok(None);
    };
    let record: RunRecord =
        orrery_protocol::encoding::decode("a run record", bytes, MAX_RUN_RECORD)
            .map_err(|_| refused(it, "is not a run record"))?;
    record
        .validate()
        .map_err(|_| refused(it, "is over a run record's limits"))?;
    let request = record
        .request
        .verify()
        .map_err(|_| refused(it, "carries a request whose signature does not verify"))?;
    request
        .value()
        .validate()
        .map_err(|_| refused(it, "carries a malformed request"))?;
    let requester = AuthorId(*request.signer());
    let request = request.value().clone();
    if request.node.key() != it.author.key() {
        return Err(refused(
            it,
            "is written by a node the request does not name",
        ));
    }
    let mut deps: Vec<ChangeHash> = it.change.deps().iter().map(|d| to_hash(*d)).collect();
    let mut heads = request.heads.clone();
    deps.sort_unstable();
    heads.sort_unstable();
    heads.dedup();
    if deps != heads {
        return Err(refused(it, "is not built on the heads the request names"));
    }
    // The one list of outputs the change may create, and what may go in it.
    let start = it.change.start_op().get();
    let actor = it.change.actor_id();
    let mut outputs_list: Option<u64> = None;
    for (i, op) in ops.iter().enumerate() {
        let on_cell = matches!(&op.obj, ObjectId::Id(o) if *o == cell);
        let ok = match (&op.key, &op.action) {
            (Key::Map(k), OpType::Put(ScalarValue::Bytes(_))) if on_cell && k == K_RUN => true,
            (Key::Map(k), OpType::Make(automerge::ObjType::List))
                if on_cell && k == K_OUTPUTS && outputs_list.is_none() =>
            {
                outputs_list = Some(start + i as u64);
                true
            }
            (Key::Map(k), OpType::Put(ScalarValue::Int(_) | ScalarValue::Null))
                if on_cell && k == K_EXEC_COUNT =>
            {
                true
            }
            (Key::Map(k), OpType::Put(ScalarValue::Str(_))) if on_cell && k == K_EXECUTION => true,
            // An output, as JSON text or as the reference to a stored blob (large outputs).
            (Key::Seq(_), OpType::Put(value)) if op.insert => {
                let output = match value {
                    ScalarValue::Str(_) => true,
                    ScalarValue::Bytes(b) => crate::outputs::BlobRef::decode_any(b).is_some(),
                    _ => false,
                };
                output
                    && matches!(
                        (&op.obj, outputs_list),
                        (ObjectId::Id(o), Some(list)) if o.0 == list && o.1 == *actor
                    )
            }
            _ => false,
        };
        if !ok {
            return Err(refused(
                it,
                "a run change may write only its cell's outputs, execution count and run record",
            ));
        }
    }
    Ok(Some(RunClaim {
        requester,
        request,
        cell_obj: (cell.0, cell.1),
    }))
}

/// Largest run record a change may carry.
const MAX_RUN_RECORD: usize = orrery_protocol::limits::MAX_SIGNED_PAYLOAD * 2;

/// Checks a run claim against the document, which holds the request's heads: the request is
/// for `project`, and the cell it names is the cell the change writes to.
pub(crate) fn check_run(
    doc: &Automerge,
    roots: &Roots,
    project: ProjectId,
    hash: ChangeHash,
    claim: &RunClaim,
) -> Result<(), IngestError> {
    let refused = |why| IngestError::Forbidden {
        hash,
        key: K_RUN.to_string(),
        why,
    };
    if claim.request.project != project {
        return Err(refused("carries a request for another project"));
    }
    let heads: Vec<automerge::ChangeHash> =
        claim.request.heads.iter().map(|h| from_hash(*h)).collect();
    let child = |obj: &ObjId, key: &str| match doc.get_at(obj, key, &heads) {
        Ok(Some((automerge::Value::Object(_), id))) => Some(id),
        _ => None,
    };
    let cell = child(&roots.notebooks, &claim.request.notebook)
        .and_then(|nb| child(&nb, K_CELLS))
        .and_then(|cells| child(&cells, &claim.request.cell));
    let same = matches!(&cell, Some(ObjId::Id(c, a, _)) if *c == claim.cell_obj.0 && *a == claim.cell_obj.1);
    if !same {
        return Err(refused("writes to a cell the request does not name"));
    }
    Ok(())
}
