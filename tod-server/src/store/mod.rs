//! Storage: one interface, two backends — SQLite (the embedded default: one file, WAL) and
//! PostgreSQL (production) — chosen by the URL scheme. Each backend has its own migrations, run
//! at start-up. The error type knows nothing about HTTP; the server maps it.

mod postgres;
mod sqlite;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::{SiteId, TenantId};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// What can go wrong in storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No such row (for this tenant).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness constraint: the thing exists already.
    #[error("{0}")]
    Conflict(String),
    /// A check or foreign-key constraint: the input is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The database does not answer.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("database error: {0}")]
    Other(String),
}

/// Maps a sqlx error, turning named constraints into conflicts and validation errors.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound("row"),
        sqlx::Error::Database(db) => {
            let constraint = db
                .constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned());
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => StoreError::Conflict(conflict_message(&constraint)),
                sqlx::error::ErrorKind::CheckViolation
                | sqlx::error::ErrorKind::NotNullViolation
                | sqlx::error::ErrorKind::ForeignKeyViolation => {
                    StoreError::Invalid(format!("constraint {constraint} violated"))
                }
                _ => StoreError::Other(db.message().to_owned()),
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

fn conflict_message(constraint: &str) -> String {
    // SQLite reports "UNIQUE constraint failed: tenants.name"; PostgreSQL names the constraint.
    if constraint.contains("uq_tenants_name") || constraint.contains("tenants.name") {
        "A tenant with this name already exists".into()
    } else if constraint.contains("uq_sites_tenant_name") || constraint.contains("sites.tenant_id, sites.name") {
        "A site with this name already exists".into()
    } else {
        format!("duplicate ({constraint})")
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A site (tower, POP).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    /// Id.
    pub id: SiteId,
    /// Owner.
    pub tenant_id: TenantId,
    /// Name, unique per tenant.
    pub name: String,
    /// Latitude, −90…90.
    pub latitude: Option<f64>,
    /// Longitude, −180…180.
    pub longitude: Option<f64>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The fields of a new site.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewSite<'a> {
    /// Name.
    pub name: &'a str,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
}

/// The storage interface the server is written against. Every tenant-scoped method takes the
/// tenant it works for; on PostgreSQL it also runs under Row-Level Security for that tenant.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Which backend.
    fn backend(&self) -> &'static str;
    /// Whether the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Creates a tenant; a duplicate name is a conflict.
    async fn create_tenant(
        &self,
        name: &str,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Tenant, StoreError>;
    /// One tenant.
    async fn get_tenant(&self, id: TenantId) -> Result<Tenant, StoreError>;
    /// All tenants, by name.
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Deletes a tenant (and, by cascade, everything it owns).
    async fn delete_tenant(&self, id: TenantId) -> Result<(), StoreError>;
    /// Creates a site for a tenant; a duplicate name within the tenant is a conflict.
    async fn create_site(&self, tenant: TenantId, site: NewSite<'_>, now: DateTime<Utc>) -> Result<Site, StoreError>;
    /// One site of a tenant (another tenant's id is "not found").
    async fn get_site(&self, tenant: TenantId, id: SiteId) -> Result<Site, StoreError>;
    /// A tenant's sites, by name.
    async fn list_sites(&self, tenant: TenantId) -> Result<Vec<Site>, StoreError>;
}

/// Opens the store a URL names (`sqlite://PATH` or `postgres://...`) and runs its migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(url).await?))
    } else {
        Err(StoreError::Invalid(format!(
            "unsupported database URL {:?}",
            url.split("://").next().unwrap_or(url)
        )))
    }
}
