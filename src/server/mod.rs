//! The listener: accepts TCP connections, serves HTTP/1 on each, routes
//! `/api/...` to REST, `/ws` to the WebSocket handler and `/healthz` to the
//! probe, and shuts everything down in order.
//!
//! [`run`] takes an already bound listener and a shutdown future (so tests
//! bind port 0 and never sleep or probe ports). On shutdown it stops
//! accepting, lets in-flight requests finish, closes WebSockets with 1001,
//! waits for every connection task (bounded by the grace period), and only
//! then stops the database writer, which commits what is queued.
//!
//! Beside the accept loop: [`probes`] (`/healthz`, `/metrics`), [`origin`]
//! (CORS and the WebSocket origin check), [`housekeeping`] (hourly clean-ups)
//! and [`revocations`] (closing the connections of accounts the command line
//! disabled).

mod housekeeping;
mod origin;
mod probes;
mod revocations;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use http_body_util::{Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue, ORIGIN, VARY};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::Config;
use crate::error::Error;
use crate::limits::{AddressSlots, Slot, SlotsFull};
use crate::metrics::Metrics;
use crate::protocol;
use crate::rest;
use crate::store::{Db, Options};
use crate::web;
use crate::webpush::Vapid;
use crate::ws;

/// A server started with [`start`]: its address and its off switch.
pub struct Running {
    pub addr: SocketAddr,
    pub app: App,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Shuts the server down gracefully and waits until it has.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }
}

/// Connections the kernel may hold complete before rim accepts them.
/// tokio's `TcpListener::bind` asks for 1,024: when every client of a
/// restarted server reconnects at once, the ones beyond that wait for their
/// SYN to be sent again, a second later (`rim-bench`, idle scenario: connect
/// p99 about 1 s). Linux caps it at `net.core.somaxconn`, 4,096 by default.
const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `addr` with [`LISTEN_BACKLOG`]. Call it inside the runtime.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server may bind at once
    // although connections of the last one linger in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Opens the database and serves on `listener` in a background task. For
/// tests and embedding; `rim serve` calls [`open`] and [`run`] directly.
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let app = open(config).await?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(run(listener, app.clone(), async move {
        let _ = stop_rx.await;
    }));
    Ok(Running {
        addr,
        app,
        stop: Some(stop_tx),
        task,
    })
}

/// Paths answered here rather than by `rest`, each a route label of its own
/// in the request counters; anything else outside `/api` counts as "other".
const OWN_ROUTES: [&str; 3] = ["/ws", "/healthz", "/metrics"];

/// Opens (creating or migrating) the database and builds the application,
/// then tries a write and logs what it found: a database that cannot be
/// written is served (reads still work), and said so at once, in the log
/// and by `/healthz`. `rim serve` listens only after this returns, so a
/// client that reaches the port reaches a server that can answer it (a
/// bulk-loaded database of a million messages took 6 s here to be indexed).
pub async fn open(config: Config) -> anyhow::Result<App> {
    let started = Instant::now();
    crate::log_info!("opening database", db = config.db.display());
    let opts = Options::from_config(&config);
    let db = tokio::task::spawn_blocking(move || Db::open(&opts)).await??;
    let metrics = Metrics::new(rest::route_labels().chain(OWN_ROUTES));
    // Made at the first start and kept: browsers' subscriptions are bound to
    // it. A database that cannot be written gets a key for this run only
    // (no subscription can be stored then either).
    let vapid = match db.vapid_key(Vapid::generate).await {
        Ok(private) => Vapid::from_private(&private)
            .map_err(|_| anyhow::anyhow!("the stored VAPID key is not a P-256 private key"))?,
        Err(e) => {
            crate::log_warn!(
                "cannot store a VAPID key; using one for this run only",
                error = e
            );
            let (private, _) = Vapid::generate();
            Vapid::from_private(&private)
                .map_err(|_| anyhow::anyhow!("a fresh VAPID key is not usable"))?
        }
    };
    let app = tokio::task::spawn_blocking(move || App::new(db, config, metrics, vapid)).await??;
    match app.db.write_health().await {
        Ok(()) => crate::log_info!("database ready", ms = started.elapsed().as_millis() as u64),
        Err(e) => crate::log_error!(
            "database cannot be written; serving reads only",
            db = app.db.path().display(),
            error = e
        ),
    }
    Ok(app)
}

/// Logs every panic as one structured line and counts it. Panics are caught
/// per request, per WebSocket connection and per write job, so the server
/// keeps running; this makes sure none goes unnoticed.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            crate::metrics::record_panic();
            let place = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            crate::log_error!("panic", at = place, message = what);
        }));
    });
}

/// Serves until `shutdown` resolves, then shuts down gracefully.
pub async fn run(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    install_panic_hook();
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `alive`; when all are dropped,
    // `all_done` yields None and every connection has finished.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let slots = Arc::new(Semaphore::new(app.config.max_connections));
    // The total is the semaphore's; this one caps each address.
    let per_address = AddressSlots::new(app.config.max_connections_per_address, usize::MAX);
    app.metrics
        .track_connections(slots.clone(), app.config.max_connections);
    let grace = app.config.shutdown_grace;
    let maintenance = tokio::spawn(housekeeping::run(app.clone(), stop_rx.clone()));
    let revocations = tokio::spawn(revocations::watch(app.clone(), stop_rx.clone()));
    let pushes = tokio::spawn(crate::push::run(
        app.push.clone(),
        app.db.clone(),
        stop_rx.clone(),
    ));
    crate::log_info!(
        "listening",
        addr = listener.local_addr()?,
        db = app.db.path().display()
    );
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly
                // instead of spinning, and keep serving what we have.
                crate::log_warn!("accept failed", error = e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // A trusted proxy carries many clients on its connections: they are
        // counted per request instead, once its header names the client.
        let address = if app
            .config
            .trusted_proxies
            .contains(&peer.ip().to_canonical())
        {
            None
        } else {
            match per_address.try_take(peer.ip()) {
                Ok(slot) => Some(slot),
                Err(_) => {
                    tokio::spawn(refuse(stream, peer, too_many_from_address()));
                    continue;
                }
            }
        };
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let conn = serve_connection(
                    app.clone(),
                    stream,
                    peer,
                    stop_rx.clone(),
                    Held {
                        _permit: permit,
                        address,
                    },
                    per_address.clone(),
                    alive.clone(),
                );
                tokio::spawn(conn);
            }
            Err(_) => {
                let err = Error::Overloaded {
                    message: "the server has too many connections; try again later".into(),
                    retry_after: 5,
                };
                tokio::spawn(refuse(stream, peer, err));
            }
        }
    }
    crate::log_info!(
        "shutting down",
        connections = app.config.max_connections - slots.available_permits()
    );
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive);
    let deadline = Instant::now() + grace;
    if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
        crate::log_warn!("grace period over; closing the remaining connections");
    }
    let _ = maintenance.await;
    let _ = revocations.await;
    let _ = pushes.await;
    // Everything acknowledged is already committed; this lets the writer
    // finish what is still queued and stop.
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    if tokio::time::timeout(left, app.db.close()).await.is_err() {
        crate::log_warn!("database writer did not stop in time");
    }
    crate::log_info!("stopped");
    Ok(())
}

/// What an open connection holds, given back when it (or the WebSocket it
/// became) ends: its place under `max_connections` and, unless it came
/// from a trusted proxy, under `max_connections_per_address`.
struct Held {
    _permit: OwnedSemaphorePermit,
    address: Option<Slot>,
}

fn too_many_from_address() -> Error {
    Error::TooManyRequests {
        message: "too many connections from your address; close some and try again".into(),
        retry_after: 5,
    }
}

/// Answers a connection refused before it is served (over
/// `max_connections`: 503; over `max_connections_per_address`: 429) and
/// closes it, without reading its request.
async fn refuse(mut stream: TcpStream, peer: SocketAddr, err: Error) {
    crate::log_warn!("connection refused", peer = peer, reason = err.message());
    let body = protocol::failure(&err);
    let status =
        hyper::StatusCode::from_u16(err.code()).unwrap_or(hyper::StatusCode::SERVICE_UNAVAILABLE);
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: {}\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        err.retry_after().unwrap_or(5)
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    })
    .await;
}

async fn serve_connection(
    app: App,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    held: Held,
    per_address: Arc<AddressSlots>,
    alive: mpsc::Sender<()>,
) {
    let header_timeout = app.config.header_timeout;
    let permit = Arc::new(held);
    let svc_stop = stop.clone();
    let svc_alive = alive.clone();
    let service = service_fn(move |req| {
        let app = app.clone();
        let stop = svc_stop.clone();
        let permit = permit.clone();
        let alive = svc_alive.clone();
        let per_address = per_address.clone();
        async move {
            // A bug in one handler costs that request a 500, not the
            // connection, and never the server.
            let handled = AssertUnwindSafe(route(app, req, peer, stop, permit, per_address, alive))
                .catch_unwind()
                .await;
            Ok::<_, std::convert::Infallible>(handled.unwrap_or_else(|_| {
                rest::error_response(&Error::Internal("internal error".into())).map(Either::Left)
            }))
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_header_size(32 * 1024)
        .max_headers(64)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                crate::log_debug!("http connection error", peer = peer, error = e);
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    drop(alive);
}

async fn route(
    app: App,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    permit: Arc<Held>,
    per_address: Arc<AddressSlots>,
    alive: mpsc::Sender<()>,
) -> Response<rest::Body> {
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: query strings may carry tokens (/api/user/token?token=).
    let path = req.uri().path().to_owned();
    let cors = origin::cors_origin(&app, &req);
    // Behind a trusted reverse proxy, the client it reports; else the peer.
    let client = crate::proxy::client_ip(&app.config.trusted_proxies, peer.ip(), req.headers());
    // Through a trusted proxy, the client holds a place under its address's
    // cap while its request (or the WebSocket it opens) lasts.
    let mut request_slot = None;
    if permit.address.is_none() {
        match per_address.try_take(client) {
            Ok(slot) => request_slot = Some(slot),
            Err(_) => {
                let resp = rest::error_response(&too_many_from_address()).map(Either::Left);
                app.metrics.record_request("other", resp.status().as_u16());
                return resp;
            }
        }
    }
    let resp = if path == "/ws" {
        let resp = if !origin::websocket_allowed(&app, &req) {
            rest::error_response(&Error::forbidden(
                "WebSocket connections from this origin are not allowed",
            ))
        } else {
            upgrade(
                &app,
                &mut req,
                peer,
                client,
                stop,
                (permit, request_slot),
                alive,
            )
        };
        resp.map(Either::Left)
    } else if path.starts_with("/api/")
        && method == Method::OPTIONS
        && req.headers().contains_key(ORIGIN)
    {
        origin::preflight(cors.clone()).map(Either::Left)
    } else if path.starts_with("/api/") {
        let mut resp = rest::handle(&app, req, client).await;
        if let Some(origin) = cors {
            let h = resp.headers_mut();
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(VARY, HeaderValue::from_static("Origin"));
        }
        resp
    } else if path == "/healthz" {
        probes::health(&app, &method).await.map(Either::Left)
    } else if path == "/metrics" {
        probes::metrics(&app, &method, req.headers())
            .await
            .map(Either::Left)
    } else {
        web::serve(&req)
            .unwrap_or_else(|| {
                rest::error_response(&Error::not_found(format!("no such route: {path}")))
            })
            .map(Either::Left)
    };
    // A bot's key is in its path: such routes are logged by their label.
    let logged = match rest::route_label(&path) {
        label if label.contains("{key}") => label,
        _ => path.as_str(),
    };
    crate::log_info!(
        "request",
        method = method,
        path = logged,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis(),
        peer = peer,
        client = client
    );
    let label = if path.starts_with("/api/") {
        rest::route_label(&path)
    } else {
        &path
    };
    app.metrics.record_request(label, resp.status().as_u16());
    resp
}

fn upgrade(
    app: &App,
    req: &mut Request<Incoming>,
    peer: SocketAddr,
    client: IpAddr,
    stop: watch::Receiver<bool>,
    held: (Arc<Held>, Option<Slot>),
    alive: mpsc::Sender<()>,
) -> Response<Full<Bytes>> {
    if !hyper_tungstenite::is_upgrade_request(req) {
        return rest::error_response(&Error::bad_request(
            "/ws expects a WebSocket upgrade request",
        ));
    }
    // A socket counts against the caps on sockets before login from its
    // upgrade until its Login succeeds.
    let slot = match app.limits.sockets_before_login.try_take(client) {
        Ok(slot) => slot,
        Err(full) => {
            crate::log_warn!(
                "websocket refused: too many sockets before login",
                client = client
            );
            return rest::error_response(&match full {
                SlotsFull::Address => Error::TooManyRequests {
                    message: "too many WebSockets from your address are waiting to log in; log in on one, or close some".into(),
                    retry_after: 5,
                },
                SlotsFull::Total => Error::Overloaded {
                    message: "too many WebSockets are waiting to log in; try again later".into(),
                    retry_after: 5,
                },
            });
        }
    };
    let config = ws::websocket_config(app.config.max_frame_bytes);
    match hyper_tungstenite::upgrade(req, Some(config)) {
        Ok((resp, websocket)) => {
            let app = app.clone();
            tokio::spawn(async move {
                ws::serve(app, websocket, peer, client, slot, stop).await;
                // The connection's places and the liveness token go with the socket.
                drop(held);
                drop(alive);
            });
            resp
        }
        Err(e) => rest::error_response(&Error::bad_request(format!("bad WebSocket upgrade: {e}"))),
    }
}
