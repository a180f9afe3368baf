//! Deduplication by business key across the whole history.
//!
//! # Semantics
//! Records are routed by their business key ([`Event::business_key`]) and
//! buffered by stamp until the input frontier passes it. Stamps are then
//! processed in order; a record whose key was never seen before is emitted and
//! its key remembered, later ones are dropped as duplicates (counted). Among
//! duplicates sharing one stamp, the one with the smallest JSON encoding wins,
//! so the choice never depends on arrival order or worker count.
//!
//! # State
//! The set of seen keys lives in RocksDB (`{state_dir}/dedup`, one database
//! per process, keys prefixed by job and table), so it survives restarts and
//! does not grow memory with history.

use crate::error::Result;
use crate::events::Event;
use crate::util::stable_hash;
use crate::util::JobHealth;
use std::collections::BTreeMap;
use std::sync::Arc;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

/// Remembered business keys.
pub struct SeenKeys {
    db: Arc<rocksdb::DB>,
    prefix: String,
}

impl SeenKeys {
    /// The seen-key set of `table` in `job`, stored under `state_dir`.
    pub fn open(state_dir: &str, job: &str, table: &str) -> Result<SeenKeys> {
        let db = crate::state::shared_db(&std::path::Path::new(state_dir).join("dedup"))?;
        Ok(SeenKeys {
            db,
            prefix: format!("{job}\u{1}{table}\u{1}"),
        })
    }

    /// Records `key`; true if it was new.
    pub fn insert(&self, key: &str) -> Result<bool> {
        let k = format!("{}{key}", self.prefix);
        if self.db.get_pinned(k.as_bytes())?.is_some() {
            return Ok(false);
        }
        self.db.put(k.as_bytes(), [])?;
        Ok(true)
    }
}

/// Keeps the first record per business key.
pub trait DedupByKey<'s, E> {
    /// Drops records whose business key was seen before.
    fn dedup_by_key(
        self,
        seen: SeenKeys,
        duplicates: prometheus::IntCounter,
        health: JobHealth,
    ) -> StreamVec<'s, u64, E>;
}

impl<'s, E: Event + timely::ExchangeData> DedupByKey<'s, E> for StreamVec<'s, u64, E> {
    fn dedup_by_key(
        self,
        seen: SeenKeys,
        duplicates: prometheus::IntCounter,
        health: JobHealth,
    ) -> StreamVec<'s, u64, E> {
        self.unary_frontier::<CapacityContainerBuilder<Vec<E>>, _, _, _>(
            Exchange::new(|e: &E| stable_hash(e.business_key().as_bytes())),
            "DedupByKey",
            |_cap, _info| {
                let mut stash: BTreeMap<u64, (Capability<u64>, Vec<E>)> = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each_stamp(|cap, data| {
                        let Some(t) = cap.least().copied() else {
                            return;
                        };
                        let Some(c) = cap.retain_least(output.output_index()) else {
                            return;
                        };
                        let entry = stash.entry(t).or_insert_with(|| (c, Vec::new()));
                        for batch in data {
                            entry.1.append(batch);
                        }
                    });
                    while let Some(entry) = stash.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (cap, records) = entry.remove();
                        let mut keyed: Vec<(String, Vec<u8>, E)> = records
                            .into_iter()
                            .map(|e| (e.business_key(), serde_json::to_vec(&e).unwrap_or_default(), e))
                            .collect();
                        keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
                        let mut session = output.session(&cap);
                        let mut last: Option<String> = None;
                        for (key, _, e) in keyed {
                            if last.as_ref() == Some(&key) {
                                duplicates.inc();
                                continue;
                            }
                            match seen.insert(&key) {
                                Ok(true) => session.give(e),
                                Ok(false) => duplicates.inc(),
                                Err(err) => {
                                    // Never drop silently: pass it on and report the state failure.
                                    health.report("dedup", err);
                                    session.give(e);
                                }
                            }
                            last = Some(key);
                        }
                    }
                }
            },
        )
    }
}
