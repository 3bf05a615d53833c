//! The labs' sandbox for a job's run in a batch job of the centre's cluster: the same
//! environment, bubblewrap confinement and Jupyter server as a lab here, described for the
//! process the batch job starts on its compute node. Its workspace is a fresh directory of the
//! run's own (a batch run does not share its author's lab), and its datasets are bound as a
//! lab's are.

use std::path::{Path, PathBuf};

use orrery_protocol::AuthorId;

use super::Labs;
use crate::labs::env::{Environment, provision};
use crate::labs::sandbox::SandboxSpec;

/// A run's sandbox, as the batch job starts it.
pub(in crate::service) struct BatchSandbox {
    /// The `orrery` binary whose `lab exec` enters it.
    pub(in crate::service) helper: PathBuf,
    /// The lab's uid and gid.
    pub(in crate::service) uid: u32,
    /// bubblewrap and its arguments.
    pub(in crate::service) argv: Vec<String>,
    /// The Jupyter server's socket.
    pub(in crate::service) socket: PathBuf,
}

impl Labs {
    /// The sandbox of a batch run for `author` in `dir` (its workspace and run directory are
    /// made there, owned by the lab's user), seeing `collections`, its server under `base_url`
    /// with `token`, in `env` (the project's pinned one, or the default). Provisions the
    /// environment if it is not yet.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::service) async fn batch_sandbox(
        &self,
        author: AuthorId,
        collections: &[String],
        env: &Environment,
        dir: &Path,
        base_url: &str,
        token: &str,
    ) -> Result<BatchSandbox, String> {
        if *env != Environment::jupyter() {
            crate::labs::env::check_lock(&env.lock)
                .map_err(|why| format!("the project's pinned environment is refused: {why}"))?;
        }
        // A batch run starts the sandbox on a compute node: the lock, never an image.
        let env = Environment {
            image: None,
            ..env.clone()
        };
        let data = self
            .datasets(collections)
            .await
            .map_err(|e| e.message)?
            .into_iter()
            .map(|(collection, host)| crate::labs::sandbox::DataVolume { collection, host })
            .collect();
        let config = self.config.clone();
        let envs = config
            .envs
            .clone()
            .unwrap_or_else(|| self.home.root().join("labs").join("envs"));
        let (dir, base_url, token) = (dir.to_owned(), base_url.to_owned(), token.to_owned());
        let owner = author.to_string();
        tokio::task::spawn_blocking(move || {
            let provisioned = provision(&envs, &env, &config.python, &mut |_| {})
                .map_err(|e| format!("the environment could not be provisioned: {e}"))?;
            let (workspace, run_dir) = (dir.join("workspace"), dir.join("run"));
            for d in [&workspace, &run_dir] {
                std::fs::create_dir_all(d)
                    .and_then(|()| {
                        rustix::fs::chown(
                            d,
                            Some(rustix::fs::Uid::from_raw(config.uid)),
                            Some(rustix::fs::Gid::from_raw(config.uid)),
                        )
                        .map_err(Into::into)
                    })
                    .and_then(|()| {
                        rustix::fs::chmod(d, rustix::fs::Mode::from_raw_mode(0o700))
                            .map_err(Into::into)
                    })
                    .map_err(|e| format!("{} could not be made for the run: {e}", d.display()))?;
            }
            let helper = match &config.helper {
                Some(h) => h.clone(),
                None => std::env::current_exe().map_err(|e| e.to_string())?,
            };
            let (command, env_vars) =
                crate::labs::jupyter::command(&provisioned, &base_url, &token);
            let spec = SandboxSpec {
                bwrap: config.bwrap.clone(),
                uid: config.uid,
                gid: config.uid,
                read_only: vec![provisioned.root.clone()],
                data_root: None,
                data,
                confine: config.landlock.then(|| helper.clone()),
                workspace,
                workspace_read_only: false,
                run_dir: run_dir.clone(),
                tmp_bytes: config.tmp_mib << 20,
                env: env_vars,
                command,
            };
            let args = spec.args().map_err(|e| e.to_string())?;
            let argv = std::iter::once(config.bwrap.into_os_string())
                .chain(args)
                .map(|a| {
                    a.into_string().map_err(|a| {
                        format!("{a:?} is not UTF-8; a batch run's sandbox is described in JSON")
                    })
                })
                .collect::<Result<Vec<String>, String>>()?;
            tracing::debug!(owner, dir = %dir.display(), "a batch run's sandbox is described");
            Ok(BatchSandbox {
                helper,
                uid: config.uid,
                argv,
                socket: crate::labs::jupyter::socket_in(&run_dir),
            })
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
