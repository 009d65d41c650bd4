//! `/api/tenants/{tenant_id}/sites`: list and get with the health rollup, create, update, delete,
//! and putting devices at a site (one, or many at once).

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tod_core::{DeviceId, SiteId, TenantId};

use super::{Body, PathParams, TenantScope, check_name, tenant};
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::{NewSite, Site, SitePatch};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SiteBody {
    name: String,
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

/// A site with its health rollup.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SiteHealth {
    #[serde(flatten)]
    site: Site,
    /// Devices assigned to the site.
    device_count: u32,
    /// Of those, reported online.
    online_count: u32,
    /// `online / devices × 100`, one decimal; 0.0 without devices.
    online_percent: f64,
    /// Active alert events of the site.
    alert_count: u32,
}

/// The sites list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SiteList {
    /// By name.
    sites: Vec<SiteHealth>,
    /// Devices of the tenant with no site.
    unassigned_count: u32,
}

/// Per site: (devices, online, active alerts), from the store's grouped counts.
type Tally = std::collections::HashMap<Option<SiteId>, (u32, u32, u32)>;

fn tally(counts: &[(Option<SiteId>, String, i64)], alerts: &[(SiteId, i64)]) -> Tally {
    let mut t = Tally::new();
    for (site, status, n) in counts {
        let e = t.entry(*site).or_default();
        let n = u32::try_from(*n).unwrap_or(u32::MAX);
        e.0 += n;
        if status == "online" {
            e.1 += n;
        }
    }
    for (site, n) in alerts {
        t.entry(Some(*site)).or_default().2 += u32::try_from(*n).unwrap_or(u32::MAX);
    }
    t
}

fn with_health(site: Site, tally: &Tally) -> SiteHealth {
    let (devices, online, alerts) = tally.get(&Some(site.id)).copied().unwrap_or_default();
    SiteHealth {
        device_count: devices,
        online_count: online,
        online_percent: tod_core::sites::online_percent(online, devices),
        alert_count: alerts,
        site,
    }
}

pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    // Counting every device of a big tenant is the expensive part: one computation per second
    // serves everyone polling the dashboard (see `readcache`).
    let body = st
        .reads
        .get_or_compute(t, "sites", async {
            let counts = st.store.device_counts(t).await?;
            let sites = st.store.list_sites(t).await?;
            let alerts = st.store.active_site_alerts(t).await?;
            let tally = tally(&counts, &alerts);
            let unassigned_count = tally.get(&None).map_or(0, |t| t.0);
            let list = SiteList {
                sites: sites.into_iter().map(|s| with_health(s, &tally)).collect(),
                unassigned_count,
            };
            serde_json::to_vec(&list)
                .map(axum::body::Bytes::from)
                .map_err(|e| ApiError::internal(format!("sites list: {e}")))
        })
        .await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body))
}

fn check_coordinates(latitude: Option<f64>, longitude: Option<f64>) -> Result<(), ApiError> {
    if latitude.is_some_and(|v| !(-90.0..=90.0).contains(&v)) {
        return Err(ApiError::unprocessable("latitude: must be between -90 and 90"));
    }
    if longitude.is_some_and(|v| !(-180.0..=180.0).contains(&v)) {
        return Err(ApiError::unprocessable("longitude: must be between -180 and 180"));
    }
    Ok(())
}

pub(super) async fn create(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    Body(body): Body<SiteBody>,
) -> Result<impl IntoResponse, ApiError> {
    check_name(&body.name)?;
    check_coordinates(body.latitude, body.longitude)?;
    let new = NewSite {
        name: &body.name,
        latitude: body.latitude,
        longitude: body.longitude,
    };
    let t = tenant(scope)?;
    let site = st.store.create_site(t, new, Utc::now()).await?;
    let details = serde_json::json!({ "name": site.name, "latitude": site.latitude, "longitude": site.longitude });
    super::audit_change(&st, &caller, t, "site.created", ("site", site.id.to_string()), details).await;
    Ok((StatusCode::CREATED, Json(site)))
}

pub(super) async fn get(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, site)): PathParams<(TenantId, SiteId)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    let site = st.store.get_site(t, site).await?;
    let counts = st.store.device_counts(t).await?;
    let alerts = st.store.active_site_alerts(t).await?;
    Ok(Json(with_health(site, &tally(&counts, &alerts))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SiteUpdate {
    /// New name (unique in the tenant).
    #[serde(default)]
    name: Option<String>,
    /// New latitude; `null` clears it.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<f64>)]
    latitude: Option<Option<f64>>,
    /// New longitude; `null` clears it.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<f64>)]
    longitude: Option<Option<f64>>,
}

pub(super) async fn update(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    PathParams((_, site)): PathParams<(TenantId, SiteId)>,
    Body(body): Body<SiteUpdate>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    check_coordinates(body.latitude.flatten(), body.longitude.flatten())?;
    let patch = SitePatch {
        name: body.name.as_deref(),
        latitude: body.latitude,
        longitude: body.longitude,
    };
    let site = st.store.update_site(t, site, patch, Utc::now()).await?;
    let details = serde_json::json!({ "name": site.name, "latitude": site.latitude, "longitude": site.longitude });
    super::audit_change(&st, &caller, t, "site.updated", ("site", site.id.to_string()), details).await;
    let counts = st.store.device_counts(t).await?;
    let alerts = st.store.active_site_alerts(t).await?;
    Ok(Json(with_health(site, &tally(&counts, &alerts))))
}

pub(super) async fn delete(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    PathParams((_, site)): PathParams<(TenantId, SiteId)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    let gone = st.store.get_site(t, site).await?;
    st.store.delete_site(t, site).await?;
    let details = serde_json::json!({ "name": gone.name });
    super::audit_change(&st, &caller, t, "site.deleted", ("site", site.to_string()), details).await;
    // The site's agents went with it: their tunnels end now.
    if let Some(vpn) = st.vpn.as_deref() {
        super::vpn::reload(vpn).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn assign(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    PathParams((_, site, device)): PathParams<(TenantId, SiteId, DeviceId)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    match st.store.assign_devices(t, Some(site), &[device], Utc::now()).await? {
        0 => Err(ApiError::not_found("Device not found")),
        _ => {
            let details = serde_json::json!({ "site_id": site });
            super::audit_change(
                &st,
                &caller,
                t,
                "device.site_assigned",
                ("device", device.to_string()),
                details,
            )
            .await;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

pub(super) async fn unassign(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    PathParams((_, site, device)): PathParams<(TenantId, SiteId, DeviceId)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    // Only a device that is at this site leaves it.
    let d = st.store.get_device(t, device).await?;
    if d.site_id != Some(site) {
        return Err(ApiError::not_found("Device not found at this site"));
    }
    st.store.assign_devices(t, None, &[device], Utc::now()).await?;
    let details = serde_json::json!({ "site_id": site });
    super::audit_change(
        &st,
        &caller,
        t,
        "device.site_unassigned",
        ("device", device.to_string()),
        details,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BulkAssign {
    /// Devices to put at the site (at most 10 000; ids of other tenants are skipped).
    #[schema(value_type = Vec<String>)]
    device_ids: Vec<DeviceId>,
}

/// How many devices moved.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Assigned {
    assigned: u64,
}

pub(super) async fn bulk_assign(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    PathParams((_, site)): PathParams<(TenantId, SiteId)>,
    Body(body): Body<BulkAssign>,
) -> Result<impl IntoResponse, ApiError> {
    if body.device_ids.len() > 10_000 {
        return Err(ApiError::unprocessable("device_ids: at most 10 000"));
    }
    let t = tenant(scope)?;
    let assigned = st
        .store
        .assign_devices(t, Some(site), &body.device_ids, Utc::now())
        .await?;
    let details = serde_json::json!({ "asked": body.device_ids.len(), "assigned": assigned });
    super::audit_change(
        &st,
        &caller,
        t,
        "site.devices_assigned",
        ("site", site.to_string()),
        details,
    )
    .await;
    Ok(Json(Assigned { assigned }))
}
