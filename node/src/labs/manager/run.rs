//! One run of a lab: its environment provisioned, its directories made, its sandbox launched,
//! its server waited on, and a watcher that reports the run's end.

use std::path::PathBuf;
use std::sync::Arc;

use tracing::info;

use super::{LabError, LabEvent, LabInfo, LabManager, LabState};
use crate::labs::backend::{LabRequest, Launched};
use crate::labs::env::{Environment, Progress, provision};
use crate::labs::jupyter;
use crate::labs::sandbox::DataVolume;

impl LabManager {
    /// The lab's workspace image, made (sparse, ext4, owned by the lab's user) for a new lab
    /// when there is a quota; `None` for a workspace that is a plain directory (no quota, or
    /// made before images).
    async fn workspace_image(&self, id: &str) -> Result<Option<PathBuf>, String> {
        let image = self.workspace_image_path(id);
        if image.exists() {
            return Ok(Some(image));
        }
        let quota = self.config.workspace_bytes;
        let dir = self.workspace(id);
        let fresh = std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none());
        if quota == 0 || !fresh {
            return Ok(None);
        }
        let uid = self.config.uid;
        tokio::task::spawn_blocking(move || make_image(&image, quota, uid).map(|()| Some(image)))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Whether the lab's workspace is over its quota; if so, the run gets it read-only and its
    /// owner is told why (a full workspace never keeps a lab from starting).
    /// An image holds at most its own size: it is over the quota only if the quota was lowered
    /// since it was made. A plain directory (no quota when it was made) is measured.
    async fn over_quota(&self, id: &str, run: u64, image: Option<&std::path::Path>) -> bool {
        let quota = self.config.workspace_bytes;
        if quota == 0 {
            return false;
        }
        let dir = self.workspace(id);
        let image = image.map(std::path::Path::to_path_buf);
        let used = tokio::task::spawn_blocking(move || {
            if let Some(image) = image {
                return std::fs::metadata(image).map_or(0, |m| m.len());
            }
            walkdir::WalkDir::new(dir)
                .into_iter()
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum::<u64>()
        })
        .await
        .unwrap_or(0);
        if used <= quota {
            return false;
        }
        let notice = format!(
            "its workspace holds {} MiB, over its quota of {} MiB: it is read-only in this run; download what you need and delete files, or ask the node's operator for a larger `[labs] workspace_mib`",
            used >> 20,
            quota >> 20
        );
        tracing::warn!(
            lab = id,
            used,
            quota,
            "a workspace over its quota starts read-only"
        );
        self.set_notice(id, run, Some(notice));
        true
    }

    /// One run of a lab: environment, sandbox, server; watched until it ends.
    pub(super) async fn run(
        self: &Arc<Self>,
        id: &str,
        env: Environment,
        datasets: Vec<(String, PathBuf)>,
    ) -> Result<LabInfo, LabError> {
        let (run, token) = {
            let labs = self.lock();
            let lab = labs.get(id).ok_or_else(|| LabError::NoLab(id.to_owned()))?;
            (lab.run, lab.token.clone())
        };
        let fail = |reason: String| {
            self.advance(id, run, LabState::Failed { reason }, None);
        };
        self.advance(id, run, LabState::Placed, None);
        self.advance(id, run, LabState::Provisioning, None);
        let base_url = format!("/labs/{id}/");
        let data: Vec<DataVolume> = datasets
            .into_iter()
            .map(|(collection, host)| DataVolume { collection, host })
            .collect();
        let request = if self.backend.on_this_machine() {
            match self
                .prepare_here(id, run, env, data, &base_url, &token)
                .await
            {
                Ok(request) => request,
                Err(why) => {
                    fail(why);
                    return self.get(id, None);
                }
            }
        } else {
            // The backend's image is the environment; the backend keeps workspace and output.
            self.advance(id, run, LabState::Starting, None);
            LabRequest {
                lab: id.to_owned(),
                limits: self.config.limits,
                data,
                data_root: None,
                workspace: self.workspace(id),
                workspace_read_only: false,
                workspace_image: None,
                run_dir: self.run_dir(id),
                read_only: Vec::new(),
                tmp_bytes: self.config.tmp_bytes,
                env: jupyter::pod_env(),
                command: Vec::new(),
                base_url: base_url.clone(),
                token: token.clone(),
                log: None,
                image: env.image.clone(),
            }
        };
        let backend = self.backend.clone();
        let launched = tokio::task::spawn_blocking(move || backend.launch(&request)).await;
        let Launched {
            mut process,
            endpoint,
        } = match launched {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                fail(format!("the sandbox did not start: {e}"));
                return self.get(id, None);
            }
            Err(e) => {
                fail(format!("the sandbox did not start: {e}"));
                return self.get(id, None);
            }
        };
        if let Some(lab) = self.lock().get_mut(id).filter(|l| l.run == run) {
            lab.endpoint = Some(endpoint.clone());
        }
        let mut exited = None;
        let ready = jupyter::ready(
            &endpoint,
            &base_url,
            &token,
            self.config.start_deadline,
            &mut || match process.try_wait() {
                Some(how) => {
                    exited = Some(how);
                    false
                }
                None => true,
            },
        )
        .await;
        if let Err(e) = ready {
            let why = match exited {
                Some(how) => format!("its server ended ({how}) before answering"),
                None => e.to_string(),
            };
            let output = self.output(id, 15);
            let backend = self.backend.clone();
            let lab_id = id.to_owned();
            let _ = tokio::task::spawn_blocking(move || {
                let _ = backend.stop(&lab_id);
                process.wait()
            })
            .await;
            fail(format!("{why}; its last output:\n{output}"));
            return self.get(id, None);
        }
        self.advance(id, run, LabState::Running, None);
        info!(lab = id, %endpoint, "a lab runs");
        // Watch it: a lab whose server ends on its own has failed, and says why.
        let me = self.clone();
        let lab_id = id.to_owned();
        let watcher = tokio::task::spawn_blocking(move || {
            let how = process.wait();
            let oom = me.backend.out_of_memory(&lab_id);
            let output = me.output(&lab_id, 15);
            let _ = me.backend.stop(&lab_id);
            let reason = if oom {
                "it ran out of memory (its limit is the node's [labs] memory_mib); start it again"
                    .to_owned()
            } else {
                format!("its server ended ({how}); its last output:\n{output}")
            };
            // A lab being stopped ends as stopped; only an unasked end is a failure.
            me.advance_from(
                &lab_id,
                run,
                &LabState::Running,
                LabState::Failed { reason },
            );
        });
        if let Some(lab) = self.lock().get_mut(id) {
            lab.watcher = Some(watcher);
        }
        self.get(id, None)
    }

    /// What a run on this machine needs: the environment provisioned, the lab's directories and
    /// workspace image made; or why not.
    async fn prepare_here(
        self: &Arc<Self>,
        id: &str,
        run: u64,
        env: Environment,
        data: Vec<DataVolume>,
        base_url: &str,
        token: &str,
    ) -> Result<LabRequest, String> {
        let (dir, python) = (self.config.envs.clone(), self.config.python.clone());
        let me = self.clone();
        let lab_id = id.to_owned();
        let provisioned = tokio::task::spawn_blocking(move || {
            provision(&dir, &env, &python, &mut |p| {
                if let Progress::Installing(line) = p {
                    let _ = me.events.send(LabEvent {
                        lab: lab_id.clone(),
                        owner: String::new(),
                        state: LabState::Provisioning,
                        detail: Some(line),
                    });
                }
            })
        })
        .await;
        let provisioned = match provisioned {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(format!("the environment could not be provisioned: {e}")),
            Err(e) => return Err(format!("provisioning stopped: {e}")),
        };
        self.prepare_dirs(id)
            .map_err(|e| format!("the lab's directories could not be made: {e}"))?;
        let workspace_image = self
            .workspace_image(id)
            .await
            .map_err(|e| format!("its workspace could not be made: {e}"))?;
        let workspace_read_only = self.over_quota(id, run, workspace_image.as_deref()).await;
        self.advance(id, run, LabState::Starting, None);
        let (command, env_vars) = jupyter::command(&provisioned, base_url, token);
        Ok(LabRequest {
            lab: id.to_owned(),
            limits: self.config.limits,
            data,
            data_root: Some(self.data_root(id)),
            workspace: self.workspace(id),
            workspace_read_only,
            workspace_image,
            run_dir: self.run_dir(id),
            read_only: vec![provisioned.root.clone()],
            tmp_bytes: self.config.tmp_bytes,
            env: env_vars,
            command,
            base_url: base_url.to_owned(),
            token: token.to_owned(),
            log: Some(self.log_path(id)),
            image: None,
        })
    }

    fn prepare_dirs(&self, id: &str) -> std::io::Result<()> {
        let workspace = self.workspace(id);
        let run_dir = self.run_dir(id);
        // The mount points of an earlier run's collections go; this run's are made at launch.
        let data_root = self.data_root(id);
        let _ = std::fs::remove_dir_all(&data_root);
        for d in [
            &workspace,
            &run_dir,
            &data_root,
            &self.config.dir.join("logs"),
        ] {
            std::fs::create_dir_all(d)?;
        }
        // Parents are passable by the lab's user; the workspace and run directory are its own.
        for d in [
            self.config.dir.clone(),
            self.config.dir.join("workspaces"),
            self.config.dir.join("run"),
        ] {
            rustix::fs::chmod(&d, rustix::fs::Mode::from_raw_mode(0o711))?;
        }
        for d in [&workspace, &run_dir] {
            rustix::fs::chown(
                d,
                Some(rustix::fs::Uid::from_raw(self.config.uid)),
                Some(rustix::fs::Gid::from_raw(self.config.uid)),
            )?;
            rustix::fs::chmod(d, rustix::fs::Mode::from_raw_mode(0o700))?;
        }
        // A socket left by an earlier run would be mistaken for the new server's.
        let _ = std::fs::remove_file(jupyter::socket_in(&run_dir));
        // A lab has no network: JupyterLab is not to ask whether to fetch news it cannot
        // reach (its configuration directory is `config` in the run directory).
        let labconfig = run_dir.join("config/labconfig");
        std::fs::create_dir_all(&labconfig)?;
        std::fs::write(
            labconfig.join("page_config.json"),
            r#"{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}"#,
        )?;
        for p in [
            run_dir.join("config"),
            labconfig.clone(),
            labconfig.join("page_config.json"),
        ] {
            rustix::fs::chown(
                &p,
                Some(rustix::fs::Uid::from_raw(self.config.uid)),
                Some(rustix::fs::Gid::from_raw(self.config.uid)),
            )?;
        }
        Ok(())
    }
}

/// A sparse ext4 image of `bytes`, its root owned by `uid`, made as one step (a half-made image
/// is removed).
fn make_image(image: &std::path::Path, bytes: u64, uid: u32) -> Result<(), String> {
    let partial = image.with_extension("img.partial");
    let made = (|| {
        std::fs::File::create(&partial)
            .and_then(|f| f.set_len(bytes))
            .map_err(|e| format!("creating {}: {e}", partial.display()))?;
        let out = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            // A small journal (none for a tiny workspace): the image's size is the workspace's.
            .args(if bytes < 64 << 20 {
                ["-O", "^has_journal"]
            } else {
                ["-J", "size=4"]
            })
            .arg("-E")
            .arg(format!("root_owner={uid}:{uid}"))
            .arg(&partial)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .map_err(|e| format!("mkfs.ext4 (Debian's e2fsprogs) did not run: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mkfs.ext4 failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        std::fs::rename(&partial, image).map_err(|e| e.to_string())
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    made
}
