//! Maintenance windows and the alerts they held back. A window covers devices, sites, or the
//! whole tenant (both lists empty), once or repeating daily/weekly; tod-core decides whether a
//! window is in effect ([`tod_core::alerts::MaintenanceWindow`]). Every alert a window suppressed
//! is recorded once per window occurrence (`suppressed_alerts`) — the original dropped them.
//! Written once for both backends: [`impl_maintenance_store!`] expands in each, and
//! [`impl_maintenance_tx!`] gives the ingest transaction its window reads and suppression writes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::alerts::{MaintenanceWindow, Recurrence};
use tod_core::{DeviceId, SiteId, TenantId, WindowId};
use uuid::Uuid;

use super::StoreError;

/// The columns of `maintenance_windows`, in [`WindowRow`] order.
pub(crate) const WINDOW_COLUMNS: &str = "id, tenant_id, name, device_ids, site_ids, start_at, end_at, recurrence, \
     suppress_alerts, notes, created_by, created_at, updated_at";

/// A stored maintenance window.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Window {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub id: WindowId,
    /// Tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// 1–200 characters.
    pub name: String,
    /// Devices covered.
    #[schema(value_type = Vec<String>)]
    pub device_ids: Vec<DeviceId>,
    /// Sites covered (all their devices and the sites' own alerts); with `device_ids` empty too,
    /// the whole tenant.
    #[schema(value_type = Vec<String>)]
    pub site_ids: Vec<SiteId>,
    /// First start.
    pub start_at: DateTime<Utc>,
    /// First end (exclusive).
    pub end_at: DateTime<Utc>,
    /// `daily`, `weekly`, or none.
    pub recurrence: Option<String>,
    /// Whether alerts are held back (otherwise the window only informs).
    pub suppress_alerts: bool,
    /// Free text.
    pub notes: Option<String>,
    /// Who created it.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Window {
    /// The domain window.
    pub fn to_domain(&self) -> MaintenanceWindow {
        MaintenanceWindow {
            id: self.id,
            devices: self.device_ids.clone(),
            sites: self.site_ids.clone(),
            start_at: self.start_at,
            end_at: self.end_at,
            suppress_alerts: self.suppress_alerts,
            recurrence: recurrence_of(self.recurrence.as_deref()),
        }
    }
}

/// `daily`/`weekly` → the domain's recurrence.
pub fn recurrence_of(s: Option<&str>) -> Option<Recurrence> {
    match s {
        Some("daily") => Some(Recurrence::Daily),
        Some("weekly") => Some(Recurrence::Weekly),
        _ => None,
    }
}

/// An alert a window held back.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct SuppressedAlert {
    /// Id.
    pub id: Uuid,
    /// The window.
    pub window_id: Uuid,
    /// The rule (device rule, site rule or plugin assignment).
    pub rule_id: Option<Uuid>,
    /// The device, when the alert was about one.
    pub device_id: Option<Uuid>,
    /// The site, when known.
    pub site_id: Option<Uuid>,
    /// `device_rule`, `site_rule`, `plugin` or `fleet`.
    pub source: String,
    /// Severity it would have had.
    pub severity: String,
    /// Message it would have had.
    pub message: String,
    /// When it would have fired.
    pub at: DateTime<Utc>,
}

/// An alert to record as held back.
#[derive(Debug, Clone, PartialEq)]
pub struct Suppression {
    /// The window.
    pub window: WindowId,
    /// The rule.
    pub rule: Option<Uuid>,
    /// The device.
    pub device: Option<DeviceId>,
    /// The site.
    pub site: Option<SiteId>,
    /// `device_rule`, `site_rule`, `plugin` or `fleet`.
    pub source: &'static str,
    /// Severity.
    pub severity: tod_core::alerts::Severity,
    /// Message.
    pub message: String,
    /// When.
    pub at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct WindowRow {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) name: String,
    pub(crate) device_ids: String,
    pub(crate) site_ids: String,
    pub(crate) start_at: DateTime<Utc>,
    pub(crate) end_at: DateTime<Utc>,
    pub(crate) recurrence: Option<String>,
    pub(crate) suppress_alerts: bool,
    pub(crate) notes: Option<String>,
    pub(crate) created_by: Option<Uuid>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

fn ids<T: From<Uuid>>(json: &str) -> Vec<T> {
    serde_json::from_str::<Vec<Uuid>>(json)
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable id list in a maintenance window");
            Vec::new()
        })
        .into_iter()
        .map(T::from)
        .collect()
}

pub(crate) fn ids_json(ids: impl Iterator<Item = Uuid>) -> String {
    let v: Vec<Uuid> = ids.collect();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
}

impl From<WindowRow> for Window {
    fn from(r: WindowRow) -> Self {
        Window {
            id: WindowId(r.id),
            tenant_id: TenantId(r.tenant_id),
            name: r.name,
            device_ids: ids(&r.device_ids),
            site_ids: ids(&r.site_ids),
            start_at: r.start_at,
            end_at: r.end_at,
            recurrence: r.recurrence,
            suppress_alerts: r.suppress_alerts,
            notes: r.notes,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Maintenance windows and suppressed alerts.
#[async_trait::async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// Stores a new window (its devices and sites must be the tenant's); `window.id`,
    /// `created_at` and `updated_at` are taken as given.
    async fn create_window(&self, window: &Window) -> Result<Window, StoreError>;

    /// A tenant's windows, latest start first.
    async fn list_windows(&self, tenant: TenantId) -> Result<Vec<Window>, StoreError>;

    /// One window.
    async fn get_window(&self, tenant: TenantId, id: WindowId) -> Result<Window, StoreError>;

    /// Replaces a window's fields (the devices and sites must be the tenant's).
    async fn update_window(&self, window: &Window) -> Result<Window, StoreError>;

    /// Deletes a window and its record of suppressed alerts.
    async fn delete_window(&self, tenant: TenantId, id: WindowId) -> Result<(), StoreError>;

    /// The suppressing windows that may be in effect at some instant in `[from, to]`.
    async fn suppressing_windows(
        &self,
        tenant: TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<MaintenanceWindow>, StoreError>;

    /// Records alerts a window held back.
    async fn record_suppressed(&self, tenant: TenantId, rows: &[Suppression]) -> Result<(), StoreError>;

    /// What a window held back, newest first, at most `limit`.
    async fn suppressed_alerts(
        &self,
        tenant: TenantId,
        window: WindowId,
        limit: i64,
    ) -> Result<Vec<SuppressedAlert>, StoreError>;
}

/// The window reads and suppression writes an open transaction needs (ingest judges device rules
/// inside its own transaction).
macro_rules! impl_maintenance_tx {
    () => {
        async fn windows_in(
            tx: &mut Tx,
            tenant: TenantId,
            from: DateTime<Utc>,
            to: DateTime<Utc>,
        ) -> Result<Vec<tod_core::alerts::MaintenanceWindow>, StoreError> {
            let rows: Vec<WindowRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE tenant_id = $1 AND suppress_alerts = $2 \
                 AND start_at <= $3 AND (recurrence IS NOT NULL OR end_at > $4) ORDER BY start_at, id"
            )))
            .bind(tenant.0)
            .bind(true)
            .bind(micros(to))
            .bind(micros(from))
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
            Ok(rows.into_iter().map(|r| Window::from(r).to_domain()).collect())
        }

        async fn insert_suppressed(tx: &mut Tx, tenant: TenantId, rows: &[Suppression]) -> Result<(), StoreError> {
            for s in rows {
                sqlx::query(
                    "INSERT INTO suppressed_alerts (id, tenant_id, window_id, rule_id, device_id, site_id, source, \
                     severity, message, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(Uuid::new_v4())
                .bind(tenant.0)
                .bind(s.window.0)
                .bind(s.rule)
                .bind(s.device.map(|d| d.0))
                .bind(s.site.map(|d| d.0))
                .bind(s.source)
                .bind(s.severity.as_str())
                .bind(&s.message)
                .bind(micros(s.at))
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            }
            Ok(())
        }

        /// Refuses devices and sites that are not the tenant's (§12.16).
        async fn window_targets_of_tenant(tx: &mut Tx, w: &Window) -> Result<(), StoreError> {
            for d in &w.device_ids {
                let found: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM devices WHERE tenant_id = $1 AND id = $2")
                    .bind(w.tenant_id.0)
                    .bind(d.0)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(map_err)?;
                if found.is_none() {
                    return Err(StoreError::Invalid(format!(
                        "device_ids: {d} is not a device of this tenant"
                    )));
                }
            }
            for s in &w.site_ids {
                if !site_is_tenants(tx, w.tenant_id, *s).await? {
                    return Err(StoreError::Invalid(format!(
                        "site_ids: {s} is not a site of this tenant"
                    )));
                }
            }
            Ok(())
        }
    };
}
pub(crate) use impl_maintenance_tx;

/// Writes `impl MaintenanceStore` for a backend type.
macro_rules! impl_maintenance_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl MaintenanceStore for $store {
            async fn create_window(&self, w: &Window) -> Result<Window, StoreError> {
                let (_g, mut tx) = self.wtx(Some(w.tenant_id)).await?;
                window_targets_of_tenant(&mut tx, w).await?;
                let row: WindowRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO maintenance_windows ({WINDOW_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {WINDOW_COLUMNS}"
                )))
                .bind(w.id.0)
                .bind(w.tenant_id.0)
                .bind(w.name.trim())
                .bind(ids_json(w.device_ids.iter().map(|d| d.0)))
                .bind(ids_json(w.site_ids.iter().map(|d| d.0)))
                .bind(micros(w.start_at))
                .bind(micros(w.end_at))
                .bind(w.recurrence.as_deref())
                .bind(w.suppress_alerts)
                .bind(w.notes.as_deref())
                .bind(w.created_by)
                .bind(micros(w.created_at))
                .bind(micros(w.updated_at))
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(row.into())
            }

            async fn list_windows(&self, tenant: TenantId) -> Result<Vec<Window>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<WindowRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE tenant_id = $1 ORDER BY start_at DESC, id"
                )))
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(Window::from).collect())
            }

            async fn get_window(&self, tenant: TenantId, id: WindowId) -> Result<Window, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let row: Option<WindowRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE tenant_id = $1 AND id = $2"
                )))
                .bind(tenant.0)
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                row.map(Window::from).ok_or(StoreError::NotFound("Maintenance window"))
            }

            async fn update_window(&self, w: &Window) -> Result<Window, StoreError> {
                let (_g, mut tx) = self.wtx(Some(w.tenant_id)).await?;
                window_targets_of_tenant(&mut tx, w).await?;
                let row: Option<WindowRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE maintenance_windows SET name = $3, device_ids = $4, site_ids = $5, start_at = $6, \
                     end_at = $7, recurrence = $8, suppress_alerts = $9, notes = $10, updated_at = $11 \
                     WHERE tenant_id = $1 AND id = $2 RETURNING {WINDOW_COLUMNS}"
                )))
                .bind(w.tenant_id.0)
                .bind(w.id.0)
                .bind(w.name.trim())
                .bind(ids_json(w.device_ids.iter().map(|d| d.0)))
                .bind(ids_json(w.site_ids.iter().map(|d| d.0)))
                .bind(micros(w.start_at))
                .bind(micros(w.end_at))
                .bind(w.recurrence.as_deref())
                .bind(w.suppress_alerts)
                .bind(w.notes.as_deref())
                .bind(micros(w.updated_at))
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let row = row.ok_or(StoreError::NotFound("Maintenance window"))?;
                tx.commit().await.map_err(map_err)?;
                Ok(row.into())
            }

            async fn delete_window(&self, tenant: TenantId, id: WindowId) -> Result<(), StoreError> {
                let (_g, mut tx) = self.wtx(Some(tenant)).await?;
                let done = sqlx::query("DELETE FROM maintenance_windows WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("Maintenance window"));
                }
                tx.commit().await.map_err(map_err)?;
                Ok(())
            }

            async fn suppressing_windows(
                &self,
                tenant: TenantId,
                from: DateTime<Utc>,
                to: DateTime<Utc>,
            ) -> Result<Vec<tod_core::alerts::MaintenanceWindow>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                windows_in(&mut tx, tenant, from, to).await
            }

            async fn record_suppressed(&self, tenant: TenantId, rows: &[Suppression]) -> Result<(), StoreError> {
                if rows.is_empty() {
                    return Ok(());
                }
                let (_g, mut tx) = self.wtx(Some(tenant)).await?;
                insert_suppressed(&mut tx, tenant, rows).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(())
            }

            async fn suppressed_alerts(
                &self,
                tenant: TenantId,
                window: WindowId,
                limit: i64,
            ) -> Result<Vec<SuppressedAlert>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                sqlx::query_as(
                    "SELECT id, window_id, rule_id, device_id, site_id, source, severity, message, at \
                     FROM suppressed_alerts WHERE tenant_id = $1 AND window_id = $2 ORDER BY at DESC, id LIMIT $3",
                )
                .bind(tenant.0)
                .bind(window.0)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)
            }
        }
    };
}
pub(crate) use impl_maintenance_store;
