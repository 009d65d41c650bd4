//! Site health rollups and sector statistics.
//!
//! A site's rollup counts its devices, those online, the online percentage to one decimal (0.0
//! for a site without devices) and its active alerts — the real count, which the original
//! hard-coded to 0. Sector statistics count devices, and over the links whose AP is in the sector:
//! clients (links that are up, degraded included — the original dropped degraded links from client
//! counts), degraded links, and the mean signal.

use serde::{Deserialize, Serialize};

use crate::links::{Link, LinkState};
use crate::model::DeviceStatus;
use crate::signal::mean_half_away;

/// A site's health rollup.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SiteRollup {
    /// Devices assigned to the site.
    pub device_count: u32,
    /// Of those, online.
    pub online_count: u32,
    /// `online / devices × 100`, one decimal; 0.0 without devices.
    pub online_percent: f64,
    /// Active alerts about the site, its sectors, devices and links.
    pub alert_count: u32,
}

/// Rolls up the statuses of a site's devices and its active alert count.
pub fn site_rollup(statuses: impl IntoIterator<Item = DeviceStatus>, active_alerts: u32) -> SiteRollup {
    let (mut devices, mut online) = (0u32, 0u32);
    for s in statuses {
        devices += 1;
        online += u32::from(s == DeviceStatus::Online);
    }
    SiteRollup {
        device_count: devices,
        online_count: online,
        online_percent: online_percent(online, devices),
        alert_count: active_alerts,
    }
}

/// `online / total × 100` rounded half away from zero to one decimal; 0.0 when `total` is 0.
pub fn online_percent(online: u32, total: u32) -> f64 {
    if total == 0 {
        return 0.0;
    }
    // Integer arithmetic in tenths avoids 66.65 → 66.6 surprises from binary floats.
    mean_half_away(i64::from(online) * 1000, i64::from(total)) as f64 / 10.0
}

/// A sector's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorStats {
    /// Devices assigned to the sector.
    pub device_count: u32,
    /// Links from the sector's APs that are up (discovered, active or degraded).
    pub clients: u32,
    /// Of those, degraded.
    pub degraded_links: u32,
    /// All links from the sector's APs, whatever their state.
    pub links: u32,
    /// Mean last signal of the up links that report one, rounded half away from zero.
    pub avg_signal_dbm: Option<i16>,
}

/// Computes sector statistics from its device count and the links of its APs.
pub fn sector_stats<'a>(device_count: u32, ap_links: impl IntoIterator<Item = &'a Link>) -> SectorStats {
    let (mut clients, mut degraded, mut links, mut sum, mut n) = (0u32, 0u32, 0u32, 0i64, 0i64);
    for l in ap_links {
        links += 1;
        if l.state.is_up() {
            clients += 1;
            degraded += u32::from(l.state == LinkState::Degraded);
            if let Some(s) = l.signal_dbm {
                sum += i64::from(s);
                n += 1;
            }
        }
    }
    SectorStats {
        device_count,
        clients,
        degraded_links: degraded,
        links,
        avg_signal_dbm: (n > 0).then(|| mean_half_away(sum, n) as i16),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MacAddr;
    use crate::links::LinkKey;
    use crate::model::DeviceId;
    use chrono::{TimeZone, Utc};

    #[test]
    fn rollup_counts_and_rounds_to_one_decimal() {
        use DeviceStatus::*;
        let r = site_rollup([Online, Online, Offline], 4);
        assert_eq!(
            (r.device_count, r.online_count, r.online_percent, r.alert_count),
            (3, 2, 66.7, 4)
        );
        let r = site_rollup([Online, Unknown, Unreachable], 0);
        assert_eq!(r.online_percent, 33.3, "unknown and unreachable are not online");
        assert_eq!(site_rollup([], 0).online_percent, 0.0);
        assert_eq!(online_percent(1, 8), 12.5);
        assert_eq!(online_percent(1, 6), 16.7);
        assert_eq!(online_percent(5, 5), 100.0);
    }

    fn link(n: u128, state: LinkState, signal: Option<i16>) -> Link {
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        Link {
            key: LinkKey {
                ap: DeviceId::from_u128(1),
                cpe: DeviceId::from_u128(n),
            },
            interface: "wlan1".into(),
            client_mac: MacAddr::from_u64(n as u64),
            signal_dbm: signal,
            tx_ccq: None,
            tx_rate: None,
            rx_rate: None,
            state,
            missed_polls: 0,
            discovered_at: at,
            last_seen: at,
            state_since: at,
        }
    }

    #[test]
    fn sector_stats_count_degraded_links_as_clients() {
        let links = [
            link(2, LinkState::Active, Some(-60)),
            link(3, LinkState::Degraded, Some(-85)),
            link(4, LinkState::Discovered, None),
            link(5, LinkState::Down, Some(-50)),
            link(6, LinkState::Stale, None),
        ];
        let s = sector_stats(3, &links);
        assert_eq!(
            s,
            SectorStats {
                device_count: 3,
                clients: 3,
                degraded_links: 1,
                links: 5,
                avg_signal_dbm: Some(-73)
            }
        );
        assert_eq!(sector_stats(0, &[]).avg_signal_dbm, None);
    }
}
