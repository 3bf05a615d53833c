//! Accounts as the HTTP face needs them: who a credential stands for, and recording a verified
//! sign-in — the user (and their author key) made on first sign-in, and the node's attestation
//! of an ORCID iD the provider vouched for.

use orrery_protocol::{OrcidAttestation, Signed};
use orrery_web::api::{CreatedToken, NewToken, TokenView};
use orrery_web::oidc::SignedIn;
use orrery_web::{ApiError, Credential, Principal};

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

fn store(home: &Home) -> Result<Store, ApiError> {
    Store::open(&home.database()).map_err(|e| ApiError::unavailable(e.to_string()))
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(e.to_string())
}

fn token_view(t: crate::store::TokenInfo) -> TokenView {
    TokenView {
        id: t.id,
        scopes: t.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        expires_at: t.expires_at,
        last_used: t.last_used,
        revoked: t.revoked,
    }
}

/// `who`'s tokens.
pub(super) fn tokens(home: &Home, who: &Principal) -> Result<Vec<TokenView>, ApiError> {
    let tokens = store(home)?.tokens(Some(&who.user)).map_err(unavailable)?;
    Ok(tokens.into_iter().map(token_view).collect())
}

/// How long a token lives unless asked otherwise.
const DEFAULT_TOKEN_DAYS: u32 = 30;

/// A new token for `who`, with some of the scopes their own credential has.
pub(super) fn create_token(
    home: &Home,
    who: &Principal,
    new: NewToken,
) -> Result<CreatedToken, ApiError> {
    let scopes = Scope::parse_list(&new.scopes.join(",")).ok_or_else(|| {
        ApiError::invalid("scopes must be one or more of `read`, `write`, `labs`")
    })?;
    if let Some(s) = scopes
        .iter()
        .find(|s| !who.scopes.iter().any(|w| w == s.as_str()))
    {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!(
                "this credential may not `{}`, so it cannot make a token that may",
                s.as_str()
            ),
        ));
    }
    let days = new.days.unwrap_or(DEFAULT_TOKEN_DAYS);
    if !(1..=366).contains(&days) {
        return Err(ApiError::invalid("days must be 1 to 366"));
    }
    let secs = i64::from(days) * 24 * 3600;
    let mut store = store(home)?;
    let (id, token) = store
        .create_token(&who.user, &scopes, secs)
        .map_err(unavailable)?;
    let made = store
        .tokens(Some(&who.user))
        .map_err(unavailable)?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ApiError::unavailable("the token was made but is not found"))?;
    tracing::info!(user = %who.user, token = %id, "an API token was made through the API");
    Ok(CreatedToken {
        id,
        token,
        scopes: made.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        expires_at: made.expires_at,
    })
}

/// Revokes one of `who`'s tokens.
pub(super) fn revoke_token(home: &Home, who: &Principal, id: &str) -> Result<(), ApiError> {
    let mut store = store(home)?;
    let theirs = store
        .tokens(Some(&who.user))
        .map_err(unavailable)?
        .iter()
        .any(|t| t.id == id);
    if !theirs {
        return Err(ApiError::not_found(format!("you have no token `{id}`")));
    }
    store.revoke_token(id).map_err(unavailable)?;
    tracing::info!(user = %who.user, token = %id, "an API token was revoked");
    Ok(())
}

/// Ends a browser session.
pub(super) fn sign_out(home: &Home, secret: &str) -> Result<(), ApiError> {
    store(home)?.end_session(secret).map_err(unavailable)
}
