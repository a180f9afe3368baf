//! Faults with no crash: the Kafka broker or the object store holding the
//! lake unreachable for 10 s in the middle of a run (a loopback TCP proxy
//! in front of Tansu or moto stops forwarding). The job waits and retries,
//! then finishes with the output of a run without the outage.

use super::lake_tools::{lake_rows, moto_s3_at};
use super::recovery::{assert_same_output, file_sources, kafka_dir, kafka_input_at, run, start};
use super::support::{free_port, kafka_behind_proxy};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A TCP proxy to `target` on `port` that can stop forwarding: while down it
/// closes every open connection and every new one at once (and counts them).
struct Proxy {
    up: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(port: u16, target: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("proxy port");
        let proxy = Proxy {
            up: Arc::new(AtomicBool::new(true)),
            refused: Arc::new(AtomicUsize::new(0)),
            open: Arc::new(Mutex::new(Vec::new())),
        };
        let (up, refused, open) = (proxy.up.clone(), proxy.refused.clone(), proxy.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !up.load(Ordering::SeqCst) {
                    refused.fetch_add(1, Ordering::SeqCst);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    open.lock().unwrap().extend([c, s]);
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 64 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        proxy
    }

    /// Stops forwarding: open connections are cut, new ones closed at once.
    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Waits for the first checkpoint of `running`, cuts `proxy` for 10 s, and
/// waits for the run to finish; asserts the outage was felt.
fn outage_mid_run(running: &mut super::recovery::Started, proxy: &Proxy) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while running.checkpoints.recv_timeout(Duration::from_millis(50)).is_err() {
        assert!(!running.exited(), "the run ended before its first checkpoint");
        assert!(Instant::now() < deadline, "no checkpoint within 120 s");
    }
    assert!(!running.exited(), "the run ended before the outage");
    proxy.down();
    // The outage lasts 10 s (this wait is the fault, not a synchronization), and
    // then until the run has tried to reach the service (a run that ends must).
    std::thread::sleep(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.refused.load(Ordering::SeqCst) == 0 {
        assert!(!running.exited(), "the run ended without trying to reach the service");
        assert!(
            Instant::now() < deadline,
            "the run did not try to reach the service within 130 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.up();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !running.exited() {
        assert!(
            Instant::now() < deadline,
            "the run did not finish within 180 s of the outage"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_object_store_unreachable_for_ten_seconds_mid_run_changes_no_lake_row() {
    let (moto_port, proxy_port) = (free_port(), free_port());
    moto_s3_at("outage", moto_port);
    let proxy = Proxy::start(proxy_port, moto_port);
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("in");
    riftstream::demo::write_simulation(
        &riftstream::generator::GeneratorConfig {
            players: 1_200,
            matches: 15_000,
            live_games: 30,
            days: 20,
            seed: 31,
            ..Default::default()
        },
        &input,
    )
    .unwrap();
    let options: std::collections::BTreeMap<String, String> = [
        ("endpoint", format!("http://127.0.0.1:{proxy_port}")),
        ("allow_http", "true".into()),
        ("region", "us-east-1".into()),
        ("access_key_id", "test".into()),
        ("secret_access_key", "test".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let inline: Vec<String> = options.iter().map(|(k, v)| format!("{k} = \"{v}\"")).collect();
    let topology = |dir: &std::path::Path, root: &str| {
        std::fs::create_dir_all(dir).unwrap();
        let text = format!(
            "[runtime]\nworkers = 2\nstate_dir = \"{}/state\"\ncheckpoint_interval = \"200ms\"\n{}\n\
             [sinks.lake]\nkind = \"lake\"\nroot = \"{root}\"\nroll_interval = \"1s\"\noptions = {{ {} }}\n\
             [jobs.lake]\nkind = \"lake\"\nsources = [\"matches\", \"player_stats\", \"game_events\"]\nlake = \"lake\"\n",
            dir.display(),
            file_sources(&input),
            inline.join(", ")
        );
        std::fs::write(dir.join("topology.toml"), text).unwrap();
    };
    let (reference, cut) = (root.path().join("reference"), root.path().join("cut"));
    topology(&reference, "s3://outage/reference");
    topology(&cut, "s3://outage/cut");
    let status = run(&reference).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "reference run: {status:?}");
    let mut running = start(run(&cut));
    outage_mid_run(&mut running, &proxy);
    let open = |root: &str| lake_rows(&riftstream::lake::Lake::open_with(root, &options).unwrap());
    let (want, got) = (open("s3://outage/reference"), open("s3://outage/cut"));
    assert!(want.contains_key("silver/matches") && want.contains_key("gold/champion_stats"));
    assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>());
    for (table, rows) in &want {
        assert!(rows == &got[table], "{table} differs after the outage");
    }
}

#[test]
fn the_broker_unreachable_for_ten_seconds_mid_run_changes_no_output() {
    let (broker_port, proxy_port) = (free_port(), free_port());
    let proxy = Proxy::start(proxy_port, broker_port);
    let brokers = kafka_behind_proxy(broker_port, proxy_port);
    let sources = kafka_input_at(&brokers, "outage.");
    let root = tempfile::tempdir().unwrap();
    let (reference, cut) = (root.path().join("reference"), root.path().join("cut"));
    kafka_dir(&reference, &brokers, "", &sources);
    kafka_dir(&cut, &brokers, "", &sources);
    let status = run(&reference).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "reference run: {status:?}");

    let mut running = start(run(&cut));
    outage_mid_run(&mut running, &proxy);
    let log = running.log();
    for line in log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("finished"))
    {
        eprintln!("{line}");
    }
    assert_same_output(&reference, &cut, "the broker unreachable for 10 s");
}
