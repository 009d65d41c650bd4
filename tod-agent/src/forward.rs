//! The forwarder: reads the spool in order, groups records into batches, delivers them through
//! the uplink, and acknowledges the spool only after the uplink says the server committed them.
//!
//! Retries back off from 1 s to 60 s (or the server's `Retry-After`) and send the same batch
//! again — the same reports under the same idempotency key, even across a restart (the spool
//! keeps the extent of the batch in flight) — so a batch whose commit the server could not
//! acknowledge is recognised, not stored twice. Each batch carries the spool's running count of
//! dropped reports, so lost data is reported upstream. A batch the server rejects
//! is written to `rejected/` beside the spool for an operator, acknowledged, and counted: one bad
//! record never blocks everything behind it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tod_core::AgentId;
use tod_core::telemetry::{Batch, DeviceReport};
use tokio::sync::{Notify, watch};

use crate::clock::Clock;
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
    /// What batch times and delivery times read.
    pub clock: Clock,
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
    // A batch the uplink failed to deliver, sent again as it is: the same reports under the same
    // key, so if the server committed it and only its answer was lost, it recognises it.
    let mut retrying: Option<(Batch, u64, u64)> = None;
    loop {
        let next = match retrying.take() {
            Some(b) => Some(b),
            None => {
                let config = config.clone();
                on_spool(&spool, move |s| next_batch(s, &config)).await
            }
        };
        let Some((mut batch, first, last)) = next else {
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
        };
        batch.spool_dropped = on_spool(&spool, |s| s.stats().dropped).await;
        match uplink.deliver(&batch).await {
            Ok(()) => {
                delay = config.retry_min;
                if let Err(e) = on_spool(&spool, move |s| s.ack(last + 1)).await {
                    tracing::error!(error = %e, "cannot record delivery in the spool; the batch will be sent again");
                }
                let mut s = stats.lock().expect("stats lock");
                s.batches += 1;
                s.reports += batch.reports.len() as u64;
                s.last_delivery_ms = Some(config.clock.now_ms());
            }
            Err(UplinkError::Rejected(reason)) => {
                tracing::error!(%reason, first, last, "batch rejected by the server; kept in rejected/");
                let dir = config.rejected_dir.clone();
                let json = batch.to_json();
                let _ = on_spool(&spool, move |s| {
                    let _ = std::fs::create_dir_all(&dir);
                    let path = dir.join(format!("batch-{first}-{last}.json"));
                    std::fs::write(&path, json).and_then(|()| s.ack(last + 1))
                })
                .await;
                stats.lock().expect("stats lock").rejected += 1;
            }
            Err(UplinkError::Retry { reason, after }) => {
                stats.lock().expect("stats lock").retries += 1;
                let wait = after.unwrap_or(delay).min(config.retry_max);
                tracing::warn!(%reason, retry_in = ?wait, uplink = uplink.name(), "delivery failed");
                delay = (delay * 2).min(config.retry_max);
                retrying = Some((batch, first, last));
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

/// Runs `f` on the spool on a blocking thread. The spool reads files and syncs its cursor, and
/// the writer holds its lock across appends and segment syncs: waiting for it on a runtime worker
/// would stall the poller (and everything else on the runtime) for as long as the disk does.
async fn on_spool<T: Send + 'static>(spool: &Arc<Mutex<Spool>>, f: impl FnOnce(&mut Spool) -> T + Send + 'static) -> T {
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || f(&mut spool.lock().expect("spool lock")))
        .await
        .expect("spool operation panicked")
}

/// The next batch from the spool, with its first and last record, if there is anything to send.
/// The batch in flight when the agent stopped is rebuilt with the same extent (so the same key);
/// a new batch's extent is recorded before it is sent.
fn next_batch(spool: &mut Spool, config: &ForwardConfig) -> Option<(Batch, u64, u64)> {
    let mut records = match spool.read(config.max_batch) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the spool");
            return None;
        }
    };
    if let Some(end) = spool.in_flight() {
        records.retain(|r| r.seq <= end);
    }
    let (first, last) = (records.first()?.seq, records.last()?.seq);
    let mut reports = Vec::with_capacity(records.len());
    for r in &records {
        match serde_json::from_slice::<DeviceReport>(&r.payload) {
            Ok(rep) => reports.push(rep),
            Err(e) => tracing::error!(seq = r.seq, error = %e, "unreadable spooled report skipped"),
        }
    }
    if let Err(e) = spool.sending(last) {
        tracing::warn!(error = %e, "cannot record the batch in flight; after a restart it may be sent with another extent");
    }
    let key = format!("{}-{first}-{last}", config.agent);
    Some((Batch::new(config.agent, key, config.clock.now(), reports), first, last))
}
