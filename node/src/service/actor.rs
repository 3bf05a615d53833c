//! The node actor's loop: commands from handles, federation events and the poll, one at a time;
//! its events; and its advert.

use super::*;

impl NodeActor {
    pub(super) async fn run(
        &mut self,
        mut commands: mpsc::Receiver<Command>,
        mut fed_events: mpsc::Receiver<FedEvent>,
        cancel: CancellationToken,
    ) {
        let mut poll = tokio::time::interval(Duration::from_millis(250));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(cmd) = commands.recv() => self.on_command(cmd).await,
                Some(ev) = fed_events.recv() => self.on_federation(ev).await,
                _ = poll.tick() => self.on_poll().await,
            }
        }
        self.data.shutdown().await;
        info!(node = %self.me.short(), "node stopped");
    }

    pub(super) fn emit(&self, e: NodeEvent) {
        let _ = self.events.send(e);
    }

    pub(super) async fn publish_advert(&mut self) {
        // What this node holds may have changed: searches are answered afresh.
        self.readers.cache.invalidate();
        self.advert_renewed = std::time::Instant::now();
        let federation = self
            .membership
            .as_ref()
            .map(Membership::id)
            .unwrap_or(orrery_protocol::federation::FederationId([0; 32]));
        let preservation = self
            .store
            .run(|s| {
                Ok((
                    s.preservation_policies()?,
                    s.held_copies()?,
                    s.preserved_bytes()?,
                ))
            })
            .await;
        let (policies, mut held, kept) = preservation.unwrap_or_else(|e| {
            warn!(error = %e, "what this node preserves could not be read; its advert says nothing of it this time");
            (Vec::new(), Vec::new(), 0)
        });
        held.extend(self.held_projects());
        if held.len() > orrery_protocol::preservation::MAX_HELD {
            warn!(
                kept = held.len(),
                listed = orrery_protocol::preservation::MAX_HELD,
                "this node keeps more copies than an advert lists: the others are not counted by other nodes, which may place them elsewhere too"
            );
            held.truncate(orrery_protocol::preservation::MAX_HELD);
        }
        let advert = NodeAdvert {
            federation,
            node: self.me,
            seq: 0,
            issued_at: 0,
            expires_at: 0,
            name: self.config.node.name.clone(),
            institution: self.config.node.institution.clone(),
            contact: self.config.node.contact.clone(),
            addresses: Vec::new(),
            // Consent to be hosted is bound to a federation: none before this node is in one.
            authors: self
                .author_keys
                .iter()
                .filter(|_| self.membership.is_some())
                .map(|(author, key)| {
                    Signed::sign(
                        key,
                        orrery_protocol::advert::Hosting {
                            author: *author,
                            node: self.me,
                            federation,
                            // Renewed with every advert; lapses soon after the node stops
                            // holding the author's key.
                            expires_at: now() + self.config.network.advert_ttl_secs as i64 * 2,
                        },
                    )
                    .into_unverified()
                })
                .collect(),
            collections: self.collections.clone(),
            compute: self.compute_offers(),
            spare_bytes: self.config.preservation.spare_bytes().saturating_sub(kept),
            policies,
            held,
        };
        let _ = self.fed.set_advert(advert).await;
    }

    /// The copies this node keeps of projects whose owners set a preservation policy: the
    /// document and every stored output it refers to.
    fn held_projects(&self) -> Vec<orrery_protocol::preservation::HeldCopy> {
        self.projects
            .iter()
            .filter(|(_, p)| p.preservation_policy().is_some())
            .map(|(id, p)| super::preservation::project_copy(p, &self.blobs.for_project(*id)))
            .collect()
    }

    /// What this node offers: what its labs can take now, or the offers its operator declared
    /// (with no more room than its labs have, when they serve that environment).
    pub(super) fn compute_offers(&self) -> Vec<orrery_protocol::advert::ComputeOffer> {
        let live = self.labs.offers();
        if self.config.compute.is_empty() {
            return live;
        }
        let mut declared = self.config.compute.clone();
        for offer in &mut declared {
            if let Some(l) = live.iter().find(|l| l.environment == offer.environment) {
                offer.free_slots = offer.free_slots.min(l.free_slots);
                offer.lock.clone_from(&l.lock);
            }
        }
        declared
    }

    pub(super) async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::CreateFederation { name, reply } => {
                let r = self.create_federation(&name).await;
                let _ = reply.send(r);
            }
            Command::Invite {
                invitee,
                code,
                ttl_secs,
                reply,
            } => {
                let r = async {
                    let invitation = self.fed.invite(invitee, code, now() + ttl_secs).await?;
                    let status = self.fed.status().await?;
                    let addrs = status
                        .listening
                        .iter()
                        .map(|a| format!("{a}/p2p/{}", orrery_federation::peer::peer_id(&self.me)))
                        .collect();
                    Ok(InviteToken {
                        invitation,
                        addrs,
                        code,
                    })
                }
                .await;
                let _ = reply.send(r);
            }
            Command::Join { token, reply } => {
                let r = self.join(token).await;
                let _ = reply.send(r);
            }
            Command::Remove { node, reply } => {
                let r = self
                    .fed
                    .remove(node, "removed by an operator")
                    .await
                    .map_err(NodeError::from);
                let _ = reply.send(r);
            }
            Command::CreateProject {
                author,
                title,
                visibility,
                reply,
            } => {
                let r = self.create_project(author, &title, visibility).await;
                let _ = reply.send(r);
            }
            Command::Edit {
                project,
                author,
                part,
                edit,
                reply,
            } => {
                let r = self.edit(project, author, part, edit).await;
                let _ = reply.send(r);
            }
            Command::Read { project, read } => read(self.projects.get(&project)),
            Command::ReadAll { read } => read(&mut self.projects.values()),
            Command::RequestRun {
                author,
                project,
                notebook,
                cell,
                reply,
            } => {
                let r = self.request_run(author, project, notebook, cell).await;
                let _ = reply.send(r);
            }
            Command::PlaceJob { job, reply } => {
                let r = self.place_job(job).await;
                let _ = reply.send(r);
            }
            Command::TakeRun {
                from,
                request,
                change,
                seals,
                blobs,
                reply,
            } => {
                let r = self.take_run(from, request, change, seals, blobs).await;
                let _ = reply.send(r);
            }
            Command::RecordRun {
                request,
                outputs,
                execution_count,
                provenance,
                reply,
            } => {
                let r = self
                    .record_run(request, outputs, execution_count, provenance)
                    .await;
                let _ = reply.send(r);
            }
            Command::SetPresence {
                author,
                project,
                notebook,
                cell,
                caret,
                active,
                reply,
            } => {
                let r = self.set_presence(author, project, notebook, cell, caret, active);
                let _ = reply.send(r);
            }
            Command::BlobDone {
                project,
                blob,
                held,
            } => {
                self.fetching.remove(&blob);
                if held {
                    self.emit(NodeEvent::BlobFetched { project, blob });
                }
            }
            Command::BlobDamaged { project, blob } => self.blob_damaged(project, blob),
            Command::DataRequest { peer, hash, reply } => {
                let _ = reply.send(self.grant(peer, hash));
            }
            Command::LabCandidates { reply } => {
                let _ = reply.send(self.lab_candidates());
            }
            Command::SignLabOrder {
                author,
                node,
                action,
                reply,
            } => {
                let _ = reply.send(self.sign_lab_order(author, node, action).await);
            }
            Command::JudgeLabOrder { peer, order, reply } => {
                let _ = reply.send(self.judge_lab_order(peer, order));
            }
            Command::Readvertise => self.publish_advert().await,
            Command::LearnAuthor { author } => {
                if let Err(e) = self.session_of(author).await {
                    warn!(author = %author.short(), error = %e, "a user's author key could not be read: projects shared with them will not reach this node");
                }
            }
            Command::WhoIsIn { project, reply } => {
                let _ = reply.send(Ok(self.presence.in_project(&project, now_ms())));
            }
            Command::Search {
                query,
                local,
                deadline,
                reply,
            } => {
                let me = search::Target {
                    node: self.me,
                    name: self.config.node.name.clone(),
                };
                let include_local = search::node_selected(&query, &me.node, &me.name);
                let mut targets = Vec::new();
                let mut not_asked = 0u64;
                if !local {
                    let members = self
                        .membership
                        .as_ref()
                        .map(Membership::members)
                        .unwrap_or_default();
                    for (node, joined_as) in members {
                        if node == self.me {
                            continue;
                        }
                        // A member whose advert has not arrived yet is asked anyway, under the
                        // name it joined with: only an advert can rule it out.
                        let (name, can_match) = match self.adverts.get(&node) {
                            Some(advert) => {
                                (advert.name.clone(), search::could_match(&query, advert))
                            }
                            None => (joined_as, true),
                        };
                        if search::node_selected(&query, &node, &name) && can_match {
                            targets.push(search::Target { node, name });
                        } else {
                            not_asked += 1;
                        }
                    }
                }
                if let Some(wanted) = query.filters.get(&orrery_catalog::Facet::Node) {
                    let known = include_local
                        || self.adverts.iter().any(|(node, advert)| {
                            search::node_selected(&query, node, &advert.name)
                        });
                    if !known {
                        let _ = reply.send(Err(NodeError::Config(format!(
                            "no member node is named {}; `orrery federation status` lists them",
                            wanted.join(" or ")
                        ))));
                        return;
                    }
                }
                let readers = self.readers.clone();
                let fed = self.fed.clone();
                tokio::spawn(async move {
                    let r = search::federated(
                        me,
                        include_local,
                        readers,
                        fed,
                        targets,
                        not_asked,
                        query,
                        deadline,
                    )
                    .await
                    .map_err(NodeError::from);
                    let _ = reply.send(r);
                });
            }
            Command::Status { reply } => {
                let _ = reply.send(self.fed.status().await.map_err(NodeError::from));
            }
            Command::SyncDone {
                project,
                peer,
                result,
            } => self.on_sync_done(project, peer, result).await,
        }
    }
}
