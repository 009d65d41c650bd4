//! The simulator under load, and our client beside a Python `librouteros` poller.
//!
//! The simulator runs as a child process (this binary re-executed with `--sim-child N`), so its
//! CPU and RSS are its own. The parent connects one persistent session per device and polls every
//! device every 10 s (phases spread over the interval) with the agent's command set: resource,
//! interfaces, registration table, health. Reported per size: print latency p50/p99, commands/s,
//! simulator CPU and peak RSS, and our client's CPU seconds per 1 000 device-polls. Then the
//! Python poller polls a subset of the same devices and reports the same CPU figure.
//!
//! Run: `cargo bench -p tod-benches --bench sim_load` (sizes: `TOD_BENCH_SIM_SIZES=1000,5000`,
//! cycles per size: `TOD_BENCH_SIM_CYCLES=3`).

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tod_agent::routeros::client::{Client, ClientConfig, Credentials, Transport};
use tod_benches::{SimChild, proc_usage, run_sim_child};
use tokio::sync::Semaphore;

const INTERVAL: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--sim-child") {
        return run_sim_child(
            args[i + 1].parse().expect("device count"),
            args[i + 2].parse().expect("seed"),
        );
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` compatibility
    }
    let sizes: Vec<usize> = std::env::var("TOD_BENCH_SIM_SIZES")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cycles: u32 = std::env::var("TOD_BENCH_SIM_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut results = Vec::new();
    for n in sizes {
        results.push(rt.block_on(run_size(n, cycles)));
    }
    println!("\n{}", serde_json::to_string_pretty(&results).expect("json"));
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

async fn run_size(n: usize, cycles: u32) -> serde_json::Value {
    let sim = SimChild::spawn(n, 7);
    let pid = sim.pid();
    let (ports, menus, legacy) = (sim.ports.clone(), sim.menus.clone(), sim.legacy.clone());
    let (sim_cpu0, _) = proc_usage(&pid);
    let (own_cpu0, _) = proc_usage("self");

    // Connect every device (a semaphore keeps the storm civil, as the agent does).
    let creds = Credentials {
        username: "admin".into(),
        password: "admin".into(),
    };
    let gate = Arc::new(Semaphore::new(64));
    let connect_start = Instant::now();
    let mut handles = Vec::new();
    for &p in &ports {
        let (gate, creds) = (gate.clone(), creds.clone());
        handles.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.expect("gate");
            let addr = format!("127.0.0.1:{p}").parse().expect("addr");
            Client::connect(addr, "127.0.0.1", &Transport::Plain, &creds, ClientConfig::default()).await
        }));
    }
    let mut clients = Vec::new();
    for h in handles {
        clients.push(h.await.expect("join").expect("connect"));
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();

    let latencies = Arc::new(Mutex::new(Vec::<u32>::with_capacity(n * 4 * cycles as usize)));
    let errors = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let own_cpu_start = proc_usage("self").0;
    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let (lat, errors, menu) = (latencies.clone(), errors.clone(), menus[i].clone());
        let phase = INTERVAL.mul_f64(i as f64 / n as f64);
        tasks.push(tokio::spawn(async move {
            for cycle in 0..cycles {
                tokio::time::sleep_until((start + phase + INTERVAL * cycle).into()).await;
                let mut cmds: Vec<(&str, Vec<&str>)> = vec![
                    ("/system/resource", vec![]),
                    (
                        "/interface",
                        vec!["name", "type", "mac-address", "running", "rx-byte", "tx-byte"],
                    ),
                    ("/system/health", vec![]),
                ];
                let reg = format!("{menu}/registration-table");
                if !menu.is_empty() {
                    cmds.push((&reg, vec![]));
                }
                for (m, props) in cmds {
                    let t = Instant::now();
                    match c.print(m, &props, &[]).await {
                        Ok(_) => lat.lock().expect("lat").push(t.elapsed().as_micros() as u32),
                        Err(_) => *errors.lock().expect("errors") += 1,
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("poller");
    }
    let wall = start.elapsed().as_secs_f64();
    let own_cpu = proc_usage("self").0 - own_cpu_start;
    let (sim_cpu1, sim_rss) = proc_usage(&pid);
    let mut lat = latencies.lock().expect("lat").clone();
    lat.sort_unstable();
    let device_polls = (n as u64) * u64::from(cycles);

    // The Python peer, on a subset of the same devices (it polls serially, one core).
    let subset: Vec<String> = ports
        .iter()
        .zip(&legacy)
        .take(200.min(n))
        .map(|(p, l)| format!("{p}:{}", if *l { "token" } else { "plain" }))
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/librouteros_poll.py");
    let py = Command::new("python3")
        .args([script, "127.0.0.1", &subset.join(","), "admin", "5"])
        .output();
    let python: serde_json::Value = match py {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null),
        Ok(o) => {
            serde_json::json!({"error": String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").to_owned()})
        }
        Err(e) => serde_json::json!({"error": e.to_string()}),
    };
    sim.stop();
    let _ = own_cpu0;

    let ours_per_1000 = own_cpu / device_polls as f64 * 1000.0;
    let py_per_1000 = python["cpu_seconds"]
        .as_f64()
        .map(|c| c / python["device_polls"].as_f64().unwrap_or(1.0) * 1000.0);
    let result = serde_json::json!({
        "devices": n,
        "cycles": cycles,
        "connect_all_secs": connect_secs,
        "commands": lat.len(),
        "errors": *errors.lock().expect("errors"),
        "commands_per_sec": lat.len() as f64 / wall,
        "latency_ms_p50": percentile(&lat, 0.50),
        "latency_ms_p99": percentile(&lat, 0.99),
        "latency_ms_max": percentile(&lat, 1.0),
        "sim_cpu_secs": sim_cpu1 - sim_cpu0,
        "sim_peak_rss_mib": sim_rss,
        "client_cpu_secs_per_1000_device_polls": ours_per_1000,
        "python_librouteros_cpu_secs_per_1000_device_polls": py_per_1000,
        "python": python,
    });
    println!(
        "{n} devices: p50 {:.2} ms, p99 {:.2} ms, {:.0} cmd/s, sim CPU {:.1} s, sim RSS {:.0} MiB, client {:.3} CPU-s/1000 polls, python {} CPU-s/1000 polls",
        result["latency_ms_p50"].as_f64().unwrap_or(0.0),
        result["latency_ms_p99"].as_f64().unwrap_or(0.0),
        result["commands_per_sec"].as_f64().unwrap_or(0.0),
        result["sim_cpu_secs"].as_f64().unwrap_or(0.0),
        sim_rss,
        ours_per_1000,
        py_per_1000.map_or("n/a".into(), |v| format!("{v:.3}")),
    );
    result
}
