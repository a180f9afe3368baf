//! An HTTP stand-in for a Confluent Schema Registry, for tests only.
//!
//! No Confluent-compatible registry can be installed on this machine (it is
//! on no reachable package registry), so tests run against this stand-in. It
//! implements the documented REST endpoints riftstream and confluent-kafka's
//! Python client use, with their real status and error codes:
//!
//! | endpoint | success | errors |
//! |---|---|---|
//! | `POST /subjects/{s}/versions` | `{"id"}` (an identical schema keeps its id) | 409 incompatible, 422 / 42201 invalid schema |
//! | `POST /subjects/{s}` (lookup) | `{"subject","id","version","schema"}` | 404 / 40401 subject, 40403 schema |
//! | `GET /schemas/ids/{id}` | `{"schema"}` | 404 / 40403 |
//! | `GET /subjects`, `GET /subjects/{s}/versions` | lists | 404 / 40401 |
//! | `GET /subjects/{s}/versions/{v\|latest}` | `{"subject","id","version","schema"}` | 404 / 40401, 40402 |
//! | `POST /compatibility/subjects/{s}/versions/{v\|latest}` | `{"is_compatible"}` | 404 / 40401 |
//!
//! Compatibility is BACKWARD (the default of the real registry): a new
//! schema must read data written with the latest version.

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Registry {
    /// Schemas by id - 1.
    schemas: Vec<String>,
    /// (subject, [schema id per version]).
    subjects: Vec<(String, Vec<u32>)>,
    /// Requests served, for assertions.
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Registry>>;

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({"error_code": code, "message": message}))).into_response()
}

fn canonical(schema: &str) -> Option<String> {
    Schema::parse_str(schema).ok().map(|s| s.canonical_form())
}

async fn register(State(r): State<Shared>, Path(subject): Path<String>, Json(body): Json<Value>) -> Response {
    let mut reg = r.lock().unwrap();
    reg.requests.push(format!("register {subject}"));
    let Some(text) = body.get("schema").and_then(Value::as_str) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Invalid schema");
    };
    let Ok(new_schema) = Schema::parse_str(text) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Invalid schema");
    };
    let canon = new_schema.canonical_form();
    let versions = reg
        .subjects
        .iter()
        .find(|(s, _)| *s == subject)
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    for id in &versions {
        if canonical(&reg.schemas[*id as usize - 1]).as_deref() == Some(canon.as_str()) {
            return Json(json!({"id": id})).into_response();
        }
    }
    if let Some(latest) = versions.last() {
        let writer = Schema::parse_str(&reg.schemas[*latest as usize - 1]).unwrap();
        if SchemaCompatibility::can_read(&writer, &new_schema).is_err() {
            return error(
                StatusCode::CONFLICT,
                409,
                "Schema being registered is incompatible with an earlier schema",
            );
        }
    }
    let id = match reg
        .schemas
        .iter()
        .position(|s| canonical(s).as_deref() == Some(canon.as_str()))
    {
        Some(i) => i as u32 + 1,
        None => {
            reg.schemas.push(text.to_string());
            reg.schemas.len() as u32
        }
    };
    match reg.subjects.iter_mut().find(|(s, _)| *s == subject) {
        Some((_, v)) => v.push(id),
        None => reg.subjects.push((subject, vec![id])),
    }
    Json(json!({"id": id})).into_response()
}

async fn lookup(State(r): State<Shared>, Path(subject): Path<String>, Json(body): Json<Value>) -> Response {
    let mut reg = r.lock().unwrap();
    reg.requests.push(format!("lookup {subject}"));
    let Some((_, versions)) = reg.subjects.iter().find(|(s, _)| *s == subject).cloned() else {
        return error(StatusCode::NOT_FOUND, 40401, "Subject not found");
    };
    let canon = body.get("schema").and_then(Value::as_str).and_then(canonical);
    for (i, id) in versions.iter().enumerate() {
        if canonical(&reg.schemas[*id as usize - 1]) == canon {
            return Json(
                json!({"subject": subject, "id": id, "version": i + 1, "schema": reg.schemas[*id as usize - 1]}),
            )
            .into_response();
        }
    }
    error(StatusCode::NOT_FOUND, 40403, "Schema not found")
}

async fn by_id(State(r): State<Shared>, Path(id): Path<u32>) -> Response {
    let mut reg = r.lock().unwrap();
    reg.requests.push(format!("id {id}"));
    match reg.schemas.get((id as usize).wrapping_sub(1)) {
        Some(s) => Json(json!({"schema": s})).into_response(),
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    }
}

async fn subjects(State(r): State<Shared>) -> Response {
    let reg = r.lock().unwrap();
    Json(json!(reg.subjects.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>())).into_response()
}

async fn versions(State(r): State<Shared>, Path(subject): Path<String>) -> Response {
    let reg = r.lock().unwrap();
    match reg.subjects.iter().find(|(s, _)| *s == subject) {
        Some((_, v)) => Json(json!((1..=v.len()).collect::<Vec<_>>())).into_response(),
        None => error(StatusCode::NOT_FOUND, 40401, "Subject not found"),
    }
}

fn version_of(reg: &Registry, subject: &str, version: &str) -> Result<(usize, u32), Box<Response>> {
    let Some((_, v)) = reg.subjects.iter().find(|(s, _)| s == subject) else {
        return Err(Box::new(error(StatusCode::NOT_FOUND, 40401, "Subject not found")));
    };
    let n = if version == "latest" {
        v.len()
    } else {
        version.parse().unwrap_or(0)
    };
    match v.get(n.wrapping_sub(1)) {
        Some(id) => Ok((n, *id)),
        None => Err(Box::new(error(StatusCode::NOT_FOUND, 40402, "Version not found"))),
    }
}

async fn version(State(r): State<Shared>, Path((subject, version)): Path<(String, String)>) -> Response {
    let reg = r.lock().unwrap();
    match version_of(&reg, &subject, &version) {
        Ok((n, id)) => {
            Json(json!({"subject": subject, "id": id, "version": n, "schema": reg.schemas[id as usize - 1]}))
                .into_response()
        }
        Err(resp) => *resp,
    }
}

async fn compatibility(
    State(r): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let reg = r.lock().unwrap();
    let (_, id) = match version_of(&reg, &subject, &version) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let Some(new_schema) = body
        .get("schema")
        .and_then(Value::as_str)
        .and_then(|s| Schema::parse_str(s).ok())
    else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Invalid schema");
    };
    let writer = Schema::parse_str(&reg.schemas[id as usize - 1]).unwrap();
    Json(json!({"is_compatible": SchemaCompatibility::can_read(&writer, &new_schema).is_ok()})).into_response()
}

/// A running stand-in; it serves until the test process exits.
pub struct RegistryStub {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Shared,
}

impl RegistryStub {
    /// Starts a stand-in on a free loopback port.
    pub fn start() -> RegistryStub {
        let state: Shared = Arc::default();
        let app = Router::new()
            .route("/subjects", get(subjects))
            .route("/subjects/{subject}", post(lookup))
            .route("/subjects/{subject}/versions", get(versions).post(register))
            .route("/subjects/{subject}/versions/{version}", get(version))
            .route("/schemas/ids/{id}", get(by_id))
            .route(
                "/compatibility/subjects/{subject}/versions/{version}",
                post(compatibility),
            )
            .with_state(state.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        RegistryStub {
            url: format!("http://{addr}"),
            state,
        }
    }

    /// Requests served so far (`register S`, `lookup S`, `id N`).
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}
