//! `[sources.NAME.settings]` of a `generator` source: the simulator's settings.

use serde::{Deserialize, Serialize};

/// Simulation settings (also the `[sources.X.settings]` of a `generator` source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    /// RNG seed: the same seed gives the same data.
    pub seed: u64,
    /// Number of players in the population.
    pub players: usize,
    /// Finished matches of history.
    pub matches: usize,
    /// Live games, played after the history: requests, events and frames.
    pub live_games: usize,
    /// Whether live games also end in a finished match record.
    pub finish_live_games: bool,
    /// Days the history spans.
    pub days: u32,
    /// Start of the history, UTC ms (default 2026-01-01T00:00:00Z).
    pub start_ms: i64,
    /// Days between patches.
    pub patch_days: u32,
    /// Probability that a participant publishes a ranked snapshot after a match.
    pub player_stats_rate: f64,
    /// Maximum delivery delay, ms: records are emitted out of event-time order by up to this.
    pub jitter_ms: i64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 42,
            players: 2_000,
            matches: 5_000,
            live_games: 50,
            finish_live_games: false,
            days: 40,
            start_ms: 1_767_225_600_000,
            patch_days: 14,
            player_stats_rate: 0.1,
            jitter_ms: 0,
        }
    }
}
