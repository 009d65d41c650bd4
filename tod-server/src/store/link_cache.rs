//! What link discovery read and wrote, kept between batches: each access point's links as
//! stored, and which devices own the client MACs its tables listed. A tower's batch otherwise
//! reads both back for every report — a thousand links and a thousand MACs for a thousand
//! clients that were there a minute ago.
//!
//! Nothing here is trusted without the database's word: an AP's links are used only while its
//! `link_aps.version` is the one this server wrote, and the MAC owners only while the tenant's
//! `interface_versions.version` is the one they were read at. Every other writer of an AP's links
//! (another replica, link aging, a client roaming to another AP, a deletion) raises the version,
//! so the next batch reads the links again (migration `link_versions`). What a batch learned is
//! kept only once it committed.

use std::collections::HashMap;
use std::sync::Mutex;

use tod_core::links::Link;
use uuid::Uuid;

/// The cache of one store (one server process).
#[derive(Debug, Default)]
pub(crate) struct LinkCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By AP: its tenant, the version its links were written at, and the links.
    aps: HashMap<Uuid, (Uuid, i64, Vec<Link>)>,
    /// By tenant: the interface version, and each MAC looked up with the devices owning it
    /// (none for a client no device of the tenant has).
    owners: HashMap<Uuid, (i64, HashMap<String, Vec<Uuid>>)>,
}

/// What a batch may take from the cache.
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// The links of each AP whose version is the one cached.
    pub(crate) links: Vec<Link>,
    /// The APs whose links must be read.
    pub(crate) aps_to_read: Vec<Uuid>,
    /// `(device, MAC)` for the MACs whose owners are known.
    pub(crate) owners: Vec<(Uuid, String)>,
    /// The MACs whose owners must be looked up.
    pub(crate) macs_to_read: std::collections::BTreeSet<String>,
}

/// What a batch learned, for the cache once it committed.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    pub(crate) tenant: Uuid,
    /// Each AP of the batch with the version its links were written at and the links.
    pub(crate) aps: Vec<(Uuid, i64, Vec<Link>)>,
    /// APs whose links the batch changed at another version than it can vouch for.
    pub(crate) forget: Vec<Uuid>,
    /// The interface version the owners were read at, and each MAC with its owners.
    pub(crate) owners: (i64, Vec<(String, Vec<Uuid>)>),
}

impl LinkCache {
    /// Splits what a batch needs into what the cache holds at the database's versions and what
    /// must be read: `aps` are the batch's APs with their version (`None`: not reported yet),
    /// `interfaces` the tenant's interface version, `macs` the clients the batch lists.
    pub(crate) fn known(
        &self,
        tenant: Uuid,
        aps: &[(Uuid, Option<i64>)],
        interfaces: i64,
        macs: &std::collections::BTreeSet<String>,
    ) -> Known {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut known = Known::default();
        for (ap, version) in aps {
            match (inner.aps.get(ap), version) {
                (Some((t, cached, links)), Some(v)) if *t == tenant && cached == v => {
                    known.links.extend(links.iter().cloned());
                }
                _ => known.aps_to_read.push(*ap),
            }
        }
        let owners = inner.owners.get(&tenant).filter(|(v, _)| *v == interfaces);
        for mac in macs {
            match owners.and_then(|(_, by_mac)| by_mac.get(mac)) {
                Some(devices) => known.owners.extend(devices.iter().map(|d| (*d, mac.clone()))),
                None => {
                    known.macs_to_read.insert(mac.clone());
                }
            }
        }
        known
    }

    /// Keeps what a committed batch learned, unless the cache already holds something newer.
    pub(crate) fn learn(&self, learned: Learned) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for ap in &learned.forget {
            inner.aps.remove(ap);
        }
        for (ap, version, links) in learned.aps {
            let newer = inner.aps.get(&ap).is_none_or(|(_, cached, _)| *cached < version);
            if newer {
                inner.aps.insert(ap, (learned.tenant, version, links));
            }
        }
        let (version, macs) = learned.owners;
        let entry = inner
            .owners
            .entry(learned.tenant)
            .or_insert_with(|| (version, HashMap::new()));
        if entry.0 < version {
            *entry = (version, HashMap::new());
        }
        if entry.0 == version {
            entry.1.extend(macs);
        }
    }

    /// APs and MACs held.
    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (inner.aps.len(), inner.owners.values().map(|(_, m)| m.len()).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use std::collections::BTreeSet;
    use tod_core::DeviceId;
    use tod_core::links::{LinkKey, LinkState};

    fn link(ap: Uuid, cpe: Uuid, signal: i16) -> Link {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 7, 0, 0).unwrap();
        Link {
            key: LinkKey {
                ap: DeviceId(ap),
                cpe: DeviceId(cpe),
            },
            interface: "wlan1".into(),
            client_mac: "02:00:00:00:00:01".parse().unwrap(),
            signal_dbm: Some(signal),
            tx_ccq: None,
            tx_rate: None,
            rx_rate: None,
            state: LinkState::Active,
            missed_polls: 0,
            discovered_at: at,
            last_seen: at,
            state_since: at,
        }
    }

    fn macs(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn an_aps_links_are_served_only_at_the_version_they_were_written_at() {
        let cache = LinkCache::default();
        let (tenant, ap, cpe) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let first = cache.known(tenant, &[(ap, None)], 1, &BTreeSet::new());
        assert_eq!(first.aps_to_read, vec![ap], "nothing cached yet");
        cache.learn(Learned {
            tenant,
            aps: vec![(ap, 4, vec![link(ap, cpe, -60)])],
            ..Learned::default()
        });
        let same = cache.known(tenant, &[(ap, Some(4))], 1, &BTreeSet::new());
        assert!(same.aps_to_read.is_empty());
        assert_eq!(same.links, vec![link(ap, cpe, -60)]);
        let moved = cache.known(tenant, &[(ap, Some(5))], 1, &BTreeSet::new());
        assert_eq!(moved.aps_to_read, vec![ap], "someone else wrote the AP's links");
        assert!(moved.links.is_empty());
        let other_tenant = cache.known(Uuid::new_v4(), &[(ap, Some(4))], 1, &BTreeSet::new());
        assert_eq!(other_tenant.aps_to_read, vec![ap], "never across tenants");
    }

    #[test]
    fn a_batch_that_committed_after_a_newer_one_does_not_overwrite_it() {
        let cache = LinkCache::default();
        let (tenant, ap, cpe) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for (version, signal) in [(7, -61), (6, -75)] {
            cache.learn(Learned {
                tenant,
                aps: vec![(ap, version, vec![link(ap, cpe, signal)])],
                ..Learned::default()
            });
        }
        assert_eq!(
            cache.known(tenant, &[(ap, Some(7))], 0, &BTreeSet::new()).links,
            vec![link(ap, cpe, -61)]
        );
        cache.learn(Learned {
            tenant,
            forget: vec![ap],
            ..Learned::default()
        });
        assert_eq!(cache.len().0, 0, "forgotten");
    }

    #[test]
    fn mac_owners_are_kept_per_interface_version_including_clients_nobody_owns() {
        let cache = LinkCache::default();
        let (tenant, cpe) = (Uuid::new_v4(), Uuid::new_v4());
        let asked = macs(&["02:00:00:00:00:01", "02:00:00:00:00:02"]);
        assert_eq!(cache.known(tenant, &[], 3, &asked).macs_to_read, asked);
        cache.learn(Learned {
            tenant,
            owners: (
                3,
                vec![
                    ("02:00:00:00:00:01".into(), vec![cpe]),
                    ("02:00:00:00:00:02".into(), vec![]),
                ],
            ),
            ..Learned::default()
        });
        let known = cache.known(
            tenant,
            &[],
            3,
            &macs(&["02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"]),
        );
        assert_eq!(known.owners, vec![(cpe, "02:00:00:00:00:01".to_owned())]);
        assert_eq!(
            known.macs_to_read,
            macs(&["02:00:00:00:00:03"]),
            "only the MAC never looked up"
        );
        let moved = cache.known(tenant, &[], 4, &asked);
        assert_eq!(
            moved.macs_to_read, asked,
            "an interface changed: every owner is read again"
        );
        cache.learn(Learned {
            tenant,
            owners: (4, vec![("02:00:00:00:00:02".into(), vec![cpe])]),
            ..Learned::default()
        });
        assert_eq!(cache.len().1, 1, "the older version's owners went");
        cache.learn(Learned {
            tenant,
            owners: (3, vec![("02:00:00:00:00:01".into(), vec![cpe])]),
            ..Learned::default()
        });
        assert_eq!(cache.len().1, 1, "a late batch at an older version adds nothing");
    }
}
