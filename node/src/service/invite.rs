//! The invitation token an operator hands to the operator of a joining node.

use super::*;

/// An invitation as handed to the joining operator: the signed invitation, where to reach the
/// inviter, and the one-time code if there is one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InviteToken {
    /// The signed invitation.
    pub invitation: Signed<orrery_protocol::federation::Invitation>,
    /// The inviter's addresses.
    pub addrs: Vec<String>,
    /// The one-time code, for code invitations.
    pub code: Option<[u8; 32]>,
}

const TOKEN_PREFIX: &str = "orrery-invite-";

impl InviteToken {
    /// The token as text.
    pub fn encode(&self) -> String {
        format!(
            "{TOKEN_PREFIX}{}",
            hex::encode(orrery_protocol::encoding::encode(self))
        )
    }

    /// Reads a token.
    pub fn decode(text: &str) -> Result<Self, NodeError> {
        let hexpart = text
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(|| NodeError::BadToken(format!("it must start with {TOKEN_PREFIX}")))?;
        let bytes = hex::decode(hexpart).map_err(|e| NodeError::BadToken(e.to_string()))?;
        orrery_protocol::encoding::decode("invitation token", &bytes, 64 * 1024)
            .map_err(|e| NodeError::BadToken(e.to_string()))
    }
}
