//! The `riftstream` command line: one function per command, over the
//! library. The binary (`src/main.rs`) only tunes the allocator, sets up
//! logging and calls [`main`].
//!
//! # Exit codes
//! | code | when |
//! |---|---|
//! | 0 | success |
//! | 1 | a job of `run` failed (its reason is printed) |
//! | 2 | usage: bad arguments, a missing file named on the command line |
//! | 3 | configuration: a topology or job file that fails to parse or validate (file and key named) |
//! | 4 | a service is unreachable or failing (Kafka, Redis, object store, disk, the cluster's admin API); a process that lost its cluster |
//! | 5 | data that cannot be read (a Parquet or CSV file, a model) |
//! | 6 | `job`, `cancel`: no job with that id |
//! | 7 | `submit`: a job of that name is already running |
//! | 8 | the admin API refused the token (missing or wrong) |
//! | 70 | internal error (a bug) |
//!
//! Library errors carry their kind ([`crate::error::ErrorKind`]); `anyhow`
//! is used here only, to add context on the way out.

mod checkpoints;
mod features;
mod jobs;
mod lake;
mod models;
mod produce;
mod run;

use crate::demo::DemoSize;
use crate::error::RiftError;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// A command failed with the given exit code (when not derived from a library error).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// What to print.
    pub message: String,
    /// The exit code.
    pub code: i32,
}

#[derive(Parser)]
#[command(
    name = "riftstream",
    version,
    about = "Stream processing for League of Legends match data"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run every job end to end on generated data: no Kafka, no Redis, nothing to install.
    Demo {
        /// Directory for inputs, lake, state, feature store and outputs.
        #[arg(long, default_value = "riftstream-demo")]
        data_dir: PathBuf,
        /// How much data to generate.
        #[arg(long, value_enum, default_value = "small")]
        size: DemoSize,
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
    /// Start a worker process running a topology's jobs.
    Run {
        /// Topology file.
        #[arg(long, default_value = "topology.toml")]
        topology: PathBuf,
        /// Worker threads in this process (default: the topology's `runtime.workers`).
        #[arg(long)]
        workers: Option<usize>,
        /// This process's index in a cluster.
        #[arg(long, requires = "hosts")]
        process: Option<usize>,
        /// File with one `host:port` per process of the cluster.
        #[arg(long, requires = "process")]
        hosts: Option<PathBuf>,
        /// Run over the input to its end, fire every window, commit every sink, exit 0.
        #[arg(long)]
        bounded: bool,
        /// Only this job (repeatable; default: every job of the topology).
        #[arg(long = "job")]
        jobs: Vec<String>,
        /// Start no job of the topology: wait for `riftstream submit` (first start only;
        /// a restart resumes the job catalog).
        #[arg(long, conflicts_with_all = ["bounded", "jobs"])]
        no_topology_jobs: bool,
    },
    /// Submit a job to a running cluster: a job of its topology, or a job file.
    Submit {
        /// Job name in the running topology, or a job file (`*.toml`).
        job: String,
        #[command(flatten)]
        admin: jobs::AdminArgs,
    },
    /// List the jobs of a running cluster.
    Jobs {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: jobs::AdminArgs,
    },
    /// Show one job of a running cluster in detail.
    Job {
        /// Job id (as `riftstream jobs` lists it).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: jobs::AdminArgs,
    },
    /// Cancel a job of a running cluster.
    Cancel {
        /// Job id.
        id: String,
        /// Take a final checkpoint first: the same job submitted again continues from it.
        #[arg(long)]
        savepoint: bool,
        #[command(flatten)]
        admin: jobs::AdminArgs,
    },
    /// Checkpoints of the jobs in a state directory.
    #[command(subcommand)]
    Checkpoints(CheckpointsCmd),
    /// Feed topics: the generator of ranked play, or replays of real data.
    #[command(subcommand)]
    Produce(Produce),
    /// Train a model and register it; prints the version's directory last.
    Train {
        /// `live` (10-minute team statistics) or `pre_game` (players' features).
        kind: String,
        /// Training data: the 10-minute CSV format for `live`; a table from
        /// `riftstream features export` for `pre_game`.
        #[arg(long)]
        data: PathBuf,
        /// Model family.
        #[arg(long, default_value = "logistic")]
        model: String,
        /// Registry root (default: the topology's lake root).
        #[arg(long)]
        registry: Option<PathBuf>,
        /// Topology whose lake root holds the registry.
        #[arg(long, default_value = "topology.toml")]
        topology: PathBuf,
        /// Registered model name (default: the kind).
        #[arg(long)]
        name: Option<String>,
        /// Training seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Evaluate a model version on a data file; prints JSON.
    Evaluate {
        /// A model version directory (as printed by `train`).
        #[arg(long)]
        model: PathBuf,
        /// Data in the model's format (the 10-minute CSV for live models, a
        /// `features export` table for pre-game models).
        #[arg(long)]
        data: PathBuf,
    },
    /// The model registry.
    #[command(subcommand)]
    Models(Models),
    /// The online feature store.
    #[command(subcommand)]
    Features(Features),
    /// Lake maintenance.
    #[command(subcommand)]
    Lake(LakeCmd),
}

#[derive(Subcommand)]
pub enum Produce {
    /// The simulator: finished matches, ranked snapshots, live games.
    Generator {
        /// Kafka brokers to produce to (topics are created when missing).
        #[arg(long)]
        brokers: Option<String>,
        /// Write JSON-lines files, one per topic, into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Finished matches.
        #[arg(long, default_value_t = 1000)]
        matches: usize,
        /// Live games (requests, events, frames).
        #[arg(long, default_value_t = 20)]
        live_games: usize,
        /// Players.
        #[arg(long, default_value_t = 1000)]
        players: usize,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Out-of-order delivery, ms.
        #[arg(long, default_value_t = 0)]
        jitter_ms: i64,
        /// Value encoding.
        #[arg(long, value_enum, default_value = "avro")]
        encoding: EncodingArg,
        /// Schema Registry URL (Avro).
        #[arg(long, env = "RIFT_SCHEMA_REGISTRY", default_value = "http://localhost:8081")]
        registry: String,
        /// Partitions of topics created.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Records per second per topic (default: as fast as possible).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Replays of real data files into Kafka: Oracle's Elixir CSVs as finished
    /// matches, the Kaggle 10-minute CSV as live games' events.
    Replay {
        /// Kafka brokers.
        #[arg(long)]
        brokers: String,
        /// Schema Registry URL (Avro).
        #[arg(long, env = "RIFT_SCHEMA_REGISTRY", default_value = "http://localhost:8081")]
        registry: String,
        /// Value encoding.
        #[arg(long, value_enum, default_value = "avro")]
        encoding: EncodingArg,
        /// Partitions of topics created.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Oracle's Elixir CSV files (repeatable).
        #[arg(long)]
        oracles: Vec<PathBuf>,
        /// The Kaggle 10-minute CSV.
        #[arg(long)]
        ten_minute: Option<PathBuf>,
    },
    /// Flat player-match rows (`match_id, player_id, champion, ts, kills, deaths,
    /// assists, gold, cs, win`), the reference windowed job's input.
    Rows {
        /// Output file (JSON lines).
        #[arg(long)]
        out: PathBuf,
        /// Number of rows.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Distinct players.
        #[arg(long, default_value_t = 10_000)]
        players: u32,
        /// Rows per second of event time.
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        /// Maximum out-of-orderness, ms.
        #[arg(long, default_value_t = 4_000)]
        jitter_ms: i64,
        /// Seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum EncodingArg {
    Avro,
    Json,
}

#[derive(Subcommand)]
pub enum Models {
    /// List registered model versions.
    List {
        /// Registry root (default: the topology's lake root).
        #[arg(long)]
        registry: Option<PathBuf>,
        /// Topology whose lake root holds the registry.
        #[arg(long, default_value = "topology.toml")]
        topology: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum Features {
    /// Print a player's online features.
    Get {
        /// Player id.
        player: String,
        /// An embedded store directory (default: the topology's online store).
        #[arg(long)]
        store: Option<PathBuf>,
        /// Topology naming the online store.
        #[arg(long, default_value = "topology.toml")]
        topology: PathBuf,
        /// Entity type.
        #[arg(long, default_value = "player")]
        entity: String,
    },
    /// Build a point-in-time correct training table from the offline store
    /// (`gold/player_features`): one row per match and participant with the
    /// features as of the match's start, never after.
    Export {
        /// Finished matches (JSON lines, the `esports.matches` shape) to build rows for.
        #[arg(long)]
        as_of_matches: PathBuf,
        /// Output Parquet file.
        #[arg(long)]
        out: PathBuf,
        /// Lake root (default: the topology's lake).
        #[arg(long)]
        lake: Option<String>,
        /// Topology naming the lake.
        #[arg(long, default_value = "topology.toml")]
        topology: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum CheckpointsCmd {
    /// List complete checkpoints: id, time, size, sources' positions.
    List {
        /// State directory (default: the topology's `runtime.state_dir`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Topology naming the state directory.
        #[arg(long, default_value = "topology.toml")]
        topology: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum LakeCmd {
    /// Merge small files of closed partitions.
    Compact {
        /// Topology whose lake to compact.
        #[arg(long, default_value = "topology.toml")]
        topology: PathBuf,
        /// Lake root (default: the topology's lake).
        #[arg(long)]
        lake: Option<String>,
        /// A partition is closed once its day ended at least this long ago.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        min_age: std::time::Duration,
        /// Files below this size are merged, into files of up to this size.
        #[arg(long, default_value_t = 64 * 1024 * 1024)]
        target_bytes: u64,
        /// Only report what would be merged.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Parses `args` (the first is the program name), runs the command, prints
/// any error with its causes to stderr, and returns the exit code.
pub fn main<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are not errors; clap knows which is which.
            let _ = e.print();
            return e.exit_code();
        }
    };
    let code = match dispatch(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            exit_code(&e)
        }
    };
    crate::state::stop_background_work();
    code
}

/// The error and its causes, each cause once (a library error often repeats
/// its source's text).
pub fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let line = cause.to_string();
        if !text.contains(&line) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&line);
        }
    }
    text
}

/// The exit code for `e`: the first library error or [`Exit`] in its chain decides.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if let Some(exit) = cause.downcast_ref::<Exit>() {
            return exit.code;
        }
        if let Some(rift) = cause.downcast_ref::<RiftError>() {
            return rift.kind().exit_code();
        }
        if let Some(model) = cause.downcast_ref::<crate::model::ModelError>() {
            return model.kind().exit_code();
        }
    }
    crate::error::ErrorKind::Internal.exit_code()
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo {
            data_dir,
            size,
            workers,
        } => crate::demo::run(&crate::demo::DemoOptions {
            data_dir,
            size,
            workers,
        })
        .map(|_| ())
        .map_err(Into::into),
        Command::Run {
            topology,
            workers,
            process,
            hosts,
            bounded,
            jobs,
            no_topology_jobs,
        } => run::run(&topology, workers, process, hosts, bounded, (jobs, !no_topology_jobs)),
        Command::Submit { job, admin } => jobs::submit(&admin, &job),
        Command::Jobs { json, admin } => jobs::list(&admin, json),
        Command::Job { id, json, admin } => jobs::show(&admin, &id, json),
        Command::Cancel { id, savepoint, admin } => jobs::cancel(&admin, &id, savepoint),
        Command::Produce(p) => produce::produce(p),
        Command::Checkpoints(CheckpointsCmd::List { state, topology, json }) => {
            checkpoints::list(state, &topology, json)
        }
        Command::Train {
            kind,
            data,
            model,
            registry,
            topology,
            name,
            seed,
        } => models::train(&kind, &data, &model, registry, &topology, name, seed),
        Command::Evaluate { model, data } => models::evaluate(&model, &data),
        Command::Models(Models::List { registry, topology }) => models::list(registry, &topology),
        Command::Features(Features::Get {
            player,
            store,
            topology,
            entity,
        }) => features::get(&player, store, &topology, &entity),
        Command::Features(Features::Export {
            as_of_matches,
            out,
            lake,
            topology,
        }) => features::export(&as_of_matches, &out, lake.as_deref(), &topology),
        Command::Lake(LakeCmd::Compact {
            topology,
            lake,
            min_age,
            target_bytes,
            dry_run,
        }) => lake::compact(&topology, lake.as_deref(), min_age, target_bytes, dry_run),
    }
}

/// Loads the topology at `path`: a file that is missing or fails to parse
/// is an error, never replaced by defaults.
fn load_topology(path: &std::path::Path) -> anyhow::Result<crate::config::Topology> {
    Ok(crate::config::Topology::load(path)?)
}
