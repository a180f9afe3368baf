//! What a job needs from the run it is installed in: its name, the
//! topology, the worker it is on, its health, the probes its sinks report
//! to, and what the workers of the process share ([`RunShared`]). Helpers
//! here open a job's sources and sinks by name and attach sinks to streams.

use crate::config::{LakeFormat, SinkConfig, Topology};
use crate::error::{Result, RiftError};
use crate::events::DeadLetter;
use crate::lake::background::{BackgroundCompactor, CompactSizing};
use crate::lake::tables::LakeRow;
use crate::lake::writer::LakeWriter;
use crate::lake::Lake;
use crate::metrics::{Metrics, SourceMetrics};
use crate::operators::sink::{write_sink, SinkCheckpoints, SinkProbes};
use crate::operators::source::SourceSettings;
use crate::operators::source::WatermarkBoard;
use crate::sinks::file::JsonLinesWriter;
use crate::sinks::SinkWriter;
use crate::util::JobHealth;
use crate::util::Time;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use timely::dataflow::StreamVec;

/// What the workers of one process share during a run, per running job
/// (keyed by the job's catalog id: a job submitted again is a new entry).
#[derive(Default)]
pub struct RunShared {
    /// Jobs failed on some worker: every worker drops them.
    failed: Mutex<BTreeMap<String, String>>,
    /// Watermark boards by job.
    boards: Mutex<BTreeMap<String, Arc<WatermarkBoard>>>,
    /// Per job, once a stop is requested: the epoch sources stop in (0 while running).
    stops: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl RunShared {
    /// The watermark board of job `id`, shared by this process's source readers.
    pub fn watermark_board(&self, id: &str) -> Arc<WatermarkBoard> {
        match self.boards.lock() {
            Ok(mut b) => b.entry(id.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// Marks job `id` failed on every worker of the process (the first reason wins).
    pub fn fail(&self, id: &str, why: String) {
        if let Ok(mut f) = self.failed.lock() {
            f.entry(id.to_string()).or_insert(why);
        }
    }

    /// Asks job `id`'s sources to stop reading and move to `epoch` (the
    /// first epoch after its final checkpoint); the first request wins.
    pub fn request_stop(&self, id: &str, epoch: u64) {
        let _ = self
            .stop_signal(id)
            .compare_exchange(0, epoch.max(1), Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The epoch job `id`'s sources stop in, once a stop is requested.
    pub fn stop_epoch(&self, id: &str) -> Option<u64> {
        match self.stop_signal(id).load(Ordering::SeqCst) {
            0 => None,
            e => Some(e),
        }
    }

    /// What job `id`'s sources and sinks watch for a stop request.
    pub fn stop_signal(&self, id: &str) -> Arc<AtomicU64> {
        match self.stops.lock() {
            Ok(mut s) => s.entry(id.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// Every failed job with its reason.
    pub fn failures(&self) -> BTreeMap<String, String> {
        self.failed.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Why job `id` failed, if it did on any worker of the process.
    pub fn failure(&self, id: &str) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.get(id).cloned())
    }
}

/// What a job needs from the worker it is installed on.
#[derive(Clone)]
pub struct JobContext {
    /// Job name.
    pub job: String,
    /// The job's catalog id (this incarnation of it).
    pub id: String,
    /// The topology.
    pub topology: Arc<Topology>,
    /// This worker's index.
    pub worker: usize,
    /// Number of workers in the cluster.
    pub peers: usize,
    /// Whether the run is bounded.
    pub bounded: bool,
    /// The job's health on this worker.
    pub health: JobHealth,
    /// What the job's sinks have received and committed (sources read them).
    pub probes: SinkProbes,
    /// What this process's workers share during the run.
    pub shared: Arc<RunShared>,
    /// Where the run's metrics go.
    pub metrics: Arc<Metrics>,
    /// The job's checkpointed state in this process.
    pub state: Arc<crate::state::JobState>,
    /// The checkpoint the run restored, if any.
    pub restored: Option<u64>,
}

impl JobContext {
    /// Settings for reading source `name`.
    pub fn source(&self, name: &str, keep_raw: bool) -> Result<SourceSettings> {
        let cfg = self
            .topology
            .sources
            .get(name)
            .ok_or_else(|| RiftError::config(&self.topology.file, format!("sources.{name}"), "no such source"))?;
        Ok(SourceSettings {
            name: name.to_string(),
            source: crate::sources::open_source(&self.topology, name, &self.job, self.bounded)?,
            watermark: cfg.watermark(),
            granularity_ms: self.topology.runtime.watermark_granularity.as_millis().max(1) as i64,
            keep_raw,
            batch: 4096,
            committed: Some(self.probes.committed.clone()),
            progress: Some(self.probes.progress.clone()),
            max_in_flight: self.topology.runtime.max_in_flight,
            board: Some(self.shared.watermark_board(&self.id)),
            epoch_ms: self.topology.runtime.checkpoint_interval.as_millis().max(1) as u64,
            first_epoch: self.restored.map_or(0, |r| r.saturating_add(1)),
            stop: Some(self.shared.stop_signal(&self.id)),
            checkpoint: Some(crate::operators::source::SourceCheckpoint {
                state: self.state.clone(),
                op: format!(
                    "source/{name}/{:016x}",
                    crate::util::stable_hash(cfg.identity().as_bytes())
                ),
                restored: self.restored,
            }),
        })
    }

    /// The checkpoint state of the job's operator with stable id `op`.
    pub fn operator_state(&self, op: &str) -> crate::state::OperatorState {
        crate::state::OperatorState {
            state: self.state.clone(),
            op: op.to_string(),
            restored: self.restored,
        }
    }

    /// How source `name`'s values are encoded.
    pub fn format(&self, name: &str) -> Result<crate::codec::ValueFormat> {
        use crate::codec::{avro::AvroValueDecoder, ValueFormat};
        use crate::config::{Encoding, SourceConfig};
        let cfg = self.topology.sources.get(name);
        let Some(SourceConfig::Kafka {
            encoding: Encoding::Avro,
            topic,
            ..
        }) = cfg
        else {
            return Ok(ValueFormat::Json);
        };
        let topic_kind = cfg.and_then(|c| c.schema()).and_then(|s| s.topic()).ok_or_else(|| {
            RiftError::config(
                &self.topology.file,
                format!("sources.{name}.encoding"),
                "Avro needs one of SPEC's record schemas; generic records are JSON",
            )
        })?;
        let registry = self
            .topology
            .kafka
            .as_ref()
            .and_then(|k| k.schema_registry.clone())
            .ok_or_else(|| {
                RiftError::config(
                    &self.topology.file,
                    "kafka.schema_registry",
                    format!("topic `{topic}` is Avro: a Schema Registry URL is needed"),
                )
            })?;
        Ok(ValueFormat::Avro(std::sync::Arc::new(AvroValueDecoder::new(
            &registry, topic_kind,
        )?)))
    }

    /// Metrics of source `name` in this job.
    pub fn source_metrics(&self, name: &str) -> SourceMetrics {
        self.metrics.source(&self.job, name, self.worker)
    }

    fn sink(&self, name: &str) -> Result<&SinkConfig> {
        self.topology
            .sinks
            .get(name)
            .ok_or_else(|| RiftError::config(&self.topology.file, format!("sinks.{name}"), "no such sink"))
    }

    /// The lake of sink `name`.
    pub fn lake(&self, name: &str) -> Result<Lake> {
        let sink = self.sink(name)?;
        Lake::of_sink(sink).unwrap_or_else(|| {
            Err(RiftError::config(
                &self.topology.file,
                format!("sinks.{name}"),
                format!("expected a lake sink, found `{}`", sink.kind()),
            ))
        })
    }

    /// A lake writer for sink `name`; `output` distinguishes writers in
    /// file names and in the job's checkpoint state.
    pub fn lake_writer<R>(&self, name: &str, output: &str) -> Result<LakeWriter<R>>
    where
        R: LakeRow + serde::Serialize + serde::de::DeserializeOwned,
    {
        match self.sink(name)? {
            SinkConfig::Lake {
                target_file_bytes,
                row_group_rows,
                roll_interval,
                format,
                compact_interval,
                ..
            } => {
                let lake = self.lake(name)?;
                let writer = LakeWriter::new(
                    lake.clone(),
                    &format!("{}-{output}", self.job),
                    (self.worker, self.peers),
                    *target_file_bytes,
                    *row_group_rows,
                    *roll_interval,
                    self.operator_state(&format!("lake/{name}/{output}")),
                )?;
                if *format != LakeFormat::Delta || compact_interval.is_zero() || self.worker != 0 {
                    return Ok(writer);
                }
                let sizing = CompactSizing {
                    target_file_bytes: *target_file_bytes as u64,
                    row_group_rows: *row_group_rows,
                };
                let compactor =
                    BackgroundCompactor::start(lake, &self.job, *compact_interval, sizing, self.metrics.clone());
                Ok(writer.with_compactor(compactor))
            }
            other => Err(RiftError::config(
                &self.topology.file,
                format!("sinks.{name}"),
                format!("expected a lake sink, found `{}`", other.kind()),
            )),
        }
    }

    /// The directory of file sink `name`.
    pub fn file_dir(&self, name: &str) -> Result<PathBuf> {
        match self.sink(name)? {
            SinkConfig::File { path } => Ok(PathBuf::from(path)),
            other => Err(RiftError::config(
                &self.topology.file,
                format!("sinks.{name}"),
                format!("expected a file sink, found `{}`", other.kind()),
            )),
        }
    }

    /// A Kafka writer for sink `name`, whose records are of topic kind `kind`.
    pub fn kafka_writer<T: crate::sinks::kafka::ToKafka + 'static>(
        &self,
        name: &str,
        kind: crate::events::Topic,
    ) -> Result<crate::sinks::kafka::KafkaWriter<T>> {
        use crate::sinks::kafka::{KafkaWriter, ValueEncoder};
        let SinkConfig::Kafka {
            topic,
            encoding,
            exactly_once,
        } = self.sink(name)?
        else {
            return Err(RiftError::config(
                &self.topology.file,
                format!("sinks.{name}"),
                "expected a kafka sink",
            ));
        };
        let kafka =
            self.topology.kafka.as_ref().ok_or_else(|| {
                RiftError::config(&self.topology.file, "kafka", "a kafka sink needs a [kafka] section")
            })?;
        let writer = KafkaWriter::new(kafka, topic, ValueEncoder::new(kafka, *encoding, kind, topic)?, 3)?;
        if !*exactly_once {
            return Ok(writer);
        }
        Ok(writer.exactly_once(crate::sinks::kafka_txn::ExactlyOnce::new(
            kafka,
            topic,
            (&self.job, name),
            (self.worker, self.peers),
            self.operator_state(&format!("kafka/{name}/{topic}")),
        )?))
    }

    /// Attaches `writer` to `stream` as sink `name`.
    pub fn write<'s, T: Clone + 'static, W: SinkWriter<T>>(
        &self,
        stream: StreamVec<'s, Time, T>,
        name: &str,
        writer: W,
    ) {
        write_sink(
            stream,
            name,
            writer,
            SinkCheckpoints {
                state: self.state.clone(),
                restored: self.restored,
                stop: Some(self.shared.stop_signal(&self.id)),
            },
            self.metrics.sink(&self.job, name),
            self.health.clone(),
            &self.probes,
        );
    }

    /// Sends dead letters to sink `dlq` (file or lake), if configured.
    pub fn dead_letters<'s>(&self, stream: StreamVec<'s, Time, DeadLetter>, dlq: Option<&str>) -> Result<()> {
        let Some(name) = dlq else { return Ok(()) };
        match self.sink(name)? {
            SinkConfig::File { path } => {
                let w = JsonLinesWriter::<DeadLetter>::serde(
                    &PathBuf::from(path),
                    &format!("{}-dlq", self.job),
                    self.worker,
                    self.peers,
                )?;
                self.write(stream, name, w);
            }
            SinkConfig::Lake { .. } => {
                let w = self.lake_writer::<DeadLetter>(name, "dlq")?;
                self.write(stream, name, w);
            }
            SinkConfig::Kafka { .. } => {
                let w = self.kafka_writer::<DeadLetter>(name, crate::events::Topic::Dlq)?;
                self.write(stream, name, w);
            }
            other => {
                return Err(RiftError::Usage(format!(
                    "dead letters cannot go to a `{}` sink",
                    other.kind()
                )))
            }
        }
        Ok(())
    }
}
