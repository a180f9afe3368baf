//! Champion/challenger scoring of live games in the predictions job.

use super::support::{read_jsonl, run_bounded, write_jsonl};
use riftstream::generator::{simulate, GeneratorConfig};
use riftstream::model::{load_ten_minute_csv, train, ModelKind, ModelRegistry, TrainConfig};
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn a_challenger_scores_its_share_of_matches_beside_the_champion_and_both_are_judged_by_results() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let data = load_ten_minute_csv(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/high_diamond_ranked_10min.train.csv"),
    )
    .unwrap();
    let registry = ModelRegistry::open(dir.path().join("lake")).unwrap();
    let logistic = train(&data, &TrainConfig::default(), &mut |_| {}).unwrap();
    registry.register("live", &logistic, "test").unwrap();
    let mlp = train(
        &data,
        &TrainConfig::for_kind(ModelKind::Mlp { hidden: 16 }),
        &mut |_| {},
    )
    .unwrap();
    registry.register("live_mlp", &mlp, "test").unwrap();

    let sim = simulate(&GeneratorConfig {
        players: 200,
        matches: 10,
        live_games: 12,
        finish_live_games: true,
        seed: 5,
        ..Default::default()
    });
    // One ended match is replayed whole after the others: its tombstone must swallow the replay.
    let replayed = sim.game_events[0].match_id.clone();
    let replayed_events = sim.game_events.iter().filter(|e| e.match_id == replayed).count();
    let mut events: Vec<serde_json::Value> = sim
        .game_events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    events.extend(
        sim.game_events
            .iter()
            .filter(|e| e.match_id == replayed)
            .map(|e| serde_json::to_value(e).unwrap()),
    );
    let input = dir.path().join("events.jsonl");
    write_jsonl(&input, &events);
    let report = run_bounded(
        &format!(
            r#"
[runtime]
state_dir = "{d}/state"
[sources.events]
kind = "file"
path = "{input}"
schema = "game_events"
[sinks.out]
kind = "file"
path = "{d}/out"
[sinks.lake]
kind = "lake"
root = "{d}/lake"
[jobs.scoring]
kind = "predictions"
live_source = "events"
outputs = ["out", "lake"]
registry = "{d}/lake"
challenger_model = "live_mlp"
challenger_share = 0.5
"#,
            input = input.display()
        ),
        2,
    );
    let got = read_jsonl(&dir.path().join("out"), "predictions");
    // (match, event time, minute) -> variants that scored it.
    let mut by_update: BTreeMap<(String, i64, i64), BTreeSet<String>> = BTreeMap::new();
    for p in &got {
        let variant = p["variant"].as_str().unwrap().to_string();
        let model = p["model_name"].as_str().unwrap();
        assert_eq!(model, if variant == "champion" { "live" } else { "live_mlp" }, "{p}");
        by_update
            .entry((
                p["match_id"].as_str().unwrap().to_string(),
                p["event_time"].as_i64().unwrap(),
                p["game_minute"].as_i64().unwrap(),
            ))
            .or_default()
            .insert(variant);
    }
    let replayed_predictions = got
        .iter()
        .filter(|p| p["match_id"] == replayed.as_str() && p["variant"] == "champion")
        .count();
    assert_eq!(
        replayed_predictions, replayed_events,
        "a replay of an ended match is not scored again"
    );
    // gold/model_outcomes: every prediction of each variant judged by its match's winner.
    let winners: BTreeMap<String, bool> = sim
        .live_outcomes
        .iter()
        .map(|(id, winner, _)| (id.clone(), *winner == riftstream::events::Team::Blue))
        .collect();
    for variant in ["champion", "challenger"] {
        let mine: Vec<&serde_json::Value> = got.iter().filter(|p| p["variant"] == variant).collect();
        let correct = mine
            .iter()
            .filter(|p| {
                (p["blue_win_probability"].as_f64().unwrap() >= 0.5) == winners[p["match_id"].as_str().unwrap()]
            })
            .count();
        let gold = super::support::duckdb(&format!(
            "select sum(predictions), sum(correct), count(distinct match_id) from read_parquet('{d}/lake/gold/model_outcomes/**/*.parquet', hive_partitioning=1) where metric_type = '{variant}'"
        ));
        assert_eq!(gold[0][0].as_i64().unwrap() as usize, mine.len(), "{variant}: {gold:?}");
        assert_eq!(gold[0][1].as_i64().unwrap() as usize, correct, "{variant}: {gold:?}");
    }
    let mut challenged_matches = BTreeSet::new();
    for ((match_id, _, _), variants) in &by_update {
        let expect_challenger = super::support::reference_challenger_share(match_id, 0.5);
        assert!(
            variants.contains("champion"),
            "{match_id}: every update has the champion's prediction"
        );
        assert_eq!(variants.contains("challenger"), expect_challenger, "{match_id}");
        if expect_challenger {
            challenged_matches.insert(match_id.clone());
        }
    }
    assert!(
        !challenged_matches.is_empty(),
        "some of 12 matches fall in a 50 % share"
    );
    let metrics = report.metrics.expect("the run's metrics");
    let champion = metrics.counter_sum("model_outcomes_total", "variant", "champion");
    let challenger = metrics.counter_sum("model_outcomes_total", "variant", "challenger");
    let champion_predictions = got.iter().filter(|p| p["variant"] == "champion").count() as u64;
    let challenger_predictions = got.iter().filter(|p| p["variant"] == "challenger").count() as u64;
    // Every game ended, so every prediction was judged, once.
    assert_eq!(champion, champion_predictions);
    assert_eq!(challenger, challenger_predictions);
    assert!(challenger_predictions > 0);
}
