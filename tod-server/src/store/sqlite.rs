//! The SQLite backend: one file, WAL journal, foreign keys on, created on first start.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Row, SqlitePool};
use tod_core::{SiteId, TenantId};
use uuid::Uuid;

use super::{NewSite, Site, Store, StoreError, Tenant, map_err};

/// SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn tenant(r: &SqliteRow) -> Result<Tenant, StoreError> {
    let id: String = r.try_get("id").map_err(map_err)?;
    let parse_time = |col: &str| -> Result<DateTime<Utc>, StoreError> {
        let t: String = r.try_get(col).map_err(map_err)?;
        DateTime::parse_from_rfc3339(&t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| StoreError::Other(format!("{col}: {e}")))
    };
    Ok(Tenant {
        id: TenantId(Uuid::parse_str(&id).map_err(|e| StoreError::Other(format!("tenant id: {e}")))?),
        name: r.try_get("name").map_err(map_err)?,
        description: r.try_get("description").map_err(map_err)?,
        created_at: parse_time("created_at")?,
        updated_at: parse_time("updated_at")?,
    })
}

fn time(r: &SqliteRow, col: &str) -> Result<DateTime<Utc>, StoreError> {
    let t: String = r.try_get(col).map_err(map_err)?;
    DateTime::parse_from_rfc3339(&t)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Other(format!("{col}: {e}")))
}

fn uuid(r: &SqliteRow, col: &str) -> Result<Uuid, StoreError> {
    let s: String = r.try_get(col).map_err(map_err)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Other(format!("{col}: {e}")))
}

fn site(r: &SqliteRow) -> Result<Site, StoreError> {
    Ok(Site {
        id: SiteId(uuid(r, "id")?),
        tenant_id: TenantId(uuid(r, "tenant_id")?),
        name: r.try_get("name").map_err(map_err)?,
        latitude: r.try_get("latitude").map_err(map_err)?,
        longitude: r.try_get("longitude").map_err(map_err)?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
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
        Ok(Self { pool })
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Whatever the reason, a database that cannot answer `SELECT 1` is unavailable.
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn create_tenant(
        &self,
        name: &str,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Tenant, StoreError> {
        let id = Uuid::new_v4();
        let ts = now.to_rfc3339();
        sqlx::query("INSERT INTO tenants (id, name, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?)")
            .bind(id.to_string())
            .bind(name.trim())
            .bind(description)
            .bind(&ts)
            .bind(&ts)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        self.get_tenant(TenantId(id)).await
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Tenant, StoreError> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound("tenant"))?;
        tenant(&row)
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(tenant).collect()
    }

    async fn delete_tenant(&self, id: TenantId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM tenants WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        Ok(())
    }

    async fn create_site(&self, tenant: TenantId, new: NewSite<'_>, now: DateTime<Utc>) -> Result<Site, StoreError> {
        let id = Uuid::new_v4();
        let ts = now.to_rfc3339();
        sqlx::query(
            "INSERT INTO sites (id, tenant_id, name, latitude, longitude, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(new.name.trim())
        .bind(new.latitude)
        .bind(new.longitude)
        .bind(&ts)
        .bind(&ts)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        self.get_site(tenant, SiteId(id)).await
    }

    async fn get_site(&self, tenant: TenantId, id: SiteId) -> Result<Site, StoreError> {
        let row = sqlx::query("SELECT * FROM sites WHERE tenant_id = ? AND id = ?")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound("site"))?;
        site(&row)
    }

    async fn list_sites(&self, tenant: TenantId) -> Result<Vec<Site>, StoreError> {
        let rows = sqlx::query("SELECT * FROM sites WHERE tenant_id = ? ORDER BY name")
            .bind(tenant.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(site).collect()
    }
}
