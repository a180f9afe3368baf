//! # riftstream
//!
//! A stream-processing engine for League of Legends match data: Kafka topics
//! of matches, ranked snapshots and live game events feed timely/differential
//! dataflow jobs that compute event-time windowed player features and
//! candle-based win-probability predictions, and write online features to a
//! feature store, predictions to Kafka and files, and every layer of data to
//! Parquet lake tables.
//!
//! # Layout
//!
//! | module | role |
//! |---|---|
//! | [`config`] | the topology file: typed, `${VAR}`-expanded, validated with errors naming the key |
//! | [`events`] | typed records of every topic, with validation |
//! | [`codec`] | bytes → typed records (JSON; Avro with the Kafka connector) |
//! | [`generator`] | deterministic simulator of ranked play (players, drafts, timelines, frames) |
//! | [`sources`] | where records come from: partitions + offsets (`file`, `generator`, `kafka`) |
//! | [`operators`] | dataflow operators, one per file: source, windows, dedup, live state, live and pre-game scoring, snapshots, sink |
//! | [`features`] | declarative feature sets: aggregates, expressions, rows, accumulators |
//! | [`jobs`] | one dataflow per job: `lake`, `player_features`, `predictions` |
//! | [`sinks`] | where results go, with a write / pre-commit / commit lifecycle (`file`, `embedded`, `kafka`, `redis`) |
//! | [`lake`] | Parquet tables on object_store: bronze, silver, gold; staged commits; compaction; point-in-time export |
//! | [`model`] | candle models: live and pre-game features, training, evaluation, registry |
//! | [`runtime`] | timely workers: installing jobs, stepping, health; the I/O runtime |
//! | [`metrics`] | Prometheus metrics, typed per component |
//! | [`produce`] | `riftstream produce`: the generator and replays into Kafka |
//! | [`demo`] | `riftstream demo`: everything end to end on generated data |
//! | [`error`] | the library's error type |

pub mod codec;
pub mod config;
pub mod demo;
pub mod error;
pub mod events;
pub mod features;
pub mod generator;
pub mod jobs;
pub mod lake;
pub mod metrics;
pub mod model;
pub mod operators;
pub mod produce;
pub mod runtime;
pub mod sinks;
pub mod sources;

pub use error::{Result, RiftError};
