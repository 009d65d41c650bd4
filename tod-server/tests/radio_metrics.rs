//! Radios and metrics over real HTTP on SQLite and PostgreSQL: what an agent delivers becomes a
//! device's RF state, the tenant's and the platform's wireless-issues lists (the original's
//! thresholds without its v7-CCQ and never-empty defects), and bucketed health, traffic and radio
//! series with their range checks.

mod common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::TestServer;
use common::fleet::{World, deliver, world};
use serde_json::{Value, json};
use tod_core::MacAddr;
use tod_core::telemetry::{CounterDelta, DeviceReport, PollStatus, RadioRole, Registration, Resources, RfStats};

fn radio(iface: &str, role: RadioRole, freq: u32) -> RfStats {
    RfStats {
        interface: iface.into(),
        noise_floor_dbm: Some(-104),
        frequency_mhz: Some(freq),
        channel_width_mhz: Some(20),
        tx_power_dbm: Some(23),
        registered_clients: None,
        role: Some(role),
    }
}

fn client(iface: &str, n: u64, dbm: i16, ccq: Option<u8>) -> Registration {
    let mut g = Registration::new(iface, MacAddr::from_u64(0x4c5e_0c00_0000 + n));
    g.signal_dbm = Some(dbm);
    g.tx_ccq = ccq;
    g
}

fn report(w: &World, dev: usize, seq: u64, at: DateTime<Utc>) -> DeviceReport {
    DeviceReport::new(w.devices[dev].parse().unwrap(), seq, at, PollStatus::Online)
}

async fn radios_become_rf_stats_and_wireless_issues(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let now = Utc::now();
    let mut batch = Vec::new();

    // dev-0: an AP whose two clients are weak (and whose CCQ is low too: signal wins).
    let mut r = report(&w, 0, 1, now - Duration::minutes(2));
    r.rf = Some(vec![radio("wlan1", RadioRole::AccessPoint, 5180)]);
    r.registrations = Some(vec![
        client("wlan1", 1, -80, Some(40)),
        client("wlan1", 2, -84, Some(40)),
    ]);
    batch.push(r);
    // dev-1: a healthy v7 AP (no CCQ at all), a v6 AP with low CCQ, and a weak station uplink.
    let mut r = report(&w, 1, 1, now - Duration::minutes(2));
    r.rf = Some(vec![
        radio("wifi1", RadioRole::AccessPoint, 5500),
        radio("wlan1", RadioRole::AccessPoint, 2412),
        radio("wlan2", RadioRole::Station, 5805),
    ]);
    r.registrations = Some(vec![
        client("wifi1", 3, -55, None),
        client("wifi1", 4, -60, None),
        client("wlan1", 5, -60, Some(45)),
        client("wlan2", 6, -85, Some(20)),
    ]);
    batch.push(r);
    // dev-2: an AP with two healthy clients, then none, then the device stops answering.
    let mut r = report(&w, 2, 1, now - Duration::minutes(10));
    r.rf = Some(vec![radio("wlan1", RadioRole::AccessPoint, 5240)]);
    r.registrations = Some(vec![
        client("wlan1", 7, -62, Some(90)),
        client("wlan1", 8, -64, Some(88)),
    ]);
    batch.push(r);
    let mut r = report(&w, 2, 2, now - Duration::minutes(5));
    r.rf = Some(vec![radio("wlan1", RadioRole::AccessPoint, 5240)]);
    r.registrations = Some(vec![]);
    batch.push(r);
    batch.push(DeviceReport::new(
        w.devices[2].parse().unwrap(),
        3,
        now - Duration::minutes(1),
        PollStatus::Offline {
            reason: "timeout".into(),
        },
    ));
    deliver(&srv, &w, "radios-1", batch).await;

    // RF stats: the latest reading per radio, numbers where numbers belong.
    let rf = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/devices/{}/rf-stats", w.tenant, w.devices[1]),
            &w.root,
            None,
        )
        .await;
    assert_eq!(rf.status, 200, "{:?}", rf.json);
    assert_eq!(rf.json["total"], 3);
    let items = rf.json["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["interface"].as_str().unwrap()).collect();
    assert_eq!(names, ["wifi1", "wlan1", "wlan2"]);
    assert_eq!(items[0]["channel_width"], 20, "MHz as a number");
    assert_eq!(items[0]["frequency"], 5500);
    assert_eq!(items[0]["clients"], 2);
    assert_eq!(items[0]["signal_avg"], -57.5);
    assert_eq!(items[0]["ccq_avg"], Value::Null, "v7 reports no CCQ, which is not 0 %");
    assert_eq!(items[2]["role"], "station");
    let lost = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/devices/{}/rf-stats", w.tenant, w.devices[2]),
            &w.root,
            None,
        )
        .await;
    assert_eq!(
        lost.json["items"][0]["clients"], 0,
        "the latest reading, not the busiest"
    );

    // The tenant's issues: the offline device first, then by weakest signal; healthy v7 and the
    // station are not issues.
    let issues = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/fleet/wireless-issues", w.tenant),
            &w.root,
            None,
        )
        .await;
    assert_eq!(issues.status, 200, "{:?}", issues.json);
    let got: Vec<(String, String, String, bool)> = issues
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["hostname"].as_str().unwrap().to_owned(),
                i["interface"].as_str().unwrap().to_owned(),
                i["issue"].as_str().unwrap().to_owned(),
                i["online"].as_bool().unwrap(),
            )
        })
        .collect();
    let want = [
        ("dev-2", "wlan1", "No clients (was active)", false),
        ("dev-0", "wlan1", "Signal: -82 dBm", true),
        ("dev-1", "wlan1", "CCQ: 45%", true),
    ]
    .map(|(h, i, s, o)| (h.to_owned(), i.to_owned(), s.to_owned(), o));
    assert_eq!(got, want);
    let first = &issues.json[1];
    assert_eq!(
        (
            &first["signal"],
            &first["ccq"],
            &first["client_count"],
            &first["frequency"]
        ),
        (&json!(-82), &json!(40), &json!(2), &json!(5180))
    );
    assert!(first.get("tenant_name").is_none(), "{first:?}");

    // The platform's list names the tenant; a tenant admin may not read it.
    let fleet = srv.call("GET", "/api/fleet/wireless-issues", &w.root, None).await;
    assert_eq!(fleet.status, 200, "{:?}", fleet.json);
    assert_eq!(fleet.json.as_array().unwrap().len(), 3);
    assert_eq!(fleet.json[0]["tenant_name"], "Fleet WISP");
    let admin = tenant_admin(&srv, &w).await;
    let denied = srv.call("GET", "/api/fleet/wireless-issues", &admin, None).await;
    assert_eq!(denied.status, 403, "{:?}", denied.json);
    let own = srv
        .call(
            "GET",
            &format!("/api/tenants/{}/fleet/wireless-issues", w.tenant),
            &admin,
            None,
        )
        .await;
    assert_eq!(own.json.as_array().unwrap().len(), 3);

    // Another tenant sees none of it, and not this tenant's device either.
    let other = srv
        .call("POST", "/api/tenants", &w.root, Some(json!({ "name": "Other WISP" })))
        .await;
    let other = other.json["id"].as_str().unwrap();
    let none = srv
        .call(
            "GET",
            &format!("/api/tenants/{other}/fleet/wireless-issues"),
            &w.root,
            None,
        )
        .await;
    assert_eq!(none.json, json!([]));
    let foreign = srv
        .call(
            "GET",
            &format!("/api/tenants/{other}/devices/{}/rf-stats", w.devices[1]),
            &w.root,
            None,
        )
        .await;
    assert_eq!(foreign.status, 404, "{:?}", foreign.json);
}
on_both_backends!(radios_become_rf_stats_and_wireless_issues);

/// A tenant admin of the world's tenant, logged in.
async fn tenant_admin(srv: &TestServer, w: &World) -> common::Auth {
    let email = "admin@fleet.example";
    let password = "correct horse battery";
    let e = tod_server::client::enrolment(email, password).unwrap();
    let u = srv
        .call(
            "POST",
            "/api/users",
            &w.root,
            Some(json!({
                "email": email, "name": "Fleet Admin", "role": "admin", "tenant_id": w.tenant,
                "srp_salt": e["srp_salt"], "srp_verifier": e["srp_verifier"],
            })),
        )
        .await;
    assert_eq!(u.status, 201, "{:?}", u.json);
    srv.bearer(email, password).await
}

async fn metrics_are_bucketed_and_ranges_checked(url: &str) {
    let srv = TestServer::start(url, 1000).await;
    let w = world(&srv).await;
    let base = Utc::now().duration_trunc(Duration::minutes(10)).unwrap() - Duration::hours(1);
    let mut batch = Vec::new();
    for (seq, (minute, cpu, free, rx)) in [(1, 10.0, 50, 1000u64), (2, 30.0, 25, 500), (11, 50.0, 50, 3000)]
        .into_iter()
        .enumerate()
    {
        let mut r = report(&w, 0, seq as u64 + 1, base + Duration::minutes(minute));
        r.resources = Some(Resources {
            cpu_load: Some(cpu),
            free_memory: Some(free),
            total_memory: Some(100),
            ..Resources::default()
        });
        r.interface_deltas = vec![
            CounterDelta {
                interface: "ether1".into(),
                rx_bytes: rx,
                tx_bytes: 2 * rx,
            },
            CounterDelta {
                interface: "wlan1".into(),
                rx_bytes: 7,
                tx_bytes: 7,
            },
        ];
        r.rf = Some(vec![radio("wlan1", RadioRole::AccessPoint, 5180)]);
        r.registrations = Some(
            (0..seq as u64 + 1)
                .map(|n| client("wlan1", n, -60 - seq as i16, None))
                .collect(),
        );
        batch.push(r);
    }
    deliver(&srv, &w, "metrics-1", batch).await;
    let range = format!(
        "start={}&end={}&bucket_secs=600",
        (base).format("%Y-%m-%dT%H:%M:%SZ"),
        (base + Duration::minutes(30)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let path = |kind: &str, extra: &str| format!("/api/metrics/devices/{}/{kind}?{range}{extra}", w.devices[0]);

    let h = srv.call("GET", &path("health", ""), &w.root, None).await;
    // The super admin belongs to no tenant: it names one.
    assert_eq!(h.status, 422, "{:?}", h.json);
    let t = format!("&tenant_id={}", w.tenant);
    let h = srv.call("GET", &path("health", &t), &w.root, None).await;
    assert_eq!(h.status, 200, "{:?}", h.json);
    assert_eq!(h.json["bucket_secs"], 600);
    let items = h.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        items[0]["timestamp"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        base
    );
    assert_eq!(
        (
            &items[0]["samples"],
            &items[0]["cpu_load_avg"],
            &items[0]["cpu_load_max"]
        ),
        (&json!(2), &json!(20.0), &json!(30.0))
    );
    assert_eq!(items[0]["memory_used_pct_avg"], 62.5);
    assert_eq!(
        (&items[1]["samples"], &items[1]["cpu_load_avg"]),
        (&json!(1), &json!(50.0))
    );

    let tr = srv.call("GET", &path("interfaces", &t), &w.root, None).await;
    assert_eq!(tr.status, 200, "{:?}", tr.json);
    let ifaces = tr.json["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 2);
    let ether = &ifaces[0];
    assert_eq!(ether["interface"], "ether1");
    assert_eq!(
        (&ether["items"][0]["rx_bytes"], &ether["items"][0]["tx_bytes"]),
        (&json!(1500), &json!(3000))
    );
    assert_eq!(ether["items"][0]["rx_bps"], 20.0, "1 500 bytes over 600 s");
    let one = srv
        .call(
            "GET",
            &path("interfaces", &format!("{t}&interface=wlan1")),
            &w.root,
            None,
        )
        .await;
    assert_eq!(one.json["interfaces"].as_array().unwrap().len(), 1);
    assert_eq!(one.json["interfaces"][0]["items"][0]["rx_bytes"], 14);

    let wl = srv.call("GET", &path("wireless", &t), &w.root, None).await;
    assert_eq!(wl.status, 200, "{:?}", wl.json);
    let track = &wl.json["radios"][0];
    assert_eq!(track["interface"], "wlan1");
    assert_eq!(
        (&track["items"][0]["clients_avg"], &track["items"][0]["clients_max"]),
        (&json!(1.5), &json!(2))
    );
    assert_eq!(track["items"][0]["signal_min"], -61);
    assert_eq!(track["items"][1]["clients_max"], 3);
    assert_eq!(track["items"][1]["ccq_avg"], Value::Null);

    // Ranges and parameters are checked.
    for (query, why) in [
        (
            format!(
                "start={}&end={}{t}",
                base.to_rfc3339(),
                (base - Duration::hours(1)).to_rfc3339()
            ),
            "start after end",
        ),
        (format!("bucket_secs=30{t}"), "bucket under a minute"),
        (
            format!("start={}{t}", (base - Duration::days(40)).to_rfc3339()),
            "over 31 days",
        ),
        (format!("start=yesterday{t}"), "not a time"),
        (format!("colour=red{t}"), "unknown parameter"),
    ] {
        let r = srv
            .call(
                "GET",
                &format!(
                    "/api/metrics/devices/{}/health?{}",
                    w.devices[0],
                    query.replace('+', "%2B")
                ),
                &w.root,
                None,
            )
            .await;
        assert_eq!(r.status, 422, "{why}: {:?}", r.json);
    }
    let r = srv
        .call("GET", &path("health", &format!("{t}&interface=x")), &w.root, None)
        .await;
    assert_eq!(r.status, 422);
    // Another tenant's device is not found, whoever asks.
    let other = srv
        .call("POST", "/api/tenants", &w.root, Some(json!({ "name": "Other WISP" })))
        .await;
    let r = srv
        .call(
            "GET",
            &path("health", &format!("&tenant_id={}", other.json["id"].as_str().unwrap())),
            &w.root,
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.json);
}
on_both_backends!(metrics_are_bucketed_and_ranges_checked);
