//! Shared inputs for TOD's benches. The criterion micro-benches live in `core.rs`; the end-to-end
//! load harness (simulator → agents → tunnel → server) will live beside them.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use chrono::{DateTime, Duration, TimeZone, Utc};
use tod_core::RuleId;
use tod_core::alerts::{DeviceRule, Metric, Metrics, Op, RuleScope, Severity};
use tod_core::signal::Sample;
use tod_examples::pick;

/// `n` signal samples spread over the last 30 days before `now`, in random order.
pub fn samples(n: usize, now: DateTime<Utc>) -> Vec<Sample> {
    (0..n as u64)
        .map(|i| Sample {
            at: now - Duration::seconds(pick(1, i, 0, 30 * 86_400) as i64),
            dbm: -40 - pick(2, i, 0, 50) as i16,
        })
        .collect()
}

/// A fixed evaluation instant.
pub fn bench_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 19, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// Ten tenant-wide rules over seven metrics, as a busy tenant would have.
pub fn ten_rules() -> Vec<DeviceRule> {
    let spec = [
        (Metric::CpuLoad, Op::Gt, 90.0, 5),
        (Metric::CpuLoad, Op::Gt, 98.0, 1),
        (Metric::MemoryUsedPct, Op::Gt, 90.0, 5),
        (Metric::DiskUsedPct, Op::Gt, 85.0, 3),
        (Metric::Temperature, Op::Gt, 70.0, 3),
        (Metric::SignalStrength, Op::Lt, -75.0, 3),
        (Metric::SignalStrength, Op::Lt, -85.0, 1),
        (Metric::Ccq, Op::Lt, 50.0, 3),
        (Metric::ClientCount, Op::Gt, 120.0, 2),
        (Metric::DeviceOffline, Op::Eq, 1.0, 2),
    ];
    spec.iter()
        .enumerate()
        .map(|(i, &(metric, op, threshold, duration_polls))| DeviceRule {
            id: RuleId::from_u128(i as u128 + 1),
            name: format!("rule {i}"),
            metric,
            op,
            threshold,
            duration_polls,
            severity: Severity::Warning,
            scope: RuleScope::Tenant,
            enabled: true,
            is_default: false,
        })
        .collect()
}

/// Metrics of device `d` at poll `p`: mostly healthy, about 3 % of values breaching.
pub fn metrics(d: u64, p: u64) -> Metrics {
    let r = |k: u64, n: u64| pick(p, d, k, n) as f64;
    Metrics {
        cpu_load: Some(if r(1, 100) < 3.0 { 95.0 } else { r(2, 60) }),
        memory_used_pct: Some(40.0 + r(3, 30)),
        disk_used_pct: Some(20.0 + r(4, 40)),
        temperature: Some(35.0 + r(5, 20)),
        signal_strength: Some(-55.0 - r(6, 24)),
        ccq: Some(60.0 + r(7, 40)),
        client_count: Some(r(8, 60)),
        device_offline: Some(if r(9, 100) < 1.0 { 1.0 } else { 0.0 }),
    }
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (CPU seconds, peak RSS MiB) of a process (`"self"` or a pid), from /proc.
pub fn proc_usage(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    (ticks / clk_tck(), hwm_kb / 1024.0)
}

/// A simulator running in a child process (this bench binary re-executed with
/// `--sim-child N SEED`), so its CPU and memory are its own.
#[derive(Debug)]
pub struct SimChild {
    /// The process.
    pub child: Child,
    /// Plain API port per device.
    pub ports: Vec<u16>,
    /// Wireless menu per device (`""` without one).
    pub menus: Vec<String>,
    /// Whether the device only accepts the legacy login.
    pub legacy: Vec<bool>,
    /// Name per device (unique within this simulator's world).
    pub names: Vec<String>,
    /// Site number per device (within this simulator's world).
    pub sites: Vec<usize>,
    /// Role per device: `ap`, `cpe` or `router`.
    pub roles: Vec<String>,
}

impl SimChild {
    /// Starts one and waits until its devices listen.
    pub fn spawn(devices: usize, seed: u64) -> Self {
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .args(["--sim-child", &devices.to_string(), &seed.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("simulator child");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("device line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("device json");
        let list = |k: &str| v[k].as_array().unwrap_or_else(|| panic!("{k}")).clone();
        let strings = |k: &str| -> Vec<String> {
            list(k)
                .iter()
                .map(|m| m.as_str().unwrap_or_else(|| panic!("{k}")).to_owned())
                .collect()
        };
        Self {
            child,
            ports: list("ports").iter().map(|p| p.as_u64().expect("port") as u16).collect(),
            menus: strings("menus"),
            legacy: list("legacy").iter().map(|b| b.as_bool().expect("legacy")).collect(),
            names: strings("names"),
            sites: list("sites")
                .iter()
                .map(|s| s.as_u64().expect("site") as usize)
                .collect(),
            roles: strings("roles"),
        }
    }

    /// The child's pid, for `/proc` readings.
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Switches device `i` off for `secs` simulated seconds (connections refused, sessions
    /// dropped), as a CPE losing power would.
    pub fn switch_off(&mut self, i: usize, secs: u64) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("simulator stdin");
        writeln!(stdin, "off {i} {secs}").expect("simulator command");
        stdin.flush().expect("simulator command");
    }

    /// Stops it (closing its stdin) and waits.
    pub fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The child side of [`SimChild`]: serve `devices` simulated devices, print their ports, menus,
/// login kinds, names, sites and roles as one JSON line, then obey commands on stdin (`off I SECS`)
/// until it closes.
pub fn run_sim_child(devices: usize, seed: u64) {
    use tod_agent::sim::{SimConfig, Simulator};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sim = Simulator::start(SimConfig {
            seed,
            devices,
            ..SimConfig::default()
        })
        .await
        .expect("simulator");
        let w = sim.world();
        let ports: Vec<u16> = (0..devices).map(|i| sim.ports(i).plain.port()).collect();
        let menus: Vec<&str> = w.devices.iter().map(|d| d.package.menu().unwrap_or("")).collect();
        let legacy: Vec<bool> = w.devices.iter().map(|d| !d.version.plain_login()).collect();
        let names: Vec<&str> = w.devices.iter().map(|d| d.name.as_str()).collect();
        let sites: Vec<usize> = w.devices.iter().map(|d| d.site).collect();
        let roles: Vec<&tod_agent::sim::world::Role> = w.devices.iter().map(|d| &d.role).collect();
        println!(
            "{}",
            serde_json::json!({
                "ports": ports, "menus": menus, "legacy": legacy,
                "names": names, "sites": sites, "roles": roles,
            })
        );
        let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = commands.recv().await {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["off", i, secs] = words[..]
                && let (Ok(i), Ok(secs)) = (i.parse::<usize>(), secs.parse::<f64>())
                && i < devices
            {
                let mut faults = sim.state(i).faults();
                faults.offline_until = Some(sim.clock().now() + secs);
                sim.set_faults(i, faults);
            } else {
                eprintln!("simulator child: unknown command {line:?}");
            }
        }
    });
}

/// A `tod-agent run` daemon in a child process (this bench binary re-executed with
/// `--agent-child CONFIG`, which calls [`run_agent_child`]), so its CPU and memory are its own.
#[derive(Debug)]
pub struct AgentChild {
    child: Child,
}

impl AgentChild {
    /// Starts the daemon with the configuration file at `config`; what it writes to stderr (an
    /// error that stops it) goes to `config` with `.log` appended.
    pub fn spawn(config: &std::path::Path) -> Self {
        let exe = std::env::current_exe().expect("own path");
        let log = std::fs::File::create(config.with_extension("toml.log")).expect("agent log file");
        let child = Command::new(exe)
            .args(["--agent-child", config.to_str().expect("utf-8 path")])
            .stdin(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("agent child");
        Self { child }
    }

    /// The child's pid, for `/proc` readings.
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Stops it gracefully (closing its stdin) and waits.
    pub fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The child side of [`AgentChild`]: `tod_agent::daemon::run`, exactly as `tod-agent run` runs
/// it (on a single-threaded runtime), until stdin closes.
pub fn run_agent_child(config: &str) {
    let cfg = tod_agent::config::AgentConfig::load(std::path::Path::new(config)).expect("config");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tod_agent::daemon::run(cfg, stdin_closed()).await.expect("agent runs");
    });
}

/// A `tod-server` in a child process (this bench binary re-executed with `--server-child URL`,
/// which calls [`serve_child`]), so the load generator and the server are separate processes.
#[derive(Debug)]
pub struct ServerChild {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub url: String,
}

impl ServerChild {
    /// Starts it over `db_url` and waits for its address.
    pub fn spawn(db_url: &str) -> Self {
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .args(["--server-child", db_url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("server child");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server url");
        Self {
            child,
            url: line.trim().to_owned(),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Ends it (closing its stdin) and waits.
    pub fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// What a bench binary that runs the server in a child process does first: when it is that child
/// (`--server-child URL`), serve until stdin closes; when cargo only lists benches (`--list`),
/// nothing. True when the caller should return at once.
pub fn child_or_list(admin: &str, password: &str) -> bool {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--server-child") {
        serve_child(&args[i + 1], admin, password);
        return true;
    }
    args.iter().any(|a| a == "--list")
}

/// The child's side: `tod-server serve` on a loopback port for `db_url` with a bootstrap super
/// admin, its address printed on stdout, until stdin closes.
pub fn serve_child(db_url: &str, admin: &str, password: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut settings = tod_server::settings::Settings::for_database(db_url);
        settings.jwt_secret = Some("bench-signing-key-of-at-least-32-bytes".into());
        settings.admin_email = Some(admin.into());
        settings.admin_password = Some(password.into());
        settings.auth_rate_limit = 1_000_000;
        let store = tod_server::store::open(db_url).await.expect("store");
        let state = tod_server::app::AppState::start(store, &settings).await.expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("http://{}", listener.local_addr().expect("addr"));
        let app = tod_server::app::app(state);
        let stop = stdin_closed();
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stop)
        .await
        .expect("serve");
    });
}

/// Resolves when stdin closes (or a line arrives): how a bench's child process is told to stop.
pub async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
    })
    .await;
}

/// A number from the environment, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `run(backend, database URL)` on a fresh SQLite file and, when PostgreSQL answers at
/// `TOD_TEST_POSTGRES_URL`, on a fresh PostgreSQL database; both are removed afterwards. `label`
/// names the files and databases; `run` returns what it measured. `TOD_BENCH_BACKENDS`
/// (`sqlite`, `postgres` or both, comma-separated; both by default) picks the backends.
pub fn on_each_backend(
    rt: &tokio::runtime::Runtime,
    label: &str,
    mut run: impl FnMut(&'static str, &str) -> Vec<serde_json::Value>,
) -> Vec<serde_json::Value> {
    use sqlx::Connection;
    let picked = std::env::var("TOD_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let wants = |backend: &str| picked.split(',').any(|b| b.trim() == backend);
    let mut results = Vec::new();
    if wants("sqlite") {
        let file = std::env::temp_dir().join(format!("tod-{label}-bench-{}.sqlite", std::process::id()));
        results.extend(run("sqlite", &format!("sqlite://{}", file.display())));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }
    if !wants("postgres") {
        return results;
    }
    let admin =
        std::env::var("TOD_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    match rt.block_on(sqlx::PgConnection::connect(&admin)) {
        Ok(mut c) => {
            let name = format!("tod_{label}_bench_{}", std::process::id());
            rt.block_on(sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut c))
                .expect("create database");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            results.extend(run("postgres", &format!("{base}/{name}")));
            rt.block_on(sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&mut c))
                .expect("drop database");
        }
        Err(e) => eprintln!("PostgreSQL at {admin} does not answer ({e}); SQLite only"),
    }
    results
}
