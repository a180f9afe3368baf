//! The admin HTTP endpoint: Prometheus `/metrics` and a `/health` probe
//! that reflects the jobs' health.
//!
//! `/health` answers `200 ok` while every job of the run is healthy, and
//! `503` with a JSON body naming each failed job and its reason once one
//! has failed (the other jobs keep running), so an orchestrator's probe sees
//! a broken job instead of a live process.

use crate::jobs::RunShared;
use crate::metrics::Metrics;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// The admin routes over a run's metrics and shared job state.
pub fn router(metrics: Arc<Metrics>, shared: Arc<RunShared>) -> Router {
    Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/health", get(move || async move { health(&shared) }))
}

/// The `/health` answer for the jobs' current state.
pub fn health(shared: &RunShared) -> (StatusCode, String) {
    let failed = shared.failures();
    if failed.is_empty() {
        return (StatusCode::OK, "ok".into());
    }
    let body = serde_json::json!({ "status": "failed", "failed_jobs": failed });
    (StatusCode::SERVICE_UNAVAILABLE, body.to_string())
}

/// Serves the admin routes on `addr` in the I/O runtime until the process
/// exits. A port already in use is logged, not fatal.
pub fn serve(addr: &str, metrics: Arc<Metrics>, shared: Arc<RunShared>) {
    let addr = addr.to_string();
    let app = router(metrics, shared);
    crate::util::io_runtime().spawn(async move {
        match tokio::net::TcpListener::bind(&addr).await {
            Ok(listener) => {
                tracing::info!(%addr, "admin endpoint listening");
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::warn!(%addr, error = %e, "admin endpoint stopped");
                }
            }
            Err(e) => tracing::warn!(%addr, error = %e, "admin endpoint not started"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(port: u16, path: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut stream = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "admin endpoint did not start: {e}"
                    );
                    std::thread::yield_now();
                }
            }
        };
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn health_turns_503_naming_the_job_when_one_fails() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let shared = Arc::new(RunShared::default());
        let metrics = Metrics::new();
        metrics.source("lake", "matches", 0).records_in.inc();
        serve(&format!("127.0.0.1:{port}"), metrics, shared.clone());
        let ok = get(port, "/health");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(get(port, "/metrics").contains("riftstream_source_records_total{job=\"lake\",source=\"matches\"} 1"));
        shared.fail("features", "sink online: redis: connection refused".into());
        let failed = get(port, "/health");
        assert!(failed.starts_with("HTTP/1.1 503"), "{failed}");
        assert!(
            failed.contains("\"features\":\"sink online: redis: connection refused\""),
            "{failed}"
        );
    }
}
