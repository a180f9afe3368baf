//! The `predictions` job: live win probability for matches in progress.
//!
//! ```text
//! game events ─► exchange by match ─► running match state ─► batched candle scoring ─► predictions
//!                                                                                      ├─► file / lake sinks
//!                                                                                      └─► kafka (esports.predictions)
//! ```
//! The model is the latest registered version of `live_model` in the
//! registry (`models/` under the lake root unless `registry` says otherwise),
//! hot-reloaded when a newer version is registered (checked every
//! `model_poll_interval`, between batches). The job starts without any:
//! until a model's first version is registered, what it would score goes to
//! the job's `dlq` with the reason `no model` (counted in
//! `riftstream_dead_letters_total`), and scoring starts with that version,
//! with no restart. With `challenger_model` and
//! `challenger_share`, that share of matches is also scored by the
//! challenger (see `operators::score`).
//!
//! Pre-game: with `requests_source` and `pre_game_feature_sets`, the job
//! computes those feature sets from their own sources, keeps each player's
//! (or champion's, …) latest vectors, joins every prediction request with
//! its ten players' features as of the request, and scores the requests of
//! each round in one batch with `pre_game_model` (see `operators::pregame`).
//!
//! ```text
//! matches, player_stats ─► feature windows ─┐
//! prediction requests ──────────────────────┴─► lookup ─► score pre-game ─► predictions
//! ```

use super::player_features::feature_windows;
use super::{Job, JobContext};
use crate::codec::EventDecoder;
use crate::config::{JobConfig, SinkConfig, Topology};
use crate::error::{Result, RiftError};
use crate::events::{GameEvent, Prediction, PredictionRequest};
use crate::features::FeatureSpec;
use crate::lake::offline::joins_lineups;
use crate::model::pregame::player_features_of;
use crate::model::LIVE_FEATURE_NAMES;
use crate::operators::live_state::LiveMatchState;
use crate::operators::pregame::{pre_game_predictions, PreGameScoring};
use crate::operators::score::{LiveScoring, ModelSlot, ScoreLive};
use crate::operators::source::read_source;
use crate::sinks::file::JsonLinesWriter;
use crate::util::Time;
use std::path::PathBuf;
use std::sync::Arc;
use timely::dataflow::operators::Concatenate;
use timely::dataflow::Scope;

/// The compiled job.
pub struct PredictionsJob {
    live_source: Option<String>,
    outputs: Vec<String>,
    dlq: Option<String>,
    registry: PathBuf,
    live_model: String,
    model_poll: std::time::Duration,
    challenger: Option<(String, f64)>,
    /// Requests source, the pre-game model's name and its compiled feature sets.
    pre_game: Option<(String, String, Vec<Arc<FeatureSpec>>)>,
}

impl PredictionsJob {
    /// Compiles `[jobs.NAME]` of kind `predictions`.
    pub fn from_config(name: &str, cfg: &JobConfig, topology: &Topology) -> Result<PredictionsJob> {
        let JobConfig::Predictions {
            live_source,
            requests_source,
            outputs,
            dlq,
            registry,
            live_model,
            model_poll_interval,
            challenger_model,
            challenger_share,
            pre_game_model,
            pre_game_feature_sets,
            ..
        } = cfg
        else {
            return Err(RiftError::Internal(format!("job {name} is not a predictions job")));
        };
        let pre_game = match requests_source {
            None => None,
            Some(requests) => {
                if pre_game_feature_sets.is_empty() {
                    return Err(RiftError::config(
                        &topology.file,
                        format!("jobs.{name}.pre_game_feature_sets"),
                        "a requests_source needs the feature sets its pre-game model reads",
                    ));
                }
                let mut sets = Vec::new();
                for set in pre_game_feature_sets {
                    let spec =
                        crate::features::compile_set(topology, set, &format!("jobs.{name}.pre_game_feature_sets"))?;
                    let entity = spec.entity();
                    if !joins_lineups(&entity) {
                        return Err(RiftError::config(
                            &topology.file,
                            format!("feature_sets.{set}.key"),
                            format!("a lineup cannot be joined on `{}`: use player_id, champion, role, team or a `+` of them", spec.key_field),
                        ));
                    }
                    sets.push(spec);
                }
                Some((requests.clone(), pre_game_model.clone(), sets))
            }
        };
        let registry = match registry {
            Some(r) => PathBuf::from(r),
            None => crate::model::registry_root(topology)?,
        };
        if !(0.0..=1.0).contains(challenger_share) {
            return Err(RiftError::config(
                &topology.file,
                format!("jobs.{name}.challenger_share"),
                format!("must be within [0, 1], got {challenger_share}"),
            ));
        }
        Ok(PredictionsJob {
            live_source: live_source.clone(),
            outputs: outputs.clone(),
            dlq: dlq.clone(),
            registry,
            live_model: live_model.clone(),
            model_poll: *model_poll_interval,
            challenger: challenger_model.clone().map(|m| (m, *challenger_share)),
            pre_game,
        })
    }

    fn live_scoring(&self, ctx: &JobContext, source: &str) -> Result<LiveScoring> {
        let champion = ModelSlot::open(&self.registry, &self.live_model, LIVE_FEATURE_NAMES, self.model_poll)?;
        let challenger = match &self.challenger {
            Some((name, share)) => Some((
                ModelSlot::open(&self.registry, name, LIVE_FEATURE_NAMES, self.model_poll)?,
                *share,
            )),
            None => None,
        };
        Ok(LiveScoring {
            champion,
            challenger,
            job: ctx.job.clone(),
            worker: ctx.worker,
            metrics: ctx.metrics.models(&ctx.job),
            state: ctx.operator_state(&format!("score/{source}")),
            source: source.to_string(),
        })
    }

    /// The pre-game model's slot: every version must be a pre-game model whose
    /// player features `sets` compute.
    fn pre_game_slot(&self, model: &str, sets: &[Arc<FeatureSpec>]) -> Result<ModelSlot> {
        let available: std::collections::BTreeSet<String> = sets
            .iter()
            .flat_map(|s| s.output_names().map(String::from).chain([format!("known_{}", s.name)]))
            .collect();
        let name = model.to_string();
        let check = Box::new(move |m: &crate::model::LoadedModel| {
            let inputs = m.feature_names();
            let wanted = player_features_of(inputs).ok_or_else(|| {
                RiftError::Usage(format!(
                    "model `{name}` is not a pre-game model (inputs: {})",
                    inputs.join(", ")
                ))
            })?;
            match wanted.iter().find(|f| !available.contains(*f)) {
                Some(missing) => Err(RiftError::Usage(format!(
                    "model `{name}` reads player feature `{missing}`, which none of pre_game_feature_sets computes"
                ))),
                None => Ok(()),
            }
        });
        ModelSlot::open_checked(&self.registry, model, check, self.model_poll)
    }
}

impl Job for PredictionsJob {
    /// The registry opens, and the registered models (if any yet) fit the job.
    /// A model not registered yet is no error: its input goes to the
    /// dead-letter path until a first version appears.
    fn preflight(&self) -> Result<()> {
        if self.live_source.is_some() {
            ModelSlot::open(&self.registry, &self.live_model, LIVE_FEATURE_NAMES, self.model_poll)?;
            if let Some((name, _)) = &self.challenger {
                ModelSlot::open(&self.registry, name, LIVE_FEATURE_NAMES, self.model_poll)?;
            }
        }
        if let Some((_, model, sets)) = &self.pre_game {
            self.pre_game_slot(model, sets)?;
        }
        Ok(())
    }

    fn install<'s>(&self, scope: Scope<'s, Time>, ctx: &JobContext) -> Result<()> {
        let mut outputs = Vec::new();
        let mut dead = Vec::new();
        if let Some(source) = &self.live_source {
            let scoring = self.live_scoring(ctx, source)?;
            let streams = read_source(
                scope,
                ctx.source(source, false)?,
                EventDecoder::<GameEvent>::new(ctx.format(source)?),
                ctx.source_metrics(source),
                ctx.health.clone(),
            );
            dead.push(streams.dead_letters);
            let scored = streams
                .records
                .live_match_state(ctx.operator_state(&format!("live/{source}")), ctx.health.clone())
                .score_live(scoring, ctx.health.clone());
            outputs.push(scored.predictions);
            dead.push(scored.dead_letters);
            // Per-model outcomes of ended matches go to the lake outputs' gold/model_outcomes.
            for output in &self.outputs {
                if let Some(SinkConfig::Lake { .. }) = ctx.topology.sinks.get(output) {
                    ctx.write(
                        scored.outcomes.clone(),
                        output,
                        ctx.lake_writer::<crate::events::ModelOutcome>(output, "outcomes")?,
                    );
                }
            }
        }
        if let Some((requests, model, sets)) = &self.pre_game {
            let slot = self.pre_game_slot(model, sets)?;
            let (results, lates, feature_dead) = feature_windows(scope, ctx, sets)?;
            // Late rows are counted (riftstream_late_rows_total); the player_features job stores them.
            let _ = lates;
            dead.push(feature_dead);
            let streams = read_source(
                scope,
                ctx.source(requests, false)?,
                EventDecoder::<PredictionRequest>::new(ctx.format(requests)?),
                ctx.source_metrics(requests),
                ctx.health.clone(),
            );
            dead.push(streams.dead_letters);
            let scoring = PreGameScoring {
                sets: sets.clone(),
                entities: sets.iter().map(|s| s.entity()).collect(),
                model: slot,
                metrics: ctx.metrics.models(&ctx.job),
                lookup_state: ctx.operator_state(&format!("pregame/{requests}/lookup")),
                scored_state: ctx.operator_state(&format!("pregame/{requests}/scored")),
                source: requests.clone(),
            };
            let scored = pre_game_predictions(results, streams.records, scoring, ctx.health.clone());
            outputs.push(scored.predictions);
            dead.push(scored.dead_letters);
        }
        ctx.dead_letters(scope.concatenate(dead), self.dlq.as_deref())?;
        let predictions = scope.concatenate(outputs);
        for output in &self.outputs {
            match ctx.topology.sinks.get(output) {
                Some(SinkConfig::File { path }) => {
                    let w = JsonLinesWriter::<Prediction>::serde(
                        &PathBuf::from(path),
                        "predictions",
                        ctx.worker,
                        ctx.peers,
                    )?;
                    ctx.write(predictions.clone(), output, w);
                }
                Some(SinkConfig::Lake { .. }) => {
                    ctx.write(
                        predictions.clone(),
                        output,
                        ctx.lake_writer::<Prediction>(output, "predictions")?,
                    );
                }
                Some(SinkConfig::Kafka { .. }) => {
                    let w = ctx.kafka_writer::<Prediction>(output, crate::events::Topic::Predictions)?;
                    ctx.write(predictions.clone(), output, w);
                }
                Some(other) => {
                    return Err(RiftError::Usage(format!(
                        "predictions cannot go to a `{}` sink",
                        other.kind()
                    )))
                }
                None => {
                    return Err(RiftError::config(
                        &ctx.topology.file,
                        format!("sinks.{output}"),
                        "no such sink",
                    ))
                }
            }
        }
        Ok(())
    }
}
