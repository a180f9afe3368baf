//! `esports.matches`: a finished match, keyed by `match_id`.
//!
//! Event time is the match's end time. Validation checks ten participants,
//! five per team, distinct players, a winner consistent with every
//! participant's `win` flag and non-negative statistics.

use super::{require_id, require_non_negative, require_plausible_time, Event, Role, Team, Topic};
use serde::{Deserialize, Serialize};

/// A finished match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// Unique id, e.g. `EUW1_6843210`.
    pub match_id: String,
    /// Platform (`EUW1`, `KR`) or league (`WCS`) the match was played on.
    pub platform: String,
    /// Queue or game mode: `ranked_solo`, `ranked_flex`, `worlds`, …
    pub queue: String,
    /// Game patch, `14.3`.
    pub patch: String,
    /// Start of the match, UTC ms.
    pub start_time: i64,
    /// End of the match, UTC ms: the event time.
    pub end_time: i64,
    /// The team that won.
    pub winning_team: Team,
    /// The ten players.
    pub participants: Vec<Participant>,
    /// Banned champions, where known.
    #[serde(default)]
    pub bans: Vec<String>,
    /// The generator's own pre-game blue win probability (absent for real data):
    /// the best any model can do on simulated matches.
    #[serde(default)]
    pub simulated_blue_win_probability: Option<f64>,
}

/// One player's line in a finished match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// Stable player id.
    pub player_id: String,
    /// Display name.
    pub player_name: String,
    /// Team played on.
    pub team: Team,
    /// Position played.
    pub role: Role,
    /// Champion played.
    pub champion: String,
    /// Champion kills.
    pub kills: i32,
    /// Deaths.
    pub deaths: i32,
    /// Assists.
    pub assists: i32,
    /// Gold earned.
    pub gold: i64,
    /// Creep score (minions and monsters killed).
    pub cs: i32,
    /// Vision score.
    pub vision_score: i32,
    /// Damage dealt to champions.
    pub damage: i64,
    /// Whether this player's team won.
    pub win: bool,
}

impl Match {
    /// Match length in seconds.
    pub fn duration_s(&self) -> i64 {
        (self.end_time - self.start_time) / 1000
    }

    /// The participants of one team.
    pub fn team(&self, team: Team) -> impl Iterator<Item = &Participant> {
        self.participants.iter().filter(move |p| p.team == team)
    }
}

impl Event for Match {
    const TOPIC: Topic = Topic::Matches;

    fn key(&self) -> &str {
        &self.match_id
    }

    fn event_time(&self) -> i64 {
        self.end_time
    }

    fn game_mode(&self) -> &str {
        &self.queue
    }

    fn validate(&self, now_ms: i64) -> Result<(), String> {
        require_id("match_id", &self.match_id)?;
        require_id("patch", &self.patch)?;
        require_id("queue", &self.queue)?;
        require_plausible_time("start_time", self.start_time, now_ms)?;
        require_plausible_time("end_time", self.end_time, now_ms)?;
        let duration = self.end_time - self.start_time;
        if !(60_000..=6 * 3600 * 1000).contains(&duration) {
            return Err(format!(
                "end_time - start_time is {duration} ms; a match lasts between 1 minute and 6 hours"
            ));
        }
        if self.participants.len() != 10 {
            return Err(format!(
                "a match has 10 participants, this one has {}",
                self.participants.len()
            ));
        }
        let blue = self.team(Team::Blue).count();
        if blue != 5 {
            return Err(format!("teams must have 5 players each, blue has {blue}"));
        }
        let mut ids: Vec<&str> = self.participants.iter().map(|p| p.player_id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err("a player appears twice in the match".into());
        }
        for (i, p) in self.participants.iter().enumerate() {
            require_id(&format!("participants[{i}].player_id"), &p.player_id)?;
            require_id(&format!("participants[{i}].champion"), &p.champion)?;
            for (field, value) in [
                ("kills", p.kills as i64),
                ("deaths", p.deaths as i64),
                ("assists", p.assists as i64),
                ("gold", p.gold),
                ("cs", p.cs as i64),
                ("vision_score", p.vision_score as i64),
                ("damage", p.damage),
            ] {
                require_non_negative(&format!("participants[{i}].{field}"), value)?;
            }
            if p.win != (p.team == self.winning_team) {
                return Err(format!(
                    "participants[{i}].win is {} but winning_team is {}",
                    p.win,
                    self.winning_team.as_str()
                ));
            }
        }
        if let Some(p) = self.simulated_blue_win_probability {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("simulated_blue_win_probability {p} is not in [0, 1]"));
            }
        }
        Ok(())
    }
}
