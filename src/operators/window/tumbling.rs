//! Tumbling windows: fixed, non-overlapping `[k·size, (k+1)·size)` windows
//! aligned to the Unix epoch, per key.
//!
//! Time, firing, lateness (re-fires with a `revision`, late rows returned) and
//! state purging are those of [`window`](super); each row
//! belongs to exactly one window.

use super::{AlignedWindowState, WindowCore, WindowEnv};
use crate::features::FeatureSpec;
use std::sync::Arc;

/// The state machine of tumbling feature set `spec` (index `set` in its job),
/// spilling to RocksDB as `env` says; run by
/// [`window_operator`](super::window_operator).
pub fn tumbling_core(spec: Arc<FeatureSpec>, set: usize, env: &WindowEnv) -> Box<dyn WindowCore> {
    Box::new(AlignedWindowState::spilling(spec, set, env, "Tumbling"))
}
