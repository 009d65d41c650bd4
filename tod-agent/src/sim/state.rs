//! Per-device runtime state: faults that can be flipped while the simulator runs, boot time and
//! package (changed by reboots and upgrades), and counters.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::world::Package;

/// Faults of one device. All off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Refuse TCP connections (the listener is closed while set).
    pub refuse: bool,
    /// Accept connections, then never answer.
    pub silent: bool,
    /// Delay before answering a login, milliseconds.
    pub slow_login_ms: u64,
    /// Reject every login.
    pub auth_fail: bool,
    /// Fail TLS handshakes.
    pub tls_fail: bool,
    /// Delay before answering each command, milliseconds.
    pub latency_ms: u64,
    /// Write replies one byte at a time.
    pub split_replies: bool,
    /// Give interfaces a comment of this many bytes (≥ 0x4000 exercises 3-byte lengths).
    pub long_comment_bytes: usize,
    /// Close the connection halfway through multi-row replies.
    pub disconnect_mid_reply: bool,
    /// Send a reserved control byte (0xF8) instead of a reply.
    pub control_byte: bool,
    /// Powered off until this simulated time (seconds): connections are refused and sessions
    /// dropped, and an access point's clients hear nothing (their registration tables are empty).
    pub offline_until: Option<f64>,
    /// At most this many concurrent sessions; more are closed at once.
    pub max_sessions: Option<u32>,
    /// Extra path loss, dB, until `fade_until`. On an access point, on all its links (rain over
    /// the tower, an obstruction): each of its clients hears it this much weaker, and it them. On
    /// a customer radio, on its own link only (a failing radio, water in the connector).
    pub fade_db: f64,
    /// Simulated time (seconds) the fade lasts until; `None` means no fade.
    pub fade_until: Option<f64>,
    /// A fade that deepens: this many dB more each simulated day since `fade_since`, until
    /// `fade_until` (an antenna slowly knocked out of alignment, a tree growing into the path;
    /// at `fade_until` it is put right).
    pub fade_db_per_day: f64,
    /// Simulated time (seconds) the deepening began.
    pub fade_since: Option<f64>,
}

impl Faults {
    /// The extra path loss in force at simulated time `now`, dB (0 when there is none).
    pub fn fade_at(&self, now: f64) -> f64 {
        match self.fade_until {
            Some(until) if now < until && self.fade_db.is_finite() && self.fade_db_per_day.is_finite() => {
                let days = self.fade_since.map_or(0.0, |since| (now - since).max(0.0) / 86_400.0);
                self.fade_db.max(0.0) + self.fade_db_per_day.max(0.0) * days
            }
            _ => 0.0,
        }
    }
}

/// Counters of one device.
#[derive(Debug, Default)]
pub struct Stats {
    /// Successful logins.
    pub logins: AtomicU64,
    /// Rejected logins.
    pub failed_logins: AtomicU64,
    /// Commands answered.
    pub commands: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
    /// Sessions open now.
    pub sessions: AtomicU64,
    /// Sessions ever accepted.
    pub sessions_total: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Successful logins.
    pub logins: u64,
    /// Rejected logins.
    pub failed_logins: u64,
    /// Commands answered.
    pub commands: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Sessions open now.
    pub sessions: u64,
    /// Sessions ever accepted.
    pub sessions_total: u64,
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            logins: r(&self.logins),
            failed_logins: r(&self.failed_logins),
            commands: r(&self.commands),
            bytes_in: r(&self.bytes_in),
            bytes_out: r(&self.bytes_out),
            sessions: r(&self.sessions),
            sessions_total: r(&self.sessions_total),
        }
    }

    pub(crate) fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }
}

/// What changes about a device while the simulator runs.
#[derive(Debug)]
pub struct DeviceState {
    /// Faults.
    pub faults: Mutex<Faults>,
    /// Counters.
    pub stats: Stats,
    /// Runtime facts (boot time, package, reboot generation).
    pub runtime: Mutex<Runtime>,
}

/// Boot time and package.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Runtime {
    /// Simulated time of the last boot (seconds; may be negative: booted before the world began).
    pub boot_time: f64,
    /// The wireless package now (an upgrade can switch it).
    pub package: Package,
    /// Increments on every reboot; sessions of an older generation are dropped.
    pub generation: u64,
}

impl DeviceState {
    /// Fresh state.
    pub fn new(boot_time: f64, package: Package) -> Self {
        Self {
            faults: Mutex::new(Faults::default()),
            stats: Stats::default(),
            runtime: Mutex::new(Runtime {
                boot_time,
                package,
                generation: 0,
            }),
        }
    }

    /// Current faults.
    pub fn faults(&self) -> Faults {
        self.faults.lock().expect("faults lock").clone()
    }

    /// Replaces the faults.
    pub fn set_faults(&self, f: Faults) {
        *self.faults.lock().expect("faults lock") = f;
    }

    /// Current runtime facts.
    pub fn runtime(&self) -> Runtime {
        *self.runtime.lock().expect("runtime lock")
    }

    /// Reboots at simulated time `now`: uptime and counters restart, sessions drop.
    pub fn reboot(&self, now: f64) {
        let mut r = self.runtime.lock().expect("runtime lock");
        r.boot_time = now;
        r.generation += 1;
    }

    /// Switches the wireless package (an upgrade to 7.13+ moving `wireless` to `wifi`); reboots.
    pub fn switch_package(&self, package: Package, now: f64) {
        let mut r = self.runtime.lock().expect("runtime lock");
        r.package = package;
        r.boot_time = now;
        r.generation += 1;
    }
}
