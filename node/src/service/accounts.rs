//! Accounts as the HTTP face needs them: who a credential stands for, and recording a verified
//! sign-in — the user (and their author key) made on first sign-in, and the node's attestation
//! of an ORCID iD the provider vouched for.

use orrery_protocol::{OrcidAttestation, Signed};
use orrery_web::oidc::SignedIn;
use orrery_web::{Credential, Principal};

use crate::home::{Home, read_key};
use crate::store::{Scope, Store, User};

fn principal(user: User, scopes: &[Scope]) -> Principal {
    let orcid = user.orcid_attestation.as_deref().and_then(|bytes| {
        let signed: Signed<OrcidAttestation, orrery_protocol::Unverified> =
            orrery_protocol::encoding::decode(
                "an ORCID attestation",
                bytes,
                orrery_protocol::limits::MAX_SIGNED_PAYLOAD,
            )
            .ok()?;
        OrcidAttestation::verify(signed)
            .ok()
            .map(|a| a.value().orcid.to_string())
    });
    Principal {
        user: user.id,
        name: user.name,
        author: user.author.to_string(),
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        orcid,
    }
}

/// The user `credential` stands for, if it is valid now.
pub(super) fn authenticate(
    home: &Home,
    credential: Credential,
) -> Result<Option<Principal>, String> {
    let mut store = Store::open(&home.database()).map_err(|e| e.to_string())?;
    match credential {
        Credential::Bearer(token) => Ok(store
            .use_token(&token)
            .map_err(|e| e.to_string())?
            .map(|(u, scopes)| principal(u, &scopes))),
        Credential::Session(secret) => Ok(store
            .session_user(&secret)
            .map_err(|e| e.to_string())?
            .map(|u| principal(u, &[Scope::Read, Scope::Write, Scope::Labs]))),
    }
}

/// Records a verified sign-in and opens a session; returns its secret.
pub(super) fn sign_in(home: &Home, who: SignedIn) -> Result<String, String> {
    let mut store = Store::open(&home.database()).map_err(|e| e.to_string())?;
    let user = match store
        .user_by_identity(&who.issuer, &who.subject)
        .map_err(|e| e.to_string())?
    {
        Some(u) => u,
        None => {
            let name = who
                .name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| who.subject.clone());
            let author = crate::setup::new_author(home, &mut store, &name, who.orcid.clone(), None)
                .map_err(|e| e.to_string())?;
            let user = store.add_user(&name, author).map_err(|e| e.to_string())?;
            store
                .add_identity(&user.id, &who.issuer, &who.subject)
                .map_err(|e| e.to_string())?;
            tracing::info!(user = %user.id, provider = %who.provider, "a new user signed in");
            user
        }
    };
    if let Some(orcid) = who.orcid {
        let node_key = read_key(&home.node_key()).map_err(|e| e.to_string())?;
        let attestation = Signed::sign(
            &node_key,
            OrcidAttestation {
                author: user.author,
                orcid,
                issuer: who.issuer.clone(),
                attested_at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64),
            },
        );
        let bytes = orrery_protocol::encoding::encode(&attestation.into_unverified());
        store
            .set_orcid_attestation(&user.id, &bytes)
            .map_err(|e| e.to_string())?;
    }
    store.create_session(&user.id).map_err(|e| e.to_string())
}
