//! What the federation actor reports: members, adverts, requests from peers (sync frames,
//! searches, data-plane addresses), bans and this node's removal.

use super::*;

impl NodeActor {
    pub(super) async fn on_federation(&mut self, event: FedEvent) {
        self.metrics.on_federation(&event);
        match event {
            FedEvent::Listening(addr) => {
                let addrs: Vec<String> = self
                    .fed
                    .status()
                    .await
                    .map(|s| s.listening.iter().map(ToString::to_string).collect())
                    .unwrap_or_else(|_| vec![addr.to_string()]);
                let _ = self.store.run(move |s| s.set_listen_addrs(&addrs)).await;
            }
            FedEvent::Connected(node) => {
                self.connected.insert(node);
                self.learn_data_addrs(node);
                let _ = self.store.run(move |s| s.set_peer(node, true)).await;
                self.emit(NodeEvent::Connected(node));
                let ids: Vec<ProjectId> = self.projects.keys().copied().collect();
                for id in ids {
                    self.peers.remove(&(id, node));
                    self.refused.remove(&(id, node));
                    if self
                        .projects
                        .get(&id)
                        .is_some_and(|p| self.targets(p).contains(&node))
                    {
                        self.kick(id, node);
                    }
                }
            }
            FedEvent::Disconnected(node) => {
                self.connected.remove(&node);
                let _ = self.store.run(move |s| s.set_peer(node, false)).await;
                self.emit(NodeEvent::Disconnected(node));
            }
            FedEvent::Advert(advert) => {
                let node = advert.node;
                let seq = advert.seq;
                let newly_hosting = self
                    .adverts
                    .get(&node)
                    .is_none_or(|old| old.hosted_authors() != advert.hosted_authors());
                let addrs = advert.addresses.clone();
                self.adverts.insert(node, (*advert).clone());
                let stored = (*advert).clone();
                let _ = self
                    .store
                    .run(move |s| {
                        s.put_peer_addrs(node, &addrs)?;
                        s.put_advert(&stored)
                    })
                    .await;
                self.emit(NodeEvent::Advert { node, seq });
                if newly_hosting {
                    let ids: Vec<ProjectId> = self.projects.keys().copied().collect();
                    for id in ids {
                        if self
                            .projects
                            .get(&id)
                            .is_some_and(|p| self.targets(p).contains(&node))
                        {
                            self.kick(id, node);
                        }
                    }
                }
            }
            FedEvent::Membership(events) => {
                let stored = events.clone();
                let _ = self
                    .store
                    .run(move |s| s.add_membership_events(&stored).map(|_| ()))
                    .await;
                if let Ok(Some(m)) = self.store.run(|s| s.membership()).await {
                    let entered = self.membership.is_none();
                    self.membership = Some(m);
                    if entered {
                        self.publish_advert().await;
                    }
                }
                if let Some(m) = &self.membership {
                    self.adverts.retain(|n, _| m.is_member(n));
                }
                self.emit(NodeEvent::Membership);
            }
            FedEvent::Request {
                from,
                request,
                reply,
            } => {
                let response = match request {
                    Request::Sync(frame) => {
                        let project = frame.project;
                        let r = self.receive(from, frame).await;
                        debug!(peer = %from.short(), project = %project.short(), answer = ?r.as_ref().map(|f| f.as_ref().map(|f| f.message.len())), "sync request answered");
                        match r {
                            Ok(Some(f)) => {
                                let sent = crate::metrics::Direction::Sent;
                                self.metrics.sync_frame(sent, f.message.len());
                                Response::Sync(f)
                            }
                            Ok(None) => Response::Sync(SyncFrame {
                                project,
                                message: Vec::new(),
                                seals: Vec::new(),
                            }),
                            Err(r) => Response::Refused(r),
                        }
                    }
                    Request::Presence(signed) => self.receive_presence(from, signed),
                    Request::DataPlane => Response::DataPlane(self.data.addrs()),
                    Request::Lab(order) => {
                        self.answer_lab_order(from, order, reply);
                        return;
                    }
                    Request::Run(order) => {
                        self.answer_run_order(from, order, reply);
                        return;
                    }
                    Request::Job(order) => {
                        self.answer_job_order(from, order, reply);
                        return;
                    }
                    Request::RunProgress { id, from: seen } => {
                        let runs = self.runs.clone();
                        tokio::spawn(async move {
                            let answer = runs.progress(from, id, seen).await;
                            let _ = reply.send(Response::Run(answer));
                        });
                        return;
                    }
                    Request::RunControl { id, restart } => {
                        let runs = self.runs.clone();
                        tokio::spawn(async move {
                            let answer = runs.control(from, id, restart).await;
                            let _ = reply.send(Response::Run(answer));
                        });
                        return;
                    }
                    Request::Search(query) => {
                        if query.validate().is_err() {
                            Response::Refused(Refusal::Malformed)
                        } else {
                            let readers = self.readers.clone();
                            tokio::spawn(async move {
                                let r = readers
                                    .run(move |c| crate::catalog::search::search(&c.conn, &query))
                                    .await;
                                let _ = reply.send(match r {
                                    Ok(r) => Response::Search(r),
                                    Err(e) => {
                                        debug!(peer = %from.short(), error = %e, "search refused");
                                        Response::Refused(Refusal::Busy)
                                    }
                                });
                            });
                            return;
                        }
                    }
                    _ => Response::Refused(Refusal::Malformed),
                };
                let _ = reply.send(response);
            }
            FedEvent::Banned { node, reason } => {
                let secs = self.config.network.ban_secs;
                let words = reason.to_string();
                if let Err(e) = self
                    .store
                    .run(move |s| s.record_ban(node, secs, &words))
                    .await
                {
                    warn!(peer = %node.short(), error = %e, "a ban could not be recorded; `orrery federation status` will not show it");
                }
                self.emit(NodeEvent::Banned { node, reason });
            }
            FedEvent::RemovedSelf => warn!("this node was removed from the federation"),
        }
    }
}
