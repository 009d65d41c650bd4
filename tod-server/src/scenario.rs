//! Field-truth scenarios as files: a world (how many devices, which seed, how long a run) and a
//! timeline of faults, so a run is reproducible from (scenario, seed).
//!
//! ```toml
//! name = "ap-power-loss"
//! about = "The busiest access point loses power for 30 simulated minutes."
//!
//! [run]              # defaults; `tod-server score --devices/--minutes/--seed` override them
//! devices = 120
//! minutes = 60       # simulated minutes observed after the warm-up
//! seed = 7
//! speed = 12         # time acceleration (default 30; `--speed` overrides)
//! clock = "wall"     # or "simulated": the server and agents read the simulator's accelerated
//!                    # clock (runs of weeks: the trend detector's windows are real weeks)
//!
//! [[fault]]
//! kind = "power_off"        # power_off | backhaul_outage | tower_reboot | rain | drift
//! label = "ap_power_loss"   # what the report calls it (default: the kind)
//! target = "busiest-ap"     # busiest-ap | busiest-steady-cpe | device:NAME | tower:N | tower:N-M
//! at = "2 polls"            # after the observation begins: s, min, h, d or polls
//! lasts = "30 min"          # or "forever"
//! at_most = "60 %"          # of the run left when it begins (optional)
//! every = "12 min"          # repeat while a whole cycle fits in the run (optional)
//! fade_db = 14              # rain only: how much weaker every link gets
//! db_per_day = 0.5          # drift only: how much weaker its links get each day
//! ```
//!
//! The standard scenarios are files like this one, compiled in (`tod-server/scenarios/`).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use tod_agent::sim::world::{Behaviour, Role, World};

/// The standard scenarios, by name, as their files read.
pub const STANDARD: [(&str, &str); 8] = [
    ("quiet", include_str!("../scenarios/quiet.toml")),
    ("ap-power-loss", include_str!("../scenarios/ap-power-loss.toml")),
    ("dying-cpe", include_str!("../scenarios/dying-cpe.toml")),
    ("flapping-client", include_str!("../scenarios/flapping-client.toml")),
    ("backhaul-outage", include_str!("../scenarios/backhaul-outage.toml")),
    ("mass-reboot", include_str!("../scenarios/mass-reboot.toml")),
    ("rain-fade", include_str!("../scenarios/rain-fade.toml")),
    ("drift", include_str!("../scenarios/drift.toml")),
];

/// A scenario: what the world is, and what happens to it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What it is about, for a reader.
    pub about: String,
    /// The run's defaults.
    #[serde(default)]
    pub run: RunDefaults,
    /// Its faults, in the order given.
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultSpec>,
}

/// A run's defaults, each overridable from the command line.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunDefaults {
    /// Simulated devices.
    pub devices: Option<usize>,
    /// Simulated minutes observed after the warm-up.
    pub minutes: Option<u32>,
    /// World seed.
    pub seed: Option<u64>,
    /// Time acceleration.
    pub speed: Option<f64>,
    /// Which clock the server and agents read.
    pub clock: Option<RunClock>,
}

/// Which clock the server and agents read during a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunClock {
    /// The wall clock: the server sees the accelerated world at its own pace, its windows and
    /// evaluation intervals shrunk by the speed (runs of minutes and hours).
    #[default]
    Wall,
    /// The simulator's accelerated clock: the server's background work, its ingest and the
    /// agents' stamps run as fast as the world, its windows as configured (runs of weeks).
    Simulated,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A device loses power: it answers nothing, and an access point's clients hear nothing.
    PowerOff,
    /// A tower's backhaul fails: its agent is cut off from the server; the network is fine.
    BackhaulOutage,
    /// Every device of a tower reboots at once and is gone while it boots (`lasts`).
    TowerReboot,
    /// Rain over a tower: every link of its access points `fade_db` weaker, both ways.
    Rain,
    /// A device's links get `db_per_day` weaker each day (a customer radio's antenna slowly
    /// knocked out of alignment), until it is put right when the fault ends.
    Drift,
}

impl FaultKind {
    /// Its name in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::PowerOff => "power_off",
            Self::BackhaulOutage => "backhaul_outage",
            Self::TowerReboot => "tower_reboot",
            Self::Rain => "rain",
            Self::Drift => "drift",
        }
    }
}

/// One fault of a scenario's timeline.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// What it does.
    pub kind: FaultKind,
    /// What the report calls it (default: the kind's name).
    pub label: Option<String>,
    /// What it hits.
    pub target: TargetSpec,
    /// When it begins, after the observation begins.
    pub at: Span,
    /// How long it lasts.
    pub lasts: Span,
    /// At most this share of the run left when it begins.
    pub at_most: Option<Span>,
    /// It repeats this often, while a whole cycle fits in the run.
    pub every: Option<Span>,
    /// Rain's fade, dB.
    pub fade_db: Option<f64>,
    /// A drift's rate, dB a day.
    pub db_per_day: Option<f64>,
}

/// A length of simulated time, as a file writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Span {
    /// Seconds.
    Secs(f64),
    /// The agents' poll intervals.
    Polls(f64),
    /// A share of what is left of the run (0–1).
    Share(f64),
    /// For good.
    Forever,
}

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "forever" {
            return Ok(Self::Forever);
        }
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: f64 = number
            .parse()
            .map_err(|_| format!("`{s}`: a number and a unit (s, min, h, d, polls, %), or `forever`"))?;
        if !n.is_finite() {
            return Err(format!("`{s}`: not a finite number"));
        }
        Ok(match unit.trim() {
            "s" => Self::Secs(n),
            "min" => Self::Secs(n * 60.0),
            "h" => Self::Secs(n * 3_600.0),
            "d" => Self::Secs(n * 86_400.0),
            "poll" | "polls" => Self::Polls(n),
            "%" if n <= 100.0 => Self::Share(n / 100.0),
            "%" => return Err(format!("`{s}`: a share is at most 100 %")),
            other => {
                return Err(format!(
                    "`{s}`: unknown unit `{other}` (s, min, h, d, polls, %, or `forever`)"
                ));
            }
        })
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Span {
    /// Simulated seconds, given the poll interval and what is left of the run; `None` for ever.
    fn secs(self, poll_secs: f64, rest: f64) -> Option<f64> {
        match self {
            Self::Secs(s) => Some(s),
            Self::Polls(n) => Some(n * poll_secs),
            Self::Share(x) => Some(x * rest),
            Self::Forever => None,
        }
    }
}

/// What a fault hits, as a file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// The access point with the most links between managed radios.
    BusiestAp,
    /// A steady customer radio on the busiest access point (of those with a steady one).
    BusiestSteadyCpe,
    /// A device by its name in the simulated world.
    Device(String),
    /// Towers `first..=last` (from 1): each one the run has is hit on its own.
    Towers(usize, usize),
}

impl FromStr for TargetSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "busiest-ap, busiest-steady-cpe, device:NAME, tower:N or tower:N-M";
        match s {
            "busiest-ap" => return Ok(Self::BusiestAp),
            "busiest-steady-cpe" => return Ok(Self::BusiestSteadyCpe),
            _ => {}
        }
        if let Some(name) = s.strip_prefix("device:").filter(|n| !n.is_empty()) {
            return Ok(Self::Device(name.to_owned()));
        }
        let towers = s
            .strip_prefix("tower:")
            .ok_or_else(|| format!("`{s}`: a target is {usage}"))?;
        let (a, b) = towers.split_once('-').unwrap_or((towers, towers));
        match (a.parse::<usize>(), b.parse::<usize>()) {
            (Ok(a), Ok(b)) if a >= 1 && a <= b => Ok(Self::Towers(a, b)),
            _ => Err(format!(
                "`{s}`: towers are numbered from 1, as tower:N or tower:N-M with N ≤ M"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for TargetSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BusiestAp => f.write_str("busiest-ap"),
            Self::BusiestSteadyCpe => f.write_str("busiest-steady-cpe"),
            Self::Device(n) => write!(f, "device:{n}"),
            Self::Towers(a, b) if a == b => write!(f, "tower:{a}"),
            Self::Towers(a, b) => write!(f, "tower:{a}-{b}"),
        }
    }
}

/// What a resolved fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One device, by world index.
    Device(usize),
    /// A tower, from 0.
    Tower(usize),
}

/// A fault of the run: resolved against the world and timed in simulated seconds from the
/// observation's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// What it does.
    pub kind: FaultKind,
    /// What the report calls it.
    pub label: String,
    /// What it hits.
    pub target: Target,
    /// When it begins, simulated seconds after the observation begins.
    pub at: f64,
    /// How long it lasts, simulated seconds (`f64::INFINITY`: for good).
    pub length: f64,
    /// Rain's fade, dB.
    pub fade_db: f64,
    /// A drift's rate, dB a day.
    pub db_per_day: f64,
}

/// The most faults one run may plan (repeats and tower ranges unrolled).
pub const MAX_FAULTS: usize = 10_000;

/// The time accelerations a run may have.
pub const SPEEDS: std::ops::RangeInclusive<f64> = 1.0..=100_000.0;

/// A drift's rate when a file gives none, dB a day: a slowly misaligning antenna.
pub const DEFAULT_DRIFT_DB_PER_DAY: f64 = 0.5;

/// The fade of rain when a file gives none, dB: the demo's heavy rain.
pub const DEFAULT_RAIN_DB: f64 = crate::demo::RAIN_FADE_DB;

impl Scenario {
    /// A standard scenario by name, or a scenario file (a path ending in `.toml`).
    pub fn load(name_or_path: &str) -> Result<Self, String> {
        if name_or_path.ends_with(".toml") {
            let text = std::fs::read_to_string(name_or_path).map_err(|e| format!("scenario {name_or_path}: {e}"))?;
            return Self::parse(&text).map_err(|e| format!("scenario {name_or_path}: {e}"));
        }
        let (_, text) = STANDARD.iter().find(|(n, _)| *n == name_or_path).ok_or_else(|| {
            format!(
                "no standard scenario `{name_or_path}` (there are {}; or give a .toml file)",
                STANDARD.map(|(n, _)| n).join(", ")
            )
        })?;
        Self::parse(text).map_err(|e| format!("scenario {name_or_path}: {e}"))
    }

    /// Reads and checks a scenario file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let s: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        if s.name.trim().is_empty() {
            return Err("`name` is empty".into());
        }
        if s.run.devices == Some(0) || s.run.minutes == Some(0) {
            return Err("[run] devices and minutes must be at least 1".into());
        }
        if let Some(speed) = s.run.speed
            && !SPEEDS.contains(&speed)
        {
            return Err(format!("[run] speed {speed}: {} to {}", SPEEDS.start(), SPEEDS.end()));
        }
        for (i, f) in s.faults.iter().enumerate() {
            f.check()
                .map_err(|e| format!("fault {} ({}): {e}", i + 1, f.kind.name()))?;
        }
        Ok(s)
    }

    /// The faults of a run of `minutes` on `world` with `towers` towers, polling every
    /// `poll_secs` simulated seconds: each resolved to what it hits and when, repeats and tower
    /// ranges unrolled, by the time each begins.
    pub fn plan(&self, world: &World, towers: usize, poll_secs: f64, minutes: u32) -> Result<Vec<Planned>, String> {
        let end = f64::from(minutes) * 60.0;
        let mut out = Vec::new();
        for (i, f) in self.faults.iter().enumerate() {
            let err = |e: String| format!("scenario {}: fault {} ({}): {e}", self.name, i + 1, f.kind.name());
            let targets = resolve(&f.target, world, towers).map_err(err)?;
            let first = f.at.secs(poll_secs, end).unwrap_or(end);
            let every = f.every.and_then(|e| e.secs(poll_secs, end - first));
            let mut at = first;
            while at < end {
                let rest = end - at;
                let mut length = f.lasts.secs(poll_secs, rest).unwrap_or(f64::INFINITY);
                if let Some(most) = f.at_most.and_then(|m| m.secs(poll_secs, rest)) {
                    length = length.min(most);
                }
                if let Some(every) = every
                    && at + every > end
                {
                    // Whole cycles only, so each one's return is inside the run.
                    break;
                }
                if out.len() + targets.len() > MAX_FAULTS {
                    return Err(err(format!(
                        "more than {MAX_FAULTS} faults in one run: repeat it less often"
                    )));
                }
                for target in &targets {
                    out.push(Planned {
                        kind: f.kind,
                        label: f.label.clone().unwrap_or_else(|| f.kind.name().to_owned()),
                        target: *target,
                        at,
                        length,
                        fade_db: f.fade_db.unwrap_or(DEFAULT_RAIN_DB),
                        db_per_day: f.db_per_day.unwrap_or(DEFAULT_DRIFT_DB_PER_DAY),
                    });
                }
                match every {
                    Some(every) => at += every,
                    None => break,
                }
            }
        }
        out.sort_by(|a, b| a.at.total_cmp(&b.at));
        Ok(out)
    }
}

impl FaultSpec {
    fn check(&self) -> Result<(), String> {
        let device = matches!(
            self.target,
            TargetSpec::BusiestAp | TargetSpec::BusiestSteadyCpe | TargetSpec::Device(_)
        );
        match (self.kind, device) {
            (FaultKind::PowerOff | FaultKind::Drift, false) => {
                return Err(format!("`{}`: {} hits a device", self.target, self.kind.name()));
            }
            (FaultKind::BackhaulOutage | FaultKind::TowerReboot | FaultKind::Rain, true) => {
                return Err(format!("`{}`: {} hits towers (tower:N)", self.target, self.kind.name()));
            }
            _ => {}
        }
        if matches!(self.at, Span::Forever) {
            return Err("`at` is a time, not `forever`".into());
        }
        if let Some(most) = self.at_most
            && !matches!(most, Span::Share(_))
        {
            return Err("`at_most` is a share of the run left (`60 %`)".into());
        }
        if let Some(every) = self.every {
            match (every, self.lasts) {
                (Span::Secs(e) | Span::Polls(e), _) if e <= 0.0 => return Err("`every` must be more than 0".into()),
                (Span::Share(_) | Span::Forever, _) => return Err("`every` is a time (`12 min`)".into()),
                (_, Span::Forever) => return Err("a fault that lasts for ever cannot repeat".into()),
                _ => {}
            }
        }
        if self.lasts == Span::Secs(0.0) || self.lasts == Span::Polls(0.0) || self.lasts == Span::Share(0.0) {
            return Err("`lasts` must be more than 0".into());
        }
        match (self.kind, self.db_per_day) {
            (FaultKind::Drift, Some(db)) if !(db > 0.0 && db <= 20.0) => {
                return Err(format!(
                    "`db_per_day` {db}: a drift weakens links by more than 0 and at most 20 dB a day"
                ));
            }
            (FaultKind::Drift, _) | (_, None) => {}
            (_, Some(_)) => return Err("`db_per_day` is for drift".into()),
        }
        match (self.kind, self.fade_db) {
            (FaultKind::Rain, Some(db)) if !(db > 0.0 && db <= 60.0) => Err(format!(
                "`fade_db` {db}: rain fades links by more than 0 and at most 60 dB"
            )),
            (FaultKind::Rain, _) | (_, None) => Ok(()),
            (_, Some(_)) => Err("`fade_db` is for rain".into()),
        }
    }
}

/// The links between managed radios of access point `ap`.
fn managed_links(world: &World, ap: usize) -> usize {
    world.devices[ap]
        .radios
        .iter()
        .flat_map(|r| &r.clients)
        .filter(|c| c.cpe.is_some())
        .count()
}

fn resolve(spec: &TargetSpec, world: &World, towers: usize) -> Result<Vec<Target>, String> {
    let aps = || world.devices.iter().filter(|d| d.role == Role::Ap);
    match spec {
        TargetSpec::BusiestAp => aps()
            .max_by_key(|d| (managed_links(world, d.index), std::cmp::Reverse(d.index)))
            .map(|d| vec![Target::Device(d.index)])
            .ok_or_else(|| "the world has no access point".to_owned()),
        TargetSpec::BusiestSteadyCpe => aps()
            .flat_map(|ap| {
                ap.radios
                    .iter()
                    .flat_map(|r| &r.clients)
                    .filter(|c| c.behaviour == Behaviour::Steady)
                    .filter_map(move |c| Some((managed_links(world, ap.index), c.cpe?)))
            })
            .max_by_key(|(links, cpe)| (*links, std::cmp::Reverse(*cpe)))
            .map(|(_, cpe)| vec![Target::Device(cpe)])
            .ok_or_else(|| "the world has no steady customer radio".to_owned()),
        TargetSpec::Device(name) => world
            .devices
            .iter()
            .find(|d| &d.name == name)
            .map(|d| vec![Target::Device(d.index)])
            .ok_or_else(|| format!("the world has no device `{name}`")),
        TargetSpec::Towers(first, last) => {
            if *first > towers {
                return Err(format!("tower {first}: the run has {towers} towers"));
            }
            Ok((*first..=(*last).min(towers)).map(|t| Target::Tower(t - 1)).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_scenario_reads_and_plans() {
        let world = World::generate(7, 120);
        for (name, _) in STANDARD {
            let s = Scenario::load(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.name, name);
            let minutes = s.run.minutes.unwrap_or(60);
            let plan = s.plan(&world, world.sites, 60.0, minutes).unwrap();
            assert_eq!(plan.is_empty(), name == "quiet", "{name}: {plan:?}");
            for p in &plan {
                assert!(
                    p.at >= 0.0 && p.at < f64::from(minutes) * 60.0 && p.length > 0.0,
                    "{name}: {p:?}"
                );
            }
        }
    }

    #[test]
    fn the_standard_timelines_are_as_documented() {
        let world = World::generate(7, 120);
        let plan = |name: &str, minutes| {
            Scenario::load(name)
                .unwrap()
                .plan(&world, world.sites, 60.0, minutes)
                .unwrap()
        };
        // Two polls in, 30 minutes, or 60 % of what is left.
        let ap = &plan("ap-power-loss", 60)[0];
        assert_eq!((ap.at, ap.length, ap.label.as_str()), (120.0, 1_800.0, "ap_power_loss"));
        assert_eq!(plan("ap-power-loss", 15)[0].length, 0.6 * 780.0);
        // 3 minutes of every 12, whole cycles only.
        let flaps = plan("flapping-client", 60);
        assert_eq!(
            flaps.iter().map(|f| (f.at, f.length)).collect::<Vec<_>>(),
            [(120.0, 180.0), (840.0, 180.0), (1_560.0, 180.0), (2_280.0, 180.0)]
        );
        assert!(flaps.windows(2).all(|p| p[0].target == p[1].target));
        assert!(plan("dying-cpe", 60)[0].length.is_infinite());
        let rain = plan("rain-fade", 60);
        assert_eq!(rain.len(), world.sites.min(3));
        assert!(rain.iter().all(|r| r.length == 0.6 * 3_480.0 && r.fade_db == 14.0));
        assert_eq!(plan("rain-fade", 120)[0].length, 2_400.0);
        assert_eq!(plan("mass-reboot", 60)[0].length, 90.0);
        assert_eq!(plan("backhaul-outage", 60)[0].length, 0.6 * 3_480.0);
        // A quiet week, then three weeks of 0.5 dB a day, on a simulated clock.
        let drift = Scenario::load("drift").unwrap();
        assert_eq!(
            (drift.run.speed, drift.run.clock),
            (Some(3_600.0), Some(RunClock::Simulated))
        );
        let d = &plan("drift", 28 * 1_440)[0];
        assert_eq!(
            (d.kind, d.at, d.length, d.db_per_day),
            (FaultKind::Drift, 7.0 * 86_400.0, 21.0 * 86_400.0, 0.5)
        );
    }

    #[test]
    fn bad_scenarios_are_refused_with_the_reason() {
        let base = "name = \"x\"\nabout = \"y\"\n";
        let fault = |body: &str| format!("{base}[[fault]]\n{body}\n");
        for (text, says) in [
            (
                fault("kind = \"power_off\"\ntarget = \"tower:1\"\nat = \"1 min\"\nlasts = \"1 min\""),
                "hits a device",
            ),
            (
                fault("kind = \"rain\"\ntarget = \"busiest-ap\"\nat = \"1 min\"\nlasts = \"1 min\""),
                "hits towers",
            ),
            (
                fault("kind = \"rain\"\ntarget = \"tower:0\"\nat = \"1 min\"\nlasts = \"1 min\""),
                "numbered from 1",
            ),
            (
                fault("kind = \"power_off\"\ntarget = \"busiest-ap\"\nat = \"1 fortnight\"\nlasts = \"1 min\""),
                "unknown unit",
            ),
            (
                fault(
                    "kind = \"power_off\"\ntarget = \"busiest-ap\"\nat = \"1 min\"\nlasts = \"forever\"\nevery = \"5 min\"",
                ),
                "cannot repeat",
            ),
            (
                fault("kind = \"power_off\"\ntarget = \"busiest-ap\"\nat = \"1 min\"\nlasts = \"1 min\"\nfade_db = 3"),
                "for rain",
            ),
            (
                fault("kind = \"rain\"\ntarget = \"tower:1\"\nat = \"1 min\"\nlasts = \"1 min\"\nfade_db = -3"),
                "more than 0",
            ),
            (
                fault("kind = \"explode\"\ntarget = \"tower:1\"\nat = \"1 min\"\nlasts = \"1 min\""),
                "explode",
            ),
            (
                fault("kind = \"rain\"\ntarget = \"tower:1\"\nat = \"1 min\"\nlasts = \"1 min\"\ncolour = 1"),
                "colour",
            ),
            (format!("{base}[run]\ndevices = 0\n"), "at least 1"),
            (format!("{base}[run]\nspeed = 0.5\n"), "1 to 100000"),
            (format!("{base}[run]\nclock = \"sundial\"\n"), "sundial"),
            (
                fault("kind = \"drift\"\ntarget = \"tower:1\"\nat = \"1 d\"\nlasts = \"1 d\""),
                "drift hits a device",
            ),
            (
                fault("kind = \"drift\"\ntarget = \"busiest-ap\"\nat = \"1 d\"\nlasts = \"1 d\"\ndb_per_day = 0"),
                "more than 0 and at most 20 dB a day",
            ),
            (
                fault("kind = \"rain\"\ntarget = \"tower:1\"\nat = \"1 d\"\nlasts = \"1 d\"\ndb_per_day = 1"),
                "is for drift",
            ),
        ] {
            let e = Scenario::parse(&text).expect_err(&text);
            assert!(e.contains(says), "{text}\n→ {e}");
        }
        assert!(Scenario::load("monsoon").unwrap_err().contains("ap-power-loss"));
        assert!(
            Scenario::load("/nonexistent/x.toml")
                .unwrap_err()
                .contains("/nonexistent/x.toml")
        );
        let world = World::generate(7, 120);
        let unknown = Scenario::parse(&fault(
            "kind = \"power_off\"\ntarget = \"device:nobody\"\nat = \"1 min\"\nlasts = \"1 min\"",
        ))
        .unwrap();
        assert!(
            unknown
                .plan(&world, world.sites, 60.0, 60)
                .unwrap_err()
                .contains("no device `nobody`")
        );
        let far = Scenario::parse(&fault(
            "kind = \"rain\"\ntarget = \"tower:99\"\nat = \"1 min\"\nlasts = \"1 min\"",
        ))
        .unwrap();
        assert!(
            far.plan(&world, world.sites, 60.0, 60)
                .unwrap_err()
                .contains("tower 99")
        );
        let often = Scenario::parse(&fault(
            "kind = \"power_off\"\ntarget = \"busiest-ap\"\nat = \"0 s\"\nlasts = \"0.01 s\"\nevery = \"0.02 s\"",
        ))
        .unwrap();
        assert!(
            often
                .plan(&world, world.sites, 60.0, 60)
                .unwrap_err()
                .contains("more than")
        );
    }
}
