//! Wireless link discovery: which CPE hangs off which access point, and how that link is doing.
//!
//! An AP's registration table lists client MACs. A client MAC that equals an interface MAC of
//! another device of the same tenant resolves that device as the CPE, and the pair (AP, CPE) is a
//! link. One [`LinkTracker`] holds one tenant's links, so MACs never resolve across tenants.
//!
//! States and transitions:
//! ```text
//! (new) ──seen──▶ discovered ──seen again──▶ active ⇄ degraded   (below −80 dBm; back at ≥ −77)
//!   any live state ──3 missed polls──▶ down ──24 h──▶ stale
//!   down | stale ──seen──▶ active | degraded
//!   any live state ──its radio seen on another AP──▶ down
//! ```
//! A poll is missed when the AP reports without the client (an empty table counts), when the AP is
//! polled and does not answer ([`LinkTracker::apply_offline`]), and — for an AP that stops
//! reporting at all — for every poll interval that passes without a report ([`LinkTracker::tick`]).
//! All times are the AP's `collected_at`, and a report not newer than the last one applied for its
//! AP is ignored, so late or replayed reports never move a link backwards. A device never links to
//! itself. Unresolved MACs come back as unknown clients.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;
use crate::model::DeviceId;
use crate::telemetry::Registration;

/// A link's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Seen once; not yet confirmed by a second report.
    Discovered,
    /// Up with a usable signal.
    Active,
    /// Up with a weak signal.
    Degraded,
    /// Missed too many polls.
    Down,
    /// Down for a long time.
    Stale,
}

impl LinkState {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Discovered => "discovered",
            Self::Active => "active",
            Self::Degraded => "degraded",
            Self::Down => "down",
            Self::Stale => "stale",
        }
    }

    /// Parses a wire name; the API rejects anything else with 422.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Discovered, Self::Active, Self::Degraded, Self::Down, Self::Stale]
            .into_iter()
            .find(|st| st.as_str() == s)
    }

    /// Whether the client is currently associated (discovered, active or degraded).
    pub const fn is_up(self) -> bool {
        matches!(self, Self::Discovered | Self::Active | Self::Degraded)
    }
}

/// Thresholds of the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkConfig {
    /// A signal below this is degraded (−80 dBm).
    pub degraded_below_dbm: i16,
    /// A degraded link recovers at `degraded_below_dbm + recovery_margin_db` or better (3 dB).
    pub recovery_margin_db: i16,
    /// Consecutive missed polls that take a link down (3).
    pub missed_polls_down: u32,
    /// The agent's poll interval, used to count polls an AP failed to report (60 s).
    pub poll_interval_secs: i64,
    /// How long a link stays down before it is stale (24 h).
    pub stale_after_secs: i64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            degraded_below_dbm: -80,
            recovery_margin_db: 3,
            missed_polls_down: 3,
            poll_interval_secs: 60,
            stale_after_secs: 24 * 3600,
        }
    }
}

/// Identifies a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LinkKey {
    /// The access point.
    pub ap: DeviceId,
    /// The client radio.
    pub cpe: DeviceId,
}

/// A link and what was last seen of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// AP and CPE.
    pub key: LinkKey,
    /// The AP interface the CPE is registered on.
    pub interface: String,
    /// The MAC the AP saw.
    pub client_mac: MacAddr,
    /// Last signal, dBm.
    pub signal_dbm: Option<i16>,
    /// Last CCQ, percent (None where the package has no CCQ).
    pub tx_ccq: Option<u8>,
    /// Last tx rate as printed.
    pub tx_rate: Option<String>,
    /// Last rx rate as printed.
    pub rx_rate: Option<String>,
    /// Current state.
    pub state: LinkState,
    /// Consecutive AP reports without this client.
    pub missed_polls: u32,
    /// First sighting.
    pub discovered_at: DateTime<Utc>,
    /// Last sighting.
    pub last_seen: DateTime<Utc>,
    /// When the current state began.
    pub state_since: DateTime<Utc>,
}

impl Link {
    /// Moves the link to `to` at `at` and records the transition.
    fn turn(&mut self, to: LinkState, at: DateTime<Utc>, changes: &mut Vec<LinkChange>) {
        changes.push(LinkChange {
            key: self.key,
            from: Some(self.state),
            to,
            at,
        });
        self.state = to;
        self.state_since = at;
    }
}

/// One state transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkChange {
    /// The link.
    pub key: LinkKey,
    /// Previous state (`None` for a new link).
    pub from: Option<LinkState>,
    /// New state.
    pub to: LinkState,
    /// When it happened (report time, or the computed moment for time-based aging).
    pub at: DateTime<Utc>,
}

/// What applying a report did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportOutcome {
    /// State transitions, in order.
    pub changes: Vec<LinkChange>,
    /// Client MACs that match no device of the tenant.
    pub unknown_clients: Vec<MacAddr>,
    /// Client MACs that match several devices (not linked until the ambiguity is fixed).
    pub ambiguous_clients: Vec<MacAddr>,
    /// Set when the report was not newer than the last one applied for this AP.
    pub ignored_as_stale: bool,
}

#[derive(Debug, Clone)]
enum Owner {
    One(DeviceId),
    Many(Vec<DeviceId>),
}

#[derive(Debug, Clone, Default)]
struct ApState {
    last_report: Option<DateTime<Utc>>,
    links: Vec<usize>,
}

/// One tenant's links.
#[derive(Debug, Clone, Default)]
pub struct LinkTracker {
    config: LinkConfig,
    macs: HashMap<MacAddr, Owner>,
    device_macs: HashMap<DeviceId, Vec<MacAddr>>,
    links: Vec<Link>,
    index: HashMap<LinkKey, usize>,
    aps: HashMap<DeviceId, ApState>,
    /// Each CPE's links, by position in `links` (for the roam rule).
    cpes: HashMap<DeviceId, Vec<usize>>,
}

enum Resolved {
    Device(DeviceId),
    Unknown,
    Ambiguous,
}

impl LinkTracker {
    /// An empty tracker.
    pub fn new(config: LinkConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Replaces the set of interface MACs of `device` (from its latest interface list).
    pub fn set_device_macs(&mut self, device: DeviceId, macs: impl IntoIterator<Item = MacAddr>) {
        self.forget_macs(device);
        let mut mine: Vec<MacAddr> = macs.into_iter().collect();
        mine.sort_unstable();
        mine.dedup();
        for &mac in &mine {
            match self.macs.get_mut(&mac) {
                None => {
                    self.macs.insert(mac, Owner::One(device));
                }
                Some(Owner::One(other)) => {
                    let other = *other;
                    self.macs.insert(mac, Owner::Many(vec![other, device]));
                }
                Some(Owner::Many(v)) => v.push(device),
            }
        }
        self.device_macs.insert(device, mine);
    }

    fn forget_macs(&mut self, device: DeviceId) {
        for mac in self.device_macs.remove(&device).unwrap_or_default() {
            let drop_entry = match self.macs.get_mut(&mac) {
                Some(Owner::One(_)) => true,
                Some(Owner::Many(v)) => {
                    v.retain(|d| *d != device);
                    if v.len() == 1 {
                        let last = v[0];
                        self.macs.insert(mac, Owner::One(last));
                    }
                    false
                }
                None => false,
            };
            if drop_entry {
                self.macs.remove(&mac);
            }
        }
    }

    /// Removes a device: its MACs and every link it is part of.
    pub fn remove_device(&mut self, device: DeviceId) {
        self.forget_macs(device);
        self.aps.remove(&device);
        self.links.retain(|l| l.key.ap != device && l.key.cpe != device);
        self.reindex();
    }

    fn reindex(&mut self) {
        self.index.clear();
        self.cpes.clear();
        for ap in self.aps.values_mut() {
            ap.links.clear();
        }
        for (i, l) in self.links.iter().enumerate() {
            self.index.insert(l.key, i);
            self.aps.entry(l.key.ap).or_default().links.push(i);
            self.cpes.entry(l.key.cpe).or_default().push(i);
        }
    }

    /// Restores a link from storage (server start-up). Replaces a link with the same key.
    pub fn restore_link(&mut self, link: Link) {
        if let Some(&i) = self.index.get(&link.key) {
            self.links[i] = link;
        } else {
            let i = self.links.len();
            self.index.insert(link.key, i);
            self.aps.entry(link.key.ap).or_default().links.push(i);
            self.cpes.entry(link.key.cpe).or_default().push(i);
            self.links.push(link);
        }
    }

    /// Restores when an AP last reported (server start-up).
    pub fn restore_ap_last_report(&mut self, ap: DeviceId, at: DateTime<Utc>) {
        self.aps.entry(ap).or_default().last_report = Some(at);
    }

    /// The time of the last report applied for `ap`.
    pub fn ap_last_report(&self, ap: DeviceId) -> Option<DateTime<Utc>> {
        self.aps.get(&ap).and_then(|a| a.last_report)
    }

    /// A link by key.
    pub fn link(&self, key: LinkKey) -> Option<&Link> {
        self.index.get(&key).map(|&i| &self.links[i])
    }

    /// All links.
    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.iter()
    }

    /// The links of one AP.
    pub fn links_of_ap(&self, ap: DeviceId) -> impl Iterator<Item = &Link> {
        self.aps
            .get(&ap)
            .into_iter()
            .flat_map(|a| a.links.iter().map(|&i| &self.links[i]))
    }

    fn resolve(&self, ap: DeviceId, mac: &MacAddr) -> Resolved {
        match self.macs.get(mac) {
            None => Resolved::Unknown,
            Some(Owner::One(d)) if *d == ap => Resolved::Unknown,
            Some(Owner::One(d)) => Resolved::Device(*d),
            Some(Owner::Many(v)) => {
                let mut others = v.iter().filter(|d| **d != ap);
                match (others.next(), others.next()) {
                    (Some(d), None) => Resolved::Device(*d),
                    (None, _) => Resolved::Unknown,
                    _ => Resolved::Ambiguous,
                }
            }
        }
    }

    fn classify(&self, signal: Option<i16>, previous: LinkState) -> LinkState {
        let below = self.config.degraded_below_dbm;
        match (signal, previous) {
            (None, LinkState::Degraded) => LinkState::Degraded,
            (None, _) => LinkState::Active,
            (Some(s), LinkState::Degraded) if s < below + self.config.recovery_margin_db => LinkState::Degraded,
            (Some(s), _) if s < below => LinkState::Degraded,
            (Some(_), _) => LinkState::Active,
        }
    }

    /// Applies one AP registration table collected at `at`. An empty table is a report too: it
    /// counts a missed poll for every link of the AP.
    pub fn apply_registrations(
        &mut self,
        ap: DeviceId,
        at: DateTime<Utc>,
        registrations: &[Registration],
    ) -> ReportOutcome {
        let mut out = ReportOutcome::default();
        let state = self.aps.entry(ap).or_default();
        if state.last_report.is_some_and(|last| at <= last) {
            out.ignored_as_stale = true;
            return out;
        }
        state.last_report = Some(at);
        for reg in registrations {
            let cpe = match self.resolve(ap, &reg.mac) {
                Resolved::Device(d) => d,
                Resolved::Unknown => {
                    if !self.macs.contains_key(&reg.mac) {
                        out.unknown_clients.push(reg.mac);
                    }
                    continue;
                }
                Resolved::Ambiguous => {
                    out.ambiguous_clients.push(reg.mac);
                    continue;
                }
            };
            self.observe(LinkKey { ap, cpe }, at, reg, &mut out.changes);
        }
        self.age_unseen(ap, at, &mut out.changes);
        out
    }

    /// The AP was polled at `at` and did not answer: a missed poll for each of its links.
    pub fn apply_offline(&mut self, ap: DeviceId, at: DateTime<Utc>) -> ReportOutcome {
        self.apply_registrations(ap, at, &[])
    }

    fn observe(&mut self, key: LinkKey, at: DateTime<Utc>, reg: &Registration, changes: &mut Vec<LinkChange>) {
        match self.index.get(&key) {
            Some(&i) => {
                let seen_in_this_report = self.links[i].last_seen == at;
                let prev = self.links[i].state;
                let next = match prev {
                    _ if seen_in_this_report => prev,
                    LinkState::Discovered | LinkState::Down | LinkState::Stale => {
                        self.classify(reg.signal_dbm, LinkState::Active)
                    }
                    _ => self.classify(reg.signal_dbm, prev),
                };
                let l = &mut self.links[i];
                let other_radio = l.client_mac != reg.mac;
                l.interface.clone_from(&reg.interface);
                l.client_mac = reg.mac;
                l.signal_dbm = reg.signal_dbm;
                l.tx_ccq = reg.tx_ccq;
                l.tx_rate.clone_from(&reg.tx_rate);
                l.rx_rate.clone_from(&reg.rx_rate);
                l.missed_polls = 0;
                l.last_seen = at;
                if next != prev {
                    l.state = next;
                    l.state_since = at;
                    changes.push(LinkChange {
                        key,
                        from: Some(prev),
                        to: next,
                        at,
                    });
                }
                // The same condition as `roam_candidate`.
                if !prev.is_up() || other_radio {
                    self.roamed_to(key, reg.mac, at, changes);
                }
            }
            None => {
                let i = self.links.len();
                self.links.push(Link {
                    key,
                    interface: reg.interface.clone(),
                    client_mac: reg.mac,
                    signal_dbm: reg.signal_dbm,
                    tx_ccq: reg.tx_ccq,
                    tx_rate: reg.tx_rate.clone(),
                    rx_rate: reg.rx_rate.clone(),
                    state: LinkState::Discovered,
                    missed_polls: 0,
                    discovered_at: at,
                    last_seen: at,
                    state_since: at,
                });
                self.index.insert(key, i);
                self.aps.entry(key.ap).or_default().links.push(i);
                self.cpes.entry(key.cpe).or_default().push(i);
                changes.push(LinkChange {
                    key,
                    from: None,
                    to: LinkState::Discovered,
                    at,
                });
                self.roamed_to(key, reg.mac, at, changes);
            }
        }
    }

    /// The client radio `mac` of `to.cpe` has just associated with `to.ap`. A radio is associated
    /// with one AP at a time, so its links to other APs that last saw that same radio before `at`
    /// are down now, not three missed polls later. Only the same radio counts: a CPE with two
    /// radios may well hang off two APs at once.
    fn roamed_to(&mut self, to: LinkKey, mac: MacAddr, at: DateTime<Utc>, changes: &mut Vec<LinkChange>) {
        let Some(theirs) = self.cpes.get(&to.cpe) else { return };
        for &i in theirs {
            let l = &mut self.links[i];
            if l.key.ap != to.ap && l.client_mac == mac && l.state.is_up() && l.last_seen < at {
                l.turn(LinkState::Down, at, changes);
                l.missed_polls = self.config.missed_polls_down;
            }
        }
    }

    /// The CPE whose links to other APs a registration of `mac` on `ap` would take down by the
    /// roam rule, if it may: the radio resolves to a device whose link to `ap` is new, not up, or
    /// was seen through another of its radios. A store that loads links on demand loads that
    /// CPE's other links before applying the table; steady polls name none.
    pub fn roam_candidate(&self, ap: DeviceId, mac: &MacAddr) -> Option<DeviceId> {
        let Resolved::Device(cpe) = self.resolve(ap, mac) else {
            return None;
        };
        let steady = self
            .link(LinkKey { ap, cpe })
            .is_some_and(|l| l.state.is_up() && l.client_mac == *mac);
        (!steady).then_some(cpe)
    }

    fn age_unseen(&mut self, ap: DeviceId, at: DateTime<Utc>, changes: &mut Vec<LinkChange>) {
        let Some(state) = self.aps.get(&ap) else { return };
        let stale_after = Duration::seconds(self.config.stale_after_secs);
        for &i in &state.links {
            let l = &mut self.links[i];
            if l.last_seen == at {
                continue;
            }
            match l.state {
                LinkState::Down => {
                    if l.state_since + stale_after <= at {
                        l.turn(LinkState::Stale, at, changes);
                    }
                }
                LinkState::Stale => {}
                _ => {
                    l.missed_polls += 1;
                    if l.missed_polls >= self.config.missed_polls_down {
                        l.turn(LinkState::Down, at, changes);
                    }
                }
            }
        }
    }

    /// Ages links by elapsed time: an AP that has not reported for k poll intervals (plus half an
    /// interval of grace) has missed k polls, and down links become stale after
    /// `stale_after_secs`. Transitions carry the moment they became due, not `now`.
    ///
    /// Changes come back in time order. Call it periodically with the server's clock, for APs whose agent is alive (when the agent
    /// itself is silent the server marks devices unreachable instead and can skip them).
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<LinkChange> {
        let aps: Vec<DeviceId> = self.aps.keys().copied().collect();
        let mut changes = Vec::new();
        for ap in aps {
            changes.extend(self.tick_ap(ap, now));
        }
        changes.sort_by_key(|c| (c.at, c.key));
        changes
    }

    /// [`tick`](Self::tick) for one AP.
    pub fn tick_ap(&mut self, ap: DeviceId, now: DateTime<Utc>) -> Vec<LinkChange> {
        let mut changes = Vec::new();
        let Some(state) = self.aps.get(&ap) else { return changes };
        let interval = self.config.poll_interval_secs.max(1);
        let grace = Duration::seconds(interval / 2);
        let stale_after = Duration::seconds(self.config.stale_after_secs);
        for &i in &state.links {
            let l = &mut self.links[i];
            if l.state.is_up() {
                let Some(last) = state.last_report else { continue };
                let needed = i64::from(self.config.missed_polls_down.saturating_sub(l.missed_polls).max(1));
                let due = last + Duration::seconds(interval * needed) + grace;
                if due <= now {
                    l.turn(LinkState::Down, due, &mut changes);
                    l.missed_polls = self.config.missed_polls_down;
                }
            }
            if l.state == LinkState::Down && l.state_since + stale_after <= now {
                let at = l.state_since + stale_after;
                l.turn(LinkState::Stale, at, &mut changes);
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const AP: DeviceId = DeviceId::from_u128(1);
    const CPE1: DeviceId = DeviceId::from_u128(11);
    const CPE2: DeviceId = DeviceId::from_u128(12);

    fn mac(n: u64) -> MacAddr {
        MacAddr::from_u64(0x4c5e_0c00_0000 + n)
    }

    fn t(min: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + min * 60, 0).unwrap()
    }

    fn reg(m: MacAddr, signal: Option<i16>) -> Registration {
        Registration {
            signal_dbm: signal,
            tx_ccq: Some(90),
            ..Registration::new("wlan1", m)
        }
    }

    fn tracker() -> LinkTracker {
        let mut tr = LinkTracker::new(LinkConfig::default());
        tr.set_device_macs(AP, [mac(0)]);
        tr.set_device_macs(CPE1, [mac(1), mac(100)]);
        tr.set_device_macs(CPE2, [mac(2)]);
        tr
    }

    fn state(tr: &LinkTracker, cpe: DeviceId) -> LinkState {
        tr.link(LinkKey { ap: AP, cpe }).unwrap().state
    }

    #[test]
    fn new_link_is_discovered_then_confirmed_active_or_degraded_at_the_boundary() {
        let mut tr = tracker();
        let out = tr.apply_registrations(AP, t(0), &[reg(mac(1), Some(-80)), reg(mac(2), Some(-81))]);
        assert_eq!(out.changes.len(), 2);
        assert!(
            out.changes
                .iter()
                .all(|c| c.from.is_none() && c.to == LinkState::Discovered)
        );
        tr.apply_registrations(AP, t(1), &[reg(mac(1), Some(-80)), reg(mac(2), Some(-81))]);
        assert_eq!(state(&tr, CPE1), LinkState::Active, "-80 is not below -80");
        assert_eq!(state(&tr, CPE2), LinkState::Degraded);
    }

    #[test]
    fn degraded_recovers_only_past_the_hysteresis_margin() {
        let mut tr = tracker();
        for (min, signal, want) in [
            (0, -70, LinkState::Discovered),
            (1, -70, LinkState::Active),
            (2, -81, LinkState::Degraded),
            (3, -79, LinkState::Degraded),
            (4, -78, LinkState::Degraded),
            (5, -77, LinkState::Active),
            (6, -80, LinkState::Active),
        ] {
            tr.apply_registrations(AP, t(min), &[reg(mac(1), Some(signal))]);
            assert_eq!(state(&tr, CPE1), want, "minute {min} signal {signal}");
        }
    }

    #[test]
    fn three_missed_reports_take_a_link_down_including_empty_tables() {
        let mut tr = tracker();
        tr.apply_registrations(AP, t(0), &[reg(mac(1), Some(-60)), reg(mac(2), Some(-60))]);
        tr.apply_registrations(AP, t(1), &[reg(mac(1), Some(-60)), reg(mac(2), Some(-60))]);
        tr.apply_registrations(AP, t(2), &[reg(mac(2), Some(-60))]);
        tr.apply_registrations(AP, t(3), &[]);
        assert_eq!(state(&tr, CPE1), LinkState::Active);
        let out = tr.apply_registrations(AP, t(4), &[]);
        assert_eq!(state(&tr, CPE1), LinkState::Down);
        assert_eq!(state(&tr, CPE2), LinkState::Active);
        assert_eq!(
            out.changes,
            vec![LinkChange {
                key: LinkKey { ap: AP, cpe: CPE1 },
                from: Some(LinkState::Active),
                to: LinkState::Down,
                at: t(4),
            }]
        );
        // Reappearance goes straight back to active, with the miss counter reset.
        tr.apply_registrations(AP, t(5), &[reg(mac(100), Some(-60))]);
        assert_eq!(state(&tr, CPE1), LinkState::Active);
        assert_eq!(tr.link(LinkKey { ap: AP, cpe: CPE1 }).unwrap().missed_polls, 0);
        assert_eq!(tr.link(LinkKey { ap: AP, cpe: CPE1 }).unwrap().client_mac, mac(100));
    }

    #[test]
    fn a_radio_seen_on_another_ap_has_left_the_first_at_once_but_a_second_radio_has_not() {
        const AP2: DeviceId = DeviceId::from_u128(2);
        let mut tr = tracker();
        tr.set_device_macs(AP2, [mac(50)]);
        tr.apply_registrations(AP, t(0), &[reg(mac(1), Some(-60))]);
        tr.apply_registrations(AP, t(1), &[reg(mac(1), Some(-60))]);
        assert_eq!(state(&tr, CPE1), LinkState::Active);
        // CPE1's other radio on AP2: both links stand.
        let out = tr.apply_registrations(AP2, t(2), &[reg(mac(100), Some(-70))]);
        assert_eq!(out.changes.len(), 1, "{:?}", out.changes);
        assert_eq!(state(&tr, CPE1), LinkState::Active);
        // The first radio itself on AP2 (a roam): its link to AP goes down with that report.
        let out = tr.apply_registrations(AP2, t(3), &[reg(mac(1), Some(-70))]);
        assert_eq!(state(&tr, CPE1), LinkState::Down);
        assert!(
            out.changes.contains(&LinkChange {
                key: LinkKey { ap: AP, cpe: CPE1 },
                from: Some(LinkState::Active),
                to: LinkState::Down,
                at: t(3),
            }),
            "{:?}",
            out.changes
        );
        // Seen back on AP, after AP2 last saw it: AP2's link goes down in turn.
        let out = tr.apply_registrations(AP, t(4), &[reg(mac(1), Some(-60))]);
        assert_eq!(state(&tr, CPE1), LinkState::Active);
        assert_eq!(tr.link(LinkKey { ap: AP2, cpe: CPE1 }).unwrap().state, LinkState::Down);
        assert_eq!(out.changes.len(), 2, "{:?}", out.changes);
        // A stale table that still lists it does not take down a link seen since.
        let out = tr.apply_registrations(AP2, t(4) - Duration::seconds(1), &[reg(mac(1), Some(-70))]);
        assert!(out.ignored_as_stale || out.changes.iter().all(|c| c.key.ap == AP2));
        assert_eq!(state(&tr, CPE1), LinkState::Active);
    }

    #[test]
    fn an_ap_that_goes_offline_takes_its_links_down() {
        let mut tr = tracker();
        tr.apply_registrations(AP, t(0), &[reg(mac(1), Some(-60))]);
        tr.apply_registrations(AP, t(1), &[reg(mac(1), Some(-60))]);
        tr.apply_offline(AP, t(2));
        tr.apply_offline(AP, t(3));
        assert_eq!(state(&tr, CPE1), LinkState::Active);
        tr.apply_offline(AP, t(4));
        assert_eq!(state(&tr, CPE1), LinkState::Down);
    }

    #[test]
    fn an_ap_that_stops_reporting_ages_its_links_by_time_then_stale() {
        let mut tr = tracker();
        tr.apply_registrations(AP, t(0), &[reg(mac(1), Some(-60))]);
        tr.apply_registrations(AP, t(1), &[reg(mac(1), Some(-60))]);
        assert!(
            tr.tick(t(4)).is_empty(),
            "3 intervals without the grace are not yet 3 misses"
        );
        let changes = tr.tick(t(5));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].to, LinkState::Down);
        assert_eq!(changes[0].at, t(4) + Duration::seconds(30));
        assert!(tr.tick(t(6)).is_empty(), "tick is idempotent");
        let changes = tr.tick(t(4) + Duration::hours(25));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].to, LinkState::Stale);
        assert_eq!(changes[0].at, t(4) + Duration::seconds(30) + Duration::hours(24));
        // Stale links come back when seen.
        tr.apply_registrations(AP, t(2000), &[reg(mac(1), Some(-85))]);
        assert_eq!(state(&tr, CPE1), LinkState::Degraded);
    }

    #[test]
    fn down_links_turn_stale_on_reports_after_24_hours() {
        let mut tr = tracker();
        tr.apply_registrations(AP, t(0), &[reg(mac(1), Some(-60))]);
        for m in 1..=3 {
            tr.apply_registrations(AP, t(m), &[]);
        }
        assert_eq!(state(&tr, CPE1), LinkState::Down);
        tr.apply_registrations(AP, t(3 + 24 * 60 - 1), &[]);
        assert_eq!(state(&tr, CPE1), LinkState::Down);
        tr.apply_registrations(AP, t(3 + 24 * 60), &[]);
        assert_eq!(state(&tr, CPE1), LinkState::Stale);
    }

    #[test]
    fn late_and_replayed_reports_are_ignored() {
        let mut tr = tracker();
        tr.apply_registrations(AP, t(0), &[reg(mac(1), Some(-60))]);
        tr.apply_registrations(AP, t(5), &[reg(mac(1), Some(-60))]);
        let before = tr.link(LinkKey { ap: AP, cpe: CPE1 }).unwrap().clone();
        assert!(tr.apply_registrations(AP, t(5), &[]).ignored_as_stale);
        assert!(
            tr.apply_registrations(AP, t(3), &[reg(mac(1), Some(-90))])
                .ignored_as_stale
        );
        assert_eq!(tr.link(LinkKey { ap: AP, cpe: CPE1 }).unwrap(), &before);
    }

    #[test]
    fn unknown_and_self_macs_do_not_make_links() {
        let mut tr = tracker();
        let out = tr.apply_registrations(AP, t(0), &[reg(mac(0), Some(-50)), reg(mac(77), Some(-50))]);
        assert_eq!(out.unknown_clients, vec![mac(77)]);
        assert!(out.changes.is_empty());
        assert_eq!(tr.links().count(), 0);
    }

    #[test]
    fn a_mac_shared_by_two_devices_is_ambiguous_until_fixed() {
        let mut tr = tracker();
        tr.set_device_macs(DeviceId::from_u128(13), [mac(2)]);
        let out = tr.apply_registrations(AP, t(0), &[reg(mac(2), Some(-60))]);
        assert_eq!(out.ambiguous_clients, vec![mac(2)]);
        tr.set_device_macs(DeviceId::from_u128(13), [mac(3)]);
        let out = tr.apply_registrations(AP, t(1), &[reg(mac(2), Some(-60))]);
        assert_eq!(out.changes.len(), 1);
        assert_eq!(out.changes[0].key.cpe, CPE2);
    }

    #[test]
    fn trackers_are_per_tenant_so_foreign_macs_stay_unknown() {
        let mut other_tenant = LinkTracker::new(LinkConfig::default());
        other_tenant.set_device_macs(AP, [mac(0)]);
        let out = other_tenant.apply_registrations(AP, t(0), &[reg(mac(1), Some(-60))]);
        assert_eq!(out.unknown_clients, vec![mac(1)]);
    }

    #[test]
    fn removing_a_device_drops_its_links() {
        let mut tr = tracker();
        tr.apply_registrations(AP, t(0), &[reg(mac(1), Some(-60)), reg(mac(2), Some(-60))]);
        tr.remove_device(CPE1);
        assert_eq!(tr.links().count(), 1);
        assert_eq!(tr.links_of_ap(AP).count(), 1);
        let out = tr.apply_registrations(AP, t(1), &[reg(mac(1), Some(-60))]);
        assert_eq!(out.unknown_clients, vec![mac(1)]);
    }

    #[test]
    fn link_states_parse_from_their_wire_names() {
        assert_eq!(LinkState::parse("degraded"), Some(LinkState::Degraded));
        assert_eq!(LinkState::parse("Degraded"), None);
        assert_eq!(serde_json::to_string(&LinkState::Stale).unwrap(), "\"stale\"");
    }

    proptest! {
        /// Reports arrive in any order, some twice. Whatever is not newer than the last applied
        /// report of its AP changes nothing at all.
        #[test]
        fn replayed_or_out_of_order_reports_never_move_a_link(
            reports in prop::collection::vec((0i64..40, prop::collection::vec((1u64..4, -95i16..-40), 0..4)), 1..60)
        ) {
            let mut tr = tracker();
            let mut newest: Option<i64> = None;
            for (minute, clients) in reports {
                let regs: Vec<Registration> = clients.iter().map(|&(m, s)| reg(mac(m), Some(s))).collect();
                let before: Vec<Link> = tr.links().cloned().collect();
                let out = tr.apply_registrations(AP, t(minute), &regs);
                if newest.is_some_and(|n| minute <= n) {
                    prop_assert!(out.ignored_as_stale);
                    prop_assert!(out.changes.is_empty());
                    let after: Vec<Link> = tr.links().cloned().collect();
                    prop_assert_eq!(before, after);
                } else {
                    prop_assert!(!out.ignored_as_stale);
                    newest = Some(minute);
                    for l in tr.links() {
                        prop_assert!(l.last_seen <= t(minute));
                        prop_assert!(l.state_since <= t(minute));
                    }
                }
            }
        }
    }
}
