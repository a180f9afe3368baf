//! The window operator: one timely operator running the window state
//! machines of every feature set that reads one row stream.
//!
//! Rows (tagged with their group) are exchanged by [`FeatureRow::key_hash`],
//! so the windows of a key are on one worker. Each state machine reads every
//! row in place (a row is cloned only where a state machine keeps rows that
//! others read too). Rows pass an [`EpochGate`]: the state machines see one
//! checkpoint epoch at a time and fire up to the gate's effective watermark,
//! so at the end of each epoch their state holds exactly that epoch's rows
//! and the earlier ones. Results and late rows are emitted at the operator's
//! capability, which stands at (admitted epoch, effective watermark).
//!
//! # Checkpoints
//! At the end of each epoch every state machine reports its changes, staged
//! under the epoch in the job's checkpoint state (one operator id per
//! feature set). On start, each state machine takes back the state of the
//! key groups its worker owns. Rows are routed by key group, so that a
//! checkpoint taken with N workers restores on M.

use super::checkpoint::CoreRestore;
use super::core::{LateRow, WindowCore};
use crate::error::Result;
use crate::features::{FeatureRow, WindowResult};
use crate::operators::epoch_gate::EpochGate;
use crate::state::checkpoint::entry_key;
use crate::state::{key_group, OperatorState};
use crate::util::time::{epoch_frontier, message_time, time, watermark};
use crate::util::{JobHealth, Time};
use timely::dataflow::StreamVec;

/// A batch of rows tagged with their group.
type Rows = Vec<(usize, FeatureRow)>;

/// Hands `batch` (stamped `t`) to every state machine: all but the last read
/// it in place, the last takes it, so nothing is cloned for it.
fn deliver(cores: &mut [Box<dyn WindowCore>], t: u64, batch: Rows) {
    if let Some((last, others)) = cores.split_last_mut() {
        for core in others {
            core.push_shared(t, &batch);
        }
        last.push_owned(t, batch);
    }
}

/// Sections of a state machine's checkpoint state.
const KEYS: &[u8] = b"k";
const PENDING: &[u8] = b"r";
const META: &[u8] = b"m";

/// Hands `core` the restored state of the key groups `worker` owns of `peers`.
fn restore(core: &mut dyn WindowCore, state: &OperatorState, worker: usize, peers: usize) -> Result<()> {
    if state.restored.is_none() {
        return Ok(());
    }
    let mut restored = CoreRestore::default();
    for (key, value) in state.restore(KEYS, worker, peers)? {
        restored.keys.push((String::from_utf8_lossy(&key).into_owned(), value));
    }
    for (key, value) in state.restore(PENDING, worker, peers)? {
        if let Some(stamp) = key.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            restored.pending.push((u64::from_be_bytes(stamp), value));
        }
    }
    // Operator-wide values are the same on every worker: any copy will do.
    for (key, value) in state.restore(META, worker, peers)? {
        restored.meta.entry(key).or_insert(value);
    }
    if restored.meta.is_empty() {
        for (_, key, value) in state.state.scan(&state.op, META)? {
            restored.meta.entry(key).or_insert(value);
        }
    }
    core.restore(restored)
}

/// Stages `core`'s changes since the last checkpoint under `epoch`.
fn checkpoint(core: &mut dyn WindowCore, state: &OperatorState, epoch: u64, worker: usize) -> Result<()> {
    let changes = core.checkpoint()?;
    let op = &state.op;
    let mut entries = Vec::with_capacity(changes.keys.len() + changes.pending.len() + changes.meta.len());
    for (key, value) in changes.keys {
        let group = key_group(crate::util::stable_hash(key.as_bytes()));
        entries.push((entry_key(op, KEYS, group, key.as_bytes()), value));
    }
    for (stamp, group, value) in changes.pending {
        entries.push((entry_key(op, PENDING, group, &stamp.to_be_bytes()), value));
    }
    for (key, value) in changes.meta {
        entries.push((entry_key(op, META, key_group(worker as u64), &key), Some(value)));
    }
    state.stage(epoch, entries)
}

/// Runs `cores` as one operator named `name` over `rows` (see the module
/// docs); `states[i]` is the checkpoint state of `cores[i]`.
pub fn window_operator<'s>(
    rows: StreamVec<'s, Time, (usize, FeatureRow)>,
    name: &str,
    mut cores: Vec<Box<dyn WindowCore>>,
    states: Vec<OperatorState>,
    health: JobHealth,
) -> (StreamVec<'s, Time, WindowResult>, StreamVec<'s, Time, LateRow>) {
    let (worker, peers) = (rows.scope().index(), rows.scope().peers());
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::channels::pact::Exchange;
    use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
    use timely::dataflow::operators::generic::OutputBuilder;

    let mut builder = OperatorBuilder::new(name.to_string(), rows.scope());
    let mut input = builder.new_input(
        rows,
        Exchange::new(|(_, row): &(usize, FeatureRow)| key_group(row.key_hash()) as u64),
    );
    let (results_out, results) = builder.new_output::<Vec<WindowResult>>();
    let (late_out, late_rows) = builder.new_output::<Vec<LateRow>>();
    let mut results_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<WindowResult>>>::from(results_out);
    let mut late_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<LateRow>>>::from(late_out);
    builder.build(move |capabilities| {
        // One capability per output, at (admitted epoch, effective watermark).
        let mut capabilities = Some(capabilities);
        for (core, state) in cores.iter_mut().zip(&states) {
            if let Err(e) = restore(core.as_mut(), state, worker, peers) {
                health.report("window state", e);
            }
        }
        // Never an epoch at or before the restored checkpoint.
        let first = states.first().map_or(0, |s| s.first_epoch());
        let mut gate: EpochGate<Rows> = EpochGate::starting_at(first);
        let mut fired = Vec::new();
        let mut late = Vec::new();
        move |frontiers| {
            input.for_each_stamp(|stamp, data| {
                let Some(at) = message_time(stamp.stamp().iter()) else {
                    return;
                };
                for batch in data {
                    if let Some(batch) = gate.offer(at, std::mem::take(batch)) {
                        deliver(&mut cores, at.inner, batch);
                    }
                }
            });
            let frontier = frontiers[0].frontier();
            let (wm, epochs) = (watermark(frontier), epoch_frontier(frontier));
            loop {
                let w = gate.watermark(wm);
                for core in cores.iter_mut() {
                    core.advance(w, &mut fired, &mut late);
                    if let Some(e) = core.take_error() {
                        health.report("window state", e);
                    }
                }
                // What the admitted epoch fired belongs to it: emitted before
                // the next epoch's rows are let in, at (epoch, watermark).
                if let Some(caps) = capabilities.as_mut() {
                    if let Some(e) = gate.admitted().filter(|e| *e < u64::MAX) {
                        let inner = w.unwrap_or(caps[0].time().inner).max(caps[0].time().inner);
                        let at = time(e.max(caps[0].time().outer), inner);
                        for cap in caps.iter_mut() {
                            if cap.time() != &at {
                                cap.downgrade(&at);
                            }
                        }
                    }
                    // Whole vectors are handed on, not copied record by record.
                    // A given container may come back with contents: clear it before reuse.
                    if !fired.is_empty() {
                        let handed = fired.len();
                        results_out.activate().session(&caps[0]).give_container(&mut fired);
                        fired.clear();
                        // What comes back may have no capacity: size it like the last
                        // batch, instead of regrowing (and copying) it step by step.
                        fired.reserve(handed.min(1 << 16));
                    }
                    if !late.is_empty() {
                        late_out.activate().session(&caps[1]).give_container(&mut late);
                        late.clear();
                    }
                }
                // The admitted epoch complete: its checkpoint, then the next one's held rows, in order.
                match gate.next_boundary(epochs) {
                    Some((completed, released)) => {
                        if let Some(n) = completed {
                            for (core, state) in cores.iter_mut().zip(&states) {
                                if let Err(e) = checkpoint(core.as_mut(), state, n, worker) {
                                    health.report("window state", e);
                                }
                            }
                        }
                        for (t, batch) in released {
                            deliver(&mut cores, t, batch);
                        }
                    }
                    None => break,
                }
            }
            let Some(caps) = capabilities.as_mut() else {
                return;
            };
            match (gate.admitted(), gate.watermark(wm)) {
                (Some(e), Some(w)) if e < u64::MAX => {
                    let at = time(e, w);
                    for cap in caps.iter_mut() {
                        if cap.time() != &at {
                            cap.downgrade(&at);
                        }
                    }
                }
                _ if wm.is_none() && gate.is_empty() => capabilities = None,
                _ => {}
            }
        }
    });
    (results, late_rows)
}
