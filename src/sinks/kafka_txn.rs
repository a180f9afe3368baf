//! Exactly-once delivery for the `kafka` sink: a write-ahead log in the
//! job's checkpoint state, Kafka transactions, and a progress marker.
//!
//! Kafka cannot commit a transaction another producer left open, so the
//! sink does not hold a transaction across the checkpoint (a crash between
//! the checkpoint and the commit would lose the epoch). Instead:
//! - `pre_commit(N)` logs the epoch's encoded records in the job's
//!   checkpoint state, staged with checkpoint `N` (durable when it is);
//! - `commit(N)` sends every logged epoch up to `N` in one transaction
//!   that also writes a *progress marker* — `(transactional id, N)` — to
//!   [`PROGRESS_TOPIC`], then forgets the log entries. Records and marker
//!   become visible to `read_committed` consumers together, or not at all;
//! - `recover` fences the previous producer of each log it owns
//!   (`init_transactions` with the same stable `transactional.id`, which
//!   aborts a transaction a crash left open), reads the last marker of that
//!   id, drops log entries the marker covers (committed before the crash)
//!   and commits the rest in a new transaction.
//!
//! A commit runs on a thread of its own (one at a time per writer, in
//! epoch order): sending an epoch and waiting for the broker's commit
//! takes tens to hundreds of milliseconds, and the worker thread goes on
//! processing meanwhile. The sink counts the epoch committed only once that
//! thread reports success; a failed transaction is aborted and the same
//! epochs are sent again on the next call.
//!
//! The transactional id is `{group_id}.{job}.{sink}.w{worker}`: stable
//! across restarts, one per worker of the run that wrote the log. After a
//! rescale a worker recovers the logs of the key groups it owns now, each
//! with its own id.

use super::kafka::{enqueue, Deliveries, KafkaRecord};
use crate::config::KafkaConfig;
use crate::error::{Result, RiftError};
use crate::kafka::{client_config, ensure_topics, kafka_err};
use crate::state::checkpoint::entry_key;
use crate::state::{key_group, owns, OperatorState};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Where the progress markers of transactional sinks go (one partition).
pub const PROGRESS_TOPIC: &str = "riftstream.sink_progress";

/// Section of the checkpoint state holding logged records.
const LOG: &[u8] = b"l";

/// Records per log entry.
const CHUNK: usize = 4_096;

/// How long a transaction's commit (or the fencing at start) may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// The exactly-once half of a Kafka sink writer (see the module docs).
pub struct ExactlyOnce {
    kafka: KafkaConfig,
    topic: String,
    /// `{group_id}.{job}.{sink}`: the transactional ids' prefix.
    id_base: String,
    worker: usize,
    peers: usize,
    log: OperatorState,
    /// This worker's producer, once `recover` fenced its predecessor.
    producer: Option<BaseProducer<Deliveries>>,
    /// The commit under way on its own thread, if any.
    committing: Option<Committing>,
    /// Logged epochs not yet committed to Kafka: records and their log keys.
    logged: BTreeMap<u64, (Vec<KafkaRecord>, Vec<Vec<u8>>)>,
}

impl ExactlyOnce {
    /// The exactly-once state of sink `sink` of job `job` writing to `topic`.
    pub fn new(
        kafka: &KafkaConfig,
        topic: &str,
        (job, sink): (&str, &str),
        (worker, peers): (usize, usize),
        log: OperatorState,
    ) -> Result<ExactlyOnce> {
        ensure_topics(kafka, &[(PROGRESS_TOPIC, 1)])?;
        Ok(ExactlyOnce {
            kafka: kafka.clone(),
            topic: topic.to_string(),
            id_base: format!("{}.{job}.{sink}", kafka.group_id),
            worker,
            peers: peers.max(1),
            log,
            producer: None,
            committing: None,
            logged: BTreeMap::new(),
        })
    }

    fn transactional_id(&self, slot: usize) -> String {
        format!("{}.w{slot}", self.id_base)
    }

    fn log_key(&self, slot: usize, epoch: u64, seq: u32) -> Vec<u8> {
        let mut k = epoch.to_be_bytes().to_vec();
        k.extend_from_slice(&seq.to_be_bytes());
        entry_key(&self.log.op, LOG, key_group(slot as u64), &k)
    }

    /// A producer with `slot`'s transactional id; creating it fences the
    /// previous one and aborts a transaction it left open.
    fn fenced_producer(&self, slot: usize) -> Result<BaseProducer<Deliveries>> {
        let mut cfg = client_config(&self.kafka);
        cfg.set("transactional.id", self.transactional_id(slot))
            .set("enable.idempotence", "true")
            .set("transaction.timeout.ms", "60000");
        let producer: BaseProducer<Deliveries> = cfg
            .create_with_context(Deliveries::default())
            .map_err(|e| RiftError::external_caused("kafka", e, false))?;
        producer.init_transactions(TXN_TIMEOUT).map_err(kafka_err)?;
        Ok(producer)
    }

    /// The last epoch `slot`'s transactions committed, from its markers.
    fn last_committed(&self, slot: usize) -> Result<Option<u64>> {
        let id = self.transactional_id(slot);
        let mut cfg = client_config(&self.kafka);
        cfg.set("group.id", format!("{}.progress", self.id_base))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        cfg.set("enable.partition.eof", "true");
        let consumer: BaseConsumer = cfg.create().map_err(kafka_err)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(PROGRESS_TOPIC, 0, Offset::Beginning)
            .map_err(kafka_err)?;
        consumer.assign(&tpl).map_err(kafka_err)?;
        let mut last = None;
        let deadline = Instant::now() + TXN_TIMEOUT;
        // To the end a `read_committed` consumer can see (the partition's end
        // once no transaction is open).
        loop {
            if Instant::now() > deadline {
                return Err(RiftError::external(
                    "kafka",
                    format!("reading {PROGRESS_TOPIC} for `{id}`: not at its end within 60s"),
                    true,
                ));
            }
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) if m.key() == Some(id.as_bytes()) => {
                    let epoch = m
                        .payload()
                        .and_then(|p| std::str::from_utf8(p).ok())
                        .and_then(|s| s.parse::<u64>().ok());
                    last = last.max(epoch);
                }
                Some(Ok(_)) => {}
                Some(Err(KafkaError::PartitionEOF(_))) => return Ok(last),
                None => {}
                Some(Err(e)) => return Err(kafka_err(e)),
            }
        }
    }

    /// Logs the records of epoch `epoch` (durable with its checkpoint).
    pub fn pre_commit(&mut self, epoch: u64, records: Vec<KafkaRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut changes = Vec::new();
        let mut keys = Vec::new();
        for (seq, chunk) in records.chunks(CHUNK).enumerate() {
            let bytes = bincode::serialize(chunk).map_err(|e| RiftError::Internal(format!("kafka log: {e}")))?;
            let key = self.log_key(self.worker, epoch, seq as u32);
            keys.push(key.clone());
            changes.push((key, Some(bytes)));
        }
        self.log.stage(epoch, changes)?;
        let entry = self.logged.entry(epoch).or_default();
        entry.0.extend(records);
        entry.1.extend(keys);
        Ok(())
    }

    /// Commits every logged epoch up to `epoch` to Kafka, on a thread of
    /// its own. Returns `false` while that commit is under way (call again),
    /// `true` once every logged epoch up to `epoch` is committed.
    pub fn commit(&mut self, epoch: u64) -> Result<bool> {
        if let Some(running) = self.committing.take() {
            if !running.handle.is_finished() {
                self.committing = Some(running);
                return Ok(false);
            }
            let (producer, records, sent) = running
                .handle
                .join()
                .map_err(|_| RiftError::Internal("kafka sink: the commit thread panicked".into()))?;
            self.producer = Some(producer);
            if let Err(e) = sent {
                // Aborted: the records go back to their epochs, to be sent again.
                for (epoch, r) in records {
                    if let Some(entry) = self.logged.get_mut(&epoch) {
                        entry.0 = r;
                    }
                }
                return Err(e);
            }
            crate::util::crash_point!("kafka-committed");
            let keys: Vec<Vec<u8>> = self
                .logged
                .range(..=running.through)
                .flat_map(|(_, (_, keys))| keys.iter().cloned())
                .collect();
            self.logged.retain(|e, _| *e > running.through);
            self.log.state.write_committed(keys.into_iter().map(|k| (k, None)))?;
        }
        let Some(through) = self.logged.range(..=epoch).map(|(e, _)| *e).next_back() else {
            return Ok(true);
        };
        // Moved to the commit thread (not copied on the worker thread), and handed back with the outcome.
        let records: EpochRecords = self
            .logged
            .range_mut(..=through)
            .map(|(epoch, (records, _))| (*epoch, std::mem::take(records)))
            .collect();
        let producer = self
            .producer
            .take()
            .ok_or_else(|| RiftError::Internal("kafka sink: commit before recover".into()))?;
        let (topic, id) = (self.topic.clone(), self.transactional_id(self.worker));
        let handle = std::thread::Builder::new()
            .name(format!("kafka-commit-{}", self.worker))
            .spawn(move || {
                let sent = transact(&producer, &topic, &id, records.iter().flat_map(|(_, r)| r), through);
                (producer, records, sent)
            })
            // Not retryable: the job fails, and the restart commits these records from the log.
            .map_err(|e| RiftError::Internal(format!("kafka sink: cannot start a commit thread: {e}")))?;
        self.committing = Some(Committing { through, handle });
        Ok(false)
    }

    /// Fences, then finishes the logs this worker owns (see the module docs).
    pub fn recover(&mut self) -> Result<()> {
        if let Some(running) = self.committing.take() {
            // Its outcome does not matter: the marker read below says what it committed.
            if let Ok((producer, _, _)) = running.handle.join() {
                self.producer = Some(producer);
            }
        }
        self.logged.clear();
        if self.producer.is_none() {
            self.producer = Some(self.fenced_producer(self.worker)?);
        }
        let mut logs: BTreeMap<u16, BTreeMap<(u64, u32), Vec<u8>>> = BTreeMap::new();
        if self.log.restored.is_some() {
            for (g, key, value) in self.log.state.scan(&self.log.op, LOG)? {
                if !owns(g, self.worker, self.peers) || key.len() != 12 {
                    continue;
                }
                let epoch = u64::from_be_bytes(key[..8].try_into().unwrap_or_default());
                let seq = u32::from_be_bytes(key[8..12].try_into().unwrap_or_default());
                logs.entry(g).or_default().insert((epoch, seq), value);
            }
        }
        for (group, chunks) in logs {
            let slot = group as usize;
            let other;
            let producer = if slot == self.worker {
                self.producer
                    .as_ref()
                    .ok_or_else(|| RiftError::Internal("no producer".into()))?
            } else {
                other = self.fenced_producer(slot)?;
                &other
            };
            let committed = self.last_committed(slot)?;
            let mut records = Vec::new();
            let mut through = None;
            let keys: Vec<Vec<u8>> = chunks.keys().map(|(e, s)| self.log_key(slot, *e, *s)).collect();
            for ((epoch, _), bytes) in chunks {
                if committed.is_some_and(|c| epoch <= c) {
                    continue;
                }
                let chunk: Vec<KafkaRecord> = bincode::deserialize(&bytes)
                    .map_err(|e| RiftError::Internal(format!("kafka log of epoch {epoch}: {e}")))?;
                records.extend(chunk);
                through = through.max(Some(epoch));
            }
            if let Some(through) = through {
                transact(producer, &self.topic, &self.transactional_id(slot), &records, through)?;
            }
            self.log.state.write_committed(keys.into_iter().map(|k| (k, None)))?;
        }
        Ok(())
    }
}

/// Logged records of several epochs, per epoch.
type EpochRecords = Vec<(u64, Vec<KafkaRecord>)>;

/// A commit under way on its own thread: it hands the producer and the
/// records back with its outcome.
struct Committing {
    /// The last epoch it commits.
    through: u64,
    handle: std::thread::JoinHandle<(BaseProducer<Deliveries>, EpochRecords, Result<()>)>,
}

/// Sends `records` and the marker of `through` (keyed by the transactional
/// id `id`) in one transaction; aborts it on failure.
fn transact<'r>(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    id: &str,
    records: impl IntoIterator<Item = &'r KafkaRecord>,
    through: u64,
) -> Result<()> {
    producer.begin_transaction().map_err(kafka_err)?;
    let sent = records
        .into_iter()
        .try_for_each(|r| enqueue(producer, topic, 0, r))
        .and_then(|()| {
            let marker = KafkaRecord {
                key: Some(id.as_bytes().to_vec()),
                value: through.to_string().into_bytes(),
                headers: Vec::new(),
            };
            enqueue(producer, PROGRESS_TOPIC, 0, &marker)
        })
        .and_then(|()| producer.commit_transaction(TXN_TIMEOUT).map_err(kafka_err));
    if let Err(e) = sent {
        let _ = producer.abort_transaction(TXN_TIMEOUT);
        return Err(e);
    }
    Ok(())
}
