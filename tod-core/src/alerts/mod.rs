//! Alerts: the [`Rule`] trait, one alert lifecycle for every kind of rule, and the built-in rules.
//!
//! A rule looks at a [`Snapshot`] and returns [`Finding`]s: "this subject breaches, with this
//! severity and message". It knows nothing about alert state. The [`AlertBook`] turns findings
//! into alerts with one lifecycle for all rules — built-in device rules, site/sector rules and WASM
//! plugin rules alike:
//!
//! - fire after `fire_after` consecutive hits, clear after `clear_after` consecutive clean passes;
//! - one alert is one record: it fires, may become *flapping* (5 transitions within 10 minutes),
//!   and resolves once; a flapping alert resolves only after a quiet flap window;
//! - a maintenance window suppresses firing and the suppression is reported, not lost;
//! - disabling or deleting a rule resolves its open alerts.
//!
//! Modules: [`lifecycle`] (the book, hysteresis, flapping, maintenance windows), [`device`]
//! (threshold rules on device metrics, scopes and overrides, default rules) and [`site`]
//! (the five site/sector rule types).

pub mod device;
pub mod lifecycle;
pub mod site;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::links::{LinkKey, LinkState};
use crate::model::{DeviceId, DeviceStatus, GroupId, RuleId, SectorId, SiteId, TenantId};

pub use device::{DeviceRule, DeviceRuleEngine, Metric, Metrics, Op, RuleScope};
pub use lifecycle::{
    AlertBook, AlertEvent, AlertState, FlapPolicy, Hysteresis, MaintenanceWindow, OpenAlert, Recurrence, ResolveReason,
    TrackState, WindowStatus, suppressing_window_for_device, suppressing_window_for_site,
};
pub use site::{SiteRule, SiteRuleKind, ThresholdUnit};

/// Alert severity, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Info,
    /// Needs attention.
    Warning,
    /// Service-affecting.
    Critical,
}

impl Severity {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Self::Info),
            "warning" => Ok(Self::Warning),
            "critical" => Ok(Self::Critical),
            _ => Err(ValidationError::new(
                "severity",
                "must be one of: critical, warning, info",
            )),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Subject {
    /// A device.
    Device(DeviceId),
    /// A wireless link.
    Link(LinkKey),
    /// A site.
    Site(SiteId),
    /// A sector.
    Sector(SectorId),
}

/// One breach reported by a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What breaches.
    pub subject: Subject,
    /// How bad.
    pub severity: Severity,
    /// Operator-facing text.
    pub message: String,
    /// The measured value, when there is one.
    pub value: Option<f64>,
    /// Supporting key/value evidence (shown with the alert).
    pub evidence: Vec<(String, String)>,
}

/// A rule failed to evaluate (a plugin trapped, data was missing, ...). The book leaves alert
/// state untouched for that pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule} failed: {reason}")]
pub struct RuleError {
    /// The rule.
    pub rule: RuleId,
    /// Why.
    pub reason: String,
}

/// An invalid rule definition; the API answers 422 with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// A device as rules see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    /// The device.
    pub id: DeviceId,
    /// Its hostname.
    pub hostname: String,
    /// Its site.
    pub site: Option<SiteId>,
    /// Its sector.
    pub sector: Option<SectorId>,
    /// Groups it belongs to.
    pub groups: Vec<GroupId>,
    /// Reachability.
    pub status: DeviceStatus,
    /// Latest metrics.
    pub metrics: Metrics,
}

/// A link as rules see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkView {
    /// AP and CPE.
    pub key: LinkKey,
    /// The AP's site.
    pub site: Option<SiteId>,
    /// The AP's sector.
    pub sector: Option<SectorId>,
    /// Current state.
    pub state: LinkState,
    /// Last signal, dBm.
    pub signal_dbm: Option<i16>,
    /// Last CCQ, percent.
    pub tx_ccq: Option<u8>,
    /// Trend: previous-week mean minus last-week mean, dB (positive = weaker), when known.
    pub trend_delta_db: Option<f64>,
}

/// The time windows a snapshot's aggregates are taken over, ending at its evaluation time.
///
/// The defaults are the product's: sector aggregates over the last 10 minutes, compared for a
/// client drop with the 10 minutes that ended an hour ago, and an hour of signal history. A
/// deployment may widen or narrow them; a simulated world that runs faster than real time (the
/// demo, the field-truth scorer) shrinks them by its speed with [`SnapshotWindows::scaled`], so
/// a rule sees as much of that world as it would of a real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotWindows {
    /// The recent window: sector averages and client counts.
    pub recent: chrono::Duration,
    /// How far back the client-drop comparison looks, and how much signal history a snapshot
    /// carries.
    pub lookback: chrono::Duration,
}

impl Default for SnapshotWindows {
    fn default() -> Self {
        Self {
            recent: chrono::Duration::minutes(10),
            lookback: chrono::Duration::minutes(60),
        }
    }
}

impl SnapshotWindows {
    /// The default windows shrunk by `speed` (a world running that many times faster than real
    /// time), to whole milliseconds and at least one. A `speed` that is not a positive finite
    /// number leaves them as they are.
    pub fn scaled(speed: f64) -> Self {
        let d = Self::default();
        if !speed.is_finite() || speed <= 0.0 {
            return d;
        }
        let shrink = |w: chrono::Duration| {
            let ms = (w.num_milliseconds() as f64 / speed)
                .round()
                .clamp(1.0, i64::MAX as f64 / 2.0);
            chrono::Duration::milliseconds(ms as i64)
        };
        Self {
            recent: shrink(d.recent),
            lookback: shrink(d.lookback),
        }
    }

    /// The recent window as of `at`: (exclusive start, inclusive end).
    pub fn recent_at(&self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        (at - self.recent, at)
    }

    /// The window a client drop compares with: as long as the recent one, ending `lookback`
    /// before `at` (by default 70 to 60 minutes ago).
    pub fn before_at(&self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let end = at - self.lookback;
        (end - self.recent, end)
    }
}

/// Per-sector aggregates over recent registrations (windows: [`SnapshotWindows`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SectorView {
    /// The sector.
    pub id: SectorId,
    /// Its site.
    pub site: SiteId,
    /// Mean client signal over the recent window (by default the last 10 minutes), dBm.
    pub avg_signal_dbm: Option<f64>,
    /// Distinct clients seen in the recent window.
    pub clients_now: u32,
    /// Distinct clients seen in the window a lookback earlier (by default 70 to 60 minutes ago).
    pub clients_before: u32,
    /// Mean tx CCQ over the recent window, percent, when the wireless package reports CCQ.
    pub avg_ccq: Option<f64>,
    /// Total client throughput in the recent window, bits/s, when known.
    pub throughput_bps: Option<f64>,
}

/// One historical signal sample for a link (bounded window, oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// The link.
    pub link: LinkKey,
    /// When.
    pub at: DateTime<Utc>,
    /// Signal, dBm.
    pub dbm: i16,
}

/// Everything a rule may look at, for one tenant at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The tenant.
    pub tenant: TenantId,
    /// Evaluation time.
    pub at: DateTime<Utc>,
    /// Devices (possibly limited to the sites the rule is enabled for).
    pub devices: Vec<DeviceView>,
    /// Links.
    pub links: Vec<LinkView>,
    /// Sector aggregates.
    pub sectors: Vec<SectorView>,
    /// Bounded signal history.
    pub history: Vec<HistoryPoint>,
}

impl Snapshot {
    /// An empty snapshot.
    pub fn empty(tenant: TenantId, at: DateTime<Utc>) -> Self {
        Self {
            tenant,
            at,
            devices: Vec::new(),
            links: Vec::new(),
            sectors: Vec::new(),
            history: Vec::new(),
        }
    }
}

/// A rule: built-in or plugin, evaluated over a snapshot. Stateless: alert state lives in the
/// [`AlertBook`], so every rule gets the same hysteresis, flapping, maintenance and lifecycle.
pub trait Rule {
    /// The rule's id.
    fn id(&self) -> RuleId;
    /// Operator-facing name.
    fn name(&self) -> &str;
    /// How many hits fire and how many clean passes clear.
    fn hysteresis(&self) -> Hysteresis;
    /// The subjects this rule judges in `snapshot`: those it has a verdict for, hit or clean.
    /// An open alert on a subject outside this set is left alone (not cleared) in this pass.
    /// `None` means "every subject": anything without a finding is clean.
    fn scope(&self, _snapshot: &Snapshot) -> Option<Vec<Subject>> {
        None
    }
    /// The breaches in `snapshot`.
    fn evaluate(&self, snapshot: &Snapshot) -> Result<Vec<Finding>, RuleError>;
}
