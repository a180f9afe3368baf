//! A deterministic simulator of ranked League of Legends play.
//!
//! A population of players, each with a hidden skill, a main role, a champion
//! pool and an activity level, is matched ten at a time (players of similar
//! skill, two per role, split into blue and red). Champion strength changes
//! with the patch. Every match is simulated minute by minute:
//!
//! * its *pre-game* blue win probability `p = Φ(g)` comes from the skill and
//!   champion difference (`g` is a probit); this is the simulator's own
//!   probability, exposed on every match as `simulated_blue_win_probability`,
//!   the best any pre-game model can do;
//! * a hidden lead `S(m)` accumulates Gaussian swings each minute; blue wins iff
//!   `g + S(30) + η > 0`, so the outcome's marginal probability stays `p`;
//! * kills, wards, dragons, heralds, towers, gold, xp, cs and levels are drawn
//!   each minute with intensities tilted by the current swing, so the state at
//!   minute 10 predicts the result about as well as in the real Diamond
//!   10-minute dataset.
//!
//! The output is the four input topics: finished matches, player ranked
//! snapshots, and for *live* games (the last ones, played after the history)
//! a prediction request, every in-game event and a frame per minute.
//! Everything is a pure function of [`GeneratorConfig`]: the same seed gives
//! byte-identical output, and nothing reads the wall clock.

mod champions;
mod population;
mod replay;
mod rows;
mod simulate;

pub use champions::CHAMPIONS;
pub use population::{Player, Population};
pub use replay::{oracles_elixir_matches, ten_minute_games};
pub use rows::{player_rows, PlayerRow, RowsConfig};
pub use simulate::{simulate, Simulation};

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
