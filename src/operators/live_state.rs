//! Running state of live matches, from their game events.
//!
//! # Semantics
//! Events are routed by `match_id`; a match's events come from one source
//! partition, so they arrive in their partition's order. Each event updates
//! the match's per-team totals — kills, deaths, assists, wards, first blood,
//! dragons, heralds, barons and towers from events; gold, xp, level, cs and
//! jungle cs from the latest per-minute frame (by game time) — and emits a
//! [`LiveUpdate`]: the state right after the event, which the scoring
//! operator turns into a prediction. The totals are exactly the per-team
//! statistics of the 10-minute training data ([`TeamTotals`]), so the live
//! model sees in-game the features it was trained on.
//!
//! # State
//! One entry per match in progress; dropped at `game_end`. Events with a
//! `seq` the match has already applied (replays, duplicates) are ignored.

use crate::codec::Arrived;
use crate::events::{Building, GameEvent, GameEventKind, Monster, Team};
use crate::features::stable_hash;
use crate::model::TeamTotals;
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

/// A match's state right after one of its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveUpdate {
    /// The match.
    pub match_id: String,
    /// Event time of the event, UTC ms.
    pub event_time: i64,
    /// In-game minute of the event.
    pub game_minute: i32,
    /// Blue's totals.
    pub blue: TeamTotals,
    /// Red's totals.
    pub red: TeamTotals,
    /// Barons taken (blue, red): tracked, not a feature of the 10-minute model.
    pub barons: (u32, u32),
    /// When the triggering record was read, µs since the epoch.
    pub received_at_us: i64,
    /// Set on the match's last event (`game_end`): the winner.
    pub winner: Option<Team>,
}

#[derive(Debug, Default, Clone)]
struct MatchState {
    blue: TeamTotals,
    red: TeamTotals,
    barons: (u32, u32),
    frame_time: i64,
    applied: hashbrown::HashSet<i64>,
}

impl MatchState {
    fn team(&mut self, team: Team) -> &mut TeamTotals {
        match team {
            Team::Blue => &mut self.blue,
            Team::Red => &mut self.red,
        }
    }

    fn apply(&mut self, e: &GameEvent) {
        match (e.kind, e.team) {
            (GameEventKind::ChampionKill, Some(t)) => {
                let killer = self.team(t);
                killer.kills += 1;
                killer.assists += e.assists.unwrap_or(0).max(0) as u32;
                self.team(t.opponent()).deaths += 1;
            }
            (GameEventKind::FirstBlood, Some(t)) => self.team(t).first_blood = true,
            (GameEventKind::WardPlaced, Some(t)) => self.team(t).wards_placed += 1,
            (GameEventKind::WardKilled, Some(t)) => self.team(t).wards_destroyed += 1,
            (GameEventKind::BuildingKill, Some(t)) if e.building == Some(Building::Tower) => {
                self.team(t).towers += 1
            }
            (GameEventKind::EliteMonsterKill, Some(t)) => match e.monster {
                Some(Monster::Dragon) => self.team(t).dragons += 1,
                Some(Monster::Herald) => self.team(t).heralds += 1,
                Some(Monster::Baron) => match t {
                    Team::Blue => self.barons.0 += 1,
                    Team::Red => self.barons.1 += 1,
                },
                None => {}
            },
            (GameEventKind::Frame, _) if e.game_time_ms >= self.frame_time => {
                self.frame_time = e.game_time_ms;
                for (totals, frame) in [(&mut self.blue, e.blue), (&mut self.red, e.red)] {
                    if let Some(f) = frame {
                        totals.total_gold = f.total_gold.max(0) as u64;
                        totals.total_xp = f.total_xp.max(0) as u64;
                        totals.avg_level = f.avg_level as f32;
                        totals.total_cs = f.total_cs.max(0) as u32;
                        totals.total_jungle_cs = f.total_jungle_cs.max(0) as u32;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Maintains live match state.
pub trait LiveMatchState<'s> {
    /// One [`LiveUpdate`] per (new) game event.
    fn live_match_state(self) -> StreamVec<'s, u64, LiveUpdate>;
}

impl<'s> LiveMatchState<'s> for StreamVec<'s, u64, Arrived<GameEvent>> {
    fn live_match_state(self) -> StreamVec<'s, u64, LiveUpdate> {
        self.unary::<CapacityContainerBuilder<Vec<LiveUpdate>>, _, _, _>(
            Exchange::new(|a: &Arrived<GameEvent>| stable_hash(a.event.match_id.as_bytes())),
            "LiveMatchState",
            |_cap, _info| {
                let mut matches: HashMap<String, MatchState> = HashMap::new();
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let mut session = output.session(&cap);
                        for batch in data {
                            for a in batch.drain(..) {
                                let e = &a.event;
                                let state = matches.entry(e.match_id.clone()).or_default();
                                if !state.applied.insert(e.seq) {
                                    continue;
                                }
                                state.apply(e);
                                let winner = (e.kind == GameEventKind::GameEnd)
                                    .then_some(e.team)
                                    .flatten();
                                session.give(LiveUpdate {
                                    match_id: e.match_id.clone(),
                                    event_time: e.event_time,
                                    game_minute: e.game_minute(),
                                    blue: state.blue,
                                    red: state.red,
                                    barons: state.barons,
                                    received_at_us: a.received_at_us,
                                    winner,
                                });
                                if e.kind == GameEventKind::GameEnd {
                                    matches.remove(&e.match_id);
                                }
                            }
                        }
                    });
                }
            },
        )
    }
}
