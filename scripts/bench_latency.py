#!/usr/bin/env python3
"""scripts/bench.py's `latency` mode: the predictions job's latency under open-loop load, on Tansu.

bench.py runs mode_latency(b, h), h being bench.py itself (passed in, not
imported: bench.py runs as __main__, and a second import would be a second
copy of its state). The load's producer and consumer are this file run as a
script, one process each, so neither waits on the other's GIL:

  bench_latency.py produce BROKERS TOPIC EVENTS COUNT RATE OUT [READY]
  bench_latency.py consume BROKERS TOPIC OUT SENT DRAIN_S [READY]

Times are CLOCK_MONOTONIC (time.monotonic), which every process shares.
"""
import json, math, os, re, shutil, signal, subprocess, sys, time, uuid
from array import array
from collections import deque
from pathlib import Path

MATCH_ID = re.compile(rb'"match_id":"([^"]*)"')
EVENT_TIME = re.compile(rb'"event_time":(-?\d+)')
WARMUP = b"bench-warmup"  # the match of the warm-up event, not in the generated data
READY_DEADLINE_S = 120  # engine start to the warm-up's prediction visible
PARTITIONS = 4
ENGINE_LINE = re.compile(r"prediction latency, arrival at the source to emission to the sinks: job=predictions kind=live "
                         r"n=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+) p999_ms=([\d.]+) max_ms=([\d.]+)")

# The predictions job of topology.toml, alone: game events in, live predictions
# out to Kafka, exactly once. Strings are JSON-quoted (valid TOML basic strings).
TOPOLOGY = """\
[runtime]
workers = 2
state_dir = {state}
checkpoint_interval = {interval}
watermark_granularity = "1s"
# no admin_addr: its fixed port another riftstream may hold

[kafka]
brokers = {brokers}
group_id = {group}

[sources.game_events]
kind = "kafka"
topic = {events_topic}
schema = "game_events"
encoding = "json"
watermark = {{ max_out_of_orderness = "5s", idle_timeout = "10s" }}

[sinks.predictions]
kind = "kafka"
topic = {predictions_topic}
encoding = "json"
exactly_once = true

[jobs.predictions]
kind = "predictions"
live_source = "game_events"
outputs = ["predictions"]
registry = {registry}
"""


def seconds(text):
    """A duration as bench.py's --checkpoint-interval takes it (200ms, 1s, 1m), in seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m)", text)
    return int(m.group(1)) * {"ms": 1e-3, "s": 1, "m": 60}[m.group(2)]


def quantile(xs, q):
    """Nearest-rank quantile of a sorted list: exact, no interpolation."""
    return xs[max(0, math.ceil(q * len(xs)) - 1)]


def first_lines(path, count):
    with open(path, "rb") as f:
        lines = [line.rstrip(b"\n") for line, _ in zip(f, range(count))]
    if len(lines) < count:
        sys.exit(f"{path} has {len(lines)} lines, not {count}")
    return lines


# ------------------------------------------------------------------ the load processes

def produce(brokers, topic, events, count, rate, out, ready=None):
    """Sends the first COUNT events keyed by match_id (a match stays in one partition, in order).

    RATE 0: as fast as possible. Otherwise open loop: event i is due at
    t0 + i / RATE and is sent when due, however late earlier sends were, so a
    stall shows as latency instead of being hidden by a slower producer
    (coordinated omission). With READY, first a warm-up event, then nothing
    until the consumer has seen its prediction (writes READY). Writes OUT, a
    JSON summary, at the end (renamed into place: the consumer waits for it)."""
    from confluent_kafka import Producer
    count, rate = int(count), float(rate)
    values = first_lines(events, count)
    keys = [MATCH_ID.search(v).group(1) for v in values]
    errors = 0

    def delivered(err, _msg):
        nonlocal errors
        errors += err is not None

    p = Producer({"bootstrap.servers": brokers, "linger.ms": 1, "on_delivery": delivered,
                  "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 2_097_151})
    summary = {}
    if ready:
        # The first line is its match's first event (the file is in event-time order).
        start = time.monotonic()
        p.produce(topic, MATCH_ID.sub(b'"match_id":"' + WARMUP + b'"', values[0], 1), WARMUP)
        p.flush(30)
        while not os.path.exists(ready):
            if time.monotonic() - start > READY_DEADLINE_S:
                sys.exit(f"the warm-up event's prediction was not visible within {READY_DEADLINE_S} s")
            time.sleep(0.01)
        summary["ready_s"] = time.monotonic() - start
    lag = array("d", bytes(8 * count))  # actual - scheduled send time, s
    t0 = time.monotonic() + 0.01
    for i in range(count):
        if rate:
            due = t0 + i / rate
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
        while True:
            try:
                p.produce(topic, values[i], keys[i])
                break
            except BufferError:  # librdkafka's queue is full: the broker is behind
                p.poll(0.001)
        if rate:
            lag[i] = time.monotonic() - due
        if i % 100 == 0:  # delivery callbacks, a few at a time
            p.poll(0)
    last = time.monotonic()
    undelivered = p.flush(120)
    lags = sorted(lag)
    summary |= {"t0": t0, "rate": rate, "sent": count, "undelivered": undelivered + errors,
                "achieved_per_s": (count - 1) / (last - t0) if count > 1 else 0.0,
                "lag_p50_ms": quantile(lags, 0.5) * 1e3, "lag_p99_ms": quantile(lags, 0.99) * 1e3, "lag_max_ms": lags[-1] * 1e3}
    Path(out + ".part").write_text(json.dumps(summary))
    os.rename(out + ".part", out)


def consume(brokers, topic, out, sent, drain_s, ready=None):
    """Reads TOPIC (read_committed, from the start) and writes OUT: per prediction, its
    match_id, event_time and the time it became visible, in the order read.

    Stops once it has seen as many predictions (the warm-up's aside) as SENT
    (the producer's summary, when it appears) says were sent, or DRAIN_S
    after SENT appeared. With READY: writes READY on seeing the warm-up's."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    # fetch.wait.max.ms: an idle fetch returns within 10 ms, so that a commit becomes visible here promptly.
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-{uuid.uuid4().hex[:12]}", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "fetch.wait.max.ms": 10})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in c.list_topics(topic, timeout=10).topics[topic].partitions])
    rows, expected, drain_end, waiting, start = [], None, None, bool(ready), time.monotonic()
    while expected is None or (len(rows) < expected and time.monotonic() < drain_end):
        # poll returns as soon as one message is there (consume(n, t) would wait for n or t);
        # then whatever else is already fetched. One visible time per batch.
        first = c.poll(0.05)
        batch = [first, *c.consume(10000, 0)] if first is not None else []
        now = time.monotonic()
        for m in batch:
            if m.error():
                sys.exit(f"consumer error: {m.error()}")
            v = m.value()
            match_id = MATCH_ID.search(v).group(1)
            if match_id != WARMUP:
                rows.append(b"%s\t%s\t%.6f" % (match_id, EVENT_TIME.search(v).group(1), now))
            elif waiting:
                Path(ready).write_text("ready")
                waiting = False
        if expected is None and os.path.exists(sent):
            expected, drain_end = json.loads(Path(sent).read_text())["sent"], now + float(drain_s)
        if waiting and now - start > READY_DEADLINE_S:
            sys.exit(f"no prediction of the warm-up event within {READY_DEADLINE_S} s")
    c.close()
    Path(out).write_bytes(b"\n".join(rows) + b"\n" if rows else b"")


def visible(path):
    """The consumer's output: [(match_id, event_time, visible_s)] in the order read."""
    rows = []
    for line in Path(path).read_bytes().splitlines():
        match_id, event_time, t = line.split(b"\t")
        rows.append((match_id, event_time, float(t)))
    return rows


# ------------------------------------------------------------------ figures

def steady_rate(rows):
    """Predictions per second between the commits that made the 10th and the 90th percent visible.

    Predictions become visible a checkpoint's worth at a time, so the count
    between two visible times is what the job emitted between those two
    checkpoints; the ends (startup, the last partial interval) are left out."""
    times = sorted(t for _, _, t in rows)
    a, z = quantile(times, 0.1), quantile(times, 0.9)
    if z <= a:
        return None
    between = sum(1 for t in times if a < t <= z)
    return between / (z - a)


def join(events, count, t0, rate, rows):
    """Latency of each prediction: visible time - its event's scheduled send time, in ms.

    Predictions match events on (match_id, event_time), first in first out
    (two events of a match can share an event time)."""
    due = {}
    for i, line in enumerate(first_lines(events, count)):
        key = (MATCH_ID.search(line).group(1), EVENT_TIME.search(line).group(1))
        due.setdefault(key, deque()).append(t0 + i / rate)
    latencies, unmatched = [], 0
    for match_id, event_time, t in rows:
        q = due.get((match_id, event_time))
        if q:
            latencies.append((t - q.popleft()) * 1e3)
        else:
            unmatched += 1
    return sorted(latencies), unmatched


def percentiles(xs):
    if not xs:
        return {}
    return {"p50_ms": quantile(xs, 0.5), "p99_ms": quantile(xs, 0.99), "p999_ms": quantile(xs, 0.999), "max_ms": xs[-1]}


# ------------------------------------------------------------------ the mode

class Latency:
    """The mode's runs of the job, each on topics of its own on one Tansu broker."""

    def __init__(self, b, h, brokers):
        from confluent_kafka.admin import AdminClient
        self.b, self.h, self.brokers, self.d = b, h, brokers, b.work / "latency"
        self.admin = AdminClient({"bootstrap.servers": brokers, "log.connection.close": False})  # Tansu stops first
        self.interval = b.args.checkpoint_interval
        # After the last send: the backlog's processing, a commit, and slack.
        self.drain_s = max(60.0, 30 * seconds(self.interval))
        self.lines = {}
        self.d.mkdir(parents=True, exist_ok=True)
        self.registry = self.d / "registry"
        if not (self.registry / "models" / "live").exists():
            b.run("train-live", [b.bin, "train", "live", "--data", h.ROOT / "data" / "high_diamond_ranked_10min.train.csv",
                                 "--registry", self.registry])

    def events(self, need):
        """A file of at least `need` game events, generated once per work dir. Any prefix
        of it holds each of its matches' first events in seq order, so the job never
        waits for a missing predecessor."""
        b = self.b
        games = max(1000, math.ceil(need / 250 / 1000) * 1000)  # ~260 events per live game
        have = sorted((int(f.stem.split("-")[-1][:-1]), f) for f in b.work.glob("game-events-*g.jsonl"))
        path = next((f for g, f in have if g >= games), b.work / f"game-events-{games}g.jsonl")
        if not path.exists():
            tmp = b.work / "generator.part"
            shutil.rmtree(tmp, ignore_errors=True)
            # Players: the generator starts only as many live games as it can seat ten distinct players in.
            b.run("produce-generator", [b.bin, "produce", "generator", "--out", tmp, "--encoding", "json",
                                        "--matches", 0, "--live-games", games, "--players", 20 * games])
            (tmp / "game_events.jsonl").rename(path)
            shutil.rmtree(tmp)
        if path not in self.lines:
            with open(path, "rb") as f:
                self.lines[path] = sum(1 for _ in f)
        if self.lines[path] < need:
            raise self.h.BenchError(f"{path} has {self.lines[path]} game events, fewer than {need}")
        return path

    def topology(self, prefix):
        state = self.d / "state"
        shutil.rmtree(state, ignore_errors=True)
        path = self.d / "topology.toml"
        path.write_text(TOPOLOGY.format(**{k: json.dumps(str(v)) for k, v in dict(
            state=state, interval=self.interval, brokers=self.brokers, group=prefix, events_topic=f"{prefix}.game_events",
            predictions_topic=f"{prefix}.predictions", registry=self.registry).items()}))
        return path

    def run(self, name, count, rate):
        """One run of the job, unbounded, from no state, on fresh topics: with rate 0
        it reads a backlog of `count` events produced beforehand; otherwise `count`
        events are sent at `rate` once it is up. Returns the producer's summary, the
        consumer's rows, the engine's latency line as a dict, and the engine's wall time."""
        from confluent_kafka.admin import NewTopic
        b, h = self.b, self.h
        prefix = f"bench-{uuid.uuid4().hex[:12]}"
        topics = [f"{prefix}.game_events", f"{prefix}.predictions"]
        for f in self.admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
            f.result(30)
        files = {k: self.d / f"{k}.{name}" for k in ("sent", "seen", "ready")}
        for f in files.values():
            f.unlink(missing_ok=True)
        topology, me = self.topology(prefix), [sys.executable, __file__]
        producer = [*me, "produce", self.brokers, topics[0], self.events(count), count, rate, files["sent"]]
        consumer = [*me, "consume", self.brokers, topics[1], files["seen"], files["sent"], self.drain_s if rate else 0.9 * b.timeout]
        if not rate:
            b.measure(f"{name}-produce", [(producer, None)])
        start = time.monotonic()
        engine = b.spawn(f"{name}-engine", [b.bin, "run", "--topology", topology, "--job", "predictions"])
        try:
            try:
                if rate:
                    b.measure(f"{name}-load", [(producer + [files["ready"]], None), (consumer + [files["ready"]], None)])
                else:
                    b.measure(f"{name}-consume", [(consumer, None)])
            except h.BenchError:
                if engine.poll() is not None:
                    b.fail(engine, f"exited with {engine.returncode}")
                raise
            # Stopping commits everything; the latency line is printed at exit.
            engine.send_signal(signal.SIGTERM)
            try:
                engine.wait(60)
            except subprocess.TimeoutExpired:
                b.fail(engine, "did not exit within 60 s of SIGTERM")
            wall = time.monotonic() - start
            if engine.returncode != 0:
                b.fail(engine, f"exited with {engine.returncode} after SIGTERM")
        finally:
            h.kill(engine)
        line = ENGINE_LINE.search(h.output(engine))
        if not line:
            b.fail(engine, "printed no `prediction latency ... job=predictions kind=live` line")
        engine_stats = dict(zip(["engine_n", "engine_p50_ms", "engine_p99_ms", "engine_p999_ms", "engine_max_ms"],
                                [int(line.group(1)), *map(float, line.groups()[1:])]))
        sent, rows = json.loads(files["sent"].read_text()), visible(files["seen"])
        for f in files.values():
            f.unlink(missing_ok=True)
        for f in self.admin.delete_topics(topics).values():  # Tansu keeps them in memory
            f.result(30)
        return sent, rows, engine_stats, wall

    def r_max(self, r):
        n = self.b.args.latency_events
        _, rows, engine_stats, wall = self.run(f"rmax-{r}", n, 0)
        rate = steady_rate(rows) if len(rows) == n else None
        if rate is None:
            raise self.h.BenchError(f"R_max: {len(rows)} of {n} predictions visible" if len(rows) != n else
                                    f"R_max: all {n} predictions became visible at once: raise --latency-events")
        return {"wall_s": wall, "events": n, "events_per_s": rate, "engine_n": engine_stats["engine_n"]}

    def load(self, pct, rate):
        """(name, run(round)): `pct` percent of R_max, open loop, for --latency-seconds."""
        count = max(2, round(rate * self.b.args.latency_seconds))

        def run(r):
            sent, rows, engine_stats, wall = self.run(f"load{pct:g}-{r}", count, rate)
            latencies, unmatched = join(self.events(count), count, sent["t0"], rate, rows)
            return {"wall_s": wall, "target_per_s": rate, "achieved_per_s": sent["achieved_per_s"], "sent": count,
                    "seen": len(latencies), "seen_share": len(latencies) / count, "unmatched": unmatched,
                    "undelivered": sent["undelivered"], "ready_s": sent["ready_s"],
                    **{k: sent[k] for k in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms")}, **percentiles(latencies), **engine_stats}
        return f"{pct:g}%", run


def mode_latency(b, h):
    a, services = b.args, []
    try:
        tansu, brokers = b.tansu()
        services.append(tansu)
        lat = Latency(b, h, brokers)
        results = {"checkpoint_interval": lat.interval, "partitions": PARTITIONS, "load_seconds": a.latency_seconds}
        if a.latency_rmax:
            rmax = a.latency_rmax
            results["r_max"] = {"given": rmax}
            print(f"latency: R_max = {h.human(rmax)} events/s, given (--latency-rmax)", flush=True)
        else:
            print(f"latency: R_max: the predictions job, unbounded, reading a backlog of {h.human(a.latency_events)} game events "
                  f"produced beforehand ({PARTITIONS} partitions; checkpoint_interval {lat.interval}; the consumer reading "
                  f"predictions alongside, as in the loads)", flush=True)
            rmax_runs = b.interleave([("r_max", lat.r_max)])["r_max"]
            results["r_max"] = h.result(rmax_runs, method="unbounded job over a backlog: the predictions made visible between the "
                                                     "commits that showed the 10th and the 90th percent, over the time between them")
            rmax = results["r_max"]["summary"]["events_per_s"]["median"]
            print(f"R_max = {h.fmt(results['r_max']['summary']['events_per_s'])} events/s (median (min-max) of {b.runs}): "
                  f"the predictions made visible between the commits that showed the 10th and the 90th percent of them, "
                  f"over the time between those commits", flush=True)
        print(f"latency: open-loop loads {', '.join(f'{p:g}%' for p in a.latency_loads)} of R_max, {a.latency_seconds:g} s each",
              flush=True)
        runs = b.interleave([lat.load(p, rmax * p / 100) for p in a.latency_loads])
    finally:
        for p in services:
            h.kill(p, grace=5)
    results["loads"] = []
    for pct, rs in zip(a.latency_loads, runs.values()):
        results["loads"].append(h.result(rs, load_pct=pct, producer_kept_up=all(map(kept_up, rs))))
    table(h, lat.interval, a.latency_seconds, b.runs, results["loads"])
    for res in results["loads"]:
        s = res["summary"]
        if not res["producer_kept_up"]:
            print(f"note: at {res['load_pct']:g}% the producer did not keep up in some round: it sent "
                  f"{h.fmt(s['achieved_per_s'])} of {h.fmt(s['target_per_s'])} events/s, its p99 send lag was "
                  f"{h.fmt(s['lag_p99_ms'], '{:.1f}'.format)} ms. Latencies run from the scheduled send times, so its "
                  f"delay is counted, not hidden; but part of it is the load generator's, not the job's (the job, Tansu, "
                  f"the producer and the consumer share this machine's cores)", flush=True)
        if any(r["seen"] < r["sent"] for r in res["runs"]):
            print(f"note: at {res['load_pct']:g}% some predictions were not visible {lat.drain_s:g} s after the last send",
                  flush=True)
    return results


def kept_up(run):
    """The producer kept up: it sent at least 99 % of the target rate, and its p99 lag
    behind schedule is at most 5 % of the p50 produce->visible latency (which counts it)."""
    return run["achieved_per_s"] >= 0.99 * run["target_per_s"] and run["lag_p99_ms"] <= 0.05 * run.get("p50_ms", math.inf)


def table(h, interval, load_s, runs, loads):
    ms, rows = "{:.1f}".format, []
    for res in loads:
        s = res["summary"]
        rows.append([f"{res['load_pct']:g}%", h.fmt(s["target_per_s"]), h.fmt(s["achieved_per_s"]),
                     f"{sum(r['seen'] for r in res['runs'])}/{sum(r['sent'] for r in res['runs'])}",
                     h.fmt(s["lag_p99_ms"], ms) + ("" if res["producer_kept_up"] else " BEHIND"),
                     *[h.fmt(s[k], ms) if k in s else "-" for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms")],
                     *[h.fmt(s[f"engine_{k}"], ms) for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms")]])
    h.table(f"latency of the predictions job under open-loop load: Tansu, JSON, {PARTITIONS} partitions, checkpoint_interval "
            f"{interval}, {load_s:g} s per load ({runs} interleaved rounds; median (min-max); seen/sent summed over rounds).\n"
            f"produce->visible (p50 ... max): from each event's scheduled send time to its prediction being read by a "
            f"read_committed consumer (Python, ~2 us a prediction).\n"
            f"It includes waiting for the transaction the job commits at its next checkpoint (up to one checkpoint interval, "
            f"then the commit): the price of exactly-once.\n"
            f"engine: arrival at the source to emission to the sinks, from the job's own HDR histogram (the warm-up event included).",
            ["load", "target ev/s", "sent ev/s", "seen/sent", "send lag p99 ms", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
             "engine p50", "engine p99", "engine p99.9", "engine max"], rows)


if __name__ == "__main__":
    {"produce": produce, "consume": consume}[sys.argv[1]](*sys.argv[2:])
