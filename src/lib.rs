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
//! Modules form layers, read bottom to top: a module imports only from the
//! layers below its own, and within a layer from the modules listed before
//! it (`tests/it/layering.rs` keeps it so). A type lives in the lowest layer
//! that needs it.
//!
//! | module | layer | role |
//! |---|---|---|
//! | [`error`] | leaves | the library's error type, its kinds and exit codes |
//! | [`util`] | leaves | stable hashing, the key separator, clocks, partition values, the I/O runtime's `block_on`, job health |
//! | [`events`] | leaves | every record type that crosses modules: the topics' events, raw and bronze records, outcomes |
//! | [`metrics`] | leaves | Prometheus metrics, typed per component |
//! | [`config`] | configuration | the topology file as pure data: typed, `${VAR}`-expanded, validated with errors naming the key |
//! | [`codec`] | domain | bytes → typed records (JSON, Avro), the decoder contract, the flat-JSON scanner |
//! | [`features`] | domain | declarative feature sets: aggregates, expressions, rows, accumulators, row decoding |
//! | [`model`] | domain | candle models: live and pre-game features, training, evaluation, registry |
//! | [`generator`] | domain | deterministic simulator of ranked play, and replays of the real data files |
//! | [`state`] | domain | RocksDB: the one place that opens state databases, and key encodings |
//! | [`kafka`] | connectors | the Kafka client settings and admin calls shared by source and sink |
//! | [`sources`] | connectors | where records come from: partitions + offsets (`file`, `generator`, `kafka`) |
//! | [`sinks`] | connectors | where results go, with a write / pre-commit / commit lifecycle (`file`, `embedded`, `kafka`, `redis`) |
//! | [`lake`] | connectors | Parquet tables on object_store: bronze, silver, gold rows; staged commits; Delta Lake tables; compaction (background for Delta); point-in-time export |
//! | [`operators`] | operators | dataflow operators, one per file or folder: source, windows, dedup, live state, scoring, snapshots, sink |
//! | [`jobs`] | jobs | dataflow construction, one file per job (`lake`, `gold`, `player_features`, `predictions`), and the job context |
//! | [`runtime`] | runtime | timely workers and processes as a service: the control dataflow that sequences job commands, the job catalog, the admin API and status page, cluster membership and fail-fast |
//! | [`produce`] | commands | `riftstream produce`: the generator and replays into Kafka; model announcements |
//! | [`demo`] | commands | `riftstream demo`: everything end to end on generated data |
//! | [`cli`] | commands | the command line, one function per command, and its exit codes |

pub mod error;
pub mod util;

pub mod events;
pub mod metrics;

pub mod config;

pub mod codec;
pub mod features;
pub mod generator;
pub mod model;
pub mod state;

pub mod kafka;
pub mod lake;
pub mod sinks;
pub mod sources;

pub mod operators;

pub mod jobs;

pub mod runtime;

pub mod cli;
pub mod demo;
pub mod produce;

pub use error::{Result, RiftError};
