//! Oracle tests for the window operators.
//!
//! Random out-of-order streams, spread over several partitions (one input
//! file each), run through the real `player_features` job at 1, 2 and 4
//! workers; every fired and re-fired window and every late row is compared
//! with a from-scratch reference written plainly below:
//!
//! * stamps: per partition, `⌊(max event time so far − max_out_of_orderness) / g⌋·g`;
//! * tumbling/sliding: a row counts for window `[s, e)` unless `e + L ≤ stamp`;
//!   revision 0 holds the rows stamped before `e` (or, if none, the rows of
//!   the first stamp at or after `e`), each later stamp with rows re-fires
//!   the cumulative aggregate; a row counted for no window is late;
//! * sessions: a naive simulation over stamps (sessions as plain lists); a
//!   row is late when its own `[ts, ts + gap)` ended `L` or more before its stamp.

use super::support::{read_jsonl, run_bounded, BASE};
use proptest::prelude::*;
use std::collections::BTreeMap;

const G: i64 = 1_000;

#[derive(Debug, Clone)]
struct Rec {
    key: u8,
    ts: i64,
    v: i64,
    c: u8,
}

#[derive(Debug, Clone, Copy)]
enum Win {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
}

#[derive(Debug, Clone)]
struct Case {
    partitions: Vec<Vec<Rec>>,
    window: Win,
    lateness: i64,
    ooo: i64,
    /// Accumulators kept in memory before spilling to RocksDB (small: spills often).
    memory_entries: usize,
}

fn rec_strategy() -> impl Strategy<Value = (u8, i64, i64, u8, bool)> {
    (0u8..5, 0i64..4_000, -3i64..10, 0u8..4, prop::bool::weighted(0.08))
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let window = prop_oneof![
        (1i64..4).prop_map(|k| Win::Tumbling(k * 10_000)),
        (1i64..3).prop_map(|k| Win::Sliding(k * 30_000, 10_000)),
        // A slide that does not divide the size: panes of gcd(size, slide).
        (1i64..3).prop_map(|k| Win::Sliding(k * 25_000, 10_000)),
        (1i64..4).prop_map(|k| Win::Session(k * 7_000)),
    ];
    (
        prop::collection::vec(prop::collection::vec(rec_strategy(), 0..60), 1..4),
        window,
        prop_oneof![Just(0i64), Just(12_000i64)],
        prop_oneof![Just(0i64), Just(4_000i64)],
        prop_oneof![Just(1usize), Just(7usize), Just(1_000_000usize)],
    )
        .prop_map(|(parts, window, lateness, ooo, memory_entries)| {
            let partitions = parts
                .into_iter()
                .map(|recs| {
                    let mut t = BASE;
                    recs.into_iter()
                        .map(|(key, step, v, c, jump_back)| {
                            t += step;
                            // Mostly small disorder; sometimes far back (late candidates).
                            let ts = if jump_back { t - 40_000 } else { t - (step % 3_000) };
                            Rec { key, ts, v, c }
                        })
                        .collect()
                })
                .collect();
            Case {
                partitions,
                window,
                lateness,
                ooo,
                memory_entries,
            }
        })
}

/// Output row: (key, start, end, revision) -> values.
type Out = BTreeMap<(String, i64, i64, u32), Vec<Option<f64>>>;

fn aggregate(rows: &[&Rec]) -> Vec<Option<f64>> {
    // Order must match the engine's: aggregates sorted by name, then features.
    // a_count, b_sum, c_min, d_max, e_avg, f_last, g_distinct ; feature z_ratio = b_sum / max(1, a_count)
    let n = rows.len() as f64;
    let sum: f64 = rows.iter().map(|r| r.v as f64).sum();
    let min = rows.iter().map(|r| r.v as f64).fold(f64::INFINITY, f64::min);
    let max = rows.iter().map(|r| r.v as f64).fold(f64::NEG_INFINITY, f64::max);
    let last = rows
        .iter()
        .max_by(|a, b| a.ts.cmp(&b.ts).then((a.v as f64).total_cmp(&(b.v as f64))))
        .map(|r| r.v as f64);
    let mut distinct: Vec<u8> = rows.iter().map(|r| r.c).collect();
    distinct.sort();
    distinct.dedup();
    vec![
        Some(n),
        Some(sum),
        Some(min),
        Some(max),
        Some(sum / n),
        last,
        Some(distinct.len() as f64),
        Some(sum / n.max(1.0)),
    ]
}

fn stamped(case: &Case) -> Vec<(i64, Rec)> {
    let mut out = Vec::new();
    for part in &case.partitions {
        let mut max_ts: Option<i64> = None;
        for r in part {
            max_ts = Some(max_ts.map_or(r.ts, |m| m.max(r.ts)));
            let w = max_ts.unwrap() - case.ooo;
            out.push(((w.max(0) / G) * G, r.clone()));
        }
    }
    out
}

fn reference_aligned(case: &Case, size: i64, slide: i64) -> (Out, usize) {
    let stamped = stamped(case);
    let mut per_window: BTreeMap<(u8, i64), Vec<(i64, &Rec)>> = BTreeMap::new();
    let mut late = 0;
    for (stamp, r) in &stamped {
        let mut accepted = false;
        let mut s = r.ts.div_euclid(slide) * slide;
        while s > r.ts - size {
            if s + size + case.lateness > *stamp {
                per_window.entry((r.key, s)).or_default().push((*stamp, r));
                accepted = true;
            }
            s -= slide;
        }
        if !accepted {
            late += 1;
        }
    }
    let mut out = Out::new();
    for ((key, s), mut rows) in per_window {
        let e = s + size;
        rows.sort_by_key(|(t, _)| *t);
        let mut revision = 0;
        let before: Vec<&Rec> = rows.iter().filter(|(t, _)| *t < e).map(|(_, r)| *r).collect();
        if !before.is_empty() {
            out.insert((format!("k{key}"), s, e, revision), aggregate(&before));
            revision += 1;
        }
        let mut stamps: Vec<i64> = rows.iter().map(|(t, _)| *t).filter(|t| *t >= e).collect();
        stamps.dedup();
        for t in stamps {
            let upto: Vec<&Rec> = rows.iter().filter(|(u, _)| *u <= t).map(|(_, r)| *r).collect();
            out.insert((format!("k{key}"), s, e, revision), aggregate(&upto));
            revision += 1;
        }
    }
    (out, late)
}

fn reference_sessions(case: &Case, gap: i64) -> (Out, usize) {
    struct S<'a> {
        start: i64,
        end: i64,
        rows: Vec<&'a Rec>,
        fired: u32,
        changed: bool,
    }
    let stamped = stamped(case);
    let mut by_stamp: BTreeMap<i64, Vec<&Rec>> = BTreeMap::new();
    for (t, r) in &stamped {
        by_stamp.entry(*t).or_default().push(r);
    }
    let mut sessions: BTreeMap<u8, Vec<S>> = BTreeMap::new();
    let mut out = Out::new();
    let mut late = 0;
    let fire_due = |sessions: &mut BTreeMap<u8, Vec<S>>, out: &mut Out, upto: i64| {
        for (key, list) in sessions.iter_mut() {
            for s in list.iter_mut() {
                if s.changed && s.end <= upto {
                    out.insert((format!("k{key}"), s.start, s.end, s.fired), aggregate(&s.rows));
                    s.fired += 1;
                    s.changed = false;
                }
            }
        }
    };
    for (t, mut rows) in by_stamp {
        fire_due(&mut sessions, &mut out, t);
        rows.sort_by_key(|r| (r.key, r.ts));
        let mut touched: Vec<(u8, i64)> = Vec::new();
        for r in rows {
            let list = sessions.entry(r.key).or_default();
            let (mut start, mut end) = (r.ts, r.ts + gap);
            let overlapping: Vec<usize> = (0..list.len())
                .filter(|i| list[*i].start < r.ts + gap && r.ts < list[*i].end)
                .collect();
            for i in &overlapping {
                start = start.min(list[*i].start);
                end = end.max(list[*i].end);
            }
            // Late: the row's own gap window closed more than the lateness ago.
            if r.ts + gap + case.lateness <= t {
                late += 1;
                continue;
            }
            let mut merged = S {
                start,
                end,
                rows: vec![r],
                fired: 0,
                changed: true,
            };
            for i in overlapping.into_iter().rev() {
                let s = list.remove(i);
                merged.rows.extend(s.rows);
                merged.fired = merged.fired.max(s.fired);
            }
            if end <= t {
                touched.push((r.key, start));
            }
            list.push(merged);
            list.sort_by_key(|s| s.start);
        }
        touched.sort();
        touched.dedup();
        for (key, start) in touched {
            if let Some(s) = sessions
                .get_mut(&key)
                .and_then(|l| l.iter_mut().find(|s| s.start == start && s.changed))
            {
                out.insert((format!("k{key}"), s.start, s.end, s.fired), aggregate(&s.rows));
                s.fired += 1;
                s.changed = false;
            }
        }
        // Purge exactly like the engine (no effect on outputs, keeps the lists short).
        for list in sessions.values_mut() {
            list.retain(|s| s.end + gap + case.lateness > t);
        }
    }
    fire_due(&mut sessions, &mut out, i64::MAX);
    (out, late)
}

fn topology_for(case: &Case, dir: &std::path::Path, workers: usize) -> String {
    let window = match case.window {
        Win::Tumbling(size) => format!(
            "{{ kind = \"tumbling\", size = \"{size}ms\", allowed_lateness = \"{}ms\" }}",
            case.lateness
        ),
        Win::Sliding(size, slide) => format!(
            "{{ kind = \"sliding\", size = \"{size}ms\", slide = \"{slide}ms\", allowed_lateness = \"{}ms\" }}",
            case.lateness
        ),
        Win::Session(gap) => format!(
            "{{ kind = \"session\", gap = \"{gap}ms\", allowed_lateness = \"{}ms\" }}",
            case.lateness
        ),
    };
    format!(
        r#"
[runtime]
workers = {workers}
state_dir = "{d}/state"
watermark_granularity = "1s"
state_memory_entries = {mem}
[sources.rows]
kind = "file"
path = "{d}/input"
schema = "records"
splits = 1
watermark = {{ max_out_of_orderness = "{ooo}ms" }}
[sinks.out]
kind = "file"
path = "{d}/out-{workers}"
[feature_sets.w]
source = "rows"
key = "key"
time = "ts"
window = {window}
aggregates = {{ a_count = "count", b_sum = "sum(v)", c_min = "min(v)", d_max = "max(v)", e_avg = "avg(v)", f_last = "last(v)", g_distinct = "count_distinct(c)" }}
features = {{ z_ratio = "b_sum / max(1, a_count)" }}
# Reads the same fields as `w`, so it shares w's rows (one row per record
# through the exchange, read in place by both state machines).
[feature_sets.u]
source = "rows"
key = "key"
time = "ts"
window = {{ kind = "tumbling", size = "{COMPANION_SIZE}ms", allowed_lateness = "{lateness}ms" }}
aggregates = {{ a_count = "count", b_sum = "sum(v)", c_min = "min(v)", d_max = "max(v)", e_avg = "avg(v)", f_last = "last(v)", g_distinct = "count_distinct(c)" }}
features = {{ z_ratio = "b_sum / max(1, a_count)" }}
# Reads other fields: a group of its own, routed apart from w and u.
[feature_sets.x]
source = "rows"
key = "key"
time = "ts"
window = {{ kind = "tumbling", size = "5s" }}
aggregates = {{ n = "count" }}
[jobs.features]
kind = "player_features"
feature_sets = ["w", "u", "x"]
output = "out"
"#,
        d = dir.display(),
        ooo = case.ooo,
        mem = case.memory_entries,
        lateness = case.lateness,
    )
}

/// Tumbling window size of the companion set `u`, checked like `w`.
const COMPANION_SIZE: i64 = 7_000;

/// The outputs of sets `w` and `u` with their late-row counts.
fn engine(case: &Case, workers: usize) -> [(Out, usize); 2] {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    for (i, part) in case.partitions.iter().enumerate() {
        let text: String = part
            .iter()
            .map(|r| {
                format!(
                    "{{\"key\":\"k{}\",\"ts\":{},\"v\":{},\"c\":\"c{}\"}}\n",
                    r.key, r.ts, r.v, r.c
                )
            })
            .collect();
        std::fs::write(input.join(format!("part-{i}.jsonl")), text).unwrap();
    }
    run_bounded(&topology_for(case, dir.path(), workers), workers);
    let out_dir = dir.path().join(format!("out-{workers}"));
    let late_rows = read_jsonl(&out_dir, "late_events");
    let late_of = |set: &str| late_rows.iter().filter(|r| r["feature_set"] == set).count();
    [
        (outputs(&out_dir, "w"), late_of("w")),
        (outputs(&out_dir, "u"), late_of("u")),
    ]
}

fn outputs(out_dir: &std::path::Path, set: &str) -> Out {
    let mut out = Out::new();
    for row in read_jsonl(out_dir, set) {
        let key = (
            row["key"].as_str().unwrap().to_string(),
            row["window_start"].as_i64().unwrap(),
            row["window_end"].as_i64().unwrap(),
            row["revision"].as_u64().unwrap() as u32,
        );
        let values = [
            "a_count",
            "b_sum",
            "c_min",
            "d_max",
            "e_avg",
            "f_last",
            "g_distinct",
            "z_ratio",
        ]
        .iter()
        .map(|n| row[*n].as_f64())
        .collect();
        assert!(out.insert(key.clone(), values).is_none(), "duplicate output {key:?}");
    }
    out
}

fn assert_same(expected: &Out, got: &Out, what: &str) {
    let ek: Vec<_> = expected.keys().collect();
    let gk: Vec<_> = got.keys().collect();
    assert_eq!(ek, gk, "{what}: different windows/revisions");
    for (k, e) in expected {
        let g = &got[k];
        for (i, (a, b)) in e.iter().zip(g).enumerate() {
            match (a, b) {
                (Some(a), Some(b)) => assert!(
                    (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                    "{what}: {k:?} value {i}: {a} vs {b}"
                ),
                (a, b) => assert_eq!(a, b, "{what}: {k:?} value {i}"),
            }
        }
    }
}

fn check(case: &Case) {
    let (expected, expected_late) = match case.window {
        Win::Tumbling(size) => reference_aligned(case, size, size),
        Win::Sliding(size, slide) => reference_aligned(case, size, slide),
        Win::Session(gap) => reference_sessions(case, gap),
    };
    let (companion, companion_late) = reference_aligned(case, COMPANION_SIZE, COMPANION_SIZE);
    for workers in [1, 2, 4] {
        let [(got, late), (got_u, late_u)] = engine(case, workers);
        assert_same(&expected, &got, &format!("{:?} at {workers} workers", case.window));
        assert_eq!(late, expected_late, "late rows at {workers} workers");
        assert_same(
            &companion,
            &got_u,
            &format!("companion tumbling set at {workers} workers"),
        );
        assert_eq!(late_u, companion_late, "companion's late rows at {workers} workers");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn windows_match_the_reference_at_1_2_and_4_workers(case in case_strategy()) {
        check(&case);
    }
}

#[test]
fn late_rows_refires_and_session_merges_occur_in_a_fixed_case() {
    // A fixed case that certainly exercises every path the random ones may miss.
    let p0 = vec![
        Rec {
            key: 1,
            ts: BASE + 1_000,
            v: 1,
            c: 0,
        },
        Rec {
            key: 1,
            ts: BASE + 25_000,
            v: 2,
            c: 1,
        },
        Rec {
            key: 2,
            ts: BASE + 61_000,
            v: 3,
            c: 0,
        },
        Rec {
            key: 1,
            ts: BASE + 8_000,
            v: 4,
            c: 2,
        }, // stamp 56s: lateness 12s → re-fire [0,10) & sessions
        Rec {
            key: 1,
            ts: BASE + 120_000,
            v: 5,
            c: 0,
        },
        Rec {
            key: 1,
            ts: BASE + 2_000,
            v: 6,
            c: 0,
        }, // stamp 116s: late for everything
    ];
    let p1 = vec![
        Rec {
            key: 1,
            ts: BASE + 13_000,
            v: 7,
            c: 3,
        },
        Rec {
            key: 3,
            ts: BASE + 130_000,
            v: 8,
            c: 1,
        },
    ];
    for window in [Win::Tumbling(10_000), Win::Sliding(30_000, 10_000), Win::Session(7_000)] {
        let case = Case {
            partitions: vec![p0.clone(), p1.clone()],
            window,
            lateness: 50_000,
            ooo: 4_000,
            memory_entries: 2,
        };
        let (expected, late) = match window {
            Win::Tumbling(s) => reference_aligned(&case, s, s),
            Win::Sliding(s, d) => reference_aligned(&case, s, d),
            Win::Session(g) => reference_sessions(&case, g),
        };
        assert!(late >= 1, "{window:?}: the fixed case has a late row");
        assert!(expected.keys().any(|k| k.3 > 0), "{window:?}: the fixed case re-fires");
        check(&case);
    }
}
