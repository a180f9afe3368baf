//! The topology file's types and their validation.

use super::expand::expand_env;
use crate::error::{Result, RiftError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A whole topology file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Where this topology was read from (for error messages); not in the file.
    #[serde(skip)]
    pub file: String,
    /// Worker process settings.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Connection settings shared by every `kafka` source and sink.
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
    /// Named sources.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Named sinks.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Named declarative feature sets (windowed aggregations).
    #[serde(default)]
    pub feature_sets: BTreeMap<String, FeatureSetConfig>,
    /// Named jobs: the dataflows a worker runs.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobConfig>,
}

/// `[runtime]`: settings of a worker process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Timely worker threads per process.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Directory of RocksDB state and checkpoints.
    #[serde(default = "default_state_dir")]
    pub state_dir: String,
    /// How often sinks commit and state is checkpointed.
    #[serde(default = "default_checkpoint_interval", with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// Event-time granularity of watermarks (and so of dataflow timestamps).
    #[serde(default = "default_watermark_granularity", with = "humantime_serde")]
    pub watermark_granularity: Duration,
    /// Address of the admin HTTP endpoint (Prometheus `/metrics`), if any.
    #[serde(default)]
    pub admin_addr: Option<String>,
    /// Window accumulators (one per key and pane for tumbling and sliding
    /// windows) a window operator keeps in memory (per worker)
    /// before spilling its state to RocksDB.
    #[serde(default = "default_state_memory_entries")]
    pub state_memory_entries: usize,
    /// Records a source may have on their way to the sinks before it pauses (back-pressure).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            workers: default_workers(),
            state_dir: default_state_dir(),
            checkpoint_interval: default_checkpoint_interval(),
            watermark_granularity: default_watermark_granularity(),
            admin_addr: None,
            state_memory_entries: default_state_memory_entries(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

fn default_max_in_flight() -> usize {
    1_000_000
}

fn default_state_memory_entries() -> usize {
    4_000_000
}

fn default_workers() -> usize {
    1
}
fn default_state_dir() -> String {
    "./state".into()
}
fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_watermark_granularity() -> Duration {
    Duration::from_secs(1)
}

/// `[kafka]`: shared Kafka connection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Schema Registry URL, for Avro topics.
    #[serde(default)]
    pub schema_registry: Option<String>,
    /// Consumer group id.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Extra librdkafka properties (SASL, TLS, …), passed through unchanged.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_group() -> String {
    "riftstream".into()
}

/// How a topic's values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Avro in the Confluent wire format.
    Avro,
    /// One JSON document per message / line.
    Json,
}

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
        #[serde(default = "default_encoding")]
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
        settings: crate::generator::GeneratorConfig,
        /// Watermark settings.
        #[serde(default)]
        watermark: WatermarkConfig,
    },
}

fn default_encoding() -> Encoding {
    Encoding::Avro
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

    /// The source's watermark settings.
    pub fn watermark(&self) -> WatermarkConfig {
        match self {
            SourceConfig::Kafka { watermark, .. }
            | SourceConfig::File { watermark, .. }
            | SourceConfig::Generator { watermark, .. } => *watermark,
        }
    }
}

/// `[sinks.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// JSON-lines files in a directory, one file per output stream and worker.
    File {
        /// Output directory.
        path: String,
    },
    /// The embedded feature store (RocksDB), for runs without Redis.
    Embedded {
        /// Store directory.
        path: String,
    },
    /// The Parquet lake.
    Lake {
        /// Lake root: a local path or an `s3://`, `gs://`, `az://` URL.
        root: String,
        /// Target size of a Parquet file before it is rolled, bytes.
        #[serde(default = "default_file_bytes")]
        target_file_bytes: usize,
        /// Target rows per row group.
        #[serde(default = "default_row_group_rows")]
        row_group_rows: usize,
        /// Longest time a file stays open: files are closed and committed at
        /// least this often (and on size, and at the end of a bounded run).
        /// Longer means fewer, larger files; offsets commit behind it.
        #[serde(default = "default_roll_interval", with = "humantime_serde")]
        roll_interval: Duration,
        /// object_store options (`endpoint`, `allow_http`, `region`,
        /// `access_key_id`, …), over the `AWS_*`/`GOOGLE_*`/`AZURE_*` environment.
        #[serde(default)]
        options: BTreeMap<String, String>,
    },
    /// A Kafka topic.
    Kafka {
        /// Topic name.
        topic: String,
        /// Value encoding.
        #[serde(default = "default_encoding")]
        encoding: Encoding,
    },
    /// The Redis online feature store.
    Redis {
        /// `redis://host:port/db`.
        url: String,
        /// Time to live of each entity hash.
        #[serde(default = "default_ttl", with = "humantime_serde")]
        ttl: Duration,
    },
}

fn default_roll_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_file_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_row_group_rows() -> usize {
    128 * 1024
}
fn default_ttl() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

impl SinkConfig {
    /// The kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::File { .. } => "file",
            SinkConfig::Embedded { .. } => "embedded",
            SinkConfig::Lake { .. } => "lake",
            SinkConfig::Kafka { .. } => "kafka",
            SinkConfig::Redis { .. } => "redis",
        }
    }
}

/// Window kinds of SPEC "Window semantics".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size`.
    Tumbling,
    /// Windows of `size` every `slide`.
    Sliding,
    /// Activity sessions closed by a `gap` of inactivity.
    Session,
}

/// A feature set's window.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Tumbling, sliding or session.
    pub kind: WindowKind,
    /// Window length (tumbling, sliding).
    #[serde(default, with = "humantime_serde")]
    pub size: Option<Duration>,
    /// Hop between window starts (sliding).
    #[serde(default, with = "humantime_serde")]
    pub slide: Option<Duration>,
    /// Inactivity gap that closes a session.
    #[serde(default, with = "humantime_serde")]
    pub gap: Option<Duration>,
    /// How long after a window fired late events still update it (re-fire).
    #[serde(default, with = "humantime_serde")]
    pub allowed_lateness: Option<Duration>,
}

/// `[feature_sets.NAME]`: a declarative windowed aggregation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSetConfig {
    /// The source (by name) whose records are aggregated.
    pub source: String,
    /// A list field whose elements become the rows (e.g. a match's `participants`).
    #[serde(default)]
    pub explode: Option<String>,
    /// The key field (e.g. `player_id`).
    pub key: String,
    /// The event-time field, UTC ms (e.g. `end_time`, `ts`).
    pub time: String,
    /// The window.
    pub window: WindowConfig,
    /// Aggregates by output name: `count`, `sum(f)`, `avg(f)`, `min(f)`, `max(f)`,
    /// `last(f)`, `count_distinct(f)`.
    pub aggregates: BTreeMap<String, String>,
    /// Derived features by output name: arithmetic over aggregate names,
    /// e.g. `(kills + assists) / max(1, deaths)`.
    #[serde(default)]
    pub features: BTreeMap<String, String>,
    /// Which outputs go to the online feature store (default: all features and aggregates).
    #[serde(default)]
    pub online: Option<Vec<String>>,
    /// Numbers for the values of string fields, so they can be aggregated,
    /// e.g. `{ tier = { IRON = 0, BRONZE = 1, … } }`. A value missing from
    /// its map rejects the record (dead letter) with the known values.
    #[serde(default)]
    pub lookups: BTreeMap<String, BTreeMap<String, f64>>,
}

/// `[jobs.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobConfig {
    /// Bronze/silver/gold lake tables from raw topics.
    Lake {
        /// Sources to ingest.
        sources: Vec<String>,
        /// The lake sink.
        lake: String,
        /// Sink for dead letters.
        #[serde(default)]
        dlq: Option<String>,
    },
    /// Windowed player (and live team) features.
    PlayerFeatures {
        /// Feature sets to compute.
        feature_sets: Vec<String>,
        /// Online feature store sink (`redis` or `embedded`).
        #[serde(default)]
        online: Option<String>,
        /// Lake sink for the offline store and late events.
        #[serde(default)]
        offline: Option<String>,
        /// File sink for window results (one file per feature set).
        #[serde(default)]
        output: Option<String>,
        /// Sink for dead letters.
        #[serde(default)]
        dlq: Option<String>,
    },
    /// Pre-game and live win-probability predictions.
    Predictions {
        /// Source of game events (live predictions).
        #[serde(default)]
        live_source: Option<String>,
        /// Source of prediction requests (pre-game predictions).
        #[serde(default)]
        requests_source: Option<String>,
        /// Source of finished matches (features for pre-game, outcomes for accuracy).
        #[serde(default)]
        matches_source: Option<String>,
        /// Sinks for predictions (`kafka`, `file`, `lake`).
        outputs: Vec<String>,
        /// Sink for dead letters.
        #[serde(default)]
        dlq: Option<String>,
        /// Model registry directory (default: `models` under the first lake sink's root).
        #[serde(default)]
        registry: Option<String>,
        /// Registered name of the live model.
        #[serde(default = "default_live_model")]
        live_model: String,
        /// Registered name of the pre-game model.
        #[serde(default = "default_pre_game_model")]
        pre_game_model: String,
        /// Feature sets the pre-game model reads (computed in this job from
        /// their own sources, kept per player, joined with each request).
        #[serde(default)]
        pre_game_feature_sets: Vec<String>,
        /// How often workers look for a newer registered version (hot reload).
        #[serde(default = "default_model_poll", with = "humantime_serde")]
        model_poll_interval: Duration,
        /// Registered name of a challenger live model (champion/challenger).
        #[serde(default)]
        challenger_model: Option<String>,
        /// Share of matches, in `[0, 1]`, also scored by the challenger.
        #[serde(default)]
        challenger_share: f64,
    },
}

fn default_model_poll() -> Duration {
    Duration::from_secs(2)
}

fn default_live_model() -> String {
    "live".into()
}
fn default_pre_game_model() -> String {
    "pre_game".into()
}

impl JobConfig {
    /// The kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            JobConfig::Lake { .. } => "lake",
            JobConfig::PlayerFeatures { .. } => "player_features",
            JobConfig::Predictions { .. } => "predictions",
        }
    }
}

impl Topology {
    /// Reads, expands and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology> {
        let text = std::fs::read_to_string(path).map_err(|e| RiftError::io(path, e))?;
        Topology::parse(&text, &path.display().to_string())
    }

    /// Parses, expands and validates topology text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Topology> {
        let mut doc: toml::Value = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
                .unwrap_or(0);
            RiftError::config(file, format!("line {line}"), e.message().to_string())
        })?;
        expand_env(&mut doc, file)?;
        let mut topology: Topology = serde_path_to_error::deserialize(doc).map_err(|e| {
            let key = e.path().to_string();
            RiftError::config(file, key, e.into_inner().message().to_string())
        })?;
        topology.file = file.to_string();
        topology.validate()?;
        Ok(topology)
    }

    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> RiftError {
        RiftError::config(&self.file, key, message)
    }

    /// Checks values and cross-references; every error names its key.
    pub fn validate(&self) -> Result<()> {
        if self.runtime.workers == 0 || self.runtime.workers > 256 {
            return Err(self.err("runtime.workers", "must be between 1 and 256"));
        }
        if self.runtime.watermark_granularity.is_zero() {
            return Err(self.err("runtime.watermark_granularity", "must be positive"));
        }
        for (name, source) in &self.sources {
            let key = format!("sources.{name}");
            match source {
                SourceConfig::Kafka { .. } if self.kafka.is_none() => {
                    return Err(self.err(&key, "a kafka source needs a [kafka] section with `brokers`"))
                }
                SourceConfig::Kafka {
                    topic, schema: None, ..
                } if source.schema().is_none() => {
                    return Err(self.err(
                        format!("{key}.schema"),
                        format!("topic `{topic}` is not one of SPEC's topics; say which `schema` its records have"),
                    ))
                }
                SourceConfig::File { splits, .. } if *splits == 0 || *splits > 4096 => {
                    return Err(self.err(format!("{key}.splits"), "must be between 1 and 4096"))
                }
                SourceConfig::Generator {
                    schema: RecordSchema::Records | RecordSchema::ModelUpdates,
                    ..
                } => {
                    return Err(self.err(
                        format!("{key}.schema"),
                        "the generator yields matches, player_stats, game_events or prediction_requests",
                    ))
                }
                _ => {}
            }
        }
        for (name, sink) in &self.sinks {
            if let SinkConfig::Kafka { .. } = sink {
                if self.kafka.is_none() {
                    return Err(self.err(
                        format!("sinks.{name}"),
                        "a kafka sink needs a [kafka] section with `brokers`",
                    ));
                }
            }
            if let SinkConfig::Lake {
                target_file_bytes,
                row_group_rows,
                ..
            } = sink
            {
                if *target_file_bytes < 1024 {
                    return Err(self.err(format!("sinks.{name}.target_file_bytes"), "must be at least 1024"));
                }
                if *row_group_rows == 0 {
                    return Err(self.err(format!("sinks.{name}.row_group_rows"), "must be positive"));
                }
            }
        }
        for (name, set) in &self.feature_sets {
            self.validate_feature_set(name, set)?;
        }
        for (name, job) in &self.jobs {
            self.validate_job(name, job)?;
        }
        Ok(())
    }

    fn validate_feature_set(&self, name: &str, set: &FeatureSetConfig) -> Result<()> {
        let key = format!("feature_sets.{name}");
        self.require_source(&format!("{key}.source"), &set.source)?;
        let w = &set.window;
        let positive = |d: Option<Duration>, field: &str| -> Result<u64> {
            match d {
                Some(d) if d.as_millis() > 0 => Ok(d.as_millis() as u64),
                Some(_) => Err(self.err(format!("{key}.window.{field}"), "must be positive")),
                None => Err(self.err(
                    format!("{key}.window.{field}"),
                    format!("a {:?} window needs `{field}`", w.kind).to_lowercase(),
                )),
            }
        };
        match w.kind {
            WindowKind::Tumbling => {
                positive(w.size, "size")?;
            }
            WindowKind::Sliding => {
                let size = positive(w.size, "size")?;
                let slide = positive(w.slide, "slide")?;
                if slide > size {
                    return Err(self.err(format!("{key}.window.slide"), "must not exceed `size`"));
                }
            }
            WindowKind::Session => {
                positive(w.gap, "gap")?;
            }
        }
        if set.aggregates.is_empty() {
            return Err(self.err(format!("{key}.aggregates"), "name at least one aggregate"));
        }
        crate::features::FeatureSpec::compile(name, set)
            .map_err(|(field, message)| self.err(format!("{key}.{field}"), message))?;
        Ok(())
    }

    fn validate_job(&self, name: &str, job: &JobConfig) -> Result<()> {
        let key = format!("jobs.{name}");
        match job {
            JobConfig::Lake { sources, lake, dlq } => {
                for (i, s) in sources.iter().enumerate() {
                    self.require_source(&format!("{key}.sources[{i}]"), s)?;
                }
                self.require_sink(&format!("{key}.lake"), lake, &["lake"])?;
                if let Some(d) = dlq {
                    self.require_sink(&format!("{key}.dlq"), d, &["kafka", "file", "lake"])?;
                }
            }
            JobConfig::PlayerFeatures {
                feature_sets,
                online,
                offline,
                output,
                dlq,
            } => {
                if feature_sets.is_empty() {
                    return Err(self.err(format!("{key}.feature_sets"), "name at least one feature set"));
                }
                for (i, f) in feature_sets.iter().enumerate() {
                    if !self.feature_sets.contains_key(f) {
                        return Err(self.err(
                            format!("{key}.feature_sets[{i}]"),
                            format!(
                                "unknown feature set `{f}`; defined: {}",
                                names(self.feature_sets.keys())
                            ),
                        ));
                    }
                }
                if let Some(s) = online {
                    self.require_sink(&format!("{key}.online"), s, &["redis", "embedded"])?;
                }
                if let Some(s) = offline {
                    self.require_sink(&format!("{key}.offline"), s, &["lake"])?;
                }
                if let Some(s) = output {
                    self.require_sink(&format!("{key}.output"), s, &["file"])?;
                }
                if let Some(d) = dlq {
                    self.require_sink(&format!("{key}.dlq"), d, &["kafka", "file", "lake"])?;
                }
                if offline.is_none() && output.is_none() {
                    return Err(self.err(
                        &key,
                        "name `offline` (a lake sink) or `output` (a file sink): late events are stored there",
                    ));
                }
            }
            JobConfig::Predictions {
                live_source,
                requests_source,
                matches_source,
                outputs,
                dlq,
                ..
            } => {
                for (field, s) in [
                    ("live_source", live_source),
                    ("requests_source", requests_source),
                    ("matches_source", matches_source),
                ] {
                    if let Some(s) = s {
                        self.require_source(&format!("{key}.{field}"), s)?;
                    }
                }
                if live_source.is_none() && requests_source.is_none() {
                    return Err(self.err(&key, "name a `live_source`, a `requests_source` or both"));
                }
                if outputs.is_empty() {
                    return Err(self.err(format!("{key}.outputs"), "name at least one sink"));
                }
                for (i, s) in outputs.iter().enumerate() {
                    self.require_sink(&format!("{key}.outputs[{i}]"), s, &["kafka", "file", "lake"])?;
                }
                if let Some(d) = dlq {
                    self.require_sink(&format!("{key}.dlq"), d, &["kafka", "file", "lake"])?;
                }
            }
        }
        Ok(())
    }

    fn require_source(&self, key: &str, name: &str) -> Result<&SourceConfig> {
        self.sources.get(name).ok_or_else(|| {
            self.err(
                key,
                format!("unknown source `{name}`; defined: {}", names(self.sources.keys())),
            )
        })
    }

    fn require_sink(&self, key: &str, name: &str, kinds: &[&str]) -> Result<&SinkConfig> {
        let sink = self.sinks.get(name).ok_or_else(|| {
            self.err(
                key,
                format!("unknown sink `{name}`; defined: {}", names(self.sinks.keys())),
            )
        })?;
        if !kinds.contains(&sink.kind()) {
            return Err(self.err(
                key,
                format!("sink `{name}` is a `{}` sink; expected one of {kinds:?}", sink.kind()),
            ));
        }
        Ok(sink)
    }

    /// The lake root of the first `lake` sink, if any.
    pub fn lake_root(&self) -> Option<&str> {
        self.sinks.values().find_map(|s| match s {
            SinkConfig::Lake { root, .. } => Some(root.as_str()),
            _ => None,
        })
    }

    /// Opens the lake of the first lake sink, with its object_store options.
    pub fn open_lake(&self) -> Result<crate::lake::Lake> {
        self.sinks
            .values()
            .find_map(|s| match s {
                SinkConfig::Lake { root, options, .. } => Some(crate::lake::Lake::open_with(root, options)),
                _ => None,
            })
            .unwrap_or_else(|| Err(RiftError::config(&self.file, "sinks", "no lake sink")))
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(|s| s.as_str()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
