//! The poll scheduler against simulated devices over loopback: persistent sessions, reports
//! every cycle, an unreachable device backs off and recovers (and is polled within a cycle of its
//! return, its backoff notwithstanding), an auth failure is reported once.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use tod_agent::poll::breaker::BreakerConfig;
use tod_agent::poll::scheduler::{Poller, PollerConfig};
use tod_agent::routeros::client::ClientConfig;
use tod_agent::sim::state::Faults;
use tod_agent::sim::world::Role;
use tod_agent::sim::{SimConfig, Simulator};
use tod_core::DeviceId;
use tod_core::telemetry::{DeviceReport, PollStatus, WirelessPackage};
use tokio::sync::mpsc;

const N: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_devices_with_flapping_and_an_auth_failure() {
    let sim = Simulator::start(SimConfig {
        seed: 11,
        devices: N,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let id = |i: usize| DeviceId::from_u128(i as u128 + 1);
    let targets = common::targets(&sim, N);
    let flapping: Vec<usize> = (0..N).step_by(20).collect(); // 5 %
    let auth = 7;
    sim.set_faults(
        auth,
        Faults {
            auth_fail: true,
            ..Faults::default()
        },
    );
    let config = PollerConfig {
        interval: Duration::from_secs(2),
        health_every: 2,
        connect_concurrency: 16,
        client: ClientConfig {
            connect_timeout: Duration::from_millis(500),
            login_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_millis(800),
            ..ClientConfig::default()
        },
        breaker: BreakerConfig {
            base_secs: 0.5,
            max_secs: 1.0,
            auth_hold_secs: 600.0,
        },
        ..PollerConfig::default()
    };
    let (tx, mut rx) = mpsc::channel(100_000);
    let poller = Poller::start(targets, config, tx);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for &i in &flapping {
        sim.set_faults(
            i,
            Faults {
                refuse: true,
                ..Faults::default()
            },
        );
        sim.reboot(i); // drop the live session too
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for &i in &flapping {
        sim.set_faults(i, Faults::default());
    }
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    poller.stop().await;

    let mut by_device: HashMap<DeviceId, Vec<DeviceReport>> = HashMap::new();
    while let Ok(r) = rx.try_recv() {
        by_device.entry(r.device_id).or_default().push(r);
    }
    let w = sim.world();
    for i in 0..N {
        let reports = by_device.get(&id(i)).map(Vec::as_slice).unwrap_or(&[]);
        let seqs: Vec<u64> = reports.iter().map(|r| r.sequence).collect();
        assert!(
            seqs.windows(2).all(|p| p[0] < p[1]),
            "device {i}: sequences must increase: {seqs:?}"
        );
        let online: Vec<&DeviceReport> = reports.iter().filter(|r| r.status == PollStatus::Online).collect();
        if i == auth {
            assert!(online.is_empty());
            let auth_reports = reports
                .iter()
                .filter(|r| matches!(r.status, PollStatus::AuthFailed { .. }))
                .count();
            assert_eq!(auth_reports, 1, "an auth failure is reported once, not every cycle");
            continue;
        }
        if flapping.contains(&i) {
            let first_off = reports
                .iter()
                .position(|r| matches!(r.status, PollStatus::Offline { .. }));
            let first_off = first_off.unwrap_or_else(|| panic!("device {i} never reported offline: {reports:?}"));
            assert!(
                reports[first_off..].iter().any(|r| r.status == PollStatus::Online),
                "device {i} recovered"
            );
            continue;
        }
        // Healthy: one report per cycle (about five in ten seconds), all complete.
        assert!(online.len() >= 4, "device {i}: {} online reports", online.len());
        assert_eq!(online.len(), reports.len(), "device {i}: no failures");
        let d = &w.devices[i];
        for r in &online {
            let ifaces = r.interfaces.as_ref().unwrap();
            assert_eq!(ifaces.len(), d.interfaces.len());
            assert!(ifaces.iter().zip(&d.interfaces).all(|(a, b)| a.mac == Some(b.mac)));
            assert!(r.system.as_ref().unwrap().uptime_secs.is_some());
            assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        }
        assert!(
            online
                .iter()
                .any(|r| r.resources.as_ref().unwrap().temperature_c.is_some()),
            "health every 2 cycles"
        );
        assert!(
            online.iter().skip(1).all(|r| !r.interface_deltas.is_empty()),
            "deltas from the second poll on"
        );
        if d.role == Role::Ap {
            let pkg = online[0].system.as_ref().unwrap().wireless_package;
            assert_ne!(pkg, WirelessPackage::None);
            let known: Vec<tod_core::MacAddr> = d.radios.iter().flat_map(|r| r.clients.iter().map(|c| c.mac)).collect();
            for r in &online {
                let regs = r.registrations.as_ref().expect("APs always send their table");
                assert!(regs.iter().all(|g| known.contains(&g.mac)));
                assert_eq!(r.rf.as_ref().unwrap().len(), d.radios.len());
            }
        }
        if d.role == Role::Router {
            assert!(
                online.iter().all(|r| r.registrations.is_none()),
                "routers have no wireless package"
            );
        }
    }
    // Persistent sessions: a healthy device logged in once.
    let healthy = (0..N).find(|i| !flapping.contains(i) && *i != auth).unwrap();
    assert_eq!(sim.state(healthy).stats.snapshot().logins, 1);
}

/// A device back from an outage is polled within a cycle of its return, though its backoff has
/// grown far past the interval: while it waits, the poller knocks on its port each cycle (and
/// polls in full only when the backoff runs out, so a dead device is not hammered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_back_from_an_outage_is_polled_within_a_cycle_of_its_return() {
    const DOWN: usize = 8;
    let sim = Simulator::start(SimConfig {
        seed: 12,
        devices: DOWN,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let config = PollerConfig {
        interval: Duration::from_secs(1),
        client: ClientConfig {
            connect_timeout: Duration::from_millis(300),
            login_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_millis(500),
            ..ClientConfig::default()
        },
        // Ten times the interval at first, then twenty: without the knock, a return would be
        // seen up to 20 s late.
        breaker: BreakerConfig {
            base_secs: 10.0,
            max_secs: 60.0,
            auth_hold_secs: 600.0,
        },
        ..PollerConfig::default()
    };
    let (tx, mut rx) = mpsc::channel(10_000);
    let poller = Poller::start(common::targets(&sim, DOWN), config, tx);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for i in 0..DOWN {
        sim.set_faults(
            i,
            Faults {
                refuse: true,
                ..Faults::default()
            },
        );
        sim.reboot(i);
    }
    let down_at = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    for i in 0..DOWN {
        sim.set_faults(i, Faults::default());
    }
    let back_at = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    poller.stop().await;

    let mut by_device: HashMap<DeviceId, Vec<DeviceReport>> = HashMap::new();
    while let Ok(r) = rx.try_recv() {
        by_device.entry(r.device_id).or_default().push(r);
    }
    for i in 0..DOWN {
        let reports = &by_device[&DeviceId::from_u128(i as u128 + 1)];
        let failed = reports
            .iter()
            .filter(|r| r.collected_at > down_at && r.collected_at < back_at)
            .filter(|r| matches!(r.status, PollStatus::Offline { .. }))
            .count();
        // Six cycles down: the first failure (two when the dropped session is noticed first),
        // then full attempts only when the backoff (up to 10 s, then 20 s) runs out; the knocks
        // in between send no report.
        assert!(
            (1..=4).contains(&failed),
            "device {i}: {failed} failed polls in six cycles down"
        );
        let back = reports
            .iter()
            .find(|r| r.collected_at > back_at && r.status == PollStatus::Online)
            .unwrap_or_else(|| panic!("device {i} never came back: {reports:?}"));
        let after = (back.collected_at - back_at).to_std().unwrap();
        assert!(
            after < Duration::from_millis(2_500),
            "device {i}: polled {after:?} after its return"
        );
    }
}
