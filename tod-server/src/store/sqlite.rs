//! The SQLite backend: one file, WAL journal, foreign keys on, created on first start. SQLite has
//! one writer at a time; write transactions queue on a mutex here instead of failing busy.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Connection, Sqlite, SqlitePool};
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
    AgentRow, ClientEntry, ClientRow, DeviceFilter, DeviceRow, DeviceUpdate, KnownDevice, LINK_COLUMNS, LINKS_JSON,
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
/// An hourly sum's `hour` as whole Unix seconds, likewise.
const HOUR_EPOCH_SECS: &str = "unixepoch(hour)";
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
     SUM(r.collected_at >= $4), SUM(CASE WHEN r.collected_at < $6 THEN r.signal_dbm ELSE 0 END), \
     SUM(r.collected_at < $6) FROM devices d CROSS JOIN registrations r \
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
    /// Copies the WAL back into the database beside the writer, until the last clone goes.
    _checkpointer: Arc<Checkpointer>,
    /// What link discovery read, kept while the database's versions say it holds.
    link_cache: Arc<super::link_cache::LinkCache>,
}

/// How often a connection of its own copies committed WAL frames into the database file. With
/// SQLite's default, the writer itself does it inside the commit that takes the WAL past 1 000
/// pages — with a thousand clients' index pages dirtied per tower batch, that was every commit,
/// and half of the ingest's commit time. Beside it, the copy runs on the other core, and a page
/// written by several batches in between is copied once.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// The writer still checkpoints itself past this many WAL pages (64 MiB of 4 KiB pages), should
/// the checkpointer fall behind (long readers keep it from finishing).
const WRITER_CHECKPOINT_PAGES: i64 = 16_384;
/// The WAL file is cut back to this size when it starts over.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// The checkpointing task; stopped when dropped.
#[derive(Debug)]
struct Checkpointer(tokio::task::JoinHandle<()>);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a passive checkpoint every [`CHECKPOINT_EVERY`]: it never blocks the writer or readers,
/// and copies what no reader still needs.
async fn checkpoint_wal(mut conn: sqlx::SqliteConnection) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut conn).await {
            tracing::warn!(error = %e, "SQLite WAL checkpoint failed; the writer checkpoints past its bound");
        }
    }
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
            .connect_with(
                opts.clone()
                    .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
                    // Multi-row statements keep each page's prior image for their own rollback
                    // (the statement journal): in memory, not through a temporary file.
                    .pragma("temp_store", "memory")
                    .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string())
                    .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES.to_string()),
            )
            .await
            .map_err(map_err)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&write_pool)
            .await
            .map_err(|e| StoreError::Other(format!("migrations: {e}")))?;
        let checkpoints = sqlx::SqliteConnection::connect_with(&opts).await.map_err(map_err)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(map_err)?;
        Ok(Self {
            pool,
            write_pool,
            writer: Arc::new(Mutex::new(())),
            _checkpointer: Arc::new(Checkpointer(tokio::spawn(checkpoint_wal(checkpoints)))),
            link_cache: Default::default(),
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

/// Rows per statement when rows travel as one JSON parameter (a batch is bounded only by its
/// 64 MiB body; this bounds the text SQLite parses at once).
const JSON_ROWS_PER_STATEMENT: usize = 5_000;

/// The text sqlx-sqlite stores for a `DateTime<Utc>` (RFC 3339, `+00:00`), so times written as
/// JSON compare with times written as binds (SQLite compares them as text).
fn sql_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// A value as JSON text for a statement's parameter.
fn json_text(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Other(format!("encoding rows as JSON: {e}")))
}

/// Runs `sql` (the tenant `$1`, the rows `$2` as one JSON array of arrays for `jsonb_each`) over
/// `items`, each made a row by `row`, [`JSON_ROWS_PER_STATEMENT`] at a time.
async fn write_as_json<T, R: serde::Serialize>(
    tx: &mut Tx,
    tenant: TenantId,
    items: &[T],
    sql: &str,
    row: impl Fn(&T) -> R,
) -> Result<(), StoreError> {
    for chunk in items.chunks(JSON_ROWS_PER_STATEMENT) {
        let rows = json_text(&chunk.iter().map(&row).collect::<Vec<R>>())?;
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(tenant.0)
            .bind(rows)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// Registration rows as one JSON parameter that SQLite unpacks with `jsonb_each`, the way
/// PostgreSQL takes arrays: 1 000 rows as 13 000 binds cost about as much to bind as to insert.
async fn insert_registrations(tx: &mut Tx, tenant: TenantId, rows: &[RegistrationRow<'_>]) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO registrations ({REGISTRATION_COLUMNS}) SELECT $1, unhex(value->>0), value->>1, \
         value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8, value->>9, value->>10, \
         value->>11 FROM jsonb_each($2)"
    );
    write_as_json(tx, tenant, rows, &sql, |(r, g)| {
        (
            r.device_id.0.simple().to_string(),
            sql_time(micros(r.collected_at)),
            g.interface.as_str(),
            g.mac.to_string(),
            g.signal_dbm,
            g.tx_signal_dbm,
            g.tx_ccq.map(i16::from),
            g.tx_rate.as_deref(),
            g.rx_rate.as_deref(),
            g.uptime_secs.map(i64_of),
            g.distance_m.map(i64::from),
            g.last_ip.as_deref(),
        )
    })
    .await
}

/// Link upserts with the links as one JSON parameter, as registration rows, `conflict` the
/// `ON CONFLICT` clause ([`super::fleet::LinkWrite`]).
async fn upsert_links(
    tx: &mut Tx,
    tenant: TenantId,
    links: &[&tod_core::links::Link],
    conflict: &str,
) -> Result<(), StoreError> {
    // `WHERE true` tells SQLite's parser that ON CONFLICT is the upsert, not a join's ON.
    let sql = format!(
        "INSERT INTO wireless_links ({LINK_COLUMNS}) SELECT $1, unhex(value->>0), unhex(value->>1), \
         value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8, value->>9, value->>10, \
         value->>11, value->>12 FROM jsonb_each($2) WHERE true{conflict}"
    );
    write_as_json(tx, tenant, links, &sql, |l| {
        (
            l.key.ap.0.simple().to_string(),
            l.key.cpe.0.simple().to_string(),
            l.interface.as_str(),
            l.client_mac.to_string(),
            l.signal_dbm,
            l.tx_ccq.map(i16::from),
            l.tx_rate.as_deref(),
            l.rx_rate.as_deref(),
            l.state.as_str(),
            i64::from(l.missed_polls),
            sql_time(micros(l.discovered_at)),
            sql_time(micros(l.last_seen)),
            sql_time(micros(l.state_since)),
        )
    })
    .await
}

/// Writes the per-poll values of links whose state did not change ([`super::fleet::LinkWrite`]):
/// an upsert that assigns only those columns.
async fn write_readings(tx: &mut Tx, tenant: TenantId, links: &[&tod_core::links::Link]) -> Result<(), StoreError> {
    upsert_links(tx, tenant, links, super::fleet::LINK_READINGS_CONFLICT).await
}

/// The tenant's devices with an interface of one of these MACs, with the MAC: the MACs go in as
/// one JSON parameter and the answer comes back as one JSON array.
async fn mac_owners(
    tx: &mut Tx,
    tenant: TenantId,
    macs: &std::collections::BTreeSet<String>,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    let macs = json_text(macs)?;
    let json: String = sqlx::query_scalar(
        "SELECT json_group_array(json_array(hex(device_id), mac)) FROM device_interfaces \
         WHERE tenant_id = $1 AND mac IN (SELECT value FROM json_each($2))",
    )
    .bind(tenant.0)
    .bind(macs)
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)?;
    let pairs: Vec<(String, String)> = serde_json::from_str(&json).map_err(|e| StoreError::Other(e.to_string()))?;
    pairs
        .into_iter()
        .map(|(id, mac)| {
            Uuid::try_parse(&id)
                .map(|id| (id, mac))
                .map_err(|e| StoreError::Other(format!("an interface's device id: {e}")))
        })
        .collect()
}

/// Every link whose `end` (`ap_device_id` or `cpe_device_id`) is one of `ids`, as one JSON
/// array ([`LinkRow::from_json_arrays`]).
async fn links_by(
    tx: &mut Tx,
    tenant: TenantId,
    end: super::fleet::LinkEnd,
    ids: &[Uuid],
) -> Result<Vec<LinkRow>, StoreError> {
    let sql = format!(
        "SELECT json_group_array({LINKS_JSON}) FROM wireless_links WHERE tenant_id = $1 AND {} IN ({})",
        end.column(),
        placeholders(2, ids.len())
    );
    let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(tenant.0);
    for id in ids {
        q = q.bind(*id);
    }
    LinkRow::from_json_arrays(&q.fetch_one(&mut **tx).await.map_err(map_err)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn times_written_as_json_are_the_text_sqlx_binds() {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        let whole = DateTime::parse_from_rfc3339("2026-11-29T15:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for t in [
            whole,
            whole + chrono::Duration::milliseconds(250),
            whole + chrono::Duration::microseconds(123_456),
            whole + chrono::Duration::microseconds(1),
        ] {
            let bound: String = sqlx::query_scalar("SELECT $1").bind(t).fetch_one(&pool).await.unwrap();
            assert_eq!(sql_time(t), bound);
            let through_json: String = sqlx::query_scalar("SELECT value->>0 FROM json_each($1)")
                .bind(serde_json::to_string(&[[sql_time(t)]]).unwrap())
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(through_json, bound, "JSON carries the text unchanged");
        }
    }
}
