//! `esports.predictions`: riftstream's output, keyed by `match_id`.
//!
//! One record per scored request (`pre_game`) or live update (`live`), with
//! the model that scored it, the features it saw, and the latency from the
//! input record's arrival to the prediction's emission.

use super::Topic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which model family produced a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionKind {
    /// Before the match, from the ten players' features.
    PreGame,
    /// During the match, from its running state.
    Live,
}

impl PredictionKind {
    /// `pre_game` or `live`.
    pub fn as_str(self) -> &'static str {
        match self {
            PredictionKind::PreGame => "pre_game",
            PredictionKind::Live => "live",
        }
    }
}

/// A win-probability prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The match scored.
    pub match_id: String,
    /// Pre-game or live.
    pub kind: PredictionKind,
    /// Event time of the input that triggered the prediction, UTC ms.
    pub event_time: i64,
    /// In-game minute, for live predictions.
    #[serde(default)]
    pub game_minute: Option<i32>,
    /// Probability that blue wins, in (0, 1).
    pub blue_win_probability: f64,
    /// Registered model name.
    pub model_name: String,
    /// Registered model version (`v3`).
    pub model_version: String,
    /// `champion` for the serving model, `challenger` for a shadow model.
    #[serde(default = "default_variant")]
    pub variant: String,
    /// The feature values the model saw, by name.
    pub features: BTreeMap<String, f64>,
    /// Milliseconds from the input record's arrival to this prediction's emission.
    pub latency_ms: f64,
}

fn default_variant() -> String {
    "champion".to_string()
}

impl Prediction {
    /// The topic predictions are written to.
    pub const TOPIC: Topic = Topic::Predictions;
}
