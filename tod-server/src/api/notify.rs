//! Notification channels: `/api/alerts/channels` (webhook signed with HMAC-SHA256, Slack-compatible
//! webhook, e-mail over SMTP), the channels each device or site alert rule notifies, a test send,
//! and the delivery log (`/api/alerts/deliveries`). Secrets — a webhook's signing key, a Slack
//! URL, an SMTP password — are sealed at rest and never returned. The caller's own tenant; a
//! super admin names one with `?tenant_id=` (site rules: the path's tenant).

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tod_core::notify::{ChannelKind, Notice};
use tod_core::{SiteId, TenantId};
use uuid::Uuid;

use super::{Body, PathParams, QueryParams, TenantQuery, TenantScope, own_tenant, tenant};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::notify::{EmailSettings, SECRET_PURPOSE};
use crate::store::{ChannelRecord, Delivery, DeliveryFilter, RuleRef};

/// A channel as the API shows it: everything but its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Channel {
    /// Id.
    id: Uuid,
    /// Tenant.
    #[schema(value_type = String, format = Uuid)]
    tenant_id: TenantId,
    /// Unique per tenant.
    name: String,
    /// `webhook`, `slack` or `email`.
    channel_type: String,
    /// What is not secret: a webhook's `url`; a Slack channel's `url_hint`; an e-mail channel's
    /// `smtp_host`, `smtp_port`, `smtp_user`, `tls`, `from_address`, `to_addresses`.
    #[schema(value_type = Object)]
    settings: Value,
    /// Whether a secret is stored (signing key, Slack URL or SMTP password).
    has_secret: bool,
    /// Receives the alerts of rules that link no channel, and alerts with no rule (a silent agent).
    fallback: bool,
    /// Whether it is used.
    enabled: bool,
    /// Created.
    created_at: DateTime<Utc>,
    /// Last changed.
    updated_at: DateTime<Utc>,
}

impl From<ChannelRecord> for Channel {
    fn from(c: ChannelRecord) -> Self {
        Channel {
            id: c.id,
            tenant_id: c.tenant,
            name: c.name,
            channel_type: c.kind.as_str().into(),
            settings: c.settings,
            has_secret: c.sealed.is_some(),
            fallback: c.fallback,
            enabled: c.enabled,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChannelBody {
    /// 1–255 characters, unique per tenant (required on create).
    #[serde(default)]
    name: Option<String>,
    /// `webhook`, `slack` or `email` (required on create; cannot change).
    #[serde(default)]
    channel_type: Option<String>,
    /// Webhook or Slack: the `http(s)://` URL to `POST` to (required on create). A Slack URL is
    /// kept sealed.
    #[serde(default)]
    url: Option<String>,
    /// Webhook: the HMAC-SHA256 signing key, 16–256 characters (`null` removes it).
    #[serde(default, deserialize_with = "super::present")]
    secret: Option<Option<String>>,
    /// E-mail: SMTP host (required on create).
    #[serde(default)]
    smtp_host: Option<String>,
    /// E-mail: SMTP port, default 587.
    #[serde(default)]
    smtp_port: Option<u16>,
    /// E-mail: SMTP login (`null` for none).
    #[serde(default, deserialize_with = "super::present")]
    smtp_user: Option<Option<String>>,
    /// E-mail: SMTP password, sealed (`null` removes it).
    #[serde(default, deserialize_with = "super::present")]
    smtp_password: Option<Option<String>>,
    /// E-mail: `starttls` (default), `tls` (implicit) or `none` (a relay on a trusted network).
    #[serde(default)]
    tls: Option<String>,
    /// E-mail: sender address (required on create).
    #[serde(default)]
    from_address: Option<String>,
    /// E-mail: 1–20 recipients (required on create).
    #[serde(default)]
    to_addresses: Option<Vec<String>>,
    /// Receives the alerts of rules that link no channel (default false).
    #[serde(default)]
    fallback: Option<bool>,
    /// Default true.
    #[serde(default)]
    enabled: Option<bool>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::unprocessable(msg.into())
}

fn http_url(field: &str, url: &str) -> Result<reqwest::Url, ApiError> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| bad(format!("{field}: not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad(format!("{field}: an http:// or https:// URL with a host")));
    }
    if url.len() > 2_000 {
        return Err(bad(format!("{field}: at most 2000 characters")));
    }
    Ok(parsed)
}

fn address(field: &str, a: &str) -> Result<String, ApiError> {
    a.trim()
        .parse::<lettre::Address>()
        .map(|a| a.to_string())
        .map_err(|e| bad(format!("{field}: {a}: {e}")))
}

/// What a body makes of a channel: its settings and, when the body changes it, its new secret
/// (`Some(None)`: removed).
struct Applied {
    settings: Value,
    secret: Option<Option<Vec<u8>>>,
}

impl ChannelBody {
    /// Applies the body to a channel of `kind` with `settings` (empty on create).
    fn apply(&self, kind: ChannelKind, settings: &Value, creating: bool) -> Result<Applied, ApiError> {
        let foreign = |field: &str, given: bool| {
            if given {
                Err(bad(format!("{field}: not a setting of a {} channel", kind.as_str())))
            } else {
                Ok(())
            }
        };
        match kind {
            ChannelKind::Webhook => {
                for (f, g) in self.email_fields() {
                    foreign(f, g)?;
                }
                let url = match &self.url {
                    Some(u) => http_url("url", u)?.to_string(),
                    None if creating => return Err(bad("url: required")),
                    None => settings["url"].as_str().unwrap_or_default().to_owned(),
                };
                let secret = match &self.secret {
                    Some(Some(s)) if !(16..=256).contains(&s.chars().count()) => {
                        return Err(bad("secret: 16 to 256 characters"));
                    }
                    Some(s) => Some(s.as_ref().map(|s| s.as_bytes().to_vec())),
                    None => None,
                };
                Ok(Applied {
                    settings: json!({ "url": url }),
                    secret,
                })
            }
            ChannelKind::Slack => {
                for (f, g) in self.email_fields() {
                    foreign(f, g)?;
                }
                foreign("secret", self.secret.is_some())?;
                match &self.url {
                    Some(u) => {
                        let parsed = http_url("url", u)?;
                        let hint = format!("{}://{}/…", parsed.scheme(), parsed.host_str().unwrap_or_default());
                        Ok(Applied {
                            settings: json!({ "url_hint": hint }),
                            secret: Some(Some(parsed.to_string().into_bytes())),
                        })
                    }
                    None if creating => Err(bad("url: required")),
                    None => Ok(Applied {
                        settings: settings.clone(),
                        secret: None,
                    }),
                }
            }
            ChannelKind::Email => {
                foreign("url", self.url.is_some())?;
                foreign("secret", self.secret.is_some())?;
                let mut e: EmailSettings = if creating {
                    EmailSettings {
                        smtp_host: String::new(),
                        smtp_port: 587,
                        smtp_user: None,
                        tls: "starttls".into(),
                        from_address: String::new(),
                        to_addresses: Vec::new(),
                    }
                } else {
                    serde_json::from_value(settings.clone())
                        .map_err(|e| ApiError::internal(format!("stored e-mail settings: {e}")))?
                };
                if let Some(h) = &self.smtp_host {
                    e.smtp_host = h.trim().to_owned();
                }
                if let Some(p) = self.smtp_port {
                    e.smtp_port = p;
                }
                if let Some(u) = &self.smtp_user {
                    e.smtp_user = u.as_ref().map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
                }
                if let Some(t) = &self.tls {
                    e.tls = t.clone();
                }
                if let Some(f) = &self.from_address {
                    e.from_address = address("from_address", f)?;
                }
                if let Some(to) = &self.to_addresses {
                    e.to_addresses = to
                        .iter()
                        .map(|a| address("to_addresses", a))
                        .collect::<Result<_, _>>()?;
                }
                if e.smtp_host.is_empty() || e.smtp_host.len() > 253 || e.smtp_host.contains(char::is_whitespace) {
                    return Err(bad("smtp_host: required, a host name or address"));
                }
                if e.smtp_port == 0 {
                    return Err(bad("smtp_port: 1 to 65535"));
                }
                if !matches!(e.tls.as_str(), "starttls" | "tls" | "none") {
                    return Err(bad("tls: starttls, tls or none"));
                }
                if e.from_address.is_empty() {
                    return Err(bad("from_address: required"));
                }
                if !(1..=20).contains(&e.to_addresses.len()) {
                    return Err(bad("to_addresses: 1 to 20 addresses"));
                }
                let secret = match &self.smtp_password {
                    Some(Some(p)) if p.is_empty() || p.len() > 512 => {
                        return Err(bad("smtp_password: 1 to 512 characters"));
                    }
                    Some(p) => Some(p.as_ref().map(|p| p.as_bytes().to_vec())),
                    None => None,
                };
                Ok(Applied {
                    settings: serde_json::to_value(&e).map_err(|e| ApiError::internal(e.to_string()))?,
                    secret,
                })
            }
        }
    }

    fn email_fields(&self) -> [(&'static str, bool); 7] {
        [
            ("smtp_host", self.smtp_host.is_some()),
            ("smtp_port", self.smtp_port.is_some()),
            ("smtp_user", self.smtp_user.is_some()),
            ("smtp_password", self.smtp_password.is_some()),
            ("tls", self.tls.is_some()),
            ("from_address", self.from_address.is_some()),
            ("to_addresses", self.to_addresses.is_some()),
        ]
    }
}

fn seal(st: &AppState, t: TenantId, id: Uuid, secret: &[u8]) -> Result<Vec<u8>, ApiError> {
    let vault = st
        .vault
        .as_ref()
        .ok_or_else(|| bad("channel secrets need TOD_MASTER_KEY (the vault key) to be set"))?;
    vault
        .seal_secret(t, SECRET_PURPOSE, id, secret)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The tenant's channels.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ChannelPage {
    /// By name.
    items: Vec<Channel>,
    /// How many.
    total: usize,
}

pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let items: Vec<Channel> = st
        .store
        .channels(own_tenant(scope, q.tenant_id)?)
        .await?
        .into_iter()
        .map(Channel::from)
        .collect();
    Ok(Json(ChannelPage {
        total: items.len(),
        items,
    }))
}

pub(super) async fn get(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(Channel::from(
        st.store.channel(own_tenant(scope, q.tenant_id)?, id).await?,
    )))
}

fn audit_details(c: &ChannelRecord) -> Value {
    json!({ "name": c.name, "channel_type": c.kind.as_str(), "fallback": c.fallback, "enabled": c.enabled })
}

pub(super) async fn create(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<ChannelBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let name = body.name.as_deref().ok_or_else(|| bad("name: required"))?;
    super::check_name(name)?;
    let kind: ChannelKind = body
        .channel_type
        .as_deref()
        .ok_or_else(|| bad("channel_type: required"))?
        .parse()
        .map_err(bad)?;
    let applied = body.apply(kind, &Value::Null, true)?;
    let id = Uuid::new_v4();
    let sealed = match applied.secret.flatten() {
        Some(s) => Some(seal(&st, t, id, &s)?),
        None => None,
    };
    let now = Utc::now();
    let record = ChannelRecord {
        id,
        tenant: t,
        name: name.trim().to_owned(),
        kind,
        settings: applied.settings,
        sealed,
        fallback: body.fallback.unwrap_or(false),
        enabled: body.enabled.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    let created = st.store.create_channel(&record).await?;
    super::audit_change(
        &st,
        &caller,
        t,
        "notification_channel.created",
        ("notification_channel", id.to_string()),
        audit_details(&created),
    )
    .await;
    Ok((StatusCode::CREATED, Json(Channel::from(created))))
}

pub(super) async fn update(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<ChannelBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let mut c = st.store.channel(t, id).await?;
    if let Some(k) = &body.channel_type
        && k != c.kind.as_str()
    {
        return Err(bad("channel_type: cannot change; create another channel"));
    }
    if let Some(n) = &body.name {
        super::check_name(n)?;
        c.name = n.trim().to_owned();
    }
    let applied = body.apply(c.kind, &c.settings, false)?;
    c.settings = applied.settings;
    match applied.secret {
        Some(Some(s)) => c.sealed = Some(seal(&st, t, id, &s)?),
        Some(None) => c.sealed = None,
        None => {}
    }
    if let Some(f) = body.fallback {
        c.fallback = f;
    }
    if let Some(e) = body.enabled {
        c.enabled = e;
    }
    c.updated_at = Utc::now();
    let saved = st.store.update_channel(&c).await?;
    super::audit_change(
        &st,
        &caller,
        t,
        "notification_channel.updated",
        ("notification_channel", id.to_string()),
        audit_details(&saved),
    )
    .await;
    Ok(Json(Channel::from(saved)))
}

pub(super) async fn delete(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let gone = st.store.channel(t, id).await?;
    st.store.delete_channel(t, id).await?;
    super::audit_change(
        &st,
        &caller,
        t,
        "notification_channel.deleted",
        ("notification_channel", id.to_string()),
        audit_details(&gone),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// How a test send went.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct TestResult {
    /// Whether the receiver took it.
    delivered: bool,
    /// The HTTP status or SMTP reply code.
    status: Option<u16>,
    /// What went wrong.
    error: Option<String>,
}

pub(super) async fn test(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let c = st.store.channel(t, id).await?;
    let now = Utc::now();
    let sent = st.notifier.send(&c, &Notice::test(now), Uuid::new_v4(), now).await;
    Ok(Json(TestResult {
        delivered: sent.attempt == tod_core::notify::Attempt::Delivered,
        status: sent.status,
        error: sent.error,
    }))
}

/// The channels a rule notifies.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleChannels {
    /// Channel ids (none: the rule's alerts go to the fallback channels).
    channel_ids: Vec<Uuid>,
}

async fn rule_channels_answer(st: &AppState, t: TenantId, rule: RuleRef) -> Result<Json<RuleChannels>, ApiError> {
    Ok(Json(RuleChannels {
        channel_ids: st.store.rule_channels(t, rule).await?,
    }))
}

async fn set_rule_channels(
    st: &AppState,
    caller: &Caller,
    t: TenantId,
    rule: RuleRef,
    body: RuleChannels,
) -> Result<Json<RuleChannels>, ApiError> {
    if body.channel_ids.len() > 50 {
        return Err(bad("channel_ids: at most 50"));
    }
    st.store.set_rule_channels(t, rule, &body.channel_ids).await?;
    let (kind, id) = match rule {
        RuleRef::Device(id) => ("alert_rule", id),
        RuleRef::Site(id) => ("site_alert_rule", id),
    };
    let answer = rule_channels_answer(st, t, rule).await?;
    super::audit_change(
        st,
        caller,
        t,
        "alert_rule.channels_set",
        (kind, id.to_string()),
        json!({ "channel_ids": answer.channel_ids }),
    )
    .await;
    Ok(answer)
}

pub(super) async fn get_device_rule_channels(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    rule_channels_answer(&st, own_tenant(scope, q.tenant_id)?, RuleRef::Device(id)).await
}

pub(super) async fn put_device_rule_channels(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<RuleChannels>,
) -> Result<impl IntoResponse, ApiError> {
    set_rule_channels(&st, &caller, own_tenant(scope, q.tenant_id)?, RuleRef::Device(id), body).await
}

pub(super) async fn get_site_rule_channels(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, site, id)): PathParams<(TenantId, SiteId, Uuid)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    st.store.site_rule(t, site, id).await?;
    rule_channels_answer(&st, t, RuleRef::Site(id)).await
}

pub(super) async fn put_site_rule_channels(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams((_, site, id)): PathParams<(TenantId, SiteId, Uuid)>,
    Body(body): Body<RuleChannels>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    st.store.site_rule(t, site, id).await?;
    set_rule_channels(&st, &caller, t, RuleRef::Site(id), body).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliveryQuery {
    /// The tenant (super admins only).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    tenant_id: Option<TenantId>,
    /// One channel.
    #[serde(default)]
    channel_id: Option<Uuid>,
    /// `pending`, `delivered` or `failed`.
    #[serde(default)]
    state: Option<String>,
    /// From 1 (default 1).
    #[serde(default)]
    page: Option<i64>,
    /// 1–200 (default 50).
    #[serde(default)]
    per_page: Option<i64>,
}

/// A page of the delivery log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct DeliveryPage {
    /// Newest first.
    items: Vec<Delivery>,
    /// All deliveries matching the filters.
    total: i64,
    /// This page.
    page: i64,
    /// Its size.
    per_page: i64,
}

pub(super) async fn deliveries(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<DeliveryQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let (page, per_page, offset) = super::numbered_page(q.page, q.per_page)?;
    if let Some(s) = q.state.as_deref()
        && !matches!(s, "pending" | "delivered" | "failed")
    {
        return Err(bad("state: pending, delivered or failed"));
    }
    let filter = DeliveryFilter {
        channel: q.channel_id,
        state: q.state,
        limit: per_page,
        offset,
    };
    let (items, total) = st.store.deliveries(t, &filter).await?;
    Ok(Json(DeliveryPage {
        items,
        total,
        page,
        per_page,
    }))
}
