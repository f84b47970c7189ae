//! Shared test helpers: a real rim server in-process on port 0 with a fresh
//! database, a real HTTP/1 client (hyper) and a real WebSocket client
//! (tokio-tungstenite).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rim::config::{Config, HashCost};
use rim::server::Running;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should arrive.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running server with its own temporary database.
pub struct TestServer {
    pub addr: SocketAddr,
    pub db_path: PathBuf,
    running: Option<Running>,
    config: Config,
    _dir: Option<tempfile::TempDir>,
}

/// The configuration tests run with: a cheap password hash (the cost itself
/// is tested separately) and a database in `dir`.
pub fn test_config(db: PathBuf) -> Config {
    // Server logs would drown the test output; warnings and errors still show.
    if std::env::var_os("RIM_LOG").is_none() {
        rim::log::set_level(rim::log::Level::Warn);
    }
    let mut c = Config::default();
    c.db = db;
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.hash_cost = HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    c.shutdown_grace = Duration::from_secs(5);
    c
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// Starts with the test configuration adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path().join("rim.db"));
        adjust(&mut config);
        let mut s = TestServer::launch(config).await;
        s._dir = Some(dir);
        s
    }

    async fn launch(config: Config) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let running = rim::server::start(config.clone(), listener)
            .await
            .expect("server starts");
        TestServer {
            addr: running.addr,
            db_path: config.db.clone(),
            running: Some(running),
            config,
            _dir: None,
        }
    }

    pub fn app(&self) -> &rim::app::App {
        &self.running.as_ref().expect("running").app
    }

    /// Shuts down gracefully (asserting it succeeds) and starts again on the
    /// same database file, on a new port.
    pub async fn restart(mut self) -> TestServer {
        self.running.take().unwrap().shutdown().await.expect("clean shutdown");
        let dir = self._dir.take();
        let mut s = TestServer::launch(self.config.clone()).await;
        s._dir = dir;
        s
    }

    /// Shuts down gracefully; the database directory lives until drop.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        http(self.addr, Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        http(self.addr, Method::POST, path, token, Some(body.to_string())).await
    }

    /// Registers `account` (password "password-<account>") and returns its uid.
    pub async fn register(&self, account: &str) -> u64 {
        let r = self
            .post(
                "/api/user/create",
                None,
                json!({"account": account, "password": format!("password-{account}"), "name": account.to_uppercase(), "email": format!("{account}@example.org")}),
            )
            .await;
        assert_eq!(r.status, 200, "register {account}: {}", r.json);
        r.data().as_u64().expect("uid")
    }

    pub async fn login(&self, account: &str) -> String {
        let r = self
            .post(
                "/api/user/login",
                None,
                json!({"account": account, "password": format!("password-{account}")}),
            )
            .await;
        assert_eq!(r.status, 200, "login {account}: {}", r.json);
        r.data().as_str().expect("token").to_owned()
    }

    /// Registers and logs in: (uid, token).
    pub async fn user(&self, account: &str) -> (u64, String) {
        let uid = self.register(account).await;
        (uid, self.login(account).await)
    }

    /// Makes `a` and `b` friends through the public API.
    pub async fn befriend(&self, a: &str, b_uid: u64, b: &str, a_uid: u64) {
        let r = self.post("/api/friend/add", Some(a), json!({"fid": b_uid})).await;
        assert_eq!(r.status, 200, "{}", r.json);
        let r = self
            .post("/api/friend/status/modify", Some(b), json!({"fid": a_uid, "status": 1}))
            .await;
        assert_eq!(r.status, 200, "{}", r.json);
    }

    /// A direct chat between the token's owner and `other`.
    pub async fn direct(&self, token: &str, other: u64) -> u64 {
        let r = self.post("/api/group/direct", Some(token), json!({"uid": other})).await;
        assert_eq!(r.status, 200, "{}", r.json);
        r.data().as_u64().unwrap()
    }

    pub async fn ws(&self) -> Ws {
        Ws::connect(self.addr).await
    }

    /// A WebSocket logged in with `token`.
    pub async fn ws_login(&self, token: &str) -> Ws {
        let mut ws = self.ws().await;
        let ack = ws.login(token).await;
        assert_eq!(ack["kind"], "Ack", "login: {ack}");
        ws
    }
}

/// An HTTP answer: status, headers and the parsed JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub json: Value,
}

impl Reply {
    pub fn data(&self) -> &Value {
        &self.json["data"]
    }

    /// Asserts the rim error wrapper with `code` equal to the status.
    pub fn assert_error(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.json);
        assert_eq!(self.json["ok"], false, "{}", self.json);
        assert_eq!(self.json["code"], status, "{}", self.json);
        assert!(self.json["msg"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.json);
        assert!(self.json["data"].is_null(), "{}", self.json);
    }

    pub fn assert_ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.json);
        assert_eq!(self.json["ok"], true, "{}", self.json);
        assert_eq!(self.json["code"], 200, "{}", self.json);
        assert!(self.json["msg"].is_null());
        self.data()
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn http(addr: SocketAddr, method: Method, path: &str, token: Option<&str>, body: Option<String>) -> Reply {
    let mut req = Request::builder().method(method).uri(path).header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or_default()))).unwrap();
    raw_request(addr, req).await
}

/// Sends an arbitrary request and parses the JSON answer.
pub async fn raw_request(addr: SocketAddr, req: Request<Full<Bytes>>) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .expect("answer in time")
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON (status {status}): {:?}", String::from_utf8_lossy(&bytes)));
    Reply { status, headers, json }
}

/// A WebSocket client speaking rim frames.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn connect(addr: SocketAddr) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("websocket connects");
        Ws { stream }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    /// The next text frame as JSON (fails the test after [`WAIT`]).
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a frame in time")
                .expect("stream open")
                .expect("frame");
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Asserts nothing arrives for `ms` milliseconds.
    pub async fn expect_silence(&mut self, ms: u64) {
        loop {
            match tokio::time::timeout(Duration::from_millis(ms), self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Sends Login with `token` and returns the answer.
    pub async fn login(&mut self, token: &str) -> Value {
        self.send(json!({"event": "Login", "body": {"kind": "Text", "content": token, "clientMsgId": "login"}}))
            .await;
        self.recv().await
    }

    /// Sends a Text message to `gid` and returns the answer.
    pub async fn send_msg(&mut self, gid: u64, content: &str, client_msg_id: &str) -> Value {
        self.send(json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "content": content, "clientMsgId": client_msg_id}}))
            .await;
        self.recv().await
    }

    /// Waits for the close frame and returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next()).await.expect("close in time");
            match msg {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) => return 1005,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("connection failed instead of closing: {e}"),
                None => panic!("stream ended without a close frame"),
            }
        }
    }
}
