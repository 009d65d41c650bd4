//! The PostgreSQL backend.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};
use tod_core::alerts::{DeviceRule, Hysteresis, Metric, ResolveReason, SiteRule, SiteRuleKind, Snapshot};
use tod_core::{AgentId, ApiKeyId, DeviceId, GroupId, RuleId, SectorId, SiteId, TenantId, UserId, WindowId};
use uuid::Uuid;

use super::device_alerts::{
    ALERT_RULE_COLUMNS, AlertFilter, AlertRule, AlertRuleRow, DEVICE_ALERT_SELECT, DeviceAlert, DeviceAlertStore,
    impl_device_alert_store, impl_device_alerts, reason_str, rule_names, same_test, scope_device, scope_group,
};
use super::device_sets::{DeviceSet, DeviceSetStore, SetFields, SetKind, SetRow, impl_device_set_store, set_conflict};
use super::events::{DeviceEvent, EVENT_TIMELINE, EventFilter, EventStore, impl_event_store};
use super::fleet::{
    AgentRow, ClientEntry, ClientRow, DeviceFilter, DeviceRow, DeviceUpdate, KnownDevice, LINK_COLUMNS, LinkRow,
    REGISTRATION_COLUMNS, REGISTRATION_ROWS_PER_INSERT, RegistrationRow, Sector, SectorFields, SectorRow,
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

type Db = Postgres;
/// `collected_at` as whole Unix seconds, in this backend's SQL (signal history buckets).
const EPOCH_SECS: &str = "FLOOR(EXTRACT(EPOCH FROM collected_at))::BIGINT";
/// An hourly sum's `hour` as whole Unix seconds, likewise.
const HOUR_EPOCH_SECS: &str = "FLOOR(EXTRACT(EPOCH FROM hour))::BIGINT";
/// One hour's signal sums (`$1` its start, `$2` its end, `$3` a tenant or NULL for all), device by
/// device through the registrations' time index: a LATERAL subquery per device keeps the
/// planner from scanning every registration for each hour.
const SUM_SIGNAL_HOUR: &str = "INSERT INTO signal_hourly (tenant_id, device_id, mac, hour, signal_sum, samples, \
     signal_min, signal_max, zero_samples) SELECT d.tenant_id, d.id, x.mac, $1, x.s, x.n, x.mn, x.mx, x.z FROM devices d \
     CROSS JOIN LATERAL (SELECT r.mac, SUM(r.signal_dbm) AS s, COUNT(*) AS n, MIN(r.signal_dbm) AS mn, \
     MAX(r.signal_dbm) AS mx, COUNT(*) FILTER (WHERE r.signal_dbm = 0) AS z FROM registrations r WHERE r.tenant_id = d.tenant_id AND r.device_id = d.id \
     AND r.collected_at >= $1 AND r.collected_at < $2 AND r.signal_dbm IS NOT NULL GROUP BY r.mac) x \
     WHERE ($3::uuid IS NULL OR d.tenant_id = $3)";
/// A trend's signal sums from the registrations over `[$2, $3)` (hours not summed, or dirty), per
/// AP and client MAC of the tenant `$1` (of one site `$5`), split at `$4`: recent sum and count,
/// then previous. Device by device, as above: the planner otherwise scans the tenant's rows.
const TREND_RAW: &str = "SELECT d.id, x.mac, x.rs, x.rn, x.ps, x.pn FROM devices d CROSS JOIN LATERAL \
     (SELECT r.mac, SUM(CASE WHEN r.collected_at >= $4 THEN r.signal_dbm ELSE 0 END) AS rs, \
     COUNT(*) FILTER (WHERE r.collected_at >= $4) AS rn, \
     SUM(CASE WHEN r.collected_at < $6 THEN r.signal_dbm ELSE 0 END) AS ps, \
     COUNT(*) FILTER (WHERE r.collected_at < $6) AS pn FROM registrations r \
     WHERE r.tenant_id = d.tenant_id AND r.device_id = d.id AND r.collected_at >= $2 AND r.collected_at < $3 \
     AND r.signal_dbm IS NOT NULL AND r.signal_dbm <> 0 GROUP BY r.mac) x \
     WHERE d.tenant_id = $1 AND ($5::uuid IS NULL OR d.site_id = $5)";
/// Set in the rollup's transactions: compiling the statement above (its estimated cost is high)
/// took longer than running it.
const ROLLUP_SETUP: Option<&str> = Some("SET LOCAL jit = off");

type Tx = Transaction<'static, Postgres>;

/// PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// What link discovery read, kept while the database's versions say it holds.
    link_cache: std::sync::Arc<super::link_cache::LinkCache>,
}

impl PgStore {
    /// Connects and migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(map_err)?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migrations: {e}")))?;
        Ok(Self {
            pool,
            link_cache: Default::default(),
        })
    }

    /// A transaction scoped to one tenant: it runs as the non-superuser role `tod_app` with the
    /// tenant in `tod.tenant_id`, so Row-Level Security applies whatever the queries say.
    pub async fn tenant_tx(&self, tenant: TenantId) -> Result<Tx, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // `set_config('role', ..., true)` is `SET LOCAL ROLE`; both settings in one round trip.
        sqlx::query("SELECT set_config('role', 'tod_app', true), set_config('tod.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(tx)
    }

    async fn ping_db(&self) -> Result<(), StoreError> {
        // Whatever the reason, a database that cannot answer `SELECT 1` is unavailable.
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// `ANALYZE` of this schema's tables whose rows changed by more than autovacuum's default
    /// analyze threshold (50 rows plus a tenth of the table) since their statistics were last
    /// gathered, by anyone.
    async fn analyze_changed(&self) -> Result<Vec<String>, StoreError> {
        let stale: Vec<(String,)> = sqlx::query_as(
            "SELECT relname::text FROM pg_stat_user_tables \
             WHERE schemaname = current_schema() AND n_mod_since_analyze > 50 + 0.1 * GREATEST(n_live_tup, 0) \
             ORDER BY relname",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut done = Vec::with_capacity(stale.len());
        for (table,) in stale {
            // The name comes from the catalogue; quoted all the same.
            let sql = format!("ANALYZE \"{}\"", table.replace('"', "\"\""));
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
            done.push(table);
        }
        Ok(done)
    }

    /// Tenant work under RLS; platform work (`None`) as the server's own role.
    async fn tx(&self, tenant: Option<TenantId>) -> Result<Tx, StoreError> {
        match tenant {
            Some(t) => self.tenant_tx(t).await,
            None => self.pool.begin().await.map_err(map_err),
        }
    }

    /// PostgreSQL takes concurrent writers; row locks and [`Self::lock_chain`] order them.
    async fn wtx(&self, tenant: Option<TenantId>) -> Result<((), Tx), StoreError> {
        Ok(((), self.tx(tenant).await?))
    }

    /// One appender per chain at a time, until the transaction ends.
    async fn lock_chain(tx: &mut Tx, chain: TenantId) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(chain.to_string())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

impl_store!(PgStore, "postgres");
impl_fleet_store!(PgStore);
impl_discover_links!();
impl_site_alert_store!(PgStore);
impl_device_alert_store!(PgStore);
impl_device_alerts!();
impl_plugin_store!(PgStore);
impl_radio_store!(PgStore);
impl_radio_ingest!();
impl_maintenance_store!(PgStore);
impl_maintenance_tx!();
impl_device_set_store!(PgStore);
impl_event_store!(PgStore);
impl_stream_store!(PgStore);
super::notify::impl_notify_store!(PgStore);
super::trends::impl_trend_store!(PgStore);
impl_stream_tx!();

/// Registration rows in one statement whatever their number: one array per column, `UNNEST`ed
/// by the server (a 1 000-row `VALUES` list costs PostgreSQL 13 000 parameters to parse and plan).
async fn insert_registrations(tx: &mut Tx, tenant: TenantId, rows: &[RegistrationRow<'_>]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO registrations ({REGISTRATION_COLUMNS}) SELECT $1, * FROM UNNEST($2::uuid[], \
         $3::timestamptz[], $4::text[], $5::text[], $6::int2[], $7::int2[], $8::int2[], $9::text[], $10::text[], \
         $11::int8[], $12::int8[], $13::text[])"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.0)
        .bind(rows.iter().map(|(r, _)| r.device_id.0).collect::<Vec<Uuid>>())
        .bind(rows.iter().map(|(r, _)| micros(r.collected_at)).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, g)| g.interface.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, g)| g.mac.to_string()).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, g)| g.signal_dbm).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, g)| g.tx_signal_dbm).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, g)| g.tx_ccq.map(i16::from)).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, g)| g.tx_rate.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, g)| g.rx_rate.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, g)| g.uptime_secs.map(i64_of)).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(_, g)| g.distance_m.map(i64::from))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(_, g)| g.last_ip.clone()).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// The tenant's devices with an interface of one of these MACs, with the MAC. The MACs go as
/// one array, joined as rows: one statement, prepared once, whatever their number (an `IN` list
/// of a thousand placeholders is a new statement for each length, parsed and planned every
/// time; `mac = ANY($2)` was planned, without statistics, as a scan of the tenant's interfaces
/// comparing each with every MAC of the array: 60 ms a batch).
async fn mac_owners(
    tx: &mut Tx,
    tenant: TenantId,
    macs: &std::collections::BTreeSet<String>,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    sqlx::query_as::<_, (Uuid, String)>(
        "SELECT di.device_id, di.mac FROM UNNEST($2::text[]) AS m (mac) \
         JOIN device_interfaces di ON di.tenant_id = $1 AND di.mac = m.mac",
    )
    .bind(tenant.0)
    .bind(macs.iter().map(String::as_str).collect::<Vec<&str>>())
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)
}

/// Every link whose `end` (`ap_device_id` or `cpe_device_id`) is one of `ids`, the ids as one
/// array joined as rows (see [`mac_owners`]).
async fn links_by(
    tx: &mut Tx,
    tenant: TenantId,
    end: super::fleet::LinkEnd,
    ids: &[Uuid],
) -> Result<Vec<LinkRow>, StoreError> {
    let sql = format!(
        "SELECT l.* FROM UNNEST($2::uuid[]) AS e (id) JOIN wireless_links l ON l.tenant_id = $1 AND l.{} = e.id",
        end.column()
    );
    sqlx::query_as::<_, LinkRow>(sqlx::AssertSqlSafe(sql))
        .bind(tenant.0)
        .bind(ids)
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)
}

/// Writes the per-poll values of links whose state did not change ([`super::fleet::LinkWrite`])
/// in one `UPDATE` joined to their keys: an upsert would first lock each row (a WAL record of its
/// own) and check it as an insert too. A link deleted meanwhile stays deleted.
async fn write_readings(tx: &mut Tx, tenant: TenantId, links: &[&tod_core::links::Link]) -> Result<(), StoreError> {
    if links.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE wireless_links l SET signal_dbm = u.signal_dbm, tx_ccq = u.tx_ccq, tx_rate = u.tx_rate, \
         rx_rate = u.rx_rate, missed_polls = u.missed_polls, last_seen = u.last_seen \
         FROM UNNEST($2::uuid[], $3::uuid[], $4::int2[], $5::int2[], $6::text[], $7::text[], $8::int8[], \
         $9::timestamptz[]) AS u (ap, cpe, signal_dbm, tx_ccq, tx_rate, rx_rate, missed_polls, last_seen) \
         WHERE l.ap_device_id = u.ap AND l.cpe_device_id = u.cpe AND l.tenant_id = $1",
    )
    .bind(tenant.0)
    .bind(links.iter().map(|l| l.key.ap.0).collect::<Vec<Uuid>>())
    .bind(links.iter().map(|l| l.key.cpe.0).collect::<Vec<Uuid>>())
    .bind(links.iter().map(|l| l.signal_dbm).collect::<Vec<_>>())
    .bind(links.iter().map(|l| l.tx_ccq.map(i16::from)).collect::<Vec<_>>())
    .bind(links.iter().map(|l| l.tx_rate.as_deref()).collect::<Vec<_>>())
    .bind(links.iter().map(|l| l.rx_rate.as_deref()).collect::<Vec<_>>())
    .bind(links.iter().map(|l| i64::from(l.missed_polls)).collect::<Vec<_>>())
    .bind(links.iter().map(|l| micros(l.last_seen)).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Link upserts in one `UNNEST` statement, `conflict` the `ON CONFLICT` clause
/// ([`super::fleet::LinkWrite`]).
async fn upsert_links(
    tx: &mut Tx,
    tenant: TenantId,
    links: &[&tod_core::links::Link],
    conflict: &str,
) -> Result<(), StoreError> {
    if links.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO wireless_links ({LINK_COLUMNS}) SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], \
         $5::text[], $6::int2[], $7::int2[], $8::text[], $9::text[], $10::text[], $11::int8[], $12::timestamptz[], \
         $13::timestamptz[], $14::timestamptz[]){conflict}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.0)
        .bind(links.iter().map(|l| l.key.ap.0).collect::<Vec<Uuid>>())
        .bind(links.iter().map(|l| l.key.cpe.0).collect::<Vec<Uuid>>())
        .bind(links.iter().map(|l| l.interface.clone()).collect::<Vec<_>>())
        .bind(links.iter().map(|l| l.client_mac.to_string()).collect::<Vec<_>>())
        .bind(links.iter().map(|l| l.signal_dbm).collect::<Vec<_>>())
        .bind(links.iter().map(|l| l.tx_ccq.map(i16::from)).collect::<Vec<_>>())
        .bind(links.iter().map(|l| l.tx_rate.clone()).collect::<Vec<_>>())
        .bind(links.iter().map(|l| l.rx_rate.clone()).collect::<Vec<_>>())
        .bind(links.iter().map(|l| l.state.as_str().to_owned()).collect::<Vec<_>>())
        .bind(links.iter().map(|l| i64::from(l.missed_polls)).collect::<Vec<_>>())
        .bind(links.iter().map(|l| micros(l.discovered_at)).collect::<Vec<_>>())
        .bind(links.iter().map(|l| micros(l.last_seen)).collect::<Vec<_>>())
        .bind(links.iter().map(|l| micros(l.state_since)).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}
