//! `/api/audit-logs`: reading and verifying the hash-chained audit log.

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use tod_core::TenantId;

use super::{QueryParams, TenantScope};
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::PLATFORM_CHAIN;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChainQuery {
    /// The chain to read: a super admin names any tenant (default: the platform chain); a tenant
    /// admin reads their own.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    tenant_id: Option<TenantId>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

fn chain(scope: TenantScope, asked: Option<TenantId>) -> Result<TenantId, ApiError> {
    match (scope.0, asked) {
        (None, asked) => Ok(asked.unwrap_or(PLATFORM_CHAIN)),
        (Some(own), None) => Ok(own),
        (Some(own), Some(t)) if t == own => Ok(own),
        (Some(_), Some(_)) => Err(tod_core::rbac::Denied::WrongTenant.into()),
    }
}

pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<ChainQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::unprocessable("limit: 1 to 500"));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::unprocessable("offset: must not be negative"));
    }
    Ok(Json(
        st.store.list_audit(chain(scope, q.tenant_id)?, limit, offset).await?,
    ))
}

pub(super) async fn verify(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<ChainQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.store.verify_audit(chain(scope, q.tenant_id)?).await?))
}
