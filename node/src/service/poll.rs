//! The poll (every 250 ms): writes by other processes on the same data directory (the command
//! line), the catalog's changes, advert renewal, and housekeeping of stored outputs.

use super::*;

impl NodeActor {
    /// Notices writes by other processes (the command line) and syncs them.
    pub(super) async fn on_poll(&mut self) {
        self.polls += 1;
        // The authors' hosting consents in the advert lapse after twice the advert's lifetime:
        // renew them well before.
        let ttl = Duration::from_secs(self.config.network.advert_ttl_secs);
        if self.advert_renewed.elapsed() >= ttl / 2 {
            self.publish_advert().await;
        }
        // Stored outputs nothing refers to any more (replaced outputs) are deleted now and then.
        if self.polls.is_multiple_of(BLOB_GC_POLLS) {
            let keep: HashMap<ProjectId, HashSet<[u8; 32]>> = self
                .projects
                .iter()
                .map(|(id, p)| (*id, p.blob_refs().into_iter().map(|b| b.hash).collect()))
                .collect();
            let root = self.blobs.clone();
            self.held_blobs.clear();
            tokio::task::spawn_blocking(move || {
                let none = HashSet::new();
                let mut deleted = 0;
                // A project no longer held here keeps nothing.
                for (id, store) in root.projects() {
                    deleted += store.collect_garbage(keep.get(&id).unwrap_or(&none), BLOB_GRACE);
                    store.remove_if_empty();
                }
                if deleted > 0 {
                    info!(deleted, "stored outputs no project refers to were deleted");
                }
            });
        }
        // Stored outputs that could not be fetched yet are asked for again every few seconds,
        // and those held are looked for on disk again: one that a local reader (an export)
        // found damaged and quarantined, or that was lost, is fetched again.
        if self.polls.is_multiple_of(20) {
            self.held_blobs.clear();
            let ids: Vec<ProjectId> = self.projects.keys().copied().collect();
            for id in ids {
                self.fetch_blobs(id, None);
            }
        }
        let Ok(v) = self.store.run(|s| s.data_version()).await else {
            return;
        };
        if v == self.data_version {
            return;
        }
        self.data_version = v;
        self.charge_data_offences().await;
        // The catalog's summaries cost a scan of its products: only when the catalog changed.
        if let Ok(generation) = self.readers.run(|c| c.generation()).await
            && generation != self.catalog_generation
            && let Ok(summaries) = self.readers.run(|c| c.summaries()).await
        {
            self.catalog_generation = generation;
            // Another process changed the catalog: this node's kept answers are stale.
            self.readers.cache.invalidate();
            self.emit(NodeEvent::CatalogChanged);
            if summaries != self.collections {
                self.collections = summaries;
                self.publish_advert().await;
            }
        }
        // A policy set from the command line goes out in the next advert, at once.
        match self.store.run(|s| s.preservation_mark()).await {
            Ok(mark) if mark != self.preservation_mark => {
                self.preservation_mark = mark;
                self.publish_advert().await;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "whether a preservation policy was set could not be read; it is advertised at the next renewal")
            }
        }
        if let Ok(Some(m)) = self.store.run(|s| s.membership()).await {
            let known = self.membership.as_ref().map(|x| x.events().len());
            if known != Some(m.events().len()) {
                if self.membership.as_ref().map(Membership::id) == Some(m.id()) {
                    let _ = self.fed.announce(m.events()).await;
                } else {
                    let _ = self.fed.adopt(m.clone()).await;
                }
                self.membership = Some(m);
                self.publish_advert().await;
            }
        }
        let Ok(marks) = self.store.run(|s| s.project_marks()).await else {
            return;
        };
        for (id, a, b) in marks {
            if self.marks.get(&id) == Some(&(a, b)) {
                continue;
            }
            self.marks.insert(id, (a, b));
            if let Ok(p) = self.store.run(move |s| s.load(id)).await {
                let changed = self.projects.get(&id).map(Project::heads) != Some(p.heads());
                // Keep anything only in memory (waiting changes) by merging the stored history in.
                match self.projects.get_mut(&id) {
                    Some(mine) => {
                        let _ = mine.ingest(p.history());
                    }
                    None => {
                        self.projects.insert(id, p);
                    }
                }
                if changed {
                    if let Some(p) = self.projects.get(&id) {
                        self.emit(NodeEvent::ProjectChanged {
                            project: id,
                            heads: p.heads(),
                        });
                    }
                    self.kick_all(id);
                }
            }
        }
    }
}
