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
//!   over all history) is written under each day the frontier closes.
//!
//! At the end of a bounded input every changed day is written. A partition
//! is one file, `part-00000.parquet`, replaced in place (object-store puts
//! are atomic), so readers always see a complete, current snapshot and a
//! replay rewrites rather than duplicates. All rows go to one worker: gold
//! tables are small.

use crate::lake::tables::LakeRow;
use crate::lake::Lake;
use crate::runtime::{block_on, JobHealth};
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
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

/// A gold row: a lake row that knows its day.
pub trait GoldRow: LakeRow + timely::ExchangeData + Clone + Eq + Hash + Ord {
    /// The day (UTC ms of its start) the row belongs to (`ByDate`).
    fn day_start(&self) -> i64;
    /// A copy of the row placed under another day (`Daily`).
    fn on_day(&self, day_start: i64) -> Self;
}

fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// Writes snapshots of `updates` (a differential collection's `(row, time, diff)`s).
pub fn write_snapshots<'s, R: GoldRow>(
    updates: StreamVec<'s, u64, (R, u64, isize)>,
    lake: Lake,
    mode: SnapshotMode,
    health: JobHealth,
    committed: ProbeHandle<u64>,
) {
    use timely::dataflow::operators::Probe;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let out = updates.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        Exchange::new(|_| 0),
        "GoldSnapshots",
        move |cap, _info| {
            let mut cap = Some(cap);
            let mut pending: BTreeMap<u64, Vec<(R, isize)>> = BTreeMap::new();
            let mut state: HashMap<R, isize> = HashMap::new();
            let mut dirty: BTreeSet<i64> = BTreeSet::new();
            let mut last_closed: Option<i64> = None;
            let mut latest_day: Option<i64> = None;
            move |(input, frontier), _output| {
                input.for_each(|_stamp, data| {
                    for (row, t, diff) in data.drain(..) {
                        pending.entry(t).or_default().push((row, diff));
                    }
                });
                let f = frontier.frontier().as_option().copied();
                let limit = f.unwrap_or(u64::MAX);
                while let Some(entry) = pending.first_entry() {
                    if *entry.key() >= limit {
                        break;
                    }
                    let t = *entry.key() as i64;
                    for (row, diff) in entry.remove() {
                        if mode == SnapshotMode::ByDate {
                            dirty.insert(row.day_start());
                        }
                        *state.entry(row).or_insert(0) += diff;
                    }
                    latest_day = Some(latest_day.map_or(day_of(t), |d: i64| d.max(day_of(t))));
                    state.retain(|_, c| *c != 0);
                }
                // Days the frontier has closed.
                let closed_until = match f {
                    Some(f) => day_of(f as i64), // every day starting before this is closed
                    None => i64::MAX,
                };
                let mut to_write: Vec<(i64, Vec<R>)> = Vec::new();
                match mode {
                    SnapshotMode::ByDate => {
                        let ready: Vec<i64> = dirty.iter().copied().filter(|d| *d < closed_until).collect();
                        for d in ready {
                            dirty.remove(&d);
                            let rows: Vec<R> = state
                                .iter()
                                .filter(|(r, c)| r.day_start() == d && **c > 0)
                                .map(|(r, _)| r.clone())
                                .collect();
                            to_write.push((d, rows));
                        }
                    }
                    SnapshotMode::Daily => {
                        let newest_closed = if f.is_none() {
                            latest_day
                        } else {
                            Some(closed_until - DAY_MS)
                        };
                        if let Some(day) = newest_closed {
                            if last_closed.is_none_or(|l| day > l) && !state.is_empty() {
                                last_closed = Some(day);
                                let rows: Vec<R> = state.keys().map(|r| r.on_day(day)).collect();
                                to_write.push((day, rows));
                            }
                        }
                    }
                }
                for (_day, mut rows) in to_write {
                    rows.sort();
                    if let Err(e) = write_partition(&lake, &props, &rows) {
                        health.report("gold snapshot", e);
                    }
                }
                match (f, cap.as_mut()) {
                    (Some(f), Some(c)) if f > *c.time() => c.downgrade(&f),
                    (None, _) => cap = None,
                    _ => {}
                }
            }
        },
    );
    out.probe_with(&committed);
}

/// Replaces the partition files of `rows` (all of one table) with their contents.
fn write_partition<R: LakeRow + Clone>(lake: &Lake, props: &WriterProperties, rows: &[R]) -> crate::error::Result<()> {
    let mut by_partition: BTreeMap<(String, String), Vec<&R>> = BTreeMap::new();
    for r in rows {
        by_partition.entry((r.table(), r.partition())).or_default().push(r);
    }
    for ((table, partition), group) in by_partition {
        let owned: Vec<R> = group.into_iter().cloned().collect();
        let batch = R::to_batch(&owned)?;
        let mut writer = ArrowWriter::try_new(Vec::new(), R::schema(), Some(props.clone()))?;
        writer.write(&batch)?;
        let bytes = writer.into_inner()?;
        let path = lake.path(&format!("{table}/{partition}/part-00000.parquet"));
        let store = lake.store.clone();
        block_on(async move { store.put(&path, PutPayload::from(bytes)).await })?;
    }
    Ok(())
}
