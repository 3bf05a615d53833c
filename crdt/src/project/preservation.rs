//! A project's preservation policy: how many copies of it the federation keeps, at how many
//! institutions, and on which nodes the owners name. It is kept in the project document (owners
//! set it), so every node holding the project reads the same policy; nodes it pins may hold the
//! project even when they host none of its members (unless it is restricted).

use orrery_protocol::preservation::{PreservationPolicy, Subject};

use super::*;

/// Largest stored policy.
const MAX_POLICY_BYTES: usize = 4096;

/// The policy stored as `text`, if it is a valid one (of whatever project it names).
pub(crate) fn parse_policy(text: &str) -> Option<PreservationPolicy> {
    if text.len() > MAX_POLICY_BYTES {
        return None;
    }
    serde_json::from_str::<PreservationPolicy>(text)
        .ok()
        .filter(|p| matches!(p.subject, Subject::Project(_)) && p.validate().is_ok())
}

impl Project {
    /// The project's preservation policy, if its owners set one.
    pub fn preservation_policy(&self) -> Option<PreservationPolicy> {
        self.get_str(&automerge::ROOT, K_PRESERVATION)
            .and_then(|t| parse_policy(&t))
            .filter(|p| p.subject == Subject::Project(self.id()))
    }

    /// Sets the project's preservation policy, or removes it (owners).
    pub fn set_preservation_policy(
        &mut self,
        session: &Session,
        policy: Option<&PreservationPolicy>,
    ) -> Result<(), EditError> {
        let text = match policy {
            Some(p) => {
                if p.subject != Subject::Project(self.id()) {
                    return Err(EditError::Invalid(
                        "a project's policy is about that project".into(),
                    ));
                }
                p.validate()
                    .map_err(|e| EditError::Invalid(e.to_string()))?;
                Some(serde_json::to_string(p).map_err(|e| EditError::Invalid(e.to_string()))?)
            }
            None => None,
        };
        self.edit(
            session,
            Role::Owner,
            "set the preservation policy",
            |tx, _| {
                match &text {
                    Some(t) => tx.put(automerge::ROOT, K_PRESERVATION, t.as_str())?,
                    None => tx.delete(automerge::ROOT, K_PRESERVATION)?,
                }
                Ok(())
            },
        )
    }
}
