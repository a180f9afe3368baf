//! The sink operator: drives a [`SinkWriter`] through its epochs.
//!
//! Records are handed to the writer as they arrive (per worker, no
//! exchange), one checkpoint epoch at a time: records of a later epoch wait
//! in an [`EpochGate`] until every earlier epoch is complete at the sink.
//! When an epoch completes and `commit_interval` of wall-clock time has
//! passed since the last commit (or the input ended), the sink commits —
//! `pre_commit` then `commit` — everything of that epoch and the earlier
//! ones; the input's end commits what is left and completes the operator.
//! A failed write or commit is reported to the job's health and retried with
//! back-off; records are not dropped while it fails, and records of later
//! epochs wait until the commit succeeds.
//!
//! # Progress it reports
//! * `progress`: a probe on the sink's input — how far records have reached
//!   the sink (sources use it to bound records in flight);
//! * `committed`: a probe on an (empty) output whose capability stands at
//!   the first epoch not yet committed: every record of an earlier epoch is
//!   durably committed, on every worker. Sources commit their offsets behind
//!   it, so a consumer group never skips data a sink has not made durable.

use crate::metrics::SinkMetrics;
use crate::operators::epoch_gate::EpochGate;
use crate::sinks::SinkWriter;
use crate::util::time::{epoch_frontier, message_time, time};
use crate::util::{JobHealth, Time};
use std::time::{Duration, Instant};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::Probe;
use timely::dataflow::{ProbeHandle, StreamVec};

/// The probes a job's sinks report to.
#[derive(Clone, Default)]
pub struct SinkProbes {
    /// Records received by every sink (input frontier).
    pub progress: ProbeHandle<Time>,
    /// Records committed by every sink.
    pub committed: ProbeHandle<Time>,
}

/// Writes `stream` through `writer`.
pub fn write_sink<'s, T: Clone + 'static, W: SinkWriter<T>>(
    stream: StreamVec<'s, Time, T>,
    name: &str,
    mut writer: W,
    commit_interval: Duration,
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
    let (_committed_out, committed) = builder.new_output::<Vec<()>>();
    let name = name.to_string();
    builder.build_reschedule(move |mut caps| {
        // At the first epoch not yet committed; dropped when done.
        let mut committed_cap = caps.pop();
        let mut gate: EpochGate<Vec<T>> = EpochGate::default();
        // Records of the admitted epoch not yet handed to the writer.
        let mut pending: Vec<T> = Vec::new();
        // Records released by a later epoch while a commit is due.
        let mut blocked: Vec<T> = Vec::new();
        // Written since the last commit.
        let mut dirty = false;
        // The latest complete epoch whose records are written but not committed.
        let mut due: Option<u64> = None;
        // Commits so far (the writer's epoch numbers: file names, records).
        let mut commits = 0u64;
        let mut last_commit = Instant::now();
        let mut backoff = Duration::from_millis(100);
        move |frontiers| {
            if committed_cap.is_none() {
                return false;
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
                if due.is_none() && !pending.is_empty() {
                    let n = pending.len() as u64;
                    if let Err(e) = writer.write(&mut pending) {
                        // The writer may hold part of the records: nothing counts as
                        // committed until a commit succeeds.
                        dirty = true;
                        metrics.errors.inc();
                        health.report(&name, e);
                        activator.activate_after(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        return true;
                    }
                    metrics.records.inc_by(n);
                    dirty = true;
                }
                if let Some(n) = due {
                    let started = Instant::now();
                    match writer.pre_commit(commits).and_then(|()| writer.commit(commits)) {
                        Ok(()) => {
                            metrics.commits.inc();
                            metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                            commits += 1;
                            dirty = false;
                            due = None;
                            last_commit = Instant::now();
                            backoff = Duration::from_millis(100);
                            if let Some(cap) = committed_cap.as_mut() {
                                let at = time(n.saturating_add(1), 0);
                                if cap.time().outer < at.outer {
                                    cap.downgrade(&at);
                                }
                            }
                            pending.append(&mut blocked);
                            continue;
                        }
                        Err(e) => {
                            metrics.errors.inc();
                            health.report(&name, e);
                            activator.activate_after(backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                            return true;
                        }
                    }
                }
                match gate.next_boundary(epochs) {
                    Some((completed, released)) => {
                        let ended = gate.admitted() == Some(u64::MAX);
                        if let Some(n) = completed {
                            if dirty && (ended || last_commit.elapsed() >= commit_interval) {
                                due = Some(n);
                            } else if !dirty {
                                // Nothing written: everything through `n` is committed.
                                if let Some(cap) = committed_cap.as_mut() {
                                    let at = time(n.saturating_add(1), 0);
                                    if cap.time().outer < at.outer {
                                        cap.downgrade(&at);
                                    }
                                }
                            }
                        }
                        let target = if due.is_some() { &mut blocked } else { &mut pending };
                        for (_, mut batch) in released {
                            target.append(&mut batch);
                        }
                    }
                    None => break,
                }
            }
            if epochs.is_none() && gate.is_empty() && pending.is_empty() && blocked.is_empty() && !dirty {
                committed_cap = None;
                return false;
            }
            if dirty {
                activator.activate_after(commit_interval.saturating_sub(last_commit.elapsed()));
            }
            false
        }
    });
    committed.probe_with(&probes.committed);
}
