//! `riftstream lake compact`: merge small files of closed partitions.

use super::load_topology;
use crate::lake::{compact, Lake};
use std::path::Path;
use std::time::Duration;

/// The lake at `root`, else the lake of the topology's first lake sink.
pub fn open_lake(root: Option<&str>, topology: &Path) -> anyhow::Result<Lake> {
    Ok(match root {
        Some(root) => Lake::open(root)?,
        None => Lake::of_topology(&load_topology(topology)?)?,
    })
}

/// Compacts the lake and prints what was merged.
pub fn compact(
    topology: &Path,
    root: Option<&str>,
    min_age: Duration,
    target_bytes: u64,
    dry_run: bool,
) -> anyhow::Result<()> {
    let lake = open_lake(root, topology)?;
    let report = compact::compact(
        &lake,
        &compact::CompactOptions {
            min_age,
            target_file_bytes: target_bytes,
            row_group_rows: 128 * 1024,
            dry_run,
            now_ms: crate::util::now_ms(),
        },
    )?;
    println!(
        "{}{} files ({} bytes, {} rows) merged into {} in {} partitions of {}{}",
        if dry_run { "would merge: " } else { "" },
        report.files_in,
        report.bytes_in,
        report.rows,
        report.files_out,
        report.partitions,
        lake.root,
        if report.recovered > 0 {
            format!("; finished {} interrupted compactions", report.recovered)
        } else {
            String::new()
        }
    );
    Ok(())
}
