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

use crate::config::WatermarkConfig;
use crate::error::RiftError;
use crate::events::{now_ms, DeadLetter};
use crate::metrics::SourceMetrics;
use crate::runtime::JobHealth;
use crate::sources::{assigned, RawRecord, Source};
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{ProbeHandle, Scope, StreamVec};

/// Why a record was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// `decode` or `validate`.
    pub stage: &'static str,
    /// Human-readable reason.
    pub reason: String,
    /// Not the record's fault (e.g. the schema registry is unreachable): retry it later.
    pub retry: bool,
}

impl Rejection {
    /// A decoding failure.
    pub fn decode(reason: impl Into<String>) -> Self {
        Rejection {
            stage: "decode",
            reason: reason.into(),
            retry: false,
        }
    }

    /// A validation failure.
    pub fn validate(reason: impl Into<String>) -> Self {
        Rejection {
            stage: "validate",
            reason: reason.into(),
            retry: false,
        }
    }

    /// A failure of a system the decoder depends on: the record is retried, not dead-lettered.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Rejection {
            stage: "decode",
            reason: reason.into(),
            retry: true,
        }
    }
}

/// Turns raw records into typed outputs, each with its event time (UTC ms).
pub trait Decoder: 'static {
    /// The decoded type.
    type Output: timely::ExchangeData + Clone;

    /// Decodes one record into zero or more outputs.
    fn decode(&mut self, raw: &RawRecord, out: &mut Vec<(i64, Self::Output)>) -> Result<(), Rejection>;
}

/// A raw record with what bronze needs beyond it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BronzeRecord {
    /// Topic or source name.
    pub topic: String,
    /// The record as read.
    pub raw: RawRecord,
    /// Time that places the record in a bronze partition: the broker
    /// timestamp, else its event time, else its stamp.
    pub partition_time: i64,
}

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
    pub committed: Option<ProbeHandle<u64>>,
    /// Frontier of what every sink of the job has received: bounds records in flight.
    pub progress: Option<ProbeHandle<u64>>,
    /// Records emitted but not yet through to the sinks before the source pauses.
    pub max_in_flight: usize,
    /// Where this source's readers in the process post their watermarks (see [`WatermarkBoard`]).
    pub board: Option<Arc<WatermarkBoard>>,
}

/// The watermarks of one job's source readers in this process.
///
/// A reader whose partitions have all gone idle must stop holding the job's
/// watermark back (SPEC: idle partitions are left out of the minimum), yet
/// timely has no "ignore this input" switch: the reader has to advance its
/// capability. It advances to the least watermark of the job's readers that
/// are still active (other workers of its source, or the job's other
/// sources), so it never passes the job watermark they define. A source that
/// never receives a record (an empty requests topic) therefore follows the
/// job's others instead of pinning its frontier. When every reader of the
/// job in this process is idle, the job is quiet and idle readers advance
/// with the wall clock less the out-of-orderness bound (as a live stream's
/// event time would): windows close and offsets commit; a record arriving
/// later for a window that closed meanwhile is late (counted and stored).
/// Readers in other processes of a cluster are not consulted.
#[derive(Debug, Default)]
pub struct WatermarkBoard {
    /// `source/worker` → its watermark while it has an active partition.
    active: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl WatermarkBoard {
    /// Posts reader `reader`'s watermark, or `None` when it has no active partition.
    pub fn post(&self, reader: &str, watermark: Option<u64>) {
        if let Ok(mut m) = self.active.lock() {
            match watermark {
                Some(w) => m.insert(reader.to_string(), w),
                None => m.remove(reader),
            };
        }
    }

    /// The least watermark of the active readers other than `reader`.
    pub fn least_active(&self, reader: &str) -> Option<u64> {
        let m = self.active.lock().ok()?;
        m.iter().filter(|(r, _)| r.as_str() != reader).map(|(_, t)| *t).min()
    }
}

/// The three streams of a source.
pub struct SourceStreams<'s, O> {
    /// Decoded, valid records.
    pub records: StreamVec<'s, u64, O>,
    /// Rejected records.
    pub dead_letters: StreamVec<'s, u64, DeadLetter>,
    /// Every record as read (empty unless `keep_raw`).
    pub raw: StreamVec<'s, u64, BronzeRecord>,
}

#[derive(Debug, Clone)]
struct PartitionClock {
    max_event_time: Option<i64>,
    finished: bool,
    last_record: Instant,
}

/// Builds the source operator in `scope`.
pub fn read_source<'s, D: Decoder>(
    scope: Scope<'s, u64>,
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
        let mut caps: Option<Vec<timely::dataflow::operators::Capability<u64>>> = Some(caps);
        let ooo = settings.watermark.max_out_of_orderness.as_millis() as i64;
        let idle_timeout = settings.watermark.idle_timeout;
        let reader_id = format!("{}/{index}", settings.name);
        let g = settings.granularity_ms.max(1);
        let topic = settings.source.topic().to_string();
        let mut reader: Option<Box<dyn crate::sources::SourceReader>> = None;
        let mut clocks: BTreeMap<u32, PartitionClock> = BTreeMap::new();
        let mut buffer: Vec<RawRecord> = Vec::with_capacity(settings.batch);
        let mut decoded: Vec<(i64, D::Output)> = Vec::new();
        // Emptied per-stamp batches, kept for their capacity: a batch is
        // about as large as the last, and growing a fresh one each poll
        // copied it several times and faulted in new pages.
        let mut spare_batches: Vec<Vec<D::Output>> = Vec::new();
        let mut backoff = Duration::from_millis(50);
        // Records to decode again after a transient failure (not yet counted or emitted).
        let mut retry: VecDeque<RawRecord> = VecDeque::new();
        // Next offset per partition after the last processed record.
        let mut processed: BTreeMap<u32, u64> = BTreeMap::new();
        // (highest stamp emitted so far, positions then): committed once the sinks pass the stamp.
        let mut to_commit: VecDeque<(u64, Vec<(u32, u64)>)> = VecDeque::new();
        // (stamp, records emitted at it) not yet through to the sinks.
        let mut in_flight: VecDeque<(u64, usize)> = VecDeque::new();
        let mut paused = false;
        let mut highest_stamp = 0u64;
        // Returns whether the operator still has work (a final offset commit after its input ended).
        move |_frontiers| -> bool {
            let Some(cap_vec) = caps.as_mut() else {
                // Input finished: commit the final offsets once every sink has committed everything.
                let Some(probe) = &settings.committed else { return false };
                if to_commit.is_empty() {
                    return false;
                }
                if !probe.done() {
                    activator.activate_after(Duration::from_millis(10));
                    return true;
                }
                if let (Some(r), Some((_, positions))) = (reader.as_mut(), to_commit.pop_back()) {
                    if let Err(e) = r.commit(&positions) {
                        health.report(&settings.name, e);
                    }
                }
                to_commit.clear();
                return false;
            };
            if reader.is_none() {
                let opened = settings
                    .source
                    .partitions()
                    .map(|all| assigned(&all, index, peers))
                    .and_then(|mine| settings.source.open(&mine, &[]).map(|r| (mine, r)));
                match opened {
                    Ok((mine, r)) => {
                        for p in mine {
                            clocks.insert(
                                p,
                                PartitionClock {
                                    max_event_time: None,
                                    finished: false,
                                    last_record: Instant::now(),
                                },
                            );
                        }
                        reader = Some(r);
                    }
                    Err(e) => {
                        health.report(&settings.name, e);
                        activator.activate_after(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        return true;
                    }
                }
            }
            let Some(r) = reader.as_mut() else { return true };
            // Commit offsets the sinks have made durable.
            if let Some(probe) = &settings.committed {
                let frontier = probe.with_frontier(|f| f.as_option().copied());
                let mut latest = None;
                while let Some((stamp, _)) = to_commit.front() {
                    if frontier.is_some_and(|f| *stamp >= f) {
                        break;
                    }
                    latest = to_commit.pop_front().map(|(_, p)| p);
                }
                if let Some(positions) = latest {
                    if let Err(e) = r.commit(&positions) {
                        health.report(&settings.name, e);
                    }
                }
            }
            // Back-pressure: pause while too many records are on their way to the sinks.
            if let Some(probe) = &settings.progress {
                let frontier = probe.with_frontier(|f| f.as_option().copied());
                while in_flight.front().is_some_and(|(t, _)| frontier.is_none_or(|f| *t < f)) {
                    in_flight.pop_front();
                }
                // Records at or above our own capability can only drain once we advance: never wait for them.
                let cap_time = *cap_vec[0].time();
                let pending: usize = in_flight.iter().filter(|(t, _)| *t < cap_time).map(|(_, n)| *n).sum();
                let should_pause = pending > settings.max_in_flight;
                if should_pause != paused {
                    if let Err(e) = r.set_paused(should_pause) {
                        health.report(&settings.name, e);
                    }
                    paused = should_pause;
                }
                if paused {
                    activator.activate_after(Duration::from_millis(5));
                    return true;
                }
            }
            buffer.clear();
            let retrying = !retry.is_empty();
            if paused || retrying {
                // Silence we asked for (back-pressure) or records waiting for a retry
                // are not idleness: restart the idle clocks.
                let now = Instant::now();
                clocks.values_mut().for_each(|c| c.last_record = now);
            }
            let polled = if retrying {
                buffer.extend(retry.drain(..));
                Ok(crate::sources::PollStatus::default())
            } else {
                r.poll(settings.batch, &mut buffer)
            };
            let status = match polled {
                Ok(s) => {
                    if !retrying {
                        backoff = Duration::from_millis(50);
                    }
                    s
                }
                Err(e) => {
                    health.report(&settings.name, e);
                    activator.activate_after(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    return true;
                }
            };
            let now = Instant::now();
            let cap_time = *cap_vec[0].time();
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
                processed.insert(raw.partition, raw.offset + 1);
                let clock = clocks.entry(raw.partition).or_insert(PartitionClock {
                    max_event_time: None,
                    finished: false,
                    last_record: now,
                });
                clock.last_record = now;
                if result.is_err() {
                    // A rejected record never moves the watermark.
                    decoded.clear();
                }
                let mut event_time = None;
                for (ts, _) in decoded.iter() {
                    event_time = Some(event_time.map_or(*ts, |e: i64| e.max(*ts)));
                    clock.max_event_time = Some(clock.max_event_time.map_or(*ts, |m| m.max(*ts)));
                }
                let stamp = clock
                    .max_event_time
                    .map(|m| quantize(m.saturating_sub(ooo), g))
                    .unwrap_or(0)
                    .max(cap_time);
                if settings.keep_raw {
                    let partition_time = raw.timestamp.or(event_time).unwrap_or(stamp as i64);
                    bronze.entry(stamp).or_default().push(BronzeRecord {
                        topic: topic.clone(),
                        raw: raw.clone(),
                        partition_time,
                    });
                }
                highest_stamp = highest_stamp.max(stamp);
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
                to_commit.push_back((highest_stamp, processed.iter().map(|(p, o)| (*p, *o)).collect()));
            }
            if settings.progress.is_some() {
                for (t, recs) in &by_time {
                    in_flight.push_back((*t, recs.len()));
                }
            }
            {
                let mut out = records_out.activate();
                for (t, mut recs) in by_time {
                    // Handed on whole, not copied record by record; what comes
                    // back (an empty or recycled vector) is kept for its capacity.
                    out.session(&cap_vec[0].delayed(&t)).give_container(&mut recs);
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
                    out.session(&cap_vec[2].delayed(&t)).give_iterator(recs.into_iter());
                }
            }
            for p in status.finished {
                if let Some(c) = clocks.get_mut(&p) {
                    c.finished = true;
                }
            }
            // Advance the capability to the minimum active partition watermark.
            let mut all_finished = true;
            let mut any_active = false;
            let mut min_wm: Option<u64> = None;
            let mut blocked = false;
            for c in clocks.values() {
                if c.finished {
                    continue;
                }
                all_finished = false;
                if now.duration_since(c.last_record) > idle_timeout {
                    continue;
                }
                any_active = true;
                match c.max_event_time {
                    Some(m) => {
                        let w = quantize(m.saturating_sub(ooo), g);
                        min_wm = Some(min_wm.map_or(w, |x| x.min(w)));
                    }
                    None => blocked = true,
                }
            }
            if let Some(board) = &settings.board {
                if any_active {
                    let mine = if blocked {
                        cap_time
                    } else {
                        min_wm.unwrap_or(cap_time).max(cap_time)
                    };
                    board.post(&reader_id, Some(mine));
                } else {
                    board.post(&reader_id, None);
                    if !all_finished {
                        // Every partition is idle: follow the job's readers that are not. When
                        // none is, the whole job is quiet: advance with the wall clock (less the
                        // out-of-orderness bound), so windows close and offsets commit.
                        min_wm = board
                            .least_active(&reader_id)
                            .or_else(|| Some(quantize(now_ms().saturating_sub(ooo), g)));
                    }
                }
            }
            if all_finished && retry.is_empty() {
                if let Some(board) = &settings.board {
                    board.post(&reader_id, None);
                }
                metrics.watermark.set(i64::MAX);
                caps = None;
                if settings.committed.is_some() && !to_commit.is_empty() {
                    activator.activate_after(Duration::from_millis(10));
                    return true;
                }
                return false;
            }
            if !retry.is_empty() {
                activator.activate_after(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            if !blocked {
                if let Some(w) = min_wm {
                    if w > cap_time {
                        for c in cap_vec.iter_mut() {
                            c.downgrade(&w);
                        }
                        metrics.watermark.set(w as i64);
                    }
                }
            }
            if !retry.is_empty() {
                // Already scheduled with back-off above.
            } else if status.idle {
                activator.activate_after(Duration::from_millis(20));
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

/// Floors a watermark to the granularity, as a dataflow time.
#[inline]
pub fn quantize(watermark: i64, granularity: i64) -> u64 {
    (watermark.max(0) / granularity * granularity) as u64
}
