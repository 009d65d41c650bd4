//! Link discovery keeps what it read between batches (each AP's links, the owners of its
//! clients' MACs). These tests change what a server kept behind its back — another replica
//! writing the same AP's links, a client roaming to another site's AP, a device deleted, link
//! aging — and
//! check, after every step, that the links are what a server that had just started (and so read
//! everything) makes of the same batches.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use tod_core::telemetry::{Batch, DeviceReport, Interface, PollStatus, Registration};
use tod_core::{DeviceId, MacAddr, TenantId};
use tod_server::store::{self, Agent, Audit, NewDevice, NewSite, Store};
use uuid::Uuid;

fn audit(chain: TenantId) -> Audit {
    Audit {
        chain,
        actor_user: None,
        actor_api_key: None,
        action: "test".into(),
        resource_type: None,
        resource_id: None,
        details: json!({}),
        ip: None,
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()
}

/// Device ids fixed by the test, so two databases hold the same fleet.
struct Fleet {
    aps: [DeviceId; 2],
    cpes: Vec<(DeviceId, MacAddr)>,
}

impl Fleet {
    fn new() -> Self {
        Self {
            aps: [DeviceId(Uuid::new_v4()), DeviceId(Uuid::new_v4())],
            cpes: (1..=3)
                .map(|i| {
                    (
                        DeviceId(Uuid::new_v4()),
                        format!("02:00:00:00:00:0{i}").parse().unwrap(),
                    )
                })
                .collect(),
        }
    }
}

/// One database with the fleet: site A (the first AP and the CPEs), site B (the second AP), an
/// agent for each; the CPEs have reported their interfaces.
struct World {
    tenant: TenantId,
    agents: [Agent; 2],
}

async fn world(s: &dyn Store, fleet: &Fleet) -> World {
    let now = start();
    let t = s
        .create_tenant("Cache ISP", None, now, &audit(store::PLATFORM_CHAIN))
        .await
        .unwrap();
    let mut agents = Vec::new();
    for (si, name) in ["A", "B"].iter().enumerate() {
        let site = s
            .create_site(
                t.id,
                NewSite {
                    name,
                    latitude: None,
                    longitude: None,
                },
                now,
            )
            .await
            .unwrap();
        let mut devices = vec![(fleet.aps[si], format!("ap-{name}"))];
        if si == 0 {
            devices.extend(
                fleet
                    .cpes
                    .iter()
                    .enumerate()
                    .map(|(i, (id, _))| (*id, format!("cpe-{i}"))),
            );
        }
        for (id, device) in &devices {
            let new = NewDevice {
                id: *id,
                api_port: 8728,
                transport: "plain",
                fingerprint: None,
                credentials: None,
                name: device,
                host: "10.0.0.1",
                site_id: Some(site.id),
            };
            s.create_device(t.id, new, now, &audit(t.id)).await.unwrap();
        }
        agents.push(
            s.create_agent(
                t.id,
                site.id,
                &format!("agent-{name}"),
                &format!("{si:064}"),
                now,
                &audit(t.id),
            )
            .await
            .unwrap(),
        );
    }
    let reports = fleet
        .cpes
        .iter()
        .map(|(id, mac)| {
            let mut r = DeviceReport::new(*id, 1, now, PollStatus::Online);
            r.interfaces = Some(vec![Interface {
                name: "wlan1".into(),
                mac: Some(*mac),
                kind: "wlan".into(),
                running: true,
                rx_bytes: None,
                tx_bytes: None,
            }]);
            r
        })
        .collect();
    s.ingest(
        &agents[0],
        &Batch::new(agents[0].id, "seed".to_owned(), now, reports),
        now,
    )
    .await
    .unwrap();
    World {
        tenant: t.id,
        agents: agents.try_into().unwrap_or_else(|_| unreachable!()),
    }
}

/// What the test does, in order.
enum Step {
    /// Site `site`'s AP reports these clients (index into the CPEs, signal) at minute `minute`,
    /// delivered through the store `via` (0, or 1: a second replica).
    Report {
        site: usize,
        minute: i64,
        clients: Vec<(usize, i16)>,
        via: usize,
    },
    /// The CPE is deleted.
    Delete(usize),
    /// Site A's agent delivers at `minute` without its AP's report (the AP fell silent).
    Quiet(i64),
    /// Link aging runs at `minute` (a minute's poll interval).
    Age(i64),
}

async fn apply(step: &Step, s: &dyn Store, w: &World, fleet: &Fleet) {
    match step {
        Step::Report {
            site, minute, clients, ..
        } => {
            let at = start() + Duration::minutes(*minute);
            let mut r = DeviceReport::new(fleet.aps[*site], *minute as u64 + 2, at, PollStatus::Online);
            r.registrations = Some(
                clients
                    .iter()
                    .map(|(c, signal)| {
                        let mut g = Registration::new("wlan1", fleet.cpes[*c].1);
                        g.signal_dbm = Some(*signal);
                        g
                    })
                    .collect(),
            );
            let agent = &w.agents[*site];
            let batch = Batch::new(agent.id, format!("m{minute}-{site}"), at, vec![r]);
            s.ingest(agent, &batch, at).await.unwrap();
        }
        Step::Delete(c) => {
            s.delete_device(w.tenant, fleet.cpes[*c].0, start(), &audit(w.tenant))
                .await
                .unwrap();
        }
        Step::Quiet(minute) => {
            let at = start() + Duration::minutes(*minute);
            let report = DeviceReport::new(fleet.cpes[0].0, *minute as u64 + 2, at, PollStatus::Online);
            let agent = &w.agents[0];
            let batch = Batch::new(agent.id, format!("quiet-{minute}"), at, vec![report]);
            s.ingest(agent, &batch, at).await.unwrap();
        }
        Step::Age(minute) => {
            s.age_fleet(start() + Duration::minutes(*minute), 60).await.unwrap();
        }
    }
}

/// Each link as (AP, CPE, state, signal, missed polls, last seen).
type Row = (DeviceId, DeviceId, String, Option<i16>, i64, DateTime<Utc>);

async fn links(s: &dyn Store, tenant: TenantId) -> Vec<Row> {
    s.list_links(tenant, None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|l| {
            (
                l.ap_device_id,
                l.cpe_device_id,
                l.state,
                l.signal_dbm,
                l.missed_polls,
                l.last_seen,
            )
        })
        .collect()
}

fn state(rows: &[Row], fleet: &Fleet, ap: usize, cpe: usize) -> Option<String> {
    rows.iter()
        .find(|r| r.0 == fleet.aps[ap] && r.1 == fleet.cpes[cpe].0)
        .map(|r| r.2.clone())
}

/// Runs the steps on `url` through `replicas` long-lived stores, and on `fresh_url` through a
/// store opened anew for each step, comparing the links after every step.
async fn same_as_a_fresh_server(url: &str, fresh_url: &str, replicas: usize) {
    let fleet = Fleet::new();
    let mut stores: Vec<std::sync::Arc<dyn Store>> = Vec::new();
    for _ in 0..replicas {
        stores.push(store::open(url).await.unwrap());
    }
    let w = world(stores[0].as_ref(), &fleet).await;
    let fresh_world = {
        let s = store::open(fresh_url).await.unwrap();
        world(s.as_ref(), &fleet).await
    };
    let report = |site, minute, clients: &[(usize, i16)], via: usize| Step::Report {
        site,
        minute,
        clients: clients.to_vec(),
        via: via % replicas,
    };
    let steps = [
        report(0, 1, &[(0, -60), (1, -62), (2, -64)], 0),
        report(0, 2, &[(0, -61), (1, -62), (2, -64)], 0),
        // Another replica takes a batch of the same AP: the first CPE's link degrades there.
        report(0, 3, &[(0, -86), (1, -63), (2, -64)], 1),
        report(0, 4, &[(0, -60), (1, -62), (2, -64)], 0),
        report(0, 5, &[(0, -60), (1, -62), (2, -64)], 1),
        report(0, 6, &[(0, -61), (1, -62), (2, -65)], 0),
        // The second CPE roams to the other site's AP: its old link goes down with that batch.
        report(1, 7, &[(1, -70)], 0),
        report(0, 8, &[(0, -60), (2, -64)], 0),
        report(0, 9, &[(0, -60), (2, -64)], 0),
        // The third CPE is deleted with its links; its MAC still shows up.
        Step::Delete(2),
        report(0, 10, &[(0, -60), (2, -64)], 0),
        report(0, 11, &[(0, -60), (2, -64)], 0),
        // The AP falls silent while its agent delivers; aging takes its links down; it returns.
        Step::Quiet(13),
        Step::Quiet(14),
        Step::Quiet(15),
        Step::Age(16),
        report(0, 17, &[(0, -60)], 0),
        report(0, 18, &[(0, -60)], 0),
    ];
    for (i, step) in steps.iter().enumerate() {
        let via = match step {
            Step::Report { via, .. } => *via,
            _ => 0,
        };
        apply(step, stores[via].as_ref(), &w, &fleet).await;
        let fresh = store::open(fresh_url).await.unwrap();
        apply(step, fresh.as_ref(), &fresh_world, &fleet).await;
        let (got, want) = (
            links(stores[0].as_ref(), w.tenant).await,
            links(fresh.as_ref(), fresh_world.tenant).await,
        );
        assert_eq!(got, want, "after step {i}, the links differ from a fresh server's");
        if matches!(step, Step::Age(_)) {
            assert_eq!(
                state(&got, &fleet, 0, 0).as_deref(),
                Some("down"),
                "aging took the silent AP's links down"
            );
        }
        drop(fresh);
    }
    let last = links(stores[0].as_ref(), w.tenant).await;
    assert_eq!(
        state(&last, &fleet, 0, 1).as_deref(),
        Some("down"),
        "the roamer's old link stays down"
    );
    assert_eq!(
        state(&last, &fleet, 1, 1).as_deref(),
        Some("discovered"),
        "and its new one is there"
    );
    assert_eq!(state(&last, &fleet, 0, 2), None, "no link to a deleted device");
    assert_ne!(
        state(&last, &fleet, 0, 0).as_deref(),
        Some("down"),
        "the first CPE's link is back: {last:?}"
    );
}

#[tokio::test]
async fn sqlite_links_after_roaming_and_deletion_are_a_fresh_servers() {
    let (db, fresh) = (common::TestDb::sqlite(), common::TestDb::sqlite());
    same_as_a_fresh_server(&db.url, &fresh.url, 1).await;
    db.drop_db().await;
    fresh.drop_db().await;
}

#[tokio::test]
async fn postgres_links_written_by_two_replicas_are_a_fresh_servers() {
    let Some(db) = common::TestDb::postgres().await else {
        return;
    };
    let Some(fresh) = common::TestDb::postgres().await else {
        return;
    };
    same_as_a_fresh_server(&db.url, &fresh.url, 2).await;
    db.drop_db().await;
    fresh.drop_db().await;
}
