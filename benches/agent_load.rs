//! One agent polling 1 000, 5 000 and 10 000 simulated devices at 60 s, delivering over HTTP.
//!
//! Three processes: simulators (this binary re-executed with `--sim-child`, at most 5 000 devices
//! each so file descriptors suffice), the agent (re-executed with `--agent-child`, running
//! `tod_agent::daemon::run` exactly as `tod-agent run` does), and this process serving the ingest
//! endpoint and counting what arrives. Reported per size: the agent's CPU % of one core and peak
//! RSS over steady-state cycles, reports delivered, and upstream bytes per device per hour.
//!
//! Run: `cargo bench -p tod-benches --bench agent_load` (`TOD_BENCH_AGENT_SIZES=1000,5000,10000`,
//! `TOD_BENCH_AGENT_CYCLES=2`, `TOD_BENCH_AGENT_INTERVAL=60`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use tod_benches::{AgentChild, SimChild, env_num, proc_usage, run_agent_child, run_sim_child};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--sim-child") {
        return run_sim_child(args[i + 1].parse().expect("count"), args[i + 2].parse().expect("seed"));
    }
    if let Some(i) = args.iter().position(|a| a == "--agent-child") {
        return run_agent_child(&args[i + 1]);
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("TOD_BENCH_AGENT_SIZES")
        .unwrap_or_else(|_| "1000,5000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cycles = env_num("TOD_BENCH_AGENT_CYCLES", 2);
    let interval = env_num("TOD_BENCH_AGENT_INTERVAL", 60);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let results: Vec<serde_json::Value> = sizes
        .into_iter()
        .map(|n| rt.block_on(run(n, cycles, interval)))
        .collect();
    println!("\n{}", serde_json::to_string_pretty(&results).expect("json"));
}

#[derive(Default)]
struct Counters {
    bytes: AtomicU64,
    batches: AtomicU64,
}

async fn run(n: usize, cycles: u64, interval: u64) -> serde_json::Value {
    // Simulators, at most 5 000 devices each.
    let mut sims = Vec::new();
    let mut ports: Vec<u16> = Vec::new();
    let mut left = n;
    let mut seed = 1;
    while left > 0 {
        let k = left.min(5_000);
        let sim = SimChild::spawn(k, seed);
        ports.extend(&sim.ports);
        sims.push(sim);
        left -= k;
        seed += 1;
    }
    // The ingest endpoint, counting compressed bytes.
    let counters = Arc::new(Counters::default());
    let app = Router::new()
        .route(
            "/api/ingest",
            post(|State(c): State<Arc<Counters>>, body: Bytes| async move {
                c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                c.batches.fetch_add(1, Ordering::Relaxed);
                "ok"
            }),
        )
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let ingest = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = std::env::temp_dir().join(format!("tod-agent-bench-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut toml = format!(
        "[agent]\nid = \"7f3c2f9e-55c1-4c55-9e4a-0d3a3d6b2f10\"\n[server]\nendpoint = \"127.0.0.1:51820\"\ningest = \"{ingest}\"\n\
         [poll]\ninterval_secs = {interval}\nconnect_concurrency = 32\n[spool]\ndir = \"{}\"\n[metrics]\nlisten = \"\"\n\
         [[credentials]]\nname = \"sim\"\nusername = \"admin\"\npassword = \"admin\"\n",
        dir.join("spool").display()
    );
    for (i, p) in ports.iter().enumerate() {
        toml.push_str(&format!(
            "[[devices]]\nid = \"00000000-0000-0000-0000-{:012}\"\nhost = \"127.0.0.1\"\nport = {p}\ntransport = \"plain\"\ncredentials = \"sim\"\n",
            i + 1
        ));
    }
    let config = dir.join("agent.toml");
    std::fs::write(&config, toml).expect("config");
    let agent = AgentChild::spawn(&config);
    let pid = agent.pid();

    // First cycle: connections and probes. Then measure steady-state cycles.
    tokio::time::sleep(Duration::from_secs(interval)).await;
    let (cpu0, _) = proc_usage(&pid);
    let bytes0 = counters.bytes.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(interval * cycles)).await;
    let wall = started.elapsed().as_secs_f64();
    let (cpu1, rss) = proc_usage(&pid);
    let bytes = counters.bytes.load(Ordering::Relaxed) - bytes0;
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("spool/status.json")).unwrap_or_default()).unwrap_or_default();

    agent.stop();
    for s in sims {
        s.stop();
    }
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);

    let cpu_pct = (cpu1 - cpu0) / wall * 100.0;
    let per_device_hour = bytes as f64 / n as f64 / (wall / 3_600.0);
    let polls_ok: u64 = status["devices"]
        .as_array()
        .map_or(0, |d| d.iter().map(|x| x[1]["polls_ok"].as_u64().unwrap_or(0)).sum());
    let polls_failed: u64 = status["devices"].as_array().map_or(0, |d| {
        d.iter().map(|x| x[1]["polls_failed"].as_u64().unwrap_or(0)).sum()
    });
    println!(
        "{n} devices at {interval} s: agent {cpu_pct:.1} % of one core, peak RSS {rss:.0} MiB, {:.0} upstream bytes per device per hour, polls ok {polls_ok} failed {polls_failed}",
        per_device_hour
    );
    serde_json::json!({
        "devices": n,
        "interval_secs": interval,
        "measured_secs": wall,
        "agent_cpu_percent_of_one_core": cpu_pct,
        "agent_peak_rss_mib": rss,
        "upstream_bytes_per_device_per_hour": per_device_hour,
        "polls_ok": polls_ok,
        "polls_failed": polls_failed,
        "batches": counters.batches.load(Ordering::Relaxed),
    })
}
