//! Per-key operator state, checkpointed incrementally.
//!
//! An operator that keeps one value per key (a live match, a tally) marks the
//! keys it changes with [`KeyedState::touch`]; at the end of each epoch
//! [`KeyedState::stage`] writes just those keys into the job's checkpoint
//! state (present values whole, removed ones deleted), so an unchanged key
//! is never rewritten. Keys are placed in key groups by their hash: a
//! worker restores the groups it owns ([`KeyedState::restore`]), whatever
//! the worker count of the run that wrote them, provided the operator's
//! input is routed by [`KeyedState::route`].

use super::checkpoint::{key_group, OperatorState};
use crate::error::{Result, RiftError};
use crate::util::stable_hash;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeSet;
use std::marker::PhantomData;

/// Values by string key in one section of an operator's checkpoint state.
pub struct KeyedState<V> {
    state: OperatorState,
    section: &'static [u8],
    /// Keys changed since the last stage.
    dirty: BTreeSet<String>,
    _value: PhantomData<V>,
}

impl<V: Serialize + DeserializeOwned> KeyedState<V> {
    /// The values of `section` of `state`.
    pub fn new(state: OperatorState, section: &'static [u8]) -> KeyedState<V> {
        KeyedState {
            state,
            section,
            dirty: BTreeSet::new(),
            _value: PhantomData,
        }
    }

    /// The exchange route of `key`: its key group, so the worker that receives
    /// a key's records is the one that restores its state.
    pub fn route(key: &str) -> u64 {
        key_group(stable_hash(key.as_bytes())) as u64
    }

    /// The first epoch of this run (after the restored checkpoint).
    pub fn first_epoch(&self) -> u64 {
        self.state.first_epoch()
    }

    /// Marks `key` as changed (or removed).
    pub fn touch(&mut self, key: &str) {
        if !self.dirty.contains(key) {
            self.dirty.insert(key.to_string());
        }
    }

    /// Stages every changed key for checkpoint `epoch`, as `current` has it now.
    pub fn stage<'v>(&mut self, epoch: u64, current: impl Fn(&str) -> Option<&'v V>) -> Result<()>
    where
        V: 'v,
    {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let mut changes = Vec::with_capacity(self.dirty.len());
        for key in std::mem::take(&mut self.dirty) {
            let value = match current(&key) {
                Some(v) => Some(
                    bincode::serialize(v)
                        .map_err(|e| RiftError::Internal(format!("{}: state of `{key}`: {e}", self.state.op)))?,
                ),
                None => None,
            };
            changes.push((
                self.state
                    .key(self.section, stable_hash(key.as_bytes()), key.as_bytes()),
                value,
            ));
        }
        self.state.stage(epoch, changes)
    }

    /// The restored values of the key groups `worker` of `peers` owns.
    pub fn restore(&self, worker: usize, peers: usize) -> Result<Vec<(String, V)>> {
        let mut out = Vec::new();
        for (key, value) in self.state.restore(self.section, worker, peers)? {
            let key = String::from_utf8(key)
                .map_err(|e| RiftError::Internal(format!("{}: a restored key is not UTF-8: {e}", self.state.op)))?;
            let value = bincode::deserialize(&value)
                .map_err(|e| RiftError::Internal(format!("{}: restoring `{key}`: {e}", self.state.op)))?;
            out.push((key, value));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::JobState;
    use std::collections::HashMap;

    fn operator(dir: &std::path::Path, restored: Option<u64>) -> OperatorState {
        OperatorState {
            state: JobState::open(dir, "job").unwrap(),
            op: "counts".into(),
            restored,
        }
    }

    #[test]
    fn only_touched_keys_are_staged_and_a_restore_splits_them_by_owner() {
        let dir = tempfile::tempdir().unwrap();
        let mut counts: KeyedState<u64> = KeyedState::new(operator(dir.path(), None), b"c");
        let mut values: HashMap<String, u64> = (0..50).map(|i| (format!("k{i}"), i)).collect();
        for k in values.keys() {
            counts.touch(k);
        }
        counts.stage(1, |k| values.get(k)).unwrap();
        // Epoch 2 changes one key and removes another.
        values.insert("k3".into(), 300);
        values.remove("k4");
        counts.touch("k3");
        counts.touch("k4");
        counts.stage(2, |k| values.get(k)).unwrap();
        let state = JobState::open(dir.path(), "job").unwrap();
        state.complete(2).unwrap();

        // Restored at 3 workers, every key comes back once, on the worker its route picks.
        let mut restored = HashMap::new();
        for worker in 0..3 {
            let r: KeyedState<u64> = KeyedState::new(operator(dir.path(), Some(2)), b"c");
            for (k, v) in r.restore(worker, 3).unwrap() {
                assert_eq!(
                    KeyedState::<u64>::route(&k) as usize % 3,
                    worker,
                    "{k} restored on its owner"
                );
                assert!(restored.insert(k, v).is_none());
            }
        }
        assert_eq!(restored, values);
    }
}
