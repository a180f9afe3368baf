//! Several worker processes form one timely cluster (`--process I --hosts FILE`)
//! and produce exactly what one process does.

use super::support::{free_port, run_bounded};
use riftstream::generator::RowsConfig;

fn sorted_lines(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(prefix) {
            lines.extend(std::fs::read_to_string(entry.path()).unwrap().lines().map(String::from));
        }
    }
    lines.sort();
    lines
}

/// `rows` generated player-match rows of `players` players in
/// `dir/rows.jsonl`, and the reference windowed job's topology reading them.
pub(super) fn reference_windows_over_rows(dir: &std::path::Path, rows: u64, players: u32) -> String {
    let input = dir.join("rows.jsonl");
    riftstream::demo::write_rows(
        RowsConfig {
            rows,
            players,
            seed: 3,
            ..Default::default()
        },
        &input,
    )
    .unwrap();
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/reference-windows.toml"))
        .unwrap()
        .replace("${RIFT_INPUT}", &input.display().to_string())
}

#[test]
fn two_processes_compute_the_same_windows_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let topology = reference_windows_over_rows(d, 60_000, 500);
    let one = topology
        .replace("${RIFT_OUTPUT}", &d.join("one").display().to_string())
        .replace("${RIFT_STATE:-./state}", &d.join("state-one").display().to_string())
        .replace("${RIFT_STATE}", &d.join("state-one").display().to_string());
    run_bounded(&one, 2);

    let cluster_topology = d.join("cluster.toml");
    std::fs::write(
        &cluster_topology,
        topology
            .replace("${RIFT_OUTPUT}", &d.join("two").display().to_string())
            .replace("${RIFT_STATE:-./state}", "${RIFT_STATE}"),
    )
    .unwrap();
    let hosts = d.join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    let processes: Vec<std::process::Child> = (0..2)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_riftstream"))
                .args(["run", "--bounded", "--workers", "1", "--process", &i.to_string()])
                .arg("--topology")
                .arg(&cluster_topology)
                .arg("--hosts")
                .arg(&hosts)
                .env("RIFT_STATE", d.join(format!("state-{i}")))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for p in processes {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    for set in ["tumbling", "sliding", "late_events"] {
        let a = sorted_lines(&d.join("one"), set);
        let b = sorted_lines(&d.join("two"), set);
        assert_eq!(a.len(), b.len(), "{set}");
        assert!(a == b, "{set}: the cluster's windows differ from one process's");
        if set != "late_events" {
            assert!(!a.is_empty(), "{set}");
        }
    }
}
