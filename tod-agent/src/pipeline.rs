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

async fn write_loop(mut rx: mpsc::Receiver<DeviceReport>, spool: Arc<Mutex<Spool>>, wake: Arc<Notify>) {
    let mut buf = Vec::with_capacity(256);
    while rx.recv_many(&mut buf, 256).await > 0 {
        let payloads: Vec<Vec<u8>> = buf
            .drain(..)
            .map(|r| serde_json::to_vec(&r).expect("telemetry types always serialise"))
            .collect();
        let spool = spool.clone();
        let now = Utc::now().timestamp_millis();
        let written =
            tokio::task::spawn_blocking(move || spool.lock().expect("spool lock").append_many(&payloads, now)).await;
        match written {
            Ok(Ok(_)) => wake.notify_one(),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot write to the spool; these reports are lost"),
            Err(e) => tracing::error!(error = %e, "spool writer panicked"),
        }
    }
}
