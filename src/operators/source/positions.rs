//! A source reader's part of each checkpoint: per partition, the next
//! offset to read and the largest event time read so far (its watermark).
//!
//! At the end of each epoch the reader stages the partitions it read from
//! in that epoch (incremental); on start it restores the partitions it is
//! assigned from the restored checkpoint, whichever worker wrote them, so a
//! checkpoint taken with N workers restores on M.

use crate::error::{Result, RiftError};
use crate::state::checkpoint::entry_key;
use crate::state::{key_group, JobState};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Where a source's positions are checkpointed.
#[derive(Clone)]
pub struct SourceCheckpoint {
    /// The job's checkpoint state.
    pub state: Arc<JobState>,
    /// The source's stable id in it (`source/{name}`).
    pub op: String,
    /// The checkpoint the run restored.
    pub restored: Option<u64>,
}

/// A partition's checkpointed position.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The next offset to read.
    pub next: u64,
    /// The largest event time read before it.
    pub max_event_time: Option<i64>,
}

const SECTION: &[u8] = b"p";

impl SourceCheckpoint {
    /// The restored positions of `partitions` (none without a restored checkpoint).
    pub fn restore(&self, partitions: &[u32]) -> Result<BTreeMap<u32, Position>> {
        if self.restored.is_none() {
            return Ok(BTreeMap::new());
        }
        let mine: BTreeSet<u32> = partitions.iter().copied().collect();
        let mut out = BTreeMap::new();
        for (_, key, value) in self.state.scan(&self.op, SECTION)? {
            let Ok(p) = <[u8; 4]>::try_from(key.as_slice()).map(u32::from_be_bytes) else {
                continue;
            };
            if mine.contains(&p) {
                let position: Position = bincode::deserialize(&value)
                    .map_err(|e| RiftError::Internal(format!("{}: position of partition {p}: {e}", self.op)))?;
                out.insert(p, position);
            }
        }
        Ok(out)
    }

    /// Stages the positions of the partitions read in `epoch`.
    pub fn stage(&self, epoch: u64, positions: &BTreeMap<u32, Position>) -> Result<()> {
        let changes = positions.iter().map(|(p, position)| {
            let value = bincode::serialize(position).unwrap_or_default();
            (
                entry_key(&self.op, SECTION, key_group(*p as u64), &p.to_be_bytes()),
                Some(value),
            )
        });
        self.state.stage(epoch, changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_restore_for_whichever_worker_now_owns_the_partition() {
        let dir = tempfile::tempdir().unwrap();
        let state = JobState::open(dir.path(), "positions").unwrap();
        let cp = SourceCheckpoint {
            state: state.clone(),
            op: "source/matches".into(),
            restored: None,
        };
        let mut written = BTreeMap::new();
        written.insert(
            0,
            Position {
                next: 120,
                max_event_time: Some(5_000),
            },
        );
        written.insert(
            3,
            Position {
                next: 7,
                max_event_time: None,
            },
        );
        cp.stage(40, &written).unwrap();
        assert!(
            cp.restore(&[0, 3]).unwrap().is_empty(),
            "nothing restored without a checkpoint"
        );
        state.complete(40).unwrap();
        let restored = SourceCheckpoint {
            restored: Some(40),
            ..cp
        };
        let mine = restored.restore(&[3, 5]).unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[&3].next, 7);
    }
}
