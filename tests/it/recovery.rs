//! Checkpoints survive `kill -9`: a bounded run killed at random moments and
//! restarted each time ends with exactly the output of a run without
//! crashes — every lake table (bronze, silver, gold, the offline feature
//! store, late events) and every feature file.
//!
//! The moments are drawn from a seed (`RIFT_CRASH_SEED`, printed) after the
//! run has completed a checkpoint, so each kill lands in the middle of the
//! work, and the test checks that each kill did kill a running process.

use super::support::duckdb;
use riftstream::generator::GeneratorConfig;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn topology(dir: &Path, input: &Path) -> String {
    let (d, i) = (dir.display(), input.display());
    format!(
        r#"
[runtime]
workers = 2
state_dir = "{d}/state"
checkpoint_interval = "150ms"
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
"#
    )
}

fn run(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_riftstream"));
    cmd.args(["run", "--bounded", "--topology"])
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

/// Starts a run and kills it `delay` after its first completed checkpoint.
/// Returns whether it was killed (false: it finished first).
fn run_and_kill(dir: &Path, delay: Duration) -> bool {
    let mut child = run(dir).spawn().expect("start riftstream");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("checkpoint complete") {
                let _ = tx.send(());
            }
        }
    });
    // Wait for a checkpoint of this incarnation (or the end of the run).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
            break;
        }
        if let Some(status) = child.try_wait().expect("poll child") {
            assert!(status.success(), "the run failed: {status:?}");
            let _ = reader.join();
            return false;
        }
        assert!(Instant::now() < deadline, "no checkpoint completed within 120 s");
    }
    let at = Instant::now() + delay;
    while Instant::now() < at {
        if child.try_wait().expect("poll child").is_some() {
            let _ = reader.join();
            return false;
        }
        std::thread::yield_now();
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    let _ = reader.join();
    // Killed by signal 9, not exited on its own.
    status.signal() == Some(9)
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
        table.sort_by_key(|v| v.to_string());
    }
    out
}

/// Whether two rows are equal, numbers to 1e-9 relative (sums of
/// fractional values may be added in another order after a restore).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn lines(dir: &Path) -> Vec<(String, Vec<serde_json::Value>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("output dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let mut v: Vec<serde_json::Value> = std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            v.sort_by_key(|x| x.to_string());
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect()
}

#[test]
fn kill_9_at_random_moments_then_restart_changes_no_output() {
    let seed: u64 = std::env::var("RIFT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234);
    eprintln!("crash seed {seed} (RIFT_CRASH_SEED replays it)");
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("in");
    riftstream::demo::write_simulation(
        &GeneratorConfig {
            players: 1_200,
            matches: 15_000,
            live_games: 30,
            days: 20,
            jitter_ms: 30 * 60 * 1000,
            seed: 23,
            ..Default::default()
        },
        &input,
    )
    .unwrap();
    let (reference, crashed) = (root.path().join("reference"), root.path().join("crashed"));
    for dir in [&reference, &crashed] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("topology.toml"), topology(dir, &input)).unwrap();
    }
    let status = run(&reference).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "reference run: {status:?}");

    let mut rng = Rng(seed | 1);
    let mut kills = 0;
    for _ in 0..3 {
        let delay = Duration::from_millis(rng.below(800));
        if !run_and_kill(&crashed, delay) {
            break;
        }
        kills += 1;
    }
    assert!(kills >= 2, "only {kills} kill(s) landed mid-run: the input is too small for this machine");
    let status = run(&crashed).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "final run: {status:?}");

    let tables = [
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
    ];
    let want_all = rows(&reference.join("lake"), &tables);
    let got_all = rows(&crashed.join("lake"), &tables);
    for (((table, _), want), got) in tables.iter().zip(&want_all).zip(&got_all) {
        assert!(!want.is_empty() || *table == "silver/late_events", "{table}: the reference has rows");
        assert_eq!(want.len(), got.len(), "{table}: row counts (seed {seed})");
        let differing = want.iter().zip(got).filter(|(w, g)| !same(w, g)).count();
        assert_eq!(differing, 0, "{table}: {differing} rows differ (seed {seed})");
    }
    let (want, got) = (lines(&reference.join("out")), lines(&crashed.join("out")));
    assert_eq!(
        want.iter().map(|(f, v)| (f, v.len())).collect::<Vec<_>>(),
        got.iter().map(|(f, v)| (f, v.len())).collect::<Vec<_>>(),
        "feature files (seed {seed})"
    );
    for ((file, w), (_, g)) in want.iter().zip(&got) {
        assert!(w.iter().zip(g).all(|(a, b)| same(a, b)), "{file} differs (seed {seed})");
    }
}
