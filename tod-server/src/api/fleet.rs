//! Devices, agents and `POST /api/ingest`: the first slice of the fleet and ingest groups.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tod_core::{AgentId, DeviceId, SiteId, TenantId};

use super::{Body, PathParams, QueryParams, TenantScope};
use crate::app::AppState;
use crate::auth::{Caller, api_key_hash, random_bytes};
use crate::error::ApiError;
use crate::ingest::IngestError;
use crate::store::{Agent, Ingested, NewDevice};

/// Prefix of every agent credential.
pub const AGENT_TOKEN_PREFIX: &str = "toda_";

fn tenant(scope: TenantScope) -> Result<TenantId, ApiError> {
    scope
        .0
        .ok_or_else(|| ApiError::internal("tenant route without a tenant"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewDeviceBody {
    name: String,
    host: String,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    site_id: Option<SiteId>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceQuery {
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    site_id: Option<SiteId>,
}

pub(super) async fn list_devices(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<DeviceQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.store.list_devices(tenant(scope)?, q.site_id).await?))
}

pub(super) async fn create_device(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    Body(body): Body<NewDeviceBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    if body.name.trim().is_empty() || body.name.len() > 255 {
        return Err(ApiError::unprocessable("name: 1 to 255 characters"));
    }
    if body.host.trim().is_empty() || body.host.len() > 255 {
        return Err(ApiError::unprocessable("host: 1 to 255 characters"));
    }
    let audit = caller.audit(
        Some(t),
        "device.created",
        json!({ "name": body.name.trim(), "host": body.host.trim() }),
    );
    let new = NewDevice {
        name: &body.name,
        host: &body.host,
        site_id: body.site_id,
    };
    Ok((
        StatusCode::CREATED,
        Json(st.store.create_device(t, new, Utc::now(), &audit).await?),
    ))
}

pub(super) async fn get_device(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, id)): PathParams<(TenantId, DeviceId)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.store.get_device(tenant(scope)?, id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewAgentBody {
    name: String,
    #[schema(value_type = String, format = Uuid)]
    site_id: SiteId,
}

/// A created agent and its credential (shown once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedAgent {
    /// The agent.
    #[serde(flatten)]
    pub agent: Agent,
    /// `[agent] token` in the agent's configuration; shown this once.
    pub token: String,
}

pub(super) async fn list_agents(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.store.list_agents(tenant(scope)?).await?))
}

pub(super) async fn create_agent(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    Body(body): Body<NewAgentBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    if body.name.trim().is_empty() || body.name.len() > 255 {
        return Err(ApiError::unprocessable("name: 1 to 255 characters"));
    }
    let raw: [u8; 32] = random_bytes()?;
    let token = format!(
        "{AGENT_TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let audit = caller.audit(
        Some(t),
        "agent.created",
        json!({ "name": body.name.trim(), "site_id": body.site_id }),
    );
    let agent = st
        .store
        .create_agent(t, body.site_id, &body.name, &api_key_hash(&token), Utc::now(), &audit)
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedAgent { agent, token })))
}

pub(super) async fn revoke_agent(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, id)): PathParams<(TenantId, AgentId)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    let audit = caller.audit(Some(t), "agent.revoked", json!({}));
    st.store.revoke_agent(t, id, Utc::now(), &audit).await?;
    Ok(Json(json!({ "status": "revoked", "agent_id": id })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LinkQuery {
    /// `discovered`, `active`, `degraded`, `down` or `stale`.
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    device_id: Option<DeviceId>,
}

fn link_state(s: Option<&str>) -> Result<Option<tod_core::links::LinkState>, ApiError> {
    s.map(|s| {
        tod_core::links::LinkState::parse(s).ok_or_else(|| {
            ApiError::unprocessable(format!(
                "state: {s:?} is not one of discovered, active, degraded, down, stale"
            ))
        })
    })
    .transpose()
}

pub(super) async fn list_links(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<LinkQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let state = link_state(q.state.as_deref())?;
    Ok(Json(st.store.list_links(tenant(scope)?, state, q.device_id).await?))
}

pub(super) async fn device_links(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, id)): PathParams<(TenantId, DeviceId)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    st.store.get_device(t, id).await?;
    Ok(Json(st.store.list_links(t, None, Some(id)).await?))
}

/// What an accepted batch did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestAnswer {
    /// `stored` or `duplicate` (already stored under this idempotency key).
    pub status: String,
    /// Reports stored.
    pub reports: usize,
    /// Registration rows stored.
    pub registrations: usize,
}

/// `POST /api/ingest`: a batch from an agent (JSON, optionally gzip), stored in one transaction
/// and acknowledged only after the commit. Redelivery under the same idempotency key is
/// acknowledged without storing twice.
pub(super) async fn ingest(
    State(st): State<AppState>,
    Extension(agent): Extension<Agent>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let answer = |status: &str, reports, registrations| IngestAnswer {
        status: status.into(),
        reports,
        registrations,
    };
    match crate::ingest::process(st.store.as_ref(), &agent, &body, gzip, Utc::now()).await {
        Ok(Ingested::Stored { reports, registrations }) => Ok(Json(answer("stored", reports, registrations))),
        Ok(Ingested::Duplicate) => Ok(Json(answer("duplicate", 0, 0))),
        Err(IngestError::Malformed(m)) => Err(ApiError::bad_request(m)),
        Err(IngestError::TooLarge) => Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "batch larger than 64 MiB")),
        Err(IngestError::Refused(m)) => Err(ApiError::unprocessable(m)),
        Err(IngestError::WrongAgent(m)) => Err(ApiError::forbidden(m)),
        Err(IngestError::Store(e)) => Err(e.into()),
    }
}
