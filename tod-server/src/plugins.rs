//! Running WASM alert plugins in the server: loaded instances kept between passes, evaluation
//! off the async runtime, where a finding's subject is, and backtests — a plugin or a site rule
//! replayed over stored history without raising anything.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tod_core::alerts::SiteRuleKind;
use tod_core::alerts::{AlertBook, AlertEvent, Finding, FlapPolicy, Rule, RuleError, Severity, Snapshot, Subject};
use tod_core::links::LinkKey;
use tod_core::signal::TrendConfig;
use tod_core::{SectorId, SiteId, TenantId};
use tod_plugin_host::{Inputs, Limits, PluginHost, Status, WasmRule};
use uuid::Uuid;

use crate::store::trends::trend_end;
use crate::store::{PluginConfig, RunnablePlugin, Store, StoreError};

/// Loaded plugin instances, by assignment; reloaded when the component, configuration or
/// hysteresis changes.
pub struct PluginRunner {
    host: Option<PluginHost>,
    loaded: HashMap<Uuid, Loaded>,
}

struct Loaded {
    sha256: String,
    config: PluginConfig,
    hysteresis: tod_core::alerts::Hysteresis,
    rule: Arc<WasmRule>,
}

impl std::fmt::Debug for PluginRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRunner")
            .field("loaded", &self.loaded.len())
            .finish_non_exhaustive()
    }
}

impl PluginRunner {
    /// A runner on `host`, or on a host of its own with the default limits made when the first
    /// plugin is loaded.
    pub fn new(host: Option<PluginHost>) -> Self {
        Self {
            host,
            loaded: HashMap::new(),
        }
    }

    fn host(&mut self) -> Result<&PluginHost, String> {
        if self.host.is_none() {
            self.host = Some(PluginHost::new(Limits::default()).map_err(|e| e.to_string())?);
        }
        self.host.as_ref().ok_or_else(|| "no plugin host".to_owned())
    }

    /// The instance for an assignment, loading (or reloading) it when needed. `Err`: the plugin
    /// cannot run (it no longer compiles, or its metadata call failed) — the reason to stop it.
    pub async fn load(&mut self, store: &dyn Store, p: &RunnablePlugin) -> Result<Arc<WasmRule>, LoadError> {
        if let Some(l) = self.loaded.get(&p.assignment)
            && l.sha256 == p.sha256
            && l.config == p.config
            && l.hysteresis == p.hysteresis
            && l.rule.status() == Status::Enabled
        {
            return Ok(l.rule.clone());
        }
        let bytes = store
            .plugin_component(p.tenant, p.plugin)
            .await
            .map_err(LoadError::Store)?;
        let host = self.host().map_err(LoadError::Plugin)?.clone();
        let config: Vec<(String, String)> = p.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let (id, hysteresis) = (tod_core::RuleId(p.assignment), p.hysteresis);
        let rule = tokio::task::spawn_blocking(move || {
            let compiled = host.compile(&bytes)?;
            host.instantiate(&compiled, id, hysteresis, config)
        })
        .await
        .map_err(|e| LoadError::Plugin(format!("internal error: {e}")))?
        .map_err(|e| LoadError::Plugin(e.to_string()))?;
        let rule = Arc::new(rule);
        self.loaded.insert(
            p.assignment,
            Loaded {
                sha256: p.sha256.clone(),
                config: p.config.clone(),
                hysteresis: p.hysteresis,
                rule: rule.clone(),
            },
        );
        Ok(rule)
    }

    /// Forgets instances of assignments not in `live`.
    pub fn retain(&mut self, live: &dyn Fn(&Uuid) -> bool) {
        self.loaded.retain(|a, _| live(a));
    }

    /// Forgets one instance (its plugin was stopped).
    pub fn forget(&mut self, assignment: Uuid) {
        self.loaded.remove(&assignment);
    }
}

/// Why a plugin could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The plugin itself: stop it with this reason.
    Plugin(String),
    /// The database: try again next pass.
    Store(StoreError),
}

/// Evaluates a plugin on a blocking thread (a call is bounded by its fuel, but it is CPU work
/// the async runtime should not wait on), handing the snapshot back.
pub async fn evaluate(rule: Arc<WasmRule>, snapshot: Snapshot) -> (Snapshot, Result<Vec<Finding>, RuleError>) {
    let id = rule.id();
    match tokio::task::spawn_blocking(move || {
        let result = rule.evaluate_snapshot(&snapshot);
        (snapshot, result)
    })
    .await
    {
        Ok(done) => done,
        Err(e) => (
            Snapshot::empty(TenantId(Uuid::nil()), Utc::now()),
            Err(RuleError {
                rule: id,
                reason: format!("internal error: {e}"),
            }),
        ),
    }
}

/// Why a plugin stopped, when it did (as opposed to declining one pass).
pub fn stopped(rule: &WasmRule) -> Option<String> {
    match rule.status() {
        Status::Enabled => None,
        Status::Disabled { reason } => Some(reason),
    }
}

/// Keeps only what a sector-scoped assignment may see: the sector's devices, links and
/// aggregate.
pub fn narrow(snapshot: &mut Snapshot, sector: SectorId) {
    snapshot.devices.retain(|d| d.sector == Some(sector));
    snapshot.links.retain(|l| l.sector == Some(sector));
    snapshot.sectors.retain(|s| s.id == sector);
    let links: std::collections::HashSet<_> = snapshot.links.iter().map(|l| l.key).collect();
    snapshot.history.retain(|h| links.contains(&h.link));
}

/// The site of a finding's subject, from the snapshot the plugin judged; `None` for a subject
/// the plugin was not shown (another tenant's device, an invented id), whose findings are
/// dropped.
pub fn site_of(snapshot: &Snapshot, subject: &Subject) -> Option<SiteId> {
    match subject {
        Subject::Site(s) => snapshot
            .devices
            .iter()
            .any(|d| d.site == Some(*s))
            .then_some(*s)
            .or_else(|| snapshot.sectors.iter().find(|x| x.site == *s).map(|x| x.site)),
        Subject::Sector(s) => snapshot
            .sectors
            .iter()
            .find(|x| x.id == *s)
            .map(|x| x.site)
            .or_else(|| {
                snapshot
                    .devices
                    .iter()
                    .find(|d| d.sector == Some(*s))
                    .and_then(|d| d.site)
            }),
        Subject::Device(d) => snapshot.devices.iter().find(|x| x.id == *d).and_then(|x| x.site),
        Subject::Link(k) => snapshot
            .links
            .iter()
            .find(|l| l.key == *k)
            .and_then(|l| l.site)
            .or_else(|| snapshot.devices.iter().find(|x| x.id == k.ap).and_then(|x| x.site)),
    }
}

/// What a backtest replays.
#[derive(Debug)]
pub enum Replayed {
    /// A plugin, over the tenant, a site or a sector.
    Plugin {
        /// The instance.
        rule: Arc<WasmRule>,
        /// Site scope.
        site: Option<SiteId>,
        /// Sector scope.
        sector: Option<SectorId>,
    },
    /// A site rule.
    Site(tod_core::alerts::SiteRule),
}

/// The longest backtest, in evaluations.
pub const MAX_BACKTEST_STEPS: i64 = 2_000;

/// What a rule would have raised over a window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Backtest {
    /// Evaluations run (one per step).
    pub evaluations: u32,
    /// Findings over all evaluations.
    pub findings: u64,
    /// The events it would have raised, in order.
    pub alerts: Vec<BacktestAlert>,
    /// Set when the rule failed part-way (a plugin that trapped or ran out of its budget): the
    /// alerts up to then are still shown.
    pub failed: Option<String>,
}

/// One event a backtest would have raised.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BacktestAlert {
    /// `device`, `link`, `site` or `sector`.
    pub subject_kind: String,
    /// The device, access point, site or sector.
    #[schema(value_type = String, format = Uuid)]
    pub subject_id: Uuid,
    /// The client radio of a link.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub cpe_device_id: Option<Uuid>,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// What an operator would have read.
    pub message: String,
    /// When it would have been raised.
    pub fired_at: DateTime<Utc>,
    /// When it would have resolved (none: still open at the end of the window).
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Replays `what` at every `step` from `from` to `to` on stored samples (device status and
/// metrics, registrations) as they were then, through a fresh alert book with the rule's own
/// hysteresis. Nothing is stored.
pub async fn backtest(
    store: &dyn Store,
    tenant: TenantId,
    what: &Replayed,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Duration,
    windows: tod_core::alerts::SnapshotWindows,
) -> Result<Backtest, StoreError> {
    let mut book = AlertBook::new(FlapPolicy::default());
    let mut out = Backtest {
        evaluations: 0,
        findings: 0,
        alerts: Vec::new(),
        failed: None,
    };
    let mut open: HashMap<Subject, usize> = HashMap::new();
    // Trends move once an hour: each hour's are read once.
    let mut trends: Option<(DateTime<Utc>, HashMap<LinkKey, f64>)> = None;
    let mut at = from;
    while at <= to {
        let (id, hysteresis, result, scope) = match what {
            Replayed::Plugin { rule, site, sector } => {
                let mut snap = store
                    .plugin_snapshot(tenant, *site, rule.metadata().inputs, at, false, windows)
                    .await?;
                if rule.metadata().inputs.links {
                    fill_trends(&mut snap, trends_at(&mut trends, store, tenant, *site, at).await?);
                }
                if let Some(sector) = sector {
                    narrow(&mut snap, *sector);
                }
                let (_, result) = evaluate(rule.clone(), snap).await;
                (rule.id(), rule.hysteresis(), result, None)
            }
            Replayed::Site(rule) => {
                let mut snap = store
                    .plugin_snapshot(tenant, Some(rule.site), Inputs::ALL, at, false, windows)
                    .await?;
                snap.history.clear();
                if rule.kind == SiteRuleKind::SignalDegradation {
                    fill_trends(
                        &mut snap,
                        trends_at(&mut trends, store, tenant, Some(rule.site), at).await?,
                    );
                }
                let scope = rule.scope(&snap);
                (rule.id, rule.hysteresis, rule.evaluate(&snap), scope)
            }
        };
        out.evaluations += 1;
        let mut findings = match result {
            Ok(f) => f,
            Err(e) => {
                out.failed = Some(format!("at {at}: {}", e.reason));
                break;
            }
        };
        out.findings += findings.len() as u64;
        for event in book.apply_findings(id, hysteresis, &mut findings, scope.as_deref(), at, &|_| None) {
            match event {
                AlertEvent::Fired { alert } => {
                    open.insert(alert.subject, out.alerts.len());
                    out.alerts.push(backtest_alert(
                        &alert.subject,
                        alert.severity,
                        alert.message,
                        alert.fired_at,
                    ));
                }
                AlertEvent::Resolved { subject, at, .. } => {
                    if let Some(i) = open.remove(&subject) {
                        out.alerts[i].resolved_at = Some(at);
                    }
                }
                AlertEvent::StateChanged { .. } | AlertEvent::Suppressed { .. } => {}
            }
        }
        at += step;
    }
    Ok(out)
}

/// The links' trends as of `at`, read once for each hour they move in (`memo` keeps the last).
async fn trends_at<'a>(
    memo: &'a mut Option<(DateTime<Utc>, HashMap<LinkKey, f64>)>,
    store: &dyn Store,
    tenant: TenantId,
    site: Option<SiteId>,
    at: DateTime<Utc>,
) -> Result<&'a HashMap<LinkKey, f64>, StoreError> {
    let end = trend_end(at);
    if memo.as_ref().is_none_or(|(held, _)| *held != end) {
        *memo = Some((end, store.link_trends(tenant, site, at, &TrendConfig::default()).await?));
    }
    Ok(&memo.get_or_insert_default().1)
}

/// Gives each link of a snapshot its week-over-week trend, where one is known.
pub fn fill_trends(snapshot: &mut Snapshot, deltas: &HashMap<LinkKey, f64>) {
    for link in &mut snapshot.links {
        link.trend_delta_db = deltas.get(&link.key).copied();
    }
}

fn backtest_alert(subject: &Subject, severity: Severity, message: String, fired_at: DateTime<Utc>) -> BacktestAlert {
    let (kind, id, cpe) = match subject {
        Subject::Device(d) => ("device", d.0, None),
        Subject::Link(k) => ("link", k.ap.0, Some(k.cpe.0)),
        Subject::Site(s) => ("site", s.0, None),
        Subject::Sector(s) => ("sector", s.0, None),
    };
    BacktestAlert {
        subject_kind: kind.into(),
        subject_id: id,
        cpe_device_id: cpe,
        severity: severity.as_str().into(),
        message,
        fired_at,
        resolved_at: None,
    }
}
