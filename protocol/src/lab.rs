//! Labs between nodes: an author's signed order to the node that runs (or will run) their lab,
//! and that node's answer.
//!
//! A researcher's home node places a lab at the member that holds its datasets and sends that
//! member a [`LabOrder`] signed with the researcher's author key. The order names the federation,
//! the node asked, the node sending it and a random id, and is fresh for [`ORDER_LIFETIME_SECS`]:
//! the node asked runs nothing for an order signed by someone else, meant for another node,
//! relayed by a node that does not host its author, stale, or seen before. The same order, with
//! [`LabAction::Open`], opens a tunnel to the lab's server over the data plane.

use serde::{Deserialize, Serialize};

use crate::federation::FederationId;
use crate::identity::NodeId;
use crate::limits::{MAX_NAME_BYTES, MAX_SIGNED_PAYLOAD};
use crate::signing::{Domain, SignedPayload};

/// How long an order may be used after it was made (and how far ahead its clock may be).
pub const ORDER_LIFETIME_SECS: i64 = 300;
/// Most datasets one lab may see.
pub const MAX_LAB_DATASETS: usize = 64;
/// Most log lines one answer carries.
pub const MAX_LOG_LINES: usize = 1000;
/// Longest reason or notice of a lab.
pub const MAX_NOTE_BYTES: usize = 4096;
/// Most labs one answer lists.
pub const MAX_LABS_LISTED: usize = 256;

/// What an author asks of a node's labs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabAction {
    /// Start a new lab of `environment` seeing `datasets` (collections held by the node).
    Create {
        /// The environment's id.
        environment: String,
        /// The collections, read-only under `/data`.
        datasets: Vec<String>,
    },
    /// Start a stopped or failed lab again, with its workspace.
    Start {
        /// The lab.
        lab: String,
    },
    /// Stop a lab (its workspace is kept).
    Stop {
        /// The lab.
        lab: String,
    },
    /// Show one lab.
    Show {
        /// The lab.
        lab: String,
    },
    /// List the author's labs on the node.
    List,
    /// The last lines of a lab's server output.
    Logs {
        /// The lab.
        lab: String,
    },
    /// Add a collection held by the node to a running lab, read-only at `/data/<dataset>`.
    Attach {
        /// The lab.
        lab: String,
        /// The collection.
        dataset: String,
    },
    /// Open a tunnel to the lab's server (on the data plane's lab protocol only).
    Open {
        /// The lab.
        lab: String,
    },
}

/// An author's order to one node's labs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabOrder {
    /// The federation it is meant in.
    pub federation: FederationId,
    /// The node asked.
    pub node: NodeId,
    /// The node that sends it: one hosting the author.
    pub home: NodeId,
    /// What is asked.
    pub action: LabAction,
    /// Random: an order is honoured once.
    pub id: [u8; 16],
    /// When it was made, in seconds since the Unix epoch.
    pub issued_at: i64,
}

impl SignedPayload for LabOrder {
    const DOMAIN: Domain = Domain::LabOrder;
    const MAX_BYTES: usize = MAX_SIGNED_PAYLOAD;
    const NAME: &'static str = "lab order";
}

/// Why an order is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabOrderError {
    /// A field over its limit.
    #[error("a lab order's {0} is empty or over its limit")]
    Limit(&'static str),
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_BYTES
}

impl LabOrder {
    /// Checks the order's limits.
    pub fn validate(&self) -> Result<(), LabOrderError> {
        match &self.action {
            LabAction::Create {
                environment,
                datasets,
            } => {
                if !name_ok(environment) {
                    return Err(LabOrderError::Limit("environment"));
                }
                if datasets.len() > MAX_LAB_DATASETS || !datasets.iter().all(|d| name_ok(d)) {
                    return Err(LabOrderError::Limit("dataset list"));
                }
            }
            LabAction::Start { lab }
            | LabAction::Stop { lab }
            | LabAction::Show { lab }
            | LabAction::Logs { lab }
            | LabAction::Open { lab } => {
                if !name_ok(lab) {
                    return Err(LabOrderError::Limit("lab id"));
                }
            }
            LabAction::Attach { lab, dataset } => {
                if !name_ok(lab) || !name_ok(dataset) {
                    return Err(LabOrderError::Limit("lab id or dataset"));
                }
            }
            LabAction::List => {}
        }
        Ok(())
    }

    /// Whether the order may be used at `now` (seconds since the Unix epoch).
    pub fn fresh_at(&self, now: i64) -> bool {
        (now - ORDER_LIFETIME_SECS..=now + ORDER_LIFETIME_SECS).contains(&self.issued_at)
    }
}

/// A lab as another node shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSummary {
    /// Its id.
    pub id: String,
    /// Its environment.
    pub environment: String,
    /// The collections it sees.
    pub datasets: Vec<String>,
    /// Its state (`pending` … `running`, `stopped`, `failed`).
    pub state: String,
    /// Why it failed, if it did.
    pub reason: Option<String>,
    /// When it was made, in seconds since the Unix epoch.
    pub created_at: i64,
    /// What its owner should know now (it is idle and will be stopped, or was).
    pub notice: Option<String>,
}

/// The answer to a lab order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabReply {
    /// The labs concerned (one for every action but `List`).
    Labs(Vec<LabSummary>),
    /// A lab's last log lines.
    Logs(Vec<String>),
    /// Refused, and why, in words the author can act on.
    Refused {
        /// The kind, for the requester's status code.
        kind: LabRefusal,
        /// What to do about it.
        reason: String,
    },
}

/// The kinds of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabRefusal {
    /// No such lab or dataset or environment.
    NotFound,
    /// A quota, or the lab is busy.
    Conflict,
    /// The order is not valid (signature, node, freshness, replay, author not hosted).
    Forbidden,
    /// Labs cannot run there now.
    Unavailable,
}

impl LabReply {
    /// Checks the answer's limits.
    pub fn validate(&self) -> Result<(), LabOrderError> {
        match self {
            LabReply::Labs(labs) if labs.len() > MAX_LABS_LISTED => {
                Err(LabOrderError::Limit("list of labs"))
            }
            LabReply::Labs(labs)
                if labs.iter().any(|l| {
                    [&l.reason, &l.notice]
                        .iter()
                        .any(|t| t.as_ref().is_some_and(|t| t.len() > MAX_NOTE_BYTES))
                }) =>
            {
                Err(LabOrderError::Limit("lab's note"))
            }
            LabReply::Logs(lines) if lines.len() > MAX_LOG_LINES => {
                Err(LabOrderError::Limit("log"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SecretKey;
    use crate::signing::Signed;

    fn order(action: LabAction, issued_at: i64) -> LabOrder {
        let node = NodeId(SecretKey::generate().expect("key").public());
        LabOrder {
            federation: FederationId([1; 32]),
            node,
            home: node,
            action,
            id: [7; 16],
            issued_at,
        }
    }

    #[test]
    fn an_order_is_fresh_for_its_lifetime_only() {
        let o = order(LabAction::List, 1000);
        assert!(o.fresh_at(1000) && o.fresh_at(1000 + ORDER_LIFETIME_SECS));
        assert!(!o.fresh_at(1001 + ORDER_LIFETIME_SECS));
        assert!(!o.fresh_at(999 - ORDER_LIFETIME_SECS), "from the future");
    }

    #[test]
    fn limits_are_checked() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let too_many = LabAction::Create {
            environment: "jupyter".into(),
            datasets: vec!["a".into(); MAX_LAB_DATASETS + 1],
        };
        assert!(order(too_many, 0).validate().is_err());
        assert!(order(LabAction::Stop { lab: long }, 0).validate().is_err());
        assert!(
            order(LabAction::Show { lab: String::new() }, 0)
                .validate()
                .is_err()
        );
        assert!(order(LabAction::List, 0).validate().is_ok());
    }

    #[test]
    fn a_signed_order_does_not_survive_a_changed_byte() {
        let key = SecretKey::generate().expect("key");
        let original = order(LabAction::List, 5);
        let signed = Signed::sign(&key, original.clone()).into_unverified();
        let bytes = crate::encoding::encode(&signed);
        assert!(
            crate::encoding::decode::<Signed<LabOrder, crate::Unverified>>("t", &bytes, 1 << 20)
                .expect("decodes")
                .verify()
                .is_ok()
        );
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            if let Ok(s) =
                crate::encoding::decode::<Signed<LabOrder, crate::Unverified>>("t", &b, 1 << 20)
            {
                assert!(
                    s.verify().ok().map(|v| v.value().clone()) != Some(original.clone()),
                    "byte {i}"
                );
            }
        }
    }
}
