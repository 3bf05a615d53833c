//! What a handle asks of the actor that changes state: founding and joining a federation,
//! creating and editing projects.

use super::*;

impl NodeActor {
    pub(super) async fn create_federation(&mut self, name: &str) -> Result<(), NodeError> {
        let m = Membership::found(&self.key, name, now())
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let events = m.events();
        self.store
            .run(move |s| s.add_membership_events(&events).map(|_| ()))
            .await?;
        self.membership = Some(m.clone());
        self.fed.adopt(m).await?;
        self.publish_advert().await;
        Ok(())
    }

    pub(super) async fn join(&mut self, token: InviteToken) -> Result<(), NodeError> {
        let inviter = NodeId(*token.invitation.signer());
        let request = Signed::sign(
            &self.key,
            JoinRequest {
                invitation: token.invitation.clone(),
                node: self.me,
                name: self.config.node.name.clone(),
                code: token.code,
                at: now(),
            },
        );
        let addrs = token.addrs.iter().filter_map(|a| a.parse().ok()).collect();
        let events = self
            .fed
            .join(request.into_unverified(), inviter, addrs)
            .await?;
        // Kept before the join is reported: a node stopped at once must come back a member.
        self.store
            .run(move |s| s.add_membership_events(&events).map(|_| ()))
            .await?;
        if let Some(m) = self.store.run(|s| s.membership()).await? {
            let entered = self.membership.is_none();
            self.membership = Some(m);
            if entered {
                self.publish_advert().await;
            }
        }
        // Remember where the inviter is, to reconnect after a restart. The member list itself
        // arrives as a federation event and is stored there.
        let addrs = token.addrs.clone();
        self.store
            .run(move |s| s.put_peer_addrs(inviter, &addrs))
            .await?;
        Ok(())
    }

    pub(super) async fn create_project(
        &mut self,
        author: AuthorId,
        title: &str,
        visibility: Visibility,
    ) -> Result<ProjectId, NodeError> {
        let session = self.session_of(author).await?;
        let session = &session;
        let (mut project, mut batch) = Project::create(session, title, visibility)?;
        if let Some(profile) = self.profiles.get(&author) {
            project.publish_profile(session, profile)?;
            let rest = project.seal(session);
            batch.changes.extend(rest.changes);
            batch.seals.extend(rest.seals);
        }
        let id = project.id();
        let title = project.title();
        self.store
            .run(move |s| s.create_project_raw(id, &title, &batch))
            .await?;
        self.note_own_write(id).await;
        self.projects.insert(id, project);
        self.emit(NodeEvent::ProjectChanged {
            project: id,
            heads: self
                .projects
                .get(&id)
                .map(Project::heads)
                .unwrap_or_default(),
        });
        self.kick_all(id);
        Ok(id)
    }

    pub(super) async fn edit(
        &mut self,
        id: ProjectId,
        author: AuthorId,
        part: Option<[u8; orrery_crdt::session::SESSION_LEN]>,
        edit: EditFn,
    ) -> Result<(), NodeError> {
        let session = self.session_of(author).await?;
        let session = match part {
            Some(part) => Session::with_session_part(session.key().clone(), part),
            None => session,
        };
        let project = self.projects.get_mut(&id).ok_or(NodeError::NoProject(id))?;
        let result = edit(project, &session);
        // Large outputs the edit moved out of the document are stored before the changes that
        // name them.
        let blobs = project.take_blobs();
        if !blobs.is_empty() {
            let store = self.blobs.for_project(id);
            let stored = tokio::task::spawn_blocking(move || store.put_all(&blobs))
                .await
                .map_err(|_| NodeError::Stopped)?;
            if let Err(e) = stored {
                // The edit is undone: the replica goes back to what the store holds, so no
                // change naming a blob that was not stored is ever sealed or sent.
                warn!(error = %e, "could not store an edit's large outputs; the edit is undone");
                if let Ok(p) = self.store.run(move |s| s.load(id)).await {
                    self.projects.insert(id, p);
                }
                return Err(e.into());
            }
        }
        let project = self.projects.get_mut(&id).ok_or(NodeError::NoProject(id))?;
        if let Some(profile) = self.profiles.get(&author)
            && result.is_ok()
            && project.role_of(&author).is_some_and(|r| r.can_edit())
        {
            let _ = project.publish_profile(&session, profile);
        }
        let batch = project.seal(&session);
        let title = project.title();
        if !batch.is_empty() {
            self.store
                .run(move |s| s.append_raw(id, &title, &batch))
                .await?;
            self.note_own_write(id).await;
            if let Some(p) = self.projects.get(&id) {
                self.maybe_compact(p).await;
                self.emit(NodeEvent::ProjectChanged {
                    project: id,
                    heads: p.heads(),
                });
            }
            self.kick_all(id);
        }
        result.map_err(NodeError::from)
    }
}
