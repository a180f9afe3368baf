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

pub use crate::config::GeneratorConfig;
