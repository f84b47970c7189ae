//! The operator's endpoints beside the API: `GET /healthz` for probes and
//! `GET /metrics` in the Prometheus text format.
//!
//! The counters themselves live in [`crate::metrics`] (a leaf that `app`
//! updates); this module only reads them, and the gauges that live elsewhere
//! (who is online, the writer's statistics, the database size, contained
//! panics), when a scrape asks.
//!
//! With `metrics_token` set, a scrape must send `Authorization: Bearer
//! <token>`; without it, `/metrics` answers everyone (it holds counts, no
//! names or contents).

use std::fmt::Write as _;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::error::Error;
use crate::protocol;
use crate::rest;
use crate::store::{BATCH_SIZE_BOUNDS, COMMIT_MICROS_BOUNDS};

/// Answers a method other than GET or HEAD on a probe with 405 and `Allow`.
fn only_get(path: &str) -> Response<Full<Bytes>> {
    let mut resp = rest::error_response(&Error::MethodNotAllowed(format!("use GET {path}")));
    // RFC 9110: a 405 names the methods the resource does support.
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    resp
}

/// Answers `GET /healthz`: 200 when the database answers and can be
/// written (`Db::write_health`), 503 with the reason when not.
pub async fn health(app: &App, method: &Method) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return only_get("/healthz");
    }
    if let Err(e) = app.db.write_health().await {
        return rest::error_response(&Error::Unavailable(format!(
            "the database cannot be written: {}",
            e.message()
        )));
    }
    match app.db.ping().await {
        Ok(schema) => rest::json_response(
            StatusCode::OK,
            protocol::success(&protocol::Health {
                status: "ok",
                schema,
                connections: app.hub.online_connections(),
            }),
        ),
        Err(e) => rest::error_response(&e),
    }
}

/// Answers `GET /metrics`.
pub async fn metrics(app: &App, method: &Method, headers: &HeaderMap) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return only_get("/metrics");
    }
    if let Some(expected) = &app.config.metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compared as hashes: the comparison's time says nothing about the token.
        if Sha256::digest(sent.trim()) != Sha256::digest(expected) {
            let mut resp = rest::error_response(&Error::Unauthorized(
                "/metrics needs Authorization: Bearer <metrics_token>".into(),
            ));
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
    }
    let mut resp = Response::new(Full::new(Bytes::from(render(app).await)));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The exposition text of every metric.
async fn render(app: &App) -> String {
    let mut out = String::with_capacity(8 * 1024);
    connections(&mut out, app);
    requests(&mut out, &app.metrics);
    pushes(&mut out, &app.metrics);
    writer(&mut out, app);
    if let Ok(bytes) = app.db.size_bytes().await {
        gauge(
            &mut out,
            "rim_db_size_bytes",
            "Size of the database file (without its WAL).",
            bytes,
        );
    }
    gauge(
        &mut out,
        "rim_sqlite_memory_bytes",
        "Heap memory SQLite holds, every connection together (page caches, statements).",
        crate::store::sqlite_memory_bytes(),
    );
    counter(
        &mut out,
        "rim_panics_total",
        "Panics caught and contained (a request, a connection or a write job).",
        crate::metrics::panics(),
    );
    out
}

/// Connections, who is online, messages stored and delivered.
fn connections(out: &mut String, app: &App) {
    let m = &app.metrics;
    if let Some((open, max)) = m.connections() {
        gauge(
            out,
            "rim_connections",
            "Open TCP connections, HTTP and WebSocket.",
            open,
        );
        gauge(
            out,
            "rim_connections_max",
            "The connection limit (limits.max_connections).",
            max,
        );
    }
    gauge(
        out,
        "rim_websocket_connections",
        "WebSocket connections logged in right now.",
        app.hub.online_connections(),
    );
    gauge(
        out,
        "rim_websockets_before_login",
        "WebSocket connections not logged in (yet, or since a Logout).",
        app.limits.sockets_before_login.total() as u64,
    );
    gauge(
        out,
        "rim_logged_in_users",
        "Users with at least one logged-in WebSocket.",
        app.hub.online_users() as u64,
    );
    counter(
        out,
        "rim_messages_stored_total",
        "Messages committed to the database (resends not counted).",
        m.messages_stored(),
    );
    counter(
        out,
        "rim_messages_delivered_total",
        "Live pushes of new messages queued to logged-in connections.",
        m.messages_delivered(),
    );
}

/// Web Pushes by how they ended.
fn pushes(out: &mut String, m: &crate::metrics::Metrics) {
    head(
        out,
        "rim_push_sent_total",
        "counter",
        "Web Pushes by result: sent, gone (subscription removed), rejected, failed (after retries), dropped (queue full).",
    );
    for (result, n) in m.pushes() {
        let _ = writeln!(
            out,
            "rim_push_sent_total{{result=\"{}\"}} {n}",
            result.label()
        );
    }
}

/// Answered requests by route and status.
fn requests(out: &mut String, m: &crate::metrics::Metrics) {
    head(
        out,
        "rim_http_requests_total",
        "counter",
        "Answered requests by route and status.",
    );
    for (route, status, n) in m.requests() {
        let status = status.map_or_else(|| "other".to_owned(), |s| s.to_string());
        let _ = writeln!(
            out,
            "rim_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
}

/// The database writer's transactions.
fn writer(out: &mut String, app: &App) {
    let w = app.db.writer_stats();
    counter(
        out,
        "rim_writer_batches_total",
        "Transactions the writer committed or tried to.",
        w.batches,
    );
    counter(
        out,
        "rim_writer_jobs_total",
        "Writes the writer ran.",
        w.jobs,
    );
    counter(
        out,
        "rim_writer_failed_commits_total",
        "Batches whose commit failed.",
        w.failed_commits,
    );
    let batch_bounds: Vec<String> = BATCH_SIZE_BOUNDS.iter().map(u64::to_string).collect();
    histogram(
        out,
        "rim_writer_batch_size",
        "Writes per committed transaction.",
        &batch_bounds,
        &w.batch_sizes,
        &w.jobs.to_string(),
    );
    let commit_bounds: Vec<String> = COMMIT_MICROS_BOUNDS
        .iter()
        .map(|us| format!("{}", *us as f64 / 1e6))
        .collect();
    histogram(
        out,
        "rim_writer_commit_seconds",
        "Time from BEGIN to the end of COMMIT (fsync included) per batch.",
        &commit_bounds,
        &w.commit_micros,
        &format!("{}", w.commit_micros_total as f64 / 1e6),
    );
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    head(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    head(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

/// A histogram from per-bucket (not cumulative) counts; the last count is
/// the overflow bucket.
fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    bounds: &[String],
    counts: &[u64],
    sum: &str,
) {
    head(out, name, "histogram", help);
    let mut total = 0;
    for (bound, count) in bounds.iter().zip(counts) {
        total += count;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {total}");
    }
    total += counts.get(bounds.len()).copied().unwrap_or(0);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let mut out = String::new();
        histogram(
            &mut out,
            "h",
            "help",
            &["1".into(), "2".into()],
            &[1, 2, 3],
            "9",
        );
        assert!(out.contains("h_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"2\"} 3\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 6\n"), "{out}");
        assert!(out.contains("h_sum 9\nh_count 6\n"), "{out}");
    }
}
