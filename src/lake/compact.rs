//! `riftstream lake compact`: merges the small files of closed partitions.
//!
//! Streaming writers close a file at least every `roll_interval`, so a quiet
//! partition collects many small files. Compaction rewrites them into files
//! of up to `target_file_bytes`, partition by partition, leaving rows and
//! schemas untouched.
//!
//! # What it touches
//! * Only *closed* partitions: those whose `date=` day ended at least
//!   `min_age` ago, so no writer is still adding to them in the normal case.
//! * Only append-only tables (bronze, silver, `gold/player_features`,
//!   `gold/predictions`, …). Gold snapshot tables (one file per partition,
//!   rewritten in place on every day close) are left alone.
//! * Only files with identical Arrow schemas are merged together.
//!
//! # Failure
//! Each merge first records an intent (`_compaction/{id}.json`: partition,
//! inputs, output), uploads the merged file to `_staging/`, moves it into
//! the partition, deletes the inputs, then the intent. A run interrupted at
//! any step is finished by the next one: if the merged file is in place, the
//! remaining inputs are deleted; if not, the intent is dropped and the
//! inputs (all still present) are merged again. The merged file's name is a
//! hash of its inputs, so a retry rewrites the same object. Between the move
//! and the deletes a reader listing the partition sees rows twice; run
//! compaction when no exact-count reader is scanning the closed days.
//!
//! Delta tables have none of that window: the merged file is written in
//! place, invisible until one commit removes the inputs and adds it
//! ([`delta::swap_files`]). Their writers also compact in the background
//! ([`super::background`]).

use super::{delta, Lake};
use crate::error::{Result, RiftError};
use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Tables whose partitions hold one snapshot file rewritten in place.
pub const SNAPSHOT_TABLES: &[&str] = &["gold/champion_stats", "gold/player_daily", "gold/leaderboard"];

/// Prefixes under the lake root that are not tables.
const NOT_TABLES: &[&str] = &["_staging/", "_compaction/", "_writers/", "models/"];

/// What to compact.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// A partition is closed once its day ended at least this long ago.
    pub min_age: Duration,
    /// Files smaller than this are merged; merged files grow up to it.
    pub target_file_bytes: u64,
    /// Rows per row group of merged files.
    pub row_group_rows: usize,
    /// Only report what would be merged.
    pub dry_run: bool,
    /// Now, UTC ms (a parameter so tests can fix it).
    pub now_ms: i64,
}

/// What a compaction did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// Partitions with files merged.
    pub partitions: usize,
    /// Input files merged away.
    pub files_in: usize,
    /// Merged files written.
    pub files_out: usize,
    /// Bytes of the inputs.
    pub bytes_in: u64,
    /// Rows moved.
    pub rows: u64,
    /// Interrupted compactions finished first.
    pub recovered: usize,
}

/// An intent record: a merge in progress.
#[derive(Debug, Serialize, Deserialize)]
struct Intent {
    partition: String,
    inputs: Vec<String>,
    output: String,
}

/// The day (UTC ms at its start) of a partition path containing `date=YYYY-MM-DD`.
fn partition_day(partition: &str) -> Option<i64> {
    let date = partition.split('/').find_map(|seg| seg.strip_prefix("date="))?;
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// The table (`layer/name`) of a relative file path.
fn table_of(relative: &str) -> String {
    relative.splitn(3, '/').take(2).collect::<Vec<_>>().join("/")
}

/// A stable id for a set of inputs (a hash of their sorted, NUL-separated names).
fn merge_id(inputs: &[String]) -> String {
    let joined = inputs.join("\0");
    format!("{:016x}", crate::util::stable_hash(joined.as_bytes()))
}

/// Compacts every closed partition of `lake`.
pub fn compact(lake: &Lake, opts: &CompactOptions) -> Result<CompactReport> {
    let mut report = CompactReport {
        recovered: if opts.dry_run { 0 } else { recover(lake)? },
        ..Default::default()
    };
    let listing = lake.list("")?;
    // Delta tables are compacted through their log; their directories also
    // hold files of older versions, which are not live.
    let delta_tables: std::collections::BTreeSet<String> = listing
        .iter()
        .map(|(path, _)| lake.relative(path))
        .filter(|r| r.contains("/_delta_log/"))
        .map(|r| table_of(&r))
        .collect();
    // Small files per partition directory.
    let mut partitions: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for (path, size) in listing {
        let relative = lake.relative(&path);
        if NOT_TABLES.iter().any(|p| relative.starts_with(p)) || !relative.ends_with(".parquet") {
            continue;
        }
        let table = table_of(&relative);
        if SNAPSHOT_TABLES.contains(&table.as_str()) || delta_tables.contains(&table) {
            continue;
        }
        let Some((dir, _name)) = relative.rsplit_once('/') else {
            continue;
        };
        if is_closed(dir, opts) && size < opts.target_file_bytes {
            partitions.entry(dir.to_string()).or_default().push((relative, size));
        }
    }
    for table in &delta_tables {
        if SNAPSHOT_TABLES.contains(&table.as_str()) {
            continue;
        }
        compact_delta_into(lake, table, opts, &mut report)?;
    }
    merge_partitions(partitions, opts, &mut report, |partition, names| {
        merge(lake, partition, names, opts).map(Some)
    })?;
    Ok(report)
}

/// Whether the partition `dir` (a path with `date=`) is closed under `opts`.
fn is_closed(dir: &str, opts: &CompactOptions) -> bool {
    partition_day(dir).is_some_and(|day| {
        day.saturating_add(24 * 3600 * 1000)
            .saturating_add(opts.min_age.as_millis() as i64)
            <= opts.now_ms
    })
}

/// Splits `files` (sorted) into runs of consecutive files up to `target` bytes; runs of one file are dropped.
fn merge_groups<T>(files: Vec<(T, u64)>, target: u64) -> Vec<Vec<(T, u64)>> {
    let mut groups: Vec<Vec<(T, u64)>> = vec![Vec::new()];
    let mut group_bytes = 0u64;
    for f in files {
        if group_bytes + f.1 > target && !groups.last().is_some_and(|g| g.is_empty()) {
            groups.push(Vec::new());
            group_bytes = 0;
        }
        group_bytes += f.1;
        if let Some(g) = groups.last_mut() {
            g.push(f);
        }
    }
    groups.retain(|g| g.len() >= 2);
    groups
}

/// Merges, partition by partition, each run of consecutive small files (in
/// sorted order) with `merge` (`None`: nothing merged), counting into `report`.
fn merge_partitions<T: Ord>(
    partitions: BTreeMap<String, Vec<(T, u64)>>,
    opts: &CompactOptions,
    report: &mut CompactReport,
    mut merge: impl FnMut(&str, &[T]) -> Result<Option<u64>>,
) -> Result<()> {
    for (partition, mut files) in partitions {
        files.sort();
        let mut merged_any = false;
        for group in merge_groups(files, opts.target_file_bytes) {
            let bytes_in: u64 = group.iter().map(|(_, s)| *s).sum();
            let inputs: Vec<T> = group.into_iter().map(|(f, _)| f).collect();
            let rows = if opts.dry_run {
                Some(0)
            } else {
                merge(&partition, &inputs)?
            };
            if let Some(rows) = rows {
                merged_any = true;
                report.files_in += inputs.len();
                report.files_out += 1;
                report.bytes_in += bytes_in;
                report.rows += rows;
            }
        }
        if merged_any {
            report.partitions += 1;
        }
    }
    Ok(())
}

/// Compacts the closed partitions of Delta table `table`: each run of small
/// live files becomes one file, swapped in by one commit.
pub fn compact_delta(lake: &Lake, table: &str, opts: &CompactOptions) -> Result<CompactReport> {
    let mut report = CompactReport::default();
    compact_delta_into(lake, table, opts, &mut report)?;
    Ok(report)
}

/// [`compact_delta`], counting into `report`.
fn compact_delta_into(lake: &Lake, table: &str, opts: &CompactOptions, report: &mut CompactReport) -> Result<()> {
    let mut partitions: BTreeMap<String, Vec<(delta::LiveFile, u64)>> = BTreeMap::new();
    for f in delta::live_files(lake, table)? {
        if f.size < opts.target_file_bytes && is_closed(&f.partition, opts) {
            let size = f.size;
            partitions.entry(f.partition.clone()).or_default().push((f, size));
        }
    }
    merge_partitions(partitions, opts, report, |partition, inputs| {
        merge_delta(lake, table, partition, inputs, opts)
    })
}

/// Reads the files of one schema among `names` (the first file's); returns their batches and the files used.
fn read_same_schema(lake: &Lake, names: &[String]) -> Result<(Vec<RecordBatch>, Vec<usize>)> {
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut used = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let file_batches = lake.read_parquet(&lake.path(name))?;
        let same = match (batches.first(), file_batches.first()) {
            (Some(a), Some(b)) => a.schema() == b.schema(),
            _ => true,
        };
        if same {
            batches.extend(file_batches);
            used.push(i);
        }
    }
    Ok((batches, used))
}

/// `batches` as one zstd Parquet file; returns its bytes and rows.
fn merged_file(batches: &[RecordBatch], opts: &CompactOptions) -> Result<Option<(bytes::Bytes, u64)>> {
    let Some(schema) = batches.first().map(|b| b.schema()) else {
        return Ok(None);
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_max_row_group_row_count(Some(opts.row_group_rows.max(1)))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props))?;
    let mut rows = 0u64;
    for b in batches {
        rows += b.num_rows() as u64;
        writer.write(b)?;
    }
    Ok(Some((bytes::Bytes::from(writer.into_inner()?), rows)))
}

/// Merges live files `inputs` of Delta table `table` into one, written in
/// place (invisible until committed) and swapped in by one commit; returns
/// its rows, or `None` when another commit removed an input first.
fn merge_delta(
    lake: &Lake,
    table: &str,
    partition: &str,
    inputs: &[delta::LiveFile],
    opts: &CompactOptions,
) -> Result<Option<u64>> {
    let names: Vec<String> = inputs.iter().map(|f| format!("{table}/{}", f.path)).collect();
    let (batches, used) = read_same_schema(lake, &names)?;
    if used.len() < 2 {
        return Ok(None);
    }
    let used: Vec<delta::LiveFile> = used.into_iter().filter_map(|i| inputs.get(i).cloned()).collect();
    let Some((bytes, rows)) = merged_file(&batches, opts)? else {
        return Ok(None);
    };
    let id = merge_id(&used.iter().map(|f| f.path.clone()).collect::<Vec<_>>());
    let merged = delta::DataFile {
        path: format!("{partition}/compacted-{id}.parquet"),
        partition: partition.to_string(),
        size: bytes.len() as u64,
        rows,
    };
    lake.put(&lake.path(&format!("{table}/{}", merged.path)), bytes)?;
    crate::util::crash_point!("delta-compaction-written");
    Ok(delta::swap_files(lake, table, &used, &merged)?.then_some(rows))
}

/// Merges `inputs` (relative paths in `partition`) into one file; returns its rows.
fn merge(lake: &Lake, partition: &str, inputs: &[String], opts: &CompactOptions) -> Result<u64> {
    // Files of one schema only: a later schema (an added column) starts its own file.
    let (batches, used) = read_same_schema(lake, inputs)?;
    let used: Vec<String> = used.into_iter().filter_map(|i| inputs.get(i).cloned()).collect();
    if used.len() < 2 {
        return Ok(0);
    }
    let id = merge_id(&used);
    let output = format!("{partition}/compacted-{id}.parquet");
    let intent = Intent {
        partition: partition.to_string(),
        inputs: used.clone(),
        output: output.clone(),
    };
    let intent_path = lake.path(&format!("_compaction/{id}.json"));
    let intent_bytes =
        serde_json::to_vec(&intent).map_err(|e| RiftError::Internal(format!("compaction intent: {e}")))?;
    lake.put(&intent_path, bytes::Bytes::from(intent_bytes))?;

    let Some((bytes, rows)) = merged_file(&batches, opts)? else {
        return Ok(0);
    };
    let staging = lake.path(&format!("_staging/{output}"));
    lake.put(&staging, bytes)?;
    lake.rename(&staging, &lake.path(&output))?;
    for name in &used {
        lake.delete(&lake.path(name))?;
    }
    lake.delete(&intent_path)?;
    Ok(rows)
}

/// Finishes compactions a crash interrupted; returns how many.
fn recover(lake: &Lake) -> Result<usize> {
    let mut n = 0;
    for (path, _) in lake.list("_compaction")? {
        let Some(bytes) = lake.get_opt(&path)? else { continue };
        let intent: Intent = serde_json::from_slice(&bytes).map_err(|e| {
            RiftError::external(
                "object_store",
                format!("{path}: unreadable compaction intent: {e}"),
                false,
            )
        })?;
        if lake.get_opt(&lake.path(&intent.output))?.is_some() {
            for name in &intent.inputs {
                lake.delete(&lake.path(name))?;
            }
        }
        lake.delete(&path)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_close_a_day_after_their_date_plus_min_age() {
        let day = partition_day("silver/matches/date=2026-01-01/game_mode=ranked").unwrap();
        assert_eq!(day, 1_767_225_600_000);
        assert_eq!(partition_day("bronze/x/hour=01"), None);
        assert_eq!(
            table_of("silver/matches/date=2026-01-01/game_mode=x/a.parquet"),
            "silver/matches"
        );
    }

    #[test]
    fn merge_ids_depend_on_every_input() {
        let a = merge_id(&["x/a".into(), "x/b".into()]);
        assert_eq!(a, merge_id(&["x/a".into(), "x/b".into()]));
        assert_ne!(a, merge_id(&["x/a".into(), "x/c".into()]));
        assert_ne!(a, merge_id(&["x/ab".into()]));
    }
}
