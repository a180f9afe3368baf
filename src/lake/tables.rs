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

// ---------------------------------------------------------------- bronze

impl LakeRow for BronzeRecord {
    fn table(&self) -> String {
        let name = Topic::parse(&self.topic)
            .map(|t| t.short_name().to_string())
            .unwrap_or_else(|| {
                let base = self.topic.rsplit('/').next().unwrap_or(&self.topic);
                partition_value(base.split('.').next().unwrap_or(base))
            });
        format!("bronze/{name}")
    }

    fn partition(&self) -> String {
        format!(
            "date={}/hour={}",
            date_of(self.partition_time),
            hour_of(self.partition_time)
        )
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("topic"),
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
            Field::new("key", DataType::Binary, true),
            Field::new("value", DataType::Binary, false),
            ts_ms("timestamp", true),
            Field::new("schema_id", DataType::Int32, true),
            Field::new(
                "received_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                false
            ),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        let mut topic = StringBuilder::new();
        let mut partition = Int32Builder::new();
        let mut offset = Int64Builder::new();
        let mut key = BinaryBuilder::new();
        let mut value = BinaryBuilder::new();
        let mut timestamp = TimestampMillisecondBuilder::new().with_timezone("+00:00");
        let mut schema_id = Int32Builder::new();
        let mut received = TimestampMicrosecondBuilder::new().with_timezone("+00:00");
        for r in rows {
            topic.append_value(&r.topic);
            partition.append_value(r.raw.partition as i32);
            offset.append_value(r.raw.offset as i64);
            key.append_option(r.raw.key.as_deref());
            value.append_value(&r.raw.value);
            timestamp.append_option(r.raw.timestamp);
            // Confluent wire format: magic byte 0 then a big-endian schema id.
            let id = (r.raw.value.len() >= 5 && r.raw.value[0] == 0)
                .then(|| i32::from_be_bytes([r.raw.value[1], r.raw.value[2], r.raw.value[3], r.raw.value[4]]));
            schema_id.append_option(id);
            received.append_value(r.raw.received_at_us);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(topic.finish()),
            Arc::new(partition.finish()),
            Arc::new(offset.finish()),
            Arc::new(key.finish()),
            Arc::new(value.finish()),
            Arc::new(timestamp.finish()),
            Arc::new(schema_id.finish()),
            Arc::new(received.finish()),
        ];
        Ok(RecordBatch::try_new(Self::schema(), cols)?)
    }
}

impl LakeRow for DeadLetter {
    fn table(&self) -> String {
        "bronze/dlq".into()
    }

    fn partition(&self) -> String {
        format!("date={}/hour={}", date_of(self.failed_at), hour_of(self.failed_at))
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("source_topic"),
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
            Field::new("key", DataType::Binary, true),
            Field::new("value", DataType::Binary, false),
            utf8("reason"),
            utf8("stage"),
            ts_ms("failed_at", false),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        let mut topic = StringBuilder::new();
        let mut partition = Int32Builder::new();
        let mut offset = Int64Builder::new();
        let mut key = BinaryBuilder::new();
        let mut value = BinaryBuilder::new();
        let mut reason = StringBuilder::new();
        let mut stage = StringBuilder::new();
        let mut failed_at = TimestampMillisecondBuilder::new().with_timezone("+00:00");
        for r in rows {
            topic.append_value(&r.source_topic);
            partition.append_value(r.partition);
            offset.append_value(r.offset);
            key.append_option(r.key.as_deref());
            value.append_value(&r.value);
            reason.append_value(&r.reason);
            stage.append_value(&r.stage);
            failed_at.append_value(r.failed_at);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(topic.finish()),
            Arc::new(partition.finish()),
            Arc::new(offset.finish()),
            Arc::new(key.finish()),
            Arc::new(value.finish()),
            Arc::new(reason.finish()),
            Arc::new(stage.finish()),
            Arc::new(failed_at.finish()),
        ];
        Ok(RecordBatch::try_new(Self::schema(), cols)?)
    }
}

// ---------------------------------------------------------------- silver

fn participant_struct() -> DataType {
    DataType::Struct(Fields::from(vec![
        utf8("player_id"),
        utf8("player_name"),
        utf8("team"),
        utf8("role"),
        utf8("champion"),
        Field::new("kills", DataType::Int32, false),
        Field::new("deaths", DataType::Int32, false),
        Field::new("assists", DataType::Int32, false),
        Field::new("gold", DataType::Int64, false),
        Field::new("cs", DataType::Int32, false),
        Field::new("vision_score", DataType::Int32, false),
        Field::new("damage", DataType::Int64, false),
        Field::new("win", DataType::Boolean, false),
    ]))
}

impl LakeRow for Match {
    fn table(&self) -> String {
        "silver/matches".into()
    }

    fn partition(&self) -> String {
        format!(
            "date={}/game_mode={}",
            date_of(self.end_time),
            partition_value(&self.queue)
        )
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("match_id"),
            utf8("platform"),
            utf8("queue"),
            utf8("patch"),
            ts_ms("start_time", false),
            ts_ms("end_time", false),
            utf8("winning_team"),
            list_of("participants", participant_struct()),
            list_of("bans", DataType::Utf8),
            Field::new("simulated_blue_win_probability", DataType::Float64, true),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

/// One player's line of a match, flattened for SQL (`silver/match_participants`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParticipantRow {
    /// Match id.
    pub match_id: String,
    /// Queue / game mode.
    pub queue: String,
    /// Patch.
    pub patch: String,
    /// Match end, UTC ms.
    pub end_time: i64,
    /// Player id.
    pub player_id: String,
    /// Display name.
    pub player_name: String,
    /// `blue` / `red`.
    pub team: String,
    /// Role.
    pub role: String,
    /// Champion.
    pub champion: String,
    /// Kills.
    pub kills: i32,
    /// Deaths.
    pub deaths: i32,
    /// Assists.
    pub assists: i32,
    /// Gold.
    pub gold: i64,
    /// Creep score.
    pub cs: i32,
    /// Vision score.
    pub vision_score: i32,
    /// Damage to champions.
    pub damage: i64,
    /// Won.
    pub win: bool,
}

impl ParticipantRow {
    /// The ten rows of a match.
    pub fn of(m: &Match) -> impl Iterator<Item = ParticipantRow> + '_ {
        m.participants.iter().map(move |p| ParticipantRow {
            match_id: m.match_id.clone(),
            queue: m.queue.clone(),
            patch: m.patch.clone(),
            end_time: m.end_time,
            player_id: p.player_id.clone(),
            player_name: p.player_name.clone(),
            team: p.team.as_str().into(),
            role: p.role.as_str().into(),
            champion: p.champion.clone(),
            kills: p.kills,
            deaths: p.deaths,
            assists: p.assists,
            gold: p.gold,
            cs: p.cs,
            vision_score: p.vision_score,
            damage: p.damage,
            win: p.win,
        })
    }
}

impl LakeRow for ParticipantRow {
    fn table(&self) -> String {
        "silver/match_participants".into()
    }

    fn partition(&self) -> String {
        format!(
            "date={}/game_mode={}",
            date_of(self.end_time),
            partition_value(&self.queue)
        )
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("match_id"),
            utf8("queue"),
            utf8("patch"),
            ts_ms("end_time", false),
            utf8("player_id"),
            utf8("player_name"),
            utf8("team"),
            utf8("role"),
            utf8("champion"),
            Field::new("kills", DataType::Int32, false),
            Field::new("deaths", DataType::Int32, false),
            Field::new("assists", DataType::Int32, false),
            Field::new("gold", DataType::Int64, false),
            Field::new("cs", DataType::Int32, false),
            Field::new("vision_score", DataType::Int32, false),
            Field::new("damage", DataType::Int64, false),
            Field::new("win", DataType::Boolean, false),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

fn team_frame() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("total_gold", DataType::Int64, false),
        Field::new("total_xp", DataType::Int64, false),
        Field::new("avg_level", DataType::Float64, false),
        Field::new("total_cs", DataType::Int32, false),
        Field::new("total_jungle_cs", DataType::Int32, false),
    ]))
}

impl LakeRow for GameEvent {
    fn table(&self) -> String {
        "silver/game_events".into()
    }

    fn partition(&self) -> String {
        format!(
            "date={}/game_mode={}",
            date_of(self.event_time),
            partition_value(&self.queue)
        )
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("match_id"),
            Field::new("seq", DataType::Int64, false),
            ts_ms("event_time", false),
            Field::new("game_time_ms", DataType::Int64, false),
            utf8("queue"),
            utf8("kind"),
            utf8_null("team"),
            utf8_null("killer_id"),
            utf8_null("victim_id"),
            Field::new("assists", DataType::Int32, true),
            utf8_null("monster"),
            utf8_null("building"),
            Field::new("blue", team_frame(), true),
            Field::new("red", team_frame(), true),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

impl LakeRow for PlayerStats {
    fn table(&self) -> String {
        "silver/player_stats".into()
    }

    fn partition(&self) -> String {
        format!("date={}/game_mode=ranked_solo", date_of(self.time))
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("player_id"),
            utf8("tier"),
            utf8("rank"),
            Field::new("league_points", DataType::Int32, false),
            Field::new("wins", DataType::Int32, false),
            Field::new("losses", DataType::Int32, false),
            ts_ms("time", false),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

impl LakeRow for PredictionRequest {
    fn table(&self) -> String {
        "silver/prediction_requests".into()
    }

    fn partition(&self) -> String {
        format!(
            "date={}/game_mode={}",
            date_of(self.request_time),
            partition_value(&self.queue)
        )
    }

    fn schema() -> SchemaRef {
        let slot = DataType::Struct(Fields::from(vec![
            utf8("player_id"),
            utf8("team"),
            utf8("role"),
            utf8("champion"),
        ]));
        cached_schema!(vec![
            utf8("match_id"),
            ts_ms("request_time", false),
            utf8("queue"),
            utf8("patch"),
            list_of("participants", slot.clone()),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

/// A row too late for every window (`silver/late_events`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LateEventRow {
    /// Feature set it was late for.
    pub feature_set: String,
    /// Its key.
    pub key: String,
    /// Its event time, UTC ms.
    pub event_time: i64,
    /// The watermark (dataflow time) it arrived at, UTC ms.
    pub watermark: i64,
    /// Its input values by field name.
    pub values: BTreeMap<String, f64>,
}

impl LakeRow for LateEventRow {
    fn table(&self) -> String {
        "silver/late_events".into()
    }

    fn partition(&self) -> String {
        format!(
            "date={}/game_mode={}",
            date_of(self.event_time),
            partition_value(&self.feature_set)
        )
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("feature_set"),
            utf8("key"),
            ts_ms("event_time", false),
            ts_ms("watermark", false),
            map_f64("values"),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

// ---------------------------------------------------------------- gold

/// A feature vector as of a window end (`gold/player_features`, the offline store).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureVectorRow {
    /// Feature set.
    pub feature_set: String,
    /// Entity type (`player`, `team`).
    pub entity: String,
    /// Entity id.
    pub entity_id: String,
    /// Window start, UTC ms.
    pub window_start: i64,
    /// Window end, UTC ms: the event time the features are valid at.
    pub window_end: i64,
    /// 0 for the first firing, higher for re-fires.
    pub revision: i32,
    /// Features by name.
    pub features: BTreeMap<String, f64>,
}

impl LakeRow for FeatureVectorRow {
    fn table(&self) -> String {
        "gold/player_features".into()
    }

    fn partition(&self) -> String {
        format!(
            "date={}/metric_type={}",
            date_of(self.window_end),
            partition_value(&self.feature_set)
        )
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("feature_set"),
            utf8("entity"),
            utf8("entity_id"),
            ts_ms("window_start", false),
            ts_ms("window_end", false),
            Field::new("revision", DataType::Int32, false),
            map_f64("features"),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

impl LakeRow for Prediction {
    fn table(&self) -> String {
        "gold/predictions".into()
    }

    fn partition(&self) -> String {
        format!("date={}/metric_type={}", date_of(self.event_time), self.kind.as_str())
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("match_id"),
            utf8("kind"),
            ts_ms("event_time", false),
            Field::new("game_minute", DataType::Int32, true),
            Field::new("blue_win_probability", DataType::Float64, false),
            utf8("model_name"),
            utf8("model_version"),
            utf8("variant"),
            map_f64("features"),
            Field::new("latency_ms", DataType::Float64, false),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

impl LakeRow for crate::events::ModelOutcome {
    fn table(&self) -> String {
        "gold/model_outcomes".into()
    }

    fn partition(&self) -> String {
        format!(
            "date={}/metric_type={}",
            date_of(self.ended_at),
            partition_value(&self.variant)
        )
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("match_id"),
            utf8("variant"),
            utf8("model_name"),
            utf8("model_version"),
            ts_ms("ended_at", false),
            Field::new("predictions", DataType::Int64, false),
            Field::new("correct", DataType::Int64, false),
            Field::new("accuracy", DataType::Float64, false),
            Field::new("log_loss", DataType::Float64, false),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

/// A gold row: a lake row that knows its day (gold snapshots are written per day).
pub trait GoldRow: LakeRow + timely::ExchangeData + Clone + Eq + std::hash::Hash + Ord {
    /// The day (UTC ms of its start) the row belongs to (`ByDate`).
    fn day_start(&self) -> i64;
    /// A copy of the row placed under another day (`Daily`).
    fn on_day(&self, day_start: i64) -> Self;
}
