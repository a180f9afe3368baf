//! Helpers shared by the integration tests.

use riftstream::config::Topology;
use riftstream::runtime::{self, RunOptions, RunReport};
use std::path::Path;
use std::sync::Arc;

/// Parses a topology, panicking with the error (tests only).
pub fn topology(text: &str) -> Arc<Topology> {
    Arc::new(Topology::parse(text, "test.toml").unwrap_or_else(|e| panic!("{e}")))
}

/// Runs every job of `text` bounded on `workers` workers and checks none failed.
pub fn run_bounded(text: &str, workers: usize) -> RunReport {
    let report = runtime::run(topology(text), RunOptions::bounded(workers))
        .unwrap_or_else(|e| panic!("run failed: {e}"));
    assert!(
        report.failures.is_empty(),
        "job failures: {:?}",
        report.failures
    );
    report
}

/// Every JSON line of every file in `dir` whose name starts with `prefix`.
pub fn read_jsonl(dir: &Path, prefix: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with(prefix) && name.ends_with(".jsonl") {
            for line in std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                out.push(
                    serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("{}: {e}: {line}", p.display())),
                );
            }
        }
    }
    out
}

/// Writes JSON lines.
pub fn write_jsonl(path: &Path, rows: &[serde_json::Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// Runs a DuckDB SQL query through Python and returns its rows as JSON arrays.
/// Panics when DuckDB is unavailable: the test command installs it.
pub fn duckdb(sql: &str) -> Vec<Vec<serde_json::Value>> {
    let script = "import duckdb, json, sys, datetime\n\
                  rows = duckdb.sql(sys.argv[1]).fetchall()\n\
                  print(json.dumps([list(r) for r in rows], default=str))";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(sql)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "duckdb failed on {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("duckdb output")
}

/// 2026-01-01T00:00:00Z in ms: the base of hand-written test times.
pub const BASE: i64 = 1_767_225_600_000;
