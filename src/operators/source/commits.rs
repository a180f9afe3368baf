//! Offsets to commit back to a source once the sinks have made durable
//! every record read before them.
//!
//! After each poll the reader's positions (next offset per partition) are
//! queued with the latest time emitted so far (epoch, highest stamp). Once
//! the job's committed frontier has passed that time, every record read
//! before those positions is durably in every sink, and the positions may be
//! committed.

use crate::util::time::time;
use crate::util::Time;
use std::collections::{BTreeMap, VecDeque};

/// Positions waiting for the sinks, oldest first.
#[derive(Debug, Default, Clone)]
pub struct OffsetCommitQueue {
    /// Next offset per partition after the last processed record.
    processed: BTreeMap<u32, u64>,
    /// Highest stamp emitted so far.
    highest_stamp: u64,
    /// (latest time emitted then, positions then).
    queued: VecDeque<(Time, Vec<(u32, u64)>)>,
}

impl OffsetCommitQueue {
    /// Starts from `positions` (next offset per partition), as restored.
    pub fn starting_at(positions: &[(u32, u64)]) -> OffsetCommitQueue {
        OffsetCommitQueue {
            processed: positions.iter().copied().collect(),
            ..Default::default()
        }
    }

    /// A record at `offset` of partition `p` was processed, emitted at `stamp`.
    pub fn processed(&mut self, p: u32, offset: u64, stamp: u64) {
        self.processed.insert(p, offset + 1);
        self.highest_stamp = self.highest_stamp.max(stamp);
    }

    /// Queues the current positions (after a poll in `epoch` that read records).
    pub fn seal(&mut self, epoch: u64) {
        self.queued.push_back((
            time(epoch, self.highest_stamp),
            self.processed.iter().map(|(p, o)| (*p, *o)).collect(),
        ));
    }

    /// The next offset per partition after the last processed record.
    pub fn positions(&self) -> Vec<(u32, u64)> {
        self.processed.iter().map(|(p, o)| (*p, *o)).collect()
    }

    /// The newest positions whose records are all committed (`committed`
    /// says whether a time is behind the sinks' committed frontier),
    /// removing them and everything older from the queue.
    pub fn ready(&mut self, committed: impl Fn(&Time) -> bool) -> Option<Vec<(u32, u64)>> {
        let mut latest = None;
        while let Some((at, _)) = self.queued.front() {
            if !committed(at) {
                break;
            }
            latest = self.queued.pop_front().map(|(_, p)| p);
        }
        latest
    }

    /// Whether positions are waiting.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `t` is behind a frontier made of the single time `f`.
    fn behind(f: Time) -> impl Fn(&Time) -> bool {
        move |t: &Time| !(f.outer <= t.outer && f.inner <= t.inner)
    }

    #[test]
    fn positions_commit_only_behind_the_sinks() {
        let mut q = OffsetCommitQueue::starting_at(&[(0, 10)]);
        q.processed(0, 10, 1_000);
        q.processed(1, 4, 1_000);
        q.seal(7);
        q.processed(0, 11, 3_000);
        q.seal(8);
        // Sinks have committed nothing at or after (7, 1000): nothing is ready.
        assert_eq!(q.ready(behind(time(7, 1_000))), None);
        // Past epoch 7 but not 8: the first positions only.
        assert_eq!(q.ready(behind(time(8, 0))), Some(vec![(0, 11), (1, 5)]));
        assert!(!q.is_empty());
        // The input ended and every sink committed: the last positions.
        assert_eq!(q.ready(|_| true), Some(vec![(0, 12), (1, 5)]));
        assert!(q.is_empty());
        assert_eq!(q.positions(), vec![(0, 12), (1, 5)]);
    }
}
