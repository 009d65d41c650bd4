//! The queries both backends share, written once.
//!
//! SQLite and PostgreSQL agree on everything used here: `$N` placeholders, `RETURNING`, UUIDs
//! bound as `uuid::Uuid` (a 16-byte BLOB in SQLite), times bound as `DateTime<Utc>`. Each backend
//! supplies four hooks — `tx` (a transaction, tenant-scoped under RLS on PostgreSQL), `wtx` (the
//! same for writes; SQLite serialises them), `lock_chain` (serialises appends to one audit chain)
//! and `ping` — and [`impl_store!`] writes the rest of [`Store`](super::Store) on top.

use chrono::{DateTime, Utc};
use tod_core::rbac::{Role, Scope};
use tod_core::{ApiKeyId, SiteId, TenantId, UserId};
use uuid::Uuid;

use super::{ApiKey, AuditRecord, Site, StoreError, Tenant, User};

#[derive(sqlx::FromRow)]
pub(crate) struct TenantRow {
    id: Uuid,
    name: String,
    description: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<TenantRow> for Tenant {
    fn from(r: TenantRow) -> Self {
        Self {
            id: TenantId(r.id),
            name: r.name,
            description: r.description,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SiteRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<SiteRow> for Site {
    fn from(r: SiteRow) -> Self {
        Self {
            id: SiteId(r.id),
            tenant_id: TenantId(r.tenant_id),
            name: r.name,
            latitude: r.latitude,
            longitude: r.longitude,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    role: String,
    tenant_id: Option<Uuid>,
    pub(crate) srp_salt: Vec<u8>,
    pub(crate) srp_verifier: Vec<u8>,
    is_active: bool,
    last_login: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<&UserRow> for User {
    type Error = StoreError;
    fn try_from(r: &UserRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: UserId(r.id),
            email: r.email.clone(),
            name: r.name.clone(),
            role: r
                .role
                .parse::<Role>()
                .map_err(|e| StoreError::Other(format!("users.role: {e}")))?,
            tenant_id: r.tenant_id.map(TenantId),
            is_active: r.is_active,
            last_login: r.last_login,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    pub(crate) session_revoked_at: Option<DateTime<Utc>>,
    pub(crate) session_expires_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub(crate) user: UserRow,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: Uuid,
    tenant_id: Uuid,
    created_by: Option<Uuid>,
    name: String,
    key_prefix: String,
    scopes: String,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self, StoreError> {
        let scopes: Vec<Scope> =
            serde_json::from_str(&r.scopes).map_err(|e| StoreError::Other(format!("api_keys.scopes: {e}")))?;
        Ok(Self {
            id: ApiKeyId(r.id),
            tenant_id: TenantId(r.tenant_id),
            created_by: r.created_by.map(UserId),
            name: r.name,
            key_prefix: r.key_prefix,
            scopes,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: Uuid,
    tenant_id: Uuid,
    seq: i64,
    actor_user_id: Option<Uuid>,
    actor_api_key_id: Option<Uuid>,
    action: String,
    resource_type: Option<String>,
    resource_id: Option<String>,
    pub(crate) details: String,
    ip_address: Option<String>,
    created_at: DateTime<Utc>,
    prev_hash: String,
    hash: String,
}

impl From<&AuditRow> for AuditRecord {
    fn from(r: &AuditRow) -> Self {
        Self {
            id: r.id,
            tenant_id: TenantId(r.tenant_id),
            seq: r.seq,
            actor_user_id: r.actor_user_id.map(UserId),
            actor_api_key_id: r.actor_api_key_id.map(ApiKeyId),
            action: r.action.clone(),
            resource_type: r.resource_type.clone(),
            resource_id: r.resource_id.clone(),
            // Stored by us as JSON; a hand-edited row that is not JSON still lists (and fails verify).
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::String(r.details.clone())),
            ip_address: r.ip_address.clone(),
            created_at: r.created_at,
            prev_hash: r.prev_hash.clone(),
            hash: r.hash.clone(),
        }
    }
}

/// Credentials that are revoked rather than deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revocable {
    /// `api_keys`.
    ApiKey,
    /// `agents`.
    Agent,
}

impl Revocable {
    pub(crate) fn table(self) -> &'static str {
        match self {
            Self::ApiKey => "api_keys",
            Self::Agent => "agents",
        }
    }

    pub(crate) fn noun(self) -> &'static str {
        match self {
            Self::ApiKey => "API key",
            Self::Agent => "agent",
        }
    }

    pub(crate) fn resource(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Agent => "agent",
        }
    }
}

/// Times are kept to the microsecond, the precision both databases store.
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// Writes `impl Store` for a backend type from the shared queries and the backend's hooks.
macro_rules! impl_store {
    ($store:ty, $name:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                $name
            }

            async fn ping(&self) -> Result<(), StoreError> {
                self.ping_db().await
            }

            async fn refresh_statistics(&self) -> Result<Vec<String>, StoreError> {
                self.analyze_changed().await
            }

            async fn create_tenant(
                &self,
                name: &str,
                description: Option<&str>,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<Tenant, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(None).await?;
                let row: TenantRow = sqlx::query_as(
                    "INSERT INTO tenants (id, name, description, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4) RETURNING *",
                )
                .bind(Uuid::new_v4())
                .bind(name.trim())
                .bind(description)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let t = Tenant::from(row);
                seed_default_rules(&mut tx, t.id, now).await?;
                append(&mut tx, &with_resource(audit, "tenant", t.id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(t)
            }

            async fn get_tenant(&self, id: TenantId) -> Result<Tenant, StoreError> {
                let mut tx = self.tx(None).await?;
                let row: Option<TenantRow> = sqlx::query_as("SELECT * FROM tenants WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                row.map(Tenant::from).ok_or(StoreError::NotFound("tenant"))
            }

            async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
                let mut tx = self.tx(None).await?;
                let rows: Vec<TenantRow> = sqlx::query_as("SELECT * FROM tenants ORDER BY name")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Ok(rows.into_iter().map(Tenant::from).collect())
            }

            async fn update_tenant(
                &self,
                id: TenantId,
                name: Option<&str>,
                description: Option<Option<&str>>,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<Tenant, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(None).await?;
                let row: Option<TenantRow> = sqlx::query_as(
                    "UPDATE tenants SET name = COALESCE($2, name), \
                     description = CASE WHEN $3 THEN $4 ELSE description END, updated_at = $5 \
                     WHERE id = $1 RETURNING *",
                )
                .bind(id.0)
                .bind(name.map(str::trim))
                .bind(description.is_some())
                .bind(description.flatten())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let t = row.map(Tenant::from).ok_or(StoreError::NotFound("tenant"))?;
                append(&mut tx, &with_resource(audit, "tenant", id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(t)
            }

            async fn delete_tenant(&self, id: TenantId, audit: &Audit) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(None).await?;
                // Registration rows and their hourly sums carry no foreign key (see migration 0023
                // on PostgreSQL).
                for sql in [
                    "DELETE FROM registrations WHERE tenant_id = $1",
                    "DELETE FROM signal_hourly WHERE tenant_id = $1",
                    "DELETE FROM signal_hourly_dirty WHERE tenant_id = $1",
                ] {
                    sqlx::query(sql).bind(id.0).execute(&mut *tx).await.map_err(map_err)?;
                }
                let done = sqlx::query("DELETE FROM tenants WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("tenant"));
                }
                // Written by a trigger as the tenant's interfaces went, so after them.
                sqlx::query("DELETE FROM interface_versions WHERE tenant_id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                append(&mut tx, &with_resource(audit, "tenant", id.to_string()), micros(Utc::now())).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn create_site(
                &self,
                tenant: TenantId,
                new: NewSite<'_>,
                now: DateTime<Utc>,
            ) -> Result<Site, StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let row: SiteRow = sqlx::query_as(
                    "INSERT INTO sites (id, tenant_id, name, latitude, longitude, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *",
                )
                .bind(Uuid::new_v4())
                .bind(tenant.0)
                .bind(new.name.trim())
                .bind(new.latitude)
                .bind(new.longitude)
                .bind(micros(now))
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(row.into())
            }

            async fn get_site(&self, tenant: TenantId, id: SiteId) -> Result<Site, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let row: Option<SiteRow> = sqlx::query_as("SELECT * FROM sites WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                row.map(Site::from).ok_or(StoreError::NotFound("site"))
            }

            async fn list_sites(&self, tenant: TenantId) -> Result<Vec<Site>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<SiteRow> = sqlx::query_as("SELECT * FROM sites WHERE tenant_id = $1 ORDER BY name")
                    .bind(tenant.0)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Ok(rows.into_iter().map(Site::from).collect())
            }

            async fn update_site(
                &self,
                tenant: TenantId,
                id: SiteId,
                patch: $crate::store::SitePatch<'_>,
                now: DateTime<Utc>,
            ) -> Result<Site, StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let row: Option<SiteRow> = sqlx::query_as(
                    "UPDATE sites SET name = COALESCE($3, name), \
                     latitude = CASE WHEN $4 THEN $5 ELSE latitude END, \
                     longitude = CASE WHEN $6 THEN $7 ELSE longitude END, updated_at = $8 \
                     WHERE tenant_id = $1 AND id = $2 RETURNING *",
                )
                .bind(tenant.0)
                .bind(id.0)
                .bind(patch.name.map(str::trim))
                .bind(patch.latitude.is_some())
                .bind(patch.latitude.flatten())
                .bind(patch.longitude.is_some())
                .bind(patch.longitude.flatten())
                .bind(micros(now))
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let row = row.ok_or(StoreError::NotFound("site"))?;
                tx.commit().await.map_err(map_err)?;
                Ok(row.into())
            }

            async fn delete_site(&self, tenant: TenantId, id: SiteId) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let done = sqlx::query("DELETE FROM sites WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("site"));
                }
                tx.commit().await.map_err(map_err)
            }

            async fn assign_devices(
                &self,
                tenant: TenantId,
                site: Option<SiteId>,
                devices: &[tod_core::DeviceId],
                now: DateTime<Utc>,
            ) -> Result<u64, StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                if let Some(site) = site
                    && !site_is_tenants(&mut tx, tenant, site).await?
                {
                    return Err(StoreError::NotFound("site"));
                }
                let mut changed = 0;
                for device in devices {
                    changed += sqlx::query(
                        "UPDATE devices SET site_id = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant.0)
                    .bind(device.0)
                    .bind(site.map(|s| s.0))
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                }
                tx.commit().await.map_err(map_err)?;
                Ok(changed)
            }

            async fn count_users(&self) -> Result<i64, StoreError> {
                let mut tx = self.tx(None).await?;
                sqlx::query_scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)
            }

            async fn create_user(&self, new: NewUser<'_>, now: DateTime<Utc>, audit: &Audit) -> Result<User, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(new.tenant).await?;
                let row: UserRow = sqlx::query_as(
                    "INSERT INTO users (id, email, name, role, tenant_id, srp_salt, srp_verifier, is_active, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING *",
                )
                .bind(Uuid::new_v4())
                .bind(tod_core::srp::identity(new.email))
                .bind(new.name.trim())
                .bind(new.role.as_str())
                .bind(new.tenant.map(|t| t.0))
                .bind(new.salt)
                .bind(new.verifier)
                .bind(true)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let user = User::try_from(&row)?;
                append(&mut tx, &with_resource(audit, "user", user.id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(user)
            }

            async fn get_user(&self, tenant: Option<TenantId>, id: UserId) -> Result<User, StoreError> {
                let mut tx = self.tx(tenant).await?;
                let row: Option<UserRow> =
                    sqlx::query_as("SELECT * FROM users WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)")
                        .bind(id.0)
                        .bind(tenant.map(|t| t.0))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                row.as_ref().map(User::try_from).transpose()?.ok_or(StoreError::NotFound("user"))
            }

            async fn list_users(&self, tenant: Option<TenantId>) -> Result<Vec<User>, StoreError> {
                let mut tx = self.tx(tenant).await?;
                let rows: Vec<UserRow> =
                    sqlx::query_as("SELECT * FROM users WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY email")
                        .bind(tenant.map(|t| t.0))
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                rows.iter().map(User::try_from).collect()
            }

            async fn update_user(
                &self,
                tenant: Option<TenantId>,
                id: UserId,
                patch: UserPatch<'_>,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<User, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(tenant).await?;
                let row: Option<UserRow> = sqlx::query_as(
                    "UPDATE users SET name = COALESCE($3, name), role = COALESCE($4, role), \
                     is_active = COALESCE($5, is_active), updated_at = $6 \
                     WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2) RETURNING *",
                )
                .bind(id.0)
                .bind(tenant.map(|t| t.0))
                .bind(patch.name.map(str::trim))
                .bind(patch.role.map(tod_core::rbac::Role::as_str))
                .bind(patch.is_active)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let user = row.as_ref().map(User::try_from).transpose()?.ok_or(StoreError::NotFound("user"))?;
                if patch.is_active == Some(false) || patch.role.is_some() {
                    revoke_user_sessions(&mut tx, id, "account changed", now).await?;
                }
                append(&mut tx, &with_resource(audit, "user", id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(user)
            }

            async fn delete_user(&self, tenant: Option<TenantId>, id: UserId, audit: &Audit) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(tenant).await?;
                let done = sqlx::query("DELETE FROM users WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)")
                    .bind(id.0)
                    .bind(tenant.map(|t| t.0))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("user"));
                }
                append(&mut tx, &with_resource(audit, "user", id.to_string()), micros(Utc::now())).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn set_user_verifier(
                &self,
                id: UserId,
                salt: &[u8],
                verifier: &[u8],
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<(), StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(None).await?;
                let done = sqlx::query("UPDATE users SET srp_salt = $2, srp_verifier = $3, updated_at = $4 WHERE id = $1")
                    .bind(id.0)
                    .bind(salt)
                    .bind(verifier)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("user"));
                }
                revoke_user_sessions(&mut tx, id, "password changed", now).await?;
                append(&mut tx, &with_resource(audit, "user", id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn user_credentials(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
                let mut tx = self.tx(None).await?;
                let row: Option<UserRow> = sqlx::query_as("SELECT * FROM users WHERE email = $1")
                    .bind(tod_core::srp::identity(email))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                row.map(|r| {
                    Ok(UserCredentials {
                        user: User::try_from(&r)?,
                        salt: r.srp_salt,
                        verifier: r.srp_verifier,
                    })
                })
                .transpose()
            }

            async fn put_srp_challenge(&self, c: &SrpChallenge, now: DateTime<Utc>) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(None).await?;
                sqlx::query("DELETE FROM srp_sessions WHERE expires_at <= $1")
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query(
                    "INSERT INTO srp_sessions (id, email, user_id, b, salt, verifier, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(c.id)
                .bind(&c.email)
                .bind(c.user_id.map(|u| u.0))
                .bind(&c.b)
                .bind(&c.salt)
                .bind(&c.verifier)
                .bind(micros(c.expires_at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn take_srp_challenge(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<SrpChallenge>, StoreError> {
                let (_w, mut tx) = self.wtx(None).await?;
                let row: Option<(Uuid, String, Option<Uuid>, Vec<u8>, Vec<u8>, Vec<u8>, DateTime<Utc>)> =
                    sqlx::query_as(
                        "DELETE FROM srp_sessions WHERE id = $1 \
                         RETURNING id, email, user_id, b, salt, verifier, expires_at",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(row
                    .filter(|r| r.6 > now)
                    .map(|(id, email, user_id, b, salt, verifier, expires_at)| SrpChallenge {
                        id,
                        email,
                        user_id: user_id.map(UserId),
                        b,
                        salt,
                        verifier,
                        expires_at,
                    }))
            }

            async fn open_session(
                &self,
                id: Uuid,
                user: UserId,
                refresh_jti: Uuid,
                now: DateTime<Utc>,
                expires_at: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<(), StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(None).await?;
                sqlx::query(
                    "INSERT INTO auth_sessions (id, user_id, refresh_jti, created_at, last_used_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $4, $5)",
                )
                .bind(id)
                .bind(user.0)
                .bind(refresh_jti)
                .bind(now)
                .bind(micros(expires_at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                sqlx::query("UPDATE users SET last_login = $2 WHERE id = $1")
                    .bind(user.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                append(&mut tx, audit, now).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn rotate_session(
                &self,
                id: Uuid,
                presented: Uuid,
                new_jti: Uuid,
                now: DateTime<Utc>,
            ) -> Result<Rotation, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(None).await?;
                // Compare-and-set: of two concurrent presentations of one token, one rotates and
                // the other finds the new jti and counts as reuse.
                let rotated = sqlx::query(
                    "UPDATE auth_sessions SET refresh_jti = $3, last_used_at = $4 \
                     WHERE id = $1 AND refresh_jti = $2 AND revoked_at IS NULL AND expires_at > $4 \
                     AND user_id IN (SELECT id FROM users WHERE is_active = $5)",
                )
                .bind(id)
                .bind(presented)
                .bind(new_jti)
                .bind(now)
                .bind(true)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if rotated.rows_affected() == 1 {
                    tx.commit().await.map_err(map_err)?;
                    return Ok(Rotation::Rotated);
                }
                let reused = sqlx::query(
                    "UPDATE auth_sessions SET revoked_at = $2, revoked_reason = 'refresh token reused' \
                     WHERE id = $1 AND revoked_at IS NULL AND refresh_jti <> $3",
                )
                .bind(id)
                .bind(now)
                .bind(presented)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(if reused.rows_affected() == 1 { Rotation::Reused } else { Rotation::Dead })
            }

            async fn revoke_session(
                &self,
                id: Uuid,
                reason: &str,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<(), StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(None).await?;
                sqlx::query(
                    "UPDATE auth_sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(now)
                .bind(reason)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                append(&mut tx, audit, now).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn live_session(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<LiveSession>, StoreError> {
                // Every authenticated request asks this: one round trip, no transaction.
                let row: Option<SessionRow> = sqlx::query_as(
                    "SELECT s.revoked_at AS session_revoked_at, s.expires_at AS session_expires_at, u.* \
                     FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.map(|r| {
                    Ok(LiveSession {
                        user: User::try_from(&r.user)?,
                        revoked: r.session_revoked_at.is_some() || r.session_expires_at <= now,
                    })
                })
                .transpose()
            }

            async fn create_api_key(
                &self,
                tenant: TenantId,
                key: NewApiKey<'_>,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<ApiKey, StoreError> {
                let now = micros(now);
                let scopes = serde_json::to_string(key.scopes).map_err(|e| StoreError::Other(e.to_string()))?;
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let row: ApiKeyRow = sqlx::query_as(
                    "INSERT INTO api_keys (id, tenant_id, created_by, name, key_prefix, key_hash, scopes, \
                     expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
                )
                .bind(Uuid::new_v4())
                .bind(tenant.0)
                .bind(key.created_by.map(|u| u.0))
                .bind(key.name.trim())
                .bind(key.key_prefix)
                .bind(key.key_hash)
                .bind(scopes)
                .bind(key.expires_at.map(micros))
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let k = ApiKey::try_from(row)?;
                append(&mut tx, &with_resource(audit, "api_key", k.id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(k)
            }

            async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKey>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<ApiKeyRow> =
                    sqlx::query_as("SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id")
                        .bind(tenant.0)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                rows.into_iter().map(ApiKey::try_from).collect()
            }

            async fn revoke_api_key(
                &self,
                tenant: TenantId,
                id: ApiKeyId,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                soft_revoke(&mut tx, Revocable::ApiKey, tenant, id.0, micros(now), audit).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn use_api_key(&self, key_hash: &str, now: DateTime<Utc>) -> Result<Option<ApiKey>, StoreError> {
                let now = micros(now);
                let mut tx = self.tx(None).await?;
                let row: Option<ApiKeyRow> = sqlx::query_as(
                    "SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > $2)",
                )
                .bind(key_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                let Some(mut key) = row.map(ApiKey::try_from).transpose()? else {
                    return Ok(None);
                };
                // `last_used_at` is kept to the minute: a key in steady use costs no write per request.
                if key.last_used_at.is_none_or(|t| now - t >= chrono::Duration::seconds(60)) {
                    let (_w, mut tx) = self.wtx(None).await?;
                    sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                        .bind(key.id.0)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    tx.commit().await.map_err(map_err)?;
                    key.last_used_at = Some(now);
                }
                Ok(Some(key))
            }

            async fn append_audit(&self, audit: &Audit, now: DateTime<Utc>) -> Result<AuditRecord, StoreError> {
                let (_w, mut tx) = self.wtx(None).await?;
                let rec = append(&mut tx, audit, micros(now)).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(rec)
            }

            async fn list_audit(&self, chain: TenantId, limit: i64, offset: i64) -> Result<Vec<AuditRecord>, StoreError> {
                let mut tx = self.tx(None).await?;
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT * FROM audit_logs WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2 OFFSET $3",
                )
                .bind(chain.0)
                .bind(limit)
                .bind(offset)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.iter().map(AuditRecord::from).collect())
            }

            async fn verify_audit(&self, chain: TenantId) -> Result<ChainCheck, StoreError> {
                let mut tx = self.tx(None).await?;
                let rows: Vec<AuditRow> = sqlx::query_as("SELECT * FROM audit_logs WHERE tenant_id = $1 ORDER BY seq")
                    .bind(chain.0)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let records: Vec<AuditRecord> = rows.iter().map(AuditRecord::from).collect();
                Ok(super::audit::check_chain(
                    records.iter().zip(rows.iter().map(|r| r.details.as_str())),
                ))
            }

            async fn secret(
                &self,
                name: &str,
                generate: &(dyn Fn() -> Vec<u8> + Send + Sync),
            ) -> Result<Vec<u8>, StoreError> {
                let (_w, mut tx) = self.wtx(None).await?;
                sqlx::query("INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(generate())
                    .bind(micros(Utc::now()))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(value)
            }
        }

        /// Ends every session of a user, in the caller's transaction.
        async fn revoke_user_sessions(
            tx: &mut Tx,
            user: UserId,
            reason: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE auth_sessions SET revoked_at = $2, revoked_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(user.0)
            .bind(now)
            .bind(reason)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
            Ok(())
        }

        /// Sets `revoked_at` on a live credential of the tenant and audits it, in the caller's
        /// transaction; an unknown or already revoked one is "not found".
        async fn soft_revoke(
            tx: &mut Tx,
            what: Revocable,
            tenant: TenantId,
            id: Uuid,
            now: DateTime<Utc>,
            audit: &Audit,
        ) -> Result<(), StoreError> {
            let sql = format!(
                "UPDATE {} SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
                what.table()
            );
            let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant.0)
                .bind(id)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(what.noun()));
            }
            append(tx, &with_resource(audit, what.resource(), id.to_string()), now).await?;
            Ok(())
        }

        fn with_resource(audit: &Audit, kind: &str, id: String) -> Audit {
            let mut a = audit.clone();
            a.resource_type.get_or_insert_with(|| kind.to_owned());
            a.resource_id.get_or_insert(id);
            a
        }

        /// Appends one record to its chain, in the caller's transaction.
        async fn append(tx: &mut Tx, audit: &Audit, now: DateTime<Utc>) -> Result<AuditRecord, StoreError> {
            <$store>::lock_chain(tx, audit.chain).await?;
            let head: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_logs WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1")
                    .bind(audit.chain.0)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(map_err)?;
            let (seq, prev) = head.map_or((1, GENESIS_HASH.to_owned()), |(s, h)| (s + 1, h));
            let details = audit.details.to_string();
            let actor_user = audit.actor_user.map(|u| u.to_string());
            let actor_key = audit.actor_api_key.map(|k| k.to_string());
            let hash = link_hash(
                &prev,
                &audit.chain.to_string(),
                seq,
                actor_user.as_deref(),
                actor_key.as_deref(),
                &audit.action,
                audit.resource_type.as_deref(),
                audit.resource_id.as_deref(),
                &details,
                audit.ip.as_deref(),
                now,
            );
            let row: AuditRow = sqlx::query_as(
                "INSERT INTO audit_logs (id, tenant_id, seq, actor_user_id, actor_api_key_id, action, resource_type, \
                 resource_id, details, ip_address, created_at, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *",
            )
            .bind(Uuid::new_v4())
            .bind(audit.chain.0)
            .bind(seq)
            .bind(audit.actor_user.map(|u| u.0))
            .bind(audit.actor_api_key.map(|k| k.0))
            .bind(&audit.action)
            .bind(&audit.resource_type)
            .bind(&audit.resource_id)
            .bind(&details)
            .bind(&audit.ip)
            .bind(now)
            .bind(&prev)
            .bind(&hash)
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
            Ok(AuditRecord::from(&row))
        }
    };
}

pub(crate) use impl_store;
