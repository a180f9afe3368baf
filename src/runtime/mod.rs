//! Worker processes: timely execution of a topology's jobs.
//!
//! [`run`] starts `workers` timely worker threads in this process (or joins a
//! cluster of processes with `process` + `hosts`), installs every selected
//! job as its own dataflow — in name order on every worker, the one sequenced
//! path by which dataflows are built — and steps them until they complete
//! (bounded runs), fail, or `shutdown` is raised.
//!
//! Each job owns a [`JobHealth`]: transient external failures are logged and
//! retried by the operator that met them; a non-retryable failure fails the
//! job, which is then dropped from every worker of the process (through
//! [`RunShared`]) and reported, without touching the other jobs. A job that
//! cannot be built fails the whole run, after the dataflows already built
//! are dropped. An unbounded run stops when `shutdown` is raised (Ctrl-C):
//! its dataflows are dropped and the workers exit.

pub mod admin;

use crate::config::Topology;
use crate::error::{Result, RiftError};
use crate::jobs::{self, JobContext, RunShared};
use crate::metrics::Metrics;
use crate::state::JobState;
use crate::util::time::epoch_frontier;
use crate::util::{JobHealth, Time};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::dataflow::ProbeHandle;

/// How long a stop waits for the final checkpoint before giving up on it.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A job installed on a worker.
struct RunningJob {
    name: String,
    /// Its dataflow's index on the worker.
    index: usize,
    health: JobHealth,
    /// Where the job's checkpoints complete.
    checkpointed: ProbeHandle<Time>,
    /// Where the job's sinks report their commits.
    committed: ProbeHandle<Time>,
    /// Whether a sink reports to `checkpointed` (a probe nothing feeds says nothing).
    attached: std::rc::Rc<std::cell::Cell<bool>>,
    state: Arc<JobState>,
    metrics: crate::metrics::CheckpointMetrics,
    /// The checkpoint interval, ms (epoch `n` ends at `(n + 1) * interval`).
    epoch_ms: u64,
}

impl RunningJob {
    /// Whether the job stopped for a stop in `epoch`: the checkpoint before
    /// it is complete and every sink committed it.
    fn stopped(&self, epoch: u64) -> bool {
        let complete = self.state.complete_epoch().is_some_and(|c| c + 1 >= epoch);
        let committed = self
            .committed
            .with_frontier(|f| epoch_frontier(f).is_none_or(|e| e >= epoch));
        complete && committed
    }

    /// Records the checkpoints the job's completion probe has passed (every
    /// worker of every process staged them): the latest becomes the state a
    /// restart restores. Done by whichever worker sees it first; idempotent.
    fn complete_checkpoints(&self) -> Result<()> {
        if !self.attached.get() {
            return Ok(());
        }
        let frontier = self.checkpointed.with_frontier(epoch_frontier);
        let done = match frontier {
            Some(0 | 1) => return Ok(()),
            Some(e) => Some(e - 1),
            // Input complete: everything staged is complete.
            None => self.state.latest_epoch(),
        };
        if let Some(n) = done {
            if self.state.complete_epoch().is_none_or(|c| c < n) && self.state.complete(n)? {
                let now = crate::util::now_ms().max(0) as u64;
                let boundary = n.saturating_add(1).saturating_mul(self.epoch_ms);
                // A bounded run's final checkpoint has no boundary in the past.
                if boundary <= now {
                    self.metrics.seconds.observe((now - boundary) as f64 / 1e3);
                }
                self.metrics.completed.set((now / 1000) as i64);
                if let Some(info) = self.state.history()?.into_iter().rev().find(|i| i.epoch == n) {
                    self.metrics.bytes.set(info.bytes as i64);
                }
                tracing::info!(job = %self.name, checkpoint = n, "checkpoint complete");
            }
        }
        Ok(())
    }
}

/// The maximum of each worker's `local` values over every worker of the
/// cluster, per position (a small dataflow run to completion before the
/// jobs are installed, identically on every worker).
fn agree_on_latest(worker: &mut timely::worker::Worker, local: &[Option<u64>]) -> Vec<Option<u64>> {
    use timely::dataflow::operators::vec::Broadcast;
    use timely::dataflow::operators::{Input, Inspect, Probe};
    let agreed = std::rc::Rc::new(std::cell::RefCell::new(vec![None; local.len()]));
    let sink = agreed.clone();
    let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
        let (input, stream) = scope.new_input::<Vec<(usize, Option<u64>)>>();
        let probe = stream
            .broadcast()
            .inspect(move |(i, v): &(usize, Option<u64>)| {
                let mut a = sink.borrow_mut();
                if let Some(slot) = a.get_mut(*i) {
                    *slot = (*slot).max(*v);
                }
            })
            .probe()
            .0;
        (input, probe)
    });
    for (i, v) in local.iter().enumerate() {
        input.send((i, *v));
    }
    input.close();
    while !probe.done() {
        worker.step();
    }
    let out = agreed.borrow().clone();
    out
}

/// How to run a topology.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads in this process.
    pub workers: usize,
    /// This process's index in a cluster (with `hosts`).
    pub process: Option<usize>,
    /// File with one `host:port` per process.
    pub hosts: Option<PathBuf>,
    /// Run the jobs over their input to its end, then exit.
    pub bounded: bool,
    /// Only these jobs (all when empty).
    pub jobs: Vec<String>,
    /// Raised to stop an unbounded run.
    pub shutdown: Arc<AtomicBool>,
    /// Where the run's metrics go.
    pub metrics: Arc<Metrics>,
}

impl RunOptions {
    /// A bounded run with `workers` threads.
    pub fn bounded(workers: usize) -> RunOptions {
        RunOptions {
            workers,
            process: None,
            hosts: None,
            bounded: true,
            jobs: Vec::new(),
            shutdown: Arc::new(AtomicBool::new(false)),
            metrics: Metrics::new(),
        }
    }
}

/// How each job ended, on every worker.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Job name → failure (if any worker failed it).
    pub failures: BTreeMap<String, String>,
    /// Jobs run.
    pub jobs: Vec<String>,
    /// Wall-clock duration.
    pub elapsed: Duration,
    /// The run's metrics.
    pub metrics: Option<Arc<Metrics>>,
}

/// Runs the jobs of `topology` until they complete (bounded) or `shutdown`.
pub fn run(topology: Arc<Topology>, opts: RunOptions) -> Result<RunReport> {
    let selected: Vec<String> = if opts.jobs.is_empty() {
        topology.jobs.keys().cloned().collect()
    } else {
        for j in &opts.jobs {
            if !topology.jobs.contains_key(j) {
                return Err(RiftError::Usage(format!(
                    "no job `{j}` in {}; defined: {}",
                    topology.file,
                    topology.jobs.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        opts.jobs.clone()
    };
    if selected.is_empty() {
        return Err(RiftError::Usage(format!("{} defines no jobs", topology.file)));
    }
    // Compile every feature set and build every job once up front, so
    // configuration errors surface before workers start.
    crate::features::compile_sets(&topology)?;
    for name in &selected {
        jobs::build(name, &topology)?;
    }
    let config = timely_config(&opts)?;
    let shared = Arc::new(RunShared::default());
    if let Some(addr) = &topology.runtime.admin_addr {
        admin::serve(addr, opts.metrics.clone(), shared.clone());
    }
    let started = Instant::now();
    let bounded = opts.bounded;
    let shutdown = opts.shutdown.clone();
    let names = selected.clone();
    let metrics = opts.metrics.clone();
    // Identifies this run to the process's shared checkpoint state.
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run_id = RUNS.fetch_add(1, Ordering::Relaxed);
    let guards = timely::execute(
        config,
        move |worker| -> std::result::Result<BTreeMap<String, String>, String> {
            // Every worker of every process agrees on the checkpoint each job
            // restores: the latest any process recorded complete.
            let states: Vec<Arc<JobState>> = names
                .iter()
                .map(|name| JobState::open(std::path::Path::new(&topology.runtime.state_dir), name))
                .collect::<Result<_>>()
                .map_err(|e| format!("opening checkpoint state: {e}"))?;
            let local: Vec<Option<u64>> = states.iter().map(|s| s.complete_epoch()).collect();
            let agreed = agree_on_latest(worker, &local);
            let mut running: Vec<RunningJob> = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let restore_started = Instant::now();
                let state = states[i].clone();
                let restored = state
                    .recover_once(run_id, agreed[i])
                    .map_err(|e| format!("job `{name}`: restoring checkpoint: {e}"))?;
                if let Some(n) = restored {
                    tracing::info!(job = %name, checkpoint = n, "restoring");
                }
                let health = JobHealth::default();
                let probes = crate::operators::sink::SinkProbes::default();
                let ctx = JobContext {
                    job: name.clone(),
                    topology: topology.clone(),
                    worker: worker.index(),
                    peers: worker.peers(),
                    bounded,
                    health: health.clone(),
                    probes: probes.clone(),
                    shared: shared.clone(),
                    metrics: metrics.clone(),
                    state: state.clone(),
                    restored,
                };
                let index = worker.next_dataflow_index();
                let built: Result<()> = jobs::build(name, &topology).and_then(|job| {
                    worker.dataflow_named::<u64, _, _>(name, |outer| {
                        outer.scoped::<Time, _, _>(name, |scope| job.install(scope, &ctx))
                    })
                });
                if let Err(e) = built {
                    // Other workers may have installed theirs: make them stop too, and
                    // drop what this worker built, or the process would wait forever.
                    let why = format!("job `{name}`: {e}");
                    shared.fail(name, why.clone());
                    for other in &names {
                        shared.fail(other, format!("not run: {why}"));
                    }
                    for index in worker.installed_dataflows() {
                        worker.drop_dataflow(index);
                    }
                    return Err(why);
                }
                let checkpoint_metrics = metrics.checkpoints(name);
                if let Some(n) = restored {
                    // Recovery and the operators' restore (they read their state as they are built).
                    let ms = restore_started.elapsed().as_millis() as i64;
                    checkpoint_metrics.restore_ms.set(ms);
                    if worker.index() == 0 {
                        tracing::info!(job = %name, checkpoint = n, ms, "restored");
                    }
                }
                running.push(RunningJob {
                    name: name.clone(),
                    index,
                    health,
                    checkpointed: probes.checkpointed,
                    committed: probes.committed,
                    attached: probes.attached,
                    state,
                    metrics: checkpoint_metrics,
                    epoch_ms: topology.runtime.checkpoint_interval.as_millis().max(1) as u64,
                });
            }
            let mut failures = BTreeMap::new();
            // (stop epoch, when the stop was requested), once it was.
            let mut stopping: Option<(u64, Instant)> = None;
            let epoch_ms = topology.runtime.checkpoint_interval.as_millis().max(1) as u64;
            loop {
                worker.step_or_park(Some(Duration::from_millis(5)));
                let installed = worker.installed_dataflows();
                running.retain(|job| {
                    let (name, index, health) = (&job.name, &job.index, &job.health);
                    if let Some(f) = health.fatal() {
                        shared.fail(name, f);
                    }
                    if let Err(e) = job.complete_checkpoints() {
                        shared.fail(name, format!("checkpoint: {e}"));
                    }
                    // A failure on any worker of the process stops the job on all of them.
                    if let Some(f) = shared.failure(name) {
                        metrics.job_failed(name).set(1);
                        failures.insert(name.clone(), f);
                        if installed.contains(index) {
                            worker.drop_dataflow(*index);
                        }
                        return false;
                    }
                    installed.contains(index)
                });
                if shutdown.load(Ordering::Relaxed) {
                    // A graceful stop: sources stop reading and move to the stop epoch; once
                    // the checkpoint before it is complete and committed, the dataflows go.
                    let stop = *stopping.get_or_insert_with(|| {
                        let epoch = crate::util::now_ms().max(0) as u64 / epoch_ms + 1;
                        shared.request_stop(epoch);
                        (shared.stop_epoch().unwrap_or(epoch), Instant::now())
                    });
                    let timed_out = stop.1.elapsed() > STOP_TIMEOUT;
                    running.retain(|job| {
                        if !job.stopped(stop.0) && !timed_out {
                            return true;
                        }
                        if !job.stopped(stop.0) {
                            let why = format!(
                                "no final checkpoint within {}s of the stop request: output since the last one is read again on restart",
                                STOP_TIMEOUT.as_secs()
                            );
                            tracing::error!(job = %job.name, "{why}");
                            failures.insert(job.name.clone(), why);
                        }
                        if worker.installed_dataflows().contains(&job.index) {
                            worker.drop_dataflow(job.index);
                        }
                        false
                    });
                }
                if running.is_empty() {
                    break;
                }
            }
            Ok(failures)
        },
    )
    .map_err(|e| RiftError::Usage(format!("cannot start workers: {e}")))?;
    let mut report = RunReport {
        jobs: selected,
        metrics: Some(opts.metrics.clone()),
        ..Default::default()
    };
    for result in guards.join() {
        match result {
            Ok(Ok(failures)) => report.failures.extend(failures),
            Ok(Err(e)) => return Err(RiftError::Usage(e)),
            Err(panic) => return Err(RiftError::Internal(format!("a worker panicked: {panic}"))),
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

fn timely_config(opts: &RunOptions) -> Result<timely::Config> {
    let workers = opts.workers.max(1);
    let communication = match (&opts.hosts, opts.process) {
        (Some(hosts), Some(process)) => {
            let text = std::fs::read_to_string(hosts).map_err(|e| RiftError::io(hosts, e))?;
            let addresses: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect();
            if process >= addresses.len() {
                return Err(RiftError::Usage(format!(
                    "--process {process} but {} lists {} hosts",
                    hosts.display(),
                    addresses.len()
                )));
            }
            timely::CommunicationConfig::Cluster {
                threads: workers,
                process,
                addresses,
                report: false,
                zerocopy: false,
            }
        }
        (None, None) if workers == 1 => timely::CommunicationConfig::Thread,
        (None, None) => timely::CommunicationConfig::Process(workers),
        _ => return Err(RiftError::Usage("--process and --hosts go together".into())),
    };
    Ok(timely::Config {
        communication,
        worker: timely::WorkerConfig::default(),
    })
}
