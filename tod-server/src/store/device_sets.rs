//! Device groups and device tags: named sets of a tenant's devices. Both have the same shape
//! (name unique in the tenant, description, colour, members) and one implementation, told apart
//! by [`SetKind`]; groups are also what group-scoped alert rules target. Written once for both
//! backends: [`impl_device_set_store!`] expands in each.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::{DeviceId, TenantId};
use uuid::Uuid;

use super::{Audit, StoreError};

/// Which kind of set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetKind {
    /// A device group.
    Group,
    /// A device tag.
    Tag,
}

impl SetKind {
    pub(crate) const fn table(self) -> &'static str {
        match self {
            Self::Group => "device_groups",
            Self::Tag => "device_tags",
        }
    }
    pub(crate) const fn members(self) -> &'static str {
        match self {
            Self::Group => "device_group_members",
            Self::Tag => "device_tag_members",
        }
    }
    /// What the API calls it ("Device group not found").
    pub const fn noun(self) -> &'static str {
        match self {
            Self::Group => "Device group",
            Self::Tag => "Device tag",
        }
    }
    /// The audit resource type and action prefix.
    pub const fn resource(self) -> &'static str {
        match self {
            Self::Group => "device_group",
            Self::Tag => "device_tag",
        }
    }
}

/// A group or tag.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeviceSet {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// Unique in the tenant, 1–255 characters.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// A colour for the UI, `#rrggbb`.
    pub color: Option<String>,
    /// Members.
    pub device_count: i64,
    /// The members' ids (on a single set; omitted from lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub device_ids: Option<Vec<DeviceId>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A set's own fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SetFields<'a> {
    /// Name.
    pub name: &'a str,
    /// Description.
    pub description: Option<&'a str>,
    /// Colour.
    pub color: Option<&'a str>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SetRow {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) color: Option<String>,
    pub(crate) device_count: i64,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl From<SetRow> for DeviceSet {
    fn from(r: SetRow) -> Self {
        DeviceSet {
            id: r.id,
            tenant_id: TenantId(r.tenant_id),
            name: r.name,
            description: r.description,
            color: r.color,
            device_count: r.device_count,
            device_ids: None,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Groups and tags.
#[async_trait::async_trait]
pub trait DeviceSetStore: Send + Sync {
    /// Creates a set (name unique in the tenant → conflict).
    async fn create_set(
        &self,
        kind: SetKind,
        tenant: TenantId,
        fields: &SetFields<'_>,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<DeviceSet, StoreError>;
    /// A tenant's sets by name, with their member counts.
    async fn list_sets(&self, kind: SetKind, tenant: TenantId) -> Result<Vec<DeviceSet>, StoreError>;
    /// One set with its members.
    async fn get_set(&self, kind: SetKind, tenant: TenantId, id: Uuid) -> Result<DeviceSet, StoreError>;
    /// Replaces a set's own fields.
    async fn update_set(
        &self,
        kind: SetKind,
        tenant: TenantId,
        id: Uuid,
        fields: &SetFields<'_>,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<DeviceSet, StoreError>;
    /// Deletes a set (a group's alert rules go with it).
    async fn delete_set(
        &self,
        kind: SetKind,
        tenant: TenantId,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<(), StoreError>;
    /// Adds devices (all the tenant's, else nothing changes) to a set; members already in stay.
    async fn add_set_members(
        &self,
        kind: SetKind,
        tenant: TenantId,
        id: Uuid,
        devices: &[DeviceId],
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<DeviceSet, StoreError>;
    /// Takes a device out of a set.
    async fn remove_set_member(
        &self,
        kind: SetKind,
        tenant: TenantId,
        id: Uuid,
        device: DeviceId,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<(), StoreError>;
}

/// Writes `impl DeviceSetStore` for a backend type.
macro_rules! impl_device_set_store {
    ($store:ty) => {
        /// A set with its member count, or not found.
        async fn set_row(tx: &mut Tx, kind: SetKind, tenant: TenantId, id: Uuid) -> Result<DeviceSet, StoreError> {
            let (table, members) = (kind.table(), kind.members());
            let row: Option<SetRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT s.id, s.tenant_id, s.name, s.description, s.color, \
                 (SELECT COUNT(*) FROM {members} m WHERE m.set_id = s.id) AS device_count, s.created_at, s.updated_at \
                 FROM {table} s WHERE s.tenant_id = $1 AND s.id = $2"
            )))
            .bind(tenant.0)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
            row.map(DeviceSet::from).ok_or(StoreError::NotFound(kind.noun()))
        }

        #[async_trait::async_trait]
        impl DeviceSetStore for $store {
            async fn create_set(
                &self,
                kind: SetKind,
                tenant: TenantId,
                f: &SetFields<'_>,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<DeviceSet, StoreError> {
                let now = micros(now);
                let id = Uuid::new_v4();
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {} (id, tenant_id, name, description, color, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6)",
                    kind.table()
                )))
                .bind(id)
                .bind(tenant.0)
                .bind(f.name.trim())
                .bind(f.description)
                .bind(f.color)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| set_conflict(kind, map_err(e)))?;
                let set = set_row(&mut tx, kind, tenant, id).await?;
                append(&mut tx, &with_resource(audit, kind.resource(), id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(set)
            }

            async fn list_sets(&self, kind: SetKind, tenant: TenantId) -> Result<Vec<DeviceSet>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<SetRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT s.id, s.tenant_id, s.name, s.description, s.color, \
                     (SELECT COUNT(*) FROM {} m WHERE m.set_id = s.id) AS device_count, s.created_at, s.updated_at \
                     FROM {} s WHERE s.tenant_id = $1 ORDER BY s.name, s.id",
                    kind.members(),
                    kind.table()
                )))
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(DeviceSet::from).collect())
            }

            async fn get_set(&self, kind: SetKind, tenant: TenantId, id: Uuid) -> Result<DeviceSet, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let mut set = set_row(&mut tx, kind, tenant, id).await?;
                let ids: Vec<(Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT m.device_id FROM {} m JOIN devices d ON d.id = m.device_id \
                     WHERE m.tenant_id = $1 AND m.set_id = $2 ORDER BY d.name, d.id",
                    kind.members()
                )))
                .bind(tenant.0)
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                set.device_ids = Some(ids.into_iter().map(|(d,)| DeviceId(d)).collect());
                Ok(set)
            }

            async fn update_set(
                &self,
                kind: SetKind,
                tenant: TenantId,
                id: Uuid,
                f: &SetFields<'_>,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<DeviceSet, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {} SET name = $3, description = $4, color = $5, updated_at = $6 \
                     WHERE tenant_id = $1 AND id = $2",
                    kind.table()
                )))
                .bind(tenant.0)
                .bind(id)
                .bind(f.name.trim())
                .bind(f.description)
                .bind(f.color)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| set_conflict(kind, map_err(e)))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(kind.noun()));
                }
                let set = set_row(&mut tx, kind, tenant, id).await?;
                append(&mut tx, &with_resource(audit, kind.resource(), id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(set)
            }

            async fn delete_set(
                &self,
                kind: SetKind,
                tenant: TenantId,
                id: Uuid,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<(), StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                if kind == SetKind::Group {
                    // The group's rules go with it; their open alerts are resolved, not orphaned.
                    sqlx::query(
                        "UPDATE alert_events SET status = 'resolved', resolved_at = $3, resolve_reason = 'rule_deleted' \
                         WHERE tenant_id = $1 AND resolved_at IS NULL \
                         AND rule_id IN (SELECT id FROM alert_rules WHERE tenant_id = $1 AND group_id = $2)",
                    )
                    .bind(tenant.0)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    sqlx::query("DELETE FROM alert_rules WHERE tenant_id = $1 AND group_id = $2")
                        .bind(tenant.0)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {} WHERE tenant_id = $1 AND id = $2",
                    kind.table()
                )))
                .bind(tenant.0)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(kind.noun()));
                }
                append(&mut tx, &with_resource(audit, kind.resource(), id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(())
            }

            async fn add_set_members(
                &self,
                kind: SetKind,
                tenant: TenantId,
                id: Uuid,
                devices: &[DeviceId],
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<DeviceSet, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                set_row(&mut tx, kind, tenant, id).await?;
                for d in devices {
                    let found: Option<(Uuid,)> =
                        sqlx::query_as("SELECT id FROM devices WHERE tenant_id = $1 AND id = $2")
                            .bind(tenant.0)
                            .bind(d.0)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(map_err)?;
                    if found.is_none() {
                        return Err(StoreError::Invalid(format!("device_ids: {d} is not a device of this tenant")));
                    }
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO {} (set_id, device_id, tenant_id) VALUES ($1, $2, $3) \
                         ON CONFLICT (set_id, device_id) DO NOTHING",
                        kind.members()
                    )))
                    .bind(id)
                    .bind(d.0)
                    .bind(tenant.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                append(&mut tx, &with_resource(audit, kind.resource(), id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                self.get_set(kind, tenant, id).await
            }

            async fn remove_set_member(
                &self,
                kind: SetKind,
                tenant: TenantId,
                id: Uuid,
                device: DeviceId,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<(), StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                set_row(&mut tx, kind, tenant, id).await?;
                let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {} WHERE tenant_id = $1 AND set_id = $2 AND device_id = $3",
                    kind.members()
                )))
                .bind(tenant.0)
                .bind(id)
                .bind(device.0)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("device in this set"));
                }
                append(&mut tx, &with_resource(audit, kind.resource(), id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_device_set_store;

/// A duplicate name, in the set's own words.
pub(crate) fn set_conflict(kind: SetKind, e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict(_) => StoreError::Conflict(format!(
            "A {} with this name already exists",
            kind.noun().to_lowercase()
        )),
        other => other,
    }
}
