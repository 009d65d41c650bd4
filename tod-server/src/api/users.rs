//! `/api/users/*` and `/api/tenants/{tenant_id}/api-keys/*`: accounts, role assignment within
//! tod-core's matrix (nobody grants above their own role), and API keys.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use tod_core::rbac::{Role, Scope, can_assign_role};
use tod_core::{ApiKeyId, TenantId, UserId};

use super::{Body, PathParams, QueryParams, TenantQuery, TenantScope, hex_field, tenant};
use crate::app::AppState;
use crate::auth::{Caller, api_key_hash, new_api_key};
use crate::error::ApiError;
use crate::store::{NewApiKey, NewUser, StoreError, User, UserPatch};

/// A tenant's users; a super admin sees every account, or one tenant's with `?tenant_id=`.
pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = match (scope.0, q.tenant_id) {
        (None, asked) => asked,
        (Some(own), Some(t)) if t != own => return Err(tod_core::rbac::Denied::WrongTenant.into()),
        (Some(own), _) => Some(own),
    };
    Ok(Json(st.store.list_users(tenant).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUserBody {
    email: String,
    name: String,
    #[schema(value_type = String)]
    role: Role,
    /// Required from a super admin for tenant roles; others create users in their own tenant.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    tenant_id: Option<TenantId>,
    /// Hex SRP salt (8–64 bytes), computed by the client with the password.
    srp_salt: String,
    /// Hex SRP verifier, computed by the client with the password.
    srp_verifier: String,
}

pub(super) async fn create(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    Body(body): Body<NewUserBody>,
) -> Result<impl IntoResponse, ApiError> {
    let target = match (scope.0, body.tenant_id) {
        (None, t) => t,
        (Some(own), Some(t)) if t != own => return Err(tod_core::rbac::Denied::WrongTenant.into()),
        (Some(own), _) => Some(own),
    };
    if body.role == Role::SuperAdmin && target.is_some() {
        return Err(ApiError::unprocessable("tenant_id: a super admin belongs to no tenant"));
    }
    if body.role != Role::SuperAdmin && target.is_none() {
        return Err(ApiError::unprocessable("tenant_id: required for tenant roles"));
    }
    can_assign_role(&caller.principal, target, None, body.role)?;
    let email = tod_core::srp::identity(&body.email);
    if email.len() > 255 || email.len() < 3 || !email.contains('@') {
        return Err(ApiError::unprocessable("email: not an e-mail address"));
    }
    if body.name.trim().is_empty() || body.name.len() > 255 {
        return Err(ApiError::unprocessable("name: 1 to 255 characters"));
    }
    let salt = hex_field("srp_salt", &body.srp_salt, 8, 64)?;
    let verifier = hex_field("srp_verifier", &body.srp_verifier, 1, 256)?;
    let audit = caller.audit(target, "user.created", json!({ "email": email, "role": body.role }));
    let new = NewUser {
        email: &email,
        name: &body.name,
        role: body.role,
        tenant: target,
        salt: &salt,
        verifier: &verifier,
    };
    let user = st.store.create_user(new, Utc::now(), &audit).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

async fn visible_user(st: &AppState, scope: TenantScope, id: UserId) -> Result<User, ApiError> {
    // Another tenant's account is "not found", never "forbidden": ids do not leak.
    Ok(st.store.get_user(scope.0, id).await?)
}

pub(super) async fn get(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<UserId>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(visible_user(&st, scope, id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserPatchBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    role: Option<Role>,
    #[serde(default)]
    is_active: Option<bool>,
}

pub(super) async fn update(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<UserId>,
    Body(body): Body<UserPatchBody>,
) -> Result<impl IntoResponse, ApiError> {
    let target = visible_user(&st, scope, id).await?;
    // Any change to an account needs the right to give it its (new) role: an admin cannot touch
    // an account that outranks them, nor promote anyone above themselves.
    can_assign_role(
        &caller.principal,
        target.tenant_id,
        Some(target.role),
        body.role.unwrap_or(target.role),
    )?;
    if let Some(n) = &body.name
        && (n.trim().is_empty() || n.len() > 255)
    {
        return Err(ApiError::unprocessable("name: 1 to 255 characters"));
    }
    let audit = caller.audit(
        target.tenant_id,
        "user.updated",
        json!({ "name": body.name, "role": body.role, "is_active": body.is_active }),
    );
    let patch = UserPatch {
        name: body.name.as_deref(),
        role: body.role,
        is_active: body.is_active,
    };
    Ok(Json(
        st.store
            .update_user(target.tenant_id, id, patch, Utc::now(), &audit)
            .await?,
    ))
}

pub(super) async fn delete(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<UserId>,
) -> Result<impl IntoResponse, ApiError> {
    if caller.user_id() == Some(id) {
        return Err(ApiError::bad_request("You cannot delete your own account"));
    }
    let target = visible_user(&st, scope, id).await?;
    can_assign_role(&caller.principal, target.tenant_id, Some(target.role), target.role)?;
    let audit = caller.audit(target.tenant_id, "user.deleted", json!({ "email": target.email }));
    st.store.delete_user(target.tenant_id, id, &audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_keys(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.store.list_api_keys(tenant(scope)?).await?))
}

/// The tenant a `/api/api-keys` request means: the caller's own, or the one a super admin names.
pub(super) fn own_scope(scope: TenantScope, asked: Option<TenantId>) -> Result<TenantScope, ApiError> {
    match (scope.0, asked) {
        (Some(own), None) => Ok(TenantScope(Some(own))),
        (Some(own), Some(t)) if t == own => Ok(TenantScope(Some(own))),
        (Some(_), Some(_)) => Err(tod_core::rbac::Denied::WrongTenant.into()),
        (None, Some(t)) => Ok(TenantScope(Some(t))),
        (None, None) => Err(ApiError::unprocessable("tenant_id: a super admin names the tenant")),
    }
}

pub(super) async fn list_own_keys(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        st.store.list_api_keys(tenant(own_scope(scope, q.tenant_id)?)?).await?,
    ))
}

pub(super) async fn create_own_key(
    st: State<AppState>,
    caller: Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<TenantQuery>,
    body: Body<NewKeyBody>,
) -> Result<impl IntoResponse, ApiError> {
    create_key(st, caller, Extension(own_scope(scope, q.tenant_id)?), body).await
}

pub(super) async fn revoke_own_key(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<TenantQuery>,
    PathParams(id): PathParams<ApiKeyId>,
) -> Result<impl IntoResponse, ApiError> {
    revoke(&st, &caller, tenant(own_scope(scope, q.tenant_id)?)?, id).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewKeyBody {
    name: String,
    scopes: Vec<String>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// Creates a key; the raw key is in this response only.
pub(super) async fn create_key(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    Body(body): Body<NewKeyBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    if body.scopes.is_empty() {
        return Err(ApiError::bad_request("scopes: at least one scope is required"));
    }
    let (valid, invalid): (Vec<_>, Vec<_>) = body
        .scopes
        .iter()
        .map(|s| (s, s.parse::<Scope>()))
        .partition(|(_, r)| r.is_ok());
    if !invalid.is_empty() {
        let bad: Vec<&str> = invalid.iter().map(|(s, _)| s.as_str()).collect();
        let allowed: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::bad_request(format!(
            "Invalid scopes: {}. Allowed: {}",
            bad.join(", "),
            allowed.join(", ")
        )));
    }
    let scopes: BTreeSet<Scope> = valid.into_iter().filter_map(|(_, r)| r.ok()).collect();
    let scopes: Vec<Scope> = scopes.into_iter().collect();
    if body.name.trim().is_empty() || body.name.len() > 255 {
        return Err(ApiError::unprocessable("name: 1 to 255 characters"));
    }
    let now = Utc::now();
    if body.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::unprocessable("expires_at: must be in the future"));
    }
    let raw = new_api_key()?;
    let hash = api_key_hash(&raw);
    let audit = caller.audit(
        Some(t),
        "api_key.created",
        json!({ "name": body.name.trim(), "scopes": scopes }),
    );
    let new = NewApiKey {
        name: &body.name,
        key_prefix: &raw[..9],
        key_hash: &hash,
        scopes: &scopes,
        expires_at: body.expires_at,
        created_by: caller.user_id(),
    };
    let key = st.store.create_api_key(t, new, now, &audit).await?;
    let mut out = serde_json::to_value(&key).map_err(|e| ApiError::internal(e.to_string()))?;
    out["key"] = json!(raw);
    Ok((StatusCode::CREATED, Json(out)))
}

pub(super) async fn revoke_key(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, id)): PathParams<(TenantId, ApiKeyId)>,
) -> Result<impl IntoResponse, ApiError> {
    revoke(&st, &caller, tenant(scope)?, id).await
}

async fn revoke(
    st: &AppState,
    caller: &Caller,
    t: TenantId,
    id: ApiKeyId,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let audit = caller.audit(Some(t), "api_key.revoked", json!({}));
    match st.store.revoke_api_key(t, id, Utc::now(), &audit).await {
        Ok(()) => Ok(Json(json!({ "status": "revoked", "key_id": id }))),
        Err(StoreError::NotFound(_)) => Err(ApiError::not_found("API key not found or already revoked.")),
        Err(e) => Err(e.into()),
    }
}
