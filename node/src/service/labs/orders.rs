//! Carrying out lab orders from other nodes, once the node actor judged them: the lab is
//! admitted here and started in the background (the home node follows its state), and a
//! collection whose policy does not name the home node is refused.

use std::path::PathBuf;

use orrery_protocol::lab::{LabAction, LabRefusal, LabReply, LabSummary};
use orrery_protocol::{AuthorId, NodeId};

use super::Labs;
use crate::labs::manager::{LabError, LabInfo};
use crate::labs::state::LabState;

impl Labs {
    /// Carries out an order of `author`, sent by `home` and judged by the node actor. A new or
    /// restarted lab is answered as soon as it was admitted; the home node follows its state.
    pub(in crate::service) async fn order(
        &self,
        home: NodeId,
        author: AuthorId,
        action: LabAction,
    ) -> LabReply {
        let owner = author.to_string();
        let manager = match self.manager().await {
            Ok(m) => m,
            Err(e) => return refused(LabRefusal::Unavailable, e.to_string()),
        };
        let summary = |l: LabInfo| summary(l);
        let r: Result<LabReply, LabError> = async {
            Ok(match action {
                LabAction::List => LabReply::Labs(
                    manager
                        .list(Some(&owner))
                        .into_iter()
                        .take(orrery_protocol::lab::MAX_LABS_LISTED)
                        .map(summary)
                        .collect(),
                ),
                LabAction::Show { lab } | LabAction::Open { lab } => {
                    LabReply::Labs(vec![summary(manager.get(&lab, Some(&owner))?)])
                }
                LabAction::Logs { lab } => {
                    let text = manager.logs(&lab, Some(&owner), 200)?;
                    LabReply::Logs(text.lines().map(str::to_owned).collect())
                }
                LabAction::Attach { lab, dataset } => {
                    let mut held = match self.datasets_for(home, &[dataset]).await {
                        Ok(h) => h,
                        Err(reply) => return Ok(reply),
                    };
                    let Some((collection, host)) = held.pop() else {
                        return Ok(refused(LabRefusal::NotFound, "no such collection".into()));
                    };
                    let l = manager.attach(&lab, &owner, &collection, host).await?;
                    LabReply::Labs(vec![summary(l)])
                }
                LabAction::Stop { lab } => {
                    let l = manager.stop(&lab, Some(&owner)).await?;
                    LabReply::Labs(vec![summary(l)])
                }
                LabAction::Create {
                    environment,
                    datasets,
                } => {
                    let held = match self.datasets_for(home, &datasets).await {
                        Ok(h) => h,
                        Err(reply) => return Ok(reply),
                    };
                    let l = manager
                        .create_in_background(&owner, &environment, held)
                        .await?;
                    LabReply::Labs(vec![summary(l)])
                }
                LabAction::Start { lab } => {
                    let shown = manager.get(&lab, Some(&owner))?;
                    let held = match self.datasets_for(home, &shown.datasets).await {
                        Ok(h) => h,
                        Err(reply) => return Ok(reply),
                    };
                    let l = manager.restart_in_background(&lab, &owner, held)?;
                    LabReply::Labs(vec![summary(l)])
                }
            })
        }
        .await;
        self.readvertise();
        match r {
            Ok(reply) => reply,
            Err(e) => {
                tracing::info!(peer = %home.short(), author = %author.short(), why = %e, "a lab order from another node was refused");
                refused(kind_of(&e), e.to_string())
            }
        }
    }

    /// Whether this node holds `collections` and their policies let `home`'s researchers read
    /// them (for a run ordered through `home`), or why not.
    pub(in crate::service) async fn readable_by(
        &self,
        home: NodeId,
        collections: &[String],
    ) -> Result<(), String> {
        match self.datasets_for(home, collections).await {
            Ok(_) => Ok(()),
            Err(LabReply::Refused { reason, .. }) => Err(reason),
            Err(_) => Err("the collections cannot be read here".into()),
        }
    }

    /// The collections a lab ordered through `home` sees, if this node holds them and their
    /// policies let `home`'s researchers read them.
    async fn datasets_for(
        &self,
        home: NodeId,
        names: &[String],
    ) -> Result<Vec<(String, PathBuf)>, LabReply> {
        let (db, asked) = (self.home.database(), names.to_vec());
        let who = home.to_string();
        let barred = tokio::task::spawn_blocking(move || {
            let catalog = crate::catalog::Catalog::open(&db).ok()?;
            asked.into_iter().find(|c| {
                matches!(crate::dataplane::products::holders(&catalog, c), Ok(Some(h)) if !h.contains(&who))
            })
        })
        .await
        .ok()
        .flatten();
        if let Some(c) = barred {
            return Err(refused(
                LabRefusal::Forbidden,
                format!(
                    "collection {c}'s policy lets only the nodes it names read it, and not yours (its publisher sets it with `orrery dataset policy`)"
                ),
            ));
        }
        self.datasets(names)
            .await
            .map_err(|e| refused(LabRefusal::NotFound, e.to_string()))
    }
}

fn summary(l: LabInfo) -> LabSummary {
    let reason = match &l.state {
        LabState::Failed { reason } => Some(reason.clone()),
        _ => None,
    };
    LabSummary {
        id: l.id,
        environment: l.environment,
        datasets: l.datasets,
        state: l.state.name().into(),
        reason,
        created_at: l.created_at,
        notice: l.notice,
    }
}

fn refused(kind: LabRefusal, reason: String) -> LabReply {
    LabReply::Refused { kind, reason }
}

pub(super) fn kind_of(e: &LabError) -> LabRefusal {
    match e {
        LabError::NoLab(_) | LabError::NoEnvironment(..) | LabError::NoDataset(_) => {
            LabRefusal::NotFound
        }
        LabError::Quota(_) | LabError::Busy(..) => LabRefusal::Conflict,
        LabError::Unavailable(_) => LabRefusal::Unavailable,
    }
}
