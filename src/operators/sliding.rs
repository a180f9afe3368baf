//! Sliding (hopping) windows: `[k·slide, k·slide + size)` aligned to the Unix
//! epoch, per key; a row belongs to every window that contains its event time
//! (`size / slide` of them when the slide divides the size).
//!
//! Time, firing, lateness and purging are those of
//! [`window_state`](super::window_state), per window: a late row can re-fire
//! the windows still within lateness and be dropped for older ones; it is a
//! late row only if it is dropped for all of them.

use super::window_state::{window_operator, AlignedWindowState, LateRow, WindowEnv};
use crate::features::{FeatureRow, FeatureSpec, WindowResult};
use std::sync::Arc;
use timely::dataflow::StreamVec;

/// Sliding-window aggregation of a row stream.
pub trait SlidingWindows<'s> {
    /// Aggregates rows into the sliding windows of `spec` (feature set `set`),
    /// returning fired windows and late rows.
    fn sliding_windows(
        self,
        spec: Arc<FeatureSpec>,
        set: usize,
        env: WindowEnv,
    ) -> (StreamVec<'s, u64, WindowResult>, StreamVec<'s, u64, LateRow>);
}

impl<'s> SlidingWindows<'s> for StreamVec<'s, u64, FeatureRow> {
    fn sliding_windows(
        self,
        spec: Arc<FeatureSpec>,
        set: usize,
        env: WindowEnv,
    ) -> (StreamVec<'s, u64, WindowResult>, StreamVec<'s, u64, LateRow>) {
        let name = format!("Sliding({})", spec.name);
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
