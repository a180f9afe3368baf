//! The Kafka sink's exactly-once delivery against librdkafka's mock
//! cluster: each crash window is caused — a crash between a checkpoint and
//! its Kafka commit, and one between the Kafka commit and forgetting the
//! log — and shown to have happened, then a `read_committed` consumer sees
//! every record once.
//!
//! A crash in the middle of a transaction is not checked: neither Tansu nor
//! the mock cluster hides an aborted transaction's records from
//! `read_committed` consumers (nor fences the old producer), so the abort
//! that `init_transactions` does on a real broker cannot be observed here.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use riftstream::config::KafkaConfig;
use riftstream::error::Result;
use riftstream::sinks::kafka::{KafkaRecord, KafkaWriter, ToKafka, ValueEncoder};
use riftstream::sinks::kafka_txn::{ExactlyOnce, PROGRESS_TOPIC};
use riftstream::sinks::SinkWriter;
use riftstream::state::checkpoint::entry_key;
use riftstream::state::{JobState, OperatorState};
use std::path::Path;
use std::time::{Duration, Instant};

/// A record that is just a number.
#[derive(Clone)]
struct Num(u32);

impl ToKafka for Num {
    fn to_kafka(&self, _: &ValueEncoder) -> Result<KafkaRecord> {
        Ok(KafkaRecord {
            key: Some(self.0.to_string().into_bytes()),
            value: self.0.to_string().into_bytes(),
            headers: Vec::new(),
        })
    }
}

const OP: &str = "kafka/out/out";

fn writer(kafka: &KafkaConfig, state: &std::sync::Arc<JobState>, restored: Option<u64>) -> KafkaWriter<Num> {
    let log = OperatorState {
        state: state.clone(),
        op: OP.into(),
        restored,
    };
    KafkaWriter::new(kafka, "out", ValueEncoder::Json, 3)
        .unwrap()
        .exactly_once(ExactlyOnce::new(kafka, "out", ("job", "out"), (0, 1), log).unwrap())
}

fn epoch(w: &mut KafkaWriter<Num>, state: &JobState, epoch: u64, values: &[u32], complete: bool) {
    w.begin_epoch(epoch);
    w.write(&mut values.iter().map(|v| Num(*v)).collect()).unwrap();
    w.pre_commit(epoch).unwrap();
    if complete {
        state.complete(epoch).unwrap();
    }
}

/// Commits through `epoch`: the commit runs off the calling thread, so
/// this asks again until the writer reports it done.
fn commit(w: &mut KafkaWriter<Num>, epoch: u64) {
    super::support::wait_until(Duration::from_secs(30), "the Kafka commit", || {
        w.commit(epoch).unwrap().then_some(())
    });
}

/// Every value of `topic`, read from the start to the end with `isolation`.
fn read(brokers: &str, topic: &str, isolation: &str) -> Vec<u32> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "checker")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    let partitions = 3;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut values = Vec::new();
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while at_end.len() < partitions as usize {
        assert!(Instant::now() < deadline, "{topic} not read to its end within 30 s");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let text = std::str::from_utf8(m.payload().unwrap_or_default()).unwrap();
                values.push(text.parse().unwrap());
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    values.sort_unstable();
    values
}

/// The log entries of the sink in `state`, as committed state changes.
fn log_entries(state: &JobState) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    state
        .scan(OP, b"l")
        .unwrap()
        .into_iter()
        .map(|(g, k, v)| (entry_key(OP, b"l", g, &k), Some(v)))
        .collect()
}

#[test]
fn every_crash_window_of_a_transactional_sink_ends_with_each_record_once() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("out", 3, 1).unwrap();
    cluster.create_topic(PROGRESS_TOPIC, 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let kafka = KafkaConfig {
        brokers: brokers.clone(),
        schema_registry: None,
        group_id: "eo".into(),
        properties: Default::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    let state = JobState::open(Path::new(dir.path()), "job").unwrap();

    // Epoch 1 is committed; epoch 2's checkpoint completes, then the process
    // dies before its Kafka commit; epoch 3 never completes.
    let mut w = writer(&kafka, &state, None);
    w.recover(None).unwrap();
    epoch(&mut w, &state, 1, &[1, 2, 3], true);
    commit(&mut w, 1);
    epoch(&mut w, &state, 2, &[4, 5], true);
    epoch(&mut w, &state, 3, &[6], false);
    drop(w);
    assert_eq!(
        read(&brokers, "out", "read_committed"),
        [1, 2, 3],
        "epoch 2 was not committed before the crash"
    );

    // The restart restores checkpoint 2: its logged records are committed, epoch 3's are not.
    state.recover(Some(2)).unwrap();
    let mut w = writer(&kafka, &state, Some(2));
    w.recover(Some(2)).unwrap();
    assert_eq!(read(&brokers, "out", "read_committed"), [1, 2, 3, 4, 5]);

    // Epoch 4 is committed to Kafka, then the process dies before forgetting its log.
    epoch(&mut w, &state, 4, &[7], true);
    let logged = log_entries(&state);
    assert!(!logged.is_empty(), "epoch 4 is logged");
    commit(&mut w, 4);
    assert!(log_entries(&state).is_empty(), "a commit forgets its log");
    state.write_committed(logged).unwrap();
    drop(w);
    state.recover(Some(4)).unwrap();
    let mut w = writer(&kafka, &state, Some(4));
    w.recover(Some(4)).unwrap();
    assert_eq!(
        read(&brokers, "out", "read_committed"),
        [1, 2, 3, 4, 5, 7],
        "the marker shows epoch 4 committed: not sent again"
    );
    assert!(log_entries(&state).is_empty());
    drop(w);

    // The next epoch commits with the restarted producer.
    let mut w = writer(&kafka, &state, Some(4));
    w.recover(Some(4)).unwrap();
    epoch(&mut w, &state, 5, &[8], true);
    commit(&mut w, 5);
    assert_eq!(read(&brokers, "out", "read_committed"), [1, 2, 3, 4, 5, 7, 8]);
}
