//! `esports.prediction_requests`: a pre-game lineup to score, keyed by `match_id`.
//!
//! Event time is `request_time`. Validation checks ten slots, five per team,
//! distinct players and named champions.

use super::{require_id, require_plausible_time, Event, Role, Team, Topic};
use serde::{Deserialize, Serialize};

/// A lineup whose outcome should be predicted before the match starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRequest {
    /// The upcoming match.
    pub match_id: String,
    /// When the request was made, UTC ms: the event time.
    pub request_time: i64,
    /// Queue / game mode.
    pub queue: String,
    /// Game patch.
    pub patch: String,
    /// The ten players.
    pub participants: Vec<LineupSlot>,
}

/// One player of a lineup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineupSlot {
    /// Stable player id.
    pub player_id: String,
    /// Team.
    pub team: Team,
    /// Position.
    pub role: Role,
    /// Champion picked.
    pub champion: String,
}

impl Event for PredictionRequest {
    const TOPIC: Topic = Topic::PredictionRequests;

    fn key(&self) -> &str {
        &self.match_id
    }

    fn event_time(&self) -> i64 {
        self.request_time
    }

    fn game_mode(&self) -> &str {
        &self.queue
    }

    fn validate(&self, now_ms: i64) -> Result<(), String> {
        require_id("match_id", &self.match_id)?;
        require_plausible_time("request_time", self.request_time, now_ms)?;
        if self.participants.len() != 10 {
            return Err(format!(
                "a lineup has 10 players, this one has {}",
                self.participants.len()
            ));
        }
        let blue = self.participants.iter().filter(|p| p.team == Team::Blue).count();
        if blue != 5 {
            return Err(format!("teams must have 5 players each, blue has {blue}"));
        }
        let mut ids: Vec<&str> = self.participants.iter().map(|p| p.player_id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err("a player appears twice in the lineup".into());
        }
        for (i, p) in self.participants.iter().enumerate() {
            require_id(&format!("participants[{i}].player_id"), &p.player_id)?;
            require_id(&format!("participants[{i}].champion"), &p.champion)?;
        }
        Ok(())
    }
}
