//! Events: `GET /api/events` — the device event log (reachability changes, reboots, RouterOS
//! version changes, wireless link state changes) as one timeline, newest first, filtered and
//! paged. The caller's own tenant; a super admin names one with `?tenant_id=`.

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tod_core::{DeviceId, TenantId};

use super::{QueryParams, TenantScope, own_tenant};
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::{DeviceEvent, EventFilter};

const KINDS: [&str; 4] = ["status", "reboot", "version", "link_state"];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventQuery {
    /// The tenant (super admins only).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    tenant_id: Option<TenantId>,
    /// One device (either end of a link).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    device_id: Option<DeviceId>,
    /// `status`, `reboot`, `version` or `link_state`.
    #[serde(default)]
    kind: Option<String>,
    /// At or after (RFC 3339).
    #[serde(default)]
    start: Option<DateTime<Utc>>,
    /// Before (RFC 3339).
    #[serde(default)]
    end: Option<DateTime<Utc>>,
    /// 1–500, default 100.
    #[serde(default)]
    limit: Option<i64>,
    /// Default 0.
    #[serde(default)]
    offset: Option<i64>,
}

/// A page of the timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct EventPage {
    /// Newest first.
    items: Vec<DeviceEvent>,
    /// All events matching the filters.
    total: i64,
}

pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<EventQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    if let Some(k) = q.kind.as_deref()
        && !KINDS.contains(&k)
    {
        return Err(ApiError::unprocessable(format!("kind: one of {}", KINDS.join(", "))));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::unprocessable("limit: 1 to 500"));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::unprocessable("offset: 0 or more"));
    }
    if let (Some(a), Some(b)) = (q.start, q.end)
        && a >= b
    {
        return Err(ApiError::unprocessable("start must be before end"));
    }
    if let Some(d) = q.device_id {
        st.store.get_device(t, d).await?;
    }
    let filter = EventFilter {
        device: q.device_id,
        kind: q.kind,
        from: q.start,
        to: q.end,
        limit,
        offset,
    };
    let (items, total) = st.store.device_events(t, &filter).await?;
    Ok(Json(EventPage { items, total }))
}
