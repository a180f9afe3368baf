//! The watermark board: how the source readers of one job in a process see
//! each other's watermarks, so idle readers follow the active ones.

use std::collections::BTreeMap;

/// The watermarks of one job's source readers in this process.
///
/// A reader whose partitions have all gone idle must stop holding the job's
/// watermark back (SPEC: idle partitions are left out of the minimum), yet
/// timely has no "ignore this input" switch: the reader has to advance its
/// capability. It advances to the least watermark of the job's readers that
/// are still active (other workers of its source, or the job's other
/// sources), so it never passes the job watermark they define. A source that
/// never receives a record (an empty requests topic) therefore follows the
/// job's others instead of pinning its frontier. When every reader of the
/// job in this process is idle, the job is quiet and idle readers advance
/// with the wall clock less the out-of-orderness bound (as a live stream's
/// event time would): windows close and offsets commit; a record arriving
/// later for a window that closed meanwhile is late (counted and stored).
/// Readers in other processes of a cluster are not consulted.
#[derive(Debug, Default)]
pub struct WatermarkBoard {
    /// `source/worker` → its watermark while it has an active partition.
    active: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl WatermarkBoard {
    /// Posts reader `reader`'s watermark, or `None` when it has no active partition.
    pub fn post(&self, reader: &str, watermark: Option<u64>) {
        if let Ok(mut m) = self.active.lock() {
            match watermark {
                Some(w) => m.insert(reader.to_string(), w),
                None => m.remove(reader),
            };
        }
    }

    /// The least watermark of the active readers other than `reader`.
    pub fn least_active(&self, reader: &str) -> Option<u64> {
        let m = self.active.lock().ok()?;
        m.iter().filter(|(r, _)| r.as_str() != reader).map(|(_, t)| *t).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_readers_follow_the_least_active_other_reader() {
        let board = WatermarkBoard::default();
        board.post("matches/0", Some(5_000));
        board.post("matches/1", Some(3_000));
        board.post("events/0", None);
        assert_eq!(board.least_active("events/0"), Some(3_000));
        assert_eq!(board.least_active("matches/1"), Some(5_000));
        board.post("matches/1", None);
        board.post("matches/0", None);
        assert_eq!(
            board.least_active("events/0"),
            None,
            "every reader idle: the job is quiet"
        );
    }
}
