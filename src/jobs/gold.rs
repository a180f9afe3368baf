//! The gold dataflow: the lake's gold tables kept up to date incrementally
//! with differential dataflow, from the deduplicated silver matches (each at
//! its dataflow stamp).
//!
//! ```text
//! matches ─► as updates ─┬─► (day, patch, champion) reduce ─┐
//!                        ├─► (day, patch) count ────────────┴─ join ─► gold/champion_stats
//!                        ├─► (day, player) reduce ────────────────────► gold/player_daily
//!                        └─► player reduce ─► top 100 reduce ─────────► gold/leaderboard
//! ```
//!
//! Each is a differential collection (`reduce`, `count`, `join`): a match
//! arriving late updates exactly the rows it affects, with retractions of
//! the old values, and the snapshot operator rewrites the affected days. The
//! row types and their table layouts are in `lake::gold`.

use crate::events::Match;
use crate::lake::gold::{ChampionStatsRow, LeaderboardRow, PlayerDailyRow};
use crate::lake::Lake;
use crate::operators::snapshot::{write_snapshots, SnapshotMode};
use crate::util::time::{message_time, time};
use crate::util::{JobHealth, Time};
use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::{ProbeHandle, StreamVec};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// The epoch every gold update is moved to. Gold is not part of
/// checkpoints (it is rebuilt from its logged input after a restart), and
/// in one epoch its times are totally ordered, which lets differential
/// dataflow compact each key's history as it goes: updates of interleaved
/// epochs would leave times no frontier can merge, and the reductions would
/// replay ever longer histories.
pub const GOLD_EPOCH: u64 = u64::MAX - 1;

/// Gold updates are moved to the last millisecond of their stamp's hour.
/// Gold tables are written when a day closes (and rewritten when late data
/// changes a closed day), so nothing finer is ever observed; but every
/// distinct time makes the reductions recompute their changed keys, and the
/// leaderboard's top 100 is one key over every player. An hour divides a
/// day, so an update stays in its stamp's day and every day's snapshot is
/// the same; a late update reaches a closed day within the hour.
pub const GOLD_GRANULARITY_MS: u64 = 3_600_000;

/// The last millisecond of the hour `stamp` is in (see [`GOLD_GRANULARITY_MS`]).
fn gold_time(stamp: u64) -> u64 {
    (stamp / GOLD_GRANULARITY_MS)
        .saturating_mul(GOLD_GRANULARITY_MS)
        .saturating_add(GOLD_GRANULARITY_MS - 1)
        .max(stamp)
}

/// A ranked leaderboard entry: (rank, rating ×1e6, player, games, wins).
type Ranked = (i64, i64, String, i64, i64);

fn day_start(end_time: i64) -> i64 {
    end_time.div_euclid(DAY_MS) * DAY_MS
}

/// Turns a stream into differential updates at each record's stamp.
fn as_updates<'s, D: timely::ExchangeData + Clone>(
    stream: StreamVec<'s, Time, D>,
) -> VecCollection<'s, Time, D, isize> {
    stream
        .unary::<CapacityContainerBuilder<Vec<(D, Time, isize)>>, _, _, _>(Pipeline, "AsUpdates", |_cap, _info| {
            move |input, output| {
                input.for_each_stamp(|cap, data| {
                    let Some(t) = message_time(cap.stamp().iter()) else {
                        return;
                    };
                    // All in one epoch: totally ordered times keep differential's
                    // reductions compact (see `GOLD_EPOCH`); and few of them (see `GOLD_GRANULARITY_MS`).
                    let t = time(GOLD_EPOCH, gold_time(t.inner));
                    let held = cap.delayed(&t, 0);
                    let mut session = output.session(&held);
                    for batch in data {
                        session.give_iterator(batch.drain(..).map(|d| (d, t, 1isize)));
                    }
                });
            }
        })
        .as_collection()
}

/// Builds the gold tables from deduplicated matches and writes their snapshots.
pub fn build_gold<'s>(
    matches: StreamVec<'s, Time, Match>,
    lake: Lake,
    health: JobHealth,
    committed: ProbeHandle<Time>,
) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gold_times_move_forward_within_their_hour_and_day() {
        for stamp in [
            0,
            1,
            3_599_999,
            3_600_000,
            1_767_225_599_999,
            1_767_225_600_000,
            u64::MAX,
        ] {
            let t = gold_time(stamp);
            assert!(t >= stamp, "{stamp}");
            assert_eq!(
                t / GOLD_GRANULARITY_MS,
                stamp / GOLD_GRANULARITY_MS,
                "{stamp}: same hour"
            );
            assert_eq!(t / DAY_MS as u64, stamp / DAY_MS as u64, "{stamp}: same day");
        }
        assert_eq!(gold_time(3_600_000), 7_199_999);
    }
}
