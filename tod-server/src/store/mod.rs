//! Storage: one interface, two backends — SQLite (the embedded default: one file, WAL) and
//! PostgreSQL (production) — chosen by the URL scheme. Each backend has its own migrations, run
//! at start-up. The error type knows nothing about HTTP; the server maps it.

mod audit;
mod device_alerts;
mod device_sets;
mod events;
mod fleet;
mod link_cache;
mod maintenance;
pub(crate) mod notify;
mod plugins;
mod postgres;
mod queries;
mod radio;
mod site_alerts;
mod sqlite;
mod stream;
pub(crate) mod trends;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::rbac::{Role, Scope};
use tod_core::{ApiKeyId, SiteId, TenantId, UserId};
use uuid::Uuid;

pub use audit::{ChainCheck, GENESIS_HASH, link_hash};
pub use fleet::{
    Agent, Aging, ClientEntry, Device, DeviceFilter, DeviceUpdate, FleetStore, Ingested, LinksFrom, NewDevice, Sector,
    SectorFields, SiteAlertEvent, TUNNEL_GATEWAY, TUNNEL_PREFIX, TunnelPeer, WirelessLink,
};

pub use device_alerts::{AlertFilter, AlertRule, DeviceAlert, DeviceAlertStore};
pub use device_sets::{DeviceSet, DeviceSetStore, SetFields, SetKind};
pub use events::{DeviceEvent, EventFilter, EventStore};
pub use maintenance::{MaintenanceStore, SuppressedAlert, Suppression, Window, recurrence_of};
pub use notify::{
    AttemptRecord, ChannelRecord, Delivery, DeliveryFilter, DueDelivery, LastNotice, NewDelivery, NotifyStore, Routing,
    RuleRef,
};
pub use plugins::{
    NewPlugin, PLUGIN_INPUTS, Plugin, PluginAssignment, PluginConfig, PluginPatch, PluginStore, RunnablePlugin,
};
pub use postgres::PgStore;
pub use radio::{CurrentRadio, HealthSample, RadioStore, RfStat, TrafficSample};
pub use site_alerts::{EventSource, OpenRuleEvent, SiteAlertChange, SiteAlertRule, SiteAlertStore};
pub use sqlite::SqliteStore;
pub use stream::{StreamEvent, StreamItem, StreamStore};
pub use trends::{TrendPass, TrendStore, trend_end};

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
    } else if constraint.contains("uq_users_email") || constraint.contains("users.email") {
        "A user with this email already exists".into()
    } else if constraint.contains("uq_sites_tenant_name") || constraint.contains("sites.tenant_id, sites.name") {
        "A site with this name already exists".into()
    } else if constraint.contains("uq_agents_wg_public_key") || constraint.contains("agents.wg_public_key") {
        "This WireGuard public key is already enrolled".into()
    } else {
        format!("duplicate ({constraint})")
    }
}

/// The audit chain of platform-level actions (tenant management, super-admin logins): the
/// all-zero tenant id, which no real tenant has.
pub const PLATFORM_CHAIN: TenantId = TenantId::from_u128(0);

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Site {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub id: SiteId,
    /// Owner.
    #[schema(value_type = String, format = Uuid)]
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

/// The fields of a site to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SitePatch<'a> {
    /// New name.
    pub name: Option<&'a str>,
    /// New latitude, or `Some(None)` to clear it.
    pub latitude: Option<Option<f64>>,
    /// New longitude, or `Some(None)` to clear it.
    pub longitude: Option<Option<f64>>,
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

/// A user account (without its SRP credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    /// Lower-cased e-mail, unique across the platform.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role: `viewer`, `operator`, `admin` or `super_admin`.
    #[schema(value_type = String)]
    pub role: Role,
    /// Tenant; `None` only for super admins.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub tenant_id: Option<TenantId>,
    /// Whether the account may log in.
    pub is_active: bool,
    /// Last successful login.
    pub last_login: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A user with the SRP salt and verifier login needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    /// The account.
    pub user: User,
    /// SRP salt.
    pub salt: Vec<u8>,
    /// SRP verifier.
    pub verifier: Vec<u8>,
}

/// The fields of a new user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewUser<'a> {
    /// E-mail (stored trimmed and lower-cased).
    pub email: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Role.
    pub role: Role,
    /// Tenant; `None` only for a super admin.
    pub tenant: Option<TenantId>,
    /// SRP salt.
    pub salt: &'a [u8],
    /// SRP verifier.
    pub verifier: &'a [u8],
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserPatch<'a> {
    /// New display name.
    pub name: Option<&'a str>,
    /// New role.
    pub role: Option<Role>,
    /// Enable or disable the account (disabling ends its sessions).
    pub is_active: Option<bool>,
}

/// An SRP challenge between `init` and `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrpChallenge {
    /// Session id the client echoes.
    pub id: Uuid,
    /// The identity it was issued for.
    pub email: String,
    /// The account, or `None` for the fake challenge an unknown address gets.
    pub user_id: Option<UserId>,
    /// The server's ephemeral secret.
    pub b: Vec<u8>,
    /// Salt sent.
    pub salt: Vec<u8>,
    /// Verifier used for `B`.
    pub verifier: Vec<u8>,
    /// When it stops being usable.
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// It was the current token: the session now expects `new_jti`.
    Rotated,
    /// It was an older token of the family: the whole session is now revoked.
    Reused,
    /// The session is revoked, expired or gone.
    Dead,
}

/// A live login session and its user, as the access-token check needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// The account.
    pub user: User,
    /// Whether the session was revoked (logout, password change, reuse).
    pub revoked: bool,
}

/// An API key as listed (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub id: ApiKeyId,
    /// Tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// Who created it.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub created_by: Option<UserId>,
    /// Name.
    pub name: String,
    /// `mktp_` and the next four characters, to recognise a key.
    pub key_prefix: String,
    /// What it may touch.
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<Scope>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last authenticated request.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Revoked (soft delete).
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The fields of a new API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewApiKey<'a> {
    /// Name.
    pub name: &'a str,
    /// The first characters of the raw key.
    pub key_prefix: &'a str,
    /// SHA-256 hex of the raw key.
    pub key_hash: &'a str,
    /// Scopes.
    pub scopes: &'a [Scope],
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Creator.
    pub created_by: Option<UserId>,
}

/// One audit record to append, in the same transaction as the change it records.
#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    /// The chain: the tenant the change belongs to, or [`PLATFORM_CHAIN`].
    pub chain: TenantId,
    /// Acting user.
    pub actor_user: Option<UserId>,
    /// Acting API key.
    pub actor_api_key: Option<ApiKeyId>,
    /// What happened, e.g. `user.created`.
    pub action: String,
    /// Kind of thing changed.
    pub resource_type: Option<String>,
    /// Its id.
    pub resource_id: Option<String>,
    /// Anything else worth keeping (never secrets).
    pub details: serde_json::Value,
    /// Client address.
    pub ip: Option<String>,
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Id.
    pub id: Uuid,
    /// Chain (tenant, or the all-zero platform chain).
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Acting user.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub actor_user_id: Option<UserId>,
    /// Acting API key.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub actor_api_key_id: Option<ApiKeyId>,
    /// What happened.
    pub action: String,
    /// Kind of thing changed.
    pub resource_type: Option<String>,
    /// Its id.
    pub resource_id: Option<String>,
    /// Details.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Client address.
    pub ip_address: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Hash of the previous record.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

/// The storage interface the server is written against. Tenant-scoped methods take the tenant
/// they work for; on PostgreSQL they also run under Row-Level Security for that tenant. Every
/// write that changes who can do what takes the [`Audit`] record that goes with it.
#[async_trait::async_trait]
pub trait Store:
    FleetStore
    + SiteAlertStore
    + DeviceAlertStore
    + PluginStore
    + RadioStore
    + MaintenanceStore
    + DeviceSetStore
    + EventStore
    + StreamStore
    + NotifyStore
    + TrendStore
    + Send
    + Sync
{
    /// Which backend.
    fn backend(&self) -> &'static str;
    /// Whether the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Brings the planner's statistics up to date for the tables that changed much since they
    /// were last gathered, returning their names. PostgreSQL's autovacuum does this when it is
    /// on; with it off or behind, a fleet onboarded at once is planned as if its tables were
    /// empty (every batch then walked all the tenant's interfaces). SQLite plans from its schema
    /// and does nothing here.
    async fn refresh_statistics(&self) -> Result<Vec<String>, StoreError>;

    /// Creates a tenant; a duplicate name is a conflict.
    async fn create_tenant(
        &self,
        name: &str,
        description: Option<&str>,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<Tenant, StoreError>;
    /// One tenant.
    async fn get_tenant(&self, id: TenantId) -> Result<Tenant, StoreError>;
    /// All tenants, by name.
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Renames or re-describes a tenant.
    async fn update_tenant(
        &self,
        id: TenantId,
        name: Option<&str>,
        description: Option<Option<&str>>,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<Tenant, StoreError>;
    /// Deletes a tenant (and, by cascade, everything it owns but its audit chain).
    async fn delete_tenant(&self, id: TenantId, audit: &Audit) -> Result<(), StoreError>;

    /// Creates a site for a tenant; a duplicate name within the tenant is a conflict.
    async fn create_site(&self, tenant: TenantId, site: NewSite<'_>, now: DateTime<Utc>) -> Result<Site, StoreError>;
    /// One site of a tenant (another tenant's id is "not found").
    async fn get_site(&self, tenant: TenantId, id: SiteId) -> Result<Site, StoreError>;
    /// A tenant's sites, by name.
    async fn list_sites(&self, tenant: TenantId) -> Result<Vec<Site>, StoreError>;
    /// Changes the given fields of a site (`Some(None)` clears a coordinate).
    async fn update_site(
        &self,
        tenant: TenantId,
        id: SiteId,
        patch: SitePatch<'_>,
        now: DateTime<Utc>,
    ) -> Result<Site, StoreError>;
    /// Deletes a site: its devices lose their site, its agents go with it.
    async fn delete_site(&self, tenant: TenantId, id: SiteId) -> Result<(), StoreError>;
    /// Puts devices of the tenant at a site (or at none); ids of other tenants are skipped.
    /// Returns how many devices changed.
    async fn assign_devices(
        &self,
        tenant: TenantId,
        site: Option<SiteId>,
        devices: &[tod_core::DeviceId],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// How many accounts exist (bootstrap runs on zero).
    async fn count_users(&self) -> Result<i64, StoreError>;
    /// Creates an account; a taken e-mail is a conflict.
    async fn create_user(&self, user: NewUser<'_>, now: DateTime<Utc>, audit: &Audit) -> Result<User, StoreError>;
    /// One account; `tenant` limits the lookup to that tenant (another tenant's id is "not found").
    async fn get_user(&self, tenant: Option<TenantId>, id: UserId) -> Result<User, StoreError>;
    /// Accounts of one tenant, or of the whole platform for `None`, by e-mail.
    async fn list_users(&self, tenant: Option<TenantId>) -> Result<Vec<User>, StoreError>;
    /// Changes an account; disabling it or changing its role ends its sessions.
    async fn update_user(
        &self,
        tenant: Option<TenantId>,
        id: UserId,
        patch: UserPatch<'_>,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<User, StoreError>;
    /// Deletes an account.
    async fn delete_user(&self, tenant: Option<TenantId>, id: UserId, audit: &Audit) -> Result<(), StoreError>;
    /// Replaces an account's SRP salt and verifier and ends all its sessions.
    async fn set_user_verifier(
        &self,
        id: UserId,
        salt: &[u8],
        verifier: &[u8],
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<(), StoreError>;
    /// An account with its credentials, by identity (lower-cased e-mail).
    async fn user_credentials(&self, email: &str) -> Result<Option<UserCredentials>, StoreError>;

    /// Keeps an SRP challenge until `take_srp_challenge`, and drops expired ones.
    async fn put_srp_challenge(&self, challenge: &SrpChallenge, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Removes and returns a challenge, if it exists and has not expired (single use).
    async fn take_srp_challenge(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<SrpChallenge>, StoreError>;

    /// Opens a login session (refresh-token family) after a successful login.
    async fn open_session(
        &self,
        id: Uuid,
        user: UserId,
        refresh_jti: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<(), StoreError>;
    /// Presents a refresh token of a session: rotates to `new_jti`, or detects reuse.
    async fn rotate_session(
        &self,
        id: Uuid,
        presented_jti: Uuid,
        new_jti: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError>;
    /// Ends a session (logout).
    async fn revoke_session(&self, id: Uuid, reason: &str, now: DateTime<Utc>, audit: &Audit)
    -> Result<(), StoreError>;
    /// A session and its user, for the check every authenticated request makes.
    async fn live_session(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<LiveSession>, StoreError>;

    /// Creates an API key for a tenant.
    async fn create_api_key(
        &self,
        tenant: TenantId,
        key: NewApiKey<'_>,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<ApiKey, StoreError>;
    /// A tenant's keys, newest first, revoked ones included.
    async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKey>, StoreError>;
    /// Revokes a key; a revoked or unknown one is "not found".
    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<(), StoreError>;
    /// The usable key with this hash (not revoked, not expired), marking it used.
    async fn use_api_key(&self, key_hash: &str, now: DateTime<Utc>) -> Result<Option<ApiKey>, StoreError>;

    /// Appends a record on its own (e.g. a refused login).
    async fn append_audit(&self, audit: &Audit, now: DateTime<Utc>) -> Result<AuditRecord, StoreError>;
    /// A chain's records, newest first.
    async fn list_audit(&self, chain: TenantId, limit: i64, offset: i64) -> Result<Vec<AuditRecord>, StoreError>;
    /// Recomputes a chain's hashes from the start.
    async fn verify_audit(&self, chain: TenantId) -> Result<ChainCheck, StoreError>;

    /// A named secret, generated by `generate` and stored on first use (e.g. the dev JWT key).
    async fn secret(&self, name: &str, generate: &(dyn Fn() -> Vec<u8> + Send + Sync)) -> Result<Vec<u8>, StoreError>;
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
