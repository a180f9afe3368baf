//! Sinks: where results go, behind one lifecycle that follows the checkpoint.
//!
//! A [`SinkWriter`] receives the batches of one checkpoint epoch at a time
//! (`begin_epoch`, `write`), makes everything written in the epoch durable
//! but not yet visible (`pre_commit`), and, once the checkpoint of that
//! epoch is complete in the whole cluster, visible (`commit`). On start it
//! rolls forward what it pre-committed for the restored checkpoint (or
//! earlier) and discards what it staged for later epochs (`recover`). The
//! sink operator (`operators::sink`) drives it. Commits are idempotent
//! (deterministic names, recorded progress), so output of a checkpointed
//! epoch appears once whatever crashes in between.
//!
//! Kinds, chosen by name in `topology.toml`: `file` (JSON lines), `lake`
//! (Parquet, [`crate::lake::writer`]), `embedded` (the RocksDB feature store),
//! and, with the connector issues, `kafka` and `redis`.

pub mod embedded;
pub mod file;
pub mod kafka;
pub mod kafka_txn;
pub mod redis;

use crate::error::Result;

/// The write/pre-commit/commit lifecycle of a sink.
pub trait SinkWriter<T>: 'static {
    /// The records written from now on belong to checkpoint epoch `epoch`.
    fn begin_epoch(&mut self, _epoch: u64) {}

    /// Takes (drains) a batch of records into the current epoch.
    fn write(&mut self, records: &mut Vec<T>) -> Result<()>;

    /// Makes the records written since the last pre-commit durable as the
    /// output of checkpoint epoch `epoch` (staged, not yet visible).
    fn pre_commit(&mut self, epoch: u64) -> Result<()>;

    /// Makes the staged output of every epoch up to `epoch` visible (its
    /// checkpoint is complete). Must be idempotent. Returns `false` while
    /// the commit is still under way off the worker thread (a remote
    /// system's commit): the caller calls again, and counts the epoch
    /// committed only once this returns `true`.
    fn commit(&mut self, epoch: u64) -> Result<bool>;

    /// The input ended: the next commits are the last (a writer that
    /// delays visibility makes everything visible then).
    fn end_of_input(&mut self) {}

    /// Makes committed output the writer holds back (batched into larger
    /// files) visible once it is due, even when no new epoch commits (an
    /// idle source, a stop). Returns how long until it is due, if it waits.
    fn flush(&mut self) -> Result<Option<std::time::Duration>> {
        Ok(None)
    }

    /// On start: `restored` is the checkpoint the job restored (`None`:
    /// none). Output pre-committed for it or earlier epochs is committed;
    /// output staged for later epochs is discarded (it will be produced again).
    fn recover(&mut self, _restored: Option<u64>) -> Result<()> {
        Ok(())
    }
}

/// A sink writer that fans each batch out to several writers.
pub struct FanOut<T>(pub Vec<Box<dyn SinkWriter<T>>>);

impl<T: Clone + 'static> SinkWriter<T> for FanOut<T> {
    fn begin_epoch(&mut self, epoch: u64) {
        self.0.iter_mut().for_each(|w| w.begin_epoch(epoch));
    }

    fn recover(&mut self, restored: Option<u64>) -> Result<()> {
        self.0.iter_mut().try_for_each(|w| w.recover(restored))
    }

    fn end_of_input(&mut self) {
        self.0.iter_mut().for_each(|w| w.end_of_input());
    }

    fn flush(&mut self) -> Result<Option<std::time::Duration>> {
        let mut due = None;
        for w in &mut self.0 {
            if let Some(d) = w.flush()? {
                due = Some(due.map_or(d, |e: std::time::Duration| e.min(d)));
            }
        }
        Ok(due)
    }

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

    fn commit(&mut self, epoch: u64) -> Result<bool> {
        let mut done = true;
        for w in &mut self.0 {
            done &= w.commit(epoch)?;
        }
        Ok(done)
    }
}
