//! The record of the node's labs (`labs/labs.json`): who owns each, its environment and data. A
//! node that restarts (its labs were stopped with it, or reaped after a crash) reads it back, so
//! every lab is there again, stopped, saying why, and starts again with its workspace.

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recorded {
    owner: String,
    environment: String,
    datasets: Vec<String>,
    created_at: i64,
}

impl LabManager {
    fn record_path(&self) -> PathBuf {
        self.config.dir.join("labs.json")
    }

    /// The labs an earlier run of the node recorded, stopped.
    pub(super) fn recorded(dir: &Path) -> BTreeMap<String, Lab> {
        let path = dir.join("labs.json");
        let Ok(bytes) = std::fs::read(&path) else {
            return BTreeMap::new();
        };
        let recorded: BTreeMap<String, Recorded> = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "the record of this node's labs does not parse; its labs are not listed (their workspaces are kept)");
                return BTreeMap::new();
            }
        };
        recorded
            .into_iter()
            .map(|(id, r)| {
                let lab = Lab {
                    info: LabInfo {
                        base_url: format!("/labs/{id}/"),
                        id: id.clone(),
                        owner: r.owner,
                        environment: r.environment,
                        datasets: r.datasets,
                        state: LabState::Stopped,
                        created_at: r.created_at,
                        notice: Some(
                            "stopped when its node stopped; start it again (its workspace is kept)"
                                .into(),
                        ),
                    },
                    token: String::new(),
                    run: 0,
                    watcher: None,
                    endpoint: None,
                };
                (id, lab)
            })
            .collect()
    }

    /// Writes the record (every lab with an owner), logging what could not be written.
    pub(super) fn save(&self) {
        let recorded: BTreeMap<String, Recorded> = self
            .lock()
            .iter()
            .filter(|(_, l)| l.info.owner != warm::WARM)
            .map(|(id, l)| {
                (
                    id.clone(),
                    Recorded {
                        owner: l.info.owner.clone(),
                        environment: l.info.environment.clone(),
                        datasets: l.info.datasets.clone(),
                        created_at: l.info.created_at,
                    },
                )
            })
            .collect();
        let path = self.record_path();
        let tmp = path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(&recorded)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                std::fs::create_dir_all(&self.config.dir)?;
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &path)
            });
        if let Err(e) = written {
            warn!(path = %path.display(), error = %e, "the record of this node's labs could not be written; after a restart its labs are not listed until it can");
        }
    }
}
