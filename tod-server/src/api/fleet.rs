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

use super::{Body, PathParams, QueryParams, TenantScope, tenant};
use crate::app::AppState;
use crate::auth::{Caller, api_key_hash, random_bytes};
use crate::error::ApiError;
use crate::ingest::IngestError;
use crate::store::{Agent, Ingested, LinksFrom, NewDevice};

/// Prefix of every agent credential.
pub const AGENT_TOKEN_PREFIX: &str = "toda_";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewDeviceBody {
    name: String,
    host: String,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    site_id: Option<SiteId>,
    /// RouterOS API port (default 8728, or 8729 for the TLS transports).
    #[serde(default)]
    port: Option<u16>,
    /// `plain` (default), `tls_verified`, `tls_pinned`, `tls_insecure` or `tls_anonymous`.
    #[serde(default)]
    transport: Option<String>,
    /// SHA-256 of the device certificate (64 hex digits, colons allowed) for `tls_pinned`.
    #[serde(default)]
    fingerprint: Option<String>,
    /// RouterOS user; stored sealed, never returned.
    #[serde(default)]
    username: Option<String>,
    /// RouterOS password; stored sealed, never returned.
    #[serde(default)]
    password: Option<String>,
}

const TRANSPORTS: [&str; 5] = ["plain", "tls_verified", "tls_pinned", "tls_insecure", "tls_anonymous"];
const STATUSES: [&str; 5] = ["unknown", "online", "offline", "unreachable", "auth_failed"];

/// The default API port of a transport.
fn default_port(transport: &str) -> u16 {
    if transport == "plain" { 8728 } else { 8729 }
}

fn check_text(field: &str, v: &str) -> Result<(), ApiError> {
    if v.trim().is_empty() || v.len() > 255 {
        return Err(ApiError::unprocessable(format!("{field}: 1 to 255 characters")));
    }
    Ok(())
}

/// Checks a transport, its fingerprint and a port; returns the canonical fingerprint.
fn check_access(transport: &str, fingerprint: Option<&str>, port: u16) -> Result<Option<String>, ApiError> {
    if !TRANSPORTS.contains(&transport) {
        return Err(ApiError::unprocessable(format!(
            "transport: one of {}",
            TRANSPORTS.join(", ")
        )));
    }
    let fingerprint = fingerprint.map(|f| f.replace(':', "").to_lowercase());
    match (transport, &fingerprint) {
        ("tls_pinned", None) => return Err(ApiError::unprocessable("fingerprint: required for tls_pinned")),
        (_, Some(f)) if f.len() != 64 || !f.bytes().all(|b| b.is_ascii_hexdigit()) => {
            return Err(ApiError::unprocessable("fingerprint: 64 hexadecimal digits"));
        }
        _ => {}
    }
    if port == 0 {
        return Err(ApiError::unprocessable("port: 1 to 65535"));
    }
    Ok(fingerprint)
}

/// Seals a RouterOS login for a device of a tenant.
fn seal(st: &AppState, t: TenantId, id: DeviceId, username: &str, password: &str) -> Result<Vec<u8>, ApiError> {
    if username.is_empty() || username.len() > 255 || password.len() > 255 {
        return Err(ApiError::unprocessable(
            "username and password: both or neither, 1 to 255 characters",
        ));
    }
    let vault = st
        .vault
        .as_ref()
        .ok_or_else(|| ApiError::unprocessable("device credentials need TOD_MASTER_KEY (the vault key) to be set"))?;
    let creds = crate::vault::Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    };
    vault.seal(t, id, &creds).map_err(|e| ApiError::internal(e.to_string()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceQuery {
    /// Devices at this site.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    site_id: Option<SiteId>,
    /// `true`: devices at no site.
    #[serde(default)]
    unassigned: Option<bool>,
    /// Devices in this sector.
    #[serde(default)]
    sector_id: Option<uuid::Uuid>,
    /// `unknown`, `online`, `offline`, `unreachable` or `auth_failed`.
    #[serde(default)]
    status: Option<String>,
    /// Name or host containing this text, any letter case (1–100 characters).
    #[serde(default)]
    search: Option<String>,
    /// Devices in this device group.
    #[serde(default)]
    group_id: Option<uuid::Uuid>,
    /// Devices with this tag.
    #[serde(default)]
    tag_id: Option<uuid::Uuid>,
    /// At most this many, 1–1000 (default all); the header `X-Total-Count` has the full count.
    #[serde(default)]
    limit: Option<i64>,
    /// Skip this many (default 0).
    #[serde(default)]
    offset: Option<i64>,
}

pub(super) async fn list_devices(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<DeviceQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(s) = q.status.as_deref()
        && !STATUSES.contains(&s)
    {
        return Err(ApiError::unprocessable(format!(
            "status: one of {}",
            STATUSES.join(", ")
        )));
    }
    if q.search
        .as_deref()
        .is_some_and(|s| s.trim().is_empty() || s.len() > 100)
    {
        return Err(ApiError::unprocessable("search: 1 to 100 characters"));
    }
    let (limit, offset) = super::slice_of(q.limit, q.offset)?;
    let unassigned = q.unassigned.unwrap_or(false);
    if unassigned && q.site_id.is_some() {
        return Err(ApiError::unprocessable("site_id and unassigned=true: choose one"));
    }
    let filter = crate::store::DeviceFilter {
        site: q.site_id,
        unassigned,
        sector: q.sector_id,
        status: q.status,
        search: q.search.map(|s| s.trim().to_owned()),
        group: q.group_id,
        tag: q.tag_id,
        limit,
        offset,
    };
    let (devices, total) = st.store.list_devices(tenant(scope)?, &filter).await?;
    Ok(([("x-total-count", total.to_string())], Json(devices)))
}

pub(super) async fn create_device(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    Body(body): Body<NewDeviceBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    check_text("name", &body.name)?;
    check_text("host", &body.host)?;
    let transport = body.transport.as_deref().unwrap_or("plain");
    let port = body.port.unwrap_or(default_port(transport));
    let fingerprint = check_access(transport, body.fingerprint.as_deref(), port)?;
    let id = DeviceId(uuid::Uuid::new_v4());
    let sealed = match (&body.username, &body.password) {
        (None, None) => None,
        (Some(u), Some(p)) => Some(seal(&st, t, id, u, p)?),
        _ => {
            return Err(ApiError::unprocessable(
                "username and password: both or neither, 1 to 255 characters",
            ));
        }
    };
    let audit = caller.audit(
        Some(t),
        "device.created",
        json!({ "name": body.name.trim(), "host": body.host.trim(), "credentials": sealed.is_some() }),
    );
    let new = NewDevice {
        id,
        api_port: port,
        transport,
        fingerprint: fingerprint.as_deref(),
        credentials: sealed.as_deref(),
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
pub(super) struct DeviceUpdateBody {
    /// 1–255 characters, unique in the tenant.
    #[serde(default)]
    name: Option<String>,
    /// Address, 1–255 characters.
    #[serde(default)]
    host: Option<String>,
    /// A site of the tenant, or `null` for none; moving to another site clears the sector.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>, format = Uuid)]
    site_id: Option<Option<SiteId>>,
    /// RouterOS API port (unchanged unless given; follows a transport change while it is the
    /// old transport's default).
    #[serde(default)]
    port: Option<u16>,
    /// `plain`, `tls_verified`, `tls_pinned`, `tls_insecure` or `tls_anonymous`.
    #[serde(default)]
    transport: Option<String>,
    /// Certificate fingerprint, `null` clears.
    #[serde(default, deserialize_with = "super::present")]
    fingerprint: Option<Option<String>>,
    /// A new RouterOS user (with `password`), or `null` to remove the stored login.
    #[serde(default, deserialize_with = "super::present")]
    username: Option<Option<String>>,
    /// The new login's password.
    #[serde(default)]
    password: Option<String>,
}

pub(super) async fn update_device(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, id)): PathParams<(TenantId, DeviceId)>,
    Body(body): Body<DeviceUpdateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    let d = st.store.get_device(t, id).await?;
    let name = body.name.unwrap_or(d.name);
    check_text("name", &name)?;
    let host = body.host.unwrap_or(d.host);
    check_text("host", &host)?;
    let transport = body.transport.unwrap_or_else(|| d.transport.clone());
    let current_port = u16::try_from(d.api_port).unwrap_or(8728);
    let port = body.port.unwrap_or(if current_port == default_port(&d.transport) {
        default_port(&transport)
    } else {
        current_port
    });
    let fingerprint = body.fingerprint.unwrap_or(d.fingerprint);
    let fingerprint = check_access(&transport, fingerprint.as_deref(), port)?;
    let sealed = match (body.username, body.password) {
        (None, None) => None,
        (Some(None), None) => Some(None),
        (Some(Some(u)), Some(p)) => Some(Some(seal(&st, t, id, &u, &p)?)),
        _ => {
            return Err(ApiError::unprocessable(
                "username and password: both to replace the login, or username null alone to remove it",
            ));
        }
    };
    let site_id = body.site_id.unwrap_or(d.site_id);
    let audit = caller.audit(
        Some(t),
        "device.updated",
        json!({ "name": name.trim(), "host": host.trim(), "site_id": site_id, "transport": transport,
                "port": port, "credentials": sealed.as_ref().map(|c| if c.is_some() { "replaced" } else { "removed" }) }),
    );
    let update = crate::store::DeviceUpdate {
        name: &name,
        host: &host,
        site_id,
        api_port: port,
        transport: &transport,
        fingerprint: fingerprint.as_deref(),
        credentials: sealed.as_ref().map(|c| c.as_deref()),
    };
    Ok(Json(st.store.update_device(t, id, &update, Utc::now(), &audit).await?))
}

pub(super) async fn delete_device(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, id)): PathParams<(TenantId, DeviceId)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    let d = st.store.get_device(t, id).await?;
    let audit = caller.audit(Some(t), "device.deleted", json!({ "name": d.name, "host": d.host }));
    st.store.delete_device(t, id, Utc::now(), &audit).await?;
    Ok(StatusCode::NO_CONTENT)
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
    // A revoked agent's tunnel ends with its token.
    if let Some(vpn) = st.vpn.as_deref() {
        super::vpn::reload(vpn).await;
    }
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
    /// At most this many, 1–1000 (default all); the header `X-Total-Count` has the full count
    /// (without filters, as of at most a second before; not with `after`: the first page's count
    /// stands). A full page names the next one's `after` in the header `X-Next-After`.
    #[serde(default)]
    limit: Option<i64>,
    /// Skip this many (default 0). Deep offsets cost what they skip: page with `after`.
    #[serde(default)]
    offset: Option<i64>,
    /// The page after this link, `{ap_device_id}:{cpe_device_id}` (from `X-Next-After`), in
    /// the list's order (AP, then CPE); not with `offset`.
    #[serde(default)]
    after: Option<String>,
}

/// `{ap}:{cpe}` as `after` takes it.
fn link_after(s: &str) -> Result<LinksFrom, ApiError> {
    let bad = || ApiError::unprocessable(format!("after: {s:?} is not {{ap_device_id}}:{{cpe_device_id}}"));
    let (ap, cpe) = s.split_once(':').ok_or_else(bad)?;
    let id = |v: &str| v.parse::<uuid::Uuid>().map(DeviceId).map_err(|_| bad());
    Ok(LinksFrom::After(id(ap)?, id(cpe)?))
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
    let (limit, offset) = super::slice_of(q.limit, q.offset)?;
    let from = match (q.after.as_deref(), q.offset) {
        (Some(_), Some(_)) => return Err(ApiError::unprocessable("after: not with offset")),
        (Some(after), None) => link_after(after)?,
        (None, _) => LinksFrom::Offset(offset),
    };
    let t = tenant(scope)?;
    let links = st.store.page_links(t, state, q.device_id, limit, from).await?;
    let total = match from {
        // A later page: the first page's count stands.
        LinksFrom::After(..) => None,
        LinksFrom::Offset(0) if limit.is_none() => Some(i64::try_from(links.len()).unwrap_or(i64::MAX)),
        // The whole tenant's count, every page's, from the read cache: counting 50 000 links
        // cost each page as much as reading it.
        LinksFrom::Offset(_) if state.is_none() && q.device_id.is_none() => {
            let count = st
                .reads
                .get_or_compute(t, "links-count", async {
                    let n = st.store.count_links(t, None, None).await?;
                    Ok::<_, ApiError>(axum::body::Bytes::from(n.to_string()))
                })
                .await?;
            let count = std::str::from_utf8(&count).ok().and_then(|n| n.parse().ok());
            Some(count.ok_or_else(|| ApiError::internal("links count"))?)
        }
        LinksFrom::Offset(_) => Some(st.store.count_links(t, state, q.device_id).await?),
    };
    let mut headers = axum::http::HeaderMap::new();
    if let Some(total) = total {
        headers.insert("x-total-count", total.into());
    }
    if let (Some(limit), Some(last)) = (limit, links.last())
        && links.len() as i64 == limit
    {
        let next = format!("{}:{}", last.ap_device_id, last.cpe_device_id);
        if let Ok(v) = axum::http::HeaderValue::from_str(&next) {
            headers.insert("x-next-after", v);
        }
    }
    Ok((headers, Json(links)))
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

/// A device as its agent polls it, login included.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentDevice {
    /// Id to report under.
    #[schema(value_type = String, format = Uuid)]
    pub id: DeviceId,
    /// Name.
    pub name: String,
    /// Address.
    pub host: String,
    /// API port.
    pub port: i64,
    /// Transport.
    pub transport: String,
    /// Certificate fingerprint for `tls_pinned`.
    pub fingerprint: Option<String>,
    /// RouterOS user (absent when none is stored).
    pub username: Option<String>,
    /// RouterOS password (absent when none is stored).
    pub password: Option<String>,
}

/// `GET /api/agent/devices`: the calling agent's site's devices with their logins, opened from
/// the vault for this agent only.
pub(super) async fn agent_devices(
    State(st): State<AppState>,
    Extension(agent): Extension<Agent>,
) -> Result<impl IntoResponse, ApiError> {
    let mut out = Vec::new();
    for (d, sealed) in st.store.agent_devices(&agent).await? {
        let creds = match (sealed, st.vault.as_ref()) {
            (Some(blob), Some(v)) => Some(
                v.open(agent.tenant_id, d.id, &blob)
                    .map_err(|e| ApiError::internal(format!("device {}: {e}", d.id)))?,
            ),
            _ => None,
        };
        out.push(AgentDevice {
            id: d.id,
            name: d.name,
            host: d.host,
            port: d.api_port,
            transport: d.transport,
            fingerprint: d.fingerprint,
            username: creds.as_ref().map(|c| c.username.clone()),
            password: creds.map(|c| c.password),
        });
    }
    let mut r = Json(out).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(r)
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
    match crate::ingest::process(st.store.as_ref(), &agent, &body, gzip, st.clock.now()).await {
        Ok(Ingested::Stored { reports, registrations }) => Ok(Json(answer("stored", reports, registrations))),
        Ok(Ingested::Duplicate) => Ok(Json(answer("duplicate", 0, 0))),
        Err(IngestError::Malformed(m)) => Err(ApiError::bad_request(m)),
        Err(IngestError::TooLarge) => Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "batch larger than 64 MiB")),
        Err(IngestError::Refused(m)) => Err(ApiError::unprocessable(m)),
        Err(IngestError::WrongAgent(m)) => Err(ApiError::forbidden(m)),
        Err(IngestError::Store(e)) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SignalQuery {
    /// The client's MAC, in any common format (colons, dashes, dots, bare; any case).
    #[serde(default)]
    mac_address: Option<String>,
    /// `24h` (5-minute buckets), `7d` (1-hour, the default) or `30d` (4-hour).
    #[serde(default)]
    range: Option<String>,
}

/// One bucket of a client's signal.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SignalPoint {
    /// Bucket start (aligned to the bucket width since the epoch, UTC).
    timestamp: chrono::DateTime<Utc>,
    /// Mean in dBm, rounded half away from zero.
    signal_avg: i16,
    /// Weakest sample.
    signal_min: i16,
    /// Strongest sample.
    signal_max: i16,
    /// Samples in the bucket.
    samples: u32,
}

/// A client's signal history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SignalHistory {
    /// Non-empty buckets, oldest first.
    items: Vec<SignalPoint>,
    /// The MAC, canonical (lower case, colons).
    mac_address: String,
    /// The range.
    range: String,
}

pub(super) async fn signal_history(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, device)): PathParams<(TenantId, DeviceId)>,
    QueryParams(q): QueryParams<SignalQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    let range: tod_core::signal::Range = match q.range.as_deref() {
        None => tod_core::signal::Range::default(),
        Some(r) => r
            .parse()
            .map_err(|e: tod_core::signal::InvalidRange| ApiError::bad_request(e.to_string()))?,
    };
    let mac: tod_core::MacAddr = q
        .mac_address
        .as_deref()
        .ok_or_else(|| ApiError::unprocessable("mac_address: required"))?
        .parse()
        .map_err(|e| ApiError::unprocessable(format!("mac_address: {e}")))?;
    let now = Utc::now();
    let since = now - chrono::Duration::seconds(range.lookback_secs());
    // The database sums each bucket; tod-core turns the sums into the answer. Another tenant's
    // device is a 404, not an empty chart.
    let sums = st
        .store
        .signal_sums(t, device, &mac.to_string(), since, now, range.bucket_secs())
        .await?;
    let items = tod_core::signal::bucket_sums(sums, range, now)
        .into_iter()
        .map(|b| SignalPoint {
            timestamp: b.timestamp,
            signal_avg: b.signal_avg,
            signal_min: b.signal_min,
            signal_max: b.signal_max,
            samples: b.samples,
        })
        .collect();
    Ok(Json(SignalHistory {
        items,
        mac_address: mac.to_string(),
        range: range.to_string(),
    }))
}

pub(super) async fn site_links(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, site)): PathParams<(TenantId, SiteId)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    st.store.get_site(t, site).await?;
    Ok(Json(st.store.site_links(t, site).await?))
}

/// Clients an AP reported, newest registration per MAC.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ClientPage {
    /// By MAC.
    items: Vec<crate::store::ClientEntry>,
    /// How many.
    total: usize,
}

/// How far back "latest registration" looks: a client gone for a day is not a client.
const CLIENT_WINDOW_HOURS: i64 = 24;

async fn clients(
    st: &AppState,
    scope: TenantScope,
    device: DeviceId,
    unknown_only: bool,
) -> Result<ClientPage, ApiError> {
    let t = tenant(scope)?;
    st.store.get_device(t, device).await?;
    let since = Utc::now() - chrono::Duration::hours(CLIENT_WINDOW_HOURS);
    let items: Vec<_> = st
        .store
        .latest_clients(t, device, since)
        .await?
        .into_iter()
        .filter(|c| !unknown_only || c.device_id.is_none())
        .collect();
    Ok(ClientPage {
        total: items.len(),
        items,
    })
}

pub(super) async fn registrations(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, device)): PathParams<(TenantId, DeviceId)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(clients(&st, scope, device, false).await?))
}

pub(super) async fn unknown_clients(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, device)): PathParams<(TenantId, DeviceId)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(clients(&st, scope, device, true).await?))
}
