//! `[sinks.NAME]`: where results go (`file`, `embedded`, `lake`, `kafka`, `redis`).

use super::Encoding;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

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
        /// Table format: `parquet` (hive-partitioned directories) or `delta`
        /// (Delta Lake tables: atomic commits, background compaction, time travel).
        #[serde(default)]
        format: LakeFormat,
        /// How often closed partitions of Delta tables are compacted in the
        /// background (`0s`: never).
        #[serde(default = "default_compact_interval", with = "humantime_serde")]
        compact_interval: Duration,
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
        #[serde(default)]
        encoding: Encoding,
        /// Transactions committed with each checkpoint (consumers reading
        /// `read_committed` see each record once); `false`: the idempotent
        /// producer alone, at least once, for brokers without transactions.
        #[serde(default = "default_exactly_once")]
        exactly_once: bool,
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

/// The lake sink's table format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LakeFormat {
    /// Plain Parquet files in hive-partitioned directories.
    #[default]
    Parquet,
    /// Delta Lake tables: the same files, committed through a transaction log.
    Delta,
}

fn default_compact_interval() -> Duration {
    Duration::from_secs(300)
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
fn default_exactly_once() -> bool {
    true
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
