//! The simulated world: sites, access points with radios, CPEs, plain routers — and every value
//! they report, as pure functions of (seed, entity, simulated time).
//!
//! Nothing ticks: a device's CPU load, counters, uptime and its radios' registration tables are
//! computed when asked, so thousands of idle devices cost only their static description, and any
//! reply is reproducible from (seed, time). A CPE's station MAC in its AP's registration table is
//! that CPE's own interface MAC, so link discovery resolves end to end; some registrations are
//! foreign MACs (phones, other vendors' radios) that resolve to nothing.

use std::fmt;

use tod_core::MacAddr;

/// A stateless 64-bit mixer (the SplitMix64 finaliser).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A value in `0..n` from the inputs.
pub fn pick(seed: u64, a: u64, b: u64, n: u64) -> u64 {
    mix(seed ^ mix(a ^ mix(b))) % n.max(1)
}

/// A value in `[0, 1)` from the inputs.
pub fn unit(seed: u64, a: u64, b: u64) -> f64 {
    (mix(seed ^ mix(a ^ mix(b))) >> 11) as f64 / (1u64 << 53) as f64
}

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sector access point.
    Ap,
    /// Customer radio.
    Cpe,
    /// Site router.
    Router,
}

/// The wireless menu a device has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Package {
    /// `/interface/wireless` (v6, and the legacy package on v7).
    Wireless,
    /// `/interface/wifiwave2` (7.x before 7.13).
    Wifiwave2,
    /// `/interface/wifi` (7.13+).
    Wifi,
    /// No wireless package.
    None,
}

impl Package {
    /// The menu prefix, e.g. `/interface/wifi`.
    pub fn menu(self) -> Option<&'static str> {
        match self {
            Self::Wireless => Some("/interface/wireless"),
            Self::Wifiwave2 => Some("/interface/wifiwave2"),
            Self::Wifi => Some("/interface/wifi"),
            Self::None => None,
        }
    }

    /// The package name in `/system/package`.
    pub fn package_name(self) -> Option<&'static str> {
        match self {
            Self::Wireless => Some("wireless"),
            Self::Wifiwave2 => Some("wifiwave2"),
            Self::Wifi => Some("wifi-qcom"),
            Self::None => None,
        }
    }

    /// The interface type string of its radios.
    pub fn iface_type(self) -> &'static str {
        match self {
            Self::Wireless => "wlan",
            Self::Wifiwave2 => "wifiwave2",
            Self::Wifi | Self::None => "wifi",
        }
    }
}

/// A RouterOS version as the simulator renders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
    /// Patch.
    pub patch: u16,
    /// `stable` or `long-term`.
    pub long_term: bool,
}

impl Version {
    /// RouterOS ≥ 6.43 accepts the plain login; older only the MD5 challenge.
    pub fn plain_login(self) -> bool {
        (self.major, self.minor) >= (6, 43)
    }
    /// RouterOS ≥ 7.18 answers `!empty` for commands without data.
    pub fn sends_empty(self) -> bool {
        (self.major, self.minor) >= (7, 18)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{} ({})",
            self.major,
            self.minor,
            self.patch,
            if self.long_term { "long-term" } else { "stable" }
        )
    }
}

/// A network interface.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Iface {
    /// Name (`ether1`, `wlan1`).
    pub name: String,
    /// RouterOS type string.
    #[serde(rename = "type")]
    pub kind: String,
    /// MAC address.
    pub mac: MacAddr,
}

/// How a client behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// Associated, signal drifting around its base.
    Steady,
    /// Drops out for a few minutes at a time.
    Flapping,
    /// Dies at a point in time and never comes back.
    Dying,
    /// Loses signal slowly (antenna alignment, foliage): −0.5 dB a day.
    Degrading,
    /// Moves between two APs of its site: here in even hours when `phase` is 0, odd when 1.
    Roaming {
        /// Which hours it spends here.
        phase: u8,
    },
}

/// A client slot on an AP radio.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Client {
    /// The CPE device, or `None` for a foreign MAC.
    pub cpe: Option<usize>,
    /// The MAC the AP sees.
    pub mac: MacAddr,
    /// Typical signal, dBm.
    pub base_signal: i16,
    /// Behaviour.
    pub behaviour: Behaviour,
    /// Distance, metres.
    pub distance_m: u32,
}

/// A radio of an AP.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Radio {
    /// Index into the device's interfaces.
    pub iface: usize,
    /// Centre frequency, MHz.
    pub frequency_mhz: u32,
    /// Clients.
    pub clients: Vec<Client>,
}

/// One simulated device.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Device {
    /// Position in the world (also the port offset).
    pub index: usize,
    /// Identity.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Site number.
    pub site: usize,
    /// Version.
    #[serde(serialize_with = "ser_display")]
    pub version: Version,
    /// Wireless package.
    pub package: Package,
    /// Board name.
    pub board: String,
    /// Serial number.
    pub serial: String,
    /// Interfaces.
    pub interfaces: Vec<Iface>,
    /// Radios (APs only).
    pub radios: Vec<Radio>,
    /// For a CPE: (AP index, radio index).
    pub ap: Option<(usize, usize)>,
    /// Per-device seed.
    pub seed: u64,
}

fn ser_display<S: serde::Serializer, T: fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The whole world.
#[derive(Debug, Clone)]
pub struct World {
    /// Seed everything derives from.
    pub seed: u64,
    /// Devices by index.
    pub devices: Vec<Device>,
    /// Number of sites.
    pub sites: usize,
}

const VERSIONS: [(Version, u64); 6] = [
    (
        Version {
            major: 6,
            minor: 42,
            patch: 12,
            long_term: true,
        },
        5,
    ),
    (
        Version {
            major: 6,
            minor: 49,
            patch: 10,
            long_term: true,
        },
        30,
    ),
    (
        Version {
            major: 7,
            minor: 10,
            patch: 2,
            long_term: false,
        },
        10,
    ),
    (
        Version {
            major: 7,
            minor: 16,
            patch: 2,
            long_term: false,
        },
        25,
    ),
    (
        Version {
            major: 7,
            minor: 18,
            patch: 2,
            long_term: false,
        },
        10,
    ),
    (
        Version {
            major: 7,
            minor: 19,
            patch: 4,
            long_term: false,
        },
        20,
    ),
];

fn version_for(seed: u64, index: usize) -> Version {
    let total: u64 = VERSIONS.iter().map(|v| v.1).sum();
    let mut r = pick(seed, index as u64, 1, total);
    for (v, w) in VERSIONS {
        if r < w {
            return v;
        }
        r -= w;
    }
    VERSIONS[0].0
}

fn package_for(v: Version, seed: u64, index: usize) -> Package {
    match (v.major, v.minor) {
        (6, _) => Package::Wireless,
        (7, m) if m < 13 => {
            if pick(seed, index as u64, 2, 2) == 0 {
                Package::Wifiwave2
            } else {
                Package::Wireless
            }
        }
        _ => {
            if pick(seed, index as u64, 2, 4) == 0 {
                Package::Wireless
            } else {
                Package::Wifi
            }
        }
    }
}

/// A locally administered MAC for (device, interface).
pub fn device_mac(seed: u64, device: usize, iface: usize) -> MacAddr {
    let x = mix(seed ^ 0x004d_4143) as u32;
    let b = ((x as u64) << 24 | (device as u64 & 0xff_ffff)) ^ ((iface as u64) << 42);
    let mut m = MacAddr::from_u64(b).octets();
    m[0] = (m[0] & 0xfc) | 0x02;
    MacAddr::new(m)
}

impl World {
    /// Generates `count` devices from `seed`: sites of one router and 1–3 APs (1–4 radios each)
    /// with up to 20 CPEs per radio, until the count is reached.
    pub fn generate(seed: u64, count: usize) -> Self {
        let mut devices: Vec<Device> = Vec::with_capacity(count);
        let mut site = 0usize;
        while devices.len() < count {
            site += 1;
            let router = devices.len();
            devices.push(Self::device(seed, router, site, Role::Router));
            let aps = 1 + pick(seed, site as u64, 3, 3) as usize;
            for _ in 0..aps {
                if devices.len() >= count {
                    break;
                }
                let ap = devices.len();
                let mut dev = Self::device(seed, ap, site, Role::Ap);
                let radios = 1 + pick(seed, ap as u64, 4, 4) as usize;
                let package = if dev.package == Package::None {
                    Package::Wireless
                } else {
                    dev.package
                };
                dev.package = package;
                for r in 0..radios {
                    let iface = dev.interfaces.len();
                    dev.interfaces.push(Iface {
                        name: format!(
                            "{}{}",
                            if package == Package::Wireless { "wlan" } else { "wifi" },
                            r + 1
                        ),
                        kind: package.iface_type().into(),
                        mac: device_mac(seed, ap, iface),
                    });
                    dev.radios.push(Radio {
                        iface,
                        frequency_mhz: 5180 + 20 * pick(seed, ap as u64, 10 + r as u64, 30) as u32,
                        clients: Vec::new(),
                    });
                }
                devices.push(dev);
                for r in 0..radios {
                    let clients = pick(seed, ap as u64, 20 + r as u64, 21) as usize;
                    for c in 0..clients {
                        let h = (ap * 64 + r * 16 + c) as u64;
                        let base_signal = -48 - pick(seed, h, 5, 34) as i16;
                        let behaviour = match pick(seed, h, 6, 40) {
                            0 => Behaviour::Flapping,
                            1 => Behaviour::Dying,
                            2 | 3 => Behaviour::Degrading,
                            _ => Behaviour::Steady,
                        };
                        let distance_m = 300 + pick(seed, h, 7, 8000) as u32;
                        if pick(seed, h, 8, 10) == 0 || devices.len() >= count {
                            // A foreign client: a MAC no device owns.
                            let mac = MacAddr::from_u64(0xdc_a6_32_00_00_00 | (mix(seed ^ h) & 0xff_ffff));
                            devices[ap].radios[r].clients.push(Client {
                                cpe: None,
                                mac,
                                base_signal,
                                behaviour,
                                distance_m,
                            });
                            continue;
                        }
                        let cpe = devices.len();
                        let mut dev = Self::device(seed, cpe, site, Role::Cpe);
                        dev.package = if dev.version.major == 6 {
                            Package::Wireless
                        } else {
                            Package::Wifi
                        };
                        let iface = dev.interfaces.len();
                        dev.interfaces.push(Iface {
                            name: if dev.package == Package::Wireless {
                                "wlan1".into()
                            } else {
                                "wifi1".into()
                            },
                            kind: dev.package.iface_type().into(),
                            mac: device_mac(seed, cpe, iface),
                        });
                        dev.ap = Some((ap, r));
                        let mac = dev.interfaces[iface].mac;
                        devices.push(dev);
                        // Every tenth CPE at a site with an earlier AP roams between the two.
                        let other_ap = (router + 1..ap).rev().find(|&a| devices[a].role == Role::Ap);
                        let behaviour = match other_ap {
                            Some(other) if pick(seed, h, 9, 10) == 0 => {
                                let roam = Behaviour::Roaming { phase: 1 };
                                let c = Client {
                                    cpe: Some(cpe),
                                    mac,
                                    base_signal: base_signal - 4,
                                    behaviour: roam,
                                    distance_m,
                                };
                                devices[other].radios[0].clients.push(c);
                                Behaviour::Roaming { phase: 0 }
                            }
                            _ => behaviour,
                        };
                        devices[ap].radios[r].clients.push(Client {
                            cpe: Some(cpe),
                            mac,
                            base_signal,
                            behaviour,
                            distance_m,
                        });
                    }
                }
            }
        }
        Self {
            seed,
            devices,
            sites: site,
        }
    }

    fn device(seed: u64, index: usize, site: usize, role: Role) -> Device {
        let version = version_for(seed, index);
        let package = if role == Role::Router {
            Package::None
        } else {
            package_for(version, seed, index)
        };
        let (board, name) = match role {
            Role::Router => ("CCR2004-1G-12S+2XS", format!("site{site}-router")),
            Role::Ap => ("RB922UAGS-5HPacD", format!("site{site}-ap{index}")),
            Role::Cpe => ("LHG 5 ac", format!("cpe{index}")),
        };
        let ethers = if role == Role::Router { 4 } else { 1 };
        let interfaces = (0..ethers)
            .map(|i| Iface {
                name: format!("ether{}", i + 1),
                kind: "ether".into(),
                mac: device_mac(seed, index, i),
            })
            .collect();
        Device {
            index,
            name,
            role,
            site,
            version,
            package,
            board: board.into(),
            serial: format!("{:012X}", mix(seed ^ index as u64) & 0xffff_ffff_ffff),
            interfaces,
            radios: Vec::new(),
            ap: None,
            seed: mix(seed ^ (index as u64).wrapping_mul(0x9e37)),
        }
    }
}

/// A client's signal at simulated time `t` (seconds), or `None` when it is not associated.
///
/// signal = base − slow degradation + diurnal ±1 dB + per-minute noise ±2 dB − rain fade, where
/// rain falls on a site in some 6-hour blocks for 20–60 minutes, 8–15 dB deep.
pub fn client_signal(
    world_seed: u64,
    site: usize,
    ap: usize,
    radio: usize,
    slot: usize,
    c: &Client,
    t: f64,
) -> Option<i16> {
    let h = (ap * 64 + radio * 16 + slot) as u64;
    let minute = (t / 60.0).floor() as i64 as u64;
    match c.behaviour {
        Behaviour::Flapping if (minute / 3) % 4 == 1 => return None,
        Behaviour::Roaming { phase } if (minute / 60) % 2 != u64::from(phase) => return None,
        Behaviour::Dying if t > dies_at(world_seed, ap, radio, slot) => return None,
        _ => {}
    }
    let degrade = if c.behaviour == Behaviour::Degrading {
        0.5 * t / 86_400.0
    } else {
        0.0
    };
    let diurnal = (t / 86_400.0 * std::f64::consts::TAU + h as f64).sin();
    let noise = pick(world_seed ^ minute, h, 11, 5) as f64 - 2.0;
    let s = f64::from(c.base_signal) - degrade + diurnal + noise - rain_fade(world_seed, site, t);
    Some(s.round().clamp(-110.0, -20.0) as i16)
}

/// When a dying client in `slot` of access point `ap`'s radio `radio` dies: 2 to 22 hours into
/// the world, simulated seconds.
pub fn dies_at(world_seed: u64, ap: usize, radio: usize, slot: usize) -> f64 {
    let h = (ap * 64 + radio * 16 + slot) as u64;
    3_600.0 * (2.0 + 20.0 * unit(world_seed, h, 9))
}

/// A signal `fade_db` weaker (an injected fade: rain over a tower, an obstruction), clamped as
/// the world's own signal is.
pub fn faded(signal: i16, fade_db: f64) -> i16 {
    if fade_db == 0.0 || !fade_db.is_finite() {
        return signal;
    }
    (f64::from(signal) - fade_db).round().clamp(-110.0, -20.0) as i16
}

/// Rain attenuation over a site at time `t`, dB (0 when dry).
pub fn rain_fade(world_seed: u64, site: usize, t: f64) -> f64 {
    let block = (t / RAIN_BLOCK_SECS).floor() as i64 as u64;
    match rain_window(world_seed, site, block) {
        Some((start, end, db)) if t >= start && t < end => db,
        _ => 0.0,
    }
}

/// Rain is decided per site in blocks of this many simulated seconds (6 hours).
const RAIN_BLOCK_SECS: f64 = 21_600.0;

/// The rain on a site in 6-hour block `block`, if it rains in it: (start, end, fade dB). It rains
/// in one block of six, for 20–60 minutes starting within its first four hours, 8–15 dB deep.
pub fn rain_window(world_seed: u64, site: usize, block: u64) -> Option<(f64, f64, f64)> {
    if pick(world_seed, site as u64 ^ block << 20, 12, 6) != 0 {
        return None;
    }
    let start = RAIN_BLOCK_SECS * block as f64 + 3_600.0 * unit(world_seed, site as u64, block ^ 13) * 4.0;
    let len = 1_200.0 + 2_400.0 * unit(world_seed, site as u64, block ^ 14);
    Some((
        start,
        start + len,
        8.0 + 7.0 * unit(world_seed, site as u64, block ^ 15),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn worlds_are_reproducible_and_sized_exactly() {
        let a = World::generate(7, 500);
        let b = World::generate(7, 500);
        assert_eq!(a.devices.len(), 500);
        assert_eq!(
            a.devices.iter().map(|d| &d.name).collect::<Vec<_>>(),
            b.devices.iter().map(|d| &d.name).collect::<Vec<_>>()
        );
        assert_ne!(
            World::generate(8, 500).devices[3].interfaces[0].mac,
            a.devices[3].interfaces[0].mac
        );
    }

    #[test]
    fn cpe_macs_in_registration_tables_are_the_cpes_own_and_macs_are_unique() {
        let w = World::generate(42, 2000);
        let mut macs = HashSet::new();
        for d in &w.devices {
            for i in &d.interfaces {
                assert!(macs.insert(i.mac), "duplicate MAC {}", i.mac);
            }
        }
        let mut cpes = 0;
        let mut foreign = 0;
        for d in w.devices.iter().filter(|d| d.role == Role::Ap) {
            for (r, radio) in d.radios.iter().enumerate() {
                for c in &radio.clients {
                    match c.cpe {
                        Some(i) => {
                            cpes += 1;
                            let cpe = &w.devices[i];
                            assert!(cpe.interfaces.iter().any(|f| f.mac == c.mac));
                            if c.behaviour != (Behaviour::Roaming { phase: 1 }) {
                                assert_eq!(cpe.ap, Some((d.index, r)));
                            }
                        }
                        None => {
                            foreign += 1;
                            assert!(!macs.contains(&c.mac));
                        }
                    }
                }
            }
        }
        assert!(cpes > 500 && foreign > 20, "{cpes} cpes, {foreign} foreign");
        // A roaming CPE appears on two APs of its site, never on both at once.
        let roamers: Vec<&Client> = w
            .devices
            .iter()
            .flat_map(|d| d.radios.iter().flat_map(|r| r.clients.iter()))
            .filter(|c| matches!(c.behaviour, Behaviour::Roaming { .. }))
            .collect();
        assert!(!roamers.is_empty());
        for c in &roamers {
            assert_eq!(roamers.iter().filter(|o| o.mac == c.mac).count(), 2);
        }
        let legacy = w.devices.iter().filter(|d| !d.version.plain_login()).count();
        let empty = w.devices.iter().filter(|d| d.version.sends_empty()).count();
        assert!(legacy > 0 && empty > 0);
        for p in [Package::Wireless, Package::Wifiwave2, Package::Wifi] {
            assert!(w.devices.iter().any(|d| d.role == Role::Ap && d.package == p), "{p:?}");
        }
    }

    #[test]
    fn signals_are_pure_functions_of_time() {
        let c = Client {
            cpe: None,
            mac: MacAddr::from_u64(1),
            base_signal: -60,
            behaviour: Behaviour::Steady,
            distance_m: 1,
        };
        for t in [0.0, 61.0, 86_400.0 * 3.0] {
            assert_eq!(client_signal(1, 1, 2, 0, 0, &c, t), client_signal(1, 1, 2, 0, 0, &c, t));
            let s = client_signal(1, 1, 2, 0, 0, &c, t).unwrap();
            assert!((-80..=-55).contains(&s), "{s}");
        }
        let flap = Client {
            behaviour: Behaviour::Flapping,
            ..c.clone()
        };
        let absent = (0..120)
            .filter(|m| client_signal(1, 1, 2, 0, 0, &flap, *m as f64 * 60.0).is_none())
            .count();
        assert_eq!(absent, 30);
        let dying = Client {
            behaviour: Behaviour::Dying,
            ..c
        };
        assert!(client_signal(1, 1, 2, 0, 0, &dying, 0.0).is_some());
        assert!(client_signal(1, 1, 2, 0, 0, &dying, 86_400.0 * 2.0).is_none());
    }
}
