//! The offline feature store (`gold/player_features`) and late events.

use super::*;

/// A row too late for every window (`silver/late_events`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
