//! The `predictions` job: live win probability for matches in progress.
//!
//! ```text
//! game events ─► exchange by match ─► running match state ─► batched candle scoring ─► predictions
//!                                                                                      ├─► file / lake sinks
//!                                                                                      └─► kafka (esports.predictions)
//! ```
//! The model is the latest registered version of `live_model` in the
//! registry (`models/` under the lake root unless `registry` says otherwise).
//! Pre-game scoring (requests joined with player features) comes with the
//! models issue; until then a configured `requests_source` is rejected with
//! that explanation rather than ignored.

use super::{Job, JobContext};
use crate::codec::EventDecoder;
use crate::config::{JobConfig, SinkConfig, Topology};
use crate::error::{Result, RiftError};
use crate::events::{GameEvent, Prediction};
use crate::model::{LoadedModel, ModelRegistry, LIVE_FEATURE_NAMES};
use crate::operators::live_state::LiveMatchState;
use crate::operators::score::ScoreLive;
use crate::operators::source::read_source;
use crate::sinks::file::JsonLinesWriter;
use std::path::PathBuf;
use std::rc::Rc;
use timely::dataflow::Scope;

/// The compiled job.
pub struct PredictionsJob {
    live_source: Option<String>,
    outputs: Vec<String>,
    dlq: Option<String>,
    registry: PathBuf,
    live_model: String,
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
        Ok(PredictionsJob {
            live_source: live_source.clone(),
            outputs: outputs.clone(),
            dlq: dlq.clone(),
            registry,
            live_model: live_model.clone(),
        })
    }

    fn load_live_model(&self) -> Result<LoadedModel> {
        let registry = ModelRegistry::open(&self.registry)?;
        let Some(latest) = registry.latest(&self.live_model)? else {
            return Err(RiftError::Usage(format!(
                "no `{}` model is registered under {}; train one with `riftstream train live --data data/high_diamond_ranked_10min.train.csv`",
                self.live_model,
                self.registry.display()
            )));
        };
        let model = LoadedModel::load(&latest.path)?;
        model.check_features(LIVE_FEATURE_NAMES)?;
        Ok(model)
    }
}

impl Job for PredictionsJob {
    fn install<'s>(&self, scope: Scope<'s, u64>, ctx: &JobContext) -> Result<()> {
        let Some(source) = &self.live_source else {
            return Ok(());
        };
        let model = Rc::new(self.load_live_model()?);
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
            .score_live(model, ctx.job.clone(), ctx.health.clone());
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
