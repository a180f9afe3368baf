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
//! stamp waiting until every epoch holding records of it is admitted. A
//! record still waiting when its epoch ends is part of that checkpoint's
//! state and moves on to the next epoch, so a stalled watermark (a quiet
//! topic, a graceful stop) never holds a checkpoint back.
//!
//! # State and checkpoints
//! The seen keys live in the job's checkpoint state (RocksDB, by key group),
//! not in memory: a key remembered while processing epoch `N` is staged with
//! `N`, so it is part of checkpoint `N` exactly when the record it came from
//! is. Records waiting for the watermark are state too: at the end of each
//! epoch the changes to the waiting set are staged. After a restart both are
//! restored (waiting records in the run's first epoch, each on the worker
//! its key routes to now, whatever the worker count was), so a record
//! replayed from the sources is judged as it was the first time: nothing
//! lost to a key remembered too early, nothing doubled.

use crate::error::{Result, RiftError};
use crate::events::Event;
use crate::operators::epoch_gate::EpochGate;
use crate::state::{key_group, owns, OperatorState};
use crate::util::stable_hash;
use crate::util::time::{epoch_frontier, message_time, time, watermark};
use crate::util::{JobHealth, Time};
use std::collections::{BTreeMap, BTreeSet};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, CapabilitySet};
use timely::dataflow::StreamVec;

/// Sections of the operator's state.
const SEEN: &[u8] = b"k";
const WAITING: &[u8] = b"w";

/// Remembered business keys, in the job's checkpoint state.
pub struct SeenKeys {
    state: OperatorState,
}

impl SeenKeys {
    /// The seen keys of the dedup operator whose checkpoint state is `state`.
    pub fn new(state: OperatorState) -> SeenKeys {
        SeenKeys { state }
    }

    /// Whether `key` was seen before.
    fn contains(&self, key: &str) -> Result<bool> {
        Ok(self
            .state
            .get(SEEN, stable_hash(key.as_bytes()), key.as_bytes())?
            .is_some())
    }

    /// Remembers `keys` as of epoch `epoch`.
    fn remember(&self, epoch: u64, keys: &[String]) -> Result<()> {
        self.state.stage(
            epoch,
            keys.iter().map(|k| {
                (
                    self.state.key(SEEN, stable_hash(k.as_bytes()), k.as_bytes()),
                    Some(Vec::new()),
                )
            }),
        )
    }
}

/// Admitted records by (stamp, epoch), each group with a capability for its own time.
type Stash<E> = BTreeMap<(u64, u64), (Capability<Time>, Vec<E>)>;

/// The key of a waiting group in the checkpoint: stamp then epoch.
fn waiting_key(stamp: u64, epoch: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&stamp.to_be_bytes());
    k[8..].copy_from_slice(&epoch.to_be_bytes());
    k
}

/// Moves the waiting groups of epochs before `epoch` into it (their records
/// were in the checkpoint of their epoch as waiting state).
fn retime<E>(stash: &mut Stash<E>, changed: &mut BTreeSet<(u64, u64)>, epoch: u64) {
    let old: Vec<(u64, u64)> = stash.keys().filter(|(_, e)| *e < epoch).copied().collect();
    for (stamp, e) in old {
        if let Some((cap, mut records)) = stash.remove(&(stamp, e)) {
            changed.insert((stamp, e));
            changed.insert((stamp, epoch));
            let at = time(epoch, stamp);
            stash
                .entry((stamp, epoch))
                .or_insert_with(|| (cap.delayed(&at), Vec::new()))
                .1
                .append(&mut records);
        }
    }
}

/// The route of a record: its business key's key group (the owner of a group
/// is the same for the exchange and for restored state).
fn route<E: Event>(e: &E) -> u64 {
    key_group(stable_hash(e.business_key().as_bytes())) as u64
}

/// The (stamp, epoch) of a waiting group's key.
fn parse_waiting_key(key: &[u8]) -> Option<(u64, u64)> {
    let stamp = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let epoch = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
    Some((stamp, epoch))
}

/// Stages the waiting groups that changed: present ones whole, gone ones deleted.
fn stage_waiting<E: Event>(
    seen: &SeenKeys,
    epoch: u64,
    stash: &Stash<E>,
    changed: &mut BTreeSet<(u64, u64)>,
    worker: usize,
) -> Result<()> {
    let mut changes = Vec::with_capacity(changed.len());
    for (stamp, e) in std::mem::take(changed) {
        // Waiting groups belong to the worker that holds them: its index picks the key group.
        let key = seen.state.key(WAITING, worker as u64, &waiting_key(stamp, e));
        let value = match stash.get(&(stamp, e)) {
            Some((_, records)) => Some(
                bincode::serialize(records)
                    .map_err(|err| RiftError::Internal(format!("dedup: waiting records: {err}")))?,
            ),
            None => None,
        };
        changes.push((key, value));
    }
    seen.state.stage(epoch, changes)
}

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
        let (worker, peers) = (self.scope().index(), self.scope().peers());
        self.unary_frontier::<CapacityContainerBuilder<Vec<E>>, _, _, _>(
            Exchange::new(route::<E>),
            "DedupByKey",
            |cap, _info| {
                let mut stash: Stash<E> = BTreeMap::new();
                // Waiting groups added or removed since the last checkpoint.
                let mut changed: BTreeSet<(u64, u64)> = BTreeSet::new();
                let first = seen.state.first_epoch();
                // Records that waited at the restored checkpoint wait again, in this run's first
                // epoch, on the worker their key routes to now. Each worker rewrites the groups
                // staged under its own index; worker 0 deletes those of workers that are gone.
                match seen.state.restore_all(WAITING) {
                    Ok(entries) => {
                        let mut orphans = Vec::new();
                        for (group, key, value) in entries {
                            let Some((stamp, old_epoch)) = parse_waiting_key(&key) else {
                                continue;
                            };
                            if group as usize == worker {
                                changed.insert((stamp, old_epoch));
                            } else if group as usize >= peers && worker == 0 {
                                orphans.push((seen.state.key_in_group(WAITING, group, &key), None));
                            }
                            match bincode::deserialize::<Vec<E>>(&value) {
                                Ok(records) => {
                                    let mine: Vec<E> = records
                                        .into_iter()
                                        .filter(|e| owns(route(e) as u16, worker, peers))
                                        .collect();
                                    if mine.is_empty() {
                                        continue;
                                    }
                                    let at = time(first, stamp);
                                    let group = stash
                                        .entry((stamp, first))
                                        .or_insert_with(|| (cap.delayed(&at), Vec::new()));
                                    group.1.extend(mine);
                                    changed.insert((stamp, first));
                                }
                                Err(e) => health
                                    .report("dedup", RiftError::Internal(format!("restoring waiting records: {e}"))),
                            }
                        }
                        if let Err(e) = seen.state.stage(first, orphans) {
                            health.report("dedup", e);
                        }
                    }
                    Err(e) => health.report("dedup", e),
                }
                let mut gate: EpochGate<(Capability<Time>, Vec<E>)> = EpochGate::starting_at(first);
                // The operator's own capability, at (admitted epoch, effective watermark):
                // its output passes an epoch only once the operator is done with it.
                let mut hold: CapabilitySet<Time> = CapabilitySet::from_elem(cap);
                move |(input, frontier), output| {
                    let admit = |stash: &mut Stash<E>,
                                 changed: &mut BTreeSet<(u64, u64)>,
                                 cap: Capability<Time>,
                                 mut records: Vec<E>| {
                        let at = *cap.time();
                        changed.insert((at.inner, at.outer));
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
                            admit(&mut stash, &mut changed, cap, records);
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
                                if let Some(((s, e), (cap, records))) = stash.pop_first() {
                                    changed.insert((s, e));
                                    group.extend(records.into_iter().map(|e| (cap.clone(), e)));
                                }
                            }
                            let mut keyed: Vec<(String, Vec<u8>, Capability<Time>, E)> = group
                                .into_iter()
                                .map(|(c, e)| (e.business_key(), serde_json::to_vec(&e).unwrap_or_default(), c, e))
                                .collect();
                            keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
                            let mut last: Option<String> = None;
                            // New keys by the epoch of the record that brought them: a key is
                            // part of a checkpoint exactly when that record's output is.
                            let mut new_keys: BTreeMap<u64, Vec<String>> = BTreeMap::new();
                            for (key, _, cap, e) in keyed {
                                if last.as_ref() == Some(&key) {
                                    duplicates.inc();
                                    continue;
                                }
                                match seen.contains(&key) {
                                    Ok(false) => {
                                        new_keys.entry(cap.time().outer).or_default().push(key.clone());
                                        output.session(&cap).give(e);
                                    }
                                    Ok(true) => duplicates.inc(),
                                    Err(err) => {
                                        // Never drop silently: pass it on and report the state failure.
                                        health.report("dedup", err);
                                        output.session(&cap).give(e);
                                    }
                                }
                                last = Some(key);
                            }
                            for (epoch, keys) in &new_keys {
                                if let Err(err) = seen.remember(*epoch, keys) {
                                    health.report("dedup", err);
                                }
                            }
                        }
                        match gate.next_boundary(epochs) {
                            Some((completed, released)) => {
                                if let Some(n) = completed {
                                    if let Err(err) = stage_waiting(&seen, n, &stash, &mut changed, worker) {
                                        health.report("dedup", err);
                                    }
                                }
                                for (_, (cap, records)) in released {
                                    admit(&mut stash, &mut changed, cap, records);
                                }
                                if let Some(a) = gate.admitted().filter(|a| *a < u64::MAX) {
                                    retime(&mut stash, &mut changed, a);
                                }
                            }
                            None => break,
                        }
                    }
                    match (gate.admitted(), gate.watermark(wm)) {
                        (Some(e), Some(w)) if e < u64::MAX => {
                            hold.downgrade([time(e, w)]);
                        }
                        _ if wm.is_none() && gate.is_empty() && stash.is_empty() => hold = CapabilitySet::new(),
                        _ => {}
                    }
                }
            },
        )
    }
}
