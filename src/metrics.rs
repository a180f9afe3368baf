//! Prometheus metrics, defined in one place and typed per component, so every
//! source, operator and sink reports the same standard series.
//!
//! All series live in one process-wide [`registry`]; the admin endpoint
//! serves it as `/metrics`, and the demo reads it for its summary.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::sync::OnceLock;

struct Families {
    registry: Registry,
    source_records: IntCounterVec,
    source_decoded: IntCounterVec,
    dead_letters: IntCounterVec,
    watermark: IntGaugeVec,
    late_rows: IntCounterVec,
    window_results: IntCounterVec,
    sink_records: IntCounterVec,
    sink_commits: IntCounterVec,
    commit_seconds: HistogramVec,
    prediction_latency: HistogramVec,
    predictions: IntCounterVec,
    model_switches: IntCounterVec,
    model_outcomes: IntCounterVec,
    model_version: IntGaugeVec,
    feature_store_writes: IntCounterVec,
    feature_store_seconds: Histogram,
}

fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(|| {
        let registry = Registry::new_custom(Some("riftstream".into()), None).expect("valid registry");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
            registry.register(Box::new(c.clone())).expect("unique counter");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge");
            registry.register(Box::new(g.clone())).expect("unique gauge");
            g
        };
        let latency_buckets = vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0];
        let prediction_latency = HistogramVec::new(
            HistogramOpts::new("prediction_latency_ms", "Input arrival to prediction emission, ms")
                .buckets(latency_buckets),
            &["job", "kind"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(prediction_latency.clone()))
            .expect("unique histogram");
        let commit_seconds = HistogramVec::new(
            HistogramOpts::new("sink_commit_seconds", "Duration of sink pre-commit + commit"),
            &["job", "sink"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(commit_seconds.clone()))
            .expect("unique histogram");
        let feature_store_seconds = Histogram::with_opts(HistogramOpts::new(
            "feature_store_write_seconds",
            "Duration of a feature-store write batch",
        ))
        .expect("valid histogram");
        registry
            .register(Box::new(feature_store_seconds.clone()))
            .expect("unique histogram");
        Families {
            source_records: counter("source_records_total", "Records read from a source", &["job", "source"]),
            source_decoded: counter(
                "source_decoded_total",
                "Records decoded and validated",
                &["job", "source"],
            ),
            dead_letters: counter(
                "dead_letters_total",
                "Records sent to the dead-letter path",
                &["job", "source"],
            ),
            watermark: gauge(
                "source_watermark_ms",
                "Watermark of a source on this worker, ms",
                &["job", "source", "worker"],
            ),
            late_rows: counter(
                "late_rows_total",
                "Rows too late for every window",
                &["job", "feature_set"],
            ),
            window_results: counter(
                "window_results_total",
                "Window firings (including re-fires)",
                &["job", "feature_set"],
            ),
            sink_records: counter("sink_records_total", "Records written by a sink", &["job", "sink"]),
            sink_commits: counter("sink_commits_total", "Sink commits", &["job", "sink"]),
            predictions: counter(
                "predictions_total",
                "Predictions emitted",
                &["job", "kind", "model_version"],
            ),
            model_switches: counter(
                "model_switches_total",
                "Hot reloads of a model to a newer registered version",
                &["job", "model"],
            ),
            model_outcomes: counter(
                "model_outcomes_total",
                "Live predictions resolved by their match's result, by model variant and correctness",
                &["job", "variant", "model_version", "outcome"],
            ),
            model_version: gauge(
                "model_version",
                "Registered version number a job's worker scores with",
                &["job", "model", "worker"],
            ),
            feature_store_writes: counter(
                "feature_store_writes_total",
                "Feature-store entity writes",
                &["store", "outcome"],
            ),
            commit_seconds,
            prediction_latency,
            feature_store_seconds,
            registry,
        }
    })
}

/// The process-wide registry.
pub fn registry() -> &'static Registry {
    &families().registry
}

/// Renders every metric in the Prometheus text format.
pub fn render() -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&registry().gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// Metrics of one source in one job.
#[derive(Clone)]
pub struct SourceMetrics {
    /// Records read.
    pub records_in: IntCounter,
    /// Records decoded and valid.
    pub records_decoded: IntCounter,
    /// Records dead-lettered.
    pub dead_letters: IntCounter,
    /// Current watermark on this worker.
    pub watermark: IntGauge,
}

impl SourceMetrics {
    /// The metrics of `source` in `job` on `worker`.
    pub fn new(job: &str, source: &str, worker: usize) -> SourceMetrics {
        let f = families();
        SourceMetrics {
            records_in: f.source_records.with_label_values(&[job, source]),
            records_decoded: f.source_decoded.with_label_values(&[job, source]),
            dead_letters: f.dead_letters.with_label_values(&[job, source]),
            watermark: f.watermark.with_label_values(&[job, source, &worker.to_string()]),
        }
    }
}

/// Metrics of one feature set.
#[derive(Clone)]
pub struct WindowMetrics {
    /// Late rows.
    pub late_rows: IntCounter,
    /// Window results emitted.
    pub results: IntCounter,
}

impl WindowMetrics {
    /// The metrics of `feature_set` in `job`.
    pub fn new(job: &str, feature_set: &str) -> WindowMetrics {
        let f = families();
        WindowMetrics {
            late_rows: f.late_rows.with_label_values(&[job, feature_set]),
            results: f.window_results.with_label_values(&[job, feature_set]),
        }
    }
}

/// Metrics of one sink.
#[derive(Clone)]
pub struct SinkMetrics {
    /// Records written.
    pub records: IntCounter,
    /// Commits.
    pub commits: IntCounter,
    /// Commit durations.
    pub commit_seconds: Histogram,
}

impl SinkMetrics {
    /// The metrics of `sink` in `job`.
    pub fn new(job: &str, sink: &str) -> SinkMetrics {
        let f = families();
        SinkMetrics {
            records: f.sink_records.with_label_values(&[job, sink]),
            commits: f.sink_commits.with_label_values(&[job, sink]),
            commit_seconds: f.commit_seconds.with_label_values(&[job, sink]),
        }
    }
}

/// Records a prediction and its latency.
pub fn observe_prediction(job: &str, kind: &str, model_version: &str, latency_ms: f64) {
    let f = families();
    f.predictions.with_label_values(&[job, kind, model_version]).inc();
    f.prediction_latency.with_label_values(&[job, kind]).observe(latency_ms);
}

/// Records the model version a worker scores with; `switched` when it just hot-reloaded.
pub fn observe_model_version(job: &str, model: &str, worker: usize, version: u64, switched: bool) {
    let f = families();
    f.model_version
        .with_label_values(&[job, model, &worker.to_string()])
        .set(version as i64);
    if switched {
        f.model_switches.with_label_values(&[job, model]).inc();
    }
}

/// Records live predictions resolved by the match result: `correct` of `total` were on the winner's side.
pub fn observe_model_outcomes(job: &str, variant: &str, model_version: &str, correct: u64, total: u64) {
    let f = families();
    f.model_outcomes
        .with_label_values(&[job, variant, model_version, "correct"])
        .inc_by(correct);
    f.model_outcomes
        .with_label_values(&[job, variant, model_version, "wrong"])
        .inc_by(total.saturating_sub(correct));
}

/// Records a feature-store write batch.
pub fn observe_feature_store(store: &str, written: u64, stale: u64, seconds: f64) {
    let f = families();
    f.feature_store_writes
        .with_label_values(&[store, "written"])
        .inc_by(written);
    f.feature_store_writes
        .with_label_values(&[store, "stale"])
        .inc_by(stale);
    f.feature_store_seconds.observe(seconds);
}

/// Sum of a counter family over all label values whose `label` equals `value`.
pub fn counter_sum(name: &str, label: &str, value: &str) -> u64 {
    let full = format!("riftstream_{name}");
    registry()
        .gather()
        .iter()
        .filter(|mf| mf.name() == full)
        .flat_map(|mf| mf.get_metric().iter())
        .filter(|m| value.is_empty() || m.get_label().iter().any(|l| l.name() == label && l.value() == value))
        .map(|m| m.get_counter().value() as u64)
        .sum()
}

/// Counter of duplicates dropped from silver `table` by `job`.
pub fn duplicates(job: &str, table: &str) -> IntCounter {
    static C: OnceLock<IntCounterVec> = OnceLock::new();
    C.get_or_init(|| {
        let c = IntCounterVec::new(
            Opts::new(
                "silver_duplicates_total",
                "Records dropped as duplicates of a business key",
            ),
            &["job", "table"],
        )
        .expect("valid counter");
        registry().register(Box::new(c.clone())).expect("unique counter");
        c
    })
    .with_label_values(&[job, table])
}
