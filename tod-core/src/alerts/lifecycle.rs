//! The alert lifecycle shared by every rule: hysteresis, flapping, maintenance windows.
//!
//! The [`AlertBook`] keeps one track per (rule, subject). Each observation is a hit (the rule
//! reported a finding for the subject) or clean (the rule judged the subject and found nothing).
//!
//! ```text
//!            hits ≥ fire_after                 clean passes ≥ clear_after
//!   (none) ───────────────────▶ Firing ───────────────────────────────▶ Resolved
//!     │  in a maintenance window: Suppressed (reported once per window)   ▲
//!     │                         │ ≥ 5 fire/resolve transitions in 10 min    │ clean for a whole
//!     └──(already flapping)──▶ Flapping ─────────────────────────────────┘ flap window
//!                               │ steady hit for a whole flap window ─▶ Firing
//! ```
//! One alert is one record from fire to resolve: flapping is a state of that record, not a stream
//! of new rows (the original inserted a row per breaching poll once an alert flapped).

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Finding, Rule, RuleError, Severity, Snapshot, Subject, ValidationError};
use crate::model::{DeviceId, RuleId, SiteId, WindowId};

/// Fire after `fire_after` consecutive hits; clear after `clear_after` consecutive clean passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hysteresis {
    /// Consecutive hits needed to fire (≥ 1).
    pub fire_after: u32,
    /// Consecutive clean passes needed to resolve (≥ 1).
    pub clear_after: u32,
}

impl Hysteresis {
    /// Fire on the first hit, clear on the first clean pass.
    pub const IMMEDIATE: Self = Self {
        fire_after: 1,
        clear_after: 1,
    };

    /// Checks both counts are in 1..=1000.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (field, v) in [("fire_after", self.fire_after), ("clear_after", self.clear_after)] {
            if !(1..=1000).contains(&v) {
                return Err(ValidationError::new(field, "must be between 1 and 1000"));
            }
        }
        Ok(())
    }
}

/// When an alert counts as flapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlapPolicy {
    /// Fire/resolve transitions within the window that make an alert flap (5).
    pub changes: u32,
    /// The window, seconds (600).
    pub window_secs: i64,
}

impl Default for FlapPolicy {
    fn default() -> Self {
        Self {
            changes: 5,
            window_secs: 600,
        }
    }
}

/// The state of an alert record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Breaching, steady.
    Firing,
    /// Breaching on and off; notifications are held until it settles.
    Flapping,
    /// Over.
    Resolved,
}

/// Why an alert resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveReason {
    /// The condition cleared.
    Cleared,
    /// The rule was disabled.
    RuleDisabled,
    /// The rule was deleted.
    RuleDeleted,
    /// The subject no longer exists (device deleted, link gone).
    SubjectGone,
    /// An operator resolved it.
    Manual,
}

/// An open alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAlert {
    /// The rule.
    pub rule: RuleId,
    /// The subject.
    pub subject: Subject,
    /// Current severity (latest finding).
    pub severity: Severity,
    /// Latest message.
    pub message: String,
    /// Latest value.
    pub value: Option<f64>,
    /// When it fired.
    pub fired_at: DateTime<Utc>,
    /// `Firing` or `Flapping`.
    pub state: AlertState,
}

/// What the book did; the server turns these into rows, SSE events and notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AlertEvent {
    /// A new alert record (state `Firing`, or `Flapping` when it was already flapping).
    Fired {
        /// The alert.
        alert: OpenAlert,
    },
    /// An open alert moved between `Firing` and `Flapping`.
    StateChanged {
        /// The rule.
        rule: RuleId,
        /// The subject.
        subject: Subject,
        /// Previous state.
        from: AlertState,
        /// New state.
        to: AlertState,
        /// When.
        at: DateTime<Utc>,
    },
    /// An alert record ended.
    Resolved {
        /// The rule.
        rule: RuleId,
        /// The subject.
        subject: Subject,
        /// When it had fired (identifies the record with rule and subject).
        fired_at: DateTime<Utc>,
        /// When it resolved.
        at: DateTime<Utc>,
        /// Why.
        reason: ResolveReason,
    },
    /// The rule would have fired but a maintenance window suppressed it (recorded, not lost).
    Suppressed {
        /// The rule.
        rule: RuleId,
        /// The subject.
        subject: Subject,
        /// The window.
        window: WindowId,
        /// Severity it would have had.
        severity: Severity,
        /// Message it would have had.
        message: String,
        /// When.
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Track {
    hits: u32,
    clean: u32,
    last_hit: Option<DateTime<Utc>>,
    last_clean: Option<DateTime<Utc>>,
    changes: VecDeque<DateTime<Utc>>,
    open: Option<OpenAlert>,
    suppressed_in: Option<WindowId>,
}

impl Track {
    fn new() -> Self {
        Self {
            hits: 0,
            clean: 0,
            last_hit: None,
            last_clean: None,
            changes: VecDeque::new(),
            open: None,
            suppressed_in: None,
        }
    }

    fn note_change(&mut self, now: DateTime<Utc>, flap: &FlapPolicy) {
        self.changes.push_back(now);
        self.prune(now, flap);
    }

    fn prune(&mut self, now: DateTime<Utc>, flap: &FlapPolicy) {
        let horizon = now - Duration::seconds(flap.window_secs);
        while self.changes.front().is_some_and(|t| *t <= horizon) {
            self.changes.pop_front();
        }
        // Keep the deque bounded whatever the policy says.
        while self.changes.len() > flap.changes.max(1) as usize * 4 {
            self.changes.pop_front();
        }
    }

    fn flapping(&self, flap: &FlapPolicy) -> bool {
        self.changes.len() as u32 >= flap.changes.max(1)
    }

    /// Whether the track carries no information any more and can be dropped.
    fn idle(&self) -> bool {
        self.open.is_none() && self.hits == 0 && self.changes.is_empty()
    }
}

/// One (rule, subject) track in a form that can be stored, so a server whose replicas take turns
/// evaluating a subject can carry hysteresis and flapping state from one report to the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackState {
    /// The rule.
    pub rule: RuleId,
    /// Consecutive hits.
    pub hits: u32,
    /// Consecutive clean observations.
    pub clean: u32,
    /// Last hit.
    pub last_hit: Option<DateTime<Utc>>,
    /// Last clean observation.
    pub last_clean: Option<DateTime<Utc>>,
    /// Recent fire/resolve transitions (for flapping).
    pub changes: Vec<DateTime<Utc>>,
    /// The open alert, if any.
    pub open: Option<OpenAlert>,
    /// The maintenance window a suppression was reported for.
    pub suppressed_in: Option<WindowId>,
}

impl Track {
    fn to_state(&self, rule: RuleId) -> TrackState {
        TrackState {
            rule,
            hits: self.hits,
            clean: self.clean,
            last_hit: self.last_hit,
            last_clean: self.last_clean,
            changes: self.changes.iter().copied().collect(),
            open: self.open.clone(),
            suppressed_in: self.suppressed_in,
        }
    }

    fn from_state(s: TrackState) -> (RuleId, Self) {
        (
            s.rule,
            Self {
                hits: s.hits,
                clean: s.clean,
                last_hit: s.last_hit,
                last_clean: s.last_clean,
                changes: s.changes.into(),
                open: s.open,
                suppressed_in: s.suppressed_in,
            },
        )
    }
}

/// One observation of a (rule, subject).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Observation<'a> {
    Hit(&'a Finding),
    Clean,
}

/// Alert state for one tenant: every open alert and the counters behind hysteresis and flapping.
#[derive(Debug, Clone, Default)]
pub struct AlertBook {
    flap: FlapPolicy,
    tracks: HashMap<Subject, Vec<(RuleId, Track)>>,
}

impl AlertBook {
    /// An empty book.
    pub fn new(flap: FlapPolicy) -> Self {
        Self {
            flap,
            tracks: HashMap::new(),
        }
    }

    /// Restores an open alert from storage (server start-up); counters start from "fired".
    pub fn restore(&mut self, alert: OpenAlert, hysteresis: Hysteresis) {
        let mut t = Track::new();
        t.hits = hysteresis.fire_after;
        t.last_hit = Some(alert.fired_at);
        let (rule, subject) = (alert.rule, alert.subject);
        t.open = Some(alert);
        let v = self.tracks.entry(subject).or_default();
        v.retain(|(r, _)| *r != rule);
        v.push((rule, t));
    }

    pub(crate) fn flap_policy(&self) -> FlapPolicy {
        self.flap
    }

    /// Takes a subject's tracks out of the map (one hash lookup); give them back with
    /// [`put_tracks`](Self::put_tracks).
    pub(crate) fn tracks_mut(&mut self, subject: &Subject) -> Option<Vec<(RuleId, Track)>> {
        self.tracks.remove(subject)
    }

    pub(crate) fn put_tracks(&mut self, subject: Subject, tracks: Option<Vec<(RuleId, Track)>>) {
        if let Some(v) = tracks
            && !v.is_empty()
        {
            self.tracks.insert(subject, v);
        }
    }

    /// One subject's tracks, to store (empty when nothing is tracked).
    pub fn export_subject(&self, subject: &Subject) -> Vec<TrackState> {
        self.tracks
            .get(subject)
            .map(|v| {
                v.iter()
                    .filter(|(_, t)| !t.idle())
                    .map(|(r, t)| t.to_state(*r))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Replaces one subject's tracks with stored ones.
    pub fn import_subject(&mut self, subject: Subject, states: Vec<TrackState>) {
        let v: Vec<(RuleId, Track)> = states.into_iter().map(Track::from_state).collect();
        if v.is_empty() {
            self.tracks.remove(&subject);
        } else {
            self.tracks.insert(subject, v);
        }
    }

    /// Every open alert.
    pub fn open_alerts(&self) -> impl Iterator<Item = &OpenAlert> {
        self.tracks
            .values()
            .flat_map(|v| v.iter().filter_map(|(_, t)| t.open.as_ref()))
    }

    /// Open alerts of one subject.
    pub fn open_alerts_of(&self, subject: &Subject) -> impl Iterator<Item = &OpenAlert> {
        self.tracks
            .get(subject)
            .into_iter()
            .flat_map(|v| v.iter().filter_map(|(_, t)| t.open.as_ref()))
    }

    /// The open alert of one (rule, subject), if any.
    pub fn open_alert(&self, rule: RuleId, subject: &Subject) -> Option<&OpenAlert> {
        self.tracks
            .get(subject)?
            .iter()
            .find(|(r, _)| *r == rule)?
            .1
            .open
            .as_ref()
    }

    /// Number of open alerts (firing or flapping).
    pub fn active_count(&self) -> usize {
        self.open_alerts().count()
    }

    /// Records one observation and returns the resulting event, if any.
    ///
    /// `suppressed_by` is the maintenance window covering the subject now, if any.
    pub fn observe(
        &mut self,
        rule: RuleId,
        subject: Subject,
        finding: Option<&Finding>,
        hysteresis: Hysteresis,
        now: DateTime<Utc>,
        suppressed_by: Option<WindowId>,
    ) -> Option<AlertEvent> {
        let obs = finding.map_or(Observation::Clean, Observation::Hit);
        let flap = self.flap;
        match obs {
            Observation::Clean => {
                let tracks = self.tracks.get_mut(&subject)?;
                let ev = observe_in(tracks, rule, subject, obs, hysteresis, now, suppressed_by, &flap);
                if tracks.is_empty() {
                    self.tracks.remove(&subject);
                }
                ev
            }
            Observation::Hit(_) => {
                let tracks = self.tracks.entry(subject).or_default();
                observe_in(tracks, rule, subject, obs, hysteresis, now, suppressed_by, &flap)
            }
        }
    }

    /// Evaluates `rule` over `snapshot` and applies its findings: subjects with a finding are
    /// hits; subjects the rule judged (its [`Rule::scope`], or all tracked subjects of the rule)
    /// without a finding are clean. A rule error changes nothing.
    pub fn apply_rule(
        &mut self,
        rule: &dyn Rule,
        snapshot: &Snapshot,
        suppressed_by: &dyn Fn(&Subject) -> Option<WindowId>,
    ) -> Result<Vec<AlertEvent>, RuleError> {
        let mut findings = rule.evaluate(snapshot)?;
        let scope = rule.scope(snapshot);
        Ok(self.apply_findings(
            rule.id(),
            rule.hysteresis(),
            &mut findings,
            scope.as_deref(),
            snapshot.at,
            suppressed_by,
        ))
    }

    /// [`apply_rule`](Self::apply_rule) with findings computed elsewhere.
    pub fn apply_findings(
        &mut self,
        rule: RuleId,
        hysteresis: Hysteresis,
        findings: &mut [Finding],
        scope: Option<&[Subject]>,
        now: DateTime<Utc>,
        suppressed_by: &dyn Fn(&Subject) -> Option<WindowId>,
    ) -> Vec<AlertEvent> {
        // One verdict per subject: the most severe finding wins.
        findings.sort_by(|a, b| a.subject.cmp(&b.subject).then(b.severity.cmp(&a.severity)));
        let mut events = Vec::new();
        let mut hit_subjects: Vec<Subject> = Vec::with_capacity(findings.len());
        for f in findings.iter() {
            if hit_subjects.last() == Some(&f.subject) {
                continue;
            }
            hit_subjects.push(f.subject);
            events.extend(self.observe(rule, f.subject, Some(f), hysteresis, now, suppressed_by(&f.subject)));
        }
        let tracked: Vec<Subject> = self
            .tracks
            .iter()
            .filter(|(_, v)| v.iter().any(|(r, _)| *r == rule))
            .map(|(s, _)| *s)
            .filter(|s| hit_subjects.binary_search(s).is_err())
            .filter(|s| scope.is_none_or(|sc| sc.contains(s)))
            .collect();
        for s in tracked {
            events.extend(self.observe(rule, s, None, hysteresis, now, suppressed_by(&s)));
        }
        events
    }

    /// Resolves every open alert of a rule that was disabled or deleted, and forgets its counters
    /// (the original left such alerts active forever).
    pub fn retire_rule(&mut self, rule: RuleId, now: DateTime<Utc>, reason: ResolveReason) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        self.tracks.retain(|_, v| {
            v.retain(|(r, t)| {
                if *r != rule {
                    return true;
                }
                if let Some(a) = &t.open {
                    events.push(AlertEvent::Resolved {
                        rule,
                        subject: a.subject,
                        fired_at: a.fired_at,
                        at: now,
                        reason,
                    });
                }
                false
            });
            !v.is_empty()
        });
        events
    }

    /// Resolves every open alert about a subject that no longer exists.
    pub fn retire_subject(&mut self, subject: &Subject, now: DateTime<Utc>) -> Vec<AlertEvent> {
        let Some(v) = self.tracks.remove(subject) else {
            return Vec::new();
        };
        v.into_iter()
            .filter_map(|(rule, t)| {
                t.open.map(|a| AlertEvent::Resolved {
                    rule,
                    subject: a.subject,
                    fired_at: a.fired_at,
                    at: now,
                    reason: ResolveReason::SubjectGone,
                })
            })
            .collect()
    }

    /// An operator resolved the alert by hand. The rule must see `fire_after` new hits before it
    /// fires again. Returns `None` when nothing was open.
    pub fn resolve_manually(&mut self, rule: RuleId, subject: &Subject, now: DateTime<Utc>) -> Option<AlertEvent> {
        let v = self.tracks.get_mut(subject)?;
        let (_, t) = v.iter_mut().find(|(r, _)| *r == rule)?;
        let a = t.open.take()?;
        t.hits = 0;
        Some(AlertEvent::Resolved {
            rule,
            subject: a.subject,
            fired_at: a.fired_at,
            at: now,
            reason: ResolveReason::Manual,
        })
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn observe_in(
    tracks: &mut Vec<(RuleId, Track)>,
    rule: RuleId,
    subject: Subject,
    obs: Observation<'_>,
    hysteresis: Hysteresis,
    now: DateTime<Utc>,
    suppressed_by: Option<WindowId>,
    flap: &FlapPolicy,
) -> Option<AlertEvent> {
    let idx = match tracks.iter().position(|(r, _)| *r == rule) {
        Some(i) => i,
        None => match obs {
            Observation::Clean => return None,
            Observation::Hit(_) => {
                tracks.push((rule, Track::new()));
                tracks.len() - 1
            }
        },
    };
    let t = &mut tracks[idx].1;
    let window = Duration::seconds(flap.window_secs);
    t.prune(now, flap);
    let event = match obs {
        Observation::Hit(f) => {
            t.last_hit = Some(now);
            t.hits = t.hits.saturating_add(1);
            t.clean = 0;
            match &mut t.open {
                Some(a) => {
                    a.severity = f.severity;
                    a.message.clone_from(&f.message);
                    a.value = f.value;
                    // Breaching without a clean pass for a whole flap window: it has settled.
                    if a.state == AlertState::Flapping && t.last_clean.is_none_or(|c| c <= now - window) {
                        a.state = AlertState::Firing;
                        Some(AlertEvent::StateChanged {
                            rule,
                            subject,
                            from: AlertState::Flapping,
                            to: AlertState::Firing,
                            at: now,
                        })
                    } else {
                        None
                    }
                }
                None if t.hits >= hysteresis.fire_after.max(1) => {
                    if let Some(w) = suppressed_by {
                        if t.suppressed_in == Some(w) {
                            None
                        } else {
                            t.suppressed_in = Some(w);
                            Some(AlertEvent::Suppressed {
                                rule,
                                subject,
                                window: w,
                                severity: f.severity,
                                message: f.message.clone(),
                                at: now,
                            })
                        }
                    } else {
                        t.note_change(now, flap);
                        let state = if t.flapping(flap) {
                            AlertState::Flapping
                        } else {
                            AlertState::Firing
                        };
                        let alert = OpenAlert {
                            rule,
                            subject,
                            severity: f.severity,
                            message: f.message.clone(),
                            value: f.value,
                            fired_at: now,
                            state,
                        };
                        t.open = Some(alert.clone());
                        t.suppressed_in = None;
                        Some(AlertEvent::Fired { alert })
                    }
                }
                None => None,
            }
        }
        Observation::Clean => {
            t.last_clean = Some(now);
            t.hits = 0;
            t.clean = t.clean.saturating_add(1);
            t.suppressed_in = None;
            let cleared = t.clean >= hysteresis.clear_after.max(1);
            match t.open.as_ref().map(|a| a.state) {
                Some(AlertState::Firing) if cleared => {
                    t.note_change(now, flap);
                    if t.flapping(flap) {
                        if let Some(a) = t.open.as_mut() {
                            a.state = AlertState::Flapping;
                        }
                        Some(AlertEvent::StateChanged {
                            rule,
                            subject,
                            from: AlertState::Firing,
                            to: AlertState::Flapping,
                            at: now,
                        })
                    } else {
                        let a = t.open.take().expect("open alert");
                        Some(AlertEvent::Resolved {
                            rule,
                            subject,
                            fired_at: a.fired_at,
                            at: now,
                            reason: ResolveReason::Cleared,
                        })
                    }
                }
                // Quiet for a whole flap window since the last breach: the flapping is over.
                Some(AlertState::Flapping) if cleared && t.last_hit.is_none_or(|h| h <= now - window) => {
                    let a = t.open.take().expect("open alert");
                    t.changes.clear();
                    Some(AlertEvent::Resolved {
                        rule,
                        subject,
                        fired_at: a.fired_at,
                        at: now,
                        reason: ResolveReason::Cleared,
                    })
                }
                _ => None,
            }
        }
    };
    if tracks[idx].1.idle() {
        tracks.swap_remove(idx);
    }
    event
}

/// How a maintenance window repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recurrence {
    /// Every day at the same time.
    Daily,
    /// Every week at the same time.
    Weekly,
}

impl Recurrence {
    fn period(self) -> Duration {
        match self {
            Self::Daily => Duration::days(1),
            Self::Weekly => Duration::weeks(1),
        }
    }
}

/// Where a maintenance window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowStatus {
    /// In effect now.
    Active,
    /// Its (next) occurrence is still to come.
    Upcoming,
    /// Over for good.
    Past,
}

impl WindowStatus {
    /// The API's word for it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Upcoming => "upcoming",
            Self::Past => "past",
        }
    }
}

impl std::str::FromStr for WindowStatus {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "upcoming" => Ok(Self::Upcoming),
            "past" => Ok(Self::Past),
            _ => Err(ValidationError::new("status", "must be active, upcoming or past")),
        }
    }
}

/// A maintenance window: while it is active, alerts for the devices it covers do not fire; the
/// suppression is reported as [`AlertEvent::Suppressed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    /// The window.
    pub id: WindowId,
    /// Devices covered; empty with empty `sites` means the whole tenant.
    pub devices: Vec<DeviceId>,
    /// Sites covered (every device at the site, and the site's own alerts).
    pub sites: Vec<SiteId>,
    /// First start.
    pub start_at: DateTime<Utc>,
    /// First end (exclusive).
    pub end_at: DateTime<Utc>,
    /// Whether alerts are suppressed (a window can be informational only).
    pub suppress_alerts: bool,
    /// Repetition, if any.
    pub recurrence: Option<Recurrence>,
}

impl MaintenanceWindow {
    /// `end_at` must follow `start_at`, and a recurring window must be shorter than its period.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.end_at <= self.start_at {
            return Err(ValidationError::new("end_at", "must be after start_at"));
        }
        if let Some(r) = self.recurrence
            && self.end_at - self.start_at >= r.period()
        {
            return Err(ValidationError::new(
                "recurrence",
                "window must be shorter than its period",
            ));
        }
        Ok(())
    }

    /// Whether the window is in effect at `at`.
    pub fn active_at(&self, at: DateTime<Utc>) -> bool {
        if at < self.start_at {
            return false;
        }
        match self.recurrence {
            None => at < self.end_at,
            Some(r) => {
                let period = r.period().num_seconds();
                let offset = (at - self.start_at).num_seconds().rem_euclid(period);
                offset < (self.end_at - self.start_at).num_seconds()
            }
        }
    }

    /// Where the window stands at `at`: in effect, still to come (a repeating window that is
    /// not in effect always has an occurrence to come), or over.
    pub fn status(&self, at: DateTime<Utc>) -> WindowStatus {
        if self.active_at(at) {
            WindowStatus::Active
        } else if at < self.start_at || self.recurrence.is_some() {
            WindowStatus::Upcoming
        } else {
            WindowStatus::Past
        }
    }

    /// The occurrence in effect at `at`, or else the next one (start, end); `None` once a
    /// one-off window is over.
    pub fn occurrence(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let length = self.end_at - self.start_at;
        match self.recurrence {
            _ if at < self.start_at => Some((self.start_at, self.end_at)),
            None => (at < self.end_at).then_some((self.start_at, self.end_at)),
            Some(r) => {
                let period = r.period().num_seconds();
                let n = (at - self.start_at).num_seconds().div_euclid(period);
                let start = self.start_at + Duration::seconds(n * period);
                let start = if at < start + length { start } else { start + r.period() };
                Some((start, start + length))
            }
        }
    }

    fn tenant_wide(&self) -> bool {
        self.devices.is_empty() && self.sites.is_empty()
    }

    /// Whether the window covers a device (at an optional site).
    pub fn covers_device(&self, device: DeviceId, site: Option<SiteId>) -> bool {
        self.tenant_wide() || self.devices.contains(&device) || site.is_some_and(|s| self.sites.contains(&s))
    }

    /// Whether the window covers a site as a whole.
    pub fn covers_site(&self, site: SiteId) -> bool {
        self.tenant_wide() || self.sites.contains(&site)
    }
}

/// The first suppressing window that covers a device at `at`.
pub fn suppressing_window_for_device(
    windows: &[MaintenanceWindow],
    device: DeviceId,
    site: Option<SiteId>,
    at: DateTime<Utc>,
) -> Option<WindowId> {
    windows
        .iter()
        .find(|w| w.suppress_alerts && w.covers_device(device, site) && w.active_at(at))
        .map(|w| w.id)
}

/// The first suppressing window that covers a site at `at`.
pub fn suppressing_window_for_site(windows: &[MaintenanceWindow], site: SiteId, at: DateTime<Utc>) -> Option<WindowId> {
    windows
        .iter()
        .find(|w| w.suppress_alerts && w.covers_site(site) && w.active_at(at))
        .map(|w| w.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const R: RuleId = RuleId::from_u128(1);
    const D: Subject = Subject::Device(DeviceId::from_u128(7));

    fn t(min: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + min * 60, 0).unwrap()
    }

    fn finding() -> Finding {
        Finding {
            subject: D,
            severity: Severity::Warning,
            message: "cpu high".into(),
            value: Some(95.0),
            evidence: vec![],
        }
    }

    #[test]
    fn window_status_and_occurrences_follow_recurrence() {
        let once = MaintenanceWindow {
            id: WindowId::from_u128(1),
            devices: vec![],
            sites: vec![],
            start_at: t(60),
            end_at: t(120),
            suppress_alerts: true,
            recurrence: None,
        };
        assert_eq!(once.status(t(0)), WindowStatus::Upcoming);
        assert_eq!(once.status(t(60)), WindowStatus::Active);
        assert_eq!(once.status(t(120)), WindowStatus::Past, "the end is exclusive");
        assert_eq!(once.occurrence(t(0)), Some((t(60), t(120))));
        assert_eq!(once.occurrence(t(120)), None);
        let daily = MaintenanceWindow {
            recurrence: Some(Recurrence::Daily),
            ..once.clone()
        };
        let day = 24 * 60;
        assert_eq!(daily.status(t(day + 90)), WindowStatus::Active);
        assert_eq!(
            daily.status(t(day + 130)),
            WindowStatus::Upcoming,
            "a repeating window comes back"
        );
        assert_eq!(daily.occurrence(t(day + 90)), Some((t(day + 60), t(day + 120))));
        assert_eq!(
            daily.occurrence(t(day + 130)),
            Some((t(2 * day + 60), t(2 * day + 120)))
        );
        assert_eq!("past".parse::<WindowStatus>(), Ok(WindowStatus::Past));
        assert!("soon".parse::<WindowStatus>().is_err());
    }

    fn run(book: &mut AlertBook, h: Hysteresis, pattern: &str) -> Vec<(i64, AlertEvent)> {
        let f = finding();
        let mut out = Vec::new();
        for (i, c) in pattern.chars().enumerate() {
            let obs = (c == 'x').then_some(&f);
            if let Some(e) = book.observe(R, D, obs, h, t(i as i64), None) {
                out.push((i as i64, e));
            }
        }
        out
    }

    fn kinds(events: &[(i64, AlertEvent)]) -> Vec<String> {
        events
            .iter()
            .map(|(i, e)| match e {
                AlertEvent::Fired { alert } => format!("{i}:fired:{:?}", alert.state),
                AlertEvent::StateChanged { to, .. } => format!("{i}:now:{to:?}"),
                AlertEvent::Resolved { reason, .. } => format!("{i}:resolved:{reason:?}"),
                AlertEvent::Suppressed { .. } => format!("{i}:suppressed"),
            })
            .collect()
    }

    #[test]
    fn a_book_stored_and_reloaded_after_every_observation_behaves_like_one_kept_in_memory() {
        let h = Hysteresis {
            fire_after: 2,
            clear_after: 1,
        };
        // Hysteresis, a flap (5 transitions in 10 minutes), settling, and a quiet gap.
        let pattern = "xx.xx.xx.xx.xxxxxxxxxxxxx..............x.xx";
        let mut kept = AlertBook::new(FlapPolicy::default());
        let expected = kinds(&run(&mut kept, h, pattern));
        assert!(expected.iter().any(|k| k.contains("Flapping")), "{expected:?}");

        let f = finding();
        let mut stored = String::from("[]");
        let mut got = Vec::new();
        for (i, c) in pattern.chars().enumerate() {
            let mut book = AlertBook::new(FlapPolicy::default());
            book.import_subject(D, serde_json::from_str(&stored).unwrap());
            if let Some(e) = book.observe(R, D, (c == 'x').then_some(&f), h, t(i as i64), None) {
                got.push((i as i64, e));
            }
            stored = serde_json::to_string(&book.export_subject(&D)).unwrap();
        }
        assert_eq!(kinds(&got), expected);
        assert!(stored.contains("\"open\":{"), "the last alert is open: {stored}");
    }

    #[test]
    fn fires_after_n_consecutive_hits_and_clears_after_m_clean_passes() {
        let mut book = AlertBook::new(FlapPolicy::default());
        let h = Hysteresis {
            fire_after: 3,
            clear_after: 2,
        };
        let ev = run(&mut book, h, "xx.xxx.x..");
        assert_eq!(kinds(&ev), vec!["5:fired:Firing", "9:resolved:Cleared"]);
        assert_eq!(book.active_count(), 0);
        assert!(
            !book.tracks.is_empty(),
            "recent condition changes are kept for flap detection"
        );
        assert_eq!(book.observe(R, D, None, h, t(30), None), None);
        assert!(
            book.tracks.is_empty(),
            "idle tracks are dropped once the flap window has passed"
        );
    }

    #[test]
    fn one_alert_record_becomes_flapping_instead_of_new_rows() {
        let mut book = AlertBook::new(FlapPolicy::default());
        let ev = run(&mut book, Hysteresis::IMMEDIATE, "x.x.x.x.x.x");
        // fire, resolve, fire, resolve, then the 5th change makes the open alert flap; no new rows.
        assert_eq!(
            kinds(&ev),
            vec![
                "0:fired:Firing",
                "1:resolved:Cleared",
                "2:fired:Firing",
                "3:resolved:Cleared",
                "4:fired:Flapping"
            ]
        );
        assert_eq!(book.active_count(), 1);
        assert_eq!(book.open_alert(R, &D).unwrap().state, AlertState::Flapping);
    }

    #[test]
    fn a_flapping_alert_resolves_after_a_quiet_window_or_settles_into_firing() {
        let mut book = AlertBook::new(FlapPolicy::default());
        let mut pattern = String::from("x.x.x.x.x");
        pattern.push_str(&".".repeat(12));
        let ev = run(&mut book, Hysteresis::IMMEDIATE, &pattern);
        assert_eq!(
            kinds(&ev).last().unwrap(),
            "18:resolved:Cleared",
            "10 minutes after the last hit at 8"
        );

        let mut book = AlertBook::new(FlapPolicy::default());
        let mut pattern = String::from("x.x.x.x.x");
        pattern.push_str(&"x".repeat(12));
        let ev = run(&mut book, Hysteresis::IMMEDIATE, &pattern);
        assert_eq!(
            kinds(&ev).last().unwrap(),
            "17:now:Firing",
            "10 minutes after the last clean pass at 7"
        );
        assert_eq!(book.open_alert(R, &D).unwrap().state, AlertState::Firing);
    }

    #[test]
    fn hysteresis_absorbs_noise_without_calling_it_flapping() {
        let mut book = AlertBook::new(FlapPolicy::default());
        // clear_after 3 holds the alert open through the short gaps: one record, never flapping.
        let h = Hysteresis {
            fire_after: 1,
            clear_after: 3,
        };
        let ev = run(&mut book, h, "x.x.x.x...");
        assert_eq!(kinds(&ev), vec!["0:fired:Firing", "9:resolved:Cleared"]);
    }

    #[test]
    fn maintenance_suppresses_and_records_once_then_fires_after_the_window() {
        let mut book = AlertBook::new(FlapPolicy::default());
        let f = finding();
        let w = WindowId::from_u128(5);
        let h = Hysteresis::IMMEDIATE;
        let e1 = book.observe(R, D, Some(&f), h, t(0), Some(w));
        assert!(matches!(e1, Some(AlertEvent::Suppressed { window, .. }) if window == w));
        assert_eq!(
            book.observe(R, D, Some(&f), h, t(1), Some(w)),
            None,
            "recorded once per window"
        );
        let e3 = book.observe(R, D, Some(&f), h, t(2), None);
        assert!(matches!(e3, Some(AlertEvent::Fired { .. })));
    }

    #[test]
    fn retiring_a_rule_resolves_its_alerts() {
        let mut book = AlertBook::new(FlapPolicy::default());
        let f = finding();
        book.observe(R, D, Some(&f), Hysteresis::IMMEDIATE, t(0), None);
        let other = RuleId::from_u128(2);
        book.observe(other, D, Some(&f), Hysteresis::IMMEDIATE, t(0), None);
        let ev = book.retire_rule(R, t(1), ResolveReason::RuleDisabled);
        assert!(matches!(
            ev.as_slice(),
            [AlertEvent::Resolved {
                reason: ResolveReason::RuleDisabled,
                ..
            }]
        ));
        assert_eq!(book.active_count(), 1);
        let ev = book.retire_subject(&D, t(2));
        assert!(matches!(
            ev.as_slice(),
            [AlertEvent::Resolved {
                reason: ResolveReason::SubjectGone,
                ..
            }]
        ));
        assert_eq!(book.active_count(), 0);
    }

    #[test]
    fn manual_resolve_requires_fresh_hits_to_fire_again() {
        let mut book = AlertBook::new(FlapPolicy::default());
        let f = finding();
        let h = Hysteresis {
            fire_after: 2,
            clear_after: 1,
        };
        book.observe(R, D, Some(&f), h, t(0), None);
        assert!(book.observe(R, D, Some(&f), h, t(1), None).is_some());
        assert!(matches!(
            book.resolve_manually(R, &D, t(2)),
            Some(AlertEvent::Resolved {
                reason: ResolveReason::Manual,
                ..
            })
        ));
        assert!(book.resolve_manually(R, &D, t(2)).is_none());
        assert!(book.observe(R, D, Some(&f), h, t(3), None).is_none());
        assert!(matches!(
            book.observe(R, D, Some(&f), h, t(4), None),
            Some(AlertEvent::Fired { .. })
        ));
    }

    #[test]
    fn windows_recur_and_cover_devices_and_sites() {
        let site = SiteId::from_u128(3);
        let dev = DeviceId::from_u128(7);
        let w = MaintenanceWindow {
            id: WindowId::from_u128(1),
            devices: vec![],
            sites: vec![site],
            start_at: t(0),
            end_at: t(60),
            suppress_alerts: true,
            recurrence: Some(Recurrence::Daily),
        };
        assert_eq!(w.validate(), Ok(()));
        assert!(w.active_at(t(30)));
        assert!(!w.active_at(t(60)));
        assert!(w.active_at(t(24 * 60 + 59)));
        assert!(!w.active_at(t(-1)));
        assert!(w.covers_device(dev, Some(site)));
        assert!(!w.covers_device(dev, None));
        let ws = [w.clone()];
        assert_eq!(suppressing_window_for_device(&ws, dev, Some(site), t(1)), Some(w.id));
        assert_eq!(suppressing_window_for_site(&ws, site, t(61)), None);
        let mut bad = w.clone();
        bad.end_at = t(0);
        assert_eq!(bad.validate().unwrap_err().field, "end_at");
        bad.end_at = t(24 * 60);
        assert_eq!(bad.validate().unwrap_err().field, "recurrence");
    }
}
