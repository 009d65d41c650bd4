//! The agent's pipeline: poller → spool → forwarder → uplink.
//!
//! Reports are appended to the spool as they come (group-committed), and the forwarder sends
//! them on in order. Stopping stops the poller first, then lets the forwarder drain what it can
//! for a grace period; anything undelivered stays in the spool for the next start.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tod_core::telemetry::DeviceReport;
use tokio::sync::{Notify, mpsc, watch};

use crate::forward::{self, ForwardConfig, ForwardStats};
use crate::poll::collector::Target;
use crate::poll::scheduler::{Poller, PollerConfig, StatusTable};
use crate::spool::{Spool, SpoolLimits};
use crate::uplink::Uplink;

/// A running agent pipeline.
#[derive(Debug)]
pub struct Pipeline {
    poller: Poller,
    writer: tokio::task::JoinHandle<()>,
    forwarder: tokio::task::JoinHandle<()>,
    stop_forwarder: watch::Sender<bool>,
    /// The spool (for status and tests).
    pub spool: Arc<Mutex<Spool>>,
    /// Delivery counters.
    pub stats: Arc<Mutex<ForwardStats>>,
    /// Per-device poll state.
    pub devices: StatusTable,
}

impl Pipeline {
    /// Opens the spool and starts polling and forwarding.
    pub fn start(
        targets: Vec<Target>,
        poller: PollerConfig,
        spool_dir: PathBuf,
        limits: SpoolLimits,
        uplink: Arc<dyn Uplink>,
        forward: ForwardConfig,
    ) -> std::io::Result<Self> {
        let spool = Arc::new(Mutex::new(Spool::open(spool_dir, limits)?));
        let (tx, rx) = mpsc::channel::<DeviceReport>(4096);
        let wake = Arc::new(Notify::new());
        let writer = tokio::spawn(write_loop(rx, spool.clone(), wake.clone()));
        let (stop_forwarder, stop_rx) = watch::channel(false);
        let stats = Arc::new(Mutex::new(ForwardStats::default()));
        let forwarder = tokio::spawn(forward::run(
            spool.clone(),
            uplink,
            forward,
            wake,
            stop_rx,
            stats.clone(),
        ));
        let poller = Poller::start(targets, poller, tx);
        let devices = poller.status();
        Ok(Self {
            poller,
            writer,
            forwarder,
            stop_forwarder,
            spool,
            stats,
            devices,
        })
    }

    /// Stops polling, writes what was collected, and gives the forwarder `grace` to deliver.
    pub async fn stop(self, grace: Duration) {
        self.poller.stop().await;
        let _ = self.writer.await;
        let _ = self.stop_forwarder.send(true);
        let mut forwarder = self.forwarder;
        if tokio::time::timeout(grace, &mut forwarder).await.is_err() {
            forwarder.abort();
        }
    }
}

/// Most reports kept in memory while the spool cannot be written (full disk, I/O errors).
const HOLD_LIMIT: usize = 100_000;

async fn write_loop(mut rx: mpsc::Receiver<DeviceReport>, spool: Arc<Mutex<Spool>>, wake: Arc<Notify>) {
    let mut buf = Vec::with_capacity(256);
    // Reports the spool refused, kept in order and retried before anything newer.
    let mut held: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let mut lost = 0u64;
    loop {
        let received = if held.is_empty() {
            rx.recv_many(&mut buf, 256).await
        } else {
            // Retry held reports at least once a second even when no new report arrives.
            match tokio::time::timeout(std::time::Duration::from_secs(1), rx.recv_many(&mut buf, 256)).await {
                Ok(n) => n,
                Err(_) => usize::MAX,
            }
        };
        if received == 0 {
            break;
        }
        held.extend(
            buf.drain(..)
                .map(|r| serde_json::to_vec(&r).expect("telemetry types always serialise")),
        );
        while held.len() > HOLD_LIMIT {
            held.pop_front();
            lost += 1;
        }
        let payloads: Vec<Vec<u8>> = held.iter().cloned().collect();
        let spool = spool.clone();
        let now = Utc::now().timestamp_millis();
        let written =
            tokio::task::spawn_blocking(move || spool.lock().expect("spool lock").append_many(&payloads, now)).await;
        match written {
            Ok((n, failure)) => {
                held.drain(..n);
                if n > 0 {
                    wake.notify_one();
                }
                if let Some(e) = failure {
                    tracing::error!(error = %e, held = held.len(), lost, "cannot write to the spool; keeping reports in memory");
                }
            }
            Err(e) => tracing::error!(error = %e, "spool writer panicked"),
        }
    }
    if !held.is_empty() || lost > 0 {
        tracing::error!(
            held = held.len(),
            lost,
            "stopping with reports the spool could not take"
        );
    }
}
