//! The offline store's point-in-time export, lake compaction, repeated runs
//! into one lake, and the lake on S3 (moto in server mode).

use super::support::{duckdb, free_port, run_bounded, write_jsonl, BASE};
use riftstream::events::{Match, Team};
use riftstream::generator::{simulate, GeneratorConfig};
use riftstream::lake::compact::{compact, CompactOptions};
use riftstream::lake::offline::{read_matches, training_table, write_parquet, FeatureHistory};
use riftstream::lake::Lake;
use std::collections::BTreeMap;
use std::path::Path;

const HOUR: i64 = 3600 * 1000;
const DAY: i64 = 24 * HOUR;

pub(super) fn simulated(matches: usize, seed: u64) -> Vec<Match> {
    simulate(&GeneratorConfig {
        players: 120,
        matches,
        live_games: 0,
        days: 4,
        seed,
        ..Default::default()
    })
    .matches
}

/// `template` replayed as match `id` starting at `start`, with player `p` on blue and `blue_wins` deciding.
fn staged_match(template: &Match, id: &str, start: i64, p: &str, blue_wins: bool) -> Match {
    let mut m = template.clone();
    m.match_id = id.to_string();
    m.start_time = start;
    m.end_time = start + HOUR / 2;
    m.winning_team = if blue_wins { Team::Blue } else { Team::Red };
    let mut p_placed = false;
    for part in m.participants.iter_mut() {
        part.player_id = format!("{id}-{}", part.player_id);
        if part.team == Team::Blue && !p_placed {
            part.player_id = p.to_string();
            p_placed = true;
        }
        part.win = part.team == m.winning_team;
    }
    m
}

fn features_topology(d: &str, input: &str) -> String {
    format!(
        r#"
[runtime]
state_dir = "{d}/state"
[sources.matches]
kind = "file"
path = "{input}"
schema = "matches"
[sinks.lake]
kind = "lake"
root = "{d}/lake"
[feature_sets.daily]
source = "matches"
explode = "participants"
key = "player_id"
time = "end_time"
window = {{ kind = "tumbling", size = "1d" }}
aggregates = {{ games_1d = "count", wins_1d = "sum(win)" }}
[jobs.features]
kind = "player_features"
feature_sets = ["daily"]
offline = "lake"
"#
    )
}

#[test]
fn point_in_time_export_uses_only_windows_closed_before_each_match() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let t = simulated(4, 11);
    let p = "pit-player";
    // Day 0: p wins M1. Day 1: p loses M2. Day 2: p loses M3 and M4.
    let matches = [
        staged_match(&t[0], "M1", BASE + 10 * HOUR, p, true),
        staged_match(&t[1], "M2", BASE + DAY + 10 * HOUR, p, false),
        staged_match(&t[2], "M3", BASE + 2 * DAY + 10 * HOUR, p, false),
        staged_match(&t[3], "M4", BASE + 2 * DAY + 12 * HOUR, p, false),
    ];
    let lines: Vec<serde_json::Value> = matches.iter().map(|m| serde_json::to_value(m).unwrap()).collect();
    let input = dir.path().join("matches.jsonl");
    write_jsonl(&input, &lines);
    run_bounded(&features_topology(&d, &input.display().to_string()), 2);

    let lake = Lake::open(&format!("{d}/lake")).unwrap();
    let history = FeatureHistory::load(&lake).unwrap();
    let table = training_table(&history, &read_matches(&input).unwrap()).unwrap();
    let out = dir.path().join("training.parquet");
    write_parquet(&out, &table).unwrap();
    let rows = duckdb(&format!(
        "select match_id, games_1d, wins_1d, epoch_ms(daily_window_end) from '{}' where player_id = '{p}' order by match_id",
        out.display()
    ));
    let got: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {} {} {}", r[0], r[1], r[2], r[3]))
        .collect();
    // Hand-computed: the latest day window that closed before each match began.
    let want = vec![
        "\"M1\" null null null".to_string(),
        format!("\"M2\" 1.0 1.0 {}", BASE + DAY),
        format!("\"M3\" 1.0 0.0 {}", BASE + 2 * DAY),
        format!("\"M4\" 1.0 0.0 {}", BASE + 2 * DAY),
    ];
    assert_eq!(got, want);
    assert_eq!(table.num_rows(), 40, "one row per match and participant");

    // The joins this replaces would leak: the latest vector overall (day 2: two games, no win)
    // and the window containing the match start (day 1 for M2: M2's own loss).
    let features = format!("read_parquet('{d}/lake/gold/player_features/**/*.parquet', hive_partitioning=1)");
    let latest = duckdb(&format!(
        "select features['games_1d'], features['wins_1d'] from {features} where entity_id = '{p}' order by window_end desc limit 1"
    ));
    assert_eq!(format!("{} {}", latest[0][0], latest[0][1]), "2.0 0.0");
    let containing = duckdb(&format!(
        "select features['wins_1d'] from {features} where entity_id = '{p}' and epoch_ms(window_start) <= {} and {} < epoch_ms(window_end)",
        BASE + DAY + 10 * HOUR,
        BASE + DAY + 10 * HOUR
    ));
    assert_eq!(
        containing[0][0].to_string(),
        "0.0",
        "the naive join sees M2's own result"
    );
}

pub(super) fn lake_topology(d: &str, input: &str, root: &str, options: &str) -> String {
    format!(
        r#"
[runtime]
state_dir = "{d}/state"
[sources.matches]
kind = "file"
path = "{input}"
schema = "matches"
[sinks.lake]
kind = "lake"
root = "{root}"
{options}
[jobs.lake]
kind = "lake"
sources = ["matches"]
lake = "lake"
"#
    )
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in walk(dir) {
        if e.extension().is_some_and(|x| x == "parquet") {
            n += 1;
        }
    }
    n
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_second_run_adds_to_the_lake_and_compaction_merges_without_changing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let all = simulated(300, 5);
    let (first, second) = all.split_at(150);
    let write = |name: &str, ms: &[Match]| {
        let p = dir.path().join(name);
        write_jsonl(
            &p,
            &ms.iter().map(|m| serde_json::to_value(m).unwrap()).collect::<Vec<_>>(),
        );
        p.display().to_string()
    };
    let (a, b) = (write("a.jsonl", first), write("b.jsonl", second));
    let root = format!("{d}/lake");
    run_bounded(&lake_topology(&d, &a, &root, ""), 2);
    run_bounded(&lake_topology(&d, &b, &root, ""), 2);
    let silver = format!("read_parquet('{root}/silver/match_participants/**/*.parquet', hive_partitioning=1)");
    let summary_sql =
        format!("select count(*), count(distinct match_id), sum(kills), sum(gold), count(distinct date) from {silver}");
    let before = duckdb(&summary_sql);
    assert_eq!(before[0][0], 3000, "both runs' rows are in the lake: {before:?}");
    assert_eq!(before[0][1], 300);

    let silver_dir = dir.path().join("lake/silver");
    let files_before = count_files(&silver_dir);
    let lake = Lake::open(&root).unwrap();
    let opts = CompactOptions {
        min_age: std::time::Duration::ZERO,
        target_file_bytes: 64 << 20,
        row_group_rows: 10_000,
        dry_run: false,
        now_ms: i64::MAX / 2,
    };
    let report = compact(&lake, &opts).unwrap();
    let files_after = count_files(&silver_dir);
    assert!(
        report.files_in > report.files_out && report.partitions > 0,
        "{report:?}"
    );
    assert!(
        files_after < files_before,
        "silver files {files_before} -> {files_after}: {report:?}"
    );
    assert_eq!(duckdb(&summary_sql), before, "compaction changed rows");
    // Gold snapshots are never merged, and a second pass finds nothing left to do.
    let again = compact(&lake, &opts).unwrap();
    assert_eq!((again.files_in, again.files_out), (0, 0), "{again:?}");
    // Nothing is compacted while partitions are open.
    let fresh = compact(
        &lake,
        &CompactOptions {
            now_ms: BASE,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(fresh.files_in, 0);
}

#[test]
fn an_interrupted_compaction_is_finished_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let input = dir.path().join("m.jsonl");
    let ms = simulated(120, 8);
    write_jsonl(
        &input,
        &ms.iter().map(|m| serde_json::to_value(m).unwrap()).collect::<Vec<_>>(),
    );
    let root = format!("{d}/lake");
    run_bounded(&lake_topology(&d, &input.display().to_string(), &root, ""), 2);
    let sql = format!("select count(*), sum(gold) from read_parquet('{root}/silver/match_participants/**/*.parquet')");
    let before = duckdb(&sql);
    // Crash after the merged file was moved into place but before the inputs were deleted:
    // readers briefly see the rows twice; the next compaction deletes the inputs.
    let lake = Lake::open(&root).unwrap();
    let partition_files: BTreeMap<String, Vec<String>> = lake
        .list("silver/match_participants")
        .unwrap()
        .into_iter()
        .map(|(p, _)| lake.relative(&p))
        .fold(BTreeMap::new(), |mut m, f| {
            let (dir, _) = f.rsplit_once('/').unwrap();
            m.entry(dir.to_string()).or_default().push(f.clone());
            m
        });
    let (partition, inputs) = partition_files
        .into_iter()
        .find(|(_, v)| v.len() >= 2)
        .expect("a partition with 2 files");
    let batches: Vec<_> = inputs
        .iter()
        .flat_map(|f| lake.read_parquet(&lake.path(f)).unwrap())
        .collect();
    let merged = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let output = format!("{partition}/compacted-interrupted.parquet");
    write_parquet(&dir.path().join("lake").join(&output), &merged).unwrap();
    let intent = serde_json::json!({"partition": partition, "inputs": inputs, "output": output});
    std::fs::create_dir_all(dir.path().join("lake/_compaction")).unwrap();
    std::fs::write(dir.path().join("lake/_compaction/x.json"), intent.to_string()).unwrap();
    assert_ne!(duckdb(&sql), before, "the crash window shows duplicates");
    let report = compact(
        &lake,
        &CompactOptions {
            min_age: std::time::Duration::ZERO,
            target_file_bytes: 1, // recover only: nothing counts as small
            row_group_rows: 10_000,
            dry_run: false,
            now_ms: i64::MAX / 2,
        },
    )
    .unwrap();
    assert_eq!(report.recovered, 1);
    assert_eq!(duckdb(&sql), before);
    assert!(!dir.path().join("lake/_compaction/x.json").exists());
}

/// Starts moto's S3 server on loopback and creates `bucket`; returns the endpoint.
pub(super) fn moto_s3_at(bucket: &str, port: u16) -> String {
    moto_s3_on(bucket, port)
}

fn moto_s3(bucket: &str) -> String {
    moto_s3_on(bucket, free_port())
}

/// Starts moto's S3 server on `port` and creates `bucket`; returns the endpoint.
fn moto_s3_on(bucket: &str, port: u16) -> String {
    // `python3 -m moto.server` rather than the `moto_server` script: no PATH or shim needed.
    super::support::start_server(
        "python3",
        &["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()],
        port,
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let script = "import boto3, sys\n\
                  boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', \
                  aws_secret_access_key='test', region_name='us-east-1').create_bucket(Bucket=sys.argv[2])";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &endpoint, bucket])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "create bucket: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    endpoint
}

/// Every table of a lake as sorted JSON rows (partition path included).
pub(super) fn lake_rows(lake: &Lake) -> BTreeMap<String, Vec<String>> {
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, _) in lake.list("").unwrap() {
        let rel = lake.relative(&path);
        if !rel.ends_with(".parquet") || rel.starts_with('_') {
            continue;
        }
        let (dir, _) = rel.rsplit_once('/').unwrap();
        for mut batch in lake.read_parquet(&path).unwrap() {
            // Wall-clock arrival times differ between two runs; everything else must not.
            for wall_clock in ["received_at", "failed_at"] {
                if let Ok(i) = batch.schema().index_of(wall_clock) {
                    batch.remove_column(i);
                }
            }
            let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
            w.write(&batch).unwrap();
            w.finish().unwrap();
            let text = String::from_utf8(w.into_inner()).unwrap();
            tables
                .entry(dir.splitn(3, '/').take(2).collect::<Vec<_>>().join("/"))
                .or_default()
                .extend(text.lines().map(|l| format!("{dir} {l}")));
        }
    }
    for rows in tables.values_mut() {
        rows.sort();
    }
    tables
}

#[test]
fn the_lake_on_s3_holds_the_same_tables_as_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let input = dir.path().join("m.jsonl");
    let mut lines: Vec<serde_json::Value> = simulated(150, 9)
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    let dupes = lines[..5].to_vec();
    lines.extend(dupes);
    write_jsonl(&input, &lines);
    let input = input.display().to_string();
    let endpoint = moto_s3("rift-lake");
    let s3_options = format!(
        "options = {{ endpoint = \"{endpoint}\", allow_http = \"true\", region = \"us-east-1\", access_key_id = \"test\", secret_access_key = \"test\" }}"
    );
    run_bounded(
        &lake_topology(&format!("{d}/local"), &input, &format!("{d}/lake"), ""),
        2,
    );
    run_bounded(
        &lake_topology(&format!("{d}/s3"), &input, "s3://rift-lake/prod", &s3_options),
        2,
    );
    let local = lake_rows(&Lake::open(&format!("{d}/lake")).unwrap());
    let options: BTreeMap<String, String> = [
        ("endpoint", endpoint.as_str()),
        ("allow_http", "true"),
        ("region", "us-east-1"),
        ("access_key_id", "test"),
        ("secret_access_key", "test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let s3 = lake_rows(&Lake::open_with("s3://rift-lake/prod", &options).unwrap());
    assert!(
        local.contains_key("silver/matches") && local.contains_key("gold/champion_stats"),
        "{:?}",
        local.keys()
    );
    assert_eq!(local["silver/matches"].len(), 150, "duplicates removed");
    assert_eq!(local.keys().collect::<Vec<_>>(), s3.keys().collect::<Vec<_>>());
    for (table, rows) in &local {
        assert!(rows == &s3[table], "table {table} differs between local disk and S3");
    }
}

/// The demo's lake, as readers see it: every table has data, and no
/// partition holds more than one file per worker (a bounded run rolls each
/// writer's rows of a partition into one file, and snapshots are one file).
#[test]
fn the_demo_writes_at_most_two_files_per_partition_per_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_riftstream"))
        .args(["demo", "--data-dir", data.to_str().unwrap(), "--workers", "2"])
        .env_remove("RIFT_LOG")
        .output()
        .expect("run the demo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lake = data.join("lake");
    // Files per (table, partition): the partition is the file's directory under its table.
    let mut per_partition: std::collections::BTreeMap<std::path::PathBuf, usize> = Default::default();
    for file in walk(&lake) {
        let rel = file.strip_prefix(&lake).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .to_string();
        if file.extension().is_none_or(|x| x != "parquet") || top.starts_with('_') || top == "models" {
            continue;
        }
        *per_partition.entry(file.parent().unwrap().to_path_buf()).or_default() += 1;
    }
    let tables: std::collections::BTreeSet<String> = per_partition
        .keys()
        .map(|p| {
            let rel = p.strip_prefix(&lake).unwrap();
            rel.components()
                .take(2)
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    for table in [
        "bronze/matches",
        "silver/matches",
        "silver/match_participants",
        "gold/player_features",
        "gold/champion_stats",
        "gold/leaderboard",
        "gold/predictions",
    ] {
        assert!(tables.contains(table), "{table} has no file: {tables:?}");
    }
    let crowded: Vec<_> = per_partition.iter().filter(|(_, n)| **n > 2).collect();
    assert!(crowded.is_empty(), "partitions with more than 2 files: {crowded:?}");
    eprintln!(
        "demo lake: {} files in {} partitions of {} tables",
        per_partition.values().sum::<usize>(),
        per_partition.len(),
        tables.len()
    );
}
