//! The listener: accepts TCP connections, serves HTTP/1 on each, routes
//! `/api/...` to REST, `/ws` to the WebSocket handler and `/healthz` to the
//! probe, and shuts everything down in order.
//!
//! [`run`] takes an already bound listener and a shutdown future (so tests
//! bind port 0 and never sleep or probe ports). On shutdown it stops
//! accepting, lets in-flight requests finish, closes WebSockets with 1001,
//! waits for every connection task (bounded by the grace period), and only
//! then stops the database writer, which commits what is queued.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::Config;
use crate::error::Error;
use crate::protocol;
use crate::rest;
use crate::store::{Db, Options};
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

/// Opens (creating or migrating) the database and builds the application.
pub async fn open(config: Config) -> anyhow::Result<App> {
    let opts = Options::from_config(&config);
    let db = tokio::task::spawn_blocking(move || Db::open(&opts)).await??;
    let app = tokio::task::spawn_blocking(move || App::new(db, config)).await??;
    Ok(app)
}

/// Serves until `shutdown` resolves, then shuts down gracefully.
pub async fn run(listener: TcpListener, app: App, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `alive`; when all are dropped,
    // `all_done` yields None and every connection has finished.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let slots = Arc::new(Semaphore::new(app.config.max_connections));
    let grace = app.config.shutdown_grace;
    let maintenance = tokio::spawn(maintain(app.clone(), stop_rx.clone()));
    crate::log_info!("listening", addr = listener.local_addr()?, db = app.db.path().display());
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
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let conn = serve_connection(app.clone(), stream, peer, stop_rx.clone(), permit, alive.clone());
                tokio::spawn(conn);
            }
            Err(_) => {
                tokio::spawn(refuse(stream, peer));
            }
        }
    }
    crate::log_info!("shutting down", connections = app.config.max_connections - slots.available_permits());
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive);
    let deadline = Instant::now() + grace;
    if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
        crate::log_warn!("grace period over; closing the remaining connections");
    }
    let _ = maintenance.await;
    // Everything acknowledged is already committed; this lets the writer
    // finish what is still queued and stop.
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
    if tokio::time::timeout(left, app.db.close()).await.is_err() {
        crate::log_warn!("database writer did not stop in time");
    }
    crate::log_info!("stopped");
    Ok(())
}

/// Housekeeping while the server runs: drops expired sessions hourly.
async fn maintain(app: App, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = every.tick() => {
                if let Ok(n) = app.db.purge_expired_sessions().await {
                    if n > 0 {
                        crate::log_info!("expired sessions removed", count = n);
                    }
                }
            }
        }
    }
}

/// Answers a connection over `max_connections` with a 503 and closes it.
async fn refuse(mut stream: TcpStream, peer: SocketAddr) {
    crate::log_warn!("connection refused: too many connections", peer = peer);
    let body = protocol::failure(&Error::Unavailable("the server has too many connections; try again later".into()));
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 5\r\n\r\n",
        body.len()
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
    permit: OwnedSemaphorePermit,
    alive: mpsc::Sender<()>,
) {
    let header_timeout = app.config.header_timeout;
    let permit = Arc::new(permit);
    let svc_stop = stop.clone();
    let svc_alive = alive.clone();
    let service = service_fn(move |req| {
        let app = app.clone();
        let stop = svc_stop.clone();
        let permit = permit.clone();
        let alive = svc_alive.clone();
        async move { Ok::<_, std::convert::Infallible>(route(app, req, peer, stop, permit, alive).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
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
    permit: Arc<OwnedSemaphorePermit>,
    alive: mpsc::Sender<()>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: query strings may carry tokens (/api/user/token?token=).
    let path = req.uri().path().to_owned();
    let resp = if path == "/ws" {
        upgrade(&app, &mut req, peer, stop, permit, alive)
    } else if path.starts_with("/api/") {
        rest::handle(&app, req).await
    } else if path == "/healthz" {
        health(&app, &method).await
    } else {
        rest::error_response(&Error::not_found(format!("no such route: {path}")))
    };
    crate::log_info!(
        "request",
        method = method,
        path = path,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis(),
        peer = peer
    );
    resp
}

fn upgrade(
    app: &App,
    req: &mut Request<Incoming>,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    permit: Arc<OwnedSemaphorePermit>,
    alive: mpsc::Sender<()>,
) -> Response<Full<Bytes>> {
    if !hyper_tungstenite::is_upgrade_request(req) {
        return rest::error_response(&Error::bad_request("/ws expects a WebSocket upgrade request"));
    }
    let config = ws::websocket_config(app.config.max_frame_bytes);
    match hyper_tungstenite::upgrade(req, Some(config)) {
        Ok((resp, websocket)) => {
            let app = app.clone();
            tokio::spawn(async move {
                ws::serve(app, websocket, peer, stop).await;
                // The connection slot and the liveness token go with the socket.
                drop(permit);
                drop(alive);
            });
            resp
        }
        Err(e) => rest::error_response(&Error::bad_request(format!("bad WebSocket upgrade: {e}"))),
    }
}

async fn health(app: &App, method: &Method) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return rest::error_response(&Error::MethodNotAllowed("use GET /healthz".into()));
    }
    match app.db.ping().await {
        Ok(schema) => rest::json_response(
            StatusCode::OK,
            protocol::success(&protocol::Health { status: "ok", schema }),
        ),
        Err(e) => rest::error_response(&e),
    }
}
