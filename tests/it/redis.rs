//! The Redis feature store, against a real `redis-server`.

use super::support::{free_port, redis_cli, run_bounded, start_redis, stop_redis, topology, write_jsonl};
use riftstream::generator::{simulate, GeneratorConfig};
use riftstream::runtime::{self, RunOptions};
use riftstream::sinks::embedded::{EmbeddedStore, FeatureStore};
use riftstream::sinks::redis::RedisStore;
use std::time::Duration;

fn topo(d: &str, online: &str, job: &str, commit: &str) -> String {
    format!(
        r#"
[runtime]
workers = 2
state_dir = "{d}/state-{job}"
checkpoint_interval = "{commit}"
[sources.matches]
kind = "file"
path = "{d}/matches.jsonl"
schema = "matches"
[sinks.online]
{online}
[sinks.lake]
kind = "lake"
root = "{d}/lake-{job}"
[feature_sets.daily]
source = "matches"
explode = "participants"
key = "player_id"
time = "end_time"
window = {{ kind = "tumbling", size = "1d" }}
aggregates = {{ games_1d = "count", kills_1d = "sum(kills)", wins_1d = "sum(win)" }}
features = {{ winrate_1d = "wins_1d / games_1d" }}
[jobs.{job}]
kind = "player_features"
feature_sets = ["daily"]
online = "online"
offline = "lake"
"#
    )
}

fn input(dir: &std::path::Path) -> Vec<String> {
    let sim = simulate(&GeneratorConfig {
        players: 120,
        matches: 400,
        live_games: 0,
        days: 6,
        seed: 21,
        ..Default::default()
    });
    let lines: Vec<serde_json::Value> = sim.matches.iter().map(|m| serde_json::to_value(m).unwrap()).collect();
    write_jsonl(&dir.join("matches.jsonl"), &lines);
    let mut players: Vec<String> = sim
        .matches
        .iter()
        .flat_map(|m| m.participants.iter().map(|p| p.player_id.clone()))
        .collect();
    players.sort();
    players.dedup();
    players
}

#[test]
fn players_get_hashes_with_ttl_and_replays_never_move_them_back_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let players = input(dir.path());
    let port = free_port();
    start_redis(port);
    let redis = format!("kind = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\nttl = \"7d\"");
    run_bounded(&topo(&d, &redis, "redis_a", "1s"), 2);
    let store = RedisStore::open(&format!("redis://127.0.0.1:{port}"), Duration::from_secs(1)).unwrap();
    let mut event_times = Vec::new();
    for p in &players {
        let h = store
            .get("player", p)
            .unwrap()
            .unwrap_or_else(|| panic!("no hash for {p}"));
        assert!(
            h.contains_key("games_1d") && h.contains_key("winrate_1d") && h.contains_key("updated_at"),
            "{h:?}"
        );
        event_times.push(h["event_time"].parse::<i64>().unwrap());
        let ttl: i64 = redis_cli(port, &["pttl", &format!("rift:player:{p}")])
            .trim()
            .parse()
            .unwrap();
        assert!(ttl > 6 * 24 * 3600 * 1000 && ttl <= 7 * 24 * 3600 * 1000, "ttl {ttl}");
    }
    // A replay of the same input: every write is older or equal, nothing moves back.
    run_bounded(&topo(&d, &redis, "redis_b", "1s"), 2);
    for (p, before) in players.iter().zip(&event_times) {
        let after: i64 = store.get("player", p).unwrap().unwrap()["event_time"].parse().unwrap();
        assert!(after >= *before);
    }
    // Directly: an older update for a set is refused by the server-side guard.
    let key = &players[0];
    let now: i64 = store.get("player", key).unwrap().unwrap()["event_time:daily"]
        .parse()
        .unwrap();
    let stale = riftstream::sinks::embedded::FeatureUpdate {
        entity: "player".into(),
        id: key.clone(),
        feature_set: "daily".into(),
        event_time: now - 1,
        values: vec![("games_1d".into(), Some(999.0))],
    };
    let stats = store.write(&[stale]).unwrap();
    assert_eq!((stats.written, stats.stale), (0, 1));
    assert_ne!(store.get("player", key).unwrap().unwrap()["games_1d"], "999");
    stop_redis(port);
}

#[test]
fn redis_away_while_the_job_runs_loses_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let players = input(dir.path());
    // Reference: the same job into the embedded store.
    let embedded = format!("kind = \"embedded\"\npath = \"{d}/embedded\"");
    run_bounded(&topo(&d, &embedded, "reference", "1s"), 2);
    let port = free_port();
    // Redis is down when the job starts; it comes up once a write has failed.
    let redis = format!("kind = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\nttl = \"7d\"");
    let t = topology(&topo(&d, &redis, "outage", "200ms"));
    let opts = RunOptions::bounded(2);
    let metrics = opts.metrics.clone();
    let job = std::thread::spawn(move || runtime::run(t, opts));
    let failed = super::support::wait_until(Duration::from_secs(60), "a failed write to the stopped Redis", || {
        let n = metrics.counter_sum("sink_errors_total", "sink", "online");
        (n > 0).then_some(n)
    });
    assert!(failed > 0);
    let committed_before = metrics.counter_sum("sink_commits_total", "sink", "online");
    start_redis(port);
    let report = job.join().unwrap().unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(committed_before, 0, "nothing reached Redis while it was down");
    assert!(metrics.counter_sum("sink_commits_total", "sink", "online") > 0);
    let reference = EmbeddedStore::open(&dir.path().join("embedded"), 0).unwrap();
    let store = RedisStore::open(&format!("redis://127.0.0.1:{port}"), Duration::from_secs(1)).unwrap();
    for p in &players {
        let want = reference.get("player", p).unwrap().unwrap();
        let got = store.get("player", p).unwrap().unwrap_or_else(|| panic!("{p} lost"));
        for field in ["games_1d", "kills_1d", "event_time"] {
            let (w, g): (f64, f64) = (want[field].parse().unwrap(), got[field].parse().unwrap());
            assert_eq!(w, g, "{p}.{field}");
        }
    }
    stop_redis(port);
}

#[test]
fn an_established_connection_survives_redis_being_killed_and_restarted() {
    let port = free_port();
    start_redis(port);
    let store = RedisStore::open(&format!("redis://127.0.0.1:{port}"), Duration::from_secs(60)).unwrap();
    let update = |t: i64, v: f64| riftstream::sinks::embedded::FeatureUpdate {
        entity: "player".into(),
        id: "p1".into(),
        feature_set: "s".into(),
        event_time: t,
        values: vec![("x".into(), Some(v))],
    };
    assert_eq!(store.write(&[update(1, 1.0)]).unwrap().written, 1);
    stop_redis(port);
    let err = store.write(&[update(2, 2.0)]).unwrap_err();
    assert!(err.is_retryable(), "{err}");
    start_redis(port);
    // The sink retries the same updates: the first attempt after the restart may still fail.
    let written = super::support::wait_until(Duration::from_secs(10), "a write after the restart", || {
        match store.write(&[update(2, 2.0)]) {
            Ok(s) => Some(s.written),
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                None
            }
        }
    });
    assert_eq!(written, 1);
    assert_eq!(store.get("player", "p1").unwrap().unwrap()["x"], "2");
    stop_redis(port);
}
