//! Back-pressure: a source pauses while too many of its records are on
//! their way to the sinks (emitted at times the sinks' input frontier has
//! not passed yet).

use crate::util::Time;
use std::collections::VecDeque;
use timely::order::PartialOrder;

/// Records emitted per time that the sinks have not received yet.
#[derive(Debug, Clone)]
pub struct BackPressure {
    /// (time, records emitted at it), oldest first.
    in_flight: VecDeque<(Time, usize)>,
    /// Records in flight before the source pauses.
    max_in_flight: usize,
    paused: bool,
}

impl BackPressure {
    /// Pauses beyond `max_in_flight` records in flight.
    pub fn new(max_in_flight: usize) -> BackPressure {
        BackPressure {
            in_flight: VecDeque::new(),
            max_in_flight,
            paused: false,
        }
    }

    /// `records` were emitted at `time`.
    pub fn emitted(&mut self, time: Time, records: usize) {
        self.in_flight.push_back((time, records));
    }

    /// Given whether a time has reached the sinks (is behind their input
    /// frontier) and the source's own capability, whether the source should
    /// be paused. Returns `Some(paused)` when that changed, `None` when not.
    pub fn update(&mut self, received: impl Fn(&Time) -> bool, capability: Time) -> Option<bool> {
        self.in_flight.retain(|(t, _)| !received(t));
        // Records at or above our own capability can only drain once we advance: never wait for them.
        let pending: usize = self
            .in_flight
            .iter()
            .filter(|(t, _)| !capability.less_equal(t))
            .map(|(_, n)| *n)
            .sum();
        let pause = pending > self.max_in_flight;
        (pause != self.paused).then(|| {
            self.paused = pause;
            pause
        })
    }

    /// Whether the source is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::time::time;

    /// Times the sinks have received, given their frontier's watermark.
    fn behind(f: u64) -> impl Fn(&Time) -> bool {
        move |t: &Time| t.inner < f
    }

    #[test]
    fn pauses_while_the_sinks_lag_and_resumes_when_they_catch_up() {
        let mut b = BackPressure::new(100);
        b.emitted(time(1, 1_000), 80);
        b.emitted(time(1, 2_000), 80);
        // Sinks at 0, capability at 3000: 160 in flight.
        assert_eq!(b.update(behind(0), time(1, 3_000)), Some(true));
        assert!(b.paused());
        assert_eq!(b.update(behind(0), time(1, 3_000)), None, "no change");
        // Sinks passed 1000: 80 left.
        assert_eq!(b.update(behind(1_500), time(1, 3_000)), Some(false));
        assert!(!b.paused());
    }

    #[test]
    fn records_at_the_capability_never_hold_the_source() {
        let mut b = BackPressure::new(10);
        b.emitted(time(1, 5_000), 1_000);
        // They can only reach the sinks once the capability moves past 5000.
        assert_eq!(b.update(behind(0), time(1, 5_000)), None);
        assert!(!b.paused());
        assert_eq!(b.update(behind(0), time(1, 6_000)), Some(true));
        assert_eq!(b.update(|_| true, time(1, 6_000)), Some(false));
    }
}
