//! Presence: who is in which project and notebook, set locally and heard from peers (never
//! stored).

use orrery_protocol::presence::Caret;

use super::*;

impl NodeActor {
    pub(super) fn set_presence(
        &mut self,
        author: AuthorId,
        project: ProjectId,
        notebook: Option<String>,
        cell: Option<String>,
        caret: Option<Caret>,
        active: bool,
    ) -> Result<(), NodeError> {
        let key = self
            .author_keys
            .iter()
            .find(|(a, _)| *a == author)
            .map(|(_, k)| k.clone())
            .ok_or(NodeError::NoAuthor(author))?;
        let p = self
            .projects
            .get(&project)
            .ok_or(NodeError::NoProject(project))?;
        let now = now_ms();
        // Milliseconds keep the sequence rising across restarts.
        self.presence_seq = (self.presence_seq + 1).max(u64::try_from(now).unwrap_or(0));
        let signed = Signed::sign(
            &key,
            Presence {
                project,
                author,
                node: self.me,
                notebook,
                cell,
                caret,
                active,
                seq: self.presence_seq,
                at_ms: now,
            },
        )
        .into_unverified();
        if let Ok(Some(_)) = self.presence.offer(signed.clone(), now) {
            self.emit(NodeEvent::Presence { project, author });
        }
        for peer in self.targets(p) {
            let fed = self.fed.clone();
            let signed = signed.clone();
            tokio::spawn(async move {
                let _ = fed.request(peer, Request::Presence(signed)).await;
            });
        }
        Ok(())
    }

    /// A member's presence statement: kept only if its author signed it, works at the sending
    /// node, and is a member of a project held here.
    pub(super) fn receive_presence(
        &mut self,
        from: NodeId,
        signed: Signed<Presence, orrery_protocol::Unverified>,
    ) -> Response {
        let claimed = signed.clone().verify().ok().map(|v| v.value().clone());
        let Some(p) = claimed else {
            return Response::Refused(Refusal::Rejected);
        };
        if p.node != from {
            return Response::Refused(Refusal::Rejected);
        }
        let Some(project) = self.projects.get(&p.project) else {
            return Response::Refused(Refusal::NotReplicated);
        };
        if project.role_of(&p.author).is_none() {
            return Response::Refused(Refusal::Rejected);
        }
        match self.presence.offer(signed, now_ms()) {
            Ok(Some(p)) => {
                self.emit(NodeEvent::Presence {
                    project: p.project,
                    author: p.author,
                });
                Response::Noted
            }
            Ok(None) => Response::Noted,
            Err(e) => {
                debug!(peer = %from.short(), error = %e, "presence refused");
                Response::Refused(Refusal::Rejected)
            }
        }
    }
}
