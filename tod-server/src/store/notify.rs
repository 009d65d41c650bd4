//! Notification channels, the rules they are linked to, and the delivery log. The dispatcher
//! ([`crate::notify`]) reads each tenant's event stream after its own cursor and records the
//! deliveries an event calls for together with the new cursor, in one transaction, so an event
//! is planned exactly once whatever fails; each delivery is then tried, retried and finally
//! marked delivered or failed. Written once for both backends: [`impl_notify_store!`] expands in
//! each.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::TenantId;
use tod_core::notify::ChannelKind;
use uuid::Uuid;

use super::StoreError;

/// The columns of `notification_channels`, in [`ChannelRow`] order.
pub(crate) const CHANNEL_COLUMNS: &str =
    "id, tenant_id, name, kind, settings, sealed, fallback, enabled, created_at, updated_at";

/// A channel as stored: its secret (a webhook's signing key, a Slack URL, an SMTP password) only
/// in sealed form.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRecord {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant: TenantId,
    /// Unique per tenant.
    pub name: String,
    /// Webhook, Slack or e-mail.
    pub kind: ChannelKind,
    /// What is not secret (URL, SMTP host and addresses …).
    pub settings: serde_json::Value,
    /// The sealed secret, if any.
    pub sealed: Option<Vec<u8>>,
    /// Receives the alerts of rules that link no channel.
    pub fallback: bool,
    /// Whether it is used.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ChannelRow {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) settings: String,
    pub(crate) sealed: Option<Vec<u8>>,
    pub(crate) fallback: bool,
    pub(crate) enabled: bool,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl TryFrom<ChannelRow> for ChannelRecord {
    type Error = StoreError;
    fn try_from(r: ChannelRow) -> Result<Self, StoreError> {
        Ok(ChannelRecord {
            id: r.id,
            tenant: TenantId(r.tenant_id),
            name: r.name,
            kind: r.kind.parse().map_err(StoreError::Other)?,
            settings: serde_json::from_str(&r.settings)
                .map_err(|e| StoreError::Other(format!("channel settings: {e}")))?,
            sealed: r.sealed,
            fallback: r.fallback,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Which rule a channel list belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleRef {
    /// A device alert rule (`/api/alerts/rules/{id}`).
    Device(Uuid),
    /// A site alert rule (`/api/tenants/{t}/sites/{s}/alert-rules/{id}`).
    Site(Uuid),
}

/// Everything the dispatcher needs to route a tenant's alerts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    /// Enabled channels: (id, fallback).
    pub channels: Vec<(Uuid, bool)>,
    /// Device rule → channel links.
    pub device_links: Vec<(Uuid, Uuid)>,
    /// Site rule → channel links.
    pub site_links: Vec<(Uuid, Uuid)>,
}

/// A delivery to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The channel.
    pub channel: Uuid,
    /// The stream event's number.
    pub event_seq: i64,
    /// The stream event's name.
    pub event: String,
    /// The alert ([`tod_core::notify::Notice::key`]).
    pub key: String,
    /// The notice as JSON.
    pub notice: serde_json::Value,
}

/// The last notice a channel got for an alert.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LastNotice {
    /// The channel.
    pub channel_id: Uuid,
    /// The stream event it came from.
    pub event: String,
    /// The notice as JSON.
    pub notice: String,
}

/// A delivery whose turn has come, with its channel.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    /// Id.
    pub id: Uuid,
    /// Attempts made so far.
    pub attempts: i32,
    /// The notice as JSON.
    pub notice: String,
    /// Where it goes.
    pub channel: ChannelRecord,
}

/// What an attempt left behind.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    /// `pending` (to retry), `delivered` or `failed`.
    pub state: &'static str,
    /// Attempts made, counting this one.
    pub attempts: i32,
    /// When to try again (pending).
    pub next_attempt_at: DateTime<Utc>,
    /// The HTTP status or SMTP reply code, if one came.
    pub status: Option<i32>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// One entry of the delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Delivery {
    /// Id (sent as `X-TOD-Delivery`, so a receiver can drop a repeat).
    pub id: Uuid,
    /// The channel.
    pub channel_id: Uuid,
    /// The channel's name.
    pub channel_name: String,
    /// The stream event's number (`/api/sse/events` id).
    pub event_seq: i64,
    /// `alert.fired`, `alert.resolved`, `site_alert.raised` or `site_alert.resolved`.
    pub event: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// The next attempt (pending).
    pub next_attempt_at: DateTime<Utc>,
    /// The last HTTP status or SMTP reply code.
    pub last_status: Option<i32>,
    /// The last error.
    pub last_error: Option<String>,
    /// What was (to be) said, in one line.
    pub summary: String,
    /// Recorded.
    pub created_at: DateTime<Utc>,
    /// Delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// What the delivery log is narrowed to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryFilter {
    /// One channel.
    pub channel: Option<Uuid>,
    /// One state.
    pub state: Option<String>,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

/// Channels, rule links and deliveries.
#[async_trait::async_trait]
pub trait NotifyStore: Send + Sync {
    /// Stores a new channel (a duplicate name is a conflict).
    async fn create_channel(&self, c: &ChannelRecord) -> Result<ChannelRecord, StoreError>;
    /// A tenant's channels by name.
    async fn channels(&self, tenant: TenantId) -> Result<Vec<ChannelRecord>, StoreError>;
    /// One channel.
    async fn channel(&self, tenant: TenantId, id: Uuid) -> Result<ChannelRecord, StoreError>;
    /// Replaces a channel's fields.
    async fn update_channel(&self, c: &ChannelRecord) -> Result<ChannelRecord, StoreError>;
    /// Deletes a channel, its rule links and its deliveries.
    async fn delete_channel(&self, tenant: TenantId, id: Uuid) -> Result<(), StoreError>;
    /// The channels a rule notifies (404 when the rule is not the tenant's).
    async fn rule_channels(&self, tenant: TenantId, rule: RuleRef) -> Result<Vec<Uuid>, StoreError>;
    /// Replaces the channels a rule notifies (each must be the tenant's: 404 otherwise).
    async fn set_rule_channels(&self, tenant: TenantId, rule: RuleRef, channels: &[Uuid]) -> Result<(), StoreError>;
    /// Tenants whose stream has events the dispatcher has not planned: (tenant, planned up to,
    /// head). A tenant's cursor starts at its stream's head when its first channel is created.
    async fn notify_pending(&self) -> Result<Vec<(TenantId, i64, i64)>, StoreError>;
    /// A tenant's enabled channels and rule links.
    async fn routing(&self, tenant: TenantId) -> Result<Routing, StoreError>;
    /// The last notice each channel got for an alert.
    async fn last_notices(&self, tenant: TenantId, key: &str) -> Result<Vec<LastNotice>, StoreError>;
    /// Records deliveries and moves the tenant's cursor to `upto`, together.
    async fn plan_deliveries(
        &self,
        tenant: TenantId,
        planned: &[NewDelivery],
        upto: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Pending deliveries due at `now` on enabled channels, oldest first, at most `limit`.
    async fn due_deliveries(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<DueDelivery>, StoreError>;
    /// Records how an attempt went.
    async fn record_attempt(&self, tenant: TenantId, id: Uuid, a: &AttemptRecord) -> Result<(), StoreError>;
    /// A page of the delivery log, newest first, and how many match.
    async fn deliveries(&self, tenant: TenantId, f: &DeliveryFilter) -> Result<(Vec<Delivery>, i64), StoreError>;
}

/// Writes `impl NotifyStore` for a backend type.
macro_rules! impl_notify_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::notify::NotifyStore for $store {
            async fn create_channel(
                &self,
                c: &$crate::store::notify::ChannelRecord,
            ) -> Result<$crate::store::notify::ChannelRecord, StoreError> {
                let (_w, mut tx) = self.wtx(Some(c.tenant)).await?;
                sqlx::query(
                    "INSERT INTO notification_channels (id, tenant_id, name, kind, settings, sealed, fallback, \
                     enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(c.id)
                .bind(c.tenant.0)
                .bind(&c.name)
                .bind(c.kind.as_str())
                .bind(c.settings.to_string())
                .bind(&c.sealed)
                .bind(c.fallback)
                .bind(c.enabled)
                .bind(micros(c.created_at))
                .bind(micros(c.updated_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::store::notify::channel_conflict(map_err(e)))?;
                // The tenant's notifications start with its first channel, from the stream's
                // present: adopting notifications does not replay history.
                sqlx::query(
                    "INSERT INTO notification_cursors (tenant_id, seq) VALUES ($1, \
                     COALESCE((SELECT seq FROM event_stream_heads WHERE tenant_id = $1), 0)) \
                     ON CONFLICT (tenant_id) DO NOTHING",
                )
                .bind(c.tenant.0)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                self.channel(c.tenant, c.id).await
            }

            async fn channels(
                &self,
                tenant: TenantId,
            ) -> Result<Vec<$crate::store::notify::ChannelRecord>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let sql = format!(
                    "SELECT {} FROM notification_channels WHERE tenant_id = $1 ORDER BY name",
                    $crate::store::notify::CHANNEL_COLUMNS
                );
                let rows: Vec<$crate::store::notify::ChannelRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(tenant.0)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn channel(
                &self,
                tenant: TenantId,
                id: Uuid,
            ) -> Result<$crate::store::notify::ChannelRecord, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let sql = format!(
                    "SELECT {} FROM notification_channels WHERE tenant_id = $1 AND id = $2",
                    $crate::store::notify::CHANNEL_COLUMNS
                );
                let row: Option<$crate::store::notify::ChannelRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(tenant.0)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                row.ok_or(StoreError::NotFound("Notification channel"))?
                    .try_into()
            }

            async fn update_channel(
                &self,
                c: &$crate::store::notify::ChannelRecord,
            ) -> Result<$crate::store::notify::ChannelRecord, StoreError> {
                let (_w, mut tx) = self.wtx(Some(c.tenant)).await?;
                let done = sqlx::query(
                    "UPDATE notification_channels SET name = $3, settings = $4, sealed = $5, fallback = $6, \
                     enabled = $7, updated_at = $8 WHERE tenant_id = $1 AND id = $2",
                )
                .bind(c.tenant.0)
                .bind(c.id)
                .bind(&c.name)
                .bind(c.settings.to_string())
                .bind(&c.sealed)
                .bind(c.fallback)
                .bind(c.enabled)
                .bind(micros(c.updated_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::store::notify::channel_conflict(map_err(e)))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("Notification channel"));
                }
                tx.commit().await.map_err(map_err)?;
                self.channel(c.tenant, c.id).await
            }

            async fn delete_channel(&self, tenant: TenantId, id: Uuid) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                // Its links and deliveries go with it (foreign keys cascade on both backends).
                let done = sqlx::query("DELETE FROM notification_channels WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("Notification channel"));
                }
                tx.commit().await.map_err(map_err)
            }

            async fn rule_channels(
                &self,
                tenant: TenantId,
                rule: $crate::store::notify::RuleRef,
            ) -> Result<Vec<Uuid>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let (id, links) = rule_of_tenant(&mut tx, tenant, rule).await?;
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT l.channel_id FROM {links} l JOIN notification_channels c ON c.id = l.channel_id \
                     WHERE l.tenant_id = $1 AND l.rule_id = $2 ORDER BY c.name"
                )))
                .bind(tenant.0)
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)
            }

            async fn set_rule_channels(
                &self,
                tenant: TenantId,
                rule: $crate::store::notify::RuleRef,
                channels: &[Uuid],
            ) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let (id, links) = rule_of_tenant(&mut tx, tenant, rule).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {links} WHERE tenant_id = $1 AND rule_id = $2"
                )))
                .bind(tenant.0)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                let mut unique = channels.to_vec();
                unique.sort();
                unique.dedup();
                for channel in unique {
                    let mine: Option<Uuid> =
                        sqlx::query_scalar("SELECT id FROM notification_channels WHERE tenant_id = $1 AND id = $2")
                            .bind(tenant.0)
                            .bind(channel)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(map_err)?;
                    if mine.is_none() {
                        return Err(StoreError::NotFound("Notification channel"));
                    }
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO {links} (rule_id, channel_id, tenant_id) VALUES ($1, $2, $3)"
                    )))
                    .bind(id)
                    .bind(channel)
                    .bind(tenant.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }

            async fn notify_pending(&self) -> Result<Vec<(TenantId, i64, i64)>, StoreError> {
                let mut tx = self.tx(None).await?;
                let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(
                    "SELECT h.tenant_id, c.seq, h.seq FROM event_stream_heads h \
                     JOIN notification_cursors c ON c.tenant_id = h.tenant_id \
                     WHERE h.seq > c.seq ORDER BY h.tenant_id",
                )
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(|(t, c, h)| (TenantId(t), c, h)).collect())
            }

            async fn routing(&self, tenant: TenantId) -> Result<$crate::store::notify::Routing, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let channels: Vec<(Uuid, bool)> = sqlx::query_as(
                    "SELECT id, fallback FROM notification_channels WHERE tenant_id = $1 AND enabled ORDER BY name",
                )
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let device_links: Vec<(Uuid, Uuid)> =
                    sqlx::query_as("SELECT rule_id, channel_id FROM alert_rule_channels WHERE tenant_id = $1")
                        .bind(tenant.0)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                let site_links: Vec<(Uuid, Uuid)> =
                    sqlx::query_as("SELECT rule_id, channel_id FROM site_alert_rule_channels WHERE tenant_id = $1")
                        .bind(tenant.0)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                Ok($crate::store::notify::Routing {
                    channels,
                    device_links,
                    site_links,
                })
            }

            async fn last_notices(
                &self,
                tenant: TenantId,
                key: &str,
            ) -> Result<Vec<$crate::store::notify::LastNotice>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                sqlx::query_as(
                    "SELECT d.channel_id, d.event, d.notice FROM notification_deliveries d \
                     WHERE d.tenant_id = $1 AND d.alert_key = $2 AND d.event_seq = \
                     (SELECT MAX(x.event_seq) FROM notification_deliveries x \
                      WHERE x.channel_id = d.channel_id AND x.alert_key = d.alert_key)",
                )
                .bind(tenant.0)
                .bind(key)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)
            }

            async fn plan_deliveries(
                &self,
                tenant: TenantId,
                planned: &[$crate::store::notify::NewDelivery],
                upto: i64,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(None).await?;
                for d in planned {
                    sqlx::query(
                        "INSERT INTO notification_deliveries (id, tenant_id, channel_id, event_seq, event, \
                         alert_key, notice, state, attempts, next_attempt_at, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8) \
                         ON CONFLICT (channel_id, event_seq) DO NOTHING",
                    )
                    .bind(Uuid::new_v4())
                    .bind(tenant.0)
                    .bind(d.channel)
                    .bind(d.event_seq)
                    .bind(&d.event)
                    .bind(&d.key)
                    .bind(d.notice.to_string())
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                sqlx::query(
                    "INSERT INTO notification_cursors (tenant_id, seq) VALUES ($1, $2) ON CONFLICT (tenant_id) \
                     DO UPDATE SET seq = excluded.seq WHERE notification_cursors.seq < excluded.seq",
                )
                .bind(tenant.0)
                .bind(upto)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn due_deliveries(
                &self,
                now: DateTime<Utc>,
                limit: i64,
            ) -> Result<Vec<$crate::store::notify::DueDelivery>, StoreError> {
                let mut tx = self.tx(None).await?;
                let rows: Vec<(Uuid, i32, String, Uuid)> = sqlx::query_as(
                    "SELECT d.id, d.attempts, d.notice, d.channel_id FROM notification_deliveries d \
                     JOIN notification_channels c ON c.id = d.channel_id \
                     WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND c.enabled \
                     ORDER BY d.next_attempt_at, d.event_seq LIMIT $2",
                )
                .bind(micros(now))
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let mut out = Vec::with_capacity(rows.len());
                let mut known: std::collections::HashMap<Uuid, $crate::store::notify::ChannelRecord> =
                    std::collections::HashMap::new();
                for (id, attempts, notice, channel) in rows {
                    if !known.contains_key(&channel) {
                        let sql = format!(
                            "SELECT {} FROM notification_channels WHERE id = $1",
                            $crate::store::notify::CHANNEL_COLUMNS
                        );
                        let row: $crate::store::notify::ChannelRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                            .bind(channel)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(map_err)?;
                        known.insert(channel, row.try_into()?);
                    }
                    out.push($crate::store::notify::DueDelivery {
                        id,
                        attempts,
                        notice,
                        channel: known[&channel].clone(),
                    });
                }
                Ok(out)
            }

            async fn record_attempt(
                &self,
                tenant: TenantId,
                id: Uuid,
                a: &$crate::store::notify::AttemptRecord,
            ) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                sqlx::query(
                    "UPDATE notification_deliveries SET state = $3, attempts = $4, next_attempt_at = $5, \
                     last_status = $6, last_error = $7, \
                     delivered_at = CASE WHEN $3 = 'delivered' THEN $8 ELSE delivered_at END \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(a.state)
                .bind(a.attempts)
                .bind(micros(a.next_attempt_at))
                .bind(a.status)
                .bind(&a.error)
                .bind(micros(a.at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn deliveries(
                &self,
                tenant: TenantId,
                f: &$crate::store::notify::DeliveryFilter,
            ) -> Result<(Vec<$crate::store::notify::Delivery>, i64), StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let filter = "d.tenant_id = $1 AND ($2 IS NULL OR d.channel_id = $2) AND ($3 IS NULL OR d.state = $3)";
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM notification_deliveries d WHERE {filter}"
                )))
                .bind(tenant.0)
                .bind(f.channel)
                .bind(&f.state)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let rows: Vec<(
                    Uuid,
                    Uuid,
                    String,
                    i64,
                    String,
                    String,
                    i32,
                    DateTime<Utc>,
                    Option<i32>,
                    Option<String>,
                    String,
                    DateTime<Utc>,
                    Option<DateTime<Utc>>,
                )> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT d.id, d.channel_id, c.name, d.event_seq, d.event, d.state, d.attempts, \
                     d.next_attempt_at, d.last_status, d.last_error, d.notice, d.created_at, d.delivered_at \
                     FROM notification_deliveries d JOIN notification_channels c ON c.id = d.channel_id \
                     WHERE {filter} ORDER BY d.created_at DESC, d.event_seq DESC LIMIT $4 OFFSET $5"
                )))
                .bind(tenant.0)
                .bind(f.channel)
                .bind(&f.state)
                .bind(f.limit)
                .bind(f.offset)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let items = rows
                    .into_iter()
                    .map(|r| $crate::store::notify::Delivery {
                        id: r.0,
                        channel_id: r.1,
                        channel_name: r.2,
                        event_seq: r.3,
                        event: r.4,
                        state: r.5,
                        attempts: r.6,
                        next_attempt_at: r.7,
                        last_status: r.8,
                        last_error: r.9,
                        summary: $crate::store::notify::summary(&r.10),
                        created_at: r.11,
                        delivered_at: r.12,
                    })
                    .collect();
                Ok((items, total))
            }
        }

        /// The rule's id and its link table, once the rule is found to be the tenant's (404
        /// otherwise).
        async fn rule_of_tenant(
            tx: &mut Tx,
            tenant: TenantId,
            rule: $crate::store::notify::RuleRef,
        ) -> Result<(Uuid, &'static str), StoreError> {
            let (rules, links) = $crate::store::notify::rule_tables(rule);
            let id = $crate::store::notify::rule_id(rule);
            let found: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM {rules} WHERE tenant_id = $1 AND id = $2"
            )))
            .bind(tenant.0)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
            match found {
                Some(_) => Ok((id, links)),
                None => Err(StoreError::NotFound("Alert rule")),
            }
        }
    };
}
pub(crate) use impl_notify_store;

pub(crate) fn channel_conflict(e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict(_) => StoreError::Conflict("A notification channel with this name already exists".into()),
        other => other,
    }
}

pub(crate) fn rule_tables(rule: RuleRef) -> (&'static str, &'static str) {
    match rule {
        RuleRef::Device(_) => ("alert_rules", "alert_rule_channels"),
        RuleRef::Site(_) => ("site_alert_rules", "site_alert_rule_channels"),
    }
}

pub(crate) fn rule_id(rule: RuleRef) -> Uuid {
    match rule {
        RuleRef::Device(id) | RuleRef::Site(id) => id,
    }
}

/// A stored notice's one-line summary.
pub(crate) fn summary(notice: &str) -> String {
    serde_json::from_str::<tod_core::notify::Notice>(notice)
        .map(|n| n.line())
        .unwrap_or_else(|_| "(unreadable notice)".into())
}
