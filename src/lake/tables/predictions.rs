//! Predictions and model outcomes.

use super::*;

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
