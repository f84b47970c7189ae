//! Everyday message actions over the WebSocket: replies, edits, deletions,
//! reactions, typing, mentions and presence; the change log that brings
//! edits, deletions and reactions to devices that were offline; and the
//! bad input of each, refused with nothing changed.

use serde_json::{Value, json};

use crate::common::{
    TestServer, Ws, assert_ack, assert_nothing_before_marker, assert_refused, create_group,
    direct_pair, history_msgs, msg_frame, url_encode,
};

fn edit(gid: u64, msg_id: u64, content: &str, cmid: &str) -> Value {
    json!({"event": "Edit", "body": {"gid": gid, "msgId": msg_id, "content": content, "clientMsgId": cmid}})
}

fn delete(gid: u64, msg_id: u64, cmid: &str) -> Value {
    json!({"event": "Delete", "body": {"gid": gid, "msgId": msg_id, "clientMsgId": cmid}})
}

fn react(gid: u64, msg_id: u64, emoji: &str, cmid: &str) -> Value {
    json!({"event": "React", "body": {"gid": gid, "msgId": msg_id, "content": emoji, "clientMsgId": cmid}})
}

/// Sends `frame` and returns its answer (skipping pushes).
async fn ask(ws: &mut Ws, frame: Value) -> Value {
    ws.send(frame).await;
    ws.next_answer().await
}

/// Sends a text message and returns its id.
async fn say(ws: &mut Ws, gid: u64, text: &str, cmid: &str) -> u64 {
    let answer = ask(ws, msg_frame("Text", gid, text, cmid)).await;
    assert_ack(&answer, cmid).expect("message id")
}

/// The history row `msg` of message `id`.
fn row(msgs: &[Value], id: u64) -> &Value {
    msgs.iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("message {id} in history: {msgs:?}"))
}

/// The contents of what a search for `q` finds in `token`'s conversations.
async fn found(srv: &TestServer, token: &str, q: &str) -> Vec<String> {
    let r = srv
        .get(
            &format!("/api/message/search?q={}", url_encode(q)),
            Some(token),
        )
        .await;
    r.assert_ok()
        .as_array()
        .expect("rows")
        .iter()
        .map(|h| h["msg"]["content"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_reply_names_its_message_in_the_push_and_in_history() {
    let srv = TestServer::start().await;
    let ((_, ta), (b, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let first = say(&mut wa, gid, "dinner at 7?", "a1").await;
    wb.recv().await;
    wb.send(json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "content": "yes!", "replyTo": first, "clientMsgId": "b1", "uid": b}}))
        .await;
    let reply = assert_ack(&wb.next_answer().await, "b1").unwrap();
    let push = wa.recv().await;
    assert_eq!(push["event"], "Msg", "{push}");
    assert_eq!(push["body"]["replyTo"], first, "{push}");
    let msgs = history_msgs(&srv, &ta, gid).await;
    assert_eq!(row(&msgs, reply)["replyTo"], first);
    assert!(row(&msgs, first)["replyTo"].is_null());
}

#[tokio::test]
async fn a_reply_to_a_message_of_another_conversation_is_refused() {
    let srv = TestServer::start().await;
    let ((a, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let (c, tc) = srv.user("carol").await;
    srv.befriend(&tc, a, &ta, c).await;
    let other = create_group(&srv, &tc, "club", &[a]).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wc = srv.ws_login(&tc).await;
    let elsewhere = say(&mut wc, other, "in the club", "c1").await;
    let _ = c;
    for (target, cmid) in [(elsewhere, "a1"), (999_999, "a2")] {
        wa.send(json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "content": "re", "replyTo": target, "clientMsgId": cmid}}))
            .await;
        let answer = wa.next_answer().await;
        assert_refused(&answer, 404);
        assert_eq!(answer["clientMsgId"], cmid);
    }
    assert!(
        history_msgs(&srv, &tb, gid).await.is_empty(),
        "nothing stored"
    );
}

#[tokio::test]
async fn an_edit_reaches_every_device_and_history_and_search_show_the_new_text() {
    let srv = TestServer::start().await;
    let ((a, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut tablet = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let id = say(&mut wa, gid, "see you at the wombat", "a1").await;
    wb.recv().await;
    tablet.recv().await;

    let answer = ask(&mut wa, edit(gid, id, "see you at the platypus", "e1")).await;
    let change = assert_ack(&answer, "e1").expect("change id");
    assert!(change > id, "the change comes after its message: {answer}");
    for ws in [&mut wb, &mut tablet] {
        let push = ws.recv().await;
        assert_eq!(push["event"], "Edit", "{push}");
        let body = &push["body"];
        assert_eq!(body["gid"], gid);
        assert_eq!(body["msgId"], id);
        assert_eq!(body["uid"], a);
        assert_eq!(body["content"], "see you at the platypus");
        assert_eq!(body["kind"], "Text");
        assert_eq!(body["changeId"], change);
        assert_eq!(body["editTime"].as_str().map(str::len), Some(19), "{push}");
    }
    let msgs = history_msgs(&srv, &tb, gid).await;
    assert_eq!(row(&msgs, id)["content"], "see you at the platypus");
    assert!(row(&msgs, id)["editTime"].is_string());
    assert_eq!(found(&srv, &tb, "platypus").await.len(), 1);
    assert!(
        found(&srv, &tb, "wombat").await.is_empty(),
        "the old words are gone"
    );

    // A resend is answered alike and pushes nothing again.
    let again = ask(&mut wa, edit(gid, id, "see you at the platypus", "e1")).await;
    assert_eq!(assert_ack(&again, "e1"), Some(change));
    assert_nothing_before_marker(&mut wa, gid, &mut [&mut wb, &mut tablet]).await;
}

#[tokio::test]
async fn edits_and_deletions_of_others_or_elsewhere_are_refused_and_change_nothing() {
    let srv = TestServer::start().await;
    let ((a, ta), (b, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let (c, tc) = srv.user("carol").await;
    srv.befriend(&tc, a, &ta, c).await;
    srv.befriend(&tc, b, &tb, c).await;
    let club = create_group(&srv, &tc, "club", &[a, b]).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let mut wc = srv.ws_login(&tc).await;
    let id = say(&mut wa, gid, "mine", "a1").await;
    let carols = say(&mut wc, club, "carol's", "c1").await;
    let before = history_msgs(&srv, &ta, gid).await;

    // Someone else's message: only its sender edits; in a direct chat only
    // its sender deletes.
    assert_refused(&ask(&mut wb, edit(gid, id, "yours now", "b1")).await, 403);
    assert_refused(&ask(&mut wb, delete(gid, id, "b2")).await, 403);
    // A conversation the caller is not in.
    assert_refused(&ask(&mut wc, edit(gid, id, "hi", "c2")).await, 403);
    assert_refused(&ask(&mut wc, react(gid, id, "👍", "c3")).await, 403);
    // An unknown message, and one of another conversation.
    assert_refused(&ask(&mut wa, edit(gid, 999_999, "x", "a2")).await, 404);
    assert_refused(&ask(&mut wa, delete(gid, carols, "a3")).await, 404);
    assert_refused(&ask(&mut wa, react(gid, carols, "👍", "a4")).await, 404);
    // A reaction that is not one emoji.
    for (bad, cmid) in [("ok", "a5"), ("👍👍", "a6"), ("", "a7")] {
        assert_refused(&ask(&mut wa, react(gid, id, bad, cmid)).await, 400);
    }
    // Missing fields.
    assert_refused(
        &ask(
            &mut wa,
            json!({"event": "Edit", "body": {"gid": gid, "content": "x"}}),
        )
        .await,
        400,
    );

    assert_eq!(
        history_msgs(&srv, &ta, gid).await,
        before,
        "nothing changed"
    );
    // Nothing was pushed either.
    assert_nothing_before_marker(&mut wa, gid, &mut [&mut wb]).await;
}

#[tokio::test]
async fn a_deleted_message_is_erased_and_stays_as_a_tombstone() {
    let srv = TestServer::start().await;
    let ((a, ta), (b, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let file = srv
        .upload_ok(&ta, "secret.txt", "text/plain", b"the password is wombat")
        .await;
    let content = json!({"fileId": file, "name": "secret.txt"}).to_string();
    let answer = ask(&mut wa, msg_frame("File", gid, &content, "a1")).await;
    let id = assert_ack(&answer, "a1").unwrap();
    let text = say(&mut wa, gid, "keep this one", "a2").await;
    assert_eq!(
        srv.fetch(&format!("/api/file/{file}"), Some(&tb), &[])
            .await
            .status,
        200
    );
    assert_eq!(found(&srv, &tb, "secret").await.len(), 1);

    let answer = ask(&mut wa, delete(gid, id, "d1")).await;
    let change = assert_ack(&answer, "d1").unwrap();
    let mut push = wb.recv().await;
    while push["event"] == "Msg" {
        push = wb.recv().await;
    }
    assert_eq!(push["event"], "Delete", "{push}");
    assert_eq!(push["body"]["msgId"], id);
    assert_eq!(push["body"]["uid"], a);
    assert_eq!(push["body"]["changeId"], change);

    let msgs = history_msgs(&srv, &tb, gid).await;
    let gone = row(&msgs, id);
    assert_eq!(gone["deleted"], true, "{gone}");
    assert_eq!(gone["content"], "");
    assert_eq!(row(&msgs, text)["deleted"], false);
    // Bob may no longer read the file: no message of his refers to it.
    assert_eq!(
        srv.fetch(&format!("/api/file/{file}"), Some(&tb), &[])
            .await
            .status,
        404
    );
    assert!(found(&srv, &tb, "secret").await.is_empty());
    // Erased in the file, not hidden.
    let db = rusqlite::Connection::open_with_flags(
        &srv.db_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let (stored, refs): (String, i64) = db
        .query_row(
            "SELECT content, (SELECT count(*) FROM message_files WHERE msg_id = ?1) FROM messages WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((stored.as_str(), refs), ("", 0));
    // A deleted message takes no edit, reaction or second deletion.
    assert_refused(&ask(&mut wa, delete(gid, id, "d2")).await, 409);
    assert_refused(&ask(&mut wb, react(gid, id, "👍", "b1")).await, 409);
    let _ = b;
}

#[tokio::test]
async fn a_group_admin_may_delete_a_members_message_and_a_member_may_not() {
    let srv = TestServer::start().await;
    let (_, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let gid = create_group(&srv, &ta, "club", &[b, c]).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let mut wc = srv.ws_login(&tc).await;
    let bobs = say(&mut wb, gid, "spam", "b1").await;
    assert_refused(&ask(&mut wc, delete(gid, bobs, "c1")).await, 403);
    assert_ack(&ask(&mut wa, delete(gid, bobs, "a1")).await, "a1").unwrap();
    assert_eq!(
        row(&history_msgs(&srv, &tc, gid).await, bobs)["deleted"],
        true
    );
}

#[tokio::test]
async fn a_reaction_toggles_and_history_lists_who_reacted() {
    let srv = TestServer::start().await;
    let ((a, ta), (b, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let id = say(&mut wa, gid, "we won!", "a1").await;
    wb.recv().await;

    let c1 = assert_ack(&ask(&mut wb, react(gid, id, "👍", "b1")).await, "b1").unwrap();
    let push = wa.recv().await;
    assert_eq!(push["event"], "React", "{push}");
    assert_eq!(
        push["body"],
        json!({"gid": gid, "msgId": id, "uid": b, "content": "👍", "on": true, "changeId": c1})
    );
    assert_ack(&ask(&mut wa, react(gid, id, "👍", "a2")).await, "a2").unwrap();
    assert_ack(&ask(&mut wa, react(gid, id, "🎉", "a3")).await, "a3").unwrap();
    let msgs = history_msgs(&srv, &tb, gid).await;
    assert_eq!(
        row(&msgs, id)["reactions"],
        json!([{"content": "👍", "uids": [b, a]}, {"content": "🎉", "uids": [a]}])
    );
    // A resend does not toggle again; a new frame does.
    assert_ack(&ask(&mut wb, react(gid, id, "👍", "b1")).await, "b1").unwrap();
    assert_ack(&ask(&mut wb, react(gid, id, "👍", "b2")).await, "b2").unwrap();
    let mut off = wa.recv().await;
    while off["event"] != "React" {
        off = wa.recv().await;
    }
    assert_eq!(off["body"]["on"], false, "{off}");
    let msgs = history_msgs(&srv, &tb, gid).await;
    assert_eq!(
        row(&msgs, id)["reactions"],
        json!([{"content": "👍", "uids": [a]}, {"content": "🎉", "uids": [a]}])
    );
}

#[tokio::test]
async fn an_offline_device_gets_the_changes_in_order_at_login() {
    let srv = TestServer::start().await;
    let ((_, ta), (b, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let first = say(&mut wa, gid, "one", "a1").await;
    let second = say(&mut wa, gid, "two", "a2").await;
    // Bob's phone has both messages (its cursor), then goes away.
    let cursor = second;
    let edited = assert_ack(&ask(&mut wa, edit(gid, first, "one!", "e1")).await, "e1").unwrap();
    let third = say(&mut wa, gid, "three", "a3").await;
    let mut wb = srv.ws_login(&tb).await;
    let reacted = assert_ack(&ask(&mut wb, react(gid, third, "❤️", "b1")).await, "b1").unwrap();
    drop(wb);
    let deleted = assert_ack(&ask(&mut wa, delete(gid, second, "d1")).await, "d1").unwrap();

    let mut phone = srv.ws().await;
    phone
        .send(
            json!({"event": "Login", "body": {"content": tb, "msgId": cursor, "clientMsgId": "l"}}),
        )
        .await;
    assert_ack(&phone.recv().await, "l");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let push = phone.recv().await;
        let id = if push["event"] == "Msg" {
            push["body"]["msgId"].clone()
        } else {
            push["body"]["changeId"].clone()
        };
        seen.push((
            push["event"].as_str().unwrap().to_owned(),
            id.as_u64().unwrap(),
        ));
    }
    assert_eq!(
        seen,
        vec![
            ("Edit".to_owned(), edited),
            ("Msg".to_owned(), third),
            ("React".to_owned(), reacted),
            ("Delete".to_owned(), deleted),
        ]
    );
    phone.expect_heart_next().await;

    // Without a cursor: what others did that no device of Bob's
    // acknowledged (his own reaction is not replayed).
    let mut other = srv.ws_login(&tb).await;
    other
        .send(json!({"event": "Heart", "body": {"clientMsgId": "h"}}))
        .await;
    let mut events = Vec::new();
    loop {
        let got = other.recv().await;
        if got.get("event").is_none() {
            break;
        }
        events.push(got["event"].as_str().unwrap().to_owned());
    }
    let _ = b;
    assert!(!events.contains(&"React".to_owned()), "{events:?}");
    assert!(events.contains(&"Delete".to_owned()), "{events:?}");
}

#[tokio::test]
async fn a_replay_past_its_limit_tells_the_device_to_refetch() {
    let srv = TestServer::start_with(|c| c.replay_limit = 2).await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let id = say(&mut wa, gid, "one", "a1").await;
    for (i, word) in ["two", "three", "four"].iter().enumerate() {
        let cmid = format!("e{i}");
        assert_ack(&ask(&mut wa, edit(gid, id, word, &cmid)).await, &cmid).unwrap();
    }
    let mut phone = srv.ws().await;
    phone
        .send(json!({"event": "Login", "body": {"content": tb, "msgId": id, "clientMsgId": "l"}}))
        .await;
    assert_ack(&phone.recv().await, "l");
    assert_eq!(phone.recv().await["body"]["content"], "two");
    assert_eq!(phone.recv().await["body"]["content"], "three");
    let note = phone.recv().await;
    assert_eq!(note["event"], "Notify", "{note}");
    assert_eq!(note["body"]["kind"], "ReplayTruncated", "{note}");
}

#[tokio::test]
async fn typing_reaches_the_other_members_at_most_once_in_two_seconds() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let gid = create_group(&srv, &ta, "club", &[b]).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut tablet = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let mut wc = srv.ws_login(&tc).await;
    let typing = json!({"event": "Typing", "body": {"gid": gid, "clientMsgId": "t1"}});
    let started = std::time::Instant::now();
    assert_ack(&ask(&mut wa, typing.clone()).await, "t1");
    assert_eq!(
        wb.recv().await,
        json!({"event": "Typing", "body": {"gid": gid, "uid": a}})
    );
    assert_ack(&ask(&mut wa, typing).await, "t1");
    if started.elapsed() < rim::limits::TYPING_EVERY {
        // Not passed on, and never to the typist's own devices.
        assert_nothing_before_marker(&mut wa, gid, &mut [&mut wb, &mut tablet]).await;
    }
    // Not a member: refused.
    let answer = ask(
        &mut wc,
        json!({"event": "Typing", "body": {"gid": gid, "clientMsgId": "c1"}}),
    )
    .await;
    assert_refused(&answer, 403);
    let _ = c;
}

#[tokio::test]
async fn mentions_of_members_are_recorded_on_the_message() {
    let srv = TestServer::start().await;
    let (_, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, _) = srv.user("carol").await;
    let (_, _) = srv.user("dave").await;
    let gid = create_group(&srv, &ta, "club", &[b, c]).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let id = say(
        &mut wa,
        gid,
        "@Carol and @bob: ask @dave, or mail x@bob.org",
        "a1",
    )
    .await;
    let push = wb.recv().await;
    assert_eq!(push["body"]["mentions"], json!([c, b]), "{push}");
    let msgs = history_msgs(&srv, &tb, gid).await;
    assert_eq!(row(&msgs, id)["mentions"], json!([c, b]));
    // An edit mentions anew.
    assert_ack(&ask(&mut wa, edit(gid, id, "never mind", "e1")).await, "e1").unwrap();
    let msgs = history_msgs(&srv, &tb, gid).await;
    assert_eq!(row(&msgs, id)["mentions"], json!([]));
    let plain = say(&mut wa, gid, "no one", "a2").await;
    let push = wb.recv().await;
    let mut push = push;
    while push["body"]["msgId"] != plain {
        push = wb.recv().await;
    }
    assert!(push["body"].get("mentions").is_none(), "{push}");
}

#[tokio::test]
async fn presence_reaches_friends_and_co_members_and_last_seen_can_be_hidden() {
    let srv = TestServer::start().await;
    let ((a, ta), (b, tb), _) = direct_pair(&srv, "alice", "bob").await;
    let (_, tc) = srv.user("carol").await;
    let mut wa = srv.ws_login(&ta).await;
    wa.presence = true;
    let mut wc = srv.ws_login(&tc).await;
    wc.presence = true;

    let mut wb = srv.ws_login(&tb).await;
    assert_eq!(
        wa.recv().await,
        json!({"event": "Presence", "body": {"uid": b, "online": true, "lastSeen": null, "lastSeenAt": null}})
    );
    // A second device is no news.
    let mut tablet = srv.ws_login(&tb).await;
    let r = srv.get(&format!("/api/user/get?uid={b}"), Some(&ta)).await;
    assert_eq!(r.assert_ok()["online"], true);

    tablet
        .send(json!({"event": "Logout", "body": {"clientMsgId": "x"}}))
        .await;
    assert_ack(&tablet.recv().await, "x");
    wb.send(json!({"event": "Logout", "body": {"clientMsgId": "y"}}))
        .await;
    assert_ack(&wb.recv().await, "y");
    let gone = wa.recv().await;
    assert_eq!(gone["event"], "Presence", "{gone}");
    assert_eq!(gone["body"]["uid"], b);
    assert_eq!(gone["body"]["online"], false);
    let seen = gone["body"]["lastSeen"]
        .as_str()
        .expect("lastSeen")
        .to_owned();
    let r = srv.get(&format!("/api/user/get?uid={b}"), Some(&ta)).await;
    assert_eq!(r.assert_ok()["online"], false);
    assert_eq!(r.assert_ok()["lastSeen"], seen.as_str());
    assert!(gone["body"]["lastSeenAt"].is_i64(), "{gone}");
    assert_eq!(r.assert_ok()["lastSeenAt"], gone["body"]["lastSeenAt"]);
    // Carol shares nothing with Bob: she heard nothing.
    srv.assert_nothing_before_friend_request(&[srv_uid(&srv, &tc).await], &mut [&mut wc])
        .await;

    srv.post("/api/user/update", Some(&tb), json!({"hideLastSeen": true}))
        .await
        .assert_ok();
    let r = srv.get(&format!("/api/user/get?uid={b}"), Some(&ta)).await;
    assert!(r.assert_ok()["lastSeen"].is_null(), "{}", r.json);
    assert!(r.assert_ok()["lastSeenAt"].is_null(), "{}", r.json);
    let r = srv.get(&format!("/api/user/get?uid={b}"), Some(&tb)).await;
    assert_eq!(
        r.assert_ok()["lastSeen"],
        seen.as_str(),
        "one's own is shown"
    );
    wb.send(json!({"event": "Login", "body": {"content": tb, "clientMsgId": "l"}}))
        .await;
    assert_ack(&wb.recv().await, "l");
    assert_eq!(wa.recv().await["body"]["online"], true);
    wb.send(json!({"event": "Logout", "body": {"clientMsgId": "z"}}))
        .await;
    assert_ack(&wb.recv().await, "z");
    let gone = wa.recv().await;
    assert_eq!(gone["body"]["online"], false, "{gone}");
    assert!(gone["body"]["lastSeen"].is_null(), "hidden: {gone}");
    let _ = a;
}

/// The uid of `token`'s user.
async fn srv_uid(srv: &TestServer, token: &str) -> u64 {
    let r = srv.get("/api/user/me", Some(token)).await;
    r.assert_ok()["id"].as_u64().expect("uid")
}
