//! Back-pressure: a source pauses while too many of its records are on
//! their way to the sinks (emitted at stamps the sinks' input frontier has
//! not passed yet).

use std::collections::VecDeque;

/// Records emitted per stamp that the sinks have not received yet.
#[derive(Debug, Clone)]
pub struct BackPressure {
    /// (stamp, records emitted at it), oldest first.
    in_flight: VecDeque<(u64, usize)>,
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

    /// `records` were emitted at `stamp`.
    pub fn emitted(&mut self, stamp: u64, records: usize) {
        self.in_flight.push_back((stamp, records));
    }

    /// Given the sinks' input frontier (`None`: they received everything)
    /// and the source's own capability, whether the source should be paused.
    /// Returns `Some(paused)` when that changed, `None` when it did not.
    pub fn update(&mut self, sinks: Option<u64>, capability: u64) -> Option<bool> {
        while self
            .in_flight
            .front()
            .is_some_and(|(t, _)| sinks.is_none_or(|f| *t < f))
        {
            self.in_flight.pop_front();
        }
        // Records at or above our own capability can only drain once we advance: never wait for them.
        let pending: usize = self
            .in_flight
            .iter()
            .filter(|(t, _)| *t < capability)
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

    #[test]
    fn pauses_while_the_sinks_lag_and_resumes_when_they_catch_up() {
        let mut b = BackPressure::new(100);
        b.emitted(1_000, 80);
        b.emitted(2_000, 80);
        // Sinks at 0, capability at 3000: 160 in flight.
        assert_eq!(b.update(Some(0), 3_000), Some(true));
        assert!(b.paused());
        assert_eq!(b.update(Some(0), 3_000), None, "no change");
        // Sinks passed 1000: 80 left.
        assert_eq!(b.update(Some(1_500), 3_000), Some(false));
        assert!(!b.paused());
    }

    #[test]
    fn records_at_the_capability_never_hold_the_source() {
        let mut b = BackPressure::new(10);
        b.emitted(5_000, 1_000);
        // They can only reach the sinks once the capability moves past 5000.
        assert_eq!(b.update(Some(0), 5_000), None);
        assert!(!b.paused());
        assert_eq!(b.update(Some(0), 6_000), Some(true));
        assert_eq!(b.update(None, 6_000), Some(false));
    }
}
