//! The pre-game model: trained on the offline store's point-in-time
//! features of generated ranked play, compared with the simulator's own
//! win probability on later matches it never saw; then the same model
//! scores prediction requests inside the predictions job, joined with the
//! players' features there, exactly as on the offline table.

use super::support::{run_bounded, write_jsonl};
use riftstream::generator::{simulate, GeneratorConfig};
use riftstream::lake::offline::{training_table, write_parquet, FeatureHistory};
use riftstream::lake::Lake;
use riftstream::model::pregame::load_pregame_table;
use riftstream::model::{train, TrainConfig};

#[test]
fn the_pre_game_model_reaches_95_percent_of_the_best_and_scores_in_the_stream_as_on_the_offline_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let sim = simulate(&GeneratorConfig {
        players: 400,
        matches: 8_000,
        live_games: 0,
        days: 40,
        seed: 21,
        ..Default::default()
    });
    let lines: Vec<serde_json::Value> = sim.matches.iter().map(|m| serde_json::to_value(m).unwrap()).collect();
    let input = dir.path().join("matches.jsonl");
    write_jsonl(&input, &lines);
    let stats = dir.path().join("player_stats.jsonl");
    write_jsonl(
        &stats,
        &sim.player_stats
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect::<Vec<_>>(),
    );
    let features_toml = format!(
        r#"
[runtime]
state_dir = "{d}/state"
[sources.matches]
kind = "file"
path = "{input}"
schema = "matches"
[sources.player_stats]
kind = "file"
path = "{stats}"
schema = "player_stats"
[sinks.lake]
kind = "lake"
root = "{d}/lake"
[feature_sets.player_30d]
source = "matches"
explode = "participants"
key = "player_id"
time = "end_time"
window = {{ kind = "sliding", size = "30d", slide = "1d" }}
aggregates = {{ games_30d = "count", wins_30d = "sum(win)", kills_30d = "sum(kills)", deaths_30d = "sum(deaths)", assists_30d = "sum(assists)" }}
features = {{ winrate_30d = "wins_30d / games_30d", kda_30d = "(kills_30d + assists_30d) / max(1, deaths_30d)" }}
{pre_game_sets}
# (jobs below)
"#,
        input = input.display(),
        stats = stats.display(),
        // The ladder and player+champion sets, exactly as the demo declares them.
        pre_game_sets = riftstream::demo::PRE_GAME_FEATURE_SETS
    );
    let topo = format!(
        "{features_toml}
[jobs.features]
kind = \"player_features\"
feature_sets = [\"player_30d\", \"ladder\", \"player_champion_30d\"]
offline = \"lake\"
"
    );
    run_bounded(&topo, 2);
    let history = FeatureHistory::load(&Lake::open(&format!("{d}/lake")).unwrap()).unwrap();
    let mut matches = sim.matches.clone();
    matches.sort_by_key(|m| m.start_time);
    let table_path = dir.path().join("pregame.parquet");
    write_parquet(&table_path, &training_table(&history, &matches).unwrap()).unwrap();
    let data = load_pregame_table(&table_path, None).unwrap();
    let n = data.dataset.n();
    assert_eq!(n, 8_000);

    // Rows are in match start order: train on the first 70 %, test on the rest.
    let cut = n * 7 / 10;
    let train_rows: Vec<usize> = (0..cut).collect();
    let test_rows: Vec<usize> = (cut..n).collect();
    let model = train(&data.dataset.subset(&train_rows), &TrainConfig::default(), &mut |_| {}).unwrap();
    let test = data.dataset.subset(&test_rows);
    let eval = model.evaluate_on(&test).unwrap();
    let best = test_rows
        .iter()
        .filter(|i| (data.simulated[**i].unwrap() >= 0.5) == (data.dataset.y[**i] >= 0.5))
        .count() as f64
        / test_rows.len() as f64;
    eprintln!(
        "pre-game: accuracy {:.4}, log loss {:.4}, AUC {:.4}; simulator {best:.4}; share {:.3}",
        eval.accuracy,
        eval.log_loss,
        eval.auc.unwrap_or(f64::NAN),
        eval.accuracy / best
    );
    assert!(best > 0.55, "the simulated outcomes should depend on skill: {best}");

    // In the stream: the last 200 matches as prediction requests at their start,
    // joined with the players' features inside the predictions job, score exactly
    // as the offline table rows of the same matches.
    let requested: Vec<usize> = (n - 200..n).collect();
    let requests: Vec<serde_json::Value> = requested
        .iter()
        .map(|i| {
            let m = &matches[*i];
            serde_json::to_value(riftstream::events::PredictionRequest {
                match_id: m.match_id.clone(),
                request_time: m.start_time,
                queue: m.queue.clone(),
                patch: m.patch.clone(),
                participants: m
                    .participants
                    .iter()
                    .map(|p| riftstream::events::LineupSlot {
                        player_id: p.player_id.clone(),
                        team: p.team,
                        role: p.role,
                        champion: p.champion.clone(),
                    })
                    .collect(),
            })
            .unwrap()
        })
        .collect();
    let requests_path = dir.path().join("requests.jsonl");
    write_jsonl(&requests_path, &requests);
    let scoring = format!(
        "{features_toml}
[sources.requests]
kind = \"file\"
path = \"{requests}\"
schema = \"prediction_requests\"
[sinks.out]
kind = \"file\"
path = \"{d}/out\"
[jobs.predictions]
kind = \"predictions\"
requests_source = \"requests\"
pre_game_feature_sets = [\"player_30d\", \"ladder\", \"player_champion_30d\"]
outputs = [\"out\"]
registry = \"{d}/lake\"
",
        requests = requests_path.display(),
        d = d
    );
    // Before any pre-game model is registered, every request is answered on
    // the dead-letter path with the reason, none is scored or dropped.
    let unmodelled = dir.path().join("unmodelled");
    run_bounded(
        &scoring
            .replace(&format!("{d}/state"), &format!("{}/state", unmodelled.display()))
            .replace(&format!("{d}/out"), &format!("{}/out", unmodelled.display()))
            .replace("outputs = [\"out\"]", "outputs = [\"out\"]\ndlq = \"out\""),
        2,
    );
    let (unscored, scored): (Vec<_>, Vec<_>) = super::support::read_jsonl(&unmodelled.join("out"), "predictions")
        .into_iter()
        .partition(|l| l.get("stage").is_some());
    assert!(scored.is_empty(), "nothing scored without a model: {scored:?}");
    let unscored_ids: std::collections::BTreeSet<&str> = unscored.iter().filter_map(|l| l["key"].as_str()).collect();
    assert_eq!(unscored.len(), 200, "one dead letter per request");
    assert_eq!(unscored_ids.len(), 200);
    super::support::assert_no_model_dead_letters(&unscored, "pre_game");

    let registry = riftstream::model::ModelRegistry::open(dir.path().join("lake")).unwrap();
    registry.register("pre_game", &model, "test").unwrap();
    run_bounded(&scoring, 2);
    let streamed: std::collections::BTreeMap<String, f64> =
        super::support::read_jsonl(&dir.path().join("out"), "predictions")
            .iter()
            .map(|p| {
                assert_eq!(p["kind"], "pre_game");
                (
                    p["match_id"].as_str().unwrap().to_string(),
                    p["blue_win_probability"].as_f64().unwrap(),
                )
            })
            .collect();
    assert_eq!(streamed.len(), 200, "one prediction per request");
    let offline_rows = data.dataset.subset(&requested);
    let offline = model.predict_batch(&offline_rows.x).unwrap();
    for (k, i) in requested.iter().enumerate() {
        let id = &matches[*i].match_id;
        let got = streamed[id];
        assert!(
            (got - offline[k] as f64).abs() < 1e-5,
            "{id}: streamed {got} vs point-in-time table {}",
            offline[k]
        );
    }
    assert!(
        eval.accuracy >= 0.95 * best,
        "pre-game accuracy {:.4} is below 95 % of the simulator's {best:.4}",
        eval.accuracy
    );
    #[cfg(feature = "failpoints")]
    crash_and_restart_scores_the_same(&dir.path().join("crashed"), &scoring, &d, &streamed);
}

/// The same scoring run as a process that aborts right after its first
/// checkpoint completes, then restarts: the players' kept vectors and the
/// scored requests come back from the checkpoint, and every request gets
/// the prediction of the run that never stopped, once.
#[cfg(feature = "failpoints")]
fn crash_and_restart_scores_the_same(
    dir: &std::path::Path,
    scoring: &str,
    d: &str,
    streamed: &std::collections::BTreeMap<String, f64>,
) {
    use std::os::unix::process::ExitStatusExt;
    std::fs::create_dir_all(dir).unwrap();
    let text = scoring
        .replace(
            &format!("state_dir = \"{d}/state\""),
            &format!("state_dir = \"{}/state\"", dir.display()),
        )
        .replace(
            &format!("path = \"{d}/out\""),
            &format!("path = \"{}/out\"", dir.display()),
        )
        .replace("[runtime]\n", "[runtime]\ncheckpoint_interval = \"100ms\"\n");
    let topology = dir.join("topology.toml");
    std::fs::write(&topology, text).unwrap();
    let run = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_riftstream"));
        cmd.args(["run", "--bounded", "--topology"]).arg(&topology);
        cmd
    };
    let crashed = run()
        .env("FAILPOINTS", "checkpoint-complete-after=return")
        .output()
        .unwrap();
    assert_eq!(
        crashed.status.signal(),
        Some(libc::SIGABRT),
        "the run aborted after a checkpoint: {}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    let restart = run().env("RIFT_LOG", "riftstream=info").output().unwrap();
    let log = String::from_utf8_lossy(&restart.stderr);
    assert!(restart.status.success(), "restart: {:?}\n{log}", restart.status);
    assert!(log.contains("restored"), "the restart restored the checkpoint:\n{log}");
    let mut got: Vec<(String, f64)> = super::support::read_jsonl(&dir.join("out"), "predictions")
        .iter()
        .map(|p| {
            (
                p["match_id"].as_str().unwrap().to_string(),
                p["blue_win_probability"].as_f64().unwrap(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), streamed.len(), "one prediction per request across the crash");
    for (id, p) in got {
        assert!(
            (p - streamed[&id]).abs() < 1e-5,
            "{id}: {p} after the crash vs {}",
            streamed[&id]
        );
    }
}
