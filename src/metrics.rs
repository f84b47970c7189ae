//! The server's counters: lock-free, cheap to update from any task.
//!
//! A leaf: it knows nothing of HTTP, routes or storage. Requests are counted
//! in a fixed table indexed by route label and status; the labels are given
//! when the table is made (the server passes its route table's), so nothing
//! is allocated per request and the number of series stays bounded whatever
//! paths clients invent. `server::probes` renders these for `GET /metrics`,
//! together with gauges that live elsewhere (who is online, the writer's
//! statistics, the database size).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

/// Statuses counted under their own label; any other counts as "other".
pub const STATUSES: [u16; 19] = [
    101, 200, 204, 206, 304, 400, 401, 403, 404, 405, 409, 413, 416, 429, 431, 500, 503, 504, 507,
];

/// The label of requests whose route is not one of the known ones.
pub const OTHER_ROUTE: &str = "other";

/// Panics caught and contained, process-wide (the panic hook counts them).
static PANICS: AtomicU64 = AtomicU64::new(0);

/// Counts one contained panic.
pub fn record_panic() {
    PANICS.fetch_add(1, Ordering::Relaxed);
}

/// How many panics the process has contained so far.
pub fn panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// How one Web Push ended, the `result` label of `rim_push_sent_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushResult {
    /// The push service took it (2xx).
    Sent,
    /// The subscription is gone (404 or 410) and was removed.
    Gone,
    /// Refused for good (another 4xx): not retried.
    Rejected,
    /// No success after the last retry (429, 5xx, timeouts, network errors).
    Failed,
    /// Not attempted: the push queue was full.
    Dropped,
}

impl PushResult {
    pub const ALL: [PushResult; 5] = [
        PushResult::Sent,
        PushResult::Gone,
        PushResult::Rejected,
        PushResult::Failed,
        PushResult::Dropped,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PushResult::Sent => "sent",
            PushResult::Gone => "gone",
            PushResult::Rejected => "rejected",
            PushResult::Failed => "failed",
            PushResult::Dropped => "dropped",
        }
    }
}

/// The server's counters. One per running server.
pub struct Metrics {
    /// Route labels as given, then [`OTHER_ROUTE`].
    routes: Vec<&'static str>,
    index: HashMap<&'static str, usize>,
    /// `routes.len()` rows of `STATUSES.len() + 1` counters.
    requests: Box<[AtomicU64]>,
    messages_stored: AtomicU64,
    messages_delivered: AtomicU64,
    /// Web Pushes by [`PushResult`], in the order of [`PushResult::ALL`].
    pushes: [AtomicU64; 5],
    /// The connection limit's semaphore and its size, once the server runs.
    slots: OnceLock<(Arc<Semaphore>, usize)>,
}

impl Metrics {
    /// Counters for requests labelled by `routes` (duplicates are counted once).
    pub fn new(routes: impl IntoIterator<Item = &'static str>) -> Metrics {
        let mut labels: Vec<&'static str> = Vec::new();
        for route in routes {
            if !labels.contains(&route) {
                labels.push(route);
            }
        }
        labels.push(OTHER_ROUTE);
        let index = labels.iter().enumerate().map(|(i, r)| (*r, i)).collect();
        let requests = (0..labels.len() * (STATUSES.len() + 1))
            .map(|_| AtomicU64::new(0))
            .collect();
        Metrics {
            routes: labels,
            index,
            requests,
            messages_stored: AtomicU64::new(0),
            messages_delivered: AtomicU64::new(0),
            pushes: Default::default(),
            slots: OnceLock::new(),
        }
    }

    /// Counts one answered request of `route` (an unknown label counts as
    /// [`OTHER_ROUTE`]).
    pub fn record_request(&self, route: &str, status: u16) {
        let route = self
            .index
            .get(route)
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

    /// Counts one Web Push that ended as `result`.
    pub fn record_push(&self, result: PushResult) {
        self.pushes[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every push result and its count, zeros included.
    pub fn pushes(&self) -> impl Iterator<Item = (PushResult, u64)> + '_ {
        PushResult::ALL
            .into_iter()
            .map(|r| (r, self.pushes[r as usize].load(Ordering::Relaxed)))
    }

    /// Lets scrapes report open connections: `max - available permits`.
    pub fn track_connections(&self, slots: Arc<Semaphore>, max: usize) {
        let _ = self.slots.set((slots, max));
    }

    /// Open connections and the limit, once the server runs.
    pub fn connections(&self) -> Option<(u64, u64)> {
        self.slots.get().map(|(slots, max)| {
            let open = max.saturating_sub(slots.available_permits());
            (open as u64, *max as u64)
        })
    }

    pub fn messages_stored(&self) -> u64 {
        self.messages_stored.load(Ordering::Relaxed)
    }

    pub fn messages_delivered(&self) -> u64 {
        self.messages_delivered.load(Ordering::Relaxed)
    }

    /// Every non-zero request counter: route label, status (`None` for
    /// "other"), count.
    pub fn requests(&self) -> impl Iterator<Item = (&'static str, Option<u16>, u64)> + '_ {
        self.routes.iter().enumerate().flat_map(move |(r, route)| {
            (0..=STATUSES.len()).filter_map(move |s| {
                let n = self.requests_with(r, s);
                (n > 0).then(|| (*route, STATUSES.get(s).copied(), n))
            })
        })
    }

    fn requests_with(&self, route: usize, status: usize) -> u64 {
        self.requests[route * (STATUSES.len() + 1) + status].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_and_status_with_bounded_labels() {
        let m = Metrics::new(["/api/user/login", "/ws", "/api/user/login"]);
        m.record_request("/api/user/login", 200);
        m.record_request("/api/user/login", 200);
        m.record_request("/api/user/login", 401);
        m.record_request("/no/such/path/1", 404);
        m.record_request("/no/such/path/2", 418);
        let counted: Vec<_> = m.requests().collect();
        assert_eq!(
            counted,
            [
                ("/api/user/login", Some(200), 2),
                ("/api/user/login", Some(401), 1),
                (OTHER_ROUTE, Some(404), 1),
                (OTHER_ROUTE, None, 1),
            ],
            "418 counts as other, unknown paths under one label"
        );
        assert_eq!(m.routes, ["/api/user/login", "/ws", OTHER_ROUTE]);
    }
}
