//! Agents deliver to the server over real sockets: the RouterOS simulator → `tod_agent::daemon`
//! (exactly what `tod-agent run` runs) → `POST /api/ingest` → the store, on SQLite and
//! PostgreSQL; and the ingest endpoint's refusals: wrong credential, another agent's batch,
//! another site's device, malformed input, redelivery.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Auth, TestDb, TestServer};
use serde_json::{Value, json};
use tod_agent::sim::{SimConfig, Simulator};
use tod_core::telemetry::{Batch, DeviceReport, PollStatus, Registration};
use tod_core::{AgentId, DeviceId, MacAddr};

struct Fleet {
    tenant: String,
    site: String,
    devices: Vec<String>,
    agent: String,
    token: String,
    root: Auth,
}

async fn fleet(srv: &TestServer, n: usize) -> Fleet {
    let root = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let t = srv
        .call("POST", "/api/tenants", &root, Some(json!({ "name": "Ingest ISP" })))
        .await;
    let tenant = t.json["id"].as_str().unwrap().to_owned();
    let s = srv
        .call(
            "POST",
            &format!("/api/tenants/{tenant}/sites"),
            &root,
            Some(json!({ "name": "North Tower" })),
        )
        .await;
    let site = s.json["id"].as_str().unwrap().to_owned();
    let mut devices = Vec::new();
    for i in 0..n {
        let d = srv
            .call(
                "POST",
                &format!("/api/tenants/{tenant}/devices"),
                &root,
                Some(json!({ "name": format!("sim-{i}"), "host": "127.0.0.1", "site_id": site })),
            )
            .await;
        assert_eq!(d.status, 201, "{:?}", d.json);
        devices.push(d.json["id"].as_str().unwrap().to_owned());
    }
    let a = srv
        .call(
            "POST",
            &format!("/api/tenants/{tenant}/agents"),
            &root,
            Some(json!({ "name": "tower-1", "site_id": site })),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.json);
    Fleet {
        tenant,
        site,
        devices,
        agent: a.json["id"].as_str().unwrap().to_owned(),
        token: a.json["token"].as_str().unwrap().to_owned(),
        root,
    }
}

async fn post_batch(srv: &TestServer, token: &str, batch: &Batch) -> common::Resp {
    common::request(
        srv.addr,
        "POST",
        "/api/ingest",
        &Auth::Bearer(token.into()),
        Some(String::from_utf8(batch.to_json()).unwrap()),
        "application/json",
    )
    .await
}

/// Runs `tod_agent::daemon` (what `tod-agent run` runs) on a configuration until the sender fires.
fn run_agent(
    toml: &str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), String>>,
) {
    let cfg = tod_agent::config::AgentConfig::parse(toml).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(tod_agent::daemon::run(cfg, async move {
        let _ = stop_rx.await;
    }));
    (stop_tx, agent)
}

async fn agent_delivers_what_it_polls(url: &str) {
    let sim = Simulator::start(SimConfig {
        seed: 31,
        devices: 10,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let srv = TestServer::start(url, 1000).await;
    let f = fleet(&srv, 10).await;

    let dir = std::env::temp_dir().join(format!("tod-ingest-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut toml = format!(
        "[agent]\nid = \"{}\"\ntoken = \"{}\"\n[server]\nendpoint = \"127.0.0.1:51820\"\ningest = \"{}\"\n\
         [poll]\ninterval_secs = 1\n[spool]\ndir = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
         [[credentials]]\nname = \"sim\"\nusername = \"admin\"\npassword = \"admin\"\n",
        f.agent,
        f.token,
        srv.addr,
        dir.join("spool").display()
    );
    for (i, id) in f.devices.iter().enumerate() {
        toml.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nhost = \"127.0.0.1\"\nport = {}\ntransport = \"plain\"\ncredentials = \"sim\"\n",
            sim.ports(i).plain.port()
        ));
    }
    let (stop_tx, agent) = run_agent(&toml);

    // Every device is reported online with its version, and the APs' clients are stored.
    let devices_path = format!("/api/tenants/{}/devices?site_id={}", f.tenant, f.site);
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let r = srv.call("GET", &devices_path, &f.root, None).await;
        let all_online = r.json.as_array().unwrap().iter().all(|d| d["status"] == "online");
        if all_online {
            break r.json;
        }
        assert!(Instant::now() < deadline, "devices never all online: {:?}", r.json);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for d in listed.as_array().unwrap() {
        assert!(d["routeros_version"].is_string(), "{d}");
        assert!(d["last_seen_at"].is_string(), "{d}");
    }
    let ap_ids: Vec<usize> = (0..10)
        .filter(|&i| sim.world().devices[i].radios.iter().any(|r| !r.clients.is_empty()))
        .collect();
    assert!(!ap_ids.is_empty(), "the seeded world has access points");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut all = true;
        for &i in &ap_ids {
            let n = srv
                .state
                .store
                .count_registrations(f.tenant.parse().unwrap(), f.devices[i].parse().unwrap())
                .await
                .unwrap();
            all &= n > 0;
        }
        if all {
            break;
        }
        assert!(Instant::now() < deadline, "registrations of every AP never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Links: every CPE of the world whose AP is polled too is discovered, keyed by the devices
    // the server knows, from MACs as RouterOS prints them (upper case) resolved against the CPEs'
    // interface MACs.
    let w = sim.world();
    let expected: std::collections::BTreeSet<(String, String)> = (0..10)
        .filter_map(|i| {
            let (ap, _) = w.devices[i].ap?;
            (ap < 10).then(|| (f.devices[ap].clone(), f.devices[i].clone()))
        })
        .collect();
    assert!(!expected.is_empty(), "the seeded world has CPEs under polled APs");
    let links_path = format!("/api/tenants/{}/links", f.tenant);
    let deadline = Instant::now() + Duration::from_secs(30);
    let links = loop {
        let r = srv.call("GET", &links_path, &f.root, None).await;
        let found: std::collections::BTreeSet<(String, String)> = r
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["ap_device_id"].as_str().unwrap().to_owned(),
                    l["cpe_device_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let confirmed = r
            .json
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["state"] == "active" || l["state"] == "degraded");
        if found == expected && confirmed {
            break r.json;
        }
        assert!(
            Instant::now() < deadline,
            "links {found:?} never became {expected:?}: {:?}",
            r.json
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Paged: the same links in the same order, one page at a time, with the full count.
    let all = links.as_array().unwrap();
    let mut paged = Vec::new();
    for offset in 0..all.len() {
        let r = srv
            .call("GET", &format!("{links_path}?limit=1&offset={offset}"), &f.root, None)
            .await;
        assert_eq!(r.header("x-total-count"), Some(all.len().to_string().as_str()));
        paged.extend(r.json.as_array().unwrap().iter().cloned());
    }
    let key = |l: &serde_json::Value| (l["ap_device_id"].clone(), l["cpe_device_id"].clone());
    assert_eq!(
        paged.iter().map(key).collect::<Vec<_>>(),
        all.iter().map(key).collect::<Vec<_>>()
    );
    // Keyset: each full page names the next; the same links in the same order, no count asked.
    let mut keyset = Vec::new();
    let mut path = format!("{links_path}?limit=1");
    loop {
        let r = srv.call("GET", &path, &f.root, None).await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        if path.contains("after=") {
            assert_eq!(r.header("x-total-count"), None, "a later page is not counted again");
        }
        keyset.extend(r.json.as_array().unwrap().iter().cloned());
        match r.header("x-next-after") {
            Some(next) => path = format!("{links_path}?limit=1&after={next}"),
            None => break,
        }
        assert!(keyset.len() <= all.len(), "paging never ends: {keyset:?}");
    }
    assert_eq!(
        keyset.iter().map(key).collect::<Vec<_>>(),
        all.iter().map(key).collect::<Vec<_>>()
    );
    // Filtered pages: each filter's offset pages are its unpaged list, in order, with its count.
    let ap = all[0]["ap_device_id"].as_str().unwrap().to_owned();
    let state = all[0]["state"].as_str().unwrap().to_owned();
    for filter in [
        format!("state={state}"),
        format!("device_id={ap}"),
        format!("state={state}&device_id={ap}"),
    ] {
        let whole = srv.call("GET", &format!("{links_path}?{filter}"), &f.root, None).await;
        let whole = whole.json.as_array().unwrap().clone();
        assert!(!whole.is_empty(), "{filter} matches the first link");
        let mut pages = Vec::new();
        for offset in 0..whole.len() {
            let r = srv
                .call(
                    "GET",
                    &format!("{links_path}?{filter}&limit=1&offset={offset}"),
                    &f.root,
                    None,
                )
                .await;
            assert_eq!(
                r.header("x-total-count"),
                Some(whole.len().to_string().as_str()),
                "{filter}"
            );
            pages.extend(r.json.as_array().unwrap().iter().cloned());
        }
        assert_eq!(pages, whole, "{filter}");
    }
    let last = all.last().unwrap();
    let after = format!(
        "{}:{}",
        last["ap_device_id"].as_str().unwrap(),
        last["cpe_device_id"].as_str().unwrap()
    );
    let r = srv
        .call("GET", &format!("{links_path}?limit=5&after={after}"), &f.root, None)
        .await;
    assert_eq!(
        (r.status, r.json.clone()),
        (200, serde_json::json!([])),
        "nothing after the last"
    );
    assert_eq!(r.header("x-next-after"), None);
    for bad in [
        format!("limit=1&after={after}&offset=1"),
        "after=nonsense".to_owned(),
        format!("after={}", last["ap_device_id"].as_str().unwrap()),
    ] {
        let r = srv.call("GET", &format!("{links_path}?{bad}"), &f.root, None).await;
        assert_eq!(r.status, 422, "{bad}: {:?}", r.json);
    }
    let r = srv.call("GET", &format!("{links_path}?limit=0"), &f.root, None).await;
    assert_eq!(r.status, 422);
    for l in links.as_array().unwrap() {
        let mac = l["client_mac"].as_str().unwrap();
        assert_eq!(mac, mac.to_lowercase(), "MACs are canonical");
        assert!(l["signal_dbm"].as_i64().is_some_and(|s| (-100..0).contains(&s)), "{l}");
    }
    let (ap, cpe) = expected.iter().next().unwrap();
    let of_cpe = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/devices/{cpe}/links", f.tenant),
            &f.root,
            None,
        )
        .await;
    assert_eq!(of_cpe.json[0]["ap_device_id"].as_str(), Some(ap.as_str()));
    let bad = srv
        .call("GET", &format!("{links_path}?state=sideways"), &f.root, None)
        .await;
    assert_eq!(bad.status, 422);

    let _ = stop_tx.send(());
    agent.await.unwrap().unwrap();

    let agents = srv
        .call("GET", &format!("/api/tenants/{}/agents", f.tenant), &f.root, None)
        .await;
    assert!(agents.json[0]["last_seen_at"].is_string(), "{:?}", agents.json);
    let _ = std::fs::remove_dir_all(&dir);
    drop(sim);
}

on_both_backends!(agent_delivers_what_it_polls, multi_thread);

fn report(device: &str, seq: u64, clients: usize) -> DeviceReport {
    let mut r = DeviceReport::new(
        device.parse::<DeviceId>().unwrap(),
        seq,
        chrono::Utc::now(),
        PollStatus::Online,
    );
    r.registrations = Some(
        (0..clients)
            .map(|i| {
                let mac: MacAddr = format!("AA:BB:CC:00:00:{i:02X}").parse().unwrap();
                let mut g = Registration::new("wlan1", mac);
                g.signal_dbm = Some(-60 - i as i16);
                g
            })
            .collect(),
    );
    r
}

async fn ingest_refusals(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let f = fleet(&srv, 2).await;
    let agent: AgentId = f.agent.parse().unwrap();
    let tenant = f.tenant.parse().unwrap();
    let device = f.devices[0].parse().unwrap();

    // Stored once; the same idempotency key again is acknowledged and not stored twice.
    let batch = Batch::new(agent, "batch-1", chrono::Utc::now(), vec![report(&f.devices[0], 1, 3)]);
    let first = post_batch(&srv, &f.token, &batch).await;
    assert_eq!(
        (
            first.status,
            first.json["status"].as_str(),
            first.json["registrations"].as_u64()
        ),
        (200, Some("stored"), Some(3))
    );
    let again = post_batch(&srv, &f.token, &batch).await;
    assert_eq!((again.status, again.json["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(srv.state.store.count_registrations(tenant, device).await.unwrap(), 3);
    // Gzip, as the agent sends it.
    let gz_batch = Batch::new(agent, "batch-gz", chrono::Utc::now(), vec![report(&f.devices[1], 1, 2)]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &gz_batch.to_json()).unwrap();
    let body = gz.finish().unwrap();
    let r = raw_post(&srv, &f.token, body, true).await;
    assert_eq!((r.0, r.1["registrations"].as_u64()), (200, Some(2)), "{:?}", r.1);
    assert_eq!(
        raw_post(&srv, &f.token, b"\x1f\x8bnot gzip".to_vec(), true).await.0,
        400
    );

    // A device of another site (here: one with no site) is refused whole, and audited.
    let stray = stray_device(&srv, &f).await;
    let mixed = Batch::new(
        agent,
        "batch-2",
        chrono::Utc::now(),
        vec![report(&f.devices[0], 2, 1), report(&stray, 1, 1)],
    );
    let r = post_batch(&srv, &f.token, &mixed).await;
    assert_eq!(r.status, 422);
    assert!(r.json["detail"].as_str().unwrap().contains(&stray), "{:?}", r.json);
    assert_eq!(
        srv.state.store.count_registrations(tenant, device).await.unwrap(),
        3,
        "nothing of it stored"
    );
    // A batch that names another agent.
    let other = Batch::new(
        AgentId::from_u128(9),
        "batch-3",
        chrono::Utc::now(),
        vec![report(&f.devices[0], 3, 1)],
    );
    assert_eq!(post_batch(&srv, &f.token, &other).await.status, 403);
    // Malformed JSON and unknown schema versions.
    assert_eq!(raw_post(&srv, &f.token, b"{not json".to_vec(), false).await.0, 400);
    let mut v: Value = serde_json::from_slice(&batch.to_json()).unwrap();
    v["schema"] = json!(999);
    assert_eq!(raw_post(&srv, &f.token, v.to_string().into_bytes(), false).await.0, 422);
    // Users and API keys are not agents; a revoked agent is nobody.
    assert_eq!(
        post_batch(
            &srv,
            match &f.root {
                Auth::Bearer(t) => t,
                _ => unreachable!(),
            },
            &batch
        )
        .await
        .status,
        403
    );
    assert_eq!(post_batch(&srv, "toda_forged", &batch).await.status, 401);

    // Data the agent's spool had to drop is reported with each batch as a running count: the
    // agent shows it, and each rise is one `agent.data_lost` event with what is new.
    let head = srv.state.store.stream_head(tenant).await.unwrap();
    for (key, count) in [("drops-1", 120), ("drops-2", 150), ("drops-3", 150), ("drops-4", 40)] {
        let mut b = Batch::new(agent, key, chrono::Utc::now(), vec![report(&f.devices[1], 5, 0)]);
        b.spool_dropped = count;
        assert_eq!(post_batch(&srv, &f.token, &b).await.status, 200);
    }
    let lost: Vec<(u64, u64)> = srv
        .state
        .store
        .stream_after(tenant, head, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "agent.data_lost")
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap())
        .map(|d| (d["lost"].as_u64().unwrap(), d["total"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        lost,
        vec![(120, 120), (30, 150), (40, 40)],
        "a repeat adds nothing; a lower count is a fresh spool whose drops are all new"
    );
    let agents = srv
        .call("GET", &format!("/api/tenants/{}/agents", f.tenant), &f.root, None)
        .await;
    assert_eq!(agents.json[0]["spool_dropped"], 40, "{:?}", agents.json);

    let revoke = srv
        .call(
            "DELETE",
            &format!("/api/tenants/{}/agents/{}", f.tenant, f.agent),
            &f.root,
            None,
        )
        .await;
    assert_eq!(revoke.status, 200);
    let fresh = Batch::new(agent, "batch-4", chrono::Utc::now(), vec![report(&f.devices[0], 4, 1)]);
    assert_eq!(post_batch(&srv, &f.token, &fresh).await.status, 401);

    let log = srv
        .call(
            "GET",
            &format!("/api/audit-logs?tenant_id={}&limit=100", f.tenant),
            &f.root,
            None,
        )
        .await;
    let rejected = log
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "ingest.rejected")
        .count();
    assert_eq!(rejected, 2, "the stray device and the foreign agent id");
    assert_eq!(
        srv.call(
            "GET",
            &format!("/api/audit-logs/verify?tenant_id={}", f.tenant),
            &f.root,
            None
        )
        .await
        .json["intact"],
        true
    );
    // Deleting a device deletes its registration rows (they carry no foreign key on PostgreSQL).
    assert!(srv.state.store.count_registrations(tenant, device).await.unwrap() > 0);
    let gone = srv
        .call(
            "DELETE",
            &format!("/api/tenants/{}/devices/{}", f.tenant, f.devices[0]),
            &f.root,
            None,
        )
        .await;
    assert_eq!(gone.status, 204, "{:?}", gone.json);
    assert_eq!(srv.state.store.count_registrations(tenant, device).await.unwrap(), 0);
    // And deleting the tenant deletes every one of its rows.
    let other_device = f.devices[1].parse().unwrap();
    assert!(srv.state.store.count_registrations(tenant, other_device).await.unwrap() > 0);
    let gone = srv
        .call("DELETE", &format!("/api/tenants/{}", f.tenant), &f.root, None)
        .await;
    assert!(gone.status < 300, "{gone:?}");
    assert_eq!(
        srv.state.store.count_registrations(tenant, other_device).await.unwrap(),
        0
    );
    let _ = f.site;
}

/// A device of the fleet's tenant at no site (so at none of its agent's), by id.
async fn stray_device(srv: &TestServer, f: &Fleet) -> String {
    let stray = srv
        .call(
            "POST",
            &format!("/api/tenants/{}/devices", f.tenant),
            &f.root,
            Some(json!({ "name": "stray", "host": "10.0.0.9" })),
        )
        .await;
    stray.json["id"].as_str().unwrap().to_owned()
}

async fn raw_post(srv: &TestServer, token: &str, body: Vec<u8>, gzip: bool) -> (u16, Value) {
    use http_body_util::{BodyExt, Full};
    let tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::post("/api/ingest")
        .header("host", "test")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"));
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    let resp = sender
        .send_request(req.body(Full::new(hyper::body::Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

on_both_backends!(ingest_refusals);

/// Batches that reach the store together (queued for SQLite's one writer, in concurrent
/// transactions on PostgreSQL) are each stored, refused or recognised as redelivered on their
/// own: a refused batch takes nothing of the others with it, and none is stored twice.
async fn batches_arriving_together(url: &str) {
    use tod_server::store::{Ingested, StoreError};
    let srv = TestServer::start(url, 1000).await;
    let f = fleet(&srv, 3).await;
    let store = srv.state.store.clone();
    let agent = store
        .live_agent(f.agent.parse().unwrap())
        .await
        .unwrap()
        .expect("a live agent");
    let tenant = f.tenant.parse().unwrap();
    let stray = stray_device(&srv, &f).await;
    let now = chrono::Utc::now();
    let early = Batch::new(agent.id, "early", now, vec![report(&f.devices[0], 1, 2)]);
    assert_eq!(
        store.ingest(&agent, &early, now).await,
        Ok(Ingested::Stored {
            reports: 1,
            registrations: 2
        })
    );
    // Nine good batches (batch i: i + 1 clients of device i mod 3), one naming a device of no
    // site between them, and the early batch again.
    let mut batches: Vec<Batch> = (0..9)
        .map(|i| {
            Batch::new(
                agent.id,
                format!("together-{i}"),
                now,
                vec![report(&f.devices[i % 3], 10 + i as u64, i + 1)],
            )
        })
        .collect();
    batches.insert(
        4,
        Batch::new(
            agent.id,
            "stray",
            now,
            vec![report(&f.devices[1], 30, 5), report(&stray, 1, 5)],
        ),
    );
    batches.push(early.clone());
    let tasks: Vec<_> = batches
        .into_iter()
        .map(|b| {
            let (store, agent) = (store.clone(), agent.clone());
            tokio::spawn(async move { store.ingest(&agent, &b, now).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let stray_outcome = outcomes.remove(4);
    assert!(
        matches!(&stray_outcome, Err(StoreError::Invalid(m)) if m.contains(&stray)),
        "{stray_outcome:?}"
    );
    assert_eq!(outcomes.pop(), Some(Ok(Ingested::Duplicate)));
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(
            outcome,
            &Ok(Ingested::Stored {
                reports: 1,
                registrations: i + 1
            }),
            "batch {i}"
        );
    }
    // Device 0: the early 2 rows and batches 0, 3, 6; device 1: batches 1, 4, 7 and nothing of
    // the refused batch; device 2: batches 2, 5, 8.
    let mut counts = Vec::new();
    for d in &f.devices {
        counts.push(store.count_registrations(tenant, d.parse().unwrap()).await.unwrap());
    }
    assert_eq!(counts, vec![2 + 1 + 4 + 7, 2 + 5 + 8, 3 + 6 + 9]);
}

on_both_backends!(batches_arriving_together);

/// The link state machine over time, with the clock injected: degraded below −80 dBm, down after
/// three AP reports without the client, down by time when the AP stops reporting while its agent
/// still reports, stale 24 h later; an agent that goes silent makes its devices unreachable
/// instead. And the lease that keeps this work on one replica.
async fn links_age_and_agents_go_unreachable(url: &str) {
    use tod_core::telemetry::Interface;
    let srv = TestServer::start(url, 1000).await;
    let f = fleet(&srv, 3).await;
    let store = srv.state.store.clone();
    let tenant: tod_core::TenantId = f.tenant.parse().unwrap();
    let agent = store.list_agents(tenant).await.unwrap().remove(0);
    let (ap, cpe1, cpe2) = (f.devices[0].clone(), f.devices[1].clone(), f.devices[2].clone());
    let m1: MacAddr = "02:00:00:00:00:01".parse().unwrap();
    let m2: MacAddr = "02:00:00:00:00:02".parse().unwrap();
    let t0 = chrono::Utc::now();
    let min = |m: i64| t0 + chrono::Duration::minutes(m);
    let cpe = |id: &str, mac: MacAddr, seq: u64, at| {
        let mut r = DeviceReport::new(id.parse().unwrap(), seq, at, PollStatus::Online);
        r.interfaces = Some(vec![Interface {
            name: "wlan1".into(),
            mac: Some(mac),
            kind: "wlan".into(),
            running: true,
            rx_bytes: None,
            tx_bytes: None,
        }]);
        r
    };
    let ap_report = |seq: u64, at, clients: &[(MacAddr, i16)]| {
        let mut r = DeviceReport::new(ap.parse().unwrap(), seq, at, PollStatus::Online);
        r.registrations = Some(
            clients
                .iter()
                .map(|(m, s)| {
                    let mut g = Registration::new("wlan1", *m);
                    g.signal_dbm = Some(*s);
                    g
                })
                .collect(),
        );
        r
    };
    let mut n = 0;
    let mut deliver = |reports: Vec<DeviceReport>, now| {
        n += 1;
        let b = Batch::new(agent.id, format!("b{n}"), now, reports);
        let (store, agent) = (store.clone(), agent.clone());
        async move { store.ingest(&agent, &b, now).await.unwrap() }
    };
    deliver(vec![cpe(&cpe1, m1, 1, min(0)), cpe(&cpe2, m2, 1, min(0))], min(0)).await;
    for (i, m) in [0, 1].into_iter().enumerate() {
        deliver(vec![ap_report(i as u64 + 1, min(m), &[(m1, -60), (m2, -85)])], min(m)).await;
    }
    let srv_ref = &srv;
    let state = |_: &TestServer, cpe: String| {
        let path = format!("/api/tenants/{}/devices/{cpe}/links", f.tenant);
        let root = f.root.clone();
        async move {
            srv_ref.call("GET", &path, &root, None).await.json[0]["state"]
                .as_str()
                .unwrap_or("none")
                .to_owned()
        }
    };
    assert_eq!(state(&srv, cpe1.clone()).await, "active");
    assert_eq!(state(&srv, cpe2.clone()).await, "degraded", "-85 dBm is below -80");
    for m in 2..=4 {
        // The last of them reaches the server 40 s after it was collected (the agent batched
        // and retried).
        let lag = chrono::Duration::seconds(if m == 4 { 40 } else { 0 });
        deliver(vec![ap_report(m as u64 + 1, min(m), &[(m1, -60)])], min(m) + lag).await;
    }
    assert_eq!(
        state(&srv, cpe2.clone()).await,
        "down",
        "three AP reports without the client"
    );
    assert_eq!(state(&srv, cpe1.clone()).await, "active");
    // When the link would be due down (three and a half intervals after the AP's last report) the
    // agent has not been heard from since that delivery, yet is not silent for three intervals:
    // nothing says the AP is gone rather than the agent, so its link stays as it was.
    let a = store
        .age_fleet(min(7) + chrono::Duration::seconds(31), 60)
        .await
        .unwrap();
    assert_eq!((a.link_changes, a.devices_unreachable), (0, 0), "{a:?}");
    assert_eq!(state(&srv, cpe1.clone()).await, "active");

    // The AP goes quiet at minute 4; the agent keeps reporting the CPE. At minute 10 the link of
    // CPE 1 is down by time; a day later both links are stale.
    deliver(vec![cpe(&cpe1, m1, 2, min(10))], min(10)).await;
    let a = store.age_fleet(min(10), 60).await.unwrap();
    assert_eq!((a.link_changes, a.devices_unreachable), (1, 0));
    assert_eq!(state(&srv, cpe1.clone()).await, "down");
    let day = 24 * 60 + 10;
    deliver(vec![cpe(&cpe1, m1, 3, min(day))], min(day)).await;
    let a = store.age_fleet(min(day), 60).await.unwrap();
    assert_eq!(a.link_changes, 2, "{a:?}");
    assert_eq!(
        (state(&srv, cpe1.clone()).await, state(&srv, cpe2.clone()).await),
        ("stale".into(), "stale".into())
    );

    // The agent goes silent: its site's devices are unreachable, once, and one "agent offline"
    // alert fires for the site — not one per device.
    let a = store.age_fleet(min(day + 4), 60).await.unwrap();
    assert_eq!((a.devices_unreachable, a.agent_alerts_raised), (3, 1), "{a:?}");
    let again = store.age_fleet(min(day + 5), 60).await.unwrap();
    assert_eq!((again.devices_unreachable, again.agent_alerts_raised), (0, 0));
    let d = srv
        .call("GET", &format!("/api/tenants/{}/devices/{ap}", f.tenant), &f.root, None)
        .await;
    assert_eq!(d.json["status"], "unreachable");
    let events = |state: &'static str| {
        let path = format!("/api/tenants/{}/sites/{}/alert-events?state={state}", f.tenant, f.site);
        let root = f.root.clone();
        async move { srv_ref.call("GET", &path, &root, None).await.json }
    };
    let active = events("active").await;
    assert_eq!(active["total"], 1, "{active}");
    assert_eq!(active["items"][0]["kind"], "agent_offline");
    assert_eq!(active["items"][0]["severity"], "critical");
    let count = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/alert-events/count", f.tenant),
            &f.root,
            None,
        )
        .await;
    assert_eq!(count.json["count"], 1);
    let site = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/sites/{}", f.tenant, f.site),
            &f.root,
            None,
        )
        .await;
    assert_eq!(site.json["alert_count"], 1, "the rollup counts the site's active alert");

    // The agent reports again (backfilling): the alert resolves by itself.
    deliver(vec![cpe(&cpe1, m1, 4, min(day + 6))], min(day + 6)).await;
    let back = store.age_fleet(min(day + 6), 60).await.unwrap();
    assert_eq!(back.agent_alerts_resolved, 1, "{back:?}");
    assert_eq!(events("active").await["total"], 0);
    let resolved = events("resolved").await;
    assert!(resolved["items"][0]["resolved_at"].is_string() && resolved["items"][0]["resolved_by"].is_null());

    // Silent again: a new alert, which an operator resolves by hand (once).
    store.age_fleet(min(day + 10), 60).await.unwrap();
    let id = events("active").await["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/tenants/{}/alert-events/{id}/resolve", f.tenant);
    let r = srv.call("POST", &path, &f.root, None).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["state"], "resolved");
    assert!(r.json["resolved_by"].is_string(), "the resolving user is recorded");
    assert_eq!(
        srv.call("POST", &path, &f.root, None).await.status,
        404,
        "already resolved"
    );
    let bad = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/sites/{}/alert-events?limit=500", f.tenant, f.site),
            &f.root,
            None,
        )
        .await;
    assert_eq!(bad.status, 422);

    // Retention: a day later nothing is old enough; 31 days later the registration rows go.
    let regs = store.count_registrations(tenant, ap.parse().unwrap()).await.unwrap();
    assert!(regs > 0);
    let (month, quarter) = (chrono::Duration::days(30), chrono::Duration::days(90));
    store.retain(min(day), min(day), month, quarter).await.unwrap();
    assert_eq!(
        store.count_registrations(tenant, ap.parse().unwrap()).await.unwrap(),
        regs
    );
    let removed = store
        .retain(min(31 * 24 * 60), min(31 * 24 * 60), month, quarter)
        .await
        .unwrap();
    assert!(removed >= regs as u64, "{removed} < {regs}");
    assert_eq!(store.count_registrations(tenant, ap.parse().unwrap()).await.unwrap(), 0);

    // One holder at a time; a lapsed lease passes on.
    let (x, y) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let ttl = chrono::Duration::seconds(90);
    assert!(store.try_lease("fleet-aging", x, t0, ttl).await.unwrap());
    assert!(!store.try_lease("fleet-aging", y, t0, ttl).await.unwrap());
    assert!(
        store.try_lease("fleet-aging", x, t0, ttl).await.unwrap(),
        "the holder renews"
    );
    assert!(
        store
            .try_lease("fleet-aging", y, t0 + chrono::Duration::seconds(91), ttl)
            .await
            .unwrap()
    );
}

on_both_backends!(links_age_and_agents_go_unreachable);

/// A customer radio that roams to another AP has left the first: its old link goes down with the
/// report that shows it on the new AP, even when that report comes in a batch without the old
/// AP, not three polls later. A CPE's second radio on another AP leaves the first link alone.
async fn a_roaming_radio_leaves_its_old_link_at_once(url: &str) {
    use tod_core::telemetry::Interface;
    let srv = TestServer::start(url, 1000).await;
    let f = fleet(&srv, 3).await;
    let store = srv.state.store.clone();
    let tenant: tod_core::TenantId = f.tenant.parse().unwrap();
    let agent = store.list_agents(tenant).await.unwrap().remove(0);
    let (ap1, ap2, cpe) = (f.devices[0].clone(), f.devices[1].clone(), f.devices[2].clone());
    let radio: MacAddr = "02:00:00:00:00:01".parse().unwrap();
    let second: MacAddr = "02:00:00:00:00:02".parse().unwrap();
    let t0 = chrono::Utc::now();
    let min = |m: i64| t0 + chrono::Duration::minutes(m);
    let mut c = DeviceReport::new(cpe.parse().unwrap(), 1, min(0), PollStatus::Online);
    c.interfaces = Some(
        [("wlan1", radio), ("wlan2", second)]
            .into_iter()
            .map(|(name, mac)| Interface {
                name: name.into(),
                mac: Some(mac),
                kind: "wlan".into(),
                running: true,
                rx_bytes: None,
                tx_bytes: None,
            })
            .collect(),
    );
    let ap_report = |ap: &str, at: chrono::DateTime<chrono::Utc>, clients: &[MacAddr]| {
        let seq = (at - t0).num_minutes() as u64 + 1;
        let mut r = DeviceReport::new(ap.parse().unwrap(), seq, at, PollStatus::Online);
        r.registrations = Some(
            clients
                .iter()
                .map(|m| {
                    let mut g = Registration::new("wlan1", *m);
                    g.signal_dbm = Some(-60);
                    g
                })
                .collect(),
        );
        r
    };
    let mut n = 0;
    let mut deliver = |reports: Vec<DeviceReport>, now| {
        n += 1;
        let b = Batch::new(agent.id, format!("roam{n}"), now, reports);
        let (store, agent) = (store.clone(), agent.clone());
        async move { store.ingest(&agent, &b, now).await.unwrap() }
    };
    let links = || {
        let path = format!("/api/tenants/{}/devices/{cpe}/links", f.tenant);
        let (root, srv, ap1) = (f.root.clone(), &srv, ap1.clone());
        async move {
            let r = srv.call("GET", &path, &root, None).await;
            assert_eq!(r.status, 200, "{:?}", r.json);
            let mut out: Vec<(String, String)> = r
                .json
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    let ap = l["ap_device_id"].as_str().unwrap();
                    let name = if ap == ap1 { "ap1" } else { "ap2" };
                    (name.to_owned(), l["state"].as_str().unwrap().to_owned())
                })
                .collect();
            out.sort();
            out
        }
    };
    let pair = |a: &str, b: &str| vec![("ap1".to_owned(), a.to_owned()), ("ap2".to_owned(), b.to_owned())];
    deliver(vec![c], min(0)).await;
    deliver(vec![ap_report(&ap1, min(0), &[radio])], min(0)).await;
    deliver(vec![ap_report(&ap1, min(1), &[radio])], min(1)).await;
    // The CPE's second radio on AP 2: a link of its own, the first one stands.
    deliver(vec![ap_report(&ap2, min(1), &[second])], min(1)).await;
    deliver(vec![ap_report(&ap2, min(2), &[second])], min(2)).await;
    assert_eq!(links().await, pair("active", "active"));
    // The first radio on AP 2 too: it has left AP 1, whose link goes down now, in a batch
    // that does not name AP 1.
    deliver(vec![ap_report(&ap2, min(3), &[radio])], min(3)).await;
    assert_eq!(links().await, pair("down", "active"));
    // Back on AP 1 (listed there after AP 2 last saw it): AP 2's link goes down in turn.
    deliver(vec![ap_report(&ap1, min(4), &[radio])], min(4)).await;
    assert_eq!(links().await, pair("active", "down"));
    // The event log says when AP 1's link went down: with the report from AP 2 at minute 3.
    let events = srv
        .call(
            "GET",
            &format!("/api/events?tenant_id={}&kind=link_state&device_id={cpe}", f.tenant),
            &f.root,
            None,
        )
        .await;
    assert_eq!(events.status, 200, "{:?}", events.json);
    let downs: Vec<(&str, &str)> = events.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to_value"] == "down")
        .map(|e| (e["device_id"].as_str().unwrap(), e["at"].as_str().unwrap()))
        .collect();
    assert_eq!(downs.len(), 2, "{}", events.json);
    let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    assert!(
        downs
            .iter()
            .any(|(d, t)| *d == ap1 && (at(t) - min(3)).num_milliseconds().abs() < 1),
        "{downs:?}"
    );
}

on_both_backends!(a_roaming_radio_leaves_its_old_link_at_once);

/// Skips a broker test with a message, or fails it when `TOD_REQUIRE_SERVICES` makes the broker
/// mandatory.
fn skip_without(service: &str, url: &str, error: &str) {
    if std::env::var_os("TOD_REQUIRE_SERVICES").is_some() {
        panic!("{service} at {url} is required: {error}");
    }
    eprintln!("SKIP: {service} at {url} does not answer ({error})");
}

/// A server on SQLite with a two-device fleet, its agent, and a tag that keeps this run's broker
/// names apart from any other's.
async fn broker_setup() -> (TestDb, TestServer, Fleet, AgentId, String) {
    let db = TestDb::sqlite();
    let srv = TestServer::start(&db.url, 1000).await;
    let f = fleet(&srv, 2).await;
    let agent: AgentId = f.agent.parse().unwrap();
    let tag = format!("{}x{}", std::process::id(), uuid::Uuid::new_v4().simple());
    (db, srv, f, agent, tag)
}

/// Waits until a device has exactly `expected` registration rows; more is a failure at once.
async fn wait_for_rows(srv: &TestServer, tenant: tod_core::TenantId, device: DeviceId, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = srv.state.store.count_registrations(tenant, device).await.unwrap();
        if n == expected {
            return;
        }
        assert!(n < expected, "stored more than once: {n} > {expected}");
        assert!(Instant::now() < deadline, "only {n} of {expected} rows arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The NATS JetStream input: the agent's own uplink publishes, two server "replicas" consume the
/// same durable work queue, every batch is stored exactly once, and poison messages are
/// dead-lettered with a reason without stopping the consumers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_jetstream_ingest_exactly_once_with_dead_letters() {
    use futures_util::StreamExt;
    use tod_agent::uplink::Uplink;
    use tod_agent::uplink::nats::{NatsConfig, NatsUplink};
    let url = std::env::var("TOD_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = match async_nats::connect(&url).await {
        Ok(c) => c,
        Err(e) => return skip_without("NATS", &url, &e.to_string()),
    };
    let (db, srv, f, agent, tag) = broker_setup().await;
    let config = tod_server::consume::NatsIngest {
        url: url.clone(),
        stream: format!("TODTEST_{tag}"),
        subject_prefix: format!("todtest{tag}.telemetry"),
        dead_letter_prefix: format!("todtest{tag}.dead"),
        durable: "ingest".into(),
        ack_wait: Duration::from_secs(2),
        clock: month_ahead(),
    };
    let mut dead = client
        .subscribe(format!("{}.>", config.dead_letter_prefix))
        .await
        .unwrap();
    let start_replicas = || async {
        [
            tod_server::consume::NatsConsumer::start(config.clone(), srv.state.store.clone())
                .await
                .unwrap(),
            tod_server::consume::NatsConsumer::start(config.clone(), srv.state.store.clone())
                .await
                .unwrap(),
        ]
    };
    let mut replicas = start_replicas().await;
    assert!(replicas.iter().all(|r| r.connected()));
    let uplink = NatsUplink::connect(
        &NatsConfig {
            url: url.clone(),
            stream: config.stream.clone(),
            subject_prefix: config.subject_prefix.clone(),
            ..NatsConfig::default()
        },
        agent,
    )
    .await
    .unwrap();
    let js = async_nats::jetstream::new(client.clone());

    // Twelve batches of 3 rows, one delivered twice; poison in the middle; both replicas stop
    // after the fourth (whatever they had taken and not acknowledged comes back) and are
    // started again after the eighth.
    let mut expected = 0;
    for i in 0..12u64 {
        if i == 4 {
            for r in &replicas {
                r.stop();
            }
        }
        if i == 8 {
            replicas = start_replicas().await;
        }
        let b = Batch::new(
            agent,
            format!("nats-{i}"),
            chrono::Utc::now(),
            vec![report(&f.devices[0], i + 1, 3)],
        );
        uplink.deliver(&b).await.unwrap();
        if i == 4 {
            uplink.deliver(&b).await.unwrap();
            js.publish(format!("{}.{agent}", config.subject_prefix), "not a batch".into())
                .await
                .unwrap()
                .await
                .unwrap();
            js.publish(format!("{}.not-an-agent", config.subject_prefix), "{}".into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        expected += 3;
    }
    let tenant = f.tenant.parse().unwrap();
    let device = f.devices[0].parse().unwrap();
    wait_for_rows(&srv, tenant, device, expected).await;
    let mut reasons = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(Duration::from_secs(10), dead.next())
            .await
            .expect("dead letter")
            .unwrap();
        reasons.push(m.headers.unwrap().get("Tod-Reason").unwrap().as_str().to_owned());
    }
    reasons.sort();
    assert!(reasons[0].contains("malformed batch"), "{reasons:?}");
    assert!(reasons[1].contains("agent id"), "{reasons:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        srv.state.store.count_registrations(tenant, device).await.unwrap(),
        expected,
        "exactly once"
    );
    assert_ingested_on_the_consumers_clock(&srv.state, tenant).await;
    for r in &replicas {
        r.stop();
    }
    js.delete_stream(&config.stream).await.unwrap();
    db.drop_db().await;
}

/// A clock a month ahead of the system's: a broker consumer given it ingests at its time (the
/// server's clock, accelerated in the field-truth scorer's runs of weeks).
fn month_ahead() -> tod_agent::clock::Clock {
    tod_agent::clock::Clock::Accelerated {
        origin: std::time::Instant::now(),
        start: chrono::Utc::now() + chrono::Duration::days(30),
        speed: 1.0,
    }
}

/// The agent's last accepted batch is stamped with the consumer's clock ([`month_ahead`]).
async fn assert_ingested_on_the_consumers_clock(state: &tod_server::app::AppState, tenant: tod_core::TenantId) {
    let agents = state.store.list_agents(tenant).await.unwrap();
    let seen = agents
        .iter()
        .filter_map(|a| a.last_seen_at)
        .max()
        .expect("a batch accepted");
    assert!(
        seen > chrono::Utc::now() + chrono::Duration::days(29),
        "ingested at the consumer's clock, a month ahead: {seen}"
    );
}

/// The MQTT input: the agent's own uplink publishes at QoS 1, two server "replicas" share the
/// subscription, every batch is stored once, and a poison message is dead-lettered with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_ingest_exactly_once_with_dead_letters() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    use tod_agent::uplink::Uplink;
    use tod_agent::uplink::mqtt::{MqttConfig, MqttUplink};
    let url = std::env::var("TOD_TEST_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into());
    let (host, port) = url.trim_start_matches("mqtt://").rsplit_once(':').unwrap();
    let port: u16 = port.parse().unwrap();
    if let Err(e) = tokio::net::TcpStream::connect((host, port)).await {
        return skip_without("MQTT", &url, &e.to_string());
    }
    let (db, srv, f, agent, tag) = broker_setup().await;
    let config = tod_server::consume::MqttIngest {
        host: host.into(),
        port,
        topic_prefix: format!("todtest/{tag}/telemetry"),
        dead_letter_prefix: format!("todtest/{tag}/dead"),
        group: format!("g{tag}"),
        client_id: String::new(),
        clock: month_ahead(),
    };
    // A watcher of the dead-letter topic, and a raw publisher for the poison.
    let mut opts = MqttOptions::new(format!("watch-{tag}"), host, port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (watcher, mut watch_events) = AsyncClient::new(opts, 16);
    watcher
        .subscribe(format!("{}/+", config.dead_letter_prefix), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (letters_tx, mut letters) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    tokio::spawn(async move {
        while let Ok(ev) = watch_events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = letters_tx.send(serde_json::from_slice(&p.payload).unwrap_or_default());
            }
        }
    });
    // Each replica has its own stable session: one restarted gets back what the broker kept for it.
    let start_replicas = || async {
        let replicas = ["a", "b"].map(|r| {
            let config = tod_server::consume::MqttIngest {
                client_id: format!("{r}{tag}"),
                ..config.clone()
            };
            tod_server::consume::MqttConsumer::start(config, srv.state.store.clone())
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !replicas.iter().all(|r| r.connected()) {
            assert!(Instant::now() < deadline, "consumers did not connect");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await; // subscriptions settle
        replicas
    };
    let mut replicas = start_replicas().await;
    let uplink = MqttUplink::start(
        &MqttConfig {
            host: host.into(),
            port,
            topic_prefix: config.topic_prefix.clone(),
            ..MqttConfig::default()
        },
        agent,
    );
    // As with NATS: both replicas stop after the fourth batch and start again after the eighth.
    let mut expected = 0;
    for i in 0..12u64 {
        if i == 4 {
            for r in &replicas {
                r.stop();
            }
        }
        if i == 8 {
            replicas = start_replicas().await;
        }
        let b = Batch::new(
            agent,
            format!("mqtt-{i}"),
            chrono::Utc::now(),
            vec![report(&f.devices[0], i + 1, 3)],
        );
        uplink.deliver(&b).await.unwrap();
        if i == 4 {
            uplink.deliver(&b).await.unwrap(); // a redelivery: stored once
            watcher
                .publish(
                    format!("{}/{agent}", config.topic_prefix),
                    QoS::AtLeastOnce,
                    false,
                    "not a batch",
                )
                .await
                .unwrap();
        }
        expected += 3;
    }
    let tenant = f.tenant.parse().unwrap();
    let device = f.devices[0].parse().unwrap();
    wait_for_rows(&srv, tenant, device, expected).await;
    let letter = tokio::time::timeout(Duration::from_secs(10), letters.recv())
        .await
        .expect("dead letter")
        .unwrap();
    assert!(
        letter["reason"].as_str().unwrap().contains("malformed batch"),
        "{letter}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        srv.state.store.count_registrations(tenant, device).await.unwrap(),
        expected,
        "exactly once"
    );
    assert_ingested_on_the_consumers_clock(&srv.state, tenant).await;
    for r in &replicas {
        r.stop();
    }
    db.drop_db().await;
}

/// Device logins are sealed at rest, never shown by the API, and opened only for the agent of
/// the device's site.
async fn device_logins_reach_only_their_agent(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let f = fleet(&srv, 1).await;
    let devices = format!("/api/tenants/{}/devices", f.tenant);
    let body = json!({ "name": "ap-secure", "host": "10.1.1.1", "site_id": f.site, "transport": "tls_pinned",
                       "fingerprint": "AB:".repeat(31) + "AB", "username": "tod", "password": "router-secret-42" });
    let made = srv.call("POST", &devices, &f.root, Some(body)).await;
    assert_eq!(made.status, 201, "{:?}", made.json);
    assert_eq!(
        (made.json["has_credentials"].as_bool(), made.json["api_port"].as_i64()),
        (Some(true), Some(8729))
    );
    for r in [&made.json, &srv.call("GET", &devices, &f.root, None).await.json] {
        assert!(
            !r.to_string().contains("router-secret-42"),
            "the API never shows a password: {r}"
        );
    }
    let bad = srv
        .call(
            "POST",
            &devices,
            &f.root,
            Some(json!({ "name": "x", "host": "h", "transport": "tls_pinned" })),
        )
        .await;
    assert_eq!(bad.status, 422, "tls_pinned needs a fingerprint");
    let half = srv
        .call(
            "POST",
            &devices,
            &f.root,
            Some(json!({ "name": "y", "host": "h", "username": "u" })),
        )
        .await;
    assert_eq!(half.status, 422);

    let mine = srv
        .call("GET", "/api/agent/devices", &Auth::Bearer(f.token.clone()), None)
        .await;
    assert_eq!(mine.status, 200, "{:?}", mine.json);
    let secure = mine
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "ap-secure")
        .unwrap()
        .clone();
    assert_eq!(
        (secure["username"].as_str(), secure["password"].as_str()),
        (Some("tod"), Some("router-secret-42"))
    );
    assert_eq!(secure["fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(mine.json.as_array().unwrap().len(), 2, "the site's two devices");

    // Another site's agent sees none of it; users are not agents.
    let s2 = srv
        .call(
            "POST",
            &format!("/api/tenants/{}/sites", f.tenant),
            &f.root,
            Some(json!({ "name": "South" })),
        )
        .await;
    let a2 = srv
        .call(
            "POST",
            &format!("/api/tenants/{}/agents", f.tenant),
            &f.root,
            Some(json!({ "name": "tower-2", "site_id": s2.json["id"] })),
        )
        .await;
    let theirs = srv
        .call(
            "GET",
            "/api/agent/devices",
            &Auth::Bearer(a2.json["token"].as_str().unwrap().into()),
            None,
        )
        .await;
    assert_eq!(theirs.json.as_array().unwrap().len(), 0);
    assert_eq!(srv.call("GET", "/api/agent/devices", &f.root, None).await.status, 403);

    // Without a vault key (production without TOD_MASTER_KEY) a login cannot be stored.
    let keyless = TestServer::start_with(url, |s| s.master_key = None).await;
    let root = keyless.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let r = keyless
        .call(
            "POST",
            &devices,
            &root,
            Some(json!({ "name": "z", "host": "h", "username": "u", "password": "p" })),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.json["detail"].as_str().unwrap().contains("TOD_MASTER_KEY"));
}

on_both_backends!(device_logins_reach_only_their_agent);

/// Device sync: an agent configured with no devices at all pulls its site's list (logins
/// included) from the server, polls it, and picks up a device added through the API while it runs.
async fn agent_pulls_its_device_list(url: &str) {
    let sim = Simulator::start(SimConfig {
        seed: 47,
        devices: 5,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let srv = TestServer::start(url, 1000).await;
    let f = fleet(&srv, 0).await;
    let devices = format!("/api/tenants/{}/devices", f.tenant);
    let add = |i: usize| {
        let body = json!({ "name": format!("pulled-{i}"), "host": "127.0.0.1", "port": sim.ports(i).plain.port(),
                           "site_id": f.site, "username": "admin", "password": "admin" });
        let (srv, root, path) = (&srv, f.root.clone(), devices.clone());
        async move {
            let r = srv.call("POST", &path, &root, Some(body)).await;
            assert_eq!(r.status, 201, "{:?}", r.json);
        }
    };
    for i in 0..4 {
        add(i).await;
    }
    let dir = std::env::temp_dir().join(format!("tod-pull-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
    let toml = format!(
        "[agent]\nid = \"{}\"\ntoken = \"{}\"\n[server]\nendpoint = \"127.0.0.1:51820\"\ningest = \"{}\"\npull_devices = true\n\
         [poll]\ninterval_secs = 1\n[spool]\ndir = \"{}\"\n[metrics]\nlisten = \"\"\n",
        f.agent,
        f.token,
        srv.addr,
        dir.join("spool").display()
    );
    let (stop_tx, agent) = run_agent(&toml);
    let online = |want: usize| {
        let (srv, root, path) = (&srv, f.root.clone(), devices.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let r = srv.call("GET", &path, &root, None).await;
                let n = r
                    .json
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| d["status"] == "online")
                    .count();
                if n == want {
                    return;
                }
                assert!(Instant::now() < deadline, "{n} of {want} devices online: {:?}", r.json);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    online(4).await;
    add(4).await;
    online(5).await;
    let _ = stop_tx.send(());
    agent.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    drop(sim);
}

on_both_backends!(agent_pulls_its_device_list, multi_thread);
