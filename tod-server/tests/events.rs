//! The device event log over real HTTP on SQLite and PostgreSQL: reachability changes, reboots
//! and version changes found at ingest, link state changes from discovery, one timeline newest
//! first with its filters; a redelivered batch and an out-of-order report add nothing.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::TestServer;
use common::fleet::{World, ap_report, cpe_report, deliver, world};
use serde_json::json;
use tod_core::MacAddr;
use tod_core::telemetry::{DeviceReport, PollStatus, SystemInfo, WirelessPackage};

fn seen(w: &World, dev: usize, seq: u64, at: DateTime<Utc>, uptime: u64, version: &str) -> DeviceReport {
    let mut r = DeviceReport::new(w.devices[dev].parse().unwrap(), seq, at, PollStatus::Online);
    r.system = Some(SystemInfo {
        routeros_version: version.into(),
        board_name: Some("RB912UAG-5HPnD".into()),
        architecture: None,
        serial_number: None,
        firmware_version: None,
        uptime_secs: Some(uptime),
        wireless_package: WirelessPackage::Wireless,
    });
    r
}

async fn the_event_log_tells_what_happened_to_devices_and_links(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let q = format!("?tenant_id={}", w.tenant);
    let t0 = Utc::now() - Duration::minutes(30);
    let at = |m: i64| t0 + Duration::minutes(m);
    let batch = vec![
        seen(&w, 0, 1, at(0), 86_400, "7.15"),
        seen(&w, 0, 2, at(1), 86_460, "7.15"),
        DeviceReport::new(
            w.devices[0].parse().unwrap(),
            3,
            at(2),
            PollStatus::Offline {
                reason: "timeout".into(),
            },
        ),
        seen(&w, 0, 4, at(3), 90, "7.16"),
    ];
    deliver(&srv, &w, "log-1", batch.clone()).await;
    deliver(&srv, &w, "log-1", batch).await;
    // An older report delivered late changes nothing.
    deliver(&srv, &w, "log-2", vec![seen(&w, 0, 5, at(-5), 10, "7.14")]).await;
    let mac: MacAddr = "4C:5E:0C:00:00:21".parse().unwrap();
    deliver(&srv, &w, "log-3", vec![cpe_report(&w.devices[2], at(4), mac)]).await;
    deliver(&srv, &w, "log-4", vec![ap_report(&w.devices[1], 1, at(5), mac, -61)]).await;

    let r = srv
        .call(
            "GET",
            &format!("/api/events{q}&device_id={}", w.devices[0]),
            &w.root,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let got: Vec<(String, Option<String>, String)> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["from_value"].as_str().map(str::to_owned),
                e["to_value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let s = |v: &str| v.to_owned();
    assert_eq!(
        got,
        [
            (s("reboot"), Some(s("86460")), s("90")),
            (s("status"), Some(s("offline")), s("online")),
            (s("version"), Some(s("7.15")), s("7.16")),
            (s("status"), Some(s("online")), s("offline")),
            (s("status"), Some(s("unknown")), s("online")),
        ],
        "newest first, once each"
    );
    assert_eq!(r.json["total"], 5);

    let reboot = srv
        .call("GET", &format!("/api/events{q}&kind=reboot"), &w.root, None)
        .await;
    assert_eq!(
        reboot.json["items"][0]["message"],
        "dev-0 restarted (uptime 1d0h before, 1m30s after)"
    );
    assert_eq!(reboot.json["items"][0]["hostname"], "dev-0");
    let links = srv
        .call("GET", &format!("/api/events{q}&kind=link_state"), &w.root, None)
        .await;
    let link = &links.json["items"][0];
    assert_eq!(links.json["total"], 1, "{:?}", links.json);
    assert_eq!(
        (&link["device_id"], &link["related_device_id"]),
        (&json!(w.devices[1]), &json!(w.devices[2]))
    );
    let to = link["to_value"].as_str().unwrap();
    assert_eq!(link["message"], format!("Link dev-1 -> dev-2: new -> {to}"));
    // A link event is found from either end.
    let cpe = srv
        .call(
            "GET",
            &format!("/api/events{q}&device_id={}&kind=link_state", w.devices[2]),
            &w.root,
            None,
        )
        .await;
    assert_eq!(cpe.json["total"], 1);

    // The time window and paging.
    let window = srv
        .call(
            "GET",
            &format!(
                "/api/events{q}&start={}&end={}",
                at(2)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    .replace('+', "%2B"),
                at(3)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    .replace('+', "%2B")
            ),
            &w.root,
            None,
        )
        .await;
    assert_eq!(window.json["total"], 1, "{:?}", window.json);
    let page = srv
        .call("GET", &format!("/api/events{q}&limit=2&offset=1"), &w.root, None)
        .await;
    assert_eq!(page.json["items"].as_array().unwrap().len(), 2);
    assert!(page.json["total"].as_i64().unwrap() >= 7, "{:?}", page.json);
    for bad in ["kind=party", "limit=0", "limit=501", "offset=-1"] {
        let r = srv.call("GET", &format!("/api/events{q}&{bad}"), &w.root, None).await;
        assert_eq!(r.status, 422, "{bad}: {:?}", r.json);
    }
    let other = srv
        .call("POST", "/api/tenants", &w.root, Some(json!({ "name": "Other WISP" })))
        .await;
    let r = srv
        .call(
            "GET",
            &format!(
                "/api/events?tenant_id={}&device_id={}",
                other.json["id"].as_str().unwrap(),
                w.devices[0]
            ),
            &w.root,
            None,
        )
        .await;
    assert_eq!(r.status, 404);
}
on_both_backends!(the_event_log_tells_what_happened_to_devices_and_links);
