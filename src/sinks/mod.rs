//! Sinks: where results go, behind one lifecycle that follows the checkpoint.
//!
//! A [`SinkWriter`] receives batches (`write`), makes everything written in
//! an epoch durable but not yet visible (`pre_commit`), then visible
//! (`commit`). The sink operator (`operators::sink`) drives it: an epoch ends
//! every checkpoint interval and at the end of a bounded input. Writers are
//! idempotent per epoch (deterministic file names, event-time-guarded
//! feature writes), which is what lets a replay after a crash rewrite rather
//! than duplicate output.
//!
//! Kinds, chosen by name in `topology.toml`: `file` (JSON lines), `lake`
//! (Parquet, [`crate::lake::writer`]), `embedded` (the RocksDB feature store),
//! and, with the connector issues, `kafka` and `redis`.

pub mod embedded;
pub mod file;
pub mod kafka;
pub mod redis;

use crate::error::Result;

/// The write/pre-commit/commit lifecycle of a sink.
pub trait SinkWriter<T>: 'static {
    /// Takes (drains) a batch of records into the current epoch.
    fn write(&mut self, records: &mut Vec<T>) -> Result<()>;

    /// Makes the epoch's records durable (staged, not yet visible).
    fn pre_commit(&mut self, epoch: u64) -> Result<()>;

    /// Makes the epoch's staged records visible. Must be idempotent.
    fn commit(&mut self, epoch: u64) -> Result<()>;
}

/// A sink writer that fans each batch out to several writers.
pub struct FanOut<T>(pub Vec<Box<dyn SinkWriter<T>>>);

impl<T: Clone + 'static> SinkWriter<T> for FanOut<T> {
    fn write(&mut self, records: &mut Vec<T>) -> Result<()> {
        let n = self.0.len();
        for (i, w) in self.0.iter_mut().enumerate() {
            if i + 1 == n {
                w.write(records)?;
            } else {
                let mut copy = records.clone();
                w.write(&mut copy)?;
            }
        }
        records.clear();
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        self.0.iter_mut().try_for_each(|w| w.pre_commit(epoch))
    }

    fn commit(&mut self, epoch: u64) -> Result<()> {
        self.0.iter_mut().try_for_each(|w| w.commit(epoch))
    }
}
