//! The lake sink: rows to Parquet files, staged and committed per epoch.
//!
//! Rows are grouped by (table, partition). Each group accumulates rows into
//! row groups of `row_group_rows` and rolls to a new file past
//! `target_file_bytes`. `pre_commit` closes every open file and uploads it
//! under `_staging/`; `commit` moves staged files into their partitions.
//! File names carry the writer, worker, epoch and a sequence number, all
//! deterministic, so replaying an epoch overwrites the same objects.

use super::tables::LakeRow;
use super::Lake;
use crate::error::Result;
use crate::runtime::block_on;
use crate::sinks::SinkWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;

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
    epoch: u64,
    props: WriterProperties,
}

impl<R: LakeRow> LakeWriter<R> {
    /// A writer into `lake`.
    pub fn new(lake: Lake, writer_id: &str, worker: usize, target_file_bytes: usize, row_group_rows: usize) -> Self {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
            .set_max_row_group_row_count(Some(row_group_rows.max(1)))
            .build();
        LakeWriter {
            lake,
            writer_id: crate::lake::partition_value(writer_id),
            worker,
            target_file_bytes,
            row_group_rows: row_group_rows.max(1),
            open: BTreeMap::new(),
            staged: Vec::new(),
            epoch: 0,
            props,
        }
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
        let store = self.lake.store.clone();
        let put_path = staging.clone();
        block_on(async move { store.put(&put_path, PutPayload::from(bytes)).await })?;
        self.staged.push((staging, final_path));
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
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        self.epoch = epoch;
        let keys: Vec<(String, String)> = self.open.keys().cloned().collect();
        for (table, partition) in keys {
            self.close_file(&table, &partition)?;
        }
        self.open.clear();
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<()> {
        let store = self.lake.store.clone();
        let staged = std::mem::take(&mut self.staged);
        block_on(async move {
            for (from, to) in &staged {
                store.rename(from, to).await?;
            }
            Ok::<_, crate::error::RiftError>(())
        })?;
        self.epoch = epoch + 1;
        Ok(())
    }
}
