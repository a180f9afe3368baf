//! The online feature store: the [`FeatureStore`] contract, its embedded
//! (RocksDB) implementation, and the sink writer that feeds it window results.
//!
//! # Contract (SPEC "Feature store")
//! One record per entity, `rift:{entity}:{id}`, holding one field per feature
//! plus `event_time` (the latest window end the values are valid at) and
//! `updated_at`. A write for feature set `s` carries the window end it is
//! valid at; it is applied only if that is not older than what the entity
//! already holds for `s` (kept in `event_time:{s}`), so replays and re-ordered
//! writes never move an entity back in time. Entities expire after the TTL.
//!
//! The embedded store keeps entities as JSON in a RocksDB database; workers
//! of one process share the handle (read-modify-write under a lock).

use super::SinkWriter;
use crate::error::{Result, RiftError};
use crate::features::{FeatureSpec, WindowResult};
use crate::metrics::FeatureStoreMetrics;
use crate::state::shared_db;
use rocksdb::DB;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One entity update from one feature set.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureUpdate {
    /// Entity type (`player`, `team`).
    pub entity: String,
    /// Entity id.
    pub id: String,
    /// Feature set that produced it.
    pub feature_set: String,
    /// Window end the values are valid at, UTC ms.
    pub event_time: i64,
    /// Feature values by name (`None`: no value, e.g. division by zero).
    pub values: Vec<(String, Option<f64>)>,
}

/// What a batch write did.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct WriteStats {
    /// Updates applied.
    pub written: u64,
    /// Updates skipped because the entity already held newer values.
    pub stale: u64,
}

/// An online feature store.
pub trait FeatureStore: Send + Sync {
    /// Applies updates, skipping those older than what an entity holds.
    fn write(&self, updates: &[FeatureUpdate]) -> Result<WriteStats>;
    /// Reads an entity's fields.
    fn get(&self, entity: &str, id: &str) -> Result<Option<BTreeMap<String, String>>>;
}

/// The key of an entity.
pub fn entity_key(entity: &str, id: &str) -> String {
    format!("rift:{entity}:{id}")
}

/// The embedded feature store.
pub struct EmbeddedStore {
    db: Arc<DB>,
    ttl_ms: i64,
    lock: Mutex<()>,
}

impl EmbeddedStore {
    /// Opens the store at `path` with entity TTL `ttl_ms` (0: never expire).
    pub fn open(path: &Path, ttl_ms: i64) -> Result<EmbeddedStore> {
        Ok(EmbeddedStore {
            db: shared_db(path)?,
            ttl_ms,
            lock: Mutex::new(()),
        })
    }

    fn load(&self, key: &str, now: i64) -> Result<Map<String, Value>> {
        let Some(bytes) = self.db.get(key.as_bytes())? else {
            return Ok(Map::new());
        };
        let v: Map<String, Value> = serde_json::from_slice(&bytes)
            .map_err(|e| RiftError::Internal(format!("feature store entry {key}: {e}")))?;
        let expired = v.get("expires_at").and_then(Value::as_i64).is_some_and(|t| t <= now);
        Ok(if expired { Map::new() } else { v })
    }
}

impl FeatureStore for EmbeddedStore {
    fn write(&self, updates: &[FeatureUpdate]) -> Result<WriteStats> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| RiftError::Internal("feature store lock poisoned".into()))?;
        let now = crate::util::now_ms();
        let mut stats = WriteStats::default();
        let mut batch = rocksdb::WriteBatch::default();
        let mut pending: HashMap<String, Map<String, Value>> = HashMap::new();
        for u in updates {
            let key = entity_key(&u.entity, &u.id);
            let entry = match pending.remove(&key) {
                Some(e) => e,
                None => self.load(&key, now)?,
            };
            let mut entry = entry;
            let guard_field = format!("event_time:{}", u.feature_set);
            let held = entry.get(&guard_field).and_then(Value::as_i64);
            if held.is_some_and(|h| h > u.event_time) {
                stats.stale += 1;
                pending.insert(key, entry);
                continue;
            }
            for (name, value) in &u.values {
                entry.insert(name.clone(), value.map(Value::from).unwrap_or(Value::Null));
            }
            entry.insert(guard_field, Value::from(u.event_time));
            let latest = entry
                .get("event_time")
                .and_then(Value::as_i64)
                .unwrap_or(i64::MIN)
                .max(u.event_time);
            entry.insert("event_time".into(), Value::from(latest));
            entry.insert("updated_at".into(), Value::from(now));
            if self.ttl_ms > 0 {
                entry.insert("expires_at".into(), Value::from(now + self.ttl_ms));
            }
            stats.written += 1;
            pending.insert(key, entry);
        }
        for (key, entry) in pending {
            let bytes = serde_json::to_vec(&entry).map_err(|e| RiftError::Internal(e.to_string()))?;
            batch.put(key.as_bytes(), bytes);
        }
        self.db.write(batch)?;
        Ok(stats)
    }

    fn get(&self, entity: &str, id: &str) -> Result<Option<BTreeMap<String, String>>> {
        let entry = self.load(&entity_key(entity, id), crate::util::now_ms())?;
        if entry.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            entry
                .into_iter()
                .filter(|(k, _)| k != "expires_at")
                .map(|(k, v)| {
                    (
                        k,
                        match v {
                            Value::String(s) => s,
                            other => other.to_string(),
                        },
                    )
                })
                .collect(),
        ))
    }
}

/// Feeds window results of a job's feature sets to a feature store.
pub struct FeatureStoreWriter {
    store: Arc<dyn FeatureStore>,
    /// Feature sets of the job, by index, with their entity type.
    sets: Vec<(Arc<FeatureSpec>, String)>,
    metrics: FeatureStoreMetrics,
    buffer: Vec<FeatureUpdate>,
}

impl FeatureStoreWriter {
    /// A writer for the feature sets `sets` (spec and entity type), into `store`.
    pub fn new(
        store: Arc<dyn FeatureStore>,
        sets: Vec<(Arc<FeatureSpec>, String)>,
        metrics: FeatureStoreMetrics,
    ) -> Self {
        FeatureStoreWriter {
            store,
            sets,
            metrics,
            buffer: Vec::new(),
        }
    }
}

impl SinkWriter<WindowResult> for FeatureStoreWriter {
    fn write(&mut self, records: &mut Vec<WindowResult>) -> Result<()> {
        for r in records.drain(..) {
            let Some((spec, entity)) = self.sets.get(r.set) else {
                continue;
            };
            let names: Vec<&str> = spec.output_names().collect();
            let values = spec
                .online
                .iter()
                .map(|i| (names[*i].to_string(), r.values[*i]))
                .collect();
            self.buffer.push(FeatureUpdate {
                entity: entity.clone(),
                id: r.key,
                feature_set: spec.name.clone(),
                event_time: r.end,
                values,
            });
        }
        Ok(())
    }

    fn pre_commit(&mut self, _epoch: u64) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let stats = self.store.write(&self.buffer)?;
        self.metrics
            .observe(stats.written, stats.stale, started.elapsed().as_secs_f64());
        self.buffer.clear();
        Ok(())
    }

    fn commit(&mut self, _epoch: u64) -> Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: &str, set: &str, t: i64, v: f64) -> FeatureUpdate {
        FeatureUpdate {
            entity: "player".into(),
            id: id.into(),
            feature_set: set.into(),
            event_time: t,
            values: vec![(format!("{set}_x"), Some(v))],
        }
    }

    #[test]
    fn writes_never_move_an_entity_back_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), 0).unwrap();
        let s = store
            .write(&[update("p1", "a", 100, 1.0), update("p1", "b", 50, 2.0)])
            .unwrap();
        assert_eq!(s, WriteStats { written: 2, stale: 0 });
        let s = store
            .write(&[update("p1", "a", 90, 9.0), update("p1", "a", 100, 3.0)])
            .unwrap();
        assert_eq!(s, WriteStats { written: 1, stale: 1 });
        let got = store.get("player", "p1").unwrap().unwrap();
        assert_eq!(got["a_x"], "3.0");
        assert_eq!(got["b_x"], "2.0");
        assert_eq!(got["event_time"], "100");
        assert!(store.get("player", "nobody").unwrap().is_none());
    }
}
