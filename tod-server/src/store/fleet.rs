//! Devices, agents and ingest: the storage side of what agents deliver.
//!
//! Written once for both backends like [`super::queries`]; [`impl_fleet_store!`] expands in each
//! backend module with the same hooks.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::telemetry::PollStatus;
use tod_core::{AgentId, DeviceId, DeviceStatus, SiteId, TenantId};
use uuid::Uuid;

use super::{Audit, StoreError};

/// A managed device (router, AP, CPE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Device {
    /// Id (the agent reports under it).
    #[schema(value_type = String, format = Uuid)]
    pub id: DeviceId,
    /// Tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// Site (tower), if assigned.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub site_id: Option<SiteId>,
    /// Name, unique per tenant.
    pub name: String,
    /// Address the agent polls.
    pub host: String,
    /// `unknown`, `online`, `offline`, `unreachable` or `auth_failed`.
    pub status: String,
    /// Last reported RouterOS version.
    pub routeros_version: Option<String>,
    /// Last reported board.
    pub board_name: Option<String>,
    /// Last report.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The fields of a new device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDevice<'a> {
    /// Name.
    pub name: &'a str,
    /// Address.
    pub host: &'a str,
    /// Site, which must be the tenant's.
    pub site_id: Option<SiteId>,
}

/// An agent (one per tower).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Agent {
    /// Id (the agent's `[agent] id`).
    #[schema(value_type = String, format = Uuid)]
    pub id: AgentId,
    /// Tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// The site whose devices it polls and reports.
    #[schema(value_type = String, format = Uuid)]
    pub site_id: SiteId,
    /// Name.
    pub name: String,
    /// Last accepted batch.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Revoked: its token no longer works.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Ingested {
    /// Stored: this many reports and registration rows.
    Stored {
        /// Reports.
        reports: usize,
        /// Registration rows.
        registrations: usize,
    },
    /// Seen before (same agent and idempotency key): nothing stored again.
    Duplicate,
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeviceRow {
    id: Uuid,
    tenant_id: Uuid,
    site_id: Option<Uuid>,
    name: String,
    host: String,
    status: String,
    routeros_version: Option<String>,
    board_name: Option<String>,
    last_seen_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<DeviceRow> for Device {
    fn from(r: DeviceRow) -> Self {
        Self {
            id: DeviceId(r.id),
            tenant_id: TenantId(r.tenant_id),
            site_id: r.site_id.map(SiteId),
            name: r.name,
            host: r.host,
            status: r.status,
            routeros_version: r.routeros_version,
            board_name: r.board_name,
            last_seen_at: r.last_seen_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AgentRow {
    id: Uuid,
    tenant_id: Uuid,
    site_id: Uuid,
    name: String,
    last_seen_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<AgentRow> for Agent {
    fn from(r: AgentRow) -> Self {
        Self {
            id: AgentId(r.id),
            tenant_id: TenantId(r.tenant_id),
            site_id: SiteId(r.site_id),
            name: r.name,
            last_seen_at: r.last_seen_at,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// The status column value of a poll outcome.
pub(crate) fn status_str(s: &PollStatus) -> &'static str {
    match s {
        PollStatus::Online => DeviceStatus::Online.as_str(),
        PollStatus::Offline { .. } => DeviceStatus::Offline.as_str(),
        PollStatus::AuthFailed { .. } => "auth_failed",
    }
}

/// Clamps an unsigned counter into a signed 64-bit column.
pub(crate) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Storage of devices, agents and delivered batches.
#[async_trait::async_trait]
pub trait FleetStore: Send + Sync {
    /// Creates a device; its site must be one of the tenant's.
    async fn create_device(
        &self,
        tenant: TenantId,
        device: NewDevice<'_>,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<Device, StoreError>;
    /// One device of a tenant.
    async fn get_device(&self, tenant: TenantId, id: DeviceId) -> Result<Device, StoreError>;
    /// A tenant's devices, optionally of one site, by name.
    async fn list_devices(&self, tenant: TenantId, site: Option<SiteId>) -> Result<Vec<Device>, StoreError>;

    /// Creates an agent for a site of the tenant, with the hash of its token.
    async fn create_agent(
        &self,
        tenant: TenantId,
        site: SiteId,
        name: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<Agent, StoreError>;
    /// A tenant's agents.
    async fn list_agents(&self, tenant: TenantId) -> Result<Vec<Agent>, StoreError>;
    /// Revokes an agent; its token stops working at once.
    async fn revoke_agent(
        &self,
        tenant: TenantId,
        id: AgentId,
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<(), StoreError>;
    /// The live agent with this token hash.
    async fn agent_by_token(&self, token_hash: &str) -> Result<Option<Agent>, StoreError>;

    /// Stores a batch from `agent` in one transaction: every report must name a device of the
    /// agent's site (else nothing is stored and the error lists the strangers); a batch seen
    /// before is acknowledged without storing it again.
    async fn ingest(
        &self,
        agent: &Agent,
        batch: &tod_core::telemetry::Batch,
        now: DateTime<Utc>,
    ) -> Result<Ingested, StoreError>;
    /// How many registration rows a device has (tests, diagnostics).
    async fn count_registrations(&self, tenant: TenantId, device: DeviceId) -> Result<i64, StoreError>;
}

/// Writes `impl FleetStore` for a backend type.
macro_rules! impl_fleet_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::FleetStore for $store {
            async fn create_device(
                &self,
                tenant: TenantId,
                new: NewDevice<'_>,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<Device, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                if let Some(site) = new.site_id {
                    // A foreign key only proves the site exists somewhere (§12.16).
                    let ours: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM sites WHERE id = $1 AND tenant_id = $2")
                        .bind(site.0)
                        .bind(tenant.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    if ours.is_none() {
                        return Err(StoreError::Invalid("site_id: not a site of this tenant".into()));
                    }
                }
                let row: DeviceRow = sqlx::query_as(
                    "INSERT INTO devices (id, tenant_id, site_id, name, host, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'unknown', $6, $6) RETURNING *",
                )
                .bind(Uuid::new_v4())
                .bind(tenant.0)
                .bind(new.site_id.map(|s| s.0))
                .bind(new.name.trim())
                .bind(new.host.trim())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let d = Device::from(row);
                append(&mut tx, &with_resource(audit, "device", d.id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(d)
            }

            async fn get_device(&self, tenant: TenantId, id: DeviceId) -> Result<Device, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let row: Option<DeviceRow> = sqlx::query_as("SELECT * FROM devices WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                row.map(Device::from).ok_or(StoreError::NotFound("device"))
            }

            async fn list_devices(&self, tenant: TenantId, site: Option<SiteId>) -> Result<Vec<Device>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<DeviceRow> = sqlx::query_as(
                    "SELECT * FROM devices WHERE tenant_id = $1 AND ($2 IS NULL OR site_id = $2) ORDER BY name",
                )
                .bind(tenant.0)
                .bind(site.map(|s| s.0))
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(Device::from).collect())
            }

            async fn create_agent(
                &self,
                tenant: TenantId,
                site: SiteId,
                name: &str,
                token_hash: &str,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<Agent, StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let ours: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM sites WHERE id = $1 AND tenant_id = $2")
                    .bind(site.0)
                    .bind(tenant.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if ours.is_none() {
                    return Err(StoreError::Invalid("site_id: not a site of this tenant".into()));
                }
                let row: AgentRow = sqlx::query_as(
                    "INSERT INTO agents (id, tenant_id, site_id, name, token_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     RETURNING id, tenant_id, site_id, name, last_seen_at, created_at, revoked_at",
                )
                .bind(Uuid::new_v4())
                .bind(tenant.0)
                .bind(site.0)
                .bind(name.trim())
                .bind(token_hash)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let a = Agent::from(row);
                append(&mut tx, &with_resource(audit, "agent", a.id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(a)
            }

            async fn list_agents(&self, tenant: TenantId) -> Result<Vec<Agent>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<AgentRow> = sqlx::query_as(
                    "SELECT id, tenant_id, site_id, name, last_seen_at, created_at, revoked_at FROM agents \
                     WHERE tenant_id = $1 ORDER BY name",
                )
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(Agent::from).collect())
            }

            async fn revoke_agent(
                &self,
                tenant: TenantId,
                id: AgentId,
                now: DateTime<Utc>,
                audit: &Audit,
            ) -> Result<(), StoreError> {
                let now = micros(now);
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let done = sqlx::query(
                    "UPDATE agents SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
                )
                .bind(tenant.0)
                .bind(id.0)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("agent"));
                }
                append(&mut tx, &with_resource(audit, "agent", id.to_string()), now).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn agent_by_token(&self, token_hash: &str) -> Result<Option<Agent>, StoreError> {
                let row: Option<AgentRow> = sqlx::query_as(
                    "SELECT id, tenant_id, site_id, name, last_seen_at, created_at, revoked_at FROM agents \
                     WHERE token_hash = $1 AND revoked_at IS NULL",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(row.map(Agent::from))
            }

            async fn ingest(
                &self,
                agent: &Agent,
                batch: &tod_core::telemetry::Batch,
                now: DateTime<Utc>,
            ) -> Result<Ingested, StoreError> {
                let now = micros(now);
                let tenant = agent.tenant_id;
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let seen: Option<(i64,)> = sqlx::query_as(
                    "SELECT reports FROM ingest_batches WHERE agent_id = $1 AND idempotency_key = $2",
                )
                .bind(agent.id.0)
                .bind(&batch.idempotency_key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                if seen.is_some() {
                    return Ok(Ingested::Duplicate);
                }
                let ours: Vec<(Uuid,)> = sqlx::query_as("SELECT id FROM devices WHERE tenant_id = $1 AND site_id = $2")
                    .bind(tenant.0)
                    .bind(agent.site_id.0)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let ours: std::collections::HashSet<Uuid> = ours.into_iter().map(|(id,)| id).collect();
                let mut strangers: Vec<String> = batch
                    .reports
                    .iter()
                    .filter(|r| !ours.contains(&r.device_id.0))
                    .map(|r| r.device_id.to_string())
                    .collect();
                if !strangers.is_empty() {
                    strangers.sort();
                    strangers.dedup();
                    return Err(StoreError::Invalid(format!(
                        "devices not at this agent's site: {}",
                        strangers.join(", ")
                    )));
                }
                let mut registrations = 0;
                for r in &batch.reports {
                    let status = status_str(&r.status);
                    let res = r.resources.as_ref();
                    sqlx::query(
                        "INSERT INTO device_metrics (tenant_id, device_id, collected_at, status, cpu_load, free_memory, \
                         total_memory, temperature_c, uptime_secs) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(tenant.0)
                    .bind(r.device_id.0)
                    .bind(micros(r.collected_at))
                    .bind(status)
                    .bind(res.and_then(|x| x.cpu_load))
                    .bind(res.and_then(|x| x.free_memory).map(i64_of))
                    .bind(res.and_then(|x| x.total_memory).map(i64_of))
                    .bind(res.and_then(|x| x.temperature_c))
                    .bind(r.system.as_ref().and_then(|s| s.uptime_secs).map(i64_of))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    // Reports arrive in collection order per device; an older one never rolls
                    // the device's state back.
                    sqlx::query(
                        "UPDATE devices SET status = $3, last_seen_at = $4, updated_at = $5, \
                         routeros_version = COALESCE($6, routeros_version), board_name = COALESCE($7, board_name) \
                         WHERE tenant_id = $1 AND id = $2 AND (last_seen_at IS NULL OR last_seen_at <= $4)",
                    )
                    .bind(tenant.0)
                    .bind(r.device_id.0)
                    .bind(status)
                    .bind(micros(r.collected_at))
                    .bind(now)
                    .bind(r.system.as_ref().map(|s| s.routeros_version.as_str()))
                    .bind(r.system.as_ref().and_then(|s| s.board_name.as_deref()))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    for g in r.registrations.iter().flatten() {
                        sqlx::query(
                            "INSERT INTO registrations (tenant_id, device_id, collected_at, interface, mac, signal_dbm, \
                             tx_signal_dbm, tx_ccq, tx_rate, rx_rate, uptime_secs, distance_m, last_ip) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                        )
                        .bind(tenant.0)
                        .bind(r.device_id.0)
                        .bind(micros(r.collected_at))
                        .bind(&g.interface)
                        .bind(g.mac.to_string())
                        .bind(g.signal_dbm)
                        .bind(g.tx_signal_dbm)
                        .bind(g.tx_ccq.map(i16::from))
                        .bind(&g.tx_rate)
                        .bind(&g.rx_rate)
                        .bind(g.uptime_secs.map(i64_of))
                        .bind(g.distance_m.map(i64::from))
                        .bind(&g.last_ip)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                        registrations += 1;
                    }
                }
                sqlx::query(
                    "INSERT INTO ingest_batches (agent_id, idempotency_key, tenant_id, reports, received_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(agent.id.0)
                .bind(&batch.idempotency_key)
                .bind(tenant.0)
                .bind(batch.reports.len() as i64)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                sqlx::query("UPDATE agents SET last_seen_at = $2 WHERE id = $1")
                    .bind(agent.id.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(Ingested::Stored {
                    reports: batch.reports.len(),
                    registrations,
                })
            }

            async fn count_registrations(&self, tenant: TenantId, device: DeviceId) -> Result<i64, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                sqlx::query_scalar("SELECT COUNT(*) FROM registrations WHERE tenant_id = $1 AND device_id = $2")
                    .bind(tenant.0)
                    .bind(device.0)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)
            }
        }
    };
}

pub(crate) use impl_fleet_store;
