//! Durability under `kill -9`: a real `rim serve` child process is killed in
//! the middle of a message stream, restarted on the same file, and every
//! acknowledged message must be there exactly once; resending the
//! unacknowledged ones with their clientMsgId stores each exactly once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::Method;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::child::{ChildServer, write_config};
use crate::common::{WAIT, http};

async fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: Value) -> Value {
    let r = http(addr, Method::POST, path, token, Some(body.to_string())).await;
    assert_eq!(r.status, 200, "{path}: {}", r.json);
    r.json["data"].clone()
}

/// What one sender knows: acks received, and frames sent but not acked.
#[derive(Default)]
struct Ledger {
    acked: HashMap<String, (u64, String)>,
    pending: Vec<(String, String)>,
}

/// Streams messages to `gid` with up to `window` unacknowledged at a time,
/// recording everything in `ledger` and telling `acked` of every ack, until
/// the connection dies.
async fn stream_messages(
    addr: SocketAddr,
    token: String,
    gid: u64,
    tag: String,
    ledger: Arc<Mutex<Ledger>>,
    acked: Arc<Notify>,
) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await else {
        return;
    };
    let login =
        json!({"event":"Login","body":{"content": token, "replay": true, "clientMsgId":"login"}});
    if ws.send(Message::text(login.to_string())).await.is_err() {
        return;
    }
    let Some(Ok(_)) = ws.next().await else { return };
    let window = 8;
    let mut next = 0u64;
    loop {
        while ledger.lock().unwrap().pending.len() < window {
            next += 1;
            let cid = format!("{tag}-{next}");
            let content = format!("message {next} from {tag} 'quoted' \"and\" ünïcödé");
            ledger
                .lock()
                .unwrap()
                .pending
                .push((cid.clone(), content.clone()));
            let frame = json!({"event":"Msg","body":{"kind":"Text","gid":gid,"content":content,"clientMsgId":cid}});
            if ws.send(Message::text(frame.to_string())).await.is_err() {
                return;
            }
        }
        let answer = match ws.next().await {
            Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            _ => return,
        };
        if answer["kind"] != "Ack" {
            continue; // a push from another sender in the group
        }
        let cid = answer["clientMsgId"].as_str().unwrap().to_owned();
        let id = answer["serverMsgId"].as_u64().unwrap();
        let mut l = ledger.lock().unwrap();
        let pos = l
            .pending
            .iter()
            .position(|(c, _)| *c == cid)
            .expect("ack for a pending frame");
        let (_, content) = l.pending.remove(pos);
        l.acked.insert(cid, (id, content));
        drop(l);
        acked.notify_waiters();
    }
}

/// Every acked message is stored exactly once with its content and id.
fn verify_acked(db: &Path, uid: u64, ledger: &Ledger) {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let mut stmt = conn
        .prepare("SELECT id, content FROM messages WHERE uid = ?1 AND client_msg_id = ?2")
        .unwrap();
    for (cid, (id, content)) in &ledger.acked {
        let rows: Vec<(u64, String)> = stmt
            .query_map(rusqlite::params![uid, cid], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![(*id, content.clone())],
            "acked message {cid} must be stored once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_survive_kill_9_and_resends_store_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rim.db");
    let config = write_config(dir.path());
    let server = ChildServer::start(&config, &db).await;
    let addr = server.addr;

    const SENDERS: usize = 4;
    let mut users = Vec::new();
    for i in 0..SENDERS {
        let account = format!("sender{i}");
        let uid = post(
            addr,
            "/api/user/create",
            None,
            json!({"account": account, "password": "password-123"}),
        )
        .await
        .as_u64()
        .unwrap();
        let token = post(
            addr,
            "/api/user/login",
            None,
            json!({"account": account, "password": "password-123"}),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
        users.push((uid, token));
    }
    let members: Vec<Value> = users.iter().map(|(uid, _)| json!({"uid": uid})).collect();
    let gid = post(
        addr,
        "/api/group/create",
        Some(&users[0].1),
        json!({"group":{"name":"crash"},"users": members}),
    )
    .await
    .as_u64()
    .unwrap();

    let ledgers: Vec<Arc<Mutex<Ledger>>> = (0..SENDERS).map(|_| Arc::default()).collect();
    let acked = Arc::new(Notify::new());
    let total_acked = || {
        ledgers
            .iter()
            .map(|l| l.lock().unwrap().acked.len())
            .sum::<usize>()
    };
    let mut server = Some(server);
    let mut total_verified = 0;
    // Kill after these many acknowledgements in total (cumulative).
    for (round, kill_at) in [40usize, 300, 900].into_iter().enumerate() {
        let addr = server.as_ref().unwrap().addr;
        let tasks: Vec<_> = users
            .iter()
            .zip(&ledgers)
            .enumerate()
            .map(|(i, ((_, token), ledger))| {
                tokio::spawn(stream_messages(
                    addr,
                    token.clone(),
                    gid,
                    format!("r{round}s{i}"),
                    ledger.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                // Listening before looking, so that no ack goes unnoticed.
                let next_ack = acked.notified();
                tokio::pin!(next_ack);
                next_ack.as_mut().enable();
                if total_acked() >= kill_at {
                    break;
                }
                next_ack.await;
            }
        })
        .await
        .expect("messages flow");
        server.take().unwrap().kill9().await;
        for t in tasks {
            let _ = tokio::time::timeout(WAIT, t)
                .await
                .expect("sender notices the kill");
        }

        let (acked, pending) = ledgers.iter().fold((0, 0), |(a, p), l| {
            let l = l.lock().unwrap();
            (a + l.acked.len(), p + l.pending.len())
        });
        eprintln!("round {round}: killed after {acked} acks with {pending} frames unacknowledged");

        let restarted = ChildServer::start(&config, &db).await;
        for ((uid, _), ledger) in users.iter().zip(&ledgers) {
            verify_acked(&db, *uid, &ledger.lock().unwrap());
        }

        // Resend what was never acknowledged: each is stored exactly once,
        // whether or not the killed server had committed it.
        for ((uid, token), ledger) in users.iter().zip(&ledgers) {
            let (mut ws, _) =
                tokio_tungstenite::connect_async(format!("ws://{}/ws", restarted.addr))
                    .await
                    .unwrap();
            let login = json!({"event":"Login","body":{"content": token, "replay": true, "clientMsgId":"login"}});
            ws.send(Message::text(login.to_string())).await.unwrap();
            let pending = std::mem::take(&mut ledger.lock().unwrap().pending);
            for (cid, content) in &pending {
                let frame = json!({"event":"Msg","body":{"kind":"Text","gid":gid,"content":content,"clientMsgId":cid}});
                ws.send(Message::text(frame.to_string())).await.unwrap();
            }
            let mut waiting: HashMap<String, String> = pending.into_iter().collect();
            while !waiting.is_empty() {
                let msg = tokio::time::timeout(WAIT, ws.next())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                let Message::Text(t) = msg else { continue };
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["kind"] != "Ack" || v["clientMsgId"] == "login" {
                    continue;
                }
                let cid = v["clientMsgId"].as_str().unwrap().to_owned();
                let content = waiting.remove(&cid).expect("ack for a resent frame");
                ledger
                    .lock()
                    .unwrap()
                    .acked
                    .insert(cid, (v["serverMsgId"].as_u64().unwrap(), content));
            }
            verify_acked(&db, *uid, &ledger.lock().unwrap());
        }
        total_verified = total_acked();
        server = Some(restarted);
    }
    // Nothing else was stored: the table holds exactly the acknowledged set.
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let stored: usize = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, total_verified);
    eprintln!("{stored} messages verified exactly once after 3 kills");
    server.take().unwrap().kill9().await;
}
