//! Site alert rules: `/api/tenants/{tenant_id}/sites/{site_id}/alert-rules`. Type, unit,
//! threshold range and the sector requirement are tod-core's [`SiteRule::validate`]; the site
//! and sector must be the tenant's and the sector at the site (the original checked neither).
//! Disabling, retargeting or deleting a rule resolves its active events.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tod_core::alerts::{SiteRule, site::DEFAULT_SITE_HYSTERESIS};
use tod_core::{RuleId, SectorId, SiteId, TenantId};
use uuid::Uuid;

use super::{Body, PathParams, QueryParams, TenantScope, tenant};
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::SiteAlertRule;

/// Longest description accepted.
const MAX_DESCRIPTION: usize = 2_000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleBody {
    /// 1–255 characters (required on create).
    #[serde(default)]
    name: Option<String>,
    /// `device_offline_percent`, `device_offline_count`, `sector_signal_avg`, `sector_client_drop`
    /// or `signal_degradation` (required on create).
    #[serde(default)]
    rule_type: Option<String>,
    /// The threshold (required on create): a percentage below 100, a whole device count, a
    /// signal level from -120 to 0 dBm, or a drop of up to 60 dB.
    #[serde(default)]
    threshold_value: Option<f64>,
    /// `percent`, `count` or `dBm`: the unit of the rule type (required on create).
    #[serde(default)]
    threshold_unit: Option<String>,
    /// A sector at this site (required by the sector types); `null` makes the rule site-wide.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>, format = Uuid)]
    sector_id: Option<Option<Uuid>>,
    /// Free text, up to 2 000 characters; `null` clears it.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    /// Default true.
    #[serde(default)]
    enabled: Option<bool>,
    /// Passes in a row with the condition met before an event is raised (1–1000, default 2).
    #[serde(default)]
    fire_after: Option<u32>,
    /// Passes in a row without it before the event resolves (1–1000, default 2).
    #[serde(default)]
    clear_after: Option<u32>,
}

impl RuleBody {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.rule_type.is_none()
            && self.threshold_value.is_none()
            && self.threshold_unit.is_none()
            && self.sector_id.is_none()
            && self.description.is_none()
            && self.enabled.is_none()
            && self.fire_after.is_none()
            && self.clear_after.is_none()
    }

    /// The rule this body makes of `base` (a new rule's defaults, or the stored one), validated,
    /// with its description.
    fn apply(self, mut rule: SiteRule, description: Option<String>) -> Result<(SiteRule, Option<String>), ApiError> {
        let invalid = |e: tod_core::alerts::ValidationError| ApiError::unprocessable(e.to_string());
        if let Some(name) = self.name {
            super::check_name(&name)?;
            rule.name = name.trim().to_owned();
        }
        if let Some(kind) = self.rule_type {
            rule.kind = kind.parse().map_err(invalid)?;
        }
        if let Some(t) = self.threshold_value {
            rule.threshold = t;
        }
        if let Some(unit) = self.threshold_unit {
            rule.unit = unit.parse().map_err(invalid)?;
        }
        if let Some(sector) = self.sector_id {
            rule.sector = sector.map(SectorId);
        }
        if let Some(enabled) = self.enabled {
            rule.enabled = enabled;
        }
        if let Some(n) = self.fire_after {
            rule.hysteresis.fire_after = n;
        }
        if let Some(n) = self.clear_after {
            rule.hysteresis.clear_after = n;
        }
        let description = match self.description {
            Some(d) => d,
            None => description,
        };
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            return Err(ApiError::unprocessable("description: at most 2000 characters"));
        }
        rule.validate().map_err(invalid)?;
        Ok((rule, description))
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleQuery {
    /// Only this sector's rules.
    #[serde(default)]
    sector_id: Option<Uuid>,
}

/// A site's rules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct RulePage {
    /// Newest first.
    items: Vec<SiteAlertRule>,
    /// How many.
    total: usize,
}

pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, site)): PathParams<(TenantId, SiteId)>,
    QueryParams(q): QueryParams<RuleQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let items = st.store.site_rules(tenant(scope)?, site, q.sector_id).await?;
    Ok(Json(RulePage {
        total: items.len(),
        items,
    }))
}

pub(super) async fn get(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, site, id)): PathParams<(TenantId, SiteId, Uuid)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.store.site_rule(tenant(scope)?, site, id).await?))
}

pub(super) async fn create(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    PathParams((_, site)): PathParams<(TenantId, SiteId)>,
    Body(body): Body<RuleBody>,
) -> Result<impl IntoResponse, ApiError> {
    for (field, given) in [
        ("name", body.name.is_some()),
        ("rule_type", body.rule_type.is_some()),
        ("threshold_value", body.threshold_value.is_some()),
        ("threshold_unit", body.threshold_unit.is_some()),
    ] {
        if !given {
            return Err(ApiError::unprocessable(format!("{field}: required")));
        }
    }
    let base = SiteRule {
        id: RuleId(Uuid::new_v4()),
        site,
        sector: None,
        kind: tod_core::alerts::SiteRuleKind::DeviceOfflinePercent,
        name: String::new(),
        threshold: 0.0,
        unit: tod_core::alerts::ThresholdUnit::Percent,
        enabled: true,
        hysteresis: DEFAULT_SITE_HYSTERESIS,
    };
    let (rule, description) = body.apply(base, None)?;
    let t = tenant(scope)?;
    let created = st
        .store
        .create_site_rule(t, &rule, description.as_deref(), Utc::now())
        .await?;
    let details = serde_json::json!({ "site_id": site, "name": created.name, "rule_type": created.rule_type,
                                      "threshold": created.threshold_value, "enabled": created.enabled });
    super::audit_change(
        &st,
        &caller,
        t,
        "site_alert_rule.created",
        ("site_alert_rule", created.id.to_string()),
        details,
    )
    .await;
    Ok((StatusCode::CREATED, Json(created)))
}

pub(super) async fn update(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    PathParams((_, site, id)): PathParams<(TenantId, SiteId, Uuid)>,
    Body(body): Body<RuleBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    let current = st.store.site_rule(t, site, id).await?;
    if body.is_empty() {
        return Ok(Json(current));
    }
    let Some(rule) = current.to_rule() else {
        return Err(ApiError::internal("stored alert rule is not readable"));
    };
    let (rule, description) = body.apply(rule, current.description)?;
    let updated = st
        .store
        .update_site_rule(t, &rule, description.as_deref(), Utc::now())
        .await?;
    let details = serde_json::json!({ "site_id": site, "name": updated.name, "rule_type": updated.rule_type,
                                      "threshold": updated.threshold_value, "enabled": updated.enabled });
    super::audit_change(
        &st,
        &caller,
        t,
        "site_alert_rule.updated",
        ("site_alert_rule", id.to_string()),
        details,
    )
    .await;
    Ok(Json(updated))
}

pub(super) async fn delete(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<crate::auth::Caller>,
    PathParams((_, site, id)): PathParams<(TenantId, SiteId, Uuid)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    st.store.delete_site_rule(t, site, id, Utc::now()).await?;
    let details = serde_json::json!({ "site_id": site });
    super::audit_change(
        &st,
        &caller,
        t,
        "site_alert_rule.deleted",
        ("site_alert_rule", id.to_string()),
        details,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
