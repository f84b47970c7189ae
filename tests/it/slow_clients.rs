//! Clients that hold connections without using them: a request body that
//! stalls or trickles, an upload far below any real link's pace, and one
//! address opening connection after connection.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::TestServer;

/// Generous: each cut-off here is due after about a second.
const GUARD: Duration = Duration::from_secs(20);

/// Reads what the server sends until it closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_off_at_its_deadline() {
    let srv = TestServer::start_with(|c| c.body_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    let head = "POST /api/user/login HTTP/1.1\r\nhost: rim\r\ncontent-type: application/json\r\ncontent-length: 65536\r\n\r\n";
    let sent = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b' '; 65_000]).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    let took = sent.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":408"#), "{answer}");
    // Well before any other timeout (headers 10 s, idle 90 s) could act.
    assert!(took < Duration::from_secs(9), "cut off after {took:?}");
}

#[tokio::test]
async fn an_upload_below_the_minimum_rate_is_cut_off_though_it_trickles() {
    let srv = TestServer::start_with(|c| {
        c.body_timeout = Duration::from_secs(1);
        c.upload_min_bytes_per_sec = 1000;
    })
    .await;
    let (uid, token) = srv.user("alice").await;
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "POST /api/file?name=slow.bin HTTP/1.1\r\nhost: rim\r\nauthorization: Bearer {token}\r\n\
         content-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n"
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = stream.split();
    // One byte every 50 ms: never quiet for long (the stall timer, 90 s,
    // never fires), yet 20 bytes a second against a floor of 1,000.
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut answer = Vec::new();
    let mut trickled = 0u32;
    tokio::time::timeout(GUARD, async {
        let mut buf = [0u8; 4096];
        loop {
            tokio::select! {
                n = rd.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                },
                _ = tick.tick() => {
                    if wr.write_all(b"x").await.is_ok() {
                        trickled += 1;
                    }
                }
            }
        }
    })
    .await
    .expect("the server closes the upload");
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("slower than 1000 bytes a second"),
        "{answer}"
    );
    assert!(trickled >= 10, "only {trickled} bytes were sent");
    assert!(took < Duration::from_secs(9), "cut off after {took:?}");
    // Nothing of it was kept.
    let files = srv.app().db.quota_used(uid).await.unwrap();
    assert_eq!(files, 0);
}

/// A kept-alive HTTP connection from `source` (any port).
async fn connection_from(source: &str, server: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(server).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn healthz(sender: &mut SendRequest<Empty<Bytes>>) -> u16 {
    let req = Request::builder()
        .method(Method::GET)
        .uri("/healthz")
        .header("host", "rim")
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(GUARD, sender.send_request(req))
        .await
        .expect("answer in time")
        .expect("response");
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn one_address_gets_its_cap_of_connections_and_others_are_still_served() {
    let srv = TestServer::start_with(|c| c.max_connections_per_address = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = connection_from("127.0.0.1", srv.addr).await;
        assert_eq!(healthz(&mut conn).await, 200);
        held.push(conn);
    }
    // The fourth is answered at once, before it sends anything.
    let mut fourth = TcpStream::connect(srv.addr).await.unwrap();
    let answer = read_until_closed(&mut fourth).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("retry-after: 5\r\n"), "{answer}");
    assert!(answer.contains(r#""code":429"#), "{answer}");
    // Another address is served, and the three already in keep working.
    let mut other = connection_from("127.0.0.2", srv.addr).await;
    assert_eq!(healthz(&mut other).await, 200);
    for conn in &mut held {
        assert_eq!(healthz(conn).await, 200);
    }
}

async fn healthz_for(sender: &mut SendRequest<Empty<Bytes>>, client: &str) -> u16 {
    let req = Request::builder()
        .method(Method::GET)
        .uri("/healthz")
        .header("host", "rim")
        .header("x-forwarded-for", client)
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(GUARD, sender.send_request(req))
        .await
        .expect("answer in time")
        .expect("response");
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn through_a_trusted_proxy_the_cap_counts_the_client_it_names() {
    let srv = TestServer::start_with(|c| {
        c.max_connections_per_address = 1;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    // The proxy's own connections are not capped as one address: here it
    // holds three. Through the first, 203.0.113.9 keeps a WebSocket open.
    let mut req = format!("ws://{}/ws", srv.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
    let (_ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut second = connection_from("127.0.0.1", srv.addr).await;
    let mut third = connection_from("127.0.0.1", srv.addr).await;
    assert_eq!(healthz_for(&mut second, "203.0.113.9").await, 429);
    assert_eq!(healthz_for(&mut third, "203.0.113.10").await, 200);
    // The refused request cost its client the request, not the proxy its connection.
    assert_eq!(healthz_for(&mut second, "203.0.113.11").await, 200);
}
