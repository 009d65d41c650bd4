//! The device event log as one timeline: reachability changes, reboots and version changes
//! (`device_events`, written at ingest and by the fleet aging) and wireless link state changes
//! (`link_events`, written by link discovery), newest first. Written once for both backends:
//! [`impl_event_store!`] expands in each.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::{DeviceId, TenantId};
use uuid::Uuid;

use super::StoreError;

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct DeviceEvent {
    /// `status`, `reboot`, `version` or `link_state`.
    pub kind: String,
    /// The device (a link's AP).
    pub device_id: Uuid,
    /// Its name.
    pub hostname: String,
    /// The other device of a link event (its CPE).
    pub related_device_id: Option<Uuid>,
    /// The other device's name.
    pub related_hostname: Option<String>,
    /// Before (status, uptime in seconds, version or link state; none for a first sighting).
    pub from_value: Option<String>,
    /// After.
    pub to_value: String,
    /// What an operator reads.
    pub message: String,
    /// When it happened (the report's collection time).
    pub at: DateTime<Utc>,
}

/// What the timeline is narrowed to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Events of this device (either end of a link).
    pub device: Option<DeviceId>,
    /// One kind.
    pub kind: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

/// The event timeline.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// A page of a tenant's events, newest first, and how many match in all.
    async fn device_events(&self, tenant: TenantId, f: &EventFilter) -> Result<(Vec<DeviceEvent>, i64), StoreError>;
}

/// The timeline: both logs, one shape.
pub(crate) const EVENT_TIMELINE: &str = "SELECT x.kind, x.device_id, d.name AS hostname, x.related_device_id, \
     r.name AS related_hostname, x.from_value, x.to_value, \
     CASE WHEN x.kind = 'link_state' THEN 'Link ' || d.name || ' -> ' || COALESCE(r.name, '?') || ': ' || \
       COALESCE(x.from_value, 'new') || ' -> ' || x.to_value ELSE x.message END AS message, x.at \
     FROM (SELECT kind, device_id, NULL AS related_device_id, from_value, to_value, message, at \
           FROM device_events WHERE tenant_id = $1 \
           UNION ALL \
           SELECT 'link_state', ap_device_id, cpe_device_id, from_state, to_state, '', at \
           FROM link_events WHERE tenant_id = $1) x \
     JOIN devices d ON d.id = x.device_id LEFT JOIN devices r ON r.id = x.related_device_id \
     WHERE ($2 IS NULL OR x.device_id = $2 OR x.related_device_id = $2) AND ($3 IS NULL OR x.kind = $3) \
     AND ($4 IS NULL OR x.at >= $4) AND ($5 IS NULL OR x.at < $5)";

/// Writes `impl EventStore` for a backend type.
macro_rules! impl_event_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl EventStore for $store {
            async fn device_events(
                &self,
                tenant: TenantId,
                f: &EventFilter,
            ) -> Result<(Vec<DeviceEvent>, i64), StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM ({EVENT_TIMELINE}) c"
                )))
                .bind(tenant.0)
                .bind(f.device.map(|d| d.0))
                .bind(f.kind.as_deref())
                .bind(f.from.map(micros))
                .bind(f.to.map(micros))
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let items: Vec<DeviceEvent> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{EVENT_TIMELINE} ORDER BY x.at DESC, x.kind, x.device_id LIMIT $6 OFFSET $7"
                )))
                .bind(tenant.0)
                .bind(f.device.map(|d| d.0))
                .bind(f.kind.as_deref())
                .bind(f.from.map(micros))
                .bind(f.to.map(micros))
                .bind(f.limit)
                .bind(f.offset)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok((items, total))
            }
        }
    };
}
pub(crate) use impl_event_store;
