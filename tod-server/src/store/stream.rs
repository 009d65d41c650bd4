//! The live event stream behind `/api/sse/events`: an outbox numbered per tenant. Writers collect
//! [`StreamItem`]s while they work and append them with `push_stream` as the last step of their
//! transaction: the tenant's head row is then the last lock taken (no lock cycles with other
//! writers), and a number is only ever visible after every smaller number of that tenant has
//! committed — so a reader resuming after N (`Last-Event-ID`) misses nothing. Written once for
//! both backends: [`impl_stream_store!`] and [`impl_stream_tx!`] expand in each.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::TenantId;

use super::StoreError;

/// One change to stream, before it is numbered.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamItem {
    /// `device.status`, `device.reboot`, `device.version`, `link.state`, `alert.fired`,
    /// `alert.resolved`, `site_alert.raised`, `site_alert.resolved` or `agent.data_lost`.
    pub kind: &'static str,
    /// The event's JSON body.
    pub data: serde_json::Value,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// A numbered event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StreamEvent {
    /// Per-tenant number (the SSE `id`).
    pub seq: i64,
    /// The SSE `event` name.
    pub kind: String,
    /// The JSON body.
    pub data: String,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// Reading the stream.
#[async_trait::async_trait]
pub trait StreamStore: Send + Sync {
    /// The tenant's latest number (0 before any event).
    async fn stream_head(&self, tenant: TenantId) -> Result<i64, StoreError>;
    /// Events numbered after `after`, in order, at most `limit`.
    async fn stream_after(&self, tenant: TenantId, after: i64, limit: i64) -> Result<Vec<StreamEvent>, StoreError>;
    /// Tenants whose stream has events the NATS relay has not published: (tenant, published up
    /// to, head).
    async fn relay_pending(&self) -> Result<Vec<(TenantId, i64, i64)>, StoreError>;
    /// Records that the relay published a tenant's stream up to `seq`.
    async fn set_relay_cursor(&self, tenant: TenantId, seq: i64) -> Result<(), StoreError>;
}

/// The writer, for a transaction that is about to commit.
macro_rules! impl_stream_tx {
    () => {
        /// Numbers and appends a tenant's items; call it last, just before commit.
        async fn push_stream(
            tx: &mut Tx,
            tenant: TenantId,
            items: &[StreamItem],
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            if items.is_empty() {
                return Ok(());
            }
            let n = i64::try_from(items.len()).unwrap_or(i64::MAX);
            let head: i64 = sqlx::query_scalar(
                "INSERT INTO event_stream_heads (tenant_id, seq) VALUES ($1, $2) \
                 ON CONFLICT (tenant_id) DO UPDATE SET seq = event_stream_heads.seq + $2 RETURNING seq",
            )
            .bind(tenant.0)
            .bind(n)
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
            let first = head - n + 1;
            let numbered: Vec<(i64, &StreamItem)> = (first..).zip(items.iter()).collect();
            for chunk in numbered.chunks(500) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO event_stream (tenant_id, seq, kind, data, at, recorded_at) ",
                );
                q.push_values(chunk, |mut b, (seq, item)| {
                    b.push_bind(tenant.0)
                        .push_bind(*seq)
                        .push_bind(item.kind)
                        .push_bind(item.data.to_string())
                        .push_bind(micros(item.at))
                        .push_bind(micros(now));
                });
                q.build().execute(&mut **tx).await.map_err(map_err)?;
            }
            Ok(())
        }
    };
}
pub(crate) use impl_stream_tx;

/// Writes `impl StreamStore` for a backend type.
macro_rules! impl_stream_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl StreamStore for $store {
            async fn stream_head(&self, tenant: TenantId) -> Result<i64, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let head: Option<i64> = sqlx::query_scalar("SELECT seq FROM event_stream_heads WHERE tenant_id = $1")
                    .bind(tenant.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Ok(head.unwrap_or(0))
            }

            async fn stream_after(
                &self,
                tenant: TenantId,
                after: i64,
                limit: i64,
            ) -> Result<Vec<StreamEvent>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                sqlx::query_as(
                    "SELECT seq, kind, data, at FROM event_stream WHERE tenant_id = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                )
                .bind(tenant.0)
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)
            }

            async fn relay_pending(&self) -> Result<Vec<(TenantId, i64, i64)>, StoreError> {
                let mut tx = self.tx(None).await?;
                let rows: Vec<(uuid::Uuid, i64, i64)> = sqlx::query_as(
                    "SELECT h.tenant_id, COALESCE(c.seq, 0), h.seq FROM event_stream_heads h \
                     LEFT JOIN event_relay_cursors c ON c.tenant_id = h.tenant_id \
                     WHERE h.seq > COALESCE(c.seq, 0) ORDER BY h.tenant_id",
                )
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(|(t, c, h)| (TenantId(t), c, h)).collect())
            }

            async fn set_relay_cursor(&self, tenant: TenantId, seq: i64) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(None).await?;
                sqlx::query(
                    "INSERT INTO event_relay_cursors (tenant_id, seq) VALUES ($1, $2) \
                     ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq",
                )
                .bind(tenant.0)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }
        }
    };
}
pub(crate) use impl_stream_store;
