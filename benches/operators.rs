//! Per-operator throughput, in events per second (criterion `Throughput::Elements`).
//!
//! Each bench drives an operator's state machine directly (no dataflow
//! around it) over rows from the reference shape — `player_id`, `ts`, kills,
//! deaths, assists, gold — with 4 s out-of-order jitter:
//! JSON extraction, tumbling (60 s), sliding (5 min / 60 s), session (30 s gap).
//! The `inference` group scores live-game feature rows with the live
//! logistic model (trained on the shared 10-minute data) in batches of 1,
//! 64 and 1,024 rows, in predictions per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use riftstream::config::{FeatureSetConfig, WindowConfig, WindowKind};
use riftstream::features::{FeatureRow, FeatureSpec, RowExtractor, WindowResult};
use riftstream::generator::{player_rows, RowsConfig};
use riftstream::operators::window::{AlignedWindowState, LateRow, SessionState, WindowCore};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const N: u64 = 200_000;

fn spec(kind: WindowKind, size: u64, slide: Option<u64>, gap: Option<u64>) -> Arc<FeatureSpec> {
    let aggregates: BTreeMap<String, String> = [
        ("count", "count"),
        ("kills", "sum(kills)"),
        ("deaths", "sum(deaths)"),
        ("assists", "sum(assists)"),
        ("avg_gold", "avg(gold)"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let features = [("kda".to_string(), "(kills + assists) / max(1, deaths)".to_string())]
        .into_iter()
        .collect();
    let cfg = FeatureSetConfig {
        source: "rows".into(),
        explode: None,
        key: "player_id".into(),
        time: "ts".into(),
        window: WindowConfig {
            kind,
            size: Some(Duration::from_secs(size)),
            slide: slide.map(Duration::from_secs),
            gap: gap.map(Duration::from_secs),
            allowed_lateness: None,
        },
        aggregates,
        features,
        online: None,
        lookups: Default::default(),
    };
    Arc::new(FeatureSpec::compile("bench", &cfg).expect("valid spec"))
}

fn lines() -> Vec<Vec<u8>> {
    player_rows(RowsConfig {
        rows: N,
        ..Default::default()
    })
    .map(|r| serde_json::to_vec(&r).expect("json"))
    .collect()
}

/// Rows stamped like the source does: per-partition watermark (5 s out-of-orderness), 1 s granularity.
fn stamped_rows(spec: &Arc<FeatureSpec>, lines: &[Vec<u8>]) -> Vec<(u64, Vec<FeatureRow>)> {
    let ex = RowExtractor::new(spec.clone());
    let mut out: Vec<(u64, Vec<FeatureRow>)> = Vec::new();
    let mut max_ts = i64::MIN;
    for chunk in lines.chunks(4096) {
        let mut batch = Vec::with_capacity(chunk.len());
        for l in chunk {
            let row = ex.extract_bytes(l).expect("valid row");
            max_ts = max_ts.max(row.ts);
            batch.push(row);
        }
        out.push((((max_ts - 5_000) / 1_000 * 1_000) as u64, batch));
    }
    out
}

fn run<W: WindowCore>(mut core: W, batches: &[(u64, Vec<FeatureRow>)]) -> usize {
    let mut results: Vec<WindowResult> = Vec::new();
    let mut late: Vec<LateRow> = Vec::new();
    let mut n = 0;
    for (t, rows) in batches {
        core.push(*t, rows.clone());
        core.advance(Some(*t), &mut results, &mut late);
        n += results.len();
        results.clear();
    }
    core.advance(None, &mut results, &mut late);
    n + results.len()
}

fn benches(c: &mut Criterion) {
    let lines = lines();
    let mut group = c.benchmark_group("operators");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);

    let tumbling = spec(WindowKind::Tumbling, 60, None, None);
    group.bench_function(BenchmarkId::new("extract_json", N), |b| {
        let ex = RowExtractor::new(tumbling.clone());
        b.iter(|| {
            lines
                .iter()
                .map(|l| ex.extract_bytes(l).map(|r| r.ts).unwrap_or(0))
                .sum::<i64>()
        })
    });
    let batches = stamped_rows(&tumbling, &lines);
    group.bench_function(BenchmarkId::new("tumbling_60s", N), |b| {
        b.iter(|| run(AlignedWindowState::new(tumbling.clone(), 0), &batches))
    });
    let sliding = spec(WindowKind::Sliding, 300, Some(60), None);
    group.bench_function(BenchmarkId::new("sliding_5m_60s", N), |b| {
        b.iter(|| run(AlignedWindowState::new(sliding.clone(), 0), &batches))
    });
    let session = spec(WindowKind::Session, 60, None, Some(30));
    group.bench_function(BenchmarkId::new("session_30s", N), |b| {
        b.iter(|| run(SessionState::new(session.clone(), 0), &batches))
    });
    group.finish();
}

fn inference(c: &mut Criterion) {
    use riftstream::model::{load_ten_minute_csv, train, TrainConfig, LIVE_FEATURE_COUNT};
    let data = load_ten_minute_csv(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/high_diamond_ranked_10min.train.csv"),
    )
    .expect("the shared 10-minute data");
    let model = train(&data, &TrainConfig::default(), &mut |_| {}).expect("training");
    let mut group = c.benchmark_group("inference");
    for batch in [1usize, 64, 1024] {
        let rows: Vec<f32> = data.x[..batch * LIVE_FEATURE_COUNT].to_vec();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("live_logistic", batch), |b| {
            b.iter(|| model.predict_batch(&rows).expect("scores").len())
        });
    }
    group.finish();
}

criterion_group!(operators, benches, inference);
criterion_main!(operators);
