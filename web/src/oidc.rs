//! Sign-in through OpenID Connect: the authorization code flow with PKCE (S256) against any
//! standard provider, and the id_token verified before anything of it is trusted (the provider's
//! signature by its published keys, issuer, audience, nonce and expiry).
//!
//! ORCID is such a provider (issuer `https://orcid.org`, scope `openid`, the `sub` is the bare
//! iD). A provider configured as ORCID yields an [`Orcid`] only for a subject whose ISO 7064
//! MOD 11-2 check character is right; the home node then attests the binding of that iD to the
//! user's author key.
//!
//! The provider is reached with a blocking HTTP client on tokio's blocking pool, with redirects
//! off (the token and key endpoints are taken from the discovery document, never from a
//! redirect), a timeout, and a bound on every body read.

use std::time::{Duration, Instant};

use openidconnect::core::{CoreClient, CoreIdTokenClaims, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use orrery_protocol::Orcid;

/// Longest a request to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest body read from the provider (discovery documents, key sets and token responses are
/// a few kilobytes).
const MAX_PROVIDER_BODY: u64 = 1024 * 1024;
/// Longest a sign-in may take between leaving for the provider and coming back.
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(600);

/// The issuer of ORCID's production service.
pub const ORCID_ISSUER: &str = "https://orcid.org";

/// One OpenID provider a node lets its users sign in with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ProviderConfig {
    /// A short name used in the node's URLs (`/auth/login/{id}`), e.g. `orcid`.
    pub id: String,
    /// What the sign-in page calls it, e.g. "ORCID" or "EMBL-EBI".
    pub display_name: String,
    /// The provider's issuer URL (its discovery document is under
    /// `/.well-known/openid-configuration`).
    pub issuer: String,
    /// The client id the provider registered for this node.
    pub client_id: String,
    /// The client secret, when the provider issued one.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Whether the provider is ORCID (or a sandbox of it): its subjects are ORCID iDs.
    #[serde(default)]
    pub orcid: bool,
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider's configuration is unusable.
    #[error("the provider {provider} is misconfigured: {reason}")]
    Config {
        /// The provider's id.
        provider: String,
        /// What is wrong.
        reason: String,
    },
    /// The provider could not be reached or answered something unusable.
    #[error("the provider {provider} could not be used: {reason}")]
    Provider {
        /// The provider's id.
        provider: String,
        /// What went wrong.
        reason: String,
    },
    /// The sign-in coming back does not match one this node started, or took too long.
    #[error("this sign-in was not started here or has expired; start again")]
    UnknownSignIn,
    /// The provider's answer failed verification.
    #[error("the provider's identity token failed verification: {0}")]
    Token(String),
}

/// Who the provider says signed in, after the id_token was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The provider's id (as configured on this node).
    pub provider: String,
    /// The issuer that signed the token.
    pub issuer: String,
    /// The provider's stable identifier of the person.
    pub subject: String,
    /// The person's name, when the provider gave one.
    pub name: Option<String>,
    /// The ORCID iD, when the provider is ORCID and the subject is a valid iD.
    pub orcid: Option<Orcid>,
}

/// A sign-in that left for the provider: what its return must match. Kept server-side, keyed
/// by [`PendingSignIn::state`]; never sent to the browser except the state itself.
#[derive(Debug)]
pub struct PendingSignIn {
    state: String,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    started: Instant,
}

impl PendingSignIn {
    /// The `state` the provider will send back.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// Whether it is too old to finish.
    pub fn expired(&self) -> bool {
        self.started.elapsed() > SIGN_IN_WINDOW
    }
}

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A provider, discovered and ready for sign-ins.
#[derive(Debug, Clone)]
pub struct Provider {
    config: ProviderConfig,
    client: Client,
}

impl Provider {
    /// Fetches the provider's discovery document and keys; sign-ins come back to `redirect`.
    pub async fn discover(config: ProviderConfig, redirect: &str) -> Result<Provider, OidcError> {
        let misconfigured = |reason: String| OidcError::Config {
            provider: config.id.clone(),
            reason,
        };
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|e| misconfigured(format!("issuer {:?}: {e}", config.issuer)))?;
        let redirect = RedirectUrl::new(redirect.to_owned())
            .map_err(|e| misconfigured(format!("redirect {redirect:?}: {e}")))?;
        let id = config.id.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            CoreProviderMetadata::discover(&issuer, &http_call)
        })
        .await
        .map_err(|e| OidcError::Provider {
            provider: id.clone(),
            reason: e.to_string(),
        })?
        .map_err(|e| OidcError::Provider {
            provider: id,
            reason: format!("discovery failed: {}", chain(&e)),
        })?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect);
        Ok(Provider { config, client })
    }

    /// This provider's configuration.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// Starts a sign-in: the URL to send the browser to, and what its return must match.
    pub fn begin(&self) -> (String, PendingSignIn) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        if !self.config.orcid {
            // ORCID offers `openid` only.
            request = request.add_scope(Scope::new("profile".into()));
        }
        let (url, state, nonce) = request.url();
        (
            url.to_string(),
            PendingSignIn {
                state: state.secret().clone(),
                nonce,
                verifier,
                started: Instant::now(),
            },
        )
    }

    /// Finishes a sign-in that came back with `code` and `state`: exchanges the code (with the
    /// PKCE verifier) and verifies the id_token.
    pub async fn finish(
        &self,
        pending: PendingSignIn,
        code: String,
        state: &str,
    ) -> Result<SignedIn, OidcError> {
        if pending.expired() || !constant_time_eq(pending.state.as_bytes(), state.as_bytes()) {
            return Err(OidcError::UnknownSignIn);
        }
        let provider = self.config.id.clone();
        let client = self.client.clone();
        let PendingSignIn {
            nonce, verifier, ..
        } = pending;
        let response = tokio::task::spawn_blocking(move || {
            client
                .exchange_code(AuthorizationCode::new(code))
                .map_err(|e| e.to_string())?
                .set_pkce_verifier(verifier)
                .request(&http_call)
                .map_err(|e| format!("the code exchange failed: {}", chain(&e)))
        })
        .await
        .map_err(|e| OidcError::Provider {
            provider: provider.clone(),
            reason: e.to_string(),
        })?
        .map_err(|reason| OidcError::Provider {
            provider: provider.clone(),
            reason,
        })?;
        let token = response
            .id_token()
            .ok_or_else(|| OidcError::Token("the provider sent no identity token".into()))?;
        let verifier = self.client.id_token_verifier();
        let claims: &CoreIdTokenClaims = token
            .claims(&verifier, &nonce)
            .map_err(|e| OidcError::Token(chain(&e)))?;
        let subject = claims.subject().as_str().to_owned();
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned());
        let orcid = self
            .config
            .orcid
            .then(|| subject.parse::<Orcid>().ok())
            .flatten();
        Ok(SignedIn {
            provider,
            issuer: claims.issuer().as_str().to_owned(),
            subject,
            name,
            orcid,
        })
    }
}

/// One request to the provider: no redirects, a timeout, a bounded body.
fn http_call(request: HttpRequest) -> Result<HttpResponse, ureq::Error> {
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(PROVIDER_TIMEOUT))
        .build()
        .new_agent();
    let response = agent.run(request)?;
    let (parts, mut body) = response.into_parts();
    let bytes = body.with_config().limit(MAX_PROVIDER_BODY).read_to_vec()?;
    Ok(HttpResponse::from_parts(parts, bytes))
}

/// An error and its causes, in one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod checks {
    use super::*;

    #[test]
    fn states_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
