//! Site and sector rules: the five rule types of the reference, evaluated over a [`Snapshot`].
//!
//! | type | scope | condition (T = threshold) |
//! |---|---|---|
//! | `device_offline_percent` | site or sector | ≥ 1 device and offline/total × 100 > T |
//! | `device_offline_count` | site or sector | offline devices > T |
//! | `sector_signal_avg` | sector | mean client signal of the last 10 min < T dBm |
//! | `sector_client_drop` | sector | clients 70–60 min ago > 0 and the drop to the last 10 min > T % |
//! | `signal_degradation` | site or sector | a link's trend (previous week − last week) ≥ T dB, clearing below T − 2 dB; one alert per link |
//!
//! "Offline" means the agent polled the device and it did not answer. Devices whose agent is
//! silent are `unreachable` and do not count: an agent outage is one agent alert, not an offline
//! storm. Hysteresis is real (fire after N consecutive hits, clear after M clean passes) because
//! it is the shared [`AlertBook`](super::AlertBook) lifecycle.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::lifecycle::Hysteresis;
use super::{Finding, Rule, RuleError, Severity, Snapshot, Subject, ValidationError};
use crate::model::{DeviceStatus, RuleId, SectorId, SiteId};

/// The five site/sector rule types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteRuleKind {
    /// Percentage of the site's (sector's) devices offline.
    DeviceOfflinePercent,
    /// Number of the site's (sector's) devices offline.
    DeviceOfflineCount,
    /// Mean client signal of a sector.
    SectorSignalAvg,
    /// Drop in a sector's client count against an hour ago.
    SectorClientDrop,
    /// Slow signal degradation of links (trend detection).
    SignalDegradation,
}

impl SiteRuleKind {
    /// Every kind.
    pub const ALL: [SiteRuleKind; 5] = [
        Self::DeviceOfflinePercent,
        Self::DeviceOfflineCount,
        Self::SectorSignalAvg,
        Self::SectorClientDrop,
        Self::SignalDegradation,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DeviceOfflinePercent => "device_offline_percent",
            Self::DeviceOfflineCount => "device_offline_count",
            Self::SectorSignalAvg => "sector_signal_avg",
            Self::SectorClientDrop => "sector_client_drop",
            Self::SignalDegradation => "signal_degradation",
        }
    }

    /// The unit a threshold of this kind is expressed in.
    pub const fn unit(self) -> ThresholdUnit {
        match self {
            Self::DeviceOfflinePercent | Self::SectorClientDrop => ThresholdUnit::Percent,
            Self::DeviceOfflineCount => ThresholdUnit::Count,
            Self::SectorSignalAvg | Self::SignalDegradation => ThresholdUnit::Dbm,
        }
    }

    /// Whether the rule needs a sector.
    pub const fn requires_sector(self) -> bool {
        matches!(self, Self::SectorSignalAvg | Self::SectorClientDrop)
    }

    /// Severity of the alerts it raises.
    pub const fn severity(self) -> Severity {
        match self {
            Self::DeviceOfflinePercent | Self::DeviceOfflineCount => Severity::Critical,
            _ => Severity::Warning,
        }
    }
}

impl FromStr for SiteRuleKind {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            ValidationError::new(
                "rule_type",
                "must be one of: device_offline_percent, device_offline_count, sector_signal_avg, sector_client_drop, signal_degradation",
            )
        })
    }
}

impl fmt::Display for SiteRuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Threshold units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ThresholdUnit {
    /// `percent`
    #[serde(rename = "percent")]
    Percent,
    /// `count`
    #[serde(rename = "count")]
    Count,
    /// `dBm` (for `signal_degradation`: dB of drop)
    #[serde(rename = "dBm")]
    Dbm,
}

impl ThresholdUnit {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Percent => "percent",
            Self::Count => "count",
            Self::Dbm => "dBm",
        }
    }
}

impl FromStr for ThresholdUnit {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "percent" => Ok(Self::Percent),
            "count" => Ok(Self::Count),
            "dBm" => Ok(Self::Dbm),
            _ => Err(ValidationError::new(
                "threshold_unit",
                "must be one of: percent, count, dBm",
            )),
        }
    }
}

/// A site or sector rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRule {
    /// The rule.
    pub id: RuleId,
    /// The site it watches.
    pub site: SiteId,
    /// The sector, for sector-scoped rules.
    pub sector: Option<SectorId>,
    /// The type.
    pub kind: SiteRuleKind,
    /// Operator-facing name.
    pub name: String,
    /// Threshold value.
    pub threshold: f64,
    /// Threshold unit (must match the type).
    pub unit: ThresholdUnit,
    /// Disabled rules are not evaluated and their alerts are resolved.
    pub enabled: bool,
    /// Fire after N hits, clear after M clean passes.
    pub hysteresis: Hysteresis,
}

/// A `signal_degradation` alert clears only once the drop is this far below the rule's threshold
/// (the same margin as [`TrendConfig`](crate::signal::TrendConfig)'s default).
pub const DEGRADATION_CLEAR_MARGIN_DB: f64 = 2.0;

/// Default hysteresis for site rules: two 5-minute passes to confirm, two to clear.
pub const DEFAULT_SITE_HYSTERESIS: Hysteresis = Hysteresis {
    fire_after: 2,
    clear_after: 2,
};

impl SiteRule {
    /// Validates type, unit, threshold range, sector requirement and name. Ownership (the
    /// site and sector belong to the caller's tenant, the sector to the site) is the server's
    /// check, against storage.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 255 {
            return Err(ValidationError::new("name", "must be 1 to 255 characters"));
        }
        if self.unit != self.kind.unit() {
            return Err(ValidationError::new(
                "threshold_unit",
                format!("{} rules use the unit {}", self.kind, self.kind.unit().as_str()),
            ));
        }
        let t = self.threshold;
        let ok = t.is_finite()
            && match self.kind {
                SiteRuleKind::DeviceOfflinePercent | SiteRuleKind::SectorClientDrop => (0.0..100.0).contains(&t),
                SiteRuleKind::DeviceOfflineCount => t >= 0.0 && t.fract() == 0.0 && t <= 100_000.0,
                SiteRuleKind::SectorSignalAvg => (-120.0..=0.0).contains(&t),
                SiteRuleKind::SignalDegradation => t > 0.0 && t <= 60.0,
            };
        if !ok {
            let range = match self.kind {
                SiteRuleKind::DeviceOfflinePercent | SiteRuleKind::SectorClientDrop => {
                    "a percentage from 0 to below 100"
                }
                SiteRuleKind::DeviceOfflineCount => "a whole number of devices, 0 or more",
                SiteRuleKind::SectorSignalAvg => "a signal level from -120 to 0 dBm",
                SiteRuleKind::SignalDegradation => "a drop greater than 0 and at most 60 dB",
            };
            return Err(ValidationError::new("threshold_value", format!("must be {range}")));
        }
        if self.kind.requires_sector() && self.sector.is_none() {
            return Err(ValidationError::new(
                "sector_id",
                format!("{} rules need a sector", self.kind),
            ));
        }
        self.hysteresis.validate()
    }

    fn subject(&self) -> Subject {
        self.sector.map_or(Subject::Site(self.site), Subject::Sector)
    }

    fn in_scope(&self, site: Option<SiteId>, sector: Option<SectorId>) -> bool {
        site == Some(self.site) && self.sector.is_none_or(|s| sector == Some(s))
    }

    fn finding(&self, subject: Subject, value: f64, detail: String, evidence: Vec<(String, String)>) -> Finding {
        Finding {
            subject,
            severity: self.kind.severity(),
            message: format!("Alert rule '{}' condition met: {detail}", self.name.trim()),
            value: Some(value),
            evidence,
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl Rule for SiteRule {
    fn id(&self) -> RuleId {
        self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn hysteresis(&self) -> Hysteresis {
        self.hysteresis
    }

    fn scope(&self, snapshot: &Snapshot) -> Option<Vec<Subject>> {
        match self.kind {
            // Per-link verdicts. A link whose trend is unknown, or sits in the clear margin just
            // below the threshold, is not judged: an open alert stays open and nothing new fires,
            // so a delta hovering around the threshold does not flap. Links that are no longer up
            // are judged (clean), so their degradation alerts resolve.
            SiteRuleKind::SignalDegradation => Some(
                snapshot
                    .links
                    .iter()
                    .filter(|l| self.in_scope(l.site, l.sector))
                    .filter(|l| {
                        !l.state.is_up()
                            || l.trend_delta_db.is_some_and(|d| {
                                d >= self.threshold || d < self.threshold - DEGRADATION_CLEAR_MARGIN_DB
                            })
                    })
                    .map(|l| Subject::Link(l.key))
                    .collect(),
            ),
            _ => Some(vec![self.subject()]),
        }
    }

    fn evaluate(&self, snapshot: &Snapshot) -> Result<Vec<Finding>, RuleError> {
        if !self.enabled {
            return Ok(Vec::new());
        }
        let t = self.threshold;
        let mut out = Vec::new();
        match self.kind {
            SiteRuleKind::DeviceOfflinePercent | SiteRuleKind::DeviceOfflineCount => {
                let (mut total, mut offline) = (0u32, 0u32);
                for d in snapshot.devices.iter().filter(|d| self.in_scope(d.site, d.sector)) {
                    total += 1;
                    offline += u32::from(d.status == DeviceStatus::Offline);
                }
                let evidence = vec![
                    ("offline".to_owned(), offline.to_string()),
                    ("devices".to_owned(), total.to_string()),
                ];
                if self.kind == SiteRuleKind::DeviceOfflineCount {
                    if f64::from(offline) > t {
                        let detail = format!("{offline} of {total} devices offline (> {})", fmt_num(t));
                        out.push(self.finding(self.subject(), f64::from(offline), detail, evidence));
                    }
                } else if total > 0 {
                    let pct = f64::from(offline) / f64::from(total) * 100.0;
                    if pct > t {
                        let detail = format!("{offline} of {total} devices offline ({pct:.1}% > {}%)", fmt_num(t));
                        out.push(self.finding(self.subject(), pct, detail, evidence));
                    }
                }
            }
            SiteRuleKind::SectorSignalAvg => {
                if let Some(s) = snapshot.sectors.iter().find(|s| Some(s.id) == self.sector)
                    && let Some(avg) = s.avg_signal_dbm
                    && avg < t
                {
                    let detail = format!("average client signal {avg:.1} dBm < {} dBm", fmt_num(t));
                    let ev = vec![("clients".to_owned(), s.clients_now.to_string())];
                    out.push(self.finding(self.subject(), avg, detail, ev));
                }
            }
            SiteRuleKind::SectorClientDrop => {
                if let Some(s) = snapshot.sectors.iter().find(|s| Some(s.id) == self.sector)
                    && s.clients_before > 0
                {
                    let before = f64::from(s.clients_before);
                    let drop = (before - f64::from(s.clients_now)) / before * 100.0;
                    if drop > t {
                        let detail = format!(
                            "clients dropped from {} to {} ({drop:.1}% > {}%)",
                            s.clients_before,
                            s.clients_now,
                            fmt_num(t)
                        );
                        out.push(self.finding(self.subject(), drop, detail, Vec::new()));
                    }
                }
            }
            SiteRuleKind::SignalDegradation => {
                for l in snapshot
                    .links
                    .iter()
                    .filter(|l| self.in_scope(l.site, l.sector) && l.state.is_up())
                {
                    if let Some(delta) = l.trend_delta_db
                        && delta >= t
                    {
                        let detail = format!(
                            "link signal degraded {delta:.1} dB week over week (≥ {} dB)",
                            fmt_num(t)
                        );
                        let ev = vec![
                            ("ap".to_owned(), l.key.ap.to_string()),
                            ("cpe".to_owned(), l.key.cpe.to_string()),
                        ];
                        out.push(self.finding(Subject::Link(l.key), delta, detail, ev));
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertBook, AlertEvent, DeviceView, FlapPolicy, LinkView, Metrics, SectorView};
    use crate::links::{LinkKey, LinkState};
    use crate::model::{DeviceId, TenantId};
    use chrono::{DateTime, TimeZone, Utc};

    const SITE: SiteId = SiteId::from_u128(1);
    const SECTOR: SectorId = SectorId::from_u128(2);

    fn t(min: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + min * 60, 0).unwrap()
    }

    #[test]
    fn snapshot_windows_default_to_ten_minutes_against_an_hour_ago_and_shrink_with_speed() {
        use crate::alerts::SnapshotWindows;
        let w = SnapshotWindows::default();
        assert_eq!(w.recent_at(t(100)), (t(90), t(100)));
        assert_eq!(w.before_at(t(100)), (t(30), t(40)));
        // A world ten times faster: one simulated minute is six seconds.
        let fast = SnapshotWindows::scaled(10.0);
        assert_eq!(fast.recent, chrono::Duration::seconds(60));
        assert_eq!(fast.before_at(t(100)), (t(100) - chrono::Duration::seconds(420), t(94)));
        // Never an empty window, and nonsense speeds change nothing.
        assert_eq!(SnapshotWindows::scaled(1e12).recent, chrono::Duration::milliseconds(1));
        for speed in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            assert_eq!(SnapshotWindows::scaled(speed), w, "{speed}");
        }
    }

    fn rule(kind: SiteRuleKind, threshold: f64, sector: Option<SectorId>) -> SiteRule {
        SiteRule {
            id: RuleId::from_u128(10),
            site: SITE,
            sector,
            kind,
            name: "r".into(),
            threshold,
            unit: kind.unit(),
            enabled: true,
            hysteresis: DEFAULT_SITE_HYSTERESIS,
        }
    }

    fn device(n: u128, status: DeviceStatus, sector: Option<SectorId>) -> DeviceView {
        DeviceView {
            id: DeviceId::from_u128(n),
            hostname: format!("d{n}"),
            site: Some(SITE),
            sector,
            groups: vec![],
            status,
            metrics: Metrics::default(),
        }
    }

    fn snapshot(devices: Vec<DeviceView>) -> Snapshot {
        Snapshot {
            devices,
            ..Snapshot::empty(TenantId::from_u128(1), t(0))
        }
    }

    fn fires(r: &SiteRule, s: &Snapshot) -> bool {
        !r.evaluate(s).unwrap().is_empty()
    }

    #[test]
    fn offline_percent_is_strictly_greater_and_ignores_unreachable_and_empty_sites() {
        use DeviceStatus::*;
        let s = snapshot(vec![
            device(1, Offline, None),
            device(2, Online, None),
            device(3, Online, None),
            device(4, Online, None),
        ]);
        assert!(fires(&rule(SiteRuleKind::DeviceOfflinePercent, 20.0, None), &s));
        assert!(
            !fires(&rule(SiteRuleKind::DeviceOfflinePercent, 25.0, None), &s),
            "25% is not > 25%"
        );
        let agent_down = snapshot(vec![device(1, Unreachable, None), device(2, Unreachable, None)]);
        assert!(!fires(
            &rule(SiteRuleKind::DeviceOfflinePercent, 0.0, None),
            &agent_down
        ));
        assert!(!fires(
            &rule(SiteRuleKind::DeviceOfflinePercent, 0.0, None),
            &snapshot(vec![])
        ));
        let f = &rule(SiteRuleKind::DeviceOfflinePercent, 20.0, None)
            .evaluate(&s)
            .unwrap()[0];
        assert_eq!(
            f.message,
            "Alert rule 'r' condition met: 1 of 4 devices offline (25.0% > 20%)"
        );
        assert_eq!(f.severity, Severity::Critical);
    }

    #[test]
    fn offline_count_can_be_scoped_to_a_sector() {
        use DeviceStatus::*;
        let s = snapshot(vec![
            device(1, Offline, Some(SECTOR)),
            device(2, Offline, None),
            device(3, Online, Some(SECTOR)),
        ]);
        assert!(fires(&rule(SiteRuleKind::DeviceOfflineCount, 1.0, None), &s));
        assert!(!fires(&rule(SiteRuleKind::DeviceOfflineCount, 1.0, Some(SECTOR)), &s));
        assert!(fires(&rule(SiteRuleKind::DeviceOfflineCount, 0.0, Some(SECTOR)), &s));
    }

    fn sector(avg: Option<f64>, now: u32, before: u32) -> SectorView {
        SectorView {
            id: SECTOR,
            site: SITE,
            avg_signal_dbm: avg,
            clients_now: now,
            clients_before: before,
            avg_ccq: None,
            throughput_bps: None,
        }
    }

    #[test]
    fn sector_signal_and_client_drop() {
        let mut s = snapshot(vec![]);
        s.sectors = vec![sector(Some(-76.0), 5, 10)];
        assert!(fires(&rule(SiteRuleKind::SectorSignalAvg, -75.0, Some(SECTOR)), &s));
        assert!(!fires(&rule(SiteRuleKind::SectorSignalAvg, -76.0, Some(SECTOR)), &s));
        assert!(fires(&rule(SiteRuleKind::SectorClientDrop, 40.0, Some(SECTOR)), &s));
        assert!(!fires(&rule(SiteRuleKind::SectorClientDrop, 50.0, Some(SECTOR)), &s));
        s.sectors = vec![sector(None, 0, 0)];
        assert!(
            !fires(&rule(SiteRuleKind::SectorSignalAvg, -75.0, Some(SECTOR)), &s),
            "no data is not a breach"
        );
        assert!(
            !fires(&rule(SiteRuleKind::SectorClientDrop, 0.0, Some(SECTOR)), &s),
            "nothing before, nothing dropped"
        );
    }

    #[test]
    fn degradation_alerts_per_link_with_a_clear_margin_and_clears_when_the_link_goes_down() {
        let key = LinkKey {
            ap: DeviceId::from_u128(1),
            cpe: DeviceId::from_u128(2),
        };
        let mut s = snapshot(vec![]);
        s.links = vec![LinkView {
            key,
            site: Some(SITE),
            sector: None,
            state: LinkState::Active,
            signal_dbm: Some(-70),
            tx_ccq: None,
            trend_delta_db: Some(6.0),
        }];
        let mut r = rule(SiteRuleKind::SignalDegradation, 5.0, None);
        r.hysteresis = Hysteresis::IMMEDIATE;
        let mut book = AlertBook::new(FlapPolicy::default());
        let none = |_: &Subject| None;
        let ev = book.apply_rule(&r, &s, &none).unwrap();
        assert!(matches!(&ev[..], [AlertEvent::Fired { alert }] if alert.subject == Subject::Link(key)));
        // 4 dB is inside the 2 dB clear margin below 5 dB: still open, nothing new.
        s.links[0].trend_delta_db = Some(4.0);
        s.at = t(1);
        assert!(book.apply_rule(&r, &s, &none).unwrap().is_empty());
        assert_eq!(book.active_count(), 1);
        // Not enough history any more: not judged either.
        s.links[0].trend_delta_db = None;
        s.at = t(2);
        assert!(book.apply_rule(&r, &s, &none).unwrap().is_empty());
        // Below the margin: resolved.
        s.links[0].trend_delta_db = Some(2.9);
        s.at = t(3);
        assert!(matches!(
            &book.apply_rule(&r, &s, &none).unwrap()[..],
            [AlertEvent::Resolved { .. }]
        ));
        s.links[0].trend_delta_db = Some(6.0);
        s.at = t(4);
        assert_eq!(book.apply_rule(&r, &s, &none).unwrap().len(), 1);
        // The original never resolved trend events of links that went down.
        s.links[0].state = LinkState::Down;
        s.at = t(5);
        let ev = book.apply_rule(&r, &s, &none).unwrap();
        assert!(matches!(&ev[..], [AlertEvent::Resolved { .. }]));
    }

    #[test]
    fn site_rules_have_real_hysteresis_through_the_book() {
        use DeviceStatus::*;
        let r = rule(SiteRuleKind::DeviceOfflineCount, 0.0, None);
        let mut book = AlertBook::new(FlapPolicy::default());
        let none = |_: &Subject| None;
        let down = snapshot(vec![device(1, Offline, None)]);
        let up = snapshot(vec![device(1, Online, None)]);
        let mut seq = Vec::new();
        for (i, s) in [&down, &down, &up, &down, &up, &up].into_iter().enumerate() {
            let mut s = s.clone();
            s.at = t(i as i64 * 5);
            seq.push(book.apply_rule(&r, &s, &none).unwrap().len());
        }
        // fires on the 2nd consecutive hit; one clean pass between hits does not clear; two do.
        assert_eq!(seq, vec![0, 1, 0, 0, 0, 1]);
        assert_eq!(book.active_count(), 0);
    }

    #[test]
    fn validation_checks_type_unit_range_and_sector() {
        assert_eq!(rule(SiteRuleKind::DeviceOfflinePercent, 50.0, None).validate(), Ok(()));
        let mut r = rule(SiteRuleKind::DeviceOfflinePercent, 50.0, None);
        r.unit = ThresholdUnit::Count;
        assert_eq!(r.validate().unwrap_err().field, "threshold_unit");
        assert_eq!(
            rule(SiteRuleKind::DeviceOfflinePercent, 150.0, None)
                .validate()
                .unwrap_err()
                .field,
            "threshold_value"
        );
        assert_eq!(
            rule(SiteRuleKind::DeviceOfflineCount, 1.5, None)
                .validate()
                .unwrap_err()
                .field,
            "threshold_value"
        );
        assert_eq!(
            rule(SiteRuleKind::SectorSignalAvg, 10.0, Some(SECTOR))
                .validate()
                .unwrap_err()
                .field,
            "threshold_value"
        );
        assert_eq!(
            rule(SiteRuleKind::SectorSignalAvg, -75.0, None)
                .validate()
                .unwrap_err()
                .field,
            "sector_id"
        );
        assert_eq!(
            rule(SiteRuleKind::SignalDegradation, 0.0, None)
                .validate()
                .unwrap_err()
                .field,
            "threshold_value"
        );
        let mut r = rule(SiteRuleKind::SignalDegradation, 5.0, None);
        r.name = String::new();
        assert_eq!(r.validate().unwrap_err().field, "name");
        r.name = "x".into();
        r.hysteresis.fire_after = 0;
        assert_eq!(r.validate().unwrap_err().field, "fire_after");
        assert!("device_offline".parse::<SiteRuleKind>().is_err());
        assert_eq!("dBm".parse::<ThresholdUnit>(), Ok(ThresholdUnit::Dbm));
        assert!("dbm".parse::<ThresholdUnit>().is_err());
    }
}
