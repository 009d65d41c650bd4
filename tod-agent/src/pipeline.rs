//! The agent's pipeline: poller → spool → forwarder → uplink.
//!
//! Reports are gathered for the spool's commit window (one second by default) and appended as
//! one group with one flush to disk, and the forwarder sends them on in order. Stopping stops the
//! poller first, then lets the forwarder drain what it can for a grace period; anything
//! undelivered stays in the spool for the next start.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tod_core::telemetry::DeviceReport;
use tokio::sync::{Notify, mpsc, watch};

use crate::clock::Clock;
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
        let writer = tokio::spawn(write_loop(
            rx,
            spool_sink(spool.clone()),
            wake.clone(),
            poller.clock,
            limits.commit_window,
        ));
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

    /// Changes the set of devices polled (see [`Poller::set_targets`]).
    pub async fn set_targets(&mut self, targets: Vec<crate::poll::collector::Target>) -> (usize, usize) {
        self.poller.set_targets(targets).await
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

/// Where the writer puts serialised reports: returns how many of them were stored (a prefix)
/// and the error that stopped it, if any.
type Sink = Arc<dyn Fn(&[Vec<u8>], i64) -> (usize, Option<std::io::Error>) + Send + Sync>;

fn spool_sink(spool: Arc<Mutex<Spool>>) -> Sink {
    Arc::new(move |payloads, now| spool.lock().expect("spool lock").append_many(payloads, now))
}

/// Most reports gathered into one group commit.
const GROUP_LIMIT: usize = 4096;

async fn write_loop(
    mut rx: mpsc::Receiver<DeviceReport>,
    sink: Sink,
    wake: Arc<Notify>,
    clock: Clock,
    window: Duration,
) {
    let mut buf = Vec::with_capacity(256);
    // Reports the spool refused, kept in order and retried before anything newer.
    let mut held: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let mut lost = 0u64;
    let mut open = true;
    while open || !held.is_empty() {
        let received = if !open {
            0
        } else if held.is_empty() {
            rx.recv_many(&mut buf, 256).await
        } else {
            // Retry held reports at least once a second even when no new report arrives.
            tokio::time::timeout(std::time::Duration::from_secs(1), rx.recv_many(&mut buf, 256))
                .await
                .unwrap_or(usize::MAX)
        };
        if received == 0 {
            // The poller stopped: one last attempt for what is held, then give up.
            if !open || held.is_empty() {
                break;
            }
            open = false;
        } else if open && !window.is_zero() && received != usize::MAX {
            // Group commit: what else arrives within the window goes with it, under one flush.
            let until = tokio::time::Instant::now() + window;
            while buf.len() < GROUP_LIMIT {
                let room = GROUP_LIMIT - buf.len();
                match tokio::time::timeout_at(until, rx.recv_many(&mut buf, room)).await {
                    Ok(0) => {
                        open = false;
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
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
        let sink = sink.clone();
        let now = clock.now_ms();
        match tokio::task::spawn_blocking(move || sink(&payloads, now)).await {
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
        if !open {
            break;
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tod_core::DeviceId;
    use tod_core::telemetry::PollStatus;

    #[tokio::test]
    async fn reports_within_the_commit_window_are_written_as_one_group() {
        let groups: Arc<Mutex<Vec<Vec<u64>>>> = Arc::default();
        let g = groups.clone();
        let sink: Sink = Arc::new(move |payloads, _| {
            let seqs = payloads
                .iter()
                .map(|p| serde_json::from_slice::<DeviceReport>(p).unwrap().sequence)
                .collect();
            g.lock().unwrap().push(seqs);
            (payloads.len(), None)
        });
        let (tx, rx) = mpsc::channel(16);
        let window = Duration::from_millis(400);
        let writer = tokio::spawn(write_loop(rx, sink, Arc::new(Notify::new()), Clock::System, window));
        let report = |seq| DeviceReport::new(DeviceId::from_u128(1), seq, Utc::now(), PollStatus::Online);
        for seq in 1..=4 {
            tx.send(report(seq)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            groups.lock().unwrap().is_empty(),
            "nothing is written before the window closes"
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(*groups.lock().unwrap(), vec![vec![1, 2, 3, 4]], "one group, one flush");
        // The poller stopping ends the window at once: what it gathered is written, not dropped.
        tx.send(report(5)).await.unwrap();
        drop(tx);
        writer.await.unwrap();
        assert_eq!(*groups.lock().unwrap(), vec![vec![1, 2, 3, 4], vec![5]]);
    }

    #[tokio::test]
    async fn reports_the_spool_refuses_are_held_and_written_later_in_order() {
        let stored: Arc<Mutex<Vec<u64>>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let (s, c) = (stored.clone(), calls.clone());
        // A spool that fails twice (a full disk), then takes everything.
        let sink: Sink = Arc::new(move |payloads, _| {
            if c.fetch_add(1, Ordering::SeqCst) < 2 {
                return (0, Some(std::io::Error::other("No space left on device")));
            }
            let mut s = s.lock().unwrap();
            for p in payloads {
                s.push(serde_json::from_slice::<DeviceReport>(p).unwrap().sequence);
            }
            (payloads.len(), None)
        });
        let (tx, rx) = mpsc::channel(16);
        let writer = tokio::spawn(write_loop(
            rx,
            sink,
            Arc::new(Notify::new()),
            Clock::System,
            Duration::ZERO,
        ));
        for seq in 1..=3 {
            tx.send(DeviceReport::new(
                DeviceId::from_u128(1),
                seq,
                Utc::now(),
                PollStatus::Online,
            ))
            .await
            .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        drop(tx);
        writer.await.unwrap();
        assert_eq!(
            *stored.lock().unwrap(),
            vec![1, 2, 3],
            "nothing lost, nothing twice, in order"
        );
        assert!(calls.load(Ordering::SeqCst) >= 3);
    }
}
