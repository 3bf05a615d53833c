//! The manager's culler: looks at every running lab's kernels on a schedule, warns the owner of
//! one that has been idle (its `notice`, the log, an event), stops it once the idle time is up,
//! and keeps its workspace. A lab whose kernel is busy is never touched.

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use tracing::{info, warn};

use super::{LabEvent, LabManager, LabState};
use crate::labs::cull::{CullPolicy, Verdict, activity, judge, when};
use crate::labs::jupyter;

/// How an idle warning begins.
const IDLE: &str = "idle since";

impl LabManager {
    /// Starts culling idle labs under `policy`; the task ends with the manager.
    pub fn spawn_culler(self: &Arc<Self>, policy: CullPolicy) {
        if policy.idle.is_none() {
            return;
        }
        let me: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(policy.every());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(manager) = me.upgrade() else { break };
                manager.cull_once(&policy).await;
            }
        });
    }

    /// Looks at every running lab once.
    async fn cull_once(&self, policy: &CullPolicy) {
        let running: Vec<_> = self
            .lock()
            .iter()
            .filter(|(_, l)| l.info.state == LabState::Running && l.info.owner != super::warm::WARM)
            .filter_map(|(id, l)| {
                let endpoint = l.endpoint.clone()?;
                Some((
                    id.clone(),
                    l.run,
                    l.token.clone(),
                    l.info.base_url.clone(),
                    endpoint,
                ))
            })
            .collect();
        for (id, run, token, base, endpoint) in running {
            let status = jupyter::get(&endpoint, &format!("{base}api/status"), &token).await;
            // Asked so that the asking itself is not counted as use.
            let kernels = jupyter::get(
                &endpoint,
                &format!("{base}api/kernels?no_track_activity=1"),
                &token,
            )
            .await;
            let seen = match (status, kernels) {
                (Ok((200, s)), Ok((200, k))) => activity(&s, &k),
                _ => None,
            };
            let Some(seen) = seen else {
                // Its watcher reports a server that died; one that answers oddly is left alone.
                continue;
            };
            match judge(policy, seen, SystemTime::now()) {
                Verdict::Keep => {
                    // Used again: the warning goes (other notices stay).
                    let warned = self
                        .lock()
                        .get(&id)
                        .and_then(|l| l.info.notice.clone())
                        .is_some_and(|n| n.starts_with(IDLE));
                    if warned {
                        self.set_notice(&id, run, None);
                    }
                }
                Verdict::Warn(at) => {
                    let notice = format!(
                        "{IDLE} {}: it stops at {} unless a kernel runs or it is used (its workspace is kept)",
                        when(seen.last),
                        when(at)
                    );
                    if self.set_notice(&id, run, Some(notice.clone())) {
                        warn!(lab = %id, %notice, "an idle lab will be stopped");
                    }
                }
                Verdict::Stop(idle) => {
                    info!(lab = %id, idle_secs = idle.as_secs(), "an idle lab is stopped; its workspace is kept");
                    if self.stop(&id, None).await.is_ok() {
                        let notice = format!(
                            "stopped at {} after {} s with no kernel running and no use; its workspace is kept: start it again",
                            when(SystemTime::now()),
                            idle.as_secs()
                        );
                        self.set_notice(&id, run, Some(notice));
                    }
                }
            }
        }
    }

    /// Sets a lab's notice (for run `run`); whether it changed. Its owner hears of it.
    pub(super) fn set_notice(&self, id: &str, run: u64, notice: Option<String>) -> bool {
        let mut labs = self.lock();
        let Some(lab) = labs.get_mut(id).filter(|l| l.run == run) else {
            return false;
        };
        if lab.info.notice == notice {
            return false;
        }
        lab.info.notice.clone_from(&notice);
        let _ = self.events.send(LabEvent {
            lab: id.to_owned(),
            owner: lab.info.owner.clone(),
            state: lab.info.state.clone(),
            detail: notice,
        });
        true
    }
}
