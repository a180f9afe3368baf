//! The sink operator: drives a [`SinkWriter`] through its epochs.
//!
//! Records are handed to the writer as they arrive (per worker, no exchange).
//! An epoch ends — `pre_commit` then `commit` — every `commit_interval` of
//! wall-clock time while records are pending, and once more when the input
//! frontier becomes empty (end of a bounded input), after which the operator
//! completes. A failed write or commit is reported to the job's health and
//! retried with back-off; records are not dropped while it fails.

use crate::metrics::SinkMetrics;
use crate::runtime::JobHealth;
use crate::sinks::SinkWriter;
use std::time::{Duration, Instant};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::StreamVec;

/// Writes `stream` through `writer`.
pub fn write_sink<'s, T: Clone + 'static, W: SinkWriter<T>>(
    stream: StreamVec<'s, u64, T>,
    name: &str,
    mut writer: W,
    commit_interval: Duration,
    metrics: SinkMetrics,
    health: JobHealth,
) {
    let scope = stream.scope();
    let mut builder = OperatorBuilder::new(format!("Sink({name})"), scope);
    let info = builder.operator_info();
    let activator = scope.activator_for(info.address.clone());
    let mut input = builder.new_input(stream, Pipeline);
    let name = name.to_string();
    builder.build_reschedule(move |_caps| {
        let mut pending: Vec<T> = Vec::new();
        let mut dirty = false;
        let mut epoch = 0u64;
        let mut last_commit = Instant::now();
        let mut finished = false;
        let mut backoff = Duration::from_millis(100);
        move |frontiers| {
            if finished {
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
                        health.report(&name, e);
                        activator.activate_after(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        return true;
                    }
                }
            }
            let done = frontiers[0].is_empty();
            if (dirty && last_commit.elapsed() >= commit_interval) || done {
                let started = Instant::now();
                let result = writer.pre_commit(epoch).and_then(|()| writer.commit(epoch));
                match result {
                    Ok(()) => {
                        metrics.commits.inc();
                        metrics
                            .commit_seconds
                            .observe(started.elapsed().as_secs_f64());
                        epoch += 1;
                        dirty = false;
                        last_commit = Instant::now();
                        backoff = Duration::from_millis(100);
                    }
                    Err(e) => {
                        health.report(&name, e);
                        activator.activate_after(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        return true;
                    }
                }
            }
            if done && !dirty {
                finished = true;
                return false;
            }
            if dirty {
                activator.activate_after(commit_interval.saturating_sub(last_commit.elapsed()));
            }
            false
        }
    });
}
