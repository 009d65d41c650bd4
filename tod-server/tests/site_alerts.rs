//! Site and sector alert rules over real HTTP on SQLite and PostgreSQL: the CRUD of the reference
//! with its validation and ownership checks, and evaluation passes (run here with an explicit
//! clock) that raise, count, resolve and re-raise events from what an agent delivered.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::TestServer;
use common::fleet::{World, ap_report, cpe_report, delete_registrations_before, deliver, world};
use serde_json::{Value, json};
use tod_core::MacAddr;
use tod_core::telemetry::{DeviceReport, PollStatus, Registration};
use tod_server::site_alerts::{Pass, SiteAlerts};

/// A server whose own evaluator stays out of the way (the tests drive passes themselves).
async fn server(url: &str) -> TestServer {
    TestServer::start_with(url, |s| {
        s.auth_rate_limit = 1000;
        s.alert_evaluation_interval_secs = 86_400;
    })
    .await
}

fn rules_path(w: &World, site: usize) -> String {
    format!("/api/tenants/{}/sites/{}/alert-rules", w.tenant, w.sites[site])
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

async fn badge(srv: &TestServer, w: &World) -> i64 {
    let r = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/alert-events/count", w.tenant),
            &w.root,
            None,
        )
        .await;
    r.json["count"].as_i64().unwrap()
}

async fn pass(srv: &TestServer, ev: &mut SiteAlerts, at: DateTime<Utc>) -> Pass {
    ev.pass(srv.state.store.as_ref(), at).await.expect("pass")
}

async fn sector(srv: &TestServer, w: &World, site: usize, name: &str) -> String {
    let r = srv
        .call(
            "POST",
            &format!("/api/tenants/{}/sites/{}/sectors", w.tenant, w.sites[site]),
            &w.root,
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    r.json["id"].as_str().unwrap().to_owned()
}

async fn rules_are_validated_owned_and_kept(url: &str) {
    let srv = server(url).await;
    let w = world(&srv).await;
    let path = rules_path(&w, 0);
    let north = sector(&srv, &w, 0, "North").await;
    let bravo_sector = sector(&srv, &w, 1, "Bravo North").await;

    let created = srv
        .call(
            "POST",
            &path,
            &w.root,
            Some(json!({ "name": "  Tower down  ", "rule_type": "device_offline_count",
                         "threshold_value": 2, "threshold_unit": "count", "description": "two or more" })),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    let r = &created.json;
    assert_eq!(r["name"], "Tower down", "names are trimmed");
    assert_eq!(r["site_id"], w.sites[0].as_str());
    assert_eq!(r["tenant_id"], w.tenant.as_str());
    assert_eq!(r["sector_id"], Value::Null);
    assert_eq!(r["enabled"], true);
    assert_eq!(r["threshold_value"], 2.0);
    assert_eq!(
        (r["fire_after"].as_u64(), r["clear_after"].as_u64()),
        (Some(2), Some(2))
    );
    let id = r["id"].as_str().unwrap().to_owned();

    let weak = srv
        .call(
            "POST",
            &path,
            &w.root,
            Some(
                json!({ "name": "Weak north", "rule_type": "sector_signal_avg", "threshold_value": -75,
                         "threshold_unit": "dBm", "sector_id": north, "fire_after": 1 }),
            ),
        )
        .await;
    assert_eq!(weak.status, 201, "{:?}", weak.json);

    // The reference's validators, and the checks it lacked.
    let bad = [
        (
            json!({ "rule_type": "device_offline_count", "threshold_value": 1, "threshold_unit": "count" }),
            "name",
        ),
        (
            json!({ "name": "x", "rule_type": "cpu", "threshold_value": 1, "threshold_unit": "count" }),
            "rule_type",
        ),
        (
            json!({ "name": "x", "rule_type": "device_offline_percent", "threshold_value": 10, "threshold_unit": "dBm" }),
            "threshold_unit",
        ),
        (
            json!({ "name": "x", "rule_type": "device_offline_percent", "threshold_value": 150, "threshold_unit": "percent" }),
            "threshold_value",
        ),
        (
            json!({ "name": "x", "rule_type": "sector_client_drop", "threshold_value": 50, "threshold_unit": "percent" }),
            "sector_id",
        ),
        (
            json!({ "name": "x", "rule_type": "sector_signal_avg", "threshold_value": -70, "threshold_unit": "dBm",
                 "sector_id": bravo_sector }),
            "sector_id",
        ),
        (
            json!({ "name": "x", "rule_type": "device_offline_count", "threshold_value": 1, "threshold_unit": "count",
                 "fire_after": 0 }),
            "fire_after",
        ),
        (
            json!({ "name": "", "rule_type": "device_offline_count", "threshold_value": 1, "threshold_unit": "count" }),
            "name",
        ),
    ];
    for (body, field) in bad {
        let r = srv.call("POST", &path, &w.root, Some(body.clone())).await;
        assert_eq!(r.status, 422, "{body} -> {:?}", r.json);
        assert!(
            r.json["detail"].as_str().unwrap().starts_with(field),
            "{body} -> {:?}",
            r.json
        );
    }
    let unknown = srv
        .call(
            "POST",
            &path,
            &w.root,
            Some(
                json!({ "name": "x", "rule_type": "device_offline_count", "threshold_value": 1,
                         "threshold_unit": "count", "colour": "red" }),
            ),
        )
        .await;
    assert_eq!(unknown.status, 422, "unknown fields are refused");
    // A sector that is nobody's, and a site that is not the tenant's.
    let nobody = "00000000-0000-0000-0000-000000000000";
    let r = srv
        .call(
            "POST",
            &path,
            &w.root,
            Some(
                json!({ "name": "x", "rule_type": "sector_signal_avg", "threshold_value": -70,
                         "threshold_unit": "dBm", "sector_id": nobody }),
            ),
        )
        .await;
    assert_eq!(r.status, 404);
    let other = srv
        .call("POST", "/api/tenants", &w.root, Some(json!({ "name": "Other WISP" })))
        .await;
    let other_site = srv
        .call(
            "POST",
            &format!("/api/tenants/{}/sites", other.json["id"].as_str().unwrap()),
            &w.root,
            Some(json!({ "name": "Theirs" })),
        )
        .await;
    let foreign = format!(
        "/api/tenants/{}/sites/{}/alert-rules",
        w.tenant,
        other_site.json["id"].as_str().unwrap()
    );
    let r = srv
        .call(
            "POST",
            &foreign,
            &w.root,
            Some(json!({ "name": "x", "rule_type": "device_offline_count", "threshold_value": 1, "threshold_unit": "count" })),
        )
        .await;
    assert_eq!(r.status, 404, "another tenant's site");
    assert_eq!(srv.call("GET", &foreign, &w.root, None).await.status, 404);

    // List (newest first), the sector filter, one rule.
    let list = srv.call("GET", &path, &w.root, None).await;
    assert_eq!(list.json["total"], 2);
    assert_eq!(list.json["items"][0]["name"], "Weak north");
    let only = srv
        .call("GET", &format!("{path}?sector_id={north}"), &w.root, None)
        .await;
    assert_eq!(only.json["total"], 1);
    assert_eq!(only.json["items"][0]["sector_id"], north.as_str());
    let one = srv.call("GET", &format!("{path}/{id}"), &w.root, None).await;
    assert_eq!(one.json, created.json);
    assert_eq!(
        srv.call("GET", &format!("{}/{id}", rules_path(&w, 1)), &w.root, None)
            .await
            .status,
        404,
        "a rule is found only under its own site"
    );

    // Partial update; an empty body changes nothing; an invalid change is refused whole.
    let same = srv.call("PUT", &format!("{path}/{id}"), &w.root, Some(json!({}))).await;
    assert_eq!(same.json, created.json);
    let changed = srv
        .call(
            "PUT",
            &format!("{path}/{id}"),
            &w.root,
            Some(json!({ "threshold_value": 3, "description": null, "clear_after": 4 })),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.json);
    assert_eq!(changed.json["threshold_value"], 3.0);
    assert_eq!(changed.json["description"], Value::Null);
    assert_eq!(changed.json["clear_after"], 4);
    assert_eq!(changed.json["name"], "Tower down");
    let r = srv
        .call(
            "PUT",
            &format!("{path}/{id}"),
            &w.root,
            Some(json!({ "threshold_unit": "percent" })),
        )
        .await;
    assert_eq!(r.status, 422, "a count rule cannot take a percent unit");

    assert_eq!(
        srv.call("DELETE", &format!("{path}/{id}"), &w.root, None).await.status,
        204
    );
    assert_eq!(
        srv.call("GET", &format!("{path}/{id}"), &w.root, None).await.status,
        404
    );
    assert_eq!(
        srv.call("DELETE", &format!("{path}/{id}"), &w.root, None).await.status,
        404
    );
    // Deleting the sector takes its rules with it.
    let r = srv
        .call(
            "DELETE",
            &format!("/api/tenants/{}/sites/{}/sectors/{north}", w.tenant, w.sites[0]),
            &w.root,
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(srv.call("GET", &path, &w.root, None).await.json["total"], 0);
}
on_both_backends!(rules_are_validated_owned_and_kept);

async fn offline_rules_raise_count_and_resolve_with_hysteresis(url: &str) {
    let srv = server(url).await;
    let w = world(&srv).await;
    let path = rules_path(&w, 0);
    let rule = srv
        .call(
            "POST",
            &path,
            &w.root,
            Some(json!({ "name": "Any down", "rule_type": "device_offline_count",
                         "threshold_value": 0, "threshold_unit": "count" })),
        )
        .await;
    let rule_id = rule.json["id"].as_str().unwrap().to_owned();
    let t0 = Utc::now();
    let report = |i: usize, online: bool| {
        let status = if online {
            PollStatus::Online
        } else {
            PollStatus::Offline {
                reason: "timeout".into(),
            }
        };
        DeviceReport::new(w.devices[i].parse().unwrap(), 1, Utc::now(), status)
    };
    deliver(&srv, &w, "all-up", (0..3).map(|i| report(i, true)).collect()).await;
    let mut ev = SiteAlerts::new();
    let p = pass(&srv, &mut ev, t0).await;
    assert_eq!((p.rules, p.raised, p.failed), (1, 0, 0));

    // One device down: the first pass is a pending hit, the second raises one critical event.
    deliver(&srv, &w, "one-down", vec![report(1, false)]).await;
    assert_eq!(pass(&srv, &mut ev, t0 + Duration::minutes(5)).await.raised, 0);
    assert!(events(&srv, &w, 0).await.is_empty(), "no event on a single pass");
    assert_eq!(pass(&srv, &mut ev, t0 + Duration::minutes(10)).await.raised, 1);
    let list = events(&srv, &w, 0).await;
    assert_eq!(list.len(), 1);
    let e = &list[0];
    assert_eq!(e["rule_id"], rule_id.as_str());
    assert_eq!(e["kind"], "device_offline_count");
    assert_eq!(e["severity"], "critical");
    assert_eq!(e["state"], "active");
    assert_eq!(e["consecutive_hits"], 2);
    assert!(e["message"].as_str().unwrap().contains("1 of 3 devices offline"), "{e}");
    assert_eq!(badge(&srv, &w).await, 1);
    // Still down: the same event counts the pass.
    assert_eq!(pass(&srv, &mut ev, t0 + Duration::minutes(15)).await.raised, 0);
    let list = events(&srv, &w, 0).await;
    assert_eq!((list.len(), list[0]["consecutive_hits"].as_i64()), (1, Some(3)));

    // Back up: one clean pass keeps it, the second resolves it.
    deliver(&srv, &w, "back-up", vec![report(1, true)]).await;
    assert_eq!(pass(&srv, &mut ev, t0 + Duration::minutes(20)).await.resolved, 0);
    assert_eq!(pass(&srv, &mut ev, t0 + Duration::minutes(25)).await.resolved, 1);
    let list = events(&srv, &w, 0).await;
    assert_eq!(list[0]["state"], "resolved");
    assert_eq!(list[0]["resolved_by"], Value::Null, "it cleared by itself");
    assert_eq!(badge(&srv, &w).await, 0);
    // The live stream carried the raise and the resolve, once each.
    let tenant: tod_core::TenantId = w.tenant.parse().unwrap();
    let stream = srv.state.store.stream_after(tenant, 0, 500).await.unwrap();
    let site_events: Vec<(&str, Value)> = stream
        .iter()
        .filter(|e| e.kind.starts_with("site_alert."))
        .map(|e| (e.kind.as_str(), serde_json::from_str::<Value>(&e.data).unwrap()))
        .collect();
    assert_eq!(
        site_events.iter().map(|e| e.0).collect::<Vec<_>>(),
        ["site_alert.raised", "site_alert.resolved"],
        "{stream:?}"
    );
    assert_eq!(site_events[0].1["rule_id"], rule_id.as_str());
    assert_eq!(site_events[0].1["event_id"], list[0]["id"]);

    // Down again and resolved by hand: the rule needs two fresh hits before it raises again.
    deliver(&srv, &w, "down-again", vec![report(2, false)]).await;
    pass(&srv, &mut ev, t0 + Duration::minutes(30)).await;
    assert_eq!(pass(&srv, &mut ev, t0 + Duration::minutes(35)).await.raised, 1);
    let active = events(&srv, &w, 0).await;
    let active_id = active[0]["id"].as_str().unwrap().to_owned();
    let r = srv
        .call(
            "POST",
            &format!("/api/tenants/{}/alert-events/{active_id}/resolve", w.tenant),
            &w.root,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_ne!(r.json["resolved_by"], Value::Null);
    assert_eq!(pass(&srv, &mut ev, t0 + Duration::minutes(40)).await.raised, 0);
    assert_eq!(pass(&srv, &mut ev, t0 + Duration::minutes(45)).await.raised, 1);
    assert_eq!(badge(&srv, &w).await, 1);

    // A new evaluator (another replica took the lease) restores the open event, raises nothing
    // twice, and disabling the rule resolves the event at once.
    let mut other = SiteAlerts::new();
    let p = pass(&srv, &mut other, t0 + Duration::minutes(50)).await;
    assert_eq!((p.raised, p.resolved), (0, 0));
    assert_eq!(
        events(&srv, &w, 0)
            .await
            .iter()
            .filter(|e| e["state"] == "active")
            .count(),
        1
    );
    let r = srv
        .call(
            "PUT",
            &format!("{path}/{rule_id}"),
            &w.root,
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_eq!(r.json["enabled"], false);
    assert_eq!(badge(&srv, &w).await, 0, "disabling a rule resolves its events");
    let p = pass(&srv, &mut other, t0 + Duration::minutes(55)).await;
    assert_eq!((p.rules, p.raised), (0, 0));
    assert_eq!(events(&srv, &w, 0).await.len(), 3, "history is kept");
}
on_both_backends!(offline_rules_raise_count_and_resolve_with_hysteresis);

fn client(i: u8) -> MacAddr {
    format!("02:00:00:00:10:{i:02x}").parse().unwrap()
}

/// An AP report with several clients at one signal level.
fn ap_with_clients(device: &str, seq: u64, at: DateTime<Utc>, clients: &[MacAddr], dbm: i16) -> DeviceReport {
    let mut r = ap_report(device, seq, at, clients[0], dbm);
    r.registrations = Some(
        clients
            .iter()
            .map(|mac| {
                let mut g = Registration::new("wlan1", *mac);
                g.signal_dbm = Some(dbm);
                g
            })
            .collect(),
    );
    r
}

/// Puts the world's first device in a new sector "North" with a weak-signal rule (under -72 dBm)
/// and a client-drop rule (over 50 %), both firing and clearing at once; returns the sector.
async fn north_with_sector_rules(srv: &TestServer, w: &World) -> String {
    let north = sector(srv, w, 0, "North").await;
    let r = srv
        .call(
            "PUT",
            &format!("/api/tenants/{}/devices/{}/sector", w.tenant, w.devices[0]),
            &w.root,
            Some(json!({ "sector_id": north })),
        )
        .await;
    assert_eq!(r.status, 204);
    let path = rules_path(w, 0);
    for body in [
        json!({ "name": "Weak clients", "rule_type": "sector_signal_avg", "threshold_value": -72,
                "threshold_unit": "dBm", "sector_id": north, "fire_after": 1, "clear_after": 1 }),
        json!({ "name": "Clients lost", "rule_type": "sector_client_drop", "threshold_value": 50,
                "threshold_unit": "percent", "sector_id": north, "fire_after": 1, "clear_after": 1 }),
    ] {
        assert_eq!(srv.call("POST", &path, &w.root, Some(body)).await.status, 201);
    }
    north
}

async fn sector_rules_judge_recent_registrations(url: &str) {
    let srv = server(url).await;
    let w = world(&srv).await;
    let north = north_with_sector_rules(&srv, &w).await;
    let now = Utc::now();
    let all: Vec<MacAddr> = (1..=4).map(client).collect();
    // An hour ago the sector had four clients at -65 dBm; now one is left, at -80 dBm.
    deliver(
        &srv,
        &w,
        "before",
        vec![ap_with_clients(
            &w.devices[0],
            1,
            now - Duration::minutes(65),
            &all,
            -65,
        )],
    )
    .await;
    deliver(
        &srv,
        &w,
        "now",
        vec![ap_with_clients(
            &w.devices[0],
            2,
            now - Duration::minutes(1),
            &all[..1],
            -80,
        )],
    )
    .await;
    let mut ev = SiteAlerts::new();
    let p = pass(&srv, &mut ev, now).await;
    assert_eq!((p.rules, p.raised, p.failed), (2, 2, 0));
    let list = events(&srv, &w, 0).await;
    let by_kind = |k: &str| list.iter().find(|e| e["kind"] == k).cloned().unwrap();
    let weak = by_kind("sector_signal_avg");
    assert_eq!(weak["sector_id"], north.as_str());
    assert_eq!(weak["severity"], "warning");
    assert!(weak["message"].as_str().unwrap().contains("-80.0 dBm"), "{weak}");
    let lost = by_kind("sector_client_drop");
    assert!(lost["message"].as_str().unwrap().contains("75"), "{lost}");

    // Twenty minutes later the clients are back and strong: both clear (clear_after 1).
    let later = now + Duration::minutes(20);
    deliver(
        &srv,
        &w,
        "later",
        vec![ap_with_clients(
            &w.devices[0],
            3,
            later - Duration::minutes(1),
            &all,
            -60,
        )],
    )
    .await;
    let p = pass(&srv, &mut ev, later).await;
    assert_eq!((p.raised, p.resolved), (0, 2), "{p:?}");
    assert_eq!(badge(&srv, &w).await, 0);
}
on_both_backends!(sector_rules_judge_recent_registrations);

/// The windows are the evaluator's: shrunk ten times (a world ten times faster), the same rules
/// see a minute of registrations against the minute that ended six minutes ago.
async fn sector_windows_are_the_evaluators(url: &str) {
    let srv = server(url).await;
    let w = world(&srv).await;
    north_with_sector_rules(&srv, &w).await;
    let now = Utc::now();
    let all: Vec<MacAddr> = (1..=4).map(client).collect();
    let before = ap_with_clients(&w.devices[0], 1, now - Duration::seconds(390), &all, -65);
    deliver(&srv, &w, "before", vec![before]).await;
    let recent = ap_with_clients(&w.devices[0], 2, now - Duration::seconds(20), &all[..1], -80);
    deliver(&srv, &w, "now", vec![recent]).await;
    // The product's windows: ten minutes average -68 dBm over five readings, and an hour ago
    // there was nothing to lose.
    let p = pass(&srv, &mut SiteAlerts::new(), now).await;
    assert_eq!((p.rules, p.raised, p.failed), (2, 0, 0), "{p:?}");
    let fast = tod_core::alerts::SnapshotWindows::scaled(10.0);
    let p = pass(&srv, &mut SiteAlerts::new().with_windows(fast), now).await;
    assert_eq!((p.rules, p.raised, p.failed), (2, 2, 0), "{p:?}");
    let list = events(&srv, &w, 0).await;
    let kinds: Vec<&str> = list.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(
        kinds.contains(&"sector_signal_avg") && kinds.contains(&"sector_client_drop"),
        "{list:?}"
    );
}
on_both_backends!(sector_windows_are_the_evaluators);

async fn signal_degradation_names_the_link(url: &str) {
    let srv = server(url).await;
    let w = world(&srv).await;
    let (ap, cpe) = (&w.devices[0], &w.devices[1]);
    let mac = client(9);
    let now = Utc::now();
    // Two weeks of an AP's view of one client: -60 dBm the week before last, -68 dBm last week.
    let mut seq = 0;
    for (days_ago, dbm) in [(12i64, -60i16), (3, -68)] {
        let reports: Vec<DeviceReport> = (0..14)
            .map(|h| {
                seq += 1;
                ap_report(ap, seq, now - Duration::days(days_ago) + Duration::hours(h), mac, dbm)
            })
            .collect();
        deliver(&srv, &w, &format!("week-{days_ago}"), reports).await;
    }
    deliver(&srv, &w, "cpe", vec![cpe_report(cpe, now - Duration::minutes(2), mac)]).await;
    deliver(
        &srv,
        &w,
        "ap-now",
        vec![ap_report(ap, 1000, now - Duration::minutes(1), mac, -68)],
    )
    .await;
    let links = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/sites/{}/links", w.tenant, w.sites[0]),
            &w.root,
            None,
        )
        .await;
    assert_eq!(links.json.as_array().map(Vec::len), Some(1), "{:?}", links.json);

    let r = srv
        .call(
            "POST",
            &rules_path(&w, 0),
            &w.root,
            Some(
                json!({ "name": "Fading", "rule_type": "signal_degradation", "threshold_value": 5,
                         "threshold_unit": "dBm", "fire_after": 1 }),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let mut ev = SiteAlerts::new();
    let p = pass(&srv, &mut ev, now).await;
    assert_eq!((p.raised, p.failed), (1, 0), "{p:?}");
    let e = events(&srv, &w, 0).await.remove(0);
    assert_eq!(e["kind"], "signal_degradation");
    assert_eq!(e["ap_device_id"], ap.as_str());
    assert_eq!(e["device_id"], cpe.as_str());
    assert!(e["message"].as_str().unwrap().contains("degraded 8.0 dB"), "{e}");
}
on_both_backends!(signal_degradation_names_the_link);

/// A link the trend detector judges at `t1`, between the world's first two devices (AP, CPE): the
/// CPE known `known_days` before (so every AP report resolves to it and the link is active), then
/// fourteen hourly readings of it by the AP at each (days back, dBm), and one a minute before
/// `t1` at the last level.
async fn fading_link(
    srv: &TestServer,
    w: &World,
    t1: DateTime<Utc>,
    mac: MacAddr,
    known_days: i64,
    weeks: &[(i64, i16)],
) {
    let (ap, cpe) = (&w.devices[0], &w.devices[1]);
    deliver(
        srv,
        w,
        "cpe",
        vec![cpe_report(cpe, t1 - Duration::days(known_days), mac)],
    )
    .await;
    let mut seq = 0;
    for (days_ago, dbm) in weeks {
        let reports: Vec<DeviceReport> = (0..14)
            .map(|h| {
                seq += 1;
                ap_report(ap, seq, t1 - Duration::days(*days_ago) + Duration::hours(h), mac, *dbm)
            })
            .collect();
        deliver(srv, w, &format!("trend-{days_ago}"), reports).await;
    }
    let last = weeks.last().map_or(-60, |(_, dbm)| *dbm);
    deliver(
        srv,
        w,
        "ap-t1",
        vec![ap_report(ap, 100, t1 - Duration::minutes(1), mac, last)],
    )
    .await;
}

/// The fleet-wide trend detector (no rule): one `signal_trend` event per fading link, not raised
/// twice, handed over to a site's own `signal_degradation` rule, and resolved when the signal
/// recovers — with its raise and resolution in the live stream.
async fn the_trend_detector_reports_a_fading_link_once_and_clears_it(url: &str) {
    use tod_core::signal::TrendConfig;
    use tod_server::store::TrendPass;
    let srv = server(url).await;
    let w = world(&srv).await;
    let (ap, cpe) = (&w.devices[0], &w.devices[1]);
    let mac = client(7);
    let t1 = Utc::now() - Duration::hours(2);
    fading_link(&srv, &w, t1, mac, 15, &[(12, -60), (3, -67)]).await;
    let store = srv.state.store.clone();
    let cfg = TrendConfig::default();
    let head = store.stream_head(w.tenant.parse().unwrap()).await.unwrap();

    let p = store.detect_trends(t1, &cfg).await.unwrap();
    assert_eq!(
        p,
        TrendPass {
            links: 1,
            raised: 1,
            resolved: 0
        }
    );
    let active: Vec<Value> = events(&srv, &w, 0)
        .await
        .into_iter()
        .filter(|e| e["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["kind"], "signal_trend");
    assert_eq!(
        (active[0]["ap_device_id"].as_str(), active[0]["device_id"].as_str()),
        (Some(ap.as_str()), Some(cpe.as_str()))
    );
    assert!(active[0]["rule_id"].is_null());
    let message = active[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("dev-1: Signal degraded 7.0 dB week over week (from -60 dBm to -67 dBm)"),
        "{message}"
    );
    assert_eq!(
        store.detect_trends(t1, &cfg).await.unwrap().raised,
        0,
        "still fading: no second event"
    );

    // A site with its own signal_degradation rule is judged by it: the detector steps back.
    let rule = srv
        .call(
            "POST",
            &rules_path(&w, 0),
            &w.root,
            Some(json!({ "name": "Fading", "rule_type": "signal_degradation", "threshold_value": 5, "threshold_unit": "dBm" })),
        )
        .await;
    assert_eq!(rule.status, 201, "{:?}", rule.json);
    assert_eq!(
        store.detect_trends(t1, &cfg).await.unwrap(),
        TrendPass {
            links: 0,
            raised: 0,
            resolved: 1
        }
    );
    let r = srv
        .call(
            "DELETE",
            &format!("{}/{}", rules_path(&w, 0), rule.json["id"].as_str().unwrap()),
            &w.root,
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(store.detect_trends(t1, &cfg).await.unwrap().raised, 1);

    // The signal comes back: forty readings at -55 dBm lift last week's mean above the clear line.
    let recovery: Vec<DeviceReport> = (0..40)
        .map(|m| ap_report(ap, 200 + m, t1 + Duration::minutes(m as i64 + 1), mac, -55))
        .collect();
    deliver(&srv, &w, "recovery", recovery).await;
    // The weeks are whole hours, closed ten minutes: these readings count once their hour has.
    let now = t1 + Duration::minutes(115);
    assert_eq!(
        store.detect_trends(now, &cfg).await.unwrap(),
        TrendPass {
            links: 1,
            raised: 0,
            resolved: 1
        }
    );
    assert_eq!(badge(&srv, &w).await, 0);

    let stream = store.stream_after(w.tenant.parse().unwrap(), head, 100).await.unwrap();
    let trend: Vec<(String, Value)> = stream
        .iter()
        .map(|e| (e.kind.clone(), serde_json::from_str::<Value>(&e.data).unwrap()))
        .filter(|(_, d)| d["kind"] == "signal_trend")
        .collect();
    let kinds: Vec<&str> = trend.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "site_alert.raised",
            "site_alert.resolved",
            "site_alert.raised",
            "site_alert.resolved"
        ]
    );
    assert_eq!(trend[1].1["reason"], "link_inactive");
    assert_eq!(trend[3].1["reason"], "cleared");
    assert_eq!(trend[3].1["device_id"], cpe.as_str());
}
on_both_backends!(the_trend_detector_reports_a_fading_link_once_and_clears_it);

/// A `signal_degradation` rule backtests like the other kinds: each step judges the two weeks of
/// whole hours before it, from the hourly sums where they are summed and the registrations
/// elsewhere, 0 dBm ("no reading") left out either way — so the replay is the same before and
/// after the sums are made, and still the same with the old registrations gone (the sums are
/// what is read). Plugins get the same trend per link, and a live pass judges by it too.
async fn signal_degradation_backtests_over_the_hourly_sums(url: &str) {
    use tod_server::store::trend_end;
    let srv = server(url).await;
    let w = world(&srv).await;
    let (ap, cpe) = (&w.devices[0], &w.devices[1]);
    let mac = client(5);
    let now = Utc::now();
    let base = trend_end(now) - Duration::hours(3);
    deliver(&srv, &w, "cpe", vec![cpe_report(cpe, base - Duration::days(15), mac)]).await;
    // -60 dBm ten days back, -68 dBm three days back: fourteen hourly readings each, and a 0 dBm
    // reading in each of those hours that must not count (counted, the drop would be 4 dB).
    let mut seq = 0;
    let mut reports = Vec::new();
    for (days, dbm) in [(10i64, -60i16), (3, -68)] {
        for h in 0..14 {
            let hour = base - Duration::days(days) + Duration::hours(h);
            for (minute, dbm) in [(7, dbm), (37, 0)] {
                seq += 1;
                reports.push(ap_report(ap, seq, hour + Duration::minutes(minute), mac, dbm));
            }
        }
    }
    // The link is up over the replayed hours: a reading every five minutes.
    for m in 0..36 {
        seq += 1;
        reports.push(ap_report(ap, seq, base + Duration::minutes(5 * m), mac, -68));
    }
    deliver(&srv, &w, "weeks", reports).await;
    let rule = srv
        .call(
            "POST",
            &rules_path(&w, 0),
            &w.root,
            Some(
                json!({ "name": "Fading", "rule_type": "signal_degradation", "threshold_value": 5,
                         "threshold_unit": "dBm", "fire_after": 1, "clear_after": 1 }),
            ),
        )
        .await;
    assert_eq!(rule.status, 201, "{:?}", rule.json);
    let path = format!("{}/{}/backtest", rules_path(&w, 0), rule.json["id"].as_str().unwrap());
    let window =
        json!({ "from": base + Duration::minutes(10), "to": base + Duration::minutes(170), "step_minutes": 10 });
    let replay = || async {
        let r = srv.call("POST", &path, &w.root, Some(window.clone())).await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        r.json
    };
    let report = replay().await;
    assert_eq!(report["evaluations"], 17, "{report}");
    let alerts = report["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{report}");
    assert_eq!(alerts[0]["subject_kind"], "link");
    assert_eq!(alerts[0]["subject_id"], ap.as_str());
    assert_eq!(alerts[0]["cpe_device_id"], cpe.as_str());
    let fired: DateTime<Utc> = alerts[0]["fired_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(fired, base + Duration::minutes(10));
    assert!(alerts[0]["resolved_at"].is_null(), "{report}");
    assert!(
        alerts[0]["message"].as_str().unwrap().contains("degraded 8.0 dB"),
        "{report}"
    );
    let store = srv.state.store.clone();
    let tenant = w.tenant.parse().unwrap();
    let cfg = tod_core::signal::TrendConfig::default();
    let key = tod_core::links::LinkKey {
        ap: ap.parse().unwrap(),
        cpe: cpe.parse().unwrap(),
    };
    let trends = store.link_trends(tenant, None, now, &cfg).await.unwrap();
    assert_eq!(trends.get(&key), Some(&8.0), "{trends:?}");

    // Sum every closed hour: the same replay, the same trend.
    let summed = store
        .rollup_signal(Utc::now(), std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert!(summed.caught_up && summed.hours >= 30 * 24, "{summed:?}");
    assert_eq!(replay().await, report);
    assert_eq!(store.link_trends(tenant, None, now, &cfg).await.unwrap(), trends);

    // With the registrations older than a day deleted behind the server's back, the weeks come
    // from the sums alone: nothing changes.
    let gone = delete_registrations_before(url, ap, now - Duration::days(1)).await;
    assert_eq!(gone, 56, "two weeks of readings, zeros included");
    assert_eq!(replay().await, report);
    assert_eq!(store.link_trends(tenant, None, now, &cfg).await.unwrap(), trends);
    assert_eq!(
        store
            .link_trends(tenant, Some(w.sites[1].parse().unwrap()), now, &cfg)
            .await
            .unwrap(),
        std::collections::HashMap::new(),
        "another site's links only"
    );
    // A live pass judges by the same trend: the link's AP last reported within the window.
    deliver(
        &srv,
        &w,
        "ap-now",
        vec![ap_report(ap, seq + 1, now - Duration::minutes(1), mac, -68)],
    )
    .await;
    let mut ev = SiteAlerts::new();
    let p = pass(&srv, &mut ev, now).await;
    assert_eq!((p.raised, p.failed), (1, 0), "{p:?}");
    let e = events(&srv, &w, 0).await.remove(0);
    assert_eq!(e["kind"], "signal_degradation");
    assert!(e["message"].as_str().unwrap().contains("degraded 8.0 dB"), "{e}");
}
on_both_backends!(signal_degradation_backtests_over_the_hourly_sums);

/// The detector's windows can stand a gap apart: the last week against the week two weeks before
/// it (a change over two weeks, which sees a slow drift that adjacent weeks miss). The store sums
/// the windows the config names, on both backends.
async fn trend_windows_a_gap_apart_are_summed_as_configured(url: &str) {
    use tod_core::signal::TrendConfig;
    use tod_server::store::TrendPass;
    let srv = server(url).await;
    let w = world(&srv).await;
    let mac = client(7);
    let t1 = Utc::now() - Duration::hours(2);
    // -60 dBm three weeks back, -67 dBm last week, nothing in the week between.
    fading_link(&srv, &w, t1, mac, 22, &[(19, -60), (3, -67)]).await;
    let store = srv.state.store.clone();
    let adjacent = TrendConfig::default();
    assert_eq!(
        store.detect_trends(t1, &adjacent).await.unwrap(),
        TrendPass {
            links: 1,
            raised: 0,
            resolved: 0
        },
        "week over week, the week before is empty: no verdict"
    );
    let two_weeks = TrendConfig {
        gap_secs: 7 * 86_400,
        ..adjacent
    };
    assert_eq!(store.detect_trends(t1, &two_weeks).await.unwrap().raised, 1);
    let active: Vec<Value> = events(&srv, &w, 0)
        .await
        .into_iter()
        .filter(|e| e["state"] == "active")
        .collect();
    let message = active[0]["message"].as_str().unwrap();
    assert!(
        message.contains("Signal degraded 7.0 dB over 2 weeks (from -60 dBm to -67 dBm)"),
        "{message}"
    );
}
on_both_backends!(trend_windows_a_gap_apart_are_summed_as_configured);
