//! `esports.model_updates`: a model version was registered, keyed by model name.
//! Workers that serve the model hot-reload the version it names.

use serde::{Deserialize, Serialize};

/// A newly registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelUpdate {
    /// Registered model name (`live`, `pre_game`).
    pub model_name: String,
    /// The new version (`v4`).
    pub version: String,
    /// Where the version lives (a registry path or URL).
    pub path: String,
    /// Model family: `logistic` or `mlp`.
    pub model_kind: String,
    /// When it was registered, UTC ms.
    pub created_at: i64,
}

impl super::Event for ModelUpdate {
    const TOPIC: super::Topic = super::Topic::ModelUpdates;

    fn key(&self) -> &str {
        &self.model_name
    }

    fn event_time(&self) -> i64 {
        self.created_at
    }

    fn game_mode(&self) -> &str {
        "models"
    }

    fn business_key(&self) -> String {
        format!("{}/{}", self.model_name, self.version)
    }

    fn validate(&self, now_ms: i64) -> Result<(), String> {
        super::require_id("model_name", &self.model_name)?;
        super::require_id("version", &self.version)?;
        super::require_plausible_time("created_at", self.created_at, now_ms)
    }
}
