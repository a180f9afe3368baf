//! Whole jobs, end to end, on small inputs with exactly known outputs.

use super::support::{duckdb, read_jsonl, run_bounded, write_jsonl, BASE};
use riftstream::generator::{simulate, GeneratorConfig};
use riftstream::model::{load_ten_minute_csv, train, ModelRegistry, TrainConfig};
use serde_json::json;

fn row(player: &str, ts_s: i64, kills: i64, gold: i64) -> serde_json::Value {
    json!({"match_id": format!("m{ts_s}"), "player_id": player, "champion": "Ahri", "ts": BASE + ts_s * 1000,
           "kills": kills, "deaths": 1, "assists": 2, "gold": gold, "cs": 100, "win": 1})
}

#[test]
fn tumbling_feature_job_gives_exact_windows_and_stores_late_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    write_jsonl(
        &dir.path().join("rows.jsonl"),
        &[
            row("p1", 1, 1, 1000),
            row("p2", 5, 2, 2000),
            row("p1", 30, 3, 3000),
            row("p1", 65, 1, 1000),                 // watermark 55s
            row("p1", 50, 10, 5000),                // stamp 55s < 60s: still in [0, 60)
            json!({"player_id": "p9", "ts": BASE}), // missing fields: dead letter
            row("p2", 130, 4, 4000),                // watermark 120s
            row("p1", 20, 100, 100),                // stamp 120s >= 60s: late
        ],
    );
    let topo = format!(
        r#"
[runtime]
state_dir = "{d}/state"
[sources.rows]
kind = "file"
path = "{d}/rows.jsonl"
schema = "records"
splits = 1
watermark = {{ max_out_of_orderness = "10s" }}
[sinks.out]
kind = "file"
path = "{d}/out"
[feature_sets.minute]
source = "rows"
key = "player_id"
time = "ts"
window = {{ kind = "tumbling", size = "60s" }}
aggregates = {{ count = "count", kills = "sum(kills)", avg_gold = "avg(gold)" }}
features = {{ kills_per_game = "kills / count" }}
[jobs.features]
kind = "player_features"
feature_sets = ["minute"]
output = "out"
dlq = "out"
"#
    );
    let report = run_bounded(&topo, 1);
    let mut got = read_jsonl(&dir.path().join("out"), "minute");
    got.sort_by_key(|v| (v["window_start"].as_i64(), v["player_id"].as_str().map(String::from)));
    let w = |s: i64| BASE + s * 1000;
    assert_eq!(
        got,
        vec![
            json!({"window_start": w(0), "window_end": w(60), "player_id": "p1", "revision": 0, "count": 3, "kills": 14, "avg_gold": 3000, "kills_per_game": 14.0 / 3.0}),
            json!({"window_start": w(0), "window_end": w(60), "player_id": "p2", "revision": 0, "count": 1, "kills": 2, "avg_gold": 2000, "kills_per_game": 2}),
            json!({"window_start": w(60), "window_end": w(120), "player_id": "p1", "revision": 0, "count": 1, "kills": 1, "avg_gold": 1000, "kills_per_game": 1}),
            json!({"window_start": w(120), "window_end": w(180), "player_id": "p2", "revision": 0, "count": 1, "kills": 4, "avg_gold": 4000, "kills_per_game": 4}),
        ]
    );
    let late = read_jsonl(&dir.path().join("out"), "late_events");
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["key"], "p1");
    assert_eq!(late[0]["event_time"], w(20));
    assert_eq!(late[0]["watermark"], w(120));
    // The feature set's counters match what the job wrote.
    let metrics = report.metrics.expect("the run's metrics");
    let counted = |name: &str| metrics.counter_sum(name, "feature_set", "minute");
    assert_eq!(counted("late_rows_total"), 1);
    assert_eq!(counted("window_results_total"), got.len() as u64);
    let dead = read_jsonl(&dir.path().join("out"), "features-dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["stage"], "decode");
    assert_eq!(dead[0]["reason"], "missing fields `gold`, `kills`");
}

#[test]
fn lake_job_writes_bronze_and_deduplicated_silver_that_duckdb_reads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let sim = simulate(&GeneratorConfig {
        players: 300,
        matches: 400,
        live_games: 3,
        ..Default::default()
    });
    let mut lines: Vec<serde_json::Value> = sim.matches.iter().map(|m| serde_json::to_value(m).unwrap()).collect();
    // Replays: 25 matches delivered twice, far apart.
    let dupes: Vec<serde_json::Value> = lines[..25].to_vec();
    lines.extend(dupes);
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    text.push_str("not json at all\n");
    std::fs::write(dir.path().join("matches.jsonl"), text).unwrap();
    let events: Vec<serde_json::Value> = sim
        .game_events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    write_jsonl(&dir.path().join("events.jsonl"), &events);
    let topo = format!(
        r#"
[runtime]
workers = 2
state_dir = "{d}/state"
[sources.matches]
kind = "file"
path = "{d}/matches.jsonl"
schema = "matches"
[sources.events]
kind = "file"
path = "{d}/events.jsonl"
schema = "game_events"
[sinks.lake]
kind = "lake"
root = "{d}/lake"
[sinks.out]
kind = "file"
path = "{d}/out"
[jobs.lake]
kind = "lake"
sources = ["matches", "events"]
lake = "lake"
dlq = "out"
"#
    );
    run_bounded(&topo, 2);
    let lake = format!("{d}/lake");
    let count = |glob: &str| {
        duckdb(&format!(
            "select count(*) from read_parquet('{lake}/{glob}', hive_partitioning=1)"
        ))[0][0]
            .as_i64()
            .unwrap()
    };
    assert_eq!(
        count("bronze/matches/**/*.parquet"),
        426,
        "every consumed line, duplicates and garbage included"
    );
    assert_eq!(count("silver/matches/**/*.parquet"), 400, "each match once");
    assert_eq!(count("silver/match_participants/**/*.parquet"), 4000);
    assert_eq!(count("silver/game_events/**/*.parquet") as usize, sim.game_events.len());
    assert!(count("silver/**/*.parquet") > 4400);
    // Hive partitions come back as columns, with the types DuckDB infers.
    let parts = duckdb(&format!(
        "select count(distinct date), min(game_mode), count(distinct match_id) from read_parquet('{lake}/silver/matches/**/*.parquet', hive_partitioning=1)"
    ));
    assert!(parts[0][0].as_i64().unwrap() > 10);
    assert_eq!(parts[0][1], "ranked_solo");
    // Silver equals the input, field for field, for a sample match.
    let m = &sim.matches[7];
    let got = duckdb(&format!(
        "select winning_team, patch, len(participants), participants[1].player_id, epoch_ms(end_time) from read_parquet('{lake}/silver/matches/**/*.parquet') where match_id = '{}'",
        m.match_id
    ));
    assert_eq!(
        got[0],
        vec![
            json!(m.winning_team.as_str()),
            json!(m.patch),
            json!(10),
            json!(m.participants[0].player_id),
            json!(m.end_time)
        ]
    );
    let dead = read_jsonl(&dir.path().join("out"), "lake-dlq");
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["reason"].as_str().unwrap().starts_with("invalid matches JSON"));
    // No staged file is left behind.
    assert!(
        std::fs::read_dir(dir.path().join("lake/_staging"))
            .map(|mut r| r.next().is_none())
            .unwrap_or(true)
            || walk_files(&dir.path().join("lake/_staging")) == 0
    );
}

fn walk_files(p: &std::path::Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                n += walk_files(&e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn predictions_job_scores_every_live_event_with_the_registered_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let data = load_ten_minute_csv(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/high_diamond_ranked_10min.train.csv"),
    )
    .unwrap();
    let model = train(&data, &TrainConfig::default(), &mut |_| {}).unwrap();
    let version_dir = ModelRegistry::open(dir.path().join("lake"))
        .unwrap()
        .register("live", &model, "test")
        .unwrap();
    assert!(version_dir.ends_with("models/live/v1"));
    let sim = simulate(&GeneratorConfig {
        players: 600,
        matches: 50,
        live_games: 30,
        ..Default::default()
    });
    let events: Vec<serde_json::Value> = sim
        .game_events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    write_jsonl(&dir.path().join("events.jsonl"), &events);
    let topo = format!(
        r#"
[runtime]
workers = 2
state_dir = "{d}/state"
[sources.events]
kind = "file"
path = "{d}/events.jsonl"
schema = "game_events"
[sinks.lake]
kind = "lake"
root = "{d}/lake"
[sinks.out]
kind = "file"
path = "{d}/out"
[jobs.predictions]
kind = "predictions"
live_source = "events"
outputs = ["out", "lake"]
"#
    );
    run_bounded(&topo, 2);
    let preds = read_jsonl(&dir.path().join("out"), "predictions");
    assert_eq!(preds.len(), sim.game_events.len(), "one prediction per event");
    for p in &preds {
        let prob = p["blue_win_probability"].as_f64().unwrap();
        assert!(prob > 0.0 && prob < 1.0);
        assert_eq!(p["model_version"], "v1");
        assert_eq!(p["kind"], "live");
        assert!(p["latency_ms"].as_f64().unwrap() >= 0.0);
    }
    // At game end the model leans towards the winner far more often than not.
    let mut right = 0;
    for (id, winner, _) in &sim.live_outcomes {
        let last = preds
            .iter()
            .filter(|p| p["match_id"] == id.as_str())
            .max_by_key(|p| p["event_time"].as_i64())
            .unwrap();
        right += ((last["blue_win_probability"].as_f64().unwrap() > 0.5) == (winner.as_str() == "blue")) as usize;
    }
    assert!(
        right * 3 >= sim.live_outcomes.len() * 2,
        "{right}/{}",
        sim.live_outcomes.len()
    );
    let lake_rows = duckdb(&format!("select count(*) from read_parquet('{d}/lake/gold/predictions/**/*.parquet', hive_partitioning=1) where metric_type = 'live'"));
    assert_eq!(lake_rows[0][0].as_i64().unwrap() as usize, preds.len());
}

#[test]
fn the_shipped_topology_builds_every_job_and_a_service_can_start_it_before_any_model_is_trained() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topology.toml"))
        .unwrap()
        .replace("${RIFT_LAKE:-./lake}", &dir.path().join("lake").display().to_string())
        .replace(
            "${RIFT_STATE:-./state}",
            &dir.path().join("state").display().to_string(),
        );
    let topology = riftstream::config::Topology::parse(&text, "topology.toml").unwrap();
    let names: Vec<&String> = topology.jobs.keys().collect();
    assert_eq!(names, ["lake", "player_features", "predictions"]);
    for name in names {
        let job = riftstream::jobs::build(name, &topology).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The registry is empty: a service still accepts the predictions job.
        job.preflight().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let riftstream::config::JobConfig::Predictions {
        requests_source, dlq, ..
    } = &topology.jobs["predictions"]
    else {
        panic!("predictions is a predictions job");
    };
    assert_eq!(requests_source.as_deref(), Some("prediction_requests"));
    assert_eq!(
        dlq.as_deref(),
        Some("dlq"),
        "what cannot be scored yet has somewhere to go"
    );
}
