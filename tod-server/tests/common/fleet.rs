//! A small fleet for API tests: a tenant with two sites, devices, an agent, and reports that
//! agent delivers over `POST /api/ingest`.

use chrono::{DateTime, Utc};
use serde_json::json;
use tod_core::telemetry::{Batch, DeviceReport, PollStatus, Registration};
use tod_core::{AgentId, DeviceId, MacAddr};

use super::{ADMIN_EMAIL, ADMIN_PASSWORD, Auth, TestServer};

pub struct World {
    pub tenant: String,
    pub sites: Vec<String>,
    pub devices: Vec<String>,
    pub agent: String,
    pub token: String,
    pub root: Auth,
}

/// A tenant with two sites: three devices at the first, one at the second, one with no site; an
/// agent for the first site.
pub async fn world(srv: &TestServer) -> World {
    let root = srv.bearer(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let t = srv
        .call("POST", "/api/tenants", &root, Some(json!({ "name": "Fleet WISP" })))
        .await;
    let tenant = t.json["id"].as_str().unwrap().to_owned();
    let mut sites = Vec::new();
    for name in ["Alpha Tower", "Bravo Tower"] {
        let s = srv
            .call(
                "POST",
                &format!("/api/tenants/{tenant}/sites"),
                &root,
                Some(json!({ "name": name, "latitude": -33.9, "longitude": 18.4 })),
            )
            .await;
        sites.push(s.json["id"].as_str().unwrap().to_owned());
    }
    let mut devices = Vec::new();
    for (i, site) in [Some(0), Some(0), Some(0), Some(1), None].into_iter().enumerate() {
        let mut body = json!({ "name": format!("dev-{i}"), "host": format!("10.0.0.{}", i + 1) });
        if let Some(s) = site {
            body["site_id"] = json!(sites[s]);
        }
        let d = srv
            .call("POST", &format!("/api/tenants/{tenant}/devices"), &root, Some(body))
            .await;
        assert_eq!(d.status, 201, "{:?}", d.json);
        devices.push(d.json["id"].as_str().unwrap().to_owned());
    }
    let a = srv
        .call(
            "POST",
            &format!("/api/tenants/{tenant}/agents"),
            &root,
            Some(json!({ "name": "alpha-agent", "site_id": sites[0] })),
        )
        .await;
    World {
        tenant,
        sites,
        devices,
        agent: a.json["id"].as_str().unwrap().to_owned(),
        token: a.json["token"].as_str().unwrap().to_owned(),
        root,
    }
}

pub async fn deliver(srv: &TestServer, w: &World, key: &str, reports: Vec<DeviceReport>) {
    let batch = Batch::new(w.agent.parse::<AgentId>().unwrap(), key, Utc::now(), reports);
    let r = super::request(
        srv.addr,
        "POST",
        "/api/ingest",
        &Auth::Bearer(w.token.clone()),
        Some(String::from_utf8(batch.to_json()).unwrap()),
        "application/json",
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
}

pub fn ap_report(device: &str, seq: u64, at: DateTime<Utc>, client: MacAddr, dbm: i16) -> DeviceReport {
    let mut r = DeviceReport::new(device.parse::<DeviceId>().unwrap(), seq, at, PollStatus::Online);
    let mut g = Registration::new("wlan1", client);
    g.signal_dbm = Some(dbm);
    r.registrations = Some(vec![g]);
    r
}

/// A CPE's report: its radio interface, whose MAC its AP's registration table shows.
pub fn cpe_report(device: &str, at: DateTime<Utc>, mac: MacAddr) -> DeviceReport {
    let mut r = DeviceReport::new(device.parse().unwrap(), 1, at, PollStatus::Online);
    r.interfaces = Some(vec![tod_core::telemetry::Interface {
        name: "wlan1".into(),
        mac: Some(mac),
        kind: "wlan".into(),
        running: true,
        rx_bytes: None,
        tx_bytes: None,
    }]);
    r
}

/// Deletes a device's registrations older than `cutoff` straight in the database, behind the
/// server's back (so a test can show what is read from the hourly sums); how many went.
pub async fn delete_registrations_before(url: &str, device: &str, cutoff: DateTime<Utc>) -> u64 {
    use sqlx::Connection;
    let delete = "DELETE FROM registrations WHERE device_id = $1 AND collected_at < $2";
    let device: uuid::Uuid = device.parse().unwrap();
    macro_rules! on {
        ($conn:ty) => {{
            let mut c = <$conn>::connect(url).await.unwrap();
            sqlx::query(delete)
                .bind(device)
                .bind(cutoff)
                .execute(&mut c)
                .await
                .unwrap()
                .rows_affected()
        }};
    }
    if url.starts_with("postgres") {
        on!(sqlx::PgConnection)
    } else {
        on!(sqlx::SqliteConnection)
    }
}
