//! The lake sink: rows to Parquet files, durable at every checkpoint,
//! visible in few, large files.
//!
//! # Writing
//! Rows of the current checkpoint epoch are kept in memory. `pre_commit(N)`
//! makes them durable as the epoch's output by appending them, in chunks, to
//! a write-ahead log in the job's state. Each chunk's key holds its epoch,
//! so the log is written once, straight to the committed state rather than
//! staged and copied when checkpoint `N` completes: a chunk counts only once
//! its epoch's checkpoint is complete, and `recover` deletes the chunks of
//! epochs after the restored checkpoint (their input is read again). Rows are not turned into files at every
//! checkpoint: `commit(N)` *rolls* — groups every logged row of the epochs up
//! to `N` by (table, partition) and writes one file per partition (more past
//! `target_file_bytes`) — once `roll_interval` has passed since the last
//! roll, and at the end of the input. Between rolls, committed rows are
//! durable but not yet visible.
//!
//! # Exactly once
//! A roll first records itself (the epochs it covers) in the committed
//! state, then writes its files under `_staging/` and renames them into
//! place, then deletes the log and the record. File names carry the writer,
//! worker, roll epoch and a sequence number, so a roll done again writes
//! the same files: on start, `recover` redoes a recorded roll that a crash
//! interrupted, and rolls whatever the restored checkpoint's log still
//! holds. Staged files of rolls never recorded are deleted. So every row of
//! a checkpointed epoch is in the lake once; each file appears atomically,
//! the files of one roll one after another.
//!
//! # Delta tables
//! With `format = "delta"` a roll writes its files in place (unreferenced,
//! so invisible) and commits them with one Delta commit per table, carrying
//! the writer's `txn` (app id `{writer}-w{worker}`, version = the roll's
//! epoch). A redone roll rewrites the same files and skips a commit the
//! table already holds, so all of a roll's rows of a table appear at once,
//! and once. On worker 0 a [`BackgroundCompactor`] merges the small files
//! of the tables the writer adds to.

use super::background::BackgroundCompactor;
use super::tables::LakeRow;
use super::{delta, Lake};
use crate::config::LakeFormat;
use crate::error::{Result, RiftError};
use crate::sinks::SinkWriter;
use crate::state::checkpoint::entry_key;
use crate::state::{key_group, owns, OperatorState};
use crate::util::block_on;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Object-store requests in flight per writer.
const CONCURRENCY: usize = 16;

/// Rows per log chunk.
const CHUNK_ROWS: usize = 8_192;

/// Sections of the writer's checkpoint state.
const LOG: &[u8] = b"l";
const ROLL: &[u8] = b"r";

/// Writes rows of type `R` to their lake tables.
pub struct LakeWriter<R: LakeRow> {
    lake: Lake,
    /// Identifies the writer in file names (job and output).
    writer_id: String,
    worker: usize,
    /// Workers of the run (which logs of a restored checkpoint this one takes over).
    peers: usize,
    target_file_bytes: usize,
    row_group_rows: usize,
    props: WriterProperties,
    /// Where pre-committed rows wait for the roll.
    log: OperatorState,
    /// Rows of the current epoch, not yet logged.
    buffer: Vec<R>,
    /// Logged rows awaiting the roll, by epoch, with their log entries.
    logged: BTreeMap<u64, (Vec<R>, Vec<Vec<u8>>)>,
    /// The epoch rows are written in.
    epoch: u64,
    roll_interval: Duration,
    last_roll: Instant,
    /// The input ended: the next commit rolls everything.
    ending: bool,
    /// The latest epoch committed (its logged rows may wait for the roll).
    committed: Option<u64>,
    /// Compacts the Delta tables this writer adds to, in the background.
    compactor: Option<BackgroundCompactor>,
}

/// What a roll record holds: the epochs it covers (up to and including)
/// and the run that named its files.
#[derive(serde::Serialize, serde::Deserialize)]
struct RollRecord {
    through: u64,
    run: u64,
}

/// This process's start time in ms, in file names: two runs that reach the
/// same epoch number (a fresh state directory writing into an existing
/// lake) never share a file name. A redone roll uses its recorded run.
fn run_id() -> u64 {
    static RUN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *RUN.get_or_init(|| crate::util::now_ms().max(0) as u64)
}

impl<R: LakeRow + Serialize + DeserializeOwned> LakeWriter<R> {
    /// A writer into `lake` on `worker` of `peers` (`(worker, peers)`);
    /// `writer_id` names it in file names (job and output), `log` is its
    /// place in the job's checkpoint state.
    pub fn new(
        lake: Lake,
        writer_id: &str,
        (worker, peers): (usize, usize),
        target_file_bytes: usize,
        row_group_rows: usize,
        roll_interval: Duration,
        log: OperatorState,
    ) -> Result<Self> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
            .set_max_row_group_row_count(Some(row_group_rows.max(1)))
            .build();
        Ok(LakeWriter {
            lake,
            writer_id: crate::util::partition_value(writer_id),
            worker,
            peers: peers.max(1),
            target_file_bytes,
            row_group_rows: row_group_rows.max(1),
            props,
            log,
            buffer: Vec::new(),
            logged: BTreeMap::new(),
            epoch: 0,
            roll_interval,
            last_roll: Instant::now(),
            ending: false,
            committed: None,
            compactor: None,
        })
    }

    /// Compacts the tables this writer adds files to with `compactor`.
    pub fn with_compactor(mut self, compactor: BackgroundCompactor) -> Self {
        self.compactor = Some(compactor);
        self
    }

    /// The log entry of chunk `seq` of `epoch` written by worker `slot` (its key group).
    fn log_key(&self, slot: usize, epoch: u64, seq: u32) -> Vec<u8> {
        let mut k = epoch.to_be_bytes().to_vec();
        k.extend_from_slice(&seq.to_be_bytes());
        entry_key(&self.log.op, LOG, key_group(slot as u64), &k)
    }

    /// The roll record of worker `slot`'s log.
    fn roll_key(&self, slot: usize) -> Vec<u8> {
        entry_key(&self.log.op, ROLL, key_group(slot as u64), b"roll")
    }

    /// Writes `rows` as the files of roll `through`: grouped by (table,
    /// partition) in order, split past the target size; then makes them
    /// visible: Parquet files are staged and moved into place, Delta files
    /// are written in place and added by one commit per table.
    fn write_files(&self, slot: usize, through: u64, run: u64, groups: &Groups<R>) -> Result<()> {
        let delta = self.lake.format == LakeFormat::Delta;
        let schema = if delta {
            delta::data_schema(&R::schema())
        } else {
            R::schema()
        };
        // (table, partition, name, bytes, rows)
        let mut files: Vec<(String, String, String, bytes::Bytes, u64)> = Vec::new();
        for ((table, partition), group) in groups {
            let mut seq = 0u32;
            let mut writer: Option<(ArrowWriter<Vec<u8>>, u64)> = None;
            let mut close = |writer: &mut Option<(ArrowWriter<Vec<u8>>, u64)>, seq: &mut u32| -> Result<()> {
                if let Some((w, rows)) = writer.take() {
                    let name = file_name(&self.writer_id, slot, through, run, *seq);
                    *seq += 1;
                    let bytes = bytes::Bytes::from(w.into_inner()?);
                    files.push((table.clone(), partition.clone(), name, bytes, rows));
                }
                Ok(())
            };
            for chunk in group.chunks(self.row_group_rows) {
                let mut batch = R::to_batch(chunk)?;
                if delta {
                    batch = delta::data_batch(&batch)?;
                }
                if writer.is_none() {
                    writer = Some((
                        ArrowWriter::try_new(Vec::new(), schema.clone(), Some(self.props.clone()))?,
                        0,
                    ));
                }
                if let Some((w, rows)) = writer.as_mut() {
                    w.write(&batch)?;
                    *rows += batch.num_rows() as u64;
                    if w.bytes_written() + w.in_progress_size() >= self.target_file_bytes {
                        close(&mut writer, &mut seq)?;
                    }
                }
            }
            close(&mut writer, &mut seq)?;
        }
        if delta {
            upload(
                &self.lake,
                files
                    .iter()
                    .map(|(t, p, n, b, _)| (self.lake.path(&format!("{t}/{p}/{n}")), b.clone()))
                    .collect(),
            )?;
            let mut by_table: BTreeMap<&str, Vec<delta::DataFile>> = BTreeMap::new();
            for (table, partition, name, bytes, rows) in &files {
                by_table.entry(table).or_default().push(delta::DataFile {
                    path: format!("{partition}/{name}"),
                    partition: partition.clone(),
                    size: bytes.len() as u64,
                    rows: *rows,
                });
            }
            let app = format!("{}-w{slot:03}", self.writer_id);
            for (table, table_files) in by_table {
                delta::append(&self.lake, table, &R::schema(), &table_files, &app, through)?;
                crate::util::crash_point!("lake-delta-committed");
                if let Some(c) = &self.compactor {
                    c.track([table]);
                }
            }
            return Ok(());
        }
        let staged: Vec<(ObjectPath, ObjectPath, bytes::Bytes)> = files
            .into_iter()
            .map(|(t, p, n, b, _)| {
                (
                    self.lake.path(&format!("_staging/{t}/{p}/{n}")),
                    self.lake.path(&format!("{t}/{p}/{n}")),
                    b,
                )
            })
            .collect();
        upload(
            &self.lake,
            staged.iter().map(|(s, _, b)| (s.clone(), b.clone())).collect(),
        )?;
        move_into_place(&self.lake, staged.into_iter().map(|(s, f, _)| (s, f)).collect())
    }

    /// Rolls `rows` (the logged rows of worker `slot`'s log of the epochs up
    /// to `through`, whose log entries are `entries`): record, files, then forget.
    fn roll(&mut self, slot: usize, through: u64, run: u64, groups: &Groups<R>, entries: &[Vec<u8>]) -> Result<()> {
        if groups.is_empty() && entries.is_empty() {
            return Ok(());
        }
        let record = serde_json::to_vec(&RollRecord { through, run })
            .map_err(|e| RiftError::Internal(format!("roll record: {e}")))?;
        self.log.state.write_committed([(self.roll_key(slot), Some(record))])?;
        crate::util::crash_point!("lake-roll-recorded");
        self.write_files(slot, through, run, groups)?;
        crate::util::crash_point!("lake-roll-written");
        let forget = entries
            .iter()
            .map(|k| (k.clone(), None))
            .chain([(self.roll_key(slot), None)]);
        self.log.state.write_committed(forget)?;
        self.last_roll = Instant::now();
        Ok(())
    }
}

impl<R: LakeRow + Serialize + DeserializeOwned> SinkWriter<R> for LakeWriter<R> {
    fn begin_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    fn write(&mut self, records: &mut Vec<R>) -> Result<()> {
        self.buffer.append(records);
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut changes = Vec::new();
        let mut keys = Vec::new();
        for (seq, chunk) in self.buffer.chunks(CHUNK_ROWS).enumerate() {
            let bytes = bincode::serialize(chunk).map_err(|e| RiftError::Internal(format!("lake log: {e}")))?;
            let key = self.log_key(self.worker, epoch, seq as u32);
            keys.push(key.clone());
            changes.push((key, Some(bytes)));
        }
        self.log.state.write_committed(changes)?;
        // Logged, but its checkpoint not complete: a restart deletes the chunks and logs them again.
        crate::util::crash_point!("lake-log-written");
        let rows = std::mem::take(&mut self.buffer);
        let entry = self.logged.entry(epoch).or_default();
        entry.0.extend(rows);
        entry.1.extend(keys);
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<bool> {
        self.committed = Some(self.committed.map_or(epoch, |c| c.max(epoch)));
        self.flush().map(|_| true)
    }

    fn flush(&mut self) -> Result<Option<Duration>> {
        let Some(through) = self.committed else {
            return Ok(None);
        };
        if self.logged.range(..=through).next().is_none() {
            return Ok(None);
        }
        let wait = self.roll_interval.saturating_sub(self.last_roll.elapsed());
        if !self.ending && !wait.is_zero() {
            return Ok(Some(wait));
        }
        let due: Vec<u64> = self.logged.range(..=through).map(|(e, _)| *e).collect();
        let (mut rows, mut entries) = (Vec::new(), Vec::new());
        for e in &due {
            if let Some((r, k)) = self.logged.remove(e) {
                rows.extend(r);
                entries.extend(k);
            }
        }
        let groups = group(rows);
        if let Err(e) = self.roll(self.worker, through, run_id(), &groups, &entries) {
            // Kept for the retry.
            self.logged
                .insert(through, (groups.into_values().flatten().collect(), entries));
            return Err(e);
        }
        Ok(None)
    }

    fn end_of_input(&mut self) {
        self.ending = true;
        if let Some(c) = &self.compactor {
            c.finish();
        }
    }

    fn recover(&mut self, restored: Option<u64>) -> Result<()> {
        // The logs this worker takes over: those of the workers of the run
        // that wrote them whose key group it owns now (its own, and more or
        // fewer when the worker count changed). Each is recovered on its own,
        // under its own name, so a crash during recovery is recovered again
        // by whoever owns it next.
        let owned = |slot: usize| owns(key_group(slot as u64), self.worker, self.peers);
        // Staged files of these logs belong to rolls that will be redone (or never recorded).
        let prefix = format!("part-{}-w", self.writer_id);
        for (path, _) in self.lake.list("_staging")? {
            let slot = path
                .filename()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|rest| rest.split('-').next())
                .and_then(|digits| digits.parse::<usize>().ok());
            if slot.is_some_and(owned) {
                self.lake.delete(&path)?;
            }
        }
        let mut chunks: BTreeMap<u16, BTreeMap<(u64, u32), Vec<u8>>> = BTreeMap::new();
        // Chunks of epochs no complete checkpoint covers: their rows are read and logged again.
        let mut uncovered = Vec::new();
        for (g, key, value) in self.log.state.scan(&self.log.op, LOG)? {
            if !owns(g, self.worker, self.peers) || key.len() != 12 {
                continue;
            }
            let epoch = u64::from_be_bytes(key[..8].try_into().unwrap_or_default());
            let seq = u32::from_be_bytes(key[8..12].try_into().unwrap_or_default());
            if restored.is_none_or(|r| epoch > r) {
                uncovered.push((self.log_key(g as usize, epoch, seq), None));
                continue;
            }
            chunks.entry(g).or_default().insert((epoch, seq), value);
        }
        self.log.state.write_committed(uncovered)?;
        if restored.is_none() {
            return Ok(());
        }
        for (g, _, _) in self.log.state.scan(&self.log.op, ROLL)? {
            if owns(g, self.worker, self.peers) {
                chunks.entry(g).or_default();
            }
        }
        for (group_index, mut chunks) in chunks {
            let slot = group_index as usize;
            let interrupted: Option<RollRecord> = self
                .log
                .state
                .get(&self.log.op, ROLL, group_index, b"roll")?
                .and_then(|v| serde_json::from_slice(&v).ok());
            let mut take = |upto: u64| -> Result<(Vec<R>, Vec<Vec<u8>>)> {
                let keys: Vec<(u64, u32)> = chunks.range(..=(upto, u32::MAX)).map(|(k, _)| *k).collect();
                let (mut rows, mut entries) = (Vec::new(), Vec::new());
                for (epoch, seq) in keys {
                    if let Some(bytes) = chunks.remove(&(epoch, seq)) {
                        let chunk: Vec<R> = bincode::deserialize(&bytes)
                            .map_err(|e| RiftError::Internal(format!("lake log of epoch {epoch}: {e}")))?;
                        rows.extend(chunk);
                        entries.push(self.log_key(slot, epoch, seq));
                    }
                }
                Ok((rows, entries))
            };
            // A roll a crash interrupted is done again, with the same files.
            let (redo_rows, redo_entries) = match &interrupted {
                Some(r) => take(r.through)?,
                None => (Vec::new(), Vec::new()),
            };
            let (rest_rows, rest_entries) = take(u64::MAX)?;
            if let Some(r) = interrupted {
                self.roll(slot, r.through, r.run, &group(redo_rows), &redo_entries)?;
            }
            // What the restored checkpoint logged and no roll made visible yet.
            if let Some(r) = restored {
                self.roll(slot, r, run_id(), &group(rest_rows), &rest_entries)?;
            }
        }
        Ok(())
    }
}

/// Rows by (table, partition), in order.
type Groups<R> = BTreeMap<(String, String), Vec<R>>;

/// Groups `rows` by (table, partition), keeping their order.
fn group<R: LakeRow>(rows: Vec<R>) -> Groups<R> {
    let mut groups: Groups<R> = BTreeMap::new();
    for r in rows {
        groups.entry((r.table(), r.partition())).or_default().push(r);
    }
    groups
}

/// The name of a data file: writer, worker, roll epoch, sequence.
fn file_name(writer: &str, worker: usize, epoch: u64, run: u64, seq: u32) -> String {
    format!("part-{writer}-w{worker:03}-e{epoch:020}-{run:x}-{seq:04}.parquet")
}

/// Puts objects, several at a time.
fn upload(lake: &Lake, files: Vec<(ObjectPath, bytes::Bytes)>) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    if files.is_empty() {
        return Ok(());
    }
    let store = lake.store.clone();
    block_on(async move {
        futures::stream::iter(files)
            .map(|(path, bytes)| {
                let store = store.clone();
                async move { store.put(&path, PutPayload::from(bytes)).await.map(|_| ()) }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
    })?;
    Ok(())
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
    fn file_names_are_deterministic_per_roll() {
        assert_eq!(
            file_name("lake-matches", 3, 352_194_417, 0xabc, 7),
            "part-lake-matches-w003-e00000000000352194417-abc-0007.parquet"
        );
    }
}
