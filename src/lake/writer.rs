//! The lake sink: rows to Parquet files, staged and committed per epoch.
//!
//! Rows are grouped by (table, partition). Each group accumulates rows into
//! row groups of `row_group_rows` and rolls to a new file past
//! `target_file_bytes`. `pre_commit` closes every open file and uploads it
//! under `_staging/`; `commit` moves staged files into their partitions.
//! File names carry the writer, worker, epoch and a sequence number, all
//! deterministic, so replaying an epoch overwrites the same objects.
//!
//! Epochs continue across runs: `commit` records the next epoch in
//! `_writers/{writer}-w{worker}.json`, and a new writer starts there, so a
//! restarted or repeated run adds files instead of overwriting committed
//! ones. A crash between the renames and that record replays the epoch under
//! the same number: at-least-once until checkpoints restore exact epochs.

use super::tables::LakeRow;
use super::Lake;
use crate::error::{Result, RiftError};
use crate::sinks::SinkWriter;
use crate::util::block_on;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;

/// Object-store requests in flight per writer.
const CONCURRENCY: usize = 16;

struct OpenFile<R> {
    rows: Vec<R>,
    writer: Option<ArrowWriter<Vec<u8>>>,
    /// Files already rolled in this epoch for this partition.
    seq: u32,
}

/// Writes rows of type `R` to their lake tables.
pub struct LakeWriter<R: LakeRow> {
    lake: Lake,
    /// Identifies the writer in file names (job and output).
    writer_id: String,
    worker: usize,
    target_file_bytes: usize,
    row_group_rows: usize,
    open: BTreeMap<(String, String), OpenFile<R>>,
    /// (staging path, final path) of files staged in the current epoch.
    staged: Vec<(ObjectPath, ObjectPath)>,
    /// Closed files not uploaded yet.
    uploads: Vec<(ObjectPath, bytes::Bytes)>,
    /// Epoch of the files being written (the run's first epoch plus the sink's epoch).
    epoch: u64,
    /// This run's first epoch, from the `_writers/` record.
    first_epoch: u64,
    props: WriterProperties,
}

/// What `_writers/{writer}-w{worker}.json` holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct WriterRecord {
    next_epoch: u64,
}

impl<R: LakeRow> LakeWriter<R> {
    /// A writer into `lake`, continuing after the epochs its earlier runs committed.
    pub fn new(
        lake: Lake,
        writer_id: &str,
        worker: usize,
        target_file_bytes: usize,
        row_group_rows: usize,
    ) -> Result<Self> {
        let writer_id = crate::util::partition_value(writer_id);
        let record_path = lake.path(&format!("_writers/{writer_id}-w{worker:03}.json"));
        let first_epoch = match lake.get_opt(&record_path)? {
            Some(bytes) => {
                serde_json::from_slice::<WriterRecord>(&bytes)
                    .map_err(|e| {
                        RiftError::external(
                            "object_store",
                            format!("{record_path}: unreadable writer record: {e}"),
                            false,
                        )
                    })?
                    .next_epoch
            }
            None => 0,
        };
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
            .set_max_row_group_row_count(Some(row_group_rows.max(1)))
            .build();
        Ok(LakeWriter {
            lake,
            writer_id,
            worker,
            target_file_bytes,
            row_group_rows: row_group_rows.max(1),
            open: BTreeMap::new(),
            staged: Vec::new(),
            uploads: Vec::new(),
            epoch: first_epoch,
            first_epoch,
            props,
        })
    }

    fn record_path(&self) -> ObjectPath {
        self.lake
            .path(&format!("_writers/{}-w{:03}.json", self.writer_id, self.worker))
    }

    fn flush_rows(props: &WriterProperties, f: &mut OpenFile<R>) -> Result<()> {
        if f.rows.is_empty() {
            return Ok(());
        }
        let batch = R::to_batch(&f.rows)?;
        f.rows.clear();
        if f.writer.is_none() {
            f.writer = Some(ArrowWriter::try_new(Vec::new(), R::schema(), Some(props.clone()))?);
        }
        if let Some(w) = f.writer.as_mut() {
            w.write(&batch)?;
        }
        Ok(())
    }

    fn close_file(&mut self, table: &str, partition: &str) -> Result<()> {
        let Some(f) = self.open.get_mut(&(table.to_string(), partition.to_string())) else {
            return Ok(());
        };
        Self::flush_rows(&self.props, f)?;
        let Some(writer) = f.writer.take() else {
            return Ok(());
        };
        let bytes = writer.into_inner()?;
        let name = format!(
            "part-{}-w{:03}-e{:08}-{:04}.parquet",
            self.writer_id, self.worker, self.epoch, f.seq
        );
        f.seq += 1;
        let staging = self.lake.path(&format!("_staging/{table}/{partition}/{name}"));
        let final_path = self.lake.path(&format!("{table}/{partition}/{name}"));
        self.uploads.push((staging.clone(), bytes::Bytes::from(bytes)));
        self.staged.push((staging, final_path));
        Ok(())
    }

    /// Uploads closed files to staging, several at a time.
    fn upload(&mut self) -> Result<()> {
        use futures::{StreamExt, TryStreamExt};
        let store = self.lake.store.clone();
        // Kept until every upload succeeded: a retry re-puts the same paths.
        let uploads = self.uploads.clone();
        block_on(async move {
            futures::stream::iter(uploads)
                .map(|(path, bytes)| {
                    let store = store.clone();
                    async move { store.put(&path, PutPayload::from(bytes)).await.map(|_| ()) }
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await
        })?;
        self.uploads.clear();
        Ok(())
    }
}

impl<R: LakeRow> SinkWriter<R> for LakeWriter<R> {
    fn write(&mut self, records: &mut Vec<R>) -> Result<()> {
        let mut full: Vec<(String, String)> = Vec::new();
        for r in records.drain(..) {
            let key = (r.table(), r.partition());
            let f = self.open.entry(key.clone()).or_insert_with(|| OpenFile {
                rows: Vec::new(),
                writer: None,
                seq: 0,
            });
            f.rows.push(r);
            if f.rows.len() >= self.row_group_rows {
                Self::flush_rows(&self.props, f)?;
                let size = f
                    .writer
                    .as_ref()
                    .map(|w| w.bytes_written() + w.in_progress_size())
                    .unwrap_or(0);
                if size >= self.target_file_bytes {
                    full.push(key);
                }
            }
        }
        for (table, partition) in full {
            self.close_file(&table, &partition)?;
        }
        if !self.uploads.is_empty() {
            self.upload()?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        self.epoch = self.first_epoch + epoch;
        let keys: Vec<(String, String)> = self.open.keys().cloned().collect();
        for (table, partition) in keys {
            self.close_file(&table, &partition)?;
        }
        self.open.clear();
        self.upload()
    }

    fn commit(&mut self, epoch: u64) -> Result<()> {
        use futures::{StreamExt, TryStreamExt};
        let store = self.lake.store.clone();
        let staged = self.staged.clone();
        let had_files = !staged.is_empty();
        block_on(async move {
            futures::stream::iter(staged)
                .map(|(from, to)| {
                    let store = store.clone();
                    async move {
                        match store.rename(&from, &to).await {
                            // Moved by an earlier attempt of this commit: done.
                            Err(object_store::Error::NotFound { .. }) => store.head(&to).await.map(|_| ()),
                            other => other,
                        }
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await
        })?;
        self.staged.clear();
        self.epoch = self.first_epoch + epoch + 1;
        if !had_files {
            // No file carries this epoch: nothing a later run could overwrite.
            return Ok(());
        }
        let record = serde_json::to_vec(&WriterRecord { next_epoch: self.epoch })
            .map_err(|e| RiftError::Internal(format!("writer record: {e}")))?;
        self.lake.put(&self.record_path(), bytes::Bytes::from(record))
    }
}
