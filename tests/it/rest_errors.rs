//! How the REST surface fails: unknown routes and methods, bad bodies, size
//! limits, missing or bad tokens, hostile strings and numbers. Every failure
//! must be rim's JSON wrapper with `code` equal to the HTTP status (the
//! helpers refuse any body that is not JSON), never HTML or an empty body.

use std::convert::Infallible;

use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Body, Bytes, Frame};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::common::{Reply, TestServer, WAIT, create_group, http, raw_request};

/// The routes anyone may call without a token.
const PUBLIC: [&str; 7] = [
    "/api/user/create",
    "/api/user/login",
    "/api/user/token",
    "/api/openapi.json",
    "/api/server/info",
    "/api/push/key",
    "/api/bot/{key}/message",
];

/// A request with a body of any type (the common helper sends `Full` only).
async fn send<B>(srv: &TestServer, req: Request<B>) -> Reply
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(srv.addr).await.expect("connect");
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
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "not JSON (status {status}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Reply {
        status,
        headers,
        json,
    }
}

/// A request with a raw body text and an optional `Authorization` value.
async fn raw(
    srv: &TestServer,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", srv.addr.to_string())
        .header("content-type", "application/json");
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    raw_request(
        srv.addr,
        req.body(Full::new(Bytes::from(body.to_owned()))).unwrap(),
    )
    .await
}

fn assert_security_headers(r: &Reply) {
    let h = &r.headers;
    assert_eq!(
        h.get("x-content-type-options").map(|v| v.as_bytes()),
        Some(&b"nosniff"[..]),
        "{h:?}"
    );
    assert_eq!(
        h.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..]),
        "{h:?}"
    );
    assert_eq!(
        h.get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..]),
        "{h:?}"
    );
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    for path in [
        "/api/nope",
        "/api/user",
        "/api/user/",
        "/api/user/get/1",
        "/api/USER/GET",
        "/api/",
    ] {
        let r = srv.get(path, Some(&token)).await;
        r.assert_error(404);
        assert_security_headers(&r);
        srv.post(path, None, json!({})).await.assert_error(404);
    }
}

#[tokio::test]
async fn a_wrong_method_is_405() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let cases = [
        (Method::GET, "/api/user/login"),
        (Method::GET, "/api/user/create"),
        (Method::POST, "/api/user/get"),
        (Method::PUT, "/api/group/create"),
        (Method::DELETE, "/api/friend/add"),
        (Method::POST, "/api/friend/list"),
        (Method::PATCH, "/api/message/history"),
        (Method::POST, "/healthz"),
    ];
    for (method, path) in cases {
        let r = http(
            srv.addr,
            method.clone(),
            path,
            Some(&token),
            Some("{}".into()),
        )
        .await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.json);
        r.assert_error(405);
        assert_security_headers(&r);
    }
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let srv = TestServer::start().await;
    let (uid, token) = srv.user("alice").await;
    let bodies = [
        "",
        "   ",
        "{",
        "{\"account\": \"bob\", \"password\": }",
        "not json",
        "null",
        "[]",
        "42",
        "\"a string\"",
        "{\"account\": \"bob\"}",
        "{\"password\": \"long-enough\"}",
        "{\"account\": 5, \"password\": \"long-enough\"}",
        "{\"account\": \"bob\", \"password\": [\"long-enough\"]}",
        "{\"account\": \"bob\", \"password\": \"long-enough\"} trailing",
    ];
    for body in bodies {
        for path in ["/api/user/create", "/api/user/login"] {
            let r = raw(&srv, Method::POST, path, None, body).await;
            assert_eq!(r.status, 400, "{path} {body:?}: {}", r.json);
            r.assert_error(400);
        }
    }
    let bearer = format!("Bearer {token}");
    let authed = [
        ("/api/friend/add", ""),
        ("/api/friend/add", "{}"),
        ("/api/friend/add", "{\"fid\": \"2\"}"),
        ("/api/friend/add", "{\"fid\": 1.5}"),
        ("/api/friend/add", "{\"fid\": null}"),
        ("/api/friend/status/modify", "{\"fid\": 2}"),
        ("/api/group/create", "{\"group\": \"team\"}"),
        ("/api/group/create", "{\"group\": {\"name\": 7}}"),
        (
            "/api/group/create",
            "{\"group\": {\"name\": \"g\"}, \"users\": [2]}",
        ),
        ("/api/group/update", "{\"name\": \"g\"}"),
        (
            "/api/group/user/change",
            "{\"gid\": 1, \"uids\": 2, \"opType\": 1}",
        ),
        ("/api/group/direct", "{\"uid\": true}"),
        ("/api/message/history", "{\"gid\": \"1\"}"),
        ("/api/message/group/read", "{\"gid\": [1]}"),
        ("/api/message/chat/list", "{\"size\": \"ten\"}"),
    ];
    for (path, body) in authed {
        let r = raw(&srv, Method::POST, path, Some(&bearer), body).await;
        assert_eq!(r.status, 400, "{path} {body:?}: {}", r.json);
        r.assert_error(400);
    }
    // None of it created anything.
    let r = srv
        .get(&format!("/api/user/get?uid={uid}"), Some(&token))
        .await;
    r.assert_ok();
    let r = srv.get("/api/group/get", Some(&token)).await;
    assert_eq!(r.assert_ok(), &json!([]));
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let big = format!(
        "{{\"account\": \"bob\", \"password\": \"{}\"}}",
        "x".repeat(100 * 1024)
    );

    let r = raw(&srv, Method::POST, "/api/user/create", None, &big).await;
    r.assert_error(413);
    assert_security_headers(&r);
    let big_group = format!(
        "{{\"group\": {{\"name\": \"{}\"}}}}",
        "g".repeat(100 * 1024)
    );
    let r = raw(
        &srv,
        Method::POST,
        "/api/group/create",
        Some(&format!("Bearer {token}")),
        &big_group,
    )
    .await;
    r.assert_error(413);

    // Without a Content-Length (chunked), the limit still holds while reading.
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = (0..100)
        .map(|_| Ok(Frame::data(Bytes::from(vec![b' '; 1024]))))
        .collect();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/user/login")
        .header("host", srv.addr.to_string())
        .header("content-type", "application/json")
        .body(StreamBody::new(futures_util::stream::iter(chunks)))
        .unwrap();
    let r = send(&srv, req).await;
    r.assert_error(413);

    // Just under the limit is read (and refused for what it says, not its size).
    let near = format!(
        "{{\"account\": \"bob\", \"password\": \"{}\"}}",
        "x".repeat(60 * 1024)
    );
    let r = raw(&srv, Method::POST, "/api/user/create", None, &near).await;
    r.assert_error(400);
}

#[tokio::test]
async fn every_private_route_needs_a_valid_token() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let long = "a".repeat(300);
    let mut checked = 0;
    for (method, path) in rim::rest::routes() {
        if PUBLIC.contains(&path) {
            continue;
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let uri = format!("{path}?uid=1&gid=1&status=1&account=alice");
        for auth in [
            None,
            Some(String::new()),
            Some("Bearer".to_owned()),
            Some("Bearer ".to_owned()),
            Some("Bearer garbage".to_owned()),
            Some(format!("Bearer {}", "0".repeat(64))),
            Some(format!("Bearer {}", &token[..63])),
            Some(format!("Bearer {token}x")),
            Some(format!("Bearer {long}")),
        ] {
            let r = raw(&srv, method.clone(), &uri, auth.as_deref(), "{}").await;
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.json);
            r.assert_error(401);
            assert_eq!(
                r.headers.get("www-authenticate").map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{path}"
            );
            assert_security_headers(&r);
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} private routes");
}

#[tokio::test]
async fn the_scheme_word_is_ignored_like_rim_does() {
    let srv = TestServer::start().await;
    let (uid, token) = srv.user("alice").await;
    let path = format!("/api/user/get?uid={uid}");
    for auth in [
        format!("Bearer {token}"),
        format!("Token {token}"),
        format!("bearer {token}"),
        format!("Basic {token}"),
        token.clone(),
        format!("Bearer   {token}  "),
    ] {
        let r = raw(&srv, Method::GET, &path, Some(&auth), "").await;
        assert_eq!(r.status, 200, "{auth:?}: {}", r.json);
        assert_eq!(r.assert_ok()["id"], uid);
    }
}

#[tokio::test]
async fn hostile_strings_are_stored_and_returned_verbatim() {
    let srv = TestServer::start().await;
    let (alice, ta) = srv.user("alice").await;
    let evil_name = "Robert'); DROP TABLE users;--";
    let r = srv
        .post(
            "/api/user/create",
            None,
            json!({"account": "mallory", "password": "password-mallory", "name": evil_name}),
        )
        .await;
    let mallory = r.assert_ok().as_u64().unwrap();
    let tm = srv.login("mallory").await;
    let r = srv
        .get(&format!("/api/user/get?uid={mallory}"), Some(&ta))
        .await;
    assert_eq!(r.assert_ok()["name"], evil_name);

    // Searches are exact matches on a bound parameter: no quoting tricks, no wildcards.
    for account in [
        "' OR '1'='1",
        "alice' --",
        "alice\" OR \"\"=\"",
        "%",
        "_____",
        "al%",
        "*",
    ] {
        let q: String = account.bytes().map(|b| format!("%{b:02X}")).collect();
        let r = srv
            .get(&format!("/api/user/search?account={q}"), Some(&ta))
            .await;
        r.assert_error(404);
    }
    srv.post(
        "/api/user/login",
        None,
        json!({"account": "' OR 1=1 --", "password": "x' OR '1'='1"}),
    )
    .await
    .assert_error(401);
    srv.post(
        "/api/user/login",
        None,
        json!({"account": "alice' --", "password": "whatever1"}),
    )
    .await
    .assert_error(401);
    srv.get("/api/user/token?token=%27%20OR%20%271%27%3D%271", None)
        .await
        .assert_error(401);
    raw(
        &srv,
        Method::GET,
        "/api/group/get",
        Some("Bearer ' OR '1'='1"),
        "",
    )
    .await
    .assert_error(401);

    let evil_group = "x'; DELETE FROM groups; --";
    let gid = create_group(&srv, &ta, evil_group, &[mallory]).await;
    let evil_rename = "\"; UPDATE users SET name = 'pwned'; --";
    srv.post(
        "/api/group/update",
        Some(&ta),
        json!({"id": gid, "name": evil_rename}),
    )
    .await
    .assert_ok();
    let r = srv.get("/api/group/get", Some(&tm)).await;
    assert_eq!(r.assert_ok()[0]["name"], evil_rename);

    let evil_text = "'); DELETE FROM messages; -- \\ % _ \u{3000} 😀";
    let mut ws = srv.ws_login(&tm).await;
    let ack = ws.send_msg(gid, evil_text, "evil-1").await;
    assert_eq!(ack["kind"], "Ack", "{ack}");
    let r = srv
        .post("/api/message/history", Some(&ta), json!({"gid": gid}))
        .await;
    let rows = r.assert_ok().as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["msg"]["content"], evil_text);
    let r = srv
        .post("/api/message/chat/list", Some(&ta), json!({}))
        .await;
    assert_eq!(r.assert_ok()[0]["msg"]["content"], evil_text);
    assert_eq!(r.data()[0]["user"]["name"], evil_name);

    // Everything is still there.
    let r = srv
        .get(&format!("/api/user/get?uid={alice}"), Some(&tm))
        .await;
    assert_eq!(r.assert_ok()["name"], "ALICE");
    srv.login("alice").await;
}

#[tokio::test]
async fn numbers_out_of_range_are_400() {
    let srv = TestServer::start().await;
    let (uid, token) = srv.user("alice").await;
    for value in [
        "-1",
        "abc",
        "99999999999999999999",
        "",
        "1.5",
        "1e3",
        "0x10",
        "%201",
        "+1",
    ] {
        for path in [
            "/api/user/get?uid=",
            "/api/group/user/get?gid=",
            "/api/friend/list?status=",
        ] {
            let r = srv.get(&format!("{path}{value}"), Some(&token)).await;
            assert_eq!(r.status, 400, "{path}{value}: {}", r.json);
            r.assert_error(400);
        }
    }
    for body in [
        json!({"fid": -1}),
        json!({"fid": 1e30}),
        json!({"fid": "1"}),
    ] {
        let r = srv
            .post("/api/friend/add", Some(&token), body.clone())
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.json);
        r.assert_error(400);
    }
    let r = raw(
        &srv,
        Method::POST,
        "/api/group/direct",
        Some(&format!("Bearer {token}")),
        "{\"uid\": 18446744073709551616}",
    )
    .await;
    r.assert_error(400);
    // A leading zero is still the number.
    let r = srv
        .get(&format!("/api/user/get?uid=0{uid}"), Some(&token))
        .await;
    assert_eq!(r.assert_ok()["id"], uid);
}

#[tokio::test]
async fn ids_beyond_the_databases_range_are_400() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    // Valid u64 values that SQLite's signed 64-bit integers cannot hold: a
    // 400 that says so, not a 500 from the storage layer.
    for id in ["9223372036854775808", "18446744073709551615"] {
        let r = srv
            .get(&format!("/api/user/get?uid={id}"), Some(&token))
            .await;
        r.assert_error(400);
        let r = srv
            .get(&format!("/api/group/user/get?gid={id}"), Some(&token))
            .await;
        r.assert_error(400);
        let bearer = format!("Bearer {token}");
        for (path, body) in [
            ("/api/friend/add", format!("{{\"fid\": {id}}}")),
            ("/api/group/direct", format!("{{\"uid\": {id}}}")),
            ("/api/message/history", format!("{{\"gid\": {id}}}")),
            ("/api/message/group/read", format!("{{\"gid\": {id}}}")),
            (
                "/api/group/update",
                format!("{{\"id\": {id}, \"name\": \"x\"}}"),
            ),
            (
                "/api/group/user/change",
                format!("{{\"gid\": {id}, \"uids\": [1], \"opType\": 1}}"),
            ),
        ] {
            let r = raw(&srv, Method::POST, path, Some(&bearer), &body).await;
            assert_eq!(r.status, 400, "{path} {body}: {}", r.json);
            r.assert_error(400);
        }
    }
}

#[tokio::test]
async fn security_headers_are_on_every_answer() {
    let srv = TestServer::start().await;
    let (uid, token) = srv.user("alice").await;
    let replies = [
        srv.get(&format!("/api/user/get?uid={uid}"), Some(&token))
            .await,
        srv.get("/api/user/get?uid=1", None).await,
        srv.get("/api/nope", None).await,
        srv.get("/healthz", None).await,
        srv.post(
            "/api/user/login",
            None,
            json!({"account": "alice", "password": "nope-nope"}),
        )
        .await,
    ];
    for r in &replies {
        assert_security_headers(r);
        assert_eq!(
            r.headers.get("x-frame-options").map(|v| v.as_bytes()),
            Some(&b"DENY"[..])
        );
    }
}

#[tokio::test]
async fn healthz_says_ok() {
    let srv = TestServer::start().await;
    let r = srv.get("/healthz", None).await;
    let data = r.assert_ok();
    assert_eq!(data["status"], "ok");
    assert!(data["schema"].as_i64().is_some_and(|v| v >= 1), "{data}");
}

#[tokio::test]
async fn ws_without_an_upgrade_is_a_wrapped_400() {
    let srv = TestServer::start().await;
    let r = srv.get("/ws", None).await;
    r.assert_error(400);
    let r: Reply = srv.post("/ws", None, Value::Null).await;
    r.assert_error(400);
}
