//! Offsets to commit back to a source once the sinks have made durable
//! every record read before them.
//!
//! After each poll the reader's positions (next offset per partition) are
//! queued with the highest stamp emitted so far. Once the job's committed
//! frontier passes that stamp, every record read before those positions is
//! durably in every sink, and the positions may be committed.

use std::collections::{BTreeMap, VecDeque};

/// Positions waiting for the sinks, oldest first.
#[derive(Debug, Default, Clone)]
pub struct OffsetCommitQueue {
    /// Next offset per partition after the last processed record.
    processed: BTreeMap<u32, u64>,
    /// Highest stamp emitted so far.
    highest_stamp: u64,
    /// (highest stamp then, positions then).
    queued: VecDeque<(u64, Vec<(u32, u64)>)>,
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

    /// Queues the current positions (after a poll that read records).
    pub fn seal(&mut self) {
        self.queued.push_back((
            self.highest_stamp,
            self.processed.iter().map(|(p, o)| (*p, *o)).collect(),
        ));
    }

    /// The next offset per partition after the last processed record.
    pub fn positions(&self) -> Vec<(u32, u64)> {
        self.processed.iter().map(|(p, o)| (*p, *o)).collect()
    }

    /// The newest positions whose records are all stamped before
    /// `committed` (the sinks' committed frontier; `None`: everything is),
    /// removing them and everything older from the queue.
    pub fn ready(&mut self, committed: Option<u64>) -> Option<Vec<(u32, u64)>> {
        let mut latest = None;
        while let Some((stamp, _)) = self.queued.front() {
            if committed.is_some_and(|f| *stamp >= f) {
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

    #[test]
    fn positions_commit_only_behind_the_sinks() {
        let mut q = OffsetCommitQueue::starting_at(&[(0, 10)]);
        q.processed(0, 10, 1_000);
        q.processed(1, 4, 1_000);
        q.seal();
        q.processed(0, 11, 3_000);
        q.seal();
        // Sinks have committed nothing at or after 1000: nothing is ready.
        assert_eq!(q.ready(Some(1_000)), None);
        // Past 1000 but not 3000: the first positions only.
        assert_eq!(q.ready(Some(2_000)), Some(vec![(0, 11), (1, 5)]));
        assert!(!q.is_empty());
        // The input ended and every sink committed: the last positions.
        assert_eq!(q.ready(None), Some(vec![(0, 12), (1, 5)]));
        assert!(q.is_empty());
        assert_eq!(q.positions(), vec![(0, 12), (1, 5)]);
    }
}
