//! The sink operator: drives a [`SinkWriter`] through checkpoint epochs.
//!
//! # Time and commits
//! Records are handed to the writer as they arrive (per worker, no
//! exchange), one checkpoint epoch at a time: records of a later epoch wait
//! in an [`EpochGate`]. When an epoch is complete at the sink, the writer
//! pre-commits it (its output is durable, not visible) and the sink's
//! *pre-committed* output moves past it: that is the sink's part of the
//! job's checkpoint. Once the checkpoint is complete in the whole cluster
//! (recorded in the job's [`JobState`]), the writer commits it: the epoch's
//! output becomes visible exactly once. A writer whose commit runs off the
//! worker thread (Kafka transactions) reports it under way; the operator
//! asks again shortly and counts the epoch committed only once it is done.
//! At the end of a bounded input the last epoch is pre-committed, and the
//! operator stays until it is committed.
//!
//! # Failure
//! On start the writer recovers: output pre-committed for the restored
//! checkpoint is committed, output staged for later epochs discarded. A
//! failed write, pre-commit or commit is reported to the job's health and
//! retried with back-off; nothing is dropped meanwhile.
//!
//! # Progress it reports
//! * `progress`: a probe on the sink's input — how far records have reached
//!   the sink (sources use it to bound records in flight);
//! * `checkpointed`: a probe on the pre-committed output — the job's
//!   checkpoint completion (with every other sink's);
//! * `committed`: a probe on an (empty) output whose capability stands at
//!   the first epoch not yet committed. Sources commit their offsets to
//!   Kafka behind it, for monitoring tools.

use crate::metrics::SinkMetrics;
use crate::operators::epoch_gate::EpochGate;
use crate::sinks::SinkWriter;
use crate::state::JobState;
use crate::util::time::{epoch_frontier, message_time, time};
use crate::util::{JobHealth, Time};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::{Capability, Probe};
use timely::dataflow::{ProbeHandle, StreamVec};

/// The probes a job's sinks report to.
#[derive(Clone, Default)]
pub struct SinkProbes {
    /// Records received by every sink (input frontier).
    pub progress: ProbeHandle<Time>,
    /// Records committed by every sink.
    pub committed: ProbeHandle<Time>,
    /// Epochs every sink has pre-committed and every stateful operator
    /// checkpointed: the job's checkpoint completion.
    pub checkpointed: ProbeHandle<Time>,
    /// Set once a sink reports to `checkpointed` (until then it says nothing).
    pub attached: Rc<std::cell::Cell<bool>>,
}

/// How a sink commits: the job's checkpoint state and the checkpoint restored.
#[derive(Clone)]
pub struct SinkCheckpoints {
    /// Where completed checkpoints are recorded.
    pub state: Arc<JobState>,
    /// The checkpoint the run restored.
    pub restored: Option<u64>,
    /// Set to the stop epoch when the run stops: what is committed then is
    /// the last output of the run, made visible at once.
    pub stop: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// Moves `cap` (if any) to the first epoch after `epoch`.
fn pass_epoch(cap: &mut Option<Capability<Time>>, epoch: u64) {
    if let Some(c) = cap.as_mut() {
        let at = time(epoch.saturating_add(1), 0);
        if c.time().outer < at.outer {
            c.downgrade(&at);
        }
    }
}

/// Writes `stream` through `writer`.
pub fn write_sink<'s, T: Clone + 'static, W: SinkWriter<T>>(
    stream: StreamVec<'s, Time, T>,
    name: &str,
    mut writer: W,
    checkpoints: SinkCheckpoints,
    metrics: SinkMetrics,
    health: JobHealth,
    probes: &SinkProbes,
) {
    let scope = stream.scope();
    let stream = stream.probe_with(&probes.progress);
    let mut builder = OperatorBuilder::new(format!("Sink({name})"), scope);
    let info = builder.operator_info();
    let activator = scope.activator_for(info.address.clone());
    let mut input = builder.new_input(stream, Pipeline);
    let (_precommitted_out, precommitted) = builder.new_output::<Vec<()>>();
    let (_committed_out, committed) = builder.new_output::<Vec<()>>();
    let name = name.to_string();
    builder.build_reschedule(move |mut caps| {
        let mut committed_cap = caps.pop();
        let mut precommitted_cap = caps.pop();
        // Never an epoch at or before the restored checkpoint.
        let mut gate: EpochGate<Vec<T>> =
            EpochGate::starting_at(checkpoints.restored.map_or(0, |r| r.saturating_add(1)));
        let mut recovered = false;
        // Records of the admitted epoch not yet handed to the writer.
        let mut pending: Vec<T> = Vec::new();
        // The admitted epoch, once the writer was told.
        let mut writing: Option<u64> = None;
        // Whether the writer holds records of `writing` not pre-committed.
        let mut dirty = false;
        // Epochs pre-committed, not yet committed.
        let mut uncommitted: BTreeSet<u64> = BTreeSet::new();
        let mut backoff = Duration::from_millis(100);
        // When the writer's held-back output is next due (an activation is set for it).
        let mut flush_at: Option<std::time::Instant> = None;
        move |frontiers| {
            if committed_cap.is_none() {
                return false;
            }
            let retry = |e, health: &JobHealth, backoff: &mut Duration| {
                metrics.errors.inc();
                health.report(&name, e);
                activator.activate_after(*backoff);
                *backoff = (*backoff * 2).min(Duration::from_secs(10));
            };
            if !recovered {
                if let Err(e) = writer.recover(checkpoints.restored) {
                    retry(e, &health, &mut backoff);
                    return true;
                }
                recovered = true;
            }
            input.for_each(|stamp, data| {
                let Some(at) = message_time(stamp.stamp().iter()) else {
                    return;
                };
                if let Some(mut batch) = gate.offer(at, std::mem::take(data)) {
                    pending.append(&mut batch);
                }
            });
            let epochs = epoch_frontier(frontiers[0].frontier());
            loop {
                if let Some(epoch) = gate.admitted().filter(|e| *e < u64::MAX) {
                    if writing != Some(epoch) {
                        writer.begin_epoch(epoch);
                        writing = Some(epoch);
                    }
                }
                if !pending.is_empty() {
                    let n = pending.len() as u64;
                    if let Err(e) = writer.write(&mut pending) {
                        // The writer may hold part of the records: they are pre-committed
                        // with the rest once a write succeeds.
                        dirty = true;
                        retry(e, &health, &mut backoff);
                        return true;
                    }
                    metrics.records.inc_by(n);
                    dirty = true;
                }
                // The admitted epoch complete: pre-commit it before admitting the next.
                let open = epochs.unwrap_or(u64::MAX);
                if let Some(epoch) = gate.admitted().filter(|e| *e < open && *e < u64::MAX) {
                    if dirty {
                        let started = std::time::Instant::now();
                        if let Err(e) = writer.pre_commit(epoch) {
                            retry(e, &health, &mut backoff);
                            return true;
                        }
                        metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                        dirty = false;
                        uncommitted.insert(epoch);
                        checkpoints.state.note_epoch(epoch);
                    }
                    pass_epoch(&mut precommitted_cap, epoch);
                    if uncommitted.is_empty() {
                        pass_epoch(&mut committed_cap, epoch);
                    }
                }
                match gate.next_boundary(epochs) {
                    Some((_completed, released)) => {
                        for (_, mut batch) in released {
                            pending.append(&mut batch);
                        }
                    }
                    None => break,
                }
            }
            backoff = Duration::from_millis(100);
            if epochs.is_none() && gate.is_empty() && pending.is_empty() && precommitted_cap.is_some() {
                // Every epoch pre-committed: the job's checkpoints can complete.
                writer.end_of_input();
                precommitted_cap = None;
            }
            // Commit what the cluster has checkpointed.
            let stopping = checkpoints
                .stop
                .as_ref()
                .map(|s| s.load(std::sync::atomic::Ordering::SeqCst))
                .is_some_and(|stop| stop > 0 && gate.admitted().is_some_and(|a| a >= stop));
            if stopping {
                writer.end_of_input();
            }
            let complete = checkpoints.state.complete_epoch();
            while let Some(&epoch) = uncommitted.first() {
                if complete.is_none_or(|c| c < epoch) {
                    break;
                }
                crate::util::crash_point!("sink-commit-before");
                match writer.commit(epoch) {
                    Err(e) => {
                        retry(e, &health, &mut backoff);
                        return true;
                    }
                    // Under way off the worker thread: looked at again below.
                    Ok(false) => break,
                    Ok(true) => {}
                }
                metrics.commits.inc();
                uncommitted.pop_first();
                if uncommitted.is_empty() {
                    let through = gate.admitted().map_or(epoch, |a| a.saturating_sub(1)).max(epoch);
                    pass_epoch(&mut committed_cap, through);
                }
            }
            if !uncommitted.is_empty() {
                // The checkpoint completes in the runtime: look again shortly.
                activator.activate_after(Duration::from_millis(5));
                return true;
            }
            // Committed output the writer holds back becomes visible when due, input or not.
            match writer.flush() {
                Err(e) => {
                    retry(e, &health, &mut backoff);
                    return true;
                }
                Ok(Some(wait)) => {
                    let at = std::time::Instant::now() + wait;
                    if flush_at.is_none_or(|f| f > at || f <= std::time::Instant::now()) {
                        activator.activate_after(wait);
                        flush_at = Some(at);
                    }
                }
                Ok(None) => flush_at = None,
            }
            if precommitted_cap.is_none() {
                committed_cap = None;
                return false;
            }
            false
        }
    });
    probes.attached.set(true);
    precommitted.probe_with(&probes.checkpointed);
    committed.probe_with(&probes.committed);
}
