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

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tod_core::TenantId;
use tod_core::alerts::{AlertBook, AlertEvent, AlertState, FlapPolicy, OpenAlert, Rule, SiteRule, Subject};

use crate::store::{SiteAlertChange, Store, StoreError};

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
}

/// The evaluator's state: one alert book per tenant.
#[derive(Debug, Default)]
pub struct SiteAlerts {
    books: HashMap<TenantId, AlertBook>,
}

impl SiteAlerts {
    /// An evaluator with no state (a fresh lease holder).
    pub fn new() -> Self {
        Self::default()
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
        for t in store.tenants_with_open_rule_events().await? {
            by_tenant.entry(t).or_default();
        }
        self.books.retain(|t, _| by_tenant.contains_key(t));
        let mut pass = Pass::default();
        for (tenant, rules) in by_tenant {
            let book = self
                .books
                .entry(tenant)
                .or_insert_with(|| AlertBook::new(FlapPolicy::default()));
            if let Err(e) = tenant_pass(store, tenant, &rules, book, now, &mut pass).await {
                tracing::warn!(%tenant, error = %e, "site alert pass failed for a tenant");
                pass.failed += rules.len().max(1);
            }
        }
        Ok(pass)
    }
}

async fn tenant_pass(
    store: &dyn Store,
    tenant: TenantId,
    rules: &[SiteRule],
    book: &mut AlertBook,
    now: DateTime<Utc>,
    pass: &mut Pass,
) -> Result<(), StoreError> {
    // Take the book into line with the database.
    let open = store.open_rule_events(tenant).await?;
    let stored: HashSet<(tod_core::RuleId, Subject)> = open.iter().map(|e| (e.rule, e.subject)).collect();
    let in_book: Vec<(tod_core::RuleId, Subject)> = book.open_alerts().map(|a| (a.rule, a.subject)).collect();
    for (rule, subject) in in_book {
        if !stored.contains(&(rule, subject)) {
            book.resolve_manually(rule, &subject, now);
        }
    }
    let enabled: HashMap<tod_core::RuleId, &SiteRule> = rules.iter().map(|r| (r.id, r)).collect();
    for e in open {
        if book.open_alert(e.rule, &e.subject).is_none() {
            let hysteresis = enabled
                .get(&e.rule)
                .map_or(tod_core::alerts::Hysteresis::IMMEDIATE, |r| r.hysteresis);
            book.restore(
                OpenAlert {
                    rule: e.rule,
                    subject: e.subject,
                    severity: e.severity,
                    message: e.message,
                    value: None,
                    fired_at: e.fired_at,
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
    if rules.is_empty() {
        return Ok(());
    }
    let snapshot = store.site_alert_snapshot(tenant, rules, now).await?;
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
        let events = book.apply_findings(rule.id, rule.hysteresis, &mut findings, scope.as_deref(), now, &|_| {
            None
        });
        let hits = rule.hysteresis.fire_after;
        let mut changes: Vec<SiteAlertChange> = events.iter().filter_map(|e| change_of(e, hits)).collect();
        for f in &findings {
            if before.contains(&f.subject) && book.open_alert(rule.id, &f.subject).is_some() {
                changes.push(SiteAlertChange::Still {
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
        match store.record_site_alerts(tenant, rule, &changes).await {
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

/// The stored change for a lifecycle event (site events have no flapping state of their own); a
/// raised event has been found `hits` passes in a row.
fn change_of(event: &AlertEvent, hits: u32) -> Option<SiteAlertChange> {
    match event {
        AlertEvent::Fired { alert } => Some(SiteAlertChange::Raise {
            subject: alert.subject,
            severity: alert.severity,
            message: alert.message.clone(),
            hits,
            at: alert.fired_at,
        }),
        AlertEvent::Resolved { subject, at, .. } => Some(SiteAlertChange::Resolve {
            subject: *subject,
            at: *at,
        }),
        AlertEvent::StateChanged { .. } | AlertEvent::Suppressed { .. } => None,
    }
}
