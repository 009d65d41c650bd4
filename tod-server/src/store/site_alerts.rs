//! Site and sector alert rules and what their evaluation reads and writes: the rules (CRUD),
//! the snapshot a pass evaluates (device status per site, sector aggregates over recent
//! registrations, links with their signal trend), the open rule events and the changes a pass
//! records. Written once for both backends; [`impl_site_alert_store!`] expands in each.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::alerts::{Hysteresis, Severity, SiteRule, SiteRuleKind, Snapshot, Subject};
use tod_core::{RuleId, SectorId, SiteId, TenantId};
use uuid::Uuid;

use super::StoreError;

/// A site or sector alert rule.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SiteAlertRule {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// Tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// The site it watches.
    #[schema(value_type = String, format = Uuid)]
    pub site_id: SiteId,
    /// The sector, for sector-scoped rules.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub sector_id: Option<Uuid>,
    /// `device_offline_percent`, `device_offline_count`, `sector_signal_avg`,
    /// `sector_client_drop` or `signal_degradation`.
    pub rule_type: String,
    /// Name, 1–255 characters.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Threshold.
    pub threshold_value: f64,
    /// `percent`, `count` or `dBm` (the one the type uses).
    pub threshold_unit: String,
    /// Disabled rules are not evaluated; disabling resolves their active events.
    pub enabled: bool,
    /// Consecutive passes with the condition met before an event is raised.
    pub fire_after: u32,
    /// Consecutive passes without it before the event resolves.
    pub clear_after: u32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl SiteAlertRule {
    /// The domain rule; `None` for a row no validation would have let in (hand-edited).
    pub fn to_rule(&self) -> Option<SiteRule> {
        Some(SiteRule {
            id: RuleId(self.id),
            site: self.site_id,
            sector: self.sector_id.map(SectorId),
            kind: self.rule_type.parse().ok()?,
            name: self.name.clone(),
            threshold: self.threshold_value,
            unit: self.threshold_unit.parse().ok()?,
            enabled: self.enabled,
            hysteresis: Hysteresis {
                fire_after: self.fire_after,
                clear_after: self.clear_after,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SiteRuleRow {
    id: Uuid,
    tenant_id: Uuid,
    site_id: Uuid,
    sector_id: Option<Uuid>,
    rule_type: String,
    name: String,
    description: Option<String>,
    threshold_value: f64,
    threshold_unit: String,
    enabled: bool,
    fire_after: i32,
    clear_after: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<SiteRuleRow> for SiteAlertRule {
    fn from(r: SiteRuleRow) -> Self {
        Self {
            id: r.id,
            tenant_id: TenantId(r.tenant_id),
            site_id: SiteId(r.site_id),
            sector_id: r.sector_id,
            rule_type: r.rule_type,
            name: r.name,
            description: r.description,
            threshold_value: r.threshold_value,
            threshold_unit: r.threshold_unit,
            enabled: r.enabled,
            fire_after: u32::try_from(r.fire_after).unwrap_or(1),
            clear_after: u32::try_from(r.clear_after).unwrap_or(1),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub(crate) const SITE_RULE_COLUMNS: &str = "id, tenant_id, site_id, sector_id, rule_type, name, description, \
     threshold_value, threshold_unit, enabled, fire_after, clear_after, created_at, updated_at";

/// An active event raised by a rule, as the evaluator restores it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenRuleEvent {
    /// The rule.
    pub rule: RuleId,
    /// The site it is at.
    pub site: SiteId,
    /// What it is about.
    pub subject: Subject,
    /// Severity.
    pub severity: Severity,
    /// Message.
    pub message: String,
    /// Raised.
    pub fired_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct OpenRuleRow {
    rule_id: Uuid,
    site_id: Uuid,
    sector_id: Option<Uuid>,
    device_id: Option<Uuid>,
    ap_device_id: Option<Uuid>,
    severity: String,
    message: String,
    triggered_at: DateTime<Utc>,
}

impl OpenRuleRow {
    pub(crate) fn into_event(self) -> Option<OpenRuleEvent> {
        let subject = match (self.ap_device_id, self.device_id, self.sector_id) {
            (Some(ap), Some(cpe), _) => Subject::Link(tod_core::links::LinkKey {
                ap: tod_core::DeviceId(ap),
                cpe: tod_core::DeviceId(cpe),
            }),
            (Some(_), None, _) => return None,
            (None, Some(device), _) => Subject::Device(tod_core::DeviceId(device)),
            (None, None, Some(sector)) => Subject::Sector(SectorId(sector)),
            (None, _, None) => Subject::Site(SiteId(self.site_id)),
        };
        Some(OpenRuleEvent {
            rule: RuleId(self.rule_id),
            site: SiteId(self.site_id),
            subject,
            severity: self.severity.parse().ok()?,
            message: self.message,
            fired_at: self.triggered_at,
        })
    }
}

/// What raises a pass's events: a site rule, or a plugin assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSource {
    /// The rule (for a plugin, the assignment).
    pub rule: RuleId,
    /// The events' kind: the site rule's type, or `plugin`.
    pub kind: &'static str,
    /// The sector the rule is scoped to.
    pub sector: Option<SectorId>,
}

impl From<&SiteRule> for EventSource {
    fn from(r: &SiteRule) -> Self {
        Self {
            rule: r.id,
            kind: r.kind.as_str(),
            sector: r.sector,
        }
    }
}

/// One change a pass makes to a rule's events; each names the site its subject is at.
#[derive(Debug, Clone, PartialEq)]
pub enum SiteAlertChange {
    /// Raise an event.
    Raise {
        /// The subject's site.
        site: SiteId,
        /// About what.
        subject: Subject,
        /// How bad.
        severity: Severity,
        /// What an operator reads.
        message: String,
        /// Consecutive passes that found the condition so far.
        hits: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The condition is still met: count the pass and refresh the message.
    Still {
        /// The subject's site.
        site: SiteId,
        /// About what.
        subject: Subject,
        /// The latest message.
        message: String,
    },
    /// Resolve the active event about `subject`.
    Resolve {
        /// The subject's site.
        site: SiteId,
        /// About what.
        subject: Subject,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Storage for site and sector alert rules and their evaluation.
#[async_trait::async_trait]
pub trait SiteAlertStore: Send + Sync {
    /// Creates a rule (validated by the caller) after checking its site and sector belong to
    /// `tenant` and the sector to the site.
    async fn create_site_rule(
        &self,
        tenant: TenantId,
        rule: &SiteRule,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SiteAlertRule, StoreError>;
    /// A site's rules, newest first, optionally only one sector's.
    async fn site_rules(
        &self,
        tenant: TenantId,
        site: SiteId,
        sector: Option<Uuid>,
    ) -> Result<Vec<SiteAlertRule>, StoreError>;
    /// One rule of a site.
    async fn site_rule(&self, tenant: TenantId, site: SiteId, id: Uuid) -> Result<SiteAlertRule, StoreError>;
    /// Replaces a rule's definition. When it is disabled, or what it watches or its threshold
    /// changes, its active events are resolved in the same transaction (the original left them
    /// active forever).
    async fn update_site_rule(
        &self,
        tenant: TenantId,
        rule: &SiteRule,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SiteAlertRule, StoreError>;
    /// Deletes a rule and resolves its active events; the events stay as history.
    async fn delete_site_rule(
        &self,
        tenant: TenantId,
        site: SiteId,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Every enabled rule of every tenant (the evaluator's work list).
    async fn enabled_site_rules(&self) -> Result<Vec<SiteAlertRule>, StoreError>;
    /// Tenants with active rule events (so a tenant whose last rule went still gets reconciled).
    async fn tenants_with_open_rule_events(&self) -> Result<Vec<TenantId>, StoreError>;
    /// What `rules` need to be judged at `now`: the devices of their sites, their sectors'
    /// aggregates over `windows`, and — for `signal_degradation` rules — their sites' links
    /// with the trend of the last week against the week before.
    async fn site_alert_snapshot(
        &self,
        tenant: TenantId,
        rules: &[SiteRule],
        now: DateTime<Utc>,
        windows: tod_core::alerts::SnapshotWindows,
    ) -> Result<Snapshot, StoreError>;
    /// The tenant's active events raised by rules.
    async fn open_rule_events(&self, tenant: TenantId) -> Result<Vec<OpenRuleEvent>, StoreError>;
    /// Applies one rule's changes in one transaction. A raise for a subject that already has an
    /// active event of the rule, or a resolve for one that has none, changes nothing.
    async fn record_site_alerts(
        &self,
        tenant: TenantId,
        source: &EventSource,
        changes: &[SiteAlertChange],
    ) -> Result<(), StoreError>;
}

/// The columns of an event that name its subject: (sector, device, access point).
pub(crate) fn subject_columns(subject: &Subject) -> (Option<Uuid>, Option<Uuid>, Option<Uuid>) {
    match subject {
        Subject::Site(_) => (None, None, None),
        Subject::Sector(s) => (Some(s.0), None, None),
        Subject::Device(d) => (None, Some(d.0), None),
        Subject::Link(k) => (None, Some(k.cpe.0), Some(k.ap.0)),
    }
}

/// The sector a sector subject names (events about a sector are told apart by it).
pub(crate) fn sector_of(subject: &Subject) -> Option<Uuid> {
    match subject {
        Subject::Sector(s) => Some(s.0),
        _ => None,
    }
}

/// Whether two definitions judge the same thing the same way (else open events are resolved).
pub(crate) fn same_judgement(a: &SiteAlertRule, b: &SiteRule) -> bool {
    a.enabled
        && b.enabled
        && a.rule_type == b.kind.as_str()
        && a.sector_id == b.sector.map(|s| s.0)
        && a.threshold_value == b.threshold
        && a.threshold_unit == b.unit.as_str()
}

/// Kinds whose snapshot needs sector aggregates.
pub(crate) fn needs_sector(kind: SiteRuleKind) -> bool {
    matches!(kind, SiteRuleKind::SectorSignalAvg | SiteRuleKind::SectorClientDrop)
}

macro_rules! impl_site_alert_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl SiteAlertStore for $store {
            async fn create_site_rule(
                &self,
                tenant: TenantId,
                rule: &SiteRule,
                description: Option<&str>,
                now: DateTime<Utc>,
            ) -> Result<SiteAlertRule, StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                if !site_is_tenants(&mut tx, tenant, rule.site).await? {
                    return Err(StoreError::NotFound("site"));
                }
                sector_at_site(&mut tx, tenant, rule.site, rule.sector).await?;
                let row: SiteRuleRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO site_alert_rules ({SITE_RULE_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING {SITE_RULE_COLUMNS}"
                )))
                .bind(rule.id.0)
                .bind(tenant.0)
                .bind(rule.site.0)
                .bind(rule.sector.map(|s| s.0))
                .bind(rule.kind.as_str())
                .bind(rule.name.trim())
                .bind(description)
                .bind(rule.threshold)
                .bind(rule.unit.as_str())
                .bind(rule.enabled)
                .bind(rule.hysteresis.fire_after as i32)
                .bind(rule.hysteresis.clear_after as i32)
                .bind(micros(now))
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(row.into())
            }

            async fn site_rules(
                &self,
                tenant: TenantId,
                site: SiteId,
                sector: Option<Uuid>,
            ) -> Result<Vec<SiteAlertRule>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                if !site_is_tenants(&mut tx, tenant, site).await? {
                    return Err(StoreError::NotFound("site"));
                }
                let rows: Vec<SiteRuleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {SITE_RULE_COLUMNS} FROM site_alert_rules WHERE tenant_id = $1 AND site_id = $2 \
                     AND ($3 IS NULL OR sector_id = $3) ORDER BY created_at DESC, id"
                )))
                .bind(tenant.0)
                .bind(site.0)
                .bind(sector)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(SiteAlertRule::from).collect())
            }

            async fn site_rule(&self, tenant: TenantId, site: SiteId, id: Uuid) -> Result<SiteAlertRule, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                get_site_rule(&mut tx, tenant, site, id).await
            }

            async fn update_site_rule(
                &self,
                tenant: TenantId,
                rule: &SiteRule,
                description: Option<&str>,
                now: DateTime<Utc>,
            ) -> Result<SiteAlertRule, StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let before = get_site_rule(&mut tx, tenant, rule.site, rule.id.0).await?;
                sector_at_site(&mut tx, tenant, rule.site, rule.sector).await?;
                let row: SiteRuleRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE site_alert_rules SET sector_id = $3, rule_type = $4, name = $5, description = $6, \
                     threshold_value = $7, threshold_unit = $8, enabled = $9, fire_after = $10, clear_after = $11, \
                     updated_at = $12 WHERE tenant_id = $1 AND id = $2 RETURNING {SITE_RULE_COLUMNS}"
                )))
                .bind(tenant.0)
                .bind(rule.id.0)
                .bind(rule.sector.map(|s| s.0))
                .bind(rule.kind.as_str())
                .bind(rule.name.trim())
                .bind(description)
                .bind(rule.threshold)
                .bind(rule.unit.as_str())
                .bind(rule.enabled)
                .bind(rule.hysteresis.fire_after as i32)
                .bind(rule.hysteresis.clear_after as i32)
                .bind(micros(now))
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                if !same_judgement(&before, rule) {
                    resolve_rule_events(&mut tx, tenant, rule.id.0, now).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(row.into())
            }

            async fn delete_site_rule(
                &self,
                tenant: TenantId,
                site: SiteId,
                id: Uuid,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let done = sqlx::query("DELETE FROM site_alert_rules WHERE tenant_id = $1 AND site_id = $2 AND id = $3")
                    .bind(tenant.0)
                    .bind(site.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("alert rule"));
                }
                resolve_rule_events(&mut tx, tenant, id, now).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn enabled_site_rules(&self) -> Result<Vec<SiteAlertRule>, StoreError> {
                let mut tx = self.tx(None).await?;
                let rows: Vec<SiteRuleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {SITE_RULE_COLUMNS} FROM site_alert_rules WHERE enabled = $1 ORDER BY tenant_id, created_at"
                )))
                .bind(true)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(SiteAlertRule::from).collect())
            }

            async fn tenants_with_open_rule_events(&self) -> Result<Vec<TenantId>, StoreError> {
                let mut tx = self.tx(None).await?;
                let rows: Vec<(Uuid,)> = sqlx::query_as(
                    "SELECT DISTINCT tenant_id FROM site_alert_events WHERE state = 'active' AND rule_id IS NOT NULL",
                )
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(|(t,)| TenantId(t)).collect())
            }

            async fn site_alert_snapshot(
                &self,
                tenant: TenantId,
                rules: &[SiteRule],
                now: DateTime<Utc>,
                windows: tod_core::alerts::SnapshotWindows,
            ) -> Result<Snapshot, StoreError> {
                use tod_core::alerts::{DeviceView, LinkView, SectorView};
                let mut snap = Snapshot::empty(tenant, now);
                let mut tx = self.tx(Some(tenant)).await?;
                let mut sites: Vec<SiteId> = rules.iter().map(|r| r.site).collect();
                sites.sort();
                sites.dedup();
                for site in &sites {
                    let rows: Vec<(Uuid, String, Option<Uuid>, String)> = sqlx::query_as(
                        "SELECT id, name, sector_id, status FROM devices WHERE tenant_id = $1 AND site_id = $2",
                    )
                    .bind(tenant.0)
                    .bind(site.0)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    snap.devices.extend(rows.into_iter().map(|(id, hostname, sector, status)| DeviceView {
                        id: tod_core::DeviceId(id),
                        hostname,
                        site: Some(*site),
                        sector: sector.map(SectorId),
                        groups: Vec::new(),
                        status: tod_core::DeviceStatus::from_name(&status),
                        metrics: Default::default(),
                    }));
                }
                let mut sectors: Vec<(SiteId, SectorId)> = rules
                    .iter()
                    .filter(|r| needs_sector(r.kind))
                    .filter_map(|r| r.sector.map(|s| (r.site, s)))
                    .collect();
                sectors.sort();
                sectors.dedup();
                let recent = micros(windows.recent_at(now).0);
                let (before_from, before_to) = windows.before_at(now);
                let (before_from, before_to) = (micros(before_from), micros(before_to));
                for (site, sector) in sectors {
                    let (avg_signal, avg_ccq, clients_now): (Option<f64>, Option<f64>, i64) = sqlx::query_as(
                        "SELECT CAST(AVG(CASE WHEN r.signal_dbm <> 0 THEN r.signal_dbm END) AS DOUBLE PRECISION), \
                         CAST(AVG(r.tx_ccq) AS DOUBLE PRECISION), COUNT(DISTINCT r.mac) \
                         FROM registrations r JOIN devices d ON d.id = r.device_id \
                         WHERE r.tenant_id = $1 AND d.tenant_id = $1 AND d.sector_id = $2 \
                         AND r.collected_at > $3 AND r.collected_at <= $4",
                    )
                    .bind(tenant.0)
                    .bind(sector.0)
                    .bind(recent)
                    .bind(micros(now))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let clients_before: i64 = sqlx::query_scalar(
                        "SELECT COUNT(DISTINCT r.mac) FROM registrations r JOIN devices d ON d.id = r.device_id \
                         WHERE r.tenant_id = $1 AND d.tenant_id = $1 AND d.sector_id = $2 \
                         AND r.collected_at > $3 AND r.collected_at <= $4",
                    )
                    .bind(tenant.0)
                    .bind(sector.0)
                    .bind(before_from)
                    .bind(before_to)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    snap.sectors.push(SectorView {
                        id: sector,
                        site,
                        avg_signal_dbm: avg_signal,
                        clients_now: u32::try_from(clients_now).unwrap_or(u32::MAX),
                        clients_before: u32::try_from(clients_before).unwrap_or(u32::MAX),
                        avg_ccq,
                        throughput_bps: None,
                    });
                }
                let mut trend_sites: Vec<SiteId> = rules
                    .iter()
                    .filter(|r| r.kind == SiteRuleKind::SignalDegradation)
                    .map(|r| r.site)
                    .collect();
                trend_sites.sort();
                trend_sites.dedup();
                let trend = tod_core::signal::TrendConfig::default();
                for site in trend_sites {
                    let links: Vec<LinkRow> = sqlx::query_as(
                        "SELECT w.* FROM wireless_links w JOIN devices d ON d.id = w.ap_device_id \
                         WHERE w.tenant_id = $1 AND d.tenant_id = $1 AND d.site_id = $2 ORDER BY w.ap_device_id",
                    )
                    .bind(tenant.0)
                    .bind(site.0)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    let links: Vec<tod_core::links::Link> = links.iter().filter_map(LinkRow::to_link).collect();
                    let sums = trend_sums(&mut tx, tenant, Some(site.0), now, &trend).await?;
                    let deltas = $crate::store::trends::trend_deltas(&sums, &trend);
                    for l in &links {
                        let sector = snap.devices.iter().find(|d| d.id == l.key.ap).and_then(|d| d.sector);
                        snap.links.push(LinkView {
                            key: l.key,
                            site: Some(site),
                            sector,
                            state: l.state,
                            signal_dbm: l.signal_dbm,
                            tx_ccq: l.tx_ccq,
                            trend_delta_db: deltas.get(&(l.key.ap.0, l.client_mac.to_string())).copied(),
                        });
                    }
                }
                Ok(snap)
            }

            async fn open_rule_events(&self, tenant: TenantId) -> Result<Vec<OpenRuleEvent>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<OpenRuleRow> = sqlx::query_as(
                    "SELECT rule_id, site_id, sector_id, device_id, ap_device_id, severity, message, triggered_at \
                     FROM site_alert_events WHERE tenant_id = $1 AND state = 'active' AND rule_id IS NOT NULL",
                )
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().filter_map(OpenRuleRow::into_event).collect())
            }

            async fn record_site_alerts(
                &self,
                tenant: TenantId,
                source: &EventSource,
                changes: &[SiteAlertChange],
            ) -> Result<(), StoreError> {
                if changes.is_empty() {
                    return Ok(());
                }
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let mut stream = Vec::new();
                for change in changes {
                    match change {
                        SiteAlertChange::Raise {
                            site,
                            subject,
                            severity,
                            message,
                            hits,
                            at,
                        } => {
                            let (sector, device, ap) = subject_columns(subject);
                            let sector = sector.or(source.sector.map(|s| s.0));
                            let event = Uuid::new_v4();
                            let raised = sqlx::query(
                                "INSERT INTO site_alert_events (id, tenant_id, site_id, sector_id, rule_id, device_id, \
                                 ap_device_id, kind, severity, message, state, consecutive_hits, triggered_at) \
                                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active', $11, $12 \
                                 WHERE NOT EXISTS (SELECT 1 FROM site_alert_events WHERE tenant_id = $2 \
                                 AND rule_id = $5 AND state = 'active' AND sector_id IS NOT DISTINCT FROM $4 \
                                 AND device_id IS NOT DISTINCT FROM $6 AND ap_device_id IS NOT DISTINCT FROM $7)",
                            )
                            .bind(event)
                            .bind(tenant.0)
                            .bind(site.0)
                            .bind(sector)
                            .bind(source.rule.0)
                            .bind(device)
                            .bind(ap)
                            .bind(source.kind)
                            .bind(severity.as_str())
                            .bind(message)
                            .bind(*hits as i32)
                            .bind(micros(*at))
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                            if raised.rows_affected() > 0 {
                                stream.push(StreamItem {
                                    kind: "site_alert.raised",
                                    data: serde_json::json!({
                                        "event_id": event, "site_id": site, "sector_id": sector, "rule_id": source.rule,
                                        "kind": source.kind, "device_id": device, "ap_device_id": ap,
                                        "severity": severity.as_str(), "message": message,
                                    }),
                                    at: *at,
                                });
                            }
                        }
                        SiteAlertChange::Still { site, subject, message } => {
                            let (_, device, ap) = subject_columns(subject);
                            sqlx::query(
                                "UPDATE site_alert_events SET consecutive_hits = consecutive_hits + 1, message = $5 \
                                 WHERE tenant_id = $1 AND rule_id = $2 AND state = 'active' \
                                 AND device_id IS NOT DISTINCT FROM $3 AND ap_device_id IS NOT DISTINCT FROM $4 \
                                 AND site_id = $6 AND ($7 IS NULL OR sector_id = $7)",
                            )
                            .bind(tenant.0)
                            .bind(source.rule.0)
                            .bind(device)
                            .bind(ap)
                            .bind(message)
                            .bind(site.0)
                            .bind(sector_of(subject))
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                        }
                        SiteAlertChange::Resolve { site, subject, at } => {
                            let (_, device, ap) = subject_columns(subject);
                            let resolved = sqlx::query(
                                "UPDATE site_alert_events SET state = 'resolved', resolved_at = $5 \
                                 WHERE tenant_id = $1 AND rule_id = $2 AND state = 'active' \
                                 AND device_id IS NOT DISTINCT FROM $3 AND ap_device_id IS NOT DISTINCT FROM $4 \
                                 AND site_id = $6 AND ($7 IS NULL OR sector_id = $7)",
                            )
                            .bind(tenant.0)
                            .bind(source.rule.0)
                            .bind(device)
                            .bind(ap)
                            .bind(micros(*at))
                            .bind(site.0)
                            .bind(sector_of(subject))
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                            if resolved.rows_affected() > 0 {
                                stream.push(StreamItem {
                                    kind: "site_alert.resolved",
                                    data: serde_json::json!({
                                        "site_id": site, "rule_id": source.rule, "kind": source.kind,
                                        "device_id": device, "ap_device_id": ap,
                                    }),
                                    at: *at,
                                });
                            }
                        }
                    }
                }
                push_stream(&mut tx, tenant, &stream, chrono::Utc::now()).await?;
                tx.commit().await.map_err(map_err)
            }
        }

        async fn get_site_rule(tx: &mut Tx, tenant: TenantId, site: SiteId, id: Uuid) -> Result<SiteAlertRule, StoreError> {
            let row: Option<SiteRuleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SITE_RULE_COLUMNS} FROM site_alert_rules WHERE tenant_id = $1 AND site_id = $2 AND id = $3"
            )))
            .bind(tenant.0)
            .bind(site.0)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
            row.map(SiteAlertRule::from).ok_or(StoreError::NotFound("alert rule"))
        }

        /// A sector given for a rule must exist for the tenant and be at the rule's site.
        async fn sector_at_site(
            tx: &mut Tx,
            tenant: TenantId,
            site: SiteId,
            sector: Option<SectorId>,
        ) -> Result<(), StoreError> {
            let Some(sector) = sector else { return Ok(()) };
            let at: Option<(Uuid,)> = sqlx::query_as("SELECT site_id FROM sectors WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(sector.0)
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
            match at {
                None => Err(StoreError::NotFound("sector")),
                Some((at,)) if at != site.0 => Err(StoreError::Invalid(
                    "sector_id: the sector is at another site".into(),
                )),
                Some(_) => Ok(()),
            }
        }

        /// Resolves a rule's active events (the rule was disabled, changed or deleted).
        async fn resolve_rule_events(
            tx: &mut Tx,
            tenant: TenantId,
            rule: Uuid,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE site_alert_events SET state = 'resolved', resolved_at = $3 \
                 WHERE tenant_id = $1 AND rule_id = $2 AND state = 'active'",
            )
            .bind(tenant.0)
            .bind(rule)
            .bind(micros(now))
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
            Ok(())
        }
    };
}
pub(crate) use impl_site_alert_store;
