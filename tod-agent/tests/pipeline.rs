//! Poller → spool → forwarder → HTTP uplink, against a real axum ingest handler that goes down
//! for a while: every report reaches the server, in per-device order, none twice.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use tod_agent::clock::Clock;
use tod_agent::forward::ForwardConfig;
use tod_agent::pipeline::Pipeline;
use tod_agent::poll::breaker::BreakerConfig;
use tod_agent::poll::scheduler::PollerConfig;
use tod_agent::sim::{SimConfig, Simulator};
use tod_agent::spool::SpoolLimits;
use tod_agent::uplink::http::HttpUplink;
use tod_core::telemetry::{Batch, PollStatus};
use tod_core::{AgentId, DeviceId};

#[derive(Default)]
struct Ingest {
    down: AtomicBool,
    batches: Mutex<Vec<Batch>>,
    refused: Mutex<u32>,
}

async fn ingest(State(st): State<Arc<Ingest>>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    if st.down.load(Ordering::SeqCst) {
        *st.refused.lock().unwrap() += 1;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("Retry-After", "1")],
            "down for maintenance",
        )
            .into_response();
    }
    match common::ingest_batch(&headers, &body) {
        Ok(b) => {
            assert_eq!(
                headers.get("idempotency-key").unwrap().to_str().unwrap(),
                b.idempotency_key
            );
            st.batches.lock().unwrap().push(b);
            StatusCode::OK.into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_survive_an_uplink_outage_in_order_and_once() {
    let sim = Simulator::start(SimConfig {
        seed: 21,
        devices: 40,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let state = Arc::new(Ingest::default());
    let app = Router::new()
        .route("/api/ingest", post(ingest))
        .with_state(state.clone());
    let server_addr = common::serve(app).await;

    let targets = common::targets(&sim, 40);
    let dir = std::env::temp_dir().join(format!("tod-pipeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let agent = AgentId::from_u128(77);
    let pipeline = Pipeline::start(
        targets,
        PollerConfig {
            interval: Duration::from_secs(1),
            breaker: BreakerConfig {
                base_secs: 0.5,
                max_secs: 1.0,
                auth_hold_secs: 60.0,
            },
            ..PollerConfig::default()
        },
        dir.join("spool"),
        SpoolLimits {
            sync_every_append: false,
            ..SpoolLimits::default()
        },
        Arc::new(HttpUplink::new(server_addr.to_string())),
        ForwardConfig {
            agent,
            max_batch: 64,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            rejected_dir: dir.join("rejected"),
            linger: Duration::from_millis(200),
            clock: Clock::System,
        },
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    state.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let pending_during_outage = pipeline.spool.lock().unwrap().stats().pending;
    state.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let spool = pipeline.spool.clone();
    let stats = pipeline.stats.clone();
    pipeline.stop(Duration::from_secs(10)).await;

    let produced = spool.lock().unwrap().stats();
    assert_eq!(
        produced.pending, 0,
        "everything delivered after the outage: {produced:?}"
    );
    assert!(
        pending_during_outage > 40,
        "reports piled up in the spool while the server was down: {pending_during_outage}"
    );
    assert!(*state.refused.lock().unwrap() > 0);
    let batches = state.batches.lock().unwrap();
    let keys: HashSet<&str> = batches.iter().map(|b| b.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), batches.len(), "no batch delivered twice");
    let mut seen: HashSet<(DeviceId, u64)> = HashSet::new();
    let mut last: HashMap<DeviceId, u64> = HashMap::new();
    let mut total = 0u64;
    for b in batches.iter() {
        assert_eq!(b.agent_id, agent);
        for r in &b.reports {
            total += 1;
            assert!(seen.insert((r.device_id, r.sequence)), "report delivered twice");
            let prev = last.insert(r.device_id, r.sequence);
            assert!(prev.is_none_or(|p| p < r.sequence), "per-device order kept");
            assert_eq!(r.status, PollStatus::Online);
        }
    }
    assert_eq!(total, produced.next_seq, "every spooled report arrived");
    assert_eq!(last.len(), 40, "every device reported");
    assert_eq!(stats.lock().unwrap().reports, total);
    let _ = std::fs::remove_dir_all(&dir);
}
