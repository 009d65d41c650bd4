//! The PostgreSQL backend.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};
use tod_core::{SiteId, TenantId};
use uuid::Uuid;

use super::{NewSite, Site, Store, StoreError, Tenant, map_err};

/// PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

fn tenant(r: &PgRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: TenantId(r.try_get::<Uuid, _>("id").map_err(map_err)?),
        name: r.try_get("name").map_err(map_err)?,
        description: r.try_get("description").map_err(map_err)?,
        created_at: r.try_get("created_at").map_err(map_err)?,
        updated_at: r.try_get("updated_at").map_err(map_err)?,
    })
}

fn site(r: &PgRow) -> Result<Site, StoreError> {
    Ok(Site {
        id: SiteId(r.try_get::<Uuid, _>("id").map_err(map_err)?),
        tenant_id: TenantId(r.try_get::<Uuid, _>("tenant_id").map_err(map_err)?),
        name: r.try_get("name").map_err(map_err)?,
        latitude: r.try_get("latitude").map_err(map_err)?,
        longitude: r.try_get("longitude").map_err(map_err)?,
        created_at: r.try_get("created_at").map_err(map_err)?,
        updated_at: r.try_get("updated_at").map_err(map_err)?,
    })
}

impl PgStore {
    /// A transaction scoped to one tenant: it runs as the non-superuser role `tod_app` with the
    /// tenant in `tod.tenant_id`, so Row-Level Security applies whatever the queries say.
    pub async fn tenant_tx(&self, tenant: TenantId) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SET LOCAL ROLE tod_app")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("SELECT set_config('tod.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(tx)
    }

    /// Connects and migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(map_err)?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(format!("migrations: {e}")))?;
        Ok(Self { pool })
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        let row = sqlx::query(
            "INSERT INTO tenants (id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING *",
        )
        .bind(Uuid::new_v4())
        .bind(name.trim())
        .bind(description)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        tenant(&row)
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Tenant, StoreError> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id.0)
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
        let done = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        Ok(())
    }

    async fn create_site(&self, tenant: TenantId, new: NewSite<'_>, now: DateTime<Utc>) -> Result<Site, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let row = sqlx::query(
            "INSERT INTO sites (id, tenant_id, name, latitude, longitude, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *",
        )
        .bind(Uuid::new_v4())
        .bind(tenant.0)
        .bind(new.name.trim())
        .bind(new.latitude)
        .bind(new.longitude)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        site(&row)
    }

    async fn get_site(&self, tenant: TenantId, id: SiteId) -> Result<Site, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let row = sqlx::query("SELECT * FROM sites WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound("site"))?;
        tx.commit().await.map_err(map_err)?;
        site(&row)
    }

    async fn list_sites(&self, tenant: TenantId) -> Result<Vec<Site>, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let rows = sqlx::query("SELECT * FROM sites WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        rows.iter().map(site).collect()
    }
}
