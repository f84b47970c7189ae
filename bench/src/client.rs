//! The load generator's side of the wire: a keep-alive HTTP/1 client for the
//! REST setup calls, WebSocket connections (tokio-tungstenite, TCP_NODELAY),
//! and the few frames a benchmark sends and reads.
//!
//! The benchmark is a client like any other: it speaks the documented
//! protocol from the outside and shares no code with the server's
//! `protocol` module, so it also checks that the wire format is what the
//! documentation says. Reading frames takes a fast path that relies on the
//! field order rim writes (`clientMsgId` first in answers, `event` first in
//! pushes), with a full JSON parse as the fallback, so the load generator
//! spends its CPU on load rather than on parsing.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The password of every benchmark account.
pub const PASSWORD: &str = "bench-password-1";
/// Bytes of content in every benchmark message: a typical short chat line.
pub const CONTENT_LEN: usize = 64;
/// How long a setup request may take before the benchmark gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

pub type Ws = WebSocketStream<TcpStream>;

/// The instant all timestamps in message contents count from.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub fn since_epoch_ns(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_nanos() as u64
}

// ---- REST ----------------------------------------------------------------------

/// One keep-alive HTTP/1 connection.
pub struct Http {
    addr: SocketAddr,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http { addr, sender: None }
    }

    async fn connect(&mut self) -> anyhow::Result<&mut http1::SendRequest<Full<Bytes>>> {
        let ready = match &mut self.sender {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            let stream = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("cannot connect to {}", self.addr))?;
            stream.set_nodelay(true)?;
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("connected above"))
    }

    /// Calls a REST route; returns the `data` of an `ok` answer, or an error
    /// naming the route and the server's reason.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let answer = tokio::time::timeout(CALL_TIMEOUT, self.call_raw(method, path, token, body))
            .await
            .map_err(|_| anyhow!("{path}: no answer within {CALL_TIMEOUT:?}"))??;
        let value: Value = serde_json::from_slice(&answer)
            .with_context(|| format!("{path}: answer is not JSON"))?;
        if value["ok"] != Value::Bool(true) {
            let code = &value["code"];
            if code == 429 {
                bail!(
                    "{path}: 429 rate limited; benchmark a server whose [rate_limits] are 0 (see BENCHMARKS.md)"
                );
            }
            bail!("{path}: {} {}", code, value["msg"].as_str().unwrap_or(""));
        }
        Ok(value["data"].clone())
    }

    /// Sends a request and returns the raw body, whatever the status.
    pub async fn call_raw(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Bytes> {
        let addr = self.addr;
        let sender = self.connect().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr.to_string());
        if let Some(token) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let resp = sender.send_request(req.body(Full::new(body))?).await?;
        Ok(resp.into_body().collect().await?.to_bytes())
    }
}

/// A registered, logged-in benchmark user.
#[derive(Debug, Clone)]
pub struct User {
    pub uid: u64,
    pub account: String,
    pub token: String,
}

/// Runs `f(http, i)` for every `i` in `0..n`, `concurrency` at a time, each
/// worker on its own keep-alive connection; returns the results in order.
pub async fn each<T, F, Fut>(
    addr: SocketAddr,
    n: usize,
    concurrency: usize,
    f: F,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(Http, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<(Http, T)>> + Send + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let f = f.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut http = Http::new(addr);
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(out);
                }
                let (h, t) = f(http, i).await?;
                http = h;
                out.push((i, t));
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}

/// Registers `n` accounts `<prefix><i>` and logs each in.
pub async fn users(
    addr: SocketAddr,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<User>> {
    let prefix = prefix.to_owned();
    each(addr, n, concurrency, move |mut http, i| {
        let account = format!("{prefix}{i}");
        async move {
            let body = json!({"account": account, "password": PASSWORD});
            let uid = http
                .call(Method::POST, "/api/user/create", None, Some(body.clone()))
                .await?
                .as_u64()
                .context("user/create: no uid")?;
            let token = login(&mut http, &account).await?;
            Ok((
                http,
                User {
                    uid,
                    account,
                    token,
                },
            ))
        }
    })
    .await
}

/// Logs in; returns the token.
pub async fn login(http: &mut Http, account: &str) -> anyhow::Result<String> {
    let body = json!({"account": account, "password": PASSWORD});
    let token = http
        .call(Method::POST, "/api/user/login", None, Some(body))
        .await?;
    token
        .as_str()
        .map(str::to_owned)
        .context("user/login: no token")
}

/// `a` asks `b` to be friends and `b` accepts.
async fn befriend(http: &mut Http, a: &User, b: &User) -> anyhow::Result<()> {
    http.call(
        Method::POST,
        "/api/friend/add",
        Some(&a.token),
        Some(json!({"fid": b.uid})),
    )
    .await?;
    http.call(
        Method::POST,
        "/api/friend/status/modify",
        Some(&b.token),
        Some(json!({"fid": a.uid, "status": 1})),
    )
    .await?;
    Ok(())
}

/// Makes each pair friends and opens their direct conversation; returns the gids.
pub async fn direct_chats(
    addr: SocketAddr,
    pairs: Arc<Vec<(User, User)>>,
    concurrency: usize,
) -> anyhow::Result<Vec<u64>> {
    let n = pairs.len();
    each(addr, n, concurrency, move |mut http, i| {
        let (a, b) = pairs[i].clone();
        async move {
            befriend(&mut http, &a, &b).await?;
            let gid = http
                .call(
                    Method::POST,
                    "/api/group/direct",
                    Some(&a.token),
                    Some(json!({"uid": b.uid})),
                )
                .await?
                .as_u64()
                .context("group/direct: no gid")?;
            Ok((http, gid))
        }
    })
    .await
}

/// Makes `owner` a friend of each of `others`: only friends can be put in
/// a group.
pub async fn befriend_all(
    addr: SocketAddr,
    owner: &User,
    others: Vec<User>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let owner = owner.clone();
    let others = Arc::new(others);
    each(addr, others.len(), concurrency, move |mut http, i| {
        let (a, b) = (owner.clone(), others[i].clone());
        async move {
            befriend(&mut http, &a, &b).await?;
            Ok((http, ()))
        }
    })
    .await?;
    Ok(())
}

/// Creates a group owned by `owner` with `members` (uids, each a friend of
/// the owner: see [`befriend_all`]); returns its gid.
pub async fn group(
    http: &mut Http,
    owner: &User,
    name: &str,
    members: &[u64],
) -> anyhow::Result<u64> {
    let users: Vec<Value> = members
        .iter()
        .filter(|&&u| u != owner.uid)
        .map(|u| json!({"uid": u}))
        .collect();
    let body = json!({"group": {"name": name}, "users": users});
    http.call(
        Method::POST,
        "/api/group/create",
        Some(&owner.token),
        Some(body),
    )
    .await?
    .as_u64()
    .context("group/create: no gid")
}

// ---- WebSocket -----------------------------------------------------------------

/// Client buffer sizes: small reads for idle connections, larger ones for
/// clients that receive bursts of pushes.
pub fn ws_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Opens a WebSocket on `/ws`. `recv_buffer` shrinks the socket's kernel
/// receive buffer (for the deliberately slow reader).
pub async fn ws_connect(
    addr: SocketAddr,
    read_buffer: usize,
    recv_buffer: Option<u32>,
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let tcp = socket
        .connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{addr}/ws"),
        tcp,
        Some(ws_config(read_buffer)),
    )
    .await
    .context("WebSocket upgrade failed")?;
    Ok(ws)
}

/// Connects and logs in; waits for the Login ack (skipping any replay).
pub async fn ws_login(addr: SocketAddr, token: &str, read_buffer: usize) -> anyhow::Result<Ws> {
    let mut ws = ws_connect(addr, read_buffer, None).await?;
    login_on(&mut ws, token).await?;
    Ok(ws)
}

pub async fn login_on(ws: &mut Ws, token: &str) -> anyhow::Result<()> {
    let frame = format!(
        r#"{{"event":"Login","body":{{"content":"{token}","replay":true,"clientMsgId":"login"}}}}"#
    );
    ws.send(Message::text(frame)).await?;
    let deadline = Instant::now() + CALL_TIMEOUT;
    loop {
        let next = tokio::time::timeout_at(deadline.into(), ws.next())
            .await
            .map_err(|_| anyhow!("no answer to Login"))?;
        match next {
            Some(Ok(Message::Text(text))) => {
                if let Incoming::Answer { id: "login", ok } = classify(text.as_str()) {
                    if ok {
                        return Ok(());
                    }
                    bail!("Login refused: {}", text.as_str());
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e).context("WebSocket failed during Login"),
            None => bail!("the server closed the WebSocket during Login"),
        }
    }
}

/// Connects and logs in `users` over WebSockets, `concurrency` at a time.
pub async fn ws_logins(
    addr: SocketAddr,
    tokens: Vec<String>,
    read_buffer: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Ws>> {
    use futures_util::stream;
    let results: Vec<anyhow::Result<Ws>> = stream::iter(tokens)
        .map(|token| async move { ws_login(addr, &token, read_buffer).await })
        .buffered(concurrency)
        .collect()
        .await;
    results.into_iter().collect()
}

/// A `Msg` frame. `content` is plain ASCII without quotes or backslashes.
pub fn msg_frame(gid: u64, client_msg_id: u64, content: &str) -> String {
    format!(
        r#"{{"event":"Msg","body":{{"kind":"Text","gid":{gid},"content":"{content}","clientMsgId":"{client_msg_id}"}}}}"#
    )
}

/// An `Edit` of message `msg_id`. `content` is plain ASCII without quotes
/// or backslashes.
pub fn edit_frame(gid: u64, msg_id: u64, client_msg_id: u64, content: &str) -> String {
    format!(
        r#"{{"event":"Edit","body":{{"gid":{gid},"msgId":{msg_id},"content":"{content}","clientMsgId":"{client_msg_id}"}}}}"#
    )
}

/// A `React` to message `msg_id` (a toggle of a thumbs-up).
pub fn react_frame(gid: u64, msg_id: u64, client_msg_id: u64) -> String {
    format!(
        r#"{{"event":"React","body":{{"gid":{gid},"msgId":{msg_id},"content":"👍","clientMsgId":"{client_msg_id}"}}}}"#
    )
}

/// The number right after the first `key` in `text` (`"msgId":`).
pub fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

pub fn heart_frame(client_msg_id: u64) -> String {
    format!(r#"{{"event":"Heart","body":{{"clientMsgId":"{client_msg_id}"}}}}"#)
}

/// Message content carrying when it was (meant to be) sent and by whom:
/// `<ns since epoch>:<sender slot>:<seq>:` padded with dots to [`CONTENT_LEN`].
pub fn content(sent_ns: u64, sender: usize, seq: u64) -> String {
    let mut s = format!("{sent_ns}:{sender}:{seq}:");
    while s.len() < CONTENT_LEN {
        s.push('.');
    }
    s
}

/// The (sent ns, sender slot, seq) of a benchmark message's content.
pub fn parse_content(content: &str) -> Option<(u64, usize, u64)> {
    let mut parts = content.split(':');
    let sent = parts.next()?.parse().ok()?;
    let sender = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    Some((sent, sender, seq))
}

/// What a server frame is, as far as a benchmark cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// The answer to one of our frames: its clientMsgId and whether it was an Ack.
    Answer {
        id: &'a str,
        ok: bool,
    },
    /// A pushed message, with its content.
    Msg {
        content: &'a str,
    },
    Other,
}

const ANSWER_PREFIX: &str = r#"{"clientMsgId":""#;
const MSG_PREFIX: &str = r#"{"event":"Msg","body":{"#;
const CONTENT_KEY: &str = r#""content":""#;

pub fn classify(text: &str) -> Incoming<'_> {
    if let Some(rest) = text.strip_prefix(ANSWER_PREFIX) {
        if let Some(end) = rest.find('"') {
            let id = &rest[..end];
            if !id.contains('\\') {
                return Incoming::Answer {
                    id,
                    ok: rest[end..].contains(r#""kind":"Ack""#),
                };
            }
        }
    } else if text.starts_with(MSG_PREFIX)
        && let Some(start) = text.find(CONTENT_KEY)
    {
        let rest = &text[start + CONTENT_KEY.len()..];
        if let Some(end) = rest.find('"') {
            return Incoming::Msg {
                content: &rest[..end],
            };
        }
    }
    classify_slow(text)
}

/// The general case: a full JSON parse. Only ASCII contents and ids without
/// escapes can be borrowed from the text; anything else is `Other`.
fn classify_slow(text: &str) -> Incoming<'_> {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Incoming::Other;
    };
    let find = |needle: &str| -> Option<&str> {
        let quoted = format!("\"{needle}\"");
        text.find(&quoted)
            .map(|at| &text[at + 1..at + 1 + needle.len()])
    };
    if let (Some(id), Some(kind)) = (v["clientMsgId"].as_str(), v["kind"].as_str())
        && v.get("event").is_none()
        && let Some(id) = find(id)
    {
        return Incoming::Answer {
            id,
            ok: kind == "Ack",
        };
    }
    if v["event"] == "Msg"
        && let Some(content) = v["body"]["content"].as_str().and_then(find)
    {
        return Incoming::Msg { content };
    }
    Incoming::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_frames_rim_writes() {
        let ack = r#"{"clientMsgId":"42","serverMsgId":7,"kind":"Ack","content":"Ok","code":200}"#;
        assert_eq!(classify(ack), Incoming::Answer { id: "42", ok: true });
        let err =
            r#"{"clientMsgId":"43","serverMsgId":null,"kind":"Error","content":"no","code":403}"#;
        assert_eq!(
            classify(err),
            Incoming::Answer {
                id: "43",
                ok: false
            }
        );
        let c = content(123, 4, 5);
        assert_eq!(c.len(), CONTENT_LEN);
        let push = format!(
            r#"{{"event":"Msg","body":{{"kind":"Text","uid":1,"gid":2,"content":"{c}","clientMsgId":"9","msgId":3,"createTime":"2026-01-01 00:00:00"}}}}"#
        );
        assert_eq!(classify(&push), Incoming::Msg { content: &c });
        assert_eq!(parse_content(&c), Some((123, 4, 5)));
        // Another field order still works, through the slow path.
        let reordered =
            r#"{"kind":"Ack","clientMsgId":"44","serverMsgId":1,"content":"Ok","code":200}"#;
        assert_eq!(classify(reordered), Incoming::Answer { id: "44", ok: true });
        let read = r#"{"event":"Read","body":{"kind":"Read","uid":1,"gid":2,"content":"","clientMsgId":"","msgId":3}}"#;
        assert_eq!(classify(read), Incoming::Other);
        let frame: Value = serde_json::from_str(&msg_frame(2, 9, &c)).unwrap();
        assert_eq!(frame["body"]["content"], c.as_str());
        let heart: Value = serde_json::from_str(&heart_frame(1)).unwrap();
        assert_eq!(heart["event"], "Heart");
    }
}
