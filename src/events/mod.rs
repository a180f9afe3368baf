//! Typed events, one module per topic of SPEC's topic table.
//!
//! Every input type implements [`Event`]: its topic, its key (the Kafka
//! message key), its *event time* (UTC milliseconds, the time windows are
//! computed on) and [`Event::validate`], which rejects values a decoder
//! accepts but a job must not see (negative counts, wrong team sizes, missing
//! ids, timestamps absurdly far from now). A rejected record is never dropped:
//! the source turns the rejection into a dead-letter record with the reason.
//!
//! The same types are encoded as JSON lines and as Avro (`schemas/*.avsc`):
//! field names and shapes are identical in both.

pub mod dlq;
pub mod game_events;
pub mod matches;
pub mod model_updates;
pub mod outcomes;
pub mod player_stats;
pub mod prediction_requests;
pub mod predictions;
pub mod raw;

pub use dlq::DeadLetter;
pub use game_events::{Building, GameEvent, GameEventKind, Monster, TeamFrame};
pub use matches::{Match, Participant};
pub use model_updates::ModelUpdate;
pub use outcomes::ModelOutcome;
pub use player_stats::PlayerStats;
pub use prediction_requests::{LineupSlot, PredictionRequest};
pub use predictions::{Prediction, PredictionKind};
pub use raw::{Arrived, BronzeRecord, RawRecord};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Earliest plausible event time: League of Legends' release, 2009-10-27 UTC.
pub const EARLIEST_EVENT_TIME_MS: i64 = 1_256_601_600_000;
/// How far past the wall clock an event time may lie before it is rejected.
pub const MAX_FUTURE_SKEW_MS: i64 = 24 * 3600 * 1000;

/// The topics of SPEC, with their Kafka names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// `esports.matches`: finished matches.
    Matches,
    /// `esports.player_stats`: ranked snapshots of players.
    PlayerStats,
    /// `esports.game_events`: in-game events and per-minute frames of live matches.
    GameEvents,
    /// `esports.prediction_requests`: pre-game lineups to score.
    PredictionRequests,
    /// `esports.predictions`: riftstream's output.
    Predictions,
    /// `esports.dlq`: records that could not be decoded or validated.
    Dlq,
    /// `esports.model_updates`: newly registered model versions.
    ModelUpdates,
}

impl Topic {
    /// Every topic, in SPEC's order.
    pub const ALL: [Topic; 7] = [
        Topic::Matches,
        Topic::PlayerStats,
        Topic::GameEvents,
        Topic::PredictionRequests,
        Topic::Predictions,
        Topic::Dlq,
        Topic::ModelUpdates,
    ];

    /// The default Kafka topic name.
    pub fn kafka_name(self) -> &'static str {
        match self {
            Topic::Matches => "esports.matches",
            Topic::PlayerStats => "esports.player_stats",
            Topic::GameEvents => "esports.game_events",
            Topic::PredictionRequests => "esports.prediction_requests",
            Topic::Predictions => "esports.predictions",
            Topic::Dlq => "esports.dlq",
            Topic::ModelUpdates => "esports.model_updates",
        }
    }

    /// The short name used for lake tables and files (`matches`, `game_events`, …).
    pub fn short_name(self) -> &'static str {
        match self {
            Topic::Matches => "matches",
            Topic::PlayerStats => "player_stats",
            Topic::GameEvents => "game_events",
            Topic::PredictionRequests => "prediction_requests",
            Topic::Predictions => "predictions",
            Topic::Dlq => "dlq",
            Topic::ModelUpdates => "model_updates",
        }
    }

    /// Parses a topic from its short or Kafka name.
    pub fn parse(name: &str) -> Option<Topic> {
        Topic::ALL
            .into_iter()
            .find(|t| t.short_name() == name || t.kafka_name() == name)
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kafka_name())
    }
}

/// A team: blue (the side that starts bottom-left) or red.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Team {
    /// The blue side.
    Blue,
    /// The red side.
    Red,
}

impl Team {
    /// The other team.
    pub fn opponent(self) -> Team {
        match self {
            Team::Blue => Team::Red,
            Team::Red => Team::Blue,
        }
    }

    /// `"blue"` or `"red"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Team::Blue => "blue",
            Team::Red => "red",
        }
    }
}

/// A position on the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Top lane.
    Top,
    /// Jungle.
    Jungle,
    /// Middle lane.
    Mid,
    /// Bottom lane carry.
    Bottom,
    /// Support.
    Support,
}

impl Role {
    /// The five roles in draft order.
    pub const ALL: [Role; 5] = [Role::Top, Role::Jungle, Role::Mid, Role::Bottom, Role::Support];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Top => "top",
            Role::Jungle => "jungle",
            Role::Mid => "mid",
            Role::Bottom => "bottom",
            Role::Support => "support",
        }
    }
}

/// A typed input record of one topic.
pub trait Event: Serialize + DeserializeOwned + Clone + Send + Sync + std::fmt::Debug + 'static {
    /// The topic this type belongs to.
    const TOPIC: Topic;

    /// The message key (`match_id` or `player_id`).
    fn key(&self) -> &str;

    /// Event time in UTC milliseconds.
    fn event_time(&self) -> i64;

    /// The game mode / queue, used to partition the silver table.
    fn game_mode(&self) -> &str;

    /// The business key silver deduplicates on (defaults to the message key).
    fn business_key(&self) -> String {
        self.key().to_string()
    }

    /// Checks values that decoding alone accepts. `now_ms` is the wall clock.
    fn validate(&self, now_ms: i64) -> Result<(), String>;
}

/// Rejects an empty or whitespace-only identifier.
pub(crate) fn require_id(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("missing {field}"))
    } else {
        Ok(())
    }
}

/// Rejects a negative count.
pub(crate) fn require_non_negative(field: &str, value: i64) -> Result<(), String> {
    if value < 0 {
        Err(format!("{field} is negative ({value})"))
    } else {
        Ok(())
    }
}

/// Rejects a timestamp before League of Legends existed or more than a day ahead of `now_ms`.
pub(crate) fn require_plausible_time(field: &str, value: i64, now_ms: i64) -> Result<(), String> {
    if value < EARLIEST_EVENT_TIME_MS {
        return Err(format!(
            "{field} {value} is before 2009-10-27 (League of Legends' release); expected UTC milliseconds"
        ));
    }
    if value > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(format!(
            "{field} {value} is more than a day in the future (now is {now_ms})"
        ));
    }
    Ok(())
}
