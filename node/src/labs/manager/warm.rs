//! Warm labs: sandboxed Jupyter Servers of each environment started before anyone asks, so that
//! a new lab is one claim away. A claim gives the waiting server to its owner and adds the
//! collections asked for to its running sandbox (`ComputeBackend::attach`); a new one is then
//! started in the background. Warm labs belong to nobody: they are not listed, not culled, never
//! reached, and count toward the node's room only so that they never take a researcher's place.

use std::sync::atomic::Ordering;

use super::*;

/// The owner of a warm lab: nobody yet.
pub(super) const WARM: &str = "";

/// How long the keeper waits before trying again after a warm lab failed to start.
const RETRY: Duration = Duration::from_secs(30);

impl LabManager {
    /// Keeps `per_env` warm labs of each environment; the task ends with the manager.
    pub fn keep_warm(self: &Arc<Self>, per_env: usize) {
        if per_env == 0 {
            return;
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(manager) = me.upgrade() else { break };
                if manager.closing.load(Ordering::Relaxed) {
                    break;
                }
                manager.refill(per_env).await;
                let wake = manager.warm_wake.clone();
                drop(manager);
                // A claim wakes it; a failed start is tried again later.
                let _ = tokio::time::timeout(RETRY, wake.notified()).await;
            }
        });
    }

    /// Warm labs ready now.
    pub fn warm_ready(&self) -> usize {
        self.lock()
            .values()
            .filter(|l| l.info.owner == WARM && l.info.state == LabState::Running)
            .count()
    }

    /// Starts warm labs until each environment has `per_env` (or the node has no room).
    async fn refill(self: &Arc<Self>, per_env: usize) {
        // Warm labs that failed or stopped are dropped, with their directories.
        let gone: Vec<String> = {
            let mut labs = self.lock();
            let gone: Vec<String> = labs
                .iter()
                .filter(|(_, l)| l.info.owner == WARM && l.info.state.is_final())
                .map(|(id, _)| id.clone())
                .collect();
            for id in &gone {
                labs.remove(id);
            }
            gone
        };
        for id in gone {
            let _ = std::fs::remove_dir_all(self.workspace(&id));
            let _ = std::fs::remove_file(self.workspace_image_path(&id));
            let _ = std::fs::remove_dir_all(self.run_dir(&id));
            let _ = std::fs::remove_dir_all(self.data_root(&id));
        }
        for env in self.environments.clone() {
            loop {
                if self.closing.load(Ordering::Relaxed) {
                    return;
                }
                let (warm, others) = {
                    let labs = self.lock();
                    let live = labs.values().filter(|l| !l.info.state.is_final());
                    let (warm, others): (Vec<&Lab>, Vec<&Lab>) =
                        live.partition(|l| l.info.owner == WARM);
                    (
                        warm.iter().filter(|l| l.info.environment == env.id).count(),
                        others.len() + warm.len(),
                    )
                };
                if warm >= per_env || others >= self.config.quotas.labs {
                    break;
                }
                let (id, token) = match (random_hex(6), random_hex(24)) {
                    (Ok(id), Ok(token)) => (format!("lab-{id}"), token),
                    (Err(e), _) | (_, Err(e)) => {
                        warn!(error = %e, "no warm lab can be made; new labs start cold");
                        return;
                    }
                };
                self.lock().insert(
                    id.clone(),
                    Lab {
                        info: LabInfo {
                            id: id.clone(),
                            owner: WARM.to_owned(),
                            environment: env.id.clone(),
                            datasets: Vec::new(),
                            state: LabState::Pending,
                            created_at: now(),
                            base_url: format!("/labs/{id}/"),
                            notice: None,
                        },
                        token,
                        run: 0,
                        watcher: None,
                        endpoint: None,
                    },
                );
                let started = self.run(&id, env.clone(), Vec::new()).await;
                if !matches!(started, Ok(ref l) if l.state == LabState::Running) {
                    warn!(lab = %id, environment = %env.id, "a warm lab did not start; new labs start cold until one does (its log says why)");
                    return;
                }
                info!(lab = %id, environment = %env.id, "a warm lab waits");
            }
        }
    }

    /// A warm lab of `environment` given to `owner` with `datasets` added, or `None` if none is
    /// ready (or it could not be made theirs; a cold start follows).
    pub(super) async fn claim(
        &self,
        owner: &str,
        environment: &str,
        datasets: &[(String, PathBuf)],
    ) -> Result<Option<LabInfo>, LabError> {
        let id = {
            let mut labs = self.lock();
            self.check_quotas(&labs, owner)?;
            let Some(lab) = labs.values_mut().find(|l| {
                l.info.owner == WARM
                    && l.info.environment == environment
                    && l.info.state == LabState::Running
            }) else {
                return Ok(None);
            };
            lab.info.owner = owner.to_owned();
            lab.info.created_at = now();
            lab.info.id.clone()
        };
        self.warm_wake.notify_one();
        for (collection, host) in datasets {
            if let Err(e) = self.attach(&id, owner, collection, host.clone()).await {
                warn!(lab = %id, error = %e, "a warm lab could not be given its data; a cold one starts instead");
                let _ = self.stop(&id, None).await;
                self.lock().remove(&id);
                return Ok(None);
            }
        }
        info!(lab = %id, owner, environment, "a warm lab was claimed");
        self.save();
        let shown = self.get(&id, None)?;
        let _ = self.events.send(LabEvent {
            lab: id,
            owner: owner.to_owned(),
            state: shown.state.clone(),
            detail: None,
        });
        Ok(Some(shown))
    }
}
