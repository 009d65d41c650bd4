//! Maintenance windows over real HTTP on SQLite and PostgreSQL: CRUD with its checks (ranges,
//! recurrence, other tenants' devices, partial updates that would break the range), status
//! filters, and suppression — alerts for covered devices do not fire while a window is in effect,
//! are recorded once as held back, and a backlog is judged by when it was collected.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::TestServer;
use common::fleet::{World, deliver, world};
use serde_json::{Value, json};
use tod_core::telemetry::{DeviceReport, PollStatus, Resources};

fn busy(w: &World, dev: usize, seq: u64, at: DateTime<Utc>) -> DeviceReport {
    let mut r = DeviceReport::new(w.devices[dev].parse().unwrap(), seq, at, PollStatus::Online);
    r.resources = Some(Resources {
        cpu_load: Some(97.0),
        ..Resources::default()
    });
    r
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn windows_are_checked_listed_changed_and_deleted(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let q = format!("?tenant_id={}", w.tenant);
    let base = format!("/api/maintenance-windows{q}");
    let now = Utc::now();
    let create = |body: Value| {
        let base = base.clone();
        let srv = &srv;
        let root = &w.root;
        async move { srv.call("POST", &base, root, Some(body)).await }
    };

    let tonight = create(json!({
        "name": "Tower Alpha firmware", "site_ids": [w.sites[0]],
        "start_at": ts(now + Duration::hours(2)), "end_at": ts(now + Duration::hours(3)),
        "notes": "RouterOS 7.16 on the APs",
    }))
    .await;
    assert_eq!(tonight.status, 201, "{:?}", tonight.json);
    assert_eq!(tonight.json["status"], "upcoming");
    assert_eq!(tonight.json["suppress_alerts"], true, "suppression is the default");
    assert_eq!(tonight.json["site_ids"], json!([w.sites[0]]));
    let now_on = create(json!({
        "name": "Nightly reboots", "device_ids": [w.devices[0]], "recurrence": "daily",
        "start_at": ts(now - Duration::days(3) - Duration::minutes(10)),
        "end_at": ts(now - Duration::days(3) + Duration::minutes(20)),
    }))
    .await;
    assert_eq!(now_on.status, 201, "{:?}", now_on.json);
    assert_eq!(
        now_on.json["status"], "active",
        "the daily occurrence is on now: {:?}",
        now_on.json
    );
    let occ: DateTime<Utc> = now_on.json["occurrence_start"].as_str().unwrap().parse().unwrap();
    assert!((occ - (now - Duration::minutes(10))).num_seconds().abs() <= 1, "{occ}");
    let done = create(json!({
        "name": "Last week", "start_at": ts(now - Duration::days(7)), "end_at": ts(now - Duration::days(6)),
        "suppress_alerts": false,
    }))
    .await;
    assert_eq!(done.status, 201);
    assert_eq!(done.json["status"], "past");

    // Refused, each with 422 naming the problem.
    for (body, why) in [
        (json!({ "name": "x", "start_at": ts(now), "end_at": ts(now) }), "end_at"),
        (
            json!({ "name": "x", "start_at": ts(now), "end_at": ts(now + Duration::hours(1)), "recurrence": "hourly" }),
            "recurrence",
        ),
        (
            json!({ "name": "x", "start_at": ts(now), "end_at": ts(now + Duration::hours(25)), "recurrence": "daily" }),
            "recurrence",
        ),
        (
            json!({ "name": " ", "start_at": ts(now), "end_at": ts(now + Duration::hours(1)) }),
            "name",
        ),
        (
            json!({ "name": "x", "end_at": ts(now + Duration::hours(1)) }),
            "start_at",
        ),
        (
            json!({ "name": "x", "start_at": ts(now), "end_at": ts(now + Duration::hours(1)), "colour": "red" }),
            "colour",
        ),
    ] {
        let r = create(body).await;
        assert_eq!(r.status, 422, "{why}: {:?}", r.json);
        assert!(r.json["detail"].as_str().unwrap().contains(why), "{why}: {:?}", r.json);
    }
    let other = srv
        .call("POST", "/api/tenants", &w.root, Some(json!({ "name": "Other WISP" })))
        .await;
    let other = other.json["id"].as_str().unwrap().to_owned();
    let stranger = srv
        .call(
            "POST",
            &format!("/api/tenants/{other}/devices"),
            &w.root,
            Some(json!({ "name": "theirs", "host": "10.9.9.9" })),
        )
        .await;
    let r = create(json!({ "name": "x", "device_ids": [stranger.json["id"]],
        "start_at": ts(now), "end_at": ts(now + Duration::hours(1)) }))
    .await;
    assert_eq!(r.status, 422, "another tenant's device: {:?}", r.json);

    // Listing, with the status filter.
    let all = srv.call("GET", &base, &w.root, None).await;
    assert_eq!(all.status, 200);
    let names: Vec<&str> = all
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Tower Alpha firmware", "Nightly reboots", "Last week"],
        "latest start first"
    );
    for (status, want) in [
        ("active", "Nightly reboots"),
        ("upcoming", "Tower Alpha firmware"),
        ("past", "Last week"),
    ] {
        let r = srv.call("GET", &format!("{base}&status={status}"), &w.root, None).await;
        let got: Vec<&str> = r
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert_eq!(got, [want], "{status}");
    }
    let r = srv.call("GET", &format!("{base}&status=soon"), &w.root, None).await;
    assert_eq!(r.status, 422);

    // Partial update; a change that breaks the range is a 422, not the original's 500.
    let one = format!("/api/maintenance-windows/{}{q}", tonight.json["id"].as_str().unwrap());
    let r = srv
        .call(
            "PUT",
            &one,
            &w.root,
            Some(json!({ "end_at": ts(now + Duration::hours(1)) })),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.json);
    let r = srv
        .call(
            "PUT",
            &one,
            &w.root,
            Some(json!({ "notes": null, "suppress_alerts": false })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(
        (&r.json["notes"], &r.json["suppress_alerts"]),
        (&Value::Null, &json!(false))
    );
    assert_eq!(r.json["name"], "Tower Alpha firmware", "untouched fields stay");
    // Another tenant cannot see it.
    let theirs = format!(
        "/api/maintenance-windows/{}?tenant_id={other}",
        tonight.json["id"].as_str().unwrap()
    );
    assert_eq!(srv.call("GET", &theirs, &w.root, None).await.status, 404);
    assert_eq!(srv.call("DELETE", &one, &w.root, None).await.status, 204);
    assert_eq!(srv.call("GET", &one, &w.root, None).await.status, 404);
    assert_eq!(srv.call("DELETE", &one, &w.root, None).await.status, 404);

    // Every change is in the tenant's audit chain.
    let audit = srv
        .call(
            "GET",
            &format!("/api/audit-logs?tenant_id={}&limit=50", w.tenant),
            &w.root,
            None,
        )
        .await;
    let actions: Vec<&str> = audit
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .filter(|a| a.starts_with("maintenance_window."))
        .collect();
    assert_eq!(
        actions,
        [
            "maintenance_window.deleted",
            "maintenance_window.updated",
            "maintenance_window.created",
            "maintenance_window.created",
            "maintenance_window.created"
        ]
    );
}
on_both_backends!(windows_are_checked_listed_changed_and_deleted);

async fn a_window_holds_alerts_back_and_records_them(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let q = format!("?tenant_id={}", w.tenant);
    let now = Utc::now();
    // dev-0 is in maintenance now; dev-2's window was an hour ago.
    let current = srv
        .call(
            "POST",
            &format!("/api/maintenance-windows{q}"),
            &w.root,
            Some(json!({ "name": "dev-0 work", "device_ids": [w.devices[0]],
                "start_at": ts(now - Duration::hours(1)), "end_at": ts(now + Duration::hours(1)) })),
        )
        .await;
    assert_eq!(current.status, 201, "{:?}", current.json);
    let earlier = srv
        .call(
            "POST",
            &format!("/api/maintenance-windows{q}"),
            &w.root,
            Some(json!({ "name": "dev-2 work", "device_ids": [w.devices[2]],
                "start_at": ts(now - Duration::hours(3)), "end_at": ts(now - Duration::hours(1)) })),
        )
        .await;
    assert_eq!(earlier.status, 201);

    // Seven busy polls (High CPU Usage needs five): dev-0 and dev-1 now, dev-2's delivered late
    // from inside its window.
    let mut reports = Vec::new();
    for i in 0..7u64 {
        let at = now - Duration::minutes(10) + Duration::minutes(i as i64);
        reports.push(busy(&w, 0, i + 1, at));
        reports.push(busy(&w, 1, i + 1, at));
        reports.push(busy(
            &w,
            2,
            i + 1,
            now - Duration::minutes(120) + Duration::minutes(i as i64),
        ));
    }
    deliver(&srv, &w, "busy-1", reports).await;

    let alerts = srv.call("GET", &format!("/api/alerts{q}"), &w.root, None).await;
    assert_eq!(alerts.status, 200, "{:?}", alerts.json);
    let firing: Vec<&str> = alerts.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        firing,
        [w.devices[1].as_str()],
        "only the device outside maintenance alerts"
    );

    for (window, device) in [(&current, &w.devices[0]), (&earlier, &w.devices[2])] {
        let held = srv
            .call(
                "GET",
                &format!(
                    "/api/maintenance-windows/{}/suppressed{q}",
                    window.json["id"].as_str().unwrap()
                ),
                &w.root,
                None,
            )
            .await;
        assert_eq!(held.status, 200, "{:?}", held.json);
        let items = held.json["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "recorded once per window, not per poll: {items:?}");
        assert_eq!(items[0]["device_id"], json!(device));
        assert_eq!(items[0]["source"], "device_rule");
        assert_eq!(items[0]["severity"], "warning");
        assert!(items[0]["message"].as_str().unwrap().contains("cpu"), "{:?}", items[0]);
    }
}
on_both_backends!(a_window_holds_alerts_back_and_records_them);

async fn a_site_in_maintenance_holds_back_its_agent_offline_alert(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let q = format!("?tenant_id={}", w.tenant);
    let now = Utc::now();
    let window = srv
        .call(
            "POST",
            &format!("/api/maintenance-windows{q}"),
            &w.root,
            Some(json!({ "name": "Tower Alpha power work", "site_ids": [w.sites[0]],
                "start_at": ts(now - Duration::hours(1)), "end_at": ts(now + Duration::hours(1)) })),
        )
        .await;
    assert_eq!(window.status, 201, "{:?}", window.json);
    deliver(&srv, &w, "before", vec![busy(&w, 0, 1, now)]).await;
    let store = srv.state.store.clone();
    let active = || async {
        srv.call(
            "GET",
            &format!(
                "/api/tenants/{}/sites/{}/alert-events?state=active",
                w.tenant, w.sites[0]
            ),
            &w.root,
            None,
        )
        .await
        .json["total"]
            .as_i64()
            .unwrap()
    };
    // The agent falls silent during the window: its devices turn unreachable, no alert is raised,
    // and the held-back alert is recorded once however many passes see it.
    let a = store.age_fleet(now + Duration::minutes(10), 60).await.unwrap();
    assert_eq!((a.devices_unreachable, a.agent_alerts_raised), (3, 0), "{a:?}");
    store.age_fleet(now + Duration::minutes(11), 60).await.unwrap();
    assert_eq!(active().await, 0);
    let held = srv
        .call(
            "GET",
            &format!(
                "/api/maintenance-windows/{}/suppressed{q}",
                window.json["id"].as_str().unwrap()
            ),
            &w.root,
            None,
        )
        .await;
    let items = held.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        (&items[0]["source"], &items[0]["site_id"]),
        (&json!("fleet"), &json!(w.sites[0]))
    );
    // Still silent after the window: now it is an alert.
    let after = store.age_fleet(now + Duration::hours(2), 60).await.unwrap();
    assert_eq!(after.agent_alerts_raised, 1, "{after:?}");
    assert_eq!(active().await, 1);
}
on_both_backends!(a_site_in_maintenance_holds_back_its_agent_offline_alert);
