//! Device groups (`/api/device-groups/*`) and device tags (`/api/device-tags/*`): the same
//! handlers for both, told apart by [`SetKind`]. The caller's own tenant; a super admin names one
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

async fn list(st: AppState, kind: SetKind, scope: TenantScope, q: TenantQuery) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.store.list_sets(kind, own_tenant(scope, q.tenant_id)?).await?))
}

async fn create(
    st: AppState,
    kind: SetKind,
    scope: TenantScope,
    caller: Caller,
    q: TenantQuery,
    body: SetBody,
) -> Result<impl IntoResponse, ApiError> {
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

async fn get(
    st: AppState,
    kind: SetKind,
    scope: TenantScope,
    id: Uuid,
    q: TenantQuery,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.store.get_set(kind, own_tenant(scope, q.tenant_id)?, id).await?))
}

async fn update(
    st: AppState,
    kind: SetKind,
    scope: TenantScope,
    caller: Caller,
    id: Uuid,
    q: TenantQuery,
    body: SetBody,
) -> Result<impl IntoResponse, ApiError> {
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

async fn delete(
    st: AppState,
    kind: SetKind,
    scope: TenantScope,
    caller: Caller,
    id: Uuid,
    q: TenantQuery,
) -> Result<impl IntoResponse, ApiError> {
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

async fn add(
    st: AppState,
    kind: SetKind,
    scope: TenantScope,
    caller: Caller,
    id: Uuid,
    q: TenantQuery,
    body: MembersBody,
) -> Result<impl IntoResponse, ApiError> {
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

async fn remove(
    st: AppState,
    kind: SetKind,
    scope: TenantScope,
    caller: Caller,
    (id, device): (Uuid, DeviceId),
    q: TenantQuery,
) -> Result<impl IntoResponse, ApiError> {
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

/// The handlers of one kind, as axum handler functions.
macro_rules! set_handlers {
    ($module:ident, $kind:expr) => {
        pub(in crate::api) mod $module {
            use super::*;

            pub(in crate::api) async fn list(
                State(st): State<AppState>,
                Extension(scope): Extension<TenantScope>,
                QueryParams(q): QueryParams<TenantQuery>,
            ) -> Result<impl IntoResponse, ApiError> {
                super::list(st, $kind, scope, q).await
            }

            pub(in crate::api) async fn create(
                State(st): State<AppState>,
                Extension(scope): Extension<TenantScope>,
                Extension(caller): Extension<Caller>,
                QueryParams(q): QueryParams<TenantQuery>,
                Body(body): Body<SetBody>,
            ) -> Result<impl IntoResponse, ApiError> {
                super::create(st, $kind, scope, caller, q, body).await
            }

            pub(in crate::api) async fn get(
                State(st): State<AppState>,
                Extension(scope): Extension<TenantScope>,
                PathParams(id): PathParams<Uuid>,
                QueryParams(q): QueryParams<TenantQuery>,
            ) -> Result<impl IntoResponse, ApiError> {
                super::get(st, $kind, scope, id, q).await
            }

            pub(in crate::api) async fn update(
                State(st): State<AppState>,
                Extension(scope): Extension<TenantScope>,
                Extension(caller): Extension<Caller>,
                PathParams(id): PathParams<Uuid>,
                QueryParams(q): QueryParams<TenantQuery>,
                Body(body): Body<SetBody>,
            ) -> Result<impl IntoResponse, ApiError> {
                super::update(st, $kind, scope, caller, id, q, body).await
            }

            pub(in crate::api) async fn delete(
                State(st): State<AppState>,
                Extension(scope): Extension<TenantScope>,
                Extension(caller): Extension<Caller>,
                PathParams(id): PathParams<Uuid>,
                QueryParams(q): QueryParams<TenantQuery>,
            ) -> Result<impl IntoResponse, ApiError> {
                super::delete(st, $kind, scope, caller, id, q).await
            }

            pub(in crate::api) async fn add(
                State(st): State<AppState>,
                Extension(scope): Extension<TenantScope>,
                Extension(caller): Extension<Caller>,
                PathParams(id): PathParams<Uuid>,
                QueryParams(q): QueryParams<TenantQuery>,
                Body(body): Body<MembersBody>,
            ) -> Result<impl IntoResponse, ApiError> {
                super::add(st, $kind, scope, caller, id, q, body).await
            }

            pub(in crate::api) async fn remove(
                State(st): State<AppState>,
                Extension(scope): Extension<TenantScope>,
                Extension(caller): Extension<Caller>,
                PathParams(ids): PathParams<(Uuid, DeviceId)>,
                QueryParams(q): QueryParams<TenantQuery>,
            ) -> Result<impl IntoResponse, ApiError> {
                super::remove(st, $kind, scope, caller, ids, q).await
            }
        }
    };
}

set_handlers!(groups, SetKind::Group);
set_handlers!(tags, SetKind::Tag);
