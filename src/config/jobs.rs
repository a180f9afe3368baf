//! `[jobs.NAME]`: the dataflows a cluster runs, wired to sources, sinks and
//! feature sets by name.

use serde::Deserialize;
use std::time::Duration;

/// `[jobs.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobConfig {
    /// Bronze/silver/gold lake tables from raw topics.
    Lake {
        /// Sources to ingest.
        sources: Vec<String>,
        /// The lake sink.
        lake: String,
        /// Sink for dead letters.
        #[serde(default)]
        dlq: Option<String>,
    },
    /// Windowed player (and live team) features.
    PlayerFeatures {
        /// Feature sets to compute.
        feature_sets: Vec<String>,
        /// Online feature store sink (`redis` or `embedded`).
        #[serde(default)]
        online: Option<String>,
        /// Lake sink for the offline store and late events.
        #[serde(default)]
        offline: Option<String>,
        /// File sink for window results (one file per feature set).
        #[serde(default)]
        output: Option<String>,
        /// Sink for dead letters.
        #[serde(default)]
        dlq: Option<String>,
    },
    /// Pre-game and live win-probability predictions.
    Predictions {
        /// Source of game events (live predictions).
        #[serde(default)]
        live_source: Option<String>,
        /// Source of prediction requests (pre-game predictions).
        #[serde(default)]
        requests_source: Option<String>,
        /// Source of finished matches (features for pre-game, outcomes for accuracy).
        #[serde(default)]
        matches_source: Option<String>,
        /// Sinks for predictions (`kafka`, `file`, `lake`).
        outputs: Vec<String>,
        /// Sink for dead letters.
        #[serde(default)]
        dlq: Option<String>,
        /// Model registry directory (default: `models` under the first lake sink's root).
        #[serde(default)]
        registry: Option<String>,
        /// Registered name of the live model.
        #[serde(default = "default_live_model")]
        live_model: String,
        /// Registered name of the pre-game model.
        #[serde(default = "default_pre_game_model")]
        pre_game_model: String,
        /// Feature sets the pre-game model reads (computed in this job from
        /// their own sources, kept per player, joined with each request).
        #[serde(default)]
        pre_game_feature_sets: Vec<String>,
        /// How often workers look for a newer registered version (hot reload).
        #[serde(default = "default_model_poll", with = "humantime_serde")]
        model_poll_interval: Duration,
        /// Registered name of a challenger live model (champion/challenger).
        #[serde(default)]
        challenger_model: Option<String>,
        /// Share of matches, in `[0, 1]`, also scored by the challenger.
        #[serde(default)]
        challenger_share: f64,
    },
}

fn default_model_poll() -> Duration {
    Duration::from_secs(2)
}

fn default_live_model() -> String {
    "live".into()
}
fn default_pre_game_model() -> String {
    "pre_game".into()
}

impl JobConfig {
    /// The kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            JobConfig::Lake { .. } => "lake",
            JobConfig::PlayerFeatures { .. } => "player_features",
            JobConfig::Predictions { .. } => "predictions",
        }
    }
}
