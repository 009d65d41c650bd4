//! Authenticated API throughput: requests/s and latency percentiles of `tod-server` under `wrk`,
//! on SQLite and on PostgreSQL, beside `GET /health` on the same server in the same run (the HTTP
//! stack with no authentication and no database: the ceiling the authenticated routes approach).
//!
//! The server runs in a child process (this binary re-executed with `--server-child URL`, serving
//! exactly what `tod-server serve` serves); wrk is the peer. Measured per backend:
//! - `GET /health` — no auth, no database;
//! - `GET /api/tenants/{t}/sites` with a JWT — token check, session + account lookup, the list;
//! - the same with an API key (`X-API-Key`) — key hash lookup, the list.
//!
//! Run: `cargo bench -p tod-benches --bench api_load` (needs `wrk`: `apt-get install wrk`;
//! `TOD_BENCH_API_SECONDS=10`, `TOD_BENCH_API_CONNECTIONS=32`, PostgreSQL from
//! `TOD_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::process::Command;

use serde_json::{Value, json};
use tod_benches::env_num;

const ADMIN: &str = "bench@tod.test";
const PASSWORD: &str = "bench password of decent length";

fn main() {
    if tod_benches::child_or_list(ADMIN, PASSWORD) {
        return;
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("api_load needs wrk (apt-get install wrk)");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = tod_benches::on_each_backend(&rt, "api", |backend, url| vec![rt.block_on(run(backend, url))]);
    println!("\n| backend | request | req/s | p50 ms | p99 ms | vs /health |");
    println!("|---|---|---|---|---|---|");
    for r in &results {
        let health = r["runs"][0]["rps"].as_f64().unwrap_or(1.0);
        for run in r["runs"].as_array().into_iter().flatten() {
            println!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
                r["backend"].as_str().unwrap_or("?"),
                run["name"].as_str().unwrap_or("?"),
                run["rps"].as_f64().unwrap_or(0.0),
                run["p50_ms"].as_f64().unwrap_or(0.0),
                run["p99_ms"].as_f64().unwrap_or(0.0),
                run["rps"].as_f64().unwrap_or(0.0) / health
            );
        }
    }
    println!("{}", json!({ "bench": "api_load", "results": results }));
}

async fn run(backend: &str, db_url: &str) -> Value {
    let child = tod_benches::ServerChild::spawn(db_url);
    let url = child.url.clone();
    let tokens = tod_server::client::login(&url, ADMIN, PASSWORD).await.expect("login");
    let jwt = tokens["access_token"].as_str().expect("token").to_owned();
    let auth = format!("Authorization: Bearer {jwt}");
    let call = |path: String, body: Value| {
        let (url, jwt) = (url.clone(), jwt.clone());
        async move {
            let (status, answer) = tod_server::client::post_json(&url, &path, &body, Some(&jwt))
                .await
                .expect("setup call");
            assert!(status < 300, "{path}: {status} {answer}");
            answer
        }
    };
    let tenant = call("/api/tenants".into(), json!({ "name": "Bench ISP" })).await;
    let tid = tenant["id"].as_str().expect("tenant id").to_owned();
    for i in 0..20 {
        call(
            format!("/api/tenants/{tid}/sites"),
            json!({ "name": format!("Tower {i:02}"), "latitude": 45.0 + i as f64 / 100.0, "longitude": -122.0 }),
        )
        .await;
    }
    let key = call(
        format!("/api/tenants/{tid}/api-keys"),
        json!({ "name": "bench", "scopes": ["devices:read"] }),
    )
    .await;
    let key = format!("X-API-Key: {}", key["key"].as_str().expect("api key"));
    let sites = format!("{url}/api/tenants/{tid}/sites");
    let runs = vec![
        wrk("GET /health", &format!("{url}/health"), None),
        wrk("GET sites (JWT)", &sites, Some(&auth)),
        wrk("GET sites (API key)", &sites, Some(&key)),
    ];
    child.stop();
    json!({ "backend": backend, "runs": runs })
}

/// Runs wrk and reads requests/s and the latency percentiles from its `--latency` report.
fn wrk(name: &str, url: &str, header: Option<&str>) -> Value {
    let secs = env_num("TOD_BENCH_API_SECONDS", 10);
    let conns = env_num("TOD_BENCH_API_CONNECTIONS", 32);
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", &format!("-c{conns}"), &format!("-d{secs}s"), "--latency"]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
    };
    let ms = |v: Option<String>| -> f64 {
        let v = v.unwrap_or_default();
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1000.0,
            "s" => n * 1000.0,
            _ => n,
        }
    };
    let non_2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .map(str::trim)
        .map(str::to_owned);
    let rps: f64 = field("Requests/sec:").and_then(|v| v.parse().ok()).unwrap_or(0.0);
    eprintln!("{name}: {rps:.0} req/s {}", non_2xx.as_deref().unwrap_or(""));
    json!({
        "name": name,
        "rps": rps,
        "p50_ms": ms(field("50%")),
        "p99_ms": ms(field("99%")),
        "non_2xx": non_2xx,
        "seconds": secs,
        "connections": conns,
    })
}
