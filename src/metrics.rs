//! Prometheus metrics, defined in one place and typed per component, so every
//! source, operator and sink reports the same standard series.
//!
//! A [`Metrics`] owns a registry and every metric family. A run reports to
//! the one it is given: the CLI uses the process-wide [`Metrics::global`]
//! (served as `/metrics` by the admin endpoint), and tests give each run
//! its own, so counters compare exactly instead of accumulating across tests.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

struct Families {
    registry: Registry,
    source_records: IntCounterVec,
    source_decoded: IntCounterVec,
    dead_letters: IntCounterVec,
    watermark: IntGaugeVec,
    source_lag: IntGaugeVec,
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
    duplicates: IntCounterVec,
    compacted_files: IntCounterVec,
    compactions: IntCounterVec,
    sink_errors: IntCounterVec,
    job_failed: IntGaugeVec,
    checkpoint_seconds: HistogramVec,
    checkpoint_bytes: IntGaugeVec,
    checkpoint_completed: IntGaugeVec,
    restore_ms: IntGaugeVec,
}

impl Families {
    fn new() -> Families {
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
        let checkpoint_seconds = HistogramVec::new(
            HistogramOpts::new(
                "checkpoint_seconds",
                "From a checkpoint's epoch boundary until it is complete on every worker",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            &["job"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(checkpoint_seconds.clone()))
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
            compacted_files: counter(
                "lake_compacted_files_total",
                "Small lake files merged away by background compaction",
                &["job", "table"],
            ),
            compactions: counter(
                "lake_compactions_total",
                "Background compaction commits (one per merged file)",
                &["job", "table"],
            ),
            duplicates: counter(
                "silver_duplicates_total",
                "Records dropped as duplicates of a business key",
                &["job", "table"],
            ),
            sink_errors: counter(
                "sink_errors_total",
                "Failed sink writes and commits (each retried)",
                &["job", "sink"],
            ),
            job_failed: gauge(
                "job_failed",
                "1 when a job failed (it is dropped from every worker)",
                &["job"],
            ),
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
            source_lag: gauge(
                "source_lag",
                "Records between a source's read position and the end of its partitions on this worker (Kafka)",
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
            checkpoint_bytes: gauge(
                "checkpoint_bytes",
                "State written by the latest complete checkpoint (changes only)",
                &["job"],
            ),
            checkpoint_completed: gauge(
                "checkpoint_last_complete_timestamp_seconds",
                "When the latest checkpoint completed (its age: time() minus this)",
                &["job"],
            ),
            restore_ms: gauge(
                "checkpoint_restore_ms",
                "Time this run took to restore the job from its checkpoint",
                &["job"],
            ),
            checkpoint_seconds,
            commit_seconds,
            prediction_latency,
            feature_store_seconds,
            registry,
        }
    }
}

/// A registry with every metric family of riftstream.
pub struct Metrics {
    f: Families,
    /// Per (job, kind): arrival-to-prediction latency in µs, HDR-recorded
    /// (Prometheus buckets are too coarse for p99.9).
    latencies: std::sync::Mutex<BTreeMap<(String, String), hdrhistogram::Histogram<u64>>>,
}

/// Percentiles of one job's prediction latency, from its HDR histogram.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    /// The job.
    pub job: String,
    /// `live` or `pre_game`.
    pub kind: String,
    /// Predictions recorded.
    pub count: u64,
    /// Percentiles and maximum, ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry (for a test, or a second engine in one process).
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics {
            f: Families::new(),
            latencies: Default::default(),
        })
    }

    /// The process-wide registry the CLI reports to.
    pub fn global() -> Arc<Metrics> {
        static G: OnceLock<Arc<Metrics>> = OnceLock::new();
        G.get_or_init(Metrics::new).clone()
    }

    /// Prediction latency percentiles per job and kind, since the process started.
    pub fn latency_summaries(&self) -> Vec<LatencySummary> {
        let Ok(latencies) = self.latencies.lock() else {
            return Vec::new();
        };
        let ms = |us: u64| us as f64 / 1000.0;
        latencies
            .iter()
            .map(|((job, kind), h)| LatencySummary {
                job: job.clone(),
                kind: kind.clone(),
                count: h.len(),
                p50_ms: ms(h.value_at_quantile(0.5)),
                p99_ms: ms(h.value_at_quantile(0.99)),
                p999_ms: ms(h.value_at_quantile(0.999)),
                max_ms: ms(h.max()),
            })
            .collect()
    }

    fn record_latency(&self, job: &str, kind: &str, latency_ms: f64) {
        let Ok(mut latencies) = self.latencies.lock() else {
            return;
        };
        let us = ((latency_ms * 1000.0) as u64).max(1);
        // A handful of entries: a scan costs less than building a key per prediction.
        if let Some((_, h)) = latencies.iter_mut().find(|((j, k), _)| j == job && k == kind) {
            h.saturating_record(us);
            return;
        }
        // 1 µs to 1 h at 3 significant digits; larger values saturate.
        if let Ok(mut h) = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3) {
            h.saturating_record(us);
            latencies.insert((job.to_string(), kind.to_string()), h);
        }
    }

    /// The registry itself.
    pub fn registry(&self) -> &Registry {
        &self.f.registry
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry().gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The metrics of `source` in `job` on `worker`.
    pub fn source(&self, job: &str, source: &str, worker: usize) -> SourceMetrics {
        let f = &self.f;
        SourceMetrics {
            records_in: f.source_records.with_label_values(&[job, source]),
            records_decoded: f.source_decoded.with_label_values(&[job, source]),
            dead_letters: f.dead_letters.with_label_values(&[job, source]),
            watermark: f.watermark.with_label_values(&[job, source, &worker.to_string()]),
            lag: LagGauge {
                family: f.source_lag.clone(),
                labels: [job.to_string(), source.to_string(), worker.to_string()],
            },
        }
    }

    /// The metrics of `feature_set` in `job`.
    pub fn window(&self, job: &str, feature_set: &str) -> WindowMetrics {
        WindowMetrics {
            late_rows: self.f.late_rows.with_label_values(&[job, feature_set]),
            results: self.f.window_results.with_label_values(&[job, feature_set]),
        }
    }

    /// The metrics of `sink` in `job`.
    pub fn sink(&self, job: &str, sink: &str) -> SinkMetrics {
        let f = &self.f;
        SinkMetrics {
            records: f.sink_records.with_label_values(&[job, sink]),
            commits: f.sink_commits.with_label_values(&[job, sink]),
            errors: f.sink_errors.with_label_values(&[job, sink]),
            commit_seconds: f.commit_seconds.with_label_values(&[job, sink]),
        }
    }

    /// Background compaction of `job`'s lake `table`: (merges, files merged away).
    pub fn compaction(&self, job: &str, table: &str) -> (IntCounter, IntCounter) {
        (
            self.f.compactions.with_label_values(&[job, table]),
            self.f.compacted_files.with_label_values(&[job, table]),
        )
    }

    /// Counter of duplicates dropped from silver `table` by `job`.
    pub fn duplicates(&self, job: &str, table: &str) -> IntCounter {
        self.f.duplicates.with_label_values(&[job, table])
    }

    /// The checkpoint metrics of `job`.
    pub fn checkpoints(&self, job: &str) -> CheckpointMetrics {
        let f = &self.f;
        CheckpointMetrics {
            seconds: f.checkpoint_seconds.with_label_values(&[job]),
            bytes: f.checkpoint_bytes.with_label_values(&[job]),
            completed: f.checkpoint_completed.with_label_values(&[job]),
            restore_ms: f.restore_ms.with_label_values(&[job]),
        }
    }

    /// Whether `job` failed (1) or runs (0).
    pub fn job_failed(&self, job: &str) -> IntGauge {
        self.f.job_failed.with_label_values(&[job])
    }

    /// The model metrics of `job`.
    pub fn models(self: &Arc<Self>, job: &str) -> ModelMetrics {
        ModelMetrics {
            metrics: self.clone(),
            job: job.to_string(),
        }
    }

    /// The metrics of feature-store writes to `store` (the sink name).
    pub fn feature_store(&self, store: &str) -> FeatureStoreMetrics {
        FeatureStoreMetrics {
            written: self.f.feature_store_writes.with_label_values(&[store, "written"]),
            stale: self.f.feature_store_writes.with_label_values(&[store, "stale"]),
            seconds: self.f.feature_store_seconds.clone(),
        }
    }

    /// Sum of a counter family over all label values whose `label` equals
    /// `value` (every series when `value` is empty).
    pub fn counter_sum(&self, name: &str, label: &str, value: &str) -> u64 {
        self.series(name, label, value)
            .map(|m| m.get_counter().value() as u64)
            .sum()
    }

    /// The values of a gauge family's series whose `label` equals `value`.
    pub fn gauge_values(&self, name: &str, label: &str, value: &str) -> Vec<i64> {
        self.series(name, label, value)
            .map(|m| m.get_gauge().value() as i64)
            .collect()
    }

    /// Every series of family `name` (without the `riftstream_` prefix)
    /// whose `job` label is `job`: its labels and value (counters and gauges).
    pub fn job_series(&self, name: &str, job: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.series(name, "job", job)
            .map(|m| {
                let labels = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect();
                let value = if m.get_counter().is_some() {
                    m.get_counter().value()
                } else {
                    m.get_gauge().value()
                };
                (labels, value)
            })
            .collect()
    }

    fn series(&self, name: &str, label: &str, value: &str) -> impl Iterator<Item = prometheus::proto::Metric> {
        let full = format!("riftstream_{name}");
        let value = value.to_string();
        let label = label.to_string();
        self.registry()
            .gather()
            .into_iter()
            .filter(move |mf| mf.name() == full)
            .flat_map(|mf| mf.get_metric().to_vec())
            .filter(move |m| value.is_empty() || m.get_label().iter().any(|l| l.name() == label && l.value() == value))
    }
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
    /// Records behind the end of the partitions on this worker (Kafka).
    pub lag: LagGauge,
}

/// A source's lag gauge, created on first use: sources that cannot tell
/// their lag (files) have no series, rather than a misleading 0.
#[derive(Clone)]
pub struct LagGauge {
    family: IntGaugeVec,
    labels: [String; 3],
}

impl LagGauge {
    /// Records the lag.
    pub fn set(&self, lag: i64) {
        let [a, b, c] = &self.labels;
        self.family
            .with_label_values(&[a.as_str(), b.as_str(), c.as_str()])
            .set(lag);
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

/// The checkpoint metrics of a job.
#[derive(Clone)]
pub struct CheckpointMetrics {
    /// From the epoch boundary to completion.
    pub seconds: Histogram,
    /// State written by the latest complete checkpoint.
    pub bytes: IntGauge,
    /// When the latest checkpoint completed, Unix seconds.
    pub completed: IntGauge,
    /// Restore time of this run, ms.
    pub restore_ms: IntGauge,
}

/// Metrics of one sink.
#[derive(Clone)]
pub struct SinkMetrics {
    /// Records written.
    pub records: IntCounter,
    /// Commits.
    pub commits: IntCounter,
    /// Failed writes and commits.
    pub errors: IntCounter,
    /// Commit durations.
    pub commit_seconds: Histogram,
}

/// The model metrics of one job.
#[derive(Clone)]
pub struct ModelMetrics {
    metrics: Arc<Metrics>,
    job: String,
}

impl ModelMetrics {
    /// A prediction of `kind` by `model_version`, `latency_ms` after its input arrived.
    pub fn prediction(&self, kind: &str, model_version: &str, latency_ms: f64) {
        let f = &self.metrics.f;
        f.predictions.with_label_values(&[&self.job, kind, model_version]).inc();
        f.prediction_latency
            .with_label_values(&[&self.job, kind])
            .observe(latency_ms);
        self.metrics.record_latency(&self.job, kind, latency_ms);
    }

    /// A record of `source` dead-lettered because no model could score it yet.
    pub fn unscored(&self, source: &str) {
        self.metrics
            .f
            .dead_letters
            .with_label_values(&[&self.job, source])
            .inc();
    }

    /// The version `worker` scores `model` with; `switched` when it just hot-reloaded.
    pub fn version(&self, model: &str, worker: usize, version: u64, switched: bool) {
        let f = &self.metrics.f;
        f.model_version
            .with_label_values(&[&self.job, model, &worker.to_string()])
            .set(version as i64);
        if switched {
            f.model_switches.with_label_values(&[&self.job, model]).inc();
        }
    }

    /// Live predictions resolved by the match result: `correct` of `total` were on the winner's side.
    pub fn outcomes(&self, variant: &str, model_version: &str, correct: u64, total: u64) {
        let f = &self.metrics.f;
        f.model_outcomes
            .with_label_values(&[&self.job, variant, model_version, "correct"])
            .inc_by(correct);
        f.model_outcomes
            .with_label_values(&[&self.job, variant, model_version, "wrong"])
            .inc_by(total.saturating_sub(correct));
    }
}

/// The metrics of one feature store's writes.
#[derive(Clone)]
pub struct FeatureStoreMetrics {
    written: IntCounter,
    stale: IntCounter,
    seconds: Histogram,
}

impl FeatureStoreMetrics {
    /// A write batch: `written` updates applied, `stale` skipped, in `seconds`.
    pub fn observe(&self, written: u64, stale: u64, seconds: f64) {
        self.written.inc_by(written);
        self.stale.inc_by(stale);
        self.seconds.observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_registry_counts_only_its_own_runs() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.source("j", "s", 0).records_in.inc_by(3);
        b.source("j", "s", 1).records_in.inc_by(5);
        assert_eq!(a.counter_sum("source_records_total", "job", "j"), 3);
        assert_eq!(b.counter_sum("source_records_total", "job", "j"), 5);
        a.models("j").version("live", 0, 2, true);
        assert_eq!(a.gauge_values("model_version", "job", "j"), vec![2]);
        assert_eq!(a.counter_sum("model_switches_total", "model", "live"), 1);
        assert!(a.render().contains("riftstream_source_records_total"));
    }
}
