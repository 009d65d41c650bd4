//! The agent's wall clock: the system's, or an accelerated one that plays a day in a minute for
//! tests and benches. Everything the agent stamps — collection times and sequences, spool record
//! ages (so the age bound), batch times — reads it; waiting (poll intervals, retries) is real time
//! and scaled by whoever configures an accelerated clock.

use std::time::Instant;

use chrono::{DateTime, Utc};

/// A wall clock.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// Starts at the system time when made and runs `speed` times faster.
    Accelerated {
        /// When it was made (real).
        origin: Instant,
        /// What it read then.
        start: DateTime<Utc>,
        /// Clock seconds per real second.
        speed: f64,
    },
}

impl Clock {
    /// A clock reading the system time now and running `speed` times faster from here.
    pub fn accelerated(speed: f64) -> Self {
        Self::Accelerated {
            origin: Instant::now(),
            start: Utc::now(),
            speed: speed.max(0.0),
        }
    }

    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        match *self {
            Self::System => Utc::now(),
            Self::Accelerated { origin, start, speed } => {
                let micros = (origin.elapsed().as_secs_f64() * speed * 1e6) as i64;
                start + chrono::Duration::microseconds(micros)
            }
        }
    }

    /// The time now in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Clock seconds per real second (1 for the system clock).
    pub fn speed(&self) -> f64 {
        match *self {
            Self::System => 1.0,
            Self::Accelerated { speed, .. } => speed,
        }
    }

    /// The real time in which this clock moves `clock_secs` (for a stopped clock, never: the
    /// longest a timer takes).
    pub fn real(&self, clock_secs: f64) -> std::time::Duration {
        let speed = self.speed();
        if speed <= 0.0 {
            return std::time::Duration::MAX;
        }
        std::time::Duration::try_from_secs_f64(clock_secs.max(0.0) / speed).unwrap_or(std::time::Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accelerated_clock_runs_faster_than_the_system_clock() {
        let c = Clock::accelerated(3_600.0);
        let t0 = c.now();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let advanced = c.now() - t0;
        // 50 ms real at 3 600× is 3 min; allow a slow machine to sleep longer, never shorter.
        assert!(advanced >= chrono::Duration::seconds(180), "{advanced}");
        assert!(advanced < chrono::Duration::seconds(3_600), "{advanced}");
        let s = Clock::System.now();
        assert!((Utc::now() - s).num_seconds().abs() < 5);
        assert_eq!(c.real(7_200.0), std::time::Duration::from_secs(2));
        assert_eq!(Clock::System.real(3.0), std::time::Duration::from_secs(3));
        assert_eq!(Clock::accelerated(0.0).real(1.0), std::time::Duration::MAX);
    }
}
