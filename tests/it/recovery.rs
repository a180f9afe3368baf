//! Checkpoints survive `kill -9`: a bounded run killed at random moments and
//! restarted each time ends with exactly the output of a run without
//! crashes — every lake table (bronze, silver, gold, the offline feature
//! store, late events) and every feature file.
//!
//! The moments are drawn from a seed (`RIFT_CRASH_SEED`, printed) after the
//! run has completed a checkpoint, so each kill lands in the middle of the
//! work, and the test checks that each kill did kill a running process.

use super::support::{duckdb, kafka, wait_until};
use riftstream::generator::GeneratorConfig;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The sources of the file runs: the simulation's JSON-lines files in `input`.
pub(super) fn file_sources(input: &Path) -> String {
    let i = input.display();
    format!(
        r#"
[sources.matches]
kind = "file"
path = "{i}/matches.jsonl"
schema = "matches"
[sources.player_stats]
kind = "file"
path = "{i}/player_stats.jsonl"
schema = "player_stats"
[sources.game_events]
kind = "file"
path = "{i}/game_events.jsonl"
schema = "game_events"
"#
    )
}

/// A topology writing into `dir`: the lake job (bronze, silver, gold),
/// windowed player features (tumbling, sliding, session) and live
/// predictions over `sources`.
fn topology(dir: &Path, runtime: &str, sources: &str) -> String {
    let d = dir.display();
    format!(
        r#"
[runtime]
workers = 2
state_dir = "{d}/state"
checkpoint_interval = "150ms"
{runtime}
{sources}
[sinks.lake]
kind = "lake"
root = "{d}/lake"
roll_interval = "1s"
[sinks.out]
kind = "file"
path = "{d}/out"
[feature_sets.daily]
source = "matches"
explode = "participants"
key = "player_id"
time = "end_time"
window = {{ kind = "tumbling", size = "1d", allowed_lateness = "2h" }}
aggregates = {{ games = "count", wins = "sum(win)", kills = "sum(kills)" }}
[feature_sets.weekly]
source = "matches"
explode = "participants"
key = "player_id"
time = "end_time"
window = {{ kind = "sliding", size = "7d", slide = "1d" }}
aggregates = {{ games_7d = "count", gold_7d = "sum(gold)" }}
[feature_sets.sessions]
source = "matches"
explode = "participants"
key = "player_id"
time = "end_time"
window = {{ kind = "session", gap = "30m" }}
aggregates = {{ session_games = "count" }}
[jobs.lake]
kind = "lake"
sources = ["matches", "player_stats", "game_events"]
lake = "lake"
[jobs.player_features]
kind = "player_features"
feature_sets = ["daily", "weekly", "sessions"]
offline = "lake"
output = "out"
[jobs.predictions]
kind = "predictions"
live_source = "game_events"
outputs = ["out", "lake"]
"#
    )
}

/// `riftstream run --bounded` of the topology in `dir`.
pub(super) fn run(dir: &Path) -> Command {
    let mut cmd = run_unbounded(dir);
    cmd.arg("--bounded");
    cmd
}

/// `riftstream run` of the topology in `dir`, until a signal stops it.
pub(super) fn run_unbounded(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_riftstream"));
    cmd.args(["run", "--topology"])
        .arg(dir.join("topology.toml"))
        .env("RIFT_LOG", "riftstream=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// A small, seeded random number generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A started run: the child, a message per completed checkpoint, and the
/// thread collecting its stderr.
pub(super) struct Started {
    child: std::process::Child,
    pub(super) checkpoints: mpsc::Receiver<()>,
    stderr: std::thread::JoinHandle<String>,
}

pub(super) fn start(mut cmd: Command) -> Started {
    let mut child = cmd.spawn().expect("start riftstream");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, checkpoints) = mpsc::channel();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("checkpoint complete") {
                let _ = tx.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    Started {
        child,
        checkpoints,
        stderr,
    }
}

impl Started {
    /// Whether the run has exited (asserting that it succeeded).
    pub(super) fn exited(&mut self) -> bool {
        match self.child.try_wait().expect("poll child") {
            Some(status) => {
                assert!(status.success(), "the run failed: {status:?}");
                true
            }
            None => false,
        }
    }

    /// What the run wrote to stderr (once it exited).
    pub(super) fn log(self) -> String {
        self.stderr.join().expect("stderr reader")
    }

    /// Waits (`timeout` at most) for the exit; returns the status and stderr.
    pub(super) fn wait(mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the run did not exit within {timeout:?}:\n{}",
                    self.stderr.join().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.stderr.join().expect("stderr reader"))
    }

    /// Sends `signal`, waits (90 s at most) for the exit; returns the status and stderr.
    pub(super) fn signal(self, signal: i32) -> (std::process::ExitStatus, String) {
        // SAFETY: kill(2) on the pid of a child not yet waited for.
        let sent = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(sent, 0, "signal {signal} not sent");
        self.wait(Duration::from_secs(90))
    }
}

/// Starts a run and sends it `signal` `delay` after its first completed
/// checkpoint. Returns its exit status and what it wrote to stderr, or None
/// when it finished before the signal.
fn run_and_signal(cmd: Command, delay: Duration, signal: i32) -> Option<(std::process::ExitStatus, String)> {
    let mut run = start(cmd);
    // Wait for a checkpoint of this incarnation (or the end of the run).
    let deadline = Instant::now() + Duration::from_secs(120);
    while run.checkpoints.recv_timeout(Duration::from_millis(50)).is_err() {
        if run.exited() {
            return None;
        }
        assert!(Instant::now() < deadline, "no checkpoint completed within 120 s");
    }
    let at = Instant::now() + delay;
    while Instant::now() < at {
        if run.exited() {
            return None;
        }
        std::thread::yield_now();
    }
    Some(run.signal(signal))
}

/// Sorts a JSON-lines file of game events by event time: live events come
/// in order, as a match's events do on its Kafka partition. (Out of order,
/// an event waits for its predecessor or for the watermark, whichever comes
/// first, and which comes first depends on timing: the live predictions of
/// out-of-order events are not reproducible from run to run.)
fn in_time_order(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<(i64, &str)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["event_time"].as_i64().unwrap(), l)
        })
        .collect();
    lines.sort_by_key(|(t, _)| *t);
    let sorted: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    std::fs::write(path, sorted).unwrap();
}

/// Registers the live model (trained once per test process) in the lake of `dir`.
fn register_live_model(dir: &Path) {
    use riftstream::model::{load_ten_minute_csv, train, ModelRegistry, TrainConfig};
    static MODEL: std::sync::OnceLock<riftstream::model::TrainedModel> = std::sync::OnceLock::new();
    let model = MODEL.get_or_init(|| {
        let data =
            load_ten_minute_csv(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/high_diamond_ranked_10min.train.csv"))
                .unwrap();
        train(&data, &TrainConfig::default(), &mut |_| {}).unwrap()
    });
    ModelRegistry::open(dir.join("lake"))
        .unwrap()
        .register("live", model, "test")
        .unwrap();
}

/// The number of records a run read, from its closing line.
pub(super) fn records_read(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.strip_suffix(" records read"))
        .filter_map(|l| l.rsplit(' ').next())
        .find_map(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `records read` line in:\n{stderr}"))
}

/// Simulated input under `root/in` (delivered up to `jitter_ms` out of
/// order), and `dirs` under `root`, each with the topology.
fn prepare(root: &Path, jitter_ms: i64, dirs: &[&str]) -> Vec<std::path::PathBuf> {
    let input = root.join("in");
    riftstream::demo::write_simulation(
        &GeneratorConfig {
            players: 1_200,
            matches: 15_000,
            live_games: 30,
            days: 20,
            jitter_ms,
            finish_live_games: true,
            seed: 23,
            ..Default::default()
        },
        &input,
    )
    .unwrap();
    in_time_order(&input.join("game_events.jsonl"));
    dirs.iter()
        .map(|d| {
            let dir = root.join(d);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("topology.toml"), topology(&dir, "", &file_sources(&input))).unwrap();
            register_live_model(&dir);
            dir
        })
        .collect()
}

/// Every row of each of `tables` ((table, columns to leave out)) in `lake`,
/// as JSON, sorted; one DuckDB session for all of them.
fn rows(lake: &Path, tables: &[(&str, &str)]) -> Vec<Vec<serde_json::Value>> {
    let selects: Vec<String> = tables
        .iter()
        .enumerate()
        .filter(|(_, (table, _))| lake.join(table).exists())
        .map(|(i, (table, exclude))| {
            format!(
                "select {i} as t, to_json(x)::varchar as row from (select * {exclude} from read_parquet('{}/{table}/**/*.parquet', hive_partitioning=1)) x",
                lake.display()
            )
        })
        .collect();
    let mut out = vec![Vec::new(); tables.len()];
    if selects.is_empty() {
        return out;
    }
    for r in duckdb(&selects.join(" union all ")) {
        let i = r[0].as_u64().expect("a table index") as usize;
        out[i].push(serde_json::from_str(r[1].as_str().expect("a JSON row")).expect("JSON"));
    }
    for table in &mut out {
        table.sort_by_key(sort_key);
    }
    out
}

/// Fields computed in f32 by the model: a batch of another size (another
/// worker count, a restart) may round them differently in the last bits.
const MODEL_FIELDS: [&str; 2] = ["blue_win_probability", "log_loss"];

/// Whether two rows are equal: numbers to 1e-9 relative (sums of fractional
/// values may be added in another order after a restore), model outputs to
/// 1e-5 relative.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    same_within(a, b, 1e-9)
}

fn same_within(a: &serde_json::Value, b: &serde_json::Value, tolerance: f64) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= tolerance * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_within(a, b, tolerance))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    let tolerance = if MODEL_FIELDS.contains(&k.as_str()) {
                        1e-5
                    } else {
                        tolerance
                    };
                    y.get(k).is_some_and(|w| same_within(v, w, tolerance))
                })
        }
        _ => a == b,
    }
}

/// The order rows are compared in: their text with model outputs rounded.
fn sort_key(row: &serde_json::Value) -> String {
    let mut row = row.clone();
    if let Some(o) = row.as_object_mut() {
        for field in MODEL_FIELDS {
            if let Some(x) = o.get(field).and_then(|v| v.as_f64()) {
                o.insert(field.to_string(), serde_json::json!(format!("{x:.4e}")));
            }
        }
    }
    row.to_string()
}

/// Every line of every output file in `dir`, by stream (a file's name less
/// its worker suffix: files per worker depend on the worker count), sorted.
fn lines(dir: &Path) -> Vec<(String, Vec<serde_json::Value>)> {
    let mut streams: std::collections::BTreeMap<String, Vec<serde_json::Value>> = Default::default();
    for entry in std::fs::read_dir(dir).expect("output dir").flatten() {
        let path = entry.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".jsonl"))
            .filter(|n| !n.starts_with('.'))
        else {
            continue;
        };
        let stream = match stem.rsplit_once('-') {
            Some((s, k)) if k.parse::<usize>().is_ok() => s,
            _ => stem,
        };
        let rows = streams.entry(stream.to_string()).or_default();
        for l in std::fs::read_to_string(&path).unwrap().lines() {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            // Wall-clock latency differs from run to run.
            if let Some(o) = v.as_object_mut() {
                o.remove("latency_ms");
            }
            rows.push(v);
        }
    }
    streams
        .into_iter()
        .map(|(stream, mut rows)| {
            rows.sort_by_key(sort_key);
            (stream, rows)
        })
        .collect()
}

/// The crash seed: `RIFT_CRASH_SEED`, or a fixed one (printed either way).
fn crash_seed() -> u64 {
    let seed: u64 = std::env::var("RIFT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234);
    eprintln!("crash seed {seed} (RIFT_CRASH_SEED replays it)");
    seed
}

/// Up to three runs of `dir`, each killed at a seeded moment after its first
/// checkpoint; returns how many were killed mid-run.
fn kill_repeatedly(dir: &Path, seed: u64) -> usize {
    let mut rng = Rng(seed | 1);
    let mut kills = 0;
    for _ in 0..3 {
        let delay = Duration::from_millis(rng.below(300));
        match run_and_signal(run(dir), delay, libc::SIGKILL) {
            // Killed by signal 9, not exited on its own.
            Some((status, _)) if status.signal() == Some(9) => kills += 1,
            _ => break,
        }
    }
    kills
}

#[test]
fn kill_9_at_random_moments_then_restart_changes_no_output() {
    let seed = crash_seed();
    let root = tempfile::tempdir().unwrap();
    let [reference, crashed] = &prepare(root.path(), 30 * 60 * 1000, &["reference", "crashed"])[..] else {
        unreachable!()
    };
    let status = run(reference).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "reference run: {status:?}");

    let kills = kill_repeatedly(crashed, seed);
    assert!(
        kills >= 2,
        "only {kills} kill(s) landed mid-run: the input is too small for this machine"
    );
    let status = run(crashed).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "final run: {status:?}");

    assert_same_output(reference, crashed, &format!("seed {seed}"));
}

/// The lake tables compared, with the columns left out (arrival times).
const TABLES: [(&str, &str); 12] = [
    ("bronze", "exclude (received_at)"),
    ("silver/matches", ""),
    ("silver/match_participants", ""),
    ("silver/player_stats", ""),
    ("silver/game_events", ""),
    ("silver/late_events", ""),
    ("gold/champion_stats", ""),
    ("gold/player_daily", ""),
    ("gold/leaderboard", ""),
    ("gold/player_features", ""),
    ("gold/predictions", "exclude (latency_ms)"),
    ("gold/model_outcomes", ""),
];

/// The first rows only one side has (exact text), for a failure message.
fn difference(want: &[serde_json::Value], got: &[serde_json::Value]) -> String {
    let count = |rows: &[serde_json::Value]| {
        let mut m = std::collections::BTreeMap::<String, i64>::new();
        for r in rows {
            *m.entry(r.to_string()).or_default() += 1;
        }
        m
    };
    let (w, g) = (count(want), count(got));
    let only = |a: &std::collections::BTreeMap<String, i64>, b: &std::collections::BTreeMap<String, i64>| {
        a.iter()
            .filter(|(k, n)| b.get(*k).copied().unwrap_or(0) < **n)
            .take(3)
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    format!("missing:\n  {}\nextra:\n  {}", only(&w, &g), only(&g, &w))
}

/// Asserts that `got` holds exactly the lake tables and feature files of `reference`.
pub(super) fn assert_same_output(reference: &Path, got: &Path, what: &str) {
    assert_same_lake(reference, got, true, what);
    let (want, got) = (lines(&reference.join("out")), lines(&got.join("out")));
    assert_eq!(
        want.iter().map(|(f, v)| (f, v.len())).collect::<Vec<_>>(),
        got.iter().map(|(f, v)| (f, v.len())).collect::<Vec<_>>(),
        "feature files ({what})"
    );
    for ((file, w), (_, g)) in want.iter().zip(&got) {
        assert!(w.iter().zip(g).all(|(a, b)| same(a, b)), "{file} differs ({what})");
    }
}

/// Asserts that `got`'s lake holds exactly the rows of `reference`'s, table
/// by table; `every_table`: the reference has rows in each (but late events).
pub(super) fn assert_same_lake(reference: &Path, got: &Path, every_table: bool, what: &str) {
    let want_all = rows(&reference.join("lake"), &TABLES);
    let got_all = rows(&got.join("lake"), &TABLES);
    assert!(!want_all[0].is_empty(), "bronze: the reference has rows");
    for (((table, _), want), got) in TABLES.iter().zip(&want_all).zip(&got_all) {
        assert!(
            !every_table || !want.is_empty() || *table == "silver/late_events",
            "{table}: the reference has rows"
        );
        let differing = want.iter().zip(got).filter(|(w, g)| !same(w, g)).count();
        assert!(
            want.len() == got.len() && differing == 0,
            "{table} ({what}): {} rows, {} expected, {differing} differ; {}",
            got.len(),
            want.len(),
            difference(want, got)
        );
    }
}

/// The simulation on Tansu (JSON values, 3 partitions per topic), produced
/// under `prefix`; returns the topology's sources reading it.
pub(super) fn kafka_input(prefix: &str) -> String {
    kafka_input_at(kafka(), prefix)
}

/// [`kafka_input`] on the broker at `brokers`.
pub(super) fn kafka_input_at(brokers: &str, prefix: &str) -> String {
    use riftstream::config::{Encoding, KafkaConfig};
    let target = riftstream::produce::ProduceTarget {
        kafka: KafkaConfig {
            brokers: brokers.to_string(),
            schema_registry: None,
            group_id: "recovery-producer".into(),
            properties: Default::default(),
        },
        encoding: Encoding::Json,
        partitions: 3,
        topic_prefix: prefix.to_string(),
        rate: None,
    };
    riftstream::produce::produce_simulation(
        &target,
        &GeneratorConfig {
            players: 800,
            matches: 6_000,
            live_games: 20,
            days: 10,
            // In order: see `in_time_order`.
            jitter_ms: 0,
            finish_live_games: true,
            seed: 29,
            ..Default::default()
        },
    )
    .expect("produce the simulation");
    let source = |name: &str| {
        format!(
            "[sources.{name}]\nkind = \"kafka\"\ntopic = \"{prefix}esports.{name}\"\nschema = \"{name}\"\nencoding = \"json\"\n"
        )
    };
    format!(
        "{}{}{}",
        source("matches"),
        source("player_stats"),
        source("game_events")
    )
}

/// The Kafka section for a run in `dir` (its own consumer group).
fn kafka_section(dir: &Path, brokers: &str) -> String {
    format!(
        "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{}\"\n",
        dir.file_name().unwrap().to_string_lossy()
    )
}

/// `dir` with a topology over the Kafka `sources` (its own consumer group;
/// `runtime` added to `[runtime]`) and the live model.
pub(super) fn kafka_dir(dir: &Path, brokers: &str, runtime: &str, sources: &str) {
    std::fs::create_dir_all(dir).unwrap();
    // `[kafka]` first: it must not land inside `[runtime]`.
    let text = format!("{}{}", kafka_section(dir, brokers), topology(dir, runtime, sources));
    std::fs::write(dir.join("topology.toml"), text).unwrap();
    register_live_model(dir);
}

/// Kill -9 over Kafka input: a bounded run killed at seeded moments after a
/// checkpoint and restarted each time (each restart reads to the same end:
/// the high watermarks at the start of the first) ends with the output of a
/// run without crashes.
#[test]
fn kill_9_during_a_kafka_run_then_restart_changes_no_output() {
    let seed = crash_seed();
    let sources = kafka_input("kill.");
    let redis = super::support::free_port();
    super::support::start_redis(redis);
    let root = tempfile::tempdir().unwrap();
    let (reference, crashed) = (root.path().join("reference"), root.path().join("crashed"));
    // Online features to Redis too: database 1 for the reference, 2 for the crashed run.
    for (dir, db) in [(&reference, 1), (&crashed, 2)] {
        kafka_dir(dir, kafka(), "", &sources);
        with_redis_features(dir, redis, db);
    }
    let status = run(&reference).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "reference run: {status:?}");
    let kills = kill_repeatedly(&crashed, seed);
    assert!(kills >= 2, "only {kills} kill(s) landed mid-run");
    let status = run(&crashed).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "final run: {status:?}");
    assert_same_output(&reference, &crashed, &format!("Kafka input, seed {seed}"));
    let (want, got) = (redis_contents(redis, 1), redis_contents(redis, 2));
    assert!(!want.is_empty(), "the reference wrote online features");
    assert!(
        want == got,
        "the Redis feature store differs after the crashes (seed {seed})"
    );
}

/// Adds online features in Redis (at `port`, database `db`) to the player
/// features job of the topology in `dir`.
fn with_redis_features(dir: &Path, port: u16, db: u16) {
    let path = dir.join("topology.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "offline = \"lake\"\noutput = \"out\"",
        "offline = \"lake\"\nonline = \"features\"\noutput = \"out\"",
    );
    let sink = format!("[sinks.features]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:{port}/{db}\"\n");
    std::fs::write(&path, format!("{sink}{text}")).unwrap();
}

/// Every hash in Redis database `db`, less its wall-clock `updated_at` field.
fn redis_contents(port: u16, db: u16) -> std::collections::BTreeMap<String, Vec<String>> {
    use super::support::redis_cli;
    let db = db.to_string();
    redis_cli(port, &["-n", &db, "--scan"])
        .lines()
        .map(|key| {
            let fields: Vec<String> = redis_cli(port, &["-n", &db, "hgetall", key])
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
                .chunks(2)
                .filter(|kv| kv[0] != "updated_at")
                .map(|kv| kv.join("="))
                .collect();
            let mut fields = fields;
            fields.sort();
            (key.to_string(), fields)
        })
        .collect()
}

/// A source whose topic does not exist yet holds back neither its job's
/// checkpoints nor a graceful stop: the job keeps checkpointing while the
/// source waits for the topic, and SIGTERM ends the run promptly with a final
/// checkpoint (not after the stop timeout, with an error).
#[test]
fn a_missing_topic_holds_back_no_checkpoint_and_no_graceful_stop() {
    let sources = kafka_input("missing.").replace(
        "topic = \"missing.esports.game_events\"",
        "topic = \"missing.never.created\"",
    );
    assert!(sources.contains("missing.never.created"), "{sources}");
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    let port = super::support::free_port();
    kafka_dir(&dir, kafka(), &format!("admin_addr = \"127.0.0.1:{port}\""), &sources);
    let mut running = start(run_unbounded(&dir));
    // The predictions job reads only the missing topic: its checkpoints complete anyway.
    let completed = |job: &str| scrape_gauge(port, "riftstream_checkpoint_last_complete_timestamp_seconds", job);
    let first = wait_until(Duration::from_secs(120), "a checkpoint of the predictions job", || {
        assert!(!running.exited(), "the run exited on its own");
        completed("predictions").filter(|t| *t > 1_700_000_000)
    });
    wait_until(
        Duration::from_secs(60),
        "a later checkpoint of the predictions job",
        || completed("predictions").filter(|t| *t > first),
    );
    let asked = Instant::now();
    let (status, stderr) = running.signal(libc::SIGTERM);
    assert!(status.success(), "a stopped run exits 0: {status:?}\n{stderr}");
    assert!(
        !stderr.contains("no final checkpoint"),
        "every job took its final checkpoint:\n{stderr}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "the stop took {:?}",
        asked.elapsed()
    );
    assert!(
        stderr.contains("missing.never.created"),
        "the missing topic is reported:\n{stderr}"
    );
}

/// A Prometheus gauge of `job`, from an admin endpoint.
fn scrape_gauge(port: u16, name: &str, job: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    let series = format!("{name}{{job=\"{job}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// A Prometheus counter summed over its series, from an admin endpoint.
fn scrape_counter(port: u16, name: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
    )
}

/// Named crash points in a checkpoint's life, each with the passes let
/// through before the crash (`util::crash_point!`), in two sequences: each
/// crash leaves less input to the next run, and a point reached only while
/// input is read must come before the input runs out.
#[cfg(feature = "failpoints")]
const CRASH_POINTS: [&[(&str, u32)]; 2] = [
    &[
        ("restore", 0),
        ("lake-log-written", 2),
        ("checkpoint-stage", 40),
        ("checkpoint-complete-before", 1),
    ],
    &[
        ("checkpoint-complete-after", 1),
        ("sink-commit-before", 2),
        ("lake-roll-recorded", 0),
        ("lake-roll-written", 0),
    ],
];

/// A crash at each named point — during a restore, after a lake sink logs
/// an epoch's rows, while an operator writes its part of a checkpoint,
/// before and after a checkpoint is recorded complete, between a checkpoint
/// and a sink's commit, between a lake roll's record and its files, and
/// between its files and forgetting its log — each shown to have happened
/// (the process aborted there), then a restart that finishes: the output of
/// a run without crashes.
#[cfg(feature = "failpoints")]
#[test]
fn a_crash_at_each_named_point_then_restart_changes_no_output() {
    let root = tempfile::tempdir().unwrap();
    let dirs = prepare(root.path(), 30 * 60 * 1000, &["reference", "crashed-0", "crashed-1"]);
    let [reference, crashed @ ..] = &dirs[..] else {
        unreachable!()
    };
    let status = run(reference).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "reference run: {status:?}");
    for (crashed, points) in crashed.iter().zip(CRASH_POINTS) {
        for (point, passes) in points {
            let out = run(crashed)
                .env("FAILPOINTS", format!("{point}={passes}*off->return"))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.signal() == Some(libc::SIGABRT) && stderr.contains(&format!("crash point {point}")),
                "no crash at {point}: {:?}\n{stderr}",
                out.status
            );
        }
        let status = run(crashed).stderr(Stdio::null()).status().unwrap();
        assert!(status.success(), "final run: {status:?}");
        assert_same_output(reference, crashed, "a crash at each named point");
    }
}

/// Rescaling: a checkpoint taken with 2 workers restores on 1 and on 4
/// (state is kept in key groups; each worker takes over the groups, sink
/// logs and output files it owns now), with the output of a run that never
/// stopped.
#[test]
fn a_checkpoint_of_two_workers_restores_on_one_and_on_four() {
    let root = tempfile::tempdir().unwrap();
    // In order: a live match's events that arrive out of order wait for the watermark, and
    // how far it is when they arrive depends on how input splits are spread over workers.
    let [reference, down, up] = &prepare(root.path(), 0, &["reference", "down", "up"])[..] else {
        unreachable!()
    };
    let status = run(reference).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "reference run: {status:?}");
    for (dir, workers) in [(down, "1"), (up, "4")] {
        let killed = run_and_signal(run(dir), Duration::from_millis(300), libc::SIGKILL);
        assert!(
            killed.is_some_and(|(status, _)| status.signal() == Some(9)),
            "the 2-worker run was killed mid-run"
        );
        let status = run(dir)
            .args(["--workers", workers])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "restart on {workers} worker(s): {status:?}");
        assert_same_output(reference, dir, &format!("2 workers, then {workers}"));
    }
}

/// A long-running Kafka job stopped with SIGTERM takes a final checkpoint,
/// commits everything it read and exits 0; the restart reads nothing again
/// and ends with the output of a run that was never stopped.
#[test]
fn sigterm_on_a_kafka_run_commits_everything_read_and_the_restart_reads_nothing_again() {
    let sources = kafka_input("sigterm.");
    let root = tempfile::tempdir().unwrap();
    let (reference, stopped) = (root.path().join("reference"), root.path().join("stopped"));
    let port = super::support::free_port();
    kafka_dir(&reference, kafka(), "", &sources);
    kafka_dir(
        &stopped,
        kafka(),
        &format!("admin_addr = \"127.0.0.1:{port}\""),
        &sources,
    );
    // Lake files roll only at the stop: what the stop commits must become visible then,
    // not wait for a roll interval or for input that never comes.
    let file = stopped.join("topology.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("roll_interval = \"1s\""));
    std::fs::write(&file, text.replace("roll_interval = \"1s\"", "roll_interval = \"1h\"")).unwrap();
    let out = run(&reference).output().unwrap();
    assert!(out.status.success(), "reference run: {:?}", out.status);
    let total = records_read(&String::from_utf8_lossy(&out.stderr));

    // A run that would go on forever, stopped once it has read everything.
    let mut running = start(run_unbounded(&stopped));
    wait_until(Duration::from_secs(120), "the run reads every record", || {
        assert!(!running.exited(), "an unbounded run exited on its own");
        (scrape_counter(port, "riftstream_source_records_total")? >= total).then_some(())
    });
    // Checkpoints are reported: how long they take and when the last completed.
    wait_until(Duration::from_secs(60), "a checkpoint is reported", || {
        (scrape_counter(port, "riftstream_checkpoint_seconds_count")? >= 1).then_some(())
    });
    assert!(scrape_counter(port, "riftstream_checkpoint_last_complete_timestamp_seconds").unwrap_or(0) > 1_700_000_000);
    let (status, stderr) = running.signal(libc::SIGTERM);
    assert!(status.success(), "a stopped run exits 0: {status:?}\n{stderr}");
    assert!(
        stderr.contains("stopped reading for a graceful stop"),
        "the sources stopped:\n{stderr}"
    );
    assert_eq!(records_read(&stderr), total, "the stopped run read everything once");
    // Every record the stopped run read is in bronze already: the final checkpoint was
    // committed. (Silver may hold back records still waiting for the watermark: they are
    // state in that checkpoint, emitted after the restart.)
    let bronze = &TABLES[..1];
    assert_eq!(
        rows(&reference.join("lake"), bronze)[0].len(),
        rows(&stopped.join("lake"), bronze)[0].len(),
        "bronze after the stop"
    );

    let out = run(&stopped).output().unwrap();
    assert!(out.status.success(), "restart: {:?}", out.status);
    assert_eq!(
        records_read(&String::from_utf8_lossy(&out.stderr)),
        0,
        "the restart read nothing again"
    );
    assert_same_output(&reference, &stopped, "stopped with SIGTERM, then restarted");
}
