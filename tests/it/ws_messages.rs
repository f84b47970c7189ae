//! Sending messages over the WebSocket: who gets a push and who does not,
//! membership and identity checks, idempotent resends, content limits, and
//! "acknowledged means stored".

use serde_json::{Value, json};

use crate::common::{
    TestServer, assert_ack, assert_nothing_before_marker, assert_refused, create_group,
    direct_pair, history_msgs, msg_frame,
};

/// The ids of `msgs` (history rows), in order.
fn ids(msgs: &[Value]) -> Vec<u64> {
    msgs.iter()
        .map(|m| m["id"].as_u64().expect("message id"))
        .collect()
}

/// Asserts `push` is the `Msg` push of message `id` from `uid` in `gid`.
fn assert_push(push: &Value, id: u64, uid: u64, gid: u64, content: &str) {
    assert_eq!(push["event"], "Msg", "{push}");
    let body = &push["body"];
    assert_eq!(body["msgId"], id, "{push}");
    assert_eq!(body["uid"], uid, "{push}");
    assert_eq!(body["gid"], gid, "{push}");
    assert_eq!(body["content"], content, "{push}");
    // rim-front parses exactly "YYYY-MM-DD HH:MM:SS".
    let time = body["createTime"]
        .as_str()
        .unwrap_or_else(|| panic!("createTime: {push}"));
    assert_eq!(time.len(), 19, "{push}");
    assert_eq!(
        (&time[4..5], &time[10..11], &time[13..14]),
        ("-", " ", ":"),
        "{push}"
    );
}

#[tokio::test]
async fn two_users_talk_both_ways() {
    let srv = TestServer::start().await;
    let ((a, ta), (b, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;

    let id1 = assert_ack(&wa.send_msg(gid, "hi bob", "a1").await, "a1").unwrap();
    let push = wb.recv().await;
    assert_push(&push, id1, a, gid, "hi bob");
    assert_eq!(push["body"]["kind"], "Text");
    assert_eq!(push["body"]["clientMsgId"], "a1");

    let id2 = assert_ack(&wb.send_msg(gid, "hi alice", "b1").await, "b1").unwrap();
    assert!(id2 > id1);
    assert_push(&wa.recv().await, id2, b, gid, "hi alice");

    // Neither sending connection got its own message back: a marker from
    // alice's other device is the next frame of both.
    let mut tablet = srv.ws_login(&ta).await;
    let mark = assert_nothing_before_marker(&mut tablet, gid, &mut [&mut wa, &mut wb]).await;
    let stored: Vec<_> = history_msgs(&srv, &ta, gid)
        .await
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(stored, [json!(id1), json!(id2), json!(mark)]);
}

#[tokio::test]
async fn group_messages_reach_every_other_member() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let gid = create_group(&srv, &ta, "trio", &[b, c]).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let mut wc = srv.ws_login(&tc).await;

    let id = assert_ack(&wa.send_msg(gid, "hello all", "a1").await, "a1").unwrap();
    assert_push(&wb.recv().await, id, a, gid, "hello all");
    assert_push(&wc.recv().await, id, a, gid, "hello all");

    let id = assert_ack(&wc.send_msg(gid, "hi from carol", "c1").await, "c1").unwrap();
    assert_push(&wa.recv().await, id, c, gid, "hi from carol");
    assert_push(&wb.recv().await, id, c, gid, "hi from carol");

    let id = assert_ack(&wb.send_msg(gid, "and bob", "b1").await, "b1").unwrap();
    assert_push(&wa.recv().await, id, b, gid, "and bob");
    assert_push(&wc.recv().await, id, b, gid, "and bob");

    // Nobody got anything twice, nor their own message.
    let mut tablet = srv.ws_login(&ta).await;
    let mark =
        assert_nothing_before_marker(&mut tablet, gid, &mut [&mut wa, &mut wb, &mut wc]).await;
    let stored = ids(&history_msgs(&srv, &tb, gid).await);
    assert_eq!(
        stored.len(),
        3 + 1,
        "three messages and the marker: {stored:?}"
    );
    assert_eq!(stored.last(), Some(&mark));
}

#[tokio::test]
async fn pushes_keep_the_kind_that_was_sent() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    // Image and File messages name an uploaded file (see tests/it/files.rs).
    let png = crate::common::png_bytes(1, 1, 16, 1);
    let file = srv.upload_ok(&ta, "a.png", "image/png", &png).await;
    let attachment = json!({"fileId": file, "name": "a.png"}).to_string();
    for (i, kind) in ["RichText", "Image", "Text", "File"]
        .into_iter()
        .enumerate()
    {
        let cmid = format!("k{i}");
        let content = match kind {
            "Image" | "File" => attachment.clone(),
            _ => format!("<{kind}>"),
        };
        wa.send(msg_frame(kind, gid, &content, &cmid)).await;
        let id = assert_ack(&wa.recv().await, &cmid).unwrap();
        let push = wb.recv().await;
        assert_eq!(push["body"]["msgId"], id, "{push}");
        assert_eq!(push["body"]["kind"], kind, "{push}");
    }
    // REST shows the numeric kinds: 0 Text, 1 RichText, 2 Image, 3 File.
    let kinds: Vec<_> = history_msgs(&srv, &tb, gid)
        .await
        .iter()
        .map(|m| m["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!(1), json!(2), json!(0), json!(3)]);
}

#[tokio::test]
async fn the_senders_other_devices_get_the_push() {
    let srv = TestServer::start().await;
    let ((a, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut phone = srv.ws_login(&ta).await;
    let mut laptop = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;

    let id = assert_ack(&phone.send_msg(gid, "from my phone", "p1").await, "p1").unwrap();
    assert_push(&laptop.recv().await, id, a, gid, "from my phone");
    assert_push(&wb.recv().await, id, a, gid, "from my phone");
    // Not to the phone that sent it, and only once to the laptop.
    assert_nothing_before_marker(&mut wb, gid, &mut [&mut phone, &mut laptop]).await;
}

#[tokio::test]
async fn non_members_are_forbidden_and_nothing_is_stored() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let (_, tc) = srv.user("carol").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let mut wc = srv.ws_login(&tc).await;

    let answer = wc.send_msg(gid, "let me in", "c1").await;
    assert_refused(&answer, 403);
    assert_eq!(answer["clientMsgId"], "c1");
    let mut tablet = srv.ws_login(&ta).await;
    let mark = assert_nothing_before_marker(&mut tablet, gid, &mut [&mut wa, &mut wb]).await;
    assert_eq!(
        ids(&history_msgs(&srv, &ta, gid).await),
        [mark],
        "only the marker is stored"
    );

    // The refused clientMsgId was not recorded either: carol can use it in
    // her own conversation.
    let own = create_group(&srv, &tc, "carol's", &[]).await;
    assert_ack(&wc.send_msg(own, "mine", "c1").await, "c1").unwrap();
}

#[tokio::test]
async fn unknown_group_is_not_found_and_nothing_is_stored() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let answer = wa.send_msg(gid + 1000, "anyone?", "a1").await;
    assert_refused(&answer, 404);
    assert_eq!(answer["clientMsgId"], "a1");

    // Same clientMsgId, real group: a new message, not a 409 or a resend.
    // It is also the marker: had the refused message been pushed to bob, it
    // would have come first.
    let id = assert_ack(&wa.send_msg(gid, "here", "a1").await, "a1").unwrap();
    assert_eq!(wb.recv().await["body"]["msgId"], id);
    let stored = history_msgs(&srv, &ta, gid).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["content"], "here");
}

#[tokio::test]
async fn spoofed_sender_uid_is_forbidden_and_nothing_is_stored() {
    let srv = TestServer::start().await;
    let ((a, ta), (b, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    wa.send(json!({"event": "Msg", "body": {"kind": "Text", "uid": b, "gid": gid, "content": "i am bob", "clientMsgId": "s1"}}))
        .await;
    let answer = wa.recv().await;
    assert_refused(&answer, 403);
    assert_eq!(answer["clientMsgId"], "s1");

    // Naming oneself is what rim clients do, and is fine. This message is
    // also the marker: it is the next frame bob gets, and the only one stored.
    wa.send(json!({"event": "Msg", "body": {"kind": "Text", "uid": a, "gid": gid, "content": "i am alice", "clientMsgId": "s2"}}))
        .await;
    let id = assert_ack(&wa.recv().await, "s2").unwrap();
    assert_push(&wb.recv().await, id, a, gid, "i am alice");
    assert_eq!(ids(&history_msgs(&srv, &tb, gid).await), [id]);
}

#[tokio::test]
async fn resending_a_client_msg_id_is_idempotent() {
    let srv = TestServer::start().await;
    let ((a, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;

    let id = assert_ack(&wa.send_msg(gid, "once", "dup-1").await, "dup-1").unwrap();
    assert_push(&wb.recv().await, id, a, gid, "once");

    // A resend on the same connection, even with other content, is the same message.
    assert_eq!(
        assert_ack(&wa.send_msg(gid, "once", "dup-1").await, "dup-1"),
        Some(id)
    );
    assert_eq!(
        assert_ack(&wa.send_msg(gid, "twice?", "dup-1").await, "dup-1"),
        Some(id)
    );
    // So is a resend from a new connection after a reconnect.
    let mut again = srv.ws_login(&ta).await;
    assert_eq!(
        assert_ack(&again.send_msg(gid, "once", "dup-1").await, "dup-1"),
        Some(id)
    );

    // None of the resends was pushed, to bob or to alice's first device.
    let mark = assert_nothing_before_marker(&mut again, gid, &mut [&mut wb, &mut wa]).await;
    let stored = history_msgs(&srv, &tb, gid).await;
    assert_eq!(ids(&stored), [id, mark], "{stored:?}");
    assert_eq!(stored[0]["content"], "once");
    assert_eq!(stored[0]["client_msg_id"], "dup-1");

    // Another sender's identical clientMsgId is a different message.
    let theirs = assert_ack(&wb.send_msg(gid, "mine too", "dup-1").await, "dup-1").unwrap();
    assert_ne!(theirs, id);
}

#[tokio::test]
async fn client_msg_id_reused_in_another_conversation_conflicts() {
    let srv = TestServer::start().await;
    let ((_, ta), (b, tb), direct) = direct_pair(&srv, "alice", "bob").await;
    let group = create_group(&srv, &ta, "club", &[b]).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    assert_ack(&wa.send_msg(direct, "to bob", "same").await, "same").unwrap();
    wb.recv().await;
    let answer = wa.send_msg(group, "to the club", "same").await;
    assert_refused(&answer, 409);
    assert_eq!(answer["clientMsgId"], "same");
    let mark = assert_nothing_before_marker(&mut wa, group, &mut [&mut wb]).await;
    assert_eq!(ids(&history_msgs(&srv, &ta, group).await), [mark]);
    assert_eq!(history_msgs(&srv, &ta, direct).await.len(), 1);
}

#[tokio::test]
async fn invalid_messages_are_refused() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let limit = 16 * 1024;
    let at_limit = "a".repeat(limit);
    let over_limit = "é".repeat(limit / 2 + 1); // 2 bytes each: the limit is in bytes

    let cases = [
        (msg_frame("Text", gid, "", "empty"), 400),
        (msg_frame("Text", gid, &over_limit, "huge"), 413),
        (
            msg_frame("Text", gid, &format!("{at_limit}b"), "huge-ascii"),
            413,
        ),
        (msg_frame("Video", gid, "clip", "video"), 400),
        (msg_frame("text", gid, "lowercase kind", "lower"), 400),
        (
            json!({"event": "Msg", "body": {"gid": gid, "content": "no kind", "clientMsgId": "nokind"}}),
            400,
        ),
        (
            json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "clientMsgId": "nocontent"}}),
            400,
        ),
    ];
    for (frame, code) in cases {
        let cmid = frame["body"]["clientMsgId"].as_str().unwrap().to_owned();
        wa.send(frame).await;
        let answer = wa.recv().await;
        assert_refused(&answer, code);
        assert_eq!(answer["clientMsgId"], cmid.as_str(), "{answer}");
    }

    // Exactly at the limit is fine. This message is also the marker: it is
    // the next frame bob gets, and the only one stored.
    let id = assert_ack(&wa.send_msg(gid, &at_limit, "max").await, "max").unwrap();
    let push = wb.recv().await;
    assert_eq!(push["body"]["msgId"], id);
    assert_eq!(push["body"]["content"].as_str().unwrap().len(), limit);
    assert_eq!(ids(&history_msgs(&srv, &ta, gid).await), [id]);
}

#[tokio::test]
async fn an_acknowledged_message_is_already_stored() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    for i in 0..5 {
        let cmid = format!("c{i}");
        let id = assert_ack(
            &wa.send_msg(gid, &format!("message {i}"), &cmid).await,
            &cmid,
        )
        .unwrap();
        // Straight after the ack, from another client, over REST.
        let stored = history_msgs(&srv, &tb, gid).await;
        let last = stored.last().expect("the acked message is stored");
        assert_eq!(last["id"], id);
        assert_eq!(last["content"], format!("message {i}"));
        assert_eq!(stored.len(), i + 1);
    }
}

#[tokio::test]
async fn a_burst_is_answered_in_order_and_stored_in_shared_commits() {
    let srv = TestServer::start().await;
    let ((a, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let batches_before = srv.app().db.writer_stats().batches;

    // Alice sends 60 frames without reading an answer in between: messages,
    // with a Heart and a refused message among them.
    let frame = |i: usize| match i {
        20 => json!({"event": "Heart", "body": {"clientMsgId": "heart"}}),
        40 => msg_frame("Text", gid, "", "empty"),
        _ => msg_frame("Text", gid, &format!("burst {i}"), &format!("burst-{i}")),
    };
    for i in 0..60 {
        wa.send(frame(i)).await;
    }
    // One answer per frame, in the order of the frames; the messages'
    // ids rise in the same order.
    let mut ids = Vec::new();
    for i in 0..60 {
        let answer = wa.recv().await;
        match i {
            20 => assert_eq!(assert_ack(&answer, "heart"), None),
            40 => {
                assert_refused(&answer, 400);
                assert_eq!(answer["clientMsgId"], "empty", "{answer}");
            }
            _ => ids.push(assert_ack(&answer, &format!("burst-{i}")).expect("a msgId")),
        }
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    // Bob gets every message once, in order.
    let sent: Vec<usize> = (0..60).filter(|i| *i != 20 && *i != 40).collect();
    for (i, id) in sent.iter().zip(&ids) {
        assert_push(&wb.recv().await, *id, a, gid, &format!("burst {i}"));
    }
    // Frames were read while earlier messages waited for their commit, so
    // the 58 messages shared commits; one frame at a time would take 58.
    let batches = srv.app().db.writer_stats().batches - batches_before;
    assert!(batches <= 29, "58 messages took {batches} commits");
    assert_eq!(history_msgs(&srv, &tb, gid).await.len(), 58);
    // And none twice.
    assert_nothing_before_marker(&mut wa, gid, &mut [&mut wb]).await;
}
