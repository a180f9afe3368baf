//! The `kafka` source: a topic's partitions, spread over timely workers.
//!
//! Each worker owns the partitions `p % peers == worker` and reads them with
//! its own consumer, assigned manually (no group rebalancing: assignment is
//! deterministic, as checkpoints need) and starting from the consumer
//! group's committed offsets (`auto.offset.reset = earliest` for partitions
//! without one). Offsets are committed to the group only once every sink of
//! the job has committed the records they cover (see `operators::source`).
//! Polling never blocks the worker. Pausing stops fetching for back-pressure.
//!
//! Bounded runs read each partition to the high watermark seen at start:
//! the one carried by the first fetch response that delivers the partition's
//! records (librdkafka's cached watermark, not a ListOffsets answer, which
//! some brokers report too low), or to the end the consumer first reaches
//! (partition EOF), whichever comes first. Records produced after it are
//! left, uncommitted, for the next run.

use super::{PollStatus, Source, SourceReader};
use crate::config::KafkaConfig;
use crate::error::Result;
use crate::events::RawRecord;
use crate::kafka::{client_config, kafka_err, topic_partitions};
use crate::util::now_us;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::time::Duration;

/// A Kafka topic as a source.
#[derive(Debug, Clone)]
pub struct KafkaSource {
    kafka: KafkaConfig,
    topic: String,
    bounded: bool,
    /// Consumer group: `{kafka.group_id}.{job}`, so jobs reading one topic keep their own offsets.
    group: String,
}

impl KafkaSource {
    /// A source over `topic` for `job`; `bounded` reads each partition to its end, then finishes.
    pub fn new(kafka: KafkaConfig, topic: &str, job: &str, bounded: bool) -> KafkaSource {
        let group = format!("{}.{job}", kafka.group_id);
        KafkaSource {
            kafka,
            topic: topic.to_string(),
            bounded,
            group,
        }
    }
}

/// Routes librdkafka's notices to tracing; partition EOF is not an error.
struct Context;

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        tracing::warn!(%error, reason, "kafka client");
    }
}

impl ConsumerContext for Context {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(error = %e, ?offsets, "offset commit failed (will be retried with the next commit)");
        }
    }
}

impl Source for KafkaSource {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn partitions(&self) -> Result<Vec<u32>> {
        topic_partitions(&self.kafka, &self.topic)
    }

    fn open(&self, partitions: &[u32], start: &[(u32, u64)]) -> Result<Box<dyn SourceReader>> {
        let mut cfg = client_config(&self.kafka);
        cfg.set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "true");
        let consumer: BaseConsumer<Context> = cfg.create_with_context(Context).map_err(kafka_err)?;
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            let offset = start
                .iter()
                .find(|(q, _)| q == p)
                .map(|(_, o)| Offset::Offset(*o as i64))
                .unwrap_or(Offset::Stored);
            tpl.add_partition_offset(&self.topic, *p as i32, offset)
                .map_err(kafka_err)?;
        }
        consumer.assign(&tpl).map_err(kafka_err)?;
        Ok(Box::new(KafkaReader {
            consumer,
            topic: self.topic.clone(),
            partitions: partitions.to_vec(),
            next: start.iter().copied().collect(),
            finished: BTreeSet::new(),
            end: std::collections::BTreeMap::new(),
            bounded: self.bounded,
            paused: false,
        }))
    }

    fn is_bounded(&self) -> bool {
        self.bounded
    }
}

/// The high watermark librdkafka cached from the latest fetch response for a
/// partition (no request is made), if it has one.
fn cached_high_watermark(consumer: &BaseConsumer<Context>, topic: &str, partition: i32) -> Option<u64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle lives as long as `consumer`; the call only
    // reads librdkafka's cached offsets into the two locals.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high as u64)
}

struct KafkaReader {
    consumer: BaseConsumer<Context>,
    topic: String,
    partitions: Vec<u32>,
    /// Next offset per partition after the last record read.
    next: std::collections::BTreeMap<u32, u64>,
    /// Partitions that reached their end (bounded runs).
    finished: BTreeSet<u32>,
    /// Bounded runs: the high watermark per partition seen with its first records.
    end: std::collections::BTreeMap<u32, u64>,
    bounded: bool,
    paused: bool,
}

impl SourceReader for KafkaReader {
    fn lag(&self) -> Option<u64> {
        let mut lag = 0;
        for (partition, next) in &self.next {
            let high = cached_high_watermark(&self.consumer, &self.topic, *partition as i32)?;
            lag += high.saturating_sub(*next);
        }
        Some(lag)
    }

    fn poll(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<PollStatus> {
        let mut status = PollStatus::default();
        if self.paused {
            status.idle = true;
            return Ok(status);
        }
        let received_at_us = now_us();
        let mut read = 0;
        // `poll` returning None can also mean it served a non-message event: try a few times.
        let mut empty_polls = 0;
        while read < max && empty_polls < 3 {
            match self.consumer.poll(Duration::ZERO) {
                None => empty_polls += 1,
                Some(Ok(m)) => {
                    let partition = m.partition() as u32;
                    if self.finished.contains(&partition) {
                        continue;
                    }
                    let offset = m.offset().max(0) as u64;
                    if self.bounded {
                        if !self.end.contains_key(&partition) {
                            // The watermark of the fetch response that brought this record. A
                            // record at `offset` proves the end is past it: a cached value that
                            // is not (stale, from before a reconnect) is not the end; the next
                            // record asks again.
                            if let Some(high) = cached_high_watermark(&self.consumer, &self.topic, m.partition())
                                .filter(|high| *high > offset)
                            {
                                self.end.insert(partition, high);
                            }
                        }
                        if self.end.get(&partition).is_some_and(|end| offset >= *end) {
                            // Produced after the run started: left for the next run.
                            if self.finished.insert(partition) {
                                status.finished.push(partition);
                            }
                            continue;
                        }
                    }
                    out.push(RawRecord {
                        partition,
                        offset: m.offset() as u64,
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                        timestamp: m.timestamp().to_millis(),
                        received_at_us,
                    });
                    self.next.insert(partition, offset + 1);
                    read += 1;
                    if self.end.get(&partition).is_some_and(|end| offset + 1 >= *end) && self.finished.insert(partition)
                    {
                        status.finished.push(partition);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    let p = p as u32;
                    if self.bounded && self.partitions.contains(&p) && self.finished.insert(p) {
                        status.finished.push(p);
                    }
                }
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => return Err(kafka_err(e)),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, topic = %self.topic, "consume error (librdkafka retries)");
                    empty_polls += 1;
                }
            }
        }
        status.idle = read == 0;
        Ok(status)
    }

    fn partitions(&self) -> &[u32] {
        &self.partitions
    }

    fn positions(&self) -> Vec<(u32, u64)> {
        self.next.iter().map(|(p, o)| (*p, *o)).collect()
    }

    fn commit(&mut self, positions: &[(u32, u64)]) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in positions {
            tpl.add_partition_offset(&self.topic, *p as i32, Offset::Offset(*o as i64))
                .map_err(kafka_err)?;
        }
        if tpl.count() > 0 {
            self.consumer.commit(&tpl, CommitMode::Async).map_err(kafka_err)?;
        }
        Ok(())
    }

    fn set_paused(&mut self, paused: bool) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for p in &self.partitions {
            tpl.add_partition(&self.topic, *p as i32);
        }
        if paused {
            self.consumer.pause(&tpl).map_err(kafka_err)?;
        } else {
            self.consumer.resume(&tpl).map_err(kafka_err)?;
        }
        self.paused = paused;
        Ok(())
    }
}

impl Drop for KafkaReader {
    fn drop(&mut self) {
        // Commit what was already committed downstream is done by the source operator;
        // closing the consumer here just leaves the group cleanly.
        let _ = self.consumer.unassign();
    }
}
