//! Running state of live matches, from their game events.
//!
//! # Semantics
//! Events are routed by `match_id` and applied in `seq` order per match: an
//! event that arrives ahead of a missing predecessor (sources that do not
//! partition by match, replays) waits until the gap is filled, or until the
//! watermark passes its stamp, so a lost event never stalls a match. In the
//! usual case — a match's events in one Kafka partition — nothing waits and
//! every event is scored as it arrives. Each event updates
//! the match's per-team totals — kills, deaths, assists, wards, first blood,
//! dragons, heralds, barons and towers from events; gold, xp, level, cs and
//! jungle cs from the latest per-minute frame (by game time) — and emits a
//! [`LiveUpdate`]: the state right after the event, which the scoring
//! operator turns into a prediction. The totals are exactly the per-team
//! statistics of the 10-minute training data ([`TeamTotals`]), so the live
//! model sees in-game the features it was trained on.
//!
//! # State
//! One entry per match in progress. At `game_end` it shrinks to a
//! tombstone, so a replay of an ended match's events is ignored instead of
//! starting the match over; tombstones are purged once the watermark is
//! [`TOMBSTONE_RETENTION_MS`] past the end. Events with a `seq` the match
//! has already applied (replays, duplicates) are ignored.
//!
//! # Checkpoints
//! Matches (with their waiting events and tombstones) are checkpointed per
//! match: at the end of each epoch the matches it changed are staged in the
//! job's state ([`KeyedState`]), and restored on the worker their key group
//! routes to. Events still waiting when their epoch ends move on to the
//! next one (they are in the checkpoint as state), so a stalled watermark
//! never holds a checkpoint back.

use crate::events::Arrived;
use crate::events::{Building, GameEvent, GameEventKind, Monster, Team};
use crate::model::TeamTotals;
use crate::operators::epoch_gate::EpochGate;
use crate::state::{KeyedState, OperatorState};
use crate::util::time::{epoch_frontier, message_time, time, watermark};
use crate::util::{JobHealth, Time};
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, CapabilitySet};
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
    /// Updates of the match so far, this one included (on `game_end`: all of them).
    pub updates: u64,
}

/// How long (event time) an ended match's tombstone outlives its `game_end`.
pub const TOMBSTONE_RETENTION_MS: i64 = 6 * 3600 * 1000;

/// Section of the checkpoint state holding matches.
const MATCHES: &[u8] = b"m";

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct MatchState {
    /// `game_end` was applied: only a tombstone is left.
    ended: bool,
    /// Event time of `game_end` (for purging the tombstone).
    ended_at: i64,
    blue: TeamTotals,
    red: TeamTotals,
    barons: (u32, u32),
    frame_time: i64,
    applied: HashSet<i64>,
    /// The next `seq` expected in order.
    next_seq: i64,
    /// Updates emitted for the match.
    updates: u64,
    /// Events that arrived ahead of a missing predecessor: seq -> (stamp, event).
    waiting: BTreeMap<i64, (u64, Arrived<GameEvent>)>,
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
            (GameEventKind::BuildingKill, Some(t)) if e.building == Some(Building::Tower) => self.team(t).towers += 1,
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
    /// One [`LiveUpdate`] per (new) game event; matches are checkpointed in `state`.
    fn live_match_state(self, state: OperatorState, health: JobHealth) -> StreamVec<'s, Time, LiveUpdate>;
}

/// Applies one event to its match and returns the update to score (`None`
/// for a duplicate). Removes the match at `game_end`.
fn apply_event(matches: &mut HashMap<String, MatchState>, a: Arrived<GameEvent>) -> Option<LiveUpdate> {
    let e = &a.event;
    let state = matches.entry(e.match_id.clone()).or_default();
    if state.ended || !state.applied.insert(e.seq) {
        return None;
    }
    state.apply(e);
    state.updates += 1;
    if e.seq >= state.next_seq {
        state.next_seq = e.seq + 1;
    }
    let winner = (e.kind == GameEventKind::GameEnd).then_some(e.team).flatten();
    let update = LiveUpdate {
        match_id: e.match_id.clone(),
        event_time: e.event_time,
        game_minute: e.game_minute(),
        blue: state.blue,
        red: state.red,
        barons: state.barons,
        received_at_us: a.received_at_us,
        winner,
        updates: state.updates,
    };
    if e.kind == GameEventKind::GameEnd {
        // Events still waiting can only be replays past the end: dropped with the state.
        *state = MatchState {
            ended: true,
            ended_at: e.event_time,
            ..Default::default()
        };
    }
    Some(update)
}

/// Applies a batch of admitted events stamped at `cap`'s time: in-order
/// events update their match (their updates go to `ready`), events ahead of
/// a missing predecessor wait.
fn apply_batch(
    matches: &mut HashMap<String, MatchState>,
    waiting: &mut BTreeMap<(u64, String), Capability<Time>>,
    ready: &mut Vec<LiveUpdate>,
    checkpoint: &mut KeyedState<MatchState>,
    cap: &Capability<Time>,
    events: Vec<Arrived<GameEvent>>,
) {
    let t = cap.time().inner;
    for a in events {
        let id = a.event.match_id.clone();
        checkpoint.touch(&id);
        let state = matches.entry(id.clone()).or_default();
        if state.ended {
            continue; // a replay of an ended match
        }
        if a.event.seq > state.next_seq && !state.applied.contains(&a.event.seq) {
            state.waiting.insert(a.event.seq, (t, a));
            waiting.entry((t, id)).or_insert_with(|| cap.clone());
            continue;
        }
        ready.extend(apply_event(matches, a));
        drain_in_order(matches, &id, ready);
    }
}

/// Records the matches that `updates` ended (their tombstones' times).
fn note_ended(updates: &[LiveUpdate], ended: &mut BTreeSet<(i64, String)>) {
    for u in updates.iter().filter(|u| u.winner.is_some()) {
        ended.insert((u.event_time, u.match_id.clone()));
    }
}

/// Applies the waiting events of `match_id` that are now in order.
fn drain_in_order(matches: &mut HashMap<String, MatchState>, match_id: &str, out: &mut Vec<LiveUpdate>) {
    loop {
        let Some(state) = matches.get_mut(match_id) else {
            return;
        };
        let next = state.next_seq;
        let Some((_, a)) = state.waiting.remove(&next) else {
            return;
        };
        out.extend(apply_event(matches, a));
    }
}

impl<'s> LiveMatchState<'s> for StreamVec<'s, Time, Arrived<GameEvent>> {
    fn live_match_state(self, state: OperatorState, health: JobHealth) -> StreamVec<'s, Time, LiveUpdate> {
        let (worker, peers) = (self.scope().index(), self.scope().peers());
        self.unary_frontier::<CapacityContainerBuilder<Vec<LiveUpdate>>, _, _, _>(
            Exchange::new(|a: &Arrived<GameEvent>| KeyedState::<MatchState>::route(&a.event.match_id)),
            "LiveMatchState",
            move |cap, _info| {
                let mut matches: HashMap<String, MatchState> = HashMap::new();
                // Events waiting for a missing predecessor, by (stamp, match), each
                // with a capability for its time (in the admitted epoch).
                let mut waiting: BTreeMap<(u64, String), Capability<Time>> = BTreeMap::new();
                let mut ready: Vec<LiveUpdate> = Vec::new();
                // (game_end event time, match) of tombstones, for purging.
                let mut ended: BTreeSet<(i64, String)> = BTreeSet::new();
                let mut checkpoint: KeyedState<MatchState> = KeyedState::new(state, MATCHES);
                let first = checkpoint.first_epoch();
                match checkpoint.restore(worker, peers) {
                    Ok(restored) => {
                        for (id, m) in restored {
                            if m.ended {
                                ended.insert((m.ended_at, id.clone()));
                            }
                            for (stamp, _) in m.waiting.values() {
                                waiting
                                    .entry((*stamp, id.clone()))
                                    .or_insert_with(|| cap.delayed(&time(first, *stamp)));
                            }
                            matches.insert(id, m);
                        }
                    }
                    Err(e) => health.report("live match state", e),
                }
                let mut gate: EpochGate<(Capability<Time>, Vec<Arrived<GameEvent>>)> = EpochGate::starting_at(first);
                // At (admitted epoch, effective watermark): the output passes an
                // epoch only once the operator is done with it.
                let mut hold = CapabilitySet::from_elem(cap);
                move |(input, frontier), output| {
                    input.for_each_stamp(|stamp, data| {
                        let Some(at) = message_time(stamp.stamp().iter()) else {
                            return;
                        };
                        let mut events = Vec::new();
                        for batch in data {
                            events.append(batch);
                        }
                        let cap = stamp.delayed(&at, output.output_index());
                        if let Some((cap, events)) = gate.offer(at, (cap, events)) {
                            apply_batch(&mut matches, &mut waiting, &mut ready, &mut checkpoint, &cap, events);
                            if !ready.is_empty() {
                                note_ended(&ready, &mut ended);
                                output.session(&cap).give_iterator(ready.drain(..));
                            }
                        }
                    });
                    let f = frontier.frontier();
                    let (wm, epochs) = (watermark(f), epoch_frontier(f));
                    loop {
                        let limit = gate.watermark(wm).unwrap_or(u64::MAX);
                        // Release waiting events whose stamp the watermark has passed: their gap will not fill.
                        while let Some(((t, id), cap)) = waiting.first_key_value().map(|(k, c)| (k.clone(), c.clone()))
                        {
                            if t >= limit {
                                break;
                            }
                            waiting.pop_first();
                            checkpoint.touch(&id);
                            if let Some(state) = matches.get_mut(&id) {
                                let due: Vec<i64> = state
                                    .waiting
                                    .iter()
                                    .filter(|(_, (s, _))| *s <= t)
                                    .map(|(q, _)| *q)
                                    .collect();
                                for q in due {
                                    if let Some(state) = matches.get_mut(&id) {
                                        if let Some((_, a)) = state.waiting.remove(&q) {
                                            ready.extend(apply_event(&mut matches, a));
                                            drain_in_order(&mut matches, &id, &mut ready);
                                        }
                                    }
                                }
                                if matches
                                    .get(&id)
                                    .is_some_and(|s| !s.ended && s.waiting.is_empty() && s.applied.is_empty())
                                {
                                    matches.remove(&id);
                                }
                            }
                            if !ready.is_empty() {
                                note_ended(&ready, &mut ended);
                                output.session(&cap).give_iterator(ready.drain(..));
                            }
                        }
                        match gate.next_boundary(epochs) {
                            Some((completed, released)) => {
                                if let Some(n) = completed {
                                    if let Err(e) = checkpoint.stage(n, |id| matches.get(id)) {
                                        health.report("live match state", e);
                                    }
                                }
                                // Waiting events move on to the admitted epoch.
                                if let Some(a) = gate.admitted().filter(|a| *a < u64::MAX) {
                                    for ((stamp, _), c) in waiting.iter_mut() {
                                        if c.time().outer < a {
                                            *c = c.delayed(&time(a, *stamp));
                                        }
                                    }
                                }
                                for (_, (cap, events)) in released {
                                    apply_batch(&mut matches, &mut waiting, &mut ready, &mut checkpoint, &cap, events);
                                    if !ready.is_empty() {
                                        note_ended(&ready, &mut ended);
                                        output.session(&cap).give_iterator(ready.drain(..));
                                    }
                                }
                            }
                            None => break,
                        }
                    }
                    // Purge tombstones the watermark has left far behind.
                    if let Some(w) = gate.watermark(wm).map(|w| w as i64) {
                        while let Some((t, _)) = ended.first() {
                            if t.saturating_add(TOMBSTONE_RETENTION_MS) >= w {
                                break;
                            }
                            if let Some((_, id)) = ended.pop_first() {
                                if matches.get(&id).is_some_and(|s| s.ended) {
                                    matches.remove(&id);
                                    checkpoint.touch(&id);
                                }
                            }
                        }
                    }
                    match (gate.admitted(), gate.watermark(wm)) {
                        (Some(e), Some(w)) if e < u64::MAX => hold.downgrade([time(e, w)]),
                        _ if wm.is_none() && gate.is_empty() => hold = CapabilitySet::new(),
                        _ => {}
                    }
                }
            },
        )
    }
}
