//! The fleet read path at scale (#8): latency percentiles of the operator's main reads at a fixed
//! request rate (open loop: each request is timed from when it was due, so a server that falls
//! behind shows it), on SQLite and on PostgreSQL, beside `GET /health` at the same rate.
//!
//! The fleet: one tenant with 1 000 sites, each with one AP and 49 CPEs (50 000 devices, 49 000
//! links); the last hour of registrations of every link at one per minute; and 30 days at one per
//! five minutes for the links that signal history is asked about. Reads, each authenticated with
//! a JWT checked against the database:
//! - `GET /api/tenants/{t}/sites` — every site with its health rollup (1 000 rows);
//! - `GET /api/tenants/{t}/links?limit=100&offset=…` — a page of links at a random offset;
//! - `GET /api/tenants/{t}/links?limit=100&after=…` — the page after a random link (keyset);
//! - `GET /api/tenants/{t}/devices/{ap}/signal-history?mac_address=…&range=30d` — a random
//!   history link's 30 days in 4-hour buckets.
//!
//! Run: `cargo bench -p tod-benches --bench read_load`. Knobs: `TOD_BENCH_READ_RATE` (requests/s,
//! default 500), `TOD_BENCH_READ_SECONDS` (per read, default 10), `TOD_BENCH_READ_SITES` (default
//! 1000), `TOD_BENCH_READ_HISTORY_LINKS` (default 200), `TOD_BENCH_READS` (which reads, default
//! `health,sites,links,links_after,history`), `TOD_BENCH_READ_PAUSE` (seconds between reads, default 5),
//! `TOD_BENCH_READ_INGEST` (how many sites' agents deliver their AP's report, 49 clients, once a
//! minute through `POST /api/ingest` while the reads run, staggered; default 0, none — 1 000 is
//! the whole fleet polled every minute); PostgreSQL from `TOD_TEST_POSTGRES_URL`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use sqlx::Connection;
use tod_benches::env_num;
use uuid::Uuid;

const ADMIN: &str = "bench@tod.test";
const PASSWORD: &str = "bench password of decent length";
const CPES_PER_AP: usize = 49;

/// The path of the `i`th request of a read.
type PathOf = Box<dyn Fn(u64) -> String>;

/// The generated fleet, as the load needs it.
struct Fleet {
    tenant: Uuid,
    links: usize,
    /// (AP, client MAC) of the links with 30 days of history.
    history: Vec<(Uuid, String)>,
    /// (AP, CPE) of every link, for keyset pages.
    keys: Vec<(Uuid, Uuid)>,
    /// Each site with its AP and the AP's clients' MACs, for the ingest load.
    towers: Vec<(Uuid, Uuid, Vec<String>)>,
    rows: u64,
}

fn mac(i: usize) -> String {
    let b = (i as u64).to_be_bytes();
    format!("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[3], b[4], b[5], b[6], b[7])
}

/// Inserts the fleet straight into the server's database (the API would take hours for 50 000
/// devices and millions of rows; what the reads see is the same).
macro_rules! fill {
    ($db:ty, $conn:expr, $tenant:expr, $sites:expr, $history_links:expr) => {{
        let conn = $conn;
        let tenant: Uuid = $tenant;
        let now = chrono::DateTime::<Utc>::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now");
        let mut rows = 0u64;
        let mut history = Vec::new();
        let mut tx = conn.begin().await.expect("begin");
        let sites: Vec<Uuid> = (0..$sites).map(|_| Uuid::new_v4()).collect();
        for (chunk_no, chunk) in sites.chunks(1000).enumerate() {
            let mut q = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO sites (id, tenant_id, name, latitude, longitude, created_at, updated_at) ",
            );
            q.push_values(chunk.iter().enumerate(), |mut b, (i, id)| {
                let n = chunk_no * 1000 + i;
                b.push_bind(*id)
                    .push_bind(tenant)
                    .push_bind(format!("Tower {n:04}"))
                    .push_bind(40.0 + (n % 100) as f64 / 10.0)
                    .push_bind(-100.0 + (n / 100) as f64 / 10.0)
                    .push_bind(now)
                    .push_bind(now);
            });
            q.build().execute(&mut *tx).await.expect("sites");
        }
        // Devices: per site one AP and its CPEs; one in fifty CPEs offline.
        let mut devices: Vec<(Uuid, Uuid, String, &str)> = Vec::new();
        let mut links: Vec<(Uuid, Uuid, String)> = Vec::new();
        for (s, site) in sites.iter().enumerate() {
            let ap = Uuid::new_v4();
            devices.push((ap, *site, format!("ap-{s:04}"), "online"));
            for c in 0..CPES_PER_AP {
                let cpe = Uuid::new_v4();
                let status = if c % 50 == 7 { "offline" } else { "online" };
                devices.push((cpe, *site, format!("cpe-{s:04}-{c:02}"), status));
                links.push((ap, cpe, mac(s * CPES_PER_AP + c)));
            }
        }
        for chunk in devices.chunks(2000) {
            let mut q = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO devices (id, tenant_id, site_id, name, host, status, last_seen_at, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, (id, site, name, status)| {
                b.push_bind(*id)
                    .push_bind(tenant)
                    .push_bind(*site)
                    .push_bind(name.clone())
                    .push_bind("10.0.0.1")
                    .push_bind(*status)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(now);
            });
            q.build().execute(&mut *tx).await.expect("devices");
        }
        for chunk in links.chunks(2000) {
            let mut q = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO wireless_links (tenant_id, ap_device_id, cpe_device_id, interface, client_mac, \
                 signal_dbm, tx_ccq, tx_rate, rx_rate, state, missed_polls, discovered_at, last_seen, state_since) ",
            );
            q.push_values(chunk.iter().enumerate(), |mut b, (i, (ap, cpe, m))| {
                b.push_bind(tenant)
                    .push_bind(*ap)
                    .push_bind(*cpe)
                    .push_bind("wlan1")
                    .push_bind(m.clone())
                    .push_bind(-55 - (i % 30) as i16)
                    .push_bind(80i16)
                    .push_bind("130Mbps")
                    .push_bind("117Mbps")
                    .push_bind(if i % 40 == 3 { "degraded" } else { "active" })
                    .push_bind(0i32)
                    .push_bind(now - chrono::Duration::days(30))
                    .push_bind(now)
                    .push_bind(now - chrono::Duration::days(30));
            });
            q.build().execute(&mut *tx).await.expect("links");
        }
        // The CPEs' radios, so the APs' clients resolve to them when agents report.
        for chunk in links.chunks(2000) {
            let mut q = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO device_interfaces (tenant_id, device_id, name, mac, kind, running, updated_at) ",
            );
            q.push_values(chunk, |mut b, (_, cpe, m)| {
                b.push_bind(tenant)
                    .push_bind(*cpe)
                    .push_bind("wlan1")
                    .push_bind(m.clone())
                    .push_bind("wlan")
                    .push_bind(true)
                    .push_bind(now);
            });
            q.build().execute(&mut *tx).await.expect("interfaces");
        }
        // Registrations: the last hour of every link at 1/min, and 30 days at 1/5 min for the
        // history links (spread over the fleet).
        let step = (links.len() / $history_links.max(1)).max(1);
        let mut samples: Vec<(Uuid, String, chrono::DateTime<Utc>, i16)> = Vec::new();
        for (i, (ap, _, m)) in links.iter().enumerate() {
            let with_history = i % step == 0 && history.len() < $history_links;
            let (span, every) = if with_history { (30 * 24 * 60, 5) } else { (60, 1) };
            let mut minute = 0;
            while minute < span {
                let dbm = -55 - ((i + minute as usize / 60) % 30) as i16;
                samples.push((*ap, m.clone(), now - chrono::Duration::minutes(minute), dbm));
                minute += every;
            }
            if with_history {
                history.push((*ap, m.clone()));
            }
            if samples.len() < 50_000 && i + 1 < links.len() {
                continue;
            }
            for chunk in samples.chunks(2000) {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO registrations (tenant_id, device_id, collected_at, interface, mac, signal_dbm, \
                     tx_ccq, tx_rate, rx_rate) ",
                );
                q.push_values(chunk, |mut b, (ap, m, at, dbm)| {
                    b.push_bind(tenant)
                        .push_bind(*ap)
                        .push_bind(*at)
                        .push_bind("wlan1")
                        .push_bind(m.clone())
                        .push_bind(*dbm)
                        .push_bind(80i16)
                        .push_bind("130Mbps")
                        .push_bind("117Mbps");
                });
                q.build().execute(&mut *tx).await.expect("registrations");
            }
            rows += samples.len() as u64;
            samples.clear();
        }
        tx.commit().await.expect("commit");
        Fleet {
            tenant,
            links: links.len(),
            history,
            keys: links.iter().map(|(ap, cpe, _)| (*ap, *cpe)).collect(),
            towers: sites
                .iter()
                .zip(links.chunks(CPES_PER_AP))
                .map(|(site, clients)| (*site, clients[0].0, clients.iter().map(|(_, _, m)| m.clone()).collect()))
                .collect(),
            rows,
        }
    }};
}

fn main() {
    if tod_benches::child_or_list(ADMIN, PASSWORD) {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let results = tod_benches::on_each_backend(&rt, "read", |backend, url| vec![rt.block_on(run(backend, url))]);
    println!("\n| backend | read | offered req/s | served req/s | p50 ms | p99 ms | max ms | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &results {
        for run in r["runs"].as_array().into_iter().flatten() {
            println!(
                "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} |",
                r["backend"].as_str().unwrap_or("?"),
                run["name"].as_str().unwrap_or("?"),
                run["rate"],
                run["served_rps"].as_f64().unwrap_or(0.0),
                run["p50_ms"].as_f64().unwrap_or(0.0),
                run["p99_ms"].as_f64().unwrap_or(0.0),
                run["max_ms"].as_f64().unwrap_or(0.0),
                run["errors"],
            );
        }
    }
    println!("{}", json!({ "bench": "read_load", "results": results }));
}

/// Forgets the hourly signal sums and up to where they were made.
macro_rules! forget_rollup {
    ($conn:expr) => {{
        let conn = $conn;
        for sql in [
            "DELETE FROM signal_rollup_state",
            "DELETE FROM signal_hourly",
            "DELETE FROM signal_hourly_dirty",
        ] {
            sqlx::query(sql).execute(&mut *conn).await.expect("forget the rollup");
        }
    }};
}

async fn run(backend: &str, db_url: &str) -> Value {
    // reqwest is built without a crypto provider of its own (plain HTTP here, but it asks).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let child = tod_benches::ServerChild::spawn(db_url);
    let url = child.url.clone();
    let tokens = tod_server::client::login(&url, ADMIN, PASSWORD).await.expect("login");
    let jwt = tokens["access_token"].as_str().expect("token").to_owned();
    let (status, tenant) =
        tod_server::client::post_json(&url, "/api/tenants", &json!({ "name": "Bench WISP" }), Some(&jwt))
            .await
            .expect("tenant");
    assert_eq!(status, 201, "{tenant}");
    let tenant: Uuid = tenant["id"].as_str().expect("id").parse().expect("uuid");
    let sites = env_num("TOD_BENCH_READ_SITES", 1000) as usize;
    let history_links = env_num("TOD_BENCH_READ_HISTORY_LINKS", 200) as usize;
    let started = Instant::now();
    let fleet = if backend == "sqlite" {
        let mut conn = sqlx::SqliteConnection::connect(db_url).await.expect("sqlite");
        fill!(sqlx::Sqlite, &mut conn, tenant, sites, history_links)
    } else {
        let mut conn = sqlx::PgConnection::connect(db_url).await.expect("postgres");
        let f = fill!(sqlx::Postgres, &mut conn, tenant, sites, history_links);
        // What autovacuum does soon after a bulk load: statistics, and the visibility map that
        // lets index-only scans skip the table.
        sqlx::query("VACUUM ANALYZE").execute(&mut conn).await.expect("vacuum");
        f
    };
    eprintln!(
        "{backend}: {sites} sites, {} links, {} registration rows in {:.0} s",
        fleet.links,
        fleet.rows,
        started.elapsed().as_secs_f64()
    );
    // The hourly signal sums, as the server's rollup pass makes them: the rows above went in
    // behind its back, so what it summed of the empty database is forgotten and summed again by
    // the same code, under its lease (held for the whole run, so the server's pass stays out).
    let started = Instant::now();
    let store = tod_server::store::open(db_url).await.expect("store");
    let holder = Uuid::new_v4();
    while !store
        .try_lease("signal-rollup", holder, Utc::now(), chrono::Duration::hours(2))
        .await
        .expect("lease")
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if backend == "sqlite" {
        let mut conn = sqlx::SqliteConnection::connect(db_url).await.expect("sqlite");
        forget_rollup!(&mut conn);
    } else {
        let mut conn = sqlx::PgConnection::connect(db_url).await.expect("postgres");
        forget_rollup!(&mut conn);
    }
    // The hourly trend detector over the whole fleet, with nothing summed (every registration
    // of two weeks read), and again once the hours are summed (the same verdicts).
    let trend = |label: &'static str| {
        let store = store.clone();
        async move {
            let t = Instant::now();
            let pass = store
                .detect_trends(Utc::now(), &tod_core::signal::TrendConfig::default())
                .await
                .expect("trends");
            let secs = t.elapsed().as_secs_f64();
            eprintln!(
                "{backend}: trend pass {label}: {} links judged in {secs:.2} s",
                pass.links
            );
            (pass.links, secs)
        }
    };
    let (judged_raw, trend_raw) = trend("from the registrations").await;
    let mut hours = 0;
    loop {
        let pass = store
            .rollup_signal(Utc::now(), Duration::from_secs(3600))
            .await
            .expect("rollup");
        hours += pass.hours;
        if pass.caught_up {
            break;
        }
    }
    eprintln!(
        "{backend}: {hours} hours of signal summed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (judged_summed, trend_summed) = trend("from the hourly sums").await;
    assert_eq!(judged_raw, judged_summed, "the same links judged");
    let rate = env_num("TOD_BENCH_READ_RATE", 500);
    let secs = env_num("TOD_BENCH_READ_SECONDS", 10);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let t = fleet.tenant;
    let links = fleet.links;
    // The history read answers from the sums what the registrations hold: every sample of 30 days.
    if let Some((ap, m)) = fleet.history.first() {
        let body = client
            .get(format!(
                "{url}/api/tenants/{t}/devices/{ap}/signal-history?mac_address={m}&range=30d"
            ))
            .bearer_auth(&jwt)
            .send()
            .await
            .expect("history")
            .text()
            .await
            .expect("history body");
        let answer: Value = serde_json::from_str(&body).expect("history json");
        let samples: i64 = answer["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|b| b["samples"].as_i64().unwrap_or(0))
            .sum();
        assert_eq!(
            samples,
            30 * 24 * 12,
            "30 days at one sample per 5 minutes: {body:.300}"
        );
    }
    // Agents delivering while the reads run: `TOD_BENCH_READ_INGEST` sites, a batch a minute each.
    let ingest_sites = (env_num("TOD_BENCH_READ_INGEST", 0) as usize).min(fleet.towers.len());
    let mut agents = Vec::with_capacity(ingest_sites);
    for (site, ap, macs) in fleet.towers.iter().take(ingest_sites) {
        let (status, agent) = tod_server::client::post_json(
            &url,
            &format!("/api/tenants/{t}/agents"),
            &json!({ "name": format!("agent-{site}"), "site_id": site }),
            Some(&jwt),
        )
        .await
        .expect("agent");
        assert_eq!(status, 201, "{agent}");
        let id: Uuid = agent["id"].as_str().expect("agent id").parse().expect("uuid");
        let token = agent["token"].as_str().expect("agent token").to_owned();
        agents.push((id, token, *ap, macs.clone()));
    }
    let (stop_ingest, stopped) = tokio::sync::watch::channel(false);
    let ingest = tokio::spawn(deliver(client.clone(), url.clone(), agents, stopped));
    let history = Arc::new(fleet.history);
    let mut keys = fleet.keys;
    let mut runs = Vec::new();
    let reads: Vec<(&str, &str, PathOf)> = vec![
        ("health", "GET /health", Box::new(|_| "/health".to_owned())),
        (
            "sites",
            "GET sites (1 000 with rollups)",
            Box::new(move |_| format!("/api/tenants/{t}/sites")),
        ),
        (
            "links",
            "GET links (page of 100)",
            Box::new(move |i| {
                let offset = (i * 7919) % (links as u64).saturating_sub(100).max(1);
                format!("/api/tenants/{t}/links?limit=100&offset={offset}")
            }),
        ),
        ("links_after", "GET links (page of 100 after a link)", {
            let keys = std::mem::take(&mut keys);
            Box::new(move |i| {
                let (ap, cpe) = keys[(i as usize * 7919) % keys.len()];
                format!("/api/tenants/{t}/links?limit=100&after={ap}:{cpe}")
            })
        }),
        ("history", "GET signal history (30 d)", {
            let history = history.clone();
            Box::new(move |i| {
                let (ap, m) = &history[(i as usize * 31) % history.len()];
                format!("/api/tenants/{t}/devices/{ap}/signal-history?mac_address={m}&range=30d")
            })
        }),
    ];
    let wanted = std::env::var("TOD_BENCH_READS").unwrap_or_else(|_| "health,sites,links,links_after,history".into());
    for (key, name, path) in reads {
        if !wanted.split(',').any(|w| w.trim() == key) {
            continue;
        }
        if !runs.is_empty() {
            // What the previous read left queued drains before the next is timed.
            tokio::time::sleep(Duration::from_secs(env_num("TOD_BENCH_READ_PAUSE", 5))).await;
        }
        let r = open_loop(&client, &url, &jwt, rate, secs, path.as_ref()).await;
        eprintln!("{backend} {name}: {r}");
        let mut r = r;
        r["name"] = json!(name);
        runs.push(r);
    }
    let _ = stop_ingest.send(true);
    let ingest = ingest.await.expect("ingest load");
    if ingest_sites > 0 {
        eprintln!("{backend} ingest during the reads: {ingest}");
    }
    child.stop();
    json!({ "backend": backend, "sites": sites, "links": links, "registration_rows": fleet.rows,
            "history_links": history.len(), "runs": runs, "ingest": ingest,
            "trend_pass": { "links": judged_raw, "from_registrations_s": trend_raw, "from_hourly_sums_s": trend_summed } })
}

/// The `p` quantile of sorted latencies (NaN for none).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

/// Each agent's AP report (its 49 clients) once a minute, the agents evenly staggered, until
/// `stop`; each delivery timed from when it was due.
async fn deliver(
    client: reqwest::Client,
    base: String,
    agents: Vec<(Uuid, String, Uuid, Vec<String>)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Value {
    use tod_core::telemetry::{Batch, DeviceReport, PollStatus, Registration};
    if agents.is_empty() {
        return json!({ "sites": 0 });
    }
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let errors = Arc::new(Mutex::new(0u64));
    let gap = Duration::from_secs_f64(60.0 / agents.len() as f64);
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0u64.. {
        let due = start + gap.mul_f64(i as f64);
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            _ = stop.changed() => break,
        }
        let (agent, token, ap, macs) = &agents[i as usize % agents.len()];
        let now = Utc::now();
        let mut report = DeviceReport::new(tod_core::DeviceId(*ap), i + 1, now, PollStatus::Online);
        report.registrations = Some(
            macs.iter()
                .enumerate()
                .filter_map(|(k, m)| {
                    let mut g = Registration::new("wlan1", m.parse().ok()?);
                    g.signal_dbm = Some(-55 - ((k as u64 + i / 1000) % 30) as i16);
                    g.tx_ccq = Some(80);
                    g.tx_rate = Some("130Mbps".into());
                    g.rx_rate = Some("117Mbps".into());
                    Some(g)
                })
                .collect(),
        );
        let batch = Batch::new(tod_core::AgentId(*agent), format!("bench-{i}"), now, vec![report]);
        let req = client
            .post(format!("{base}/api/ingest"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(batch.to_json());
        let (latencies, errors) = (latencies.clone(), errors.clone());
        tasks.spawn(async move {
            match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let ms = due.elapsed().as_secs_f64() * 1000.0;
                    latencies.lock().expect("latencies").push(ms);
                }
                _ => *errors.lock().expect("errors") += 1,
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let mut l = latencies.lock().expect("latencies").clone();
    l.sort_by(f64::total_cmp);
    let pct = |p: f64| percentile(&l, p);
    let errors = *errors.lock().expect("errors");
    json!({
        "sites": agents.len(),
        "batches": l.len(),
        "batches_per_sec": agents.len() as f64 / 60.0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": errors,
    })
}

/// Offers `rate` requests/s for `secs` seconds, each timed from when it was due.
async fn open_loop(
    client: &reqwest::Client,
    base: &str,
    jwt: &str,
    rate: u64,
    secs: u64,
    path: &dyn Fn(u64) -> String,
) -> Value {
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let errors = Arc::new(Mutex::new(0u64));
    let total = rate * secs;
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + gap * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
        let req = client
            .get(format!("{base}{}", path(i)))
            .header("authorization", format!("Bearer {jwt}"));
        let (latencies, errors) = (latencies.clone(), errors.clone());
        tasks.spawn(async move {
            match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let ok = resp.bytes().await.is_ok();
                    let ms = due.elapsed().as_secs_f64() * 1000.0;
                    if ok {
                        latencies.lock().expect("latencies").push(ms);
                    } else {
                        *errors.lock().expect("errors") += 1;
                    }
                }
                _ => *errors.lock().expect("errors") += 1,
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    let mut l = latencies.lock().expect("latencies").clone();
    l.sort_by(f64::total_cmp);
    let pct = |p: f64| percentile(&l, p);
    let errors = *errors.lock().expect("errors");
    json!({
        "rate": rate,
        "seconds": secs,
        "served_rps": l.len() as f64 / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": l.last().copied().unwrap_or(f64::NAN),
        "errors": errors,
    })
}
