//! The PostgreSQL backend.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use tod_core::TenantId;
use uuid::Uuid;

use super::{Store, StoreError, Tenant, map_err};

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

impl PgStore {
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
}
