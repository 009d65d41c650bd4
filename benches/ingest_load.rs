//! Committed registration rows per second through the ingest pipeline (idempotency check, site
//! check, device status and metrics, interfaces, registration rows, link discovery with
//! tod-core's tracker, one transaction per batch), on SQLite and PostgreSQL, beside PostgreSQL's
//! own `COPY` of the same rows in the same run as the physical reference.
//!
//! World: 4 sites, each with one agent, 25 APs and 40 CPEs per AP (1 000 registration rows per
//! site per cycle); every agent delivers one batch per cycle, the four concurrently.
//!
//! Run: `cargo bench -p tod-benches --bench ingest_load` (`TOD_BENCH_INGEST_CYCLES=20`,
//! PostgreSQL from `TOD_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use sqlx::Connection;
use tod_core::telemetry::{Batch, DeviceReport, Interface, PollStatus, Registration};
use tod_core::{DeviceId, MacAddr};
use tod_server::store::{self, Agent, Audit, NewDevice, NewSite, PLATFORM_CHAIN, Store};

const SITES: usize = 4;
const APS: usize = 25;
const CLIENTS: usize = 40;

fn audit(chain: tod_core::TenantId) -> Audit {
    Audit {
        chain,
        actor_user: None,
        actor_api_key: None,
        action: "bench".into(),
        resource_type: None,
        resource_id: None,
        details: json!({}),
        ip: None,
    }
}

fn mac(site: usize, ap: usize, client: usize) -> MacAddr {
    format!(
        "02:{site:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        ap >> 8,
        ap & 0xff,
        client >> 8,
        client & 0xff
    )
    .parse()
    .expect("mac")
}

struct Site {
    agent: Agent,
    aps: Vec<DeviceId>,
}

async fn world(s: &dyn Store) -> (Vec<Site>, tod_core::TenantId) {
    let now = Utc::now();
    let t = s
        .create_tenant("Bench ISP", None, now, &audit(PLATFORM_CHAIN))
        .await
        .expect("tenant");
    let mut sites = Vec::new();
    for si in 0..SITES {
        let name = format!("Tower {si}");
        let site = s
            .create_site(
                t.id,
                NewSite {
                    name: &name,
                    latitude: None,
                    longitude: None,
                },
                now,
            )
            .await
            .expect("site");
        let mut aps = Vec::new();
        let mut cpes = Vec::new();
        let device = |name: String| {
            let tenant = t.id;
            async move {
                let new = NewDevice {
                    id: DeviceId(uuid::Uuid::new_v4()),
                    api_port: 8728,
                    transport: "plain",
                    fingerprint: None,
                    credentials: None,
                    name: &name,
                    host: "10.0.0.1",
                    site_id: Some(site.id),
                };
                s.create_device(tenant, new, now, &audit(tenant))
                    .await
                    .expect("device")
                    .id
            }
        };
        for ai in 0..APS {
            aps.push(device(format!("ap-{si}-{ai}")).await);
            for ci in 0..CLIENTS {
                cpes.push((device(format!("cpe-{si}-{ai}-{ci}")).await, mac(si, ai, ci)));
            }
        }
        let agent = s
            .create_agent(
                t.id,
                site.id,
                &format!("agent-{si}"),
                &format!("{si:064}"),
                now,
                &audit(t.id),
            )
            .await
            .expect("agent");
        // The CPEs report their interfaces once, so the APs' clients resolve to devices.
        let reports: Vec<DeviceReport> = cpes
            .iter()
            .map(|(id, m)| {
                let mut r = DeviceReport::new(*id, 1, now, PollStatus::Online);
                r.interfaces = Some(vec![Interface {
                    name: "wlan1".into(),
                    mac: Some(*m),
                    kind: "wlan".into(),
                    running: true,
                    rx_bytes: None,
                    tx_bytes: None,
                }]);
                r
            })
            .collect();
        for (i, chunk) in reports.chunks(500).enumerate() {
            let b = Batch::new(agent.id, format!("seed-{i}"), now, chunk.to_vec());
            s.ingest(&agent, &b, now).await.expect("seed");
        }
        sites.push(Site { agent, aps });
    }
    (sites, t.id)
}

fn cycle_batch(site: usize, s: &Site, cycle: usize) -> Batch {
    let at = Utc::now() + Duration::seconds(60 * cycle as i64);
    let reports = s
        .aps
        .iter()
        .enumerate()
        .map(|(ai, ap)| {
            let mut r = DeviceReport::new(*ap, cycle as u64 + 2, at, PollStatus::Online);
            r.registrations = Some(
                (0..CLIENTS)
                    .map(|ci| {
                        let mut g = Registration::new("wlan1", mac(site, ai, ci));
                        g.signal_dbm = Some(-55 - ((ci + cycle) % 30) as i16);
                        g.tx_ccq = Some(80);
                        g.tx_rate = Some("866.7Mbps-80MHz/2S/SGI".into());
                        g.rx_rate = Some("780Mbps-80MHz/2S".into());
                        g.uptime_secs = Some(3600 + cycle as u64 * 60);
                        g
                    })
                    .collect(),
            );
            r
        })
        .collect();
    Batch::new(s.agent.id, format!("cycle-{site}-{cycle}"), at, reports)
}

async fn run(backend: &str, url: &str, cycles: usize) -> Value {
    let s: Arc<dyn Store> = store::open(url).await.expect("store");
    let setup = Instant::now();
    let (sites, tenant) = world(s.as_ref()).await;
    eprintln!(
        "{backend}: world of {} devices in {:.1} s",
        SITES * APS * (CLIENTS + 1),
        setup.elapsed().as_secs_f64()
    );
    let batches: Vec<Vec<Batch>> = (0..cycles)
        .map(|c| {
            sites
                .iter()
                .enumerate()
                .map(|(i, site)| cycle_batch(i, site, c))
                .collect()
        })
        .collect();
    let rows = cycles * SITES * APS * CLIENTS;
    let started = Instant::now();
    for cycle in batches {
        let mut tasks = Vec::new();
        for (i, b) in cycle.into_iter().enumerate() {
            let (s, agent) = (s.clone(), sites[i].agent.clone());
            tasks.push(tokio::spawn(async move {
                s.ingest(&agent, &b, Utc::now()).await.expect("ingest")
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let links = s.list_links(tenant, None, None).await.expect("links").len();
    assert_eq!(links, SITES * APS * CLIENTS, "every client became a link");
    eprintln!(
        "{backend}: {rows} rows in {secs:.2} s = {:.0} rows/s",
        rows as f64 / secs
    );
    json!({ "backend": backend, "rows": rows, "seconds": secs, "rows_per_sec": rows as f64 / secs, "links": links })
}

/// PostgreSQL's `COPY` of the same registration rows into a table of the same shape.
async fn copy_reference(url: &str, cycles: usize) -> Value {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query(
        "CREATE TABLE copy_reference (tenant_id UUID, device_id UUID, collected_at TIMESTAMPTZ, interface TEXT, \
         mac TEXT, signal_dbm SMALLINT, tx_signal_dbm SMALLINT, tx_ccq SMALLINT, tx_rate TEXT, rx_rate TEXT, \
         uptime_secs BIGINT, distance_m BIGINT, last_ip TEXT)",
    )
    .execute(&mut c)
    .await
    .expect("table");
    let tenant = uuid::Uuid::new_v4();
    let at = Utc::now().to_rfc3339();
    let mut csv = String::new();
    for cycle in 0..cycles {
        for si in 0..SITES {
            for ai in 0..APS {
                let dev = uuid::Uuid::new_v4();
                for ci in 0..CLIENTS {
                    csv.push_str(&format!(
                        "{tenant},{dev},{at},wlan1,{},{},,80,866.7Mbps-80MHz/2S/SGI,780Mbps-80MHz/2S,{},,\n",
                        mac(si, ai, ci),
                        -55 - ((ci + cycle) % 30) as i16,
                        3600 + cycle * 60
                    ));
                }
            }
        }
    }
    let rows = cycles * SITES * APS * CLIENTS;
    let started = Instant::now();
    let mut copy = c
        .copy_in_raw("COPY copy_reference FROM STDIN (FORMAT csv)")
        .await
        .expect("copy");
    copy.send(csv.as_bytes()).await.expect("send");
    copy.finish().await.expect("finish");
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "postgres COPY: {rows} rows in {secs:.2} s = {:.0} rows/s",
        rows as f64 / secs
    );
    json!({ "backend": "postgres COPY", "rows": rows, "seconds": secs, "rows_per_sec": rows as f64 / secs })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cycles: usize = std::env::var("TOD_BENCH_INGEST_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = tod_benches::on_each_backend(&rt, "ingest", |backend, url| {
        let mut r = vec![rt.block_on(run(backend, url, cycles))];
        if backend == "postgres" {
            r.push(rt.block_on(copy_reference(url, cycles)));
        }
        r
    });
    let copy = results
        .iter()
        .find(|r| r["backend"] == "postgres COPY")
        .and_then(|r| r["rows_per_sec"].as_f64());
    println!("\n| backend | rows | seconds | rows/s | vs PostgreSQL COPY |");
    println!("|---|---|---|---|---|");
    for r in &results {
        let rps = r["rows_per_sec"].as_f64().unwrap_or(0.0);
        println!(
            "| {} | {} | {:.2} | {:.0} | {} |",
            r["backend"].as_str().unwrap_or("?"),
            r["rows"],
            r["seconds"].as_f64().unwrap_or(0.0),
            rps,
            copy.map_or("-".into(), |c| format!("{:.2}", rps / c))
        );
    }
    println!("{}", json!({ "bench": "ingest_load", "results": results }));
}
