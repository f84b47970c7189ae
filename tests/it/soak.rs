//! Soak test: minutes of mixed traffic against a `rim serve` child process,
//! with clients connecting and disconnecting at random. Not part of the
//! default run (it is `#[ignore]`d); run it with
//!
//! ```sh
//! RIM_SOAK_SECS=120 cargo test --release --test it soak -- --ignored --nocapture
//! ```
//!
//! At the end: every acknowledged message is stored, the server holds no
//! connections, and its memory is back near where it started.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::child::{ChildServer, write_config};
use crate::common::{WAIT, Ws, assert_ack, eventually, http};

/// True when the server counts no logged-in connection.
async fn no_connections(addr: std::net::SocketAddr) -> bool {
    let health = http(addr, Method::GET, "/healthz", None, None).await;
    health.json["data"]["connections"] == 0
}

/// A tiny deterministic generator, so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: run with --ignored"]
async fn soak_mixed_traffic_leaves_no_leaks() {
    let secs: u64 = std::env::var("RIM_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rim.db");
    let server = ChildServer::start(&write_config(dir.path()), &db).await;
    let addr = server.addr;

    const USERS: usize = 40;
    let mut tokens = Vec::new();
    for i in 0..USERS {
        let account = format!("soak{i}");
        let body = json!({"account": account, "password": "password-123"}).to_string();
        http(
            addr,
            Method::POST,
            "/api/user/create",
            None,
            Some(body.clone()),
        )
        .await;
        let r = http(addr, Method::POST, "/api/user/login", None, Some(body)).await;
        tokens.push(r.json["data"].as_str().unwrap().to_owned());
    }
    let members: Vec<Value> = (2..=USERS).map(|uid| json!({"uid": uid})).collect();
    let r = http(
        addr,
        Method::POST,
        "/api/group/create",
        Some(&tokens[0]),
        Some(json!({"group": {"name": "soak"}, "users": members}).to_string()),
    )
    .await;
    let gid = r.json["data"].as_u64().unwrap();
    // Warm up with one session of the traffic to come (a message stored and
    // pushed), and take the baseline once the server has let it go.
    let acked = Arc::new(AtomicU64::new(0));
    {
        let mut ws = Ws::connect(addr).await;
        assert_ack(&ws.login(&tokens[0]).await, "login");
        assert_ack(&ws.send_msg(gid, "warm-up", "warm-up").await, "warm-up");
        acked.fetch_add(1, Ordering::Relaxed);
        ws.stream.close(None).await.unwrap();
    }
    assert!(
        eventually(WAIT, || no_connections(addr)).await,
        "the warm-up connection is let go"
    );
    let baseline = server.rss_kib();

    let sessions = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let (token, acked, sessions) = (token.clone(), acked.clone(), sessions.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
            let mut n = 0u64;
            while Instant::now() < deadline {
                let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await else {
                    continue;
                };
                sessions.fetch_add(1, Ordering::Relaxed);
                let login = json!({"event": "Login", "body": {"content": token, "replay": true, "clientMsgId": "l"}});
                if ws.send(Message::text(login.to_string())).await.is_err() {
                    continue;
                }
                // Stay for a random number of messages, reading what arrives.
                for _ in 0..rng.below(30) {
                    n += 1;
                    let cid = format!("{i}-{n}");
                    let frame = json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "content": cid, "clientMsgId": cid}});
                    if ws.send(Message::text(frame.to_string())).await.is_err() {
                        break;
                    }
                    let got_ack = tokio::time::timeout(Duration::from_secs(5), async {
                        while let Some(Ok(msg)) = ws.next().await {
                            if let Message::Text(t) = msg {
                                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                                if v["clientMsgId"] == cid && v["kind"] == "Ack" {
                                    return true;
                                }
                            }
                        }
                        false
                    })
                    .await;
                    if got_ack == Ok(true) {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    // Pacing the traffic like a person typing, not a wait.
                    tokio::time::sleep(Duration::from_millis(rng.below(20))).await;
                }
                // Leave politely or just vanish.
                if rng.below(2) == 0 {
                    let _ = ws.close(None).await;
                }
                drop(ws);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Once the server has noticed the last disconnects (checked again below).
    eventually(WAIT * 2, || no_connections(addr)).await;
    let after = server.rss_kib();
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let stored: u64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    let acked = acked.load(Ordering::Relaxed);
    eprintln!(
        "soak: {secs} s, {} sessions, {acked} acked, {stored} stored, RSS {baseline} KiB -> {after} KiB",
        sessions.load(Ordering::Relaxed)
    );
    assert!(stored >= acked, "every acknowledged message is stored");
    // No connection left behind: the server counts none in use.
    let health = http(addr, Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    assert_eq!(
        health.json["data"]["connections"], 0,
        "no connection left registered"
    );
    // Memory comes back near the baseline: allocator caches and SQLite's page
    // cache may keep a few MiB, a leak per session would not fit.
    assert!(
        after < baseline + 16 * 1024,
        "RSS grew from {baseline} KiB to {after} KiB"
    );
    server.kill9().await;
}
