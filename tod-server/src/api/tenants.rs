//! `/api/tenants/*`: tenant management (super admin) and a tenant's view of itself.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::{Body, TenantScope};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTenant {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

/// All tenants for a super admin; one's own tenant for everyone else.
pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(match scope.0 {
        None => st.store.list_tenants().await?,
        Some(t) => vec![st.store.get_tenant(t).await?],
    }))
}

pub(super) async fn create(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(body): Body<NewTenant>,
) -> Result<impl IntoResponse, ApiError> {
    let audit = caller.audit(None, "tenant.created", json!({ "name": body.name.trim() }));
    let t = st
        .store
        .create_tenant(&body.name, body.description.as_deref(), Utc::now(), &audit)
        .await?;
    Ok((StatusCode::CREATED, Json(t)))
}

pub(super) async fn get(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
) -> Result<impl IntoResponse, ApiError> {
    let t = scope
        .0
        .ok_or_else(|| ApiError::internal("tenant route without a tenant"))?;
    Ok(Json(st.store.get_tenant(t).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantPatch {
    #[serde(default)]
    name: Option<String>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
}

pub(super) async fn update(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    Body(body): Body<TenantPatch>,
) -> Result<impl IntoResponse, ApiError> {
    let t = scope
        .0
        .ok_or_else(|| ApiError::internal("tenant route without a tenant"))?;
    let audit = caller.audit(
        None,
        "tenant.updated",
        json!({ "name": body.name, "description_changed": body.description.is_some() }),
    );
    let desc = body.description.as_ref().map(|d| d.as_deref());
    Ok(Json(
        st.store
            .update_tenant(t, body.name.as_deref(), desc, Utc::now(), &audit)
            .await?,
    ))
}

pub(super) async fn delete(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
) -> Result<impl IntoResponse, ApiError> {
    let t = scope
        .0
        .ok_or_else(|| ApiError::internal("tenant route without a tenant"))?;
    let audit = caller.audit(None, "tenant.deleted", json!({}));
    st.store.delete_tenant(t, &audit).await?;
    Ok(StatusCode::NO_CONTENT)
}
