//! The gold layer, kept up to date incrementally with differential dataflow.
//!
//! From the deduplicated silver matches (each at its dataflow stamp):
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
//! Each is a differential collection (`reduce`, `count`, `join`): a match
//! arriving late updates exactly the rows it affects, with retractions of
//! the old values, and the snapshot writer rewrites the affected days.

use super::tables::LakeRow;
use super::{date_of, Lake};
use crate::error::Result;
use crate::events::Match;
use crate::operators::snapshot::{write_snapshots, GoldRow, SnapshotMode};
use crate::runtime::JobHealth;
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::{ProbeHandle, StreamVec};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A ranked leaderboard entry: (rank, rating ×1e6, player, games, wins).
type Ranked = (i64, i64, String, i64, i64);

fn day_start(end_time: i64) -> i64 {
    end_time.div_euclid(DAY_MS) * DAY_MS
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Turns a stream into differential updates at each record's stamp.
fn as_updates<'s, D: timely::ExchangeData + Clone>(stream: StreamVec<'s, u64, D>) -> VecCollection<'s, u64, D, isize> {
    stream
        .unary::<CapacityContainerBuilder<Vec<(D, u64, isize)>>, _, _, _>(Pipeline, "AsUpdates", |_cap, _info| {
            move |input, output| {
                input.for_each_stamp(|cap, data| {
                    let t = cap.least().copied().unwrap_or(0);
                    let mut session = output.session(&cap);
                    for batch in data {
                        session.give_iterator(batch.drain(..).map(|d| (d, t, 1isize)));
                    }
                });
            }
        })
        .as_collection()
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
    #[serde(skip_serializing)]
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
    #[serde(skip_serializing)]
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

/// Builds the gold tables from deduplicated matches and writes their snapshots.
pub fn build_gold<'s>(matches: StreamVec<'s, u64, Match>, lake: Lake, health: JobHealth, committed: ProbeHandle<u64>) {
    let matches = as_updates(matches);

    // Champion statistics: one reduce per (day, patch, champion) over picks (0 loss, 1 win) and bans (2).
    let champion_events = matches.clone().flat_map(|m: Match| {
        let day = day_start(m.end_time);
        let mut out: Vec<((i64, String, String), u8)> = m
            .participants
            .iter()
            .map(|p| ((day, m.patch.clone(), p.champion.clone()), p.win as u8))
            .collect();
        out.extend(m.bans.iter().map(|b| ((day, m.patch.clone(), b.clone()), 2u8)));
        out
    });
    let per_champion = champion_events.reduce(|_key, input, output: &mut Vec<((i64, i64, i64), isize)>| {
        let (mut games, mut wins, mut bans) = (0i64, 0i64, 0i64);
        for (kind, count) in input {
            let n = *count as i64;
            match **kind {
                0 => games += n,
                1 => {
                    games += n;
                    wins += n
                }
                _ => bans += n,
            }
        }
        output.push(((games, wins, bans), 1));
    });
    let matches_per_patch_day = matches.clone().map(|m: Match| (day_start(m.end_time), m.patch)).count();
    let champion_rows = per_champion
        .map(|((day, patch, champion), (games, wins, bans))| ((day, patch), (champion, games, wins, bans)))
        .join(matches_per_patch_day)
        .map(
            |((day, patch), ((champion, games, wins, bans), matches))| ChampionStatsRow {
                day,
                patch,
                champion,
                games,
                wins,
                bans,
                matches: matches as i64,
                win_rate_ppm: if games == 0 { 0 } else { wins * 1_000_000 / games },
            },
        );
    write_snapshots(
        champion_rows.inner,
        lake.clone(),
        SnapshotMode::ByDate,
        health.clone(),
        committed.clone(),
    );

    // Player daily statistics.
    let player_lines = matches.clone().flat_map(|m: Match| {
        let day = day_start(m.end_time);
        m.participants
            .into_iter()
            .map(move |p| {
                (
                    (day, p.player_id),
                    [1i64, p.win as i64, p.kills as i64, p.deaths as i64, p.assists as i64],
                )
            })
            .collect::<Vec<_>>()
    });
    let player_rows = player_lines
        .reduce(|_key, input, output: &mut Vec<([i64; 5], isize)>| {
            let mut totals = [0i64; 5];
            for (line, count) in input {
                for (t, v) in totals.iter_mut().zip(line.iter()) {
                    *t += v * *count as i64;
                }
            }
            output.push((totals, 1));
        })
        .map(|((day, player_id), totals)| PlayerDailyRow { day, player_id, totals });
    write_snapshots(
        player_rows.inner,
        lake.clone(),
        SnapshotMode::ByDate,
        health.clone(),
        committed.clone(),
    );

    // Leaderboard over all history: per-player totals, then the top 100 by rating.
    let per_player = matches
        .flat_map(|m: Match| {
            m.participants
                .into_iter()
                .map(|p| (p.player_id, p.win as u8))
                .collect::<Vec<_>>()
        })
        .reduce(|_player, input, output: &mut Vec<((i64, i64), isize)>| {
            let (mut games, mut wins) = (0i64, 0i64);
            for (win, count) in input {
                games += *count as i64;
                wins += **win as i64 * *count as i64;
            }
            output.push(((games, wins), 1));
        });
    let leaderboard = per_player
        .filter(|(_, (games, _))| *games >= 5)
        .map(|(player, (games, wins))| ((), ((wins + 5) * 1_000_000 / (games + 10), player, games, wins)))
        .reduce(|_unit, input, output: &mut Vec<(Ranked, isize)>| {
            // `input` is sorted ascending by (rating, player): take the best 100.
            for (rank, (entry, _count)) in input.iter().rev().take(100).enumerate() {
                let (rating, player, games, wins) = (*entry).clone();
                output.push(((rank as i64 + 1, rating, player, games, wins), 1));
            }
        })
        .map(|((), (rank, rating_ppm, player_id, games, wins))| LeaderboardRow {
            day: 0,
            rank,
            player_id,
            rating_ppm,
            games,
            wins,
        });
    write_snapshots(leaderboard.inner, lake, SnapshotMode::Daily, health, committed);
}
