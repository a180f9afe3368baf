//! `esports.player_stats`: a ranked snapshot of a player, keyed by `player_id`.
//!
//! Event time is the snapshot's `time`. Validation checks the tier and
//! division names and that LP, wins and losses are not negative.

use super::{require_id, require_non_negative, require_plausible_time, Event, Topic};
use serde::{Deserialize, Serialize};

/// Ranked tiers, lowest first.
pub const TIERS: [&str; 10] = [
    "IRON",
    "BRONZE",
    "SILVER",
    "GOLD",
    "PLATINUM",
    "EMERALD",
    "DIAMOND",
    "MASTER",
    "GRANDMASTER",
    "CHALLENGER",
];

/// A player's ranked standing at a point in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerStats {
    /// Stable player id.
    pub player_id: String,
    /// Ranked tier, one of [`TIERS`].
    pub tier: String,
    /// Division within the tier: `I`..`IV` (`I` for apex tiers).
    pub rank: String,
    /// League points.
    pub league_points: i32,
    /// Ranked wins this season.
    pub wins: i32,
    /// Ranked losses this season.
    pub losses: i32,
    /// When the snapshot was taken, UTC ms: the event time.
    pub time: i64,
}

impl Event for PlayerStats {
    const TOPIC: Topic = Topic::PlayerStats;

    fn key(&self) -> &str {
        &self.player_id
    }

    fn event_time(&self) -> i64 {
        self.time
    }

    fn game_mode(&self) -> &str {
        "ranked_solo"
    }

    fn business_key(&self) -> String {
        format!("{}@{}", self.player_id, self.time)
    }

    fn validate(&self, now_ms: i64) -> Result<(), String> {
        require_id("player_id", &self.player_id)?;
        if !TIERS.contains(&self.tier.as_str()) {
            return Err(format!("unknown tier `{}`; expected one of {TIERS:?}", self.tier));
        }
        if !["I", "II", "III", "IV"].contains(&self.rank.as_str()) {
            return Err(format!("unknown rank `{}`; expected I, II, III or IV", self.rank));
        }
        require_non_negative("league_points", self.league_points as i64)?;
        require_non_negative("wins", self.wins as i64)?;
        require_non_negative("losses", self.losses as i64)?;
        require_plausible_time("time", self.time, now_ms)
    }
}
