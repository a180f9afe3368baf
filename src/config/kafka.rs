//! `[kafka]`: the connection settings every `kafka` source and sink share,
//! and how topic values are encoded.

use serde::Deserialize;
use std::collections::BTreeMap;

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

impl Default for Encoding {
    /// SPEC: values are Avro unless a topic is configured for JSON.
    fn default() -> Self {
        Encoding::Avro
    }
}
