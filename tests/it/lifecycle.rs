//! The server's life: a restart on the same database loses nothing, and a
//! graceful shutdown tells WebSocket clients `1001 going away`, after
//! committing everything it acknowledged.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::TcpStream;

use crate::common::{TestServer, Ws, assert_ack, direct_pair, history_msgs, unread_in};

/// Waits for the server's close frame and hangs up, as a client that was told
/// to go away does; returns the close code.
async fn close_and_hang_up(mut ws: Ws) -> u16 {
    let code = ws.expect_close().await;
    drop(ws);
    code
}

#[tokio::test]
async fn restart_keeps_messages_unread_counts_and_tokens() {
    let srv = TestServer::start().await;
    let ((a, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let cmid = format!("c{i}");
        ids.push(
            assert_ack(
                &wa.send_msg(gid, &format!("before {i}"), &cmid).await,
                &cmid,
            )
            .unwrap(),
        );
    }
    drop(wa);
    assert_eq!(unread_in(&srv, &tb, gid).await, 3);
    let before = history_msgs(&srv, &tb, gid).await;

    let srv = srv.restart().await;
    // The same tokens work, over REST and WebSocket.
    let me = srv.get(&format!("/api/user/token?token={ta}"), None).await;
    assert_eq!(me.assert_ok()["id"], a);
    assert_eq!(history_msgs(&srv, &tb, gid).await, before);
    assert_eq!(unread_in(&srv, &tb, gid).await, 3);

    // Bob never connected: his messages are still waiting for him.
    let mut wb = srv.ws_login(&tb).await;
    for id in &ids {
        let push = wb.recv().await;
        assert_eq!(push["body"]["msgId"], *id, "{push}");
    }
    wb.send(json!({"event": "Read", "body": {"gid": gid, "msgId": ids[2], "clientMsgId": "r"}}))
        .await;
    assert_ack(&wb.recv().await, "r");
    // A resend after the restart is still recognised as the same message.
    let mut wa = srv.ws_login(&ta).await;
    assert_eq!(
        assert_ack(&wa.send_msg(gid, "before 0", "c0").await, "c0"),
        Some(ids[0])
    );
    drop((wa, wb));

    let srv = srv.restart().await;
    assert_eq!(unread_in(&srv, &tb, gid).await, 0, "the read mark survived");
    assert_eq!(history_msgs(&srv, &ta, gid).await.len(), 3);
}

#[tokio::test]
async fn shutdown_closes_websockets_with_1001() {
    let mut srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let logged_in = srv.ws_login(&token).await;
    let anonymous = srv.ws().await;
    let addr = srv.addr;

    let started = Instant::now();
    let ((), first, second) = tokio::join!(
        srv.stop(),
        close_and_hang_up(logged_in),
        close_and_hang_up(anonymous)
    );
    assert_eq!((first, second), (1001, 1001));
    // Clients that hang up at once let the shutdown finish well within its grace period.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

/// Waits for the server's close frame, answers it (tungstenite does) and, as
/// RFC 6455 asks of a client, waits for the server to end the TCP connection.
/// Returns the close code and how long the server took to hang up.
async fn close_and_wait_for_hang_up(mut ws: Ws) -> (u16, Duration) {
    use futures_util::StreamExt;
    let code = ws.expect_close().await;
    let closed = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.stream.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return (code, closed.elapsed()),
            Err(_) => panic!("the server never ended the connection"),
        }
    }
}

#[tokio::test]
async fn shutdown_does_not_wait_for_clients_to_hang_up() {
    let mut srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let ws = srv.ws_login(&token).await;
    let started = Instant::now();
    let ((), (code, hang_up)) = tokio::join!(srv.stop(), close_and_wait_for_hang_up(ws));
    assert_eq!(code, 1001);
    assert!(
        hang_up < Duration::from_secs(1),
        "the server held the closed connection for {hang_up:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn every_acked_message_survives_a_shutdown() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let id = assert_ack(&wa.send_msg(gid, "last words", "last").await, "last").unwrap();

    // Shut down straight after the ack, with the sender still connected.
    let (srv, code) = tokio::join!(srv.restart(), close_and_hang_up(wa));
    assert_eq!(code, 1001);
    let stored = history_msgs(&srv, &tb, gid).await;
    assert_eq!(
        stored.last().map(|m| m["id"].clone()),
        Some(json!(id)),
        "{stored:?}"
    );
    assert_eq!(stored.last().unwrap()["content"], "last words");
}

#[tokio::test]
async fn messages_in_flight_at_shutdown_are_either_acked_and_kept_or_resendable() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    // Pipeline 50 messages, then shut down as soon as the first is acked.
    for i in 0..50 {
        wa.send(json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "content": format!("m{i}"), "clientMsgId": format!("p{i}")}}))
            .await;
    }
    let first = wa.recv().await;
    assert_ack(&first, "p0");
    let collect = async {
        let mut acked = vec![first["serverMsgId"].as_u64().unwrap()];
        loop {
            use futures_util::StreamExt;
            use tokio_tungstenite::tungstenite::Message;
            match tokio::time::timeout(Duration::from_secs(5), wa.stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let answer: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    if answer["kind"] == "Ack" {
                        let cmid = format!("p{}", acked.len());
                        acked.push(assert_ack(&answer, &cmid).unwrap());
                    }
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return (acked, frame.map(|f| u16::from(f.code)));
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("expected a close, got {other:?}"),
            }
        }
    };
    let (srv, (acked, code)) = tokio::join!(srv.restart(), collect);
    drop(wa);
    if acked.len() < 50 {
        assert_eq!(code, Some(1001));
    }
    let stored: Vec<_> = history_msgs(&srv, &tb, gid)
        .await
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert!(stored.len() >= acked.len());
    assert_eq!(
        stored[..acked.len()],
        acked[..],
        "an acknowledged message was lost"
    );

    // Whatever was not acknowledged can be resent by clientMsgId without duplicates.
    let mut wa = srv.ws_login(&ta).await;
    for i in 0..50 {
        let cmid = format!("p{i}");
        let id = assert_ack(&wa.send_msg(gid, &format!("m{i}"), &cmid).await, &cmid).unwrap();
        if let Some(&old) = stored.get(i) {
            assert_eq!(id, old, "resend of {cmid}");
        }
    }
    assert_eq!(history_msgs(&srv, &tb, gid).await.len(), 50);
}
