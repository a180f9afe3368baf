//! Decoders: record bytes to typed values, shared by every transport.
//!
//! Format and transport are separate: the same decoders serve files, the
//! generator and Kafka. A decoder returns a [`Rejection`] (never panics) for
//! bytes it cannot decode (`decode` stage) or values that fail
//! [`Event::validate`] (`validate` stage); the source operator turns it into a
//! dead letter.

pub mod avro;
pub mod json_scan;

use crate::events::Event;
use crate::events::{Arrived, RawRecord};
use crate::util::now_ms;
use std::marker::PhantomData;
use std::sync::Arc;

/// Why a record was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// `decode` or `validate`.
    pub stage: &'static str,
    /// Human-readable reason.
    pub reason: String,
    /// Not the record's fault (e.g. the schema registry is unreachable): retry it later.
    pub retry: bool,
}

impl Rejection {
    /// A decoding failure.
    pub fn decode(reason: impl Into<String>) -> Self {
        Rejection {
            stage: "decode",
            reason: reason.into(),
            retry: false,
        }
    }

    /// A validation failure.
    pub fn validate(reason: impl Into<String>) -> Self {
        Rejection {
            stage: "validate",
            reason: reason.into(),
            retry: false,
        }
    }

    /// A failure of a system the decoder depends on: the record is retried, not dead-lettered.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Rejection {
            stage: "decode",
            reason: reason.into(),
            retry: true,
        }
    }
}

/// Turns raw records into typed outputs, each with its event time (UTC ms).
pub trait Decoder: 'static {
    /// The decoded type.
    type Output: timely::ExchangeData + Clone;

    /// Decodes one record into zero or more outputs.
    fn decode(&mut self, raw: &RawRecord, out: &mut Vec<(i64, Self::Output)>) -> Result<(), Rejection>;
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
