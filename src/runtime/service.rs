//! What the admin API and the sequencer (worker 0 of process 0) share in a
//! running cluster: the job catalog, the commands waiting to be sequenced,
//! and the figures each process reports for its jobs.
//!
//! The admin API validates a submission against the running topology
//! before anything is queued (so a bad job file is an error to the caller,
//! never a failure in the workers), records it in the catalog, and queues
//! its command; the sequencer takes queued commands in order and sends
//! them to every worker. Rates are computed here from successive reports.

use super::catalog::{Catalog, JobRecord, JobStatus};
use super::control::{Command, JobSpec, JobStats};
use crate::config::Topology;
use crate::error::{Result, RiftError};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// How far back rates look.
const RATE_WINDOW_MS: i64 = 5_000;

/// A submission: a job of the running topology, or a job file.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// A job named in the running topology.
    pub name: Option<String>,
    /// A job file's text.
    pub file: Option<String>,
    /// Where the job file was read from (for error messages).
    pub path: Option<String>,
}

/// A job as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    pub id: String,
    pub name: String,
    pub state: JobStatus,
    pub reason: Option<String>,
    pub submitted_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub uptime_s: Option<f64>,
    pub records_in: u64,
    pub records_out: u64,
    pub records_in_per_s: f64,
    pub records_out_per_s: f64,
    /// Records behind the end of the input, summed over sources (Kafka only).
    pub lag: Option<u64>,
    /// How far the lowest watermark trails the wall clock.
    pub watermark_delay_ms: Option<i64>,
    pub last_checkpoint: Option<u64>,
    pub checkpoint_age_s: Option<f64>,
}

/// One source of a job, over every process.
#[derive(Clone, Debug, Serialize)]
pub struct SourceView {
    pub name: String,
    pub records_in: u64,
    pub watermark_ms: Option<i64>,
    pub watermark_delay_ms: Option<i64>,
    pub lag: Option<u64>,
}

/// One sink of a job, over every process.
#[derive(Clone, Debug, Serialize)]
pub struct SinkView {
    pub name: String,
    pub records_out: u64,
    pub commits: u64,
    /// When a commit was last seen to happen (Unix ms).
    pub last_commit_ms: Option<i64>,
}

/// A job in detail.
#[derive(Clone, Debug, Serialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobView,
    pub sources: Vec<SourceView>,
    pub sinks: Vec<SinkView>,
    /// The file the job's definition came from.
    pub definition_file: String,
}

#[derive(Default)]
struct Figures {
    /// Latest report per process.
    by_process: BTreeMap<usize, JobStats>,
    /// (time, records in, records out) totals, for rates.
    history: VecDeque<(i64, u64, u64)>,
    /// Per sink: (commits seen, when they last changed).
    commits: BTreeMap<String, (u64, i64)>,
}

/// The state a cluster's sequencer and admin API share.
pub struct Service {
    topology: Arc<Topology>,
    catalog: Mutex<Catalog>,
    queue: Mutex<VecDeque<Command>>,
    figures: Mutex<BTreeMap<String, Figures>>,
    /// Set once the cluster stops: no more submissions.
    stopping: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Service {
    /// The service of a cluster running `topology`, with the catalog in its state directory.
    pub fn new(topology: Arc<Topology>, catalog: Catalog) -> Arc<Service> {
        Arc::new(Service {
            topology,
            catalog: Mutex::new(catalog),
            queue: Mutex::new(VecDeque::new()),
            figures: Mutex::new(BTreeMap::new()),
            stopping: false.into(),
        })
    }

    /// The jobs to start with: the catalog's live jobs after a restart, or
    /// the topology's `names` on a first start (recorded in the catalog).
    pub fn initial_jobs(&self, names: &[String]) -> Result<Vec<JobSpec>> {
        let mut catalog = lock(&self.catalog);
        if !catalog.is_new() {
            return catalog.resume();
        }
        names
            .iter()
            .map(|name| {
                catalog
                    .add(name, &self.topology.text, &self.topology.file)
                    .map(|r| r.spec)
            })
            .collect()
    }

    /// Validates and records `submission`, and queues its start.
    pub fn submit(&self, submission: &Submission) -> Result<JobRecord> {
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(RiftError::external("cluster", "the cluster is stopping", true));
        }
        let (topology, name) = match (&submission.name, &submission.file) {
            (Some(name), None) => {
                if !self.topology.jobs.contains_key(name) {
                    return Err(RiftError::Usage(format!(
                        "no job `{name}` in the running topology {}; defined: {}",
                        self.topology.file,
                        self.topology.jobs.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
                ((*self.topology).clone(), name.clone())
            }
            (None, Some(text)) => self
                .topology
                .with_job_file(text, submission.path.as_deref().unwrap_or("job file"))?,
            _ => return Err(RiftError::Usage("submit either a job name or a job file".into())),
        };
        crate::features::compile_sets(&topology)?;
        crate::jobs::build(&name, &topology)?.preflight()?;
        let record = lock(&self.catalog).add(&name, &topology.text, &topology.file)?;
        lock(&self.queue).push_back(Command::Start(record.spec.clone()));
        Ok(record)
    }

    /// Cancels job `id` (with a savepoint: in the epoch after the current one).
    pub fn cancel(&self, id: &str, savepoint: bool) -> Result<JobRecord> {
        let mut catalog = lock(&self.catalog);
        let job = catalog
            .get(id)
            .cloned()
            .ok_or_else(|| RiftError::Usage(format!("no job with id `{id}`")))?;
        if !job.state.is_live() {
            return Ok(job);
        }
        catalog.cancel(id, savepoint)?;
        // A savepoint stops in the epoch after the current one.
        let epoch_ms = self.topology.runtime.checkpoint_interval.as_millis().max(1) as u64;
        lock(&self.queue).push_back(Command::Cancel {
            id: id.to_string(),
            savepoint_epoch: savepoint.then(|| crate::util::now_ms().max(0) as u64 / epoch_ms + 1),
        });
        catalog
            .get(id)
            .cloned()
            .ok_or_else(|| RiftError::Internal(format!("job {id} left the catalog")))
    }

    /// Commands waiting to be sequenced.
    pub fn take_commands(&self) -> Vec<Command> {
        lock(&self.queue).drain(..).collect()
    }

    /// Records a job's new state.
    pub fn set_state(&self, id: &str, state: JobStatus, reason: Option<String>) {
        if let Err(e) = lock(&self.catalog).set(id, state, reason) {
            tracing::error!(job = %id, error = %e, "the job catalog could not be written");
        }
    }

    /// No more submissions: the cluster stops.
    pub fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Takes a process's report on a job.
    pub fn report(&self, stats: JobStats) {
        let mut figures = lock(&self.figures);
        let f = figures.entry(stats.id.clone()).or_default();
        let now = stats.at_ms;
        f.by_process.insert(stats.process, stats);
        let (records_in, records_out) = totals(f.by_process.values());
        f.history.push_back((now, records_in, records_out));
        while f.history.front().is_some_and(|(t, _, _)| now - t > RATE_WINDOW_MS) {
            f.history.pop_front();
        }
        for sink in sinks(f.by_process.values()) {
            let seen = f.commits.entry(sink.name.clone()).or_insert((0, 0));
            if sink.commits != seen.0 {
                *seen = (sink.commits, now);
            }
        }
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<JobView> {
        let jobs = lock(&self.catalog).jobs();
        let figures = lock(&self.figures);
        jobs.iter().map(|j| view(j, figures.get(&j.id))).collect()
    }

    /// Job `id` in detail.
    pub fn detail(&self, id: &str) -> Option<JobDetail> {
        let job = lock(&self.catalog).get(id).cloned()?;
        let figures = lock(&self.figures);
        let f = figures.get(id);
        let now = crate::util::now_ms();
        let mut sources: BTreeMap<String, SourceView> = BTreeMap::new();
        for s in f.iter().flat_map(|f| f.by_process.values()).flat_map(|p| &p.sources) {
            let v = sources.entry(s.name.clone()).or_insert(SourceView {
                name: s.name.clone(),
                records_in: 0,
                watermark_ms: None,
                watermark_delay_ms: None,
                lag: None,
            });
            v.records_in += s.records_in;
            v.watermark_ms = min_some(v.watermark_ms, s.watermark_ms);
            v.lag = sum_some(v.lag, s.lag);
        }
        for v in sources.values_mut() {
            v.watermark_delay_ms = v.watermark_ms.map(|w| (now - w).max(0));
        }
        let sinks = f
            .map(|f| {
                sinks(f.by_process.values())
                    .into_iter()
                    .map(|s| SinkView {
                        last_commit_ms: f.commits.get(&s.name).map(|c| c.1).filter(|t| *t > 0),
                        name: s.name,
                        records_out: s.records_out,
                        commits: s.commits,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(JobDetail {
            job: view(&job, f),
            sources: sources.into_values().collect(),
            sinks,
            definition_file: job.spec.file.clone(),
        })
    }
}

fn min_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn sum_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

fn totals<'a>(reports: impl Iterator<Item = &'a JobStats>) -> (u64, u64) {
    reports.fold((0, 0), |(i, o), r| {
        (
            i + r.sources.iter().map(|s| s.records_in).sum::<u64>(),
            o + r.sinks.iter().map(|s| s.records_out).sum::<u64>(),
        )
    })
}

/// Sinks summed over processes.
fn sinks<'a>(reports: impl Iterator<Item = &'a JobStats>) -> Vec<super::control::SinkStats> {
    let mut by_name: BTreeMap<String, super::control::SinkStats> = BTreeMap::new();
    for s in reports.flat_map(|r| &r.sinks) {
        let v = by_name
            .entry(s.name.clone())
            .or_insert_with(|| super::control::SinkStats {
                name: s.name.clone(),
                ..Default::default()
            });
        v.records_out += s.records_out;
        v.commits += s.commits;
    }
    by_name.into_values().collect()
}

fn view(job: &JobRecord, figures: Option<&Figures>) -> JobView {
    let now = crate::util::now_ms();
    let live = job.state == JobStatus::Running || job.state == JobStatus::Cancelling;
    let (records_in, records_out) = figures.map_or((0, 0), |f| totals(f.by_process.values()));
    let rate = |pick: fn(&(i64, u64, u64)) -> u64| -> f64 {
        let Some(f) = figures.filter(|_| live) else { return 0.0 };
        match (f.history.front(), f.history.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => (pick(b).saturating_sub(pick(a))) as f64 * 1e3 / (b.0 - a.0) as f64,
            _ => 0.0,
        }
    };
    let reports: Vec<&JobStats> = figures.map(|f| f.by_process.values().collect()).unwrap_or_default();
    let watermark = reports
        .iter()
        .flat_map(|r| &r.sources)
        .fold(None, |w, s| min_some(w, s.watermark_ms));
    let lag = reports
        .iter()
        .flat_map(|r| &r.sources)
        .fold(None, |l, s| sum_some(l, s.lag));
    let checkpoint = reports.iter().filter_map(|r| r.checkpoint).max();
    let checkpoint_at = reports.iter().filter_map(|r| r.checkpoint_at_s).max();
    JobView {
        id: job.id.clone(),
        name: job.name.clone(),
        state: job.state,
        reason: job.reason.clone(),
        submitted_at_ms: job.submitted_at_ms,
        started_at_ms: job.started_at_ms,
        uptime_s: job
            .started_at_ms
            .map(|s| (job.ended_at_ms.unwrap_or(now) - s).max(0) as f64 / 1e3),
        records_in,
        records_out,
        records_in_per_s: rate(|h| h.1),
        records_out_per_s: rate(|h| h.2),
        lag: lag.filter(|_| live),
        watermark_delay_ms: watermark
            .filter(|w| *w > 0 && *w < i64::MAX)
            .map(|w| (now - w).max(0))
            .filter(|_| live),
        last_checkpoint: checkpoint,
        checkpoint_age_s: checkpoint_at.map(|t| (now as f64 / 1e3 - t as f64).max(0.0)),
    }
}
