//! `riftstream demo`: every job end to end on generated data, with nothing
//! to install — no Kafka, no Redis.
//!
//! 1. simulate ranked play and write it as JSON-lines files (plus a few
//!    corrupt records, to show the dead-letter path);
//! 2. train the live model on the real 10-minute Diamond games, or reuse the
//!    registered one;
//! 3. write a topology of `file` sources and `lake`/`embedded`/`file` sinks
//!    into the data directory and run its `lake` and `player_features` jobs,
//!    bounded, showing progress;
//! 4. export the point-in-time training table from the offline store and
//!    train the pre-game model on it (or reuse the registered one);
//! 5. run the `predictions` job: live predictions for every game event and
//!    pre-game predictions for every request;
//! 6. summarize: events and events/s, lake tables with row counts, example
//!    predictions, model accuracy, and how to query the lake with DuckDB.

mod summary;

pub use summary::lake_tables;
use summary::summarize_predictions;

use crate::config::Topology;
use crate::error::{Result, RiftError};
use crate::events::{Event, Prediction, Team};
use crate::generator::{player_rows, simulate, GeneratorConfig, RowsConfig};
use crate::model::{load_ten_minute_csv, train, ModelRegistry, TrainConfig};
use crate::runtime::{self, RunOptions};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Kaggle 10-minute training games, embedded so the demo runs from any directory.
const TEN_MINUTE_CSV: &[u8] = include_bytes!("../../data/high_diamond_ranked_10min.train.csv");

/// How much data the demo generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoSize {
    /// ~3k matches, 40 live games: seconds.
    Small,
    /// ~20k matches, 200 live games.
    Medium,
    /// ~150k matches, 1000 live games.
    Large,
}

impl DemoSize {
    fn config(self) -> GeneratorConfig {
        let (players, matches, live_games) = match self {
            DemoSize::Small => (1_500, 3_000, 40),
            DemoSize::Medium => (5_000, 20_000, 200),
            DemoSize::Large => (20_000, 150_000, 1_000),
        };
        GeneratorConfig {
            players,
            matches,
            live_games,
            finish_live_games: true,
            jitter_ms: 2_000,
            ..Default::default()
        }
    }
}

/// Options of [`run`].
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Working directory.
    pub data_dir: PathBuf,
    /// Data size.
    pub size: DemoSize,
    /// Worker threads.
    pub workers: usize,
}

fn write_jsonl<E: serde::Serialize>(path: &Path, items: &[E]) -> Result<()> {
    let f = std::fs::File::create(path).map_err(|e| RiftError::io(path, e))?;
    let mut w = BufWriter::new(f);
    for item in items {
        serde_json::to_writer(&mut w, item).map_err(|e| RiftError::Internal(e.to_string()))?;
        w.write_all(b"\n").map_err(|e| RiftError::io(path, e))?;
    }
    w.flush().map_err(|e| RiftError::io(path, e))
}

/// Simulates `cfg` and writes one JSON-lines file per topic into `dir`.
pub fn write_simulation(cfg: &GeneratorConfig, dir: &Path) -> Result<Vec<(&'static str, usize)>> {
    std::fs::create_dir_all(dir).map_err(|e| RiftError::io(dir, e))?;
    let sim = simulate(cfg);
    write_jsonl(&dir.join("matches.jsonl"), &sim.matches)?;
    write_jsonl(&dir.join("player_stats.jsonl"), &sim.player_stats)?;
    write_jsonl(&dir.join("game_events.jsonl"), &sim.game_events)?;
    write_jsonl(&dir.join("prediction_requests.jsonl"), &sim.requests)?;
    Ok(vec![
        ("matches", sim.matches.len()),
        ("player_stats", sim.player_stats.len()),
        ("game_events", sim.game_events.len()),
        ("prediction_requests", sim.requests.len()),
    ])
}

/// Writes flat player rows (the reference job's input) to `path`.
pub fn write_rows(cfg: RowsConfig, path: &Path) -> Result<u64> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| RiftError::io(parent, e))?;
    }
    let f = std::fs::File::create(path).map_err(|e| RiftError::io(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut n = 0;
    for row in player_rows(cfg) {
        serde_json::to_writer(&mut w, &row).map_err(|e| RiftError::Internal(e.to_string()))?;
        w.write_all(b"\n").map_err(|e| RiftError::io(path, e))?;
        n += 1;
    }
    w.flush().map_err(|e| RiftError::io(path, e))?;
    Ok(n)
}

/// The demo's topology: file sources over `input/`, lake + embedded store + files out.
pub fn demo_topology(dir: &Path, workers: usize) -> String {
    let d = dir.display();
    format!(
        r#"# Written by `riftstream demo`: rerun with `riftstream run --topology {d}/topology.toml --bounded`.
[runtime]
workers = {workers}
state_dir = "{d}/state"

[sources.matches]
kind = "file"
path = "{d}/input/matches.jsonl"
schema = "matches"
watermark = {{ max_out_of_orderness = "5s" }}

[sources.player_stats]
kind = "file"
path = "{d}/input/player_stats.jsonl"
schema = "player_stats"

[sources.game_events]
kind = "file"
path = "{d}/input/game_events.jsonl"
schema = "game_events"

[sources.prediction_requests]
kind = "file"
path = "{d}/input/prediction_requests.jsonl"
schema = "prediction_requests"

[sinks.lake]
kind = "lake"
root = "{d}/lake"

[sinks.features]
kind = "embedded"
path = "{d}/features"

[sinks.out]
kind = "file"
path = "{d}/output"

{features}
{pre_game_sets}
[jobs.lake]
kind = "lake"
sources = ["matches", "player_stats", "game_events", "prediction_requests"]
lake = "lake"
dlq = "out"

[jobs.player_features]
kind = "player_features"
feature_sets = ["player_daily", "player_30d", "player_session", "ladder", "player_champion_30d"]
online = "features"
offline = "lake"

[jobs.predictions]
kind = "predictions"
live_source = "game_events"
requests_source = "prediction_requests"
pre_game_feature_sets = ["player_30d", "ladder", "player_champion_30d"]
outputs = ["out", "lake"]
"#,
        features = PLAYER_FEATURE_SETS,
        pre_game_sets = PRE_GAME_FEATURE_SETS
    )
}

/// The feature sets the demo's pre-game model reads.
const PRE_GAME_SETS: &[&str] = &["player_30d", "ladder", "player_champion_30d"];

/// The extra feature sets the demo's pre-game model reads: the ranked
/// ladder as a number, and each player's recent games on a champion.
pub const PRE_GAME_FEATURE_SETS: &str = r#"# The ranked ladder (latest snapshot) as numbers.
[feature_sets.ladder]
source = "player_stats"
key = "player_id"
time = "time"
window = { kind = "sliding", size = "30d", slide = "1d" }
lookups = { tier = { IRON = 0, BRONZE = 1, SILVER = 2, GOLD = 3, PLATINUM = 4, EMERALD = 5, DIAMOND = 6, MASTER = 7, GRANDMASTER = 8, CHALLENGER = 9 }, rank = { IV = 0, III = 1, II = 2, I = 3 } }
aggregates = { tier_last = "last(tier)", division_last = "last(rank)", lp_last = "last(league_points)" }
features = { ladder = "tier_last * 400 + division_last * 100 + lp_last" }

# A player's recent games on each champion (a composite key).
[feature_sets.player_champion_30d]
source = "matches"
explode = "participants"
key = "player_id+champion"
time = "end_time"
window = { kind = "sliding", size = "30d", slide = "1d" }
aggregates = { champion_games_30d = "count", champion_wins_30d = "sum(win)" }
"#;

/// SPEC's player feature sets, declared (shared by the demo and the shipped topology).
pub const PLAYER_FEATURE_SETS: &str = r#"# Tumbling 1 day per player.
[feature_sets.player_daily]
source = "matches"
explode = "participants"
key = "player_id"
time = "end_time"
window = { kind = "tumbling", size = "1d", allowed_lateness = "1h" }
aggregates = { games_1d = "count", wins_1d = "sum(win)", kills_1d = "sum(kills)", deaths_1d = "sum(deaths)", assists_1d = "sum(assists)" }
features = { winrate_1d = "wins_1d / games_1d", kda_1d = "(kills_1d + assists_1d) / max(1, deaths_1d)" }

# Sliding 30 days every day per player.
[feature_sets.player_30d]
source = "matches"
explode = "participants"
key = "player_id"
time = "end_time"
window = { kind = "sliding", size = "30d", slide = "1d", allowed_lateness = "1h" }
aggregates = { games_30d = "count", wins_30d = "sum(win)", kills_30d = "sum(kills)", deaths_30d = "sum(deaths)", assists_30d = "sum(assists)", avg_gold_30d = "avg(gold)", avg_cs_30d = "avg(cs)", avg_vision_30d = "avg(vision_score)", champions_30d = "count_distinct(champion)" }
features = { winrate_30d = "wins_30d / games_30d", kda_30d = "(kills_30d + assists_30d) / max(1, deaths_30d)" }

# Play sessions: a 30 minute gap closes a session.
[feature_sets.player_session]
source = "matches"
explode = "participants"
key = "player_id"
time = "end_time"
window = { kind = "session", gap = "30m" }
aggregates = { session_games = "count", session_wins = "sum(win)", session_champions = "count_distinct(champion)" }
"#;

/// Runs the demo.
pub fn run(opts: &DemoOptions) -> Result<()> {
    let dir = &opts.data_dir;
    std::fs::create_dir_all(dir).map_err(|e| RiftError::io(dir, e))?;
    let dir = dir.canonicalize().map_err(|e| RiftError::io(dir, e))?;
    for sub in [
        "input",
        "state",
        "features",
        "output",
        "lake/bronze",
        "lake/silver",
        "lake/gold",
        "lake/_staging",
    ] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(|e| RiftError::io(&p, e))?;
        }
    }
    println!("riftstream demo — working in {}\n", dir.display());

    // 1. Data.
    let started = Instant::now();
    let cfg = opts.size.config();
    let sim = simulate(&cfg);
    let input = dir.join("input");
    std::fs::create_dir_all(&input).map_err(|e| RiftError::io(&input, e))?;
    write_jsonl(&input.join("matches.jsonl"), &sim.matches)?;
    write_jsonl(&input.join("player_stats.jsonl"), &sim.player_stats)?;
    write_jsonl(&input.join("game_events.jsonl"), &sim.game_events)?;
    write_jsonl(&input.join("prediction_requests.jsonl"), &sim.requests)?;
    append_corrupt_records(&input.join("matches.jsonl"), &sim)?;
    println!(
        "1. generated {} matches, {} ranked snapshots, {} live-game events, {} prediction requests ({} players, seed {}) in {:.1?}",
        sim.matches.len(),
        sim.player_stats.len(),
        sim.game_events.len(),
        sim.requests.len(),
        cfg.players,
        cfg.seed,
        started.elapsed()
    );
    println!("   + 3 corrupt records appended to matches.jsonl, to show the dead-letter path");

    // 2. Model.
    let lake_root = dir.join("lake");
    let registry = ModelRegistry::open(&lake_root)?;
    let model_info = match registry.latest("live")? {
        Some(v) => {
            println!(
                "2. reusing the registered live model {} ({})",
                v.version,
                v.path.display()
            );
            v
        }
        None => {
            let csv = dir.join("high_diamond_ranked_10min.train.csv");
            std::fs::write(&csv, TEN_MINUTE_CSV).map_err(|e| RiftError::io(&csv, e))?;
            let data = load_ten_minute_csv(&csv)?;
            let t = Instant::now();
            let trained = train(&data, &TrainConfig::default(), &mut |_| {})?;
            let path = registry.register("live", &trained, "Kaggle high_diamond_ranked_10min (train split)")?;
            println!(
                "2. trained the live model (candle logistic regression) on {} Diamond games in {:.1?}: {}",
                data.n(),
                t.elapsed(),
                path.display()
            );
            registry
                .latest("live")?
                .ok_or_else(|| RiftError::Internal("model just registered is missing".into()))?
        }
    };

    // 3. Run every job.
    let topo_path = dir.join("topology.toml");
    let text = demo_topology(&dir, opts.workers);
    std::fs::write(&topo_path, &text).map_err(|e| RiftError::io(&topo_path, e))?;
    let topology = Arc::new(Topology::parse(&text, &topo_path.display().to_string())?);
    let total_input: u64 =
        (sim.matches.len() + sim.player_stats.len() + sim.game_events.len() + sim.requests.len() + 3) as u64;
    println!(
        "3. running jobs lake, player_features on {} workers ({})",
        opts.workers,
        topo_path.display()
    );
    let metrics = crate::metrics::Metrics::new();
    let first = run_with_progress(
        &metrics,
        topology.clone(),
        opts.workers,
        &["lake", "player_features"],
        total_input * 2,
    )?;

    // 4. The pre-game model, trained on the offline store's point-in-time table.
    let pre_game = match registry.latest("pre_game")? {
        Some(v) => {
            println!(
                "4. reusing the registered pre-game model {} ({})",
                v.version,
                v.path.display()
            );
            v
        }
        None => {
            let t = Instant::now();
            let lake = crate::lake::Lake::open(&lake_root.display().to_string())?;
            let history = crate::lake::offline::FeatureHistory::load(&lake)?;
            let mut history_matches = sim.matches.clone();
            history_matches.sort_by_key(|m| m.start_time);
            let table_path = dir.join("output").join("pre_game_training.parquet");
            let table = crate::lake::offline::training_table(&history, &history_matches)?;
            crate::lake::offline::write_parquet(&table_path, &table)?;
            // The features of the sets the predictions job computes for it.
            let mut inputs: Vec<String> = Vec::new();
            for set in PRE_GAME_SETS {
                let spec = crate::features::compile_set(&topology, set, "feature_sets")?;
                inputs.extend(spec.output_names().map(String::from));
                inputs.push(format!("known_{set}"));
            }
            let data = crate::model::pregame::load_pregame_table(&table_path, Some(&inputs))?;
            let trained = train(&data.dataset, &TrainConfig::default(), &mut |_| {})?;
            let path = registry.register("pre_game", &trained, &table_path.display().to_string())?;
            let v = trained.validation();
            println!(
                "4. trained the pre-game model on {} matches' point-in-time features in {:.1?}: validation accuracy {:.3} (simulator's best on all: {:.3}); {}",
                data.dataset.n(),
                t.elapsed(),
                v.accuracy,
                data.simulator_accuracy().unwrap_or(f64::NAN),
                path.display()
            );
            registry
                .latest("pre_game")?
                .ok_or_else(|| RiftError::Internal("model just registered is missing".into()))?
        }
    };

    // 5. Predictions, live and pre-game.
    println!("5. running job predictions (live events and pre-game requests)");
    let second = run_with_progress(&metrics, topology, opts.workers, &["predictions"], total_input)?;
    let processed = metrics.counter_sum("source_records_total", "", "");
    let secs = (first + second).as_secs_f64().max(1e-9);

    // 6. Summary.
    println!("\n== summary ==");
    println!(
        "events processed: {processed} (input read once per job) in {:.2}s = {:.0} events/s",
        secs,
        processed as f64 / secs
    );
    let dead = metrics.counter_sum("dead_letters_total", "job", "lake");
    println!(
        "dead letters: {dead} (each with its reason in {}/output/lake-dlq.jsonl)",
        dir.display()
    );
    let late = metrics.counter_sum("late_rows_total", "", "");
    println!("late events: {late} (stored in lake/silver/late_events)");
    println!("\nlake tables ({}):", lake_root.display());
    for (table, (files, rows)) in lake_tables(&lake_root)? {
        println!("  {table:<34} {rows:>9} rows in {files:>3} file(s)");
    }
    summarize_predictions(&dir, &sim.live_outcomes, &model_info, &pre_game)?;
    let example_player = sim
        .matches
        .last()
        .and_then(|m| m.participants.first())
        .map(|p| p.player_id.clone());
    println!("\nnext steps:");
    if let Some(p) = example_player {
        println!("  riftstream features get {p} --store {}/features", dir.display());
    }
    println!(
        "  duckdb -c \"select count(*) from read_parquet('{}/lake/silver/**/*.parquet', hive_partitioning=1)\"",
        dir.display()
    );
    println!(
        "  duckdb -c \"select champion, count(*) games, avg(win::int) win_rate from read_parquet('{}/lake/silver/match_participants/**/*.parquet', hive_partitioning=1) group by 1 order by 2 desc limit 5\"",
        dir.display()
    );
    println!("  riftstream run --topology {} --bounded", topo_path.display());
    Ok(())
}

/// Appends three bad records (invalid JSON, a negative count, an unknown team).
/// Runs `jobs` of `topology` bounded, with a progress bar over records read; returns the run's time.
fn run_with_progress(
    metrics: &Arc<crate::metrics::Metrics>,
    topology: Arc<Topology>,
    workers: usize,
    jobs: &[&str],
    expected: u64,
) -> Result<Duration> {
    let done = Arc::new(AtomicBool::new(false));
    let start = metrics.counter_sum("source_records_total", "", "");
    let progress = {
        let done = done.clone();
        let metrics = metrics.clone();
        std::thread::spawn(move || {
            let bar = indicatif::ProgressBar::new(expected);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "   [{elapsed_precise}] {bar:40} {pos}/{len} records read {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let read = || {
                metrics
                    .counter_sum("source_records_total", "", "")
                    .saturating_sub(start)
            };
            while !done.load(Ordering::Relaxed) {
                bar.set_position(read());
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.set_position(read());
            bar.finish();
        })
    };
    let opts = RunOptions {
        jobs: jobs.iter().map(|j| j.to_string()).collect(),
        metrics: metrics.clone(),
        ..RunOptions::bounded(workers)
    };
    let report = runtime::run(topology, opts);
    done.store(true, Ordering::Relaxed);
    let _ = progress.join();
    let report = report?;
    if !report.failures.is_empty() {
        let why: Vec<String> = report.failures.iter().map(|(j, f)| format!("{j}: {f}")).collect();
        return Err(RiftError::Internal(format!("demo jobs failed: {}", why.join("; "))));
    }
    Ok(report.elapsed)
}

fn append_corrupt_records(path: &Path, sim: &crate::generator::Simulation) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| RiftError::io(path, e))?;
    let mut lines = vec!["{\"match_id\": \"BROKEN_1\", \"platform\": ".to_string()];
    if let Some(m) = sim.matches.first() {
        let mut negative = m.clone();
        negative.match_id = format!("{}_NEGATIVE", m.match_id);
        negative.participants[0].kills = -3;
        lines.push(serde_json::to_string(&negative).map_err(|e| RiftError::Internal(e.to_string()))?);
        let mut v = serde_json::to_value(m).map_err(|e| RiftError::Internal(e.to_string()))?;
        v["match_id"] = format!("{}_GREEN", m.match_id).into();
        v["participants"][0]["team"] = "green".into();
        lines.push(v.to_string());
    }
    for l in lines {
        writeln!(f, "{l}").map_err(|e| RiftError::io(path, e))?;
    }
    Ok(())
}
