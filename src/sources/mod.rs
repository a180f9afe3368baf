//! Sources: where records come from, as partitions plus offsets.
//!
//! A [`Source`] has a fixed set of partitions (Kafka partitions, byte-range
//! splits of files, shards of the generator). Each timely worker opens a
//! [`SourceReader`] over the partitions assigned to it (`partition % peers ==
//! worker`), and the source operator (`operators::source`) polls it, decodes
//! and validates each record, stamps it with its partition's watermark, and
//! routes failures to the dead-letter stream. Readers report their position
//! per partition so a checkpoint can record and restore offsets.
//!
//! Sources are chosen by `kind` in `topology.toml` through [`open_source`].

pub mod file;
pub mod generator;
pub mod kafka;

use crate::config::{SourceConfig, Topology};
use crate::error::{Result, RiftError};
use crate::events::RawRecord;
use std::sync::Arc;

/// What a poll found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PollStatus {
    /// Partitions that reached their end during this poll (bounded sources).
    pub finished: Vec<u32>,
    /// True when the reader returned fewer records than asked because none were ready.
    pub idle: bool,
}

/// Reads the partitions of a source assigned to one worker.
pub trait SourceReader {
    /// Appends up to `max` records to `out`.
    fn poll(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<PollStatus>;

    /// The partitions this reader owns.
    fn partitions(&self) -> &[u32];

    /// Next offset to read, per partition (for checkpoints).
    fn positions(&self) -> Vec<(u32, u64)>;

    /// Tells the source that everything before `positions` is durably processed
    /// (Kafka commits offsets; files and the generator need nothing).
    fn commit(&mut self, _positions: &[(u32, u64)]) -> Result<()> {
        Ok(())
    }

    /// Records between the read position and the end of the partitions,
    /// as last seen (Kafka: the high watermarks of the latest fetches).
    fn lag(&self) -> Option<u64> {
        None
    }

    /// Stops (or resumes) fetching, for back-pressure; polls while paused return nothing.
    fn set_paused(&mut self, _paused: bool) -> Result<()> {
        Ok(())
    }
}

/// A named, configured source.
pub trait Source: Send + Sync {
    /// The topic (or file) name used in dead letters and bronze.
    fn topic(&self) -> &str;

    /// All partitions.
    fn partitions(&self) -> Result<Vec<u32>>;

    /// Opens a reader over `partitions`, starting at the given offsets (or the beginning).
    fn open(&self, partitions: &[u32], start: &[(u32, u64)]) -> Result<Box<dyn SourceReader>>;

    /// Whether a `--bounded` run can read this source to its end.
    fn is_bounded(&self) -> bool;
}

/// Opens the source `name` of `topology`.
pub fn open_source(topology: &Topology, name: &str, job: &str, bounded: bool) -> Result<Arc<dyn Source>> {
    let cfg = topology
        .sources
        .get(name)
        .ok_or_else(|| RiftError::config(&topology.file, format!("sources.{name}"), "no such source"))?;
    match cfg {
        SourceConfig::File { path, splits, .. } => Ok(Arc::new(file::FileSource::new(path, *splits)?)),
        SourceConfig::Generator { schema, settings, .. } => {
            Ok(Arc::new(generator::GeneratorSource::new(settings.clone(), *schema)?))
        }
        SourceConfig::Kafka { topic, .. } => {
            let kafka = topology
                .kafka
                .clone()
                .ok_or_else(|| RiftError::config(&topology.file, "kafka", "a kafka source needs a [kafka] section"))?;
            Ok(Arc::new(kafka::KafkaSource::new(kafka, topic, job, bounded)))
        }
    }
}

/// The partitions of `all` that worker `index` of `peers` reads.
pub fn assigned(all: &[u32], index: usize, peers: usize) -> Vec<u32> {
    all.iter().copied().filter(|p| *p as usize % peers == index).collect()
}
