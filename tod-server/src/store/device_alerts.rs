//! Device alert rules, the alerts they raise and their evaluation at ingest.
//!
//! Every stored report is judged in the ingest transaction by tod-core's [`DeviceRuleEngine`]
//! against the tenant's enabled rules, at the time the report was collected (a backfill after an
//! outage dates its alerts when they happened). Hysteresis and flapping state per device is kept
//! in `alert_state` (tod-core's [`TrackState`] as JSON) and committed with the report, so any
//! replica can take the next batch and a redelivered batch changes nothing. One alert is one row
//! from fire to resolve. Written once for both backends; [`impl_device_alerts!`] expands in each.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::alerts::{DeviceRule, Metric, Op, ResolveReason, RuleScope, Severity};
use tod_core::{DeviceId, GroupId, RuleId, TenantId};
use uuid::Uuid;

use super::StoreError;

/// A device alert rule.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertRule {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// Tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// The one device it covers (overriding tenant-wide rules of the same metric for it), or
    /// none for every device of the tenant.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub device_id: Option<DeviceId>,
    /// The device group it covers (tenant-wide rules still apply to the group's devices), or none.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub group_id: Option<GroupId>,
    /// Name.
    pub name: String,
    /// `cpu_load`, `memory_used_pct`, `disk_used_pct`, `temperature`, `signal_strength`, `ccq`,
    /// `client_count` or `device_offline`.
    pub metric: String,
    /// `gt`, `lt`, `gte`, `lte` or `eq`.
    pub operator: String,
    /// Threshold.
    pub threshold: f64,
    /// Consecutive breaching reports before it fires.
    pub duration_polls: u32,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    /// Disabled rules are not evaluated; disabling resolves their alerts.
    pub enabled: bool,
    /// One of the rules every tenant starts with: it can be changed or disabled, not deleted.
    pub is_default: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl AlertRule {
    /// The domain rule; `None` for a row no validation would have let in.
    pub fn to_rule(&self) -> Option<DeviceRule> {
        Some(DeviceRule {
            id: RuleId(self.id),
            name: self.name.clone(),
            metric: self.metric.parse().ok()?,
            op: self.operator.parse().ok()?,
            threshold: self.threshold,
            duration_polls: self.duration_polls,
            severity: self.severity.parse().ok()?,
            scope: match (self.device_id, self.group_id) {
                (Some(d), _) => RuleScope::Device(d),
                (None, Some(g)) => RuleScope::Group(g),
                (None, None) => RuleScope::Tenant,
            },
            enabled: self.enabled,
            is_default: self.is_default,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AlertRuleRow {
    id: Uuid,
    tenant_id: Uuid,
    device_id: Option<Uuid>,
    name: String,
    metric: String,
    operator: String,
    threshold: f64,
    duration_polls: i32,
    severity: String,
    enabled: bool,
    is_default: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    group_id: Option<Uuid>,
}

impl From<AlertRuleRow> for AlertRule {
    fn from(r: AlertRuleRow) -> Self {
        Self {
            id: r.id,
            tenant_id: TenantId(r.tenant_id),
            device_id: r.device_id.map(DeviceId),
            group_id: r.group_id.map(GroupId),
            name: r.name,
            metric: r.metric,
            operator: r.operator,
            threshold: r.threshold,
            duration_polls: u32::try_from(r.duration_polls).unwrap_or(1),
            severity: r.severity,
            enabled: r.enabled,
            is_default: r.is_default,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub(crate) const ALERT_RULE_COLUMNS: &str = "id, tenant_id, device_id, name, metric, operator, threshold, \
     duration_polls, severity, enabled, is_default, created_at, updated_at, group_id";

/// A device alert, from fire to resolve.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct DeviceAlert {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// The rule that raised it (kept after the rule is deleted).
    pub rule_id: Option<Uuid>,
    /// The device.
    pub device_id: Uuid,
    /// The device's name.
    pub hostname: String,
    /// `firing`, `flapping` (breaching on and off; notifications held) or `resolved`.
    pub status: String,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    /// The metric.
    pub metric: Option<String>,
    /// The value that fired it (latest while open).
    pub value: Option<f64>,
    /// The rule's threshold.
    pub threshold: Option<f64>,
    /// What an operator reads.
    pub message: String,
    /// When someone acknowledged it.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who.
    pub acknowledged_by: Option<Uuid>,
    /// Not counted as active until then.
    pub silenced_until: Option<DateTime<Utc>>,
    /// Fired (the report's collection time).
    pub fired_at: DateTime<Utc>,
    /// Resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// `cleared`, `rule_disabled`, `rule_changed`, `rule_deleted`, `subject_gone` or `manual`.
    pub resolve_reason: Option<String>,
    /// The incident it belongs to: an alert of one rule at one site that fires within
    /// [`INCIDENT_POLLS`] of its device's poll intervals after an open alert of another device
    /// joins that one's incident (a mass reboot, rain over a tower). An alert alone is its own
    /// incident. Notifications go per incident: its first alert's firing, its last one's end.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub incident_id: Option<Uuid>,
}

/// How many poll intervals after an open alert of another device a new alert of the same rule at
/// the same site still joins its incident: long enough for the devices a cause hits to cross the
/// threshold one after another (rain deepening, noise around the threshold), short enough that
/// one device's long-standing alert does not swallow a new cause.
pub const INCIDENT_POLLS: i32 = 30;

pub(crate) const DEVICE_ALERT_SELECT: &str = "SELECT e.id, e.tenant_id, e.rule_id, e.device_id, d.name AS hostname, \
     e.status, e.severity, e.metric, e.value, e.threshold, e.message, e.acknowledged_at, e.acknowledged_by, \
     e.silenced_until, e.fired_at, e.resolved_at, e.resolve_reason, e.incident_id \
     FROM alert_events e JOIN devices d ON d.id = e.device_id";

/// Filters of the alert history.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AlertFilter<'a> {
    /// `firing`, `flapping` or `resolved`.
    pub status: Option<&'a str>,
    /// Severity.
    pub severity: Option<&'a str>,
    /// One device.
    pub device: Option<DeviceId>,
    /// One rule.
    pub rule: Option<Uuid>,
    /// Fired at or after.
    pub from: Option<DateTime<Utc>>,
    /// Fired at or before.
    pub to: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

/// The stored name of a resolve reason.
pub(crate) fn reason_str(r: ResolveReason) -> &'static str {
    match r {
        ResolveReason::Cleared => "cleared",
        ResolveReason::RuleDisabled => "rule_disabled",
        ResolveReason::RuleDeleted => "rule_deleted",
        ResolveReason::SubjectGone => "subject_gone",
        ResolveReason::Manual => "manual",
    }
}

/// Whether a change to a rule keeps its open alerts meaningful (else they are resolved).
pub(crate) fn same_test(a: &AlertRule, b: &DeviceRule) -> bool {
    a.enabled
        && b.enabled
        && a.metric == b.metric.as_str()
        && a.operator == b.op.as_str()
        && a.threshold == b.threshold
        && a.device_id == scope_device(b)
        && a.group_id == scope_group(b)
}

/// The group column of a rule's scope.
pub(crate) fn scope_group(rule: &DeviceRule) -> Option<GroupId> {
    match rule.scope {
        RuleScope::Group(g) => Some(g),
        RuleScope::Device(_) | RuleScope::Tenant => None,
    }
}

/// The device column of a rule's scope.
pub(crate) fn scope_device(rule: &DeviceRule) -> Option<DeviceId> {
    match rule.scope {
        RuleScope::Device(d) => Some(d),
        RuleScope::Group(_) | RuleScope::Tenant => None,
    }
}

/// `(metric, operator, severity)` names, for binding.
pub(crate) fn rule_names(rule: &DeviceRule) -> (&'static str, &'static str, &'static str) {
    (
        Metric::as_str(rule.metric),
        Op::as_str(rule.op),
        Severity::as_str(rule.severity),
    )
}

/// Storage for device alert rules and alerts.
#[async_trait::async_trait]
pub trait DeviceAlertStore: Send + Sync {
    /// Creates a rule (validated by the caller); a device rule's device must be the tenant's.
    async fn create_alert_rule(
        &self,
        tenant: TenantId,
        rule: &DeviceRule,
        now: DateTime<Utc>,
    ) -> Result<AlertRule, StoreError>;
    /// The tenant's rules: defaults first, then by name.
    async fn alert_rules(&self, tenant: TenantId) -> Result<Vec<AlertRule>, StoreError>;
    /// One rule.
    async fn alert_rule(&self, tenant: TenantId, id: Uuid) -> Result<AlertRule, StoreError>;
    /// Replaces a rule's definition; disabling it or changing what it tests resolves its open
    /// alerts in the same transaction.
    async fn update_alert_rule(
        &self,
        tenant: TenantId,
        rule: &DeviceRule,
        now: DateTime<Utc>,
    ) -> Result<AlertRule, StoreError>;
    /// Deletes a rule (not a default one: 422) and resolves its open alerts.
    async fn delete_alert_rule(&self, tenant: TenantId, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// The alert history, newest first, and how many match.
    async fn device_alerts(
        &self,
        tenant: TenantId,
        filter: AlertFilter<'_>,
    ) -> Result<(Vec<DeviceAlert>, i64), StoreError>;
    /// Acknowledges an alert.
    async fn acknowledge_alert(
        &self,
        tenant: TenantId,
        id: Uuid,
        by: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<DeviceAlert, StoreError>;
    /// Silences an open alert until `until`.
    async fn silence_alert(&self, tenant: TenantId, id: Uuid, until: DateTime<Utc>) -> Result<DeviceAlert, StoreError>;
    /// Open alerts not silenced at `now`.
    async fn active_alert_count(&self, tenant: TenantId, now: DateTime<Utc>) -> Result<i64, StoreError>;
}

macro_rules! impl_device_alert_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl DeviceAlertStore for $store {
            async fn create_alert_rule(
                &self,
                tenant: TenantId,
                rule: &DeviceRule,
                now: DateTime<Utc>,
            ) -> Result<AlertRule, StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                device_of_tenant(&mut tx, tenant, scope_device(rule)).await?;
                group_of_tenant(&mut tx, tenant, scope_group(rule)).await?;
                let row = insert_alert_rule(&mut tx, tenant, rule, micros(now)).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(row)
            }

            async fn alert_rules(&self, tenant: TenantId) -> Result<Vec<AlertRule>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<AlertRuleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ALERT_RULE_COLUMNS} FROM alert_rules WHERE tenant_id = $1 \
                     ORDER BY is_default DESC, name, id"
                )))
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(AlertRule::from).collect())
            }

            async fn alert_rule(&self, tenant: TenantId, id: Uuid) -> Result<AlertRule, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                get_alert_rule(&mut tx, tenant, id).await
            }

            async fn update_alert_rule(
                &self,
                tenant: TenantId,
                rule: &DeviceRule,
                now: DateTime<Utc>,
            ) -> Result<AlertRule, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let before = get_alert_rule(&mut tx, tenant, rule.id.0).await?;
                device_of_tenant(&mut tx, tenant, scope_device(rule)).await?;
                group_of_tenant(&mut tx, tenant, scope_group(rule)).await?;
                let (metric, op, severity) = rule_names(rule);
                let row: AlertRuleRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE alert_rules SET device_id = $3, name = $4, metric = $5, operator = $6, threshold = $7, \
                     duration_polls = $8, severity = $9, enabled = $10, updated_at = $11, group_id = $12 \
                     WHERE tenant_id = $1 AND id = $2 RETURNING {ALERT_RULE_COLUMNS}"
                )))
                .bind(tenant.0)
                .bind(rule.id.0)
                .bind(scope_device(rule).map(|d| d.0))
                .bind(rule.name.trim())
                .bind(metric)
                .bind(op)
                .bind(rule.threshold)
                .bind(rule.duration_polls as i32)
                .bind(severity)
                .bind(rule.enabled)
                .bind(now)
                .bind(scope_group(rule).map(|g| g.0))
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                if !same_test(&before, rule) {
                    let reason = if rule.enabled {
                        "rule_changed"
                    } else {
                        reason_str(ResolveReason::RuleDisabled)
                    };
                    resolve_rule_alerts(&mut tx, tenant, rule.id.0, reason, now).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(row.into())
            }

            async fn delete_alert_rule(&self, tenant: TenantId, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let rule = get_alert_rule(&mut tx, tenant, id).await?;
                if rule.is_default {
                    return Err(StoreError::Invalid(
                        "Cannot delete default alert rules. Disable them instead.".into(),
                    ));
                }
                sqlx::query("DELETE FROM alert_rules WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                resolve_rule_alerts(&mut tx, tenant, id, reason_str(ResolveReason::RuleDeleted), micros(now)).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn device_alerts(
                &self,
                tenant: TenantId,
                f: AlertFilter<'_>,
            ) -> Result<(Vec<DeviceAlert>, i64), StoreError> {
                const WHERE: &str = " WHERE e.tenant_id = $1 AND ($2 IS NULL OR e.status = $2) \
                     AND ($3 IS NULL OR e.severity = $3) AND ($4 IS NULL OR e.device_id = $4) \
                     AND ($5 IS NULL OR e.rule_id = $5) AND ($6 IS NULL OR e.fired_at >= $6) \
                     AND ($7 IS NULL OR e.fired_at <= $7)";
                let mut tx = self.tx(Some(tenant)).await?;
                let items: Vec<DeviceAlert> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{DEVICE_ALERT_SELECT}{WHERE} ORDER BY e.fired_at DESC, e.id LIMIT $8 OFFSET $9"
                )))
                .bind(tenant.0)
                .bind(f.status)
                .bind(f.severity)
                .bind(f.device.map(|d| d.0))
                .bind(f.rule)
                .bind(f.from.map(micros))
                .bind(f.to.map(micros))
                .bind(f.limit)
                .bind(f.offset)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM alert_events e{WHERE}"
                )))
                .bind(tenant.0)
                .bind(f.status)
                .bind(f.severity)
                .bind(f.device.map(|d| d.0))
                .bind(f.rule)
                .bind(f.from.map(micros))
                .bind(f.to.map(micros))
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok((items, total))
            }

            async fn acknowledge_alert(
                &self,
                tenant: TenantId,
                id: Uuid,
                by: Option<Uuid>,
                now: DateTime<Utc>,
            ) -> Result<DeviceAlert, StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let done = sqlx::query(
                    "UPDATE alert_events SET acknowledged_at = $3, acknowledged_by = $4 WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(micros(now))
                .bind(by)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("alert"));
                }
                let alert = get_device_alert(&mut tx, tenant, id).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(alert)
            }

            async fn silence_alert(&self, tenant: TenantId, id: Uuid, until: DateTime<Utc>) -> Result<DeviceAlert, StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let done = sqlx::query(
                    "UPDATE alert_events SET silenced_until = $3 WHERE tenant_id = $1 AND id = $2 AND resolved_at IS NULL",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(micros(until))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("open alert"));
                }
                let alert = get_device_alert(&mut tx, tenant, id).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(alert)
            }

            async fn active_alert_count(&self, tenant: TenantId, now: DateTime<Utc>) -> Result<i64, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM alert_events WHERE tenant_id = $1 AND resolved_at IS NULL \
                     AND (silenced_until IS NULL OR silenced_until < $2)",
                )
                .bind(tenant.0)
                .bind(micros(now))
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)
            }
        }
    };
}
pub(crate) use impl_device_alert_store;

/// Free functions over a backend's transaction: seeding, lookups, and the evaluation of a batch.
macro_rules! impl_device_alerts {
    () => {
        async fn insert_alert_rule(
            tx: &mut Tx,
            tenant: TenantId,
            rule: &DeviceRule,
            now: DateTime<Utc>,
        ) -> Result<AlertRule, StoreError> {
            let (metric, op, severity) = rule_names(rule);
            let row: AlertRuleRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "INSERT INTO alert_rules ({ALERT_RULE_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13) RETURNING {ALERT_RULE_COLUMNS}"
            )))
            .bind(rule.id.0)
            .bind(tenant.0)
            .bind(scope_device(rule).map(|d| d.0))
            .bind(rule.name.trim())
            .bind(metric)
            .bind(op)
            .bind(rule.threshold)
            .bind(rule.duration_polls as i32)
            .bind(severity)
            .bind(rule.enabled)
            .bind(rule.is_default)
            .bind(now)
            .bind(scope_group(rule).map(|g| g.0))
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
            Ok(row.into())
        }

        /// The default rules a new tenant starts with.
        async fn seed_default_rules(tx: &mut Tx, tenant: TenantId, now: DateTime<Utc>) -> Result<(), StoreError> {
            for d in tod_core::alerts::device::default_rules() {
                insert_alert_rule(tx, tenant, &d.into_rule(RuleId(Uuid::new_v4())), now).await?;
            }
            Ok(())
        }

        async fn get_alert_rule(tx: &mut Tx, tenant: TenantId, id: Uuid) -> Result<AlertRule, StoreError> {
            let row: Option<AlertRuleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ALERT_RULE_COLUMNS} FROM alert_rules WHERE tenant_id = $1 AND id = $2"
            )))
            .bind(tenant.0)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
            row.map(AlertRule::from).ok_or(StoreError::NotFound("alert rule"))
        }

        async fn get_device_alert(tx: &mut Tx, tenant: TenantId, id: Uuid) -> Result<DeviceAlert, StoreError> {
            let row: Option<DeviceAlert> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{DEVICE_ALERT_SELECT} WHERE e.tenant_id = $1 AND e.id = $2"
            )))
            .bind(tenant.0)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
            row.ok_or(StoreError::NotFound("alert"))
        }

        async fn group_of_tenant(tx: &mut Tx, tenant: TenantId, group: Option<GroupId>) -> Result<(), StoreError> {
            let Some(group) = group else { return Ok(()) };
            let found: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM device_groups WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(group.0)
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
            found
                .map(|_| ())
                .ok_or_else(|| StoreError::Invalid("group_id: not a device group of this tenant".into()))
        }

        async fn device_of_tenant(tx: &mut Tx, tenant: TenantId, device: Option<DeviceId>) -> Result<(), StoreError> {
            let Some(device) = device else { return Ok(()) };
            let found: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM devices WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(device.0)
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
            found.map(|_| ()).ok_or(StoreError::NotFound("device"))
        }

        async fn resolve_rule_alerts(
            tx: &mut Tx,
            tenant: TenantId,
            rule: Uuid,
            reason: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE alert_events SET status = 'resolved', resolved_at = $3, resolve_reason = $4 \
                 WHERE tenant_id = $1 AND rule_id = $2 AND resolved_at IS NULL",
            )
            .bind(tenant.0)
            .bind(rule)
            .bind(now)
            .bind(reason)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
            Ok(())
        }

        /// Judges every report of `batch` (devices at `site`, named in `names`) against the
        /// tenant's enabled rules and records what changed, in the ingest transaction.
        async fn evaluate_device_alerts(
            tx: &mut Tx,
            tenant: TenantId,
            site: SiteId,
            names: &std::collections::HashMap<Uuid, String>,
            batch: &tod_core::telemetry::Batch,
            now: DateTime<Utc>,
            stream: &mut Vec<StreamItem>,
        ) -> Result<(), StoreError> {
            use std::collections::{BTreeSet, HashMap, HashSet};
            use tod_core::alerts::{AlertEvent, DeviceRuleEngine, FlapPolicy, Metrics, Subject, TrackState};
            use tod_core::alerts::device::DeviceContext;

            let rows: Vec<AlertRuleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ALERT_RULE_COLUMNS} FROM alert_rules WHERE tenant_id = $1 AND enabled = $2"
            )))
            .bind(tenant.0)
            .bind(true)
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
            let rules: Vec<DeviceRule> = rows.into_iter().filter_map(|r| AlertRule::from(r).to_rule()).collect();
            let has_group_rules = rules.iter().any(|r| matches!(r.scope, tod_core::alerts::RuleScope::Group(_)));
            if rules.is_empty() {
                return Ok(());
            }
            let live: HashSet<RuleId> = rules.iter().map(|r| r.id).collect();
            let by_id: HashMap<RuleId, (Metric, f64)> = rules.iter().map(|r| (r.id, (r.metric, r.threshold))).collect();
            let touched: BTreeSet<DeviceId> = batch.reports.iter().map(|r| r.device_id).collect();
            // The reporting devices' stored state (the batch's devices are the site's, checked).
            let ids: Vec<&DeviceId> = touched.iter().collect();
            let mut states: Vec<(Uuid, String)> = Vec::new();
            for chunk in ids.chunks(500) {
                let sql = format!(
                    "SELECT device_id, tracks FROM alert_state WHERE tenant_id = $1 AND device_id IN ({})",
                    $crate::store::fleet::placeholders(2, chunk.len())
                );
                let mut q = sqlx::query_as::<_, (Uuid, String)>(sqlx::AssertSqlSafe(sql)).bind(tenant.0);
                for d in chunk {
                    q = q.bind(d.0);
                }
                states.extend(q.fetch_all(&mut **tx).await.map_err(map_err)?);
            }
            let mut engine = DeviceRuleEngine::new(rules, FlapPolicy::default());
            let mut stored: HashMap<DeviceId, String> = HashMap::new();
            // Each device's last observation before this batch (of a rule it was breaching or
            // recovering from): the gap to it is the device's poll interval as the data has it.
            let mut observed: HashMap<DeviceId, DateTime<Utc>> = HashMap::new();
            for (device, json) in states {
                let device = DeviceId(device);
                let tracks: Vec<TrackState> = serde_json::from_str(&json).unwrap_or_else(|e| {
                    tracing::warn!(%device, error = %e, "unreadable alert state; counting afresh");
                    Vec::new()
                });
                if let Some(last) = tracks.iter().flat_map(|t| [t.last_hit, t.last_clean]).flatten().max() {
                    observed.insert(device, last);
                }
                // Tracks of rules deleted or disabled since: the API resolved their alerts.
                let tracks = tracks.into_iter().filter(|t| live.contains(&t.rule)).collect();
                engine.book_mut().import_subject(Subject::Device(device), tracks);
                stored.insert(device, json);
            }
            // Windows in effect at any report's time (a backlog is judged as of when it was
            // collected, so a window that has ended since still holds back what it covered).
            let times = batch.reports.iter().map(|r| r.collected_at);
            let windows = match (times.clone().min(), times.max()) {
                (Some(from), Some(to)) => windows_in(tx, tenant, from, to).await?,
                _ => Vec::new(),
            };
            // Group memberships of the site's devices, for group rules.
            let mut groups: HashMap<DeviceId, Vec<tod_core::GroupId>> = HashMap::new();
            if has_group_rules {
                let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
                    "SELECT m.device_id, m.set_id FROM device_group_members m JOIN devices d ON d.id = m.device_id \
                     WHERE m.tenant_id = $1 AND d.site_id = $2",
                )
                .bind(tenant.0)
                .bind(site.0)
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?;
                for (d, g) in rows {
                    groups.entry(DeviceId(d)).or_default().push(tod_core::GroupId(g));
                }
            }
            let mut events = Vec::new();
            for r in &batch.reports {
                let hostname = names.get(&r.device_id.0).map_or("", String::as_str);
                let ctx = DeviceContext {
                    id: r.device_id,
                    hostname,
                    site: Some(site),
                    groups: groups.get(&r.device_id).map_or(&[], Vec::as_slice),
                };
                events.extend(engine.evaluate(ctx, &Metrics::from_report(r), micros(r.collected_at), &windows));
            }
            let mut held_back = Vec::new();
            for e in &events {
                match e {
                    AlertEvent::Fired { alert } => {
                        let Subject::Device(device) = alert.subject else { continue };
                        let (metric, threshold) = by_id
                            .get(&alert.rule)
                            .map_or((None, None), |(m, t)| (Some(m.as_str()), Some(*t)));
                        let status = match alert.state {
                            tod_core::alerts::AlertState::Flapping => "flapping",
                            _ => "firing",
                        };
                        // The incident: the latest of this rule at this site with an alert of
                        // another device still open that fired within INCIDENT_POLLS of this
                        // device's poll intervals before; else a new one. (A device firing again
                        // after its own alert resolved is news, and is announced.)
                        let id = Uuid::new_v4();
                        let gap = observed
                            .get(&device)
                            .map(|prev| alert.fired_at - *prev)
                            .filter(|g| *g > chrono::Duration::zero());
                        let joined: Option<Uuid> = match gap {
                            Some(gap) => sqlx::query_scalar(
                                "SELECT e.incident_id FROM alert_events e JOIN devices d ON d.id = e.device_id \
                                 WHERE e.tenant_id = $1 AND e.rule_id = $2 AND d.tenant_id = $1 AND d.site_id = $3 \
                                 AND e.fired_at >= $4 AND e.fired_at <= $5 AND e.incident_id IS NOT NULL \
                                 AND e.resolved_at IS NULL AND e.device_id <> $6 \
                                 ORDER BY e.fired_at DESC LIMIT 1",
                            )
                            .bind(tenant.0)
                            .bind(alert.rule.0)
                            .bind(site.0)
                            .bind(micros(alert.fired_at - gap * $crate::store::device_alerts::INCIDENT_POLLS))
                            .bind(micros(alert.fired_at + gap * 2))
                            .bind(device.0)
                            .fetch_optional(&mut **tx)
                            .await
                            .map_err(map_err)?,
                            None => None,
                        };
                        let incident = joined.unwrap_or(id);
                        stream.push(StreamItem {
                            kind: "alert.fired",
                            data: serde_json::json!({
                                "device_id": device, "hostname": names.get(&device.0), "rule_id": alert.rule,
                                "status": status, "severity": alert.severity.as_str(), "metric": metric,
                                "value": alert.value, "threshold": threshold, "message": alert.message,
                                "incident_id": incident, "joined": joined.is_some(),
                            }),
                            at: alert.fired_at,
                        });
                        sqlx::query(
                            "INSERT INTO alert_events (id, tenant_id, rule_id, device_id, status, severity, metric, \
                             value, threshold, message, fired_at, incident_id) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                             ON CONFLICT (device_id, rule_id) WHERE resolved_at IS NULL DO NOTHING",
                        )
                        .bind(id)
                        .bind(tenant.0)
                        .bind(alert.rule.0)
                        .bind(device.0)
                        .bind(status)
                        .bind(alert.severity.as_str())
                        .bind(metric)
                        .bind(alert.value)
                        .bind(threshold)
                        .bind(&alert.message)
                        .bind(micros(alert.fired_at))
                        .bind(incident)
                        .execute(&mut **tx)
                        .await
                        .map_err(map_err)?;
                    }
                    AlertEvent::StateChanged { rule, subject, to, .. } => {
                        let Subject::Device(device) = subject else { continue };
                        let status = match to {
                            tod_core::alerts::AlertState::Flapping => "flapping",
                            _ => "firing",
                        };
                        sqlx::query(
                            "UPDATE alert_events SET status = $4 WHERE tenant_id = $1 AND device_id = $2 \
                             AND rule_id = $3 AND resolved_at IS NULL",
                        )
                        .bind(tenant.0)
                        .bind(device.0)
                        .bind(rule.0)
                        .bind(status)
                        .execute(&mut **tx)
                        .await
                        .map_err(map_err)?;
                    }
                    AlertEvent::Resolved {
                        rule, subject, at, reason, ..
                    } => {
                        let Subject::Device(device) = subject else { continue };
                        let incident: Option<Option<Uuid>> = sqlx::query_scalar(
                            "UPDATE alert_events SET status = 'resolved', resolved_at = $4, resolve_reason = $5 \
                             WHERE tenant_id = $1 AND device_id = $2 AND rule_id = $3 AND resolved_at IS NULL \
                             RETURNING incident_id",
                        )
                        .bind(tenant.0)
                        .bind(device.0)
                        .bind(rule.0)
                        .bind(micros(*at))
                        .bind(reason_str(*reason))
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(map_err)?;
                        let incident = incident.flatten();
                        // Whether another alert of its incident is still open: the incident ends
                        // with its last one (one notice per cause).
                        let incident_open = match incident {
                            Some(incident) => sqlx::query_scalar::<_, i64>(
                                "SELECT COUNT(*) FROM alert_events WHERE tenant_id = $1 AND incident_id = $2 \
                                 AND resolved_at IS NULL",
                            )
                            .bind(tenant.0)
                            .bind(incident)
                            .fetch_one(&mut **tx)
                            .await
                            .map_err(map_err)?
                                > 0,
                            None => false,
                        };
                        stream.push(StreamItem {
                            kind: "alert.resolved",
                            data: serde_json::json!({
                                "device_id": device, "hostname": names.get(&device.0), "rule_id": rule,
                                "reason": reason_str(*reason), "incident_id": incident,
                                "incident_open": incident_open,
                            }),
                            at: *at,
                        });
                    }
                    AlertEvent::Suppressed {
                        rule,
                        subject,
                        window,
                        severity,
                        message,
                        at,
                    } => {
                        let Subject::Device(device) = subject else { continue };
                        held_back.push(Suppression {
                            window: *window,
                            rule: Some(rule.0),
                            device: Some(*device),
                            site: Some(site),
                            source: "device_rule",
                            severity: *severity,
                            message: message.clone(),
                            at: *at,
                        });
                    }
                }
            }
            insert_suppressed(tx, tenant, &held_back).await?;
            // Only what changed is written: a healthy device has no state row and costs nothing.
            for device in touched {
                let tracks = engine.book().export_subject(&Subject::Device(device));
                let before = stored.get(&device);
                if tracks.is_empty() {
                    if before.is_some() {
                        sqlx::query("DELETE FROM alert_state WHERE tenant_id = $1 AND device_id = $2")
                            .bind(tenant.0)
                            .bind(device.0)
                            .execute(&mut **tx)
                            .await
                            .map_err(map_err)?;
                    }
                    continue;
                }
                let json = serde_json::to_string(&tracks).map_err(|e| StoreError::Other(e.to_string()))?;
                if before == Some(&json) {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO alert_state (device_id, tenant_id, tracks, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (device_id) DO UPDATE SET tracks = excluded.tracks, updated_at = excluded.updated_at",
                )
                .bind(device.0)
                .bind(tenant.0)
                .bind(json)
                .bind(micros(now))
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            }
            Ok(())
        }
    };
}
pub(crate) use impl_device_alerts;
