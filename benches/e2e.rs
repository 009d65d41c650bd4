//! The whole system under load, end to end: simulated towers → tod-agents → WireGuard tunnels →
//! tod-server → database, at 1 000, 5 000 and 20 000 devices polled every 60 s.
//!
//! Every part runs in its own process so its CPU and memory are its own: simulators (this binary
//! re-executed with `--sim-child`, at most 5 000 devices each), `tod-server` exactly as `serve`
//! starts it with its embedded WireGuard gateway (`--e2e-server`), and one agent per group of
//! towers (`--agent-child`, the `tod-agent run` daemon), each enrolled through the API, pulling its
//! devices from the server and delivering through its own tunnel. Everything is set up through the
//! REST API, as an operator would.
//!
//! After every device has been seen online, it measures `TOD_E2E_CYCLES` poll intervals:
//! - poll cycle completion: device polls done against polls due, from the agents' status files;
//! - reports/s ingested and registration rows/s committed, read from the database;
//! - CPU of the server, the agents and the database (PostgreSQL's processes and NATS on that
//!   backend) as a share of the machine's two cores, and peak RSS of server and agents;
//! - uplink bytes per device per hour (payload the agents sent through their tunnels);
//! - event to alert: at the window's start CPEs are switched off in the simulator; each one's
//!   `device offline` alert is timed from the poll that fired it (its `fired_at`, the report's
//!   collection time — the rule's own hysteresis and the wait for the next poll excluded) to the
//!   moment the API lists it (polled every 100 ms). Switch-off to listed is reported too.
//!
//! SQLite uses the HTTP uplink; PostgreSQL (when `TOD_TEST_POSTGRES_URL` answers) the NATS
//! JetStream uplink at `TOD_TEST_NATS_URL` (default the local NATS).
//!
//! Run: `cargo bench -p tod-benches --bench e2e` (`TOD_E2E_SIZES=1000,5000,20000`,
//! `TOD_E2E_BACKENDS=sqlite,postgres`, `TOD_E2E_INTERVAL=60`, `TOD_E2E_CYCLES=2`,
//! `TOD_E2E_EVENTS=12`, `TOD_E2E_DEVICES_PER_AGENT=250`, `TOD_E2E_JSON=e2e.json`). A table goes
//! to stdout, the figures as JSON to `TOD_E2E_JSON`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tod_benches::{
    AgentChild, SimChild, env_num, on_each_backend, proc_usage, run_agent_child, run_sim_child, stdin_closed,
};

const ADMIN: &str = "bench@e2e.tod";
const PASSWORD: &str = "e2e-bench-admin-password";
/// Devices per simulator process (file descriptors: one listener and a session each).
const PER_SIM: usize = 5_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--sim-child") {
        return run_sim_child(args[i + 1].parse().expect("count"), args[i + 2].parse().expect("seed"));
    }
    if let Some(i) = args.iter().position(|a| a == "--agent-child") {
        return run_agent_child(&args[i + 1]);
    }
    if let Some(i) = args.iter().position(|a| a == "--e2e-server") {
        return serve(&args[i + 1], &args[i + 2], args[i + 3].parse().expect("interval"));
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("TOD_E2E_SIZES")
        .unwrap_or_else(|_| "1000,5000,20000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let backends = std::env::var("TOD_E2E_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let plan = Plan {
        interval: env_num("TOD_E2E_INTERVAL", 60),
        cycles: env_num("TOD_E2E_CYCLES", 2),
        events: env_num("TOD_E2E_EVENTS", 12) as usize,
        per_agent: env_num("TOD_E2E_DEVICES_PER_AGENT", 250).max(1) as usize,
        nats: std::env::var("TOD_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut results = Vec::new();
    for &n in &sizes {
        results.extend(on_each_backend(&rt, &format!("e2e{n}"), |backend, url| {
            if !backends.split(',').any(|b| b.trim() == backend) {
                return Vec::new();
            }
            match rt.block_on(run(&plan, backend, url, n)) {
                Ok(r) => vec![r],
                Err(e) => {
                    eprintln!("{backend}, {n} devices: {e}");
                    vec![json!({ "backend": backend, "devices": n, "error": e })]
                }
            }
        }));
    }
    print_table(&results);
    let out = std::env::var("TOD_E2E_JSON").unwrap_or_else(|_| "e2e.json".into());
    let doc = json!({
        "machine": machine(),
        "interval_secs": plan.interval,
        "cycles": plan.cycles,
        "runs": results,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&doc).expect("json")).expect("write the JSON");
    println!("figures written to {out}");
}

/// What one run does, the same at every size.
struct Plan {
    interval: u64,
    cycles: u64,
    events: usize,
    per_agent: usize,
    nats: String,
}

/// The server's child side: `tod-server serve` as it starts (gateway, background work, and the
/// NATS consumer when `nats` is not `-`) on a loopback port, with a bootstrap super admin; its
/// address printed on stdout; until stdin closes.
fn serve(db_url: &str, nats: &str, interval: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut settings = tod_server::settings::Settings::for_database(db_url);
        settings.environment = tod_server::settings::Environment::Dev;
        settings.listen = ([127, 0, 0, 1], 0).into();
        settings.admin_email = Some(ADMIN.into());
        settings.admin_password = Some(PASSWORD.into());
        settings.auth_rate_limit = 1_000_000;
        settings.agent_poll_interval_secs = interval;
        settings.nats_url = (nats != "-").then(|| nats.to_owned());
        let server = tod_server::app::Server::start(&settings).await.expect("server starts");
        println!("http://{}", server.local_addr());
        server.serve(stdin_closed()).await.expect("serve");
    });
}

/// The API over one keep-alive connection pool.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// The answer of a 2xx and its `X-Total-Count`, else an error naming the call.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(Value, Option<u64>), String> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = &body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status();
        let total = resp
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let bytes = resp.bytes().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{method} {path}: {status} {answer}"));
        }
        Ok((answer, total))
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        Ok(self.call(reqwest::Method::POST, path, Some(body)).await?.0)
    }

    async fn get(&self, path: &str) -> Result<(Value, Option<u64>), String> {
        self.call(reqwest::Method::GET, path, None).await
    }
}

/// One simulated device as the harness knows it.
struct SimDevice {
    sim: usize,
    index: usize,
    id: String,
    cpe: bool,
}

/// CPU seconds of every process named `name` (PostgreSQL's backends, `nats-server`).
fn cpu_of_named(name: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|e| proc_usage(&e.file_name().to_string_lossy()).0)
        .sum()
}

/// (busy, total) jiffies of the whole machine.
fn machine_jiffies() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    json!({ "cpu": model, "cores": cores, "memory_gib": mem_kb / 1_048_576 })
}

/// Sums over the agents' status files: (polls ok, polls failed, tunnel bytes sent, received).
fn agent_totals(spools: &[PathBuf]) -> (u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0);
    for dir in spools {
        let s: Value =
            serde_json::from_slice(&std::fs::read(dir.join("status.json")).unwrap_or_default()).unwrap_or_default();
        for d in s["devices"].as_array().into_iter().flatten() {
            t.0 += d[1]["polls_ok"].as_u64().unwrap_or(0);
            t.1 += d[1]["polls_failed"].as_u64().unwrap_or(0);
        }
        t.2 += s["tunnel"]["tx_bytes"].as_u64().unwrap_or(0);
        t.3 += s["tunnel"]["rx_bytes"].as_u64().unwrap_or(0);
    }
    t
}

/// (reports ingested, registration rows) so far, read from the database.
async fn stored(db_url: &str) -> Result<(i64, i64), String> {
    use sqlx::Connection;
    let q_reports = "SELECT CAST(COALESCE(SUM(reports), 0) AS BIGINT) FROM ingest_batches";
    let q_rows = "SELECT COUNT(*) FROM registrations";
    if db_url.starts_with("sqlite:") {
        let opts: sqlx::sqlite::SqliteConnectOptions = db_url.parse().map_err(|e| format!("{e}"))?;
        let mut c = sqlx::SqliteConnection::connect_with(&opts.read_only(true))
            .await
            .map_err(|e| e.to_string())?;
        let r: i64 = sqlx::query_scalar(q_reports)
            .fetch_one(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        let n: i64 = sqlx::query_scalar(q_rows)
            .fetch_one(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        Ok((r, n))
    } else {
        let mut c = sqlx::PgConnection::connect(db_url).await.map_err(|e| e.to_string())?;
        let r: i64 = sqlx::query_scalar(q_reports)
            .fetch_one(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        let n: i64 = sqlx::query_scalar(q_rows)
            .fetch_one(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        Ok((r, n))
    }
}

/// CPU seconds of the measured parts: (server, agents, database, broker, simulators).
fn cpu_now(server: &str, agents: &[AgentChild], sims: &[SimChild], backend: &str) -> [f64; 5] {
    let agents: f64 = agents.iter().map(|a| proc_usage(&a.pid()).0).sum();
    let sims: f64 = sims.iter().map(|s| proc_usage(&s.pid()).0).sum();
    let (db, broker) = if backend == "postgres" {
        (cpu_of_named("postgres"), cpu_of_named("nats-server"))
    } else {
        (0.0, 0.0)
    };
    [proc_usage(server).0, agents, db, broker, sims]
}

async fn run(plan: &Plan, backend: &'static str, db_url: &str, n: usize) -> Result<Value, String> {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("tod-e2e-{}-{backend}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let nats = if backend == "postgres" { plan.nats.as_str() } else { "-" };

    // The simulated towers and the server, each in its own process.
    let mut sims = Vec::new();
    let mut left = n;
    while left > 0 {
        let k = left.min(PER_SIM);
        sims.push(SimChild::spawn(k, sims.len() as u64 + 1));
        left -= k;
    }
    let mut server = std::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["--e2e-server", db_url, nats, &plan.interval.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("server child: {e}"))?;
    let base = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(server.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        line.trim().to_owned()
    };
    let server_pid = server.id().to_string();
    let outcome = measure(plan, backend, db_url, n, &base, &server_pid, &mut sims, &dir).await;
    drop(server.stdin.take());
    let _ = server.wait();
    for s in sims {
        s.stop();
    }
    // An agent that stopped early says why on stderr: show it before the directory goes.
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.to_string_lossy().ends_with(".toml.log")
            && let Ok(text) = std::fs::read_to_string(&path)
            && !text.trim().is_empty()
        {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            eprintln!("{name}: {}", text.lines().take(3).collect::<Vec<_>>().join(" | "));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut result = outcome?;
    result["wall_secs"] = json!(started.elapsed().as_secs());
    Ok(result)
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    plan: &Plan,
    backend: &'static str,
    db_url: &str,
    n: usize,
    base: &str,
    server_pid: &str,
    sims: &mut [SimChild],
    dir: &Path,
) -> Result<Value, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tokens = tod_server::client::login(base, ADMIN, PASSWORD).await?;
    let api = Api {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|e| e.to_string())?,
        base: base.to_owned(),
        token: tokens["access_token"].as_str().ok_or("login: no token")?.to_owned(),
    };

    // Set up through the API: tenant, one site per agent, every device with its login.
    let setup = Instant::now();
    let tenant = api.post("/api/tenants", json!({ "name": "E2E WISP" })).await?;
    let tenant = tenant["id"].as_str().ok_or("tenant: no id")?.to_owned();
    let agents = n.div_ceil(plan.per_agent);
    let mut sites = Vec::with_capacity(agents);
    for a in 0..agents {
        let site = api
            .post(
                &format!("/api/tenants/{tenant}/sites"),
                json!({ "name": format!("Towers {:03}", a + 1), "latitude": -33.9, "longitude": 18.4 }),
            )
            .await?;
        sites.push(site["id"].as_str().ok_or("site: no id")?.to_owned());
    }
    // Towers of every simulator numbered in one sequence, shared out among the agents.
    let mut wanted = Vec::new();
    let mut site_base = 0;
    for (s, sim) in sims.iter().enumerate() {
        for i in 0..sim.ports.len() {
            let body = json!({
                "name": format!("s{s}-{}", sim.names[i]),
                "host": "127.0.0.1",
                "port": sim.ports[i],
                "transport": "plain",
                "site_id": sites[(site_base + sim.sites[i]) % agents],
                "username": "admin",
                "password": "admin",
            });
            wanted.push((s, i, sim.roles[i] == "cpe", body));
        }
        site_base += sim.sites.iter().max().map_or(0, |m| m + 1);
    }
    let mut devices: Vec<SimDevice> = Vec::with_capacity(n);
    let path = format!("/api/tenants/{tenant}/devices");
    for chunk in wanted.chunks(8) {
        let mut set = tokio::task::JoinSet::new();
        for (s, i, cpe, body) in chunk.iter().cloned() {
            let (api, path) = (api.clone(), path.clone());
            set.spawn(async move {
                let d = api.post(&path, body).await?;
                let id = d["id"].as_str().ok_or("device: no id")?.to_owned();
                Ok::<_, String>(SimDevice {
                    sim: s,
                    index: i,
                    id,
                    cpe,
                })
            });
        }
        while let Some(d) = set.join_next().await {
            devices.push(d.map_err(|e| e.to_string())??);
        }
    }
    let devices_created = setup.elapsed().as_secs_f64();

    // One agent per site, enrolled in the tunnel, each in its own process.
    let mut children = Vec::with_capacity(agents);
    let mut spools = Vec::with_capacity(agents);
    for (a, site) in sites.iter().enumerate() {
        let agent = api
            .post(
                &format!("/api/tenants/{tenant}/agents"),
                json!({ "name": format!("towers-{:03}", a + 1), "site_id": site }),
            )
            .await?;
        let id = agent["id"].as_str().ok_or("agent: no id")?;
        let token = agent["token"].as_str().ok_or("agent: no token")?;
        let peer = api
            .post(&format!("/api/vpn/peers?tenant_id={tenant}"), json!({ "agent_id": id }))
            .await?;
        let tunnel = peer["agent_config"].as_str().ok_or("vpn: no agent_config")?;
        let uplink = if backend == "postgres" {
            format!(
                "uplink = \"nats\"\nnats = \"nats://{}:{}\"\n",
                tod_server::store::TUNNEL_GATEWAY,
                tod_server::vpn::NATS_PORT
            )
        } else {
            String::new()
        };
        let spool = dir.join(format!("agent-{a:03}"));
        let toml = format!(
            "[agent]\nid = \"{id}\"\ntoken = \"{token}\"\n[poll]\ninterval_secs = {}\n[spool]\ndir = \"{}\"\n\
             [metrics]\nlisten = \"\"\n{}",
            plan.interval,
            spool.display(),
            tunnel.replacen("[server]\n", &format!("[server]\npull_devices = true\n{uplink}"), 1),
        );
        let config = dir.join(format!("agent-{a:03}.toml"));
        std::fs::write(&config, toml).map_err(|e| e.to_string())?;
        children.push(AgentChild::spawn(&config));
        spools.push(spool);
    }

    // Warm up: every device seen online (at most three intervals).
    let warm = Instant::now();
    let online_path = format!("/api/tenants/{tenant}/devices?status=online&limit=1");
    let mut online = 0;
    while warm.elapsed() < Duration::from_secs(3 * plan.interval + 30) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        online = api.get(&online_path).await?.1.unwrap_or(0);
        if online as usize >= n {
            break;
        }
    }
    let all_online_after = warm.elapsed().as_secs_f64();
    println!(
        "{backend}, {n} devices, {agents} agents: set up in {devices_created:.0} s, {online} online after {all_online_after:.0} s"
    );
    // One more interval so every agent is in its steady cycle.
    tokio::time::sleep(Duration::from_secs(plan.interval)).await;

    // The Device Offline rule, whose alerts time the events.
    let (rules, _) = api.get(&format!("/api/alerts/rules?tenant_id={tenant}")).await?;
    let offline_rule = rules
        .as_array()
        .into_iter()
        .flatten()
        .chain(rules["items"].as_array().into_iter().flatten())
        .find(|r| r["metric"] == "device_offline")
        .and_then(|r| r["id"].as_str())
        .ok_or("no device_offline rule")?
        .to_owned();

    // The window.
    let cpu0 = cpu_now(server_pid, &children, sims, backend);
    let (busy0, total0) = machine_jiffies();
    let polls0 = agent_totals(&spools);
    let stored0 = stored(db_url).await?;
    let window = Instant::now();
    let window_start = Utc::now();
    // Switch CPEs off, spread over the fleet, for longer than the run lasts.
    let cpes: Vec<&SimDevice> = devices.iter().filter(|d| d.cpe).collect();
    let step = (cpes.len() / plan.events.max(1)).max(1);
    let mut pending: HashMap<String, SystemTime> = HashMap::new();
    for d in cpes.iter().step_by(step).take(plan.events) {
        sims[d.sim].switch_off(d.index, 3_600);
        pending.insert(d.id.clone(), SystemTime::now());
    }
    let events = pending.len();
    let mut pipeline = Vec::new(); // fired_at → listed, s
    let mut switch_off = Vec::new(); // switched off → listed, s
    let alerts_path = format!(
        "/api/alerts?tenant_id={tenant}&rule_id={offline_rule}&start_date={}&per_page=200",
        (window_start - chrono::Duration::seconds(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let window_len = Duration::from_secs(plan.interval * plan.cycles);
    let deadline = window_len.max(Duration::from_secs(4 * plan.interval));
    let mut end_of_window = None;
    while window.elapsed() < deadline && (end_of_window.is_none() || !pending.is_empty()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !pending.is_empty() {
            let (page, _) = api.get(&alerts_path).await?;
            let now = SystemTime::now();
            for a in page["items"].as_array().into_iter().flatten() {
                let Some(off) = a["device_id"].as_str().and_then(|d| pending.remove(d)) else {
                    continue;
                };
                let fired: DateTime<Utc> = a["fired_at"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .ok_or("alert without fired_at")?;
                let listed: DateTime<Utc> = now.into();
                pipeline.push((listed - fired).as_seconds_f64());
                switch_off.push(now.duration_since(off).unwrap_or_default().as_secs_f64());
            }
        }
        if end_of_window.is_none() && window.elapsed() >= window_len {
            end_of_window = Some((
                cpu_now(server_pid, &children, sims, backend),
                machine_jiffies(),
                agent_totals(&spools),
                stored(db_url).await?,
                window.elapsed().as_secs_f64(),
            ));
        }
    }
    let (cpu1, (busy1, total1), polls1, stored1, wall) = match end_of_window {
        Some(e) => e,
        None => return Err("the window did not end".into()),
    };
    let (_, server_rss) = proc_usage(server_pid);
    let agent_rss: Vec<f64> = children.iter().map(|a| proc_usage(&a.pid()).1).collect();
    for c in children {
        c.stop();
    }

    let cores = std::thread::available_parallelism().map_or(2, |c| c.get()) as f64;
    let share = |i: usize| (cpu1[i] - cpu0[i]) / wall / cores * 100.0;
    let system_share = share(0) + share(1) + share(2) + share(3);
    let polls_due = n as f64 * wall / plan.interval as f64;
    let polls_done = (polls1.0 + polls1.1 - polls0.0 - polls0.1) as f64;
    let hours = wall / 3_600.0;
    let reports_per_sec = (stored1.0 - stored0.0) as f64 / wall;
    let rows_per_sec = (stored1.1 - stored0.1) as f64 / wall;
    let pct = |v: &mut Vec<f64>, q: f64| -> Option<f64> {
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| v[((v.len() - 1) as f64 * q).round() as usize])
    };
    let r = json!({
        "backend": backend,
        "uplink": if backend == "postgres" { "nats" } else { "http" },
        "devices": n,
        "agents": agents,
        "interval_secs": plan.interval,
        "setup_secs": devices_created,
        "all_online_after_secs": all_online_after,
        "online_at_start": online,
        "measured_secs": wall,
        "polls_due": polls_due.round(),
        "polls_done": polls_done,
        "poll_completion": polls_done / polls_due,
        "polls_failed": polls1.1 - polls0.1,
        "reports_per_sec": reports_per_sec,
        "registration_rows_per_sec": rows_per_sec,
        "cpu_percent_of_machine": {
            "server": share(0), "agents": share(1), "database": share(2), "broker": share(3),
            "system": system_share, "simulators": share(4),
            "machine_busy": (busy1 - busy0) / (total1 - total0) * 100.0,
        },
        "server_peak_rss_mib": server_rss,
        "agent_peak_rss_mib_max": agent_rss.iter().copied().fold(0.0, f64::max),
        "agents_peak_rss_mib_sum": agent_rss.iter().sum::<f64>(),
        "uplink_bytes_per_device_per_hour": (polls1.2 - polls0.2) as f64 / n as f64 / hours,
        "downlink_bytes_per_device_per_hour": (polls1.3 - polls0.3) as f64 / n as f64 / hours,
        "events": events,
        "events_alerted": pipeline.len(),
        "event_to_alert_secs": {
            "p50": pct(&mut pipeline, 0.5), "p99": pct(&mut pipeline, 0.99), "max": pipeline.last(),
        },
        "switch_off_to_alert_secs": {
            "p50": pct(&mut switch_off, 0.5), "max": switch_off.last(),
        },
    });
    println!("{r}");
    Ok(r)
}

fn print_table(results: &[Value]) {
    println!(
        "\n| Backend | Devices | Agents | Polls done / due | Reports/s | Registration rows/s | CPU server / agents / db+broker / total (% of 2 cores) | Server RSS | Agent RSS (max) | Uplink B/device/h | Event→alert p50 / p99 | Switched off → alert p50 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        if let Some(e) = r["error"].as_str() {
            println!("| {} | {} | error: {e} |", r["backend"], r["devices"]);
            continue;
        }
        let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        let c = &r["cpu_percent_of_machine"];
        println!(
            "| {} | {} | {} | {:.3} | {:.0} | {:.0} | {:.1} / {:.1} / {:.1} / {:.1} | {:.0} MiB | {:.0} MiB | {:.0} | {:.2} / {:.2} s ({} of {}) | {:.0} s |",
            r["backend"].as_str().unwrap_or(""),
            r["devices"],
            r["agents"],
            f(&r["poll_completion"]),
            f(&r["reports_per_sec"]),
            f(&r["registration_rows_per_sec"]),
            f(&c["server"]),
            f(&c["agents"]),
            f(&c["database"]) + f(&c["broker"]),
            f(&c["system"]),
            f(&r["server_peak_rss_mib"]),
            f(&r["agent_peak_rss_mib_max"]),
            f(&r["uplink_bytes_per_device_per_hour"]),
            f(&r["event_to_alert_secs"]["p50"]),
            f(&r["event_to_alert_secs"]["p99"]),
            r["events_alerted"],
            r["events"],
            f(&r["switch_off_to_alert_secs"]["p50"]),
        );
    }
}
