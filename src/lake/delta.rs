//! Delta Lake tables (`format = "delta"`): the lake's Parquet files,
//! committed through each table's `_delta_log`.
//!
//! A table is `{root}/{table}` (`bronze/game_events`, …) with its hive
//! partition keys as string partition columns. Data files are the ones the
//! Parquet lake writes, with timestamps as Delta's microsecond UTC type;
//! they are invisible until a commit adds them, so a reader of the log never
//! sees a half-written roll.
//!
//! # Exactly once
//! A streaming append carries a `txn` action (app id = writer and worker,
//! version = the checkpoint it covers), the mechanism of Spark's streaming
//! Delta sink: an append whose version the table already holds is skipped,
//! so a roll redone after a crash is committed once. Files are named per
//! roll, so the redo rewrites the same objects.
//!
//! # Compaction
//! Merging a partition's small files is one commit removing them and adding
//! the merged file (`dataChange = false`): readers see the old files or the
//! new one, never both. Commits race through the log's put-if-absent; a
//! blind append and a compaction do not conflict, and a lost race retries.
//! Removed files stay on storage for readers of older versions (time travel)
//! until a vacuum.

use super::Lake;
use crate::error::{Result, RiftError};
use crate::util::block_on;
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add, DataType as DeltaType, StructField, StructType, Transaction};
use deltalake_core::logstore::{default_logstore, LogStoreRef, StorageConfig};
use deltalake_core::protocol::{DeltaOperation, OutputMode, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use object_store::prefix::PrefixStore;
use std::collections::HashMap;
use std::sync::Arc;

/// A data file written for a table, before a commit adds it.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// Path relative to the table root, e.g. `date=2026-01-01/part-….parquet`.
    pub path: String,
    /// Its hive partition, e.g. `date=2026-01-01/hour=07`.
    pub partition: String,
    /// Bytes.
    pub size: u64,
    /// Rows.
    pub rows: u64,
}

/// A live file of a table: its path relative to the table root, partition
/// and size (ordered by path).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveFile {
    /// Path relative to the table root.
    pub path: String,
    /// Its hive partition (`k=v/…`, in the table's column order).
    pub partition: String,
    /// Bytes.
    pub size: u64,
}

/// The partition columns and values of a hive partition `k=v/k2=v2`.
pub fn partition_values(partition: &str) -> Vec<(String, String)> {
    partition
        .split('/')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The Delta form of a timestamp type: microseconds, UTC (Delta's `timestamp`).
fn delta_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, Some(_)) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Timestamp(_, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        other => other.clone(),
    }
}

/// `schema` with Delta's timestamp type.
pub fn data_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(delta_type(f.data_type())))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` in [`data_schema`] (timestamps cast to microseconds, UTC).
pub fn data_batch(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = data_schema(&batch.schema());
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The log store of `table` in `lake`.
fn log_store(lake: &Lake, table: &str) -> Result<LogStoreRef> {
    let (root, root_url) = lake.delta_root()?;
    let url = root_url
        .join(&format!("{}/", table.trim_matches('/')))
        .map_err(|e| RiftError::Usage(format!("table `{table}` under `{root_url}`: {e}")))?;
    let path = object_store::path::Path::parse(url.path().trim_start_matches('/'))
        .map_err(|e| RiftError::Usage(format!("table `{table}`: {e}")))?;
    let prefixed: Arc<dyn object_store::ObjectStore> = Arc::new(PrefixStore::new(root.clone(), path));
    Ok(default_logstore(prefixed, root, &url, &StorageConfig::default()))
}

/// Loads `table`, or `None` when it has no log yet.
async fn load(store: LogStoreRef) -> Result<Option<DeltaTable>> {
    use futures::StreamExt;
    let log = object_store::path::Path::from("_delta_log");
    if store.object_store(None).list(Some(&log)).next().await.is_none() {
        return Ok(None);
    }
    let mut table = DeltaTable::new(store);
    table.load().await?;
    Ok(Some(table))
}

/// Whether `table` of `lake` is a Delta table.
pub fn is_delta(lake: &Lake, table: &str) -> Result<bool> {
    Ok(!lake.list(&format!("{table}/_delta_log"))?.is_empty())
}

/// Loads `table`, creating it (data columns of `schema`, then the string
/// partition columns of `partition`) when it does not exist yet.
async fn load_or_create(store: LogStoreRef, table: &str, schema: &SchemaRef, partition: &str) -> Result<DeltaTable> {
    if let Some(t) = load(store.clone()).await? {
        return Ok(t);
    }
    let data: StructType = data_schema(schema)
        .as_ref()
        .try_into_kernel()
        .map_err(|e| RiftError::Internal(format!("Delta schema of `{table}`: {e}")))?;
    let partition_columns: Vec<String> = partition_values(partition).into_iter().map(|(k, _)| k).collect();
    let columns = data.fields().cloned().chain(
        partition_columns
            .iter()
            .map(|c| StructField::new(c.clone(), DeltaType::STRING, true)),
    );
    let created = deltalake_core::operations::create::CreateBuilder::new()
        .with_log_store(store.clone())
        .with_table_name(table.replace('/', "_"))
        .with_columns(columns)
        .with_partition_columns(partition_columns)
        .with_save_mode(SaveMode::Ignore)
        .await;
    match created {
        Ok(t) => Ok(t),
        // Another worker created it first.
        Err(e) => load(store).await?.ok_or(e.into()),
    }
}

/// The add action of `file`, stamped `now_ms`.
fn add_action(file: &DataFile, data_change: bool, now_ms: i64) -> Action {
    Action::Add(Add {
        path: file.path.clone(),
        partition_values: partition_values(&file.partition)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect(),
        size: file.size as i64,
        modification_time: now_ms,
        data_change,
        stats: Some(format!("{{\"numRecords\":{}}}", file.rows)),
        ..Default::default()
    })
}

/// Appends `files` to `table` (created from `schema` if missing) as
/// streaming update `version` of application `app`. Returns `false` when
/// the table already holds that version of `app` (a redone roll).
pub fn append(
    lake: &Lake,
    table: &str,
    schema: &SchemaRef,
    files: &[DataFile],
    app: &str,
    version: u64,
) -> Result<bool> {
    let Some(first) = files.first() else {
        return Ok(false);
    };
    let store = log_store(lake, table)?;
    let (table, schema, app) = (table.to_string(), schema.clone(), app.to_string());
    let now = crate::util::now_ms();
    let actions: Vec<Action> = files.iter().map(|f| add_action(f, true, now)).collect();
    let partition = first.partition.clone();
    block_on(async move {
        let delta = load_or_create(store.clone(), &table, &schema, &partition).await?;
        let snapshot = delta.snapshot()?;
        if snapshot
            .transaction_version(store.as_ref(), &app)
            .await?
            .is_some_and(|v| v >= version as i64)
        {
            return Ok(false);
        }
        let properties =
            CommitProperties::default().with_application_transaction(Transaction::new(&app, version as i64));
        CommitBuilder::from(properties)
            .with_actions(actions)
            .build(
                Some(snapshot),
                store.clone(),
                DeltaOperation::StreamingUpdate {
                    output_mode: OutputMode::Append,
                    query_id: app,
                    epoch_id: version as i64,
                },
            )
            .await?;
        Ok(true)
    })
}

/// Replaces every file of `partition` of `table` with `file` in one commit
/// (a gold snapshot rewritten in place).
pub fn replace_partition(lake: &Lake, table: &str, schema: &SchemaRef, file: &DataFile) -> Result<()> {
    let store = log_store(lake, table)?;
    let (table, schema, file) = (table.to_string(), schema.clone(), file.clone());
    block_on(async move {
        let delta = load_or_create(store.clone(), &table, &schema, &file.partition).await?;
        let wanted: HashMap<String, Option<String>> = partition_values(&file.partition)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let old: Vec<_> = delta
            .get_active_add_actions_by_partitions(&[])
            .try_filter(|f| futures::future::ready(f.partition_values_map() == wanted))
            .try_collect()
            .await?;
        let mut actions: Vec<Action> = old
            .iter()
            .filter(|f| f.path() != file.path.as_str())
            .map(|f| Action::Remove(f.remove_action(true)))
            .collect();
        actions.push(add_action(&file, true, crate::util::now_ms()));
        let predicate = partition_values(&file.partition)
            .iter()
            .map(|(k, v)| format!("{k} = '{v}'"))
            .collect::<Vec<_>>()
            .join(" AND ");
        CommitBuilder::default()
            .with_actions(actions)
            .build(
                Some(delta.snapshot()?),
                store.clone(),
                DeltaOperation::Write {
                    mode: SaveMode::Overwrite,
                    partition_by: None,
                    predicate: Some(predicate),
                },
            )
            .await?;
        Ok(())
    })
}

/// The live files of `table` (those of its latest version).
pub fn live_files(lake: &Lake, table: &str) -> Result<Vec<LiveFile>> {
    let store = log_store(lake, table)?;
    block_on(async move {
        let Some(delta) = load(store).await? else {
            return Ok(Vec::new());
        };
        let columns: Vec<String> = delta.snapshot()?.metadata().partition_columns().to_vec();
        let files: Vec<_> = delta.get_active_add_actions_by_partitions(&[]).try_collect().await?;
        Ok(files
            .iter()
            .map(|f| {
                let values = f.partition_values_map();
                let partition = columns
                    .iter()
                    .map(|c| format!("{c}={}", values.get(c).cloned().flatten().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("/");
                LiveFile {
                    path: f.path().to_string(),
                    partition,
                    size: f.size().max(0) as u64,
                }
            })
            .collect())
    })
}

/// The data files readers of `table` should read: a Delta table's live
/// files, or every Parquet file under a plain table's directory.
pub fn data_files(lake: &Lake, table: &str) -> Result<Vec<object_store::path::Path>> {
    if is_delta(lake, table)? {
        return Ok(live_files(lake, table)?
            .into_iter()
            .map(|f| lake.path(&format!("{table}/{}", f.path)))
            .collect());
    }
    Ok(lake
        .list(table)?
        .into_iter()
        .map(|(path, _)| path)
        .filter(|p| p.as_ref().ends_with(".parquet"))
        .collect())
}

/// Swaps `inputs` (live files of one partition of `table`) for `merged`,
/// already written, in one commit. Returns `false`, leaving the table as
/// it was, when an input is no longer live (another compaction won).
pub fn swap_files(lake: &Lake, table: &str, inputs: &[LiveFile], merged: &DataFile) -> Result<bool> {
    let store = log_store(lake, table)?;
    let (inputs, merged) = (inputs.to_vec(), merged.clone());
    block_on(async move {
        let Some(delta) = load(store.clone()).await? else {
            return Ok(false);
        };
        let live: HashMap<String, _> = delta
            .get_active_add_actions_by_partitions(&[])
            .map_ok(|f| (f.path().to_string(), f))
            .try_collect()
            .await?;
        let mut actions = Vec::with_capacity(inputs.len() + 1);
        for input in &inputs {
            match live.get(&input.path) {
                Some(f) => actions.push(Action::Remove(f.remove_action(false))),
                None => return Ok(false),
            }
        }
        actions.push(add_action(&merged, false, crate::util::now_ms()));
        let committed = CommitBuilder::default()
            .with_actions(actions)
            .build(
                Some(delta.snapshot()?),
                store.clone(),
                DeltaOperation::Optimize {
                    predicate: None,
                    target_size: merged.size as i64,
                },
            )
            .await;
        match committed {
            Ok(_) => Ok(true),
            // A concurrent commit removed an input first.
            Err(DeltaTableError::Transaction {
                source: deltalake_core::kernel::transaction::TransactionError::CommitConflict(_),
            }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_keep_the_path_order() {
        assert_eq!(
            partition_values("date=2026-01-01/hour=07"),
            vec![("date".into(), "2026-01-01".into()), ("hour".into(), "07".into())]
        );
        assert!(partition_values("").is_empty());
    }

    #[test]
    fn timestamps_become_microseconds_utc() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
                false,
            ),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(arrow::array::TimestampMillisecondArray::from(vec![1_500]).with_timezone("+00:00")),
                Arc::new(arrow::array::Int64Array::from(vec![7])),
            ],
        )
        .expect("batch");
        let out = data_batch(&batch).expect("cast");
        assert_eq!(
            out.schema().field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let t = out
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>();
        assert_eq!(t.map(|a| a.value(0)), Some(1_500_000));
    }
}
