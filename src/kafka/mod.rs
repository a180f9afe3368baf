//! The Kafka client settings and admin calls shared by the `kafka` source
//! and sink: one place builds librdkafka configurations from `[kafka]`,
//! lists partitions, creates topics and classifies client errors (which a
//! retry can fix, which it cannot).

use crate::config::KafkaConfig;
use crate::error::{Result, RiftError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientConfig;
use std::time::Duration;

/// Client settings shared by riftstream's consumers and producers.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in &kafka.properties {
        cfg.set(k, v);
    }
    cfg
}

pub fn kafka_err(e: KafkaError) -> RiftError {
    let retryable = !matches!(
        e,
        KafkaError::MessageConsumptionFatal(_) | KafkaError::ClientCreation(_)
    );
    RiftError::external_caused("kafka", e, retryable)
}

/// Lists a topic's partitions.
pub fn topic_partitions(kafka: &KafkaConfig, topic: &str) -> Result<Vec<u32>> {
    let consumer: BaseConsumer = client_config(kafka).create().map_err(kafka_err)?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(kafka_err)?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| RiftError::external("kafka", format!("topic `{topic}` not found"), true))?;
    if let Some(e) = t.error() {
        return Err(RiftError::external("kafka", format!("topic `{topic}`: {e:?}"), true));
    }
    let mut parts: Vec<u32> = t.partitions().iter().map(|p| p.id() as u32).collect();
    parts.sort_unstable();
    if parts.is_empty() {
        return Err(RiftError::external(
            "kafka",
            format!("topic `{topic}` has no partitions yet"),
            true,
        ));
    }
    Ok(parts)
}

/// How long a broker has to answer the first metadata request before the
/// cluster counts as unreachable.
pub const REACHABLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Fails fast, naming the addresses tried, when no broker of `kafka` answers
/// a metadata request within [`REACHABLE_TIMEOUT`].
pub fn check_reachable(kafka: &KafkaConfig) -> Result<()> {
    let probe: BaseConsumer = client_config(kafka).create().map_err(kafka_err)?;
    probe.fetch_metadata(None, REACHABLE_TIMEOUT).map(|_| ()).map_err(|e| {
        RiftError::external(
            "kafka",
            format!(
                "no broker answered at {} within {}s: {e}",
                kafka.brokers,
                REACHABLE_TIMEOUT.as_secs()
            ),
            true,
        )
    })
}

/// Creates `topics` (name, partitions) that do not exist yet.
pub fn ensure_topics(kafka: &KafkaConfig, topics: &[(&str, i32)]) -> Result<()> {
    check_reachable(kafka)?;
    let topics: Vec<(&str, i32)> = topics
        .iter()
        .filter(|(t, _)| topic_partitions(kafka, t).is_err())
        .copied()
        .collect();
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config(kafka)
        .create()
        .map_err(|e| RiftError::external_caused("kafka", e, false))?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = crate::util::block_on(admin.create_topics(&new, &opts))
        .map_err(|e| RiftError::external_caused("kafka", e, true))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(RiftError::external(
                    "kafka",
                    format!("creating topic {name}: {code}"),
                    true,
                ))
            }
        }
    }
    Ok(())
}
