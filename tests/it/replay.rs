//! Replays of the real data files.

use super::support::{read_jsonl, run_bounded, write_jsonl};
use riftstream::events::Event;
use riftstream::generator::{oracles_elixir_matches, ten_minute_games};
use riftstream::model::{
    live_features, read_ten_minute_rows, train, Dataset, ModelRegistry, TrainConfig, LIVE_FEATURE_NAMES,
};
use std::path::Path;

fn data(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(rel)
}

#[test]
fn oracles_elixir_worlds_2021_replays_into_valid_matches() {
    let (matches, rejected) = oracles_elixir_matches(&data("oracles_elixir_worlds/2021_worlds.csv")).unwrap();
    assert_eq!(matches.len(), 121, "1452 rows = 121 games of 12 rows");
    assert!(rejected.is_empty(), "{rejected:?}");
    let now = riftstream::util::now_ms();
    for m in &matches {
        m.validate(now).unwrap_or_else(|e| panic!("{}: {e}", m.match_id));
    }
    let final_game = matches.last().unwrap();
    assert_eq!(final_game.queue, "worlds");
    assert!(matches.windows(2).all(|w| w[0].start_time <= w[1].start_time));
}

#[test]
fn ten_minute_rows_streamed_through_the_live_job_score_exactly_like_the_offline_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let csv = data("high_diamond_ranked_10min.train.csv");
    let rows = read_ten_minute_rows(&csv).unwrap();
    // Train on all rows; score the first 300 games both ways.
    let x: Vec<f32> = rows.iter().flat_map(|r| live_features(&r.blue, &r.red)).collect();
    let y: Vec<f32> = rows.iter().map(|r| r.blue_wins as u8 as f32).collect();
    let ids = rows.iter().map(|r| r.game_id.clone()).collect();
    let names = LIVE_FEATURE_NAMES.iter().map(|s| s.to_string()).collect();
    let dataset = Dataset::new(names, x, y, ids).unwrap();
    let model = train(&dataset, &TrainConfig::default(), &mut |_| {}).unwrap();
    ModelRegistry::open(dir.path().join("lake"))
        .unwrap()
        .register("live", &model, "test")
        .unwrap();
    let path = dir.path().join("ten.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    let head: String = text.lines().take(301).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, head).unwrap();
    let (events, _) = ten_minute_games(
        &path,
        riftstream::events::EARLIEST_EVENT_TIME_MS + 1_000_000_000,
        900_000,
    )
    .unwrap();
    let lines: Vec<serde_json::Value> = events.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
    write_jsonl(&dir.path().join("events.jsonl"), &lines);
    let topo = format!(
        r#"
[runtime]
workers = 2
state_dir = "{d}/state"
[sources.events]
kind = "file"
path = "{d}/events.jsonl"
schema = "game_events"
watermark = {{ max_out_of_orderness = "1h" }}
[sinks.lake]
kind = "lake"
root = "{d}/lake"
[sinks.out]
kind = "file"
path = "{d}/out"
[jobs.predictions]
kind = "predictions"
live_source = "events"
outputs = ["out"]
"#
    );
    run_bounded(&topo, 2);
    let preds = read_jsonl(&dir.path().join("out"), "predictions");
    let offline = model
        .predict_batch(&dataset.x[..300 * LIVE_FEATURE_NAMES.len()])
        .unwrap();
    let mut compared = 0;
    for (i, r) in rows.iter().take(300).enumerate() {
        // Kills carry at most 4 assists each; rows with more assists cannot be replayed exactly.
        if r.blue.assists > 4 * r.blue.kills || r.red.assists > 4 * r.red.kills {
            continue;
        }
        let id = format!("KAGGLE_{}", r.game_id);
        let at10 = preds
            .iter()
            .filter(|p| p["match_id"] == id.as_str() && p["game_minute"] == 10)
            .max_by_key(|p| p["event_time"].as_i64())
            .unwrap_or_else(|| panic!("no minute-10 prediction for {id}"));
        let streamed = at10["blue_win_probability"].as_f64().unwrap();
        assert!(
            (streamed - offline[i] as f64).abs() < 1e-5,
            "{id}: streamed {streamed} vs offline {}",
            offline[i]
        );
        compared += 1;
    }
    assert!(compared > 250, "compared {compared}");
}
