//! `esports.dlq`: a record that could not be decoded or validated, keyed by
//! the original record's key; or one that was read but could not be scored
//! yet (stage `score`, reason `no model: …`), keyed by its match.
//!
//! It carries everything needed to inspect and replay the record: its source
//! topic, partition and offset, the raw key and value bytes, and the reason.
//! In JSON the raw bytes are base64.

use serde::{Deserialize, Serialize};

/// A dead-lettered record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Topic (or source name) the record was read from.
    pub source_topic: String,
    /// Partition (or file split) it was read from.
    pub partition: i32,
    /// Offset (or byte offset) within the partition.
    pub offset: i64,
    /// The raw key, if any.
    #[serde(default, with = "base64_opt")]
    pub key: Option<Vec<u8>>,
    /// The raw value.
    #[serde(with = "base64_bytes")]
    pub value: Vec<u8>,
    /// Why the record was rejected.
    pub reason: String,
    /// Where it failed: `decode`, `validate` or `score`.
    pub stage: String,
    /// When it was rejected, UTC ms.
    pub failed_at: i64,
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

mod base64_opt {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_some(&base64::engine::general_purpose::STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

impl DeadLetter {
    /// A record that was read and kept (its state counts) but could not be
    /// scored: `value` is what would have been scored, as JSON, and the
    /// position is `-1`, because it is derived from the source, not one of its
    /// records. Stage `score`.
    pub fn unscored<T: serde::Serialize>(source: &str, key: &str, value: &T, reason: &str) -> DeadLetter {
        DeadLetter {
            source_topic: source.to_string(),
            partition: -1,
            offset: -1,
            key: Some(key.as_bytes().to_vec()),
            value: serde_json::to_vec(value).unwrap_or_default(),
            reason: reason.to_string(),
            stage: "score".into(),
            failed_at: crate::util::now_ms(),
        }
    }
}
