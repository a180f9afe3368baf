//! The watermark clock of one source reader: per partition, the largest
//! event time seen, whether it finished (bounded input) and when it last
//! produced a record (idleness). It stamps records and says how far the
//! reader's capability may advance.

use super::quantize;
use crate::config::WatermarkConfig;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct PartitionClock {
    max_event_time: Option<i64>,
    finished: bool,
    last_record: Instant,
}

/// Where a reader's partitions stand (see [`WatermarkClock::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockStatus {
    /// Every partition reached its end.
    pub all_finished: bool,
    /// Some partition is neither finished nor idle.
    pub any_active: bool,
    /// An active partition has not produced an event time yet: the
    /// capability must stay where it is.
    pub blocked: bool,
    /// The least quantized watermark of the active partitions that have one.
    pub watermark: Option<u64>,
}

/// Per-partition watermarks: `W_p = (largest event time seen) −
/// max_out_of_orderness`, quantized to the granularity.
#[derive(Debug, Clone)]
pub struct WatermarkClock {
    out_of_orderness_ms: i64,
    granularity_ms: i64,
    idle_timeout: Duration,
    partitions: BTreeMap<u32, PartitionClock>,
}

impl WatermarkClock {
    /// A clock with `settings` and watermarks floored to `granularity_ms`.
    pub fn new(settings: &WatermarkConfig, granularity_ms: i64) -> WatermarkClock {
        WatermarkClock {
            out_of_orderness_ms: settings.max_out_of_orderness.as_millis() as i64,
            granularity_ms: granularity_ms.max(1),
            idle_timeout: settings.idle_timeout,
            partitions: BTreeMap::new(),
        }
    }

    /// Starts tracking partition `p`, not idle as of `now`, with the largest
    /// event time seen so far (`None`: nothing read yet).
    pub fn add_partition(&mut self, p: u32, max_event_time: Option<i64>, now: Instant) {
        self.partitions.insert(
            p,
            PartitionClock {
                max_event_time,
                finished: false,
                last_record: now,
            },
        );
    }

    /// The out-of-orderness bound, ms.
    pub fn out_of_orderness_ms(&self) -> i64 {
        self.out_of_orderness_ms
    }

    /// Floors `watermark` to the granularity.
    pub fn quantize(&self, watermark: i64) -> u64 {
        quantize(watermark, self.granularity_ms)
    }

    /// Takes a record read from `p` at `now` with the event times it decoded
    /// to (none for a rejected record, which never moves the watermark), and
    /// returns its stamp: the partition's watermark after the record, never
    /// below `floor` (the reader's capability).
    pub fn stamp(&mut self, p: u32, event_times: impl IntoIterator<Item = i64>, now: Instant, floor: u64) -> u64 {
        let clock = self.partitions.entry(p).or_insert(PartitionClock {
            max_event_time: None,
            finished: false,
            last_record: now,
        });
        clock.last_record = now;
        for ts in event_times {
            clock.max_event_time = Some(clock.max_event_time.map_or(ts, |m| m.max(ts)));
        }
        let ooo = self.out_of_orderness_ms;
        let g = self.granularity_ms;
        clock
            .max_event_time
            .map(|m| quantize(m.saturating_sub(ooo), g))
            .unwrap_or(0)
            .max(floor)
    }

    /// Partition `p` reached its end.
    pub fn finish(&mut self, p: u32) {
        if let Some(c) = self.partitions.get_mut(&p) {
            c.finished = true;
        }
    }

    /// Silence the reader asked for (back-pressure) or records waiting for a
    /// retry are not idleness: every partition counts as active as of `now`.
    pub fn hold_idleness(&mut self, now: Instant) {
        self.partitions.values_mut().for_each(|c| c.last_record = now);
    }

    /// The largest event time seen per partition (what a checkpoint keeps).
    pub fn event_times(&self) -> Vec<(u32, Option<i64>)> {
        self.partitions.iter().map(|(p, c)| (*p, c.max_event_time)).collect()
    }

    /// Where the partitions stand at `now`.
    pub fn status(&self, now: Instant) -> ClockStatus {
        let mut status = ClockStatus {
            all_finished: true,
            any_active: false,
            blocked: false,
            watermark: None,
        };
        for c in self.partitions.values() {
            if c.finished {
                continue;
            }
            status.all_finished = false;
            if now.duration_since(c.last_record) > self.idle_timeout {
                continue;
            }
            status.any_active = true;
            match c.max_event_time {
                Some(m) => {
                    let w = quantize(m.saturating_sub(self.out_of_orderness_ms), self.granularity_ms);
                    status.watermark = Some(status.watermark.map_or(w, |x| x.min(w)));
                }
                None => status.blocked = true,
            }
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> WatermarkClock {
        let settings = WatermarkConfig {
            max_out_of_orderness: Duration::from_millis(2_000),
            idle_timeout: Duration::from_secs(10),
        };
        WatermarkClock::new(&settings, 1_000)
    }

    #[test]
    fn stamps_follow_the_partitions_own_watermark() {
        let mut c = clock();
        let now = Instant::now();
        c.add_partition(0, None, now);
        c.add_partition(1, None, now);
        // 10_500 - 2_000 = 8_500, floored to 8_000.
        assert_eq!(c.stamp(0, [10_500], now, 0), 8_000);
        // An older record does not move the watermark back.
        assert_eq!(c.stamp(0, [3_000], now, 0), 8_000);
        // A rejected record (no event time) never moves it.
        assert_eq!(c.stamp(1, [], now, 0), 0);
        // The stamp never goes below the reader's capability.
        assert_eq!(c.stamp(1, [5_000], now, 4_000), 4_000);
        assert_eq!(c.event_times(), vec![(0, Some(10_500)), (1, Some(5_000))]);
    }

    #[test]
    fn the_capability_waits_for_every_active_partition() {
        let mut c = clock();
        let t0 = Instant::now();
        c.add_partition(0, None, t0);
        c.add_partition(1, None, t0);
        c.stamp(0, [20_000], t0, 0);
        let s = c.status(t0);
        assert!(s.blocked, "partition 1 has no event time yet");
        assert!(s.any_active && !s.all_finished);
        c.stamp(1, [12_000], t0, 0);
        assert_eq!(c.status(t0).watermark, Some(10_000));
        assert!(!c.status(t0).blocked);
        // Partition 1 idle for longer than the timeout: only partition 0 counts.
        let later = t0 + Duration::from_secs(11);
        c.stamp(0, [21_000], later, 0);
        assert_eq!(c.status(later).watermark, Some(19_000));
        // Holding idleness off (back-pressure) makes it count again.
        c.hold_idleness(later);
        assert_eq!(c.status(later).watermark, Some(10_000));
        c.finish(0);
        c.finish(1);
        assert!(c.status(later).all_finished);
        assert!(!c.status(later).any_active);
    }

    #[test]
    fn a_restored_partition_resumes_its_watermark() {
        let mut c = clock();
        let now = Instant::now();
        c.add_partition(3, Some(50_000), now);
        assert_eq!(c.status(now).watermark, Some(48_000));
        assert_eq!(c.stamp(3, [1_000], now, 0), 48_000);
    }
}
