//! Jobs: one dataflow each, built from the topology as a value and installed
//! into a running worker.
//!
//! * [`lake`] — bronze (every record as read), silver (decoded, validated,
//!   deduplicated) tables;
//! * [`player_features`] — declarative event-time windowed features to the
//!   online store, the offline (lake) store and files;
//! * [`predictions`] — live win probability from running match state, scored
//!   by the registered candle model.
//!
//! A [`Job`] is built by [`build`] from its `[jobs.NAME]` section (so the
//! same value can be installed on every worker, in the same order) and wired
//! to sources and sinks by name through the [`JobContext`].

mod context;
pub mod gold;
pub mod lake;
pub mod player_features;
pub mod predictions;

pub use context::{JobContext, RunShared};

use crate::config::{JobConfig, Topology};
use crate::error::{Result, RiftError};
use crate::util::Time;
use timely::dataflow::Scope;

/// A job: a dataflow built from its configuration.
pub trait Job: Send + Sync {
    /// Builds the job's dataflow in `scope`.
    fn install<'s>(&self, scope: Scope<'s, Time>, ctx: &JobContext) -> Result<()>;

    /// Checks, before any worker installs the job, what its installation
    /// needs beyond the configuration (a registered model): a job that
    /// cannot be installed is refused up front, not failed in the workers.
    fn preflight(&self) -> Result<()> {
        Ok(())
    }
}

/// Builds job `name` of `topology`.
pub fn build(name: &str, topology: &Topology) -> Result<Box<dyn Job>> {
    let cfg = topology
        .jobs
        .get(name)
        .ok_or_else(|| RiftError::config(&topology.file, format!("jobs.{name}"), "no such job"))?;
    Ok(match cfg {
        JobConfig::Lake { sources, lake, dlq } => Box::new(lake::LakeJob {
            sources: sources.clone(),
            lake: lake.clone(),
            dlq: dlq.clone(),
        }),
        JobConfig::PlayerFeatures { .. } => Box::new(player_features::FeaturesJob::from_config(name, cfg, topology)?),
        JobConfig::Predictions { .. } => Box::new(predictions::PredictionsJob::from_config(name, cfg, topology)?),
    })
}
