//! Radio and traffic history: per report, one row per radio (tod-core's
//! [`tod_core::wireless::RadioSummary`]) and one per interface with the bytes it moved; and the
//! reads over them — the latest RF state per radio, every radio's current state for the
//! wireless-issues lists, and raw samples for the metrics series (the API buckets them). Written
//! once for both backends: [`impl_radio_store!`] expands in each, and [`impl_radio_ingest!`]
//! gives the ingest transaction its writer.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::telemetry::RadioRole;
use tod_core::wireless::RadioSummary;
use tod_core::{DeviceId, TenantId};
use uuid::Uuid;

use super::StoreError;

/// Rows per multi-row insert (14 columns: well inside SQLite's parameter limit).
pub(crate) const RADIO_ROWS_PER_INSERT: usize = 500;

/// The columns of `radio_stats` after the tenant, device and time.
pub(crate) const RADIO_COLUMNS: &str = "interface, role, noise_floor_dbm, frequency_mhz, channel_width_mhz, \
     tx_power_dbm, registered_clients, clients, signal_avg_dbm, signal_min_dbm, ccq_avg";

/// A radio's latest RF monitor reading.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RfStat {
    /// Radio interface.
    pub interface: String,
    /// `access_point` or `station`, when the agent could tell.
    pub role: Option<String>,
    /// Noise floor, dBm.
    pub noise_floor: Option<i16>,
    /// Frequency, MHz.
    pub frequency: Option<i32>,
    /// Channel width, MHz (a number; the original typed it so and then served text).
    pub channel_width: Option<i32>,
    /// Transmit power, dBm.
    pub tx_power: Option<i16>,
    /// Registered clients as the RF monitor counted them.
    pub registered_clients: Option<i32>,
    /// Clients in the registration table.
    pub clients: i32,
    /// Mean client signal, dBm.
    pub signal_avg: Option<f64>,
    /// Mean CCQ, percent (none on RouterOS v7).
    pub ccq_avg: Option<f64>,
    /// When the radio was last reported.
    pub last_seen: DateTime<Utc>,
}

/// One radio's latest state and whether it had clients lately, for the issue lists.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentRadio {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Tenant name.
    pub tenant_name: String,
    /// Device.
    pub device_id: DeviceId,
    /// Device name.
    pub hostname: String,
    /// Whether the device's last poll answered.
    pub online: bool,
    /// When this summary was collected.
    pub at: DateTime<Utc>,
    /// The summary.
    pub summary: RadioSummary,
    /// Whether the radio had a client within the was-active window.
    pub had_clients: bool,
}

/// A health sample for the metrics series.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct HealthSample {
    /// When collected.
    pub collected_at: DateTime<Utc>,
    /// CPU load, percent.
    pub cpu_load: Option<f64>,
    /// Free memory, bytes.
    pub free_memory: Option<i64>,
    /// Total memory, bytes.
    pub total_memory: Option<i64>,
    /// Temperature, °C.
    pub temperature_c: Option<f64>,
    /// Uptime, seconds.
    pub uptime_secs: Option<i64>,
    /// Poll outcome.
    pub status: String,
}

/// Bytes an interface moved since the report before.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TrafficSample {
    /// When collected.
    pub collected_at: DateTime<Utc>,
    /// Interface.
    pub interface: String,
    /// Received bytes.
    pub rx_bytes: i64,
    /// Sent bytes.
    pub tx_bytes: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct RadioRow {
    pub(crate) collected_at: DateTime<Utc>,
    pub(crate) interface: String,
    pub(crate) role: Option<String>,
    pub(crate) noise_floor_dbm: Option<i16>,
    pub(crate) frequency_mhz: Option<i32>,
    pub(crate) channel_width_mhz: Option<i32>,
    pub(crate) tx_power_dbm: Option<i16>,
    pub(crate) registered_clients: Option<i32>,
    pub(crate) clients: i32,
    pub(crate) signal_avg_dbm: Option<f64>,
    pub(crate) signal_min_dbm: Option<i16>,
    pub(crate) ccq_avg: Option<f64>,
}

impl RadioRow {
    pub(crate) fn summary(&self) -> RadioSummary {
        RadioSummary {
            interface: self.interface.clone(),
            role: self.role.as_deref().and_then(role_of),
            noise_floor_dbm: self.noise_floor_dbm,
            frequency_mhz: self.frequency_mhz.and_then(|v| u32::try_from(v).ok()),
            channel_width_mhz: self.channel_width_mhz.and_then(|v| u16::try_from(v).ok()),
            tx_power_dbm: self.tx_power_dbm,
            registered_clients: self.registered_clients.and_then(|v| u32::try_from(v).ok()),
            clients: u32::try_from(self.clients).unwrap_or(0),
            signal_avg_dbm: self.signal_avg_dbm,
            signal_min_dbm: self.signal_min_dbm,
            ccq_avg: self.ccq_avg,
        }
    }
}

impl From<RadioRow> for RfStat {
    fn from(r: RadioRow) -> Self {
        RfStat {
            interface: r.interface,
            role: r.role,
            noise_floor: r.noise_floor_dbm,
            frequency: r.frequency_mhz,
            channel_width: r.channel_width_mhz,
            tx_power: r.tx_power_dbm,
            registered_clients: r.registered_clients,
            clients: r.clients,
            signal_avg: r.signal_avg_dbm,
            ccq_avg: r.ccq_avg,
            last_seen: r.collected_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CurrentRow {
    pub(crate) tenant_id: Uuid,
    pub(crate) tenant_name: String,
    pub(crate) device_id: Uuid,
    pub(crate) hostname: String,
    pub(crate) status: String,
    pub(crate) had_clients: bool,
    #[sqlx(flatten)]
    pub(crate) radio: RadioRow,
}

impl From<CurrentRow> for CurrentRadio {
    fn from(r: CurrentRow) -> Self {
        CurrentRadio {
            tenant_id: TenantId(r.tenant_id),
            tenant_name: r.tenant_name,
            device_id: DeviceId(r.device_id),
            hostname: r.hostname,
            online: r.status == "online",
            at: r.radio.collected_at,
            summary: r.radio.summary(),
            had_clients: r.had_clients,
        }
    }
}

pub(crate) fn role_str(role: RadioRole) -> &'static str {
    match role {
        RadioRole::AccessPoint => "access_point",
        RadioRole::Station => "station",
    }
}

fn role_of(s: &str) -> Option<RadioRole> {
    match s {
        "access_point" => Some(RadioRole::AccessPoint),
        "station" => Some(RadioRole::Station),
        _ => None,
    }
}

/// Radio and traffic reads.
#[async_trait::async_trait]
pub trait RadioStore: Send + Sync {
    /// The latest reading of each of a device's radios, by interface name.
    async fn rf_stats(&self, tenant: TenantId, device: DeviceId) -> Result<Vec<RfStat>, StoreError>;

    /// Every radio's latest summary since `since`, with whether it had clients since
    /// `active_since`; one tenant's, or every tenant's for `None`.
    async fn current_radios(
        &self,
        tenant: Option<TenantId>,
        since: DateTime<Utc>,
        active_since: DateTime<Utc>,
    ) -> Result<Vec<CurrentRadio>, StoreError>;

    /// A device's health samples in `[from, to)`, oldest first.
    async fn health_samples(
        &self,
        tenant: TenantId,
        device: DeviceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HealthSample>, StoreError>;

    /// A device's traffic samples in `[from, to)` (one interface, or all), oldest first.
    async fn traffic_samples(
        &self,
        tenant: TenantId,
        device: DeviceId,
        interface: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<TrafficSample>, StoreError>;

    /// A device's radio summaries in `[from, to)`, oldest first.
    async fn radio_samples(
        &self,
        tenant: TenantId,
        device: DeviceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, RadioSummary)>, StoreError>;
}

/// The ingest transaction's writer of radio and traffic rows.
macro_rules! impl_radio_ingest {
    () => {
        /// One `radio_stats` row per radio and one `interface_traffic` row per counter delta of
        /// every report in the batch.
        async fn insert_radio_and_traffic(
            tx: &mut Tx,
            tenant: TenantId,
            batch: &tod_core::telemetry::Batch,
        ) -> Result<(), StoreError> {
            let radios: Vec<_> = batch
                .reports
                .iter()
                .flat_map(|r| {
                    tod_core::wireless::summarize(r)
                        .into_iter()
                        .map(move |s| (r.device_id, r.collected_at, s))
                })
                .collect();
            for chunk in radios.chunks(RADIO_ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                    "INSERT INTO radio_stats (tenant_id, device_id, collected_at, {RADIO_COLUMNS}) "
                ));
                q.push_values(chunk, |mut b, (device, at, s)| {
                    b.push_bind(tenant.0)
                        .push_bind(device.0)
                        .push_bind(micros(*at))
                        .push_bind(s.interface.clone())
                        .push_bind(s.role.map(role_str))
                        .push_bind(s.noise_floor_dbm)
                        .push_bind(s.frequency_mhz.and_then(|v| i32::try_from(v).ok()))
                        .push_bind(s.channel_width_mhz.map(i32::from))
                        .push_bind(s.tx_power_dbm)
                        .push_bind(s.registered_clients.and_then(|v| i32::try_from(v).ok()))
                        .push_bind(i32::try_from(s.clients).unwrap_or(i32::MAX))
                        .push_bind(s.signal_avg_dbm)
                        .push_bind(s.signal_min_dbm)
                        .push_bind(s.ccq_avg);
                });
                q.build().execute(&mut **tx).await.map_err(map_err)?;
            }
            let deltas: Vec<_> = batch
                .reports
                .iter()
                .flat_map(|r| r.interface_deltas.iter().map(move |d| (r, d)))
                .collect();
            for chunk in deltas.chunks(RADIO_ROWS_PER_INSERT) {
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO interface_traffic (tenant_id, device_id, collected_at, interface, rx_bytes, tx_bytes) ",
                );
                q.push_values(chunk, |mut b, (r, d)| {
                    b.push_bind(tenant.0)
                        .push_bind(r.device_id.0)
                        .push_bind(micros(r.collected_at))
                        .push_bind(d.interface.clone())
                        .push_bind(i64_of(d.rx_bytes))
                        .push_bind(i64_of(d.tx_bytes));
                });
                q.build().execute(&mut **tx).await.map_err(map_err)?;
            }
            Ok(())
        }
    };
}
pub(crate) use impl_radio_ingest;

/// Writes `impl RadioStore` for a backend type.
macro_rules! impl_radio_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl RadioStore for $store {
            async fn rf_stats(&self, tenant: TenantId, device: DeviceId) -> Result<Vec<RfStat>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let sql = format!(
                    "SELECT r.collected_at, {} FROM radio_stats r \
                     JOIN (SELECT interface, MAX(collected_at) AS latest FROM radio_stats \
                           WHERE tenant_id = $1 AND device_id = $2 GROUP BY interface) l \
                       ON l.interface = r.interface AND l.latest = r.collected_at \
                     WHERE r.tenant_id = $1 AND r.device_id = $2 ORDER BY r.interface",
                    prefixed("r", RADIO_COLUMNS)
                );
                let rows: Vec<RadioRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(tenant.0)
                    .bind(device.0)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Ok(rows.into_iter().map(RfStat::from).collect())
            }

            async fn current_radios(
                &self,
                tenant: Option<TenantId>,
                since: DateTime<Utc>,
                active_since: DateTime<Utc>,
            ) -> Result<Vec<CurrentRadio>, StoreError> {
                let mut tx = self.tx(tenant).await?;
                let sql = format!(
                    "SELECT t.id AS tenant_id, t.name AS tenant_name, d.id AS device_id, d.name AS hostname, \
                     d.status, r.collected_at, {}, \
                     EXISTS (SELECT 1 FROM radio_stats p WHERE p.tenant_id = r.tenant_id AND p.device_id = r.device_id \
                             AND p.interface = r.interface AND p.collected_at > $3 AND p.clients > 0) AS had_clients \
                     FROM radio_stats r \
                     JOIN (SELECT device_id, interface, MAX(collected_at) AS latest FROM radio_stats \
                           WHERE ($1 IS NULL OR tenant_id = $1) AND collected_at > $2 GROUP BY device_id, interface) l \
                       ON l.device_id = r.device_id AND l.interface = r.interface AND l.latest = r.collected_at \
                     JOIN devices d ON d.id = r.device_id \
                     JOIN tenants t ON t.id = r.tenant_id \
                     WHERE ($1 IS NULL OR r.tenant_id = $1)",
                    prefixed("r", RADIO_COLUMNS)
                );
                let rows: Vec<CurrentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(tenant.map(|t| t.0))
                    .bind(micros(since))
                    .bind(micros(active_since))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Ok(rows.into_iter().map(CurrentRadio::from).collect())
            }

            async fn health_samples(
                &self,
                tenant: TenantId,
                device: DeviceId,
                from: DateTime<Utc>,
                to: DateTime<Utc>,
            ) -> Result<Vec<HealthSample>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                sqlx::query_as(
                    "SELECT collected_at, cpu_load, free_memory, total_memory, temperature_c, uptime_secs, status \
                     FROM device_metrics WHERE tenant_id = $1 AND device_id = $2 \
                     AND collected_at >= $3 AND collected_at < $4 ORDER BY collected_at",
                )
                .bind(tenant.0)
                .bind(device.0)
                .bind(micros(from))
                .bind(micros(to))
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)
            }

            async fn traffic_samples(
                &self,
                tenant: TenantId,
                device: DeviceId,
                interface: Option<&str>,
                from: DateTime<Utc>,
                to: DateTime<Utc>,
            ) -> Result<Vec<TrafficSample>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                sqlx::query_as(
                    "SELECT collected_at, interface, rx_bytes, tx_bytes FROM interface_traffic \
                     WHERE tenant_id = $1 AND device_id = $2 AND collected_at >= $3 AND collected_at < $4 \
                     AND ($5 IS NULL OR interface = $5) ORDER BY collected_at, interface",
                )
                .bind(tenant.0)
                .bind(device.0)
                .bind(micros(from))
                .bind(micros(to))
                .bind(interface)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)
            }

            async fn radio_samples(
                &self,
                tenant: TenantId,
                device: DeviceId,
                from: DateTime<Utc>,
                to: DateTime<Utc>,
            ) -> Result<Vec<(DateTime<Utc>, tod_core::wireless::RadioSummary)>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let sql = format!(
                    "SELECT collected_at, {RADIO_COLUMNS} FROM radio_stats WHERE tenant_id = $1 AND device_id = $2 \
                     AND collected_at >= $3 AND collected_at < $4 ORDER BY collected_at, interface"
                );
                let rows: Vec<RadioRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(tenant.0)
                    .bind(device.0)
                    .bind(micros(from))
                    .bind(micros(to))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Ok(rows.into_iter().map(|r| (r.collected_at, r.summary())).collect())
            }
        }
    };
}
pub(crate) use impl_radio_store;

/// `a, b` → `p.a, p.b`.
pub(crate) fn prefixed(prefix: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{prefix}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
