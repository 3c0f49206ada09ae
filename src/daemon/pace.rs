//! How often the daemon reads the AMI socket. At a quiet moment it reads each event as it
//! comes; under a flood (reads keep coming less than `QUICK` apart) it reads at most once per
//! `HOLD`, taking what gathered meanwhile in one read: a wake-up per event was most of the
//! daemon's CPU at 5,000 events/s (a poll and a read each time, for one event's few hundred
//! bytes), far more than judging the events. The price is at most `HOLD` more time to ban
//! while a flood lasts, never at a quiet moment.

use std::time::{Duration, Instant};

/// Longest a flood's event waits in the socket before it is read.
pub const HOLD: Duration = Duration::from_millis(2);
/// A read this soon after the one before counts toward a flood.
const QUICK: Duration = Duration::from_millis(3);
/// Quick reads in a row that make a flood: a burst of a few (one attacker's challenge and
/// wrong answer, a phone's registration) is read as it comes.
const ENTER: u32 = 8;

#[derive(Default)]
pub struct Pace {
    last: Option<Instant>,
    quick: u32,
    hold_until: Option<Instant>,
}

impl Pace {
    /// A read that found data, at `now`.
    pub fn read(&mut self, now: Instant) {
        let quick = self.last.is_some_and(|l| now.duration_since(l) < QUICK);
        self.quick = if quick {
            self.quick.saturating_add(1)
        } else {
            0
        };
        self.last = Some(now);
        self.hold_until = (self.quick >= ENTER).then(|| now + HOLD);
    }

    /// Whether the AMI socket's input waits at `now` (it stays out of the poll set).
    pub fn holding(&self, now: Instant) -> bool {
        self.hold_until.is_some_and(|t| now < t)
    }

    /// When the socket is read again, while holding.
    pub fn next_timer(&self) -> Option<Instant> {
        self.hold_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_read_as_it_comes_and_a_flood_in_batches() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        // A burst of eight reads 100 µs apart: every one at once.
        for i in 0..8 {
            let now = t0 + Duration::from_micros(100 * i);
            p.read(now);
            assert!(!p.holding(now), "read {i}");
        }
        // The ninth and later ones 100 µs apart: a flood, held for HOLD after each read.
        let now = t0 + Duration::from_micros(800);
        p.read(now);
        assert!(p.holding(now + HOLD / 2));
        assert!(!p.holding(now + HOLD));
        assert_eq!(p.next_timer(), Some(now + HOLD));
        // Reading each time the hold ends keeps it up...
        let mut now = now;
        for _ in 0..100 {
            now += HOLD + Duration::from_micros(50);
            p.read(now);
            assert!(p.holding(now));
        }
        // ...and the first read after a quiet moment ends it.
        now += Duration::from_millis(50);
        p.read(now);
        assert!(!p.holding(now) && p.next_timer().is_none());
    }
}
