//! The lake sink: rows to Parquet files, staged per checkpoint epoch and
//! committed once the checkpoint is complete.
//!
//! Rows are grouped by (table, partition). Each group accumulates rows into
//! row groups of `row_group_rows` and rolls to a new file past
//! `target_file_bytes`. `pre_commit(N)` closes every open file and uploads
//! it under `_staging/`; `commit(N)` moves every staged file of epochs up to
//! `N` into its partition. File names carry the writer, worker, checkpoint
//! epoch and a sequence number:
//! `part-{writer}-w{worker}-e{epoch}-{seq}.parquet`.
//!
//! # Exactly once
//! Checkpoint epochs are unique across runs (they count checkpoint
//! intervals of wall-clock time), so no two epochs' files share a name. A
//! commit renames staged files and is idempotent (a file already moved is
//! found in place). On start, `recover` commits every staged file of the
//! restored checkpoint or earlier (pre-committed, its commit interrupted)
//! and deletes staged files of later epochs (their rows are read again from
//! the sources). So every row of a checkpointed epoch is in the lake once.
//! Each file appears atomically; the files of one epoch appear one after
//! another (a reader listing a table mid-commit can see some of them).

use super::tables::LakeRow;
use super::Lake;
use crate::error::Result;
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
    /// Per epoch: (staging path, final path) of files staged, not yet committed.
    staged: BTreeMap<u64, Vec<(ObjectPath, ObjectPath)>>,
    /// Closed files not uploaded yet.
    uploads: Vec<(ObjectPath, bytes::Bytes)>,
    /// The checkpoint epoch of the rows being written.
    epoch: u64,
    props: WriterProperties,
}

impl<R: LakeRow> LakeWriter<R> {
    /// A writer into `lake`; `writer_id` names it in file names (job and output).
    pub fn new(
        lake: Lake,
        writer_id: &str,
        worker: usize,
        target_file_bytes: usize,
        row_group_rows: usize,
    ) -> Result<Self> {
        let writer_id = crate::util::partition_value(writer_id);
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
            staged: BTreeMap::new(),
            uploads: Vec::new(),
            epoch: 0,
            props,
        })
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
        let name = file_name(&self.writer_id, self.worker, self.epoch, f.seq);
        f.seq += 1;
        let staging = self.lake.path(&format!("_staging/{table}/{partition}/{name}"));
        let final_path = self.lake.path(&format!("{table}/{partition}/{name}"));
        self.uploads.push((staging.clone(), bytes::Bytes::from(bytes)));
        self.staged.entry(self.epoch).or_default().push((staging, final_path));
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

    fn begin_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        self.epoch = epoch;
        let keys: Vec<(String, String)> = self.open.keys().cloned().collect();
        for (table, partition) in keys {
            self.close_file(&table, &partition)?;
        }
        self.open.clear();
        self.upload()
    }

    fn commit(&mut self, epoch: u64) -> Result<()> {
        let due: Vec<u64> = self.staged.range(..=epoch).map(|(e, _)| *e).collect();
        let moves: Vec<(ObjectPath, ObjectPath)> = due
            .iter()
            .flat_map(|e| self.staged.get(e).cloned().unwrap_or_default())
            .collect();
        move_into_place(&self.lake, moves)?;
        for e in due {
            self.staged.remove(&e);
        }
        Ok(())
    }

    fn recover(&mut self, restored: Option<u64>) -> Result<()> {
        let mine = format!("part-{}-w{:03}-e", self.writer_id, self.worker);
        let mut moves = Vec::new();
        for (path, _) in self.lake.list("_staging")? {
            let relative = self.lake.relative(&path);
            let Some(rest) = relative.strip_prefix("_staging/") else {
                continue;
            };
            let Some(name) = rest.rsplit('/').next() else { continue };
            let Some(epoch) = name.strip_prefix(&mine).and_then(epoch_of) else {
                continue;
            };
            if restored.is_some_and(|r| epoch <= r) {
                moves.push((path.clone(), self.lake.path(rest)));
            } else {
                self.lake.delete(&path)?;
            }
        }
        move_into_place(&self.lake, moves)
    }
}

/// The name of a data file: writer, worker, checkpoint epoch, sequence.
fn file_name(writer: &str, worker: usize, epoch: u64, seq: u32) -> String {
    format!(
        "part-{writer}-w{worker:03}-e{epoch:020}-{:x}-{seq:04}.parquet",
        run_id()
    )
}

/// This process's start time in ms: two runs that reach the same epoch
/// number (a fresh state directory writing into an existing lake) never
/// share a file name.
fn run_id() -> u64 {
    static RUN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *RUN.get_or_init(|| crate::util::now_ms().max(0) as u64)
}

/// The epoch in the rest of a file name after `part-{writer}-w{worker}-e`.
fn epoch_of(rest: &str) -> Option<u64> {
    rest.split('-').next()?.parse().ok()
}

/// Renames staged files into place, several at a time; a file already moved
/// (by an earlier attempt) is found in place.
fn move_into_place(lake: &Lake, moves: Vec<(ObjectPath, ObjectPath)>) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    if moves.is_empty() {
        return Ok(());
    }
    let store = lake.store.clone();
    block_on(async move {
        futures::stream::iter(moves)
            .map(|(from, to)| {
                let store = store.clone();
                async move {
                    match store.rename(&from, &to).await {
                        Err(object_store::Error::NotFound { .. }) => store.head(&to).await.map(|_| ()),
                        other => other,
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_the_epoch_back() {
        let name = file_name("lake-matches", 3, 352_194_417, 7);
        assert!(
            name.starts_with("part-lake-matches-w003-e00000000000352194417-"),
            "{name}"
        );
        assert!(name.ends_with("-0007.parquet"), "{name}");
        let rest = name.strip_prefix("part-lake-matches-w003-e").unwrap();
        assert_eq!(epoch_of(rest), Some(352_194_417));
    }
}
