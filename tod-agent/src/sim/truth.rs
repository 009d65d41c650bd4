//! The simulator's truth: what really happened in the simulated network, at any simulated time.
//!
//! Two sources make it up. The world's own life is scheduled: flapping clients drop out for 3
//! minutes of every 12, roaming clients change access point every hour, dying clients go for
//! good at their hour, rain falls on sites in some 6-hour blocks, degrading links lose 0.5 dB a
//! day — all pure functions of (seed, time), listed by [`scheduled`]. What a test or a scenario
//! does to it (faults, reboots, package switches, and events outside the simulator such as a
//! tower's backhaul failing) is recorded in a [`Journal`] with its simulated time. From the two,
//! [`Truth::at`] gives the state of every device and every access point ↔ client association at
//! any simulated time, past or present: the answers the field-truth scorer compares TOD with.

use std::sync::Mutex;

use serde::Serialize;

use super::state::Faults;
use super::world::{Behaviour, Client, Package, Role, World, client_signal, dies_at, faded, rain_window};

/// What was done to the simulated network.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A device's faults were replaced by these.
    Faults {
        /// The faults from then on.
        faults: Faults,
    },
    /// A device was rebooted.
    Reboot,
    /// A device's wireless package was switched (which reboots it).
    Package {
        /// The package from then on.
        package: Package,
    },
    /// Something outside the simulator, recorded so the truth is complete (a tower's backhaul
    /// failing: the network is fine, the system watching it cannot see it).
    Noted {
        /// What happened (`backhaul_outage`).
        kind: String,
        /// What it hit (`Tower 01`).
        target: String,
        /// Until when, simulated seconds; `None`: for good, or a moment.
        until: Option<f64>,
    },
}

/// One change with its simulated time and the device it was made to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Simulated seconds.
    pub at: f64,
    /// The device, for a change to one.
    pub device: Option<usize>,
    /// The change.
    #[serde(flatten)]
    pub change: Change,
}

/// Every change made to the simulated network, in the order made.
#[derive(Debug, Default)]
pub struct Journal {
    records: Mutex<Vec<Record>>,
}

impl Journal {
    /// Appends a record.
    pub fn push(&self, record: Record) {
        self.records.lock().expect("journal lock").push(record);
    }

    /// Every record so far.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().expect("journal lock").clone()
    }
}

/// An event of the truth: scheduled by the world, or made by a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When it began, simulated seconds.
    pub at: f64,
    /// When it ended; `None` for a moment, or for good.
    pub until: Option<f64>,
    /// `world` (scheduled), `injected` (a change to the simulator) or `noted` (outside it).
    pub source: &'static str,
    /// What: `client_drop`, `roam_away`, `client_death`, `rain`, `drift`, `power_off`, `fade`,
    /// `faults`, `reboot`, `package_switch`, or a noted event's own kind.
    pub kind: String,
    /// The device it hit, by name (a client's own radio, when it is a managed device); for a
    /// noted event, what it hit (`Tower 01`).
    pub device: Option<String>,
    /// The site (world numbering, from 1).
    pub site: Option<usize>,
    /// The association it hit, for a client's event.
    pub link: Option<LinkRef>,
    /// Particulars: a fade's depth, a drift's rate, a fault set, a package.
    pub detail: serde_json::Value,
}

/// An access point ↔ client association of the world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkRef {
    /// The access point's name.
    pub ap: String,
    /// Its radio (index from 0).
    pub radio: usize,
    /// The client's MAC as the access point sees it.
    pub mac: String,
    /// The client's device name, when TOD could manage it (`None`: a foreign MAC).
    pub cpe: Option<String>,
}

/// The truth about one device at a moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceTruth {
    /// Index in the world.
    pub index: usize,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Site (from 1).
    pub site: usize,
    /// Powered on.
    pub up: bool,
    /// The last boot, simulated seconds (negative: before the world began).
    pub booted_at: f64,
    /// Injected extra path loss on its links, dB.
    pub fade_db: f64,
}

/// The truth about one association at a moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssociationTruth {
    /// The access point's index.
    pub ap: usize,
    /// Its radio.
    pub radio: usize,
    /// The client's slot on the radio.
    pub slot: usize,
    /// The client's MAC.
    pub mac: String,
    /// The client's device index, when it is a managed radio.
    pub cpe: Option<usize>,
    /// How the client behaves.
    pub behaviour: Behaviour,
    /// Associated now: the access point and the client's radio are on, and the client is
    /// associated in the world's schedule.
    pub associated: bool,
    /// The signal the access point hears, dBm, when associated (rain and injected fades
    /// included).
    pub signal: Option<i16>,
}

/// The whole truth at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Simulated seconds.
    pub at: f64,
    /// Every device.
    pub devices: Vec<DeviceTruth>,
    /// Every association of every access point radio.
    pub associations: Vec<AssociationTruth>,
    /// Sites it is raining on, with the rain's fade, dB.
    pub rain: Vec<(usize, f64)>,
}

/// The truth of a world given its journal.
#[derive(Debug)]
pub struct Truth<'a> {
    world: &'a World,
    records: Vec<Record>,
    first_boot: &'a [f64],
}

impl<'a> Truth<'a> {
    /// The truth of `world`, whose devices first booted at `first_boot`, with these changes.
    pub fn new(world: &'a World, first_boot: &'a [f64], records: Vec<Record>) -> Self {
        Self {
            world,
            records,
            first_boot,
        }
    }

    /// Every device's faults in force at `t`: the last set at or before it.
    fn faults_at(&self, t: f64) -> Vec<Faults> {
        let mut out = vec![Faults::default(); self.world.devices.len()];
        for r in self.records.iter().filter(|r| r.at <= t) {
            if let (Some(d), Change::Faults { faults }) = (r.device, &r.change)
                && let Some(slot) = out.get_mut(d)
            {
                *slot = faults.clone();
            }
        }
        out
    }

    /// The state of every device and association at simulated time `t`.
    pub fn at(&self, t: f64) -> Snapshot {
        let faults = self.faults_at(t);
        let up = |d: usize| !faults[d].offline_until.is_some_and(|until| t < until);
        let mut booted: Vec<f64> = self.first_boot.to_vec();
        for r in self.records.iter().filter(|r| r.at <= t) {
            if let (Some(d), Change::Reboot | Change::Package { .. }) = (r.device, &r.change)
                && let Some(b) = booted.get_mut(d)
            {
                *b = r.at;
            }
        }
        let devices = self
            .world
            .devices
            .iter()
            .map(|d| DeviceTruth {
                index: d.index,
                name: d.name.clone(),
                role: d.role,
                site: d.site,
                up: up(d.index),
                booted_at: booted.get(d.index).copied().unwrap_or(0.0),
                fade_db: faults[d.index].fade_at(t),
            })
            .collect();
        let mut associations = Vec::new();
        for ap in self.world.devices.iter().filter(|d| d.role == Role::Ap) {
            for (r, radio) in ap.radios.iter().enumerate() {
                for (slot, c) in radio.clients.iter().enumerate() {
                    let signal = heard(self.world, ap.index, r, slot, c, t, &|d| faults[d].clone());
                    associations.push(AssociationTruth {
                        ap: ap.index,
                        radio: r,
                        slot,
                        mac: c.mac.to_string(),
                        cpe: c.cpe,
                        behaviour: c.behaviour,
                        associated: signal.is_some(),
                        signal,
                    });
                }
            }
        }
        let rain = (1..=self.world.sites)
            .filter_map(|s| {
                let db = super::world::rain_fade(self.world.seed, s, t);
                (db > 0.0).then_some((s, db))
            })
            .collect();
        Snapshot {
            at: t,
            devices,
            associations,
            rain,
        }
    }

    /// Every event that overlaps `[from, until)`: the world's schedule and the journal's
    /// changes, by the time each began.
    pub fn events(&self, from: f64, until: f64) -> Vec<Event> {
        let mut out = scheduled(self.world, from, until);
        out.extend(
            self.injected()
                .into_iter()
                .filter(|e| e.at < until && (e.at >= from || e.until.is_some_and(|end| end > from))),
        );
        out.sort_by(|a, b| a.at.total_cmp(&b.at));
        out
    }

    /// The journal's changes as events. A power-off or fade lasts until it runs out or a later
    /// change ends it; setting it again unchanged (while adding another fault) continues it.
    fn injected(&self) -> Vec<Event> {
        let mut out = Vec::new();
        let name = |d: Option<usize>| d.and_then(|d| self.world.devices.get(d)).map(|d| d.name.clone());
        let site = |d: Option<usize>| d.and_then(|d| self.world.devices.get(d)).map(|d| d.site);
        // The faults device `d` had before record `i`.
        let faults_before = |d: usize, i: usize| -> Option<Faults> {
            self.records[..i]
                .iter()
                .rev()
                .find_map(|r| match (&r.change, r.device) {
                    (Change::Faults { faults }, Some(x)) if x == d => Some(faults.clone()),
                    _ => None,
                })
        };
        for (i, r) in self.records.iter().enumerate() {
            let event = |kind: &str, until: Option<f64>, detail: serde_json::Value| Event {
                at: r.at,
                until,
                source: "injected",
                kind: kind.into(),
                device: name(r.device),
                site: site(r.device),
                link: None,
                detail,
            };
            match (&r.change, r.device) {
                (Change::Faults { faults }, Some(d)) => {
                    let before = faults_before(d, i);
                    // The end of what `key` picks: when it runs out, or the first later change of it.
                    let span = |key: &dyn Fn(&Faults) -> Option<(f64, u64)>| -> Option<(f64, bool)> {
                        let (end, _) = key(faults).filter(|(end, _)| *end > r.at)?;
                        let continued = before.as_ref().and_then(key) == key(faults);
                        let changed =
                            self.records[i + 1..]
                                .iter()
                                .filter(|n| n.device == Some(d))
                                .find_map(|n| match &n.change {
                                    Change::Faults { faults: f } if key(f) != key(faults) => Some(n.at),
                                    _ => None,
                                });
                        Some((changed.map_or(end, |c| c.min(end)), continued))
                    };
                    let power = |f: &Faults| f.offline_until.map(|u| (u, 0));
                    let fade = |f: &Faults| {
                        f.fade_until
                            .filter(|_| f.fade_db > 0.0 && f.fade_db.is_finite())
                            .map(|u| (u, f.fade_db.to_bits()))
                    };
                    let drift = |f: &Faults| {
                        f.fade_until
                            .filter(|_| f.fade_db_per_day > 0.0 && f.fade_db_per_day.is_finite())
                            .map(|u| (u, f.fade_db_per_day.to_bits() ^ f.fade_since.unwrap_or(0.0).to_bits()))
                    };
                    if let Some((end, false)) = span(&power) {
                        out.push(event("power_off", Some(end), serde_json::Value::Null));
                    }
                    if let Some((end, false)) = span(&fade) {
                        out.push(event("fade", Some(end), serde_json::json!({"db": faults.fade_db})));
                    }
                    if let Some((end, false)) = span(&drift) {
                        out.push(Event {
                            at: faults.fade_since.unwrap_or(r.at).max(r.at),
                            ..event(
                                "drift",
                                Some(end),
                                serde_json::json!({"db_per_day": -faults.fade_db_per_day}),
                            )
                        });
                    }
                    // Any other fault (refusing, silent, slow) is the device's API misbehaving,
                    // not the network: listed as it was set, when it changed.
                    let others = |f: &Faults| Faults {
                        offline_until: None,
                        fade_db: 0.0,
                        fade_until: None,
                        fade_db_per_day: 0.0,
                        fade_since: None,
                        ..f.clone()
                    };
                    let rest = others(faults);
                    if before.as_ref().map_or(Faults::default(), others) != rest {
                        out.push(event("faults", None, serde_json::to_value(&rest).unwrap_or_default()));
                    }
                }
                (Change::Faults { .. }, None) => {}
                (Change::Reboot, _) => out.push(event("reboot", None, serde_json::Value::Null)),
                (Change::Package { package }, _) => {
                    out.push(event("package_switch", None, serde_json::json!({ "package": package })))
                }
                (Change::Noted { kind, target, until }, _) => out.push(Event {
                    source: "noted",
                    device: Some(target.clone()),
                    ..event(kind, *until, serde_json::Value::Null)
                }),
            }
        }
        out
    }
}

/// The signal access point `ap` hears from the client in `slot` of its radio `radio` at `t`, with
/// the faults in force then (`None`: not associated — the access point or the client's radio is
/// off, or the world's schedule has the client away). The one rule both the registration tables
/// and the truth follow.
pub fn heard(
    world: &World,
    ap: usize,
    radio: usize,
    slot: usize,
    c: &Client,
    t: f64,
    faults: &dyn Fn(usize) -> Faults,
) -> Option<i16> {
    // Each device's faults read once: the registration tables call this for every client.
    let (at_ap, at_cpe) = (faults(ap), c.cpe.map(faults));
    let off = |f: &Faults| f.offline_until.is_some_and(|until| t < until);
    if off(&at_ap) || at_cpe.as_ref().is_some_and(off) {
        return None;
    }
    let fade = at_ap.fade_at(t) + at_cpe.map_or(0.0, |f| f.fade_at(t));
    let site = world.devices[ap].site;
    let s = client_signal(world.seed, site, ap, radio, slot, c, t)?;
    Some(faded(s, fade))
}

/// The world's own events that overlap `[from, until)`: each flapping client's drops, each roaming
/// client's hours away from an access point, each dying client's death, the rain on each site,
/// and (at the world's start) each degrading link's drift.
pub fn scheduled(world: &World, from: f64, until: f64) -> Vec<Event> {
    let mut out = Vec::new();
    if until <= from {
        return out;
    }
    let name = |d: usize| world.devices[d].name.clone();
    for ap in world.devices.iter().filter(|d| d.role == Role::Ap) {
        for (r, radio) in ap.radios.iter().enumerate() {
            for (slot, c) in radio.clients.iter().enumerate() {
                let link = LinkRef {
                    ap: ap.name.clone(),
                    radio: r,
                    mac: c.mac.to_string(),
                    cpe: c.cpe.map(name),
                };
                let event = |kind: &str, at: f64, end: Option<f64>, detail: serde_json::Value| Event {
                    at,
                    until: end,
                    source: "world",
                    kind: kind.into(),
                    device: c.cpe.map(name),
                    site: Some(ap.site),
                    link: Some(link.clone()),
                    detail,
                };
                // Windows `[k·every + offset, … + len)` that overlap the range.
                let mut windows = |kind: &str, every: f64, offset: f64, len: f64| {
                    let first = ((from - offset - len) / every).floor().max(0.0) as u64;
                    let mut k = first;
                    loop {
                        let at = k as f64 * every + offset;
                        if at >= until {
                            break;
                        }
                        if at + len > from {
                            out.push(event(kind, at, Some(at + len), serde_json::Value::Null));
                        }
                        k += 1;
                    }
                };
                match c.behaviour {
                    // Away in minutes 3–5 of every 12 (see `client_signal`).
                    Behaviour::Flapping => windows("client_drop", 720.0, 180.0, 180.0),
                    // Away in the hours of the other phase.
                    Behaviour::Roaming { phase } => {
                        windows("roam_away", 7_200.0, 3_600.0 * f64::from(1 - phase.min(1)), 3_600.0)
                    }
                    Behaviour::Dying => {
                        let at = dies_at(world.seed, ap.index, r, slot);
                        if at >= from && at < until {
                            out.push(event("client_death", at, None, serde_json::Value::Null));
                        }
                    }
                    Behaviour::Degrading => {
                        if from <= 0.0 && until > 0.0 {
                            out.push(event("drift", 0.0, None, serde_json::json!({"db_per_day": -0.5})));
                        }
                    }
                    Behaviour::Steady => {}
                }
            }
        }
    }
    for site in 1..=world.sites {
        let first = (from / 21_600.0).floor().max(0.0) as u64;
        let last = (until / 21_600.0).ceil() as u64;
        for block in first..=last {
            if let Some((at, end, db)) = rain_window(world.seed, site, block)
                && end > from
                && at < until
            {
                out.push(Event {
                    at,
                    until: Some(end),
                    source: "world",
                    kind: "rain".into(),
                    device: None,
                    site: Some(site),
                    link: None,
                    detail: serde_json::json!({ "db": db }),
                });
            }
        }
    }
    out.sort_by(|a, b| a.at.total_cmp(&b.at));
    out
}

/// The truth as JSON lines: every event that overlaps `[from, until)`, then at each of `times` one line per
/// device and one per association. Each line says what it is (`"type"`).
pub fn jsonl(truth: &Truth<'_>, from: f64, until: f64, times: &[f64]) -> String {
    let mut out = String::new();
    let mut line = |v: serde_json::Value| {
        out.push_str(&v.to_string());
        out.push('\n');
    };
    for e in truth.events(from, until) {
        let mut v = serde_json::to_value(&e).unwrap_or_default();
        v["type"] = "event".into();
        line(v);
    }
    for &t in times {
        let s = truth.at(t);
        for d in &s.devices {
            let mut v = serde_json::to_value(d).unwrap_or_default();
            v["type"] = "device".into();
            v["t"] = t.into();
            line(v);
        }
        for a in &s.associations {
            let mut v = serde_json::to_value(a).unwrap_or_default();
            v["type"] = "association".into();
            v["t"] = t.into();
            v["ap_name"] = truth.world.devices[a.ap].name.clone().into();
            v["cpe_name"] = a.cpe.map(|c| truth.world.devices[c].name.clone()).into();
            line(v);
        }
    }
    out
}
