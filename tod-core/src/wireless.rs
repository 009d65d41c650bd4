//! Radios: what one report says about each radio, and which radios are in trouble.
//!
//! [`summarize`] turns a report's RF monitor and registration table into one [`RadioSummary`]
//! per radio (what the server stores as its radio history). [`judge`] decides whether a radio's
//! latest summary is a wireless issue, with the original's thresholds — mean client signal below
//! −70 dBm, CCQ below 60 %, or no clients on a radio that had some in the last 24 hours — but
//! without its defects: a radio that reports no CCQ (RouterOS v7) is not "CCQ 0 %", an unparsed
//! signal is not 0 dBm, and a radio with no clients still has a summary, so "no clients (was
//! active)" can fire. [`rank`] orders issues the way an operator triages them.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::telemetry::{DeviceReport, RadioRole};

/// A mean client signal below this (dBm) is an issue.
pub const WEAK_SIGNAL_DBM: f64 = -70.0;
/// A mean CCQ below this (percent) is an issue.
pub const LOW_CCQ_PERCENT: f64 = 60.0;
/// Only summaries from the last hour count as a radio's current state (seconds).
pub const CURRENT_WINDOW_SECS: i64 = 3_600;
/// A radio with no clients is an issue if it had clients within this window (seconds).
pub const WAS_ACTIVE_WINDOW_SECS: i64 = 86_400;
/// The issue lists show the worst this many.
pub const ISSUE_LIMIT: usize = 10;

/// One radio in one report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RadioSummary {
    /// Radio interface.
    pub interface: String,
    /// Access point or station, when the agent could tell.
    pub role: Option<RadioRole>,
    /// Noise floor, dBm.
    pub noise_floor_dbm: Option<i16>,
    /// Frequency, MHz.
    pub frequency_mhz: Option<u32>,
    /// Channel width, MHz.
    pub channel_width_mhz: Option<u16>,
    /// Transmit power, dBm.
    pub tx_power_dbm: Option<i16>,
    /// Registered clients as the RF monitor counted them.
    pub registered_clients: Option<u32>,
    /// Clients in the registration table on this radio (the RF monitor's count when the report
    /// has no registration table).
    pub clients: u32,
    /// Mean client signal, dBm (clients without a signal reading left out).
    pub signal_avg_dbm: Option<f64>,
    /// Weakest client signal, dBm.
    pub signal_min_dbm: Option<i16>,
    /// Mean transmit CCQ, percent (`None` when no client reports one, as on RouterOS v7).
    pub ccq_avg: Option<f64>,
}

/// One summary per radio: every radio the RF monitor reported, and every interface that has
/// clients in the registration table without an RF monitor entry. Ordered by interface name.
pub fn summarize(report: &DeviceReport) -> Vec<RadioSummary> {
    let mut out: Vec<RadioSummary> = Vec::new();
    for rf in report.rf.iter().flatten() {
        if out.iter().any(|s| s.interface == rf.interface) {
            continue;
        }
        out.push(RadioSummary {
            interface: rf.interface.clone(),
            role: rf.role,
            noise_floor_dbm: rf.noise_floor_dbm,
            frequency_mhz: rf.frequency_mhz,
            channel_width_mhz: rf.channel_width_mhz,
            tx_power_dbm: rf.tx_power_dbm,
            registered_clients: rf.registered_clients,
            clients: 0,
            signal_avg_dbm: None,
            signal_min_dbm: None,
            ccq_avg: None,
        });
    }
    for reg in report.registrations.iter().flatten() {
        if !out.iter().any(|s| s.interface == reg.interface) {
            out.push(RadioSummary {
                interface: reg.interface.clone(),
                role: None,
                noise_floor_dbm: None,
                frequency_mhz: None,
                channel_width_mhz: None,
                tx_power_dbm: None,
                registered_clients: None,
                clients: 0,
                signal_avg_dbm: None,
                signal_min_dbm: None,
                ccq_avg: None,
            });
        }
    }
    for s in &mut out {
        let Some(regs) = &report.registrations else {
            s.clients = s.registered_clients.unwrap_or(0);
            continue;
        };
        let mine: Vec<_> = regs.iter().filter(|r| r.interface == s.interface).collect();
        s.clients = u32::try_from(mine.len()).unwrap_or(u32::MAX);
        let signals: Vec<i16> = mine.iter().filter_map(|r| r.signal_dbm).collect();
        s.signal_avg_dbm = mean(signals.iter().map(|&v| f64::from(v)));
        s.signal_min_dbm = signals.iter().copied().min();
        s.ccq_avg = mean(mine.iter().filter_map(|r| r.tx_ccq).map(f64::from));
    }
    out.sort_by(|a, b| a.interface.cmp(&b.interface));
    out
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

/// What is wrong with a radio, first matching rule first.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Issue {
    /// The clients' mean signal is weak.
    WeakSignal {
        /// Mean signal, dBm, rounded.
        dbm: i16,
    },
    /// The clients' mean CCQ is low.
    LowCcq {
        /// Mean CCQ, percent, rounded.
        percent: u8,
    },
    /// The radio lost all its clients.
    ClientsLost,
}

impl Issue {
    /// The machine name: `weak_signal`, `low_ccq` or `clients_lost`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::WeakSignal { .. } => "weak_signal",
            Self::LowCcq { .. } => "low_ccq",
            Self::ClientsLost => "clients_lost",
        }
    }
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WeakSignal { dbm } => write!(f, "Signal: {dbm} dBm"),
            Self::LowCcq { percent } => write!(f, "CCQ: {percent}%"),
            Self::ClientsLost => f.write_str("No clients (was active)"),
        }
    }
}

/// Whether a radio's latest summary is an issue. `had_clients` says whether the radio had any
/// client within [`WAS_ACTIVE_WINDOW_SECS`]. Stations (a CPE's uplink) are never issues here:
/// their one "client" is their AP, whose own radio carries the issue.
pub fn judge(s: &RadioSummary, had_clients: bool) -> Option<Issue> {
    if s.role == Some(RadioRole::Station) {
        return None;
    }
    if let Some(avg) = s.signal_avg_dbm.filter(|&v| v < WEAK_SIGNAL_DBM) {
        return Some(Issue::WeakSignal {
            dbm: avg.round() as i16,
        });
    }
    if let Some(ccq) = s.ccq_avg.filter(|&v| v < LOW_CCQ_PERCENT) {
        return Some(Issue::LowCcq {
            percent: ccq.round().clamp(0.0, 100.0) as u8,
        });
    }
    if s.clients == 0 && had_clients {
        return Some(Issue::ClientsLost);
    }
    None
}

/// Triage order: devices that are not online first, then the weakest mean signal (no reading
/// last), then the lowest CCQ (no reading last).
pub fn rank(a: (bool, &RadioSummary), b: (bool, &RadioSummary)) -> Ordering {
    let (a_online, a) = a;
    let (b_online, b) = b;
    a_online
        .cmp(&b_online)
        .then_with(|| none_last(a.signal_avg_dbm, b.signal_avg_dbm))
        .then_with(|| none_last(a.ccq_avg, b.ccq_avg))
}

fn none_last(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::telemetry::{PollStatus, Registration, RfStats};
    use crate::{DeviceId, MacAddr};

    fn reg(iface: &str, last: u8, signal: Option<i16>, ccq: Option<u8>) -> Registration {
        Registration {
            interface: iface.into(),
            mac: MacAddr::new([0x4c, 0x5e, 0x0c, 0, 0, last]),
            signal_dbm: signal,
            tx_signal_dbm: None,
            tx_ccq: ccq,
            tx_rate: None,
            rx_rate: None,
            uptime_secs: None,
            distance_m: None,
            last_ip: None,
            tx_bytes: None,
            rx_bytes: None,
        }
    }

    fn rf(iface: &str, role: Option<RadioRole>, clients: u32) -> RfStats {
        RfStats {
            interface: iface.into(),
            noise_floor_dbm: Some(-105),
            frequency_mhz: Some(5180),
            channel_width_mhz: Some(20),
            tx_power_dbm: Some(24),
            registered_clients: Some(clients),
            role,
        }
    }

    fn report(rf: Option<Vec<RfStats>>, regs: Option<Vec<Registration>>) -> DeviceReport {
        let mut r = DeviceReport::new(
            DeviceId::from_u128(1),
            1,
            Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap(),
            PollStatus::Online,
        );
        r.rf = rf;
        r.registrations = regs;
        r
    }

    #[test]
    fn summaries_count_clients_and_average_per_radio() {
        let r = report(
            Some(vec![rf("wlan2", Some(RadioRole::AccessPoint), 2), rf("wlan1", None, 1)]),
            Some(vec![
                reg("wlan1", 1, Some(-60), Some(90)),
                reg("wlan1", 2, Some(-71), Some(80)),
                reg("wlan1", 3, None, None),
                reg("wlan3", 4, Some(-50), None),
            ]),
        );
        let s = summarize(&r);
        let names: Vec<_> = s.iter().map(|s| s.interface.as_str()).collect();
        assert_eq!(names, ["wlan1", "wlan2", "wlan3"]);
        assert_eq!(s[0].clients, 3);
        assert_eq!(s[0].signal_avg_dbm, Some(-65.5));
        assert_eq!(s[0].signal_min_dbm, Some(-71));
        assert_eq!(s[0].ccq_avg, Some(85.0));
        assert_eq!(
            s[0].registered_clients,
            Some(1),
            "the RF monitor's own count is kept as reported"
        );
        assert_eq!((s[1].clients, s[1].signal_avg_dbm, s[1].ccq_avg), (0, None, None));
        assert_eq!(s[1].frequency_mhz, Some(5180));
        assert_eq!((s[2].clients, s[2].role, s[2].noise_floor_dbm), (1, None, None));
    }

    #[test]
    fn without_a_registration_table_the_rf_count_stands() {
        let s = summarize(&report(Some(vec![rf("wlan1", None, 7)]), None));
        assert_eq!(s[0].clients, 7);
        assert!(summarize(&report(None, None)).is_empty());
    }

    #[test]
    fn judged_by_the_first_matching_rule() {
        let mut s = summarize(&report(
            Some(vec![rf("wlan1", Some(RadioRole::AccessPoint), 0)]),
            Some(vec![reg("wlan1", 1, Some(-82), Some(40))]),
        ))
        .remove(0);
        assert_eq!(judge(&s, true), Some(Issue::WeakSignal { dbm: -82 }));
        assert_eq!(judge(&s, true).unwrap().to_string(), "Signal: -82 dBm");
        s.signal_avg_dbm = Some(-70.0);
        assert_eq!(
            judge(&s, true),
            Some(Issue::LowCcq { percent: 40 }),
            "−70 is not below −70"
        );
        assert_eq!(judge(&s, true).unwrap().to_string(), "CCQ: 40%");
        s.ccq_avg = Some(60.0);
        assert_eq!(judge(&s, true), None);
        s.clients = 0;
        assert_eq!(judge(&s, false), None, "never had clients: an idle radio, not an issue");
        assert_eq!(judge(&s, true), Some(Issue::ClientsLost));
        assert_eq!(judge(&s, true).unwrap().to_string(), "No clients (was active)");
    }

    #[test]
    fn v7_without_ccq_is_not_ccq_zero_and_stations_are_not_issues() {
        let healthy_v7 = summarize(&report(
            Some(vec![rf("wifi1", Some(RadioRole::AccessPoint), 2)]),
            Some(vec![reg("wifi1", 1, Some(-55), None), reg("wifi1", 2, Some(-60), None)]),
        ))
        .remove(0);
        assert_eq!(healthy_v7.ccq_avg, None);
        assert_eq!(judge(&healthy_v7, true), None);
        let weak_station = summarize(&report(
            Some(vec![rf("wlan1", Some(RadioRole::Station), 1)]),
            Some(vec![reg("wlan1", 1, Some(-85), Some(20))]),
        ))
        .remove(0);
        assert_eq!(judge(&weak_station, true), None);
    }

    #[test]
    fn triage_puts_offline_first_then_weakest_signal_then_lowest_ccq() {
        let base = summarize(&report(Some(vec![rf("wlan1", None, 0)]), Some(vec![]))).remove(0);
        let with = |sig: Option<f64>, ccq: Option<f64>| RadioSummary {
            signal_avg_dbm: sig,
            ccq_avg: ccq,
            ..base.clone()
        };
        let mut v = [
            (true, with(Some(-75.0), None)),
            (true, with(None, Some(30.0))),
            (false, with(Some(-60.0), None)),
            (true, with(Some(-80.0), Some(50.0))),
            (true, with(Some(-80.0), Some(20.0))),
        ];
        v.sort_by(|a, b| rank((a.0, &a.1), (b.0, &b.1)));
        let order: Vec<_> = v.iter().map(|(on, s)| (*on, s.signal_avg_dbm, s.ccq_avg)).collect();
        assert_eq!(
            order,
            [
                (false, Some(-60.0), None),
                (true, Some(-80.0), Some(20.0)),
                (true, Some(-80.0), Some(50.0)),
                (true, Some(-75.0), None),
                (true, None, Some(30.0)),
            ]
        );
    }
}
