//! `/api/tenants/{tenant_id}/sites`: list and get with the health rollup, create.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tod_core::{SiteId, TenantId};

use super::{Body, PathParams, TenantScope};
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::{NewSite, Site};

fn tenant(scope: TenantScope) -> Result<TenantId, ApiError> {
    scope
        .0
        .ok_or_else(|| ApiError::internal("tenant route without a tenant"))
}

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

fn with_health(site: Site, counts: &[(Option<SiteId>, String, i64)], alerts: &[(SiteId, i64)]) -> SiteHealth {
    let (mut devices, mut online) = (0u32, 0u32);
    for (s, status, n) in counts {
        if *s == Some(site.id) {
            devices += *n as u32;
            if status == "online" {
                online += *n as u32;
            }
        }
    }
    SiteHealth {
        device_count: devices,
        online_count: online,
        online_percent: tod_core::sites::online_percent(online, devices),
        alert_count: alerts.iter().filter(|a| a.0 == site.id).map(|a| a.1 as u32).sum(),
        site,
    }
}

pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    let counts = st.store.device_counts(t).await?;
    let sites = st.store.list_sites(t).await?;
    let alerts = st.store.active_site_alerts(t).await?;
    let unassigned_count = counts.iter().filter(|c| c.0.is_none()).map(|c| c.2 as u32).sum();
    Ok(Json(SiteList {
        sites: sites.into_iter().map(|s| with_health(s, &counts, &alerts)).collect(),
        unassigned_count,
    }))
}

pub(super) async fn create(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Body(body): Body<SiteBody>,
) -> Result<impl IntoResponse, ApiError> {
    if body.latitude.is_some_and(|v| !(-90.0..=90.0).contains(&v)) {
        return Err(ApiError::unprocessable("latitude: must be between -90 and 90"));
    }
    if body.longitude.is_some_and(|v| !(-180.0..=180.0).contains(&v)) {
        return Err(ApiError::unprocessable("longitude: must be between -180 and 180"));
    }
    let new = NewSite {
        name: &body.name,
        latitude: body.latitude,
        longitude: body.longitude,
    };
    let site = st.store.create_site(tenant(scope)?, new, Utc::now()).await?;
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
    Ok(Json(with_health(site, &counts, &alerts)))
}
