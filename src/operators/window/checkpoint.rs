//! What window state machines put in each checkpoint, and take back.
//!
//! A state machine reports its changes since the last checkpoint
//! ([`CoreChanges`]): the whole state of every key that changed (or its
//! removal), the rows waiting at each stamp that changed (per key group, so
//! a restore on another number of workers hands them to the right one), and
//! a few operator-wide values. The window operator stages them under the
//! completed epoch; after a restart it hands each state machine the entries
//! of the key groups its worker owns ([`CoreRestore`]).

use crate::error::{Result, RiftError};
use crate::features::FeatureRow;
use crate::state::key_group;
use std::collections::{BTreeMap, BTreeSet};

/// (stamp, key group, the rows waiting at that stamp in that group, or `None`).
pub type PendingChange = (u64, u16, Option<Vec<u8>>);

/// A state machine's changes since its last checkpoint.
#[derive(Debug, Default)]
pub struct CoreChanges {
    /// (key, its whole state serialized, or `None` when it has none left).
    pub keys: Vec<(String, Option<Vec<u8>>)>,
    /// The rows waiting per stamp and key group (`None` once applied).
    pub pending: Vec<PendingChange>,
    /// Operator-wide values.
    pub meta: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a state machine restores: the entries of the key groups its worker owns.
#[derive(Debug, Default)]
pub struct CoreRestore {
    /// (key, its state).
    pub keys: Vec<(String, Vec<u8>)>,
    /// (stamp, rows waiting at it).
    pub pending: Vec<(u64, Vec<u8>)>,
    /// Operator-wide values.
    pub meta: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Serializes state for a checkpoint.
pub fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serialize(value).map_err(|e| RiftError::Internal(format!("window checkpoint: {e}")))
}

/// Reads state back from a checkpoint.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    bincode::deserialize(bytes).map_err(|e| RiftError::Internal(format!("window checkpoint: {e}")))
}

/// Which stamps of waiting rows changed since the last checkpoint, and which
/// key groups each one was written with.
#[derive(Debug, Default)]
pub struct PendingLog {
    changed: BTreeSet<u64>,
    written: BTreeMap<u64, BTreeSet<u16>>,
}

impl PendingLog {
    /// Rows were added at `stamp`, or it was applied.
    #[inline]
    pub fn touch(&mut self, stamp: u64) {
        self.changed.insert(stamp);
    }

    /// The changes to report: for each changed stamp, its rows per key
    /// group (`rows(stamp)` gives them, `None` once applied), and the
    /// removal of groups written before and empty now.
    pub fn changes<'r>(
        &mut self,
        mut rows: impl FnMut(u64) -> Option<Vec<&'r FeatureRow>>,
    ) -> Result<Vec<PendingChange>> {
        let mut out = Vec::new();
        for stamp in std::mem::take(&mut self.changed) {
            let mut by_group: BTreeMap<u16, Vec<&FeatureRow>> = BTreeMap::new();
            for row in rows(stamp).unwrap_or_default() {
                by_group.entry(key_group(row.key_hash())).or_default().push(row);
            }
            let before = self.written.remove(&stamp).unwrap_or_default();
            for g in before.iter().filter(|g| !by_group.contains_key(g)) {
                out.push((stamp, *g, None));
            }
            if !by_group.is_empty() {
                self.written.insert(stamp, by_group.keys().copied().collect());
            }
            for (g, group) in by_group {
                out.push((stamp, g, Some(encode(&group)?)));
            }
        }
        Ok(out)
    }

    /// Restored rows at `stamp` were written with their key groups.
    pub fn restored(&mut self, stamp: u64, rows: &[FeatureRow]) {
        let groups = self.written.entry(stamp).or_default();
        groups.extend(rows.iter().map(|r| key_group(r.key_hash())));
    }
}

/// A checkpoint store for tests of state machines: latest value per entry.
#[cfg(test)]
pub(crate) mod test_store {
    use super::*;

    /// A checkpoint store as the operator keeps it: latest value per entry.
    #[derive(Default)]
    pub(crate) struct Store {
        keys: BTreeMap<String, Vec<u8>>,
        pending: BTreeMap<(u64, u16), Vec<u8>>,
        meta: BTreeMap<Vec<u8>, Vec<u8>>,
    }

    impl Store {
        pub(crate) fn apply(&mut self, c: CoreChanges) {
            for (k, v) in c.keys {
                match v {
                    Some(v) => self.keys.insert(k, v),
                    None => self.keys.remove(&k),
                };
            }
            for (s, g, v) in c.pending {
                match v {
                    Some(v) => self.pending.insert((s, g), v),
                    None => self.pending.remove(&(s, g)),
                };
            }
            self.meta.extend(c.meta);
        }

        pub(crate) fn restore(&self) -> CoreRestore {
            CoreRestore {
                keys: self.keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                pending: self.pending.iter().map(|((s, _), v)| (*s, v.clone())).collect(),
                meta: self.meta.clone(),
            }
        }
    }
}
