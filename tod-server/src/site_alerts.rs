//! Site and sector alert evaluation: every few minutes (default 5), whichever replica holds the
//! `site-alerts` lease judges every enabled rule over a fresh snapshot and records what changed.
//!
//! The alert lifecycle is tod-core's [`AlertBook`], one per tenant, kept in memory while this
//! replica holds the lease: it counts consecutive hits and clean passes (hysteresis) between
//! passes. The database stays the truth for which events are open — each pass first takes the
//! book into line with it (an event resolved by an operator, or by a rule being disabled,
//! changed or deleted, starts counting afresh; an event raised before a fail-over is restored).
//! A new lease holder therefore starts with the open events and zero pending hits. Each rule is
//! evaluated and recorded on its own, so a failing rule cannot stop the pass.
//!
//! WASM plugins run in the same pass, one rule per assignment (tenant, site or sector), with the
//! same lifecycle; their events are site events at the site of what they are about. A plugin
//! that traps or breaks a limit is stopped for its tenant, with the reason stored on it, and the
//! pass goes on.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tod_core::alerts::{
    AlertBook, AlertEvent, AlertState, FlapPolicy, MaintenanceWindow, OpenAlert, Rule, SiteRule, SnapshotWindows,
    Subject, suppressing_window_for_device, suppressing_window_for_site,
};
use tod_core::{TenantId, WindowId};

use crate::plugins::{LoadError, PluginRunner};
use crate::store::{EventSource, OpenRuleEvent, RunnablePlugin, SiteAlertChange, Store, StoreError, Suppression};
use tod_core::SiteId;
use tod_core::signal::TrendConfig;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Rules evaluated.
    pub rules: usize,
    /// Events raised.
    pub raised: usize,
    /// Events resolved because their condition cleared.
    pub resolved: usize,
    /// Rules that failed (evaluation or storage); the others went on.
    pub failed: usize,
    /// Plugin assignments evaluated (also counted in `rules`).
    pub plugins: usize,
    /// Plugins stopped in this pass (a trap, a limit, a component that no longer loads).
    pub stopped: usize,
}

/// The evaluator's state: one alert book per tenant, the loaded plugins, and the windows
/// sector aggregates are taken over.
#[derive(Debug)]
pub struct SiteAlerts {
    books: HashMap<TenantId, AlertBook>,
    plugins: PluginRunner,
    windows: SnapshotWindows,
}

impl Default for SiteAlerts {
    fn default() -> Self {
        Self::new()
    }
}

impl SiteAlerts {
    /// An evaluator with no state (a fresh lease holder); plugins run on a host of its own.
    pub fn new() -> Self {
        Self {
            books: HashMap::new(),
            plugins: PluginRunner::new(None),
            windows: SnapshotWindows::default(),
        }
    }

    /// An evaluator running plugins on `host` (shared with the API, so a component compiled at
    /// upload is not compiled again).
    pub fn with_host(host: tod_plugin_host::PluginHost) -> Self {
        Self {
            books: HashMap::new(),
            plugins: PluginRunner::new(Some(host)),
            windows: SnapshotWindows::default(),
        }
    }

    /// The same evaluator taking sector aggregates and plugin history over `windows` (the
    /// product's 10 minutes against an hour ago by default).
    pub fn with_windows(mut self, windows: SnapshotWindows) -> Self {
        self.windows = windows;
        self
    }

    /// Forgets the counters (the lease went to another replica).
    pub fn reset(&mut self) {
        self.books.clear();
    }

    /// One pass over every tenant with enabled rules or open rule events, as of `now`.
    pub async fn pass(&mut self, store: &dyn Store, now: DateTime<Utc>) -> Result<Pass, StoreError> {
        let mut by_tenant: HashMap<TenantId, Vec<SiteRule>> = HashMap::new();
        for row in store.enabled_site_rules().await? {
            match row.to_rule() {
                Some(rule) => by_tenant.entry(row.tenant_id).or_default().push(rule),
                None => tracing::warn!(rule = %row.id, "site alert rule with an unknown type or unit skipped"),
            }
        }
        let mut plugins_by_tenant: HashMap<TenantId, Vec<RunnablePlugin>> = HashMap::new();
        for p in store.runnable_plugins().await? {
            by_tenant.entry(p.tenant).or_default();
            plugins_by_tenant.entry(p.tenant).or_default().push(p);
        }
        let assignments: HashSet<uuid::Uuid> = plugins_by_tenant.values().flatten().map(|p| p.assignment).collect();
        self.plugins.retain(&|a| assignments.contains(a));
        for t in store.tenants_with_open_rule_events().await? {
            by_tenant.entry(t).or_default();
        }
        self.books.retain(|t, _| by_tenant.contains_key(t));
        let mut pass = Pass::default();
        for (tenant, rules) in by_tenant {
            let plugins = plugins_by_tenant.remove(&tenant).unwrap_or_default();
            let book = self
                .books
                .entry(tenant)
                .or_insert_with(|| AlertBook::new(FlapPolicy::default()));
            let judges = Judges {
                rules: &rules,
                plugins: &plugins,
                aggregates: self.windows,
            };
            if let Err(e) = tenant_pass(store, tenant, judges, book, &mut self.plugins, now, &mut pass).await {
                tracing::warn!(%tenant, error = %e, "site alert pass failed for a tenant");
                pass.failed += (rules.len() + plugins.len()).max(1);
            }
        }
        Ok(pass)
    }
}

/// What judges one tenant: its site rules and its plugin assignments.
#[derive(Clone, Copy)]
struct Judges<'a> {
    rules: &'a [SiteRule],
    plugins: &'a [RunnablePlugin],
    /// The windows sector aggregates and history are taken over.
    aggregates: SnapshotWindows,
}

async fn tenant_pass(
    store: &dyn Store,
    tenant: TenantId,
    judges: Judges<'_>,
    book: &mut AlertBook,
    runner: &mut PluginRunner,
    now: DateTime<Utc>,
    pass: &mut Pass,
) -> Result<(), StoreError> {
    let rules = judges.rules;
    // Take the book into line with the database.
    let open = store.open_rule_events(tenant).await?;
    let stored: HashSet<(tod_core::RuleId, Subject)> = open.iter().map(|e| (e.rule, e.subject)).collect();
    let in_book: Vec<(tod_core::RuleId, Subject)> = book.open_alerts().map(|a| (a.rule, a.subject)).collect();
    for (rule, subject) in in_book {
        if !stored.contains(&(rule, subject)) {
            book.resolve_manually(rule, &subject, now);
        }
    }
    let enabled: HashMap<tod_core::RuleId, tod_core::alerts::Hysteresis> = rules
        .iter()
        .map(|r| (r.id, r.hysteresis))
        .chain(
            judges
                .plugins
                .iter()
                .map(|p| (tod_core::RuleId(p.assignment), p.hysteresis)),
        )
        .collect();
    let open_sites: HashMap<(tod_core::RuleId, Subject), SiteId> =
        open.iter().map(|e| ((e.rule, e.subject), e.site)).collect();
    for e in open {
        let OpenRuleEvent {
            rule,
            subject,
            severity,
            message,
            fired_at,
            ..
        } = e;
        if book.open_alert(rule, &subject).is_none() {
            let hysteresis = enabled
                .get(&rule)
                .copied()
                .unwrap_or(tod_core::alerts::Hysteresis::IMMEDIATE);
            book.restore(
                OpenAlert {
                    rule,
                    subject,
                    severity,
                    message,
                    value: None,
                    fired_at,
                    state: AlertState::Firing,
                },
                hysteresis,
            );
        }
    }
    // Rules that are gone or disabled: the API resolved their events in the same transaction as
    // the change; forget their counters.
    let stale: HashSet<tod_core::RuleId> = book
        .open_alerts()
        .map(|a| a.rule)
        .filter(|r| !enabled.contains_key(r))
        .collect();
    for rule in stale {
        book.retire_rule(rule, now, tod_core::alerts::ResolveReason::RuleDeleted);
    }
    let windows = store.suppressing_windows(tenant, now, now).await?;
    for p in judges.plugins {
        plugin_pass(
            store,
            tenant,
            p,
            book,
            runner,
            &open_sites,
            (&windows, judges.aggregates),
            now,
            pass,
        )
        .await;
    }
    if rules.is_empty() {
        return Ok(());
    }
    let snapshot = store.site_alert_snapshot(tenant, rules, now, judges.aggregates).await?;
    for rule in rules {
        pass.rules += 1;
        let mut findings = match rule.evaluate(&snapshot) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(rule = %rule.id, error = %e, "site alert rule failed");
                pass.failed += 1;
                continue;
            }
        };
        let scope = rule.scope(&snapshot);
        let before: HashSet<Subject> = book
            .open_alerts()
            .filter(|a| a.rule == rule.id)
            .map(|a| a.subject)
            .collect();
        let events = book.apply_findings(rule.id, rule.hysteresis, &mut findings, scope.as_deref(), now, &|s| {
            held_by(&windows, rule.site, s, now)
        });
        let site_of = |_: &Subject| Some(rule.site);
        record_held_back(store, tenant, &events, "site_rule", &site_of).await;
        let hits = rule.hysteresis.fire_after;
        let site = |_: &Subject| Some(rule.site);
        let mut changes: Vec<SiteAlertChange> = events.iter().filter_map(|e| change_of(e, hits, &site)).collect();
        for f in &findings {
            if before.contains(&f.subject) && book.open_alert(rule.id, &f.subject).is_some() {
                changes.push(SiteAlertChange::Still {
                    site: rule.site,
                    subject: f.subject,
                    message: f.message.clone(),
                });
            }
        }
        let raised = changes
            .iter()
            .filter(|c| matches!(c, SiteAlertChange::Raise { .. }))
            .count();
        let resolved = changes
            .iter()
            .filter(|c| matches!(c, SiteAlertChange::Resolve { .. }))
            .count();
        match store
            .record_site_alerts(tenant, &EventSource::from(rule), &changes)
            .await
        {
            Ok(()) => {
                pass.raised += raised;
                pass.resolved += resolved;
            }
            Err(e) => {
                // The book is ahead of the database now; the next pass's reconciliation puts it
                // back in line (an unrecorded raise counts afresh).
                tracing::warn!(rule = %rule.id, error = %e, "recording site alerts failed");
                pass.failed += 1;
            }
        }
    }
    Ok(())
}

/// The maintenance window holding back alerts about `subject` at `site`, if any.
fn held_by(windows: &[MaintenanceWindow], site: SiteId, subject: &Subject, now: DateTime<Utc>) -> Option<WindowId> {
    match subject {
        Subject::Device(d) => suppressing_window_for_device(windows, *d, Some(site), now),
        _ => suppressing_window_for_site(windows, site, now),
    }
}

/// Records the alerts a window held back (a failure is logged: the alert stays suppressed).
async fn record_held_back(
    store: &dyn Store,
    tenant: TenantId,
    events: &[AlertEvent],
    source: &'static str,
    site: &(dyn Fn(&Subject) -> Option<SiteId> + Sync),
) {
    let rows: Vec<Suppression> = events
        .iter()
        .filter_map(|e| match e {
            AlertEvent::Suppressed {
                rule,
                subject,
                window,
                severity,
                message,
                at,
            } => Some(Suppression {
                window: *window,
                rule: Some(rule.0),
                device: match subject {
                    Subject::Device(d) => Some(*d),
                    _ => None,
                },
                site: site(subject),
                source,
                severity: *severity,
                message: message.clone(),
                at: *at,
            }),
            _ => None,
        })
        .collect();
    if let Err(e) = store.record_suppressed(tenant, &rows).await {
        tracing::warn!(%tenant, error = %e, "recording suppressed alerts failed");
    }
}

/// The stored change for a lifecycle event (site events have no flapping state of their own); a
/// raised event has been found `hits` passes in a row. `site` places the subject.
fn change_of(event: &AlertEvent, hits: u32, site: &dyn Fn(&Subject) -> Option<SiteId>) -> Option<SiteAlertChange> {
    match event {
        AlertEvent::Fired { alert } => Some(SiteAlertChange::Raise {
            site: site(&alert.subject)?,
            subject: alert.subject,
            severity: alert.severity,
            message: alert.message.clone(),
            hits,
            at: alert.fired_at,
        }),
        AlertEvent::Resolved { subject, at, .. } => Some(SiteAlertChange::Resolve {
            site: site(subject)?,
            subject: *subject,
            at: *at,
        }),
        AlertEvent::StateChanged { .. } | AlertEvent::Suppressed { .. } => None,
    }
}

/// One plugin assignment's turn: load, snapshot, evaluate, record. A plugin that cannot run is
/// stopped with its reason; a database error leaves it for the next pass.
#[allow(clippy::too_many_arguments)]
async fn plugin_pass(
    store: &dyn Store,
    tenant: TenantId,
    p: &RunnablePlugin,
    book: &mut AlertBook,
    runner: &mut PluginRunner,
    open_sites: &HashMap<(tod_core::RuleId, Subject), SiteId>,
    (windows, aggregates): (&[MaintenanceWindow], SnapshotWindows),
    now: DateTime<Utc>,
    pass: &mut Pass,
) {
    pass.rules += 1;
    pass.plugins += 1;
    let stop = |reason: String| async move {
        tracing::warn!(%tenant, plugin = %p.plugin, name = %p.name, %reason, "plugin stopped");
        if let Err(e) = store.stop_plugin(tenant, p.plugin, &reason, now).await {
            tracing::warn!(plugin = %p.plugin, error = %e, "recording a stopped plugin failed");
            return;
        }
        // The event an operator reads in the tenant's audit log: which plugin, and why.
        let audit = crate::store::Audit {
            chain: tenant,
            actor_user: None,
            actor_api_key: None,
            action: "plugin.stopped".into(),
            resource_type: Some("plugin".into()),
            resource_id: Some(p.plugin.to_string()),
            details: serde_json::json!({ "name": p.name, "reason": reason }),
            ip: None,
        };
        if let Err(e) = store.append_audit(&audit, now).await {
            tracing::warn!(plugin = %p.plugin, error = %e, "recording a stopped plugin in the audit log failed");
        }
    };
    let rule = match runner.load(store, p).await {
        Ok(rule) => rule,
        Err(LoadError::Plugin(reason)) => {
            stop(reason).await;
            pass.failed += 1;
            pass.stopped += 1;
            return;
        }
        Err(LoadError::Store(e)) => {
            tracing::warn!(plugin = %p.plugin, error = %e, "loading a plugin failed");
            pass.failed += 1;
            return;
        }
    };
    let snapshot = match store
        .plugin_snapshot(tenant, p.site, rule.metadata().inputs, now, true, aggregates)
        .await
    {
        Ok(mut s) => {
            if rule.metadata().inputs.links {
                match store.link_trends(tenant, p.site, now, &TrendConfig::default()).await {
                    Ok(deltas) => crate::plugins::fill_trends(&mut s, &deltas),
                    Err(e) => tracing::warn!(plugin = %p.plugin, error = %e, "reading link trends failed"),
                }
            }
            if let Some(sector) = p.sector {
                crate::plugins::narrow(&mut s, sector);
            }
            s
        }
        Err(e) => {
            tracing::warn!(plugin = %p.plugin, error = %e, "plugin snapshot failed");
            pass.failed += 1;
            return;
        }
    };
    let (snapshot, result) = crate::plugins::evaluate(rule.clone(), snapshot).await;
    let mut findings = match result {
        Ok(f) => f,
        Err(e) => {
            pass.failed += 1;
            if let Some(reason) = crate::plugins::stopped(&rule) {
                runner.forget(p.assignment);
                stop(reason).await;
                pass.stopped += 1;
            } else {
                tracing::info!(plugin = %p.plugin, reason = %e.reason, "plugin passed on this evaluation");
            }
            return;
        }
    };
    // A plugin speaks only of what it was shown.
    let shown = findings.len();
    findings.retain(|f| crate::plugins::site_of(&snapshot, &f.subject).is_some());
    if findings.len() < shown {
        tracing::warn!(plugin = %p.plugin, dropped = shown - findings.len(), "plugin findings about subjects it was not shown were dropped");
    }
    let id = tod_core::RuleId(p.assignment);
    let before: HashSet<Subject> = book.open_alerts().filter(|a| a.rule == id).map(|a| a.subject).collect();
    let site = |s: &Subject| {
        open_sites
            .get(&(id, *s))
            .copied()
            .or_else(|| crate::plugins::site_of(&snapshot, s))
    };
    let events = book.apply_findings(id, p.hysteresis, &mut findings, None, now, &|s| {
        site(s).and_then(|at| held_by(windows, at, s, now))
    });
    record_held_back(store, tenant, &events, "plugin", &site).await;
    let mut changes: Vec<SiteAlertChange> = events
        .iter()
        .filter_map(|e| change_of(e, p.hysteresis.fire_after, &site))
        .collect();
    for f in &findings {
        if before.contains(&f.subject)
            && book.open_alert(id, &f.subject).is_some()
            && let Some(site) = site(&f.subject)
        {
            changes.push(SiteAlertChange::Still {
                site,
                subject: f.subject,
                message: f.message.clone(),
            });
        }
    }
    let source = EventSource {
        rule: id,
        kind: "plugin",
        sector: p.sector,
    };
    match store.record_site_alerts(tenant, &source, &changes).await {
        Ok(()) => {
            pass.raised += changes
                .iter()
                .filter(|c| matches!(c, SiteAlertChange::Raise { .. }))
                .count();
            pass.resolved += changes
                .iter()
                .filter(|c| matches!(c, SiteAlertChange::Resolve { .. }))
                .count();
        }
        Err(e) => {
            tracing::warn!(plugin = %p.plugin, error = %e, "recording plugin alerts failed");
            pass.failed += 1;
        }
    }
}
