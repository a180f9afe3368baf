//! The admin HTTP API of a cluster, served by process 0 (axum).
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the status page: the jobs table, refreshed every 2 s |
//! | `GET /jobs` | every job: state, uptime, rates, lag, watermark delay, checkpoint |
//! | `GET /jobs/{id}` | one job, with its sources and sinks |
//! | `POST /jobs` | submit `{"name": …}` (a job of the running topology) or `{"file": …, "path": …}` (a job file) |
//! | `POST /jobs/{id}/cancel[?savepoint=true]` | cancel (after a final checkpoint) |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /health` | `200 ok`, or `503` naming each job whose latest run failed |
//! | `GET /ready` | `200` once the workers run |
//!
//! Errors are JSON `{"error": …, "kind": …}` with 400 (a job file that
//! fails validation, a bad request), 404 (an unknown job id), 409 (a name
//! already running) or 503 (the cluster is stopping).
//!
//! # Security
//! Bound to a loopback address, the API is open to local users. Bound
//! elsewhere it needs a bearer token (`runtime.admin_token` or
//! `RIFT_ADMIN_TOKEN`; starting without one is a configuration error);
//! every route but `/`, `/health` and `/ready` then answers 401 without
//! it. The token is compared in constant time and never logged.

use super::catalog::JobStatus;
use super::service::{Service, Submission};
use crate::config::Topology;
use crate::error::{ErrorKind, Result, RiftError};
use crate::jobs::RunShared;
use crate::metrics::Metrics;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

/// The status page.
const STATUS_PAGE: &str = include_str!("status.html");

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    shared: Arc<RunShared>,
    service: Option<Arc<Service>>,
    token: Option<Arc<String>>,
}

/// The admin token of `topology` (its `runtime.admin_token`, else
/// `RIFT_ADMIN_TOKEN`). Bound off loopback, one is required.
pub fn token(topology: &Topology) -> Result<Option<String>> {
    let token = topology
        .runtime
        .admin_token
        .clone()
        .or_else(|| std::env::var("RIFT_ADMIN_TOKEN").ok())
        .filter(|t| !t.is_empty());
    if let Some(addr) = &topology.runtime.admin_addr {
        if token.is_none() && !is_loopback(addr) {
            return Err(RiftError::config(
                &topology.file,
                "runtime.admin_token",
                format!("the admin API on {addr} is reachable from other hosts: set a token (or RIFT_ADMIN_TOKEN), or bind 127.0.0.1"),
            ));
        }
    }
    Ok(token)
}

/// Whether `addr` (`host:port`) binds a loopback interface only.
fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in constant time.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let open = matches!(request.uri().path(), "/" | "/health" | "/ready");
    match &state.token {
        Some(token) if !open && !authorized(request.headers(), token) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({"error": "a bearer token is required", "kind": "unauthorized"})),
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

/// An error as the API answers it.
fn error(status: StatusCode, e: &RiftError) -> Response {
    let kind = match e.kind() {
        ErrorKind::Usage => "usage",
        ErrorKind::Config => "config",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Data => "data",
        ErrorKind::Internal => "internal",
    };
    (status, Json(serde_json::json!({"error": e.to_string(), "kind": kind}))).into_response()
}

fn no_service() -> Response {
    error(
        StatusCode::NOT_FOUND,
        &RiftError::Usage("this process does not serve jobs (process 0 does)".into()),
    )
}

async fn list(State(state): State<AdminState>) -> Response {
    match &state.service {
        Some(s) => Json(serde_json::json!({ "jobs": s.list() })).into_response(),
        None => no_service(),
    }
}

async fn detail(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let Some(service) = &state.service else {
        return no_service();
    };
    match service.detail(&id) {
        Some(d) => Json(d).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            &RiftError::Usage(format!("no job with id `{id}`")),
        ),
    }
}

async fn submit(State(state): State<AdminState>, body: axum::body::Bytes) -> Response {
    let Some(service) = state.service.clone() else {
        return no_service();
    };
    let submission: Submission = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &RiftError::Usage(format!("a submission: {e}"))),
    };
    // Validation builds the job: off the I/O threads.
    let result = tokio::task::spawn_blocking(move || service.submit(&submission)).await;
    match result {
        Ok(Ok(record)) => (
            StatusCode::CREATED,
            Json(serde_json::json!({"id": record.id, "name": record.name, "state": record.state})),
        )
            .into_response(),
        Ok(Err(e)) if e.to_string().contains("is already") => error(StatusCode::CONFLICT, &e),
        Ok(Err(e)) if e.kind() == ErrorKind::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, &e),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, &e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &RiftError::Internal(e.to_string())),
    }
}

#[derive(serde::Deserialize)]
struct CancelQuery {
    #[serde(default)]
    savepoint: bool,
}

async fn cancel(State(state): State<AdminState>, Path(id): Path<String>, Query(q): Query<CancelQuery>) -> Response {
    let Some(service) = &state.service else {
        return no_service();
    };
    match service.cancel(&id, q.savepoint) {
        Ok(record) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"id": record.id, "name": record.name, "state": record.state, "savepoint": record.savepoint})),
        )
            .into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, &e),
    }
}

/// The `/health` answer: 503 naming each job whose latest run failed.
fn health(state: &AdminState) -> (StatusCode, String) {
    let failed: std::collections::BTreeMap<String, String> = match &state.service {
        Some(service) => {
            let mut latest = std::collections::BTreeMap::new();
            for job in service.list() {
                latest.insert(job.name.clone(), job);
            }
            latest
                .into_values()
                .filter(|j| j.state == JobStatus::Failed)
                .map(|j| (j.name, j.reason.unwrap_or_default()))
                .collect()
        }
        None => state.shared.failures(),
    };
    if failed.is_empty() {
        return (StatusCode::OK, "ok".into());
    }
    let body = serde_json::json!({ "status": "failed", "failed_jobs": failed });
    (StatusCode::SERVICE_UNAVAILABLE, body.to_string())
}

/// The admin routes.
fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(|| async { Html(STATUS_PAGE) }))
        .route("/jobs", get(list).post(submit))
        .route("/jobs/{id}", get(detail))
        .route("/jobs/{id}/cancel", post(cancel))
        .route(
            "/metrics",
            get(|State(s): State<AdminState>| async move { s.metrics.render() }),
        )
        .route("/health", get(|State(s): State<AdminState>| async move { health(&s) }))
        .route("/ready", get(|| async { "ready" }))
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// Binds `addr` (failing fast if it cannot) and serves the admin routes in
/// the I/O runtime until the process exits.
pub fn serve(
    addr: &str,
    token: Option<String>,
    metrics: Arc<Metrics>,
    shared: Arc<RunShared>,
    service: Option<Arc<Service>>,
) -> Result<()> {
    let listener = crate::util::block_on(tokio::net::TcpListener::bind(addr.to_string()))
        .map_err(|e| RiftError::external("admin", format!("cannot listen on {addr}: {e}"), false))?;
    let app = router(AdminState {
        metrics,
        shared,
        service,
        token: token.map(Arc::new),
    });
    let addr = addr.to_string();
    crate::util::io_runtime().spawn(async move {
        tracing::info!(%addr, "admin endpoint listening");
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(%addr, error = %e, "admin endpoint stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn request(port: u16, method: &str, path: &str, auth: Option<&str>) -> String {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin endpoint listens");
        let auth = auth
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    fn port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn health_turns_503_naming_the_job_when_one_fails() {
        let port = port();
        let shared = Arc::new(RunShared::default());
        let metrics = Metrics::new();
        metrics.source("lake", "matches", 0).records_in.inc();
        serve(&format!("127.0.0.1:{port}"), None, metrics, shared.clone(), None).unwrap();
        let ok = request(port, "GET", "/health", None);
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(request(port, "GET", "/metrics", None)
            .contains("riftstream_source_records_total{job=\"lake\",source=\"matches\"} 1"));
        shared.fail("features", "sink online: redis: connection refused".into());
        let failed = request(port, "GET", "/health", None);
        assert!(failed.starts_with("HTTP/1.1 503"), "{failed}");
        assert!(
            failed.contains("\"features\":\"sink online: redis: connection refused\""),
            "{failed}"
        );
    }

    #[test]
    fn with_a_token_every_route_but_the_probes_and_the_page_wants_it() {
        let port = port();
        serve(
            &format!("127.0.0.1:{port}"),
            Some("s3cret-token".into()),
            Metrics::new(),
            Arc::default(),
            None,
        )
        .unwrap();
        for path in ["/metrics", "/jobs", "/jobs/j-000001"] {
            for wrong in [None, Some("s3cret-tokeN"), Some("s3cret"), Some("")] {
                let r = request(port, "GET", path, wrong);
                assert!(r.starts_with("HTTP/1.1 401"), "{path} with {wrong:?}: {r}");
                assert!(!r.contains("s3cret-token"), "the token is never echoed");
            }
        }
        let r = request(port, "POST", "/jobs/j-000001/cancel", None);
        assert!(r.starts_with("HTTP/1.1 401"), "{r}");
        assert!(request(port, "GET", "/metrics", Some("s3cret-token")).starts_with("HTTP/1.1 200"));
        for open in ["/", "/health", "/ready"] {
            assert!(request(port, "GET", open, None).starts_with("HTTP/1.1 200"), "{open}");
        }
    }

    #[test]
    fn off_loopback_without_a_token_is_a_configuration_error() {
        assert!(is_loopback("127.0.0.1:9464") && is_loopback("localhost:1") && is_loopback("[::1]:80"));
        assert!(!is_loopback("0.0.0.0:9464") && !is_loopback("10.0.0.5:80") && !is_loopback("[::]:80"));
        let text = "[runtime]\nadmin_addr = \"0.0.0.0:9464\"\n";
        let topology = Topology::parse(text, "t.toml").unwrap();
        let e = token(&topology).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("runtime.admin_token"), "{e}");
        let with = Topology::parse(&format!("{text}admin_token = \"x\"\n"), "t.toml").unwrap();
        assert_eq!(token(&with).unwrap().as_deref(), Some("x"));
    }
}
