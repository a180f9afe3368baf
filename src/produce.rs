//! `riftstream produce`: feeds Kafka topics from the generator or from
//! replays of the real data files, as Avro (through the Schema Registry) or
//! JSON. Topics are created when missing; every record is acknowledged by
//! the broker (idempotent producer, flushed) before the command reports it.

use crate::config::{Encoding, KafkaConfig, RecordSchema, SinkConfig, SourceConfig, Topology};
use crate::error::{Result, RiftError};
use crate::events::{Event, ModelUpdate, Topic};
use crate::generator::{simulate, GeneratorConfig};
use crate::sinks::kafka::{KafkaRecord, KafkaWriter, ToKafka, ValueEncoder};
use crate::sinks::SinkWriter;

impl<E: Event> ToKafka for E {
    fn to_kafka(&self, encoder: &ValueEncoder) -> Result<KafkaRecord> {
        Ok(KafkaRecord {
            key: Some(self.key().as_bytes().to_vec()),
            value: encoder.encode(self)?,
            headers: Vec::new(),
        })
    }
}

/// Where and how to produce.
#[derive(Debug, Clone)]
pub struct ProduceTarget {
    /// Brokers, Schema Registry, client properties.
    pub kafka: KafkaConfig,
    /// Value encoding.
    pub encoding: Encoding,
    /// Partitions of topics created here.
    pub partitions: i32,
    /// Prefix of every topic name (empty for SPEC's names).
    pub topic_prefix: String,
    /// Records per second to produce at (per topic); `None`: as fast as possible.
    pub rate: Option<f64>,
}

/// Produces `records` of one topic kind; returns how many.
pub fn produce<E: Event>(target: &ProduceTarget, mut records: Vec<E>) -> Result<usize> {
    let topic = format!("{}{}", target.topic_prefix, E::TOPIC.kafka_name());
    let encoder = ValueEncoder::new(&target.kafka, target.encoding, E::TOPIC, &topic)?;
    let mut writer = KafkaWriter::<E>::new(&target.kafka, &topic, encoder, target.partitions)?;
    let n = records.len();
    match target.rate.filter(|r| *r > 0.0) {
        None => writer.write(&mut records)?,
        Some(rate) => {
            // Paced in batches of ~10 ms worth of records.
            let started = std::time::Instant::now();
            let chunk = ((rate / 100.0).ceil() as usize).max(1);
            let mut sent = 0usize;
            let mut rest = records.into_iter();
            loop {
                let mut batch: Vec<E> = rest.by_ref().take(chunk).collect();
                if batch.is_empty() {
                    break;
                }
                sent += batch.len();
                writer.write(&mut batch)?;
                let due = std::time::Duration::from_secs_f64(sent as f64 / rate);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
    }
    // Retry failed deliveries a few times (each attempt resends what failed).
    let mut attempt = 0;
    loop {
        match writer.pre_commit(0) {
            Ok(()) => return Ok(n),
            Err(e) if e.is_retryable() && attempt < 5 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Sends one record and waits for its delivery once, without retrying:
/// for announcements (a registered model) that must not hang a command.
pub fn announce<E: Event>(target: &ProduceTarget, record: E) -> Result<()> {
    let topic = format!("{}{}", target.topic_prefix, E::TOPIC.kafka_name());
    // Fail fast when no broker answers, instead of waiting out every timeout.
    crate::kafka::check_reachable(&target.kafka)?;
    let encoder = ValueEncoder::new(&target.kafka, target.encoding, E::TOPIC, &topic)?;
    let mut writer = KafkaWriter::<E>::new(&target.kafka, &topic, encoder, target.partitions)?;
    writer.write(&mut vec![record])?;
    writer.pre_commit(0)
}

/// Simulates ranked play and produces matches, ranked snapshots, live games'
/// events and a prediction request per live (upcoming) match.
pub fn produce_simulation(target: &ProduceTarget, cfg: &GeneratorConfig) -> Result<Vec<(Topic, usize)>> {
    let sim = simulate(cfg);
    Ok(vec![
        (Topic::Matches, produce(target, sim.matches)?),
        (Topic::PlayerStats, produce(target, sim.player_stats)?),
        (Topic::GameEvents, produce(target, sim.game_events)?),
        (Topic::PredictionRequests, produce(target, sim.requests)?),
    ])
}

/// The encoding of `topology`'s topics, for records it does not read itself
/// (a model announcement): that of its `model_updates` source if it has
/// one, else of its first Kafka source or sink, else Avro (SPEC's default).
pub fn topology_encoding(topology: &Topology) -> Encoding {
    let sources = topology.sources.values().filter_map(|s| match s {
        SourceConfig::Kafka { encoding, .. } => Some((s.schema() == Some(RecordSchema::ModelUpdates), *encoding)),
        _ => None,
    });
    let sinks = topology.sinks.values().filter_map(|s| match s {
        SinkConfig::Kafka { encoding, .. } => Some((false, *encoding)),
        _ => None,
    });
    let all: Vec<(bool, Encoding)> = sources.chain(sinks).collect();
    all.iter()
        .find(|(updates, _)| *updates)
        .or(all.first())
        .map_or(Encoding::Avro, |(_, e)| *e)
}

/// Announces model version `dir` (registered as `model_name`, of family
/// `model_kind`) on `esports.model_updates` through `topology`'s Kafka, in
/// its encoding; `Ok(None)` when the topology has no Kafka (workers notice
/// new versions in the registry by themselves). Gives up within seconds
/// when no broker answers.
pub fn announce_model(
    topology: &Topology,
    model_name: &str,
    model_kind: &str,
    dir: &std::path::Path,
) -> Result<Option<ModelUpdate>> {
    let Some(mut kafka) = topology.kafka.clone() else {
        return Ok(None);
    };
    let version = dir
        .file_name()
        .map(|v| v.to_string_lossy().to_string())
        .ok_or_else(|| RiftError::Usage(format!("{} is not a model version directory", dir.display())))?;
    let update = ModelUpdate {
        model_name: model_name.to_string(),
        version,
        path: dir.display().to_string(),
        model_kind: model_kind.to_string(),
        created_at: crate::util::now_ms(),
    };
    // An announcement, not a pipeline: give up quickly when no broker answers.
    kafka.properties.insert("message.timeout.ms".into(), "5000".into());
    let target = ProduceTarget {
        kafka,
        encoding: topology_encoding(topology),
        partitions: 1,
        topic_prefix: String::new(),
        rate: None,
    };
    announce(&target, update.clone())?;
    Ok(Some(update))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(text: &str) -> Topology {
        Topology::parse(text, "t.toml").unwrap()
    }

    #[test]
    fn announcements_use_the_topologys_encoding() {
        let kafka = "[kafka]\nbrokers = \"b:9092\"\n";
        let json_sink =
            format!("{kafka}[sinks.p]\nkind = \"kafka\"\ntopic = \"esports.predictions\"\nencoding = \"json\"\n");
        assert_eq!(topology_encoding(&topology(&json_sink)), Encoding::Json);
        let updates = format!(
            "{json_sink}[sources.u]\nkind = \"kafka\"\ntopic = \"esports.model_updates\"\nencoding = \"avro\"\n"
        );
        assert_eq!(topology_encoding(&topology(&updates)), Encoding::Avro);
        assert_eq!(topology_encoding(&topology("")), Encoding::Avro);
    }

    #[test]
    fn no_kafka_means_no_announcement() {
        let dir = std::path::Path::new("lake/models/live/v3");
        assert!(announce_model(&topology(""), "live", "logistic", dir)
            .unwrap()
            .is_none());
    }
}
