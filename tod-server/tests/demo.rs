//! `tod-server demo` (the README's first command) with an accelerated clock, on SQLite and on
//! PostgreSQL: the API shows every simulated device online, its towers with coordinates and their
//! health rollup, wireless links discovered from the simulated registration tables, a live link's
//! signal history, every tower's agent delivering through its own WireGuard tunnel, the scripted
//! backhaul outage as one site alert that resolves itself, and the scripted rain as weak-signal
//! alerts from the sector rules that clear when it passes, the scripted dying radio as its own
//! weak-signal and offline alerts; the printed key and login work.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;
use tod_server::client::call_json;
use tod_server::demo::{DemoOptions, Progress};

async fn the_demo_shows_the_whole_system_working(db_url: &str) {
    let dir = std::env::temp_dir().join(format!("tod-demo-test-{}", uuid::Uuid::new_v4()));
    let opts = DemoOptions {
        devices: 80,
        speed: 60.0,
        listen: "127.0.0.1:0".parse().unwrap(),
        postgres: db_url.starts_with("postgres").then(|| db_url.to_owned()),
        dir: Some(dir.clone()),
        ..DemoOptions::default()
    };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let latest = std::sync::Arc::new(std::sync::Mutex::new(Progress::default()));
    let seen = latest.clone();
    let demo = tokio::spawn(tod_server::demo::run(
        opts,
        ready_tx,
        move |p| *seen.lock().unwrap() = p.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let access = tokio::time::timeout(Duration::from_secs(60), ready_rx)
        .await
        .expect("the demo sets itself up within a minute")
        .expect("the demo reports how to reach it");
    assert!(access.towers >= 2, "a few towers: {}", access.towers);

    // What an operator sees through the API, with the API key the demo printed.
    let get = |path: String| {
        let (url, key) = (access.url.clone(), access.api_key.clone());
        async move {
            let (status, body) = call_json_with_key(&url, &path, &key).await;
            assert_eq!(status, 200, "GET {path}: {body}");
            body
        }
    };
    let t = &access.tenant;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let devices = get(format!("/api/tenants/{t}/devices")).await;
        let links = get(format!("/api/tenants/{t}/links")).await;
        let devices = devices.as_array().unwrap();
        let online = devices.iter().filter(|d| d["status"] == "online").count();
        let live = links
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["state"] == "active" || l["state"] == "degraded")
            .count();
        let p = latest.lock().unwrap().clone();
        if devices.len() == 80 && online == 80 && live > 0 && p.tunnels_up == access.towers {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo never showed the whole system: {online}/{} online, {live} live links, {p:?}",
            devices.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Towers with coordinates and their health rollup: every device online.
    let sites = get(format!("/api/tenants/{t}/sites")).await;
    let sites = sites["sites"].as_array().unwrap();
    assert_eq!(sites.len(), access.towers);
    assert!(
        sites
            .iter()
            .all(|s| s["latitude"].is_number() && s["longitude"].is_number())
    );
    assert!(sites.iter().all(|s| s["online_percent"] == 100.0), "{sites:?}");
    // Signal history of a live link's client, as its AP reported it.
    let links = get(format!("/api/tenants/{t}/links")).await;
    let link = links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["state"] == "active")
        .expect("an active link")
        .clone();
    let history = get(format!(
        "/api/tenants/{t}/devices/{}/signal-history?mac_address={}&range=24h",
        link["ap_device_id"].as_str().unwrap(),
        link["client_mac"].as_str().unwrap()
    ))
    .await;
    assert!(!history["items"].as_array().unwrap().is_empty(), "{history}");
    // The agent's RF monitor readings and counter deltas reach the radio and traffic reads.
    let ap = link["ap_device_id"].as_str().unwrap();
    let rf = get(format!("/api/tenants/{t}/devices/{ap}/rf-stats")).await;
    let radio = rf["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["interface"] == link["interface"])
        .unwrap_or_else(|| panic!("the link's radio has RF stats: {rf}"));
    assert_eq!(radio["role"], "access_point", "{radio}");
    assert!(
        radio["frequency"].is_number() && radio["clients"].as_i64() > Some(0),
        "{radio}"
    );
    let traffic = get(format!("/api/metrics/devices/{ap}/interfaces")).await;
    assert!(
        !traffic["interfaces"].as_array().unwrap().is_empty(),
        "traffic series from the agent's counter deltas: {traffic}"
    );
    let wireless = get(format!("/api/metrics/devices/{ap}/wireless")).await;
    assert!(!wireless["radios"].as_array().unwrap().is_empty(), "{wireless}");

    // Device alert rules: the tenant started with the defaults, judged on every report.
    let rules = get("/api/alerts/rules".to_owned()).await;
    assert_eq!(rules["total"], 6, "{rules}");
    let open = get("/api/alerts?status=firing&per_page=200".to_owned()).await;
    assert!(open["total"].as_i64().is_some(), "{open}");

    // The scripted backhaul outage: one "agent offline" alert for the tower, not one per device,
    // resolved by itself when the agent comes back and backfills.
    // A site's events: `state` is `active`, `resolved` or empty for both.
    let site_events = |id: String, state: &'static str| {
        let get = &get;
        async move {
            let state = if state.is_empty() {
                String::new()
            } else {
                format!("state={state}&")
            };
            let events = get(format!("/api/tenants/{t}/sites/{id}/alert-events?{state}limit=200")).await;
            events["items"].as_array().unwrap().clone()
        }
    };
    let offline_events = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["kind"] == "agent_offline")
            .cloned()
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let outage = loop {
        let mut found = Vec::new();
        for s in sites {
            let id = s["id"].as_str().unwrap().to_owned();
            found.extend(
                offline_events(&site_events(id.clone(), "active").await)
                    .into_iter()
                    .map(|e| (id.clone(), e)),
            );
        }
        if !found.is_empty() {
            assert_eq!(found.len(), 1, "one alert for the whole tower: {found:?}");
            break found.remove(0);
        }
        assert!(Instant::now() < deadline, "no site alert during the scripted outage");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let resolved = offline_events(&site_events(outage.0.clone(), "resolved").await);
        if resolved.len() == 1 {
            assert!(resolved[0]["resolved_by"].is_null(), "it cleared by itself");
            break;
        }
        assert!(Instant::now() < deadline, "the outage alert never resolved");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The scripted rain over the first tower: its sectors' weak-signal rules fire while it rains
    // (judged in the world's time: 10-minute windows shrunk by the demo's speed) and clear after.
    let tower_one = sites.iter().find(|s| s["name"] == "Tower 01").expect("Tower 01")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rules = get(format!("/api/tenants/{t}/sites/{tower_one}/alert-rules")).await;
    assert!(
        rules["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["rule_type"] == "sector_signal_avg" && r["sector_id"].is_string()),
        "a weak-signal rule per sector: {rules}"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let rain = loop {
        let all = site_events(tower_one.clone(), "").await;
        let weak: Vec<Value> = all.into_iter().filter(|e| e["kind"] == "sector_signal_avg").collect();
        if let Some(e) = weak.iter().find(|e| e["state"] == "resolved") {
            break e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the rain over Tower 01 raised and cleared no weak-signal alert: {weak:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(rain["sector_id"].is_string() && rain["rule_id"].is_string(), "{rain}");
    assert!(
        rain["resolved_by"].is_null(),
        "the rain alert cleared by itself: {rain}"
    );
    assert!(
        rain["message"].as_str().unwrap().contains("average client signal"),
        "{rain}"
    );

    // The scripted dying radio: the default rules page about its weak link, then about it
    // going dark (each from three and two polls of the agent, as the rules say).
    let dying = access.dying_cpe.clone().expect("a radio is scripted to die");
    let devices = get(format!("/api/tenants/{t}/devices")).await;
    let id = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == dying.as_str())
        .unwrap_or_else(|| panic!("{dying} is a device: {devices}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = get(format!("/api/alerts?device_id={id}&per_page=200")).await;
        let metrics: Vec<&str> = alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["metric"].as_str())
            .collect();
        if metrics.contains(&"signal_strength") && metrics.contains(&"device_offline") {
            let offline = alerts["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["metric"] == "device_offline")
                .unwrap();
            assert_eq!(offline["status"], "firing", "a dead radio stays down: {offline}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dying radio {dying} raised no weak-signal and offline alerts: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The admin login printed is real (SRP against the running server).
    let tokens = tod_server::client::login(&access.url, &access.email, &access.password)
        .await
        .unwrap();
    assert!(tokens["access_token"].is_string());

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), demo)
        .await
        .expect("the demo stops on request")
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
on_both_backends!(the_demo_shows_the_whole_system_working, multi_thread);

async fn call_json_with_key(base: &str, path: &str, key: &str) -> (u16, Value) {
    // The demo's key goes in X-API-Key; call_json sends a bearer token, which API keys accept too.
    call_json(base, "GET", path, None, Some(key)).await.unwrap()
}
