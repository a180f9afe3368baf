//! `esports.model_updates`: a model version was registered, keyed by model name.
//! Workers that serve the model hot-reload the version it names.

use serde::{Deserialize, Serialize};

/// A newly registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
