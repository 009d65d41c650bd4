//! The SQLite backend: one file, WAL journal, foreign keys on, created on first start. SQLite has
//! one writer at a time; write transactions queue on a mutex here instead of failing busy.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Sqlite, SqlitePool};
use tod_core::{AgentId, ApiKeyId, DeviceId, SiteId, TenantId, UserId};
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use super::fleet::{
    AgentRow, DeviceRow, LinkRow, REGISTRATION_ROWS_PER_INSERT, WirelessLink, access_point_table, i64_of,
    impl_discover_links, impl_fleet_store, placeholders, status_str,
};
use super::queries::{ApiKeyRow, AuditRow, Revocable, SessionRow, SiteRow, TenantRow, UserRow, impl_store, micros};
use super::{
    Agent, Aging, ApiKey, Audit, AuditRecord, ChainCheck, Device, GENESIS_HASH, Ingested, LiveSession, NewApiKey,
    NewDevice, NewSite, NewUser, Rotation, Site, SrpChallenge, StoreError, Tenant, User, UserCredentials, UserPatch,
    link_hash, map_err,
};

type Db = sqlx::Sqlite;
type Tx = sqlx::Transaction<'static, Sqlite>;

/// SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Arc<Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(map_err)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migrations: {e}")))?;
        Ok(Self {
            pool,
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

    /// A read transaction. SQLite has no row-level security: the tenant filter in every query is
    /// the isolation, and the conformance suite checks it.
    async fn tx(&self, _tenant: Option<TenantId>) -> Result<Tx, StoreError> {
        self.pool.begin().await.map_err(map_err)
    }

    /// A write transaction, after the writers before it.
    async fn wtx(&self, tenant: Option<TenantId>) -> Result<(OwnedMutexGuard<()>, Tx), StoreError> {
        let guard = self.writer.clone().lock_owned().await;
        Ok((guard, self.tx(tenant).await?))
    }

    /// Writers are already one at a time.
    async fn lock_chain(_tx: &mut Tx, _chain: TenantId) -> Result<(), StoreError> {
        Ok(())
    }
}

impl_store!(SqliteStore, "sqlite");
impl_fleet_store!(SqliteStore);
impl_discover_links!();
