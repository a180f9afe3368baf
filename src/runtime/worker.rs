//! One worker's life: build the control dataflow, then apply its commands
//! (install a job, stop one) in sequence order while stepping every
//! installed dataflow, until the cluster is sealed and no job is left.
//!
//! # Jobs
//! A started job agrees with every other worker on the checkpoint it
//! restores (the latest any process recorded complete), restores it and
//! installs its dataflow. It ends when its input ends (`finished`), when a
//! cancel drops it (at once, or once its savepoint is complete and
//! committed), or when it fails on any worker of any process: that worker
//! broadcasts the failure and every worker drops the job; the other jobs
//! keep running.
//!
//! # Stop
//! A signal to any process becomes a cluster-wide stop: every job's
//! sources stop in one epoch, and each job is dropped once the checkpoint
//! before it is complete and committed (or after `STOP_TIMEOUT`). The
//! catalog keeps such jobs `running`: a restarted cluster resumes them.

use super::catalog::JobStatus;
use super::control::{Command, Control, JobSpec, JobStats, Notice, SinkStats, SourceStats};
use super::service::Service;
use crate::config::Topology;
use crate::error::Result;
use crate::jobs::{self, JobContext, RunShared};
use crate::metrics::Metrics;
use crate::state::JobState;
use crate::util::time::epoch_frontier;
use crate::util::{JobHealth, Time};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

/// How long a stop waits for the final checkpoint before giving up on it.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// How often each process reports its jobs' figures to the sequencer.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// What every worker of a process is given.
pub(super) struct WorkerSetup {
    pub topology: Arc<Topology>,
    pub bounded: bool,
    pub shutdown: Arc<AtomicBool>,
    pub shared: Arc<RunShared>,
    pub metrics: Arc<Metrics>,
    /// The service (process 0): its worker 0 sequences commands.
    pub service: Option<Arc<Service>>,
    /// The jobs the sequencer starts with.
    pub initial: Vec<JobSpec>,
    /// Identifies this run in the process (checkpoint recovery happens once per start).
    pub run_id: u64,
    /// Worker threads per process.
    pub threads: usize,
}

/// A job installed on a worker.
struct RunningJob {
    id: String,
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
    /// A cancel: `Some(None)` drops the job at once, `Some(Some(e))` once
    /// the savepoint before epoch `e` is complete and committed.
    cancel: Option<Option<u64>>,
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

    /// Where a stop in `epoch` waits: what an operator needs to see why it did not end.
    fn stop_progress(&self, epoch: u64) -> String {
        // A frontier at epoch `e` has passed every epoch before it; an empty one, all of them.
        let passed = |probe: &ProbeHandle<Time>| {
            probe
                .with_frontier(epoch_frontier)
                .map_or_else(|| "every epoch".to_string(), |e| format!("epochs before {e}"))
        };
        format!(
            "stop epoch {epoch}; latest complete checkpoint {}; checkpointed: {}; committed by the sinks: {}",
            self.state
                .complete_epoch()
                .map_or_else(|| "none".to_string(), |c| c.to_string()),
            passed(&self.checkpointed),
            passed(&self.committed),
        )
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

    /// This process's figures for the job.
    fn stats(&self, metrics: &Metrics, process: usize) -> JobStats {
        let mut sources: BTreeMap<String, SourceStats> = BTreeMap::new();
        fn source<'a>(
            sources: &'a mut BTreeMap<String, SourceStats>,
            labels: &BTreeMap<String, String>,
        ) -> Option<&'a mut SourceStats> {
            let name = labels.get("source")?;
            Some(sources.entry(name.clone()).or_insert_with(|| SourceStats {
                name: name.clone(),
                ..Default::default()
            }))
        }
        for (labels, v) in metrics.job_series("source_records_total", &self.name) {
            if let Some(s) = source(&mut sources, &labels) {
                s.records_in += v as u64;
            }
        }
        for (labels, v) in metrics.job_series("source_watermark_ms", &self.name) {
            let w = v as i64;
            if let Some(s) = source(&mut sources, &labels).filter(|_| w > 0 && w < i64::MAX) {
                s.watermark_ms = Some(s.watermark_ms.map_or(w, |x| x.min(w)));
            }
        }
        for (labels, v) in metrics.job_series("source_lag", &self.name) {
            if let Some(s) = source(&mut sources, &labels) {
                s.lag = Some(s.lag.unwrap_or(0) + v.max(0.0) as u64);
            }
        }
        let mut sinks: BTreeMap<String, SinkStats> = BTreeMap::new();
        for (family, commits) in [("sink_records_total", false), ("sink_commits_total", true)] {
            for (labels, v) in metrics.job_series(family, &self.name) {
                let Some(name) = labels.get("sink") else { continue };
                let s = sinks.entry(name.clone()).or_insert_with(|| SinkStats {
                    name: name.clone(),
                    ..Default::default()
                });
                if commits {
                    s.commits += v as u64;
                } else {
                    s.records_out += v as u64;
                }
            }
        }
        let completed = self.metrics.completed.get();
        JobStats {
            id: self.id.clone(),
            process,
            at_ms: crate::util::now_ms(),
            sources: sources.into_values().collect(),
            sinks: sinks.into_values().collect(),
            checkpoint: self.state.complete_epoch(),
            checkpoint_at_s: (completed > 0).then_some(completed),
        }
    }
}

/// The maximum of each worker's `local` values over every worker of the
/// cluster, per position (a small dataflow run to completion, identically
/// on every worker).
fn agree_on_latest(worker: &mut Worker, local: &[Option<u64>]) -> Vec<Option<u64>> {
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

/// The topology a job's spec defines it in (the running one, or a merge with its job file).
fn topology_of(
    setup: &WorkerSetup,
    spec: &JobSpec,
    cache: &mut BTreeMap<String, Arc<Topology>>,
) -> Result<Arc<Topology>> {
    if spec.topology == setup.topology.text {
        return Ok(setup.topology.clone());
    }
    if let Some(t) = cache.get(&spec.id) {
        return Ok(t.clone());
    }
    let t = Arc::new(Topology::parse(&spec.topology, &spec.file)?);
    cache.insert(spec.id.clone(), t.clone());
    Ok(t)
}

/// Restores and installs the job of `spec` (started as the `seq`-th command).
fn start_job(
    worker: &mut Worker,
    setup: &WorkerSetup,
    spec: &JobSpec,
    seq: u64,
    cache: &mut BTreeMap<String, Arc<Topology>>,
) -> std::result::Result<RunningJob, String> {
    let name = &spec.name;
    let why = |e: crate::error::RiftError| format!("job `{name}`: {e}");
    let topology = topology_of(setup, spec, cache).map_err(why)?;
    let restore_started = Instant::now();
    let state = JobState::open(std::path::Path::new(&topology.runtime.state_dir), name)
        .map_err(|e| format!("job `{name}`: opening checkpoint state: {e}"))?;
    let agreed = agree_on_latest(worker, &[state.complete_epoch()])[0];
    let restored = state
        .recover_once((setup.run_id << 32) | seq, agreed)
        .map_err(|e| format!("job `{name}`: restoring checkpoint: {e}"))?;
    if let Some(n) = restored {
        tracing::info!(job = %name, checkpoint = n, "restoring");
    }
    let health = JobHealth::default();
    let probes = crate::operators::sink::SinkProbes::default();
    let ctx = JobContext {
        job: name.clone(),
        id: spec.id.clone(),
        topology: topology.clone(),
        worker: worker.index(),
        peers: worker.peers(),
        bounded: setup.bounded,
        health: health.clone(),
        probes: probes.clone(),
        shared: setup.shared.clone(),
        metrics: setup.metrics.clone(),
        state: state.clone(),
        restored,
    };
    let index = worker.next_dataflow_index();
    jobs::build(name, &topology)
        .and_then(|job| {
            worker.dataflow_named::<u64, _, _>(name, |outer| {
                outer.scoped::<Time, _, _>(name, |scope| job.install(scope, &ctx))
            })
        })
        .map_err(why)?;
    let checkpoint_metrics = setup.metrics.checkpoints(name);
    setup.metrics.job_failed(name).set(0);
    if let Some(n) = restored {
        // Recovery and the operators' restore (they read their state as they are built).
        let ms = restore_started.elapsed().as_millis() as i64;
        checkpoint_metrics.restore_ms.set(ms);
        if worker.index() == 0 {
            tracing::info!(job = %name, checkpoint = n, ms, "restored");
        }
    }
    Ok(RunningJob {
        id: spec.id.clone(),
        name: name.clone(),
        index,
        health,
        checkpointed: probes.checkpointed,
        committed: probes.committed,
        attached: probes.attached,
        state,
        metrics: checkpoint_metrics,
        epoch_ms: topology.runtime.checkpoint_interval.as_millis().max(1) as u64,
        cancel: None,
    })
}

/// Runs one worker until the cluster is sealed and its jobs are gone;
/// returns the jobs that failed (name → reason).
pub(super) fn work(worker: &mut Worker, setup: &WorkerSetup) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut control = Control::build(worker);
    let sequencer = (worker.index() == 0).then(|| setup.service.clone()).flatten();
    let epoch_ms = setup.topology.runtime.checkpoint_interval.as_millis().max(1) as u64;
    let process = worker.index() / setup.threads.max(1);
    let reporter = worker.index() % setup.threads.max(1) == 0;
    let mut sealed_sent = false;
    if worker.index() == 0 {
        for spec in &setup.initial {
            control.issue(Command::Start(spec.clone()));
        }
        if setup.bounded {
            control.issue(Command::Seal);
            sealed_sent = true;
        }
    }
    let (shared, metrics) = (&setup.shared, &setup.metrics);
    let mut running: Vec<RunningJob> = Vec::new();
    let mut failures = BTreeMap::new();
    let mut cache = BTreeMap::new();
    let mut sealed = false;
    let mut seq = 0u64;
    // (stop epoch, when it was requested), once the cluster stops.
    let mut stopping: Option<(u64, Instant)> = None;
    let mut stop_sent = false;
    let mut reported = Instant::now();
    loop {
        worker.step_or_park(Some(Duration::from_millis(5)));
        if let Some(service) = &sequencer {
            for command in service.take_commands() {
                if sealed_sent {
                    continue;
                }
                control.issue(command);
            }
            for stats in control.take_stats() {
                service.report(stats);
            }
        }
        let (notices, commands) = control.receive();
        for notice in notices {
            match notice {
                Notice::Failed { id, reason } => shared.fail(&id, reason),
                Notice::Stop { epoch } => {
                    if stopping.is_none() {
                        stopping = Some((epoch, Instant::now()));
                        for job in &running {
                            shared.request_stop(&job.id, epoch);
                        }
                        if let Some(service) = &sequencer {
                            service.stop();
                            if !sealed_sent {
                                control.issue(Command::Seal);
                                sealed_sent = true;
                            }
                        }
                    }
                }
                Notice::Command { .. } => {}
            }
        }
        for command in commands {
            seq += 1;
            match command {
                Command::Start(spec) => {
                    let job = start_job(worker, setup, &spec, seq, &mut cache).inspect_err(|why| {
                        // Other workers may have installed theirs: make them drop it too.
                        // Dataflows must match across workers, so the run cannot go on.
                        control.notify(Notice::Failed {
                            id: spec.id.clone(),
                            reason: why.clone(),
                        });
                        for index in worker.installed_dataflows() {
                            worker.drop_dataflow(index);
                        }
                    })?;
                    if let Some((epoch, _)) = stopping {
                        shared.request_stop(&job.id, epoch);
                    }
                    if let Some(service) = &sequencer {
                        service.set_state(&job.id, JobStatus::Running, None);
                    }
                    tracing::info!(job = %job.name, id = %job.id, "job started");
                    running.push(job);
                }
                Command::Cancel { id, savepoint_epoch } => {
                    if let Some(job) = running.iter_mut().find(|j| j.id == id) {
                        if let Some(epoch) = savepoint_epoch {
                            shared.request_stop(&id, epoch);
                        }
                        job.cancel = Some(savepoint_epoch);
                    }
                }
                Command::Seal => sealed = true,
            }
        }
        if setup.shutdown.load(Ordering::Relaxed) && !stop_sent {
            // A signal: the whole cluster stops, in one epoch.
            stop_sent = true;
            let epoch = crate::util::now_ms().max(0) as u64 / epoch_ms + 1;
            control.notify(Notice::Stop { epoch });
        }
        let installed = worker.installed_dataflows();
        let mut ended: Vec<JobStats> = Vec::new();
        running.retain(|job| {
            // A job's last figures go to the sequencer as it leaves.
            let mut end = |job: &RunningJob| {
                if reporter {
                    ended.push(job.stats(metrics, process));
                }
                false
            };
            let fail = |why: String, control: &mut Control| {
                if shared.failure(&job.id).is_none() {
                    control.notify(Notice::Failed {
                        id: job.id.clone(),
                        reason: why.clone(),
                    });
                }
                shared.fail(&job.id, why);
            };
            if let Some(f) = job.health.fatal() {
                fail(f, &mut control);
            }
            if let Err(e) = job.complete_checkpoints() {
                fail(format!("checkpoint: {e}"), &mut control);
            }
            let drop = |worker: &mut Worker| {
                if installed.contains(&job.index) {
                    worker.drop_dataflow(job.index);
                }
            };
            let set_state = |state: JobStatus, reason: Option<String>| {
                if let Some(service) = &sequencer {
                    service.set_state(&job.id, state, reason);
                }
            };
            // A failure on any worker of any process stops the job on all of them.
            if let Some(f) = shared.failure(&job.id) {
                metrics.job_failed(&job.name).set(1);
                tracing::error!(job = %job.name, id = %job.id, reason = %f, "job failed");
                failures.insert(job.name.clone(), f.clone());
                drop(worker);
                set_state(JobStatus::Failed, Some(f));
                return end(job);
            }
            match job.cancel {
                Some(None) => {
                    drop(worker);
                    set_state(JobStatus::Cancelled, None);
                    return end(job);
                }
                Some(Some(epoch)) if job.stopped(epoch) => {
                    drop(worker);
                    tracing::info!(job = %job.name, id = %job.id, "cancelled with a savepoint");
                    set_state(JobStatus::Cancelled, None);
                    return end(job);
                }
                _ => {}
            }
            if let Some((epoch, since)) = stopping {
                let stopped = job.stopped(epoch);
                if stopped || since.elapsed() > STOP_TIMEOUT {
                    if !stopped {
                        let why = format!(
                            "no final checkpoint within {}s of the stop request: output since the last one is read again on restart ({})",
                            STOP_TIMEOUT.as_secs(),
                            job.stop_progress(epoch)
                        );
                        tracing::error!(job = %job.name, "{why}");
                        failures.insert(job.name.clone(), why);
                    }
                    drop(worker);
                    return end(job);
                }
            }
            if !installed.contains(&job.index) {
                // Its input ended and everything was committed.
                let state = if job.cancel.is_some() {
                    JobStatus::Cancelled
                } else {
                    JobStatus::Finished
                };
                set_state(state, None);
                return end(job);
            }
            true
        });
        for stats in ended {
            control.report(stats);
        }
        if reporter && reported.elapsed() >= REPORT_EVERY {
            reported = Instant::now();
            for job in &running {
                control.report(job.stats(metrics, process));
            }
        }
        if sealed && running.is_empty() {
            break;
        }
    }
    // Leave the control dataflow together: every worker stays until all left.
    control.close();
    while !control.done() {
        worker.step_or_park(Some(Duration::from_millis(5)));
        control.receive();
        if let Some(service) = &sequencer {
            for stats in control.take_stats() {
                service.report(stats);
            }
        } else {
            control.take_stats();
        }
    }
    Ok(failures)
}
