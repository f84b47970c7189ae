//! `GET /metrics`: the server's counters in the Prometheus text format.
//!
//! Counting stays off the hot path's locks: every counter is an atomic,
//! requests are counted in a fixed table indexed by route and status (the
//! label sets are known in advance, so nothing is allocated per request and
//! the number of series stays bounded whatever paths clients invent). Gauges
//! that live elsewhere (who is online, the writer's statistics, the database
//! size, contained panics) are read only when a scrape asks for them.
//!
//! With `metrics_token` set, a scrape must send `Authorization: Bearer
//! <token>`; without it, `/metrics` answers everyone (it holds counts, no
//! names or contents).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::app::App;
use crate::error::Error;
use crate::rest;
use crate::store::{BATCH_SIZE_BOUNDS, COMMIT_MICROS_BOUNDS};

/// Paths answered outside the REST table that get their own `route` label.
const OTHER_ROUTES: [&str; 3] = ["/ws", "/healthz", "/metrics"];

/// Statuses counted under their own label; any other counts as "other".
const STATUSES: [u16; 19] = [
    101, 200, 204, 206, 304, 400, 401, 403, 404, 405, 409, 413, 416, 429, 431, 500, 503, 504, 507,
];

/// The server's counters. One per [`App`]; cheap to update from any task.
pub struct Metrics {
    /// Route labels: the REST paths, then [`OTHER_ROUTES`], then "other".
    routes: Vec<&'static str>,
    index: HashMap<&'static str, usize>,
    /// `routes.len()` rows of `STATUSES.len() + 1` counters.
    requests: Box<[AtomicU64]>,
    messages_stored: AtomicU64,
    messages_delivered: AtomicU64,
    /// The connection limit's semaphore and its size, once the server runs.
    slots: OnceLock<(Arc<Semaphore>, usize)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut routes: Vec<&'static str> = Vec::new();
        for (_, path) in rest::routes().chain(OTHER_ROUTES.iter().map(|p| ("", *p))) {
            if !routes.contains(&path) {
                routes.push(path);
            }
        }
        routes.push("other");
        let index = routes.iter().enumerate().map(|(i, r)| (*r, i)).collect();
        let requests = (0..routes.len() * (STATUSES.len() + 1))
            .map(|_| AtomicU64::new(0))
            .collect();
        Metrics {
            routes,
            index,
            requests,
            messages_stored: AtomicU64::new(0),
            messages_delivered: AtomicU64::new(0),
            slots: OnceLock::new(),
        }
    }

    /// Counts one answered request.
    pub fn record_request(&self, path: &str, status: u16) {
        let route = self
            .index
            .get(rest::route_label(path))
            .copied()
            .unwrap_or(self.routes.len() - 1);
        let status = STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(STATUSES.len());
        self.requests[route * (STATUSES.len() + 1) + status].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a message committed for the first time (resends do not count)
    /// and the live pushes it was queued as.
    pub fn record_message(&self, pushes: usize) {
        self.messages_stored.fetch_add(1, Ordering::Relaxed);
        self.messages_delivered
            .fetch_add(pushes as u64, Ordering::Relaxed);
    }

    /// Lets scrapes report open connections: `max - available permits`.
    pub fn track_connections(&self, slots: Arc<Semaphore>, max: usize) {
        let _ = self.slots.set((slots, max));
    }

    fn requests_with(&self, route: usize, status: usize) -> u64 {
        self.requests[route * (STATUSES.len() + 1) + status].load(Ordering::Relaxed)
    }
}

/// Answers `GET /metrics`.
pub async fn serve(app: &App, method: &Method, headers: &HeaderMap) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut resp = rest::error_response(&Error::MethodNotAllowed("use GET /metrics".into()));
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
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
pub async fn render(app: &App) -> String {
    let m = &app.metrics;
    let mut out = String::with_capacity(8 * 1024);

    if let Some((slots, max)) = m.slots.get() {
        let open = max.saturating_sub(slots.available_permits());
        gauge(
            &mut out,
            "rim_connections",
            "Open TCP connections, HTTP and WebSocket.",
            open as u64,
        );
        gauge(
            &mut out,
            "rim_connections_max",
            "The connection limit (limits.max_connections).",
            *max as u64,
        );
    }
    gauge(
        &mut out,
        "rim_websocket_connections",
        "WebSocket connections logged in right now.",
        app.hub.online_connections(),
    );
    gauge(
        &mut out,
        "rim_logged_in_users",
        "Users with at least one logged-in WebSocket.",
        app.hub.online_users() as u64,
    );
    counter(
        &mut out,
        "rim_messages_stored_total",
        "Messages committed to the database (resends not counted).",
        m.messages_stored.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "rim_messages_delivered_total",
        "Live pushes of new messages queued to logged-in connections.",
        m.messages_delivered.load(Ordering::Relaxed),
    );

    head(
        &mut out,
        "rim_http_requests_total",
        "counter",
        "Answered requests by route and status.",
    );
    for (r, route) in m.routes.iter().enumerate() {
        for s in 0..=STATUSES.len() {
            let n = m.requests_with(r, s);
            if n == 0 {
                continue;
            }
            let status = STATUSES
                .get(s)
                .map_or_else(|| "other".to_owned(), u16::to_string);
            let _ = writeln!(
                out,
                "rim_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
    }

    let w = app.db.writer_stats();
    counter(
        &mut out,
        "rim_writer_batches_total",
        "Transactions the writer committed or tried to.",
        w.batches,
    );
    counter(
        &mut out,
        "rim_writer_jobs_total",
        "Writes the writer ran.",
        w.jobs,
    );
    counter(
        &mut out,
        "rim_writer_failed_commits_total",
        "Batches whose commit failed.",
        w.failed_commits,
    );
    let batch_bounds: Vec<String> = BATCH_SIZE_BOUNDS.iter().map(u64::to_string).collect();
    histogram(
        &mut out,
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
        &mut out,
        "rim_writer_commit_seconds",
        "Time from BEGIN to the end of COMMIT (fsync included) per batch.",
        &commit_bounds,
        &w.commit_micros,
        &format!("{}", w.commit_micros_total as f64 / 1e6),
    );

    if let Ok(bytes) = app.db.size_bytes().await {
        gauge(
            &mut out,
            "rim_db_size_bytes",
            "Size of the database file (without its WAL).",
            bytes,
        );
    }
    counter(
        &mut out,
        "rim_panics_total",
        "Panics caught and contained (a request, a connection or a write job).",
        crate::server::panics(),
    );
    out
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
    fn requests_are_counted_by_route_and_status_with_bounded_labels() {
        let m = Metrics::new();
        m.record_request("/api/user/login", 200);
        m.record_request("/api/user/login", 200);
        m.record_request("/api/user/login", 401);
        m.record_request("/no/such/path/1", 404);
        m.record_request("/no/such/path/2", 418);
        let login = m.index["/api/user/login"];
        let ok = STATUSES.iter().position(|&s| s == 200).unwrap();
        assert_eq!(m.requests_with(login, ok), 2);
        let other = m.routes.len() - 1;
        assert_eq!(
            m.requests_with(other, STATUSES.len()),
            1,
            "418 counts as other"
        );
        assert!(m.index.contains_key("/ws") && m.index.contains_key("/metrics"));
    }

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
