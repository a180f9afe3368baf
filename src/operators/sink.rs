//! The sink operator: drives a [`SinkWriter`] through its epochs.
//!
//! Records are handed to the writer as they arrive (per worker, no exchange).
//! An epoch ends — `pre_commit` then `commit` — every `commit_interval` of
//! wall-clock time while records are pending, and once more when the input
//! frontier becomes empty (end of a bounded input), after which the operator
//! completes. A failed write or commit is reported to the job's health and
//! retried with back-off; records are not dropped while it fails.
//!
//! # Progress it reports
//! * `progress`: a probe on the sink's input — how far records have reached
//!   the sink (sources use it to bound records in flight);
//! * `committed`: a probe on an (empty) output whose capability trails the
//!   input frontier as of the last commit — everything stamped before it is
//!   durably committed, on every worker. Sources commit their offsets behind
//!   it, so a consumer group never skips data a sink has not made durable.

use crate::metrics::SinkMetrics;
use crate::sinks::SinkWriter;
use crate::util::JobHealth;
use std::time::{Duration, Instant};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::Probe;
use timely::dataflow::{ProbeHandle, StreamVec};

/// The probes a job's sinks report to.
#[derive(Clone, Default)]
pub struct SinkProbes {
    /// Records received by every sink (input frontier).
    pub progress: ProbeHandle<u64>,
    /// Records committed by every sink.
    pub committed: ProbeHandle<u64>,
}

/// Writes `stream` through `writer`.
pub fn write_sink<'s, T: Clone + 'static, W: SinkWriter<T>>(
    stream: StreamVec<'s, u64, T>,
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
        // Held at the input frontier as of the last commit; dropped when done.
        let mut committed_cap = caps.pop();
        let mut pending: Vec<T> = Vec::new();
        let mut dirty = false;
        let mut epoch = 0u64;
        let mut last_commit = Instant::now();
        let mut backoff = Duration::from_millis(100);
        move |frontiers| {
            if committed_cap.is_none() {
                return false;
            }
            input.for_each(|_cap, data| pending.append(data));
            if !pending.is_empty() {
                let n = pending.len() as u64;
                match writer.write(&mut pending) {
                    Ok(()) => {
                        metrics.records.inc_by(n);
                        dirty = true;
                    }
                    Err(e) => {
                        // The writer may hold part of the records: nothing counts as committed
                        // until a commit succeeds.
                        dirty = true;
                        metrics.errors.inc();
                        health.report(&name, e);
                        activator.activate_after(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        return true;
                    }
                }
            }
            let frontier = frontiers[0].frontier().as_option().copied();
            let done = frontier.is_none();
            if (dirty && last_commit.elapsed() >= commit_interval) || done {
                let started = Instant::now();
                match writer.pre_commit(epoch).and_then(|()| writer.commit(epoch)) {
                    Ok(()) => {
                        metrics.commits.inc();
                        metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                        epoch += 1;
                        dirty = false;
                        last_commit = Instant::now();
                        backoff = Duration::from_millis(100);
                        match (frontier, committed_cap.as_mut()) {
                            (Some(f), Some(cap)) if f > *cap.time() => cap.downgrade(&f),
                            (None, _) => committed_cap = None,
                            _ => {}
                        }
                    }
                    Err(e) => {
                        metrics.errors.inc();
                        health.report(&name, e);
                        activator.activate_after(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        return true;
                    }
                }
            } else if !dirty {
                // Nothing pending: everything received so far is committed.
                if let (Some(f), Some(cap)) = (frontier, committed_cap.as_mut()) {
                    if f > *cap.time() {
                        cap.downgrade(&f);
                    }
                }
            }
            if committed_cap.is_none() {
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
