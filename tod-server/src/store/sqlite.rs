//! The SQLite backend: one file, WAL journal, foreign keys on, created on first start. SQLite has
//! one writer at a time; write transactions queue on a mutex here instead of failing busy.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Sqlite, SqlitePool};
use tod_core::alerts::{DeviceRule, Hysteresis, Metric, ResolveReason, SiteRule, SiteRuleKind, Snapshot};
use tod_core::{AgentId, ApiKeyId, DeviceId, GroupId, RuleId, SectorId, SiteId, TenantId, UserId, WindowId};
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use super::device_alerts::{
    ALERT_RULE_COLUMNS, AlertFilter, AlertRule, AlertRuleRow, DEVICE_ALERT_SELECT, DeviceAlert, DeviceAlertStore,
    impl_device_alert_store, impl_device_alerts, reason_str, rule_names, same_test, scope_device, scope_group,
};
use super::device_sets::{DeviceSet, DeviceSetStore, SetFields, SetKind, SetRow, impl_device_set_store, set_conflict};
use super::events::{DeviceEvent, EVENT_TIMELINE, EventFilter, EventStore, impl_event_store};
use super::fleet::{
    AgentRow, ClientEntry, ClientRow, DeviceFilter, DeviceRow, DeviceUpdate, KnownDevice, LINK_COLUMNS, LINK_CONFLICT,
    LinkRow, REGISTRATION_COLUMNS, REGISTRATION_ROWS_PER_INSERT, RegistrationRow, Sector, SectorFields, SectorRow,
    SiteAlertEvent, SiteAlertRow, TunnelPeer, TunnelPeerRow, WirelessLink, i64_of, impl_discover_links,
    impl_fleet_store, lowest_free, placeholders, status_str,
};
use super::maintenance::{
    MaintenanceStore, SuppressedAlert, Suppression, WINDOW_COLUMNS, Window, WindowRow, ids_json,
    impl_maintenance_store, impl_maintenance_tx,
};
use super::plugins::{
    ASSIGNMENT_COLUMNS, AssignmentRow, HISTORY_LIMIT, NewPlugin, PLUGIN_COLUMNS, Plugin, PluginAssignment,
    PluginConfig, PluginPatch, PluginRow, PluginStore, RunnablePlugin, attach, config_json, impl_plugin_store,
    parse_config,
};
use super::queries::{ApiKeyRow, AuditRow, Revocable, SessionRow, SiteRow, TenantRow, UserRow, impl_store, micros};
use super::radio::{
    CurrentRadio, CurrentRow, HealthSample, RADIO_COLUMNS, RADIO_ROWS_PER_INSERT, RadioRow, RadioStore, RfStat,
    TrafficSample, impl_radio_ingest, impl_radio_store, prefixed, role_str,
};
use super::site_alerts::{
    EventSource, OpenRuleEvent, OpenRuleRow, SITE_RULE_COLUMNS, SiteAlertChange, SiteAlertRule, SiteAlertStore,
    SiteRuleRow, impl_site_alert_store, needs_sector, same_judgement, sector_of, subject_columns,
};
use super::stream::{StreamEvent, StreamItem, StreamStore, impl_stream_store, impl_stream_tx};
use super::{
    Agent, Aging, ApiKey, Audit, AuditRecord, ChainCheck, Device, GENESIS_HASH, Ingested, LiveSession, NewApiKey,
    NewDevice, NewSite, NewUser, Rotation, Site, SrpChallenge, StoreError, Tenant, User, UserCredentials, UserPatch,
    link_hash, map_err,
};

type Db = sqlx::Sqlite;
/// `collected_at` as whole Unix seconds, in this backend's SQL (signal history buckets).
const EPOCH_SECS: &str = "unixepoch(collected_at)";
/// One hour's signal sums (`$1` its start, `$2` its end, `$3` a tenant or NULL for all), device by
/// device through the registrations' time index (CROSS JOIN fixes SQLite's join order; it
/// otherwise walks every registration of the fleet for each hour).
const SUM_SIGNAL_HOUR: &str = "INSERT INTO signal_hourly (tenant_id, device_id, mac, hour, signal_sum, samples, \
     signal_min, signal_max, zero_samples) SELECT r.tenant_id, r.device_id, r.mac, $1, SUM(r.signal_dbm), COUNT(*), \
     MIN(r.signal_dbm), MAX(r.signal_dbm), SUM(r.signal_dbm = 0) FROM devices d CROSS JOIN registrations r \
     WHERE r.tenant_id = d.tenant_id AND r.device_id = d.id AND r.collected_at >= $1 \
     AND r.collected_at < $2 AND r.signal_dbm IS NOT NULL AND ($3 IS NULL OR d.tenant_id = $3) \
     GROUP BY r.tenant_id, r.device_id, r.mac";
/// A trend's signal sums from the registrations over `[$2, $3)` (hours not summed, or dirty), per
/// AP and client MAC of the tenant `$1` (of one site `$5`), split at `$4`: recent sum and count,
/// then previous. Device by device, as above.
const TREND_RAW: &str = "SELECT r.device_id, r.mac, SUM(CASE WHEN r.collected_at >= $4 THEN r.signal_dbm ELSE 0 END), \
     SUM(r.collected_at >= $4), SUM(CASE WHEN r.collected_at < $4 THEN r.signal_dbm ELSE 0 END), \
     SUM(r.collected_at < $4) FROM devices d CROSS JOIN registrations r \
     WHERE d.tenant_id = $1 AND ($5 IS NULL OR d.site_id = $5) AND r.tenant_id = d.tenant_id \
     AND r.device_id = d.id AND r.collected_at >= $2 AND r.collected_at < $3 \
     AND r.signal_dbm IS NOT NULL AND r.signal_dbm <> 0 GROUP BY r.device_id, r.mac";
/// Nothing to set for the rollup's transactions.
const ROLLUP_SETUP: Option<&str> = None;

type Tx = sqlx::Transaction<'static, Sqlite>;

/// SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Connections for reads.
    pool: SqlitePool,
    /// The one connection every write transaction uses, one at a time (`writer`). Being the only
    /// writer keeps its page cache valid between transactions; a connection that another one
    /// wrote behind drops its whole cache at its next transaction and reads the pages again.
    write_pool: SqlitePool,
    writer: Arc<Mutex<()>>,
}

/// The writer's page cache, in KiB (SQLite's default is 2 MiB): a 20 000-device fleet's
/// indexes that every batch touches stay in memory.
const WRITER_CACHE_KIB: i64 = 32 * 1024;

impl SqliteStore {
    /// Opens (creating if needed) and migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let write_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone().pragma("cache_size", format!("-{WRITER_CACHE_KIB}")))
            .await
            .map_err(map_err)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&write_pool)
            .await
            .map_err(|e| StoreError::Other(format!("migrations: {e}")))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(map_err)?;
        Ok(Self {
            pool,
            write_pool,
            writer: Arc::new(Mutex::new(())),
        })
    }

    async fn ping_db(&self) -> Result<(), StoreError> {
        // Whatever the reason, a database that cannot answer `SELECT 1` is unavailable.
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// SQLite plans from its schema; nothing to gather.
    async fn analyze_changed(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    /// A read transaction. SQLite has no row-level security: the tenant filter in every query is
    /// the isolation, and the conformance suite checks it.
    async fn tx(&self, _tenant: Option<TenantId>) -> Result<Tx, StoreError> {
        self.pool.begin().await.map_err(map_err)
    }

    /// A write transaction, after the writers before it.
    async fn wtx(&self, _tenant: Option<TenantId>) -> Result<(OwnedMutexGuard<()>, Tx), StoreError> {
        let guard = self.writer.clone().lock_owned().await;
        Ok((guard, self.write_pool.begin().await.map_err(map_err)?))
    }

    /// Writers are already one at a time.
    async fn lock_chain(_tx: &mut Tx, _chain: TenantId) -> Result<(), StoreError> {
        Ok(())
    }
}

impl_store!(SqliteStore, "sqlite");
impl_fleet_store!(SqliteStore);
impl_discover_links!();
impl_site_alert_store!(SqliteStore);
impl_device_alert_store!(SqliteStore);
impl_device_alerts!();
impl_plugin_store!(SqliteStore);
impl_radio_store!(SqliteStore);
impl_radio_ingest!();
impl_maintenance_store!(SqliteStore);
impl_maintenance_tx!();
impl_device_set_store!(SqliteStore);
impl_event_store!(SqliteStore);
impl_stream_store!(SqliteStore);
super::notify::impl_notify_store!(SqliteStore);
super::trends::impl_trend_store!(SqliteStore);
impl_stream_tx!();

/// Registration rows in multi-row inserts of at most 1 000 rows (SQLite's parameter limit).
async fn insert_registrations(tx: &mut Tx, tenant: TenantId, rows: &[RegistrationRow<'_>]) -> Result<(), StoreError> {
    for chunk in rows.chunks(REGISTRATION_ROWS_PER_INSERT) {
        let mut q = sqlx::QueryBuilder::<Db>::new(format!("INSERT INTO registrations ({REGISTRATION_COLUMNS}) "));
        q.push_values(chunk, |mut b, (r, g)| {
            b.push_bind(tenant.0)
                .push_bind(r.device_id.0)
                .push_bind(micros(r.collected_at))
                .push_bind(g.interface.as_str())
                .push_bind(g.mac.to_string())
                .push_bind(g.signal_dbm)
                .push_bind(g.tx_signal_dbm)
                .push_bind(g.tx_ccq.map(i16::from))
                .push_bind(g.tx_rate.as_deref())
                .push_bind(g.rx_rate.as_deref())
                .push_bind(g.uptime_secs.map(i64_of))
                .push_bind(g.distance_m.map(i64::from))
                .push_bind(g.last_ip.as_deref());
        });
        q.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// Link upserts in multi-row statements.
async fn upsert_links(tx: &mut Tx, tenant: TenantId, links: &[&tod_core::links::Link]) -> Result<(), StoreError> {
    for chunk in links.chunks(REGISTRATION_ROWS_PER_INSERT) {
        let mut q = sqlx::QueryBuilder::<Db>::new(format!("INSERT INTO wireless_links ({LINK_COLUMNS}) "));
        q.push_values(chunk, |mut b, l| {
            b.push_bind(tenant.0)
                .push_bind(l.key.ap.0)
                .push_bind(l.key.cpe.0)
                .push_bind(l.interface.as_str())
                .push_bind(l.client_mac.to_string())
                .push_bind(l.signal_dbm)
                .push_bind(l.tx_ccq.map(i16::from))
                .push_bind(l.tx_rate.as_deref())
                .push_bind(l.rx_rate.as_deref())
                .push_bind(l.state.as_str())
                .push_bind(i64::from(l.missed_polls))
                .push_bind(micros(l.discovered_at))
                .push_bind(micros(l.last_seen))
                .push_bind(micros(l.state_since));
        });
        q.push(LINK_CONFLICT);
        q.build().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}
