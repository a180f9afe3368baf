//! The RocksDB side of aligned window state: pane accumulators and firing
//! counts moved out of memory when it is over budget, keyed by (operator,
//! kind, start, key) so a window's panes are one key range.

use crate::error::{Result, RiftError};
use crate::features::{Accumulator, FeatureSpec};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Where window state overflows when memory is over budget.
#[derive(Clone)]
pub struct SpillConfig {
    /// The RocksDB database (shared by the process's workers).
    pub db: Arc<rocksdb::DB>,
    /// Key prefix unique to this operator instance (job, feature set, worker).
    pub prefix: Vec<u8>,
    /// Accumulators held in memory before spilling.
    pub max_entries: usize,
}

/// The RocksDB side of a window operator's state.
///
/// Two kinds of entries, each keyed by (operator, kind, start, key): a pane's
/// accumulator, merged on write, and how many times a window has fired for a
/// key (with `allowed_lateness` only), the larger count kept on write.
pub(super) struct Spill {
    pub(super) cfg: SpillConfig,
    /// Pane starts with accumulators in RocksDB.
    pub(super) panes: BTreeSet<i64>,
    /// Window starts with firing counts in RocksDB.
    fired: BTreeSet<i64>,
    /// Number of spills so far.
    pub(super) spills: u64,
}

/// One key's spilled state (see [`Spill::peek_key`]).
#[derive(Debug, Default)]
pub(super) struct SpilledKey {
    /// (pane start, accumulator).
    pub(super) panes: Vec<(i64, Accumulator)>,
    /// (window start, firing count).
    pub(super) fired: Vec<(i64, u32)>,
}

/// Entry kinds in RocksDB.
const PANE_ENTRY: u8 = 0;
const FIRED_ENTRY: u8 = 1;

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill")
            .field("panes", &self.panes.len())
            .field("spills", &self.spills)
            .finish()
    }
}

fn state_error(e: impl std::fmt::Display) -> RiftError {
    RiftError::Internal(format!("window state: {e}"))
}

impl Spill {
    pub(super) fn new(cfg: SpillConfig) -> Result<Spill> {
        let spill = Spill {
            cfg,
            panes: BTreeSet::new(),
            fired: BTreeSet::new(),
            spills: 0,
        };
        // Without checkpoints to restore from, state left by an earlier run is stale.
        let mut end = spill.cfg.prefix.clone();
        end.push(0xFF);
        spill.delete_between(&spill.cfg.prefix, &end)?;
        Ok(spill)
    }

    /// The first key of entries of `kind` starting at `start`.
    fn section(&self, kind: u8, start: i64) -> Vec<u8> {
        let mut k = self.cfg.prefix.clone();
        k.push(kind);
        k.extend_from_slice(&crate::state::time_key(start));
        k
    }

    fn entry_key(&self, kind: u8, start: i64, key: &str) -> Vec<u8> {
        let mut k = self.section(kind, start);
        k.extend_from_slice(key.as_bytes());
        k
    }

    fn delete_between(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_range(from, to);
        Ok(self.cfg.db.write(batch)?)
    }

    /// Merges pane accumulators and firing counts into RocksDB.
    pub(super) fn put(
        &mut self,
        spec: &FeatureSpec,
        panes: Vec<(i64, String, Accumulator)>,
        fired: Vec<(i64, String, u32)>,
    ) -> Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        for (pane, key, mut acc) in panes {
            let k = self.entry_key(PANE_ENTRY, pane, &key);
            if let Some(old) = self.cfg.db.get_pinned(&k)? {
                let old: Accumulator = bincode::deserialize(&old).map_err(state_error)?;
                spec.merge(&mut acc, &old);
            }
            batch.put(k, bincode::serialize(&acc).map_err(state_error)?);
            self.panes.insert(pane);
        }
        for (start, key, mut count) in fired {
            let k = self.entry_key(FIRED_ENTRY, start, &key);
            if let Some(old) = self.cfg.db.get_pinned(&k)? {
                count = count.max(decode_count(&old)?);
            }
            batch.put(k, count.to_be_bytes());
            self.fired.insert(start);
        }
        self.spills += 1;
        Ok(self.cfg.db.write(batch)?)
    }

    /// Removes and returns every spilled accumulator of a pane.
    pub(super) fn take_pane(&mut self, pane: i64) -> Result<Vec<(String, Accumulator)>> {
        if !self.panes.remove(&pane) {
            return Ok(Vec::new());
        }
        let from = self.section(PANE_ENTRY, pane);
        let to = self.section(PANE_ENTRY, pane.saturating_add(1));
        let mut out = Vec::new();
        for item in self.cfg.db.prefix_iterator(&from) {
            let (k, v) = item?;
            if !k.starts_with(&from) {
                break;
            }
            let key = String::from_utf8_lossy(&k[from.len()..]).into_owned();
            out.push((key, bincode::deserialize(&v).map_err(state_error)?));
        }
        self.delete_between(&from, &to)?;
        Ok(out)
    }

    /// Removes and returns one spilled value.
    fn take(&mut self, kind: u8, start: i64, key: &str) -> Result<Option<Vec<u8>>> {
        let known = match kind {
            PANE_ENTRY => &self.panes,
            _ => &self.fired,
        };
        if !known.contains(&start) {
            return Ok(None);
        }
        let k = self.entry_key(kind, start, key);
        let Some(v) = self.cfg.db.get(&k)? else {
            return Ok(None);
        };
        self.cfg.db.delete(&k)?;
        Ok(Some(v))
    }

    /// One key's spilled accumulators and firing counts, left in place.
    pub(super) fn peek_key(&self, key: &str) -> Result<SpilledKey> {
        let mut out = SpilledKey::default();
        for pane in &self.panes {
            if let Some(v) = self.cfg.db.get_pinned(self.entry_key(PANE_ENTRY, *pane, key))? {
                out.panes.push((*pane, bincode::deserialize(&v).map_err(state_error)?));
            }
        }
        for start in &self.fired {
            if let Some(v) = self.cfg.db.get_pinned(self.entry_key(FIRED_ENTRY, *start, key))? {
                out.fired.push((*start, decode_count(&v)?));
            }
        }
        Ok(out)
    }

    /// Removes and returns one key's spilled accumulator of a pane.
    pub(super) fn take_pane_entry(&mut self, pane: i64, key: &str) -> Result<Option<Accumulator>> {
        match self.take(PANE_ENTRY, pane, key)? {
            Some(v) => Ok(Some(bincode::deserialize(&v).map_err(state_error)?)),
            None => Ok(None),
        }
    }

    /// Removes and returns one key's spilled firing count of a window.
    pub(super) fn take_fired(&mut self, start: i64, key: &str) -> Result<Option<u32>> {
        match self.take(FIRED_ENTRY, start, key)? {
            Some(v) => Ok(Some(decode_count(&v)?)),
            None => Ok(None),
        }
    }

    /// Deletes the panes starting before `pane_limit` and the firing counts
    /// of windows starting at or before `window_bound`.
    pub(super) fn purge(&mut self, pane_limit: i64, window_bound: i64) -> Result<()> {
        for (kind, limit) in [(PANE_ENTRY, pane_limit), (FIRED_ENTRY, window_bound.saturating_add(1))] {
            let set = match kind {
                PANE_ENTRY => &mut self.panes,
                _ => &mut self.fired,
            };
            let gone: Vec<i64> = set.range(..limit).copied().collect();
            let (Some(first), Some(last)) = (gone.first().copied(), gone.last().copied()) else {
                continue;
            };
            for s in &gone {
                set.remove(s);
            }
            let from = self.section(kind, first);
            let to = self.section(kind, last.saturating_add(1));
            self.delete_between(&from, &to)?;
        }
        Ok(())
    }
}

fn decode_count(bytes: &[u8]) -> Result<u32> {
    let arr: [u8; 4] = bytes
        .try_into()
        .map_err(|_| state_error("a firing count is not 4 bytes"))?;
    Ok(u32::from_be_bytes(arr))
}
