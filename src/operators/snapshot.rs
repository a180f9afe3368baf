//! Gold snapshots: materializes a differential collection into lake
//! partitions, rewritten whenever a window closes or late data changes it.
//!
//! # Semantics
//! Updates `(row, time, diff)` are buffered until the input frontier passes
//! their time, then applied to the accumulated state, so the state is always
//! "everything before the frontier" — exactly what a SQL recomputation over
//! the same input gives. Each row belongs to a day (`date` of its partition).
//!
//! * [`SnapshotMode::ByDate`]: a day's partition is written once the
//!   frontier passes the end of the day, and rewritten whenever an update
//!   (a late match, a retraction) changes that day's rows afterwards;
//! * [`SnapshotMode::Daily`]: state without a date of its own (a leaderboard
//!   over all history) is written, as of the day's end, under every closed
//!   day that had updates (a day without any has the previous day's state).
//!
//! # Failure
//! A failed write is reported and retried with back-off; the snapshot is
//! kept and the operator's capability (so the job's committed frontier)
//! does not move past it until it is written.
//!
//! At the end of a bounded input every changed day is written. A partition
//! is one file, `part-00000.parquet`, replaced in place (object-store puts
//! are atomic), so readers always see a complete, current snapshot and a
//! replay rewrites rather than duplicates. In a Delta lake each rewrite is a
//! new file and one commit that removes the partition's previous files.
//! All rows go to one worker: gold tables are small.

use crate::config::LakeFormat;
use crate::lake::tables::{GoldRow, LakeRow};
use crate::lake::{delta, Lake};
use crate::operators::epoch_gate::EpochGate;
use crate::util::time::{epoch_frontier, time, watermark};
use crate::util::Time;
use crate::util::{block_on, JobHealth};
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::{ProbeHandle, StreamVec};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// When snapshots are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Rows carry their day; a day is written when it closes or changes afterwards.
    ByDate,
    /// Rows have no day; the whole state is written under every day that closes.
    Daily,
}

fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// Writes snapshots of `updates` (a differential collection's `(row, time, diff)`s).
pub fn write_snapshots<'s, R: GoldRow>(
    updates: StreamVec<'s, Time, (R, Time, isize)>,
    lake: Lake,
    mode: SnapshotMode,
    health: JobHealth,
    committed: ProbeHandle<Time>,
) {
    use timely::dataflow::operators::Probe;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let scope = updates.scope();
    let out = updates.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        Exchange::new(|_| 0),
        "GoldSnapshots",
        move |cap, info| {
            let activator = scope.activator_for(info.address.clone());
            let mut cap = Some(cap);
            let mut pending: BTreeMap<u64, Vec<(R, isize)>> = BTreeMap::new();
            // Differential updates of later epochs wait (see `EpochGate`).
            let mut gate: EpochGate<Vec<(R, isize)>> = EpochGate::default();
            // Rows by day (`ByDate`; one group under day 0 for `Daily`), with their counts:
            // writing a day reads only that day's rows.
            let mut state: BTreeMap<i64, HashMap<R, isize>> = BTreeMap::new();
            // ByDate: days whose rows changed since they were last written.
            let mut dirty: BTreeSet<i64> = BTreeSet::new();
            // Daily: days with updates whose snapshot is not taken yet.
            let mut due: BTreeSet<i64> = BTreeSet::new();
            // Snapshots taken but not yet written (a failed write is retried).
            let mut unwritten: BTreeMap<i64, Vec<R>> = BTreeMap::new();
            let mut backoff = std::time::Duration::from_millis(100);
            move |(input, frontier), _output| {
                input.for_each(|_stamp, data| {
                    for (row, t, diff) in data.drain(..) {
                        if let Some(admitted) = gate.offer(t, vec![(row, diff)]) {
                            pending.entry(t.inner).or_default().extend(admitted);
                        }
                    }
                });
                let fr = frontier.frontier();
                let epochs = epoch_frontier(fr);
                while let Some((_completed, released)) = gate.next_boundary(epochs) {
                    for (t, updates) in released {
                        pending.entry(t).or_default().extend(updates);
                    }
                }
                let f = gate.watermark(watermark(fr));
                let limit = f.unwrap_or(u64::MAX);
                // Every day starting before this is closed.
                let closed_until = f.map_or(i64::MAX, |f| day_of(f as i64));
                let daily_snapshot = |state: &BTreeMap<i64, HashMap<R, isize>>, day: i64| -> Vec<R> {
                    state
                        .values()
                        .flatten()
                        .filter(|(_, c)| **c > 0)
                        .map(|(r, _)| r.on_day(day))
                        .collect()
                };
                while let Some(entry) = pending.first_entry() {
                    if *entry.key() >= limit {
                        break;
                    }
                    let t = *entry.key() as i64;
                    if mode == SnapshotMode::Daily {
                        // Days that ended before this update: snapshot them as of their end.
                        while let Some(&d) = due.first() {
                            if d.saturating_add(DAY_MS) > t {
                                break;
                            }
                            due.pop_first();
                            unwritten.insert(d, daily_snapshot(&state, d));
                        }
                        due.insert(day_of(t));
                    }
                    for (row, diff) in entry.remove() {
                        let day = match mode {
                            SnapshotMode::ByDate => {
                                dirty.insert(row.day_start());
                                row.day_start()
                            }
                            SnapshotMode::Daily => 0,
                        };
                        let rows = state.entry(day).or_default();
                        match rows.get_mut(&row) {
                            Some(count) => {
                                *count += diff;
                                if *count == 0 {
                                    rows.remove(&row);
                                }
                            }
                            None if diff != 0 => {
                                rows.insert(row, diff);
                            }
                            None => {}
                        }
                    }
                }
                match mode {
                    SnapshotMode::ByDate => {
                        let ready: Vec<i64> = dirty.iter().copied().filter(|d| *d < closed_until).collect();
                        for d in ready {
                            dirty.remove(&d);
                            let rows: Vec<R> = state
                                .get(&d)
                                .into_iter()
                                .flatten()
                                .filter(|(_, c)| **c > 0)
                                .map(|(r, _)| r.clone())
                                .collect();
                            unwritten.insert(d, rows);
                        }
                    }
                    SnapshotMode::Daily => {
                        // No update between their end and the frontier: the state is theirs.
                        while let Some(&d) = due.first() {
                            if d >= closed_until {
                                break;
                            }
                            due.pop_first();
                            unwritten.insert(d, daily_snapshot(&state, d));
                        }
                    }
                }
                while let Some(mut entry) = unwritten.first_entry() {
                    let rows = entry.get_mut();
                    rows.sort();
                    match write_partition(&lake, &props, rows) {
                        Ok(()) => {
                            entry.remove();
                            backoff = std::time::Duration::from_millis(100);
                        }
                        Err(e) => {
                            // Kept, and the capability held: nothing counts as committed until written.
                            health.report("gold snapshot", e);
                            activator.activate_after(backoff);
                            backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
                            return;
                        }
                    }
                }
                match (gate.admitted(), f, cap.as_mut()) {
                    (Some(e), Some(f), Some(c)) if e < u64::MAX => {
                        let at = time(e, f);
                        if at != *c.time() {
                            c.downgrade(&at);
                        }
                    }
                    (_, None, _) => cap = None,
                    _ => {}
                }
            }
        },
    );
    out.probe_with(&committed);
}

/// A process-wide sequence number for snapshot file names.
fn snapshot_sequence() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Replaces the partition files of `rows` (all of one table) with their contents.
fn write_partition<R: LakeRow + Clone>(lake: &Lake, props: &WriterProperties, rows: &[R]) -> crate::error::Result<()> {
    let mut by_partition: BTreeMap<(String, String), Vec<&R>> = BTreeMap::new();
    for r in rows {
        by_partition.entry((r.table(), r.partition())).or_default().push(r);
    }
    for ((table, partition), group) in by_partition {
        let owned: Vec<R> = group.into_iter().cloned().collect();
        let mut batch = R::to_batch(&owned)?;
        let delta = lake.format == LakeFormat::Delta;
        if delta {
            batch = delta::data_batch(&batch)?;
        }
        let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props.clone()))?;
        writer.write(&batch)?;
        let bytes = writer.into_inner()?;
        if delta {
            // A new file per version, so readers of older versions keep theirs.
            let name = format!("part-{:x}-{:04x}.parquet", crate::util::now_ms(), snapshot_sequence());
            let file = delta::DataFile {
                path: format!("{partition}/{name}"),
                partition: partition.clone(),
                size: bytes.len() as u64,
                rows: owned.len() as u64,
            };
            lake.put(&lake.path(&format!("{table}/{}", file.path)), bytes.into())?;
            delta::replace_partition(lake, &table, &R::schema(), &file)?;
            continue;
        }
        let path = lake.path(&format!("{table}/{partition}/part-00000.parquet"));
        let store = lake.store.clone();
        block_on(async move { store.put(&path, PutPayload::from(bytes)).await })?;
    }
    Ok(())
}
