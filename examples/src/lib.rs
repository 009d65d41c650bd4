//! A deterministic synthetic tower fleet, shared by the examples, the benches and the
//! `tod-server demo` command.
//!
//! Each access point serves a set of CPEs; every CPE has a base signal and drifts around it from
//! poll to poll. APs and CPEs get interface MACs, so a [`LinkTracker`] fed with
//! [`Fleet::registrations`] discovers the links end to end, exactly as it will from real agents.
//! Values derive from a seed with a small stateless mixer, so any poll of any AP can be produced
//! on demand, in any order, and reproduces exactly.

use chrono::{DateTime, Duration, TimeZone, Utc};
use tod_core::links::{LinkConfig, LinkTracker};
use tod_core::telemetry::Registration;
use tod_core::{DeviceId, MacAddr};

pub use tod_agent::sim::world::{mix, pick};

/// A customer radio.
#[derive(Debug, Clone)]
pub struct Cpe {
    /// Its device id.
    pub id: DeviceId,
    /// Its wireless interface MAC.
    pub mac: MacAddr,
    /// Its typical signal at the AP, dBm.
    pub base_signal: i16,
}

/// An access point and its clients.
#[derive(Debug, Clone)]
pub struct Ap {
    /// Its device id.
    pub id: DeviceId,
    /// Its wireless interface MAC.
    pub mac: MacAddr,
    /// Its clients.
    pub clients: Vec<Cpe>,
}

/// The fleet.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Seed all values derive from.
    pub seed: u64,
    /// Access points.
    pub aps: Vec<Ap>,
    /// Time of poll 0.
    pub epoch: DateTime<Utc>,
}

impl Fleet {
    /// `aps` access points with `clients` CPEs each. Ids and MACs are dense and reproducible.
    pub fn new(aps: usize, clients: usize, seed: u64) -> Self {
        let mut next = 1u128;
        let mut id = || {
            let d = DeviceId::from_u128(next);
            next += 1;
            d
        };
        let aps = (0..aps)
            .map(|a| {
                let ap_id = id();
                let clients = (0..clients)
                    .map(|c| {
                        let cid = id();
                        let n = cid.0.as_u128() as u64;
                        Cpe {
                            id: cid,
                            mac: MacAddr::from_u64(0x02_00_00_00_00_00 | n),
                            base_signal: -50 - pick(seed, a as u64, c as u64, 32) as i16,
                        }
                    })
                    .collect();
                let n = ap_id.0.as_u128() as u64;
                Ap {
                    id: ap_id,
                    mac: MacAddr::from_u64(0x06_00_00_00_00_00 | n),
                    clients,
                }
            })
            .collect();
        Self {
            seed,
            aps,
            epoch: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().expect("valid date"),
        }
    }

    /// The collection time of a poll.
    pub fn poll_time(&self, poll: u64, interval_secs: i64) -> DateTime<Utc> {
        self.epoch + Duration::seconds(poll as i64 * interval_secs)
    }

    /// A link tracker that knows every device's interface MAC.
    pub fn tracker(&self, config: LinkConfig) -> LinkTracker {
        let mut t = LinkTracker::new(config);
        for ap in &self.aps {
            t.set_device_macs(ap.id, [ap.mac]);
            for c in &ap.clients {
                t.set_device_macs(c.id, [c.mac]);
            }
        }
        t
    }

    /// The signal of one client at one poll: its base ±3 dB of drift.
    pub fn signal(&self, ap: usize, client: usize, poll: u64) -> i16 {
        let base = self.aps[ap].clients[client].base_signal;
        base + pick(self.seed ^ poll, ap as u64, client as u64, 7) as i16 - 3
    }

    /// The registration table of AP `ap` at poll `poll`; `present` decides which clients are in it.
    pub fn registrations(&self, ap: usize, poll: u64, present: impl Fn(usize) -> bool) -> Vec<Registration> {
        self.aps[ap]
            .clients
            .iter()
            .enumerate()
            .filter(|(c, _)| present(*c))
            .map(|(c, cpe)| registration(cpe.mac, Some(self.signal(ap, c, poll))))
            .collect()
    }
}

/// A registration entry with the fields link discovery uses.
pub fn registration(mac: MacAddr, signal_dbm: Option<i16>) -> Registration {
    Registration {
        signal_dbm,
        tx_signal_dbm: signal_dbm.map(|s| s - 2),
        tx_ccq: Some(90),
        tx_rate: Some("130Mbps-20MHz/2S/SGI".into()),
        rx_rate: Some("117Mbps-20MHz/2S".into()),
        uptime_secs: Some(3600),
        distance_m: Some(1200),
        ..Registration::new("wlan1", mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_is_reproducible_and_links_resolve() {
        let a = Fleet::new(3, 4, 7);
        let b = Fleet::new(3, 4, 7);
        assert_eq!(a.registrations(1, 5, |_| true), b.registrations(1, 5, |_| true));
        assert_ne!(Fleet::new(3, 4, 8).aps[0].clients[0].base_signal, -1000);
        let mut tr = a.tracker(LinkConfig::default());
        for ap in 0..3 {
            let out = tr.apply_registrations(a.aps[ap].id, a.poll_time(0, 60), &a.registrations(ap, 0, |_| true));
            assert!(out.unknown_clients.is_empty());
        }
        assert_eq!(tr.links().count(), 12);
        for ap in 0..3 {
            for c in 0..4 {
                let s = a.signal(ap, c, 9);
                let base = a.aps[ap].clients[c].base_signal;
                assert!((base - 3..=base + 3).contains(&s));
            }
        }
    }
}
