//! Bad input on the WebSocket: every unusable frame gets exactly one `Error`
//! answer and the connection goes on; only transport-level faults (too large,
//! not UTF-8, a client too slow to keep up) close it, and never disturb the
//! other connections.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{
    RawFrame, RawWs, TestServer, Ws, assert_ack, assert_nothing_before_marker, assert_refused,
    create_group, direct_pair, history_msgs, ws_with_small_recv_buffer,
};

async fn heart(ws: &mut Ws, client_msg_id: &str) {
    ws.send(json!({"event": "Heart", "body": {"clientMsgId": client_msg_id}}))
        .await;
    assert_ack(&ws.recv().await, client_msg_id);
}

/// Sends `text` as is and asserts a 400 answer echoing `client_msg_id`.
async fn assert_bad_frame(ws: &mut Ws, text: &str, client_msg_id: &str) -> Value {
    ws.send_text(text).await;
    let answer = ws.recv().await;
    assert_refused(&answer, 400);
    assert_eq!(answer["clientMsgId"], client_msg_id, "{text} -> {answer}");
    answer
}

#[tokio::test]
async fn malformed_json_gets_400_and_the_connection_goes_on() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let mut ws = srv.ws().await;
    // Before login as well as after.
    assert_bad_frame(&mut ws, "{not json", "").await;
    heart(&mut ws, "h0").await;
    assert_ack(&ws.login(&token).await, "login");
    for text in [
        "{not json",
        "",
        "   ",
        "{\"event\":\"Heart\"",
        "\u{1F600}",
        "nul\u{0}l",
    ] {
        assert_bad_frame(&mut ws, text, "").await;
    }
    heart(&mut ws, "h1").await;
}

#[tokio::test]
async fn wrong_field_types_get_400() {
    let srv = TestServer::start().await;
    let ((_, ta), _, gid) = direct_pair(&srv, "alice", "bob").await;
    let mut ws = srv.ws_login(&ta).await;
    let frames = [
        (
            json!({"event": "Msg", "body": {"kind": "Text", "gid": "1", "content": "x", "clientMsgId": "t1"}}),
            "t1",
        ),
        (
            json!({"event": "Msg", "body": {"kind": "Text", "gid": -1, "content": "x", "clientMsgId": "t2"}}),
            "t2",
        ),
        (
            json!({"event": "Msg", "body": {"kind": "Text", "gid": 1.5, "content": "x", "clientMsgId": "t3"}}),
            "t3",
        ),
        (
            json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "content": 5, "clientMsgId": "t4"}}),
            "t4",
        ),
        (
            json!({"event": "Msg", "body": {"kind": 0, "gid": gid, "content": "x", "clientMsgId": "t5"}}),
            "t5",
        ),
        (
            json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "uid": "me", "content": "x", "clientMsgId": "t6"}}),
            "t6",
        ),
        (
            json!({"event": "Read", "body": {"gid": gid, "msgId": "1", "clientMsgId": "t7"}}),
            "t7",
        ),
        // A clientMsgId that is not a string cannot be echoed.
        (
            json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "content": "x", "clientMsgId": 7}}),
            "",
        ),
        (json!({"event": "Msg", "body": ["Text", gid, "x"]}), ""),
        (json!({"event": 1, "body": {"clientMsgId": "t8"}}), "t8"),
        (json!({"event": null, "body": {"clientMsgId": "t9"}}), "t9"),
        (json!({"body": {"clientMsgId": "t10"}}), "t10"),
        (json!(["Msg", {"gid": gid}]), ""),
        (json!("Heart"), ""),
        (json!(null), ""),
    ];
    for (frame, cmid) in frames {
        assert_bad_frame(&mut ws, &frame.to_string(), cmid).await;
    }
    heart(&mut ws, "alive").await;
    assert!(history_msgs(&srv, &ta, gid).await.is_empty());
}

#[tokio::test]
async fn unknown_events_get_400() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let mut ws = srv.ws_login(&token).await;
    for (i, event) in ["Fly", "msg", "", "Notify", "Login "]
        .into_iter()
        .enumerate()
    {
        let cmid = format!("e{i}");
        let frame = json!({"event": event, "body": {"clientMsgId": cmid}});
        assert_bad_frame(&mut ws, &frame.to_string(), &cmid).await;
    }
    heart(&mut ws, "alive").await;
}

#[tokio::test]
async fn msg_without_gid_gets_400_with_its_client_msg_id() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let frame = json!({"event": "Msg", "body": {"kind": "Text", "content": "where to?", "clientMsgId": "no-gid"}});
    wa.send(frame).await;
    let answer = wa.recv().await;
    assert_refused(&answer, 400);
    assert_eq!(answer["clientMsgId"], "no-gid");
    assert!(
        answer["content"].as_str().unwrap().contains("gid"),
        "the reason names the field: {answer}"
    );
    let frame = json!({"event": "Msg", "body": {"kind": "Text", "gid": null, "content": "where to?", "clientMsgId": "null-gid"}});
    wa.send(frame).await;
    let answer = wa.recv().await;
    assert_refused(&answer, 400);
    assert_eq!(answer["clientMsgId"], "null-gid");
    let mark = assert_nothing_before_marker(&mut wa, gid, &mut [&mut wb]).await;
    let stored: Vec<_> = history_msgs(&srv, &ta, gid)
        .await
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(stored, [json!(mark)], "only the marker is stored");
}

#[tokio::test]
async fn binary_frames_get_400_and_the_connection_goes_on() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    // Valid JSON, but binary; then bytes that are not UTF-8 at all (which
    // crashed rim's WebSocket service for everyone).
    let json_bytes = json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "content": "x", "clientMsgId": "bin"}})
        .to_string()
        .into_bytes();
    for payload in [json_bytes, vec![0xff, 0xfe, 0x00, 0x80], Vec::new()] {
        wa.stream.send(Message::binary(payload)).await.unwrap();
        assert_refused(&wa.recv().await, 400);
    }
    heart(&mut wa, "alive").await;
    // This message is also the marker: had a binary frame been taken for a
    // message, its push would reach bob first.
    let id = assert_ack(&wa.send_msg(gid, "text works", "t").await, "t").unwrap();
    assert_eq!(wb.recv().await["body"]["msgId"], id);
}

#[tokio::test]
async fn message_over_the_frame_limit_closes_with_1009_only_that_connection() {
    let srv = TestServer::start_with(|c| c.max_frame_bytes = 4096).await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut big = srv.ws_login(&ta).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;

    // Just under the limit is a normal message.
    let id = assert_ack(
        &big.send_msg(gid, &"s".repeat(3000), "small").await,
        "small",
    )
    .unwrap();
    assert_eq!(wb.recv().await["body"]["msgId"], id);
    assert_eq!(wa.recv().await["body"]["msgId"], id);

    let content = "x".repeat(10 * 1024);
    big.send(json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "content": content, "clientMsgId": "big"}}))
        .await;
    assert_eq!(big.expect_close().await, 1009);

    // Everybody else chats on.
    let id = assert_ack(&wb.send_msg(gid, "still here", "b1").await, "b1").unwrap();
    assert_eq!(wa.recv().await["body"]["msgId"], id);
    let id = assert_ack(&wa.send_msg(gid, "me too", "a1").await, "a1").unwrap();
    assert_eq!(wb.recv().await["body"]["msgId"], id);
    let stored = history_msgs(&srv, &ta, gid).await;
    assert_eq!(
        stored.len(),
        3,
        "the oversized message was not stored: {stored:?}"
    );
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wb = srv.ws_login(&tb).await;
    let mut raw = RawWs::connect(srv.addr).await;
    let login = json!({"event": "Login", "body": {"content": ta, "clientMsgId": "raw"}});
    raw.send_frame(1, login.to_string().as_bytes()).await;
    match raw.read_frame().await {
        RawFrame::Frame { opcode: 1, payload } => {
            assert_ack(&serde_json::from_slice::<Value>(&payload).unwrap(), "raw");
        }
        other => panic!("expected the login ack, got {other:?}"),
    }
    // A JSON frame whose content holds bytes that are not UTF-8.
    let mut payload = br#"{"event":"Msg","body":{"kind":"Text","gid":"#.to_vec();
    payload.extend_from_slice(format!("{gid},\"clientMsgId\":\"u\",\"content\":\"").as_bytes());
    payload.extend_from_slice(&[0xc3, 0x28, 0xff]);
    payload.extend_from_slice(b"\"}}");
    raw.send_frame(1, &payload).await;
    assert_eq!(raw.expect_close().await, 1007);

    // Nothing reached bob: a marker from another of alice's connections is
    // his next frame, and the only message stored.
    let mut wa = srv.ws_login(&ta).await;
    let mark = assert_nothing_before_marker(&mut wa, gid, &mut [&mut wb]).await;
    let stored: Vec<_> = history_msgs(&srv, &tb, gid)
        .await
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(stored, [json!(mark)], "only the marker is stored");
    let id = assert_ack(&wb.send_msg(gid, "unaffected", "b").await, "b").unwrap();
    assert!(id > 0);
}

/// The 400 frames of the storm, each with the clientMsgId its answer must echo.
fn garbage(i: usize) -> (String, String) {
    let cmid = format!("g{i}");
    match i % 10 {
        0 => (format!("not json {i}"), String::new()),
        1 => (
            json!({"event": "Fly", "body": {"clientMsgId": cmid}}).to_string(),
            cmid,
        ),
        2 => (
            json!({"event": "Msg", "body": {"gid": "x", "clientMsgId": cmid}}).to_string(),
            cmid,
        ),
        3 => (
            json!({"event": "Msg", "body": {"kind": "Text", "gid": 1, "clientMsgId": cmid}})
                .to_string(),
            cmid,
        ),
        4 => (
            json!({"event": "Ack", "body": {"gid": 1, "clientMsgId": cmid}}).to_string(),
            cmid,
        ),
        5 => (
            json!({"event": "Login", "body": {"clientMsgId": cmid}}).to_string(),
            cmid,
        ),
        6 => ("[".repeat(300) + &"]".repeat(300), String::new()),
        7 => (json!({"body": {"clientMsgId": cmid}}).to_string(), cmid),
        8 => (
            json!({"event": "Read", "body": {"gid": 1, "msgId": -3, "clientMsgId": cmid}})
                .to_string(),
            cmid,
        ),
        _ => (
            json!({"event": "Heart", "body": 5}).to_string(),
            String::new(),
        ),
    }
}

#[tokio::test]
async fn a_storm_of_garbage_gets_one_answer_per_frame() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let (c, tc) = srv.user("carol").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let mut wc = srv.ws_login(&tc).await;

    // Carol sends 200 frames without reading an answer in between...
    for i in 0..200 {
        wc.send_text(&garbage(i).0).await;
    }
    // ...while alice and bob keep chatting.
    for i in 0..10 {
        let cmid = format!("chat{i}");
        let id = assert_ack(&wa.send_msg(gid, "chat", &cmid).await, &cmid).unwrap();
        assert_eq!(wb.recv().await["body"]["msgId"], id);
    }
    // One answer per frame, in order.
    for i in 0..200 {
        let answer = wc.recv().await;
        assert_refused(&answer, 400);
        assert_eq!(
            answer["clientMsgId"],
            garbage(i).1.as_str(),
            "frame {i}: {answer}"
        );
    }
    heart(&mut wc, "after-storm").await;
    // Nothing else for carol either, of the storm or of the chat.
    srv.assert_nothing_before_friend_request(&[c], &mut [&mut wc])
        .await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_without_slowing_the_sender() {
    let srv = TestServer::start_with(|c| c.outbound_queue = 8).await;
    let (_, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let gid = create_group(&srv, &ta, "busy", &[b, c]).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut reader = srv.ws_login(&tc).await;
    let mut slow = ws_with_small_recv_buffer(srv.addr).await;
    assert_ack(&slow.login(&tb).await, "login");

    // Bob reads nothing from here on; carol reads as messages come. 300
    // messages of 16 KiB are more than the socket buffers between the server
    // and bob can hold (Linux caps a send buffer at 4 MiB by default), so bob's
    // queue must overflow.
    let content = "z".repeat(16 * 1024);
    let mut slowest = Duration::ZERO;
    for i in 0..300 {
        let cmid = format!("flood-{i}");
        let started = Instant::now();
        let answer = wa.send_msg(gid, &content, &cmid).await;
        slowest = slowest.max(started.elapsed());
        assert_ack(&answer, &cmid).unwrap();
        let push = reader.recv().await;
        assert_eq!(push["body"]["clientMsgId"], cmid.as_str());
    }
    assert!(slowest < Duration::from_secs(2), "an ack took {slowest:?}");

    // Bob's connection was given up on: what he finally reads is cut short
    // and ends with a close (1008) or a dropped connection.
    let mut pushes = 0;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(15), slow.stream.next()).await {
            Err(_) => panic!("the slow connection was never closed ({pushes} pushes read)"),
            Ok(Some(Ok(Message::Text(_)))) => pushes += 1,
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break None,
        }
    };
    assert!(
        pushes < 300,
        "the slow client got everything ({pushes} pushes): it was never too slow"
    );
    if let Some(code) = end {
        assert_eq!(code, 1008);
    }

    // The server is fine, and bob catches up through replay at his next login.
    srv.get("/healthz", None).await.assert_ok();
    heart(&mut wa, "alive").await;
    let mut again = srv.ws_login(&tb).await;
    for i in 0..300 {
        let push = again.recv().await;
        assert_eq!(push["body"]["clientMsgId"], format!("flood-{i}"));
    }
}

#[tokio::test]
async fn a_frame_naming_a_key_twice_gets_400_and_is_not_acted_on() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut ws = srv.ws_login(&ta).await;
    let mut bob = srv.ws_login(&tb).await;
    let other = gid + 999;
    for (text, id) in [
        (
            format!(
                r#"{{"event":"Msg","body":{{"kind":"Text","gid":{other},"gid":{gid},"content":"x","clientMsgId":"d1"}}}}"#
            ),
            "d1",
        ),
        (
            format!(
                r#"{{"event":"Heart","event":"Msg","body":{{"kind":"Text","gid":{gid},"content":"x","clientMsgId":"d2"}}}}"#
            ),
            "d2",
        ),
        (
            format!(
                r#"{{"event":"Msg","body":{{"kind":"Text","gid":{gid},"content":"x"}},"body":{{"clientMsgId":"d3"}}}}"#
            ),
            "d3",
        ),
    ] {
        let answer = assert_bad_frame(&mut ws, &text, id).await;
        assert!(
            answer["content"].as_str().unwrap_or("").contains("twice"),
            "{text} -> {answer}"
        );
    }
    heart(&mut ws, "after").await;
    // None of them was stored: the next thing bob hears is the marker.
    let marker = assert_nothing_before_marker(&mut ws, gid, &mut [&mut bob]).await;
    let stored: Vec<u64> = history_msgs(&srv, &ta, gid)
        .await
        .iter()
        .map(|m| m["id"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(stored, vec![marker], "only the marker was stored");
}
