//! `[runtime]`: worker threads, state directory, checkpoint interval, watermark
//! granularity, the admin address, state memory and back-pressure bounds.

use serde::Deserialize;
use std::time::Duration;

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
    /// Bearer token the admin API requires when bound off loopback (or set
    /// `RIFT_ADMIN_TOKEN`; `${VAR}` expansion keeps it out of the file).
    #[serde(default)]
    pub admin_token: Option<String>,
    /// How long a process of a cluster waits for the others to connect
    /// before it fails.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Window accumulators (one per key and pane for tumbling and sliding
    /// windows) a window operator keeps in memory (per worker)
    /// before spilling its state to RocksDB.
    #[serde(default = "default_state_memory_entries")]
    pub state_memory_entries: usize,
    /// Records a source (per worker) may have on their way to the sinks
    /// before it pauses (back-pressure). Read-ahead is held in window state
    /// and checkpoints, so this bounds memory as much as the state budget does.
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
            admin_token: None,
            connect_timeout: default_connect_timeout(),
            state_memory_entries: default_state_memory_entries(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_max_in_flight() -> usize {
    100_000
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
