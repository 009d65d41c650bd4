//! Device alerts: `/api/alerts/*` — rule CRUD (with the defaults every tenant starts with), the
//! alert history with acknowledge and silence, and the active count. The caller's own tenant; a
//! super admin names one with `?tenant_id=`. Rules are judged on every report at ingest
//! ([`crate::store::DeviceAlertStore`]).

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tod_core::alerts::{DeviceRule, Metric, Op, RuleScope, Severity};
use tod_core::{DeviceId, RuleId, TenantId};
use uuid::Uuid;

use super::{Body, PathParams, QueryParams, TenantQuery, TenantScope, own_tenant};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::{AlertFilter, AlertRule, DeviceAlert};

fn invalid(e: tod_core::alerts::ValidationError) -> ApiError {
    ApiError::unprocessable(e.to_string())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertRuleBody {
    /// 1–255 characters (required on create).
    #[serde(default)]
    name: Option<String>,
    /// `cpu_load`, `memory_used_pct`, `disk_used_pct`, `temperature`, `signal_strength`, `ccq`,
    /// `client_count` or `device_offline` (required on create).
    #[serde(default)]
    metric: Option<String>,
    /// `gt`, `lt`, `gte`, `lte` or `eq` (required on create; `device_offline` uses `eq` 1).
    #[serde(default)]
    operator: Option<String>,
    /// Threshold (required on create).
    #[serde(default)]
    threshold: Option<f64>,
    /// Consecutive breaching reports before it fires, 1–1000 (default 1).
    #[serde(default)]
    duration_polls: Option<u32>,
    /// `critical`, `warning` (default) or `info`.
    #[serde(default)]
    severity: Option<String>,
    /// One device of the tenant (overriding tenant-wide rules of the same metric for it), or
    /// `null` for every device.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>, format = Uuid)]
    device_id: Option<Option<DeviceId>>,
    /// One device group of the tenant (its members; tenant-wide rules still apply to them), or
    /// `null`. Not together with `device_id`.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>, format = Uuid)]
    group_id: Option<Option<tod_core::GroupId>>,
    /// Default true.
    #[serde(default)]
    enabled: Option<bool>,
}

impl AlertRuleBody {
    fn apply(self, mut rule: DeviceRule) -> Result<DeviceRule, ApiError> {
        if let Some(name) = self.name {
            super::check_name(&name)?;
            rule.name = name.trim().to_owned();
        }
        if let Some(m) = self.metric {
            rule.metric = m.parse::<Metric>().map_err(invalid)?;
        }
        if let Some(o) = self.operator {
            rule.op = o.parse::<Op>().map_err(invalid)?;
        }
        if let Some(t) = self.threshold {
            rule.threshold = t;
        }
        if let Some(n) = self.duration_polls {
            rule.duration_polls = n;
        }
        if let Some(s) = self.severity {
            rule.severity = s.parse::<Severity>().map_err(invalid)?;
        }
        let (mut device, mut group) = match rule.scope {
            RuleScope::Device(d) => (Some(d), None),
            RuleScope::Group(g) => (None, Some(g)),
            RuleScope::Tenant => (None, None),
        };
        if let Some(d) = self.device_id {
            device = d;
            if d.is_some() && self.group_id.is_none() {
                group = None;
            }
        }
        if let Some(g) = self.group_id {
            group = g;
            if g.is_some() && self.device_id.is_none() {
                device = None;
            }
        }
        rule.scope = match (device, group) {
            (Some(_), Some(_)) => return Err(ApiError::unprocessable("device_id and group_id: one or the other")),
            (Some(d), None) => RuleScope::Device(d),
            (None, Some(g)) => RuleScope::Group(g),
            (None, None) => RuleScope::Tenant,
        };
        if let Some(e) = self.enabled {
            rule.enabled = e;
        }
        rule.validate().map_err(invalid)?;
        Ok(rule)
    }
}

/// The tenant's rules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct RulePage {
    /// Defaults first, then by name.
    items: Vec<AlertRule>,
    /// How many.
    total: usize,
}

pub(super) async fn list_rules(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let items = st.store.alert_rules(own_tenant(scope, q.tenant_id)?).await?;
    Ok(Json(RulePage {
        total: items.len(),
        items,
    }))
}

pub(super) async fn get_rule(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.store.alert_rule(own_tenant(scope, q.tenant_id)?, id).await?))
}

pub(super) async fn create_rule(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<AlertRuleBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    for (field, given) in [
        ("name", body.name.is_some()),
        ("metric", body.metric.is_some()),
        ("operator", body.operator.is_some()),
        ("threshold", body.threshold.is_some()),
    ] {
        if !given {
            return Err(ApiError::unprocessable(format!("{field}: required")));
        }
    }
    let base = DeviceRule {
        id: RuleId(Uuid::new_v4()),
        name: String::new(),
        metric: Metric::CpuLoad,
        op: Op::Gt,
        threshold: 0.0,
        duration_polls: 1,
        severity: Severity::Warning,
        scope: RuleScope::Tenant,
        enabled: true,
        is_default: false,
    };
    let rule = body.apply(base)?;
    let created = st.store.create_alert_rule(t, &rule, Utc::now()).await?;
    let details = serde_json::json!({ "name": created.name, "metric": created.metric, "operator": created.operator, "threshold": created.threshold, "enabled": created.enabled, "device_id": created.device_id, "group_id": created.group_id });
    super::audit_change(
        &st,
        &caller,
        t,
        "alert_rule.created",
        ("alert_rule", created.id.to_string()),
        details,
    )
    .await;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn stored_rule(st: &AppState, t: TenantId, id: Uuid) -> Result<DeviceRule, ApiError> {
    st.store
        .alert_rule(t, id)
        .await?
        .to_rule()
        .ok_or_else(|| ApiError::internal("stored alert rule is not readable"))
}

pub(super) async fn update_rule(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<AlertRuleBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let rule = body.apply(stored_rule(&st, t, id).await?)?;
    let saved = st.store.update_alert_rule(t, &rule, Utc::now()).await?;
    let details = serde_json::json!({ "name": saved.name, "metric": saved.metric, "operator": saved.operator, "threshold": saved.threshold, "enabled": saved.enabled, "device_id": saved.device_id, "group_id": saved.group_id });
    super::audit_change(
        &st,
        &caller,
        t,
        "alert_rule.updated",
        ("alert_rule", id.to_string()),
        details,
    )
    .await;
    Ok(Json(saved))
}

/// A rule's new state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Toggled {
    /// The rule.
    id: Uuid,
    /// Whether it is now enabled.
    enabled: bool,
}

pub(super) async fn toggle_rule(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let mut rule = stored_rule(&st, t, id).await?;
    rule.enabled = !rule.enabled;
    let saved = st.store.update_alert_rule(t, &rule, Utc::now()).await?;
    let details = serde_json::json!({ "enabled": saved.enabled });
    super::audit_change(
        &st,
        &caller,
        t,
        "alert_rule.toggled",
        ("alert_rule", id.to_string()),
        details,
    )
    .await;
    Ok(Json(Toggled {
        id: saved.id,
        enabled: saved.enabled,
    }))
}

pub(super) async fn delete_rule(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let gone = st.store.alert_rule(t, id).await?;
    st.store.delete_alert_rule(t, id, Utc::now()).await?;
    let details = serde_json::json!({ "name": gone.name, "metric": gone.metric });
    super::audit_change(
        &st,
        &caller,
        t,
        "alert_rule.deleted",
        ("alert_rule", id.to_string()),
        details,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertQuery {
    /// The tenant (super admins only).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    tenant_id: Option<TenantId>,
    /// `firing`, `flapping` or `resolved`.
    #[serde(default)]
    status: Option<String>,
    /// `critical`, `warning` or `info`.
    #[serde(default)]
    severity: Option<String>,
    /// One device.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    device_id: Option<DeviceId>,
    /// One rule.
    #[serde(default)]
    rule_id: Option<Uuid>,
    /// Fired at or after (RFC 3339).
    #[serde(default)]
    start_date: Option<DateTime<Utc>>,
    /// Fired at or before (RFC 3339).
    #[serde(default)]
    end_date: Option<DateTime<Utc>>,
    /// From 1 (default 1).
    #[serde(default)]
    page: Option<i64>,
    /// 1–200 (default 50).
    #[serde(default)]
    per_page: Option<i64>,
}

/// A page of the alert history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AlertPage {
    /// Newest first.
    items: Vec<DeviceAlert>,
    /// All alerts matching the filters.
    total: i64,
    /// This page.
    page: i64,
    /// Its size.
    per_page: i64,
}

pub(super) async fn list_alerts(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<AlertQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let (page, per_page, offset) = super::numbered_page(q.page, q.per_page)?;
    if let Some(s) = q.status.as_deref()
        && !matches!(s, "firing" | "flapping" | "resolved")
    {
        return Err(ApiError::unprocessable("status: firing, flapping or resolved"));
    }
    if let Some(s) = q.severity.as_deref() {
        s.parse::<Severity>().map_err(invalid)?;
    }
    let filter = AlertFilter {
        status: q.status.as_deref(),
        severity: q.severity.as_deref(),
        device: q.device_id,
        rule: q.rule_id,
        from: q.start_date,
        to: q.end_date,
        limit: per_page,
        offset,
    };
    let (items, total) = st.store.device_alerts(t, filter).await?;
    Ok(Json(AlertPage {
        items,
        total,
        page,
        per_page,
    }))
}

/// Open alerts that are not silenced.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ActiveCount {
    /// How many.
    count: i64,
}

pub(super) async fn active_count(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let count = st
        .store
        .active_alert_count(own_tenant(scope, q.tenant_id)?, Utc::now())
        .await?;
    Ok(Json(ActiveCount { count }))
}

pub(super) async fn acknowledge(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let by = caller.user_id().map(|u| u.0);
    let alert = st.store.acknowledge_alert(t, id, by, Utc::now()).await?;
    let details = serde_json::json!({ "device_id": alert.device_id, "message": alert.message });
    super::audit_change(
        &st,
        &caller,
        t,
        "alert.acknowledged",
        ("alert", id.to_string()),
        details,
    )
    .await;
    Ok(Json(alert))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SilenceBody {
    /// Minutes, 1 to 43 200 (30 days).
    duration_minutes: i64,
}

pub(super) async fn silence(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<SilenceBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    if !(1..=43_200).contains(&body.duration_minutes) {
        return Err(ApiError::unprocessable("duration_minutes: 1 to 43200"));
    }
    let until = Utc::now() + Duration::minutes(body.duration_minutes);
    let alert = st.store.silence_alert(t, id, until).await?;
    let details = serde_json::json!({ "device_id": alert.device_id, "until": until });
    super::audit_change(&st, &caller, t, "alert.silenced", ("alert", id.to_string()), details).await;
    Ok(Json(alert))
}
