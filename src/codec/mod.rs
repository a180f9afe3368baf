//! Decoders: record bytes to typed values, shared by every transport.
//!
//! Format and transport are separate: the same decoders serve files, the
//! generator and Kafka. A decoder returns a [`Rejection`] (never panics) for
//! bytes it cannot decode (`decode` stage) or values that fail
//! [`Event::validate`] (`validate` stage); the source operator turns it into a
//! dead letter.

pub mod avro;

use crate::config::RecordSchema;
use crate::events::{now_ms, Event};
use crate::features::{FeatureRow, FeatureSpec, RowExtractor};
use crate::operators::source::{Decoder, Rejection};
use crate::sources::RawRecord;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::sync::Arc;

/// A decoded event with the wall-clock time its record was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrived<E> {
    /// The event.
    pub event: E,
    /// When its record was read, µs since the epoch.
    pub received_at_us: i64,
}

/// Decodes one JSON document into an event and validates it.
pub fn decode_json<E: Event>(bytes: &[u8], now: i64) -> Result<E, Rejection> {
    let event: E = serde_json::from_slice(bytes)
        .map_err(|e| Rejection::decode(format!("invalid {} JSON: {e}", E::TOPIC.short_name())))?;
    event.validate(now).map_err(Rejection::validate)?;
    Ok(event)
}

/// How a source's values are encoded.
#[derive(Clone)]
pub enum ValueFormat {
    /// One JSON document per record.
    Json,
    /// Confluent-wire Avro, resolved against the topic's reader schema.
    Avro(Arc<avro::AvroValueDecoder>),
}

impl ValueFormat {
    /// Decodes and validates an event.
    pub fn decode<E: Event>(&self, bytes: &[u8], now: i64) -> Result<E, Rejection> {
        match self {
            ValueFormat::Json => decode_json(bytes, now),
            ValueFormat::Avro(d) => {
                let event: E = d.decode(bytes).map_err(|f| match f {
                    avro::AvroFailure::Record(r) => Rejection::decode(r),
                    avro::AvroFailure::Unavailable(r) => Rejection::unavailable(r),
                })?;
                event.validate(now).map_err(Rejection::validate)?;
                Ok(event)
            }
        }
    }
}

/// Decodes records of topic type `E`.
pub struct EventDecoder<E> {
    format: ValueFormat,
    _marker: PhantomData<E>,
}

impl<E> EventDecoder<E> {
    /// A decoder of values in `format`.
    pub fn new(format: ValueFormat) -> Self {
        EventDecoder {
            format,
            _marker: PhantomData,
        }
    }
}

impl<E> Default for EventDecoder<E> {
    fn default() -> Self {
        EventDecoder::new(ValueFormat::Json)
    }
}

impl<E: Event + timely::ExchangeData> Decoder for EventDecoder<E> {
    type Output = Arrived<E>;

    fn decode(&mut self, raw: &RawRecord, out: &mut Vec<(i64, Arrived<E>)>) -> Result<(), Rejection> {
        let event: E = self.format.decode(&raw.value, now_ms())?;
        out.push((
            event.event_time(),
            Arrived {
                event,
                received_at_us: raw.received_at_us,
            },
        ));
        Ok(())
    }
}

/// Decodes rows for the feature sets that read one source. Sets that read
/// exactly the same fields share one extraction: each output is
/// `(group, row)`, and [`RowDecoder::groups`] lists the sets of each group.
pub struct RowDecoder {
    schema: RecordSchema,
    format: ValueFormat,
    /// One extractor per group of sets reading the same fields.
    extractors: Vec<RowExtractor>,
    /// Per group: the tags of its sets, as given to [`RowDecoder::new`].
    groups: Vec<Vec<usize>>,
    rows: Vec<FeatureRow>,
}

impl RowDecoder {
    /// A decoder for records of `schema` feeding `sets` (tag, spec).
    pub fn new(schema: RecordSchema, sets: Vec<(usize, Arc<FeatureSpec>)>, format: ValueFormat) -> RowDecoder {
        let mut extractors: Vec<RowExtractor> = Vec::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (tag, spec) in sets {
            let ex = RowExtractor::new(spec);
            match extractors.iter().position(|e| e.same_fields(&ex)) {
                Some(g) => groups[g].push(tag),
                None => {
                    extractors.push(ex);
                    groups.push(vec![tag]);
                }
            }
        }
        RowDecoder {
            schema,
            format,
            extractors,
            groups,
            rows: Vec::new(),
        }
    }

    /// Per group (the index in each output): the tags of the sets it feeds.
    pub fn groups(&self) -> Vec<Vec<usize>> {
        self.groups.clone()
    }

    fn typed_value(&self, bytes: &[u8]) -> Result<serde_json::Value, Rejection> {
        use crate::events::{GameEvent, Match, PlayerStats, PredictionRequest};
        let now = now_ms();
        let typed = match self.schema {
            RecordSchema::Matches => serde_json::to_value(self.format.decode::<Match>(bytes, now)?),
            RecordSchema::PlayerStats => serde_json::to_value(self.format.decode::<PlayerStats>(bytes, now)?),
            RecordSchema::GameEvents => serde_json::to_value(self.format.decode::<GameEvent>(bytes, now)?),
            RecordSchema::PredictionRequests => {
                serde_json::to_value(self.format.decode::<PredictionRequest>(bytes, now)?)
            }
            RecordSchema::ModelUpdates | RecordSchema::Records => {
                return serde_json::from_slice(bytes).map_err(|e| Rejection::decode(format!("invalid JSON: {e}")))
            }
        };
        typed.map_err(|e| Rejection::decode(e.to_string()))
    }
}

impl Decoder for RowDecoder {
    type Output = (usize, FeatureRow);

    fn decode(&mut self, raw: &RawRecord, out: &mut Vec<(i64, (usize, FeatureRow))>) -> Result<(), Rejection> {
        let first = out.len();
        // Generic flat records take the fast path when no feature set explodes a list.
        let flat = self.schema == RecordSchema::Records && self.extractors.iter().all(|e| e.spec().explode.is_none());
        if flat {
            for (group, ex) in self.extractors.iter().enumerate() {
                match ex.extract_bytes(&raw.value) {
                    Ok(row) => out.push((row.ts, (group, row))),
                    Err(reason) => {
                        out.truncate(first);
                        return Err(Rejection::decode(reason));
                    }
                }
            }
            return Ok(());
        }
        let value = self.typed_value(&raw.value)?;
        for (group, ex) in self.extractors.iter().enumerate() {
            self.rows.clear();
            if let Err(reason) = ex.extract_value(&value, &mut self.rows) {
                out.truncate(first);
                return Err(Rejection::decode(reason));
            }
            out.extend(self.rows.drain(..).map(|r| (r.ts, (group, r))));
        }
        Ok(())
    }
}
