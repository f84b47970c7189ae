//! `GET /metrics` over real HTTP after real traffic, its optional token, and
//! `X-Forwarded-For` believed only from trusted proxies.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

use crate::common::{TestServer, WAIT, assert_ack, direct_pair};

/// A GET with extra headers; the status and the body as text.
pub async fn get_text(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, hyper::HeaderMap) {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let head = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), head)
}

/// The value of the sample `name` (with its labels, if any) in `text`.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_connections_messages_requests_and_the_writer() {
    let srv = TestServer::start().await;
    let ((_, alice), (_, bob), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut a = srv.ws_login(&alice).await;
    let _b = srv.ws_login(&bob).await;
    // A login page's socket, open and not logged in.
    let mut waiting = crate::common::Ws::connect(srv.addr).await;
    waiting.expect_heart_next().await;
    for i in 0..3 {
        let id = format!("c{i}");
        let ack = a.send_msg(gid, "hello", &id).await;
        assert_ack(&ack, &id);
    }
    // A resend is not a new message.
    assert_ack(&a.send_msg(gid, "hello", "c0").await, "c0");
    srv.post(
        "/api/user/login",
        None,
        json!({"account": "alice", "password": "wrong password"}),
    )
    .await
    .assert_error(401);
    srv.get("/api/no/such/route", None).await.assert_error(404);

    let (status, text, head) = get_text(srv.addr, "/metrics", &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        head["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let value = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    assert_eq!(value("rim_messages_stored_total"), 3.0);
    assert_eq!(
        value("rim_messages_delivered_total"),
        3.0,
        "each pushed to bob's one socket"
    );
    assert_eq!(value("rim_websocket_connections"), 2.0);
    assert_eq!(value("rim_websockets_before_login"), 1.0);
    assert_eq!(value("rim_logged_in_users"), 2.0);
    assert!(
        value("rim_connections") >= 3.0,
        "two sockets and this request"
    );
    assert_eq!(
        value("rim_http_requests_total{route=\"/api/user/login\",status=\"200\"}"),
        2.0
    );
    assert_eq!(
        value("rim_http_requests_total{route=\"/api/user/login\",status=\"401\"}"),
        1.0
    );
    assert_eq!(
        value("rim_http_requests_total{route=\"/api/user/create\",status=\"200\"}"),
        2.0
    );
    assert_eq!(
        value("rim_http_requests_total{route=\"other\",status=\"404\"}"),
        1.0
    );
    assert_eq!(
        value("rim_http_requests_total{route=\"/ws\",status=\"101\"}"),
        3.0,
        "alice's, bob's and the waiting socket"
    );
    assert!(value("rim_writer_batches_total") >= 1.0);
    let count = value("rim_writer_batch_size_count");
    assert_eq!(count, value("rim_writer_batches_total"));
    assert_eq!(value("rim_writer_batch_size_bucket{le=\"+Inf\"}"), count);
    assert_eq!(value("rim_writer_commit_seconds_count"), count);
    assert!(value("rim_writer_commit_seconds_sum") > 0.0);
    assert!(value("rim_db_size_bytes") >= 4096.0);
    // The writer and the readers have their connections open, with their
    // schemas parsed.
    assert!(value("rim_sqlite_memory_bytes") >= 64.0 * 1024.0);
    assert!(
        text.contains("# TYPE rim_panics_total counter\nrim_panics_total "),
        "{text}"
    );
    // Every sample line is `name{labels} number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, number) = line.rsplit_once(' ').unwrap();
        assert!(number.parse::<f64>().is_ok(), "{line}");
    }

    // The scrape itself is counted, like any request.
    let (_, text, _) = get_text(srv.addr, "/metrics", &[]).await;
    assert_eq!(
        sample(
            &text,
            "rim_http_requests_total{route=\"/metrics\",status=\"200\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn metrics_token_is_required_when_configured() {
    let token = "a-long-metrics-secret";
    let srv = TestServer::start_with(|c| c.metrics_token = Some(token.into())).await;
    let (status, _, head) = get_text(srv.addr, "/metrics", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(head["www-authenticate"], "Bearer");
    let (status, _, _) = get_text(
        srv.addr,
        "/metrics",
        &[("authorization", "Bearer wrong-token-wrong")],
    )
    .await;
    assert_eq!(status, 401);
    let bearer = format!("Bearer {token}");
    let (status, text, _) = get_text(srv.addr, "/metrics", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200);
    assert!(text.contains("rim_db_size_bytes"), "{text}");
}

/// Registers `account` with an `X-Forwarded-For` header; returns the status.
async fn register_from(srv: &TestServer, account: &str, forwarded: &str) -> u16 {
    let body = json!({"account": account, "password": format!("password-{account}")}).to_string();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/user/create")
        .header("host", srv.addr.to_string())
        .header("content-type", "application/json")
        .header("x-forwarded-for", forwarded)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    crate::common::raw_request(srv.addr, req).await.status
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let limited = |c: &mut rim::Config| c.rate_limits.registrations_per_ip_per_hour = 1;
    // Behind a trusted proxy, each client has its own limit...
    let srv = TestServer::start_with(|c| {
        limited(c);
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    assert_eq!(register_from(&srv, "anne", "203.0.113.1").await, 200);
    assert_eq!(register_from(&srv, "ben", "203.0.113.2").await, 200);
    assert_eq!(register_from(&srv, "cleo", "203.0.113.1").await, 429);
    // ...and an address the client made up on the left does not help it.
    assert_eq!(
        register_from(&srv, "cleo", "198.51.100.9, 203.0.113.1").await,
        429
    );

    // From anyone else the header is ignored: everyone here is 127.0.0.1.
    let srv = TestServer::start_with(limited).await;
    assert_eq!(register_from(&srv, "anne", "203.0.113.1").await, 200);
    assert_eq!(register_from(&srv, "ben", "203.0.113.2").await, 429);
}
