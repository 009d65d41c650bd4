//! WASM alert plugins in the server, over real HTTP on SQLite and PostgreSQL: upload (validated
//! by compiling), assignment to a site, evaluation passes that raise and resolve site events, a
//! hostile plugin stopped with its reason while the others keep running, and backtests of a
//! plugin and of a site rule over stored history. The example plugins are built for wasm32 from
//! `plugins/guest`; without the target the tests skip (`TOD_REQUIRE_WASM` makes them mandatory).

mod common;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use common::TestServer;
use common::fleet::{World, ap_report, cpe_report, deliver, world};
use serde_json::{Value, json};
use tod_core::MacAddr;
use tod_core::telemetry::{DeviceReport, PollStatus};
use tod_server::site_alerts::{Pass, SiteAlerts};

mod wasm {
    use std::path::PathBuf;
    use std::sync::OnceLock;

    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

    /// The bytes of example plugin `name`, or `None` after a skip message.
    pub fn plugin(name: &str) -> Option<Vec<u8>> {
        let built = BUILT.get_or_init(|| {
            let dir = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
                .join("wasm-plugins");
            tod_plugin_host::build_example_plugins(&dir)
        });
        match built {
            Ok(dir) => Some(std::fs::read(dir.join(format!("tod_plugin_{name}.wasm"))).expect("built plugin")),
            Err(why) => {
                if std::env::var_os("TOD_REQUIRE_WASM").is_some() {
                    panic!("the example plugins are required but did not build:\n{why}");
                }
                eprintln!("SKIP: the example plugins did not build (rustup target add wasm32-unknown-unknown):\n{why}");
                None
            }
        }
    }
}

async fn server(url: &str) -> TestServer {
    TestServer::start_with(url, |s| {
        s.auth_rate_limit = 1000;
        s.alert_evaluation_interval_secs = 86_400;
    })
    .await
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn client(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

async fn upload(srv: &TestServer, w: &World, bytes: &[u8], extra: Value) -> Value {
    let mut body = json!({ "component_base64": b64(bytes) });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let r = call(srv, w, "POST", "/api/plugins", Some(body)).await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    r.json
}

async fn events(srv: &TestServer, w: &World, site: usize) -> Vec<Value> {
    let r = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/sites/{}/alert-events", w.tenant, w.sites[site]),
            &w.root,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json["items"].as_array().unwrap().clone()
}

async fn pass(srv: &TestServer, ev: &mut SiteAlerts, at: DateTime<Utc>) -> Pass {
    ev.pass(srv.state.store.as_ref(), at).await.expect("pass")
}

/// The super admin acts on the world's tenant by naming it.
async fn call(srv: &TestServer, w: &World, method: &str, path: &str, body: Option<Value>) -> common::Resp {
    let sep = if path.contains('?') { '&' } else { '?' };
    srv.call(method, &format!("{path}{sep}tenant_id={}", w.tenant), &w.root, body)
        .await
}

async fn plugins_run_in_the_pass_and_misbehaving_ones_are_stopped(url: &str) {
    let (Some(threshold), Some(hostile)) = (wasm::plugin("threshold"), wasm::plugin("hostile")) else {
        return;
    };
    let srv = server(url).await;
    let w = world(&srv).await;

    // Uploads that are not plugins: a clear 422, nothing stored.
    for (body, says) in [
        (json!({ "component_base64": "%%%" }), "not base64"),
        (
            json!({ "component_base64": b64(b"\0asm\x01\0\0\0garbage") }),
            "not a TOD plugin",
        ),
        (
            json!({ "component_base64": b64(&threshold), "fire_after": 0 }),
            "fire_after",
        ),
        (
            json!({ "component_base64": b64(&threshold), "size": 1 }),
            "unknown field",
        ),
    ] {
        let r = call(&srv, &w, "POST", "/api/plugins", Some(body)).await;
        assert_eq!(r.status, 422, "{:?}", r.json);
        assert!(r.json["detail"].as_str().unwrap().contains(says), "{:?}", r.json);
    }
    assert_eq!(call(&srv, &w, "GET", "/api/plugins", None).await.json["total"], 0);

    let body = json!({ "component_base64": b64(&threshold), "config": { "threshold": "-70" },
                       "fire_after": 1, "clear_after": 1 });
    let r = call(&srv, &w, "POST", "/api/plugins", Some(body)).await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let weak = r.json.clone();
    assert_eq!(weak["name"], "Weak link");
    assert_eq!(weak["version"], "1.0.0");
    assert_eq!(weak["inputs"], json!(["links"]));
    assert_eq!(weak["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(weak["size_bytes"].as_i64().unwrap() as usize, threshold.len());
    assert_eq!(
        (weak["enabled"].clone(), weak["disabled_reason"].clone()),
        (json!(true), Value::Null)
    );
    let weak_id = weak["id"].as_str().unwrap().to_owned();
    let weak_path = format!("/api/plugins/{weak_id}");

    // An AP at Alpha with one client at -78 dBm.
    let (ap, cpe) = (&w.devices[0], &w.devices[1]);
    let now = Utc::now();
    let mac = client(7);
    deliver(&srv, &w, "cpe", vec![cpe_report(cpe, now - Duration::minutes(2), mac)]).await;
    deliver(
        &srv,
        &w,
        "ap",
        vec![ap_report(ap, 1, now - Duration::minutes(1), mac, -78)],
    )
    .await;

    // Assignments are checked: the site and sector must be the tenant's, the sector at the site.
    let bravo_sector = srv
        .call(
            "POST",
            &format!("/api/tenants/{}/sites/{}/sectors", w.tenant, w.sites[1]),
            &w.root,
            Some(json!({ "name": "Bravo North" })),
        )
        .await
        .json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let assign = format!("{weak_path}/assignments");
    for (body, status) in [
        (json!({ "sector_id": bravo_sector }), 422),
        (json!({ "site_id": w.sites[0], "sector_id": bravo_sector }), 422),
        (json!({ "site_id": uuid::Uuid::new_v4() }), 404),
    ] {
        let r = call(&srv, &w, "POST", &assign, Some(body)).await;
        assert_eq!(r.status, status, "{:?}", r.json);
    }
    let a = call(&srv, &w, "POST", &assign, Some(json!({ "site_id": w.sites[0] }))).await;
    assert_eq!(a.status, 201, "{:?}", a.json);
    assert_eq!(a.json["scope"], "site");
    let assignment = a.json["id"].as_str().unwrap().to_owned();

    // A pass raises one event at Alpha, about the link, under the assignment's id.
    let mut ev = SiteAlerts::with_host(srv.state.plugins.clone());
    let p = pass(&srv, &mut ev, now).await;
    assert_eq!((p.plugins, p.raised, p.failed, p.stopped), (1, 1, 0, 0), "{p:?}");
    let e = events(&srv, &w, 0).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0]["kind"], "plugin");
    assert_eq!(e[0]["rule_id"], assignment.as_str());
    assert_eq!(e[0]["ap_device_id"], ap.as_str());
    assert_eq!(e[0]["device_id"], cpe.as_str());
    assert_eq!(e[0]["state"], "active");
    assert!(
        e[0]["message"].as_str().unwrap().contains("-78 dBm below -70 dBm"),
        "{e:?}"
    );
    // Still breaching: counted, not raised again.
    let p = pass(&srv, &mut ev, now + Duration::minutes(5)).await;
    assert_eq!((p.raised, p.resolved), (0, 0), "{p:?}");
    assert_eq!(events(&srv, &w, 0).await.len(), 1);

    // Reconfigured below the signal: the open event resolves with the change, and nothing fires.
    let r = call(
        &srv,
        &w,
        "PUT",
        &weak_path,
        Some(json!({ "config": { "threshold": "-80" } })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["config"]["threshold"], "-80");
    assert_eq!(events(&srv, &w, 0).await[0]["state"], "resolved");
    let p = pass(&srv, &mut ev, now + Duration::minutes(10)).await;
    assert_eq!(p.raised, 0, "{p:?}");

    // A plugin that never returns, tenant-wide, next to the threshold plugin set back to -70.
    let bad = upload(&srv, &w, &hostile, json!({ "config": { "mode": "loop" } })).await;
    let bad_path = format!("/api/plugins/{}", bad["id"].as_str().unwrap());
    assert_eq!(bad["inputs"], json!(["devices"]));
    let r = call(&srv, &w, "POST", &format!("{bad_path}/assignments"), Some(json!({}))).await;
    assert_eq!(
        (r.status, r.json["scope"].as_str()),
        (201, Some("tenant")),
        "{:?}",
        r.json
    );
    call(
        &srv,
        &w,
        "PUT",
        &weak_path,
        Some(json!({ "config": { "threshold": "-70" } })),
    )
    .await;
    let p = pass(&srv, &mut ev, now + Duration::minutes(15)).await;
    assert_eq!((p.plugins, p.stopped, p.raised), (2, 1, 1), "{p:?}");
    let stopped = call(&srv, &w, "GET", &bad_path, None).await.json;
    assert_eq!(stopped["enabled"], false);
    let reason = stopped["disabled_reason"].as_str().unwrap();
    assert!(reason.contains("fuel"), "{reason}");
    // The tenant's audit log says which plugin stopped and why, next to who uploaded it.
    let log = srv
        .call(
            "GET",
            &format!("/api/audit-logs?tenant_id={}&limit=50", w.tenant),
            &w.root,
            None,
        )
        .await;
    assert_eq!(log.status, 200, "{:?}", log.json);
    let actions: Vec<&str> = log
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"plugin.uploaded") && actions.contains(&"plugin.assigned"),
        "{actions:?}"
    );
    let stop = log
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "plugin.stopped")
        .expect("the stop is in the audit log");
    assert_eq!(stop["resource_id"], bad["id"]);
    assert!(stop["details"]["reason"].as_str().unwrap().contains("fuel"), "{stop}");
    // A stopped plugin is not run again until an operator enables it.
    let p = pass(&srv, &mut ev, now + Duration::minutes(20)).await;
    assert_eq!((p.plugins, p.stopped), (1, 0), "{p:?}");
    let r = call(
        &srv,
        &w,
        "PUT",
        &bad_path,
        Some(json!({ "enabled": true, "config": { "mode": "calm" } })),
    )
    .await;
    assert_eq!(
        (r.json["enabled"].clone(), r.json["disabled_reason"].clone()),
        (json!(true), Value::Null)
    );
    // Well-behaved now: its site finding names an id it was never shown, and is dropped.
    let p = pass(&srv, &mut ev, now + Duration::minutes(25)).await;
    assert_eq!((p.plugins, p.stopped, p.failed, p.raised), (2, 0, 0, 0), "{p:?}");

    // Other tenants see none of it.
    let other = srv
        .call("POST", "/api/tenants", &w.root, Some(json!({ "name": "Other WISP" })))
        .await
        .json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = srv
        .call("GET", &format!("{weak_path}?tenant_id={other}"), &w.root, None)
        .await;
    assert_eq!(r.status, 404);

    // Deleting resolves its events and the assignment goes with it.
    let list = call(&srv, &w, "GET", "/api/plugins", None).await.json;
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["assignments"].as_array().unwrap().len(), 1);
    let r = call(&srv, &w, "DELETE", &weak_path, None).await;
    assert_eq!(r.status, 204);
    assert!(events(&srv, &w, 0).await.iter().all(|e| e["state"] == "resolved"));
    assert_eq!(call(&srv, &w, "GET", &weak_path, None).await.status, 404);
    let p = pass(&srv, &mut ev, now + Duration::minutes(30)).await;
    assert_eq!((p.plugins, p.raised), (1, 0), "{p:?}");
}
on_both_backends!(plugins_run_in_the_pass_and_misbehaving_ones_are_stopped);

async fn backtests_replay_stored_history(url: &str) {
    let Some(threshold) = wasm::plugin("threshold") else {
        return;
    };
    let srv = server(url).await;
    let w = world(&srv).await;
    let (ap, cpe, third) = (&w.devices[0], &w.devices[1], &w.devices[2]);
    let mac = client(3);
    let end = Utc::now() - Duration::minutes(1);
    let start = end - Duration::minutes(120);
    // Two hours, a sample every 5 minutes: -60 dBm, then -80 dBm from minute 40 to 75, then
    // -60 again. The third device is offline from minute 30 to 55.
    deliver(&srv, &w, "cpe", vec![cpe_report(cpe, start, mac)]).await;
    let mut reports = Vec::new();
    for i in 0..=24u64 {
        let at = start + Duration::minutes(5 * i as i64);
        let dbm = if (8..=15).contains(&i) { -80 } else { -60 };
        reports.push(ap_report(ap, i + 1, at, mac, dbm));
        let status = if (6..=11).contains(&i) {
            PollStatus::Offline {
                reason: "timeout".into(),
            }
        } else {
            PollStatus::Online
        };
        reports.push(DeviceReport::new(third.parse().unwrap(), i + 1, at, status));
    }
    deliver(&srv, &w, "history", reports).await;

    let plugin = upload(
        &srv,
        &w,
        &threshold,
        json!({ "config": { "threshold": "-70" }, "fire_after": 2, "clear_after": 2 }),
    )
    .await;
    let path = format!("/api/plugins/{}/backtest", plugin["id"].as_str().unwrap());
    let window = json!({ "from": start, "to": end, "step_minutes": 5 });
    let r = call(&srv, &w, "POST", &path, Some(window.clone())).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let report = r.json;
    assert_eq!(report["evaluations"], 25);
    assert_eq!(report["failed"], Value::Null);
    // Eight weak samples, each the latest one at the step of its own time.
    assert_eq!(report["findings"], 8, "{report}");
    let alerts = report["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{report}");
    let fired: DateTime<Utc> = alerts[0]["fired_at"].as_str().unwrap().parse().unwrap();
    let resolved: DateTime<Utc> = alerts[0]["resolved_at"].as_str().unwrap().parse().unwrap();
    // Two hits (minutes 40 and 45) fire; two clean steps (80 and 85) resolve.
    assert_eq!(fired - start, Duration::minutes(45));
    assert_eq!(resolved - start, Duration::minutes(85));
    assert_eq!(alerts[0]["subject_kind"], "link");
    assert_eq!(alerts[0]["subject_id"], ap.as_str());
    assert_eq!(alerts[0]["cpe_device_id"], cpe.as_str());
    // Nothing was stored.
    assert!(events(&srv, &w, 0).await.is_empty());

    for (body, says) in [
        (json!({ "from": end, "to": start }), "to: before from"),
        (json!({ "from": start, "to": end + Duration::days(1) }), "future"),
        (
            json!({ "from": start - Duration::days(30), "to": end, "step_minutes": 1 }),
            "at most 2000",
        ),
        (json!({ "from": start, "to": end, "step_minutes": 0 }), "step_minutes"),
    ] {
        let r = call(&srv, &w, "POST", &path, Some(body)).await;
        assert_eq!(r.status, 422, "{:?}", r.json);
        assert!(r.json["detail"].as_str().unwrap().contains(says), "{:?}", r.json);
    }

    // A site rule, replayed the same way: more than zero devices offline at Alpha.
    let rules = format!("/api/tenants/{}/sites/{}/alert-rules", w.tenant, w.sites[0]);
    let rule = srv
        .call(
            "POST",
            &rules,
            &w.root,
            Some(
                json!({ "name": "Anything down", "rule_type": "device_offline_count", "threshold_value": 0,
                         "threshold_unit": "count", "fire_after": 1, "clear_after": 1, "enabled": false }),
            ),
        )
        .await;
    assert_eq!(rule.status, 201, "{:?}", rule.json);
    let r = srv
        .call(
            "POST",
            &format!("{rules}/{}/backtest", rule.json["id"].as_str().unwrap()),
            &w.root,
            Some(window),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let alerts = r.json["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{:?}", r.json);
    assert_eq!(alerts[0]["subject_kind"], "site");
    let fired: DateTime<Utc> = alerts[0]["fired_at"].as_str().unwrap().parse().unwrap();
    let resolved: DateTime<Utc> = alerts[0]["resolved_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(fired - start, Duration::minutes(30));
    assert_eq!(resolved - start, Duration::minutes(60));
    assert!(
        alerts[0]["message"]
            .as_str()
            .unwrap()
            .contains("1 of 3 devices offline"),
        "{alerts:?}"
    );

    let fading = srv
        .call(
            "POST",
            &rules,
            &w.root,
            Some(
                json!({ "name": "Fading", "rule_type": "signal_degradation", "threshold_value": 5,
                         "threshold_unit": "dBm" }),
            ),
        )
        .await;
    let r = srv
        .call(
            "POST",
            &format!("{rules}/{}/backtest", fading.json["id"].as_str().unwrap()),
            &w.root,
            Some(json!({ "from": start, "to": end })),
        )
        .await;
    // Two hours of samples are not two weeks: the rule replays and finds nothing to judge.
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["evaluations"], 25, "{:?}", r.json);
    assert_eq!(r.json["alerts"], json!([]), "{:?}", r.json);
}
on_both_backends!(backtests_replay_stored_history);
