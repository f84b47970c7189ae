//! WebSocket sessions: Login with a REST token, what may be sent before it,
//! Logout, token revocation, and the timers that close connections which never
//! log in or go quiet.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{
    RawFrame, RawWs, TestServer, WAIT, assert_ack, assert_nothing_before_marker, assert_refused,
    direct_pair, history_msgs,
};

fn login_frame(token: &str, client_msg_id: &str) -> Value {
    json!({"event": "Login", "body": {"kind": "Text", "content": token, "clientMsgId": client_msg_id}})
}

#[tokio::test]
async fn login_with_a_rest_token_binds_the_connection() {
    let srv = TestServer::start().await;
    let ((a, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wb = srv.ws_login(&tb).await;

    let mut wa = srv.ws().await;
    wa.send(login_frame(&ta, "hello-login")).await;
    let ack = wa.recv().await;
    assert_eq!(assert_ack(&ack, "hello-login"), None);
    // The key is there, and null: rim clients read it.
    assert_eq!(ack.get("serverMsgId"), Some(&Value::Null), "{ack}");

    // The connection now acts as alice, whatever the frames say.
    let id = assert_ack(&wa.send_msg(gid, "as alice", "c1").await, "c1").expect("message id");
    let push = wb.recv().await;
    assert_eq!(push["event"], "Msg", "{push}");
    assert_eq!(push["body"]["uid"], a, "{push}");
    assert_eq!(push["body"]["msgId"], id, "{push}");
}

#[tokio::test]
async fn bad_tokens_get_401_and_the_connection_stays_usable() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let revoked = srv.login("alice").await;
    srv.post("/api/user/logout", Some(&revoked), json!({}))
        .await
        .assert_ok();
    srv.get(&format!("/api/user/token?token={revoked}"), None)
        .await
        .assert_error(401);

    let mut ws = srv.ws().await;
    let long = "x".repeat(300);
    for (i, bad) in ["garbage", "", long.as_str(), revoked.as_str()]
        .into_iter()
        .enumerate()
    {
        let cmid = format!("bad-{i}");
        ws.send(login_frame(bad, &cmid)).await;
        let answer = ws.recv().await;
        assert_refused(&answer, 401);
        assert_eq!(answer["clientMsgId"], cmid.as_str(), "{answer}");
        // Still not logged in, still answering.
        ws.send(json!({"event": "Msg", "body": {"kind": "Text", "gid": 1, "content": "x", "clientMsgId": "m"}}))
            .await;
        assert_refused(&ws.recv().await, 401);
    }
    // A Login without a token at all is a malformed frame.
    ws.send(json!({"event": "Login", "body": {"clientMsgId": "no-token"}}))
        .await;
    let answer = ws.recv().await;
    assert_refused(&answer, 400);
    assert_eq!(answer["clientMsgId"], "no-token");

    ws.send(login_frame(&token, "good")).await;
    assert_ack(&ws.recv().await, "good");
    ws.send(json!({"event": "Heart", "body": {"clientMsgId": "h"}}))
        .await;
    assert_ack(&ws.recv().await, "h");
}

#[tokio::test]
async fn login_naming_another_uid_is_forbidden() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, _) = srv.user("bob").await;
    let mut ws = srv.ws().await;
    ws.send(json!({"event": "Login", "body": {"content": ta, "uid": b, "clientMsgId": "l1"}}))
        .await;
    let answer = ws.recv().await;
    assert_refused(&answer, 403);
    assert_eq!(answer["clientMsgId"], "l1");
    // Not logged in after the refusal.
    ws.send(json!({"event": "Logout", "body": {"clientMsgId": "lo"}}))
        .await;
    assert_refused(&ws.recv().await, 401);
    // Naming the token's own uid is fine, and so is 0 ("not known yet", rim-front).
    ws.send(json!({"event": "Login", "body": {"content": ta, "uid": a, "clientMsgId": "l2"}}))
        .await;
    assert_ack(&ws.recv().await, "l2");
    let mut other = srv.ws().await;
    other
        .send(json!({"event": "Login", "body": {"content": ta, "uid": 0, "clientMsgId": "l3"}}))
        .await;
    assert_ack(&other.recv().await, "l3");
}

#[tokio::test]
async fn frames_other_than_login_and_heart_need_a_login() {
    let srv = TestServer::start().await;
    let ((_, ta), _, gid) = direct_pair(&srv, "alice", "bob").await;
    let mut ws = srv.ws().await;
    let frames = [
        (
            "Msg",
            json!({"kind": "Text", "gid": gid, "content": "sneaky", "clientMsgId": "f-msg"}),
        ),
        (
            "Ack",
            json!({"gid": gid, "msgId": 1, "clientMsgId": "f-ack"}),
        ),
        (
            "Read",
            json!({"gid": gid, "msgId": 1, "clientMsgId": "f-read"}),
        ),
        ("Logout", json!({"clientMsgId": "f-logout"})),
    ];
    for (event, body) in frames {
        let cmid = body["clientMsgId"].as_str().unwrap().to_owned();
        ws.send(json!({"event": event, "body": body})).await;
        let answer = ws.recv().await;
        assert_refused(&answer, 401);
        assert_eq!(answer["clientMsgId"], cmid.as_str(), "{event}: {answer}");
    }
    ws.send(json!({"event": "Heart", "body": {"clientMsgId": "f-heart"}}))
        .await;
    assert_ack(&ws.recv().await, "f-heart");
    assert!(
        history_msgs(&srv, &ta, gid).await.is_empty(),
        "nothing stored"
    );
}

#[tokio::test]
async fn heart_is_answered_before_and_after_login() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let mut ws = srv.ws().await;
    ws.send(json!({"event": "Heart", "body": {"clientMsgId": "h1"}}))
        .await;
    assert_eq!(assert_ack(&ws.recv().await, "h1"), None);
    // A bare Heart, as rim-front's timer sends it, without a body.
    ws.send(json!({"event": "Heart"})).await;
    assert_eq!(assert_ack(&ws.recv().await, ""), None);
    assert_ack(&ws.login(&token).await, "login");
    ws.send(json!({"event": "Heart", "body": {"clientMsgId": "h2"}}))
        .await;
    assert_eq!(assert_ack(&ws.recv().await, "h2"), None);
}

#[tokio::test]
async fn logout_ends_only_this_connections_session() {
    let srv = TestServer::start().await;
    let ((_, ta), (b, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut phone = srv.ws_login(&ta).await;
    let mut laptop = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;

    // Logging out as somebody else is refused and changes nothing.
    phone
        .send(json!({"event": "Logout", "body": {"uid": b, "clientMsgId": "x"}}))
        .await;
    assert_refused(&phone.recv().await, 403);

    phone
        .send(json!({"event": "Logout", "body": {"clientMsgId": "bye"}}))
        .await;
    assert_eq!(assert_ack(&phone.recv().await, "bye"), None);
    assert_refused(&phone.send_msg(gid, "after logout", "m1").await, 401);

    let id = assert_ack(&wb.send_msg(gid, "still there?", "b1").await, "b1").unwrap();
    let push = laptop.recv().await;
    assert_eq!(push["body"]["msgId"], id, "{push}");
    // The phone got nothing. Its 401 shows it is not logged in, and a
    // connection without a login has no push queue, so a Heart's ack coming
    // next is proof enough (a marker message cannot reach it).
    phone.expect_heart_next().await;

    // The token itself is untouched: the same connection may log in again.
    assert_ack(&phone.login(&ta).await, "login");
    let id2 = assert_ack(&wb.send_msg(gid, "welcome back", "b2").await, "b2").unwrap();
    // Nobody acknowledged `id`, so the phone's new login replayed it first.
    assert_eq!(phone.recv().await["body"]["msgId"], id);
    assert_eq!(phone.recv().await["body"]["msgId"], id2);
    assert_eq!(laptop.recv().await["body"]["msgId"], id2);
    srv.get(&format!("/api/user/token?token={ta}"), None)
        .await
        .assert_ok();
}

#[tokio::test]
async fn second_login_on_a_connection_is_refused() {
    let srv = TestServer::start().await;
    let ((a, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    wa.send(login_frame(&ta, "again")).await;
    let answer = wa.recv().await;
    assert_refused(&answer, 400);
    assert_eq!(answer["clientMsgId"], "again");
    wa.send(login_frame(&tb, "as-bob")).await;
    assert_refused(&wa.recv().await, 400);

    // Still alice, still logged in exactly once: one push per message.
    assert_ack(&wa.send_msg(gid, "me", "c1").await, "c1");
    let push = wb.recv().await;
    assert_eq!(push["body"]["uid"], a, "{push}");
    assert_ack(&wb.send_msg(gid, "you", "c2").await, "c2");
    let push = wa.recv().await;
    assert_eq!(push["body"]["content"], "you", "{push}");
    // Registered twice, she would get "you" again before the marker.
    assert_nothing_before_marker(&mut wb, gid, &mut [&mut wa]).await;
}

#[tokio::test]
async fn rest_logout_closes_the_websockets_of_that_token() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let other_token = srv.login("alice").await;
    let mut revoked = srv.ws_login(&ta).await;
    let mut kept = srv.ws_login(&other_token).await;
    let mut wb = srv.ws_login(&tb).await;

    srv.post("/api/user/logout", Some(&ta), json!({}))
        .await
        .assert_ok();
    assert_eq!(revoked.expect_close().await, 1008);

    // The session of the other token goes on.
    assert_ack(&wb.send_msg(gid, "hi", "b1").await, "b1");
    assert_eq!(kept.recv().await["body"]["content"], "hi");
    kept.send(json!({"event": "Heart", "body": {"clientMsgId": "h"}}))
        .await;
    assert_ack(&kept.recv().await, "h");
    // And the revoked token no longer logs in.
    let mut again = srv.ws().await;
    assert_refused(&again.login(&ta).await, 401);
}

#[tokio::test]
async fn connection_without_login_is_closed_at_the_deadline() {
    let srv = TestServer::start_with(|c| c.login_timeout = Duration::from_secs(1)).await;
    let (_, token) = srv.user("alice").await;
    let started = Instant::now();
    let mut lurker = srv.ws().await;
    let mut member = srv.ws_login(&token).await;

    let answer = lurker.recv().await;
    assert_refused(&answer, 401);
    assert_eq!(answer["clientMsgId"], "", "{answer}");
    assert_eq!(lurker.expect_close().await, 1008);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed before the deadline"
    );

    // The connection that logged in in time is not affected.
    member
        .send(json!({"event": "Heart", "body": {"clientMsgId": "h"}}))
        .await;
    assert_ack(&member.recv().await, "h");
}

#[tokio::test]
async fn a_flood_of_hearts_does_not_put_off_the_login_deadline() {
    use futures_util::SinkExt;
    let srv = TestServer::start_with(|c| c.login_timeout = Duration::from_secs(1)).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", srv.addr))
        .await
        .expect("websocket connects");
    let (mut tx, mut rx) = ws.split();
    let started = Instant::now();
    // Heart frames without pause, never a Login, while the answers are read
    // as fast as they come: the connection always has a frame to handle.
    let flood = tokio::spawn(async move {
        let mut sent = 0u64;
        while started.elapsed() < Duration::from_secs(5) {
            let heart = json!({"event": "Heart", "body": {"clientMsgId": sent.to_string()}});
            if tx.send(Message::text(heart.to_string())).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let mut answered = 0u64;
    let code = loop {
        match tokio::time::timeout(WAIT, rx.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Text(_))) => answered += 1,
            Some(Ok(Message::Close(close))) => break close.map(|c| u16::from(c.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    let closed_after = started.elapsed();
    flood.abort();
    assert_eq!(code, Some(1008), "after {answered} answers");
    assert!(answered > 100, "the flood was answered: {answered}");
    assert!(
        closed_after < Duration::from_secs(3),
        "closed {closed_after:?} after the connection opened, with a 1 s deadline"
    );
}

#[tokio::test]
async fn connection_that_answers_pings_outlives_the_idle_timeout() {
    let srv = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let (_, token) = srv.user("alice").await;
    let mut ws = srv.ws_login(&token).await;

    // Read (and so answer pings) without sending anything for 3.2 s.
    let until = tokio::time::Instant::now() + Duration::from_millis(3200);
    let mut pings = 0;
    while let Ok(frame) = tokio::time::timeout_at(until, ws.stream.next()).await {
        match frame {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("expected only pings, got {other:?}"),
        }
    }
    assert!(pings >= 1, "the server never pinged a quiet connection");
    ws.send(json!({"event": "Heart", "body": {"clientMsgId": "still-here"}}))
        .await;
    assert_ack(&ws.recv().await, "still-here");
}

#[tokio::test]
async fn silent_connection_is_closed_after_the_idle_timeout() {
    let srv = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let (_, token) = srv.user("alice").await;
    let mut raw = RawWs::connect(srv.addr).await;
    // The client's last frame is the Login: the server cannot have heard
    // from it later than this.
    let quiet_since = Instant::now();
    raw.send_frame(1, login_frame(&token, "raw-login").to_string().as_bytes())
        .await;
    match raw.read_frame().await {
        RawFrame::Frame { opcode: 1, payload } => {
            let ack: Value = serde_json::from_slice(&payload).unwrap();
            assert_ack(&ack, "raw-login");
        }
        other => panic!("expected the login ack, got {other:?}"),
    }
    // Never answer: first a ping, then the close.
    match raw.read_frame().await {
        RawFrame::Frame { opcode: 9, .. } => {}
        other => panic!("expected a ping, got {other:?}"),
    }
    let code = tokio::time::timeout(WAIT, raw.expect_close())
        .await
        .expect("closed in time");
    assert_eq!(code, 1000);
    assert!(
        quiet_since.elapsed() >= Duration::from_secs(2),
        "closed after {:?}, before the idle timeout",
        quiet_since.elapsed()
    );
}

#[tokio::test]
async fn websocket_session_ends_when_its_token_expires() {
    // A short login timeout also makes the connection's timer tick often.
    let srv = TestServer::start_with(|c| {
        c.token_ttl = Duration::from_secs(2);
        c.login_timeout = Duration::from_secs(1);
    })
    .await;
    let (_, token) = srv.user("alice").await;
    let mut ws = srv.ws_login(&token).await;
    let logged_in = Instant::now();
    ws.send(json!({"event": "Heart", "body": {"clientMsgId": "h"}}))
        .await;
    assert_ack(&ws.recv().await, "h");

    let answer = ws.recv().await;
    assert_refused(&answer, 401);
    assert_eq!(ws.expect_close().await, 1008);
    assert!(
        logged_in.elapsed() >= Duration::from_secs(1),
        "closed after {:?}",
        logged_in.elapsed()
    );
    let mut again = srv.ws().await;
    assert_refused(&again.login(&token).await, 401);
}
