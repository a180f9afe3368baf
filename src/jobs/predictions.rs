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
//! `model_poll_interval`, between batches). With `challenger_model` and
//! `challenger_share`, that share of matches is also scored by the
//! challenger (see `operators::score`).
//! Pre-game scoring (requests joined with player features) comes with the
//! models issue; until then a configured `requests_source` is rejected with
//! that explanation rather than ignored.

use super::{Job, JobContext};
use crate::codec::EventDecoder;
use crate::config::{JobConfig, SinkConfig, Topology};
use crate::error::{Result, RiftError};
use crate::events::{GameEvent, Prediction};
use crate::model::LIVE_FEATURE_NAMES;
use crate::operators::live_state::LiveMatchState;
use crate::operators::score::{LiveScoring, ModelSlot, ScoreLive};
use crate::operators::source::read_source;
use crate::sinks::file::JsonLinesWriter;
use std::path::PathBuf;
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
            ..
        } = cfg
        else {
            return Err(RiftError::Internal(format!("job {name} is not a predictions job")));
        };
        if requests_source.is_some() {
            return Err(RiftError::config(
                &topology.file,
                format!("jobs.{name}.requests_source"),
                "pre-game predictions are not built yet (tracked in the models issue); remove `requests_source`",
            ));
        }
        let registry = match registry {
            Some(r) => PathBuf::from(r),
            None => PathBuf::from(topology.lake_root().unwrap_or("./lake")),
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
        })
    }

    fn live_scoring(&self, ctx: &JobContext) -> Result<LiveScoring> {
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
        })
    }
}

impl Job for PredictionsJob {
    fn install<'s>(&self, scope: Scope<'s, u64>, ctx: &JobContext) -> Result<()> {
        let Some(source) = &self.live_source else {
            return Ok(());
        };
        let scoring = self.live_scoring(ctx)?;
        let streams = read_source(
            scope,
            ctx.source(source, false)?,
            EventDecoder::<GameEvent>::new(ctx.format(source)?),
            ctx.source_metrics(source),
            ctx.health.clone(),
        );
        ctx.dead_letters(streams.dead_letters, self.dlq.as_deref())?;
        let predictions = streams
            .records
            .live_match_state()
            .score_live(scoring, ctx.health.clone());
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
