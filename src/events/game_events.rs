//! `esports.game_events`: in-game events and per-minute team frames of live
//! matches, keyed by `match_id`.
//!
//! The record is flat (one shape for every kind, optional fields per kind) so
//! that it reads the same in JSON and Avro. Event time is `event_time` (wall
//! clock of the event); `seq` numbers a match's events from 0 and, with the
//! `match_id`, is the business key silver deduplicates on. Validation checks
//! that each kind carries the fields it needs.

use super::{require_id, require_non_negative, require_plausible_time, Event, Team, Topic};
use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GameEventKind {
    /// The match started (game time 0).
    GameStart,
    /// A champion was killed; `team` is the killer's team.
    ChampionKill,
    /// The first champion kill of the match; `team` drew it.
    FirstBlood,
    /// A ward was placed by `team`.
    WardPlaced,
    /// A ward was destroyed by `team`.
    WardKilled,
    /// `team` destroyed a `building`.
    BuildingKill,
    /// `team` killed an elite `monster`.
    EliteMonsterKill,
    /// A per-minute snapshot of both teams (`blue`, `red`).
    Frame,
    /// The match ended; `team` won.
    GameEnd,
}

/// Elite monsters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monster {
    /// A dragon (any element).
    Dragon,
    /// The Rift Herald.
    Herald,
    /// Baron Nashor.
    Baron,
}

/// Buildings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Building {
    /// A turret.
    Tower,
    /// An inhibitor.
    Inhibitor,
}

/// One team's totals in a per-minute frame.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TeamFrame {
    /// Total gold of the five players.
    pub total_gold: i64,
    /// Total experience.
    pub total_xp: i64,
    /// Average champion level.
    pub avg_level: f64,
    /// Minions killed.
    pub total_cs: i32,
    /// Jungle monsters killed.
    pub total_jungle_cs: i32,
}

/// One in-game event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameEvent {
    /// The live match.
    pub match_id: String,
    /// Sequence number of the event within its match, from 0.
    pub seq: i64,
    /// Wall-clock time of the event, UTC ms: the event time.
    pub event_time: i64,
    /// In-game clock, ms since the match started.
    pub game_time_ms: i64,
    /// Queue / game mode of the match.
    pub queue: String,
    /// What happened.
    pub kind: GameEventKind,
    /// The team credited with the event (killer, placer, winner).
    #[serde(default)]
    pub team: Option<Team>,
    /// The killing player, for kills.
    #[serde(default)]
    pub killer_id: Option<String>,
    /// The killed player, for kills.
    #[serde(default)]
    pub victim_id: Option<String>,
    /// Number of assisting players, for kills.
    #[serde(default)]
    pub assists: Option<i32>,
    /// The monster, for elite monster kills.
    #[serde(default)]
    pub monster: Option<Monster>,
    /// The building, for building kills.
    #[serde(default)]
    pub building: Option<Building>,
    /// Blue's totals, for frames.
    #[serde(default)]
    pub blue: Option<TeamFrame>,
    /// Red's totals, for frames.
    #[serde(default)]
    pub red: Option<TeamFrame>,
}

impl GameEvent {
    /// The in-game minute the event happened in (0-based).
    pub fn game_minute(&self) -> i32 {
        (self.game_time_ms / 60_000) as i32
    }
}

impl Event for GameEvent {
    const TOPIC: Topic = Topic::GameEvents;

    fn key(&self) -> &str {
        &self.match_id
    }

    fn event_time(&self) -> i64 {
        self.event_time
    }

    fn game_mode(&self) -> &str {
        &self.queue
    }

    fn business_key(&self) -> String {
        format!("{}#{}", self.match_id, self.seq)
    }

    fn validate(&self, now_ms: i64) -> Result<(), String> {
        require_id("match_id", &self.match_id)?;
        require_non_negative("seq", self.seq)?;
        require_non_negative("game_time_ms", self.game_time_ms)?;
        require_plausible_time("event_time", self.event_time, now_ms)?;
        let needs_team = !matches!(self.kind, GameEventKind::Frame | GameEventKind::GameStart);
        if needs_team && self.team.is_none() {
            return Err(format!("{:?} event without a team", self.kind));
        }
        match self.kind {
            GameEventKind::EliteMonsterKill if self.monster.is_none() => {
                Err("elite_monster_kill without a monster".into())
            }
            GameEventKind::BuildingKill if self.building.is_none() => Err("building_kill without a building".into()),
            GameEventKind::ChampionKill => {
                if let Some(a) = self.assists {
                    if !(0..=4).contains(&a) {
                        return Err(format!("assists is {a}; a kill has 0 to 4 assists"));
                    }
                }
                Ok(())
            }
            GameEventKind::Frame => {
                let (Some(blue), Some(red)) = (&self.blue, &self.red) else {
                    return Err("frame without both blue and red totals".into());
                };
                for (side, f) in [("blue", blue), ("red", red)] {
                    require_non_negative(&format!("{side}.total_gold"), f.total_gold)?;
                    require_non_negative(&format!("{side}.total_xp"), f.total_xp)?;
                    require_non_negative(&format!("{side}.total_cs"), f.total_cs as i64)?;
                    require_non_negative(&format!("{side}.total_jungle_cs"), f.total_jungle_cs as i64)?;
                    if !(0.0..=18.0).contains(&f.avg_level) {
                        return Err(format!("{side}.avg_level {} is not in [0, 18]", f.avg_level));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
