//! The per-device circuit breaker: when to try a device again after a failure. Pure: time is a
//! parameter (seconds on the agent's monotonic clock) and so is the random draw for jitter.
//!
//! - unreachable (connect refused, timeouts, TLS): exponential backoff from 30 s doubling to
//!   15 min, with full jitter (a uniform draw in [0, backoff]) so a tower's devices do not retry
//!   in lockstep. While it waits, the owner may knock on the device's port once a cycle (a TCP
//!   connect, nothing more): when it answers, the wait ends and the device is polled at once, so
//!   a device back from an outage shows within a cycle, not at the end of a 15-minute backoff. A
//!   device whose port answers but whose poll still fails gets no more knocks until its backoff
//!   runs out on its own;
//! - a broken session (fatal, protocol error, lost connection): retry at the next cycle once,
//!   then back off like unreachable;
//! - authentication failure: hold for an hour and report it once, not every cycle;
//! - a command trap: not a device failure at all.

use crate::routeros::client::FailureClass;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// First backoff, seconds (30).
    pub base_secs: f64,
    /// Cap, seconds (900).
    pub max_secs: f64,
    /// Hold after an authentication failure, seconds (3600).
    pub auth_hold_secs: f64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            base_secs: 30.0,
            max_secs: 900.0,
            auth_hold_secs: 3_600.0,
        }
    }
}

/// What the owner should do after a failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Do not try before this time.
    pub retry_at: f64,
    /// Report this failure upstream (auth failures: only the first of a streak).
    pub report: bool,
}

/// One device's breaker.
#[derive(Debug, Clone, Default)]
pub struct Breaker {
    config: BreakerConfig,
    failures: u32,
    session_failures: u32,
    retry_at: f64,
    auth_reported: bool,
    /// The wait may be cut short by a knock on the port (after an unreachable failure).
    knock_armed: bool,
    /// The attempt under way was let through by a knock.
    after_knock: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Whether a poll may be attempted at `now`.
    pub fn allows(&self, now: f64) -> bool {
        now >= self.retry_at
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether, at `now`, the owner should knock on the device's port (a plain TCP connect)
    /// instead of skipping the cycle: the device is waiting out an unreachable backoff that a
    /// knock has not already cut short in vain.
    pub fn wants_knock(&self, now: f64) -> bool {
        !self.allows(now) && self.knock_armed
    }

    /// The device's port answered a knock: the wait is over, poll it now.
    pub fn knock_answered(&mut self) {
        self.retry_at = 0.0;
        self.knock_armed = false;
        self.after_knock = true;
    }

    /// The device answered.
    pub fn success(&mut self) {
        self.failures = 0;
        self.session_failures = 0;
        self.retry_at = 0.0;
        self.auth_reported = false;
        self.knock_armed = false;
        self.after_knock = false;
    }

    /// The backoff ceiling after `failures` consecutive failures.
    pub fn ceiling(&self, failures: u32) -> f64 {
        let exp = failures.saturating_sub(1).min(30);
        (self.config.base_secs * f64::from(1u32 << exp.min(20))).min(self.config.max_secs)
    }

    /// Records a failure at `now`; `draw` is a uniform random number in [0, 1) for the jitter.
    pub fn failure(&mut self, class: FailureClass, now: f64, draw: f64) -> Verdict {
        // Knocks resume after an unreachable failure, unless a knock let this attempt through
        // (the port answers but the device still fails: wait the backoff out).
        let after_knock = std::mem::take(&mut self.after_knock);
        self.knock_armed = class == FailureClass::Unreachable && !after_knock;
        match class {
            FailureClass::Command => Verdict {
                retry_at: now,
                report: false,
            },
            FailureClass::Auth => {
                self.failures = self.failures.saturating_add(1);
                self.retry_at = now + self.config.auth_hold_secs;
                let report = !self.auth_reported;
                self.auth_reported = true;
                Verdict {
                    retry_at: self.retry_at,
                    report,
                }
            }
            FailureClass::Session if self.session_failures == 0 => {
                self.session_failures = 1;
                self.failures = self.failures.saturating_add(1);
                self.retry_at = now;
                Verdict {
                    retry_at: now,
                    report: true,
                }
            }
            FailureClass::Unreachable | FailureClass::Session => {
                self.failures = self.failures.saturating_add(1);
                self.retry_at = now + draw.clamp(0.0, 1.0) * self.ceiling(self.failures);
                Verdict {
                    retry_at: self.retry_at,
                    report: true,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_30s_to_15min_with_full_jitter() {
        let mut b = Breaker::new(BreakerConfig::default());
        let ceilings: Vec<f64> = (1..=7).map(|f| b.ceiling(f)).collect();
        assert_eq!(ceilings, vec![30.0, 60.0, 120.0, 240.0, 480.0, 900.0, 900.0]);
        let v = b.failure(FailureClass::Unreachable, 100.0, 0.5);
        assert_eq!(v.retry_at, 115.0);
        assert!(!b.allows(114.0) && b.allows(115.0));
        let v = b.failure(FailureClass::Unreachable, 200.0, 0.999);
        assert!(v.retry_at > 259.0 && v.retry_at < 260.0);
        let v = b.failure(FailureClass::Unreachable, 300.0, 0.0);
        assert_eq!(v.retry_at, 300.0, "full jitter can retry at once");
        b.success();
        assert_eq!(b.failures(), 0);
        assert!(b.allows(0.0));
    }

    #[test]
    fn a_knock_ends_an_unreachable_wait_once_per_backoff() {
        let mut b = Breaker::new(BreakerConfig::default());
        assert!(!b.wants_knock(0.0), "nothing to cut short");
        b.failure(FailureClass::Unreachable, 0.0, 0.9);
        assert!(b.wants_knock(10.0), "waiting out an unreachable backoff (until 27 s)");
        b.knock_answered();
        assert!(b.allows(10.0), "polled at once");
        // The port answered but the poll failed again: no more knocks until the backoff runs out.
        let v = b.failure(FailureClass::Unreachable, 10.0, 0.9);
        assert!(!b.wants_knock(20.0) && !b.allows(20.0));
        // The backoff runs out and the attempt fails again: knocks resume.
        b.failure(FailureClass::Unreachable, v.retry_at, 0.9);
        assert!(b.wants_knock(v.retry_at + 1.0));
        b.success();
        assert!(!b.wants_knock(0.0));
        // Held after an authentication failure: a knock would prove nothing.
        b.failure(FailureClass::Auth, 0.0, 0.5);
        assert!(!b.allows(10.0) && !b.wants_knock(10.0));
    }

    #[test]
    fn auth_failures_are_held_and_reported_once() {
        let mut b = Breaker::new(BreakerConfig::default());
        let first = b.failure(FailureClass::Auth, 0.0, 0.3);
        assert!(first.report);
        assert_eq!(first.retry_at, 3_600.0);
        let again = b.failure(FailureClass::Auth, 3_600.0, 0.3);
        assert!(!again.report, "reported once per streak");
        b.success();
        assert!(b.failure(FailureClass::Auth, 9_000.0, 0.3).report);
    }

    #[test]
    fn traps_are_not_device_failures_and_a_broken_session_retries_once_at_once() {
        let mut b = Breaker::new(BreakerConfig::default());
        let v = b.failure(FailureClass::Command, 5.0, 0.9);
        assert_eq!((v.retry_at, v.report, b.failures()), (5.0, false, 0));
        assert_eq!(b.failure(FailureClass::Session, 10.0, 0.9).retry_at, 10.0);
        assert!(b.failure(FailureClass::Session, 20.0, 0.9).retry_at > 20.0 + 50.0);
    }
}
