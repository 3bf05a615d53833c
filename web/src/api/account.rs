//! The signed-in user, their API tokens, and signing out.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::{reader, writer};
use super::model::{CreatedToken, NewToken, SessionView, SignInProvider, TokenView};
use super::{ApiError, ErrorBody};
use crate::backend::Shared;
use crate::{Credential, Principal};

pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(session, sign_out))
}

async fn signed_in(b: &Shared, headers: &HeaderMap) -> Result<Principal, ApiError> {
    reader(b, headers)
        .await?
        .ok_or_else(ApiError::unauthenticated)
}

/// Who the request comes from: the user, their author key, their credential's scopes, and their
/// ORCID iD when this node verified it.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "account",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "what was asked for", body = Principal),
        (status = 401, description = "no valid credential", body = ErrorBody),
    )
)]
async fn me(State(b): State<Shared>, headers: HeaderMap) -> Result<Json<Principal>, ApiError> {
    signed_in(&b, &headers).await.map(Json)
}

/// This browser's session, for a page's header: who is signed in (none: nobody, or a session
/// that ended), and the ways to sign in to this node (its OpenID providers; none: it has no
/// sign-in, only tokens made on its command line). Never 401, so asking is no error.
#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "account",
    security((), ("session" = [])),
    responses(
        (status = 200, description = "what was asked for", body = SessionView),
    )
)]
async fn session(State(b): State<Shared>, headers: HeaderMap) -> Json<SessionView> {
    let signed_in = reader(&b, &headers).await.ok().flatten();
    let providers = b
        .providers()
        .into_iter()
        .map(|p| SignInProvider {
            url: format!("/auth/login/{}", p.id),
            id: p.id,
            name: p.display_name,
        })
        .collect();
    Json(SessionView {
        signed_in,
        providers,
    })
}

/// The caller's API tokens (never their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "account",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "what was asked for", body = Vec<TokenView>),
        (status = 401, description = "no valid credential", body = ErrorBody),
    )
)]
async fn tokens(
    State(b): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let who = signed_in(&b, &headers).await?;
    b.tokens(who).await.map(Json)
}

/// Makes an API token with some of the caller's scopes. Its secret is in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "account",
    security(("bearer" = []), ("session" = [])),
    request_body = NewToken,
    responses(
        (status = 201, description = "made", body = CreatedToken),
        (status = 400, description = "the request is malformed or impossible", body = ErrorBody),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
    )
)]
async fn create_token(
    State(b): State<Shared>,
    headers: HeaderMap,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let who = writer(&b, &headers, "write").await?;
    let Json(new) = body?;
    let made = b.create_token(who, new).await?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// Revokes one of the caller's tokens; it stops working at once.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "account",
    security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "the token's id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such thing that the caller may see", body = ErrorBody),
    )
)]
async fn revoke_token(
    State(b): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let who = writer(&b, &headers, "write").await?;
    b.revoke_token(who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Signs the browser out: its session ends on the node and its cookie is cleared.
#[utoipa::path(
    delete,
    path = "/api/v1/session",
    tag = "account",
    security(("session" = [])),
    responses(
        (status = 204, description = "signed out"),
        (status = 401, description = "no valid credential", body = ErrorBody),
        (status = 403, description = "the credential or the role does not allow it", body = ErrorBody),
    )
)]
async fn sign_out(State(b): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(Credential::Session(secret)) = crate::auth::credential(&headers) else {
        return Err(ApiError::unauthenticated());
    };
    writer(&b, &headers, "write").await?;
    b.sign_out(secret).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("orrery_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"),
    );
    Ok(r)
}
