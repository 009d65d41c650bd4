//! Maintenance windows: `/api/maintenance-windows/*` — create, list (`?status=active|upcoming|past`),
//! read, change, delete, and what a window held back. The caller's own tenant; a super admin names
//! one with `?tenant_id=`. Ranges are checked here (the original left `end_at > start_at` to a
//! database CHECK on update and answered 500); windows may repeat daily or weekly; every change
//! goes in the tenant's audit chain.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tod_core::alerts::WindowStatus;
use tod_core::{DeviceId, SiteId, TenantId, WindowId};

use super::{Body, PathParams, QueryParams, TenantQuery, TenantScope, own_tenant};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::{SuppressedAlert, Window};

/// The most devices or sites one window names.
const MAX_TARGETS: usize = 1_000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowBody {
    /// 1–200 characters (required on create).
    #[serde(default)]
    name: Option<String>,
    /// Devices covered (default none).
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    device_ids: Option<Vec<DeviceId>>,
    /// Sites covered: all their devices and the sites' own alerts (default none). With no devices
    /// and no sites, the window covers the whole tenant.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    site_ids: Option<Vec<SiteId>>,
    /// Start, RFC 3339 (required on create).
    #[serde(default)]
    start_at: Option<DateTime<Utc>>,
    /// End, RFC 3339, after `start_at` (required on create).
    #[serde(default)]
    end_at: Option<DateTime<Utc>>,
    /// `daily` or `weekly` to repeat (shorter than its period), `null` for once.
    #[serde(default, deserialize_with = "super::present")]
    recurrence: Option<Option<String>>,
    /// Hold alerts back (default true); false makes the window informational.
    #[serde(default)]
    suppress_alerts: Option<bool>,
    /// Free text, `null` clears.
    #[serde(default, deserialize_with = "super::present")]
    notes: Option<Option<String>>,
}

impl WindowBody {
    /// Applies the fields given and checks the result as a whole.
    fn apply(self, mut w: Window) -> Result<Window, ApiError> {
        if let Some(name) = self.name {
            let n = name.trim();
            if n.is_empty() || n.chars().count() > 200 {
                return Err(ApiError::unprocessable("name: 1 to 200 characters"));
            }
            w.name = n.to_owned();
        }
        if let Some(mut d) = self.device_ids {
            d.sort_by_key(|x| x.0);
            d.dedup();
            if d.len() > MAX_TARGETS {
                return Err(ApiError::unprocessable("device_ids: at most 1000"));
            }
            w.device_ids = d;
        }
        if let Some(mut s) = self.site_ids {
            s.sort_by_key(|x| x.0);
            s.dedup();
            if s.len() > MAX_TARGETS {
                return Err(ApiError::unprocessable("site_ids: at most 1000"));
            }
            w.site_ids = s;
        }
        if let Some(t) = self.start_at {
            w.start_at = t;
        }
        if let Some(t) = self.end_at {
            w.end_at = t;
        }
        if let Some(r) = self.recurrence {
            if let Some(r) = r.as_deref()
                && crate::store::recurrence_of(Some(r)).is_none()
            {
                return Err(ApiError::unprocessable("recurrence: daily, weekly or null"));
            }
            w.recurrence = r;
        }
        if let Some(s) = self.suppress_alerts {
            w.suppress_alerts = s;
        }
        if let Some(n) = self.notes {
            if n.as_deref().is_some_and(|n| n.len() > 10_000) {
                return Err(ApiError::unprocessable("notes: at most 10000 bytes"));
            }
            w.notes = n;
        }
        w.to_domain()
            .validate()
            .map_err(|e| ApiError::unprocessable(e.to_string()))?;
        Ok(w)
    }
}

/// A window and where it stands now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct WindowView {
    #[serde(flatten)]
    window: Window,
    /// `active`, `upcoming` or `past`, now.
    status: String,
    /// The occurrence in effect now, or the next one (none once a one-off window is over).
    occurrence_start: Option<DateTime<Utc>>,
    /// Its end.
    occurrence_end: Option<DateTime<Utc>>,
}

fn view(window: Window, now: DateTime<Utc>) -> WindowView {
    let d = window.to_domain();
    let occurrence = d.occurrence(now);
    WindowView {
        status: d.status(now).as_str().into(),
        occurrence_start: occurrence.map(|o| o.0),
        occurrence_end: occurrence.map(|o| o.1),
        window,
    }
}

async fn audit(st: &AppState, caller: &Caller, t: TenantId, action: &str, w: &Window) {
    let details = serde_json::json!({
        "name": w.name, "start_at": w.start_at, "end_at": w.end_at, "recurrence": w.recurrence,
        "suppress_alerts": w.suppress_alerts, "devices": w.device_ids.len(), "sites": w.site_ids.len(),
    });
    super::audit_change(st, caller, t, action, ("maintenance_window", w.id.to_string()), details).await;
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// The tenant (super admins only).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    tenant_id: Option<TenantId>,
    /// `active`, `upcoming` or `past`.
    #[serde(default)]
    status: Option<String>,
}

pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let wanted: Option<WindowStatus> = q
        .status
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: tod_core::alerts::ValidationError| ApiError::unprocessable(e.to_string()))?;
    let now = Utc::now();
    let items: Vec<WindowView> = st
        .store
        .list_windows(t)
        .await?
        .into_iter()
        .map(|w| view(w, now))
        .filter(|v| wanted.is_none_or(|s| v.status == s.as_str()))
        .collect();
    Ok(Json(items))
}

pub(super) async fn create(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<WindowBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    if body.name.is_none() {
        return Err(ApiError::unprocessable("name: required"));
    }
    let (Some(start_at), Some(end_at)) = (body.start_at, body.end_at) else {
        return Err(ApiError::unprocessable("start_at and end_at: required"));
    };
    let now = Utc::now();
    let blank = Window {
        id: WindowId(uuid::Uuid::new_v4()),
        tenant_id: t,
        name: String::new(),
        device_ids: Vec::new(),
        site_ids: Vec::new(),
        start_at,
        end_at,
        recurrence: None,
        suppress_alerts: true,
        notes: None,
        created_by: caller.user_id().map(|u| u.0),
        created_at: now,
        updated_at: now,
    };
    let created = st.store.create_window(&body.apply(blank)?).await?;
    audit(&st, &caller, t, "maintenance_window.created", &created).await;
    Ok((StatusCode::CREATED, Json(view(created, now))))
}

pub(super) async fn get(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<WindowId>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    Ok(Json(view(st.store.get_window(t, id).await?, Utc::now())))
}

pub(super) async fn update(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<WindowId>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<WindowBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let now = Utc::now();
    let mut w = body.apply(st.store.get_window(t, id).await?)?;
    w.updated_at = now;
    let updated = st.store.update_window(&w).await?;
    audit(&st, &caller, t, "maintenance_window.updated", &updated).await;
    Ok(Json(view(updated, now)))
}

pub(super) async fn delete(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<WindowId>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let w = st.store.get_window(t, id).await?;
    st.store.delete_window(t, id).await?;
    audit(&st, &caller, t, "maintenance_window.deleted", &w).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SuppressedQuery {
    /// The tenant (super admins only).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    tenant_id: Option<TenantId>,
    /// 1–500, default 100.
    #[serde(default)]
    limit: Option<i64>,
}

/// What a window held back.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SuppressedPage {
    /// Newest first.
    items: Vec<SuppressedAlert>,
    /// How many are listed.
    total: usize,
}

pub(super) async fn suppressed(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<WindowId>,
    QueryParams(q): QueryParams<SuppressedQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::unprocessable("limit: 1 to 500"));
    }
    st.store.get_window(t, id).await?;
    let items = st.store.suppressed_alerts(t, id, limit).await?;
    Ok(Json(SuppressedPage {
        total: items.len(),
        items,
    }))
}
