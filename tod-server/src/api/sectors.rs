//! Sectors: `/api/tenants/{tenant_id}/sites/{site_id}/sectors` (with device counts and their
//! access points' clients, degraded links and average signal) and a device's sector.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tod_core::{DeviceId, SiteId, TenantId};
use uuid::Uuid;

use super::{Body, PathParams, TenantScope, tenant};
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::{Sector, SectorFields};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SectorBody {
    /// Name, 1–255 characters, unique at the site (required on create).
    #[serde(default)]
    name: Option<String>,
    /// Direction in degrees, 0–360; `null` clears it.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<f64>)]
    azimuth: Option<Option<f64>>,
    /// Free text; `null` clears it.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
}

impl SectorBody {
    fn fields(&self) -> Result<SectorFields<'_>, ApiError> {
        if let Some(name) = &self.name {
            super::check_name(name)?;
        }
        if let Some(Some(a)) = self.azimuth
            && !(0.0..=360.0).contains(&a)
        {
            return Err(ApiError::unprocessable("azimuth: must be between 0 and 360"));
        }
        Ok(SectorFields {
            name: self.name.as_deref(),
            azimuth: self.azimuth,
            description: self.description.as_ref().map(|d| d.as_deref()),
        })
    }
}

/// A site's sectors.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SectorPage {
    /// By name.
    items: Vec<Sector>,
    /// How many.
    total: usize,
}

pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, site)): PathParams<(TenantId, SiteId)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    st.store.get_site(t, site).await?;
    let items = st.store.list_sectors(t, site).await?;
    Ok(Json(SectorPage {
        total: items.len(),
        items,
    }))
}

pub(super) async fn create(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    PathParams((_, site)): PathParams<(TenantId, SiteId)>,
    Body(body): Body<SectorBody>,
) -> Result<impl IntoResponse, ApiError> {
    if body.name.is_none() {
        return Err(ApiError::unprocessable("name: required"));
    }
    let t = tenant(scope)?;
    let sector = st.store.create_sector(t, site, body.fields()?, Utc::now()).await?;
    let details = serde_json::json!({ "site_id": site, "name": sector.name, "azimuth": sector.azimuth });
    super::audit_change(
        &st,
        &caller,
        t,
        "sector.created",
        ("sector", sector.id.to_string()),
        details,
    )
    .await;
    Ok((StatusCode::CREATED, Json(sector)))
}

pub(super) async fn update(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    PathParams((_, site, id)): PathParams<(TenantId, SiteId, Uuid)>,
    Body(body): Body<SectorBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    let sector = st.store.update_sector(t, site, id, body.fields()?, Utc::now()).await?;
    let details = serde_json::json!({ "site_id": site, "name": sector.name, "azimuth": sector.azimuth });
    super::audit_change(&st, &caller, t, "sector.updated", ("sector", id.to_string()), details).await;
    Ok(Json(sector))
}

pub(super) async fn delete(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    PathParams((_, site, id)): PathParams<(TenantId, SiteId, Uuid)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    st.store.delete_sector(t, site, id).await?;
    let details = serde_json::json!({ "site_id": site });
    super::audit_change(&st, &caller, t, "sector.deleted", ("sector", id.to_string()), details).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceSector {
    /// A sector at the device's own site, or `null` to clear it.
    #[schema(value_type = Option<String>, format = Uuid)]
    sector_id: Option<Uuid>,
}

pub(super) async fn set_device_sector(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    PathParams((_, device)): PathParams<(TenantId, DeviceId)>,
    Body(body): Body<DeviceSector>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    st.store
        .set_device_sector(t, device, body.sector_id, Utc::now())
        .await?;
    let details = serde_json::json!({ "sector_id": body.sector_id });
    super::audit_change(
        &st,
        &caller,
        t,
        "device.sector_set",
        ("device", device.to_string()),
        details,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
