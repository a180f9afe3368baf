//! Bronze (every record as read, with its Kafka metadata) and dead letters.

use super::*;

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
