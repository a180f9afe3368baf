//! The demo's closing summary: lake tables with their files and rows, and
//! example predictions with the models' accuracy.

use super::*;

/// Per table: (files, rows), read from Parquet footers.
pub fn lake_tables(root: &Path) -> Result<BTreeMap<String, (usize, i64)>> {
    let mut out = BTreeMap::new();
    for layer in ["bronze", "silver", "gold"] {
        let layer_dir = root.join(layer);
        let Ok(tables) = std::fs::read_dir(&layer_dir) else {
            continue;
        };
        for t in tables.flatten() {
            let mut files = 0;
            let mut rows = 0;
            let mut stack = vec![t.path()];
            while let Some(p) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&p) else {
                    continue;
                };
                for e in entries.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|x| x == "parquet") {
                        let file = std::fs::File::open(&path).map_err(|e| RiftError::io(&path, e))?;
                        let reader = parquet::file::reader::SerializedFileReader::new(file)?;
                        use parquet::file::reader::FileReader;
                        rows += reader.metadata().file_metadata().num_rows();
                        files += 1;
                    }
                }
            }
            out.insert(format!("{layer}/{}", t.file_name().to_string_lossy()), (files, rows));
        }
    }
    Ok(out)
}

pub(super) fn summarize_predictions(
    dir: &Path,
    outcomes: &[(String, Team, f64)],
    model: &crate::model::ModelVersionInfo,
    pre_game_model: &crate::model::ModelVersionInfo,
) -> Result<()> {
    let mut preds: Vec<Prediction> = Vec::new();
    for entry in std::fs::read_dir(dir.join("output"))
        .map_err(|e| RiftError::io(dir.join("output"), e))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("predictions") {
            let text = std::fs::read_to_string(entry.path()).map_err(|e| RiftError::io(entry.path(), e))?;
            for line in text.lines() {
                if let Ok(p) = serde_json::from_str::<Prediction>(line) {
                    preds.push(p);
                }
            }
        }
    }
    let (pre_game, preds): (Vec<Prediction>, Vec<Prediction>) = preds
        .into_iter()
        .partition(|p| p.kind == crate::events::PredictionKind::PreGame);
    println!(
        "\npredictions: {} live and {} pre-game predictions in {}/output/predictions*.jsonl",
        preds.len(),
        pre_game.len(),
        dir.display()
    );
    let winners: HashMap<&str, (Team, f64)> = outcomes.iter().map(|(m, w, p)| (m.as_str(), (*w, *p))).collect();
    let (mut pre_correct, mut pre_scored) = (0, 0);
    for p in &pre_game {
        if let Some((w, _)) = winners.get(p.match_id.as_str()) {
            pre_scored += 1;
            pre_correct += ((p.blue_win_probability > 0.5) == (*w == Team::Blue)) as usize;
        }
    }
    for p in pre_game.iter().take(2) {
        println!(
            "  {} before the game: P(blue wins) = {:.3}  ({} {}, {:.1} ms)",
            p.match_id, p.blue_win_probability, p.model_name, p.model_version, p.latency_ms
        );
    }
    // The last prediction at or before minute 10 of each live game, vs its result.
    let mut at10: HashMap<String, &Prediction> = HashMap::new();
    for p in &preds {
        if p.game_minute.unwrap_or(99) <= 10 {
            let e = at10.entry(p.match_id.clone()).or_insert(p);
            if p.event_time >= e.event_time {
                *e = p;
            }
        }
    }
    let mut correct = 0;
    let mut sim_correct = 0;
    for (m, p) in &at10 {
        if let Some((w, sim_p)) = winners.get(m.as_str()) {
            correct += ((p.blue_win_probability > 0.5) == (*w == Team::Blue)) as usize;
            sim_correct += ((*sim_p > 0.5) == (*w == Team::Blue)) as usize;
        }
    }
    let mut shown: Vec<&str> = Vec::new();
    for p in preds.iter().filter(|p| p.game_minute == Some(10)) {
        if shown.len() == 3 {
            break;
        }
        if shown.contains(&p.match_id.as_str()) {
            continue;
        }
        shown.push(&p.match_id);
        println!(
            "  {} minute {:>2}: P(blue wins) = {:.3}  (gold diff {:+.0}, kills diff {:+.0}; {} {}, {:.1} ms)",
            p.match_id,
            p.game_minute.unwrap_or(0),
            p.blue_win_probability,
            p.features.get("gold_diff").copied().unwrap_or(0.0),
            p.features.get("kills_diff").copied().unwrap_or(0.0),
            p.model_name,
            p.model_version,
            p.latency_ms
        );
    }
    let m = &model.metadata.metrics;
    println!(
        "\nlive model {} {}: accuracy {:.3}, log loss {:.3} on held-out real Diamond games (validation split)",
        model.name, model.version, m.accuracy, m.log_loss
    );
    if !at10.is_empty() {
        println!(
            "on this demo's {} simulated live games at minute 10: accuracy {:.3} (simulator's own pre-game probability: {:.3})",
            at10.len(),
            correct as f64 / at10.len() as f64,
            sim_correct as f64 / at10.len() as f64
        );
    }
    if pre_scored > 0 {
        println!(
            "pre-game model {} {} on the same games: accuracy {:.3} (validation on history: {:.3})",
            pre_game_model.name,
            pre_game_model.version,
            pre_correct as f64 / pre_scored as f64,
            pre_game_model.metadata.metrics.accuracy
        );
    }
    let _ = Prediction::TOPIC;
    let _ = <crate::events::Match as Event>::TOPIC;
    Ok(())
}
