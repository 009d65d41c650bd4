//! The simulated clock: real time, accelerated, or stepped by hand.

use std::sync::Mutex;
use std::time::Instant;

/// Simulated seconds since the world began.
#[derive(Debug)]
pub struct SimClock {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    anchor_real: Instant,
    anchor_sim: f64,
    speed: f64,
}

impl SimClock {
    /// A clock starting at `start` simulated seconds, running `speed` times real time
    /// (0 = stopped, advanced only by [`advance`](Self::advance)).
    pub fn new(start: f64, speed: f64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                anchor_real: Instant::now(),
                anchor_sim: start,
                speed: speed.max(0.0),
            }),
        }
    }

    /// Now, in simulated seconds.
    pub fn now(&self) -> f64 {
        let i = self.inner.lock().expect("clock lock");
        i.anchor_sim + i.anchor_real.elapsed().as_secs_f64() * i.speed
    }

    /// Moves the clock forward by `secs` simulated seconds.
    pub fn advance(&self, secs: f64) {
        let mut i = self.inner.lock().expect("clock lock");
        let now = i.anchor_sim + i.anchor_real.elapsed().as_secs_f64() * i.speed;
        i.anchor_sim = now + secs.max(0.0);
        i.anchor_real = Instant::now();
    }

    /// Changes the speed from now on.
    pub fn set_speed(&self, speed: f64) {
        let mut i = self.inner.lock().expect("clock lock");
        let now = i.anchor_sim + i.anchor_real.elapsed().as_secs_f64() * i.speed;
        i.anchor_sim = now;
        i.anchor_real = Instant::now();
        i.speed = speed.max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_clock_moves_only_when_advanced() {
        let c = SimClock::new(100.0, 0.0);
        assert_eq!(c.now(), 100.0);
        c.advance(60.0);
        assert_eq!(c.now(), 160.0);
        c.set_speed(1000.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(c.now() > 170.0);
    }
}
