//! Site alert events: `/api/tenants/{tenant_id}/sites/{site_id}/alert-events`, the resolve action
//! and the active-count badge. Events are raised by the fleet itself (one `agent_offline` per site
//! whose agent went silent) and by site rules ([`crate::site_alerts`]).

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::IntoResponse;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tod_core::{SiteId, TenantId};
use uuid::Uuid;

use super::{PathParams, QueryParams, TenantScope, tenant};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::SiteAlertEvent;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventQuery {
    /// `active` or `resolved`.
    #[serde(default)]
    state: Option<String>,
    /// 1–200, default 50.
    #[serde(default)]
    limit: Option<i64>,
}

/// A page of events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct EventPage {
    /// Newest first.
    items: Vec<SiteAlertEvent>,
    /// All events matching the filter.
    total: i64,
}

/// The badge.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ActiveCount {
    /// Active events in the tenant.
    count: i64,
}

pub(super) async fn list_events(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, site)): PathParams<(TenantId, SiteId)>,
    QueryParams(q): QueryParams<EventQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::unprocessable("limit: 1 to 200"));
    }
    if let Some(s) = q.state.as_deref()
        && !matches!(s, "active" | "resolved")
    {
        return Err(ApiError::unprocessable(format!(
            "state: {s:?} is not active or resolved"
        )));
    }
    // Another tenant's site is a 404, not an empty list.
    st.store.get_site(t, site).await?;
    let (items, total) = st.store.site_alert_events(t, site, q.state.as_deref(), limit).await?;
    Ok(Json(EventPage { items, total }))
}

pub(super) async fn resolve(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, id)): PathParams<(TenantId, Uuid)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    let by = caller.user_id().map(|u| u.0);
    let event = st.store.resolve_site_alert_event(t, id, by, Utc::now()).await?;
    let details = serde_json::json!({ "site_id": event.site_id, "message": event.message });
    super::audit_change(
        &st,
        &caller,
        t,
        "site_alert_event.resolved",
        ("site_alert_event", id.to_string()),
        details,
    )
    .await;
    Ok(Json(event))
}

pub(super) async fn active_count(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    let count = st.store.active_site_alerts(t).await?.iter().map(|(_, n)| n).sum();
    Ok(Json(ActiveCount { count }))
}
