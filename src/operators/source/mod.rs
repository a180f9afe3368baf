//! The source operator: reads a [`Source`], decodes and validates records,
//! assigns event-time stamps, and splits off dead letters.
//!
//! # Time
//! Each partition keeps a watermark `W_p = (largest event time seen) −
//! max_out_of_orderness`. A record is emitted at dataflow time
//! `⌊W_p / g⌋·g` (`g` = the watermark granularity), computed *after* the
//! record, so a record within its partition's out-of-orderness bound is never
//! stamped later than its own event time, and the stamp depends only on the
//! partition's own prefix (deterministic replay). The operator's capability —
//! and so the job's watermark downstream, as the minimum over workers — is the
//! minimum of `⌊W_p / g⌋·g` over its partitions that are neither finished nor
//! idle for longer than `idle_timeout`; a partition that has not produced a
//! record yet holds it at its current value. When every partition is
//! finished (bounded input) the capability is dropped: downstream frontiers
//! become empty and every window fires.
//!
//! # Failure
//! A record that cannot be decoded or fails validation becomes a
//! [`DeadLetter`] with the reason, on the second output; it never stops the
//! source. Reader errors (I/O, broker) are reported through the job's
//! [`JobHealth`] and the source retries with back-off.
//!
//! # State
//! Per-partition watermarks and reader positions (what a checkpoint holds).

mod backpressure;
mod board;
mod clock;
mod commits;
mod positions;

pub use backpressure::BackPressure;
pub use board::WatermarkBoard;
pub use clock::{ClockStatus, WatermarkClock};
pub use commits::OffsetCommitQueue;
pub use positions::{Position, SourceCheckpoint};

use crate::codec::Decoder;
use crate::config::WatermarkConfig;
use crate::error::RiftError;
use crate::events::{BronzeRecord, DeadLetter, RawRecord};
use crate::metrics::SourceMetrics;
use crate::sources::{assigned, PollStatus, Source, SourceReader};
use crate::util::time::time;
use crate::util::{now_ms, JobHealth, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{ProbeHandle, Scope, StreamVec};

/// How to run a source operator.
#[derive(Clone)]
pub struct SourceSettings {
    /// Source name in the topology (for metrics and logs).
    pub name: String,
    /// The source.
    pub source: Arc<dyn Source>,
    /// Watermark settings.
    pub watermark: WatermarkConfig,
    /// Watermark granularity, ms.
    pub granularity_ms: i64,
    /// Whether to emit raw records for bronze.
    pub keep_raw: bool,
    /// Records read per activation.
    pub batch: usize,
    /// Frontier of what every sink of the job has committed: offsets of
    /// records stamped before it are committed back to the source.
    pub committed: Option<ProbeHandle<Time>>,
    /// Frontier of what every sink of the job has received: bounds records in flight.
    pub progress: Option<ProbeHandle<Time>>,
    /// Records emitted but not yet through to the sinks before the source pauses.
    pub max_in_flight: usize,
    /// Where this source's readers in the process post their watermarks (see [`WatermarkBoard`]).
    pub board: Option<Arc<WatermarkBoard>>,
    /// Length of a checkpoint epoch, ms: the source moves to the next epoch
    /// each time the wall clock enters a new multiple of it.
    pub epoch_ms: u64,
    /// The first epoch the source may use: after the restored checkpoint.
    pub first_epoch: u64,
    /// Where the source's positions are checkpointed (none: not checkpointed).
    pub checkpoint: Option<SourceCheckpoint>,
    /// Set (to the epoch to stop in) when the run is asked to stop: the
    /// source stops reading, checkpoints its positions and waits, holding
    /// its capability in that epoch, so the final checkpoint covers
    /// everything read and no window is fired early.
    pub stop: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// The three streams of a source.
pub struct SourceStreams<'s, O> {
    /// Decoded, valid records.
    pub records: StreamVec<'s, Time, O>,
    /// Rejected records.
    pub dead_letters: StreamVec<'s, Time, DeadLetter>,
    /// Every record as read (empty unless `keep_raw`).
    pub raw: StreamVec<'s, Time, BronzeRecord>,
}

/// Builds the source operator in `scope`.
pub fn read_source<'s, D: Decoder>(
    scope: Scope<'s, Time>,
    settings: SourceSettings,
    mut decoder: D,
    metrics: SourceMetrics,
    health: JobHealth,
) -> SourceStreams<'s, D::Output> {
    let mut builder = OperatorBuilder::new(format!("Source({})", settings.name), scope);
    let info = builder.operator_info();
    let (records_out, records) = builder.new_output::<Vec<D::Output>>();
    let (dead_out, dead_letters) = builder.new_output::<Vec<DeadLetter>>();
    let (raw_out, raw) = builder.new_output::<Vec<BronzeRecord>>();
    let mut records_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<D::Output>>>::from(records_out);
    let mut dead_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<DeadLetter>>>::from(dead_out);
    let mut raw_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<BronzeRecord>>>::from(raw_out);
    let activator = scope.activator_for(info.address.clone());
    let (index, peers) = (scope.index(), scope.peers());

    builder.build_reschedule(move |caps| {
        let mut caps: Option<Vec<timely::dataflow::operators::Capability<Time>>> = Some(caps);
        let reader_id = format!("{}/{index}", settings.name);
        let topic = settings.source.topic().to_string();
        let mut reader: Option<Box<dyn SourceReader>> = None;
        let mut clock = WatermarkClock::new(&settings.watermark, settings.granularity_ms);
        let mut commits = OffsetCommitQueue::default();
        let mut pressure = BackPressure::new(settings.max_in_flight);
        let mut buffer: Vec<RawRecord> = Vec::with_capacity(settings.batch);
        let mut decoded: Vec<(i64, D::Output)> = Vec::new();
        // Emptied per-stamp batches, kept for their capacity: a batch is
        // about as large as the last, and growing a fresh one each poll
        // copied it several times and faulted in new pages.
        let mut spare_batches: Vec<Vec<D::Output>> = Vec::new();
        let mut backoff = Backoff::default();
        // Records to decode again after a transient failure (not yet counted or emitted).
        let mut retry: VecDeque<RawRecord> = VecDeque::new();
        let epoch_ms = settings.epoch_ms.max(1);
        // The checkpoint epoch records are read in (see `util::time`).
        let mut epoch = (now_ms().max(0) as u64 / epoch_ms).max(settings.first_epoch);
        // Partitions read from in the current epoch (staged at its end).
        let mut touched: BTreeSet<u32> = BTreeSet::new();
        let mut stop_logged = false;
        // Returns whether the operator still has work (a final offset commit after its input ended).
        move |_frontiers| -> bool {
            let Some(cap_vec) = caps.as_mut() else {
                // Input finished: commit the final offsets once every sink has committed everything.
                let Some(probe) = &settings.committed else { return false };
                if commits.is_empty() {
                    return false;
                }
                if !probe.done() {
                    activator.activate_after(Duration::from_millis(10));
                    return true;
                }
                if let (Some(r), Some(positions)) = (reader.as_mut(), commits.ready(|_| true)) {
                    if let Err(e) = r.commit(&positions) {
                        health.report(&settings.name, e);
                    }
                }
                return false;
            };
            // A new checkpoint epoch: everything read so far belongs to the
            // ones before; what is read from now on to this one. Epochs move
            // on (and a stop is honoured) even before the reader opens: a
            // topic that does not exist yet holds back no checkpoint.
            let stop_epoch = settings
                .stop
                .as_ref()
                .map(|s| s.load(std::sync::atomic::Ordering::SeqCst))
                .filter(|e| *e > 0);
            let next_epoch = epoch
                .max(now_ms().max(0) as u64 / epoch_ms)
                .max(stop_epoch.unwrap_or(0));
            if next_epoch > epoch {
                if let Err(e) = stage_positions(&settings, epoch, &mut touched, &commits, &clock) {
                    health.report(&settings.name, e);
                    activator.activate_after(backoff.next());
                    return true;
                }
                epoch = next_epoch;
            }
            for c in cap_vec.iter_mut() {
                if c.time().outer < epoch {
                    let at = time(epoch, c.time().inner);
                    c.downgrade(&at);
                }
            }
            if stop_epoch.is_some_and(|stop| epoch >= stop) {
                // Stopping: nothing more is read; the capability waits in the stop epoch.
                if !stop_logged {
                    stop_logged = true;
                    tracing::info!(source = %settings.name, epoch, "stopped reading for a graceful stop");
                }
                activator.activate_after(Duration::from_millis(50));
                return true;
            }
            if reader.is_none() {
                let opened = settings
                    .source
                    .partitions()
                    .map(|all| assigned(&all, index, peers))
                    .and_then(|mine| {
                        let restored = match &settings.checkpoint {
                            Some(cp) => cp.restore(&mine)?,
                            None => BTreeMap::new(),
                        };
                        let start: Vec<(u32, u64)> = restored.iter().map(|(p, pos)| (*p, pos.next)).collect();
                        settings.source.open(&mine, &start).map(|r| (mine, restored, r))
                    });
                match opened {
                    Ok((mine, restored, r)) => {
                        let now = Instant::now();
                        for p in mine {
                            clock.add_partition(p, restored.get(&p).and_then(|pos| pos.max_event_time), now);
                        }
                        let start: Vec<(u32, u64)> = restored.iter().map(|(p, pos)| (*p, pos.next)).collect();
                        commits = OffsetCommitQueue::starting_at(&start);
                        reader = Some(r);
                    }
                    Err(e) => {
                        health.report(&settings.name, e);
                        // Back at least once an epoch, so epochs (and a stop) keep moving.
                        activator.activate_after(backoff.next().min(Duration::from_millis(epoch_ms)));
                        return true;
                    }
                }
            }
            let Some(r) = reader.as_mut() else { return true };
            // Commit offsets the sinks have made durable.
            if let Some(probe) = &settings.committed {
                let frontier = probe.with_frontier(|f| f.to_owned());
                if let Some(positions) = commits.ready(|t| !frontier.less_equal(t)) {
                    if let Err(e) = r.commit(&positions) {
                        health.report(&settings.name, e);
                    }
                }
            }
            // Back-pressure: pause while too many records are on their way to the sinks.
            if let Some(probe) = &settings.progress {
                let frontier = probe.with_frontier(|f| f.to_owned());
                if let Some(pause) = pressure.update(|t| !frontier.less_equal(t), *cap_vec[0].time()) {
                    if let Err(e) = r.set_paused(pause) {
                        health.report(&settings.name, e);
                    }
                }
                if pressure.paused() {
                    // Silence we asked for is not idleness.
                    clock.hold_idleness(Instant::now());
                    activator.activate_after(Duration::from_millis(5));
                    return true;
                }
            }
            buffer.clear();
            let retrying = !retry.is_empty();
            if retrying {
                clock.hold_idleness(Instant::now());
            }
            let polled = if retrying {
                buffer.extend(retry.drain(..));
                Ok(PollStatus::default())
            } else {
                r.poll(settings.batch, &mut buffer)
            };
            let status = match polled {
                Ok(s) => {
                    if !retrying {
                        backoff.reset();
                    }
                    if let Some(lag) = r.lag() {
                        metrics.lag.set(lag.min(i64::MAX as u64) as i64);
                    }
                    s
                }
                Err(e) => {
                    health.report(&settings.name, e);
                    activator.activate_after(backoff.next());
                    return true;
                }
            };
            let now = Instant::now();
            let cap_time = cap_vec[0].time().inner;
            // Stamp, decode and route every record.
            let mut by_time: BTreeMap<u64, Vec<D::Output>> = BTreeMap::new();
            let mut dead: Vec<DeadLetter> = Vec::new();
            let mut bronze: BTreeMap<u64, Vec<BronzeRecord>> = BTreeMap::new();
            let progressed = !buffer.is_empty();
            let mut records = buffer.drain(..);
            while let Some(raw) = records.next() {
                decoded.clear();
                let result = decoder.decode(&raw, &mut decoded);
                if let Err(rejection) = &result {
                    if rejection.retry {
                        // Not the record's fault: keep it and everything after it for later.
                        health.report(&settings.name, RiftError::external("decoder", &rejection.reason, true));
                        retry.push_back(raw);
                        retry.extend(records.by_ref());
                        break;
                    }
                }
                metrics.records_in.inc();
                if result.is_err() {
                    // A rejected record never moves the watermark.
                    decoded.clear();
                }
                let event_time = decoded.iter().map(|(ts, _)| *ts).max();
                let stamp = clock.stamp(raw.partition, decoded.iter().map(|(ts, _)| *ts), now, cap_time);
                commits.processed(raw.partition, raw.offset, stamp);
                touched.insert(raw.partition);
                if settings.keep_raw {
                    let partition_time = raw.timestamp.or(event_time).unwrap_or(stamp as i64);
                    bronze.entry(stamp).or_default().push(BronzeRecord {
                        topic: topic.clone(),
                        raw: raw.clone(),
                        partition_time,
                    });
                }
                match result {
                    Ok(()) => {
                        metrics.records_decoded.inc();
                        let slot = by_time
                            .entry(stamp)
                            .or_insert_with(|| spare_batches.pop().unwrap_or_default());
                        slot.extend(decoded.drain(..).map(|(_, o)| o));
                    }
                    Err(rejection) => {
                        metrics.dead_letters.inc();
                        dead.push(DeadLetter {
                            source_topic: topic.clone(),
                            partition: raw.partition as i32,
                            offset: raw.offset as i64,
                            key: raw.key,
                            value: raw.value,
                            reason: rejection.reason,
                            stage: rejection.stage.to_string(),
                            failed_at: now_ms(),
                        });
                    }
                }
            }
            if settings.committed.is_some() && progressed {
                commits.seal(epoch);
            }
            if settings.progress.is_some() {
                for (t, recs) in &by_time {
                    pressure.emitted(time(epoch, *t), recs.len());
                }
            }
            {
                let mut out = records_out.activate();
                for (t, mut recs) in by_time {
                    // Handed on whole, not copied record by record; what comes
                    // back (an empty or recycled vector) is kept for its capacity.
                    out.session(&cap_vec[0].delayed(&time(epoch, t)))
                        .give_container(&mut recs);
                    recs.clear();
                    if spare_batches.len() < 32 && recs.capacity() > 0 {
                        spare_batches.push(recs);
                    }
                }
            }
            if !dead.is_empty() {
                let mut out = dead_out.activate();
                out.session(&cap_vec[1]).give_iterator(dead.into_iter());
            }
            {
                let mut out = raw_out.activate();
                for (t, recs) in bronze {
                    out.session(&cap_vec[2].delayed(&time(epoch, t)))
                        .give_iterator(recs.into_iter());
                }
            }
            for p in status.finished {
                clock.finish(p);
            }
            // Advance the capability to the minimum active partition watermark.
            let state = clock.status(now);
            let mut advance_to = state.watermark;
            if let Some(board) = &settings.board {
                if state.any_active {
                    let mine = if state.blocked {
                        cap_time
                    } else {
                        state.watermark.unwrap_or(cap_time).max(cap_time)
                    };
                    board.post(&reader_id, Some(mine));
                } else {
                    board.post(&reader_id, None);
                    if !state.all_finished {
                        // Every partition is idle: follow the job's readers that are not. When
                        // none is, the whole job is quiet: advance with the wall clock (less the
                        // out-of-orderness bound), so windows close and offsets commit.
                        advance_to = board
                            .least_active(&reader_id)
                            .or_else(|| Some(clock.quantize(now_ms().saturating_sub(clock.out_of_orderness_ms()))));
                    }
                }
            }
            if state.all_finished && retry.is_empty() {
                // The input's end: its last positions belong to the current epoch.
                tracing::debug!(source = %settings.name, epoch, "read to the end of the input");
                if let Err(e) = stage_positions(&settings, epoch, &mut touched, &commits, &clock) {
                    health.report(&settings.name, e);
                    activator.activate_after(backoff.next());
                    return true;
                }
                if let Some(board) = &settings.board {
                    board.post(&reader_id, None);
                }
                metrics.watermark.set(i64::MAX);
                caps = None;
                if settings.committed.is_some() && !commits.is_empty() {
                    activator.activate_after(Duration::from_millis(10));
                    return true;
                }
                return false;
            }
            if !state.blocked {
                if let Some(w) = advance_to {
                    if w > cap_time {
                        for c in cap_vec.iter_mut() {
                            c.downgrade(&time(epoch, w));
                        }
                        metrics.watermark.set(w as i64);
                    }
                }
            }
            if !retry.is_empty() {
                activator.activate_after(backoff.next());
            } else if status.idle {
                // Woken up at least once per epoch, so the epoch (and with it
                // checkpoints) advances on a quiet source too.
                activator.activate_after(Duration::from_millis(20).min(Duration::from_millis(epoch_ms)));
            } else {
                activator.activate();
            }
            true
        }
    });
    SourceStreams {
        records,
        dead_letters,
        raw,
    }
}

/// Stages the positions of the partitions `touched` in `epoch` (and forgets them).
fn stage_positions(
    settings: &SourceSettings,
    epoch: u64,
    touched: &mut BTreeSet<u32>,
    commits: &OffsetCommitQueue,
    clock: &WatermarkClock,
) -> crate::error::Result<()> {
    let Some(cp) = &settings.checkpoint else {
        touched.clear();
        return Ok(());
    };
    if touched.is_empty() {
        return Ok(());
    }
    let next: BTreeMap<u32, u64> = commits.positions().into_iter().collect();
    let event_times: BTreeMap<u32, Option<i64>> = clock.event_times().into_iter().collect();
    let positions: BTreeMap<u32, Position> = touched
        .iter()
        .filter_map(|p| {
            Some((
                *p,
                Position {
                    next: *next.get(p)?,
                    max_event_time: event_times.get(p).copied().flatten(),
                },
            ))
        })
        .collect();
    cp.stage(epoch, &positions)?;
    touched.clear();
    Ok(())
}

/// Exponential back-off between retries: 50 ms doubling up to 10 s.
#[derive(Debug, Clone, Copy)]
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(50))
    }
}

impl Backoff {
    /// The wait before the next attempt (and the one after is twice as long).
    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(10));
        wait
    }

    fn reset(&mut self) {
        *self = Backoff::default();
    }
}

/// Floors a watermark to the granularity, as a dataflow time.
#[inline]
pub fn quantize(watermark: i64, granularity: i64) -> u64 {
    (watermark.max(0) / granularity * granularity) as u64
}
