//! `/api/tenants/{tenant_id}/sites`: the first slice of the sites group (list, create, get).

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::Deserialize;
use tod_core::{SiteId, TenantId};

use super::{Body, PathParams, TenantScope};
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::NewSite;

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

pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.store.list_sites(tenant(scope)?).await?))
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
    Ok(Json(st.store.get_site(tenant(scope)?, site).await?))
}
