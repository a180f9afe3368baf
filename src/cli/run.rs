//! `riftstream run`: worker processes running a topology's jobs.

use super::{load_topology, Exit};
use crate::runtime::{self, RunOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Runs the topology at `topology` until its jobs end (bounded) or a signal stops it.
pub fn run(
    topology: &Path,
    workers: Option<usize>,
    process: Option<usize>,
    hosts: Option<PathBuf>,
    bounded: bool,
    (jobs, topology_jobs): (Vec<String>, bool),
) -> anyhow::Result<()> {
    let topo = Arc::new(load_topology(topology)?);
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    on_stop_signal(move || flag.store(true, Ordering::Relaxed));
    let opts = RunOptions {
        workers: workers.unwrap_or(topo.runtime.workers),
        process,
        hosts,
        bounded,
        jobs,
        topology_jobs,
        shutdown,
        metrics: crate::metrics::Metrics::global(),
    };
    let report = runtime::run(topo, opts)?;
    if !report.failures.is_empty() {
        for (job, why) in &report.failures {
            eprintln!("job {job} failed: {why}");
        }
        return Err(Exit {
            message: format!("{} job(s) failed", report.failures.len()),
            code: 1,
        }
        .into());
    }
    let read = report
        .metrics
        .as_ref()
        .map_or(0, |m| m.counter_sum("source_records_total", "", ""));
    eprintln!(
        "ran {} in {:.2?}: {read} records read",
        report.jobs.join(", "),
        report.elapsed
    );
    if let Some(metrics) = &report.metrics {
        for l in metrics.latency_summaries() {
            eprintln!(
                "prediction latency, arrival at the source to emission to the sinks: job={} kind={} n={} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3}",
                l.job, l.kind, l.count, l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
            );
        }
    }
    Ok(())
}

/// Calls `on_signal` once on SIGINT or SIGTERM (tokio's signal handling, on a helper thread).
fn on_stop_signal(on_signal: impl Fn() + Send + 'static) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        if let Ok(rt) = rt {
            rt.block_on(async {
                let terminate = async {
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                        Ok(mut s) => {
                            s.recv().await;
                        }
                        Err(_) => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate => {}
                }
            });
            on_signal();
        }
    });
}
