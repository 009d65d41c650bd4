//! The poll scheduler: one task per device, each with a persistent session.
//!
//! A device's polls happen at `phase + k × interval` (± 5 % jitter), where the phase is a hash of
//! its id, so a tower's devices are spread over the interval instead of polled at once. New
//! connections (start-up, reconnects) take a permit from a semaphore so an agent restart does not
//! storm the routers with TLS handshakes. Each cycle has a deadline of 80 % of the interval. The
//! per-device [`Breaker`] decides when a failed device is tried again. Every outcome leaves as a
//! `DeviceReport` on a channel: `Online` with data, `Offline` for each failed attempt, `AuthFailed`
//! once per streak.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tod_core::DeviceId;
use tod_core::telemetry::{DeviceReport, PollStatus};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};

use super::breaker::{Breaker, BreakerConfig};
use super::collector::{Session, Target};
use crate::clock::Clock;
use crate::routeros::client::{ClientConfig, Error, FailureClass, Phase};
use crate::sim::world::{mix, unit};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// Time between two polls of one device.
    pub interval: Duration,
    /// Poll `/system/health` every N cycles.
    pub health_every: u64,
    /// Connection attempts in flight at once.
    pub connect_concurrency: usize,
    /// Client timeouts and limits.
    pub client: ClientConfig,
    /// Backoff.
    pub breaker: BreakerConfig,
    /// What collection times (and the sequences made from them) read.
    pub clock: Clock,
}

impl Default for PollerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            health_every: 5,
            connect_concurrency: 16,
            client: ClientConfig::default(),
            breaker: BreakerConfig::default(),
            clock: Clock::System,
        }
    }
}

/// What the agent knows about one device right now (for `status` and `/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DevicePollState {
    /// Last successful poll, ms since the epoch.
    pub last_ok_ms: Option<i64>,
    /// Last error, if the last attempt failed.
    pub last_error: Option<String>,
    /// Consecutive failures.
    pub failures: u32,
    /// Successful polls since start.
    pub polls_ok: u64,
    /// Failed polls since start.
    pub polls_failed: u64,
}

/// Every device's state, shared with the status writer and the metrics endpoint.
pub type StatusTable = Arc<Mutex<HashMap<DeviceId, DevicePollState>>>;

/// Running pollers, one task per device. Dropping the handle does not stop them; call
/// [`Poller::stop`]. The set of devices can change while they run ([`Poller::set_targets`]).
#[derive(Debug)]
pub struct Poller {
    tasks: HashMap<DeviceId, Running>,
    base: LoopCtx,
    status: StatusTable,
}

#[derive(Debug)]
struct Running {
    target: Target,
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Poller {
    /// Starts one task per target; reports go to `out`.
    pub fn start(targets: Vec<Target>, config: PollerConfig, out: mpsc::Sender<DeviceReport>) -> Self {
        let gate = Arc::new(Semaphore::new(config.connect_concurrency.max(1)));
        let status: StatusTable = Arc::new(Mutex::new(HashMap::new()));
        let base = LoopCtx {
            config: Arc::new(config),
            gate,
            out,
            status: status.clone(),
            start: Instant::now(),
        };
        let mut poller = Self {
            tasks: HashMap::new(),
            base,
            status,
        };
        for t in targets {
            poller.spawn(t);
        }
        poller
    }

    fn spawn(&mut self, target: Target) {
        let (stop, stop_rx) = watch::channel(false);
        self.status.lock().expect("status lock").entry(target.id).or_default();
        let task = tokio::spawn(device_loop(target.clone(), self.base.clone(), stop_rx));
        self.tasks.insert(target.id, Running { target, task, stop });
    }

    /// Polls exactly `targets` from now on: devices no longer listed stop (their state is
    /// forgotten), new ones start in their phase, and a device whose address, transport or login
    /// changed restarts with a fresh session. Unchanged devices keep their sessions. Returns how
    /// many devices were (re)started and stopped.
    pub async fn set_targets(&mut self, targets: Vec<Target>) -> (usize, usize) {
        let wanted: HashMap<DeviceId, Target> = targets.into_iter().map(|t| (t.id, t)).collect();
        let mut stopped = 0;
        let gone: Vec<DeviceId> = self
            .tasks
            .iter()
            .filter(|(id, r)| wanted.get(id) != Some(&r.target))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(r) = self.tasks.remove(&id) {
                let _ = r.stop.send(true);
                let _ = r.task.await;
                stopped += 1;
            }
            if !wanted.contains_key(&id) {
                self.status.lock().expect("status lock").remove(&id);
            }
        }
        let mut started = 0;
        for (id, t) in wanted {
            if !self.tasks.contains_key(&id) {
                self.spawn(t);
                started += 1;
            }
        }
        (started, stopped)
    }

    /// Every device's state.
    pub fn status(&self) -> StatusTable {
        self.status.clone()
    }

    /// Stops every device task and waits for them.
    pub async fn stop(self) {
        for r in self.tasks.values() {
            let _ = r.stop.send(true);
        }
        for (_, r) in self.tasks {
            let _ = r.task.await;
        }
    }
}

/// The device's offset inside the interval, from its id.
pub fn phase(device: DeviceId, interval: Duration) -> Duration {
    let h = mix(device.0.as_u128() as u64 ^ (device.0.as_u128() >> 64) as u64);
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h % ms)
}

/// A per-device sequence that survives agent restarts without stored state: the collection time
/// in milliseconds, bumped when two polls fall in the same millisecond.
fn next_sequence(last: &mut u64, at: DateTime<Utc>) -> u64 {
    let ms = at.timestamp_millis().max(0) as u64;
    *last = ms.max(*last + 1);
    *last
}

fn offline(id: DeviceId, sequence: u64, at: DateTime<Utc>, e: &Error) -> DeviceReport {
    let status = match e {
        Error::AuthFailed(reason) => PollStatus::AuthFailed { reason: reason.clone() },
        other => PollStatus::Offline {
            reason: other.to_string(),
        },
    };
    DeviceReport::new(id, sequence, at, status)
}

#[derive(Debug, Clone)]
struct LoopCtx {
    config: Arc<PollerConfig>,
    gate: Arc<Semaphore>,
    out: mpsc::Sender<DeviceReport>,
    status: StatusTable,
    start: Instant,
}

async fn device_loop(target: Target, ctx: LoopCtx, mut stop: watch::Receiver<bool>) {
    let LoopCtx {
        config,
        gate,
        out,
        status,
        start,
    } = ctx;
    let seed = mix(target.id.0.as_u128() as u64);
    let interval = config.interval;
    let deadline = interval.mul_f64(0.8);
    let phase = phase(target.id, interval);
    let mut session: Option<Session> = None;
    let mut breaker = Breaker::new(config.breaker);
    let mut sequence = 0u64;
    for cycle in 0u64.. {
        let jitter = interval.as_secs_f64() * 0.05 * (2.0 * unit(seed, cycle, 1) - 1.0);
        let due = start + phase + interval * cycle as u32;
        let due = if jitter >= 0.0 {
            due + Duration::from_secs_f64(jitter)
        } else {
            due.checked_sub(Duration::from_secs_f64(-jitter)).unwrap_or(due)
        };
        // A device added while the agent runs joins at its phase in the current interval, not by
        // catching up every cycle since the agent started.
        if due + interval < Instant::now() {
            continue;
        }
        tokio::select! {
            _ = sleep_until(due) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let now = start.elapsed().as_secs_f64();
        if breaker.wants_knock(now) && knock(&target, &gate, &config.client, deadline).await {
            breaker.knock_answered();
        }
        if !breaker.allows(now) {
            continue;
        }
        let at = config.clock.now();
        let seq = next_sequence(&mut sequence, at);
        // Boxed so an idle device task (sleeping between polls) does not carry the space of a
        // whole connect-and-collect in its state.
        let attempt = Box::pin(async {
            if session.as_ref().is_none_or(Session::is_closed) {
                session = None;
                let _permit = gate
                    .acquire()
                    .await
                    .map_err(|_| Error::Closed("shutting down".into()))?;
                session = Some(Session::open(&target, config.client.clone()).await?);
            }
            let s = session.as_mut().expect("just opened");
            s.collect(target.id, seq, at, config.health_every).await
        });
        let result = match timeout(deadline, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(Phase::Command)),
        };
        {
            let mut table = status.lock().expect("status lock");
            let st = table.entry(target.id).or_default();
            match &result {
                Ok(_) => {
                    st.last_ok_ms = Some(at.timestamp_millis());
                    st.last_error = None;
                    st.failures = 0;
                    st.polls_ok += 1;
                }
                Err(e) => {
                    st.last_error = Some(e.to_string());
                    st.failures += 1;
                    st.polls_failed += 1;
                }
            }
        }
        let report = match result {
            Ok(report) => {
                breaker.success();
                Some(report)
            }
            Err(e) => {
                let class = e.class();
                if class != FailureClass::Command {
                    session = None;
                }
                let verdict = breaker.failure(class, start.elapsed().as_secs_f64(), unit(seed, cycle, 2));
                tracing::debug!(device = %target.id, error = %e, retry_in = verdict.retry_at - now, "poll failed");
                (verdict.report && class != FailureClass::Command).then(|| offline(target.id, seq, at, &e))
            }
        };
        // Boxed like the poll itself: a report in flight should not size every idle task.
        if let Some(r) = report
            && Box::pin(out.send(r)).await.is_err()
        {
            return;
        }
    }
}

/// How long a knock watches the connection it opened. A RouterOS API (plain or TLS) waits for its
/// client to speak first, so a connection closed or reset within this moment is no answer: an API
/// service restricted to other addresses, a port forward to a host that is gone, a device not yet
/// serving. Counting it as one would cut the wait short for a poll bound to fail, and stop the
/// knocks until the backoff ran out on its own.
const KNOCK_LINGER: Duration = Duration::from_millis(200);

/// Whether the device's API port accepts a TCP connection and keeps it open for a moment
/// ([`KNOCK_LINGER`]; nothing is sent), connecting under the connect gate and timeout, and all
/// within `deadline`.
async fn knock(target: &Target, gate: &Semaphore, client: &ClientConfig, deadline: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut stream = {
        let Ok(_permit) = gate.acquire().await else {
            return false;
        };
        match timeout(
            client.connect_timeout.min(deadline),
            tokio::net::TcpStream::connect(target.addr),
        )
        .await
        {
            Ok(Ok(s)) => s,
            _ => return false,
        }
    };
    let mut byte = [0u8; 1];
    match timeout(KNOCK_LINGER.min(deadline), stream.read(&mut byte)).await {
        // Open and silent, as an API waiting for a login.
        Err(_) => true,
        // Something to say is an answer too; closed (0) or reset is not.
        Ok(Ok(n)) => n > 0,
        Ok(Err(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_spread_devices_over_the_interval() {
        let interval = Duration::from_secs(60);
        let mut buckets = [0u32; 6];
        for i in 0..600u128 {
            let p = phase(DeviceId::from_u128(i + 1), interval);
            assert!(p < interval);
            buckets[(p.as_secs() / 10) as usize] += 1;
        }
        assert!(buckets.iter().all(|&b| (60..=140).contains(&b)), "{buckets:?}");
    }

    #[tokio::test]
    async fn a_knock_is_answered_by_a_port_that_stays_open_not_by_one_that_closes_at_once() {
        use crate::routeros::client::{Credentials, Transport};
        let target = |addr| Target {
            id: DeviceId::from_u128(1),
            addr,
            host: "127.0.0.1".into(),
            transport: Transport::Plain,
            credentials: Credentials {
                username: "admin".into(),
                password: String::new(),
            },
        };
        let gate = Semaphore::new(1);
        let client = ClientConfig::default();
        let deadline = Duration::from_secs(2);
        // Accepts and holds the connection, as an API waiting for its login.
        let holding = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let holding_addr = holding.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let (s, _) = holding.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(s);
        });
        assert!(knock(&target(holding_addr), &gate, &client, deadline).await);
        // Accepts and closes at once, as an address-restricted API service.
        let closing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closing_addr = closing.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = closing.accept().await else { return };
                drop(s);
            }
        });
        assert!(!knock(&target(closing_addr), &gate, &client, deadline).await);
        // Nothing listening: refused.
        let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone_addr = gone.local_addr().unwrap();
        drop(gone);
        assert!(!knock(&target(gone_addr), &gate, &client, deadline).await);
        held.abort();
    }

    #[test]
    fn sequences_increase_even_within_one_millisecond() {
        let mut last = 0;
        let at = Utc::now();
        let a = next_sequence(&mut last, at);
        let b = next_sequence(&mut last, at);
        assert!(b > a);
        assert!(
            next_sequence(&mut last, at - chrono::Duration::seconds(5)) > b,
            "a clock step back never reuses a number"
        );
    }
}
