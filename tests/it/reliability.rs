//! Hostile input, full disks, foreign files, floods and abuse limits: each
//! promise of SECURITY.md that is not covered by the REST and WebSocket suites.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::child::{ChildServer, write_config};
use crate::common::{TestServer, WAIT, eventually, http, raw_request, test_config};

/// A group of `n` fresh users; returns (gid, [(uid, token)]).
async fn group_of(srv: &TestServer, n: usize) -> (u64, Vec<(u64, String)>) {
    let mut users = Vec::new();
    for i in 0..n {
        users.push(srv.user(&format!("member{i}")).await);
    }
    let members: Vec<Value> = users.iter().map(|(u, _)| json!({"uid": u})).collect();
    let r = srv
        .post(
            "/api/group/create",
            Some(&users[0].1),
            json!({"group": {"name": "g"}, "users": members}),
        )
        .await;
    (r.assert_ok().as_u64().unwrap(), users)
}

#[tokio::test]
async fn full_database_refuses_writes_clearly_and_recovers() {
    let srv = TestServer::start_with(|c| c.max_db_mb = 1).await;
    let (gid, users) = group_of(&srv, 2).await;
    let mut ws = srv.ws_login(&users[0].1).await;
    let big = "x".repeat(15_000);
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..400 {
        let answer = ws.send_msg(gid, &big, &format!("fill-{i}")).await;
        if answer["kind"] == "Ack" {
            acked.push(answer["serverMsgId"].as_u64().unwrap());
        } else {
            refused = Some((i, answer));
            break;
        }
    }
    let (i, answer) = refused.expect("a 1 MiB database fills up");
    assert_eq!(answer["kind"], "Error", "{answer}");
    assert_eq!(answer["code"], 507, "{answer}");
    assert!(answer["serverMsgId"].is_null());
    assert!(
        answer["content"].as_str().unwrap().contains("full"),
        "{answer}"
    );
    // REST writes fail the same way, with the wrapper, once the last pages
    // are used up. (A checkpoint may give back WAL space meanwhile: messages
    // keep filling it.)
    let mut rest_refused = false;
    for k in 0..2000 {
        let r = srv
            .post(
                "/api/group/create",
                Some(&users[0].1),
                json!({"group": {"name": "more"}, "users": []}),
            )
            .await;
        if r.status != 200 {
            r.assert_error(507);
            rest_refused = true;
            break;
        }
        let answer = ws.send_msg(gid, &big, &format!("more-{k}")).await;
        if answer["kind"] == "Ack" {
            acked.push(answer["serverMsgId"].as_u64().unwrap());
        } else {
            assert_eq!(answer["code"], 507, "{answer}");
        }
    }
    assert!(rest_refused);
    // The cap holds for the database file and its WAL together, passed by
    // at most the one write that crossed it (a 15 KB message and its index).
    let len = |suffix: &str| {
        let mut p = srv.db_path.clone().into_os_string();
        p.push(suffix);
        std::fs::metadata(p).map_or(0, |m| m.len())
    };
    let on_disk = len("") + len("-wal");
    assert!(
        on_disk <= (1 << 20) + (64 << 10),
        "{on_disk} bytes on disk for a 1 MiB cap"
    );
    // Reads still work, and what was acknowledged is all there; the refused one is not.
    let r = srv
        .post(
            "/api/message/history",
            Some(&users[1].1),
            json!({"gid": gid, "size": 100}),
        )
        .await;
    let ids: Vec<u64> = r
        .assert_ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, acked);
    assert!(srv.get("/healthz", None).await.status == 200);

    // Space returns: the same frame goes through, once.
    srv.app().db.set_size_limit(0).await.unwrap();
    let answer = ws.send_msg(gid, &big, &format!("fill-{i}")).await;
    assert_eq!(answer["kind"], "Ack", "{answer}");
    let again = ws.send_msg(gid, &big, &format!("fill-{i}")).await;
    assert_eq!(again["serverMsgId"], answer["serverMsgId"]);
    let r = srv
        .post(
            "/api/message/history",
            Some(&users[1].1),
            json!({"gid": gid, "size": 100}),
        )
        .await;
    assert_eq!(r.assert_ok().as_array().unwrap().len(), acked.len() + 1);
}

fn file_bytes(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Starting on `path` fails with a message containing `why`, and the file
/// is byte for byte what it was.
async fn refused_untouched(path: &std::path::Path, why: &str) {
    let before = file_bytes(path);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let Err(err) = rim::server::start(test_config(path.to_path_buf()), listener).await else {
        panic!("{} was accepted", path.display());
    };
    assert!(format!("{err:#}").contains(why), "{err:#}");
    assert_eq!(file_bytes(path), before, "{} was modified", path.display());
}

#[tokio::test]
async fn startup_refuses_foreign_and_newer_databases_without_touching_them() {
    let dir = tempfile::tempdir().unwrap();

    // Some other program's SQLite database.
    let foreign = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('keep me');")
            .unwrap();
    }
    refused_untouched(&foreign, "not rim's").await;
    assert!(!dir.path().join("other.db-wal").exists());

    // Not SQLite at all.
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "just some text, definitely not a database\n".repeat(200),
    )
    .unwrap();
    refused_untouched(&text, "not a SQLite database").await;

    // A rim database from a newer rim.
    let newer = dir.path().join("newer.db");
    let mut srv = TestServer::start_with(|c| c.db = newer.clone()).await;
    srv.register("alice").await;
    srv.stop().await;
    {
        let c = rusqlite::Connection::open(&newer).unwrap();
        c.execute_batch("PRAGMA user_version = 99;").unwrap();
    }
    refused_untouched(&newer, "newer").await;
}

#[tokio::test]
async fn login_and_registration_limits_answer_429() {
    let srv = TestServer::start_with(|c| {
        c.rate_limits.logins_per_account_per_minute = 3;
        c.rate_limits.registrations_per_ip_per_hour = 4;
    })
    .await;
    srv.register("alice").await;
    for _ in 0..3 {
        srv.post(
            "/api/user/login",
            None,
            json!({"account": "alice", "password": "wrong-password"}),
        )
        .await
        .assert_error(401);
    }
    // Even the right password is refused now: guessing is throttled per
    // account (from this address).
    let r = srv
        .post(
            "/api/user/login",
            None,
            json!({"account": "alice", "password": "password-alice"}),
        )
        .await;
    r.assert_error(429);
    assert!(
        r.json["msg"].as_str().unwrap().contains("try again"),
        "{}",
        r.json
    );
    // Another account is not affected.
    srv.register("bob").await;
    srv.login("bob").await;
    // Registrations: alice and bob used two of four.
    srv.register("carol").await;
    srv.register("dave").await;
    srv.post(
        "/api/user/create",
        None,
        json!({"account": "eve", "password": "password-eve"}),
    )
    .await
    .assert_error(429);
}

/// A login to `account` with `password` from `addr` (behind the trusted
/// proxy 127.0.0.1); the HTTP status.
async fn login_from(srv: &TestServer, account: &str, password: &str, addr: &str) -> u16 {
    let body = json!({"account": account, "password": password}).to_string();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/user/login")
        .header("host", srv.addr.to_string())
        .header("content-type", "application/json")
        .header("x-forwarded-for", addr)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    raw_request(srv.addr, req).await.status
}

#[tokio::test]
async fn guesses_from_one_address_do_not_lock_the_owner_out_elsewhere() {
    let srv = TestServer::start_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.rate_limits.logins_per_account_per_minute = 3;
        c.rate_limits.logins_per_account_per_hour = 6;
    })
    .await;
    srv.register("alice").await;
    let (right, wrong) = ("password-alice", "wrong-password");
    assert_eq!(login_from(&srv, "alice", right, "203.0.113.1").await, 200);
    // One address guesses until it is stopped...
    for _ in 0..3 {
        assert_eq!(login_from(&srv, "alice", wrong, "198.51.100.66").await, 401);
    }
    assert_eq!(login_from(&srv, "Alice", right, "198.51.100.66").await, 429);
    // ...and the owner still logs in, from where she did before and from a
    // new address.
    assert_eq!(login_from(&srv, "alice", right, "203.0.113.1").await, 200);
    assert_eq!(login_from(&srv, "alice", right, "203.0.113.2").await, 200);
    // Guessing from many addresses meets the slower limit of the account:
    // six attempts from addresses that had not logged in (her first and her
    // new address, the three guesses, one more here), then 429 for a new one...
    assert_eq!(login_from(&srv, "alice", wrong, "198.51.100.10").await, 401);
    assert_eq!(login_from(&srv, "alice", right, "198.51.100.11").await, 429);
    // ...while the addresses she logged in from are spared.
    assert_eq!(login_from(&srv, "alice", right, "203.0.113.1").await, 200);
    assert_eq!(login_from(&srv, "alice", right, "203.0.113.2").await, 200);
}

#[tokio::test]
async fn message_rate_limit_answers_429_and_stores_nothing_extra() {
    let srv = TestServer::start_with(|c| {
        c.rate_limits.messages_per_second = 1;
        c.rate_limits.message_burst = 3;
    })
    .await;
    let (gid, users) = group_of(&srv, 2).await;
    let mut ws = srv.ws_login(&users[0].1).await;
    let mut codes = Vec::new();
    for i in 0..5 {
        let a = ws.send_msg(gid, "hi", &format!("m{i}")).await;
        codes.push(a["code"].as_u64().unwrap());
        if a["kind"] == "Error" {
            assert!(a["serverMsgId"].is_null());
        }
    }
    assert_eq!(codes, vec![200, 200, 200, 429, 429]);
    let r = srv
        .post(
            "/api/message/history",
            Some(&users[1].1),
            json!({"gid": gid}),
        )
        .await;
    assert_eq!(r.assert_ok().as_array().unwrap().len(), 3);
    // The connection still works for everything else.
    ws.send(json!({"event": "Heart", "body": {"clientMsgId": "h"}}))
        .await;
    assert_eq!(ws.recv().await["kind"], "Ack");
}

fn preflight(srv: &TestServer, origin: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/user/login")
        .header("host", srv.addr.to_string())
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_allow_list() {
    let srv = TestServer::start().await;
    raw_request(srv.addr, preflight(&srv, "https://evil.example"))
        .await
        .assert_error(403);
    let r = srv.get("/healthz", None).await;
    assert!(r.headers.get("access-control-allow-origin").is_none());

    let srv =
        TestServer::start_with(|c| c.cors_origins = vec!["https://chat.example.org".into()]).await;
    let (_, token) = srv.user("alice").await;
    let req = preflight(&srv, "https://chat.example.org");
    let stream = TcpStream::connect(srv.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://chat.example.org"
    );
    assert!(
        resp.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Authorization")
    );
    raw_request(srv.addr, preflight(&srv, "https://evil.example"))
        .await
        .assert_error(403);

    let req = Request::builder()
        .uri("/api/group/get")
        .header("host", srv.addr.to_string())
        .header("origin", "https://chat.example.org")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = raw_request(srv.addr, req).await;
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://chat.example.org"
    );

    // WebSocket upgrades: listed and same-origin pages may connect, others not.
    let ws_with_origin = |origin: String| {
        let mut req = format!("ws://{}/ws", srv.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    assert!(
        ws_with_origin("https://chat.example.org".into())
            .await
            .is_ok()
    );
    assert!(ws_with_origin(format!("http://{}", srv.addr)).await.is_ok());
    let Err(err) = ws_with_origin("https://evil.example".into()).await else {
        panic!("a foreign origin is refused");
    };
    assert!(err.to_string().contains("403"), "{err}");
}

/// Opens `/ws` with `origin` (none: a native client) and says whether the
/// upgrade succeeded; a refusal must be a 403.
async fn ws_upgrade_with_origin(srv: &TestServer, origin: Option<&str>) -> bool {
    let mut req = format!("ws://{}/ws", srv.addr)
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        req.headers_mut().insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => true,
        Err(err) => {
            assert!(err.to_string().contains("403"), "{origin:?}: {err}");
            false
        }
    }
}

#[tokio::test]
async fn cross_site_websocket_upgrades_are_refused_with_the_default_config() {
    let srv = TestServer::start().await;
    assert!(srv.app().config.cors_origins.is_empty());
    assert!(!ws_upgrade_with_origin(&srv, Some("https://evil.example")).await);
    assert!(!ws_upgrade_with_origin(&srv, Some("null")).await);
    // The server's own pages, and clients that send no Origin, connect.
    assert!(ws_upgrade_with_origin(&srv, Some(&format!("http://{}", srv.addr))).await);
    assert!(ws_upgrade_with_origin(&srv, None).await);

    // Behind a proxy that rewrites Host, the public address is this server.
    let srv =
        TestServer::start_with(|c| c.public_url = Some("https://chat.example.org/rim".into()))
            .await;
    assert!(ws_upgrade_with_origin(&srv, Some("https://chat.example.org")).await);
    assert!(!ws_upgrade_with_origin(&srv, Some("https://chat.example.org.evil.example")).await);
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_and_others_unaffected() {
    let srv = TestServer::start_with(|c| c.max_connections = 4).await;
    let (gid, users) = group_of(&srv, 2).await;
    let mut a = srv.ws_login(&users[0].1).await;
    let mut b = srv.ws_login(&users[1].1).await;
    let _c = srv.ws().await;
    let _d = srv.ws().await;
    // The fifth connection gets a 503 in the JSON wrapper and is closed.
    let r = http(srv.addr, Method::GET, "/healthz", None, None).await;
    r.assert_error(503);
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{}/ws", srv.addr))
            .await
            .is_err()
    );
    // The connected users still chat.
    assert_eq!(a.send_msg(gid, "still here", "s1").await["kind"], "Ack");
    assert_eq!(b.recv().await["body"]["content"], "still here");
    // A slot frees up when someone leaves (once the server has seen the
    // connection end, which no answer announces: polled).
    drop(_c);
    let reused = eventually(WAIT, || async {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        buf.starts_with(b"HTTP/1.1 200")
    })
    .await;
    assert!(reused, "a freed slot is reused");
}

#[tokio::test]
async fn slow_headers_time_out_and_huge_headers_are_refused() {
    let srv = TestServer::start_with(|c| c.header_timeout = Duration::from_secs(1)).await;
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(4), slow.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the server hangs up on a client that never finishes its headers"
    );
    // A 100 KiB header is refused without harm.
    let mut huge = TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let _ = huge.write_all(head.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, huge.read_to_end(&mut buf))
        .await
        .expect("answered or closed");
    assert!(
        buf.is_empty() || buf.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&buf[..buf.len().min(80)])
    );
    // Meanwhile the server serves others.
    assert_eq!(srv.get("/healthz", None).await.status, 200);
}

#[tokio::test]
async fn path_tricks_and_absurd_numbers_get_clear_errors() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    for path in [
        "/api/../healthz",
        "/api/user/create/",
        "//api/user/create",
        "/api/user%2Fcreate",
        "/api/",
        "/API/user/login",
        "/ws/x",
    ] {
        let r = srv.post(path, None, json!({"account": "x"})).await;
        r.assert_error(404);
    }
    for q in [
        "uid=-1",
        "uid=abc",
        "uid=99999999999999999999",
        "uid=",
        "uid=1e3",
        "uid=%00",
    ] {
        srv.get(&format!("/api/user/get?{q}"), Some(&token))
            .await
            .assert_error(400);
    }
    for body in [
        json!({"gid": 1, "page": 99999999999u64, "size": 10}),
        json!({"gid": -5}),
        json!({"gid": 1, "page": 1, "size": -1}),
        json!({"gid": 1.5}),
        json!({"gid": 1, "beforeId": -1}),
    ] {
        srv.post("/api/message/history", Some(&token), body)
            .await
            .assert_error(400);
    }
}

#[tokio::test]
async fn ping_floods_are_answered_and_the_connection_stays_usable() {
    let srv = TestServer::start().await;
    let (gid, users) = group_of(&srv, 2).await;
    let mut ws = srv.ws_login(&users[0].1).await;
    for _ in 0..2000 {
        ws.stream
            .feed(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
    }
    ws.stream.flush().await.unwrap();
    let mut pongs = 0;
    while pongs < 2000 {
        match tokio::time::timeout(WAIT, ws.stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Pong(_) => pongs += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        ws.send_msg(gid, "after the flood", "f1").await["kind"],
        "Ack"
    );
}

/// SIGTERM while senders stream: everything acknowledged is stored, and every
/// connection either got its answers or a 1001 close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rim.db");
    let config = write_config(dir.path());
    let server = ChildServer::start(&config, &db).await;
    let addr = server.addr;
    let mut tokens = Vec::new();
    for i in 0..3 {
        let account = format!("sender{i}");
        http(
            addr,
            Method::POST,
            "/api/user/create",
            None,
            Some(json!({"account": account, "password": "password-123"}).to_string()),
        )
        .await;
        let r = http(
            addr,
            Method::POST,
            "/api/user/login",
            None,
            Some(json!({"account": account, "password": "password-123"}).to_string()),
        )
        .await;
        tokens.push(r.json["data"].as_str().unwrap().to_owned());
    }
    let r = http(
        addr,
        Method::POST,
        "/api/group/create",
        Some(&tokens[0]),
        Some(json!({"group": {"name": "g"}, "users": [{"uid": 2}, {"uid": 3}]}).to_string()),
    )
    .await;
    let gid = r.json["data"].as_u64().unwrap();

    // Each sender says when its first message is acknowledged.
    let (flowing_tx, mut flowing) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut tasks = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let token = token.clone();
        let flowing_tx = flowing_tx.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
            ws.send(Message::text(json!({"event": "Login", "body": {"content": token, "replay": true, "clientMsgId": "l"}}).to_string())).await.unwrap();
            let mut acked = Vec::new();
            let mut n = 0u64;
            loop {
                n += 1;
                let frame = json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "content": format!("{i}-{n}"), "clientMsgId": format!("{i}-{n}")}});
                if ws.send(Message::text(frame.to_string())).await.is_err() {
                    return (acked, None);
                }
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => {
                            let v: Value = serde_json::from_str(t.as_str()).unwrap();
                            if v["kind"] == "Ack" && v["clientMsgId"] == format!("{i}-{n}") {
                                acked.push(v["serverMsgId"].as_u64().unwrap());
                                if acked.len() == 1 {
                                    let _ = flowing_tx.send(());
                                }
                                break;
                            }
                        }
                        Some(Ok(Message::Close(frame))) => return (acked, frame.map(|f| u16::from(f.code))),
                        Some(Ok(_)) => {}
                        _ => return (acked, None),
                    }
                }
            }
        }));
    }
    // Shut down once every sender is streaming.
    for _ in 0..tokens.len() {
        tokio::time::timeout(WAIT, flowing.recv())
            .await
            .expect("every sender gets an ack")
            .expect("a sender");
    }
    let status = server.terminate().await;
    assert!(status.success(), "rim exits 0 on SIGTERM, got {status}");
    let mut all_acked = Vec::new();
    for t in tasks {
        let (acked, close) = tokio::time::timeout(WAIT, t).await.unwrap().unwrap();
        assert_eq!(close, Some(1001), "connections are closed with 1001");
        assert!(!acked.is_empty());
        all_acked.extend(acked);
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    for id in &all_acked {
        let n: i64 = conn
            .query_row("SELECT count(*) FROM messages WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 1, "acked message {id} is stored");
    }
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    eprintln!("{} acked messages stored across a SIGTERM", all_acked.len());
}

#[tokio::test]
async fn a_read_only_database_refuses_writes_clearly_and_recovers() {
    let srv = TestServer::start().await;
    let (gid, users) = group_of(&srv, 2).await;
    let mut ws = srv.ws_login(&users[0].1).await;
    assert_eq!(ws.send_msg(gid, "before", "ro-0").await["kind"], "Ack");

    srv.app().db.set_read_only(true).await.unwrap();
    let answer = ws.send_msg(gid, "while read-only", "ro-1").await;
    assert_eq!(answer["kind"], "Error", "{answer}");
    assert_eq!(answer["code"], 503, "{answer}");
    assert!(answer["serverMsgId"].is_null());
    assert!(
        answer["content"].as_str().unwrap().contains("read-only"),
        "{answer}"
    );
    srv.post(
        "/api/group/create",
        Some(&users[0].1),
        json!({"group": {"name": "more"}, "users": []}),
    )
    .await
    .assert_error(503);
    // Reads go on; nothing was stored.
    let r = srv
        .post(
            "/api/message/history",
            Some(&users[1].1),
            json!({"gid": gid}),
        )
        .await;
    assert_eq!(r.assert_ok().as_array().unwrap().len(), 1);
    assert_eq!(srv.get("/healthz", None).await.status, 200);

    srv.app().db.set_read_only(false).await.unwrap();
    let answer = ws.send_msg(gid, "while read-only", "ro-1").await;
    assert_eq!(answer["kind"], "Ack", "{answer}");
    let r = srv
        .post(
            "/api/message/history",
            Some(&users[1].1),
            json!({"gid": gid}),
        )
        .await;
    assert_eq!(r.assert_ok().as_array().unwrap().len(), 2);
}

/// After a clean stop the database file alone holds everything: the WAL was
/// checkpointed into it, so copying just `rim.db` is a complete copy.
#[tokio::test]
async fn a_stopped_server_leaves_everything_in_the_database_file() {
    let mut srv = TestServer::start().await;
    let (gid, users) = group_of(&srv, 2).await;
    let mut ws = srv.ws_login(&users[0].1).await;
    for i in 0..20 {
        assert_eq!(
            ws.send_msg(gid, "kept", &format!("k{i}")).await["kind"],
            "Ack"
        );
    }
    drop(ws);
    srv.stop().await;
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("copy.db");
    std::fs::copy(&srv.db_path, &copy).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 20);
}
