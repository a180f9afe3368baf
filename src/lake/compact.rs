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

use super::Lake;
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
    // Small files per partition directory.
    let mut partitions: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for (path, size) in lake.list("")? {
        let relative = lake.relative(&path);
        if NOT_TABLES.iter().any(|p| relative.starts_with(p)) || !relative.ends_with(".parquet") {
            continue;
        }
        if SNAPSHOT_TABLES.contains(&table_of(&relative).as_str()) {
            continue;
        }
        let Some((dir, _name)) = relative.rsplit_once('/') else {
            continue;
        };
        let closed = partition_day(dir).is_some_and(|day| {
            day.saturating_add(24 * 3600 * 1000)
                .saturating_add(opts.min_age.as_millis() as i64)
                <= opts.now_ms
        });
        if closed && size < opts.target_file_bytes {
            partitions.entry(dir.to_string()).or_default().push((relative, size));
        }
    }
    for (partition, mut files) in partitions {
        if files.len() < 2 {
            continue;
        }
        files.sort();
        // Groups of consecutive files up to the target size.
        let mut groups: Vec<Vec<(String, u64)>> = vec![Vec::new()];
        let mut group_bytes = 0u64;
        for f in files {
            if group_bytes + f.1 > opts.target_file_bytes && !groups.last().is_some_and(|g| g.is_empty()) {
                groups.push(Vec::new());
                group_bytes = 0;
            }
            group_bytes += f.1;
            if let Some(g) = groups.last_mut() {
                g.push(f);
            }
        }
        let mut merged_any = false;
        for group in groups.into_iter().filter(|g| g.len() >= 2) {
            let bytes_in: u64 = group.iter().map(|(_, s)| *s).sum();
            let names: Vec<String> = group.into_iter().map(|(n, _)| n).collect();
            let rows = if opts.dry_run {
                0
            } else {
                merge(lake, &partition, &names, opts)?
            };
            merged_any = true;
            report.files_in += names.len();
            report.files_out += 1;
            report.bytes_in += bytes_in;
            report.rows += rows;
        }
        if merged_any {
            report.partitions += 1;
        }
    }
    Ok(report)
}

/// Merges `inputs` (relative paths in `partition`) into one file; returns its rows.
fn merge(lake: &Lake, partition: &str, inputs: &[String], opts: &CompactOptions) -> Result<u64> {
    // Files of one schema only: a later schema (an added column) starts its own file.
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut used: Vec<String> = Vec::new();
    for name in inputs {
        let file_batches = lake.read_parquet(&lake.path(name))?;
        let same = match (batches.first(), file_batches.first()) {
            (Some(a), Some(b)) => a.schema() == b.schema(),
            _ => true,
        };
        if same {
            batches.extend(file_batches);
            used.push(name.clone());
        }
    }
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

    let Some(schema) = batches.first().map(|b| b.schema()) else {
        return Ok(0);
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_max_row_group_row_count(Some(opts.row_group_rows.max(1)))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props))?;
    let mut rows = 0u64;
    for b in &batches {
        rows += b.num_rows() as u64;
        writer.write(b)?;
    }
    let bytes = writer.into_inner()?;
    let staging = lake.path(&format!("_staging/{output}"));
    lake.put(&staging, bytes::Bytes::from(bytes))?;
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
