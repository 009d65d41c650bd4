//! Threshold rules on device metrics: metrics, operators, scopes with overrides, default rules,
//! and the streaming engine that evaluates them on every device report.
//!
//! Applicability (as the reference specifies): a device rule applies to its device; a group rule
//! to every member of the group; a tenant-wide rule to every device, except where a device rule
//! for the same metric exists for that device. A rule whose metric is absent from a report is not
//! evaluated (no CCQ on RouterOS v7 is "no CCQ", not "CCQ 0"). `duration_polls` is honoured for
//! every metric, offline included (the original fired on the first failed poll).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::lifecycle::{self, AlertBook, AlertEvent, FlapPolicy, Hysteresis, MaintenanceWindow, Observation};
use super::{Finding, Severity, Subject, ValidationError};
use crate::model::{DeviceId, GroupId, RuleId, SiteId, WindowId};
use crate::telemetry::{DeviceReport, PollStatus};

/// A device metric rules can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// CPU load, percent.
    CpuLoad,
    /// Memory used, percent.
    MemoryUsedPct,
    /// Disk used, percent.
    DiskUsedPct,
    /// Temperature, °C.
    Temperature,
    /// Worst per-interface mean client signal, dBm.
    SignalStrength,
    /// Worst per-interface mean CCQ, percent (absent on packages without CCQ).
    Ccq,
    /// Registered wireless clients.
    ClientCount,
    /// 1 when the device did not answer its poll, 0 when it did.
    DeviceOffline,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 8] = [
        Self::CpuLoad,
        Self::MemoryUsedPct,
        Self::DiskUsedPct,
        Self::Temperature,
        Self::SignalStrength,
        Self::Ccq,
        Self::ClientCount,
        Self::DeviceOffline,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CpuLoad => "cpu_load",
            Self::MemoryUsedPct => "memory_used_pct",
            Self::DiskUsedPct => "disk_used_pct",
            Self::Temperature => "temperature",
            Self::SignalStrength => "signal_strength",
            Self::Ccq => "ccq",
            Self::ClientCount => "client_count",
            Self::DeviceOffline => "device_offline",
        }
    }
}

impl FromStr for Metric {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            ValidationError::new(
                "metric",
                "must be one of: cpu_load, memory_used_pct, disk_used_pct, temperature, signal_strength, ccq, client_count, device_offline",
            )
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `>=`
    Gte,
    /// `<=`
    Lte,
    /// `==`
    Eq,
}

impl Op {
    /// `value <op> threshold`.
    #[inline]
    pub fn test(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Gt => value > threshold,
            Self::Lt => value < threshold,
            Self::Gte => value >= threshold,
            Self::Lte => value <= threshold,
            Self::Eq => value == threshold,
        }
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gt => "gt",
            Self::Lt => "lt",
            Self::Gte => "gte",
            Self::Lte => "lte",
            Self::Eq => "eq",
        }
    }
}

impl FromStr for Op {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Gt, Self::Lt, Self::Gte, Self::Lte, Self::Eq]
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| ValidationError::new("operator", "must be one of: gt, lt, gte, lte, eq"))
    }
}

/// Which devices a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum RuleScope {
    /// One device (overrides tenant-wide rules of the same metric for it).
    Device(DeviceId),
    /// Members of a group.
    Group(GroupId),
    /// Every device of the tenant.
    Tenant,
}

/// A device threshold rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRule {
    /// The rule.
    pub id: RuleId,
    /// Operator-facing name.
    pub name: String,
    /// What it tests.
    pub metric: Metric,
    /// How.
    pub op: Op,
    /// Against what.
    pub threshold: f64,
    /// Consecutive breaching polls before it fires.
    pub duration_polls: u32,
    /// Severity of the alert.
    pub severity: Severity,
    /// Which devices.
    pub scope: RuleScope,
    /// Disabled rules are not evaluated (and their alerts are resolved by the caller via
    /// [`AlertBook::retire_rule`]).
    pub enabled: bool,
    /// Seeded for new tenants; cannot be deleted, only disabled.
    pub is_default: bool,
}

impl DeviceRule {
    /// Validates a definition (the API answers 422 with the error).
    pub fn validate(&self) -> Result<(), ValidationError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 255 {
            return Err(ValidationError::new("name", "must be 1 to 255 characters"));
        }
        if !self.threshold.is_finite() {
            return Err(ValidationError::new("threshold", "must be a finite number"));
        }
        if !(1..=1000).contains(&self.duration_polls) {
            return Err(ValidationError::new("duration_polls", "must be between 1 and 1000"));
        }
        if self.metric == Metric::DeviceOffline && !(self.op == Op::Eq && self.threshold == 1.0) {
            return Err(ValidationError::new(
                "operator",
                "device_offline rules use operator eq and threshold 1",
            ));
        }
        Ok(())
    }

    fn hysteresis(&self) -> Hysteresis {
        Hysteresis {
            fire_after: self.duration_polls.max(1),
            clear_after: 1,
        }
    }

    fn finding(&self, device: DeviceId, hostname: &str, value: f64) -> Finding {
        let message = if self.metric == Metric::DeviceOffline {
            format!("Device {hostname} is offline")
        } else {
            format!(
                "{}: {} = {} (threshold: {} {})",
                self.name,
                self.metric,
                value,
                self.op.as_str(),
                self.threshold
            )
        };
        Finding {
            subject: Subject::Device(device),
            severity: self.severity,
            message,
            value: Some(value),
            evidence: Vec::new(),
        }
    }
}

/// A default rule, before it gets an id.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultRule {
    /// Name.
    pub name: &'static str,
    /// Metric.
    pub metric: Metric,
    /// Operator.
    pub op: Op,
    /// Threshold.
    pub threshold: f64,
    /// Consecutive polls.
    pub duration_polls: u32,
    /// Severity.
    pub severity: Severity,
}

impl DefaultRule {
    /// The tenant-wide, enabled rule this default becomes once stored under `id`.
    pub fn into_rule(self, id: RuleId) -> DeviceRule {
        DeviceRule {
            id,
            name: self.name.into(),
            metric: self.metric,
            op: self.op,
            threshold: self.threshold,
            duration_polls: self.duration_polls,
            severity: self.severity,
            scope: RuleScope::Tenant,
            enabled: true,
            is_default: true,
        }
    }
}

/// The rules every new tenant starts with (tenant-wide, enabled, `is_default`).
///
/// As the reference's table, except that "Device Offline" needs two consecutive failed polls: a
/// single lost poll over a tower backhaul is not an outage worth a page.
pub fn default_rules() -> Vec<DefaultRule> {
    use Metric::*;
    let r = |name, metric, op, threshold, duration_polls, severity| DefaultRule {
        name,
        metric,
        op,
        threshold,
        duration_polls,
        severity,
    };
    vec![
        r("High CPU Usage", CpuLoad, Op::Gt, 90.0, 5, Severity::Warning),
        r("High Memory Usage", MemoryUsedPct, Op::Gt, 90.0, 5, Severity::Warning),
        r("High Disk Usage", DiskUsedPct, Op::Gt, 85.0, 3, Severity::Warning),
        r("Device Offline", DeviceOffline, Op::Eq, 1.0, 2, Severity::Critical),
        r(
            "Wireless Signal Degraded",
            SignalStrength,
            Op::Lt,
            -75.0,
            3,
            Severity::Warning,
        ),
        r("Wireless CCQ Low", Ccq, Op::Lt, 50.0, 3, Severity::Warning),
    ]
}

/// The metric values of one device report; `None` = not measured in this report.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// CPU load, percent.
    pub cpu_load: Option<f64>,
    /// Memory used, percent.
    pub memory_used_pct: Option<f64>,
    /// Disk used, percent.
    pub disk_used_pct: Option<f64>,
    /// Temperature, °C.
    pub temperature: Option<f64>,
    /// Worst per-interface mean client signal, dBm.
    pub signal_strength: Option<f64>,
    /// Worst per-interface mean CCQ, percent.
    pub ccq: Option<f64>,
    /// Registered wireless clients.
    pub client_count: Option<f64>,
    /// 1 offline, 0 online.
    pub device_offline: Option<f64>,
}

impl Metrics {
    /// The value of one metric.
    #[inline]
    pub fn get(&self, m: Metric) -> Option<f64> {
        match m {
            Metric::CpuLoad => self.cpu_load,
            Metric::MemoryUsedPct => self.memory_used_pct,
            Metric::DiskUsedPct => self.disk_used_pct,
            Metric::Temperature => self.temperature,
            Metric::SignalStrength => self.signal_strength,
            Metric::Ccq => self.ccq,
            Metric::ClientCount => self.client_count,
            Metric::DeviceOffline => self.device_offline,
        }
    }

    /// Extracts metrics from a report. Wireless metrics come from the registration table:
    /// per interface the mean signal and mean CCQ of the clients that report them; the device
    /// value is the worst interface. An empty table gives `client_count = 0` and no signal.
    pub fn from_report(report: &DeviceReport) -> Self {
        let mut m = Metrics {
            device_offline: Some(match report.status {
                PollStatus::Offline { .. } => 1.0,
                PollStatus::Online | PollStatus::AuthFailed { .. } => 0.0,
            }),
            ..Metrics::default()
        };
        if let Some(r) = &report.resources {
            m.cpu_load = r.cpu_load;
            m.memory_used_pct = r.memory_used_pct();
            m.disk_used_pct = r.disk_used_pct();
            m.temperature = r.temperature_c;
        }
        if let Some(regs) = &report.registrations {
            m.client_count = Some(regs.len() as f64);
            // interface → (signal sum, signal n, ccq sum, ccq n)
            let mut per_if: Vec<(&str, i64, u32, u64, u32)> = Vec::new();
            for r in regs {
                let i = match per_if.iter().position(|p| p.0 == r.interface) {
                    Some(i) => i,
                    None => {
                        per_if.push((r.interface.as_str(), 0, 0, 0, 0));
                        per_if.len() - 1
                    }
                };
                if let Some(s) = r.signal_dbm {
                    per_if[i].1 += i64::from(s);
                    per_if[i].2 += 1;
                }
                if let Some(c) = r.tx_ccq {
                    per_if[i].3 += u64::from(c);
                    per_if[i].4 += 1;
                }
            }
            let worst = |vals: &mut dyn Iterator<Item = f64>| {
                vals.fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.min(v))))
            };
            m.signal_strength = worst(&mut per_if.iter().filter(|p| p.2 > 0).map(|p| p.1 as f64 / f64::from(p.2)));
            m.ccq = worst(&mut per_if.iter().filter(|p| p.4 > 0).map(|p| p.3 as f64 / f64::from(p.4)));
        }
        m
    }
}

/// What the engine needs to know about the device being evaluated.
#[derive(Debug, Clone, Copy)]
pub struct DeviceContext<'a> {
    /// The device.
    pub id: DeviceId,
    /// Its hostname (used in messages).
    pub hostname: &'a str,
    /// Its site (for site-wide maintenance windows).
    pub site: Option<SiteId>,
    /// Groups it belongs to.
    pub groups: &'a [GroupId],
}

/// Enabled device rules indexed by scope.
#[derive(Debug, Clone, Default)]
struct RuleIndex {
    rules: Vec<DeviceRule>,
    tenant_rules: Vec<usize>,
    group_rules: HashMap<GroupId, Vec<usize>>,
    device_rules: HashMap<DeviceId, Vec<usize>>,
}

impl RuleIndex {
    fn new(rules: Vec<DeviceRule>) -> Self {
        let mut idx = Self {
            rules: rules.into_iter().filter(|r| r.enabled).collect(),
            ..Self::default()
        };
        for (i, r) in idx.rules.iter().enumerate() {
            match r.scope {
                RuleScope::Tenant => idx.tenant_rules.push(i),
                RuleScope::Group(g) => idx.group_rules.entry(g).or_default().push(i),
                RuleScope::Device(d) => idx.device_rules.entry(d).or_default().push(i),
            }
        }
        idx
    }

    /// Device rules, group rules of the device's groups, and tenant rules not overridden by a
    /// device rule of the same metric.
    fn applicable<'s>(&'s self, device: DeviceId, groups: &'s [GroupId]) -> impl Iterator<Item = &'s DeviceRule> + 's {
        let own: &[usize] = self.device_rules.get(&device).map_or(&[], Vec::as_slice);
        let overridden = move |m: Metric| own.iter().any(|&i| self.rules[i].metric == m);
        self.tenant_rules
            .iter()
            .filter(move |&&i| !overridden(self.rules[i].metric))
            .chain(
                groups
                    .iter()
                    .flat_map(move |g| self.group_rules.get(g).into_iter().flatten()),
            )
            .chain(own.iter())
            .map(move |&i| &self.rules[i])
    }
}

/// One tenant's enabled device rules, indexed for evaluation on every report, with their alerts.
#[derive(Debug, Clone, Default)]
pub struct DeviceRuleEngine {
    index: RuleIndex,
    book: AlertBook,
}

impl DeviceRuleEngine {
    /// An engine over `rules` (disabled ones are ignored).
    pub fn new(rules: Vec<DeviceRule>, flap: FlapPolicy) -> Self {
        Self {
            index: RuleIndex::new(rules),
            book: AlertBook::new(flap),
        }
    }

    /// Replaces the rule set; open alerts of rules that were deleted or disabled are resolved at
    /// `now`.
    pub fn set_rules(&mut self, rules: Vec<DeviceRule>, now: DateTime<Utc>) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for old in &self.index.rules {
            match rules.iter().find(|r| r.id == old.id) {
                None => events.extend(
                    self.book
                        .retire_rule(old.id, now, lifecycle::ResolveReason::RuleDeleted),
                ),
                Some(r) if !r.enabled => events.extend(self.book.retire_rule(
                    old.id,
                    now,
                    lifecycle::ResolveReason::RuleDisabled,
                )),
                Some(_) => {}
            }
        }
        self.index = RuleIndex::new(rules);
        events
    }

    /// The alert book (open alerts, manual resolve, restore).
    pub fn book(&self) -> &AlertBook {
        &self.book
    }

    /// Mutable access to the alert book.
    pub fn book_mut(&mut self) -> &mut AlertBook {
        &mut self.book
    }

    /// The rules that apply to a device, after overrides.
    pub fn applicable<'s>(
        &'s self,
        device: DeviceId,
        groups: &'s [GroupId],
    ) -> impl Iterator<Item = &'s DeviceRule> + 's {
        self.index.applicable(device, groups)
    }

    /// Evaluates every applicable rule against one report's metrics and returns what changed.
    pub fn evaluate(
        &mut self,
        device: DeviceContext<'_>,
        metrics: &Metrics,
        now: DateTime<Utc>,
        windows: &[MaintenanceWindow],
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let subject = Subject::Device(device.id);
        let flap = self.book.flap_policy();
        // Looked up once, and only when something breaches.
        let mut window: Option<Option<WindowId>> = None;
        let mut tracks = self.book.tracks_mut(&subject);
        for rule in self.index.applicable(device.id, device.groups) {
            let Some(value) = metrics.get(rule.metric) else {
                continue;
            };
            if rule.op.test(value, rule.threshold) {
                let w = *window.get_or_insert_with(|| {
                    lifecycle::suppressing_window_for_device(windows, device.id, device.site, now)
                });
                let f = rule.finding(device.id, device.hostname, value);
                let v = tracks.get_or_insert_with(Vec::new);
                events.extend(lifecycle::observe_in(
                    v,
                    rule.id,
                    subject,
                    Observation::Hit(&f),
                    rule.hysteresis(),
                    now,
                    w,
                    &flap,
                ));
            } else if let Some(v) = tracks.as_mut() {
                events.extend(lifecycle::observe_in(
                    v,
                    rule.id,
                    subject,
                    Observation::Clean,
                    rule.hysteresis(),
                    now,
                    None,
                    &flap,
                ));
            }
        }
        self.book.put_tracks(subject, tracks);
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MacAddr;
    use crate::telemetry::{Registration, Resources};
    use chrono::TimeZone;

    const DEV: DeviceId = DeviceId::from_u128(1);
    const OTHER: DeviceId = DeviceId::from_u128(2);
    const GROUP: GroupId = GroupId::from_u128(3);

    fn t(min: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + min * 60, 0).unwrap()
    }

    fn rule(id: u128, metric: Metric, op: Op, threshold: f64, polls: u32, scope: RuleScope) -> DeviceRule {
        DeviceRule {
            id: RuleId::from_u128(id),
            name: format!("rule {id}"),
            metric,
            op,
            threshold,
            duration_polls: polls,
            severity: Severity::Warning,
            scope,
            enabled: true,
            is_default: false,
        }
    }

    fn ctx(id: DeviceId, groups: &[GroupId]) -> DeviceContext<'_> {
        DeviceContext {
            id,
            hostname: "ap-1",
            site: None,
            groups,
        }
    }

    fn cpu(v: f64) -> Metrics {
        Metrics {
            cpu_load: Some(v),
            ..Metrics::default()
        }
    }

    #[test]
    fn a_device_rule_overrides_the_tenant_rule_of_the_same_metric_only() {
        let e = DeviceRuleEngine::new(
            vec![
                rule(1, Metric::CpuLoad, Op::Gt, 90.0, 1, RuleScope::Tenant),
                rule(2, Metric::CpuLoad, Op::Gt, 50.0, 1, RuleScope::Device(DEV)),
                rule(3, Metric::Temperature, Op::Gt, 70.0, 1, RuleScope::Tenant),
                rule(4, Metric::CpuLoad, Op::Gt, 80.0, 1, RuleScope::Group(GROUP)),
            ],
            FlapPolicy::default(),
        );
        let ids = |d, g: &[GroupId]| {
            let mut v: Vec<u128> = e.applicable(d, g).map(|r| r.id.0.as_u128()).collect();
            v.sort();
            v
        };
        assert_eq!(ids(DEV, &[]), vec![2, 3]);
        assert_eq!(ids(OTHER, &[]), vec![1, 3]);
        // Group rules are not overridden by device rules, nor do they override tenant rules.
        assert_eq!(ids(DEV, &[GROUP]), vec![2, 3, 4]);
        assert_eq!(ids(OTHER, &[GROUP]), vec![1, 3, 4]);
    }

    #[test]
    fn duration_polls_is_honoured_and_one_clean_poll_resolves() {
        let mut e = DeviceRuleEngine::new(
            vec![rule(1, Metric::CpuLoad, Op::Gt, 90.0, 3, RuleScope::Tenant)],
            FlapPolicy::default(),
        );
        assert!(e.evaluate(ctx(DEV, &[]), &cpu(95.0), t(0), &[]).is_empty());
        assert!(e.evaluate(ctx(DEV, &[]), &cpu(95.0), t(1), &[]).is_empty());
        let ev = e.evaluate(ctx(DEV, &[]), &cpu(95.0), t(2), &[]);
        let AlertEvent::Fired { alert } = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(alert.message, "rule 1: cpu_load = 95 (threshold: gt 90)");
        assert_eq!(e.book().active_count(), 1);
        assert!(
            e.evaluate(ctx(DEV, &[]), &cpu(96.0), t(3), &[]).is_empty(),
            "one record per episode"
        );
        let ev = e.evaluate(ctx(DEV, &[]), &cpu(10.0), t(4), &[]);
        assert!(matches!(ev.as_slice(), [AlertEvent::Resolved { .. }]));
        assert_eq!(e.book().active_count(), 0);
    }

    #[test]
    fn offline_needs_its_duration_too() {
        let defaults = default_rules();
        let off = defaults.iter().find(|d| d.metric == Metric::DeviceOffline).unwrap();
        let mut e = DeviceRuleEngine::new(
            vec![rule(
                9,
                Metric::DeviceOffline,
                off.op,
                off.threshold,
                off.duration_polls,
                RuleScope::Tenant,
            )],
            FlapPolicy::default(),
        );
        let offline = Metrics {
            device_offline: Some(1.0),
            ..Metrics::default()
        };
        assert!(e.evaluate(ctx(DEV, &[]), &offline, t(0), &[]).is_empty());
        let ev = e.evaluate(ctx(DEV, &[]), &offline, t(1), &[]);
        let AlertEvent::Fired { alert } = &ev[0] else { panic!() };
        assert_eq!(alert.message, "Device ap-1 is offline");
    }

    #[test]
    fn missing_metrics_are_not_evaluated_and_do_not_clear() {
        let mut e = DeviceRuleEngine::new(
            vec![rule(1, Metric::Ccq, Op::Lt, 50.0, 1, RuleScope::Tenant)],
            FlapPolicy::default(),
        );
        // RouterOS v7 `wifi` has no CCQ: nothing fires.
        assert!(e.evaluate(ctx(DEV, &[]), &Metrics::default(), t(0), &[]).is_empty());
        let low = Metrics {
            ccq: Some(20.0),
            ..Metrics::default()
        };
        assert_eq!(e.evaluate(ctx(DEV, &[]), &low, t(1), &[]).len(), 1);
        // A report without the metric neither re-fires nor resolves.
        assert!(e.evaluate(ctx(DEV, &[]), &Metrics::default(), t(2), &[]).is_empty());
        assert_eq!(e.book().active_count(), 1);
    }

    #[test]
    fn disabling_a_rule_resolves_its_alert() {
        let r = rule(1, Metric::CpuLoad, Op::Gt, 90.0, 1, RuleScope::Tenant);
        let mut e = DeviceRuleEngine::new(vec![r.clone()], FlapPolicy::default());
        e.evaluate(ctx(DEV, &[]), &cpu(99.0), t(0), &[]);
        let mut disabled = r;
        disabled.enabled = false;
        let ev = e.set_rules(vec![disabled], t(1));
        assert!(matches!(
            ev.as_slice(),
            [AlertEvent::Resolved {
                reason: lifecycle::ResolveReason::RuleDisabled,
                ..
            }]
        ));
        assert!(e.evaluate(ctx(DEV, &[]), &cpu(99.0), t(2), &[]).is_empty());
    }

    #[test]
    fn maintenance_windows_suppress_device_alerts() {
        let mut e = DeviceRuleEngine::new(
            vec![rule(1, Metric::CpuLoad, Op::Gt, 90.0, 1, RuleScope::Tenant)],
            FlapPolicy::default(),
        );
        let w = MaintenanceWindow {
            id: crate::model::WindowId::from_u128(1),
            devices: vec![DEV],
            sites: vec![],
            start_at: t(0),
            end_at: t(10),
            suppress_alerts: true,
            recurrence: None,
        };
        let ev = e.evaluate(ctx(DEV, &[]), &cpu(99.0), t(1), std::slice::from_ref(&w));
        assert!(matches!(ev.as_slice(), [AlertEvent::Suppressed { .. }]));
        assert!(matches!(
            e.evaluate(ctx(OTHER, &[]), &cpu(99.0), t(1), std::slice::from_ref(&w))
                .as_slice(),
            [AlertEvent::Fired { .. }]
        ));
        assert!(matches!(
            e.evaluate(ctx(DEV, &[]), &cpu(99.0), t(11), &[w]).as_slice(),
            [AlertEvent::Fired { .. }]
        ));
    }

    #[test]
    fn validation_catches_bad_definitions() {
        let mut r = rule(1, Metric::CpuLoad, Op::Gt, 90.0, 1, RuleScope::Tenant);
        assert_eq!(r.validate(), Ok(()));
        r.duration_polls = 0;
        assert_eq!(r.validate().unwrap_err().field, "duration_polls");
        r.duration_polls = 1;
        r.threshold = f64::NAN;
        assert_eq!(r.validate().unwrap_err().field, "threshold");
        r.threshold = 1.0;
        r.name = "  ".into();
        assert_eq!(r.validate().unwrap_err().field, "name");
        let off = rule(2, Metric::DeviceOffline, Op::Gt, 0.0, 1, RuleScope::Tenant);
        assert_eq!(off.validate().unwrap_err().field, "operator");
        assert!("cpu".parse::<Metric>().is_err());
        assert_eq!("ccq".parse::<Metric>(), Ok(Metric::Ccq));
        assert!("ne".parse::<Op>().is_err());
        assert!("fatal".parse::<Severity>().is_err());
        for d in default_rules() {
            let name = d.name;
            let r = d.into_rule(RuleId::from_u128(1));
            assert!(r.is_default && r.enabled && r.scope == RuleScope::Tenant);
            assert_eq!(r.validate(), Ok(()), "{name}");
        }
        let metrics: Vec<Metric> = default_rules().iter().map(|d| d.metric).collect();
        for m in [
            Metric::CpuLoad,
            Metric::MemoryUsedPct,
            Metric::SignalStrength,
            Metric::Ccq,
        ] {
            assert!(metrics.contains(&m));
        }
    }

    fn reg(iface: &str, n: u64, signal: Option<i16>, ccq: Option<u8>) -> Registration {
        Registration {
            signal_dbm: signal,
            tx_ccq: ccq,
            ..Registration::new(iface, MacAddr::from_u64(n))
        }
    }

    #[test]
    fn metrics_from_a_report_use_the_worst_interface_and_skip_unknowns() {
        let report = DeviceReport {
            resources: Some(Resources {
                cpu_load: Some(12.0),
                free_memory: Some(10),
                total_memory: Some(100),
                ..Resources::default()
            }),
            registrations: Some(vec![
                reg("wlan1", 1, Some(-60), Some(90)),
                reg("wlan1", 2, Some(-70), Some(70)),
                reg("wlan2", 3, Some(-80), None),
                reg("wlan2", 4, None, None),
            ]),
            ..DeviceReport::new(DEV, 1, t(0), PollStatus::Online)
        };
        let m = Metrics::from_report(&report);
        assert_eq!(m.cpu_load, Some(12.0));
        assert_eq!(m.memory_used_pct, Some(90.0));
        assert_eq!(m.signal_strength, Some(-80.0));
        assert_eq!(m.ccq, Some(80.0));
        assert_eq!(m.client_count, Some(4.0));
        assert_eq!(m.device_offline, Some(0.0));
        let empty = DeviceReport {
            registrations: Some(vec![]),
            resources: None,
            ..report
        };
        let m = Metrics::from_report(&empty);
        assert_eq!((m.client_count, m.signal_strength, m.ccq), (Some(0.0), None, None));
    }
}
