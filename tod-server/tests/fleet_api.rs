//! Fleet reads over real HTTP on SQLite and PostgreSQL: the sites list and a site with their
//! health rollup, and a client's signal history bucketed from the registrations an agent
//! delivered (MACs in any common format, the three ranges, validation, other tenants' devices).

mod common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::TestServer;
use common::fleet::{ap_report, cpe_report, delete_registrations_before, deliver, world};
use serde_json::{Value, json};
use tod_core::MacAddr;
use tod_core::telemetry::{DeviceReport, PollStatus, Registration};

async fn sites_carry_their_health_rollup(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    // Two of the first site's three devices report online.
    let now = Utc::now();
    let reports = (0..2)
        .map(|i| DeviceReport::new(w.devices[i].parse().unwrap(), 1, now, PollStatus::Online))
        .collect();
    deliver(&srv, &w, "online-1", reports).await;

    let list = srv
        .call("GET", &format!("/api/tenants/{}/sites", w.tenant), &w.root, None)
        .await;
    assert_eq!(list.status, 200, "{:?}", list.json);
    assert_eq!(list.json["unassigned_count"], 1);
    let sites = list.json["sites"].as_array().unwrap();
    let names: Vec<&str> = sites.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Alpha Tower", "Bravo Tower"], "by name");
    let alpha = &sites[0];
    assert_eq!(
        (&alpha["device_count"], &alpha["online_count"], &alpha["online_percent"]),
        (&json!(3), &json!(2), &json!(66.7))
    );
    assert_eq!(alpha["alert_count"], 0);
    assert_eq!(
        (&sites[1]["device_count"], &sites[1]["online_percent"]),
        (&json!(1), &json!(0.0))
    );

    let one = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/sites/{}", w.tenant, w.sites[0]),
            &w.root,
            None,
        )
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json["online_count"], 2);
    assert_eq!(one.json["latitude"], -33.9);

    // The third device reports: an agent's batch shows in the (cached) list within the cache's
    // lifetime, without forgetting it on every batch.
    let third = DeviceReport::new(w.devices[2].parse().unwrap(), 2, Utc::now(), PollStatus::Online);
    deliver(&srv, &w, "online-2", vec![third]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let list = srv
            .call("GET", &format!("/api/tenants/{}/sites", w.tenant), &w.root, None)
            .await;
        if list.json["sites"][0]["online_count"] == 3 {
            assert_eq!(list.json["sites"][0]["online_percent"], 100.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never showed: {:?}",
            list.json
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
on_both_backends!(sites_carry_their_health_rollup);

async fn signal_history_buckets_what_the_ap_reported(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let ap = &w.devices[0];
    let client: MacAddr = "4C:5E:0C:11:22:33".parse().unwrap();
    let other: MacAddr = "4C:5E:0C:99:99:99".parse().unwrap();
    // Samples in one closed 5-minute bucket half an hour ago, one two days ago, one 10 days ago.
    let bucket = (Utc::now() - Duration::minutes(30))
        .duration_trunc(Duration::minutes(5))
        .unwrap();
    let mut reports = Vec::new();
    for (i, dbm) in [-61i16, -64, -70].into_iter().enumerate() {
        reports.push(ap_report(
            ap,
            i as u64 + 1,
            bucket + Duration::seconds(60 * i as i64),
            client,
            dbm,
        ));
    }
    reports.push(ap_report(ap, 10, Utc::now() - Duration::days(2), client, -80));
    reports.push(ap_report(ap, 11, Utc::now() - Duration::days(10), client, -90));
    reports.push(ap_report(ap, 12, bucket, other, -50));
    deliver(&srv, &w, "signal-1", reports).await;

    let path = |mac: &str, range: &str| {
        format!(
            "/api/tenants/{}/devices/{ap}/signal-history?mac_address={mac}{range}",
            w.tenant
        )
    };
    // Any common MAC format finds the same client; the answer names it canonically.
    let day = srv
        .call("GET", &path("4c-5e-0c-11-22-33", "&range=24h"), &w.root, None)
        .await;
    assert_eq!(day.status, 200, "{:?}", day.json);
    assert_eq!(day.json["mac_address"], "4c:5e:0c:11:22:33");
    assert_eq!(day.json["range"], "24h");
    let items = day.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    let b: &Value = &items[0];
    assert_eq!(
        b["timestamp"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap(),
        bucket
    );
    // (-61 - 64 - 70) / 3 = -65.0
    assert_eq!(
        (&b["signal_avg"], &b["signal_min"], &b["signal_max"]),
        (&json!(-65), &json!(-70), &json!(-61))
    );
    assert_eq!(b["samples"], 3);

    let week = srv.call("GET", &path("4C5E.0C11.2233", ""), &w.root, None).await;
    assert_eq!(week.json["range"], "7d", "the default range");
    let week_samples: i64 = week.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["samples"].as_i64().unwrap())
        .sum();
    assert_eq!(week_samples, 4, "the 2-day-old sample is in, the 10-day-old one is not");
    let month = srv
        .call("GET", &path("4c:5e:0c:11:22:33", "&range=30d"), &w.root, None)
        .await;
    let month_samples: i64 = month.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["samples"].as_i64().unwrap())
        .sum();
    assert_eq!(month_samples, 5);

    // Validation: a bad range is a 400 with the documented text; a missing or malformed MAC 422.
    let bad = srv
        .call("GET", &path("4c:5e:0c:11:22:33", "&range=1y"), &w.root, None)
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json["detail"], "range must be one of: 24h, 7d, 30d");
    let missing = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/devices/{ap}/signal-history", w.tenant),
            &w.root,
            None,
        )
        .await;
    assert_eq!(missing.status, 422);
    let malformed = srv.call("GET", &path("not-a-mac", ""), &w.root, None).await;
    assert_eq!(malformed.status, 422);

    // A device of another tenant is not found from this one.
    let other_tenant = srv
        .call("POST", "/api/tenants", &w.root, Some(json!({ "name": "Other WISP" })))
        .await;
    let foreign = format!(
        "/api/tenants/{}/devices/{ap}/signal-history?mac_address=4c:5e:0c:11:22:33",
        other_tenant.json["id"].as_str().unwrap()
    );
    assert_eq!(srv.call("GET", &foreign, &w.root, None).await.status, 404);
}
on_both_backends!(signal_history_buckets_what_the_ap_reported);

/// The items of a signal history answer.
async fn history(srv: &TestServer, w: &common::fleet::World, ap: &str, mac: &str, range: &str) -> Vec<Value> {
    let r = srv
        .call(
            "GET",
            &format!(
                "/api/tenants/{}/devices/{ap}/signal-history?mac_address={mac}&range={range}",
                w.tenant
            ),
            &w.root,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    r.json["items"].as_array().unwrap().clone()
}

async fn signal_history_reads_hourly_sums_and_late_batches_alike(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let ap = w.devices[0].clone();
    let mac = "4c:5e:0c:aa:bb:cc";
    let client: MacAddr = mac.parse().unwrap();
    let now = Utc::now();
    // Five days of a wandering signal every 7 minutes, and one sample exactly on an hour.
    let mut reports = Vec::new();
    let mut t = now - Duration::days(5);
    let mut seq = 0u64;
    while t < now - Duration::minutes(1) {
        seq += 1;
        reports.push(ap_report(&ap, seq, t, client, -60 - (seq % 17) as i16));
        t += Duration::minutes(7);
    }
    let on_the_hour = (now - Duration::days(2)).duration_trunc(Duration::hours(1)).unwrap();
    reports.push(ap_report(&ap, seq + 1, on_the_hour, client, -99));
    for (i, chunk) in reports.chunks(250).enumerate() {
        deliver(&srv, &w, &format!("hourly-{i}"), chunk.to_vec()).await;
    }
    let week = history(&srv, &w, &ap, mac, "7d").await;
    let month = history(&srv, &w, &ap, mac, "30d").await;
    let samples = |items: &[Value]| items.iter().map(|b| b["samples"].as_i64().unwrap()).sum::<i64>();
    assert_eq!(
        samples(&week),
        reports.len() as i64,
        "every sample, from the registrations"
    );
    assert_eq!(samples(&month), reports.len() as i64);

    // Sum every closed hour: the answers do not change.
    let store = &srv.state.store;
    let pass = store
        .rollup_signal(Utc::now(), std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert!(pass.caught_up && pass.hours >= 30 * 24, "{pass:?}");
    assert_eq!(history(&srv, &w, &ap, mac, "7d").await, week);
    assert_eq!(history(&srv, &w, &ap, mac, "30d").await, month);

    // An agent backfills a sample into an hour summed three days ago: it shows at once (the hour
    // is dirty, read from the registrations), and the next pass sums that hour again.
    let late_at = (now - Duration::days(3)).duration_trunc(Duration::hours(1)).unwrap() + Duration::minutes(30);
    deliver(&srv, &w, "late-1", vec![ap_report(&ap, seq + 2, late_at, client, -40)]).await;
    let bucket_of = |items: &[Value], at: DateTime<Utc>| -> Value {
        items
            .iter()
            .find(|b| b["timestamp"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap() == at)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let hour = late_at.duration_trunc(Duration::hours(1)).unwrap();
    let late_week = history(&srv, &w, &ap, mac, "7d").await;
    let (was, is) = (bucket_of(&week, hour), bucket_of(&late_week, hour));
    assert_eq!(
        is["samples"].as_i64(),
        Some(was["samples"].as_i64().unwrap() + 1),
        "{was} -> {is}"
    );
    assert_eq!(is["signal_max"], -40);
    assert_eq!(samples(&late_week), samples(&week) + 1);
    let again = store
        .rollup_signal(Utc::now(), std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(again.dirty, 1, "{again:?}");
    let settled = store
        .rollup_signal(Utc::now(), std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(settled.dirty, 0, "summed once, the mark is gone: {settled:?}");
    assert_eq!(history(&srv, &w, &ap, mac, "7d").await, late_week);

    // The summed hours really are what is read: with the registrations older than a day gone
    // behind the server's back, the week and the month still show them.
    let gone = delete_registrations_before(url, &ap, now - Duration::days(1)).await;
    assert!(gone > 500, "{gone} rows deleted");
    assert_eq!(history(&srv, &w, &ap, mac, "7d").await, late_week);
    let month_now = history(&srv, &w, &ap, mac, "30d").await;
    assert_eq!(samples(&month_now), samples(&month) + 1);
}
on_both_backends!(signal_history_reads_hourly_sums_and_late_batches_alike);

async fn an_aps_clients_resolve_to_devices_and_site_links_follow_the_site(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let (ap, cpe) = (&w.devices[0], &w.devices[1]);
    let cpe_mac: MacAddr = "02:aa:00:00:00:01".parse().unwrap();
    let stranger: MacAddr = "02:bb:00:00:00:99".parse().unwrap();
    let t0 = Utc::now() - Duration::minutes(2);
    let cpe_report = cpe_report(cpe, t0, cpe_mac);
    let clients = |seq: u64, at: DateTime<Utc>, cpe_dbm: i16| {
        let mut r = DeviceReport::new(ap.parse().unwrap(), seq, at, PollStatus::Online);
        let mut a = Registration::new("wlan1", cpe_mac);
        a.signal_dbm = Some(cpe_dbm);
        a.tx_ccq = Some(91);
        let mut b = Registration::new("wlan1", stranger);
        b.signal_dbm = Some(-77);
        r.registrations = Some(vec![a, b]);
        r
    };
    deliver(&srv, &w, "c-1", vec![cpe_report, clients(1, t0, -70)]).await;
    deliver(&srv, &w, "c-2", vec![clients(2, t0 + Duration::minutes(1), -62)]).await;

    let base = format!("/api/tenants/{}/devices/{ap}", w.tenant);
    let regs = srv.call("GET", &format!("{base}/registrations"), &w.root, None).await;
    assert_eq!(regs.status, 200, "{:?}", regs.json);
    assert_eq!(regs.json["total"], 2);
    let known = &regs.json["items"][0];
    assert_eq!(known["mac_address"], "02:aa:00:00:00:01");
    assert_eq!(known["signal_strength"], -62, "the latest registration, not the first");
    assert_eq!(known["tx_ccq"], 91);
    assert_eq!(known["device_id"], json!(cpe));
    assert_eq!(known["hostname"], "dev-1");
    let unknown = srv.call("GET", &format!("{base}/unknown-clients"), &w.root, None).await;
    assert_eq!(unknown.json["total"], 1, "{:?}", unknown.json);
    assert_eq!(unknown.json["items"][0]["mac_address"], "02:bb:00:00:00:99");
    assert!(unknown.json["items"][0]["device_id"].is_null());

    let site_links = |site: &str| format!("/api/tenants/{}/sites/{site}/links", w.tenant);
    let at_alpha = srv.call("GET", &site_links(&w.sites[0]), &w.root, None).await;
    assert_eq!(at_alpha.status, 200);
    let links = at_alpha.json.as_array().unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(
        (&links[0]["ap_device_id"], &links[0]["cpe_device_id"]),
        (&json!(ap), &json!(cpe))
    );
    let at_bravo = srv.call("GET", &site_links(&w.sites[1]), &w.root, None).await;
    assert_eq!(at_bravo.json.as_array().unwrap().len(), 0);
    let nowhere = srv
        .call(
            "GET",
            &site_links("00000000-0000-0000-0000-000000000000"),
            &w.root,
            None,
        )
        .await;
    assert_eq!(nowhere.status, 404);
}
on_both_backends!(an_aps_clients_resolve_to_devices_and_site_links_follow_the_site);

async fn sites_are_updated_deleted_and_devices_assigned(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let site = |s: &str| format!("/api/tenants/{}/sites/{s}", w.tenant);
    let alpha = site(&w.sites[0]);

    // Update only what is given; null clears a coordinate; validation and duplicates.
    let r = srv
        .call(
            "PUT",
            &alpha,
            &w.root,
            Some(json!({ "name": "Alpha Ridge", "latitude": null })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["name"], "Alpha Ridge");
    assert!(r.json["latitude"].is_null());
    assert_eq!(r.json["longitude"], 18.4, "untouched");
    assert_eq!(r.json["device_count"], 3);
    let bad = srv
        .call("PUT", &alpha, &w.root, Some(json!({ "longitude": 200.0 })))
        .await;
    assert_eq!(bad.status, 422);
    let dup = srv
        .call("PUT", &alpha, &w.root, Some(json!({ "name": "Bravo Tower" })))
        .await;
    assert_eq!(dup.status, 409, "{:?}", dup.json);

    // The list is read (and kept for a moment by the server's read cache) before the write.
    let before = srv
        .call("GET", &format!("/api/tenants/{}/sites", w.tenant), &w.root, None)
        .await;
    assert_ne!(before.json["unassigned_count"], 0, "a device has no site yet");
    // Bulk-assign is reachable (the original's route was shadowed) and skips strangers.
    let bravo = site(&w.sites[1]);
    let stranger = "00000000-0000-0000-0000-00000000dead";
    let r = srv
        .call(
            "POST",
            &format!("{bravo}/devices/bulk-assign"),
            &w.root,
            Some(json!({ "device_ids": [w.devices[0], w.devices[4], stranger] })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["assigned"], 2);
    let list = srv
        .call("GET", &format!("/api/tenants/{}/sites", w.tenant), &w.root, None)
        .await;
    assert_eq!(list.json["unassigned_count"], 0);
    let counts: Vec<i64> = list.json["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["device_count"].as_i64().unwrap())
        .collect();
    assert_eq!(
        counts,
        [2, 3],
        "Alpha Ridge 2, Bravo Tower 3: the write is read back at once"
    );

    // One device: assign, unassign (only from the site it is at), 404s.
    let one = format!("{alpha}/devices/{}", w.devices[4]);
    assert_eq!(srv.call("POST", &one, &w.root, None).await.status, 204);
    assert_eq!(
        srv.call("DELETE", &format!("{bravo}/devices/{}", w.devices[4]), &w.root, None)
            .await
            .status,
        404,
        "not at that site"
    );
    assert_eq!(srv.call("DELETE", &one, &w.root, None).await.status, 204);
    let d = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/devices/{}", w.tenant, w.devices[4]),
            &w.root,
            None,
        )
        .await;
    assert!(d.json["site_id"].is_null());
    assert_eq!(
        srv.call("POST", &format!("{alpha}/devices/{stranger}"), &w.root, None)
            .await
            .status,
        404
    );

    // Delete: the site's devices stay, without a site; the site's agent goes with it.
    assert_eq!(srv.call("DELETE", &alpha, &w.root, None).await.status, 204);
    assert_eq!(srv.call("GET", &alpha, &w.root, None).await.status, 404);
    assert_eq!(srv.call("DELETE", &alpha, &w.root, None).await.status, 404);
    let devices = srv
        .call("GET", &format!("/api/tenants/{}/devices", w.tenant), &w.root, None)
        .await;
    assert_eq!(devices.json.as_array().unwrap().len(), 5);
    let agents = srv
        .call("GET", &format!("/api/tenants/{}/agents", w.tenant), &w.root, None)
        .await;
    assert!(agents.json.as_array().unwrap().is_empty(), "{:?}", agents.json);
}
on_both_backends!(sites_are_updated_deleted_and_devices_assigned);

async fn sectors_count_their_devices_and_clients_and_stay_at_their_site(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let sectors = |site: &str| format!("/api/tenants/{}/sites/{site}/sectors", w.tenant);
    let alpha = sectors(&w.sites[0]);
    let north = srv
        .call(
            "POST",
            &alpha,
            &w.root,
            Some(json!({ "name": "North", "azimuth": 0.0 })),
        )
        .await;
    assert_eq!(north.status, 201, "{:?}", north.json);
    let north_id = north.json["id"].as_str().unwrap().to_owned();
    let south = srv
        .call(
            "POST",
            &alpha,
            &w.root,
            Some(json!({ "name": "South", "azimuth": 180.0, "description": "river side" })),
        )
        .await;
    assert_eq!(south.status, 201);
    assert_eq!(
        srv.call("POST", &alpha, &w.root, Some(json!({ "name": "North" })))
            .await
            .status,
        409
    );
    assert_eq!(
        srv.call(
            "POST",
            &alpha,
            &w.root,
            Some(json!({ "name": "East", "azimuth": 400.0 }))
        )
        .await
        .status,
        422
    );
    assert_eq!(
        srv.call("POST", &alpha, &w.root, Some(json!({ "azimuth": 90.0 })))
            .await
            .status,
        422
    );
    assert_eq!(
        srv.call(
            "POST",
            &sectors("00000000-0000-0000-0000-000000000000"),
            &w.root,
            Some(json!({ "name": "X" }))
        )
        .await
        .status,
        404
    );

    // A device's sector must be at the device's own site.
    let set = |device: &str, sector: Value| {
        let path = format!("/api/tenants/{}/devices/{device}/sector", w.tenant);
        let root = w.root.clone();
        let srv = &srv;
        async move {
            srv.call("PUT", &path, &root, Some(json!({ "sector_id": sector })))
                .await
                .status
        }
    };
    assert_eq!(set(&w.devices[0], json!(north_id)).await, 204);
    assert_eq!(
        set(&w.devices[3], json!(north_id)).await,
        422,
        "a Bravo device in an Alpha sector"
    );
    assert_eq!(
        set(&w.devices[1], json!("00000000-0000-0000-0000-000000000001")).await,
        404
    );

    // The AP in North serves one CPE at -64 dBm.
    let cpe_mac: MacAddr = "02:cc:00:00:00:01".parse().unwrap();
    let cpe = cpe_report(&w.devices[1], Utc::now(), cpe_mac);
    let ap = ap_report(&w.devices[0], 1, Utc::now(), cpe_mac, -64);
    deliver(&srv, &w, "sector-1", vec![cpe, ap]).await;
    let list = srv.call("GET", &alpha, &w.root, None).await;
    assert_eq!(list.status, 200, "{:?}", list.json);
    assert_eq!(list.json["total"], 2);
    let n = &list.json["items"][0];
    assert_eq!(n["name"], "North");
    assert_eq!(
        (&n["device_count"], &n["clients"], &n["links"], &n["avg_signal_dbm"]),
        (&json!(1), &json!(1), &json!(1), &json!(-64))
    );
    assert_eq!(
        (
            &list.json["items"][1]["device_count"],
            &list.json["items"][1]["clients"]
        ),
        (&json!(0), &json!(0))
    );

    // Update only what is given; delete leaves the device at its site without a sector.
    let one = format!("{alpha}/{north_id}");
    let r = srv.call("PUT", &one, &w.root, Some(json!({ "azimuth": 10.0 }))).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(
        (&r.json["azimuth"], &r.json["name"], &r.json["device_count"]),
        (&json!(10.0), &json!("North"), &json!(1))
    );
    assert_eq!(srv.call("DELETE", &one, &w.root, None).await.status, 204);
    assert_eq!(srv.call("DELETE", &one, &w.root, None).await.status, 404);
    let d = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/devices/{}", w.tenant, w.devices[0]),
            &w.root,
            None,
        )
        .await;
    assert!(
        d.json["sector_id"].is_null() && d.json["site_id"] == json!(w.sites[0]),
        "{:?}",
        d.json
    );
}
on_both_backends!(sectors_count_their_devices_and_clients_and_stay_at_their_site);

async fn devices_are_filtered_paged_updated_and_deleted(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let now = Utc::now();
    let reports = (0..2)
        .map(|i| DeviceReport::new(w.devices[i].parse().unwrap(), 1, now, PollStatus::Online))
        .collect();
    deliver(&srv, &w, "online-1", reports).await;
    let devices = format!("/api/tenants/{}/devices", w.tenant);
    let names = |r: &common::Resp| -> Vec<String> {
        r.json
            .as_array()
            .unwrap_or_else(|| panic!("{:?}", r.json))
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect()
    };

    // Filters, search and paging.
    for (query, want) in [
        ("status=online", vec!["dev-0", "dev-1"]),
        ("unassigned=true", vec!["dev-4"]),
        (&format!("site_id={}", w.sites[1]) as &str, vec!["dev-3"]),
        ("search=DEV-3", vec!["dev-3"]),
        ("search=10.0.0.", vec!["dev-0", "dev-1", "dev-2", "dev-3", "dev-4"]),
        ("search=%25", vec![]),
        ("search=dev_", vec![]),
    ] {
        let r = srv.call("GET", &format!("{devices}?{query}"), &w.root, None).await;
        assert_eq!(r.status, 200, "{query}: {:?}", r.json);
        assert_eq!(names(&r), want, "{query}");
    }
    let page = srv
        .call("GET", &format!("{devices}?limit=2&offset=1"), &w.root, None)
        .await;
    assert_eq!(names(&page), ["dev-1", "dev-2"]);
    assert_eq!(page.header("x-total-count"), Some("5"));
    for bad in [
        "status=sleeping",
        "limit=0",
        "limit=1001",
        "offset=-1",
        "search=",
        "unassigned=maybe",
    ] {
        let r = srv.call("GET", &format!("{devices}?{bad}"), &w.root, None).await;
        assert_eq!(r.status, 422, "{bad}: {:?}", r.json);
    }

    // Update: only what is given; checks as on create; the port follows a transport change.
    let one = |i: usize| format!("{devices}/{}", w.devices[i]);
    let r = srv
        .call(
            "PUT",
            &one(4),
            &w.root,
            Some(json!({ "name": "core-router", "host": "10.1.0.1", "site_id": w.sites[0] })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(
        (&r.json["name"], &r.json["site_id"]),
        (&json!("core-router"), &json!(w.sites[0]))
    );
    assert_eq!(r.json["transport"], "plain", "untouched fields stay");
    let r = srv
        .call("PUT", &one(4), &w.root, Some(json!({ "name": "dev-0" })))
        .await;
    assert_eq!(r.status, 409, "{:?}", r.json);
    let r = srv
        .call("PUT", &one(4), &w.root, Some(json!({ "transport": "tls_pinned" })))
        .await;
    assert_eq!(r.status, 422, "pinned without a fingerprint: {:?}", r.json);
    let r = srv
        .call("PUT", &one(4), &w.root, Some(json!({ "transport": "tls_verified" })))
        .await;
    assert_eq!((r.status, &r.json["api_port"]), (200, &json!(8729)), "{:?}", r.json);
    let other = srv
        .call("POST", "/api/tenants", &w.root, Some(json!({ "name": "Other WISP" })))
        .await;
    let their_site = srv
        .call(
            "POST",
            &format!("/api/tenants/{}/sites", other.json["id"].as_str().unwrap()),
            &w.root,
            Some(json!({ "name": "Theirs" })),
        )
        .await;
    let r = srv
        .call(
            "PUT",
            &one(4),
            &w.root,
            Some(json!({ "site_id": their_site.json["id"] })),
        )
        .await;
    assert_eq!(r.status, 422, "another tenant's site: {:?}", r.json);

    // The sealed login: replaced, removed, never half-given.
    let r = srv
        .call(
            "PUT",
            &one(4),
            &w.root,
            Some(json!({ "username": "tod", "password": "s3cret" })),
        )
        .await;
    assert_eq!(r.json["has_credentials"], true, "{:?}", r.json);
    assert!(r.json.get("password").is_none());
    let r = srv
        .call("PUT", &one(4), &w.root, Some(json!({ "username": "tod" })))
        .await;
    assert_eq!(r.status, 422);
    let r = srv
        .call("PUT", &one(4), &w.root, Some(json!({ "username": null })))
        .await;
    assert_eq!(r.json["has_credentials"], false, "{:?}", r.json);

    // Moving a device to another site takes it out of its sector.
    let sector = srv
        .call(
            "POST",
            &format!("/api/tenants/{}/sites/{}/sectors", w.tenant, w.sites[0]),
            &w.root,
            Some(json!({ "name": "North", "azimuth": 0.0 })),
        )
        .await;
    let r = srv
        .call(
            "PUT",
            &format!("{}/sector", one(0)),
            &w.root,
            Some(json!({ "sector_id": sector.json["id"] })),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.json);
    let r = srv
        .call("PUT", &one(0), &w.root, Some(json!({ "host": "10.0.0.100" })))
        .await;
    assert_eq!(r.json["sector_id"], sector.json["id"], "same site: the sector stays");
    let r = srv
        .call("PUT", &one(0), &w.root, Some(json!({ "site_id": w.sites[1] })))
        .await;
    assert_eq!(r.json["sector_id"], Value::Null, "{:?}", r.json);

    // Delete: the device, its links and history go; the audit chain keeps the story.
    let ap = &w.devices[1];
    let cpe_mac: MacAddr = "4C:5E:0C:00:00:09".parse().unwrap();
    deliver(&srv, &w, "links-1", vec![cpe_report(&w.devices[2], now, cpe_mac)]).await;
    deliver(&srv, &w, "links-2", vec![ap_report(ap, 2, now, cpe_mac, -60)]).await;
    let links = srv
        .call("GET", &format!("/api/tenants/{}/links", w.tenant), &w.root, None)
        .await;
    assert_eq!(links.json.as_array().unwrap().len(), 1, "{:?}", links.json);
    assert_eq!(srv.call("DELETE", &one(1), &w.root, None).await.status, 204);
    assert_eq!(srv.call("GET", &one(1), &w.root, None).await.status, 404);
    assert_eq!(srv.call("DELETE", &one(1), &w.root, None).await.status, 404);
    let links = srv
        .call("GET", &format!("/api/tenants/{}/links", w.tenant), &w.root, None)
        .await;
    assert_eq!(links.json, json!([]));
    let audit = srv
        .call(
            "GET",
            &format!("/api/audit-logs?tenant_id={}&limit=100", w.tenant),
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
        .filter(|a| a.starts_with("device."))
        .collect();
    assert_eq!(actions.first(), Some(&"device.deleted"), "{actions:?}");
    assert_eq!(
        actions.iter().filter(|a| **a == "device.updated").count(),
        6,
        "{actions:?}"
    );
}
on_both_backends!(devices_are_filtered_paged_updated_and_deleted);

async fn site_sector_and_rule_writes_are_audited(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let t = &w.tenant;
    let ok = |r: &common::Resp| assert!(r.status < 300, "{} {:?}", r.status, r.json);
    let site = srv
        .call(
            "POST",
            &format!("/api/tenants/{t}/sites"),
            &w.root,
            Some(json!({ "name": "Charlie" })),
        )
        .await;
    ok(&site);
    let s = format!("/api/tenants/{t}/sites/{}", site.json["id"].as_str().unwrap());
    ok(&srv.call("PUT", &s, &w.root, Some(json!({ "latitude": 1.5 }))).await);
    ok(&srv
        .call("POST", &format!("{s}/devices/{}", w.devices[4]), &w.root, None)
        .await);
    ok(&srv
        .call(
            "POST",
            &format!("{s}/devices/bulk-assign"),
            &w.root,
            Some(json!({ "device_ids": [w.devices[3]] })),
        )
        .await);
    let sector = srv
        .call(
            "POST",
            &format!("{s}/sectors"),
            &w.root,
            Some(json!({ "name": "East", "azimuth": 90.0 })),
        )
        .await;
    ok(&sector);
    let sec = format!("{s}/sectors/{}", sector.json["id"].as_str().unwrap());
    ok(&srv.call("PUT", &sec, &w.root, Some(json!({ "azimuth": 100.0 }))).await);
    ok(&srv
        .call(
            "PUT",
            &format!("/api/tenants/{t}/devices/{}/sector", w.devices[4]),
            &w.root,
            Some(json!({ "sector_id": sector.json["id"] })),
        )
        .await);
    ok(&srv.call("DELETE", &sec, &w.root, None).await);
    let rule = srv
        .call(
            "POST",
            &format!("{s}/alert-rules"),
            &w.root,
            Some(json!({ "name": "Down", "rule_type": "device_offline_count", "threshold_value": 2.0, "threshold_unit": "count" })),
        )
        .await;
    ok(&rule);
    let r = format!("{s}/alert-rules/{}", rule.json["id"].as_str().unwrap());
    ok(&srv.call("PUT", &r, &w.root, Some(json!({ "enabled": false }))).await);
    ok(&srv.call("DELETE", &r, &w.root, None).await);
    ok(&srv
        .call("DELETE", &format!("{s}/devices/{}", w.devices[4]), &w.root, None)
        .await);
    ok(&srv.call("DELETE", &s, &w.root, None).await);
    let q = format!("?tenant_id={t}");
    let dr = srv
        .call(
            "POST",
            &format!("/api/alerts/rules{q}"),
            &w.root,
            Some(json!({ "name": "Hot", "metric": "temperature", "operator": "gt", "threshold": 70.0 })),
        )
        .await;
    ok(&dr);
    let d = format!("/api/alerts/rules/{}", dr.json["id"].as_str().unwrap());
    ok(&srv
        .call("PUT", &format!("{d}{q}"), &w.root, Some(json!({ "threshold": 75.0 })))
        .await);
    ok(&srv.call("POST", &format!("{d}/toggle{q}"), &w.root, None).await);
    ok(&srv.call("DELETE", &format!("{d}{q}"), &w.root, None).await);

    let audit = srv
        .call(
            "GET",
            &format!("/api/audit-logs?tenant_id={t}&limit=100"),
            &w.root,
            None,
        )
        .await;
    let mut actions: Vec<&str> = audit
        .json
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .filter(|a| !a.starts_with("device.created") && !a.starts_with("agent."))
        .collect();
    actions.reverse();
    // The world's own two sites come first.
    assert_eq!(actions[..2], ["site.created", "site.created"]);
    assert_eq!(
        actions[2..],
        [
            "site.created",
            "site.updated",
            "device.site_assigned",
            "site.devices_assigned",
            "sector.created",
            "sector.updated",
            "device.sector_set",
            "sector.deleted",
            "site_alert_rule.created",
            "site_alert_rule.updated",
            "site_alert_rule.deleted",
            "device.site_unassigned",
            "site.deleted",
            "alert_rule.created",
            "alert_rule.updated",
            "alert_rule.toggled",
            "alert_rule.deleted",
        ]
    );
    let chain = srv
        .call("GET", &format!("/api/audit-logs/verify?tenant_id={t}"), &w.root, None)
        .await;
    assert_eq!(chain.json["intact"], true, "{:?}", chain.json);
}
on_both_backends!(site_sector_and_rule_writes_are_audited);
