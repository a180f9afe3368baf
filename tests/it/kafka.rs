//! Kafka in and out, against a real Kafka-protocol broker (Tansu, started by
//! the test helpers), a Schema Registry stand-in, and Python's
//! confluent-kafka client as the third party.

use super::registry_stub::RegistryStub;
use super::support::{duckdb, kafka, run_bounded};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use riftstream::codec::avro::{schema_text, AvroValueEncoder};
use riftstream::config::{Encoding, KafkaConfig};
use riftstream::events::{Match, Participant, Team, Topic};
use riftstream::generator::{simulate, GeneratorConfig};
use riftstream::model::{load_ten_minute_csv, train, ModelRegistry, TrainConfig};
use riftstream::produce::{produce, produce_simulation, ProduceTarget};
use serde::Serialize;
use std::time::Duration;

fn target(registry: &str, prefix: &str, encoding: Encoding) -> ProduceTarget {
    ProduceTarget {
        kafka: KafkaConfig {
            brokers: kafka().to_string(),
            schema_registry: Some(registry.to_string()),
            group_id: "test-producer".into(),
            properties: Default::default(),
        },
        encoding,
        partitions: 3,
        topic_prefix: prefix.to_string(),
        rate: None,
    }
}

/// Runs a Python snippet with the broker and registry in the environment; returns stdout.
fn python(script: &str, registry: &str) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("BROKERS", kafka())
        .env("REGISTRY", registry)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn raw_produce(topic: &str, values: &[Vec<u8>]) {
    let p: BaseProducer = ClientConfig::new().set("bootstrap.servers", kafka()).create().unwrap();
    for v in values {
        p.send(
            BaseRecord::<[u8], [u8]>::to(topic)
                .key(b"bad".as_slice())
                .payload(v.as_slice()),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

fn register_live_model(lake: &std::path::Path) {
    let data = load_ten_minute_csv(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/high_diamond_ranked_10min.train.csv"),
    )
    .unwrap();
    let model = train(&data, &TrainConfig::default(), &mut |_| {}).unwrap();
    ModelRegistry::open(lake)
        .unwrap()
        .register("live", &model, "test")
        .unwrap();
}

#[test]
fn generated_data_through_kafka_gives_predictions_a_third_party_consumer_reads() {
    let registry = RegistryStub::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    register_live_model(&dir.path().join("lake"));
    let cfg = GeneratorConfig {
        players: 300,
        matches: 120,
        live_games: 4,
        seed: 11,
        ..Default::default()
    };
    let produced = produce_simulation(&target(&registry.url, "e2e.", Encoding::Avro), &cfg).unwrap();
    let events = produced.iter().find(|(t, _)| *t == Topic::GameEvents).unwrap().1;
    let topo = format!(
        r#"
[runtime]
workers = 2
state_dir = "{d}/state"
checkpoint_interval = "1s"
[kafka]
brokers = "{brokers}"
schema_registry = "{registry}"
group_id = "e2e"
[sources.matches]
kind = "kafka"
topic = "e2e.esports.matches"
schema = "matches"
[sources.events]
kind = "kafka"
topic = "e2e.esports.game_events"
schema = "game_events"
[sinks.lake]
kind = "lake"
root = "{d}/lake"
[sinks.predictions]
kind = "kafka"
topic = "e2e.esports.predictions"
[sinks.dlq]
kind = "kafka"
topic = "e2e.esports.dlq"
[jobs.lake]
kind = "lake"
sources = ["matches", "events"]
lake = "lake"
dlq = "dlq"
[jobs.predictions]
kind = "predictions"
live_source = "events"
outputs = ["predictions", "lake"]
"#,
        brokers = kafka(),
        registry = registry.url
    );
    run_bounded(&topo, 2);
    let silver = duckdb(&format!(
        "select count(*) from read_parquet('{d}/lake/silver/matches/**/*.parquet')"
    ));
    assert_eq!(silver[0][0].as_i64().unwrap(), 120);
    // A third-party consumer (confluent-kafka, Avro through the registry) reads every prediction.
    let out = python(
        r#"
import os, json
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import SerializationContext, MessageField
de = AvroDeserializer(SchemaRegistryClient({"url": os.environ["REGISTRY"]}))
c = Consumer({"bootstrap.servers": os.environ["BROKERS"], "group.id": "third-party", "auto.offset.reset": "earliest",
              "session.timeout.ms": 6000, "enable.partition.eof": True})
c.subscribe(["e2e.esports.predictions"])
rows, eofs = [], set()
import time
deadline = time.time() + 60
while time.time() < deadline and len(eofs) < 3:
    m = c.poll(1.0)
    if m is None: continue
    if m.error():
        if m.error().code() == -191: eofs.add(m.partition())
        continue
    v = de(m.value(), SerializationContext(m.topic(), MessageField.VALUE))
    rows.append({k: v[k] for k in ["match_id", "kind", "blue_win_probability", "model_version", "game_minute", "latency_ms"]} | {"key": m.key().decode(), "nfeatures": len(v["features"])})
print(json.dumps(rows))
"#,
        &registry.url,
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(rows.len(), events, "one prediction per live event");
    for r in &rows {
        assert_eq!(r["kind"], "live");
        assert_eq!(r["model_version"], "v1");
        assert_eq!(r["key"], r["match_id"]);
        assert_eq!(r["nfeatures"], 13);
        let p = r["blue_win_probability"].as_f64().unwrap();
        assert!(p > 0.0 && p < 1.0);
    }
}

#[derive(Serialize)]
struct OldMatch<'a> {
    match_id: String,
    platform: &'a str,
    queue: &'a str,
    patch: &'a str,
    start_time: i64,
    end_time: i64,
    winning_team: Team,
    participants: &'a [Participant],
}

#[derive(Serialize)]
struct NewMatch<'a> {
    #[serde(flatten)]
    inner: &'a Match,
    region: Option<&'a str>,
}

#[test]
fn bad_records_go_to_the_dead_letter_topic_and_evolved_schemas_are_read() {
    let registry = RegistryStub::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let sim = simulate(&GeneratorConfig {
        players: 200,
        matches: 30,
        live_games: 1,
        seed: 5,
        ..Default::default()
    });
    let t = target(&registry.url, "mixed.", Encoding::Avro);
    // 20 good matches with the current schema.
    produce(&t, sim.matches[..20].to_vec()).unwrap();
    let topic = "mixed.esports.matches";
    // 5 with an older schema (no bans, no simulated probability) and 5 with a newer one (extra optional field).
    let v: serde_json::Value = serde_json::from_str(schema_text(Topic::Matches)).unwrap();
    let mut old = v.clone();
    old["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "bans" && f["name"] != "simulated_blue_win_probability");
    let mut new = v.clone();
    new["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "region", "type": ["null", "string"], "default": null}));
    let old_enc = AvroValueEncoder::with_schema(&registry.url, &old.to_string(), "mixed.old").unwrap();
    let new_enc = AvroValueEncoder::with_schema(&registry.url, &new.to_string(), "mixed.new").unwrap();
    let mut raw: Vec<Vec<u8>> = Vec::new();
    for m in &sim.matches[20..25] {
        raw.push(
            old_enc
                .encode(&OldMatch {
                    match_id: m.match_id.clone(),
                    platform: &m.platform,
                    queue: &m.queue,
                    patch: &m.patch,
                    start_time: m.start_time,
                    end_time: m.end_time,
                    winning_team: m.winning_team,
                    participants: &m.participants,
                })
                .unwrap(),
        );
    }
    for m in &sim.matches[25..30] {
        raw.push(
            new_enc
                .encode(&NewMatch {
                    inner: m,
                    region: Some("EUW"),
                })
                .unwrap(),
        );
    }
    // Five kinds of bad records.
    let good = AvroValueEncoder::new(&registry.url, Topic::Matches, topic)
        .unwrap()
        .encode(&sim.matches[0])
        .unwrap();
    let mut negative = sim.matches[1].clone();
    negative.match_id.push_str("_NEG");
    negative.participants[2].kills = -4;
    let invalid = AvroValueEncoder::new(&registry.url, Topic::Matches, topic)
        .unwrap()
        .encode(&negative)
        .unwrap();
    let mut wrong_magic = good.clone();
    wrong_magic[0] = 7;
    let mut unknown_id = good.clone();
    unknown_id[1..5].copy_from_slice(&9999u32.to_be_bytes());
    raw.push(good[..good.len() / 2].to_vec()); // truncated
    raw.push(wrong_magic);
    raw.push(unknown_id);
    raw.push(invalid);
    raw.push(b"{\"match_id\": \"json on an avro topic\"}".to_vec());
    raw_produce(topic, &raw);
    // A JSON topic with invalid JSON next to valid ones.
    let tj = target(&registry.url, "mixedjson.", Encoding::Json);
    produce(&tj, sim.player_stats.clone()).unwrap();
    raw_produce("mixedjson.esports.player_stats", &[b"{not json".to_vec()]);
    let topo = format!(
        r#"
[runtime]
workers = 2
state_dir = "{d}/state"
checkpoint_interval = "1s"
[kafka]
brokers = "{brokers}"
schema_registry = "{registry}"
group_id = "mixed"
[sources.matches]
kind = "kafka"
topic = "{topic}"
schema = "matches"
[sources.stats]
kind = "kafka"
topic = "mixedjson.esports.player_stats"
schema = "player_stats"
encoding = "json"
[sinks.lake]
kind = "lake"
root = "{d}/lake"
[sinks.dlq]
kind = "kafka"
topic = "mixed.esports.dlq"
encoding = "json"
[jobs.mixed_lake]
kind = "lake"
sources = ["matches", "stats"]
lake = "lake"
dlq = "dlq"
"#,
        brokers = kafka(),
        registry = registry.url
    );
    let metrics = run_bounded(&topo, 2).metrics.expect("the run's metrics");
    let count = |name: &str| metrics.counter_sum(name, "job", "mixed_lake");
    let consumed = count("source_records_total");
    let processed = count("source_decoded_total");
    let dead = count("dead_letters_total");
    let late = count("late_rows_total");
    assert_eq!(consumed as usize, 30 + 5 + sim.player_stats.len() + 1);
    assert_eq!(
        consumed,
        processed + dead + late,
        "consumed = processed + dead letters + late"
    );
    assert_eq!(dead, 6);
    let silver = duckdb(&format!(
        "select count(*) from read_parquet('{d}/lake/silver/matches/**/*.parquet')"
    ));
    assert_eq!(
        silver[0][0].as_i64().unwrap(),
        30,
        "current, older and newer schema all read"
    );
    let old_row = duckdb(&format!(
        "select len(bans), simulated_blue_win_probability is null from read_parquet('{d}/lake/silver/matches/**/*.parquet') where match_id = '{}'",
        sim.matches[21].match_id
    ));
    assert_eq!(
        old_row[0],
        vec![serde_json::json!(0), serde_json::json!(true)],
        "defaults fill fields the old schema lacked"
    );
    // Every dead letter is on the DLQ topic with its reason, in the value and the headers.
    let out = python(
        r#"
import os, json, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": os.environ["BROKERS"], "group.id": "dlq-reader", "auto.offset.reset": "earliest",
              "session.timeout.ms": 6000})
c.subscribe(["mixed.esports.dlq"])
rows, deadline = [], time.time() + 40
while time.time() < deadline and len(rows) < 6:
    m = c.poll(1.0)
    if m is None or m.error(): continue
    v = json.loads(m.value())
    h = dict((k, val.decode()) for k, val in (m.headers() or []))
    rows.append({"reason": v["reason"], "header": h.get("rift.reason"), "topic": v["source_topic"], "offset": v["offset"]})
print(json.dumps(rows))
"#,
        &registry.url,
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(rows.len(), 6);
    let reasons: Vec<String> = rows.iter().map(|r| r["reason"].as_str().unwrap().to_string()).collect();
    for r in &rows {
        assert_eq!(r["reason"], r["header"]);
    }
    let has = |needle: &str| reasons.iter().any(|r| r.contains(needle));
    assert!(has("magic byte Some(7)"), "{reasons:?}");
    assert!(has("schema id 9999"), "{reasons:?}");
    assert!(has("negative (-4)"), "{reasons:?}");
    assert!(has("invalid player_stats JSON"), "{reasons:?}");
    assert!(has("magic byte Some(123)"), "{reasons:?}");
}

#[test]
fn a_record_produced_by_confluent_kafka_with_its_avro_serializer_is_decoded() {
    let registry = RegistryStub::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let sim = simulate(&GeneratorConfig {
        players: 100,
        matches: 3,
        live_games: 0,
        seed: 9,
        ..Default::default()
    });
    let records = serde_json::to_string(&sim.matches).unwrap();
    std::fs::write(dir.path().join("matches.json"), records).unwrap();
    std::fs::write(dir.path().join("matches.avsc"), schema_text(Topic::Matches)).unwrap();
    python(
        &format!(
            r#"
import os, json
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import SerializationContext, MessageField
admin = AdminClient({{"bootstrap.servers": os.environ["BROKERS"]}})
admin.create_topics([NewTopic("py.esports.matches", 2, 1)])["py.esports.matches"].result()
ser = AvroSerializer(SchemaRegistryClient({{"url": os.environ["REGISTRY"]}}), open("{d}/matches.avsc").read())
p = Producer({{"bootstrap.servers": os.environ["BROKERS"]}})
for m in json.load(open("{d}/matches.json")):
    p.produce("py.esports.matches", key=m["match_id"], value=ser(m, SerializationContext("py.esports.matches", MessageField.VALUE)))
assert p.flush(30) == 0
"#
        ),
        &registry.url,
    );
    assert!(registry
        .requests()
        .iter()
        .any(|r| r == "register py.esports.matches-value"));
    let topo = format!(
        r#"
[runtime]
state_dir = "{d}/state"
[kafka]
brokers = "{brokers}"
schema_registry = "{registry}"
group_id = "py"
[sources.matches]
kind = "kafka"
topic = "py.esports.matches"
schema = "matches"
[sinks.lake]
kind = "lake"
root = "{d}/lake"
[jobs.py_lake]
kind = "lake"
sources = ["matches"]
lake = "lake"
"#,
        brokers = kafka(),
        registry = registry.url
    );
    run_bounded(&topo, 1);
    let got = duckdb(&format!(
        "select match_id, winning_team from read_parquet('{d}/lake/silver/matches/**/*.parquet') order by 1"
    ));
    let mut want: Vec<_> = sim
        .matches
        .iter()
        .map(|m| {
            vec![
                serde_json::json!(m.match_id),
                serde_json::json!(m.winning_team.as_str()),
            ]
        })
        .collect();
    want.sort_by_key(|r| r[0].as_str().unwrap().to_string());
    assert_eq!(got, want);
}

/// Live events of `games` generated games, in delivery order.
fn live_events(games: usize, seed: u64) -> Vec<riftstream::events::GameEvent> {
    simulate(&GeneratorConfig {
        players: 200,
        matches: 10,
        live_games: games,
        seed,
        ..Default::default()
    })
    .game_events
}

/// (match, event time, minute) of every prediction of a bounded run of the live job over `events`.
fn reference_predictions(
    dir: &std::path::Path,
    lake: &std::path::Path,
    events: &[riftstream::events::GameEvent],
) -> Vec<(String, i64, i64)> {
    std::fs::create_dir_all(dir).unwrap();
    let input = dir.join("events.jsonl");
    super::support::write_jsonl(
        &input,
        &events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect::<Vec<_>>(),
    );
    let out = dir.join("out");
    run_bounded(
        &format!(
            r#"
[runtime]
state_dir = "{d}/state"
[sources.events]
kind = "file"
path = "{input}"
schema = "game_events"
[sinks.out]
kind = "file"
path = "{out}"
[jobs.predictions]
kind = "predictions"
live_source = "events"
outputs = ["out"]
registry = "{lake}"
"#,
            d = dir.display(),
            input = input.display(),
            out = out.display(),
            lake = lake.display()
        ),
        1,
    );
    let mut keys: Vec<(String, i64, i64)> = super::support::read_jsonl(&out, "predictions")
        .iter()
        .map(prediction_key)
        .collect();
    keys.sort();
    keys
}

fn prediction_key(p: &serde_json::Value) -> (String, i64, i64) {
    (
        p["match_id"].as_str().unwrap().to_string(),
        p["event_time"].as_i64().unwrap(),
        p["game_minute"].as_i64().unwrap_or(-1),
    )
}

/// A 2-worker predictions job over `{prefix}.esports.game_events` (JSON),
/// writing predictions to `dir/out` and, with `dlq`, dead letters there;
/// checkpoints every 200 ms, the registry polled every 100 ms.
fn live_service_topology(
    dir: &std::path::Path,
    prefix: &str,
    registry: &std::path::Path,
    dlq: Option<&std::path::Path>,
) -> std::sync::Arc<riftstream::config::Topology> {
    let (dlq_sink, dlq_job) = match dlq {
        Some(path) => (
            format!("[sinks.dlq]\nkind = \"file\"\npath = \"{}\"\n", path.display()),
            "dlq = \"dlq\"\n",
        ),
        None => (String::new(), ""),
    };
    super::support::topology(&format!(
        r#"
[runtime]
workers = 2
state_dir = "{d}/state"
checkpoint_interval = "200ms"
[kafka]
brokers = "{brokers}"
group_id = "{prefix}"
[sources.events]
kind = "kafka"
topic = "{prefix}.esports.game_events"
schema = "game_events"
encoding = "json"
[sinks.out]
kind = "file"
path = "{d}/out"
{dlq_sink}
[jobs.predictions]
kind = "predictions"
live_source = "events"
outputs = ["out"]
{dlq_job}registry = "{registry}"
model_poll_interval = "100ms"
"#,
        d = dir.display(),
        brokers = kafka(),
        registry = registry.display()
    ))
}

/// A topology run as a 2-worker service in a thread, in this process.
struct Service {
    shutdown: std::sync::Arc<std::sync::atomic::AtomicBool>,
    metrics: std::sync::Arc<riftstream::metrics::Metrics>,
    run: std::thread::JoinHandle<riftstream::error::Result<riftstream::runtime::RunReport>>,
}

impl Service {
    fn start(topology: std::sync::Arc<riftstream::config::Topology>) -> Service {
        let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let opts = riftstream::runtime::RunOptions {
            bounded: false,
            shutdown: shutdown.clone(),
            ..riftstream::runtime::RunOptions::bounded(2)
        };
        let metrics = opts.metrics.clone();
        let run = std::thread::spawn(move || riftstream::runtime::run(topology, opts));
        Service { shutdown, metrics, run }
    }

    /// Stops it (a graceful stop: everything read is committed); it must not have failed.
    fn stop(self) {
        self.shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
        let report = self.run.join().unwrap().unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
    }
}

#[test]
fn a_model_registered_mid_run_scores_every_later_prediction_with_none_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    register_live_model(&lake);
    let events = live_events(6, 31);
    let half = events.len() / 2;
    let first = reference_predictions(&dir.path().join("ref1"), &lake, &events[..half]);
    let all = reference_predictions(&dir.path().join("ref2"), &lake, &events);
    assert!(!first.is_empty() && all.len() > first.len());

    let target = target("http://127.0.0.1:9", "hot.", Encoding::Json);
    produce(&target, events[..half].to_vec()).unwrap();
    let out = dir.path().join("out");
    let topo = live_service_topology(dir.path(), "hot", &lake, None);
    let service = Service::start(topo);
    let metrics = service.metrics.clone();
    let wait_for = |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let got = super::support::read_jsonl(&out, "predictions");
            if got.len() >= n {
                return got;
            }
            assert!(std::time::Instant::now() < deadline, "{} of {n} predictions", got.len());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(first.len());
    // A new version, registered while the job runs; then the rest of the games.
    let data = load_ten_minute_csv(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/high_diamond_ranked_10min.train.csv"),
    )
    .unwrap();
    let v2 = train(
        &data,
        &TrainConfig {
            seed: 7,
            ..TrainConfig::default()
        },
        &mut |_| {},
    )
    .unwrap();
    ModelRegistry::open(&lake)
        .unwrap()
        .register("live", &v2, "test")
        .unwrap();
    // Both workers switch to it (hot reload) before the rest of the games arrive.
    super::support::wait_until(Duration::from_secs(60), "both workers scoring with v2", || {
        let versions = metrics.gauge_values("model_version", "job", "predictions");
        (versions == [2, 2]).then_some(())
    });
    produce(&target, events[half..].to_vec()).unwrap();
    wait_for(all.len());
    // Every event read and every prediction handed to the sink: nothing more can come.
    super::support::wait_until(Duration::from_secs(60), "every event read and scored", || {
        let read = metrics.counter_sum("source_records_total", "job", "predictions");
        let written = metrics.counter_sum("sink_records_total", "job", "predictions");
        (read == events.len() as u64 && written >= all.len() as u64).then_some(())
    });
    service.stop();

    let got = super::support::read_jsonl(&out, "predictions");
    let mut keys: Vec<(String, i64, i64)> = got.iter().map(prediction_key).collect();
    keys.sort();
    assert_eq!(keys, all, "every update predicted exactly once across the switch");
    let first: std::collections::BTreeSet<_> = first.into_iter().collect();
    for p in &got {
        let want = if first.contains(&prediction_key(p)) { "v1" } else { "v2" };
        assert_eq!(p["model_version"], want, "{p}");
    }
    assert_eq!(
        metrics.counter_sum("model_switches_total", "model", "live"),
        2,
        "one switch per worker"
    );
}

/// (match, event time, minute) of the live update a `no model` dead letter carries.
fn dead_letter_key(l: &serde_json::Value) -> (String, i64, i64) {
    use base64::Engine;
    let value = base64::engine::general_purpose::STANDARD
        .decode(l["value"].as_str().unwrap())
        .unwrap();
    prediction_key(&serde_json::from_slice(&value).unwrap())
}

#[test]
fn a_service_started_before_any_model_dead_letters_no_model_then_scores_from_the_first_version() {
    let dir = tempfile::tempdir().unwrap();
    // The reference runs use their own registry; the service's starts empty.
    let reference_lake = dir.path().join("reference-lake");
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    let data = load_ten_minute_csv(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/high_diamond_ranked_10min.train.csv"),
    )
    .unwrap();
    let model = train(&data, &TrainConfig::default(), &mut |_| {}).unwrap();
    ModelRegistry::open(&reference_lake)
        .unwrap()
        .register("live", &model, "test")
        .unwrap();
    let events = live_events(6, 37);
    let half = events.len() / 2;
    let first = reference_predictions(&dir.path().join("ref1"), &reference_lake, &events[..half]);
    let all = reference_predictions(&dir.path().join("ref2"), &reference_lake, &events);
    assert!(!first.is_empty() && all.len() > first.len());

    let target = target("http://127.0.0.1:9", "unmodelled.", Encoding::Json);
    produce(&target, events[..half].to_vec()).unwrap();
    let (out, dlq) = (dir.path().join("out"), dir.path().join("dlq"));
    let topo = live_service_topology(dir.path(), "unmodelled", &lake, Some(&dlq));
    let service = Service::start(topo);
    let metrics = service.metrics.clone();
    // Without a model, every update of the first half is answered on the DLQ.
    super::support::wait_until(Duration::from_secs(90), "every early update dead-lettered", || {
        (super::support::read_jsonl(&dlq, "predictions-dlq").len() >= first.len()).then_some(())
    });
    assert!(super::support::read_jsonl(&out, "predictions").is_empty());
    assert_eq!(metrics.gauge_values("model_version", "job", "predictions"), [0, 0]);

    // The first version, registered while the service runs; then the rest of the games.
    ModelRegistry::open(&lake)
        .unwrap()
        .register("live", &model, "test")
        .unwrap();
    super::support::wait_until(Duration::from_secs(60), "both workers scoring with v1", || {
        let versions = metrics.gauge_values("model_version", "job", "predictions");
        (versions == [1, 1]).then_some(())
    });
    produce(&target, events[half..].to_vec()).unwrap();
    let later = all.len() - first.len();
    super::support::wait_until(Duration::from_secs(90), "every later update scored", || {
        let read = metrics.counter_sum("source_records_total", "job", "predictions");
        let got = super::support::read_jsonl(&out, "predictions").len();
        (read == events.len() as u64 && got >= later).then_some(())
    });
    service.stop();

    let unscored = super::support::read_jsonl(&dlq, "predictions-dlq");
    super::support::assert_no_model_dead_letters(&unscored, "live");
    let mut unscored: Vec<(String, i64, i64)> = unscored.iter().map(dead_letter_key).collect();
    unscored.sort();
    assert_eq!(unscored, first, "each update before the model is dead-lettered once");
    assert_eq!(
        metrics.counter_sum("dead_letters_total", "job", "predictions"),
        unscored.len() as u64
    );
    let got = super::support::read_jsonl(&out, "predictions");
    let mut scored: Vec<(String, i64, i64)> = got.iter().map(prediction_key).collect();
    scored.sort();
    let mut want = all;
    for k in &first {
        if let Some(i) = want.iter().position(|w| w == k) {
            want.remove(i);
        }
    }
    assert_eq!(
        scored, want,
        "each later update scored once, as by a run that had the model all along"
    );
    assert!(got.iter().all(|p| p["model_version"] == "v1"));
}

#[test]
fn bounded_runs_stop_at_the_start_high_watermark_while_producers_write_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let matches = simulate(&GeneratorConfig {
        players: 300,
        matches: 3_000,
        live_games: 0,
        seed: 17,
        ..Default::default()
    })
    .matches;
    let target = target("http://127.0.0.1:9", "hwm.", Encoding::Json);
    produce(&target, matches[..1_000].to_vec()).unwrap();
    // Keeps producing while the first run reads.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let (stop, rest, target) = (stop.clone(), matches[1_000..].to_vec(), target.clone());
        std::thread::spawn(move || {
            let mut sent = 0;
            for chunk in rest.chunks(50) {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                produce(&target, chunk.to_vec()).unwrap();
                sent += chunk.len();
                std::thread::sleep(Duration::from_millis(20));
            }
            sent
        })
    };
    let topo = |run: &str| {
        format!(
            r#"
[runtime]
workers = 2
state_dir = "{d}/state"
[kafka]
brokers = "{brokers}"
group_id = "hwm"
[sources.matches]
kind = "kafka"
topic = "hwm.esports.matches"
schema = "matches"
encoding = "json"
[sinks.out]
kind = "lake"
root = "{d}/lake-{run}"
[jobs.lake]
kind = "lake"
sources = ["matches"]
lake = "out"
"#,
            brokers = kafka()
        )
    };
    run_bounded(&topo("1"), 2);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let produced = 1_000 + producer.join().unwrap();
    let count = |run: &str| -> i64 {
        duckdb(&format!(
            "select count(*) from read_parquet('{d}/lake-{run}/silver/matches/**/*.parquet')"
        ))[0][0]
            .as_i64()
            .unwrap()
    };
    let first = count("1");
    assert!(
        first >= 1_000,
        "the first run read what was there at its start: {first}"
    );
    // The second run picks up exactly where the first committed: nothing lost, nothing twice.
    run_bounded(&topo("2"), 2);
    let second = count("2");
    assert_eq!(
        first + second,
        produced as i64,
        "first {first} + second {second} of {produced}"
    );
}

#[test]
fn an_empty_topic_does_not_hold_back_a_quiet_jobs_offset_commits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let sim = simulate(&GeneratorConfig {
        players: 200,
        matches: 300,
        live_games: 0,
        days: 5,
        seed: 23,
        ..Default::default()
    });
    let target = target("http://127.0.0.1:9", "idle.", Encoding::Json);
    produce(&target, sim.matches.clone()).unwrap();
    // The ranked-snapshot topic exists but stays empty.
    produce(&target, Vec::<riftstream::events::PlayerStats>::new()).unwrap();
    let topo = super::support::topology(&format!(
        r#"
[runtime]
workers = 2
state_dir = "{d}/state"
checkpoint_interval = "200ms"
[kafka]
brokers = "{brokers}"
group_id = "idle"
[sources.matches]
kind = "kafka"
topic = "idle.esports.matches"
schema = "matches"
encoding = "json"
watermark = {{ max_out_of_orderness = "5s", idle_timeout = "1s" }}
[sources.player_stats]
kind = "kafka"
topic = "idle.esports.player_stats"
schema = "player_stats"
encoding = "json"
watermark = {{ max_out_of_orderness = "5s", idle_timeout = "1s" }}
[sinks.lake]
kind = "lake"
root = "{d}/lake"
roll_interval = "200ms"
[jobs.lake]
kind = "lake"
sources = ["matches", "player_stats"]
lake = "lake"
"#,
        brokers = kafka()
    ));
    let service = Service::start(topo);
    // The matches' offsets are committed only once every sink of the job has
    // committed past them; the empty source's bronze output is one of those
    // sinks, so with the empty source pinned at zero they never would be.
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let group: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("group.id", "idle.lake")
        .create()
        .unwrap();
    let committed = || -> i64 {
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition("idle.esports.matches", p);
        }
        group
            .committed_offsets(tpl, Duration::from_secs(5))
            .map(|t| {
                t.elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        rdkafka::Offset::Offset(n) => Some(n),
                        _ => None,
                    })
                    .sum()
            })
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut done = 0;
    while std::time::Instant::now() < deadline {
        done = committed();
        if done >= 300 {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    service.stop();
    assert_eq!(
        done, 300,
        "offsets of the matches committed while the other source was empty"
    );
}
