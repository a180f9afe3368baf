//! The `kafka` sink: records to a topic, exactly once by default.
//!
//! Exactly once (`exactly_once = true`, the default): records are logged
//! with each checkpoint and committed to Kafka in one transaction per
//! commit, with a progress marker (see [`super::kafka_txn`]); consumers
//! reading with `isolation.level=read_committed` see each record once,
//! whatever crashes in between, one checkpoint interval after it was made.
//!
//! At least once (`exactly_once = false`, for brokers without
//! transactions): `write` encodes and enqueues with the idempotent producer
//! (never blocking the worker for long: a full queue is drained with short
//! polls); `pre_commit` flushes and checks every delivery report — a failed
//! delivery fails the commit, and the epoch's undelivered records are sent
//! again before it is retried. A crash replays the epochs after the last
//! checkpoint: records may appear twice, never zero times.
//!
//! Topics are created on open when missing.

use super::SinkWriter;
use crate::codec::avro::AvroValueEncoder;
use crate::config::{Encoding, KafkaConfig};
use crate::error::{Result, RiftError};
use crate::events::{DeadLetter, Prediction, Topic};
use crate::kafka::{client_config, ensure_topics};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use serde::Serialize;
use std::sync::Mutex;
use std::time::Duration;

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct KafkaRecord {
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Message value.
    pub value: Vec<u8>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Encodes a value as JSON or Confluent-wire Avro.
pub enum ValueEncoder {
    /// JSON.
    Json,
    /// Avro through the Schema Registry.
    Avro(Box<AvroValueEncoder>),
}

impl ValueEncoder {
    /// The encoder for `topic` (kind `kind`) in `encoding`.
    pub fn new(kafka: &KafkaConfig, encoding: Encoding, kind: Topic, topic: &str) -> Result<ValueEncoder> {
        match encoding {
            Encoding::Json => Ok(ValueEncoder::Json),
            Encoding::Avro => {
                let url = kafka
                    .schema_registry
                    .as_deref()
                    .ok_or_else(|| RiftError::Usage(format!("topic `{topic}` is Avro: set kafka.schema_registry")))?;
                Ok(ValueEncoder::Avro(Box::new(AvroValueEncoder::new(url, kind, topic)?)))
            }
        }
    }

    /// Encodes `value`.
    pub fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>> {
        match self {
            ValueEncoder::Json => serde_json::to_vec(value).map_err(|e| RiftError::Internal(format!("json: {e}"))),
            ValueEncoder::Avro(a) => a.encode(value),
        }
    }
}

/// Turns a record into a message.
pub trait ToKafka {
    /// Encodes `self` with `encoder`.
    fn to_kafka(&self, encoder: &ValueEncoder) -> Result<KafkaRecord>;
}

impl ToKafka for Prediction {
    fn to_kafka(&self, encoder: &ValueEncoder) -> Result<KafkaRecord> {
        Ok(KafkaRecord {
            key: Some(self.match_id.clone().into_bytes()),
            value: encoder.encode(self)?,
            headers: Vec::new(),
        })
    }
}

/// The Avro shape of a dead letter (raw bytes as Avro `bytes`).
#[derive(Serialize)]
struct DeadLetterAvro<'a> {
    source_topic: &'a str,
    partition: i32,
    offset: i64,
    #[serde(with = "apache_avro::serde::bytes_opt")]
    key: &'a Option<Vec<u8>>,
    #[serde(with = "apache_avro::serde::bytes")]
    value: &'a Vec<u8>,
    reason: &'a str,
    stage: &'a str,
    failed_at: i64,
}

impl ToKafka for DeadLetter {
    fn to_kafka(&self, encoder: &ValueEncoder) -> Result<KafkaRecord> {
        let value = match encoder {
            ValueEncoder::Json => encoder.encode(self)?,
            ValueEncoder::Avro(a) => a.encode(&DeadLetterAvro {
                source_topic: &self.source_topic,
                partition: self.partition,
                offset: self.offset,
                key: &self.key,
                value: &self.value,
                reason: &self.reason,
                stage: &self.stage,
                failed_at: self.failed_at,
            })?,
        };
        Ok(KafkaRecord {
            key: self.key.clone(),
            value,
            headers: [
                ("rift.reason", self.reason.clone().into_bytes()),
                ("rift.stage", self.stage.clone().into_bytes()),
                ("rift.source.topic", self.source_topic.clone().into_bytes()),
                ("rift.source.partition", self.partition.to_string().into_bytes()),
                ("rift.source.offset", self.offset.to_string().into_bytes()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        })
    }
}

/// Collects delivery failures by sequence number.
#[derive(Default)]
pub(super) struct Deliveries {
    failed: Mutex<Vec<(usize, String)>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        if let Err((e, _)) = result {
            if let Ok(mut f) = self.failed.lock() {
                f.push((seq, e.to_string()));
            }
        }
    }
}

/// Produces records of type `T` to a topic.
pub struct KafkaWriter<T> {
    producer: BaseProducer<Deliveries>,
    topic: String,
    encoder: ValueEncoder,
    /// The epoch's messages, kept until their delivery is confirmed
    /// (exactly once: until they are logged).
    epoch: Vec<KafkaRecord>,
    /// Set for exactly-once delivery.
    exactly_once: Option<super::kafka_txn::ExactlyOnce>,
    _marker: std::marker::PhantomData<T>,
}

impl<T: ToKafka + 'static> KafkaWriter<T> {
    /// A writer to `topic` (created with `partitions` if missing).
    pub fn new(kafka: &KafkaConfig, topic: &str, encoder: ValueEncoder, partitions: i32) -> Result<Self> {
        ensure_topics(kafka, &[(topic, partitions)])?;
        let mut cfg = client_config(kafka);
        // Defaults that the topology's `kafka.properties` may override.
        for (k, v) in [
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "30000"),
            ("linger.ms", "5"),
        ] {
            if !kafka.properties.contains_key(k) {
                cfg.set(k, v);
            }
        }
        let producer: BaseProducer<Deliveries> = cfg
            .create_with_context(Deliveries::default())
            .map_err(|e| RiftError::external_caused("kafka", e, false))?;
        Ok(KafkaWriter {
            producer,
            topic: topic.to_string(),
            encoder,
            epoch: Vec::new(),
            exactly_once: None,
            _marker: Default::default(),
        })
    }

    /// Delivers exactly once (see the module docs).
    pub fn exactly_once(mut self, state: super::kafka_txn::ExactlyOnce) -> Self {
        self.exactly_once = Some(state);
        self
    }

    fn send(&self, seq: usize, r: &KafkaRecord) -> Result<()> {
        enqueue(&self.producer, &self.topic, seq, r)
    }
}

/// Enqueues `r` on `topic` (delivery reports carry `seq`), waiting out a full queue.
pub(super) fn enqueue(producer: &BaseProducer<Deliveries>, topic: &str, seq: usize, r: &KafkaRecord) -> Result<()> {
    let mut headers = OwnedHeaders::new();
    for (k, v) in &r.headers {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_slice()),
        });
    }
    let mut record = BaseRecord::with_opaque_to(topic, seq)
        .payload(&r.value)
        .headers(headers);
    if let Some(k) = &r.key {
        record = record.key(k.as_slice());
    }
    loop {
        match producer.send(record) {
            Ok(()) => {
                producer.poll(Duration::ZERO);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(RiftError::external_caused("kafka", e, true)),
        }
    }
}

impl<T: ToKafka + 'static> SinkWriter<T> for KafkaWriter<T> {
    fn write(&mut self, records: &mut Vec<T>) -> Result<()> {
        if self.exactly_once.is_some() {
            // Encoded now, logged at pre-commit, sent at commit.
            for r in records.drain(..) {
                self.epoch.push(r.to_kafka(&self.encoder)?);
            }
            return Ok(());
        }
        // On a failure, the records not yet sent stay in `records` for the retry.
        let mut done = 0;
        let mut result = Ok(());
        for r in records.iter() {
            let sent = r
                .to_kafka(&self.encoder)
                .and_then(|msg| self.send(self.epoch.len(), &msg).map(|()| msg));
            match sent {
                Ok(msg) => {
                    self.epoch.push(msg);
                    done += 1;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        records.drain(..done);
        result
    }

    fn recover(&mut self, _restored: Option<u64>) -> Result<()> {
        match &mut self.exactly_once {
            Some(eo) => eo.recover(),
            None => Ok(()),
        }
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        if let Some(eo) = &mut self.exactly_once {
            return eo.pre_commit(epoch, std::mem::take(&mut self.epoch));
        }
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|e| RiftError::external_caused("kafka", e, true))?;
        if let Some((code, why)) = self.producer.client().fatal_error() {
            return Err(RiftError::external(
                "kafka",
                format!("producer fenced: {code}: {why}"),
                false,
            ));
        }
        let failed = std::mem::take(
            &mut *self
                .producer
                .context()
                .failed
                .lock()
                .map_err(|_| RiftError::Internal("poisoned".into()))?,
        );
        if failed.is_empty() {
            self.epoch.clear();
            return Ok(());
        }
        // Send the undelivered records again, then fail this attempt so it is retried.
        let first = failed[0].1.clone();
        let mut resend = Vec::with_capacity(failed.len());
        for (seq, _) in &failed {
            if let Some(m) = self.epoch.get(*seq) {
                resend.push(m.clone());
            }
        }
        self.epoch = resend;
        for (i, m) in self.epoch.iter().enumerate() {
            if let Err(e) = self.send(i, m) {
                // Not sent: report it as failed so the next pre-commit resends it.
                if let Ok(mut f) = self.producer.context().failed.lock() {
                    f.extend((i..self.epoch.len()).map(|s| (s, e.to_string())));
                }
                break;
            }
        }
        Err(RiftError::external(
            "kafka",
            format!("{} deliveries failed (e.g. {first}); resent", failed.len()),
            true,
        ))
    }

    fn commit(&mut self, epoch: u64) -> Result<bool> {
        match &mut self.exactly_once {
            Some(eo) => eo.commit(epoch),
            None => Ok(true),
        }
    }
}
