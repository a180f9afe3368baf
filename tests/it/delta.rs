//! Delta Lake tables (`format = "delta"`), read back by the `deltalake`
//! Python package and compared, table by table, with the same runs into a
//! plain Parquet lake.

use super::lake_tools::simulated;
use super::support::{run_bounded, write_jsonl};
use std::collections::BTreeMap;

/// The lake job of `lake_topology`, its state under `{dir}/state`.
fn topology(dir: &str, input: &str, root: &str, lake_options: &str) -> String {
    super::lake_tools::lake_topology(dir, input, root, lake_options)
}

/// For each table: the Delta table read by `deltalake` against the Parquet
/// lake read by DuckDB (rows differing either way, as text), its live files
/// per partition, its history, and the rows either side of its first compaction.
const READ_BACK: &str = r#"
import sys, json, duckdb
import pyarrow as pa
from deltalake import DeltaTable
delta_root, parquet_root, tables, app = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
storage = json.loads(sys.argv[5])
wall_clock = {"received_at", "failed_at"}
out = {}
for table in tables:
    dt = DeltaTable(f"{delta_root}/{table}", storage_options=storage)
    d = dt.to_pyarrow_table()
    p = duckdb.sql(f"select * from read_parquet('{parquet_root}/{table}/**/*.parquet', hive_partitioning=1, hive_types_autocast=0)").arrow()
    p = p.read_all() if hasattr(p, "read_all") else p
    cols = sorted(c for c in d.column_names if c not in wall_clock)
    assert sorted(c for c in p.column_names if c not in wall_clock) == cols, (table, cols, p.column_names)
    sel = ", ".join(f'cast("{c}" as varchar) as "{c}"' for c in cols)
    differing = duckdb.sql(f"select count(*) from ((select {sel} from d except all select {sel} from p) union all (select {sel} from p except all select {sel} from d))").fetchall()[0][0]
    per_partition = {}
    for a in pa.table(dt.get_add_actions(flatten=True)).to_pylist():
        key = a["path"].rsplit("/", 1)[0]
        per_partition[key] = per_partition.get(key, 0) + 1
    history = dt.history()
    optimized = sorted(h["version"] for h in history if h["operation"] == "OPTIMIZE")
    around = None
    if optimized:
        v = optimized[0]
        around = [DeltaTable(f"{delta_root}/{table}", version=x, storage_options=storage).to_pyarrow_table().num_rows for x in (v - 1, v)]
    out[table] = {
        "rows": d.num_rows,
        "parquet_rows": p.num_rows,
        "differing": differing,
        "max_files_per_partition": max(per_partition.values(), default=0),
        "operations": sorted({h["operation"] for h in history}),
        "around_first_compaction": around,
        "txn_w000": dt.transaction_version(app),
    }
print(json.dumps(out))
"#;

/// `n` simulated matches as JSON, then the first 4 again (duplicates for silver to drop).
fn matches_with_duplicates(n: usize, seed: u64) -> Vec<serde_json::Value> {
    let mut lines: Vec<serde_json::Value> = simulated(n, seed)
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    let dupes = lines[..4].to_vec();
    lines.extend(dupes);
    lines
}

#[test]
fn delta_tables_hold_the_parquet_lake_rows_and_are_compacted_atomically_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // Two runs over interleaved halves: every partition gets files from
    // both runs and both workers, so there is something to compact.
    let lines = matches_with_duplicates(240, 21);
    let halves: Vec<String> = (0..2)
        .map(|h| {
            let p = dir.path().join(format!("half{h}.jsonl"));
            let part: Vec<_> = lines.iter().skip(h).step_by(2).cloned().collect();
            write_jsonl(&p, &part);
            p.display().to_string()
        })
        .collect();
    let (parquet_root, delta_root) = (format!("{d}/parquet"), format!("{d}/delta"));
    let delta_options = "format = \"delta\"\ncompact_interval = \"1h\"";
    let mut delta_report = None;
    for half in &halves {
        run_bounded(&topology(&format!("{d}/p"), half, &parquet_root, ""), 2);
        delta_report = Some(run_bounded(
            &topology(&format!("{d}/d"), half, &delta_root, delta_options),
            2,
        ));
    }
    let metrics = delta_report.and_then(|r| r.metrics).expect("metrics");
    let compacted = metrics.counter_sum("lake_compacted_files_total", "job", "lake");
    assert!(compacted > 0, "background compaction merged nothing");

    // Bronze tables are named after the file source's file.
    let tables = [
        "bronze/half0",
        "bronze/half1",
        "silver/matches",
        "silver/match_participants",
        "gold/champion_stats",
        "gold/player_daily",
    ];
    for t in tables {
        assert!(
            dir.path().join("delta").join(t).join("_delta_log").is_dir(),
            "{t} is not a Delta table"
        );
    }
    let report = read_back(&delta_root, &parquet_root, &tables, "lake-participants-w000");
    for (table, r) in &report {
        assert!(r["rows"].as_u64().unwrap() > 0, "{table}: empty: {r}");
        assert_eq!(r["rows"], r["parquet_rows"], "{table}: {r}");
        assert_eq!(r["differing"], 0, "{table}: Delta and Parquet rows differ: {r}");
        assert!(
            r["max_files_per_partition"].as_u64().unwrap() <= 2,
            "{table}: too many live files: {r}"
        );
    }
    assert_eq!(report["silver/matches"]["rows"], 240, "duplicates removed once");
    // Appends are streaming updates carrying the writer's txn; compaction is
    // one OPTIMIZE commit that changes no rows, and the version before it
    // stays readable (time travel).
    let silver = &report["silver/match_participants"];
    let ops: Vec<&str> = silver["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        ops.contains(&"STREAMING UPDATE") && ops.contains(&"OPTIMIZE"),
        "{silver}"
    );
    let around = silver["around_first_compaction"].as_array().unwrap();
    assert_eq!(around[0], around[1], "compaction changed rows: {silver}");
    assert!(silver["txn_w000"].as_u64().is_some(), "no txn version: {silver}");
    // Files removed by compaction stay on disk for older versions.
    let on_disk = walk_parquet(&dir.path().join("delta/silver/match_participants"));
    assert!(on_disk > report_live_files(&delta_root, "silver/match_participants"));
}

fn walk_parquet(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += walk_parquet(&p);
        } else if p.extension().is_some_and(|x| x == "parquet") && !p.to_string_lossy().contains("_delta_log") {
            n += 1;
        }
    }
    n
}

fn report_live_files(root: &str, table: &str) -> usize {
    let lake = riftstream::lake::Lake::open(root).unwrap();
    riftstream::lake::delta::live_files(&lake, table).unwrap().len()
}

/// Reads `tables` of the Delta lake `delta_root` back with `deltalake` and
/// compares them with the Parquet lake `parquet_root` (see [`READ_BACK`]).
fn read_back(delta_root: &str, parquet_root: &str, tables: &[&str], app: &str) -> BTreeMap<String, serde_json::Value> {
    read_back_with(delta_root, parquet_root, tables, app, &BTreeMap::new())
}

/// [`read_back`] with `deltalake` storage options (an S3 endpoint and keys).
fn read_back_with(
    delta_root: &str,
    parquet_root: &str,
    tables: &[&str],
    app: &str,
    storage: &BTreeMap<&str, &str>,
) -> BTreeMap<String, serde_json::Value> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            READ_BACK,
            delta_root,
            parquet_root,
            &serde_json::to_string(tables).unwrap(),
            app,
            &serde_json::to_string(storage).unwrap(),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "deltalake read-back failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A crash right after a roll's Delta commit (before the writer forgets the
/// roll), then a crash after a compaction wrote its merged file (before its
/// commit), each shown to have happened: the restarts redo the roll, whose
/// commit the table's `txn` already holds, and the compaction, and the
/// tables end with exactly the rows of an uncrashed run into a Parquet lake.
#[cfg(feature = "failpoints")]
#[test]
fn crashes_around_delta_commits_then_restarts_leave_every_row_once() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let lines = matches_with_duplicates(240, 33);
    let input = dir.path().join("m.jsonl");
    write_jsonl(&input, &lines);
    let input = input.display().to_string();
    let (parquet_root, delta_root) = (format!("{d}/parquet"), format!("{d}/delta"));
    run_bounded(&topology(&format!("{d}/p"), &input, &parquet_root, ""), 2);
    let topology_file = dir.path().join("delta.toml");
    std::fs::write(
        &topology_file,
        topology(
            &format!("{d}/d"),
            &input,
            &delta_root,
            "format = \"delta\"\ncompact_interval = \"1h\"",
        ),
    )
    .unwrap();
    let run = |failpoints: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_riftstream"));
        cmd.args(["run", "--bounded", "--workers", "2", "--topology"])
            .arg(&topology_file)
            .stdout(std::process::Stdio::null());
        if let Some(f) = failpoints {
            cmd.env("FAILPOINTS", f);
        }
        cmd.output().unwrap()
    };
    for (point, spec) in [
        ("lake-delta-committed", "lake-delta-committed=1*off->return"),
        ("delta-compaction-written", "delta-compaction-written=return"),
    ] {
        let out = run(Some(spec));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.signal() == Some(libc::SIGABRT) && stderr.contains(&format!("crash point {point}")),
            "no crash at {point}: {:?}\n{stderr}",
            out.status
        );
    }
    let out = run(None);
    assert!(
        out.status.success(),
        "final run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = [
        "bronze/m",
        "silver/matches",
        "silver/match_participants",
        "gold/player_daily",
    ];
    for (table, r) in read_back(&delta_root, &parquet_root, &tables, "lake-participants-w000") {
        assert!(r["rows"].as_u64().unwrap() > 0, "{table}: empty: {r}");
        assert_eq!(r["rows"], r["parquet_rows"], "{table}: {r}");
        assert_eq!(r["differing"], 0, "{table}: rows differ after the crashes: {r}");
        assert!(r["max_files_per_partition"].as_u64().unwrap() <= 2, "{table}: {r}");
    }
}

/// The `txn` guard on its own: an append of a version the table already
/// holds for that writer is skipped, whatever files it names; the next
/// version and other writers are committed.
#[test]
fn an_append_of_a_version_the_table_holds_is_skipped() {
    use arrow::datatypes::{DataType, Field, Schema};
    use riftstream::lake::delta::{append, live_files, DataFile};
    let dir = tempfile::tempdir().unwrap();
    let lake = riftstream::lake::Lake::open(&dir.path().display().to_string()).unwrap();
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let file = |name: &str| DataFile {
        path: format!("date=2026-01-01/{name}"),
        partition: "date=2026-01-01".into(),
        size: 100,
        rows: 1,
    };
    let live = || live_files(&lake, "silver/t").unwrap().len();
    assert!(append(&lake, "silver/t", &schema, &[file("a")], "w-0", 7).unwrap());
    assert!(!append(&lake, "silver/t", &schema, &[file("b")], "w-0", 7).unwrap());
    assert!(!append(&lake, "silver/t", &schema, &[file("c")], "w-0", 6).unwrap());
    assert_eq!(live(), 1, "a held version added files");
    assert!(append(&lake, "silver/t", &schema, &[file("d")], "w-0", 8).unwrap());
    assert!(append(&lake, "silver/t", &schema, &[file("e")], "w-1", 7).unwrap());
    assert_eq!(live(), 3);
}

/// The same Delta lake on S3 (moto in server mode): commits go through S3's
/// conditional writes, and `deltalake` reads back exactly the rows of a
/// local Parquet lake.
#[test]
fn delta_tables_on_s3_hold_the_parquet_lake_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let lines: Vec<serde_json::Value> = simulated(150, 9)
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    let input = dir.path().join("m.jsonl");
    write_jsonl(&input, &lines);
    let input = input.display().to_string();
    let endpoint = super::lake_tools::moto_s3_at("rift-delta", super::support::free_port());
    let options = format!(
        "format = \"delta\"\noptions = {{ endpoint = \"{endpoint}\", allow_http = \"true\", region = \"us-east-1\", access_key_id = \"test\", secret_access_key = \"test\" }}"
    );
    let parquet_root = format!("{d}/parquet");
    run_bounded(&topology(&format!("{d}/p"), &input, &parquet_root, ""), 2);
    run_bounded(
        &topology(&format!("{d}/d"), &input, "s3://rift-delta/prod", &options),
        2,
    );
    let storage: BTreeMap<&str, &str> = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
    .into_iter()
    .collect();
    let tables = [
        "bronze/m",
        "silver/matches",
        "silver/match_participants",
        "gold/champion_stats",
    ];
    let report = read_back_with(
        "s3://rift-delta/prod",
        &parquet_root,
        &tables,
        "lake-participants-w000",
        &storage,
    );
    assert_eq!(report.len(), tables.len());
    for (table, r) in report {
        assert!(r["rows"].as_u64().unwrap() > 0, "{table}: empty: {r}");
        assert_eq!(r["differing"], 0, "{table}: rows differ: {r}");
        assert_eq!(r["rows"], r["parquet_rows"], "{table}: {r}");
    }
}
