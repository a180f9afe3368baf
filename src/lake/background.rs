//! Background compaction of a lake writer's Delta tables.
//!
//! One thread per writer (started on worker 0 only, so workers do not race
//! each other for the same files) wakes every `interval` and compacts the
//! closed partitions of the tables the writer has added files to
//! ([`compact::compact_delta`]: one commit per merged file, so readers see
//! the small files or the merged one, never both or neither). When the input
//! has ended, the writer's drop runs one last pass and waits for it, so a
//! bounded run leaves compacted tables.
//!
//! # Failure
//! Compaction only rewrites committed data; a failed pass is logged and the
//! next one tries again. It never fails the job, and a crash at any point
//! leaves at worst an unreferenced merged file.

use super::compact::{self, CompactOptions};
use super::Lake;
use crate::metrics::Metrics;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How merged files are sized.
#[derive(Debug, Clone, Copy)]
pub struct CompactSizing {
    /// Files below this are merged; merged files grow up to it.
    pub target_file_bytes: u64,
    /// Rows per row group of merged files.
    pub row_group_rows: usize,
}

/// A running background compactor; dropping it stops the thread.
pub struct BackgroundCompactor {
    tables: Arc<Mutex<BTreeSet<String>>>,
    final_pass: Arc<AtomicBool>,
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundCompactor {
    /// Starts compacting, every `interval`, the tables of `lake` given to [`Self::track`].
    pub fn start(lake: Lake, job: &str, interval: Duration, sizing: CompactSizing, metrics: Arc<Metrics>) -> Self {
        let tables: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let final_pass = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let (t, f, name) = (tables.clone(), final_pass.clone(), job.to_string());
        let thread = std::thread::Builder::new()
            .name(format!("compact-{job}"))
            .spawn(move || loop {
                let last = !matches!(
                    stopped.recv_timeout(interval),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout)
                );
                if !last || f.load(Ordering::Acquire) {
                    pass(&lake, &name, &t, sizing, &metrics);
                }
                if last {
                    break;
                }
            })
            .ok();
        if thread.is_none() {
            tracing::warn!(job = %job, "could not start the background compaction thread; tables stay uncompacted");
        }
        BackgroundCompactor {
            tables,
            final_pass,
            stop: Some(stop),
            thread,
        }
    }

    /// Adds `tables` to those compacted.
    pub fn track<'a>(&self, tables: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut set) = self.tables.lock() {
            for t in tables {
                if !set.contains(t) {
                    set.insert(t.to_string());
                }
            }
        }
    }

    /// The input ended: the drop runs one last pass before stopping.
    pub fn finish(&self) {
        self.final_pass.store(true, Ordering::Release);
    }
}

impl Drop for BackgroundCompactor {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One pass over the tracked tables.
fn pass(lake: &Lake, job: &str, tables: &Mutex<BTreeSet<String>>, sizing: CompactSizing, metrics: &Metrics) {
    let tables: Vec<String> = tables.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default();
    let opts = CompactOptions {
        min_age: Duration::ZERO,
        target_file_bytes: sizing.target_file_bytes,
        row_group_rows: sizing.row_group_rows,
        dry_run: false,
        now_ms: crate::util::now_ms(),
    };
    for table in tables {
        match compact::compact_delta(lake, &table, &opts) {
            Ok(report) => {
                let (merges, files) = metrics.compaction(job, &table);
                merges.inc_by(report.files_out as u64);
                files.inc_by(report.files_in as u64);
            }
            Err(e) => {
                tracing::warn!(job = %job, table = %table, error = %e, "background compaction failed; retried next pass")
            }
        }
    }
}
