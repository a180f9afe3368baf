//! Worker processes: a timely cluster running jobs, as a long-running
//! service or over bounded input.
//!
//! [`run`] starts `workers` timely worker threads in this process (or joins
//! a cluster of processes with `process` + `hosts`, or a Kubernetes
//! StatefulSet, see [`cluster`]). Every worker first builds the
//! [`control`] dataflow; worker 0 of process 0 sequences commands through
//! it and every worker applies them in order ([`worker`]): install a job
//! (restored from its checkpoint), cancel one, seal the run. Process 0
//! keeps the job [`catalog`] in its state directory and serves the
//! [`admin`] API (submit, list, cancel, status page, metrics, health).
//!
//! A `--bounded` run starts the selected jobs of the topology, seals, and
//! ends when they have read their input to its end. An unbounded run
//! starts the catalog's live jobs (on a first start: the topology's jobs),
//! accepts more, and stops on a signal to any of its processes: every job
//! takes a final checkpoint, and a restart resumes them.
//!
//! # Failure
//! A job that fails on any worker is dropped on every worker and marked
//! `failed`; the others keep running. A job that cannot be installed stops
//! the run (dataflows must match across workers). A process whose state
//! directory is in use, whose peers do not connect within
//! `runtime.connect_timeout`, or which loses a peer, exits with a clear
//! error instead of hanging.

pub mod admin;
pub mod catalog;
pub mod cluster;
pub mod control;
pub mod service;
mod worker;

use crate::config::Topology;
use crate::error::{Result, RiftError};
use crate::jobs::{self, RunShared};
use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Whether an unbounded run's first start starts the topology's jobs
    /// (`false`: it waits for submissions).
    pub topology_jobs: bool,
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
            topology_jobs: true,
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
    if selected.is_empty() && opts.bounded {
        return Err(RiftError::Usage(format!("{} defines no jobs", topology.file)));
    }
    // Compile every feature set and build every job once up front, so
    // configuration errors surface before workers start.
    crate::features::compile_sets(&topology)?;
    for name in &selected {
        jobs::build(name, &topology)?.preflight()?;
    }
    let (config, cluster) = timely_config(&opts)?;
    let process = cluster.as_ref().map_or(0, |(p, _)| *p);
    // Fail fast: a process's state directory is its own.
    let state_dir = PathBuf::from(&topology.runtime.state_dir);
    crate::state::shared_db(&state_dir.join("checkpoints")).map_err(|e| {
        RiftError::config(
            &topology.file,
            "runtime.state_dir",
            format!(
                "{} cannot be opened ({e}); is another process using it? Each process of a cluster needs its own state directory",
                state_dir.display()
            ),
        )
    })?;
    let shared = Arc::new(RunShared::default());
    let (service, initial) = if process == 0 {
        let catalog = if opts.bounded {
            catalog::Catalog::in_memory()
        } else {
            catalog::Catalog::open(&state_dir)?
        };
        let service = service::Service::new(topology.clone(), catalog);
        let first = if opts.topology_jobs || opts.bounded {
            &selected[..]
        } else {
            &[]
        };
        let initial = service.initial_jobs(first)?;
        if let Some(addr) = &topology.runtime.admin_addr {
            admin::serve(
                addr,
                admin::token(&topology)?,
                opts.metrics.clone(),
                shared.clone(),
                Some(service.clone()),
            )?;
        }
        (Some(service), initial)
    } else {
        (None, Vec::new())
    };
    let started = Instant::now();
    let formed = Arc::new(AtomicBool::new(false));
    if let Some((_, hosts)) = &cluster {
        cluster::fail_fast_on_peer_loss();
        cluster::connect_watchdog(formed.clone(), topology.runtime.connect_timeout, hosts.clone());
    }
    // Identifies this run to the process's shared checkpoint state.
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let setup = Arc::new(worker::WorkerSetup {
        topology: topology.clone(),
        bounded: opts.bounded,
        shutdown: opts.shutdown.clone(),
        shared: shared.clone(),
        metrics: opts.metrics.clone(),
        service: service.clone(),
        initial,
        run_id: RUNS.fetch_add(1, Ordering::Relaxed),
        threads: opts.workers.max(1),
    });
    let guards = timely::execute(config, move |w| {
        formed.store(true, Ordering::SeqCst);
        worker::work(w, &setup)
    })
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

/// A process's place in a cluster: its index and every process's `host:port`.
type ClusterPlace = (usize, Vec<String>);

/// The timely configuration, and this process's place in a cluster.
fn timely_config(opts: &RunOptions) -> Result<(timely::Config, Option<ClusterPlace>)> {
    let workers = opts.workers.max(1);
    let cluster = match (&opts.hosts, opts.process) {
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
            Some((process, addresses))
        }
        (None, None) => cluster::statefulset_cluster(|k| std::env::var(k).ok()).map_err(RiftError::Usage)?,
        _ => return Err(RiftError::Usage("--process and --hosts go together".into())),
    };
    let communication = match &cluster {
        Some((process, addresses)) => timely::CommunicationConfig::Cluster {
            threads: workers,
            process: *process,
            addresses: addresses.clone(),
            report: false,
            zerocopy: false,
        },
        None if workers == 1 => timely::CommunicationConfig::Thread,
        None => timely::CommunicationConfig::Process(workers),
    };
    Ok((
        timely::Config {
            communication,
            worker: timely::WorkerConfig::default(),
        },
        cluster,
    ))
}
