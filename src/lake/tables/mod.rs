//! The lake's tables: their Arrow schemas (stable, documented in the README),
//! their partitioning, and how rows become record batches.

use super::{date_of, hour_of, partition_value};
use crate::error::Result;
use crate::events::BronzeRecord;
use crate::events::{DeadLetter, GameEvent, Match, PlayerStats, Prediction, PredictionRequest, Topic};
use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// A row type stored in a lake table.
pub trait LakeRow: Send + 'static {
    /// The table, e.g. `silver/matches`.
    fn table(&self) -> String;
    /// The hive partition, e.g. `date=2026-01-01/game_mode=ranked_solo`.
    fn partition(&self) -> String;
    /// The table's Arrow schema (partition columns excluded).
    fn schema() -> SchemaRef
    where
        Self: Sized;
    /// Rows to a record batch.
    fn to_batch(rows: &[Self]) -> Result<RecordBatch>
    where
        Self: Sized;
}

fn ts_ms(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
        nullable,
    )
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

fn utf8_null(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn list_of(name: &str, item: DataType) -> Field {
    Field::new(name, DataType::List(Arc::new(Field::new("item", item, true))), false)
}

fn map_f64(name: &str) -> Field {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            utf8("key"),
            Field::new("value", DataType::Float64, true),
        ])),
        false,
    );
    Field::new(name, DataType::Map(Arc::new(entries), false), false)
}

/// Serializes rows through serde into a batch of `schema`.
pub fn serde_batch<T: Serialize>(schema: SchemaRef, rows: &[T]) -> Result<RecordBatch> {
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.len().max(1))
        .build_decoder()?;
    decoder.serialize(rows)?;
    Ok(decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(schema)))
}

macro_rules! cached_schema {
    ($fields:expr) => {{
        static S: OnceLock<SchemaRef> = OnceLock::new();
        S.get_or_init(|| Arc::new(Schema::new($fields))).clone()
    }};
}
mod features;
mod predictions;
mod raw;
mod silver;

pub use features::{FeatureVectorRow, LateEventRow};
pub use silver::ParticipantRow;

// ---------------------------------------------------------------- bronze

/// A gold row: a lake row that knows its day (gold snapshots are written per day).
pub trait GoldRow: LakeRow + timely::ExchangeData + Clone + Eq + std::hash::Hash + Ord {
    /// The day (UTC ms of its start) the row belongs to (`ByDate`).
    fn day_start(&self) -> i64;
    /// A copy of the row placed under another day (`Daily`).
    fn on_day(&self, day_start: i64) -> Self;
}
