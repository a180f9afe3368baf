//! Avro in the Confluent wire format, through a Schema Registry.
//!
//! Encoding registers the topic's schema (`schemas/{topic}.avsc`, subject
//! `{topic}-value`, TopicNameStrategy) once and prefixes every value with the
//! magic byte 0 and the 4-byte schema id. Decoding reads the schema id, looks
//! the writer schema up by id (cached after the first lookup), decodes with
//! it and *resolves* the value against our reader schema, so compatible
//! evolution — a field added with a default, a field removed — just works.
//!
//! Failures are classified: bytes not in the wire format, an unknown schema
//! id, or a value that does not resolve are the record's fault (dead letter);
//! a registry that cannot be reached is not (retry, never dead-letter good
//! records because a server was away).

use crate::error::{Result, RiftError};
use crate::events::Topic;
use apache_avro::schema::ResolvedSchema;
use apache_avro::Schema;
use schema_registry_converter::blocking::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::blocking::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// The Avro schema (`.avsc` text) of a topic, as shipped in `schemas/`.
pub fn schema_text(topic: Topic) -> &'static str {
    match topic {
        Topic::Matches => include_str!("../../schemas/matches.avsc"),
        Topic::PlayerStats => include_str!("../../schemas/player_stats.avsc"),
        Topic::GameEvents => include_str!("../../schemas/game_events.avsc"),
        Topic::PredictionRequests => include_str!("../../schemas/prediction_requests.avsc"),
        Topic::Predictions => include_str!("../../schemas/predictions.avsc"),
        Topic::Dlq => include_str!("../../schemas/dlq.avsc"),
        Topic::ModelUpdates => include_str!("../../schemas/model_updates.avsc"),
    }
}

/// Why Avro decoding failed.
#[derive(Debug)]
pub enum AvroFailure {
    /// The record is bad: dead-letter it with this reason.
    Record(String),
    /// The registry could not be reached: retry later.
    Unavailable(String),
}

/// Decodes one topic's values.
pub struct AvroValueDecoder {
    decoder: AvroDecoder,
    reader: Schema,
    topic: Topic,
}

fn settings(url: &str) -> Result<SrSettings> {
    SrSettings::new_builder(url.trim_end_matches('/').to_string())
        .set_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| RiftError::external("schema_registry", e, false))
}

/// Whether a registry failure says nothing about the record: any HTTP
/// status but 404 (unknown schema id) — 5xx, 429, 408, 401/403 — means the
/// registry could not answer, so the record is retried, not dead-lettered.
fn registry_unavailable(detail: &str) -> bool {
    let Some(rest) = detail.split("failed with status ").nth(1) else {
        return false;
    };
    let code: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    matches!(code.parse::<u16>(), Ok(status) if status != 404)
}

impl AvroValueDecoder {
    /// A decoder of `topic` values using the registry at `url`.
    pub fn new(url: &str, topic: Topic) -> Result<Self> {
        let reader =
            Schema::parse_str(schema_text(topic)).map_err(|e| RiftError::Internal(format!("{topic} schema: {e}")))?;
        ResolvedSchema::try_from(&reader).map_err(|e| RiftError::Internal(format!("{topic} schema: {e}")))?;
        Ok(AvroValueDecoder {
            decoder: AvroDecoder::new(settings(url)?),
            reader,
            topic,
        })
    }

    /// Decodes a wire-format value into `T`.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> std::result::Result<T, AvroFailure> {
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(AvroFailure::Record(format!(
                "not Avro in the Confluent wire format (magic byte {:?}, {} bytes)",
                bytes.first(),
                bytes.len()
            )));
        }
        let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let decoded = self.decoder.decode(Some(bytes)).map_err(|e| {
            let detail = format!(
                "{}{}",
                e.error,
                e.cause.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
            );
            if e.retriable || registry_unavailable(&detail) {
                // Not the record's fault: forget the cached failure so the retry asks again.
                self.decoder.remove_errors_from_cache();
                AvroFailure::Unavailable(format!("schema registry: {detail}"))
            } else {
                AvroFailure::Record(format!("value with schema id {id} could not be decoded: {detail}"))
            }
        })?;
        let value = decoded.value.resolve(&self.reader).map_err(|e| {
            AvroFailure::Record(format!(
                "schema id {id} does not resolve to the {} schema: {e}",
                self.topic
            ))
        })?;
        apache_avro::from_value::<T>(&value)
            .map_err(|e| AvroFailure::Record(format!("Avro value does not fit {}: {e}", self.topic)))
    }

    /// Forgets cached lookup failures (after the registry came back).
    pub fn clear_errors(&self) {
        self.decoder.remove_errors_from_cache();
    }
}

/// Encodes one topic's values, registering its schema on first use.
pub struct AvroValueEncoder {
    encoder: AvroEncoder,
    strategy: SubjectNameStrategy,
}

impl AvroValueEncoder {
    /// An encoder for `topic` (Kafka topic name `kafka_topic`) using the registry at `url`.
    pub fn new(url: &str, topic: Topic, kafka_topic: &str) -> Result<Self> {
        Self::with_schema(url, schema_text(topic), kafka_topic)
    }

    /// An encoder registering `schema` for `kafka_topic` (e.g. an evolved schema).
    pub fn with_schema(url: &str, schema: &str, kafka_topic: &str) -> Result<Self> {
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema.to_string());
        Ok(AvroValueEncoder {
            encoder: AvroEncoder::new(settings(url)?),
            strategy: SubjectNameStrategy::TopicNameStrategyWithSchema(kafka_topic.to_string(), false, supplied),
        })
    }

    /// Encodes a value; the first call registers the schema.
    pub fn encode<T: Serialize>(&self, item: &T) -> Result<Vec<u8>> {
        self.encoder.encode_struct(item, &self.strategy).map_err(|e| {
            RiftError::external(
                "schema_registry",
                format!("{}{}", e.error, e.cause.map(|c| format!(": {c}")).unwrap_or_default()),
                e.retriable,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_404_from_the_registry_is_the_records_fault() {
        let msg = |s: &str| format!("HTTP request to schema registry failed with status {s}");
        assert!(!registry_unavailable(&msg("404 Not Found")));
        assert!(registry_unavailable(&msg("500 Internal Server Error")));
        assert!(registry_unavailable(&msg("429 Too Many Requests")));
        assert!(registry_unavailable(&msg("408 Request Timeout")));
        assert!(!registry_unavailable("could not parse the Avro body"));
    }

    #[test]
    fn every_shipped_schema_parses() {
        for t in Topic::ALL {
            Schema::parse_str(schema_text(t)).unwrap_or_else(|e| panic!("{t}: {e}"));
        }
    }
}
