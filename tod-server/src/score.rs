//! Field truth: what TOD tells an operator, scored against what really happened in the
//! simulated network.
//!
//! The simulator's world is a pure function of its seed and the simulated clock: which clients
//! are associated (flapping, roaming and dying clients drop out on schedule), their signal (drift,
//! rain fades); and it journals every change made to it (which devices a scenario switched off,
//! faded, rebooted), so its truth at any past moment is exact ([`tod_agent::sim::truth`]). The
//! scorer runs the whole system — the demo's server, simulator, agents and tunnels — injects a
//! scenario's faults ([`crate::scenario`]: a TOML file's timeline), and samples the API once per
//! poll interval, comparing each (link, sample) with the simulator's truth at the sample's
//! simulated time. Runs of weeks (a drift) put the server and agents on the simulator's
//! accelerated clock ([`RunClock::Simulated`]), so the trend detector's weeks are simulated weeks. It reports link-state accuracy with its confusion matrix, whether and how fast each
//! injected fault was reported and about the right device, how many alerts one upstream failure
//! raised, and how many of all alerts have a cause in the truth.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tod_agent::sim::state::Faults;
use tod_agent::sim::truth::Snapshot;
use tod_agent::sim::world::{Role, World, rain_fade};

use crate::demo::{Demo, DemoOptions};
use crate::scenario::{FaultKind, RunClock, Scenario, Target as PlanTarget};

/// What the scorer runs.
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreOptions {
    /// A standard scenario (quiet, ap-power-loss, dying-cpe, flapping-client, backhaul-outage,
    /// mass-reboot, rain-fade, drift) or a scenario file (`.toml`).
    #[arg(long, default_value = "ap-power-loss")]
    pub scenario: String,
    /// Simulated devices (default: the scenario's).
    #[arg(long)]
    pub devices: Option<usize>,
    /// Time acceleration (the agents poll every 60/X seconds of wall time, at least every
    /// second; default: the scenario's, else 30).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Simulated minutes observed after the warm-up (default: the scenario's).
    #[arg(long)]
    pub minutes: Option<u32>,
    /// World seed (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run on PostgreSQL instead of a fresh SQLite file.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Also write the simulator's truth of the run here as JSON lines: every event of the
    /// observed window, then every device and association at each sample's time.
    #[arg(long)]
    pub truth: Option<std::path::PathBuf>,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            scenario: "ap-power-loss".into(),
            devices: None,
            speed: None,
            minutes: None,
            seed: None,
            postgres: None,
            json: None,
            truth: None,
        }
    }
}

/// A run's world and length when neither the scenario nor the command line sets them.
const DEFAULT_DEVICES: usize = 120;
const DEFAULT_MINUTES: u32 = 60;
const DEFAULT_SEED: u64 = 7;
const DEFAULT_SPEED: f64 = 30.0;

/// Counts of (truth, report) over every (link, sample) pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Up in truth, reported up (active, degraded or discovered).
    pub up_reported_up: u64,
    /// Up in truth, reported down or stale.
    pub up_reported_down: u64,
    /// Up in truth, not listed at all.
    pub up_not_listed: u64,
    /// Down in truth, reported up.
    pub down_reported_up: u64,
    /// Down in truth, reported down or stale.
    pub down_reported_down: u64,
    /// Down in truth, not listed (never seen: nothing to report).
    pub down_not_listed: u64,
}

impl Confusion {
    /// Counts one pair: the truth, and the report (`None`: not listed).
    pub fn add(&mut self, up: bool, reported_up: Option<bool>) {
        match (up, reported_up) {
            (true, Some(true)) => self.up_reported_up += 1,
            (true, Some(false)) => self.up_reported_down += 1,
            (true, None) => self.up_not_listed += 1,
            (false, Some(true)) => self.down_reported_up += 1,
            (false, Some(false)) => self.down_reported_down += 1,
            (false, None) => self.down_not_listed += 1,
        }
    }

    /// Pairs scored.
    pub fn total(&self) -> u64 {
        self.up_reported_up
            + self.up_reported_down
            + self.up_not_listed
            + self.down_reported_up
            + self.down_reported_down
            + self.down_not_listed
    }

    /// Fraction of pairs where the report matches the truth (a link never seen and down in
    /// truth counts as right).
    pub fn accuracy(&self) -> f64 {
        let right = self.up_reported_up + self.down_reported_down + self.down_not_listed;
        if self.total() == 0 {
            0.0
        } else {
            right as f64 / self.total() as f64
        }
    }
}

/// One injected fault and what TOD made of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultReport {
    /// What the scenario calls it.
    pub kind: String,
    /// What was injected: `power_off`, `backhaul_outage`, `tower_reboot`, `rain` or `drift`.
    pub fault: String,
    /// The device it hit.
    pub device: String,
    /// When, simulated seconds.
    pub from_sim_secs: f64,
    /// Until when, simulated seconds.
    pub until_sim_secs: f64,
    /// Whether the API reported it while it lasted: a device not online, (rain) a weak-signal
    /// site alert at the tower, or (drift) a signal-trend event about the radio.
    pub detected: bool,
    /// Simulated seconds from the fault to the first sample that showed it.
    pub detection_secs: Option<f64>,
    /// The target: two polls, plus the hysteresis of what reports it (an agent is declared
    /// silent after three of the server's intervals; a sector rule needs its window half faded
    /// and its consecutive hits, one per 5-minute evaluation; a drift, the server's trend rule
    /// judged on the true signal at every sample, plus its last whole hour and hourly pass).
    pub detection_target_secs: f64,
    /// Whether the API showed it over after it ended.
    pub recovered: bool,
    /// Simulated seconds from its end to the first sample that showed it over: online with its
    /// links up again, or (rain) no weak-signal alert left active at the tower.
    pub recovery_secs: Option<f64>,
    /// Simulated seconds from the fault to the first sample that showed all its links down (a
    /// device fault: an AP's links, or a CPE's own; a backhaul outage leaves them as they were).
    pub links_down_secs: Option<f64>,
    /// Incidents raised (device and site alerts) about the device or its clients (a tower: its
    /// devices and its site) while it was down or within three polls after. Device alerts the
    /// API put in one incident count once; each site alert is its own.
    pub alerts_raised: usize,
    /// What those incidents were (rule or event kind, with counts).
    pub alert_kinds: Vec<(String, usize)>,
    /// The device alerts in them, one per device and rule.
    pub device_alerts: usize,
    /// Weak-signal incidents raised in the same window about the same devices that the fault
    /// does not explain and the truth does: the device heard its link (or an AP its clients)
    /// below the rule's threshold around the alert, for a reason of the world's own (a
    /// degrading or distant client, a roamer on its other AP). Not counted above. A fault that
    /// weakens signal (rain) explains all of them.
    pub incidents_explained_otherwise: usize,
    /// The most alerts it should raise: one for an upstream failure, one per sector for rain.
    pub alert_budget: usize,
    /// Devices it hit.
    pub devices_hit: usize,
    /// For a reboot: how many of them the event log shows rebooting after it.
    pub reboots_logged: Option<usize>,
    /// For a drift: whether the signal-trend event that reported it named its link (the
    /// drifting customer radio and the access point it is associated with).
    pub attributed: Option<bool>,
}

/// The scorer's findings for one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// The scenario's name.
    pub scenario: String,
    /// The world's seed.
    pub seed: u64,
    /// Simulated devices.
    pub devices: usize,
    /// Links in the simulated world between managed devices.
    pub true_links: usize,
    /// Samples taken.
    pub samples: u32,
    /// Simulated seconds observed.
    pub observed_sim_secs: f64,
    /// The agents' poll interval, simulated seconds.
    pub poll_sim_secs: f64,
    /// (link, sample) pairs by truth and report.
    pub confusion: Confusion,
    /// The same, by how the link's client behaves in the simulated world (`steady`, `flapping`,
    /// `roaming`, `dying`, `degrading`).
    pub by_behaviour: Vec<(String, Confusion)>,
    /// Link-state accuracy.
    pub link_state_accuracy: f64,
    /// The injected faults.
    pub faults: Vec<FaultReport>,
    /// Alerts raised in the observed window (device alerts and site alert events).
    pub alerts: usize,
    /// Of those, alerts about a device with a cause in the truth during the window (offline, a
    /// client link down, a CPE hearing its AP below the default rule's -75 dBm, an AP radio's
    /// clients below it on average, rain over a site); a signal trend's cause is its link
    /// drifting (a slowly degrading client of the world's, or an injected drift).
    pub alerts_with_cause: usize,
    /// What the others were (rule or event kind, with counts).
    pub alerts_without_cause: Vec<(String, usize)>,
    /// Every alert of the window, oldest first: what to read when a figure above surprises.
    pub alert_log: Vec<AlertEntry>,
}

/// One alert raised in the observed window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEntry {
    /// When it fired, simulated seconds from the start of the observation.
    pub at_sim_secs: f64,
    /// The device it is about, if any.
    pub device: Option<String>,
    /// The site of a site alert event.
    pub site: Option<String>,
    /// Its rule's metric, or the site event's kind.
    pub kind: String,
    /// The incident of a device alert.
    pub incident: Option<String>,
    /// Whether its device or site had a cause in the truth during the window.
    pub with_cause: bool,
}

impl Score {
    /// The report as a Markdown table, with the targets.
    pub fn table(&self) -> String {
        let pct = |x: f64| format!("{:.2} %", x * 100.0);
        let mut out = format!(
            "Field truth: scenario {} (seed {}), {} devices, {} true links, {} samples over {:.0} simulated minutes (poll {:.0} s)\n\n\
             | Measure | Value | Target |\n|---|---|---|\n",
            self.scenario,
            self.seed,
            self.devices,
            self.true_links,
            self.samples,
            self.observed_sim_secs / 60.0,
            self.poll_sim_secs
        );
        let met = |ok: bool| if ok { "met" } else { "MISSED" };
        let acc = self.link_state_accuracy;
        out += &format!(
            "| link-state accuracy | {} | ≥ 99 % ({}) |\n",
            pct(acc),
            met(acc >= 0.99)
        );
        let c = &self.confusion;
        out += &format!(
            "| truth up: reported up / down / not listed | {} / {} / {} | |\n",
            c.up_reported_up, c.up_reported_down, c.up_not_listed
        );
        out += &format!(
            "| truth down: reported up / down / not listed | {} / {} / {} | |\n",
            c.down_reported_up, c.down_reported_down, c.down_not_listed
        );
        for (kind, c) in &self.by_behaviour {
            out += &format!(
                "| link-state accuracy, {kind} clients ({} pairs) | {} | |\n",
                c.total(),
                pct(c.accuracy())
            );
        }
        for f in &self.faults {
            let within = f.detection_target_secs;
            out += &format!(
                "| {} of {}: detected, after | {}, {} | yes, ≤ {:.0} s ({}) |\n",
                f.kind,
                f.device,
                if f.detected { "yes" } else { "no" },
                f.detection_secs.map_or("-".into(), |s| format!("{s:.0} s")),
                within,
                met(f.detection_secs.is_some_and(|s| s <= within + 1.0))
            );
            if f.fault == "power_off" {
                out += &format!(
                    "| {} of {}: all its links shown down, after | {} | |\n",
                    f.kind,
                    f.device,
                    f.links_down_secs.map_or("never".into(), |s| format!("{s:.0} s"))
                );
            }
            if let Some(named) = f.attributed {
                out += &format!(
                    "| {} of {}: the report names its link (radio and access point) | {} | yes ({}) |\n",
                    f.kind,
                    f.device,
                    if named { "yes" } else { "no" },
                    met(named)
                );
            }
            if let Some(n) = f.reboots_logged {
                out += &format!(
                    "| {} of {}: reboots in the event log | {n} of {} | all ({}) |\n",
                    f.kind,
                    f.device,
                    f.devices_hit,
                    met(n == f.devices_hit)
                );
            }
            let mut kinds: Vec<String> = f.alert_kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            if kinds.is_empty() {
                kinds.push("none".into());
            }
            let otherwise = match f.incidents_explained_otherwise {
                0 => String::new(),
                n => format!("; {n} weak-signal explained by the world, not counted"),
            };
            out += &format!(
                "| {} of {}: incidents raised for it | {} ({}; {} device alerts in them{otherwise}) | {} ({}) |\n",
                f.kind,
                f.device,
                f.alerts_raised,
                kinds.join(", "),
                f.device_alerts,
                if f.alert_budget == 1 {
                    "1".to_owned()
                } else {
                    format!("1 to {}", f.alert_budget)
                },
                met((1..=f.alert_budget).contains(&f.alerts_raised))
            );
            out += &format!(
                "| {} of {}: shown over (online and links up; rain: its alerts cleared), after its end | {} | |\n",
                f.kind,
                f.device,
                f.recovery_secs
                    .map_or("not within the run".into(), |s| format!("{s:.0} s"))
            );
        }
        let traceable = if self.alerts == 0 {
            1.0
        } else {
            self.alerts_with_cause as f64 / self.alerts as f64
        };
        let without: Vec<String> = self
            .alerts_without_cause
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        out += &format!(
            "| alerts with a cause in the truth | {} of {} ({}){} | ≥ 95 % ({}) |\n",
            self.alerts_with_cause,
            self.alerts,
            pct(traceable),
            if without.is_empty() {
                String::new()
            } else {
                format!("; without: {}", without.join(", "))
            },
            met(traceable >= 0.95)
        );
        out
    }
}

/// A link of the simulated world between two devices TOD manages.
struct TrueLink {
    ap: usize,
    radio: usize,
    slot: usize,
    cpe: usize,
}

fn true_links(world: &World) -> Vec<TrueLink> {
    let mut out = Vec::new();
    for d in world.devices.iter().filter(|d| d.role == Role::Ap) {
        for (r, radio) in d.radios.iter().enumerate() {
            for (slot, c) in radio.clients.iter().enumerate() {
                if let Some(cpe) = c.cpe {
                    out.push(TrueLink {
                        ap: d.index,
                        radio: r,
                        slot,
                        cpe,
                    });
                }
            }
        }
    }
    out
}

/// An alert raised in the observed window: the device it is about, the site of a site event, and
/// its rule metric or event kind.
struct Alert {
    device: Option<usize>,
    /// The link of a site event about one (signal trends): access point and customer radio.
    link: Option<(usize, usize)>,
    site: Option<String>,
    kind: String,
    at: DateTime<Utc>,
    /// The incident of a device alert.
    incident: Option<String>,
}

/// How a link's client behaves in the simulated world.
fn behaviour(world: &World, l: &TrueLink) -> String {
    use tod_agent::sim::world::Behaviour;
    match world.devices[l.ap].radios[l.radio].clients[l.slot].behaviour {
        Behaviour::Steady => "steady",
        Behaviour::Flapping => "flapping",
        Behaviour::Dying => "dying",
        Behaviour::Degrading => "degrading",
        Behaviour::Roaming { .. } => "roaming",
    }
    .into()
}

/// A fault of the scenario: planned at a simulated time, switched on at the first sample after.
struct Injected {
    /// What the scenario calls it.
    kind: String,
    target: Target,
    planned: f64,
    length: f64,
    fade_db: f64,
    db_per_day: f64,
    window: Option<(f64, f64)>,
    restarted: bool,
}

/// What a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// One device, switched off in the simulator.
    Device(usize),
    /// A tower's agent, cut off from the server.
    Tower(usize),
    /// Every device at a tower, rebooted and gone while it boots.
    TowerReboot(usize),
    /// Rain over a tower: its access points' links fade.
    Rain(usize),
    /// A device whose links slowly weaken.
    Drift(usize),
}

impl Target {
    /// The scenario's kind of fault that hits it.
    fn kind(self) -> FaultKind {
        match self {
            Self::Device(_) => FaultKind::PowerOff,
            Self::Tower(_) => FaultKind::BackhaulOutage,
            Self::TowerReboot(_) => FaultKind::TowerReboot,
            Self::Rain(_) => FaultKind::Rain,
            Self::Drift(_) => FaultKind::Drift,
        }
    }
}

/// The default signal rule's threshold, dBm: a weaker signal is a cause for its alert.
const WEAK_DBM: i16 = -75;
/// How much weaker a CPE hears its AP than the AP hears it, in the simulated world, dB.
const CPE_VIEW_DB: i16 = 1;

/// The truth of one sample, as the scorer reads it.
struct SampleTruth {
    /// The signal of each association (access point, radio, slot), `None` when it is down.
    signal: HashMap<(usize, usize, usize), Option<i16>>,
    /// The mean signal of each access point's weakest radio's heard clients (managed or not),
    /// as the AP's signal metric takes it.
    weakest_radio_mean: HashMap<usize, f64>,
}

impl SampleTruth {
    fn of(snap: &Snapshot) -> Self {
        let signal = snap
            .associations
            .iter()
            .map(|a| ((a.ap, a.radio, a.slot), a.signal))
            .collect();
        let mut radios: HashMap<(usize, usize), Vec<f64>> = HashMap::new();
        for a in &snap.associations {
            if let Some(s) = a.signal {
                radios.entry((a.ap, a.radio)).or_default().push(f64::from(s));
            }
        }
        let mut weakest_radio_mean: HashMap<usize, f64> = HashMap::new();
        for ((ap, _), heard) in radios {
            let mean = heard.iter().sum::<f64>() / heard.len() as f64;
            let m = weakest_radio_mean.entry(ap).or_insert(mean);
            *m = m.min(mean);
        }
        Self {
            signal,
            weakest_radio_mean,
        }
    }

    /// The signal of a link, `None` when it is down in truth.
    fn link(&self, l: &TrueLink) -> Option<i16> {
        self.signal.get(&(l.ap, l.radio, l.slot)).copied().flatten()
    }
}

/// A run's scenario and world, the command line's choices over the scenario's.
struct RunPlan {
    scenario: Scenario,
    devices: usize,
    minutes: u32,
    seed: u64,
    speed: f64,
}

/// Runs a scenario and scores it. `say` gets progress lines.
pub async fn run(opts: &ScoreOptions, say: &(dyn Fn(&str) + Sync)) -> Result<Score, String> {
    let scenario = Scenario::load(&opts.scenario)?;
    let plan = RunPlan {
        devices: opts.devices.or(scenario.run.devices).unwrap_or(DEFAULT_DEVICES),
        minutes: opts.minutes.or(scenario.run.minutes).unwrap_or(DEFAULT_MINUTES),
        seed: opts.seed.or(scenario.run.seed).unwrap_or(DEFAULT_SEED),
        speed: opts.speed.or(scenario.run.speed).unwrap_or(DEFAULT_SPEED),
        scenario,
    };
    if plan.devices == 0 || plan.minutes == 0 {
        return Err("a run needs at least one device and one minute".into());
    }
    if !crate::scenario::SPEEDS.contains(&plan.speed) {
        let (low, high) = crate::scenario::SPEEDS.into_inner();
        return Err(format!("speed {}: {low} to {high}", plan.speed));
    }
    // Resolved before anything starts, so a target the world lacks is said at once (the demo
    // runs one tower per site of the world).
    let world = World::generate(plan.seed, plan.devices);
    plan.scenario.plan(&world, world.sites.max(1), 60.0, plan.minutes)?;
    let demo = Demo::start(DemoOptions {
        devices: plan.devices,
        speed: plan.speed,
        seed: plan.seed,
        listen: ([127, 0, 0, 1], 0).into(),
        postgres: opts.postgres.clone(),
        outage: false,
        rain: false,
        dying: false,
        simulated_clock: plan.scenario.run.clock == Some(RunClock::Simulated),
        ..DemoOptions::default()
    })
    .await?;
    let result = score(&demo, opts, &plan, say).await;
    demo.stop().await;
    result
}

async fn score(demo: &Demo, opts: &ScoreOptions, plan: &RunPlan, say: &(dyn Fn(&str) + Sync)) -> Result<Score, String> {
    let tenant = demo.access.tenant.clone();
    let world = demo.sim.world();
    let links = true_links(world);
    let interval = Duration::from_secs(demo.interval_secs);
    let poll_sim_secs = demo.interval_secs as f64 * plan.speed;

    // Warm-up: every device online and most links discovered, within a couple of minutes.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let ids: HashMap<String, String> = loop {
        let devices = demo.call("GET", format!("/api/tenants/{tenant}/devices"), None).await?;
        let devices = devices.as_array().cloned().unwrap_or_default();
        let online = devices.iter().filter(|d| d["status"] == "online").count();
        let listed = demo.call("GET", format!("/api/tenants/{tenant}/links"), None).await?;
        let listed = listed.as_array().map_or(0, Vec::len);
        if online == world.devices.len() && listed * 10 >= links.len() * 8 {
            break devices
                .iter()
                .filter_map(|d| Some((d["id"].as_str()?.to_owned(), d["name"].as_str()?.to_owned())))
                .collect();
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "warm-up: {online}/{} devices online, {listed}/{} links listed after 3 minutes",
                world.devices.len(),
                links.len()
            ));
        }
        tokio::time::sleep(interval).await;
    };
    let index: HashMap<&str, usize> = world.devices.iter().map(|d| (d.name.as_str(), d.index)).collect();
    let by_id: HashMap<String, usize> = ids
        .iter()
        .filter_map(|(id, name)| Some((id.clone(), *index.get(name.as_str())?)))
        .collect();
    let name_of = |i: usize| world.devices[i].name.clone();
    let id_of: HashMap<usize, &str> = by_id.iter().map(|(id, i)| (*i, id.as_str())).collect();
    // The link a site event is about (signal trends): its access point and customer radio.
    let link_of = |e: &Value| {
        let end = |field: &str| e[field].as_str().and_then(|id| by_id.get(id)).copied();
        end("ap_device_id").zip(end("device_id"))
    };
    say(&format!(
        "warm: {} devices online, {} true links; observing {} simulated minutes",
        world.devices.len(),
        links.len(),
        plan.minutes
    ));

    // The scenario's faults, from two polls after the warm-up.
    let clock = demo.sim.clock();
    let start = clock.now();
    // The server's clock (it stamps alerts with it): the wall clock, or the world's own.
    let began_wall: DateTime<Utc> = demo.clock.now();
    // Simulated seconds per second of the server's clock.
    let ratio = plan.speed / demo.clock.speed();
    let end = start + f64::from(plan.minutes) * 60.0;
    let towers = demo.access.towers.max(1);
    let mut injected: Vec<Injected> = plan
        .scenario
        .plan(world, towers, poll_sim_secs, plan.minutes)?
        .into_iter()
        .map(|p| Injected {
            kind: p.label,
            target: match (p.kind, p.target) {
                (FaultKind::Drift, PlanTarget::Device(d)) => Target::Drift(d),
                (_, PlanTarget::Device(d)) => Target::Device(d),
                (FaultKind::BackhaulOutage, PlanTarget::Tower(t)) => Target::Tower(t),
                (FaultKind::TowerReboot, PlanTarget::Tower(t)) => Target::TowerReboot(t),
                (_, PlanTarget::Tower(t)) => Target::Rain(t),
            },
            planned: start + p.at,
            // For good: past the end of the run.
            length: p.length.min(end - start - p.at + 86_400.0),
            fade_db: p.fade_db,
            db_per_day: p.db_per_day,
            window: None,
            restarted: false,
        })
        .collect();
    let members = |target: Target| -> Vec<usize> {
        match target {
            Target::Device(d) | Target::Drift(d) => vec![d],
            Target::Tower(t) | Target::TowerReboot(t) | Target::Rain(t) => world
                .devices
                .iter()
                .filter(|d| d.site % towers == t)
                .map(|d| d.index)
                .collect(),
        }
    };
    let sites = demo.call("GET", format!("/api/tenants/{tenant}/sites"), None).await?;
    let site_ids: Vec<String> = sites["sites"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    let tower_site = |t: usize| -> Option<String> {
        sites["sites"]
            .as_array()?
            .iter()
            .find(|s| s["name"].as_str() == Some(&format!("Tower {:02}", t + 1)))
            .and_then(|s| s["id"].as_str().map(str::to_owned))
    };
    let mut caused_sites: HashSet<String> = HashSet::new();
    let mut confusion = Confusion::default();
    let mut by_behaviour: Vec<(String, Confusion)> = Vec::new();
    let mut samples = 0u32;
    let mut detected: Vec<Option<f64>> = vec![None; injected.len()];
    let mut recovered: Vec<Option<f64>> = vec![None; injected.len()];
    let mut links_down: Vec<Option<f64>> = vec![None; injected.len()];
    let mut attributed: Vec<Option<bool>> = vec![None; injected.len()];
    // Every site event seen, by id ([`read_site_events`]).
    let mut site_events: HashMap<String, Value> = HashMap::new();
    // Links that drift in the truth: the world's slowly degrading clients, and injected drifts.
    let mut drifting: HashSet<(usize, usize)> = links
        .iter()
        .filter(|l| behaviour(world, l) == "degrading")
        .map(|l| (l.ap, l.cpe))
        .collect();
    // The true signal of each injected drift's links at every sample, for what the server's
    // trend rule would have seen on the truth itself.
    let mut drift_series: HashMap<(usize, usize), Vec<tod_core::signal::Sample>> = HashMap::new();
    // Devices with a cause for an alert at some sample: offline, a client link down, weak.
    let mut caused: HashSet<usize> = HashSet::new();
    // The samples at which each device was weak in the truth (a CPE hearing its AP, or an AP
    // its clients on average, below the signal rule's threshold).
    let mut weak_at_samples: HashMap<usize, Vec<f64>> = HashMap::new();
    let mut sample_times: Vec<f64> = Vec::new();
    loop {
        let t = clock.now();
        if t >= end {
            break;
        }
        for f in injected.iter_mut().filter(|f| f.window.is_none() && t >= f.planned) {
            // Off from now until `length` later.
            let from = clock.now();
            let until = from + f.length;
            match f.target {
                // The simulator refuses it, and its clients hear nothing, until then.
                Target::Device(d) => demo.sim.set_faults(
                    d,
                    Faults {
                        offline_until: Some(until),
                        ..Faults::default()
                    },
                ),
                Target::Tower(tower) => {
                    demo.stop_agent(tower).await?;
                    // Outside the simulator: the network is fine, TOD cannot see it.
                    demo.sim
                        .note(f.target.kind().name(), &format!("Tower {:02}", tower + 1), Some(until));
                }
                Target::Rain(_) => {
                    for d in members(f.target) {
                        if world.devices[d].role == Role::Ap {
                            demo.sim.set_faults(
                                d,
                                Faults {
                                    fade_db: f.fade_db,
                                    fade_until: Some(until),
                                    ..demo.sim.state(d).faults()
                                },
                            );
                        }
                    }
                }
                Target::TowerReboot(_) => {
                    for d in members(f.target) {
                        demo.sim.set_faults(
                            d,
                            Faults {
                                offline_until: Some(until),
                                ..Faults::default()
                            },
                        );
                        demo.sim.reboot(d);
                    }
                }
                Target::Drift(d) => {
                    demo.sim.set_faults(
                        d,
                        Faults {
                            fade_db_per_day: f.db_per_day,
                            fade_since: Some(from),
                            fade_until: Some(until),
                            ..demo.sim.state(d).faults()
                        },
                    );
                    for l in links.iter().filter(|l| l.cpe == d || l.ap == d) {
                        drifting.insert((l.ap, l.cpe));
                        drift_series.entry((l.ap, l.cpe)).or_default();
                    }
                }
            }
            f.window = Some((from, until));
        }
        for f in injected.iter_mut().filter(|f| !f.restarted) {
            if let (Target::Tower(tower), Some((_, until))) = (f.target, f.window)
                && t >= until
            {
                demo.start_agent(tower).await?;
                f.restarted = true;
            }
        }
        let listed = demo.call("GET", format!("/api/tenants/{tenant}/links"), None).await?;
        let devices = demo.call("GET", format!("/api/tenants/{tenant}/devices"), None).await?;
        // The sample's time: the middle of the two reads.
        let t = (t + clock.now()) / 2.0;
        samples += 1;
        sample_times.push(t);
        let truth = SampleTruth::of(&demo.sim.truth().at(t));
        let mut reported: HashMap<(usize, usize), bool> = HashMap::new();
        for l in listed.as_array().into_iter().flatten() {
            let (Some(ap), Some(cpe)) = (
                l["ap_device_id"].as_str().and_then(|id| by_id.get(id)),
                l["cpe_device_id"].as_str().and_then(|id| by_id.get(id)),
            ) else {
                continue;
            };
            let up = matches!(l["state"].as_str(), Some("active" | "degraded" | "discovered"));
            reported.insert((*ap, *cpe), up);
        }
        for l in &links {
            let signal = truth.link(l);
            if signal.is_none() {
                caused.insert(l.cpe);
                caused.insert(l.ap);
            } else if signal.is_some_and(|s| s - CPE_VIEW_DB < WEAK_DBM) {
                // The CPE's own alert is on its own view of the link.
                caused.insert(l.cpe);
                weak_at_samples.entry(l.cpe).or_default().push(t);
            }
            if let (Some(series), Some(dbm)) = (drift_series.get_mut(&(l.ap, l.cpe)), signal) {
                series.push(tod_core::signal::Sample {
                    at: sim_instant(t),
                    dbm,
                });
            }
            let seen = reported.get(&(l.ap, l.cpe)).copied();
            confusion.add(signal.is_some(), seen);
            let kind = behaviour(world, l);
            match by_behaviour.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, c)) => c.add(signal.is_some(), seen),
                None => {
                    let mut c = Confusion::default();
                    c.add(signal.is_some(), seen);
                    by_behaviour.push((kind, c));
                }
            }
        }
        // An access point's signal alert is on its weakest radio's mean client signal.
        for ap in world.devices.iter().filter(|d| d.role == Role::Ap) {
            if truth
                .weakest_radio_mean
                .get(&ap.index)
                .is_some_and(|m| *m < f64::from(WEAK_DBM))
            {
                caused.insert(ap.index);
                weak_at_samples.entry(ap.index).or_default().push(t);
            }
        }
        let status: HashMap<usize, String> = devices
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| {
                let i = by_id.get(d["id"].as_str()?)?;
                Some((*i, d["status"].as_str()?.to_owned()))
            })
            .collect();
        // Rain, the world's own or injected, is a cause for a site's alerts while it falls.
        for tower in 0..towers {
            let wet = (0..world.sites)
                .filter(|s| s % towers == tower)
                .any(|s| rain_fade(world.seed, s, t) > 0.0);
            if wet && let Some(site) = tower_site(tower) {
                caused_sites.insert(site);
            }
        }
        let active = read_site_events(demo, &tenant, &site_ids, &mut site_events).await?;
        // Rain is shown by weak-signal sector alerts at the tower.
        let mut weak_at: HashMap<usize, bool> = HashMap::new();
        for f in &injected {
            if let (Target::Rain(tower), Some(_)) = (f.target, f.window)
                && let Some(site) = tower_site(tower)
            {
                let weak = active
                    .iter()
                    .any(|e| e["site_id"].as_str() == Some(site.as_str()) && e["kind"] == "sector_signal_avg");
                weak_at.insert(tower, weak);
            }
        }
        for (k, f) in injected.iter().enumerate() {
            let Some((from, until)) = f.window else { continue };
            let hit = members(f.target);
            let online = |d: &usize| status.get(d).is_some_and(|s| s == "online");
            if let Target::Rain(tower) = f.target {
                let weak = weak_at.get(&tower).copied().unwrap_or(false);
                if t >= from && t < until {
                    if let Some(site) = tower_site(tower) {
                        caused_sites.insert(site);
                    }
                    if weak && detected[k].is_none() {
                        detected[k] = Some(t - from);
                    }
                }
                if t >= until && !weak && recovered[k].is_none() {
                    recovered[k] = Some(t - until);
                }
                continue;
            }
            // A drift is shown by a signal-trend event about the radio, and it should name the
            // link that drifts.
            if let Target::Drift(device) = f.target {
                let trend = active.iter().find(|e| {
                    e["kind"] == "signal_trend"
                        && [&e["device_id"], &e["ap_device_id"]]
                            .iter()
                            .any(|v| v.as_str().is_some_and(|id| id_of.get(&device) == Some(&id)))
                });
                if let Some(e) = trend
                    && t >= from
                    && t < until
                    && detected[k].is_none()
                {
                    detected[k] = Some(t - from);
                    attributed[k] = Some(link_of(e).is_some_and(|(ap, cpe)| {
                        links
                            .iter()
                            .any(|l| (l.ap, l.cpe) == (ap, cpe) && (l.ap == device || l.cpe == device))
                    }));
                }
                if t >= until && trend.is_none() && recovered[k].is_none() {
                    recovered[k] = Some(t - until);
                }
                continue;
            }
            // Shown: a device it hit is not online (offline, or unreachable behind its agent).
            if t >= from && t < until {
                caused.extend(hit.iter().copied());
                if let Target::Tower(tower) | Target::TowerReboot(tower) = f.target
                    && let Some(site) = tower_site(tower)
                {
                    caused_sites.insert(site);
                }
                if !hit.iter().all(online) && detected[k].is_none() {
                    detected[k] = Some(t - from);
                }
            }
            if let Target::Device(device) = f.target {
                // Its links: as the access point, or as the customer's radio.
                let its: Vec<Option<&bool>> = links
                    .iter()
                    .filter(|l| l.ap == device || l.cpe == device)
                    .map(|l| reported.get(&(l.ap, l.cpe)))
                    .collect();
                if t >= from && t < until && links_down[k].is_none() && its.iter().all(|r| r != &Some(&true)) {
                    links_down[k] = Some(t - from);
                }
            }
            // Back: online, and every link of its access points that is up in truth shown up.
            let back = links
                .iter()
                .filter(|l| hit.contains(&l.ap) && truth.link(l).is_some())
                .all(|l| reported.get(&(l.ap, l.cpe)) == Some(&true));
            if t >= until && recovered[k].is_none() && hit.iter().all(online) && back {
                recovered[k] = Some(t - until);
            }
        }
        tokio::time::sleep(interval).await;
    }

    // Alerts raised since the observation began: every page of device alerts, and the site
    // events seen along the way with the last ones.
    let mut device_alerts: Vec<Value> = Vec::new();
    for page in 1..=500 {
        let items = demo
            .call(
                "GET",
                format!("/api/alerts?tenant_id={tenant}&per_page=200&page={page}"),
                None,
            )
            .await?["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let last = items.len() < 200;
        device_alerts.extend(items);
        if last {
            break;
        }
    }
    read_site_events(demo, &tenant, &site_ids, &mut site_events).await?;
    let since = |v: &Value, field: &str| {
        v[field]
            .as_str()
            .and_then(|s| s.parse::<DateTime<Utc>>().ok())
            .filter(|at| *at >= began_wall)
    };
    // Simulated time as wall time (the server stamps alerts with its own clock).
    let wall = |sim: f64| began_wall + chrono::Duration::milliseconds(((sim - start) / ratio * 1000.0) as i64);
    let sim = |wall: DateTime<Utc>| start + (wall - began_wall).as_seconds_f64() * ratio;
    let mut alerts: Vec<Alert> = Vec::new();
    for a in &device_alerts {
        if let Some(at) = since(a, "fired_at") {
            alerts.push(Alert {
                at,
                device: a["device_id"].as_str().and_then(|id| by_id.get(id)).copied(),
                link: None,
                site: None,
                kind: a["metric"].as_str().unwrap_or("device").to_owned(),
                incident: a["incident_id"].as_str().map(str::to_owned),
            });
        }
    }
    for e in site_events.values() {
        if let Some(at) = since(e, "triggered_at") {
            let about = e["ap_device_id"].as_str().or(e["device_id"].as_str());
            alerts.push(Alert {
                at,
                device: about.and_then(|id| by_id.get(id)).copied(),
                link: link_of(e),
                site: e["site_id"].as_str().map(str::to_owned),
                kind: e["kind"].as_str().unwrap_or("site").to_owned(),
                incident: None,
            });
        }
    }
    // Devices the event log shows rebooting since the observation began.
    let reboots = demo
        .call(
            "GET",
            format!("/api/events?tenant_id={tenant}&kind=reboot&limit=500"),
            None,
        )
        .await?;
    let rebooted: HashSet<usize> = reboots["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| since(e, "at").is_some())
        .filter_map(|e| by_id.get(e["device_id"].as_str()?).copied())
        .collect();
    // A signal trend's cause is its link drifting; anything else's, its device's or site's.
    let has_cause = |a: &Alert| {
        if a.kind == "signal_trend" {
            return a.link.is_some_and(|l| drifting.contains(&l));
        }
        a.device.is_some_and(|d| caused.contains(&d))
            || (a.device.is_none() && a.site.as_ref().is_some_and(|s| caused_sites.contains(s)))
    };
    let faults = injected
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let hit = members(f.target);
            let affected: HashSet<usize> = hit
                .iter()
                .copied()
                .chain(links.iter().filter(|l| hit.contains(&l.ap)).map(|l| l.cpe))
                .collect();
            let site = match f.target {
                Target::Tower(t) | Target::TowerReboot(t) | Target::Rain(t) => tower_site(t),
                Target::Device(_) | Target::Drift(_) => None,
            };
            let (from, until) = f.window.unwrap_or((f.planned, f.planned));
            // Raised while it lasted, or within three polls after (alerts that come with the
            // return).
            let during = (wall(from), wall(until + 3.0 * poll_sim_secs));
            let mine: Vec<&Alert> = alerts
                .iter()
                .filter(|a| a.at >= during.0 && a.at <= during.1)
                .filter(|a| {
                    a.device.is_some_and(|d| affected.contains(&d))
                        || a.link.is_some_and(|(_, cpe)| affected.contains(&cpe))
                        || (site.is_some() && a.device.is_none() && a.site == site)
                })
                .collect();
            // A weak-signal alert about a device the truth had weak around it (two polls before,
            // one after) is the world's own, unless the fault is what weakens signal (rain, drift).
            let weak_anyway = |a: &Alert| {
                let Some(d) = a.device else { return false };
                let at = sim(a.at);
                !matches!(f.target, Target::Rain(_) | Target::Drift(_))
                    && a.kind == "signal_strength"
                    && weak_at_samples.get(&d).is_some_and(|ts| {
                        ts.iter()
                            .any(|t| *t >= at - 2.0 * poll_sim_secs && *t <= at + poll_sim_secs)
                    })
            };
            let (otherwise, mine): (Vec<&Alert>, Vec<&Alert>) = mine.into_iter().partition(|a| weak_anyway(a));
            let incidents_explained_otherwise = first_of_each_incident(&otherwise).len();
            let device_alerts = mine.iter().filter(|a| a.incident.is_some()).count();
            let mine: Vec<&String> = first_of_each_incident(&mine).into_iter().map(|a| &a.kind).collect();
            let kinds = count_kinds(mine.iter().copied());
            FaultReport {
                kind: f.kind.clone(),
                fault: f.target.kind().name().into(),
                device: match f.target {
                    Target::Device(d) | Target::Drift(d) => name_of(d),
                    Target::Tower(t) | Target::TowerReboot(t) | Target::Rain(t) => format!("Tower {:02}", t + 1),
                },
                from_sim_secs: from - start,
                until_sim_secs: until - start,
                detected: detected[k].is_some(),
                detection_secs: detected[k],
                detection_target_secs: match f.target {
                    Target::Device(_) | Target::TowerReboot(_) => 2.0 * poll_sim_secs,
                    Target::Tower(_) => 5.0 * poll_sim_secs,
                    // The rule's own hysteresis: its 10-minute average half faded, then its
                    // consecutive hits, one per 5-minute evaluation.
                    Target::Rain(_) => {
                        let hits = tod_core::alerts::site::DEFAULT_SITE_HYSTERESIS.fire_after;
                        2.0 * poll_sim_secs + 300.0 + f64::from(hits) * 300.0
                    }
                    // The trend rule's own: when the server's rule, judged on the truth at every
                    // sample, first fires; then its windows' last whole summed hour and its
                    // hourly pass (2 h), and two polls.
                    Target::Drift(d) => {
                        let truth = links
                            .iter()
                            .filter(|l| l.cpe == d || l.ap == d)
                            .filter_map(|l| trend_on_truth(drift_series.get(&(l.ap, l.cpe))?, &demo.trend, from))
                            .reduce(f64::min);
                        let ideal = || {
                            let days = demo.trend.threshold_db / f.db_per_day.max(1e-9);
                            days * 86_400.0 + demo.trend.window_secs as f64 / 2.0
                        };
                        truth.unwrap_or_else(ideal) + 7_200.0 + 2.0 * poll_sim_secs
                    }
                },
                recovered: recovered[k].is_some(),
                recovery_secs: recovered[k],
                links_down_secs: links_down[k],
                alerts_raised: mine.len(),
                alert_kinds: kinds,
                device_alerts,
                incidents_explained_otherwise,
                alert_budget: match f.target {
                    Target::Rain(_) => hit
                        .iter()
                        .filter(|d| world.devices[**d].role == Role::Ap)
                        .count()
                        .max(1),
                    _ => 1,
                },
                devices_hit: hit.len(),
                reboots_logged: matches!(f.target, Target::TowerReboot(_))
                    .then(|| hit.iter().filter(|d| rebooted.contains(d)).count()),
                attributed: attributed[k],
            }
        })
        .collect();
    let alerts_with_cause = alerts.iter().filter(|a| has_cause(a)).count();
    let mut alert_log: Vec<AlertEntry> = alerts
        .iter()
        .map(|a| AlertEntry {
            at_sim_secs: sim(a.at) - start,
            device: a.device.map(name_of),
            site: a.site.clone(),
            kind: a.kind.clone(),
            incident: a.incident.clone(),
            with_cause: has_cause(a),
        })
        .collect();
    alert_log.sort_by(|a, b| a.at_sim_secs.total_cmp(&b.at_sim_secs));
    let alerts_without_cause = count_kinds(alerts.iter().filter(|a| !has_cause(a)).map(|a| &a.kind));
    if let Some(path) = &opts.truth {
        let lines = tod_agent::sim::truth::jsonl(&demo.sim.truth(), start, end, &sample_times);
        std::fs::write(path, lines).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(Score {
        scenario: plan.scenario.name.clone(),
        seed: plan.seed,
        devices: world.devices.len(),
        true_links: links.len(),
        samples,
        observed_sim_secs: end - start,
        poll_sim_secs,
        link_state_accuracy: confusion.accuracy(),
        confusion,
        by_behaviour,
        faults,
        alerts: alerts.len(),
        alerts_with_cause,
        alerts_without_cause,
        alert_log,
    })
}

/// A simulated time as an instant (the trend rule's windows are instants).
fn sim_instant(t: f64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::milliseconds((t * 1000.0) as i64)
}

/// Seconds after `from` at which `config`'s trend rule, judged at each of `series`' samples on
/// the samples up to it, first holds the link degraded; `None` if it never does.
fn trend_on_truth(
    series: &[tod_core::signal::Sample],
    config: &tod_core::signal::TrendConfig,
    from: f64,
) -> Option<f64> {
    let from_at = sim_instant(from);
    series.iter().enumerate().find_map(|(i, s)| {
        if s.at < from_at {
            return None;
        }
        match tod_core::signal::detect_trend(series[..=i].iter().copied(), s.at, config, false) {
            tod_core::signal::TrendVerdict::Evaluated { degraded: true, .. } => Some((s.at - from_at).as_seconds_f64()),
            _ => None,
        }
    })
}

/// Every site's newest events (200 each), kept in `seen` by id as last read (a long run raises
/// more than one read lists); returns the active ones.
async fn read_site_events(
    demo: &Demo,
    tenant: &str,
    sites: &[String],
    seen: &mut HashMap<String, Value>,
) -> Result<Vec<Value>, String> {
    let mut active = Vec::new();
    for site in sites {
        let events = demo
            .call(
                "GET",
                format!("/api/tenants/{tenant}/sites/{site}/alert-events?limit=200"),
                None,
            )
            .await?;
        for e in events["items"].as_array().into_iter().flatten() {
            if e["state"] == "active" {
                active.push(e.clone());
            }
            if let Some(id) = e["id"].as_str() {
                seen.insert(id.to_owned(), e.clone());
            }
        }
    }
    Ok(active)
}

/// One alert per incident, the first of each (a site alert event is an incident of its own).
fn first_of_each_incident<'a>(alerts: &[&'a Alert]) -> Vec<&'a Alert> {
    let mut seen: HashSet<&str> = HashSet::new();
    alerts
        .iter()
        .copied()
        .filter(|a| a.incident.as_deref().is_none_or(|i| seen.insert(i)))
        .collect()
}

/// Kinds with how often each occurs, in first-seen order.
fn count_kinds<'a>(kinds: impl Iterator<Item = &'a String>) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for k in kinds {
        match out.iter_mut().find(|(n, _)| n == k) {
            Some((_, c)) => *c += 1,
            None => out.push((k.clone(), 1)),
        }
    }
    out
}
