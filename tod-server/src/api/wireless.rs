//! Radios: a device's latest RF state (`…/devices/{d}/rf-stats`) and the wireless-issues lists —
//! a tenant's (`/tenants/{t}/fleet/wireless-issues`) and the super admin's cross-tenant one
//! (`/fleet/wireless-issues`). The rules and the triage order are tod-core's
//! ([`tod_core::wireless`]); this module only reads and shapes.

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::IntoResponse;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tod_core::wireless::{self, CURRENT_WINDOW_SECS, ISSUE_LIMIT, WAS_ACTIVE_WINDOW_SECS};
use tod_core::{DeviceId, TenantId};

use super::{PathParams, TenantScope, tenant};
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::{CurrentRadio, RfStat};

/// A device's radios.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct RfStatPage {
    /// The latest reading per radio, by interface name.
    items: Vec<RfStat>,
    /// How many.
    total: usize,
}

pub(super) async fn rf_stats(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, device)): PathParams<(TenantId, DeviceId)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    st.store.get_device(t, device).await?;
    let items = st.store.rf_stats(t, device).await?;
    Ok(Json(RfStatPage {
        total: items.len(),
        items,
    }))
}

/// A radio in trouble.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct WirelessIssue {
    /// The device.
    #[schema(value_type = String, format = Uuid)]
    device_id: DeviceId,
    /// Its name.
    hostname: String,
    /// The tenant's name (cross-tenant list only).
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_name: Option<String>,
    /// The radio.
    interface: String,
    /// `Signal: -82 dBm`, `CCQ: 45%` or `No clients (was active)`.
    issue: String,
    /// `weak_signal`, `low_ccq` or `clients_lost`.
    kind: String,
    /// Mean client signal, dBm, rounded.
    signal: Option<i16>,
    /// Mean CCQ, percent, rounded (none on RouterOS v7: it does not report CCQ).
    ccq: Option<u8>,
    /// Clients now.
    client_count: u32,
    /// Frequency, MHz.
    frequency: Option<u32>,
    /// Whether the device answered its last poll (offline devices come first).
    online: bool,
    /// When the radio was last reported.
    last_seen: DateTime<Utc>,
}

async fn issues(st: &AppState, tenant: Option<TenantId>) -> Result<Vec<WirelessIssue>, ApiError> {
    let now = Utc::now();
    let radios = st
        .store
        .current_radios(
            tenant,
            now - Duration::seconds(CURRENT_WINDOW_SECS),
            now - Duration::seconds(WAS_ACTIVE_WINDOW_SECS),
        )
        .await?;
    let mut found: Vec<(CurrentRadio, wireless::Issue)> = radios
        .into_iter()
        .filter_map(|r| wireless::judge(&r.summary, r.had_clients).map(|i| (r, i)))
        .collect();
    found.sort_by(|(a, _), (b, _)| {
        wireless::rank((a.online, &a.summary), (b.online, &b.summary))
            .then_with(|| a.hostname.cmp(&b.hostname))
            .then_with(|| a.summary.interface.cmp(&b.summary.interface))
    });
    Ok(found
        .into_iter()
        .take(ISSUE_LIMIT)
        .map(|(r, issue)| WirelessIssue {
            device_id: r.device_id,
            hostname: r.hostname,
            tenant_name: tenant.is_none().then_some(r.tenant_name),
            interface: r.summary.interface.clone(),
            issue: issue.to_string(),
            kind: issue.kind().into(),
            signal: r.summary.signal_avg_dbm.map(|v| v.round() as i16),
            ccq: r.summary.ccq_avg.map(|v| v.round().clamp(0.0, 100.0) as u8),
            client_count: r.summary.clients,
            frequency: r.summary.frequency_mhz,
            online: r.online,
            last_seen: r.at,
        })
        .collect())
}

pub(super) async fn tenant_issues(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(_): PathParams<TenantId>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    Ok(Json(issues(&st, Some(t)).await?))
}

pub(super) async fn fleet_issues(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    // The guard let only a super admin through (the matrix's FleetWirelessIssuesRead).
    Ok(Json(issues(&st, None).await?))
}
