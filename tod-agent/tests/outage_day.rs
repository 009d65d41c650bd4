//! A day-long backhaul outage on an accelerated clock (1 440×: a simulated day in a minute):
//! simulator → poller → spool → forwarder → HTTP uplink → a real axum ingest handler that
//! refuses everything for 24 simulated hours, then loses the answers to the first batches it
//! commits after the outage. Two agents poll the same towers: one with the default spool bounds
//! (72 h) delivers every report generated during the outage, in per-device order, none twice after
//! the server's batch de-duplication; one whose spool keeps 12 h drops the oldest and says so
//! upstream, with a count that matches what never arrived.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use chrono::{DateTime, Utc};
use tod_agent::clock::Clock;
use tod_agent::forward::ForwardConfig;
use tod_agent::pipeline::Pipeline;
use tod_agent::poll::breaker::BreakerConfig;
use tod_agent::poll::scheduler::PollerConfig;
use tod_agent::sim::{SimConfig, Simulator};
use tod_agent::spool::SpoolLimits;
use tod_agent::uplink::http::HttpUplink;
use tod_core::telemetry::Batch;
use tod_core::{AgentId, DeviceId};

/// Simulated seconds per real second.
const SPEED: f64 = 1_440.0;
const DEVICES: usize = 10;
const HOUR: Duration = Duration::from_millis((3_600_000.0 / SPEED) as u64);

/// An ingest endpoint that de-duplicates whole batches by idempotency key, as tod-server does.
#[derive(Default)]
struct Ingest {
    down: AtomicBool,
    /// Commit this many more batches but answer 503, as if the answer were lost.
    lose_answers: AtomicU32,
    committed: Mutex<HashMap<(AgentId, String), Batch>>,
    duplicates: AtomicU32,
    refused: AtomicU32,
}

async fn ingest(State(st): State<Arc<Ingest>>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    if st.down.load(Ordering::SeqCst) {
        st.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, [("Retry-After", "1")], "backhaul down").into_response();
    }
    let batch = match common::ingest_batch(&headers, &body) {
        Ok(b) => b,
        Err(refusal) => return refusal.into_response(),
    };
    let key = (batch.agent_id, batch.idempotency_key.clone());
    {
        let mut committed = st.committed.lock().unwrap();
        match committed.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => {
                st.duplicates.fetch_add(1, Ordering::SeqCst);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(batch);
            }
        }
    }
    let lose = st
        .lose_answers
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if lose {
        return (StatusCode::SERVICE_UNAVAILABLE, "committed, answer lost").into_response();
    }
    StatusCode::OK.into_response()
}

fn agent(
    sim: &Simulator,
    server: std::net::SocketAddr,
    id: AgentId,
    dir: &std::path::Path,
    limits: SpoolLimits,
    clock: Clock,
) -> Pipeline {
    Pipeline::start(
        common::targets(sim, DEVICES),
        PollerConfig {
            interval: HOUR / 60,
            clock,
            breaker: BreakerConfig {
                base_secs: 0.2,
                max_secs: 0.5,
                auth_hold_secs: 600.0,
            },
            ..PollerConfig::default()
        },
        dir.join("spool"),
        SpoolLimits {
            sync_every_append: false,
            ..limits
        },
        Arc::new(HttpUplink::new(server.to_string())),
        ForwardConfig {
            agent: id,
            max_batch: 500,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_millis(250),
            rejected_dir: dir.join("rejected"),
            linger: Duration::from_millis(50),
            clock,
        },
    )
    .unwrap()
}

/// The longest the machine left this process unscheduled, seen by an OS thread (outside the
/// runtime) that sleeps 5 ms at a time and measures how late it wakes. At 1 440× a one-second
/// stall of a noisy VM is a 24-minute hole in every device's history that no agent could have
/// avoided; a runtime worker blocked by the agent itself does not show here, so the test still
/// catches that.
struct StallWatch {
    worst_us: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl StallWatch {
    fn start() -> Self {
        let (worst_us, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (w, s) = (worst_us.clone(), stop.clone());
        std::thread::spawn(move || {
            let tick = Duration::from_millis(5);
            while !s.load(Ordering::Relaxed) {
                let t = std::time::Instant::now();
                std::thread::sleep(tick);
                let late = t.elapsed().saturating_sub(tick);
                w.fetch_max(late.as_micros() as u64, Ordering::Relaxed);
            }
        });
        Self { worst_us, stop }
    }

    /// The worst stall so far, in simulated time.
    fn worst_simulated(&self) -> chrono::Duration {
        chrono::Duration::microseconds((self.worst_us.load(Ordering::Relaxed) as f64 * SPEED) as i64)
    }
}

impl Drop for StallWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Every report the ingest committed from `agent`, per device in arrival order, with the largest
/// `spool_dropped` any of its batches carried.
/// Per device, its reports' (sequence, collection time) in arrival order.
type Timelines = BTreeMap<DeviceId, Vec<(u64, DateTime<Utc>)>>;

fn arrived(st: &Ingest, id: AgentId) -> (Timelines, u64) {
    let committed = st.committed.lock().unwrap();
    let mut batches: Vec<&Batch> = committed.values().filter(|b| b.agent_id == id).collect();
    // Keys are "<agent>-<first>-<last>" spool positions: order batches as the agent sent them.
    let first = |b: &Batch| -> u64 { b.idempotency_key.rsplit('-').nth(1).unwrap().parse().unwrap() };
    batches.sort_by_key(|b| first(b));
    let mut per_device = Timelines::new();
    let mut dropped = 0;
    for b in batches {
        dropped = dropped.max(b.spool_dropped);
        for r in &b.reports {
            per_device
                .entry(r.device_id)
                .or_default()
                .push((r.sequence, r.collected_at));
        }
    }
    (per_device, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_long_outage_loses_nothing_the_spool_may_keep_and_counts_what_it_may_not() {
    let sim = Simulator::start(SimConfig {
        seed: 24,
        devices: DEVICES,
        speed: SPEED,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let state = Arc::new(Ingest::default());
    let app = Router::new()
        .route("/api/ingest", post(ingest))
        .with_state(state.clone());
    let server = common::serve(app).await;

    let dir = std::env::temp_dir().join(format!("tod-outage-day-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = Clock::accelerated(SPEED);
    let (keeper, ager) = (AgentId::from_u128(0xA1), AgentId::from_u128(0xA2));
    let keeping = agent(&sim, server, keeper, &dir.join("keeper"), SpoolLimits::default(), clock);
    let ageing = agent(
        &sim,
        server,
        ager,
        &dir.join("ager"),
        SpoolLimits {
            max_age_ms: 12 * 3_600_000,
            // Small segments, so the age bound drops old data an hour or so at a time.
            segment_bytes: 256 << 10,
            ..SpoolLimits::default()
        },
        clock,
    );

    // An hour of normal service, 24 hours with the backhaul down, then service again.
    tokio::time::sleep(HOUR).await;
    let outage_start = clock.now();
    state.down.store(true, Ordering::SeqCst);
    let stalls = StallWatch::start();
    tokio::time::sleep(HOUR * 24).await;
    let machine_stall = stalls.worst_simulated();
    drop(stalls);
    let during = keeping.spool.lock().unwrap().stats();
    state.lose_answers.store(3, Ordering::SeqCst);
    state.down.store(false, Ordering::SeqCst);
    let outage_end = clock.now();
    assert!(
        outage_end - outage_start >= chrono::Duration::hours(24),
        "{outage_start} .. {outage_end}"
    );
    // Wait (real time) until both agents have delivered what they spooled before service returned.
    let spooled_before = (
        keeping.spool.lock().unwrap().stats().next_seq,
        ageing.spool.lock().unwrap().stats().next_seq,
    );
    let caught_up = async {
        loop {
            let k = keeping.spool.lock().unwrap().stats().acked;
            let a = ageing.spool.lock().unwrap().stats().acked;
            if k >= spooled_before.0 && a >= spooled_before.1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), caught_up)
        .await
        .expect("both agents catch up within two real minutes");
    let catch_up_at = clock.now();
    tokio::time::sleep(HOUR / 2).await;
    let (keeper_spool, ager_spool) = (keeping.spool.clone(), ageing.spool.clone());
    keeping.stop(Duration::from_secs(10)).await;
    ageing.stop(Duration::from_secs(10)).await;
    let (kept, aged) = (keeper_spool.lock().unwrap().stats(), ager_spool.lock().unwrap().stats());

    assert!(state.refused.load(Ordering::SeqCst) > 0, "the backhaul really was down");
    assert_eq!(
        state.lose_answers.load(Ordering::SeqCst),
        0,
        "answers were lost after the outage"
    );
    assert!(
        state.duplicates.load(Ordering::SeqCst) >= 3,
        "each batch whose answer was lost came again under the same key"
    );
    assert!(
        during.pending > (DEVICES as u64) * 24 * 60 * 8 / 10,
        "the agent kept polling through the outage: {during:?}"
    );

    // The keeper: everything, in order, once.
    assert_eq!(kept.pending, 0, "{kept:?}");
    assert_eq!(kept.dropped, 0, "the default bounds keep a day: {kept:?}");
    let (per_device, dropped_reported) = arrived(&state, keeper);
    assert_eq!(dropped_reported, 0);
    assert_eq!(per_device.len(), DEVICES, "every device reported");
    let mut total = 0u64;
    let mut unique: HashSet<(DeviceId, u64)> = HashSet::new();
    for (device, reports) in &per_device {
        for w in reports.windows(2) {
            assert!(w[0].0 < w[1].0, "{device}: per-device order kept, none twice: {w:?}");
        }
        unique.extend(reports.iter().map(|r| (*device, r.0)));
        total += reports.len() as u64;
        // Polled all through the outage: no gap in its history longer than a few intervals.
        let in_outage: Vec<DateTime<Utc>> = reports
            .iter()
            .map(|r| r.1)
            .filter(|&t| t >= outage_start && t <= outage_end)
            .collect();
        assert!(
            in_outage.len() >= 24 * 60 * 8 / 10,
            "{device}: {} reports from the outage's 1 440 polls",
            in_outage.len()
        );
        let widest = in_outage.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(
            widest <= chrono::Duration::minutes(30) + machine_stall,
            "{device}: a {widest} hole in its history (the machine's worst stall: {machine_stall})"
        );
    }
    assert_eq!(unique.len() as u64, total);
    assert_eq!(total, kept.next_seq, "every spooled report arrived exactly once");

    // The ager: the spool kept 12 h, so about half the outage is gone — counted and reported.
    assert_eq!(aged.pending, 0, "{aged:?}");
    let (per_device, dropped_reported) = arrived(&state, ager);
    let delivered: u64 = per_device.values().map(|r| r.len() as u64).sum();
    assert!(
        aged.dropped > (DEVICES as u64) * 10 * 60,
        "at least ten hours of reports aged out: {aged:?}"
    );
    assert_eq!(
        dropped_reported, aged.dropped,
        "the drop was reported upstream with its count"
    );
    // A batch in flight when its records age out is still delivered (it is in memory); those
    // records are held, not counted as dropped, so each record is one or the other.
    assert_eq!(aged.held, 0, "{aged:?}");
    assert_eq!(
        delivered + aged.dropped,
        aged.next_seq,
        "delivered {delivered} + dropped {} vs spooled {}",
        aged.dropped,
        aged.next_seq
    );
    let mut times: Vec<DateTime<Utc>> = per_device
        .values()
        .flat_map(|r| r.iter().map(|x| x.1))
        .filter(|&t| t >= outage_start && t <= outage_end)
        .collect();
    times.push(outage_start);
    times.sort();
    let hole = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    let mut hours = [0u32; 25];
    for t in &times {
        hours[((*t - outage_start).num_minutes() / 60) as usize] += 1;
    }
    assert!(
        hole > chrono::Duration::hours(10),
        "the oldest part of the outage was dropped in one piece: widest hole {hole}; reports per hour {hours:?}"
    );
    assert!(
        hours[13..24].iter().all(|&n| n as usize >= DEVICES * 60 * 8 / 10),
        "the newest 11 hours were kept whole: {hours:?}"
    );
    eprintln!(
        "outage {outage_start} .. {outage_end}, caught up at {catch_up_at}; keeper {kept:?}; ager {aged:?}, {delivered} delivered; the machine's worst stall {machine_stall}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
