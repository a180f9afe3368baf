//! The command line's errors: each says what is wrong, with the file and
//! key where there is one, and exits with its documented code (usage 2,
//! configuration 3, unreachable service 4, data 5).

use std::path::Path;
use std::process::Command;

/// Runs `riftstream ARGS…` in `dir`; returns (exit code, stderr).
fn riftstream(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_riftstream"))
        .args(args)
        .current_dir(dir)
        .env_remove("RIFT_LOG")
        .output()
        .expect("run riftstream");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_topology_is_a_usage_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = riftstream(dir.path(), &["run", "--topology", "nowhere.toml", "--bounded"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nowhere.toml"), "{err}");
}

#[test]
fn a_topology_that_fails_validation_exits_3_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[sources.m]\nkind = \"file\"\npath = \"m.jsonl\"\nschema = \"matches\"\nsplits = 0\n",
    )
    .unwrap();
    let (code, err) = riftstream(dir.path(), &["run", "--topology", "bad.toml", "--bounded"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("bad.toml: `sources.m.splits`"), "{err}");
}

#[test]
fn a_broken_topology_is_never_replaced_by_defaults() {
    // `models list` once fell back to ./lake when the topology did not parse.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("topology.toml"), "[runtime\nworkers = 2\n").unwrap();
    let (code, err) = riftstream(dir.path(), &["models", "list"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("topology.toml: `line 1`"), "{err}");
    // A topology without a lake sink names what is missing instead of guessing a registry.
    std::fs::write(dir.path().join("topology.toml"), "[runtime]\nworkers = 2\n").unwrap();
    let (code, err) = riftstream(dir.path(), &["models", "list"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("`sinks`"), "{err}");
    let (code, err) = riftstream(dir.path(), &["lake", "compact"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no lake sink"), "{err}");
}

#[test]
fn unreadable_data_exits_5_and_a_missing_data_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.csv"), "gameId,blueWins\nnot,a,row\n").unwrap();
    let registry = dir.path().join("registry").display().to_string();
    let (code, err) = riftstream(
        dir.path(),
        &["train", "live", "--data", "bad.csv", "--registry", &registry],
    );
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("bad.csv"), "{err}");
    let (code, err) = riftstream(
        dir.path(),
        &["train", "live", "--data", "none.csv", "--registry", &registry],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("none.csv"), "{err}");
}

#[test]
fn an_unreachable_broker_exits_4_with_the_address_tried() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing answers Kafka there.
    let (code, err) = riftstream(
        dir.path(),
        &[
            "produce",
            "generator",
            "--brokers",
            "127.0.0.1:9",
            "--encoding",
            "json",
            "--matches",
            "1",
            "--live-games",
            "0",
        ],
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
}

#[test]
fn job_verbs_with_no_cluster_exit_4_naming_the_address_tried() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["jobs", "--admin", "http://127.0.0.1:9"][..],
        &["job", "j-000001", "--admin", "127.0.0.1:9"],
        &["submit", "lake", "--admin", "http://127.0.0.1:9"],
        &["cancel", "j-000001", "--savepoint", "--admin", "http://127.0.0.1:9"],
    ] {
        let (code, err) = riftstream(dir.path(), args);
        assert_eq!(code, 4, "{args:?}: {err}");
        assert!(err.contains("http://127.0.0.1:9/"), "{args:?}: {err}");
    }
}
