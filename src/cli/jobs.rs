//! `riftstream submit | jobs | job | cancel`: a client of a running
//! cluster's admin API (`--admin URL` or `RIFT_ADMIN`, token from
//! `RIFT_ADMIN_TOKEN`).
//!
//! Each failure has its own exit code (see the table in `cli`): the cluster
//! unreachable (4, with the address tried), a job file that fails
//! validation (3, file and key), no such job id (6), a name already
//! running (7), a refused token (8).

use super::Exit;
use serde_json::Value;
use std::time::Duration;

/// Where the cluster's admin API is.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminArgs {
    /// The admin API of process 0 (its `runtime.admin_addr`).
    #[arg(long, env = "RIFT_ADMIN", default_value = "http://127.0.0.1:9464")]
    admin: String,
    /// Bearer token, when the API is bound off loopback.
    #[arg(long, env = "RIFT_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

fn exit(message: impl Into<String>, code: i32) -> anyhow::Error {
    Exit {
        message: message.into(),
        code,
    }
    .into()
}

impl AdminArgs {
    fn url(&self, path: &str) -> String {
        let base = self.admin.trim_end_matches('/');
        if base.contains("://") {
            format!("{base}{path}")
        } else {
            format!("http://{base}{path}")
        }
    }

    /// Calls the API; non-2xx answers become errors with their exit codes.
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| exit(format!("HTTP client: {e}"), 70))?;
        let url = self.url(path);
        let mut request = client.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().map_err(|e| {
            exit(
                format!("cannot reach the cluster's admin API at {url}: {e} (is `riftstream run` up? set --admin or RIFT_ADMIN)"),
                4,
            )
        })?;
        let status = response.status();
        let body: Value = response.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"].as_str().unwrap_or("no reason given").to_string();
        let code = match (status.as_u16(), body["kind"].as_str()) {
            (401, _) => {
                return Err(exit(
                    format!("the admin API at {url} refused the token: set RIFT_ADMIN_TOKEN"),
                    8,
                ))
            }
            (404, _) => 6,
            (409, _) => 7,
            (_, Some("config")) => 3,
            (503, _) => 4,
            _ => 2,
        };
        Err(exit(message, code))
    }
}

/// `riftstream submit NAME|FILE.toml`.
pub fn submit(admin: &AdminArgs, job: &str) -> anyhow::Result<()> {
    let path = std::path::Path::new(job);
    let body = if job.ends_with(".toml") || path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| exit(format!("{job}: {e}"), 2))?;
        serde_json::json!({ "file": text, "path": job })
    } else {
        serde_json::json!({ "name": job })
    };
    let answer = admin.call(reqwest::Method::POST, "/jobs", Some(body))?;
    println!(
        "submitted {} as {} ({})",
        answer["name"].as_str().unwrap_or(job),
        answer["id"].as_str().unwrap_or("?"),
        answer["state"].as_str().unwrap_or("?")
    );
    Ok(())
}

fn uptime(seconds: Option<f64>) -> String {
    let Some(s) = seconds else { return "-".into() };
    let s = s as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

fn or_dash(v: &Value, f: impl Fn(&Value) -> Option<String>) -> String {
    f(v).unwrap_or_else(|| "-".into())
}

/// The jobs table.
pub fn table(jobs: &[Value]) -> String {
    let mut rows = vec![["ID", "NAME", "STATE", "UPTIME", "IN/S", "OUT/S", "LAG", "WM DELAY"].map(String::from)];
    for j in jobs {
        let mut state = j["state"].as_str().unwrap_or("?").to_string();
        if let Some(reason) = j["reason"].as_str() {
            state = format!("{state}: {reason}");
        }
        rows.push([
            j["id"].as_str().unwrap_or("?").into(),
            j["name"].as_str().unwrap_or("?").into(),
            state,
            uptime(j["uptime_s"].as_f64()),
            format!("{:.1}", j["records_in_per_s"].as_f64().unwrap_or(0.0)),
            format!("{:.1}", j["records_out_per_s"].as_f64().unwrap_or(0.0)),
            or_dash(&j["lag"], |v| v.as_u64().map(|l| l.to_string())),
            or_dash(&j["watermark_delay_ms"], |v| {
                v.as_i64().map(|ms| format!("{:.1}s", ms as f64 / 1e3))
            }),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `riftstream jobs [--json]`.
pub fn list(admin: &AdminArgs, json: bool) -> anyhow::Result<()> {
    let answer = admin.call(reqwest::Method::GET, "/jobs", None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer["jobs"])?);
    } else {
        let jobs = answer["jobs"].as_array().cloned().unwrap_or_default();
        println!("{}", table(&jobs));
    }
    Ok(())
}

/// `riftstream job ID`.
pub fn show(admin: &AdminArgs, id: &str, json: bool) -> anyhow::Result<()> {
    let job = admin.call(reqwest::Method::GET, &format!("/jobs/{id}"), None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&job)?);
        return Ok(());
    }
    println!("{}", table(std::slice::from_ref(&job)));
    println!(
        "\nrecords in {}, out {}; last checkpoint {} ({} ago); defined in {}",
        job["records_in"],
        job["records_out"],
        or_dash(&job["last_checkpoint"], |v| v.as_u64().map(|c| c.to_string())),
        or_dash(&job["checkpoint_age_s"], |v| v.as_f64().map(|a| format!("{a:.1}s"))),
        job["definition_file"].as_str().unwrap_or("?")
    );
    for s in job["sources"].as_array().into_iter().flatten() {
        println!(
            "source {}: {} read, watermark delay {}, lag {}",
            s["name"].as_str().unwrap_or("?"),
            s["records_in"],
            or_dash(&s["watermark_delay_ms"], |v| v
                .as_i64()
                .map(|ms| format!("{:.1}s", ms as f64 / 1e3))),
            or_dash(&s["lag"], |v| v.as_u64().map(|l| l.to_string())),
        );
    }
    for s in job["sinks"].as_array().into_iter().flatten() {
        let now = crate::util::now_ms();
        println!(
            "sink {}: {} written, {} commits, last commit {}",
            s["name"].as_str().unwrap_or("?"),
            s["records_out"],
            s["commits"],
            or_dash(&s["last_commit_ms"], |v| v
                .as_i64()
                .map(|t| format!("{:.1}s ago", (now - t).max(0) as f64 / 1e3))),
        );
    }
    Ok(())
}

/// `riftstream cancel ID [--savepoint]`.
pub fn cancel(admin: &AdminArgs, id: &str, savepoint: bool) -> anyhow::Result<()> {
    let path = format!("/jobs/{id}/cancel{}", if savepoint { "?savepoint=true" } else { "" });
    let answer = admin.call(reqwest::Method::POST, &path, None)?;
    println!(
        "{} ({}) is {}{}",
        id,
        answer["name"].as_str().unwrap_or("?"),
        answer["state"].as_str().unwrap_or("?"),
        if savepoint { ", taking a savepoint" } else { "" }
    );
    Ok(())
}
