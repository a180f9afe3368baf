//! The gold tables: their rows and Parquet layouts.
//!
//! * `gold/champion_stats` (`metric_type=patch_day`): per day, patch and
//!   champion — games, wins, win rate, bans, and pick and ban rates over the
//!   day's matches on that patch;
//! * `gold/player_daily` (`metric_type=daily`): per day and player — games,
//!   wins, kills, deaths, assists, win rate, KDA;
//! * `gold/leaderboard` (`metric_type=top100`): the 100 best players over all
//!   history by a shrunk win rate, `(wins + 5) / (games + 10)` (at least 5
//!   games), as of each day's close.
//!
//! The dataflow that keeps them up to date incrementally is `jobs::gold`.

use super::date_of;
use super::tables::{GoldRow, LakeRow};
use crate::error::Result;
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

macro_rules! schema {
    ($($f:expr),* $(,)?) => {{
        static S: OnceLock<SchemaRef> = OnceLock::new();
        S.get_or_init(|| Arc::new(Schema::new(vec![$($f),*]))).clone()
    }};
}

fn int(n: &str) -> Field {
    Field::new(n, DataType::Int64, false)
}
fn float(n: &str) -> Field {
    Field::new(n, DataType::Float64, false)
}
fn text(n: &str) -> Field {
    Field::new(n, DataType::Utf8, false)
}

/// A row of `gold/champion_stats`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChampionStatsRow {
    /// Day start, UTC ms (partition `date`).
    pub day: i64,
    /// Patch.
    pub patch: String,
    /// Champion.
    pub champion: String,
    /// Games played.
    pub games: i64,
    /// Games won.
    pub wins: i64,
    /// Times banned.
    pub bans: i64,
    /// Matches that day on that patch.
    pub matches: i64,
    /// wins / games, ×1e6 (kept integral so rows compare exactly).
    pub win_rate_ppm: i64,
}

#[derive(Serialize)]
struct ChampionStatsOut<'a> {
    patch: &'a str,
    champion: &'a str,
    games: i64,
    wins: i64,
    win_rate: f64,
    pick_rate: f64,
    bans: i64,
    ban_rate: f64,
    matches: i64,
}

impl LakeRow for ChampionStatsRow {
    fn table(&self) -> String {
        "gold/champion_stats".into()
    }
    fn partition(&self) -> String {
        format!("date={}/metric_type=patch_day", date_of(self.day))
    }
    fn schema() -> SchemaRef {
        schema!(
            text("patch"),
            text("champion"),
            int("games"),
            int("wins"),
            float("win_rate"),
            float("pick_rate"),
            int("bans"),
            float("ban_rate"),
            int("matches")
        )
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        let out: Vec<ChampionStatsOut> = rows
            .iter()
            .map(|r| ChampionStatsOut {
                patch: &r.patch,
                champion: &r.champion,
                games: r.games,
                wins: r.wins,
                win_rate: ratio(r.wins, r.games),
                pick_rate: ratio(r.games, r.matches),
                bans: r.bans,
                ban_rate: ratio(r.bans, r.matches),
                matches: r.matches,
            })
            .collect();
        super::tables::serde_batch(Self::schema(), &out)
    }
}

impl GoldRow for ChampionStatsRow {
    fn day_start(&self) -> i64 {
        self.day
    }
    fn on_day(&self, day_start: i64) -> Self {
        ChampionStatsRow {
            day: day_start,
            ..self.clone()
        }
    }
}

/// A row of `gold/player_daily`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlayerDailyRow {
    /// Day start, UTC ms.
    pub day: i64,
    /// Player.
    pub player_id: String,
    /// Games, wins, kills, deaths, assists.
    pub totals: [i64; 5],
}

#[derive(Serialize)]
struct PlayerDailyOut<'a> {
    player_id: &'a str,
    games: i64,
    wins: i64,
    kills: i64,
    deaths: i64,
    assists: i64,
    win_rate: f64,
    kda: f64,
}

impl LakeRow for PlayerDailyRow {
    fn table(&self) -> String {
        "gold/player_daily".into()
    }
    fn partition(&self) -> String {
        format!("date={}/metric_type=daily", date_of(self.day))
    }
    fn schema() -> SchemaRef {
        schema!(
            text("player_id"),
            int("games"),
            int("wins"),
            int("kills"),
            int("deaths"),
            int("assists"),
            float("win_rate"),
            float("kda")
        )
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        let out: Vec<PlayerDailyOut> = rows
            .iter()
            .map(|r| {
                let [games, wins, kills, deaths, assists] = r.totals;
                PlayerDailyOut {
                    player_id: &r.player_id,
                    games,
                    wins,
                    kills,
                    deaths,
                    assists,
                    win_rate: ratio(wins, games),
                    kda: (kills + assists) as f64 / deaths.max(1) as f64,
                }
            })
            .collect();
        super::tables::serde_batch(Self::schema(), &out)
    }
}

impl GoldRow for PlayerDailyRow {
    fn day_start(&self) -> i64 {
        self.day
    }
    fn on_day(&self, day_start: i64) -> Self {
        PlayerDailyRow {
            day: day_start,
            ..self.clone()
        }
    }
}

/// A row of `gold/leaderboard`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeaderboardRow {
    /// The day closed when this snapshot was taken.
    pub day: i64,
    /// 1 = best.
    pub rank: i64,
    /// Player.
    pub player_id: String,
    /// Shrunk win rate ×1e6.
    pub rating_ppm: i64,
    /// Games over all history.
    pub games: i64,
    /// Wins over all history.
    pub wins: i64,
}

#[derive(Serialize)]
struct LeaderboardOut<'a> {
    rank: i64,
    player_id: &'a str,
    rating: f64,
    games: i64,
    wins: i64,
}

impl LakeRow for LeaderboardRow {
    fn table(&self) -> String {
        "gold/leaderboard".into()
    }
    fn partition(&self) -> String {
        format!("date={}/metric_type=top100", date_of(self.day))
    }
    fn schema() -> SchemaRef {
        schema!(
            int("rank"),
            text("player_id"),
            float("rating"),
            int("games"),
            int("wins")
        )
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        let out: Vec<LeaderboardOut> = rows
            .iter()
            .map(|r| LeaderboardOut {
                rank: r.rank,
                player_id: &r.player_id,
                rating: r.rating_ppm as f64 / 1e6,
                games: r.games,
                wins: r.wins,
            })
            .collect();
        super::tables::serde_batch(Self::schema(), &out)
    }
}

impl GoldRow for LeaderboardRow {
    fn day_start(&self) -> i64 {
        self.day
    }
    fn on_day(&self, day_start: i64) -> Self {
        LeaderboardRow {
            day: day_start,
            ..self.clone()
        }
    }
}
