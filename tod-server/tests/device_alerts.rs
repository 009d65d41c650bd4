//! Device alerts over real HTTP on SQLite and PostgreSQL: the default rules every tenant starts
//! with, rule CRUD with validation, and alerts raised and resolved by the reports an agent
//! delivers — hysteresis carried in the database from one batch (and one server) to the next,
//! redelivery harmless, backfilled alerts dated when they happened, acknowledge and silence.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::TestServer;
use common::fleet::{World, ap_report, deliver, world};
use serde_json::{Value, json};
use tod_core::MacAddr;
use tod_core::telemetry::{DeviceReport, PollStatus};

fn q(w: &World) -> String {
    format!("tenant_id={}", w.tenant)
}

async fn alerts(srv: &TestServer, w: &World, filter: &str) -> Value {
    let r = srv
        .call("GET", &format!("/api/alerts?{}&{filter}", q(w)), &w.root, None)
        .await;
    assert_eq!(r.status, 200, "{filter}: {:?}", r.json);
    r.json
}

async fn active(srv: &TestServer, w: &World) -> i64 {
    let r = srv
        .call("GET", &format!("/api/alerts/active-count?{}", q(w)), &w.root, None)
        .await;
    r.json["count"].as_i64().unwrap()
}

fn status_report(w: &World, i: usize, at: DateTime<Utc>, online: bool) -> DeviceReport {
    let status = if online {
        PollStatus::Online
    } else {
        PollStatus::Offline {
            reason: "connect timeout".into(),
        }
    };
    DeviceReport::new(w.devices[i].parse().unwrap(), 1, at, status)
}

async fn rules_start_with_the_defaults_and_are_validated(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let rules = format!("/api/alerts/rules?{}", q(&w));
    let list = srv.call("GET", &rules, &w.root, None).await;
    assert_eq!(list.status, 200, "{:?}", list.json);
    assert_eq!(list.json["total"], 6);
    let names: Vec<&str> = list.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "High CPU Usage",
        "Device Offline",
        "Wireless Signal Degraded",
        "Wireless CCQ Low",
    ] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert!(
        list.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["is_default"] == true)
    );
    // A super admin must name the tenant.
    assert_eq!(srv.call("GET", "/api/alerts/rules", &w.root, None).await.status, 422);

    let created = srv
        .call(
            "POST",
            &rules,
            &w.root,
            Some(
                json!({ "name": "AP weak", "metric": "signal_strength", "operator": "lt", "threshold": -70,
                         "duration_polls": 2, "severity": "critical", "device_id": w.devices[0] }),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    assert_eq!(created.json["device_id"], w.devices[0].as_str());
    assert_eq!(created.json["is_default"], false);
    let id = created.json["id"].as_str().unwrap().to_owned();

    let base = json!({ "name": "x", "metric": "cpu_load", "operator": "gt", "threshold": 50 });
    for (change, field) in [
        (json!({ "metric": "bandwidth" }), "metric"),
        (json!({ "operator": "ne" }), "operator"),
        (json!({ "severity": "page" }), "severity"),
        (json!({ "duration_polls": 0 }), "duration_polls"),
        (
            json!({ "metric": "device_offline", "operator": "gt", "threshold": 0 }),
            "operator",
        ),
        (json!({ "name": " " }), "name"),
    ] {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let r = srv.call("POST", &rules, &w.root, Some(body.clone())).await;
        assert_eq!(r.status, 422, "{body}");
        assert!(
            r.json["detail"].as_str().unwrap().starts_with(field),
            "{body}: {:?}",
            r.json
        );
    }
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("threshold");
    assert_eq!(srv.call("POST", &rules, &w.root, Some(missing)).await.status, 422);
    let mut foreign = base.clone();
    foreign["device_id"] = json!("00000000-0000-0000-0000-000000000001");
    assert_eq!(srv.call("POST", &rules, &w.root, Some(foreign)).await.status, 404);

    let one = format!("/api/alerts/rules/{id}?{}", q(&w));
    let got = srv.call("GET", &one, &w.root, None).await;
    assert_eq!(got.json, created.json);
    let changed = srv
        .call(
            "PUT",
            &one,
            &w.root,
            Some(json!({ "threshold": -72, "device_id": null })),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.json);
    assert_eq!(
        (changed.json["threshold"].as_f64(), &changed.json["device_id"]),
        (Some(-72.0), &Value::Null)
    );
    assert_eq!(changed.json["name"], "AP weak");
    let toggled = srv
        .call(
            "POST",
            &format!("/api/alerts/rules/{id}/toggle?{}", q(&w)),
            &w.root,
            None,
        )
        .await;
    assert_eq!(toggled.json, json!({ "id": id, "enabled": false }));

    let default_id = list.json["items"][0]["id"].as_str().unwrap();
    let r = srv
        .call(
            "DELETE",
            &format!("/api/alerts/rules/{default_id}?{}", q(&w)),
            &w.root,
            None,
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.json["detail"].as_str().unwrap().contains("Disable them instead"));
    assert_eq!(srv.call("DELETE", &one, &w.root, None).await.status, 204);
    assert_eq!(srv.call("GET", &one, &w.root, None).await.status, 404);
}
on_both_backends!(rules_start_with_the_defaults_and_are_validated);

async fn reports_raise_and_resolve_alerts_across_servers(url: &str) {
    let a = TestServer::start(url, 1000).await;
    // A second server on the same database: a replica taking the next batch.
    let b = TestServer::start(url, 1000).await;
    let w = world(&a).await;
    let t0 = Utc::now() - Duration::minutes(30);
    let min = |m: i64| t0 + Duration::minutes(m);

    // "Device Offline" (default) needs two failed polls in a row; the second comes through the
    // other server.
    deliver(&a, &w, "p1", vec![status_report(&w, 1, min(1), false)]).await;
    assert_eq!(alerts(&a, &w, "").await["total"], 0, "one failed poll is not an outage");
    deliver(&b, &w, "p2", vec![status_report(&w, 1, min(2), false)]).await;
    let list = alerts(&a, &w, "").await;
    assert_eq!(list["total"], 1, "{list}");
    let alert = &list["items"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["metric"], "device_offline");
    assert_eq!(alert["hostname"], "dev-1");
    assert_eq!(alert["message"], "Device dev-1 is offline");
    let fired: DateTime<Utc> = alert["fired_at"].as_str().unwrap().parse().unwrap();
    assert!(
        (fired - min(2)).num_milliseconds().abs() < 1,
        "dated when it happened: {fired}"
    );
    assert_eq!(active(&a, &w).await, 1);

    // The same batch delivered again changes nothing; a third failed poll keeps the one alert.
    deliver(&a, &w, "p2", vec![status_report(&w, 1, min(2), false)]).await;
    deliver(&a, &w, "p3", vec![status_report(&w, 1, min(3), false)]).await;
    assert_eq!(alerts(&a, &w, "").await["total"], 1);

    // Back online: resolved (cleared), one record from fire to resolve.
    deliver(&b, &w, "p4", vec![status_report(&w, 1, min(4), true)]).await;
    let list = alerts(&a, &w, "status=resolved").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["resolve_reason"], "cleared");
    assert_eq!(active(&a, &w).await, 0);

    // A device rule overrides the tenant-wide signal rule for its device and fires at once.
    let rule = a
        .call(
            "POST",
            &format!("/api/alerts/rules?{}", q(&w)),
            &w.root,
            Some(
                json!({ "name": "AP weak", "metric": "signal_strength", "operator": "lt", "threshold": -70,
                         "severity": "critical", "device_id": w.devices[0] }),
            ),
        )
        .await;
    let rule_id = rule.json["id"].as_str().unwrap().to_owned();
    let mac: MacAddr = "02:00:00:00:20:01".parse().unwrap();
    deliver(&a, &w, "weak", vec![ap_report(&w.devices[0], 5, min(5), mac, -80)]).await;
    let weak = alerts(&a, &w, &format!("rule_id={rule_id}")).await;
    assert_eq!(weak["total"], 1, "{weak}");
    let weak_id = weak["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(weak["items"][0]["value"], -80.0);
    assert_eq!(weak["items"][0]["threshold"], -70.0);
    let warnings = alerts(&a, &w, "severity=warning").await;
    assert_eq!(
        warnings["total"], 0,
        "the default signal rule (3 polls) is overridden for this device: {warnings}"
    );

    // Acknowledge and silence.
    let ack = a
        .call(
            "POST",
            &format!("/api/alerts/{weak_id}/acknowledge?{}", q(&w)),
            &w.root,
            None,
        )
        .await;
    assert_eq!(ack.status, 200);
    assert_ne!(ack.json["acknowledged_by"], Value::Null);
    assert_eq!(active(&a, &w).await, 1);
    let silence = format!("/api/alerts/{weak_id}/silence?{}", q(&w));
    assert_eq!(
        a.call("POST", &silence, &w.root, Some(json!({ "duration_minutes": 0 })))
            .await
            .status,
        422
    );
    let s = a
        .call("POST", &silence, &w.root, Some(json!({ "duration_minutes": 30 })))
        .await;
    assert_eq!(s.status, 200, "{:?}", s.json);
    assert_ne!(s.json["silenced_until"], Value::Null);
    assert_eq!(active(&a, &w).await, 0, "silenced alerts are not counted");

    // Disabling the rule resolves its alert at once.
    a.call(
        "POST",
        &format!("/api/alerts/rules/{rule_id}/toggle?{}", q(&w)),
        &w.root,
        None,
    )
    .await;
    let weak = alerts(&a, &w, &format!("rule_id={rule_id}")).await;
    assert_eq!(weak["items"][0]["status"], "resolved");
    assert_eq!(weak["items"][0]["resolve_reason"], "rule_disabled");

    // Paging and filters.
    let page = alerts(&a, &w, "per_page=1&page=2").await;
    assert_eq!(
        (page["total"].as_i64(), page["items"].as_array().map(Vec::len)),
        (Some(2), Some(1))
    );
    assert_eq!(alerts(&a, &w, &format!("device_id={}", w.devices[1])).await["total"], 1);
    for bad in ["per_page=500", "page=0", "status=open", "severity=loud"] {
        let r = a
            .call("GET", &format!("/api/alerts?{}&{bad}", q(&w)), &w.root, None)
            .await;
        assert_eq!(r.status, 422, "{bad}");
    }
    let unknown = a
        .call(
            "POST",
            &format!("/api/alerts/{}/acknowledge?{}", uuid_zero(), q(&w)),
            &w.root,
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
}
on_both_backends!(reports_raise_and_resolve_alerts_across_servers);

fn uuid_zero() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}

/// Alerts of one rule at one site that fire together are one incident (a tower-wide cause is one
/// notice, not one per device), even when the devices cross one after another; one that fires
/// long after at the same site opens its own.
async fn devices_that_fail_together_share_an_incident(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let t0 = Utc::now() - Duration::minutes(60);
    let min = |m: i64| t0 + Duration::minutes(m);
    // "Device Offline" needs two failed polls: device 0 fires at minute 2, device 1 at 11 (nine
    // polls after, its cause still open), device 2 at 46 (44 polls after).
    for m in 1..=46 {
        let reports = (0..3)
            .map(|i| {
                let down_from = [1, 10, 45][i];
                status_report(&w, i, min(m), m < down_from)
            })
            .collect();
        deliver(&srv, &w, &format!("p{m}"), reports).await;
    }
    let list = alerts(&srv, &w, "status=firing").await;
    assert_eq!(list["total"], 3, "{list}");
    let incident = |host: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["hostname"] == host)
            .and_then(|a| a["incident_id"].as_str())
            .unwrap_or_else(|| panic!("{host} has an incident: {list}"))
            .to_owned()
    };
    assert_eq!(incident("dev-0"), incident("dev-1"), "one cause: one incident");
    assert_ne!(
        incident("dev-2"),
        incident("dev-0"),
        "down 44 polls later: an incident of its own"
    );
}
on_both_backends!(devices_that_fail_together_share_an_incident);
