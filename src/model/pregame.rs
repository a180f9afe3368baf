//! The pre-game model's features: one definition for training and scoring.
//!
//! A lineup is ten players, each with the features the offline store held
//! for them as of the match's start (see `lake::offline`), some of them
//! unknown (a new player). [`pregame_features`] turns a lineup into model
//! inputs: for every player feature `f`, `diff_f` = the blue team's mean
//! minus the red team's mean over the players whose `f` is known (0 when a
//! team knows none), plus `blue_known` and `red_known`, the share of each
//! team's players with any history. A feature named `known_{set}` is 1 for
//! a player with a vector in that feature set and counts as 0 when absent,
//! so its team mean is the share of players with such history (for a set
//! keyed by player and champion: how many play a champion they practised).
//! Differences keep the model symmetric in the two sides; the shares let it
//! trust thin histories less.
//!
//! [`load_pregame_table`] reads the training table `riftstream features
//! export` writes (one row per match and participant) into a [`Dataset`]
//! with the blue side's win as the label, and, for generated matches, the
//! simulator's own win probability: the best any model could do.

use super::{Dataset, ModelError, Result};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use std::collections::BTreeMap;
use std::path::Path;

/// Columns of the training table that are not player features.
const NOT_FEATURES: &[&str] = &[
    "match_id",
    "as_of",
    "player_id",
    "team",
    "role",
    "champion",
    "win",
    "simulated_blue_win_probability",
];

/// Model input names for player features `features` (in that order).
pub fn pregame_feature_names(features: &[String]) -> Vec<String> {
    let mut names: Vec<String> = features.iter().map(|f| format!("diff_{f}")).collect();
    names.push("blue_known".into());
    names.push("red_known".into());
    names
}

/// The player features a pre-game model expects (its inputs without `diff_` and the shares).
pub fn player_features_of(model_inputs: &[String]) -> Option<Vec<String>> {
    let n = model_inputs.len();
    if n < 2 || model_inputs[n - 2] != "blue_known" || model_inputs[n - 1] != "red_known" {
        return None;
    }
    model_inputs[..n - 2]
        .iter()
        .map(|f| f.strip_prefix("diff_").map(String::from))
        .collect()
}

/// Model inputs for a lineup: `blue` and `red` hold each player's known
/// features by name (`None`: no history), `features` the names to use.
pub fn pregame_features(
    features: &[String],
    blue: &[Option<&BTreeMap<String, f64>>],
    red: &[Option<&BTreeMap<String, f64>>],
) -> Vec<f32> {
    let mean = |team: &[Option<&BTreeMap<String, f64>>], f: &str| -> f64 {
        if f.starts_with("known_") {
            // Presence flags: absent counts as 0, the mean is a share of the team.
            let n = team.len().max(1) as f64;
            return team.iter().filter_map(|p| p.and_then(|m| m.get(f))).sum::<f64>() / n;
        }
        let known: Vec<f64> = team
            .iter()
            .filter_map(|p| p.and_then(|m| m.get(f)).copied())
            .filter(|v| v.is_finite())
            .collect();
        if known.is_empty() {
            0.0
        } else {
            known.iter().sum::<f64>() / known.len() as f64
        }
    };
    let share = |team: &[Option<&BTreeMap<String, f64>>]| -> f64 {
        if team.is_empty() {
            0.0
        } else {
            team.iter().filter(|p| p.is_some_and(|m| !m.is_empty())).count() as f64 / team.len() as f64
        }
    };
    let mut out: Vec<f32> = features.iter().map(|f| (mean(blue, f) - mean(red, f)) as f32).collect();
    out.push(share(blue) as f32);
    out.push(share(red) as f32);
    out
}

/// The pre-game training table as a data set, with the simulator's
/// probability per match where the matches were generated.
pub struct PregameData {
    /// Rows = matches, label = blue won.
    pub dataset: Dataset,
    /// Player features used, in input order.
    pub player_features: Vec<String>,
    /// The simulator's blue win probability per match (generated data only).
    pub simulated: Vec<Option<f64>>,
}

impl PregameData {
    /// Accuracy of the simulator's own probability (the best possible), if every match has one.
    pub fn simulator_accuracy(&self) -> Option<f64> {
        let n = self.simulated.len();
        if n == 0 {
            return None;
        }
        let mut correct = 0usize;
        for (i, p) in self.simulated.iter().enumerate() {
            let p = (*p)?;
            if (p >= 0.5) == (self.dataset.y[i] >= 0.5) {
                correct += 1;
            }
        }
        Some(correct as f64 / n as f64)
    }
}

struct PlayerRow {
    blue: bool,
    win: bool,
    simulated: Option<f64>,
    features: BTreeMap<String, f64>,
}

fn invalid(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::InvalidData(format!("{}: {}", path.display(), message.into()))
}

/// Reads a training table written by `riftstream features export`.
/// `features` picks the player features (default: every feature column).
pub fn load_pregame_table(path: &Path, features: Option<&[String]>) -> Result<PregameData> {
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| invalid(path, format!("not a Parquet training table: {e}")))?;
    let mut matches: BTreeMap<String, Vec<PlayerRow>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut columns: Option<Vec<String>> = None;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|e| invalid(path, e.to_string()))?;
        let schema = batch.schema();
        let feature_columns: Vec<String> = schema
            .fields()
            .iter()
            .filter(|f| {
                f.data_type() == &DataType::Float64
                    && !NOT_FEATURES.contains(&f.name().as_str())
                    && !f.name().ends_with("_window_end")
            })
            .map(|f| f.name().clone())
            .collect();
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| invalid(path, format!("no column `{name}`: not a `features export` table")))
        };
        let match_id = col("match_id")?
            .as_string_opt::<i32>()
            .ok_or_else(|| invalid(path, "match_id is not a string"))?;
        let team = col("team")?
            .as_string_opt::<i32>()
            .ok_or_else(|| invalid(path, "team is not a string"))?;
        let win = col("win")?
            .as_boolean_opt()
            .ok_or_else(|| invalid(path, "win is not a boolean"))?;
        // `{set}_window_end` tells whether the player had a vector in that set.
        let coverage: Vec<(String, &arrow::array::ArrayRef)> = schema
            .fields()
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let set = f.name().strip_suffix("_window_end")?;
                Some((format!("known_{set}"), batch.column(i)))
            })
            .collect();
        if columns.is_none() {
            columns = Some(
                feature_columns
                    .iter()
                    .cloned()
                    .chain(coverage.iter().map(|(n, _)| n.clone()))
                    .collect(),
            );
        }
        let simulated = batch
            .column_by_name("simulated_blue_win_probability")
            .and_then(|c| c.as_primitive_opt::<Float64Type>());
        let values: Vec<(&String, &arrow::array::Float64Array)> = feature_columns
            .iter()
            .filter_map(|n| {
                batch
                    .column_by_name(n)
                    .and_then(|c| c.as_primitive_opt::<Float64Type>())
                    .map(|a| (n, a))
            })
            .collect();
        for i in 0..batch.num_rows() {
            let id = match_id.value(i).to_string();
            let mut features = BTreeMap::new();
            for (name, array) in &values {
                if array.is_valid(i) {
                    features.insert((*name).clone(), array.value(i));
                }
            }
            for (name, array) in &coverage {
                if array.is_valid(i) {
                    features.insert(name.clone(), 1.0);
                }
            }
            let row = PlayerRow {
                blue: team.value(i) == "blue",
                win: win.value(i),
                simulated: simulated.and_then(|s| s.is_valid(i).then(|| s.value(i))),
                features,
            };
            let entry = matches.entry(id.clone()).or_insert_with(|| {
                order.push(id);
                Vec::new()
            });
            entry.push(row);
        }
    }
    let player_features: Vec<String> = match features {
        Some(f) => f.to_vec(),
        None => columns.unwrap_or_default(),
    };
    if player_features.is_empty() {
        return Err(invalid(path, "the table has no feature columns"));
    }
    let names = pregame_feature_names(&player_features);
    let mut x = Vec::with_capacity(order.len() * names.len());
    let mut y = Vec::with_capacity(order.len());
    let mut simulated = Vec::with_capacity(order.len());
    let mut ids = Vec::with_capacity(order.len());
    for id in order {
        let rows = &matches[&id];
        let Some(first_blue) = rows.iter().find(|r| r.blue) else {
            return Err(invalid(path, format!("match {id} has no blue player")));
        };
        let side = |blue: bool| -> Vec<Option<&BTreeMap<String, f64>>> {
            rows.iter()
                .filter(|r| r.blue == blue)
                .map(|r| (!r.features.is_empty()).then_some(&r.features))
                .collect()
        };
        x.extend(pregame_features(&player_features, &side(true), &side(false)));
        y.push(if first_blue.win { 1.0 } else { 0.0 });
        simulated.push(first_blue.simulated);
        ids.push(id);
    }
    Ok(PregameData {
        dataset: Dataset::new(names, x, y, ids)?,
        player_features,
        simulated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineup_features_are_team_mean_differences_over_known_players() {
        let a = BTreeMap::from([("wr".to_string(), 0.6)]);
        let b = BTreeMap::from([("wr".to_string(), 0.4)]);
        let c = BTreeMap::from([("wr".to_string(), 0.5)]);
        let f = vec!["wr".to_string()];
        let out = pregame_features(&f, &[Some(&a), Some(&b), None], &[Some(&c), None, None]);
        assert!((out[0] - 0.0).abs() < 1e-6, "{out:?}");
        assert!((out[1] - 2.0 / 3.0).abs() < 1e-6);
        assert!((out[2] - 1.0 / 3.0).abs() < 1e-6);
        let names = pregame_feature_names(&f);
        assert_eq!(names, vec!["diff_wr", "blue_known", "red_known"]);
        assert_eq!(player_features_of(&names), Some(f));
        assert_eq!(player_features_of(&["x".to_string()]), None);
    }
}
