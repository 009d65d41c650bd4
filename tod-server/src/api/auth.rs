//! `/api/auth/*`: SRP-6a login, token refresh with rotation, logout, the caller, password change.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use tod_core::rbac::Principal;
use tod_core::srp::{self, EPHEMERAL_LEN, SrpError};
use tod_core::{TenantId, UserId};
use uuid::Uuid;

use super::{Body, ClientIp, hex_field};
use crate::app::AppState;
use crate::auth::{Caller, REFRESH_COOKIE, TokenPair, cookie_value, fake_credentials, random_bytes};
use crate::error::ApiError;
use crate::store::{Audit, PLATFORM_CHAIN, Rotation, SrpChallenge, User};

/// How long an SRP challenge lives.
const CHALLENGE_TTL: chrono::Duration = chrono::Duration::seconds(60);

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("Invalid credentials")
}

fn chain_of(tenant: Option<TenantId>) -> TenantId {
    tenant.unwrap_or(PLATFORM_CHAIN)
}

fn system_audit(
    chain: TenantId,
    user: Option<UserId>,
    action: &str,
    ip: ClientIp,
    details: serde_json::Value,
) -> Audit {
    Audit {
        chain,
        actor_user: user,
        actor_api_key: None,
        action: action.into(),
        resource_type: Some("session".into()),
        resource_id: None,
        details,
        ip: Some(ip.0.to_string()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct InitBody {
    email: String,
}

/// Step 1: the challenge. Unknown or disabled addresses get a fake one that looks the same.
pub(super) async fn srp_init(
    State(st): State<AppState>,
    Body(body): Body<InitBody>,
) -> Result<impl IntoResponse, ApiError> {
    let identity = srp::identity(&body.email);
    if identity.is_empty() || identity.len() > 255 {
        return Err(ApiError::unprocessable("email: 1 to 255 characters"));
    }
    let now = Utc::now();
    let (user_id, salt, verifier) = match st.store.user_credentials(&identity).await? {
        Some(c) if c.user.is_active => (Some(c.user.id), c.salt, c.verifier),
        _ => {
            let (salt, verifier) = fake_credentials(&st.keys, &identity);
            (None, salt, verifier)
        }
    };
    let b: [u8; EPHEMERAL_LEN] = random_bytes()?;
    let server_public = srp::server_public(&verifier, &b);
    let challenge = SrpChallenge {
        id: Uuid::new_v4(),
        email: identity,
        user_id,
        b: b.to_vec(),
        salt,
        verifier,
        expires_at: now + CHALLENGE_TTL,
    };
    st.store.put_srp_challenge(&challenge, now).await?;
    Ok(Json(json!({
        "salt": hex::encode(&challenge.salt),
        "server_public": hex::encode(server_public),
        "session_id": challenge.id,
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyBody {
    email: String,
    session_id: Uuid,
    client_public: String,
    client_proof: String,
}

/// Step 2: the proof. Success opens a session and returns tokens (also as cookies) and `M2`.
pub(super) async fn srp_verify(
    State(st): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    Body(body): Body<VerifyBody>,
) -> Result<Response, ApiError> {
    verify(&st, ip, body).await
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum LoginBody {
    Srp(VerifyBody),
    Password {
        #[allow(dead_code)]
        email: String,
        #[allow(dead_code)]
        password: String,
    },
}

/// `POST /api/auth/login`: the documented login path. It takes the SRP verify body; a plain
/// password is refused with 409 `srp_required` (the server never receives passwords).
pub(super) async fn login(
    State(st): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    Body(body): Body<LoginBody>,
) -> Result<Response, ApiError> {
    match body {
        LoginBody::Srp(v) => verify(&st, ip, v).await,
        LoginBody::Password { .. } => {
            Err(ApiError::new(StatusCode::CONFLICT, "srp_required").with_header("x-auth-method", "srp"))
        }
    }
}

async fn verify(st: &AppState, ip: ClientIp, body: VerifyBody) -> Result<Response, ApiError> {
    let now = Utc::now();
    let client_public = hex_field("client_public", &body.client_public, 1, 256)?;
    let client_proof = hex_field("client_proof", &body.client_proof, 32, 32)?;
    let challenge = st
        .store
        .take_srp_challenge(body.session_id, now)
        .await?
        .ok_or_else(invalid_credentials)?;
    let identity = srp::identity(&body.email);
    if identity != challenge.email {
        return Err(invalid_credentials());
    }
    let b: [u8; EPHEMERAL_LEN] = challenge
        .b
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::internal("stored SRP secret has the wrong length"))?;
    // The fake challenge runs the same computation and fails the same way.
    let proof = srp::server_verify(
        &identity,
        &challenge.salt,
        &challenge.verifier,
        &b,
        &client_public,
        &client_proof,
    );
    let user = match (challenge.user_id, &proof) {
        (Some(id), Ok(_)) => Some(st.store.get_user(None, id).await?).filter(|u| u.is_active),
        _ => None,
    };
    let (Some(user), Ok(server_proof)) = (user, proof.clone()) else {
        let known = match challenge.user_id {
            Some(id) => st.store.get_user(None, id).await.ok(),
            None => None,
        };
        let chain = known.as_ref().map_or(PLATFORM_CHAIN, |u| chain_of(u.tenant_id));
        let audit = system_audit(
            chain,
            known.map(|u| u.id),
            "login.failed",
            ip,
            json!({ "email": identity }),
        );
        st.store.append_audit(&audit, now).await?;
        return Err(match proof {
            Err(SrpError::Parameter(p)) => ApiError::bad_request(format!("invalid SRP parameter: {p}")),
            _ => invalid_credentials(),
        });
    };
    let (sid, jti) = (Uuid::new_v4(), Uuid::new_v4());
    let pair = st.keys.issue(&user, sid, jti, now)?;
    let expires = now + chrono::Duration::from_std(st.keys.refresh_ttl).unwrap_or(chrono::Duration::days(7));
    let mut audit = system_audit(
        chain_of(user.tenant_id),
        Some(user.id),
        "login",
        ip,
        json!({ "method": "srp" }),
    );
    audit.resource_id = Some(sid.to_string());
    st.store.open_session(sid, user.id, jti, now, expires, &audit).await?;
    Ok(with_cookies(
        st,
        &pair,
        json!({ "server_proof": hex::encode(server_proof) }),
    ))
}

fn with_cookies(st: &AppState, pair: &TokenPair, extra: serde_json::Value) -> Response {
    let mut body = serde_json::to_value(pair).unwrap_or_default();
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let mut r = Json(body).into_response();
    for c in st.keys.cookies(pair) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    r
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshBody {
    refresh_token: Option<String>,
}

/// A new token pair for the session's latest refresh token; an older one revokes the session.
pub(super) async fn refresh(
    State(st): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    // The body is optional: browsers send the cookie, scripts the token.
    let body: RefreshBody = if body.iter().all(u8::is_ascii_whitespace) {
        RefreshBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::unprocessable(format!("body: {e}")))?
    };
    let token = body
        .refresh_token
        .or_else(|| cookie_value(&headers, REFRESH_COOKIE))
        .ok_or_else(|| ApiError::unauthorized("No refresh token"))?;
    let claims = st.keys.refresh(&token)?;
    let next = Uuid::new_v4();
    match st.store.rotate_session(claims.sid, claims.jti, next, now).await? {
        Rotation::Rotated => {
            let user = st
                .store
                .get_user(None, UserId(claims.sub))
                .await
                .map_err(|_| ApiError::unauthorized("Invalid or expired refresh token"))?;
            let pair = st.keys.issue(&user, claims.sid, next, now)?;
            Ok(with_cookies(&st, &pair, json!({})))
        }
        Rotation::Reused => {
            let user = st.store.get_user(None, UserId(claims.sub)).await.ok();
            let chain = user.as_ref().map_or(PLATFORM_CHAIN, |u| chain_of(u.tenant_id));
            let mut audit = system_audit(chain, Some(UserId(claims.sub)), "session.reuse_detected", ip, json!({}));
            audit.resource_id = Some(claims.sid.to_string());
            st.store.append_audit(&audit, now).await?;
            Err(ApiError::unauthorized(
                "Refresh token reuse detected; the session is revoked",
            ))
        }
        Rotation::Dead => Err(ApiError::unauthorized("Invalid or expired refresh token")),
    }
}

/// Ends the caller's session: its refresh token and every access token issued for it stop working.
pub(super) async fn logout(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let Some(sid) = caller.session else {
        return Err(ApiError::bad_request(
            "API keys have no session; revoke the key instead",
        ));
    };
    let mut audit = caller.audit(caller.principal.tenant(), "logout", json!({}));
    audit.resource_type = Some("session".into());
    audit.resource_id = Some(sid.to_string());
    st.store.revoke_session(sid, "logout", Utc::now(), &audit).await?;
    let mut r = Json(json!({ "status": "logged_out" })).into_response();
    for c in st.keys.clear_cookies() {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// Who the caller is.
pub(super) async fn me(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(match &caller.principal {
        Principal::User { id, .. } => {
            let u: User = st.store.get_user(None, *id).await?;
            json!({ "kind": "user", "user": u })
        }
        Principal::ApiKey { id, tenant, scopes } => json!({
            "kind": "api_key", "api_key_id": id, "tenant_id": tenant, "role": "operator", "scopes": scopes,
        }),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordBody {
    srp_salt: String,
    srp_verifier: String,
}

/// Replaces the caller's SRP salt and verifier (computed by the client) and ends all its sessions.
pub(super) async fn change_password(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(body): Body<PasswordBody>,
) -> Result<impl IntoResponse, ApiError> {
    let Some(user) = caller.user_id() else {
        return Err(ApiError::bad_request("API keys have no password"));
    };
    let salt = hex_field("srp_salt", &body.srp_salt, 8, 64)?;
    let verifier = hex_field("srp_verifier", &body.srp_verifier, 1, 256)?;
    let audit = caller.audit(caller.principal.tenant(), "user.password_changed", json!({}));
    st.store
        .set_user_verifier(user, &salt, &verifier, Utc::now(), &audit)
        .await?;
    Ok(Json(json!({ "status": "password_changed", "sessions_revoked": true })))
}
