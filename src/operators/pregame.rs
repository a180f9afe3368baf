//! Pre-game scoring in the dataflow: prediction requests joined with the
//! current features of their ten players, scored by the pre-game model.
//!
//! ```text
//! feature windows ──────────────► exchange by (set, entity) ─► FeatureLookup ─► answers ─► exchange by request ─► ScorePreGame ─► predictions
//! requests ─► one lookup per (slot, set) ─► exchange by (set, entity) ─┘                              requests ─┘
//! ```
//!
//! # Time
//! `FeatureLookup` keeps, per feature set and entity, the vectors of its
//! latest fired windows. A lookup is answered once the feature results'
//! frontier has passed both its stamp and the request time (every window
//! ending by the request time has fired and arrived), with the latest
//! vector whose `window_end` is at or
//! before the request time, at its highest revision: the same rule as the
//! offline store's point-in-time export, so a model trained on the export
//! sees in the stream the features it was trained on, never later ones.
//!
//! # State
//! Per (set, entity) the last [`KEPT_WINDOWS`] vectors (a sliding window
//! fires one per slide); per worker the requests waiting for answers, and
//! the requests scored in the last [`SCORED_RETENTION_MS`] of request time,
//! so a replayed request is dropped rather than scored twice. Entities are
//! not evicted (one small map entry per player or player+champion seen).
//!
//! # Checkpoints
//! The kept vectors and the scored requests are checkpointed per key at the
//! end of each epoch ([`KeyedState`]) and restored on the worker their key
//! group routes to. Lookups and requests hold their own epoch until they
//! are answered and scored, so a checkpoint holds none in flight (the
//! flip side: a checkpoint waits for the features' watermark to pass the
//! requests of its epoch).
//!
//! # Failure
//! A scoring failure is reported to the job's health (the job fails, the
//! requests are not silently dropped). Every request whose ten players were
//! looked up is scored, with or without history (unknown players count as
//! such in the model's inputs). Until a first pre-game model is registered,
//! each such request is answered on the dead-letter path instead (stage
//! `score`, reason `no model: …`) and counts as answered; scoring starts with
//! the first version (hot reload), with no restart.

use super::score::ModelSlot;
use crate::events::{Arrived, DeadLetter};
use crate::events::{Prediction, PredictionKind, PredictionRequest, Team};
use crate::features::{FeatureSpec, WindowResult};
use crate::lake::offline::lineup_entity_id;
use crate::metrics::ModelMetrics;
use crate::model::pregame::{player_features_of, pregame_features};
use crate::operators::epoch_gate::EpochGate;
use crate::state::{KeyedState, OperatorState};
use crate::util::now_us;
use crate::util::time::{epoch_frontier, message_time, time, watermark};
use crate::util::JobHealth;
use crate::util::Time;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Map, Partition};
use timely::dataflow::operators::{Capability, CapabilitySet};
use timely::dataflow::StreamVec;

/// Vectors kept per (feature set, entity).
pub const KEPT_WINDOWS: usize = 64;

/// How long (request time) a scored request is remembered, so a replay of it is dropped.
pub const SCORED_RETENTION_MS: i64 = 6 * 3600 * 1000;

/// One feature set's vector for one slot of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lookup {
    /// Feature set index.
    pub set: usize,
    /// The slot's id as that set's entity.
    pub entity_id: String,
    /// The request's match.
    pub match_id: String,
    /// The request time, UTC ms.
    pub request_time: i64,
    /// Slot in the lineup.
    pub slot: u8,
}

/// The answer to a [`Lookup`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The request's match.
    pub match_id: String,
    /// The request time, UTC ms.
    pub request_time: i64,
    /// Slot in the lineup.
    pub slot: u8,
    /// Feature set index.
    pub set: usize,
    /// The vector (aggregates then features), if the entity had a closed window.
    pub values: Option<Vec<Option<f64>>>,
}

/// One entity's fired windows of one set: window end -> (revision, values).
type Windows = BTreeMap<i64, (u32, Vec<Option<f64>>)>;

/// Sections of the operators' checkpoint state.
const VECTORS: &[u8] = b"v";
const SCORED: &[u8] = b"s";

/// The state key of a (set, entity): entity ids may hold the key separator.
fn vector_key(set: usize, entity: &str) -> String {
    format!("{set}\u{1}{entity}")
}

fn parse_vector_key(key: &str) -> Option<(usize, &str)> {
    let (set, entity) = key.split_once('\u{1}')?;
    Some((set.parse().ok()?, entity))
}

fn route(set: usize, key: &str) -> u64 {
    KeyedState::<Windows>::route(&vector_key(set, key))
}

/// The state key of a request: its match and time.
fn request_key(match_id: &str, request_time: i64) -> String {
    format!("{match_id}\u{1}{request_time}")
}

fn parse_request_key(key: &str) -> Option<(&str, i64)> {
    let (match_id, time) = key.rsplit_once('\u{1}')?;
    Some((match_id, time.parse().ok()?))
}

fn request_route(match_id: &str, request_time: i64) -> u64 {
    KeyedState::<()>::route(&request_key(match_id, request_time))
}

/// Lookups by (due stamp, epoch), each group with a capability for its own time.
type PendingLookups = BTreeMap<(u64, u64), (Capability<Time>, Vec<Lookup>)>;

/// What the feature lookup takes in: window results, or lookups (with a
/// capability for their time).
enum LookupInput {
    Results(Vec<WindowResult>),
    Lookups(Capability<Time>, Vec<Lookup>),
}

/// What pre-game scoring takes in: answers, or requests (with a capability
/// for their time).
enum ScoreInput {
    Answers(Vec<Answer>),
    Requests(Capability<Time>, Vec<Arrived<PredictionRequest>>),
}

/// How pre-game requests are scored.
pub struct PreGameScoring {
    /// The feature sets looked up, indexed like the window results.
    pub sets: Vec<Arc<FeatureSpec>>,
    /// The entity type of each set (`player`, `champion`, `player+champion`, …).
    pub entities: Vec<String>,
    /// The pre-game model.
    pub model: ModelSlot,
    /// Where predictions are counted.
    pub metrics: ModelMetrics,
    /// Where the lookup's vectors are checkpointed.
    pub lookup_state: OperatorState,
    /// Where the scored requests are checkpointed.
    pub scored_state: OperatorState,
    /// The requests' source (named by dead letters).
    pub source: String,
}

/// What pre-game scoring emits.
pub struct PreGameScored<'s> {
    /// One prediction per request.
    pub predictions: StreamVec<'s, Time, Prediction>,
    /// Requests complete before any pre-game model was registered, with the reason [`NO_MODEL`](super::score::NO_MODEL).
    pub dead_letters: StreamVec<'s, Time, DeadLetter>,
}

#[derive(Clone, Serialize, Deserialize)]
enum PreGameOut {
    Prediction(Prediction),
    Unscored(DeadLetter),
}

/// Pre-game predictions for `requests`, from the feature `results` of `scoring.sets`.
pub fn pre_game_predictions<'s>(
    results: StreamVec<'s, Time, WindowResult>,
    requests: StreamVec<'s, Time, Arrived<PredictionRequest>>,
    scoring: PreGameScoring,
    health: JobHealth,
) -> PreGameScored<'s> {
    let entities = scoring.entities.clone();
    let scoring_entities = entities.len();
    let (worker, peers) = (results.scope().index(), results.scope().peers());
    let PreGameScoring {
        sets,
        entities: _,
        mut model,
        metrics,
        lookup_state,
        scored_state,
        source,
    } = scoring;
    let lookup_health = health.clone();
    let lookups = requests.clone().flat_map(move |a| {
        let r = a.event;
        let mut out = Vec::with_capacity(r.participants.len() * entities.len());
        for (slot, p) in r.participants.iter().enumerate() {
            for (set, entity) in entities.iter().enumerate() {
                if let Some(entity_id) =
                    lineup_entity_id(entity, &p.player_id, &p.champion, p.role.as_str(), p.team.as_str())
                {
                    out.push(Lookup {
                        set,
                        entity_id,
                        match_id: r.match_id.clone(),
                        request_time: r.request_time,
                        slot: slot as u8,
                    });
                }
            }
        }
        out
    });
    let answers = results.binary_frontier::<_, CapacityContainerBuilder<Vec<Answer>>, _, _, _, _>(
        lookups,
        Exchange::new(|r: &WindowResult| route(r.set, &r.key)),
        Exchange::new(|l: &Lookup| route(l.set, &l.entity_id)),
        "FeatureLookup",
        move |cap, _info| {
            let health = lookup_health;
            // (set, entity) -> window end -> (revision, values)
            let mut vectors: HashMap<(usize, String), Windows> = HashMap::new();
            let mut checkpoint: KeyedState<Windows> = KeyedState::new(lookup_state, VECTORS);
            match checkpoint.restore(worker, peers) {
                Ok(restored) => {
                    for (key, windows) in restored {
                        if let Some((set, entity)) = parse_vector_key(&key) {
                            vectors.insert((set, entity.to_string()), windows);
                        }
                    }
                }
                Err(e) => health.report("feature lookup", e),
            }
            // Lookups by (due stamp, epoch), each with a capability for its own time.
            let mut pending: PendingLookups = BTreeMap::new();
            let mut gate: EpochGate<LookupInput> = EpochGate::starting_at(checkpoint.first_epoch());
            let mut hold = CapabilitySet::from_elem(cap);
            move |(results, results_frontier), (lookups, lookups_frontier), output| {
                let admit = |item: LookupInput,
                             vectors: &mut HashMap<(usize, String), Windows>,
                             pending: &mut PendingLookups,
                             checkpoint: &mut KeyedState<Windows>| {
                    match item {
                        LookupInput::Results(data) => {
                            for r in data {
                                checkpoint.touch(&vector_key(r.set, &r.key));
                                let windows = vectors.entry((r.set, r.key)).or_default();
                                let keep = windows.get(&r.end).is_none_or(|(rev, _)| *rev <= r.revision);
                                if keep {
                                    windows.insert(r.end, (r.revision, r.values));
                                }
                                while windows.len() > KEPT_WINDOWS {
                                    windows.pop_first();
                                }
                            }
                        }
                        LookupInput::Lookups(cap, data) => {
                            let at = *cap.time();
                            for l in data {
                                // Due once the features' watermark has passed the request time itself
                                // (not only its stamp), so every window ending by then has fired.
                                let due = at.inner.max(l.request_time.max(0) as u64);
                                pending
                                    .entry((due, at.outer))
                                    .or_insert_with(|| (cap.delayed(&time(at.outer, due)), Vec::new()))
                                    .1
                                    .push(l);
                            }
                        }
                    }
                };
                results.for_each_stamp(|stamp, data| {
                    let Some(at) = message_time(stamp.stamp().iter()) else {
                        return;
                    };
                    let mut batch = Vec::new();
                    for d in data {
                        batch.append(d);
                    }
                    if let Some(item) = gate.offer(at, LookupInput::Results(batch)) {
                        admit(item, &mut vectors, &mut pending, &mut checkpoint);
                    }
                });
                lookups.for_each_stamp(|stamp, data| {
                    let Some(at) = message_time(stamp.stamp().iter()) else {
                        return;
                    };
                    let mut batch = Vec::new();
                    for d in data {
                        batch.append(d);
                    }
                    let cap = stamp.delayed(&at, output.output_index());
                    if let Some(item) = gate.offer(at, LookupInput::Lookups(cap, batch)) {
                        admit(item, &mut vectors, &mut pending, &mut checkpoint);
                    }
                });
                let (rf, lf) = (results_frontier.frontier(), lookups_frontier.frontier());
                let wm = watermark(rf);
                let epochs = match (epoch_frontier(rf), epoch_frontier(lf)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let lookups_wm = watermark(lf);
                loop {
                    let limit = gate.watermark(wm).unwrap_or(u64::MAX);
                    while let Some(entry) = pending.first_entry() {
                        if entry.key().0 >= limit {
                            break;
                        }
                        let (cap, lookups) = entry.remove();
                        let mut session = output.session(&cap);
                        for l in lookups {
                            let values = vectors
                                .get(&(l.set, l.entity_id))
                                .and_then(|w| w.range(..=l.request_time).next_back())
                                .map(|(_, (_, v))| v.clone());
                            session.give(Answer {
                                match_id: l.match_id,
                                request_time: l.request_time,
                                slot: l.slot,
                                set: l.set,
                                values,
                            });
                        }
                    }
                    match gate.next_boundary(epochs) {
                        Some((completed, released)) => {
                            if let Some(n) = completed {
                                let staged = checkpoint.stage(n, |key| {
                                    parse_vector_key(key)
                                        .and_then(|(set, entity)| vectors.get(&(set, entity.to_string())))
                                });
                                if let Err(e) = staged {
                                    health.report("feature lookup", e);
                                }
                            }
                            for (_, item) in released {
                                admit(item, &mut vectors, &mut pending, &mut checkpoint);
                            }
                        }
                        None => break,
                    }
                }
                let least = match (gate.watermark(wm), lookups_wm) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                match (gate.admitted(), least) {
                    (Some(e), Some(w)) if e < u64::MAX => hold.downgrade([time(e, w)]),
                    _ if epochs.is_none() && gate.is_empty() => hold = CapabilitySet::new(),
                    _ => {}
                }
            }
        },
    );
    let expected_per_slot = scoring_entities;
    let scored = answers.binary_frontier::<_, CapacityContainerBuilder<Vec<PreGameOut>>, _, _, _, _>(
        requests,
        Exchange::new(|a: &Answer| request_route(&a.match_id, a.request_time)),
        Exchange::new(|a: &Arrived<PredictionRequest>| request_route(&a.event.match_id, a.event.request_time)),
        "ScorePreGame",
        move |cap, _info| {
            struct Waiting {
                request: Option<(Capability<Time>, Arrived<PredictionRequest>)>,
                /// By (slot, set): a replayed request's duplicate answers count once.
                answers: BTreeMap<(u8, usize), Answer>,
            }
            let mut waiting: HashMap<(String, i64), Waiting> = HashMap::new();
            // Requests already scored, by request time: replays are dropped, not scored again.
            let mut scored_keys: std::collections::HashSet<(String, i64)> = std::collections::HashSet::new();
            let mut scored_order: std::collections::BTreeSet<(i64, String)> = std::collections::BTreeSet::new();
            // One entry per scored request; the key says which.
            let mut checkpoint: KeyedState<()> = KeyedState::new(scored_state, SCORED);
            match checkpoint.restore(worker, peers) {
                Ok(restored) => {
                    for (key, ()) in restored {
                        if let Some((match_id, time)) = parse_request_key(&key) {
                            scored_order.insert((time, match_id.to_string()));
                            scored_keys.insert((match_id.to_string(), time));
                        }
                    }
                }
                Err(e) => health.report("score_pre_game", e),
            }
            let mut gate: EpochGate<ScoreInput> = EpochGate::starting_at(checkpoint.first_epoch());
            let mut hold = CapabilitySet::from_elem(cap);
            move |(answers, answers_frontier), (requests, requests_frontier), output| {
                let admit = |item: ScoreInput,
                             waiting: &mut HashMap<(String, i64), Waiting>,
                             scored_keys: &std::collections::HashSet<(String, i64)>| {
                    match item {
                        ScoreInput::Answers(data) => {
                            for a in data {
                                if scored_keys.contains(&(a.match_id.clone(), a.request_time)) {
                                    continue;
                                }
                                waiting
                                    .entry((a.match_id.clone(), a.request_time))
                                    .or_insert_with(|| Waiting {
                                        request: None,
                                        answers: BTreeMap::new(),
                                    })
                                    .answers
                                    .insert((a.slot, a.set), a);
                            }
                        }
                        ScoreInput::Requests(cap, data) => {
                            for r in data {
                                if scored_keys.contains(&(r.event.match_id.clone(), r.event.request_time)) {
                                    continue; // a replay of a request already scored
                                }
                                let w = waiting
                                    .entry((r.event.match_id.clone(), r.event.request_time))
                                    .or_insert_with(|| Waiting {
                                        request: None,
                                        answers: BTreeMap::new(),
                                    });
                                // A replayed request (same match and time) is scored once.
                                if w.request.is_none() {
                                    w.request = Some((cap.clone(), r));
                                }
                            }
                        }
                    }
                };
                answers.for_each_stamp(|stamp, data| {
                    let Some(at) = message_time(stamp.stamp().iter()) else {
                        return;
                    };
                    let mut batch = Vec::new();
                    for d in data {
                        batch.append(d);
                    }
                    if let Some(item) = gate.offer(at, ScoreInput::Answers(batch)) {
                        admit(item, &mut waiting, &scored_keys);
                    }
                });
                requests.for_each_stamp(|stamp, data| {
                    let Some(at) = message_time(stamp.stamp().iter()) else {
                        return;
                    };
                    let mut batch = Vec::new();
                    for d in data {
                        batch.append(d);
                    }
                    let cap = stamp.delayed(&at, output.output_index());
                    if let Some(item) = gate.offer(at, ScoreInput::Requests(cap, batch)) {
                        admit(item, &mut waiting, &scored_keys);
                    }
                });
                let (af, rf) = (answers_frontier.frontier(), requests_frontier.frontier());
                let epochs = match (epoch_frontier(af), epoch_frontier(rf)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let requests_wm = gate.watermark(watermark(rf));
                loop {
                    'score: {
                        // Requests whose every lookup was answered.
                        let complete: Vec<(String, i64)> = waiting
                            .iter()
                            .filter(|(_, w)| {
                                w.request.as_ref().is_some_and(|(_, r)| {
                                    w.answers.len() >= r.event.participants.len() * expected_per_slot
                                })
                            })
                            .map(|(k, _)| k.clone())
                            .collect();
                        // Forget scored requests the requests' watermark has left far behind.
                        if let Some(f) = requests_wm.map(|f| f as i64) {
                            while let Some((t, _)) = scored_order.first() {
                                if t.saturating_add(SCORED_RETENTION_MS) >= f {
                                    break;
                                }
                                if let Some((t, id)) = scored_order.pop_first() {
                                    checkpoint.touch(&request_key(&id, t));
                                    scored_keys.remove(&(id, t));
                                }
                            }
                        }
                        if complete.is_empty() {
                            break 'score;
                        }
                        if let Err(e) = model.refresh() {
                            health.report(
                                "pre-game model reload",
                                crate::error::RiftError::external("model_registry", e, true),
                            );
                        }
                        let Some(current) = model.current() else {
                            // No version yet: every complete request is answered on the dead-letter path
                            // (and counts as answered, so a replay is not answered twice).
                            let reason = model.missing();
                            for key in complete {
                                let Some(Waiting {
                                    request: Some((cap, request)),
                                    ..
                                }) = waiting.remove(&key)
                                else {
                                    continue;
                                };
                                metrics.unscored(&source);
                                scored_order.insert((key.1, key.0.clone()));
                                checkpoint.touch(&request_key(&key.0, key.1));
                                scored_keys.insert(key);
                                output.session(&cap).give(PreGameOut::Unscored(DeadLetter::unscored(
                                    &source,
                                    &request.event.match_id,
                                    &request.event,
                                    &reason,
                                )));
                            }
                            break 'score;
                        };
                        let inputs = current.feature_names().to_vec();
                        let player_features = player_features_of(&inputs).unwrap_or_default();
                        let mut rows: Vec<f32> = Vec::with_capacity(complete.len() * inputs.len());
                        let mut scored: Vec<(Capability<Time>, Arrived<PredictionRequest>)> = Vec::new();
                        for key in complete {
                            let Some(Waiting {
                                request: Some((cap, request)),
                                answers,
                            }) = waiting.remove(&key)
                            else {
                                continue;
                            };
                            let slots = request.event.participants.len();
                            let mut known: Vec<BTreeMap<String, f64>> = vec![BTreeMap::new(); slots];
                            for a in answers.into_values() {
                                let (Some(values), Some(slot)) = (a.values, known.get_mut(a.slot as usize)) else {
                                    continue;
                                };
                                let spec = &sets[a.set];
                                slot.insert(format!("known_{}", spec.name), 1.0);
                                for (name, v) in spec.output_names().zip(values) {
                                    if let Some(v) = v {
                                        slot.insert(name.to_string(), v);
                                    }
                                }
                            }
                            let side = |team: Team| -> Vec<Option<&BTreeMap<String, f64>>> {
                                request
                                    .event
                                    .participants
                                    .iter()
                                    .zip(&known)
                                    .filter(|(p, _)| p.team == team)
                                    .map(|(_, k)| (!k.is_empty()).then_some(k))
                                    .collect()
                            };
                            rows.extend(pregame_features(&player_features, &side(Team::Blue), &side(Team::Red)));
                            scored_order.insert((key.1, key.0.clone()));
                            checkpoint.touch(&request_key(&key.0, key.1));
                            scored_keys.insert(key);
                            scored.push((cap, request));
                        }
                        let probs = match current.predict_batch(&rows) {
                            Ok(p) => p,
                            Err(e) => {
                                health.report("score_pre_game", e.into());
                                break 'score;
                            }
                        };
                        for (i, (cap, request)) in scored.into_iter().enumerate() {
                            let x = &rows[i * inputs.len()..(i + 1) * inputs.len()];
                            let latency_ms = (now_us() - request.received_at_us).max(0) as f64 / 1000.0;
                            metrics.prediction("pre_game", current.version(), latency_ms);
                            output.session(&cap).give(PreGameOut::Prediction(Prediction {
                                match_id: request.event.match_id,
                                kind: PredictionKind::PreGame,
                                event_time: request.event.request_time,
                                game_minute: None,
                                blue_win_probability: (probs[i] as f64).clamp(1e-6, 1.0 - 1e-6),
                                model_name: current.name().to_string(),
                                model_version: current.version().to_string(),
                                variant: "champion".into(),
                                features: inputs.iter().cloned().zip(x.iter().map(|v| *v as f64)).collect(),
                                latency_ms,
                            }));
                        }
                    }
                    match gate.next_boundary(epochs) {
                        Some((completed, released)) => {
                            if let Some(n) = completed {
                                let staged = checkpoint.stage(n, |key| {
                                    let (match_id, time) = parse_request_key(key)?;
                                    scored_keys.contains(&(match_id.to_string(), time)).then_some(&())
                                });
                                if let Err(e) = staged {
                                    health.report("score_pre_game", e);
                                }
                            }
                            for (_, item) in released {
                                admit(item, &mut waiting, &scored_keys);
                            }
                        }
                        None => break,
                    }
                }
                let least = match (watermark(af), requests_wm) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                match (gate.admitted(), least) {
                    (Some(e), Some(w)) if e < u64::MAX => hold.downgrade([time(e, w)]),
                    _ if epochs.is_none() && gate.is_empty() => hold = CapabilitySet::new(),
                    _ => {}
                }
            }
        },
    );
    let mut split = scored.partition(2, |o| match o {
        PreGameOut::Prediction(_) => (0, o),
        PreGameOut::Unscored(_) => (1, o),
    });
    let dead_letters = split.pop().map(|s| {
        s.flat_map(|o| match o {
            PreGameOut::Unscored(d) => Some(d),
            PreGameOut::Prediction(_) => None,
        })
    });
    let predictions = split.pop().map(|s| {
        s.flat_map(|o| match o {
            PreGameOut::Prediction(p) => Some(p),
            PreGameOut::Unscored(_) => None,
        })
    });
    match (predictions, dead_letters) {
        (Some(predictions), Some(dead_letters)) => PreGameScored {
            predictions,
            dead_letters,
        },
        _ => unreachable!("partition(2) returns two streams"),
    }
}
