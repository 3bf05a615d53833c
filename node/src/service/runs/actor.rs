//! The node actor's part of runs: placing a run and signing its request, recording a run made
//! here, and taking in the change that records a run made on another node.

use orrery_crdt::{Batch, BlobRef, Origin};

use super::*;
use crate::labs::placement::place;

/// Where a run goes, with what it needs there.
#[derive(Debug)]
pub(in crate::service) enum Placed {
    /// Here.
    Here(RunOrder),
    /// On another member: the order to send it.
    There {
        node: NodeId,
        order: orrery_protocol::run::RunOrder,
    },
}

/// The project's datasets `node` holds, as a run there reads them.
pub(in crate::service) fn datasets_at(project: &Project, node: NodeId) -> Vec<DatasetRead> {
    let at = node.to_string();
    project
        .datasets()
        .into_iter()
        .filter(|d| d.node == at)
        .filter_map(|d| {
            let mut blake3 = [0u8; 32];
            hex::decode_to_slice(&d.checksum, &mut blake3).ok()?;
            Some(DatasetRead {
                node,
                product: d.dataset,
                blake3,
            })
        })
        .collect()
}

/// A project as an order carries it: a snapshot and the seals covering its changes.
type Sendable = (
    Vec<u8>,
    Vec<Signed<orrery_protocol::ChangeSeal, Unverified>>,
);

/// The project as a run order carries it to `node`, unless it is too large to send.
pub(in crate::service) fn sendable(p: &Project, node: NodeId) -> Result<Sendable, NodeError> {
    let snapshot = p.snapshot();
    if snapshot.len() > orrery_protocol::wire::MAX_FRAME_BYTES - (1 << 20) {
        return Err(run_error(format!(
            "the project is too large ({} MiB compressed) to send to {} for a run; run it there, from a lab",
            snapshot.len() >> 20,
            node.short()
        )));
    }
    Ok((snapshot, p.seals()))
}

impl NodeActor {
    /// Where a run of `p` goes: the member holding every collection it references (this node
    /// when it does, or when there are none), as a lab over them would be placed.
    pub(in crate::service) fn place_project(&self, p: &Project) -> Result<NodeId, NodeError> {
        let mut wanted: Vec<String> = p
            .datasets()
            .iter()
            .filter_map(|d| d.dataset.split('/').next().map(str::to_owned))
            .collect();
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(self.me);
        }
        let environment = super::environment_of(p);
        place(self.me, &self.lab_candidates(), &environment.id, &wanted).map_err(|e| {
            warn!(project = %p.id().short(), error = %e, "a run could not be placed");
            run_error(e)
        })
    }

    /// Places `author`'s run of `cell` of `nb` (at the member holding the project's datasets,
    /// here if none) and signs their request naming that member, as the project stands now.
    pub(in crate::service) async fn request_run(
        &mut self,
        author: AuthorId,
        project: ProjectId,
        nb: NotebookId,
        cell: CellId,
    ) -> Result<Placed, NodeError> {
        let session = self.session_of(author).await?;
        let p = self
            .projects
            .get(&project)
            .ok_or(NodeError::NoProject(project))?;
        let node = self.place_project(p)?;
        let request = p.request_run(&session, &nb, &cell, node)?;
        if node != self.me {
            let (snapshot, seals) = sendable(p, node)?;
            return Ok(Placed::There {
                node,
                order: orrery_protocol::run::RunOrder {
                    request: request.into_unverified(),
                    snapshot,
                    seals,
                },
            });
        }
        let source = p.cell(&nb, &cell)?.source;
        let datasets = datasets_at(p, self.me);
        Ok(Placed::Here(RunOrder {
            request,
            source,
            datasets,
            environment: super::environment_of(p),
        }))
    }

    /// Writes a run's outputs and record into its project, signed with this node's key, and
    /// stores and sends the change as any edit's.
    pub(in crate::service) async fn record_run(
        &mut self,
        request: Signed<RunRequest, Verified>,
        outputs: Vec<Value>,
        execution_count: Option<i64>,
        provenance: Provenance,
    ) -> Result<(), NodeError> {
        let id = request.value().project;
        let project = self.projects.get_mut(&id).ok_or(NodeError::NoProject(id))?;
        let (_, batch) = project
            .record_run(&self.key, &request, &outputs, execution_count, provenance)
            .map_err(run_error)?;
        let blobs = project.take_blobs();
        self.commit_run(id, batch, blobs).await
    }

    /// Takes in how a run sent to `from` for `request` ended: the change recording it, judged
    /// as any replica judges it, must be the record of that very request. Returns its
    /// provenance.
    pub(in crate::service) async fn take_run(
        &mut self,
        from: NodeId,
        request: RunRequest,
        change: Vec<u8>,
        seals: Vec<Signed<orrery_protocol::ChangeSeal, Unverified>>,
        blobs: Vec<Vec<u8>>,
    ) -> Result<Provenance, NodeError> {
        let id = request.project;
        let refused = |why: String| {
            warn!(peer = %from.short(), project = %id.short(), %why, "the record of a run on another node was refused");
            run_error(format!(
                "{} ran the cell, but its record was refused here: {why}",
                from.short()
            ))
        };
        let project = self.projects.get_mut(&id).ok_or(NodeError::NoProject(id))?;
        let batch = Batch {
            changes: vec![change],
            seals,
        };
        let report = match project.ingest_from(batch.clone(), Origin(*from.0.as_bytes())) {
            Ok(r) => r,
            Err(e) => {
                // Sent in answer to this node's own order: the sender is to blame.
                let detail = e.to_string();
                let offence = orrery_federation::Offence::BadChanges {
                    detail: detail.clone(),
                };
                let _ = self.fed.penalise(from, offence).await;
                return Err(refused(detail));
            }
        };
        if report.applied.len() != 1 {
            return Err(refused(
                "it is not one change built on the notebook the request named".into(),
            ));
        }
        // Only what the cell's outputs name is kept (a node sending more gets nothing stored).
        let named: Vec<BlobRef> = match (request.notebook.parse(), request.cell.parse()) {
            (Ok(nb), Ok(cell)) => self
                .projects
                .get(&id)
                .and_then(|p| p.cell(&nb, &cell).ok())
                .map(|c| {
                    c.outputs
                        .iter()
                        .filter_map(|o| {
                            BlobRef::from_stub(o).or_else(|| BlobRef::from_list_stub(o))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let blobs: Vec<orrery_crdt::Blob> = blobs
            .into_iter()
            .map(|bytes| orrery_crdt::Blob {
                id: BlobRef::of(&bytes),
                bytes,
            })
            .filter(|b| {
                let kept = named.contains(&b.id);
                if !kept {
                    warn!(peer = %from.short(), blob = %b.id.hex(), "a run's answer carried a stored output its change does not name; it was not kept");
                }
                kept
            })
            .collect();
        // Judged and applied: it is kept whatever the cell now shows.
        self.commit_run(id, batch, blobs).await?;
        let recorded = match (request.notebook.parse(), request.cell.parse()) {
            (Ok(nb), Ok(cell)) => self
                .projects
                .get(&id)
                .and_then(|p| p.run_record(&nb, &cell))
                .filter(|r| r.request.id == request.id && r.node == from),
            _ => None,
        };
        let Some(recorded) = recorded else {
            return Err(run_error(format!(
                "{} ran the cell and its record was kept, but the cell now shows another run's outputs (run concurrently)",
                from.short()
            )));
        };
        Ok(recorded.provenance)
    }

    /// Stores a run's change and the outputs it keeps beside the project, and sends it on.
    async fn commit_run(
        &mut self,
        id: ProjectId,
        batch: Batch,
        blobs: Vec<orrery_crdt::Blob>,
    ) -> Result<(), NodeError> {
        if !blobs.is_empty() {
            let store = self.blobs.for_project(id);
            tokio::task::spawn_blocking(move || store.put_all(&blobs))
                .await
                .map_err(|_| NodeError::Stopped)??;
        }
        let title = self
            .projects
            .get(&id)
            .map(Project::title)
            .unwrap_or_default();
        self.store
            .run(move |s| s.append_raw(id, &title, &batch))
            .await?;
        self.note_own_write(id).await;
        if let Some(p) = self.projects.get(&id) {
            self.emit(NodeEvent::ProjectChanged {
                project: id,
                heads: p.heads(),
            });
        }
        self.kick_all(id);
        Ok(())
    }

    /// An author's request that `peer` sent, judged as a lab order is (see
    /// [`crate::labs::order`]); refusals are logged by the caller.
    pub(in crate::service) fn judge_request<T: crate::labs::order::AuthorRequest>(
        &mut self,
        peer: NodeId,
        request: Signed<T, Unverified>,
    ) -> Result<Signed<T, Verified>, String> {
        let membership = self.membership.as_ref();
        let is_member = |n: &NodeId| membership.is_some_and(|m| m.is_member(n));
        crate::labs::order::Judge {
            me: self.me,
            federation: membership.map(Membership::id),
            is_member: &is_member,
            adverts: &self.adverts,
            now: now(),
        }
        .judge_request(peer, request, &mut self.lab_orders_seen)
    }

    /// Answers `peer`'s order to run a cell: judged here as a lab order is (the project it
    /// carries is judged by the run itself), then run off the loop.
    pub(in crate::service) fn answer_run_order(
        &mut self,
        peer: NodeId,
        order: orrery_protocol::run::RunOrder,
        reply: oneshot::Sender<Response>,
    ) {
        let request = match self.judge_request(peer, order.request) {
            Ok(r) => r,
            Err(why) => return super::hosted::refuse(reply, peer, "run", why),
        };
        let (runs, key, me) = (self.runs.clone(), self.key.clone(), self.me);
        tokio::spawn(async move {
            runs.host(me, key, peer, request, order.snapshot, order.seals, reply)
                .await;
        });
    }
}
