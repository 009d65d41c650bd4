//! Device groups and tags over real HTTP on SQLite and PostgreSQL: CRUD with its checks, members
//! (only the tenant's devices), the device list filtered by them, and alert rules that target a
//! group — firing for its members only, and going with the group.

mod common;

use chrono::{Duration, Utc};
use common::TestServer;
use common::fleet::{deliver, world};
use serde_json::{Value, json};
use tod_core::telemetry::{DeviceReport, PollStatus, Resources};

async fn groups_and_tags_hold_the_tenants_devices(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let q = format!("?tenant_id={}", w.tenant);
    let other = srv
        .call("POST", "/api/tenants", &w.root, Some(json!({ "name": "Other WISP" })))
        .await;
    let stranger = srv
        .call(
            "POST",
            &format!("/api/tenants/{}/devices", other.json["id"].as_str().unwrap()),
            &w.root,
            Some(json!({ "name": "theirs", "host": "10.9.9.9" })),
        )
        .await;
    for (path, filter) in [("device-groups", "group_id"), ("device-tags", "tag_id")] {
        let base = format!("/api/{path}{q}");
        let made = srv
            .call(
                "POST",
                &base,
                &w.root,
                Some(json!({ "name": "Backhaul", "description": "PtP links", "color": "#1e90ff" })),
            )
            .await;
        assert_eq!(made.status, 201, "{path}: {:?}", made.json);
        assert_eq!(made.json["device_count"], 0);
        let id = made.json["id"].as_str().unwrap().to_owned();
        let dup = srv
            .call("POST", &base, &w.root, Some(json!({ "name": "Backhaul" })))
            .await;
        assert_eq!(dup.status, 409, "{path}: {:?}", dup.json);
        assert!(dup.json["detail"].as_str().unwrap().contains("already exists"));
        for bad in [
            json!({ "name": "x", "color": "blue" }),
            json!({ "name": "" }),
            json!({ "color": "#000000" }),
        ] {
            let r = srv.call("POST", &base, &w.root, Some(bad.clone())).await;
            assert_eq!(r.status, 422, "{path} {bad}: {:?}", r.json);
        }
        srv.call("POST", &base, &w.root, Some(json!({ "name": "Access" })))
            .await;

        let one = format!("/api/{path}/{id}{q}");
        let members = format!("/api/{path}/{id}/devices{q}");
        let r = srv
            .call(
                "POST",
                &members,
                &w.root,
                Some(json!({ "device_ids": [w.devices[0], stranger.json["id"]] })),
            )
            .await;
        assert_eq!(r.status, 422, "another tenant's device: {:?}", r.json);
        let r = srv
            .call(
                "POST",
                &members,
                &w.root,
                Some(json!({ "device_ids": [w.devices[0], w.devices[3], w.devices[0]] })),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        assert_eq!(
            r.json["device_count"], 2,
            "nothing from the refused call, no duplicates"
        );
        assert_eq!(r.json["device_ids"], json!([w.devices[0], w.devices[3]]));
        let list = srv.call("GET", &base, &w.root, None).await;
        let counts: Vec<(&str, i64)> = list
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["name"].as_str().unwrap(), s["device_count"].as_i64().unwrap()))
            .collect();
        assert_eq!(counts, [("Access", 0), ("Backhaul", 2)]);
        let devices = srv
            .call(
                "GET",
                &format!("/api/tenants/{}/devices?{filter}={id}", w.tenant),
                &w.root,
                None,
            )
            .await;
        let names: Vec<&str> = devices
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["dev-0", "dev-3"]);

        let out = format!("/api/{path}/{id}/devices/{}{q}", w.devices[3]);
        assert_eq!(srv.call("DELETE", &out, &w.root, None).await.status, 204);
        assert_eq!(srv.call("DELETE", &out, &w.root, None).await.status, 404);
        let r = srv
            .call(
                "PUT",
                &one,
                &w.root,
                Some(json!({ "name": "Core", "description": null })),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        assert_eq!(
            (
                &r.json["name"],
                &r.json["description"],
                &r.json["color"],
                &r.json["device_count"]
            ),
            (&json!("Core"), &Value::Null, &json!("#1e90ff"), &json!(1))
        );
        let r = srv.call("PUT", &one, &w.root, Some(json!({ "name": "Access" }))).await;
        assert_eq!(r.status, 409);
        let theirs = format!("/api/{path}/{id}?tenant_id={}", other.json["id"].as_str().unwrap());
        assert_eq!(srv.call("GET", &theirs, &w.root, None).await.status, 404);
        assert_eq!(srv.call("DELETE", &one, &w.root, None).await.status, 204);
        assert_eq!(srv.call("GET", &one, &w.root, None).await.status, 404);
        let dev = srv
            .call(
                "GET",
                &format!("/api/tenants/{}/devices/{}", w.tenant, w.devices[0]),
                &w.root,
                None,
            )
            .await;
        assert_eq!(dev.status, 200, "the devices stay");
    }
}
on_both_backends!(groups_and_tags_hold_the_tenants_devices);

async fn a_group_rule_fires_for_members_only_and_goes_with_the_group(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let q = format!("?tenant_id={}", w.tenant);
    let group = srv
        .call(
            "POST",
            &format!("/api/device-groups{q}"),
            &w.root,
            Some(json!({ "name": "Hot APs" })),
        )
        .await;
    let gid = group.json["id"].as_str().unwrap().to_owned();
    srv.call(
        "POST",
        &format!("/api/device-groups/{gid}/devices{q}"),
        &w.root,
        Some(json!({ "device_ids": [w.devices[0]] })),
    )
    .await;
    let rules = format!("/api/alerts/rules{q}");
    let body = json!({ "name": "Warm", "metric": "cpu_load", "operator": "gt", "threshold": 50.0,
                       "group_id": gid, "severity": "info" });
    let rule = srv.call("POST", &rules, &w.root, Some(body.clone())).await;
    assert_eq!(rule.status, 201, "{:?}", rule.json);
    assert_eq!(
        (&rule.json["group_id"], &rule.json["device_id"]),
        (&json!(gid), &Value::Null)
    );
    let mut both = body.clone();
    both["device_id"] = json!(w.devices[0]);
    assert_eq!(srv.call("POST", &rules, &w.root, Some(both)).await.status, 422);
    let mut foreign = body.clone();
    foreign["group_id"] = json!(uuid::Uuid::new_v4());
    assert_eq!(srv.call("POST", &rules, &w.root, Some(foreign)).await.status, 422);

    let now = Utc::now();
    let reports = (0..2)
        .map(|i| {
            let mut r = DeviceReport::new(
                w.devices[i].parse().unwrap(),
                1,
                now - Duration::seconds(5),
                PollStatus::Online,
            );
            r.resources = Some(Resources {
                cpu_load: Some(60.0),
                ..Resources::default()
            });
            r
        })
        .collect();
    deliver(&srv, &w, "warm-1", reports).await;
    let alerts = srv
        .call("GET", &format!("/api/alerts{q}&status=firing"), &w.root, None)
        .await;
    let fired: Vec<(&str, &str)> = alerts.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["device_id"].as_str().unwrap(), a["rule_id"].as_str().unwrap()))
        .collect();
    assert_eq!(fired, [(w.devices[0].as_str(), rule.json["id"].as_str().unwrap())]);

    // Deleting the group takes its rule with it and resolves the rule's alert.
    assert_eq!(
        srv.call("DELETE", &format!("/api/device-groups/{gid}{q}"), &w.root, None)
            .await
            .status,
        204
    );
    let gone = srv
        .call(
            "GET",
            &format!("/api/alerts/rules/{}{q}", rule.json["id"].as_str().unwrap()),
            &w.root,
            None,
        )
        .await;
    assert_eq!(gone.status, 404);
    let alerts = srv.call("GET", &format!("/api/alerts{q}"), &w.root, None).await;
    assert_eq!(alerts.json["items"][0]["status"], "resolved", "{:?}", alerts.json);
    assert_eq!(alerts.json["items"][0]["resolve_reason"], "rule_deleted");
}
on_both_backends!(a_group_rule_fires_for_members_only_and_goes_with_the_group);
