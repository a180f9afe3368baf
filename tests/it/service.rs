//! Long-running workers and job control: a cluster accepts, lists and
//! cancels jobs from the CLI; cancelled and stopped jobs resume from their
//! checkpoints with the output of runs that were never interrupted; a lost
//! process stops the cluster instead of hanging it; the status page shows
//! live rates in a real browser (headless Chromium).

use super::recovery::{
    assert_same_lake, assert_same_output, kafka_dir, kafka_input, records_read, run, run_unbounded, start, Started,
};
use super::support::{free_port, kafka, wait_until};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `riftstream ARGS --admin ADMIN`: (exit code, stdout, stderr).
fn cli(admin: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_riftstream"))
        .args(args)
        .args(["--admin", admin])
        .env_remove("RIFT_ADMIN_TOKEN")
        .output()
        .expect("run riftstream");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `riftstream job ID --json`, once the cluster answers.
fn job(admin: &str, id: &str) -> Option<Value> {
    let (code, out, _) = cli(admin, &["job", id, "--json"]);
    (code == 0).then(|| serde_json::from_str(&out).expect("JSON"))
}

/// Waits until job `id` is in one of `states`; returns the state.
fn wait_for_state(admin: &str, id: &str, states: &[&str], timeout: Duration) -> String {
    wait_until(timeout, &format!("job {id} becomes one of {states:?}"), || {
        let state = job(admin, id)?["state"].as_str()?.to_string();
        states.contains(&state.as_str()).then_some(state)
    })
}

/// Adds `admin_addr` (and `extra`) to the `[runtime]` of `dir`'s topology; the state
/// directory comes from `RIFT_STATE` (each process of a cluster has its own).
fn as_cluster(dir: &Path, port: u16, extra: &str) {
    let file = dir.join("topology.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let state = format!("state_dir = \"{}/state\"", dir.display());
    assert!(text.contains(&state), "the topology names its state directory");
    let text = text.replace(
        &state,
        &format!("state_dir = \"${{RIFT_STATE}}\"\nadmin_addr = \"127.0.0.1:{port}\"\n{extra}"),
    );
    std::fs::write(file, text).unwrap();
}

/// A hosts file for two processes on loopback.
fn hosts(dir: &Path) -> PathBuf {
    let path = dir.join("hosts");
    std::fs::write(&path, format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port())).unwrap();
    path
}

/// Process `i` of the two-process cluster of `dir`, one worker each.
fn process(dir: &Path, hosts: &Path, i: usize, args: &[&str]) -> Command {
    let mut cmd = run_unbounded(dir);
    cmd.args(["--workers", "1", "--process", &i.to_string(), "--hosts"])
        .arg(hosts)
        .args(args)
        .env("RIFT_STATE", dir.join(format!("state-{i}")));
    cmd
}

fn start_cluster(dir: &Path, hosts: &Path, args: &[&str]) -> Vec<Started> {
    (0..2).map(|i| start(process(dir, hosts, i, args))).collect()
}

/// Waits for every process to exit successfully.
fn all_succeed(processes: Vec<Started>, what: &str) {
    for (i, p) in processes.into_iter().enumerate() {
        let (status, stderr) = p.wait(Duration::from_secs(120));
        assert!(status.success(), "{what}: process {i}: {status:?}\n{stderr}");
    }
}

/// A bounded run of the lake job alone over `dir`'s topology; returns the records read.
fn lake_reference(dir: &Path) -> u64 {
    let out = run(dir).args(["--job", "lake"]).output().unwrap();
    assert!(out.status.success(), "reference run: {:?}", out.status);
    records_read(&String::from_utf8_lossy(&out.stderr))
}

/// A cluster of two processes on loopback takes jobs from the CLI (one of
/// the topology's, one from a job file), lists them, rejects what it must
/// with the documented exit codes, and cancels one job; the other job's
/// output is that of a run on its own. Figures come from both processes.
#[test]
fn a_two_process_cluster_runs_submitted_jobs_and_cancelling_one_leaves_the_other_unaffected() {
    let sources = kafka_input("service.");
    let root = tempfile::tempdir().unwrap();
    let (reference, cluster) = (root.path().join("reference"), root.path().join("cluster"));
    kafka_dir(&reference, kafka(), "", &sources);
    let total = lake_reference(&reference);

    let port = free_port();
    let admin = format!("http://127.0.0.1:{port}");
    kafka_dir(&cluster, kafka(), "", &sources);
    as_cluster(&cluster, port, "");
    let daily = cluster.join("daily.toml");
    std::fs::write(
        &daily,
        format!(
            "[sinks.daily_out]\nkind = \"file\"\npath = \"{}/daily_out\"\n\
             [jobs.daily]\nkind = \"player_features\"\nfeature_sets = [\"daily\"]\noutput = \"daily_out\"\n",
            cluster.display()
        ),
    )
    .unwrap();
    let bad = cluster.join("bad.toml");
    std::fs::write(
        &bad,
        "[jobs.bad]\nkind = \"lake\"\nsources = [\"nowhere\"]\nlake = \"lake\"\n",
    )
    .unwrap();
    let hosts = hosts(&cluster);
    let processes = start_cluster(&cluster, &hosts, &["--no-topology-jobs"]);
    wait_until(Duration::from_secs(60), "the admin API answers", || {
        (cli(&admin, &["jobs"]).0 == 0).then_some(())
    });

    let (code, out, err) = cli(&admin, &["submit", "lake"]);
    assert!(
        code == 0 && out.contains("submitted lake as j-000001"),
        "{code}: {out}{err}"
    );
    let (code, out, err) = cli(&admin, &["submit", daily.to_str().unwrap()]);
    assert!(
        code == 0 && out.contains("submitted daily as j-000002"),
        "{code}: {out}{err}"
    );
    // What the cluster refuses, each with its exit code and a message that says why.
    let (code, _, err) = cli(&admin, &["submit", "lake"]);
    assert!(
        code == 7 && err.contains("`lake` is already"),
        "a name already running: {code}: {err}"
    );
    let (code, _, err) = cli(&admin, &["submit", bad.to_str().unwrap()]);
    assert!(
        code == 3 && err.contains("bad.toml") && err.contains("jobs.bad.sources"),
        "an invalid job file: {code}: {err}"
    );
    for verb in [&["job", "j-000404"][..], &["cancel", "j-000404"]] {
        let (code, _, err) = cli(&admin, verb);
        assert!(
            code == 6 && err.contains("j-000404"),
            "{verb:?}: an unknown id: {code}: {err}"
        );
    }

    // Both jobs run on both processes: the lake job's records are counted on each.
    wait_until(Duration::from_secs(120), "the lake job reads every record", || {
        let j = job(&admin, "j-000001")?;
        (j["state"] == "running" && j["records_in"].as_u64()? >= total).then_some(())
    });
    assert_eq!(job(&admin, "j-000001").unwrap()["records_in"].as_u64(), Some(total));
    wait_for_state(&admin, "j-000002", &["running"], Duration::from_secs(30));
    let (code, table, _) = cli(&admin, &["jobs"]);
    assert_eq!(code, 0);
    let row = |id: &str| {
        table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row("j-000001").contains("lake") && row("j-000001").contains("running"),
        "{table}"
    );
    assert!(
        row("j-000002").contains("daily") && row("j-000002").contains("running"),
        "{table}"
    );

    let (code, out, err) = cli(&admin, &["cancel", "j-000002"]);
    assert!(code == 0 && out.contains("cancelling"), "{code}: {out}{err}");
    wait_for_state(&admin, "j-000002", &["cancelled"], Duration::from_secs(30));
    assert_eq!(
        job(&admin, "j-000001").unwrap()["state"],
        "running",
        "the other job runs on"
    );

    // A signal to one process stops the whole cluster, each job with a final checkpoint.
    let mut processes = processes.into_iter();
    let first = processes.next().unwrap();
    let (status, stderr) = first.signal(libc::SIGTERM);
    assert!(status.success(), "process 0 stops cleanly: {status:?}\n{stderr}");
    all_succeed(processes.collect(), "process 1 stops with it");
    // The lake job finishes on the same two processes: its output is that of a run on its own.
    all_succeed(
        start_cluster(&cluster, &hosts, &["--bounded", "--job", "lake"]),
        "the bounded finish",
    );
    assert_same_lake(
        &reference,
        &cluster,
        false,
        "a cluster that ran and cancelled another job",
    );
}

/// Jobs submitted to a running worker produce what the same jobs started
/// from the topology do, and a job cancelled with a savepoint and submitted
/// again continues where it stopped (reading nothing twice), with the
/// output of an uninterrupted run.
#[test]
fn submitted_jobs_and_a_savepoint_resumed_give_the_output_of_an_uninterrupted_run() {
    let sources = kafka_input("service-savepoint.");
    let root = tempfile::tempdir().unwrap();
    let (reference, service) = (root.path().join("reference"), root.path().join("service"));
    kafka_dir(&reference, kafka(), "", &sources);
    let out = run(&reference).output().unwrap();
    assert!(out.status.success(), "reference run: {:?}", out.status);
    let total = records_read(&String::from_utf8_lossy(&out.stderr));

    let port = free_port();
    let admin = format!("http://127.0.0.1:{port}");
    kafka_dir(
        &service,
        kafka(),
        &format!("admin_addr = \"127.0.0.1:{port}\""),
        &sources,
    );
    let running = start({
        let mut cmd = run_unbounded(&service);
        cmd.arg("--no-topology-jobs");
        cmd
    });
    wait_until(Duration::from_secs(60), "the admin API answers", || {
        (cli(&admin, &["jobs"]).0 == 0).then_some(())
    });
    for (name, id) in [
        ("lake", "j-000001"),
        ("player_features", "j-000002"),
        ("predictions", "j-000003"),
    ] {
        let (code, out, err) = cli(&admin, &["submit", name]);
        assert!(
            code == 0 && out.contains(&format!("as {id}")),
            "{name}: {code}: {out}{err}"
        );
    }
    // Cancel the lake job with a savepoint once it has checkpointed part of its input.
    wait_until(Duration::from_secs(60), "the lake job checkpoints", || {
        let j = job(&admin, "j-000001")?;
        (j["last_checkpoint"].is_u64() && j["records_in"].as_u64()? > 0).then_some(())
    });
    let (code, out, err) = cli(&admin, &["cancel", "j-000001", "--savepoint"]);
    assert!(code == 0 && out.contains("savepoint"), "{code}: {out}{err}");
    wait_for_state(&admin, "j-000001", &["cancelled"], Duration::from_secs(60));
    let (code, out, err) = cli(&admin, &["submit", "lake"]);
    assert!(
        code == 0 && out.contains("as j-000004"),
        "resubmitted: {code}: {out}{err}"
    );
    // `total` counts every job's reads. Records are counted per job name: both runs of
    // the lake job together read each of its records once.
    wait_until(Duration::from_secs(120), "the jobs read everything", || {
        let mut read = 0;
        for id in ["j-000002", "j-000003", "j-000004"] {
            read += job(&admin, id)?["records_in"].as_u64()?;
        }
        (read >= total).then_some(())
    });
    let (status, stderr) = running.signal(libc::SIGTERM);
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(stderr.contains("cancelled with a savepoint"), "{stderr}");
    // The jobs finish what the stop left in their state (windows, waiting records).
    let out = run(&service).output().unwrap();
    assert!(out.status.success(), "the bounded finish: {:?}", out.status);
    assert_eq!(
        records_read(&String::from_utf8_lossy(&out.stderr)),
        0,
        "nothing is read again"
    );
    assert_same_output(
        &reference,
        &service,
        "submitted at runtime, the lake job through a savepoint",
    );
}

/// `kill -9` of one process of a running cluster makes the other stop at
/// once with a clear error (exit 4), not hang; the cluster started again
/// resumes its jobs from the catalog and their checkpoints, with the output
/// of a run that was never interrupted.
#[test]
fn a_killed_process_stops_the_cluster_and_the_restarted_cluster_resumes_its_jobs() {
    let sources = kafka_input("service-kill.");
    let root = tempfile::tempdir().unwrap();
    let (reference, cluster) = (root.path().join("reference"), root.path().join("cluster"));
    kafka_dir(&reference, kafka(), "", &sources);
    lake_reference(&reference);
    let port = free_port();
    let admin = format!("http://127.0.0.1:{port}");
    kafka_dir(&cluster, kafka(), "", &sources);
    as_cluster(&cluster, port, "");
    let hosts = hosts(&cluster);

    let mut processes = start_cluster(&cluster, &hosts, &["--job", "lake"]).into_iter();
    let (first, second) = (processes.next().unwrap(), processes.next().unwrap());
    wait_until(Duration::from_secs(90), "a checkpoint of the lake job", || {
        job(&admin, "j-000001")?["last_checkpoint"].as_u64()
    });
    let (status, _) = second.signal(libc::SIGKILL);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "process 1 was killed"
    );
    let (status, stderr) = first.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(4), "process 0 stops with exit 4: {stderr}");
    assert!(stderr.contains("lost the connection to another process"), "{stderr}");

    // Started again, the cluster resumes the catalog's job (same id) from its checkpoint.
    let processes = start_cluster(&cluster, &hosts, &[]);
    wait_for_state(&admin, "j-000001", &["running"], Duration::from_secs(60));
    let (code, out, _) = cli(&admin, &["jobs", "--json"]);
    let jobs: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!((code, jobs.len()), (0, 1), "the catalog's one job, resumed: {out}");
    let mut processes = processes.into_iter();
    let first = processes.next().unwrap();
    let (status, stderr) = first.signal(libc::SIGTERM);
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(
        stderr.contains("restored"),
        "the job restored its checkpoint:\n{stderr}"
    );
    all_succeed(processes.collect(), "process 1 stops with the cluster");
    all_succeed(
        start_cluster(&cluster, &hosts, &["--bounded", "--job", "lake"]),
        "the bounded finish",
    );
    assert_same_lake(&reference, &cluster, false, "a process killed, the cluster restarted");
}

/// Two processes given the same state directory: the second cannot open
/// it and says so (exit 3); the first, whose peer never connects, gives up
/// after `connect_timeout` (exit 4). Neither hangs.
#[test]
fn two_processes_with_one_state_directory_fail_fast_with_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let topology = super::cluster::reference_windows_over_rows(dir, 1_000, 50)
        .replace("${RIFT_OUTPUT}", &dir.join("out").display().to_string())
        .replace("[runtime]\n", "[runtime]\nconnect_timeout = \"5s\"\n");
    assert!(topology.contains("connect_timeout"));
    std::fs::write(dir.join("topology.toml"), topology).unwrap();
    let hosts = hosts(dir);
    let shared = |i: usize| {
        let mut cmd = process(dir, &hosts, i, &["--bounded"]);
        cmd.env("RIFT_STATE", dir.join("shared"));
        cmd
    };
    let one = start(shared(0));
    // The first holds the directory before the second starts.
    wait_until(Duration::from_secs(30), "the first process opens its state", || {
        dir.join("shared/checkpoints/LOCK").exists().then_some(())
    });
    let two = start(shared(1));
    let (status, stderr) = two.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("runtime.state_dir") && stderr.contains("another process"),
        "{stderr}"
    );
    let (status, stderr) = one.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("did not form"), "{stderr}");
}

/// The status page, loaded by headless Chromium while a job reads a topic
/// being produced to, shows the job's row with a rate above zero. With
/// `RIFT_SCREENSHOT=path`, the browser also saves a screenshot (the README's).
#[test]
fn the_status_page_shows_a_running_job_with_its_rate_in_a_real_browser() {
    use riftstream::config::{Encoding, KafkaConfig};
    let prefix = "service-page.";
    let target = riftstream::produce::ProduceTarget {
        kafka: KafkaConfig {
            brokers: kafka().to_string(),
            schema_registry: None,
            group_id: "page-producer".into(),
            properties: Default::default(),
        },
        encoding: Encoding::Json,
        partitions: 3,
        topic_prefix: prefix.to_string(),
        rate: Some(150.0),
    };
    // Every topic exists before the job starts; then produced while it runs: about 30 s
    // of matches at 150 records/s.
    let topics: Vec<String> = ["matches", "player_stats", "game_events"]
        .iter()
        .map(|t| format!("{prefix}esports.{t}"))
        .collect();
    riftstream::kafka::ensure_topics(
        &target.kafka,
        &topics.iter().map(|t| (t.as_str(), 3)).collect::<Vec<_>>(),
    )
    .expect("topics created");
    let producer = std::thread::spawn(move || {
        riftstream::produce::produce_simulation(
            &target,
            &riftstream::generator::GeneratorConfig {
                players: 400,
                matches: 4_500,
                live_games: 0,
                days: 5,
                seed: 31,
                ..Default::default()
            },
        )
    });
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("page");
    let source = |name: &str| {
        format!("[sources.{name}]\nkind = \"kafka\"\ntopic = \"{prefix}esports.{name}\"\nschema = \"{name}\"\nencoding = \"json\"\n")
    };
    let port = free_port();
    kafka_dir(
        &dir,
        kafka(),
        &format!("admin_addr = \"127.0.0.1:{port}\""),
        &format!(
            "{}{}{}",
            source("matches"),
            source("player_stats"),
            source("game_events")
        ),
    );
    let running = start({
        let mut cmd = run_unbounded(&dir);
        cmd.args(["--job", "lake"]);
        cmd
    });
    let admin = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(90), "the lake job reads at a rate", || {
        (job(&admin, "j-000001")?["records_in_per_s"].as_f64()? > 0.0).then_some(())
    });
    let url = format!("{admin}/");
    let browser = |extra: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=6000",
            ])
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium (Debian's `chromium` package) is installed")
    };
    let dom = wait_until(Duration::from_secs(60), "the page shows the job's rate", || {
        let out = browser(&["--dump-dom"]);
        let dom = String::from_utf8_lossy(&out.stdout).to_string();
        let row = dom
            .split("<tr")
            .find(|r| r.contains("data-job-name=\"lake\""))?
            .to_string();
        let rate: f64 = row.split("in-rate\">").nth(1)?.split('<').next()?.trim().parse().ok()?;
        (rate > 0.0).then_some(dom)
    });
    assert!(dom.contains("j-000001") && dom.contains("running"), "{dom}");
    if let Ok(path) = std::env::var("RIFT_SCREENSHOT") {
        let out = browser(&["--window-size=1100,420", &format!("--screenshot={path}")]);
        assert!(
            out.status.success() && Path::new(&path).exists(),
            "a screenshot at {path}"
        );
    }
    let (status, stderr) = running.signal(libc::SIGTERM);
    assert!(status.success(), "{status:?}\n{stderr}");
    producer.join().unwrap().expect("produced");
}
