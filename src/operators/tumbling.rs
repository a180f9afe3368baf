//! Tumbling windows: fixed, non-overlapping `[k·size, (k+1)·size)` windows
//! aligned to the Unix epoch, per key.
//!
//! Time, firing, lateness (re-fires with a `revision`, late rows returned) and
//! state purging are those of [`window_state`](super::window_state); each row
//! belongs to exactly one window.

use super::window_state::{window_operator, AlignedWindowState, LateRow, WindowEnv};
use crate::features::{FeatureRow, FeatureSpec, WindowResult};
use std::sync::Arc;
use timely::dataflow::StreamVec;

/// Tumbling-window aggregation of a row stream.
pub trait TumblingWindows<'s> {
    /// Aggregates rows into the tumbling windows of `spec` (feature set `set`),
    /// returning fired windows and late rows.
    fn tumbling_windows(
        self,
        spec: Arc<FeatureSpec>,
        set: usize,
        env: WindowEnv,
    ) -> (StreamVec<'s, u64, WindowResult>, StreamVec<'s, u64, LateRow>);
}

impl<'s> TumblingWindows<'s> for StreamVec<'s, u64, FeatureRow> {
    fn tumbling_windows(
        self,
        spec: Arc<FeatureSpec>,
        set: usize,
        env: WindowEnv,
    ) -> (StreamVec<'s, u64, WindowResult>, StreamVec<'s, u64, LateRow>) {
        let name = format!("Tumbling({})", spec.name);
        let mut state = AlignedWindowState::new(spec.clone(), set);
        if let Some(cfg) = env.spill.clone() {
            // Without its state backend the job cannot keep memory bounded: fail it.
            match AlignedWindowState::new(spec, set).with_spill(cfg) {
                Ok(spilling) => state = spilling,
                Err(e) => env.health.report(&name, e),
            }
        }
        window_operator(self, &name, state, env.health)
    }
}
