//! Records as they cross the engine before and around decoding: a record as
//! a source read it ([`RawRecord`]), the same with what the bronze table
//! needs ([`BronzeRecord`]), and a decoded event with its arrival time
//! ([`Arrived`], for arrival-to-prediction latency).

use serde::{Deserialize, Serialize};

/// A record as read, before decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawRecord {
    /// Partition (Kafka partition, file split, generator shard).
    pub partition: u32,
    /// Offset within the partition (Kafka offset, byte offset of the line).
    pub offset: u64,
    /// Message key, if any.
    pub key: Option<Vec<u8>>,
    /// Message value.
    pub value: Vec<u8>,
    /// Broker or file timestamp, UTC ms, if known.
    pub timestamp: Option<i64>,
    /// Wall-clock time the record was read, µs since the epoch (for latency).
    pub received_at_us: i64,
}

/// A raw record with what bronze needs beyond it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BronzeRecord {
    /// Topic or source name.
    pub topic: String,
    /// The record as read.
    pub raw: RawRecord,
    /// Time that places the record in a bronze partition: the broker
    /// timestamp, else its event time, else its stamp.
    pub partition_time: i64,
}

/// A decoded event with the wall-clock time its record was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrived<E> {
    /// The event.
    pub event: E,
    /// When its record was read, µs since the epoch.
    pub received_at_us: i64,
}
