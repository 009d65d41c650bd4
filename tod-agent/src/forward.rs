//! The forwarder: reads the spool in order, groups records into batches, delivers them through
//! the uplink, and acknowledges the spool only after the uplink says the server committed them.
//!
//! Retries back off from 1 s to 60 s (or the server's `Retry-After`). A batch the server rejects
//! is written to `rejected/` beside the spool for an operator, acknowledged, and counted: one bad
//! record never blocks everything behind it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tod_core::AgentId;
use tod_core::telemetry::{Batch, DeviceReport};
use tokio::sync::{Notify, watch};

use crate::spool::Spool;
use crate::uplink::{Uplink, UplinkError};

/// Forwarder settings.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// The agent.
    pub agent: AgentId,
    /// Most reports in one batch.
    pub max_batch: usize,
    /// First retry delay.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Where rejected batches are kept.
    pub rejected_dir: PathBuf,
    /// After new reports arrive, wait this long for more before sending (fewer, fuller batches).
    pub linger: Duration,
}

/// Delivery counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Batches delivered.
    pub batches: u64,
    /// Reports delivered.
    pub reports: u64,
    /// Failed attempts.
    pub retries: u64,
    /// Batches rejected by the server.
    pub rejected: u64,
    /// When the last delivery succeeded (ms since the epoch).
    pub last_delivery_ms: Option<i64>,
}

/// Runs until `stop` turns true and the spool holds nothing more to send (or `stop` is set while
/// the uplink is down, in which case what is pending stays in the spool for next time).
pub async fn run(
    spool: Arc<Mutex<Spool>>,
    uplink: Arc<dyn Uplink>,
    config: ForwardConfig,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    stats: Arc<Mutex<ForwardStats>>,
) {
    let mut delay = config.retry_min;
    loop {
        let records = match spool.lock().expect("spool lock").read(config.max_batch) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spool");
                Vec::new()
            }
        };
        if records.is_empty() {
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = wake.notified() => {
                    if !config.linger.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(config.linger) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let (first, last) = (records[0].seq, records[records.len() - 1].seq);
        let mut reports = Vec::with_capacity(records.len());
        for r in &records {
            match serde_json::from_slice::<DeviceReport>(&r.payload) {
                Ok(rep) => reports.push(rep),
                Err(e) => tracing::error!(seq = r.seq, error = %e, "unreadable spooled report skipped"),
            }
        }
        let key = format!("{}-{first}-{last}", config.agent);
        let batch = Batch::new(config.agent, key, Utc::now(), reports);
        match uplink.deliver(&batch).await {
            Ok(()) => {
                delay = config.retry_min;
                if let Err(e) = spool.lock().expect("spool lock").ack(last + 1) {
                    tracing::error!(error = %e, "cannot record delivery in the spool; the batch will be sent again");
                }
                let mut s = stats.lock().expect("stats lock");
                s.batches += 1;
                s.reports += batch.reports.len() as u64;
                s.last_delivery_ms = Some(Utc::now().timestamp_millis());
            }
            Err(UplinkError::Rejected(reason)) => {
                tracing::error!(%reason, first, last, "batch rejected by the server; kept in rejected/");
                let _ = std::fs::create_dir_all(&config.rejected_dir);
                let path = config.rejected_dir.join(format!("batch-{first}-{last}.json"));
                if std::fs::write(&path, batch.to_json()).is_ok() {
                    let _ = spool.lock().expect("spool lock").ack(last + 1);
                }
                stats.lock().expect("stats lock").rejected += 1;
            }
            Err(UplinkError::Retry { reason, after }) => {
                stats.lock().expect("stats lock").retries += 1;
                let wait = after.unwrap_or(delay).min(config.retry_max);
                tracing::warn!(%reason, retry_in = ?wait, uplink = uplink.name(), "delivery failed");
                delay = (delay * 2).min(config.retry_max);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {
                        if *stop.borrow() {
                            return;
                        }
                    }
                }
            }
        }
    }
}
