//! More promises of SECURITY.md: fragmented frames are reassembled, a login
//! flood cannot starve messaging, and no password or token reaches the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::SinkExt;
use hyper::Method;
use serde_json::json;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::child::ChildServer;
use crate::common::{TestServer, WAIT, create_group, http};

#[tokio::test]
async fn fragmented_frames_are_reassembled() {
    let srv = TestServer::start().await;
    let (_, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let gid = create_group(&srv, &ta, "g", &[b]).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let text = json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "content": "in three parts ✂", "clientMsgId": "frag"}})
        .to_string();
    let bytes = text.as_bytes();
    // Split inside the multi-byte character too: UTF-8 is checked on the whole.
    let cut1 = bytes.len() / 3;
    let cut2 = bytes.len() - 3;
    let parts = [
        Frame::message(bytes[..cut1].to_vec(), OpCode::Data(Data::Text), false),
        Frame::message(
            bytes[cut1..cut2].to_vec(),
            OpCode::Data(Data::Continue),
            false,
        ),
        Frame::message(bytes[cut2..].to_vec(), OpCode::Data(Data::Continue), true),
    ];
    for part in parts {
        wa.stream.send(Message::Frame(part)).await.unwrap();
    }
    let ack = wa.recv().await;
    assert_eq!(ack["kind"], "Ack", "{ack}");
    assert_eq!(ack["clientMsgId"], "frag");
    assert_eq!(wb.recv().await["body"]["content"], "in three parts ✂");
}

/// Logins at the real argon2 cost, one hash at a time: while they queue, a
/// message is still acknowledged, long before the storm is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_does_not_starve_messaging() {
    const STORM: usize = 12;
    let srv = TestServer::start_with(|c| {
        c.hash_cost = rim::config::HashCost::default();
        c.hash_concurrency = 1;
    })
    .await;
    let (_, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let gid = create_group(&srv, &ta, "g", &[b]).await;
    let mut wb = srv.ws_login(&tb).await;

    let done = Arc::new(AtomicUsize::new(0));
    let first_done = Arc::new(Notify::new());
    let addr = srv.addr;
    let mut storm = Vec::new();
    for _ in 0..STORM {
        let (done, first_done) = (done.clone(), first_done.clone());
        storm.push(tokio::spawn(async move {
            let body = json!({"account": "alice", "password": "password-alice"}).to_string();
            let r = http(addr, Method::POST, "/api/user/login", None, Some(body)).await;
            assert_eq!(r.status, 200, "{}", r.json);
            done.fetch_add(1, Ordering::SeqCst);
            // Keeps a permit if nobody waits yet.
            first_done.notify_one();
        }));
    }
    // The storm is under way once the first hash finished.
    tokio::time::timeout(WAIT * 6, first_done.notified())
        .await
        .expect("a login of the storm finishes");
    let ack = wb.send_msg(gid, "still talking", "during-storm").await;
    let finished_by_then = done.load(Ordering::SeqCst);
    assert_eq!(ack["kind"], "Ack", "{ack}");
    assert!(
        finished_by_then < STORM,
        "the ack must not wait for the logins queued behind the hashing limit ({finished_by_then} of {STORM} done)"
    );
    for t in storm {
        t.await.unwrap();
    }
    eprintln!("message acked with {finished_by_then} of {STORM} logins done");
}

#[tokio::test]
async fn passwords_and_tokens_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rim.toml");
    std::fs::write(
        &config,
        "log_level = \"debug\"\n[auth]\nargon2_memory_kib = 64\nargon2_iterations = 1\n",
    )
    .unwrap();
    let server = ChildServer::start(&config, &dir.path().join("rim.db")).await;
    let addr = server.addr;
    let password = "Zebra-Umbrella-4711";
    let creds = json!({"account": "alice", "password": password}).to_string();
    http(
        addr,
        Method::POST,
        "/api/user/create",
        None,
        Some(creds.clone()),
    )
    .await;
    let bad = json!({"account": "alice", "password": "Wrong-Secret-0815"}).to_string();
    http(addr, Method::POST, "/api/user/login", None, Some(bad)).await;
    let token = http(addr, Method::POST, "/api/user/login", None, Some(creds))
        .await
        .json["data"]
        .as_str()
        .unwrap()
        .to_owned();
    http(
        addr,
        Method::GET,
        &format!("/api/user/token?token={token}"),
        None,
        None,
    )
    .await;
    http(addr, Method::GET, "/api/user/me", Some(&token), None).await;
    let mut ws = crate::common::Ws::connect(addr).await;
    assert_eq!(ws.login(&token).await["kind"], "Ack");
    http(
        addr,
        Method::POST,
        "/api/user/logout",
        Some(&token),
        Some("{}".into()),
    )
    .await;
    drop(ws);
    let status = server.terminate_keep_log().await;
    let (exit, log) = status;
    assert!(exit.success());
    assert!(log.contains("login"), "the log has the events: {log}");
    for secret in [password, "Wrong-Secret-0815", token.as_str()] {
        assert!(
            !log.contains(secret),
            "{secret:?} leaked into the log:\n{log}"
        );
    }
}
