//! Device groups (`/api/device-groups/*`) and device tags (`/api/device-tags/*`): the same
//! generic handlers for both, told apart by a [`Kind`] marker type. The caller's own tenant; a super admin names one
//! with `?tenant_id=`. Every change is audited in the store's transaction.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use tod_core::DeviceId;
use uuid::Uuid;

use super::{Body, PathParams, QueryParams, TenantQuery, TenantScope, own_tenant};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::{SetFields, SetKind};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SetBody {
    /// 1–255 characters, unique in the tenant (required on create).
    #[serde(default)]
    name: Option<String>,
    /// Free text up to 1000 characters; `null` clears.
    #[serde(default, deserialize_with = "super::present")]
    description: Option<Option<String>>,
    /// `#rrggbb`; `null` clears.
    #[serde(default, deserialize_with = "super::present")]
    color: Option<Option<String>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MembersBody {
    /// Devices of the tenant to add (1–1000; ones already in stay).
    #[schema(value_type = Vec<String>)]
    device_ids: Vec<DeviceId>,
}

/// Which set a route serves, as a type, so one generic handler serves both.
pub(super) trait Kind: Send + Sync + 'static {
    /// The kind.
    const KIND: SetKind;
}

/// `/api/device-groups`.
#[derive(Debug)]
pub(super) struct Groups;
impl Kind for Groups {
    const KIND: SetKind = SetKind::Group;
}

/// `/api/device-tags`.
#[derive(Debug)]
pub(super) struct Tags;
impl Kind for Tags {
    const KIND: SetKind = SetKind::Tag;
}

fn check_fields(name: &str, description: Option<&str>, color: Option<&str>) -> Result<(), ApiError> {
    super::check_name(name)?;
    if description.is_some_and(|d| d.chars().count() > 1000) {
        return Err(ApiError::unprocessable("description: at most 1000 characters"));
    }
    if let Some(c) = color
        && !(c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::unprocessable("color: #rrggbb"));
    }
    Ok(())
}

pub(super) async fn list<K: Kind>(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = K::KIND;
    Ok(Json(st.store.list_sets(kind, own_tenant(scope, q.tenant_id)?).await?))
}

pub(super) async fn create<K: Kind>(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<SetBody>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = K::KIND;
    let t = own_tenant(scope, q.tenant_id)?;
    let name = body.name.ok_or_else(|| ApiError::unprocessable("name: required"))?;
    let description = body.description.flatten();
    let color = body.color.flatten();
    check_fields(&name, description.as_deref(), color.as_deref())?;
    let fields = SetFields {
        name: &name,
        description: description.as_deref(),
        color: color.as_deref(),
    };
    let audit = caller.audit(
        Some(t),
        &format!("{}.created", kind.resource()),
        json!({ "name": name.trim() }),
    );
    let set = st.store.create_set(kind, t, &fields, Utc::now(), &audit).await?;
    Ok((StatusCode::CREATED, Json(set)))
}

pub(super) async fn get<K: Kind>(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = K::KIND;
    Ok(Json(st.store.get_set(kind, own_tenant(scope, q.tenant_id)?, id).await?))
}

pub(super) async fn update<K: Kind>(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<SetBody>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = K::KIND;
    let t = own_tenant(scope, q.tenant_id)?;
    let current = st.store.get_set(kind, t, id).await?;
    let name = body.name.unwrap_or(current.name);
    let description = body.description.unwrap_or(current.description);
    let color = body.color.unwrap_or(current.color);
    check_fields(&name, description.as_deref(), color.as_deref())?;
    let fields = SetFields {
        name: &name,
        description: description.as_deref(),
        color: color.as_deref(),
    };
    let audit = caller.audit(
        Some(t),
        &format!("{}.updated", kind.resource()),
        json!({ "name": name.trim() }),
    );
    Ok(Json(
        st.store.update_set(kind, t, id, &fields, Utc::now(), &audit).await?,
    ))
}

pub(super) async fn delete<K: Kind>(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = K::KIND;
    let t = own_tenant(scope, q.tenant_id)?;
    let current = st.store.get_set(kind, t, id).await?;
    let audit = caller.audit(
        Some(t),
        &format!("{}.deleted", kind.resource()),
        json!({ "name": current.name, "devices": current.device_count }),
    );
    st.store.delete_set(kind, t, id, Utc::now(), &audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn add<K: Kind>(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<MembersBody>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = K::KIND;
    let t = own_tenant(scope, q.tenant_id)?;
    if body.device_ids.is_empty() || body.device_ids.len() > 1000 {
        return Err(ApiError::unprocessable("device_ids: 1 to 1000"));
    }
    let audit = caller.audit(
        Some(t),
        &format!("{}.devices_added", kind.resource()),
        json!({ "device_ids": body.device_ids }),
    );
    Ok(Json(
        st.store
            .add_set_members(kind, t, id, &body.device_ids, Utc::now(), &audit)
            .await?,
    ))
}

pub(super) async fn remove<K: Kind>(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams((id, device)): PathParams<(Uuid, DeviceId)>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = K::KIND;
    let t = own_tenant(scope, q.tenant_id)?;
    let audit = caller.audit(
        Some(t),
        &format!("{}.device_removed", kind.resource()),
        json!({ "device_id": device }),
    );
    st.store
        .remove_set_member(kind, t, id, device, Utc::now(), &audit)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
