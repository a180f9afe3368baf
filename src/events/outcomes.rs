//! `gold/model_outcomes`: how a model variant did on an ended match.

/// How one model variant did on one ended match: all its live predictions
/// for the match judged against the winner (`gold/model_outcomes`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelOutcome {
    /// The match.
    pub match_id: String,
    /// `champion` or `challenger`.
    pub variant: String,
    /// Registered model name.
    pub model_name: String,
    /// Version that made the predictions.
    pub model_version: String,
    /// Event time of the match's end, UTC ms.
    pub ended_at: i64,
    /// Predictions made for the match.
    pub predictions: i64,
    /// Those on the winner's side (probability ≥ 0.5 for the winner).
    pub correct: i64,
    /// `correct / predictions`.
    pub accuracy: f64,
    /// Mean log loss of the predictions.
    pub log_loss: f64,
}
