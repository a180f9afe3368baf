//! The `riftstream` command line: parses arguments, sets up logging, and
//! calls into the library. Errors are reported with `anyhow` here only.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use riftstream::config::Topology;
use riftstream::demo::{DemoOptions, DemoSize};
use riftstream::model::{evaluate, load_ten_minute_csv, train, ModelKind, ModelRegistry, TrainConfig};
use riftstream::runtime::{self, RunOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// mimalloc: workers allocate and free concurrently; glibc's arenas contend.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (position 15 of `mi_option_e` in mimalloc 3's
/// `mimalloc.h`; the Rust bindings do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Transparent huge pages off, and freed memory returned to the OS after a
/// second.
///
/// With THP, the kernel zeroes 2 MiB for the first touch of every huge page
/// the allocator's arena reaches, however little of it is used: 2–15% of a
/// windowed job's cycles (varying with how fragmented the arena became) and
/// up to 80% more peak memory than with 4 KiB pages, measured on the
/// reference job (0.3–0.5% of cycles without). mimalloc applies its own
/// `MIMALLOC_ALLOW_THP=0` only at start-up, before `main`, so the process
/// asks the kernel directly; the flag covers the arena reserved earlier too,
/// because the kernel checks it at each fault.
///
/// Window state is allocated and freed in waves (one window's keys at a
/// time): mimalloc's default 10 ms purge delay returned each wave's pages
/// and faulted fresh zeroed ones back in, about 10% of the job's CPU.
///
/// `MIMALLOC_ALLOW_THP` and `MIMALLOC_PURGE_DELAY` (ms) in the environment
/// still decide for themselves.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads it on each purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
    }
}

#[derive(Parser)]
#[command(
    name = "riftstream",
    version,
    about = "Stream processing for League of Legends match data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    },
    /// Submit a job to a running cluster.
    Submit {
        /// Job name in the topology, or a job file.
        job: String,
    },
    /// List the jobs of a running cluster.
    Jobs,
    /// Cancel a job of a running cluster.
    Cancel {
        /// Job id.
        id: String,
    },
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
enum Produce {
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
enum EncodingArg {
    Avro,
    Json,
}

#[derive(Subcommand)]
enum Models {
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
enum Features {
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
enum LakeCmd {
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

fn main() {
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RIFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(e) = dispatch(cli.command) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Verbs that a later issue fills in say so plainly and exit with status 2.
fn not_yet(what: &str, issue: &str) -> ! {
    eprintln!("riftstream: {what} is not available yet: it is being built in the {issue} issue.");
    std::process::exit(2)
}

fn produce_target(
    brokers: String,
    registry: String,
    encoding: EncodingArg,
    partitions: i32,
) -> riftstream::produce::ProduceTarget {
    riftstream::produce::ProduceTarget {
        kafka: riftstream::config::KafkaConfig {
            brokers,
            schema_registry: Some(registry),
            group_id: "riftstream-produce".into(),
            properties: Default::default(),
        },
        encoding: match encoding {
            EncodingArg::Avro => riftstream::config::Encoding::Avro,
            EncodingArg::Json => riftstream::config::Encoding::Json,
        },
        partitions,
        topic_prefix: String::new(),
        rate: None,
    }
}

fn lake_root_of(topology: &Path) -> PathBuf {
    Topology::load(topology)
        .ok()
        .and_then(|t| t.lake_root().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(std::env::var("RIFT_LAKE").unwrap_or_else(|_| "./lake".into())))
}

/// A model's data file: the 10-minute CSV (`pre_game: None`), or a `features
/// export` table with the given player features (all when `Some(None)`);
/// with the simulator's accuracy where the table has it.
fn model_data(
    data: &Path,
    pre_game: Option<Option<&[String]>>,
) -> anyhow::Result<(riftstream::model::Dataset, Option<f64>)> {
    let reading = || format!("reading {}", data.display());
    Ok(match pre_game {
        None => (load_ten_minute_csv(data).with_context(reading)?, None),
        Some(features) => {
            let table = riftstream::model::pregame::load_pregame_table(data, features).with_context(reading)?;
            let best = table.simulator_accuracy();
            (table.dataset, best)
        }
    })
}

/// Announces a registered version on `esports.model_updates` when the
/// topology has Kafka (workers also notice it in the registry by themselves).
fn announce_model(topology: &Path, model_name: &str, model_kind: &str, dir: &Path) {
    let Ok(topo) = Topology::load(topology) else { return };
    let Some(kafka) = topo.kafka.clone() else { return };
    let version = dir
        .file_name()
        .map(|v| v.to_string_lossy().to_string())
        .unwrap_or_default();
    let update = riftstream::events::ModelUpdate {
        model_name: model_name.to_string(),
        version: version.clone(),
        path: dir.display().to_string(),
        model_kind: model_kind.to_string(),
        created_at: chrono::Utc::now().timestamp_millis(),
    };
    let encoding = std::env::var("RIFT_ENCODING")
        .ok()
        .filter(|e| e == "json")
        .map_or(riftstream::config::Encoding::Avro, |_| {
            riftstream::config::Encoding::Json
        });
    let mut kafka = kafka;
    // An announcement, not a pipeline: give up quickly when no broker answers.
    kafka.properties.insert("message.timeout.ms".into(), "5000".into());
    let target = riftstream::produce::ProduceTarget {
        kafka,
        encoding,
        partitions: 1,
        topic_prefix: String::new(),
        rate: None,
    };
    match riftstream::produce::announce(&target, update) {
        Ok(_) => eprintln!("announced {model_name} {version} on esports.model_updates"),
        Err(e) => eprintln!("warning: registered, but could not announce it on esports.model_updates: {e}"),
    }
}

/// The lake at `root`, else the topology's lake sink (with its object_store options).
fn open_lake(root: Option<&str>, topology: &Path) -> anyhow::Result<riftstream::lake::Lake> {
    Ok(match root {
        Some(root) => riftstream::lake::Lake::open(root)?,
        None => Topology::load(topology)
            .with_context(|| {
                format!(
                    "give --lake ROOT or a topology with a lake sink ({})",
                    topology.display()
                )
            })?
            .open_lake()?,
    })
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo {
            data_dir,
            size,
            workers,
        } => {
            riftstream::demo::run(&DemoOptions {
                data_dir,
                size,
                workers,
            })?;
        }
        Command::Run {
            topology,
            workers,
            process,
            hosts,
            bounded,
            jobs,
        } => {
            let topo = Arc::new(Topology::load(&topology)?);
            let shutdown = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = shutdown.clone();
            ctrlc_handler(move || flag.store(true, Ordering::Relaxed));
            let opts = RunOptions {
                workers: workers.unwrap_or(topo.runtime.workers),
                process,
                hosts,
                bounded,
                jobs,
                shutdown,
            };
            let report = runtime::run(topo, opts)?;
            if !report.failures.is_empty() {
                for (job, why) in &report.failures {
                    eprintln!("job {job} failed: {why}");
                }
                bail!("{} job(s) failed", report.failures.len());
            }
            eprintln!("ran {} in {:.2?}", report.jobs.join(", "), report.elapsed);
        }
        Command::Submit { .. } => not_yet("`riftstream submit`", "long-running workers"),
        Command::Jobs => not_yet("`riftstream jobs`", "long-running workers"),
        Command::Cancel { .. } => not_yet("`riftstream cancel`", "long-running workers"),
        Command::Produce(Produce::Generator {
            brokers,
            out,
            matches,
            live_games,
            players,
            seed,
            jitter_ms,
            encoding,
            registry,
            partitions,
            rate,
        }) => {
            let cfg = riftstream::generator::GeneratorConfig {
                seed,
                players,
                matches,
                live_games,
                jitter_ms,
                ..Default::default()
            };
            match (brokers, out) {
                (Some(brokers), None) => {
                    let target = riftstream::produce::ProduceTarget {
                        rate,
                        ..produce_target(brokers, registry, encoding, partitions)
                    };
                    for (topic, n) in riftstream::produce::produce_simulation(&target, &cfg)? {
                        println!("{n:>9} {topic}");
                    }
                }
                (None, Some(out)) => {
                    for (topic, n) in riftstream::demo::write_simulation(&cfg, &out)? {
                        println!("{n:>9} {topic} -> {}", out.join(format!("{topic}.jsonl")).display());
                    }
                }
                _ => bail!("give either --brokers (Kafka) or --out DIR (JSON-lines files)"),
            }
        }
        Command::Produce(Produce::Replay {
            brokers,
            registry,
            encoding,
            partitions,
            oracles,
            ten_minute,
        }) => {
            let target = produce_target(brokers, registry, encoding, partitions);
            for file in oracles {
                let (matches, rejected) = riftstream::generator::oracles_elixir_matches(&file)?;
                for (game, why) in &rejected {
                    eprintln!("skipped game {game} of {}: {why}", file.display());
                }
                let n = riftstream::produce::produce(&target, matches)?;
                println!("{n:>9} esports.matches <- {}", file.display());
            }
            if let Some(file) = ten_minute {
                let start = chrono::Utc::now().timestamp_millis() - 24 * 3600 * 1000;
                let (events, games) = riftstream::generator::ten_minute_games(&file, start, 60_000)?;
                let n = riftstream::produce::produce(&target, events)?;
                println!(
                    "{n:>9} esports.game_events <- {} ({} live games)",
                    file.display(),
                    games.len()
                );
            }
        }
        Command::Produce(Produce::Rows {
            out,
            rows,
            players,
            rate,
            jitter_ms,
            seed,
        }) => {
            let cfg = riftstream::generator::RowsConfig {
                seed,
                rows,
                players,
                rows_per_second: rate,
                jitter_ms,
                ..Default::default()
            };
            let n = riftstream::demo::write_rows(cfg, &out)?;
            println!("{n} rows -> {}", out.display());
        }
        Command::Train {
            kind,
            data,
            model,
            registry,
            topology,
            name,
            seed,
        } => {
            let model_kind: ModelKind = model.parse().map_err(|e| anyhow::anyhow!("--model: {e}"))?;
            let (dataset, simulator_accuracy) = match kind.as_str() {
                "live" => model_data(&data, None)?,
                "pre_game" => model_data(&data, Some(None))?,
                other => bail!("unknown model kind `{other}`; expected `live` or `pre_game`"),
            };
            let cfg = TrainConfig {
                seed,
                ..TrainConfig::for_kind(model_kind)
            };
            eprintln!("training {model} on {} rows from {}", dataset.n(), data.display());
            // Epochs run up to `max_epochs`; early stopping usually ends sooner.
            let bar = indicatif::ProgressBar::new(cfg.max_epochs as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "  {bar:30} epoch {pos}/{len} (early stopping may end sooner)  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let trained = train(&dataset, &cfg, &mut |r| {
                bar.set_position(r.epoch as u64);
                bar.set_message(format!(
                    "validation loss {:.4}, accuracy {:.4}, best epoch {}",
                    r.validation_loss, r.validation_accuracy, r.best_epoch
                ));
            })?;
            bar.finish_and_clear();
            eprintln!(
                "  stopped after {} epochs; kept epoch {}",
                trained.epochs_run(),
                trained.best_epoch()
            );
            if let Some(best) = simulator_accuracy {
                eprintln!(
                    "the simulator's own probability scores accuracy {best:.4} on these matches (the best possible)"
                );
            }
            let v = trained.validation();
            eprintln!("validation: accuracy {:.4}, log loss {:.4}", v.accuracy, v.log_loss);
            let root = registry.unwrap_or_else(|| lake_root_of(&topology));
            let model_name = name.as_deref().unwrap_or(&kind).to_string();
            let dir = ModelRegistry::open(&root)?.register(&model_name, &trained, &data.display().to_string())?;
            announce_model(&topology, &model_name, &model, &dir);
            println!("{}", dir.display());
        }
        Command::Evaluate { model, data } => {
            let loaded = riftstream::model::LoadedModel::load(&model)?;
            let pre_game = riftstream::model::pregame::player_features_of(loaded.feature_names());
            let (dataset, simulator_accuracy) = model_data(&data, pre_game.as_deref().map(Some))?;
            let probs = loaded.predict_batch(&dataset.x)?;
            let eval = evaluate(&probs, &dataset.y)?;
            let mut json = serde_json::to_value(&eval)?;
            if let (Some(best), Some(obj)) = (simulator_accuracy, json.as_object_mut()) {
                obj.insert("simulator_accuracy".into(), serde_json::json!(best));
                obj.insert("share_of_best".into(), serde_json::json!(eval.accuracy / best));
            }
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Command::Models(Models::List { registry, topology }) => {
            let root = registry.unwrap_or_else(|| lake_root_of(&topology));
            let versions = ModelRegistry::open(&root)?.list()?;
            if versions.is_empty() {
                println!("no models registered under {}", root.display());
            }
            for v in versions {
                let m = &v.metadata;
                println!(
                    "{:<10} {:<5} {:<9} accuracy {:.4}  log loss {:.4}  {}  {}",
                    v.name,
                    v.version,
                    m.kind.to_string(),
                    m.metrics.accuracy,
                    m.metrics.log_loss,
                    m.created_at,
                    v.path.display()
                );
            }
        }
        Command::Features(Features::Get {
            player,
            store,
            topology,
            entity,
        }) => {
            use riftstream::config::SinkConfig;
            use riftstream::sinks::embedded::{EmbeddedStore, FeatureStore};
            let store: Box<dyn FeatureStore> = match store {
                Some(dir) => Box::new(EmbeddedStore::open(&dir, 0)?),
                None => {
                    let topo = Topology::load(&topology)?;
                    let online = topo.sinks.values().find_map(|s| match s {
                        SinkConfig::Redis { url, ttl } => Some(
                            riftstream::sinks::redis::RedisStore::open(url, *ttl)
                                .map(|r| Box::new(r) as Box<dyn FeatureStore>),
                        ),
                        SinkConfig::Embedded { path } => Some(
                            EmbeddedStore::open(&PathBuf::from(path), 0).map(|e| Box::new(e) as Box<dyn FeatureStore>),
                        ),
                        _ => None,
                    });
                    match online {
                        Some(s) => s?,
                        None => bail!(
                            "{} has no online store sink (redis or embedded); give --store DIR",
                            topology.display()
                        ),
                    }
                }
            };
            match store.get(&entity, &player)? {
                Some(fields) => println!("{}", serde_json::to_string_pretty(&fields)?),
                None => bail!("no features for {entity} `{player}`"),
            }
        }
        Command::Features(Features::Export {
            as_of_matches,
            out,
            lake,
            topology,
        }) => {
            use riftstream::lake::offline;
            let lake = open_lake(lake.as_deref(), &topology)?;
            let history = offline::FeatureHistory::load(&lake)?;
            if history.is_empty() {
                bail!("{}: gold/player_features holds no features", lake.root);
            }
            let matches = offline::read_matches(&as_of_matches)?;
            let table = offline::training_table(&history, &matches)?;
            offline::write_parquet(&out, &table)?;
            println!(
                "{} rows ({} matches, {} feature vectors) -> {}",
                table.num_rows(),
                matches.len(),
                history.len(),
                out.display()
            );
        }
        Command::Lake(LakeCmd::Compact {
            topology,
            lake,
            min_age,
            target_bytes,
            dry_run,
        }) => {
            use riftstream::lake::compact;
            let lake = open_lake(lake.as_deref(), &topology)?;
            let report = compact::compact(
                &lake,
                &compact::CompactOptions {
                    min_age,
                    target_file_bytes: target_bytes,
                    row_group_rows: 128 * 1024,
                    dry_run,
                    now_ms: compact::now_ms(),
                },
            )?;
            println!(
                "{}{} files ({} bytes, {} rows) merged into {} in {} partitions of {}{}",
                if dry_run { "would merge: " } else { "" },
                report.files_in,
                report.bytes_in,
                report.rows,
                report.files_out,
                report.partitions,
                lake.root,
                if report.recovered > 0 {
                    format!("; finished {} interrupted compactions", report.recovered)
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(())
}

/// Raises `on_signal` on SIGINT/SIGTERM (via tokio's signal handling on a helper thread).
fn ctrlc_handler(on_signal: impl Fn() + Send + 'static) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        if let Ok(rt) = rt {
            rt.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            on_signal();
        }
    });
}
