//! The contract between the window operator and the state machines it runs
//! ([`WindowCore`]), what they return besides results ([`LateRow`]) and what
//! they need from their job ([`WindowEnv`]).

use super::checkpoint::{CoreChanges, CoreRestore};
use super::spill::SpillConfig;
use crate::error::{Result, RiftError};
use crate::features::{FeatureRow, WindowResult};

/// What a window operator needs from its job besides the feature set.
#[derive(Clone, Default)]
pub struct WindowEnv {
    /// The job's health, for state-backend failures.
    pub health: crate::util::JobHealth,
    /// Overflow of state to RocksDB (tumbling and sliding windows).
    pub spill: Option<SpillConfig>,
}

/// The per-worker state machine of a window operator (see the module docs).
pub trait WindowCore: 'static {
    /// Buffers a batch of rows stamped `time` (taken whole: no copy).
    fn push(&mut self, time: u64, rows: Vec<FeatureRow>);

    /// Takes a batch stamped `time` that other state machines read too (rows
    /// tagged with their group, which is ignored here): what is kept is
    /// cloned.
    fn push_shared(&mut self, time: u64, rows: &[(usize, FeatureRow)]) {
        self.push(time, rows.iter().map(|(_, row)| row.clone()).collect());
    }

    /// Takes a batch stamped `time` that no other state machine reads (rows
    /// tagged as in [`push_shared`](Self::push_shared)): rows are moved, not cloned.
    fn push_owned(&mut self, time: u64, rows: Vec<(usize, FeatureRow)>) {
        self.push(time, rows.into_iter().map(|(_, row)| row).collect());
    }

    /// Processes every buffered stamp before `frontier` (`None`: input complete)
    /// and fires what became due; late rows go to `late`.
    fn advance(&mut self, frontier: Option<u64>, out: &mut Vec<WindowResult>, late: &mut Vec<LateRow>);

    /// Number of (window, key) states held in memory.
    fn state_len(&self) -> usize;

    /// A state-backend failure since the last call (the operator reports it).
    fn take_error(&mut self) -> Option<RiftError> {
        None
    }

    /// The changes to the state since the last checkpoint (called between
    /// `advance` calls, at the end of each checkpoint epoch).
    fn checkpoint(&mut self) -> Result<CoreChanges> {
        Ok(CoreChanges::default())
    }

    /// Takes back the state of a restored checkpoint (before any row).
    fn restore(&mut self, _restored: CoreRestore) -> Result<()> {
        Ok(())
    }
}

/// A row that was too late for every window it belongs to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LateRow {
    /// Index of the feature set in its job.
    pub set: usize,
    /// The row.
    pub row: FeatureRow,
    /// The dataflow time (partition watermark) it arrived with.
    pub watermark: i64,
}
