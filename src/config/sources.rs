//! `[sources.NAME]`: where records come from (`kafka`, `file`, `generator`),
//! the record schema each yields and its watermark settings.

use super::{Encoding, GeneratorConfig};
use serde::Deserialize;
use std::time::Duration;

/// The record type a source yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordSchema {
    /// `esports.matches` records.
    Matches,
    /// `esports.player_stats` records.
    PlayerStats,
    /// `esports.game_events` records.
    GameEvents,
    /// `esports.prediction_requests` records.
    PredictionRequests,
    /// `esports.model_updates` records.
    ModelUpdates,
    /// Any JSON object carrying the fields a feature set names.
    Records,
}

impl RecordSchema {
    /// The topic whose schema this is, if it is one of SPEC's.
    pub fn topic(self) -> Option<crate::events::Topic> {
        use crate::events::Topic;
        match self {
            RecordSchema::Matches => Some(Topic::Matches),
            RecordSchema::PlayerStats => Some(Topic::PlayerStats),
            RecordSchema::GameEvents => Some(Topic::GameEvents),
            RecordSchema::PredictionRequests => Some(Topic::PredictionRequests),
            RecordSchema::ModelUpdates => Some(Topic::ModelUpdates),
            RecordSchema::Records => None,
        }
    }
}

/// Watermark settings of a source (SPEC "Window semantics").
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkConfig {
    /// Watermark = largest event time seen minus this.
    #[serde(default = "default_ooo", with = "humantime_serde")]
    pub max_out_of_orderness: Duration,
    /// A partition silent for longer than this no longer holds the watermark back.
    #[serde(default = "default_idle", with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for WatermarkConfig {
    fn default() -> Self {
        WatermarkConfig {
            max_out_of_orderness: default_ooo(),
            idle_timeout: default_idle(),
        }
    }
}

fn default_ooo() -> Duration {
    Duration::from_secs(5)
}
fn default_idle() -> Duration {
    Duration::from_secs(30)
}

/// `[sources.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// A Kafka topic (partitions spread over workers).
    Kafka {
        /// Topic name.
        topic: String,
        /// Record type; defaults from the topic name.
        #[serde(default)]
        schema: Option<RecordSchema>,
        /// Value encoding.
        #[serde(default)]
        encoding: Encoding,
        /// Watermark settings.
        #[serde(default)]
        watermark: WatermarkConfig,
    },
    /// A JSON-lines file, or a directory of them, read in byte-range splits.
    File {
        /// File or directory path.
        path: String,
        /// Record type.
        schema: RecordSchema,
        /// Number of splits per file (fixed, so results do not depend on worker count).
        #[serde(default = "default_splits")]
        splits: usize,
        /// Watermark settings.
        #[serde(default)]
        watermark: WatermarkConfig,
    },
    /// The built-in simulator of ranked play.
    Generator {
        /// Which of the simulator's topics this source yields.
        schema: RecordSchema,
        /// Simulation settings.
        #[serde(default)]
        settings: GeneratorConfig,
        /// Watermark settings.
        #[serde(default)]
        watermark: WatermarkConfig,
    },
}

fn default_splits() -> usize {
    4
}

impl SourceConfig {
    /// The kind name (`kafka`, `file`, `generator`).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Kafka { .. } => "kafka",
            SourceConfig::File { .. } => "file",
            SourceConfig::Generator { .. } => "generator",
        }
    }

    /// The record type the source yields.
    pub fn schema(&self) -> Option<RecordSchema> {
        match self {
            SourceConfig::Kafka { schema, topic, .. } => schema.or_else(|| {
                crate::events::Topic::parse(topic).and_then(|t| match t {
                    crate::events::Topic::Matches => Some(RecordSchema::Matches),
                    crate::events::Topic::PlayerStats => Some(RecordSchema::PlayerStats),
                    crate::events::Topic::GameEvents => Some(RecordSchema::GameEvents),
                    crate::events::Topic::PredictionRequests => Some(RecordSchema::PredictionRequests),
                    crate::events::Topic::ModelUpdates => Some(RecordSchema::ModelUpdates),
                    _ => None,
                })
            }),
            SourceConfig::File { schema, .. } | SourceConfig::Generator { schema, .. } => Some(*schema),
        }
    }

    /// What the source reads, independent of its name: a checkpointed
    /// position is restored only into a source that reads the same thing
    /// (the same file or directory, topic, or simulation).
    pub fn identity(&self) -> String {
        match self {
            SourceConfig::Kafka { topic, .. } => format!("kafka:{topic}"),
            SourceConfig::File { path, splits, .. } => format!("file:{path}:{splits}"),
            SourceConfig::Generator { schema, settings, .. } => format!("generator:{schema:?}:{settings:?}"),
        }
    }

    /// The source's watermark settings.
    pub fn watermark(&self) -> WatermarkConfig {
        match self {
            SourceConfig::Kafka { watermark, .. }
            | SourceConfig::File { watermark, .. }
            | SourceConfig::Generator { watermark, .. } => *watermark,
        }
    }
}
