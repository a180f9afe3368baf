//! The admin HTTP endpoint: Prometheus `/metrics` and a `/health` probe.

use axum::routing::get;
use axum::Router;

/// Serves `/metrics` and `/health` on `addr` in the I/O runtime until the
/// process exits. A port already in use is logged, not fatal.
pub fn serve(addr: &str) {
    let addr = addr.to_string();
    crate::util::io_runtime().spawn(async move {
        let app = Router::new()
            .route("/metrics", get(|| async { crate::metrics::render() }))
            .route("/health", get(|| async { "ok" }));
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
