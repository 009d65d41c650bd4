//! `tod-server demo`: the whole system in one process, on a fresh machine, with nothing to
//! install. tod-server (SQLite by default) with its embedded WireGuard gateway; the RouterOS fleet
//! simulator (real API endpoints on loopback, drifting signals, rain fades, dying and flapping
//! clients); one tod-agent per tower (the same daemon `tod-agent run` runs), each enrolled through
//! the API, pulling its tower's devices from the server and delivering through its own tunnel.
//!
//! Everything is set up through the public REST API, as an operator would: the admin logs in with
//! SRP, creates the tenant, sites, a sector per access point, devices, a weak-signal rule per
//! sector, an API key and the agents, and enrols each agent as a tunnel peer. Then it prints
//! progress until Ctrl-C.
//!
//! The simulated world runs `--speed` times faster than real time, and so does the server's view
//! of it: the agents poll every 60/speed seconds, site rules are judged every 300/speed seconds
//! over sector windows shrunk by the same factor ([`SnapshotWindows::scaled`]), so a 40-minute
//! rain fade is seen as the product would see it, only sooner.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tod_agent::clock::Clock;
use tod_agent::sim::state::Faults;
use tod_agent::sim::world::{Behaviour, Client, Role, World};
use tod_agent::sim::{SimConfig, Simulator};
use tod_core::alerts::SnapshotWindows;

use crate::client::call_json;
use crate::settings::{Environment, Settings};

/// What the demo runs.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Simulated devices (routers, access points, CPEs).
    #[arg(long, default_value_t = 300)]
    pub devices: usize,
    /// Agents, one per tower; the simulated sites are shared out among them (default: one
    /// agent for every site of the simulated world).
    #[arg(long)]
    pub agents: Option<usize>,
    /// Time acceleration: the simulated world runs this many times faster and the agents poll
    /// every 60/X seconds (at least every second). The default, 10, shows links, the scripted
    /// outage and its alert within two minutes; 1 is real time.
    #[arg(long, default_value_t = 10.0)]
    pub speed: f64,
    /// World seed: the same seed gives the same world.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// HTTP address of the API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Run on PostgreSQL instead of a fresh SQLite file (the database must exist and be empty
    /// of TOD data, or be a TOD database).
    #[arg(long)]
    pub postgres: Option<String>,
    /// Agents deliver over NATS JetStream (this URL) instead of HTTP, through their tunnels.
    #[arg(long)]
    pub nats: Option<String>,
    /// Where the SQLite file and the agents' spools go (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Script a backhaul outage at one tower (default on; `--outage false` to keep all up).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub outage: bool,
    /// Script 40 simulated minutes of heavy rain over the first tower (default on; `--rain
    /// false` for clear skies but the world's own weather).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub rain: bool,
    /// Script a dying customer radio (default on; `--dying false` to skip): its link weakens for
    /// 20 simulated minutes, stays weak for 10, then the radio goes dark for good.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub dying: bool,
    /// The server and agents read the simulated world's accelerated clock instead of the wall
    /// clock (the field-truth scorer's runs of weeks): the server's windows and intervals are
    /// then its own settings' in simulated time, not shrunk by the speed.
    #[arg(skip)]
    pub simulated_clock: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            devices: 300,
            agents: None,
            speed: 10.0,
            seed: 7,
            listen: ([127, 0, 0, 1], 8080).into(),
            postgres: None,
            nats: None,
            dir: None,
            outage: true,
            rain: true,
            dying: true,
            simulated_clock: false,
        }
    }
}

/// How to reach a running demo.
#[derive(Debug, Clone)]
pub struct DemoAccess {
    /// Base URL of the API.
    pub url: String,
    /// The admin's e-mail.
    pub email: String,
    /// The admin's password (generated).
    pub password: String,
    /// An operator API key of the demo tenant.
    pub api_key: String,
    /// The demo tenant.
    pub tenant: String,
    /// Towers (sites), each with its own agent and tunnel.
    pub towers: usize,
    /// The customer radio scripted to die (its device name), if one is.
    pub dying_cpe: Option<String>,
}

/// One progress reading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Devices in the tenant.
    pub devices: usize,
    /// Devices reported online.
    pub online: usize,
    /// Wireless links by state, as the API lists them.
    pub links: usize,
    /// Links active or degraded.
    pub live_links: usize,
    /// Agents whose tunnel is up.
    pub tunnels_up: usize,
    /// Active site alerts.
    pub active_alerts: usize,
    /// Open device alerts (not silenced), from the device rules judged at ingest.
    pub device_alerts: usize,
    /// Something the demo's script just did.
    pub note: Option<String>,
}

const ADMIN_EMAIL: &str = "admin@demo.tod";

/// Runs the demo until `shutdown` resolves. `ready` receives how to reach it once it is set up;
/// `progress` every reading (the CLI prints them).
pub async fn run(
    opts: DemoOptions,
    ready: tokio::sync::oneshot::Sender<DemoAccess>,
    progress: impl Fn(&Progress) + Send + 'static,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let demo = Demo::start(opts).await?;
    let _ = ready.send(demo.access.clone());
    let result = demo.progress(progress, shutdown).await;
    demo.stop().await;
    result
}

/// A running agent daemon and the way to stop it.
type RunningAgent = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), String>>,
);

/// One tower's agent: its configuration, and the running daemon with the way to stop it.
struct AgentSlot {
    tower: usize,
    cfg: tod_agent::config::AgentConfig,
    running: Option<RunningAgent>,
}

fn spawn_agent(cfg: tod_agent::config::AgentConfig, clock: Clock) -> RunningAgent {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(tod_agent::daemon::run_with_clock(cfg, clock, async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

/// A running demo: server, simulator and agents, set up through the API.
pub struct Demo {
    /// How to reach it.
    pub access: DemoAccess,
    /// The simulated towers (their clock, world and faults are the truth the field-truth scorer
    /// compares with).
    pub sim: Arc<Simulator>,
    /// The agents' poll interval, seconds of wall time.
    pub interval_secs: u64,
    /// The clock the server and agents read: the system's, or the world's accelerated one
    /// ([`DemoOptions::simulated_clock`]).
    pub clock: Clock,
    /// The server's trend detector settings.
    pub trend: tod_core::signal::TrendConfig,
    token: String,
    note: Arc<std::sync::Mutex<Option<String>>>,
    agents: tokio::sync::Mutex<Vec<AgentSlot>>,
    quit: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), String>>>,
    stop_server: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), String>>,
    dir: PathBuf,
    remove_dir: bool,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl Demo {
    /// An API call as the demo's admin: the answer of a 2xx, else an error naming the call.
    pub async fn call(&self, method: &'static str, path: String, body: Option<Value>) -> Result<Value, String> {
        let (status, answer) = call_json(&self.access.url, method, &path, body.as_ref(), Some(&self.token)).await?;
        if !(200..300).contains(&status) {
            return Err(format!("{method} {path}: {status} {answer}"));
        }
        Ok(answer)
    }

    /// Sets everything up and starts the agents.
    pub async fn start(opts: DemoOptions) -> Result<Self, String> {
        if opts.devices == 0 || !opts.speed.is_finite() || opts.speed <= 0.0 {
            return Err("--devices and --speed must be positive".into());
        }
        let dir = match &opts.dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!(
                "tod-demo-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            )),
        };
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let database_url = match &opts.postgres {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", dir.join("tod.sqlite").display()),
        };
        let interval_secs = ((60.0 / opts.speed).round() as u64).clamp(1, 60);
        let password = format!(
            "demo-{}",
            hex::encode(crate::auth::random_bytes::<6>().map_err(|e| e.detail)?)
        );

        // The server, exactly as `serve` starts it.
        let mut settings = Settings::for_database(&database_url);
        settings.environment = Environment::Dev;
        settings.listen = opts.listen;
        settings.admin_email = Some(ADMIN_EMAIL.into());
        settings.admin_password = Some(password.clone());
        let clock = if opts.simulated_clock {
            Clock::accelerated(opts.speed)
        } else {
            Clock::System
        };
        if opts.simulated_clock {
            // The server reads the world's clock: its settings are in simulated seconds, as a
            // real deployment's (an agent poll is `interval_secs` of wall time).
            settings.clock = clock;
            settings.agent_poll_interval_secs = ((interval_secs as f64 * opts.speed).round() as u32).clamp(5, 86_400);
        } else {
            // The server notices silent agents after three of its intervals (it allows 5 s at least).
            settings.agent_poll_interval_secs = interval_secs.max(5) as u32;
            // Site rules see the world at its own pace: judged every 5 simulated minutes, over
            // sector windows of 10 simulated minutes against an hour before.
            settings.alert_evaluation_interval_secs = ((300.0 / opts.speed).round() as u32).clamp(1, 300);
            let windows = SnapshotWindows::scaled(opts.speed);
            let whole_secs = |d: chrono::Duration| u32::try_from(d.num_seconds().max(1)).unwrap_or(u32::MAX);
            settings.sector_window_secs = whole_secs(windows.recent).min(600);
            settings.sector_lookback_secs = whole_secs(windows.lookback).clamp(settings.sector_window_secs, 3600);
        }
        settings.nats_url = opts.nats.clone();
        let server = crate::app::Server::start(&settings).await?;
        let api = server.local_addr();
        let trend = server.state.trend;
        let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server.serve(async move {
            let _ = server_stopped.await;
        }));
        let url = format!("http://{api}");

        // The simulated towers.
        let sim = Simulator::start(SimConfig {
            seed: opts.seed,
            devices: opts.devices,
            speed: opts.speed,
            ..SimConfig::default()
        })
        .await
        .map_err(|e| format!("simulator: {e}"))?;
        let sim = Arc::new(sim);
        let world = sim.world();
        let agents = opts.agents.unwrap_or(world.sites).clamp(1, world.sites.max(1));

        // Set up through the API, as an operator would.
        let tokens = crate::client::login(&url, ADMIN_EMAIL, &password).await?;
        let token = tokens["access_token"]
            .as_str()
            .ok_or("login: no access token")?
            .to_owned();
        let call = |method: &'static str, path: String, body: Option<Value>| {
            let (url, token) = (url.clone(), token.clone());
            async move {
                let (status, answer) = call_json(&url, method, &path, body.as_ref(), Some(&token)).await?;
                if !(200..300).contains(&status) {
                    return Err(format!("{method} {path}: {status} {answer}"));
                }
                Ok::<Value, String>(answer)
            }
        };
        let tenant = call("POST", "/api/tenants".into(), Some(json!({ "name": "Demo WISP" }))).await?;
        let tenant = tenant["id"].as_str().ok_or("tenant: no id")?.to_owned();
        let key = call(
            "POST",
            format!("/api/tenants/{tenant}/api-keys"),
            Some(json!({ "name": "demo", "scopes": ["devices:read", "devices:write", "alerts:read"] })),
        )
        .await?;
        let api_key = key["key"].as_str().unwrap_or_default().to_owned();
        let mut sites = Vec::with_capacity(agents);
        for a in 0..agents {
            // Towers on a small grid around a town, ~5 km apart.
            let (row, col) = ((a / 6) as f64, (a % 6) as f64);
            let site = call(
                "POST",
                format!("/api/tenants/{tenant}/sites"),
                Some(json!({
                    "name": format!("Tower {:02}", a + 1),
                    "latitude": -33.90 + row * 0.045,
                    "longitude": 18.40 + col * 0.055,
                })),
            )
            .await?;
            sites.push(site["id"].as_str().ok_or("site: no id")?.to_owned());
        }
        // A sector per access point, facing its own way around the tower.
        let mut sectors: std::collections::HashMap<usize, String> = std::collections::HashMap::new();
        let mut per_tower = vec![0usize; agents];
        for ap in world.devices.iter().filter(|d| d.role == Role::Ap) {
            let tower = ap.site % agents;
            let azimuth = (per_tower[tower] * 120 + 60 * (per_tower[tower] / 3)) % 360;
            per_tower[tower] += 1;
            let sector = call(
                "POST",
                format!("/api/tenants/{tenant}/sites/{}/sectors", sites[tower]),
                Some(json!({ "name": format!("{} sector", ap.name), "azimuth": azimuth })),
            )
            .await?;
            sectors.insert(ap.index, sector["id"].as_str().ok_or("sector: no id")?.to_owned());
        }
        for d in &world.devices {
            let site = &sites[d.site % agents];
            let device = call(
                "POST",
                format!("/api/tenants/{tenant}/devices"),
                Some(json!({
                    "name": d.name,
                    "host": "127.0.0.1",
                    "port": sim.ports(d.index).plain.port(),
                    "transport": "plain",
                    "site_id": site,
                    "username": "admin",
                    "password": "admin",
                })),
            )
            .await?;
            let id = device["id"].as_str().ok_or("device: no id")?;
            // An access point and its customers' radios belong to its sector.
            let ap = if d.role == Role::Ap {
                Some(d.index)
            } else {
                d.ap.map(|(ap, _)| ap)
            };
            if let Some(sector) = ap.and_then(|ap| sectors.get(&ap)) {
                call(
                    "PUT",
                    format!("/api/tenants/{tenant}/devices/{id}/sector"),
                    Some(json!({ "sector_id": sector })),
                )
                .await?;
            }
        }
        // A weak-signal rule per sector, 6 dB under the weakest clear-sky average its clients
        // give (rain over a tower fades a whole sector at once; one client's bad day does not).
        for ap in world.devices.iter().filter(|d| d.role == Role::Ap) {
            let (Some(sector), Some(clear)) = (sectors.get(&ap.index), clear_sky_floor(world, ap.index)) else {
                continue;
            };
            call(
                "POST",
                format!("/api/tenants/{tenant}/sites/{}/alert-rules", sites[ap.site % agents]),
                Some(json!({
                    "name": format!("Weak signal on {}", ap.name),
                    "rule_type": "sector_signal_avg",
                    "threshold_value": (clear - 6.0).round().clamp(-120.0, 0.0),
                    "threshold_unit": "dBm",
                    "sector_id": sector,
                    "description": "The sector's average client signal over the last 10 minutes is 6 dB under clear sky: rain, or something in the path.",
                })),
            )
            .await?;
        }
        let dying = opts.dying.then(|| dying_cpe(world, agents)).flatten();
        let access = DemoAccess {
            url: url.clone(),
            email: ADMIN_EMAIL.into(),
            password: password.clone(),
            api_key,
            tenant: tenant.clone(),
            towers: agents,
            dying_cpe: dying.map(|(cpe, _)| world.devices[cpe].name.clone()),
        };

        // One agent per tower: created, enrolled in the tunnel, and started with what the API returned.
        // A scripted backhaul outage at one tower (when there is more than one): its agent stops after
        // ten polls and comes back after five of the server's intervals, so the site's devices turn
        // unreachable, one "agent offline" alert fires, and it resolves when the agent backfills.
        let outage = (opts.outage && agents >= 2).then(|| {
            (
                Duration::from_secs(10 * interval_secs),
                clock.real(5.0 * f64::from(settings.agent_poll_interval_secs)),
            )
        });
        let mut outage_cfg = None;
        let mut slots = Vec::new();
        let mut tasks = Vec::new();
        for (i, site) in sites.iter().enumerate() {
            let agent = call(
                "POST",
                format!("/api/tenants/{tenant}/agents"),
                Some(json!({ "name": format!("tower-{:02}", i + 1), "site_id": site })),
            )
            .await?;
            let (id, agent_token) = (
                agent["id"].as_str().ok_or("agent: no id")?.to_owned(),
                agent["token"].as_str().ok_or("agent: no token")?.to_owned(),
            );
            let peer = call(
                "POST",
                format!("/api/vpn/peers?tenant_id={tenant}"),
                Some(json!({ "agent_id": id })),
            )
            .await?;
            let tunnel_config = peer["agent_config"].as_str().ok_or("vpn: no agent_config")?;
            // With NATS, the agents publish to the broker through the gateway's NATS port.
            let uplink = match &opts.nats {
                Some(_) => format!(
                    "uplink = \"nats\"\nnats = \"nats://{}:{}\"\n",
                    crate::store::TUNNEL_GATEWAY,
                    crate::vpn::NATS_PORT
                ),
                None => String::new(),
            };
            let toml = format!(
                "[agent]\nid = \"{id}\"\ntoken = \"{agent_token}\"\n[poll]\ninterval_secs = {interval_secs}\n\
             backoff_base_secs = {}\nbackoff_max_secs = {}\n\
             [spool]\ndir = \"{}\"\n[metrics]\nlisten = \"\"\n{}",
                // The agents' backoff runs on the simulated clock's scale too.
                30.0 / opts.speed,
                900.0 / opts.speed,
                dir.join(format!("agent-{i:02}")).display(),
                tunnel_config.replacen("[server]\n", &format!("[server]\npull_devices = true\n{uplink}"), 1),
            );
            let cfg = tod_agent::config::AgentConfig::parse(&toml).map_err(|e| format!("agent {i}: {e}"))?;
            if outage.is_some() && i + 1 == agents {
                // The last tower's backhaul fails for a while (scripted below).
                outage_cfg = Some((format!("tower-{:02}", i + 1), cfg));
                continue;
            }
            slots.push(AgentSlot {
                tower: i,
                running: Some(spawn_agent(cfg.clone(), clock)),
                cfg,
            });
        }
        let (quit_tx, quit_rx) = tokio::sync::watch::channel(false);
        let note = Arc::new(std::sync::Mutex::new(None::<String>));
        if let (Some((after, length)), Some((name, cfg))) = (outage, outage_cfg) {
            tasks.push(tokio::spawn(scripted_outage(
                name,
                (cfg, clock),
                after,
                length,
                quit_rx.clone(),
                note.clone(),
            )));
        }
        if opts.rain {
            // Heavy rain over the first tower after four polls, for 40 simulated minutes.
            let aps: Vec<usize> = world
                .devices
                .iter()
                .filter(|d| d.role == Role::Ap && d.site % agents == 0)
                .map(|d| d.index)
                .collect();
            if !aps.is_empty() {
                tasks.push(tokio::spawn(scripted_rain(
                    sim.clone(),
                    "Tower 01".into(),
                    aps,
                    (
                        Duration::from_secs(4 * interval_secs),
                        Duration::from_secs_f64(RAIN_SIM_SECS / opts.speed),
                    ),
                    quit_rx.clone(),
                    note.clone(),
                )));
            }
        }
        if let Some((cpe, fade_db)) = dying {
            tasks.push(tokio::spawn(scripted_dying(
                sim.clone(),
                world.devices[cpe].name.clone(),
                (cpe, fade_db),
                (
                    Duration::from_secs(6 * interval_secs),
                    Duration::from_secs(interval_secs),
                ),
                quit_rx.clone(),
                note.clone(),
            )));
        }
        let (stop_server, server) = (stop_server, server);
        Ok(Self {
            access,
            sim,
            interval_secs,
            clock,
            trend,
            token,
            note,
            agents: tokio::sync::Mutex::new(slots),
            quit: quit_tx,
            tasks,
            stop_server,
            server,
            remove_dir: opts.dir.is_none(),
            dir,
        })
    }

    /// Reads progress every 2 s until `shutdown` resolves.
    pub async fn progress(
        &self,
        progress: impl Fn(&Progress) + Send + 'static,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), String> {
        let tenant = &self.access.tenant;
        let note = &self.note;
        let call = |method: &'static str, path: String, body: Option<Value>| self.call(method, path, body);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut every = tokio::time::interval(Duration::from_secs(2));
        let started = Instant::now();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = every.tick() => {
                    let devices = call("GET", format!("/api/tenants/{tenant}/devices"), None).await?;
                    let links = call("GET", format!("/api/tenants/{tenant}/links"), None).await?;
                    let peers = call("GET", format!("/api/vpn/peers?tenant_id={tenant}"), None).await?;
                    let devices = devices.as_array().cloned().unwrap_or_default();
                    let links = links.as_array().cloned().unwrap_or_default();
                    let alerts = call("GET", format!("/api/tenants/{tenant}/alert-events/count"), None).await?;
                    let device_alerts = call("GET", format!("/api/alerts/active-count?tenant_id={tenant}"), None).await?;
                    let p = Progress {
                        active_alerts: alerts["count"].as_u64().unwrap_or(0) as usize,
                        device_alerts: device_alerts["count"].as_u64().unwrap_or(0) as usize,
                        note: note.lock().expect("note lock").take(),
                        devices: devices.len(),
                        online: devices.iter().filter(|d| d["status"] == "online").count(),
                        links: links.len(),
                        live_links: links.iter().filter(|l| l["state"] == "active" || l["state"] == "degraded").count(),
                        tunnels_up: peers.as_array().map_or(0, |a| a.iter().filter(|p| p["up"] == true).count()),
                    };
                    tracing::debug!(elapsed = ?started.elapsed(), ?p, "demo progress");
                    progress(&p);
                }
            }
        }
        Ok(())
    }

    /// Stops tower `tower`'s agent, as a backhaul failure would (it keeps its spool).
    pub async fn stop_agent(&self, tower: usize) -> Result<(), String> {
        let running = {
            let mut slots = self.agents.lock().await;
            let slot = slots
                .iter_mut()
                .find(|s| s.tower == tower)
                .ok_or_else(|| format!("no agent at tower {tower}"))?;
            slot.running.take()
        };
        if let Some((stop, task)) = running {
            let _ = stop.send(());
            task.await.map_err(|e| e.to_string())??;
        }
        Ok(())
    }

    /// Starts tower `tower`'s agent again (it backfills from its spool).
    pub async fn start_agent(&self, tower: usize) -> Result<(), String> {
        let mut slots = self.agents.lock().await;
        let slot = slots
            .iter_mut()
            .find(|s| s.tower == tower)
            .ok_or_else(|| format!("no agent at tower {tower}"))?;
        if slot.running.is_none() {
            slot.running = Some(spawn_agent(slot.cfg.clone(), self.clock));
        }
        Ok(())
    }

    /// Stops the agents, the server and the simulator, and removes the temporary directory.
    pub async fn stop(self) {
        let Self {
            agents,
            quit,
            mut tasks,
            stop_server,
            server,
            sim,
            dir,
            remove_dir,
            ..
        } = self;
        for slot in agents.into_inner() {
            if let Some((stop, task)) = slot.running {
                let _ = stop.send(());
                tasks.push(task);
            }
        }
        let _ = quit.send(true);
        for task in tasks {
            match task.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "agent stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "agent task failed"),
                Ok(Ok(())) => {}
            }
        }
        let _ = stop_server.send(());
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the server stopped with an error"),
            Err(_) => tracing::warn!("the server did not stop within 5 s"),
            _ => {}
        }
        drop(sim);
        if remove_dir {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Runs one tower's agent, stops it after `after` (its backhaul fails), starts it again after
/// `length` (it backfills from its spool), then runs until the demo quits.
async fn scripted_outage(
    name: String,
    (cfg, clock): (tod_agent::config::AgentConfig, Clock),
    after: Duration,
    length: Duration,
    mut quit: tokio::sync::watch::Receiver<bool>,
    note: Arc<std::sync::Mutex<Option<String>>>,
) -> Result<(), String> {
    let say = |s: String| *note.lock().expect("note lock") = Some(s);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut q = quit.clone();
    let first = tokio::spawn(tod_agent::daemon::run_with_clock(cfg.clone(), clock, async move {
        tokio::select! {
            _ = stopped => {}
            _ = quitting(&mut q) => {}
        }
    }));
    tokio::select! {
        _ = tokio::time::sleep(after) => {}
        _ = quitting(&mut quit) => return first.await.map_err(|e| e.to_string())?,
    }
    let _ = stop.send(());
    first.await.map_err(|e| e.to_string())??;
    say(format!(
        "scripted: {name}'s backhaul is down for {} s",
        length.as_secs()
    ));
    if !sleep_unless_quit(length, &mut quit).await {
        return Ok(());
    }
    say(format!("scripted: {name}'s backhaul is back; its agent backfills"));
    tod_agent::daemon::run_with_clock(cfg, clock, async move { quitting(&mut quit).await }).await
}

/// Heavy rain over a tower: after `after`, each of `aps`' links fades by [`RAIN_FADE_DB`] for
/// [`RAIN_SIM_SECS`] of simulated time (`length` of real time), in both directions.
async fn scripted_rain(
    sim: Arc<Simulator>,
    tower: String,
    aps: Vec<usize>,
    (after, length): (Duration, Duration),
    mut quit: tokio::sync::watch::Receiver<bool>,
    note: Arc<std::sync::Mutex<Option<String>>>,
) -> Result<(), String> {
    let say = |s: String| *note.lock().expect("note lock") = Some(s);
    if !sleep_unless_quit(after, &mut quit).await {
        return Ok(());
    }
    let until = sim.clock().now() + RAIN_SIM_SECS;
    for &ap in &aps {
        sim.set_faults(
            ap,
            Faults {
                fade_db: RAIN_FADE_DB,
                fade_until: Some(until),
                ..sim.state(ap).faults()
            },
        );
    }
    say(format!(
        "scripted: heavy rain over {tower} for {} simulated minutes (-{RAIN_FADE_DB} dB on {} access points' links)",
        RAIN_SIM_SECS / 60.0,
        aps.len()
    ));
    if !sleep_unless_quit(length, &mut quit).await {
        return Ok(());
    }
    say(format!("scripted: the rain over {tower} has passed"));
    Ok(())
}

/// The customer radio to script a death for, and how far its link must fade to end at
/// [`DYING_SIGNAL_DBM`]: a steady client on the busiest radio of the second tower (neither the
/// rain's nor the outage's when there are three or more; else the first), so its fall shows as its
/// own alerts and barely moves its sector's average.
fn dying_cpe(world: &World, towers: usize) -> Option<(usize, f64)> {
    let tower = if towers >= 3 { 1 } else { 0 };
    let steady_radio = |c: &&Client| c.cpe.is_some() && c.behaviour == Behaviour::Steady;
    let c = world
        .devices
        .iter()
        .filter(|d| d.role == Role::Ap && d.site % towers.max(1) == tower)
        .flat_map(|ap| &ap.radios)
        .filter(|r| r.clients.iter().any(|c| steady_radio(&c)))
        .max_by_key(|r| r.clients.len())?
        .clients
        .iter()
        .find(steady_radio)?;
    Some((c.cpe?, (f64::from(c.base_signal) - DYING_SIGNAL_DBM).max(0.0)))
}

/// A customer radio dying: after `after`, its link (both ways) weakens steadily by up to
/// `fade_db` over [`DYING_RAMP_SIM_SECS`] of simulated time, re-set every `step` of real time,
/// stays that weak for [`DYING_HOLD_SIM_SECS`], and then the radio goes dark for good.
async fn scripted_dying(
    sim: Arc<Simulator>,
    name: String,
    (cpe, fade_db): (usize, f64),
    (after, step): (Duration, Duration),
    mut quit: tokio::sync::watch::Receiver<bool>,
    note: Arc<std::sync::Mutex<Option<String>>>,
) -> Result<(), String> {
    let say = |s: String| *note.lock().expect("note lock") = Some(s);
    if !sleep_unless_quit(after, &mut quit).await {
        return Ok(());
    }
    say(format!(
        "scripted: {name}'s radio is failing (its link weakens by {fade_db:.0} dB over {} simulated minutes)",
        DYING_RAMP_SIM_SECS / 60.0
    ));
    let start = sim.clock().now();
    let end = start + DYING_RAMP_SIM_SECS + DYING_HOLD_SIM_SECS;
    loop {
        let now = sim.clock().now();
        if now >= end {
            break;
        }
        sim.set_faults(
            cpe,
            Faults {
                fade_db: fade_db * ((now - start) / DYING_RAMP_SIM_SECS).min(1.0),
                fade_until: Some(end),
                ..sim.state(cpe).faults()
            },
        );
        if !sleep_unless_quit(step, &mut quit).await {
            return Ok(());
        }
    }
    sim.set_faults(
        cpe,
        Faults {
            // Gone for good (a century of simulated time).
            offline_until: Some(end + 100.0 * 365.0 * 86_400.0),
            ..sim.state(cpe).faults()
        },
    );
    say(format!("scripted: {name} has died"));
    Ok(())
}

/// Where the dying radio's link ends up before it dies, dBm (well under the default rule's −75).
pub const DYING_SIGNAL_DBM: f64 = -88.0;
/// How long the dying radio's link takes to weaken, simulated seconds.
pub const DYING_RAMP_SIM_SECS: f64 = 1_200.0;
/// How long it stays weak before it dies, simulated seconds.
pub const DYING_HOLD_SIM_SECS: f64 = 600.0;

/// How much weaker heavy rain makes each link, dB.
pub const RAIN_FADE_DB: f64 = 14.0;
/// How long the scripted rain lasts, simulated seconds.
pub const RAIN_SIM_SECS: f64 = 2_400.0;

/// The weakest average signal access point `ap`'s clients give under a clear sky, dBm: over all
/// of them, and over those that are always there (roaming and flapping clients come and go, and
/// take their signal out of the average with them), whichever is lower. `None` without clients.
pub fn clear_sky_floor(world: &World, ap: usize) -> Option<f64> {
    let clients: Vec<_> = world.devices.get(ap)?.radios.iter().flat_map(|r| &r.clients).collect();
    let mean = |keep: &dyn Fn(Behaviour) -> bool| {
        let kept: Vec<f64> = clients
            .iter()
            .filter(|c| keep(c.behaviour))
            .map(|c| f64::from(c.base_signal))
            .collect();
        (!kept.is_empty()).then(|| kept.iter().sum::<f64>() / kept.len() as f64)
    };
    let all = mean(&|_| true)?;
    let always = mean(&|b| matches!(b, Behaviour::Steady | Behaviour::Degrading));
    Some(always.map_or(all, |a| a.min(all)))
}

/// Resolves once the demo is quitting (holding no borrow of the flag across an await).
async fn quitting(quit: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = quit.wait_for(|q| *q).await;
}

/// Sleeps for `length` unless the demo quits first; whether the time passed.
async fn sleep_unless_quit(length: Duration, quit: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(length) => true,
        _ = quitting(quit) => false,
    }
}
