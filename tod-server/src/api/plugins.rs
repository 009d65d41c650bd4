//! WASM alert plugins: `/api/plugins/*` — upload (validated by compiling it and asking for its
//! metadata), list, configure, enable/disable, assign to the tenant, a site or a sector, delete,
//! and backtest over stored history. The caller's own tenant; a super admin names one with
//! `?tenant_id=`. Site rules are backtested under their own path.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tod_core::alerts::Hysteresis;
use tod_core::{RuleId, SectorId, SiteId, TenantId};
use uuid::Uuid;

use super::{Body, PathParams, QueryParams, TenantQuery, TenantScope, own_tenant, tenant};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::plugins::{Backtest, MAX_BACKTEST_STEPS, Replayed};
use crate::store::{NewPlugin, Plugin, PluginConfig, PluginPatch};

/// Records a plugin change in the tenant's audit chain (after the change: a failure to record it
/// is logged, not turned into a failed request that did happen).
async fn audit(st: &AppState, caller: &Caller, t: TenantId, action: &str, plugin: Uuid, details: serde_json::Value) {
    super::audit_change(st, caller, t, action, ("plugin", plugin.to_string()), details).await;
}

/// Most configuration keys, and the longest key or value.
const MAX_CONFIG_KEYS: usize = 64;
const MAX_CONFIG_TEXT: usize = 1_000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PluginUpload {
    /// The component (or a `wit-bindgen` core module for `wasm32-unknown-unknown`), base64;
    /// at most 8 MiB once decoded.
    component_base64: String,
    /// String keys and values the plugin reads with `config()`.
    #[serde(default)]
    config: Option<PluginConfig>,
    /// Default true.
    #[serde(default)]
    enabled: Option<bool>,
    /// Passes in a row with a finding before an event is raised (1–1000, default 2).
    #[serde(default)]
    fire_after: Option<u32>,
    /// Passes in a row without it before the event resolves (1–1000, default 2).
    #[serde(default)]
    clear_after: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PluginUpdate {
    /// Replaces the configuration.
    #[serde(default)]
    config: Option<PluginConfig>,
    /// Enabling a plugin the host stopped clears the reason and runs it again.
    #[serde(default)]
    enabled: Option<bool>,
    /// 1–1000.
    #[serde(default)]
    fire_after: Option<u32>,
    /// 1–1000.
    #[serde(default)]
    clear_after: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignmentBody {
    /// A site of the tenant (none: the whole tenant).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    site_id: Option<SiteId>,
    /// A sector at that site (needs `site_id`).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    sector_id: Option<SectorId>,
    /// Keys that override the plugin's configuration for this assignment.
    #[serde(default)]
    config: Option<PluginConfig>,
}

/// The tenant's plugins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct PluginList {
    /// Oldest first.
    items: Vec<Plugin>,
    /// How many.
    total: usize,
}

fn check_config(config: &PluginConfig) -> Result<(), ApiError> {
    if config.len() > MAX_CONFIG_KEYS {
        return Err(ApiError::unprocessable(format!(
            "config: at most {MAX_CONFIG_KEYS} keys"
        )));
    }
    if config
        .iter()
        .any(|(k, v)| k.is_empty() || k.chars().count() > MAX_CONFIG_TEXT || v.chars().count() > MAX_CONFIG_TEXT)
    {
        return Err(ApiError::unprocessable(format!(
            "config: keys of 1 to {MAX_CONFIG_TEXT} characters, values of at most {MAX_CONFIG_TEXT}"
        )));
    }
    Ok(())
}

fn hysteresis(fire: Option<u32>, clear: Option<u32>, base: Hysteresis) -> Result<Hysteresis, ApiError> {
    let h = Hysteresis {
        fire_after: fire.unwrap_or(base.fire_after),
        clear_after: clear.unwrap_or(base.clear_after),
    };
    for (field, n) in [("fire_after", h.fire_after), ("clear_after", h.clear_after)] {
        if !(1..=1000).contains(&n) {
            return Err(ApiError::unprocessable(format!("{field}: 1 to 1000")));
        }
    }
    Ok(h)
}

pub(super) async fn list(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let items = st.store.plugins(t).await?;
    Ok(Json(PluginList {
        total: items.len(),
        items,
    }))
}

pub(super) async fn upload(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<PluginUpload>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.component_base64.trim())
        .map_err(|e| ApiError::unprocessable(format!("component_base64: not base64 ({e})")))?;
    let config = body.config.unwrap_or_default();
    check_config(&config)?;
    let hysteresis = hysteresis(
        body.fire_after,
        body.clear_after,
        tod_core::alerts::site::DEFAULT_SITE_HYSTERESIS,
    )?;
    // Compiling is CPU work of up to seconds: off the async runtime.
    let host = st.plugins.clone();
    let pairs: Vec<(String, String)> = config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let (bytes, compiled, meta) = tokio::task::spawn_blocking(move || {
        let compiled = host.compile(&bytes)?;
        let rule = host.instantiate(&compiled, RuleId(Uuid::nil()), hysteresis, pairs)?;
        let meta = rule.metadata().clone();
        Ok::<_, tod_plugin_host::PluginError>((bytes, compiled, meta))
    })
    .await
    .map_err(|e| ApiError::internal(format!("plugin validation: {e}")))?
    .map_err(|e| ApiError::unprocessable(format!("component_base64: {e}")))?;
    let inputs = meta.inputs;
    let inputs: Vec<String> = crate::store::PLUGIN_INPUTS
        .iter()
        .zip([inputs.devices, inputs.links, inputs.sectors, inputs.history])
        .filter(|(_, on)| *on)
        .map(|(name, _)| (*name).to_owned())
        .collect();
    let name = if meta.name.trim().is_empty() {
        "unnamed plugin".to_owned()
    } else {
        meta.name
    };
    let new = NewPlugin {
        id: Uuid::new_v4(),
        name,
        version: meta.version,
        inputs,
        sha256: compiled.sha256_hex(),
        component: bytes,
        config,
        enabled: body.enabled.unwrap_or(true),
        hysteresis,
    };
    let created = st.store.create_plugin(t, &new, Utc::now()).await?;
    let details = serde_json::json!({ "name": created.name, "version": created.version, "sha256": created.sha256 });
    audit(&st, &caller, t, "plugin.uploaded", created.id, details).await;
    Ok((StatusCode::CREATED, Json(created)))
}

pub(super) async fn get(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    Ok(Json(st.store.plugin(t, id).await?))
}

pub(super) async fn update(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<PluginUpdate>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    if let Some(c) = &body.config {
        check_config(c)?;
    }
    let stored = st.store.plugin(t, id).await?;
    let base = Hysteresis {
        fire_after: stored.fire_after,
        clear_after: stored.clear_after,
    };
    let patch = PluginPatch {
        config: body.config,
        enabled: body.enabled,
        hysteresis: Some(hysteresis(body.fire_after, body.clear_after, base)?),
    };
    let updated = st.store.update_plugin(t, id, &patch, Utc::now()).await?;
    let details = serde_json::json!({ "enabled": updated.enabled, "config_keys": updated.config.keys().collect::<Vec<_>>(),
                                      "fire_after": updated.fire_after, "clear_after": updated.clear_after });
    audit(&st, &caller, t, "plugin.updated", id, details).await;
    Ok(Json(updated))
}

pub(super) async fn delete(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    st.store.delete_plugin(t, id, Utc::now()).await?;
    audit(&st, &caller, t, "plugin.deleted", id, serde_json::json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn assign(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<AssignmentBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    if body.sector_id.is_some() && body.site_id.is_none() {
        return Err(ApiError::unprocessable("site_id: required with sector_id"));
    }
    let config = body.config.unwrap_or_default();
    check_config(&config)?;
    let a = st
        .store
        .assign_plugin(t, id, body.site_id, body.sector_id, &config, Utc::now())
        .await?;
    let details =
        serde_json::json!({ "assignment_id": a.id, "scope": a.scope, "site_id": a.site_id, "sector_id": a.sector_id });
    audit(&st, &caller, t, "plugin.assigned", id, details).await;
    Ok((StatusCode::CREATED, Json(a)))
}

pub(super) async fn unassign(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    Extension(caller): Extension<Caller>,
    PathParams((id, assignment)): PathParams<(Uuid, Uuid)>,
    QueryParams(q): QueryParams<TenantQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    st.store.unassign_plugin(t, id, assignment, Utc::now()).await?;
    audit(
        &st,
        &caller,
        t,
        "plugin.unassigned",
        id,
        serde_json::json!({ "assignment_id": assignment }),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BacktestBody {
    /// Start of the window (RFC 3339).
    from: DateTime<Utc>,
    /// End of the window, not in the future (RFC 3339).
    to: DateTime<Utc>,
    /// Minutes between evaluations, 1–1440 (default 5, the evaluation interval); at most 2 000
    /// evaluations.
    #[serde(default)]
    step_minutes: Option<i64>,
    /// Plugins only: replay over the scope of this assignment (default: the whole tenant).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    assignment_id: Option<Uuid>,
}

impl BacktestBody {
    fn window(&self) -> Result<(DateTime<Utc>, DateTime<Utc>, Duration), ApiError> {
        let step = self.step_minutes.unwrap_or(5);
        if !(1..=1440).contains(&step) {
            return Err(ApiError::unprocessable("step_minutes: 1 to 1440"));
        }
        if self.to < self.from {
            return Err(ApiError::unprocessable("to: before from"));
        }
        if self.to > Utc::now() + Duration::minutes(1) {
            return Err(ApiError::unprocessable("to: in the future"));
        }
        let steps = (self.to - self.from).num_minutes() / step + 1;
        if steps > MAX_BACKTEST_STEPS {
            return Err(ApiError::unprocessable(format!(
                "the window holds {steps} evaluations at this step; at most {MAX_BACKTEST_STEPS}"
            )));
        }
        Ok((self.from, self.to, Duration::minutes(step)))
    }
}

pub(super) async fn backtest(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams(id): PathParams<Uuid>,
    QueryParams(q): QueryParams<TenantQuery>,
    Body(body): Body<BacktestBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = own_tenant(scope, q.tenant_id)?;
    let (from, to, step) = body.window()?;
    let plugin = st.store.plugin(t, id).await?;
    let (site, sector, own) = match body.assignment_id {
        None => (None, None, PluginConfig::new()),
        Some(a) => {
            let a = plugin
                .assignments
                .iter()
                .find(|x| x.id == a)
                .ok_or_else(|| ApiError::not_found("plugin assignment not found"))?;
            (a.site_id, a.sector_id, a.config.clone())
        }
    };
    let mut config = plugin.config.clone();
    config.extend(own);
    let bytes = st.store.plugin_component(t, id).await?;
    let host = st.plugins.clone();
    let pairs: Vec<(String, String)> = config.into_iter().collect();
    let h = Hysteresis {
        fire_after: plugin.fire_after,
        clear_after: plugin.clear_after,
    };
    let rule = tokio::task::spawn_blocking(move || {
        let compiled = host.compile(&bytes)?;
        host.instantiate(&compiled, RuleId(id), h, pairs)
    })
    .await
    .map_err(|e| ApiError::internal(format!("plugin: {e}")))?
    .map_err(|e| ApiError::unprocessable(format!("the plugin cannot run: {e}")))?;
    let what = Replayed::Plugin {
        rule: std::sync::Arc::new(rule),
        site,
        sector,
    };
    let report: Backtest = crate::plugins::backtest(st.store.as_ref(), t, &what, from, to, step, st.windows).await?;
    Ok(Json(report))
}

pub(super) async fn backtest_site_rule(
    State(st): State<AppState>,
    Extension(scope): Extension<TenantScope>,
    PathParams((_, site, rule)): PathParams<(TenantId, SiteId, Uuid)>,
    Body(body): Body<BacktestBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = tenant(scope)?;
    if body.assignment_id.is_some() {
        return Err(ApiError::unprocessable("assignment_id: only for plugins"));
    }
    let (from, to, step) = body.window()?;
    let stored = st.store.site_rule(t, site, rule).await?;
    let mut rule = stored
        .to_rule()
        .ok_or_else(|| ApiError::internal("stored alert rule is not readable"))?;
    // A disabled rule is replayed as if it were enabled: that is the question asked.
    rule.enabled = true;
    let report =
        crate::plugins::backtest(st.store.as_ref(), t, &Replayed::Site(rule), from, to, step, st.windows).await?;
    Ok(Json(report))
}
