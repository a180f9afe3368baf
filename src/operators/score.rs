//! In-dataflow scoring of live match state with the live candle model.
//!
//! Every activation gathers all pending [`LiveUpdate`]s of this worker and
//! scores them in one tensor operation (batched inference), then emits one
//! [`Prediction`] per update at the update's own stamp, tagged with the
//! model's name and version and carrying `latency_ms` from the triggering
//! record's arrival to emission. A scoring failure is reported to the job's
//! health; the updates are not silently dropped (the job fails instead).

use super::live_state::LiveUpdate;
use crate::events::{Prediction, PredictionKind};
use crate::model::{live_features, LoadedModel, LIVE_FEATURE_COUNT, LIVE_FEATURE_NAMES};
use crate::runtime::JobHealth;
use crate::sources::now_us;
use std::rc::Rc;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

/// Scores live updates.
pub trait ScoreLive<'s> {
    /// Predictions for every update, scored by `model` in batches.
    fn score_live(self, model: Rc<LoadedModel>, job: String, health: JobHealth) -> StreamVec<'s, u64, Prediction>;
}

impl<'s> ScoreLive<'s> for StreamVec<'s, u64, LiveUpdate> {
    fn score_live(self, model: Rc<LoadedModel>, job: String, health: JobHealth) -> StreamVec<'s, u64, Prediction> {
        self.unary::<CapacityContainerBuilder<Vec<Prediction>>, _, _, _>(Pipeline, "ScoreLive", move |_cap, _info| {
            let mut held = Vec::new();
            let mut rows: Vec<f32> = Vec::new();
            move |input, output| {
                held.clear();
                rows.clear();
                input.for_each_stamp(|cap, data| {
                    let Some(c) = cap.retain_least(output.output_index()) else {
                        return;
                    };
                    let mut updates = Vec::new();
                    for batch in data {
                        updates.append(batch);
                    }
                    held.push((c, updates));
                });
                for (_, updates) in &held {
                    for u in updates {
                        rows.extend_from_slice(&live_features(&u.blue, &u.red));
                    }
                }
                if rows.is_empty() {
                    return;
                }
                let probs = match model.predict_batch(&rows) {
                    Ok(p) => p,
                    Err(e) => {
                        health.report("score_live", e.into());
                        return;
                    }
                };
                let mut next = 0;
                for (cap, updates) in held.drain(..) {
                    let mut session = output.session(&cap);
                    for u in updates {
                        let x = &rows[next * LIVE_FEATURE_COUNT..(next + 1) * LIVE_FEATURE_COUNT];
                        let p = probs[next] as f64;
                        next += 1;
                        let latency_ms = (now_us() - u.received_at_us).max(0) as f64 / 1000.0;
                        crate::metrics::observe_prediction(&job, "live", model.version(), latency_ms);
                        session.give(Prediction {
                            match_id: u.match_id,
                            kind: PredictionKind::Live,
                            event_time: u.event_time,
                            game_minute: Some(u.game_minute),
                            blue_win_probability: p.clamp(1e-6, 1.0 - 1e-6),
                            model_name: model.name().to_string(),
                            model_version: model.version().to_string(),
                            variant: "champion".into(),
                            features: LIVE_FEATURE_NAMES
                                .iter()
                                .map(|n| n.to_string())
                                .zip(x.iter().map(|v| *v as f64))
                                .collect(),
                            latency_ms,
                        });
                    }
                }
            }
        })
    }
}
