//! WASM alert plugins: the uploaded components, their configuration and assignments (tenant,
//! site or sector), the list the evaluator runs, and the snapshot a plugin judges — live, or as
//! of a past instant for a backtest. Written once for both backends; [`impl_plugin_store!`]
//! expands in each.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tod_core::alerts::{Hysteresis, SnapshotWindows};
use tod_core::{SectorId, SiteId, TenantId};
use uuid::Uuid;

use super::StoreError;

/// A plugin's configuration: string keys and values, handed to it through the `config` host
/// function.
pub type PluginConfig = BTreeMap<String, String>;

/// What a plugin reads, in the API's words.
pub const PLUGIN_INPUTS: [&str; 4] = ["devices", "links", "sectors", "history"];

/// An uploaded plugin.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Plugin {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// Tenant.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// The name the plugin gives itself.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it reads: `devices`, `links`, `sectors`, `history`.
    pub inputs: Vec<String>,
    /// SHA-256 of the uploaded bytes, hex.
    pub sha256: String,
    /// Size of the upload, bytes.
    pub size_bytes: i64,
    /// Configuration every assignment starts from (an assignment's own keys win).
    pub config: PluginConfig,
    /// Whether it runs. The host turns this off when the plugin misbehaves.
    pub enabled: bool,
    /// Why the host stopped it (a trap, its CPU or memory limit, bad output); cleared when an
    /// operator enables it again.
    pub disabled_reason: Option<String>,
    /// Consecutive passes with a finding before an event is raised.
    pub fire_after: u32,
    /// Consecutive passes without it before the event resolves.
    pub clear_after: u32,
    /// Where it runs.
    pub assignments: Vec<PluginAssignment>,
    /// Uploaded.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Where a plugin runs: the whole tenant, one site, or one sector.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PluginAssignment {
    /// Id; the `rule_id` of the events it raises.
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// The plugin.
    #[schema(value_type = String, format = Uuid)]
    pub plugin_id: Uuid,
    /// `tenant`, `site` or `sector`.
    pub scope: String,
    /// The site (site and sector scopes).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub site_id: Option<SiteId>,
    /// The sector (sector scope).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub sector_id: Option<SectorId>,
    /// Keys that override the plugin's configuration here.
    pub config: PluginConfig,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A plugin as uploaded and validated.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// Id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it reads.
    pub inputs: Vec<String>,
    /// SHA-256, hex.
    pub sha256: String,
    /// The bytes as uploaded.
    pub component: Vec<u8>,
    /// Configuration.
    pub config: PluginConfig,
    /// Whether it runs.
    pub enabled: bool,
    /// Hysteresis.
    pub hysteresis: Hysteresis,
}

/// A change to a plugin (only the fields given).
#[derive(Debug, Clone, Default)]
pub struct PluginPatch {
    /// New configuration.
    pub config: Option<PluginConfig>,
    /// Enable (clears the reason it was stopped) or disable.
    pub enabled: Option<bool>,
    /// New hysteresis.
    pub hysteresis: Option<Hysteresis>,
}

/// One enabled assignment, as the evaluator runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnablePlugin {
    /// Tenant.
    pub tenant: TenantId,
    /// The plugin.
    pub plugin: Uuid,
    /// Its name.
    pub name: String,
    /// The assignment (the rule id of its events).
    pub assignment: Uuid,
    /// Site scope.
    pub site: Option<SiteId>,
    /// Sector scope.
    pub sector: Option<SectorId>,
    /// SHA-256 of the component, hex (the cache key).
    pub sha256: String,
    /// The plugin's configuration with the assignment's keys on top.
    pub config: PluginConfig,
    /// Hysteresis.
    pub hysteresis: Hysteresis,
}

#[derive(sqlx::FromRow)]
pub(crate) struct PluginRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    version: String,
    inputs: String,
    sha256: String,
    size_bytes: i64,
    config: String,
    enabled: bool,
    disabled_reason: Option<String>,
    fire_after: i32,
    clear_after: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub(crate) const PLUGIN_COLUMNS: &str = "id, tenant_id, name, version, inputs, sha256, size_bytes, config, enabled, \
     disabled_reason, fire_after, clear_after, created_at, updated_at";

impl PluginRow {
    pub(crate) fn into_plugin(self, assignments: Vec<PluginAssignment>) -> Plugin {
        Plugin {
            id: self.id,
            tenant_id: TenantId(self.tenant_id),
            name: self.name,
            version: self.version,
            inputs: self
                .inputs
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            sha256: self.sha256,
            size_bytes: self.size_bytes,
            config: parse_config(&self.config),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            fire_after: u32::try_from(self.fire_after).unwrap_or(1),
            clear_after: u32::try_from(self.clear_after).unwrap_or(1),
            assignments,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AssignmentRow {
    id: Uuid,
    plugin_id: Uuid,
    site_id: Option<Uuid>,
    sector_id: Option<Uuid>,
    config: String,
    created_at: DateTime<Utc>,
}

pub(crate) const ASSIGNMENT_COLUMNS: &str = "id, plugin_id, site_id, sector_id, config, created_at";

impl From<AssignmentRow> for PluginAssignment {
    fn from(r: AssignmentRow) -> Self {
        let scope = match (r.site_id, r.sector_id) {
            (_, Some(_)) => "sector",
            (Some(_), None) => "site",
            (None, None) => "tenant",
        };
        Self {
            id: r.id,
            plugin_id: r.plugin_id,
            scope: scope.into(),
            site_id: r.site_id.map(SiteId),
            sector_id: r.sector_id.map(SectorId),
            config: parse_config(&r.config),
            created_at: r.created_at,
        }
    }
}

/// A stored configuration (written by [`config_json`]; anything else reads as empty).
pub(crate) fn parse_config(text: &str) -> PluginConfig {
    serde_json::from_str(text).unwrap_or_default()
}

/// A configuration as stored.
pub(crate) fn config_json(config: &PluginConfig) -> String {
    serde_json::to_string(config).unwrap_or_else(|_| "{}".into())
}

/// A plugin's rows with their assignments attached.
pub(crate) fn attach(rows: Vec<PluginRow>, assignments: Vec<AssignmentRow>) -> Vec<Plugin> {
    let mut by_plugin: BTreeMap<Uuid, Vec<PluginAssignment>> = BTreeMap::new();
    for a in assignments {
        by_plugin.entry(a.plugin_id).or_default().push(a.into());
    }
    rows.into_iter()
        .map(|r| {
            let a = by_plugin.remove(&r.id).unwrap_or_default();
            r.into_plugin(a)
        })
        .collect()
}

/// Storage for plugins.
#[async_trait::async_trait]
pub trait PluginStore: Send + Sync {
    /// Stores an uploaded plugin.
    async fn create_plugin(
        &self,
        tenant: TenantId,
        plugin: &NewPlugin,
        now: DateTime<Utc>,
    ) -> Result<Plugin, StoreError>;
    /// The tenant's plugins, oldest first, with their assignments.
    async fn plugins(&self, tenant: TenantId) -> Result<Vec<Plugin>, StoreError>;
    /// One plugin.
    async fn plugin(&self, tenant: TenantId, id: Uuid) -> Result<Plugin, StoreError>;
    /// The uploaded bytes of a plugin.
    async fn plugin_component(&self, tenant: TenantId, id: Uuid) -> Result<Vec<u8>, StoreError>;
    /// Changes a plugin. Disabling it, or changing its configuration or hysteresis, resolves
    /// the active events of its assignments in the same transaction.
    async fn update_plugin(
        &self,
        tenant: TenantId,
        id: Uuid,
        patch: &PluginPatch,
        now: DateTime<Utc>,
    ) -> Result<Plugin, StoreError>;
    /// The host stopped a plugin: it is disabled with `reason`, and its active events resolve.
    async fn stop_plugin(&self, tenant: TenantId, id: Uuid, reason: &str, now: DateTime<Utc>)
    -> Result<(), StoreError>;
    /// Deletes a plugin and its assignments; their active events resolve and stay as history.
    async fn delete_plugin(&self, tenant: TenantId, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Runs a plugin over the tenant, a site or a sector (checked to be the tenant's, the
    /// sector at the site).
    async fn assign_plugin(
        &self,
        tenant: TenantId,
        plugin: Uuid,
        site: Option<SiteId>,
        sector: Option<SectorId>,
        config: &PluginConfig,
        now: DateTime<Utc>,
    ) -> Result<PluginAssignment, StoreError>;
    /// Removes an assignment; its active events resolve.
    async fn unassign_plugin(
        &self,
        tenant: TenantId,
        plugin: Uuid,
        assignment: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Every assignment of every enabled plugin (the evaluator's work list).
    async fn runnable_plugins(&self) -> Result<Vec<RunnablePlugin>, StoreError>;
    /// What a plugin reading `inputs` sees of the tenant (or of one site) at `at`. `live`: the
    /// devices' current status and the links' current state; otherwise both as of `at`, from
    /// the stored samples (a backtest). Samples and sector aggregates come from `windows`' recent
    /// window, signal history from its lookback.
    async fn plugin_snapshot(
        &self,
        tenant: TenantId,
        site: Option<SiteId>,
        inputs: tod_plugin_host::Inputs,
        at: DateTime<Utc>,
        live: bool,
        windows: SnapshotWindows,
    ) -> Result<tod_core::alerts::Snapshot, StoreError>;
    /// Each link's week-over-week signal drop in dB (positive: weaker), judged by tod-core as of
    /// `at` over whole hours (see [`trend_end`](crate::store::trends::trend_end)), for the
    /// tenant's links (whose AP is at `site`) that have enough samples in both weeks.
    async fn link_trends(
        &self,
        tenant: TenantId,
        site: Option<SiteId>,
        at: DateTime<Utc>,
        config: &tod_core::signal::TrendConfig,
    ) -> Result<std::collections::HashMap<tod_core::links::LinkKey, f64>, StoreError>;
}

/// The most history points in one snapshot.
pub(crate) const HISTORY_LIMIT: i64 = 20_000;

macro_rules! impl_plugin_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl PluginStore for $store {
            async fn create_plugin(
                &self,
                tenant: TenantId,
                p: &NewPlugin,
                now: DateTime<Utc>,
            ) -> Result<Plugin, StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let row: PluginRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO plugins ({PLUGIN_COLUMNS}, component) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $12, $12, $13) RETURNING {PLUGIN_COLUMNS}"
                )))
                .bind(p.id)
                .bind(tenant.0)
                .bind(&p.name)
                .bind(&p.version)
                .bind(p.inputs.join(","))
                .bind(&p.sha256)
                .bind(p.component.len() as i64)
                .bind(config_json(&p.config))
                .bind(p.enabled)
                .bind(p.hysteresis.fire_after as i32)
                .bind(p.hysteresis.clear_after as i32)
                .bind(micros(now))
                .bind(&p.component)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(row.into_plugin(Vec::new()))
            }

            async fn plugins(&self, tenant: TenantId) -> Result<Vec<Plugin>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let rows: Vec<PluginRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {PLUGIN_COLUMNS} FROM plugins WHERE tenant_id = $1 ORDER BY created_at, id"
                )))
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let assignments: Vec<AssignmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ASSIGNMENT_COLUMNS} FROM plugin_assignments WHERE tenant_id = $1 ORDER BY created_at, id"
                )))
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                Ok(attach(rows, assignments))
            }

            async fn plugin(&self, tenant: TenantId, id: Uuid) -> Result<Plugin, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                get_plugin(&mut tx, tenant, id).await
            }

            async fn plugin_component(&self, tenant: TenantId, id: Uuid) -> Result<Vec<u8>, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                let bytes: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT component FROM plugins WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.0)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                bytes.ok_or(StoreError::NotFound("plugin"))
            }

            async fn update_plugin(
                &self,
                tenant: TenantId,
                id: Uuid,
                patch: &PluginPatch,
                now: DateTime<Utc>,
            ) -> Result<Plugin, StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let before = get_plugin(&mut tx, tenant, id).await?;
                let config = patch.config.clone().unwrap_or_else(|| before.config.clone());
                let enabled = patch.enabled.unwrap_or(before.enabled);
                let hysteresis = patch.hysteresis.unwrap_or(Hysteresis {
                    fire_after: before.fire_after,
                    clear_after: before.clear_after,
                });
                // Enabling clears the reason the host stopped it; disabling by hand leaves none.
                let reason = if enabled { None } else { before.disabled_reason.clone() };
                sqlx::query(
                    "UPDATE plugins SET config = $3, enabled = $4, disabled_reason = $5, fire_after = $6, \
                     clear_after = $7, updated_at = $8 WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(config_json(&config))
                .bind(enabled)
                .bind(reason)
                .bind(hysteresis.fire_after as i32)
                .bind(hysteresis.clear_after as i32)
                .bind(micros(now))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                let same = enabled
                    && before.enabled
                    && config == before.config
                    && hysteresis.fire_after == before.fire_after
                    && hysteresis.clear_after == before.clear_after;
                if !same {
                    resolve_plugin_events(&mut tx, tenant, id, None, now).await?;
                }
                let after = get_plugin(&mut tx, tenant, id).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(after)
            }

            async fn stop_plugin(
                &self,
                tenant: TenantId,
                id: Uuid,
                reason: &str,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                sqlx::query(
                    "UPDATE plugins SET enabled = $3, disabled_reason = $4, updated_at = $5 \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.0)
                .bind(id)
                .bind(false)
                .bind(reason)
                .bind(micros(now))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                resolve_plugin_events(&mut tx, tenant, id, None, now).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn delete_plugin(&self, tenant: TenantId, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                get_plugin(&mut tx, tenant, id).await?;
                resolve_plugin_events(&mut tx, tenant, id, None, now).await?;
                sqlx::query("DELETE FROM plugin_assignments WHERE tenant_id = $1 AND plugin_id = $2")
                    .bind(tenant.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query("DELETE FROM plugins WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn assign_plugin(
                &self,
                tenant: TenantId,
                plugin: Uuid,
                site: Option<SiteId>,
                sector: Option<SectorId>,
                config: &PluginConfig,
                now: DateTime<Utc>,
            ) -> Result<PluginAssignment, StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                get_plugin(&mut tx, tenant, plugin).await?;
                if let Some(site) = site {
                    if !site_is_tenants(&mut tx, tenant, site).await? {
                        return Err(StoreError::NotFound("site"));
                    }
                    sector_at_site(&mut tx, tenant, site, sector).await?;
                }
                let row: AssignmentRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO plugin_assignments (id, tenant_id, plugin_id, site_id, sector_id, config, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ASSIGNMENT_COLUMNS}"
                )))
                .bind(Uuid::new_v4())
                .bind(tenant.0)
                .bind(plugin)
                .bind(site.map(|s| s.0))
                .bind(sector.map(|s| s.0))
                .bind(config_json(config))
                .bind(micros(now))
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(row.into())
            }

            async fn unassign_plugin(
                &self,
                tenant: TenantId,
                plugin: Uuid,
                assignment: Uuid,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let (_w, mut tx) = self.wtx(Some(tenant)).await?;
                let done =
                    sqlx::query("DELETE FROM plugin_assignments WHERE tenant_id = $1 AND plugin_id = $2 AND id = $3")
                        .bind(tenant.0)
                        .bind(plugin)
                        .bind(assignment)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("plugin assignment"));
                }
                resolve_plugin_events(&mut tx, tenant, plugin, Some(assignment), now).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn runnable_plugins(&self) -> Result<Vec<RunnablePlugin>, StoreError> {
                let mut tx = self.tx(None).await?;
                let rows: Vec<(Uuid, Uuid, String, String, String, i32, i32, Uuid, Option<Uuid>, Option<Uuid>, String)> =
                    sqlx::query_as(
                        "SELECT p.tenant_id, p.id, p.name, p.sha256, p.config, p.fire_after, p.clear_after, \
                         a.id, a.site_id, a.sector_id, a.config \
                         FROM plugins p JOIN plugin_assignments a ON a.plugin_id = p.id AND a.tenant_id = p.tenant_id \
                         WHERE p.enabled = $1 ORDER BY p.tenant_id, p.created_at, a.created_at",
                    )
                    .bind(true)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Ok(rows
                    .into_iter()
                    .map(|(tenant, plugin, name, sha256, config, fire, clear, assignment, site, sector, own)| {
                        let mut config = parse_config(&config);
                        config.extend(parse_config(&own));
                        RunnablePlugin {
                            tenant: TenantId(tenant),
                            plugin,
                            name,
                            assignment,
                            site: site.map(SiteId),
                            sector: sector.map(SectorId),
                            sha256,
                            config,
                            hysteresis: Hysteresis {
                                fire_after: u32::try_from(fire).unwrap_or(1),
                                clear_after: u32::try_from(clear).unwrap_or(1),
                            },
                        }
                    })
                    .collect())
            }

            async fn plugin_snapshot(
                &self,
                tenant: TenantId,
                site: Option<SiteId>,
                inputs: tod_plugin_host::Inputs,
                at: DateTime<Utc>,
                live: bool,
                windows: tod_core::alerts::SnapshotWindows,
            ) -> Result<tod_core::alerts::Snapshot, StoreError> {
                let mut tx = self.tx(Some(tenant)).await?;
                plugin_snapshot(&mut tx, tenant, site, inputs, at, live, windows).await
            }

            async fn link_trends(
                &self,
                tenant: TenantId,
                site: Option<SiteId>,
                at: DateTime<Utc>,
                config: &tod_core::signal::TrendConfig,
            ) -> Result<std::collections::HashMap<tod_core::links::LinkKey, f64>, StoreError> {
                use tod_core::links::LinkKey;
                let mut tx = self.tx(Some(tenant)).await?;
                let links: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
                    "SELECT ap_device_id, cpe_device_id, client_mac FROM wireless_links WHERE tenant_id = $1 \
                     AND ($2 IS NULL OR ap_device_id IN (SELECT id FROM devices WHERE tenant_id = $1 AND site_id = $2))",
                )
                .bind(tenant.0)
                .bind(site.map(|s| s.0))
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                if links.is_empty() {
                    return Ok(std::collections::HashMap::new());
                }
                let sums = trend_sums(&mut tx, tenant, site.map(|s| s.0), at, config).await?;
                let deltas = $crate::store::trends::trend_deltas(&sums, config);
                Ok(links
                    .into_iter()
                    .filter_map(|(ap, cpe, mac)| {
                        let delta = deltas.get(&(ap, mac))?;
                        Some((
                            LinkKey {
                                ap: DeviceId(ap),
                                cpe: DeviceId(cpe),
                            },
                            *delta,
                        ))
                    })
                    .collect())
            }
        }

        async fn get_plugin(tx: &mut Tx, tenant: TenantId, id: Uuid) -> Result<Plugin, StoreError> {
            let row: Option<PluginRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {PLUGIN_COLUMNS} FROM plugins WHERE tenant_id = $1 AND id = $2"
            )))
            .bind(tenant.0)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?;
            let row = row.ok_or(StoreError::NotFound("plugin"))?;
            let assignments: Vec<AssignmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ASSIGNMENT_COLUMNS} FROM plugin_assignments WHERE tenant_id = $1 AND plugin_id = $2 \
                 ORDER BY created_at, id"
            )))
            .bind(tenant.0)
            .bind(id)
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
            Ok(attach(vec![row], assignments).remove(0))
        }

        /// Resolves the active events of a plugin's assignments (or of one of them).
        async fn resolve_plugin_events(
            tx: &mut Tx,
            tenant: TenantId,
            plugin: Uuid,
            assignment: Option<Uuid>,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            let ids: Vec<Uuid> = match assignment {
                Some(a) => vec![a],
                None => sqlx::query_scalar("SELECT id FROM plugin_assignments WHERE tenant_id = $1 AND plugin_id = $2")
                    .bind(tenant.0)
                    .bind(plugin)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(map_err)?,
            };
            for id in ids {
                resolve_rule_events(tx, tenant, id, now).await?;
            }
            Ok(())
        }

        async fn plugin_snapshot(
            tx: &mut Tx,
            tenant: TenantId,
            site: Option<SiteId>,
            inputs: tod_plugin_host::Inputs,
            at: DateTime<Utc>,
            live: bool,
            windows: tod_core::alerts::SnapshotWindows,
        ) -> Result<tod_core::alerts::Snapshot, StoreError> {
            use std::collections::HashMap;
            use tod_core::alerts::{DeviceView, HistoryPoint, LinkView, Metrics, SectorView, Snapshot};
            use tod_core::links::{LinkKey, LinkState};
            use tod_core::{DeviceId, DeviceStatus};

            let mut snap = Snapshot::empty(tenant, at);
            let recent = micros(windows.recent_at(at).0);
            let now = micros(at);
            // The devices in scope: every snapshot part is limited to them.
            let devices: Vec<(Uuid, String, Option<Uuid>, Option<Uuid>, String)> = sqlx::query_as(
                "SELECT id, name, site_id, sector_id, status FROM devices WHERE tenant_id = $1 \
                 AND ($2 IS NULL OR site_id = $2) ORDER BY name",
            )
            .bind(tenant.0)
            .bind(site.map(|s| s.0))
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
            let placed: HashMap<Uuid, (Option<SiteId>, Option<SectorId>)> = devices
                .iter()
                .map(|(id, _, site, sector, _)| (*id, (site.map(SiteId), sector.map(SectorId))))
                .collect();
            // Devices are always there (findings name them); their metrics only when read.
            let (latest, clients) = if inputs.devices {
                // The latest sample of each device in the window, and its clients as an AP.
                let samples: Vec<(Uuid, String, Option<f64>, Option<i64>, Option<i64>, Option<f64>)> = sqlx::query_as(
                    "SELECT device_id, status, cpu_load, free_memory, total_memory, temperature_c FROM device_metrics \
                     WHERE tenant_id = $1 AND collected_at > $2 AND collected_at <= $3 ORDER BY collected_at",
                )
                .bind(tenant.0)
                .bind(recent)
                .bind(now)
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?;
                let latest: HashMap<Uuid, _> = samples.into_iter().map(|s| (s.0, s)).collect();
                let clients: Vec<(Uuid, i64, Option<f64>, Option<f64>)> = sqlx::query_as(
                    "SELECT device_id, COUNT(DISTINCT mac), CAST(AVG(tx_ccq) AS DOUBLE PRECISION), \
                     CAST(AVG(CASE WHEN signal_dbm <> 0 THEN signal_dbm END) AS DOUBLE PRECISION) \
                     FROM registrations WHERE tenant_id = $1 AND collected_at > $2 AND collected_at <= $3 \
                     GROUP BY device_id",
                )
                .bind(tenant.0)
                .bind(recent)
                .bind(now)
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?;
                let clients: HashMap<Uuid, _> = clients.into_iter().map(|c| (c.0, c)).collect();
                (latest, clients)
            } else {
                (HashMap::new(), HashMap::new())
            };
            for (id, name, site, sector, status) in &devices {
                let sample = latest.get(id);
                let status = match (live, sample) {
                    (true, _) => DeviceStatus::from_name(status),
                    (false, Some(s)) => DeviceStatus::from_name(&s.1),
                    (false, None) => DeviceStatus::Unknown,
                };
                let mut metrics = Metrics::default();
                if let Some((_, _, cpu, free, total, temp)) = sample {
                    metrics.cpu_load = *cpu;
                    metrics.temperature = *temp;
                    if let (Some(free), Some(total)) = (free, total) {
                        if *total > 0 {
                            metrics.memory_used_pct = Some((1.0 - *free as f64 / *total as f64) * 100.0);
                        }
                    }
                }
                if let Some((_, n, ccq, signal)) = clients.get(id) {
                    metrics.client_count = Some(*n as f64);
                    metrics.ccq = *ccq;
                    metrics.signal_strength = *signal;
                }
                metrics.device_offline = Some(if status == DeviceStatus::Online { 0.0 } else { 1.0 });
                snap.devices.push(DeviceView {
                    id: DeviceId(*id),
                    hostname: name.clone(),
                    site: site.map(SiteId),
                    sector: sector.map(SectorId),
                    groups: Vec::new(),
                    status,
                    metrics,
                });
            }
            // Links whose access point is in scope, keyed by (AP, client MAC) for the samples.
            let link_rows: Vec<LinkRow> = if inputs.links || inputs.history {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {LINK_COLUMNS} FROM wireless_links WHERE tenant_id = $1 ORDER BY ap_device_id, cpe_device_id"
                )))
                .bind(tenant.0)
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?
            } else {
                Vec::new()
            };
            let links: Vec<tod_core::links::Link> = link_rows
                .iter()
                .filter_map(LinkRow::to_link)
                .filter(|l| placed.contains_key(&l.key.ap.0))
                .collect();
            let by_mac: HashMap<(Uuid, String), LinkKey> = links
                .iter()
                .map(|l| ((l.key.ap.0, l.client_mac.to_string()), l.key))
                .collect();
            if inputs.links {
                // As of `at`: the latest registration of each client in the window.
                let mut then: HashMap<LinkKey, (Option<i16>, Option<i16>)> = HashMap::new();
                if !live {
                    let regs: Vec<(Uuid, String, Option<i16>, Option<i16>)> = sqlx::query_as(
                        "SELECT device_id, mac, signal_dbm, tx_ccq FROM registrations WHERE tenant_id = $1 \
                         AND collected_at > $2 AND collected_at <= $3 ORDER BY collected_at",
                    )
                    .bind(tenant.0)
                    .bind(recent)
                    .bind(now)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(map_err)?;
                    for (ap, mac, signal, ccq) in regs {
                        if let Some(key) = by_mac.get(&(ap, mac)) {
                            then.insert(*key, (signal.filter(|s| *s != 0), ccq));
                        }
                    }
                }
                for l in &links {
                    let (site, sector) = placed.get(&l.key.ap.0).copied().unwrap_or((None, None));
                    let (state, signal_dbm, tx_ccq) = if live {
                        (l.state, l.signal_dbm, l.tx_ccq)
                    } else {
                        match then.get(&l.key) {
                            Some((signal, ccq)) => (
                                LinkState::Active,
                                *signal,
                                ccq.and_then(|c| u8::try_from(c).ok()),
                            ),
                            None => (LinkState::Down, None, None),
                        }
                    };
                    snap.links.push(LinkView {
                        key: l.key,
                        site,
                        sector,
                        state,
                        signal_dbm,
                        tx_ccq,
                        trend_delta_db: None,
                    });
                }
            }
            if inputs.sectors {
                let sectors: Vec<(Uuid, Uuid)> = sqlx::query_as(
                    "SELECT id, site_id FROM sectors WHERE tenant_id = $1 AND ($2 IS NULL OR site_id = $2) \
                     ORDER BY site_id, name",
                )
                .bind(tenant.0)
                .bind(site.map(|s| s.0))
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?;
                let aggregate = "SELECT d.sector_id, CAST(AVG(CASE WHEN r.signal_dbm <> 0 THEN r.signal_dbm END) AS DOUBLE PRECISION), \
                     CAST(AVG(r.tx_ccq) AS DOUBLE PRECISION), COUNT(DISTINCT r.mac) \
                     FROM registrations r JOIN devices d ON d.id = r.device_id \
                     WHERE r.tenant_id = $1 AND d.tenant_id = $1 AND d.sector_id IS NOT NULL \
                     AND r.collected_at > $2 AND r.collected_at <= $3 GROUP BY d.sector_id";
                let recent_rows: Vec<(Uuid, Option<f64>, Option<f64>, i64)> = sqlx::query_as(aggregate)
                    .bind(tenant.0)
                    .bind(recent)
                    .bind(now)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(map_err)?;
                let before_rows: Vec<(Uuid, Option<f64>, Option<f64>, i64)> = sqlx::query_as(aggregate)
                    .bind(tenant.0)
                    .bind(micros(windows.before_at(at).0))
                    .bind(micros(windows.before_at(at).1))
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(map_err)?;
                let recent_by: HashMap<Uuid, _> = recent_rows.into_iter().map(|r| (r.0, r)).collect();
                let before_by: HashMap<Uuid, i64> = before_rows.into_iter().map(|r| (r.0, r.3)).collect();
                for (id, site) in sectors {
                    let r = recent_by.get(&id);
                    snap.sectors.push(SectorView {
                        id: SectorId(id),
                        site: SiteId(site),
                        avg_signal_dbm: r.and_then(|r| r.1),
                        clients_now: r.map_or(0, |r| u32::try_from(r.3).unwrap_or(u32::MAX)),
                        clients_before: before_by.get(&id).map_or(0, |n| u32::try_from(*n).unwrap_or(u32::MAX)),
                        avg_ccq: r.and_then(|r| r.2),
                        throughput_bps: None,
                    });
                }
            }
            if inputs.history {
                let points: Vec<(Uuid, String, DateTime<Utc>, i16)> = sqlx::query_as(
                    "SELECT device_id, mac, collected_at, signal_dbm FROM registrations WHERE tenant_id = $1 \
                     AND collected_at > $2 AND collected_at <= $3 AND signal_dbm IS NOT NULL AND signal_dbm <> 0 \
                     ORDER BY collected_at DESC LIMIT $4",
                )
                .bind(tenant.0)
                .bind(micros(at - windows.lookback))
                .bind(now)
                .bind(HISTORY_LIMIT)
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?;
                snap.history = points
                    .into_iter()
                    .rev()
                    .filter_map(|(ap, mac, at, dbm)| {
                        by_mac.get(&(ap, mac)).map(|link| HistoryPoint { link: *link, at, dbm })
                    })
                    .collect();
            }
            Ok(snap)
        }
    };
}
pub(crate) use impl_plugin_store;
