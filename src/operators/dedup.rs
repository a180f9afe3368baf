//! Deduplication by business key across the whole history.
//!
//! # Semantics
//! Records are routed by their business key ([`Event::business_key`]) and
//! buffered by stamp until the watermark passes it. Stamps are then
//! processed in order; a record whose key was never seen before is emitted and
//! its key remembered, later ones are dropped as duplicates (counted). Among
//! duplicates sharing one stamp, the one with the smallest JSON encoding wins,
//! so the choice never depends on arrival order, worker count or checkpoint
//! epochs: records pass an [`EpochGate`], whose effective watermark keeps a
//! stamp waiting until every epoch holding records of it is admitted. Each
//! record is emitted in its own epoch.
//!
//! # State
//! The set of seen keys lives in RocksDB (`{state_dir}/dedup`, one database
//! per process, keys prefixed by job and table), so it survives restarts and
//! does not grow memory with history.

use crate::error::Result;
use crate::events::Event;
use crate::operators::epoch_gate::EpochGate;
use crate::util::stable_hash;
use crate::util::time::{epoch_frontier, message_time, watermark};
use crate::util::{JobHealth, Time};
use std::collections::BTreeMap;
use std::sync::Arc;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, CapabilitySet};
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

/// Admitted records by (stamp, epoch), each group with a capability for its own time.
type Stash<E> = BTreeMap<(u64, u64), (Capability<Time>, Vec<E>)>;

/// Keeps the first record per business key.
pub trait DedupByKey<'s, E> {
    /// Drops records whose business key was seen before.
    fn dedup_by_key(
        self,
        seen: SeenKeys,
        duplicates: prometheus::IntCounter,
        health: JobHealth,
    ) -> StreamVec<'s, Time, E>;
}

impl<'s, E: Event + timely::ExchangeData> DedupByKey<'s, E> for StreamVec<'s, Time, E> {
    fn dedup_by_key(
        self,
        seen: SeenKeys,
        duplicates: prometheus::IntCounter,
        health: JobHealth,
    ) -> StreamVec<'s, Time, E> {
        self.unary_frontier::<CapacityContainerBuilder<Vec<E>>, _, _, _>(
            Exchange::new(|e: &E| stable_hash(e.business_key().as_bytes())),
            "DedupByKey",
            |cap, _info| {
                // Admitted records by (stamp, epoch), each with a capability for its own time.
                let mut stash: Stash<E> = BTreeMap::new();
                let mut gate: EpochGate<(Capability<Time>, Vec<E>)> = EpochGate::default();
                // The operator's own capability, at (admitted epoch, effective watermark):
                // its output passes an epoch only once the operator is done with it.
                let mut hold: CapabilitySet<Time> = CapabilitySet::from_elem(cap);
                move |(input, frontier), output| {
                    let admit = |stash: &mut Stash<E>, cap: Capability<Time>, mut records: Vec<E>| {
                        let at = *cap.time();
                        stash
                            .entry((at.inner, at.outer))
                            .or_insert_with(|| (cap, Vec::new()))
                            .1
                            .append(&mut records);
                    };
                    input.for_each_stamp(|stamp, data| {
                        let Some(at) = message_time(stamp.stamp().iter()) else {
                            return;
                        };
                        let cap = stamp.delayed(&at, output.output_index());
                        let mut records = Vec::new();
                        for batch in data {
                            records.append(batch);
                        }
                        if let Some((cap, records)) = gate.offer(at, (cap, records)) {
                            admit(&mut stash, cap, records);
                        }
                    });
                    let f = frontier.frontier();
                    let (wm, epochs) = (watermark(f), epoch_frontier(f));
                    loop {
                        let limit = gate.watermark(wm).unwrap_or(u64::MAX);
                        // Every stamp below the effective watermark, all its epochs together.
                        while let Some(entry) = stash.first_entry() {
                            let stamp = entry.key().0;
                            if stamp >= limit {
                                break;
                            }
                            let mut group = Vec::new();
                            while stash.first_key_value().is_some_and(|(k, _)| k.0 == stamp) {
                                if let Some((_, (cap, records))) = stash.pop_first() {
                                    group.extend(records.into_iter().map(|e| (cap.clone(), e)));
                                }
                            }
                            let mut keyed: Vec<(String, Vec<u8>, Capability<Time>, E)> = group
                                .into_iter()
                                .map(|(c, e)| (e.business_key(), serde_json::to_vec(&e).unwrap_or_default(), c, e))
                                .collect();
                            keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
                            let mut last: Option<String> = None;
                            for (key, _, cap, e) in keyed {
                                if last.as_ref() == Some(&key) {
                                    duplicates.inc();
                                    continue;
                                }
                                match seen.insert(&key) {
                                    Ok(true) => output.session(&cap).give(e),
                                    Ok(false) => duplicates.inc(),
                                    Err(err) => {
                                        // Never drop silently: pass it on and report the state failure.
                                        health.report("dedup", err);
                                        output.session(&cap).give(e);
                                    }
                                }
                                last = Some(key);
                            }
                        }
                        match gate.next_boundary(epochs) {
                            Some((_completed, released)) => {
                                for (_, (cap, records)) in released {
                                    admit(&mut stash, cap, records);
                                }
                            }
                            None => break,
                        }
                    }
                    match (gate.admitted(), gate.watermark(wm)) {
                        (Some(e), Some(w)) if e < u64::MAX => {
                            hold.downgrade([crate::util::time::time(e, w)]);
                        }
                        _ if wm.is_none() && gate.is_empty() && stash.is_empty() => hold = CapabilitySet::new(),
                        _ => {}
                    }
                }
            },
        )
    }
}
