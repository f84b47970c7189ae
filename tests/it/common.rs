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
    Config {
        db,
        listen: "127.0.0.1:0".parse().unwrap(),
        hash_cost: HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        shutdown_grace: Duration::from_secs(5),
        // Every test client comes from 127.0.0.1; the cap has its own tests.
        max_connections_per_address: 100_000,
        // Tests register many users from one address; the limits have their own tests.
        rate_limits: rim::config::RateLimits {
            logins_per_account_per_minute: 0,
            logins_per_account_per_hour: 0,
            logins_per_ip_per_minute: 0,
            registrations_per_ip_per_hour: 0,
            messages_per_second: 0,
            message_burst: 1,
            frames_per_second: 0,
            frame_burst: 1,
            groups_per_user_per_hour: 0,
            member_adds_per_user_per_hour: 0,
            searches_per_user_per_minute: 0,
        },
        ..Config::default()
    }
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
        let listener = rim::server::listen("127.0.0.1:0".parse().unwrap()).expect("bind");
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
        self.running
            .take()
            .unwrap()
            .shutdown()
            .await
            .expect("clean shutdown");
        let dir = self._dir.take();
        let mut s = TestServer::launch(self.config.clone()).await;
        s._dir = dir;
        s
    }

    /// [`TestServer::restart`] with the configuration adjusted by `adjust`.
    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut Config)) -> TestServer {
        adjust(&mut self.config);
        self.restart().await
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
        let r = self
            .post("/api/friend/add", Some(a), json!({"fid": b_uid}))
            .await;
        assert_eq!(r.status, 200, "{}", r.json);
        let r = self
            .post(
                "/api/friend/status/modify",
                Some(b),
                json!({"fid": a_uid, "status": 1}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.json);
    }

    /// A direct chat between the token's owner and `other`.
    pub async fn direct(&self, token: &str, other: u64) -> u64 {
        let r = self
            .post("/api/group/direct", Some(token), json!({"uid": other}))
            .await;
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
        assert!(
            self.json["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.json
        );
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
pub async fn http(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    raw_request(addr, req).await
}

/// Sends an arbitrary request and parses the JSON answer.
pub async fn raw_request(addr: SocketAddr, req: Request<Full<Bytes>>) -> Reply {
    let RawReply {
        status,
        headers,
        body,
    } = send_raw(addr, req).await;
    let json = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "not JSON (status {status}): {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    Reply {
        status,
        headers,
        json,
    }
}

/// A WebSocket client speaking rim frames.
///
/// `Presence` pushes are skipped unless `presence` is set: they reach
/// every friend and co-member whenever someone's first device logs in or
/// last one leaves, which most tests do in passing; the presence tests turn
/// them on.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub presence: bool,
}

impl Ws {
    pub async fn connect(addr: SocketAddr) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("websocket connects");
        Ws {
            stream,
            presence: false,
        }
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
                Message::Text(t) => {
                    let frame: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                    if frame["event"] == "Presence" && !self.presence {
                        continue;
                    }
                    return frame;
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next answer (a frame without `event`), skipping the pushes that
    /// arrive before it.
    pub async fn next_answer(&mut self) -> Value {
        loop {
            let frame = self.recv().await;
            if frame.get("event").is_none() {
                return frame;
            }
        }
    }

    /// Sends a Heart and requires its ack to be the very next frame (pings
    /// and pongs aside).
    ///
    /// Answers come in the order of the frames, and a Login's replay is
    /// written before the next frame is read, so this proves that no earlier
    /// frame of this connection has an answer still to come, and that the
    /// replay of its Login is over. It proves nothing about pushes in
    /// general (one queued before the Heart may follow its ack in the same
    /// write), except on a connection that is not logged in: that one has
    /// no push queue at all. For pushes use [`assert_nothing_before_marker`].
    pub async fn expect_heart_next(&mut self) {
        let mark = next_mark();
        self.send(json!({"event": "Heart", "body": {"clientMsgId": mark}}))
            .await;
        let got = self.recv().await;
        assert!(
            got.get("event").is_none() && got["clientMsgId"] == mark.as_str(),
            "expected the ack of Heart {mark} next, got {got}"
        );
        assert_ack(&got, &mark);
    }

    /// Asserts the next frame is the `Msg` push of the marker message `id`.
    pub async fn expect_marker(&mut self, id: u64) {
        let got = self.recv().await;
        assert!(
            got["event"] == "Msg" && got["body"]["msgId"] == id,
            "expected marker message {id} next, got {got}"
        );
    }

    /// Sends Login with `token` and returns the answer.
    pub async fn login(&mut self, token: &str) -> Value {
        self.send(json!({"event": "Login", "body": {"kind": "Text", "content": token, "replay": true, "clientMsgId": "login"}}))
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
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("close in time");
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

// ---- Markers: proving that nothing arrived ----------------------------------
//
// Waiting a while and seeing nothing proves nothing on a slow machine. Instead,
// after the thing that must not arrive, something that must arrive is sent,
// and it has to be the very next frame: had the unwanted frame been produced,
// it would have come first.

/// A fresh marker name, used as both clientMsgId and content: never one a
/// test picks, and never an earlier marker's, so a marker is never a resend.
fn next_mark() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static MARKS: AtomicU64 = AtomicU64::new(1);
    format!("mark-{}", MARKS.fetch_add(1, Ordering::Relaxed))
}

/// Proves that nothing was pushed to the `quiet` connections since the last
/// action the test saw completed (an answer, a REST reply, a push): `from`
/// sends a marker message to `gid`, and it must be the very next frame each
/// of them receives. Pushes go out in commit order, and the marker is
/// committed after that action, so a push the action had produced would
/// arrive before it. Returns the marker's message id (it is stored like any
/// message).
///
/// Every connection in `quiet` must be logged in as a member of `gid`, and
/// `from` must not be among them (a sender does not get its own push; the
/// sender's other devices do). Pushes that `from` receives before the
/// marker's answer are skipped: `from` is not what is under test.
pub async fn assert_nothing_before_marker(from: &mut Ws, gid: u64, quiet: &mut [&mut Ws]) -> u64 {
    let mark = next_mark();
    from.send(msg_frame("Text", gid, &mark, &mark)).await;
    let answer = from.next_answer().await;
    let id = assert_ack(&answer, &mark).expect("the marker's message id");
    for ws in quiet.iter_mut() {
        ws.expect_marker(id).await;
    }
    id
}

impl TestServer {
    /// [`assert_nothing_before_marker`] for connections whose users share no
    /// conversation with anyone at hand: a new user asks each of `uids` to be
    /// friends, and its `FriendRequest` must be the very next frame of every
    /// connection in `quiet` (each logged in as one of `uids`). The notice is
    /// pushed once the request is committed, so it too follows whatever was
    /// pushed before. Returns the marker user's uid.
    pub async fn assert_nothing_before_friend_request(
        &self,
        uids: &[u64],
        quiet: &mut [&mut Ws],
    ) -> u64 {
        let (marker, token) = self.user(&next_mark()).await;
        for uid in uids {
            self.post("/api/friend/add", Some(&token), json!({"fid": uid}))
                .await
                .assert_ok();
        }
        for ws in quiet.iter_mut() {
            let got = ws.recv().await;
            assert!(
                got["event"] == "Notify"
                    && got["body"]["kind"] == "FriendRequest"
                    && got["body"]["uid"] == marker,
                "expected the marker friend request of user {marker} next, got {got}"
            );
        }
        marker
    }
}

/// Waits until `check` holds, for effects no event announces (work the
/// server finishes after it answered): checked every 10 ms, for at most
/// `within`. Returns whether it held in time; the caller asserts, saying
/// what it saw.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        // The poll's pace, not a guess at how long the effect takes.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- Helpers for the WebSocket and lifecycle tests ---------------------------

/// Creates a group owned by `token`'s user with `members` (plain members) and
/// returns its gid.
pub async fn create_group(srv: &TestServer, token: &str, name: &str, members: &[u64]) -> u64 {
    let users: Vec<Value> = members
        .iter()
        .map(|uid| json!({"uid": uid, "role": 1}))
        .collect();
    let r = srv
        .post(
            "/api/group/create",
            Some(token),
            json!({"group": {"name": name, "avatar": "", "mode": 0}, "users": users}),
        )
        .await;
    r.assert_ok().as_u64().expect("gid")
}

/// Two friends with a direct chat: ((uid, token), (uid, token), gid).
pub async fn direct_pair(
    srv: &TestServer,
    a: &str,
    b: &str,
) -> ((u64, String), (u64, String), u64) {
    let (ua, ta) = srv.user(a).await;
    let (ub, tb) = srv.user(b).await;
    srv.befriend(&ta, ub, &tb, ua).await;
    let gid = srv.direct(&ta, ub).await;
    ((ua, ta), (ub, tb), gid)
}

/// The newest (up to 100) messages of `gid` as `token`'s user sees them over
/// REST, oldest first: the `msg` objects of the history rows.
pub async fn history_msgs(srv: &TestServer, token: &str, gid: u64) -> Vec<Value> {
    let r = srv
        .post(
            "/api/message/history",
            Some(token),
            json!({"gid": gid, "page": 1, "size": 100}),
        )
        .await;
    r.assert_ok()
        .as_array()
        .expect("history rows")
        .iter()
        .map(|row| row["msg"].clone())
        .collect()
}

/// `token`'s unread count in `gid` from the chat list (0 when the
/// conversation is not listed).
pub async fn unread_in(srv: &TestServer, token: &str, gid: u64) -> u64 {
    let r = srv
        .post(
            "/api/message/chat/list",
            Some(token),
            json!({"page": 1, "size": 100}),
        )
        .await;
    r.assert_ok()
        .as_array()
        .expect("chat rows")
        .iter()
        .find(|row| row["group"]["id"] == gid)
        .map(|row| row["unread"].as_u64().expect("unread count"))
        .unwrap_or(0)
}

/// A rim `Msg` frame.
pub fn msg_frame(kind: &str, gid: u64, content: &str, client_msg_id: &str) -> Value {
    json!({"event": "Msg", "body": {"kind": kind, "gid": gid, "content": content, "clientMsgId": client_msg_id}})
}

/// Asserts `answer` is the ack of `client_msg_id` and returns its serverMsgId.
pub fn assert_ack(answer: &Value, client_msg_id: &str) -> Option<u64> {
    assert_eq!(answer["kind"], "Ack", "expected an ack: {answer}");
    assert_eq!(answer["content"], "Ok", "{answer}");
    assert_eq!(answer["code"], 200, "{answer}");
    assert_eq!(answer["clientMsgId"], client_msg_id, "{answer}");
    assert!(
        answer.get("event").is_none(),
        "an answer has no event: {answer}"
    );
    answer["serverMsgId"].as_u64()
}

/// Asserts `answer` is an `Error` answer with `code` and a reason.
pub fn assert_refused(answer: &Value, code: u16) {
    assert_eq!(
        answer["kind"], "Error",
        "expected an error answer: {answer}"
    );
    assert_eq!(answer["code"], code, "{answer}");
    assert!(answer["serverMsgId"].is_null(), "{answer}");
    assert!(
        answer["content"].as_str().is_some_and(|c| !c.is_empty()),
        "{answer}"
    );
}

/// A WebSocket client whose socket receive buffer is tiny, so that a server
/// writing to it while it does not read fills up quickly.
pub async fn ws_with_small_recv_buffer(addr: SocketAddr) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let tcp = socket.connect(addr).await.expect("connect");
    let (stream, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/ws"), MaybeTlsStream::Plain(tcp))
            .await
            .expect("websocket connects");
    Ws {
        stream,
        presence: false,
    }
}

/// A WebSocket client written by hand over TCP, for what a well-behaved client
/// library will not do: stay silent (no pong), or send a text frame that is not
/// UTF-8.
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// An outcome of [`RawWs::read_frame`].
#[derive(Debug)]
pub enum RawFrame {
    Frame {
        opcode: u8,
        payload: Vec<u8>,
    },
    /// The server closed the TCP connection.
    Eof,
}

impl RawWs {
    /// Connects and completes the upgrade handshake on `/ws`.
    pub async fn connect(addr: SocketAddr) -> RawWs {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(req.as_bytes())
            .await
            .expect("send upgrade");
        let mut buf = Vec::new();
        let end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("upgrade answer in time")
                .expect("read");
            assert!(n > 0, "connection closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        // The RFC 6455 example key has this known accept value.
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{head}"
        );
        buf.drain(..end);
        RawWs { stream, buf }
    }

    /// Sends one final, masked frame.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&out).await.expect("send frame");
    }

    async fn fill(&mut self, want: usize) -> bool {
        use tokio::io::AsyncReadExt;
        while self.buf.len() < want {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .expect("a frame in time")
                .unwrap_or(0);
            if n == 0 {
                return false;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        true
    }

    /// The next frame from the server, without answering pings.
    pub async fn read_frame(&mut self) -> RawFrame {
        if !self.fill(2).await {
            return RawFrame::Eof;
        }
        let opcode = self.buf[0] & 0x0f;
        let masked = self.buf[1] & 0x80 != 0;
        let (len, mut at) = match self.buf[1] & 0x7f {
            126 => {
                if !self.fill(4).await {
                    return RawFrame::Eof;
                }
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
            }
            127 => {
                if !self.fill(10).await {
                    return RawFrame::Eof;
                }
                let mut n = [0u8; 8];
                n.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            n => (n as usize, 2),
        };
        assert!(!masked, "server frames must not be masked");
        if !self.fill(at + len).await {
            return RawFrame::Eof;
        }
        let payload = self.buf[at..at + len].to_vec();
        at += len;
        self.buf.drain(..at);
        RawFrame::Frame { opcode, payload }
    }

    /// Reads (ignoring data and pings) until a close frame; returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            match self.read_frame().await {
                RawFrame::Frame { opcode: 8, payload } => {
                    assert!(payload.len() >= 2, "close frame without a code");
                    return u16::from_be_bytes([payload[0], payload[1]]);
                }
                RawFrame::Frame { .. } => continue,
                RawFrame::Eof => panic!("connection ended without a close frame"),
            }
        }
    }
}

// ---- Helpers for files: uploads, and answers that are not JSON ---------------

/// An HTTP answer whose body is kept as bytes (a file, or anything else).
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON (status {}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends `req` and returns the answer with its body as bytes.
pub async fn send_raw(addr: SocketAddr, req: Request<Full<Bytes>>) -> RawReply {
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
    let body = tokio::time::timeout(WAIT * 6, resp.into_body().collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes()
        .to_vec();
    RawReply {
        status,
        headers,
        body,
    }
}

impl TestServer {
    /// `POST /api/file?name=NAME` with `bytes` as the body, declared as
    /// `content_type`.
    pub async fn upload(&self, token: &str, name: &str, content_type: &str, bytes: &[u8]) -> Reply {
        let path = format!("/api/file?name={}", url_encode(name));
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", content_type)
            .body(Full::new(Bytes::copy_from_slice(bytes)))
            .unwrap();
        let r = send_raw(self.addr, req).await;
        Reply {
            status: r.status,
            json: r.json(),
            headers: r.headers,
        }
    }

    /// Uploads and returns the new file's id.
    pub async fn upload_ok(
        &self,
        token: &str,
        name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> u64 {
        let r = self.upload(token, name, content_type, bytes).await;
        r.assert_ok()["id"].as_u64().expect("file id")
    }

    /// `GET path` with extra request headers; the body as bytes.
    pub async fn fetch(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> RawReply {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header("host", self.addr.to_string());
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        send_raw(self.addr, req.body(Full::new(Bytes::new())).unwrap()).await
    }
}

/// Percent-encodes everything but unreserved characters.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A PNG of `width` x `height` as far as anyone reading its header can
/// tell, padded with `extra` bytes derived from `seed` (distinct seeds give
/// distinct files).
pub fn png_bytes(width: u32, height: u32, extra: usize, seed: u64) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    b.extend_from_slice(&width.to_be_bytes());
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&[8, 6, 0, 0, 0]);
    b.extend(pseudo_random(extra, seed));
    b
}

/// `n` bytes of a repeatable pseudo-random sequence.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
