//! Sliding (hopping) windows: `[k·slide, k·slide + size)` aligned to the Unix
//! epoch, per key; a row belongs to every window that contains its event time
//! (`size / slide` of them when the slide divides the size).
//!
//! Time, firing, lateness and purging are those of
//! [`window`](super), per window: a late row can re-fire
//! the windows still within lateness and be dropped for older ones; it is a
//! late row only if it is dropped for all of them.

use super::{AlignedWindowState, WindowCore, WindowEnv};
use crate::features::FeatureSpec;
use std::sync::Arc;

/// The state machine of sliding feature set `spec` (index `set` in its job),
/// spilling to RocksDB as `env` says; run by
/// [`window_operator`](super::window_operator).
pub fn sliding_core(spec: Arc<FeatureSpec>, set: usize, env: &WindowEnv) -> Box<dyn WindowCore> {
    Box::new(AlignedWindowState::spilling(spec, set, env, "Sliding"))
}
