//! In-dataflow scoring of live match state with the live candle model.
//!
//! Every activation gathers all pending [`LiveUpdate`]s of this worker and
//! scores them in one tensor operation (batched inference), then emits one
//! [`Prediction`] per update at the update's own stamp, tagged with the
//! model's name and version and carrying `latency_ms` from the triggering
//! record's arrival to emission. A scoring failure is reported to the job's
//! health; the updates are not silently dropped (the job fails instead).
//!
//! # Hot reload
//! The model is a [`ModelSlot`]: between two batches (never inside one) it
//! checks the registry every `poll` for a newer complete version of its
//! name and switches to it, so every prediction is scored by exactly one
//! version and says which (`model_version`); nothing is lost or scored
//! twice across the switch. A version that fails to load or has other
//! features is reported and skipped; the current one keeps scoring.
//!
//! # Champion/challenger
//! With a challenger slot and a share `s`, the updates of matches whose id
//! hashes below `s` are also scored by the challenger, emitted as a second
//! prediction with `variant = "challenger"` (the first says `champion`).
//! The split is by match, so a match is either compared all game long or not.
//! When a match has ended (`game_end`) and every one of its updates is
//! scored (updates are taken in stamp order, not always the match's), every
//! prediction each variant made for it is scored against the winner, into
//! `riftstream_model_outcomes_total` (`variant`, `model_version`, `outcome`
//! = `correct` | `wrong`) and a [`ModelOutcome`]: the running accuracy of
//! champion and challenger on the same matches.
//!
//! # Checkpoints
//! The per-match tallies are checkpointed per match at the end of each
//! epoch ([`KeyedState`]) and restored with the live match state upstream
//! (same routing), so an outcome counts each prediction once across restarts.

use super::live_state::LiveUpdate;
use crate::error::{Result, RiftError};
use crate::events::{ModelOutcome, Prediction, PredictionKind};
use crate::metrics::ModelMetrics;
use crate::model::{live_features, LoadedModel, ModelRegistry, LIVE_FEATURE_COUNT, LIVE_FEATURE_NAMES};
use crate::operators::epoch_gate::EpochGate;
use crate::state::{KeyedState, OperatorState};
use crate::util::now_us;
use crate::util::time::{epoch_frontier, message_time, time, watermark};
use crate::util::JobHealth;
use crate::util::Time;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Map, Partition};
use timely::dataflow::operators::{Capability, CapabilitySet};
use timely::dataflow::StreamVec;

/// A registered model that follows its registry to newer versions.
pub struct ModelSlot {
    registry: ModelRegistry,
    name: String,
    features: Vec<String>,
    current: LoadedModel,
    number: u64,
    poll: Duration,
    last_poll: Instant,
}

impl ModelSlot {
    /// The latest version of `name` in the registry at `root`, which must take `features`.
    pub fn open(root: &Path, name: &str, features: &[&str], poll: Duration) -> Result<ModelSlot> {
        let mut slot = ModelSlot::open_any(root, name, poll)?;
        slot.current.check_features(features)?;
        slot.features = features.iter().map(|f| f.to_string()).collect();
        Ok(slot)
    }

    /// The latest version of `name`, whose feature names every later version must keep.
    pub fn open_any(root: &Path, name: &str, poll: Duration) -> Result<ModelSlot> {
        let registry = ModelRegistry::open(root)?;
        let Some(latest) = registry.latest(name)? else {
            return Err(RiftError::Usage(format!(
                "no `{name}` model is registered under {}; train one with `riftstream train`",
                root.display()
            )));
        };
        let current = LoadedModel::load(&latest.path)?;
        Ok(ModelSlot {
            registry,
            name: name.to_string(),
            features: current.feature_names().to_vec(),
            current,
            number: latest.number,
            poll,
            last_poll: Instant::now(),
        })
    }

    /// How often the registry is asked for a newer version.
    pub fn poll_interval(&self) -> Duration {
        self.poll
    }

    /// The model scoring now.
    pub fn current(&self) -> &LoadedModel {
        &self.current
    }

    /// Its version number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Switches to a newer registered version if one appeared; returns whether it switched.
    /// A version that cannot be used is an error; the current model stays.
    pub fn refresh(&mut self) -> Result<bool> {
        if self.last_poll.elapsed() < self.poll {
            return Ok(false);
        }
        self.last_poll = Instant::now();
        let Some(latest) = self.registry.latest(&self.name)? else {
            return Ok(false);
        };
        if latest.number <= self.number {
            return Ok(false);
        }
        let next = LoadedModel::load(&latest.path)?;
        let expected: Vec<&str> = self.features.iter().map(String::as_str).collect();
        if let Err(e) = next.check_features(&expected) {
            // Remember it, so a bad version is reported once, not every poll.
            self.number = latest.number;
            return Err(e.into());
        }
        tracing::info!(model = %self.name, from = %self.current.version(), to = %next.version(), "hot-reloaded model");
        self.current = next;
        self.number = latest.number;
        Ok(true)
    }
}

/// Whether `match_id` falls in the challenger's share (a stable hash, so per match).
pub fn in_challenger_share(match_id: &str, share: f64) -> bool {
    share > 0.0 && ((crate::util::stable_hash(match_id.as_bytes()) >> 11) as f64 / (1u64 << 53) as f64) < share
}

/// How live updates are scored.
pub struct LiveScoring {
    /// The model every update is scored by.
    pub champion: ModelSlot,
    /// A second model for a share of matches, with that share in `[0, 1]`.
    pub challenger: Option<(ModelSlot, f64)>,
    /// Job name (logs).
    pub job: String,
    /// Worker index (metrics).
    pub worker: usize,
    /// Where predictions, versions and outcomes are counted.
    pub metrics: ModelMetrics,
    /// Where the per-match tallies are checkpointed.
    pub state: OperatorState,
}

/// Section of the checkpoint state holding per-match tallies.
const TALLIES: &[u8] = b"t";

/// The outputs of live scoring.
pub struct LiveScored<'s> {
    /// One prediction per update (two for matches the challenger also scores).
    pub predictions: StreamVec<'s, Time, Prediction>,
    /// One outcome per ended match and model variant.
    pub outcomes: StreamVec<'s, Time, ModelOutcome>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Scored {
    Prediction(Prediction),
    Outcome(ModelOutcome),
}

/// Predictions made for one match by one variant and version, until it ends.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct MatchTally {
    model_name: String,
    n: u64,
    blue: u64,
    /// Σ ln p and Σ ln(1 − p) of the blue probabilities.
    ln_blue: f64,
    ln_red: f64,
}

/// What the scoring of one match has tallied.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct MatchTallies {
    /// By (variant, model version).
    by_model: BTreeMap<(String, String), MatchTally>,
    /// From the match's last update: the winner, its event time and how many
    /// updates the match had. The outcome is emitted once every one of them
    /// is scored: updates may reach scoring out of order (they are taken in
    /// stamp order), and the outcome must not depend on it.
    end: Option<(crate::events::Team, i64, u64)>,
}

impl MatchTallies {
    /// The outcomes, once every update of the ended match is scored.
    fn outcomes(&self, match_id: &str) -> Option<Vec<ModelOutcome>> {
        let (winner, ended_at, total) = self.end?;
        let champion: u64 = self
            .by_model
            .iter()
            .filter(|((variant, _), _)| variant == "champion")
            .map(|(_, t)| t.n)
            .sum();
        if champion < total {
            return None;
        }
        let blue_won = winner == crate::events::Team::Blue;
        Some(
            self.by_model
                .iter()
                .map(|((variant, version), t)| {
                    let correct = if blue_won { t.blue } else { t.n - t.blue };
                    let n = t.n.max(1) as f64;
                    ModelOutcome {
                        match_id: match_id.to_string(),
                        variant: variant.clone(),
                        model_name: t.model_name.clone(),
                        model_version: version.clone(),
                        ended_at,
                        predictions: t.n as i64,
                        correct: correct as i64,
                        accuracy: correct as f64 / n,
                        log_loss: -(if blue_won { t.ln_blue } else { t.ln_red }) / n,
                    }
                })
                .collect(),
        )
    }
}

/// Scores live updates.
pub trait ScoreLive<'s> {
    /// Predictions for every update, scored in batches, and per-model outcomes of ended matches.
    fn score_live(self, scoring: LiveScoring, health: JobHealth) -> LiveScored<'s>;
}

/// Time spent in model inference by one scoring operator, logged (at info)
/// when the operator ends, so its share of a job's time can be measured.
#[derive(Default)]
struct InferenceTally {
    job: String,
    rows: u64,
    batches: u64,
    seconds: f64,
}

impl InferenceTally {
    fn record(&mut self, rows: usize, took: Duration) {
        self.rows += rows as u64;
        self.batches += 1;
        self.seconds += took.as_secs_f64();
    }
}

impl Drop for InferenceTally {
    fn drop(&mut self) {
        if self.batches > 0 {
            tracing::info!(
                job = %self.job,
                rows = self.rows,
                batches = self.batches,
                inference_ms = self.seconds * 1e3,
                rows_per_batch = self.rows as f64 / self.batches as f64,
                "live scoring finished"
            );
        }
    }
}

fn predict(model: &LoadedModel, rows: &[f32], health: &JobHealth) -> Option<Vec<f32>> {
    match model.predict_batch(rows) {
        Ok(p) => Some(p),
        Err(e) => {
            health.report("score_live", e.into());
            None
        }
    }
}

impl<'s> ScoreLive<'s> for StreamVec<'s, Time, LiveUpdate> {
    fn score_live(self, scoring: LiveScoring, health: JobHealth) -> LiveScored<'s> {
        let LiveScoring {
            mut champion,
            mut challenger,
            job,
            worker,
            metrics,
            state,
        } = scoring;
        metrics.version(&champion.name, worker, champion.number(), false);
        let scope = self.scope();
        let peers = scope.peers();
        let scored = self.unary_frontier::<CapacityContainerBuilder<Vec<Scored>>, _, _, _>(
            Pipeline,
            "ScoreLive",
            move |cap, info| {
                // Wakes up every poll interval, so a new version is picked up
                // (and reported) even while no update arrives.
                let activator = scope.activator_for(info.address.clone());
                let poll = champion.poll_interval();
                let mut held: Vec<(Capability<Time>, Vec<LiveUpdate>)> = Vec::new();
                // At (admitted epoch, watermark): the output passes an epoch only
                // once the operator is done with it.
                let mut hold = CapabilitySet::from_elem(cap);
                let mut rows: Vec<f32> = Vec::new();
                // Rows of matches in the challenger's share.
                let mut challenged: Vec<f32> = Vec::new();
                // Per (match, variant, model version): predictions made and how many favoured blue.
                let mut inference = InferenceTally {
                    job: job.clone(),
                    ..Default::default()
                };
                // Per match: its tallies (checkpointed; the input is routed by match upstream).
                let mut tally: HashMap<String, MatchTallies> = HashMap::new();
                let mut checkpoint: KeyedState<MatchTallies> = KeyedState::new(state, TALLIES);
                match checkpoint.restore(worker, peers) {
                    Ok(restored) => tally.extend(restored),
                    Err(e) => health.report("score_live", e),
                }
                let mut gate: EpochGate<(Capability<Time>, Vec<LiveUpdate>)> =
                    EpochGate::starting_at(checkpoint.first_epoch());
                move |(input, frontier), output| {
                    held.clear();
                    // Between batches: pick up newer registered versions.
                    activator.activate_after(poll);
                    for slot in std::iter::once(&mut champion).chain(challenger.as_mut().map(|(s, _)| s)) {
                        match slot.refresh() {
                            Ok(switched) => {
                                if switched {
                                    metrics.version(&slot.name, worker, slot.number(), true);
                                }
                            }
                            Err(e) => health.report("model reload", RiftError::external("model_registry", e, true)),
                        }
                    }
                    input.for_each_stamp(|stamp, data| {
                        let Some(at) = message_time(stamp.stamp().iter()) else {
                            return;
                        };
                        let c = stamp.delayed(&at, output.output_index());
                        let mut updates = Vec::new();
                        for batch in data {
                            updates.append(batch);
                        }
                        if let Some(admitted) = gate.offer(at, (c, updates)) {
                            held.push(admitted);
                        }
                    });
                    let f = frontier.frontier();
                    let (wm, epochs) = (watermark(f), epoch_frontier(f));
                    loop {
                        'score: {
                            rows.clear();
                            challenged.clear();
                            for (_, updates) in &held {
                                for u in updates {
                                    let x = live_features(&u.blue, &u.red);
                                    if challenger
                                        .as_ref()
                                        .is_some_and(|(_, share)| in_challenger_share(&u.match_id, *share))
                                    {
                                        challenged.extend_from_slice(&x);
                                    }
                                    rows.extend_from_slice(&x);
                                }
                            }
                            if rows.is_empty() {
                                break 'score;
                            }
                            let started = std::time::Instant::now();
                            let Some(probs) = predict(champion.current(), &rows, &health) else {
                                held.clear();
                                break 'score;
                            };
                            inference.record(rows.len() / LIVE_FEATURE_COUNT, started.elapsed());
                            let challenger_probs = match &challenger {
                                Some((slot, _)) if !challenged.is_empty() => {
                                    match predict(slot.current(), &challenged, &health) {
                                        Some(p) => p,
                                        None => {
                                            held.clear();
                                            break 'score;
                                        }
                                    }
                                }
                                _ => Vec::new(),
                            };
                            let mut next = 0;
                            let mut next_challenged = 0;
                            for (cap, updates) in held.drain(..) {
                                let mut session = output.session(&cap);
                                for u in updates {
                                    let x = &rows[next * LIVE_FEATURE_COUNT..(next + 1) * LIVE_FEATURE_COUNT];
                                    let latency_ms = (now_us() - u.received_at_us).max(0) as f64 / 1000.0;
                                    let features: std::collections::BTreeMap<String, f64> = LIVE_FEATURE_NAMES
                                        .iter()
                                        .map(|n| n.to_string())
                                        .zip(x.iter().map(|v| *v as f64))
                                        .collect();
                                    let prediction = |model: &LoadedModel, p: f32, variant: &str| Prediction {
                                        match_id: u.match_id.clone(),
                                        kind: PredictionKind::Live,
                                        event_time: u.event_time,
                                        game_minute: Some(u.game_minute),
                                        blue_win_probability: (p as f64).clamp(1e-6, 1.0 - 1e-6),
                                        model_name: model.name().to_string(),
                                        model_version: model.version().to_string(),
                                        variant: variant.into(),
                                        features: features.clone(),
                                        latency_ms,
                                    };
                                    let mut scored: Vec<(&LoadedModel, f32, &'static str)> =
                                        vec![(champion.current(), probs[next], "champion")];
                                    if let Some((slot, share)) = &challenger {
                                        if in_challenger_share(&u.match_id, *share) {
                                            scored.push((
                                                slot.current(),
                                                challenger_probs[next_challenged],
                                                "challenger",
                                            ));
                                            next_challenged += 1;
                                        }
                                    }
                                    for (model, p, variant) in scored {
                                        metrics.prediction("live", model.version(), latency_ms);
                                        let scored = prediction(model, p, variant);
                                        checkpoint.touch(&u.match_id);
                                        let t = tally
                                            .entry(u.match_id.clone())
                                            .or_default()
                                            .by_model
                                            .entry((variant.to_string(), model.version().to_string()))
                                            .or_default();
                                        t.model_name = model.name().to_string();
                                        t.n += 1;
                                        t.blue += u64::from(p >= 0.5);
                                        t.ln_blue += scored.blue_win_probability.ln();
                                        t.ln_red += (1.0 - scored.blue_win_probability).ln();
                                        session.give(Scored::Prediction(scored));
                                    }
                                    let match_tally = tally.entry(u.match_id.clone()).or_default();
                                    if let Some(winner) = u.winner {
                                        match_tally.end = Some((winner, u.event_time, u.updates));
                                    }
                                    if let Some(outcomes) = match_tally.outcomes(&u.match_id) {
                                        tally.remove(&u.match_id);
                                        checkpoint.touch(&u.match_id);
                                        for o in outcomes {
                                            metrics.outcomes(
                                                &o.variant,
                                                &o.model_version,
                                                o.correct as u64,
                                                o.predictions as u64,
                                            );
                                            session.give(Scored::Outcome(o));
                                        }
                                    }
                                    next += 1;
                                }
                            }
                        }
                        match gate.next_boundary(epochs) {
                            Some((completed, released)) => {
                                if let Some(n) = completed {
                                    if let Err(e) = checkpoint.stage(n, |id| tally.get(id)) {
                                        health.report("score_live", e);
                                    }
                                }
                                held.extend(released.into_iter().map(|(_, b)| b))
                            }
                            None => break,
                        }
                    }
                    match (gate.admitted(), gate.watermark(wm)) {
                        (Some(e), Some(w)) if e < u64::MAX => hold.downgrade([time(e, w)]),
                        _ if wm.is_none() && gate.is_empty() => hold = CapabilitySet::new(),
                        _ => {}
                    }
                }
            },
        );
        let mut split = scored.partition(2, |s| match s {
            Scored::Prediction(_) => (0, s),
            Scored::Outcome(_) => (1, s),
        });
        let outcomes = split.pop().map(|s| {
            s.flat_map(|s| match s {
                Scored::Outcome(o) => Some(o),
                Scored::Prediction(_) => None,
            })
        });
        let predictions = split.pop().map(|s| {
            s.flat_map(|s| match s {
                Scored::Prediction(p) => Some(p),
                Scored::Outcome(_) => None,
            })
        });
        match (predictions, outcomes) {
            (Some(predictions), Some(outcomes)) => LiveScored { predictions, outcomes },
            _ => unreachable!("partition(2) returns two streams"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `EUW1_0` … `EUW1_7` fall in a 50 % share.
    const PINNED_HALF_SHARE: [bool; 8] = [true, false, false, true, false, false, true, true];

    #[test]
    fn the_challenger_share_is_stable_per_match_and_about_its_size() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("EUW1_{i}")).collect();
        let picked = ids.iter().filter(|id| in_challenger_share(id, 0.2)).count();
        assert!((1_700..2_300).contains(&picked), "{picked}");
        // Nested: a match in a 20 % share is in every larger one.
        assert!(ids
            .iter()
            .filter(|id| in_challenger_share(id, 0.2))
            .all(|id| in_challenger_share(id, 0.5)));
        // Stable across processes and releases: pinned for a few ids (a
        // change here would move live matches between champion and challenger).
        let pinned: Vec<bool> = (0..8).map(|i| in_challenger_share(&format!("EUW1_{i}"), 0.5)).collect();
        assert_eq!(pinned, PINNED_HALF_SHARE);
        assert!(!ids.iter().any(|id| in_challenger_share(id, 0.0)));
        assert!(ids.iter().all(|id| in_challenger_share(id, 1.0)));
    }
}
