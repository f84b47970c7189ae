//! `/api/message/*` over real HTTP: the conversation list, history paging and
//! read marks, with messages sent over the WebSocket (there is no REST send)
//! and the `Read` push observed on the other members' sockets.

use serde_json::{Value, json};

use crate::common::{TestServer, Ws, assert_ack, create_group, msg_frame};

/// Sends a Text message and returns its id. Pushes of other members'
/// messages that arrive before the answer are skipped.
async fn say(ws: &mut Ws, gid: u64, content: &str, client_msg_id: &str) -> u64 {
    ws.send(msg_frame("Text", gid, content, client_msg_id))
        .await;
    loop {
        let frame = ws.recv().await;
        if frame.get("event").is_none() {
            return assert_ack(&frame, client_msg_id).expect("serverMsgId");
        }
    }
}

/// The next push with `event`, skipping pushes of other kinds.
async fn next_event(ws: &mut Ws, event: &str) -> Value {
    loop {
        let frame = ws.recv().await;
        assert!(
            frame.get("event").is_some(),
            "an unexpected answer: {frame}"
        );
        if frame["event"] == event {
            return frame;
        }
    }
}

async fn chat_list(srv: &TestServer, token: &str, body: Value) -> Vec<Value> {
    let r = srv.post("/api/message/chat/list", Some(token), body).await;
    r.assert_ok().as_array().expect("chat rows").clone()
}

/// (gid, last message id, user id, unread) of every chat list row.
fn summary(rows: &[Value]) -> Vec<(u64, u64, u64, u64)> {
    rows.iter()
        .map(|r| {
            (
                r["group"]["id"].as_u64().unwrap(),
                r["msg"]["id"].as_u64().unwrap(),
                r["user"]["id"].as_u64().unwrap(),
                r["unread"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn history(srv: &TestServer, token: &str, body: Value) -> Vec<Value> {
    let r = srv.post("/api/message/history", Some(token), body).await;
    r.assert_ok().as_array().expect("history rows").clone()
}

fn ids(rows: &[Value]) -> Vec<u64> {
    rows.iter()
        .map(|r| r["msg"]["id"].as_u64().unwrap())
        .collect()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

/// `YYYY-MM-DD HH:MM:SS`, digits where digits belong.
fn assert_wire_time(t: &str) {
    assert_eq!(t.len(), 19, "{t:?}");
    for (i, ch) in t.chars().enumerate() {
        match i {
            4 | 7 => assert_eq!(ch, '-', "{t:?}"),
            10 => assert_eq!(ch, ' ', "{t:?}"),
            13 | 16 => assert_eq!(ch, ':', "{t:?}"),
            _ => assert!(ch.is_ascii_digit(), "{t:?}"),
        }
    }
}

#[tokio::test]
async fn the_chat_list_puts_the_latest_activity_first() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    srv.befriend(&ta, b, &tb, a).await;
    srv.befriend(&ta, c, &tc, a).await;
    let team = create_group(&srv, &ta, "team", &[b, c]).await;
    let dm = srv.direct(&ta, b).await;
    let quiet = srv.direct(&ta, c).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let mut wc = srv.ws_login(&tc).await;
    assert!(chat_list(&srv, &ta, json!({})).await.is_empty());

    let d1 = say(&mut wa, dm, "d1", "d1").await;
    let g1 = say(&mut wc, team, "g1", "g1").await;
    let d2 = say(&mut wb, dm, "d2", "d2").await;
    let g2 = say(&mut wc, team, "g2", "g2").await;
    assert!(d1 < g1 && g1 < d2 && d2 < g2);

    // In a group `user` is the last sender; in a direct chat, the partner.
    // The conversation without messages is not listed.
    let rows = chat_list(&srv, &ta, json!({"page": 1, "size": 10})).await;
    assert_eq!(summary(&rows), vec![(team, g2, c, 2), (dm, d2, b, 1)]);
    let rows_b = chat_list(&srv, &tb, json!({})).await;
    assert_eq!(summary(&rows_b), vec![(team, g2, c, 2), (dm, d2, a, 0)]);
    assert_eq!(
        summary(&chat_list(&srv, &tc, json!({})).await),
        vec![(team, g2, c, 0)]
    );
    assert!(!rows.iter().any(|r| r["group"]["id"] == quiet));

    // The row's objects are rim's.
    let row = &rows[0];
    assert_eq!(keys(row), ["group", "msg", "unread", "user"]);
    assert_eq!(
        row["group"],
        json!({"id": team, "name": "team", "avatar": "", "mode": 0, "creatorUid": a})
    );
    assert_eq!(
        keys(&row["msg"]),
        [
            "client_msg_id",
            "content",
            "createTime",
            "createdAt",
            "deleted",
            "editTime",
            "editedAt",
            "gid",
            "id",
            "kind",
            "mentions",
            "replyTo",
            "uid",
            "updateTime",
            "updatedAt"
        ]
    );
    assert_eq!(row["msg"]["content"], "g2");
    assert_eq!(row["msg"]["client_msg_id"], "g2");
    assert_eq!(row["msg"]["uid"], c);
    assert_eq!(row["msg"]["gid"], team);
    assert_eq!(row["msg"]["kind"], 0);
    assert_wire_time(row["msg"]["createTime"].as_str().unwrap());
    assert_eq!(row["user"]["account"], "carol");
    assert_eq!(row["user"]["email"], "");
    assert_eq!(row["user"]["password"], "");

    // New activity moves a conversation to the top.
    let d3 = say(&mut wa, dm, "d3", "d3").await;
    let rows = chat_list(&srv, &ta, json!({})).await;
    assert_eq!(summary(&rows), vec![(dm, d3, b, 0), (team, g2, c, 2)]);
    assert_eq!(rows[0]["msg"]["content"], "d3");

    // Paging.
    let page2 = chat_list(&srv, &ta, json!({"page": 2, "size": 1})).await;
    assert_eq!(summary(&page2), vec![(team, g2, c, 2)]);
    assert!(
        chat_list(&srv, &ta, json!({"page": 3, "size": 1}))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn the_chat_list_is_always_the_callers() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (_, tc) = srv.user("carol").await;
    srv.befriend(&ta, b, &tb, a).await;
    let dm = srv.direct(&ta, b).await;
    let mut wa = srv.ws_login(&ta).await;
    say(&mut wa, dm, "private", "p1").await;

    // Carol names alice's uid: she still gets her own (empty) list.
    assert!(
        chat_list(&srv, &tc, json!({"uid": a, "page": 1, "size": 10}))
            .await
            .is_empty()
    );
    let own = chat_list(&srv, &tb, json!({})).await;
    assert_eq!(chat_list(&srv, &tb, json!({"uid": a})).await, own);
    assert_eq!(own[0]["unread"], 1);
    srv.post("/api/message/chat/list", None, json!({"uid": a}))
        .await
        .assert_error(401);
}

#[tokio::test]
async fn chat_list_paging_is_bounded() {
    let srv = TestServer::start().await;
    let (_, ta) = srv.user("alice").await;
    for body in [
        json!({"page": 0, "size": 10}),
        json!({"page": -1, "size": 10}),
        json!({"page": 1, "size": 0}),
        json!({"page": 1, "size": 101}),
        json!({"page": "1"}),
    ] {
        let r = srv
            .post("/api/message/chat/list", Some(&ta), body.clone())
            .await;
        assert_eq!(r.status, 400, "{body}");
        r.assert_error(400);
    }
    srv.post(
        "/api/message/chat/list",
        Some(&ta),
        json!({"page": 1, "size": 100}),
    )
    .await
    .assert_ok();
}

#[tokio::test]
async fn history_pages_back_from_the_newest() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    srv.befriend(&ta, b, &tb, a).await;
    let dm = srv.direct(&ta, b).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let before = rim::time::format_wire(rim::time::now_ms(), &srv.app().config.time_zone);
    let mut m = Vec::new();
    for i in 1..=5 {
        let ws = if i % 2 == 1 { &mut wa } else { &mut wb };
        m.push(say(ws, dm, &format!("message {i}"), &format!("c{i}")).await);
    }
    let after = rim::time::format_wire(rim::time::now_ms(), &srv.app().config.time_zone);

    let page = |page: i64, size: i64| json!({"gid": dm, "page": page, "size": size});
    assert_eq!(ids(&history(&srv, &ta, page(1, 2)).await), [m[3], m[4]]);
    assert_eq!(ids(&history(&srv, &ta, page(2, 2)).await), [m[1], m[2]]);
    assert_eq!(ids(&history(&srv, &ta, page(3, 2)).await), [m[0]]);
    assert!(history(&srv, &ta, page(4, 2)).await.is_empty());
    assert_eq!(ids(&history(&srv, &tb, json!({"gid": dm})).await), m);
    assert_eq!(ids(&history(&srv, &tb, page(1, 100)).await), m);

    // beforeId: the `size` messages just older than that one.
    let cursor = |id: u64, size: i64| json!({"gid": dm, "beforeId": id, "size": size});
    assert_eq!(
        ids(&history(&srv, &ta, cursor(m[3], 2)).await),
        [m[1], m[2]]
    );
    assert_eq!(
        ids(&history(&srv, &ta, cursor(m[3], 10)).await),
        [m[0], m[1], m[2]]
    );
    assert_eq!(ids(&history(&srv, &ta, cursor(m[1], 2)).await), [m[0]]);
    assert!(history(&srv, &ta, cursor(m[0], 2)).await.is_empty());

    let rows = history(&srv, &tb, json!({"gid": dm, "page": 1, "size": 5})).await;
    for (i, row) in rows.iter().enumerate() {
        let sender = if i % 2 == 0 { a } else { b };
        assert_eq!(keys(row), ["group", "msg", "unread", "user"]);
        assert!(row["unread"].is_null(), "{row}");
        assert_eq!(row["group"]["id"], dm);
        assert_eq!(row["group"]["mode"], 1);
        assert_eq!(row["msg"]["uid"], sender);
        assert_eq!(row["msg"]["gid"], dm);
        assert_eq!(row["msg"]["content"], format!("message {}", i + 1));
        assert_eq!(row["msg"]["client_msg_id"], format!("c{}", i + 1));
        assert_eq!(row["user"]["id"], sender, "user is the sender");
        assert_eq!(row["user"]["password"], "");
        let created = row["msg"]["createTime"].as_str().unwrap();
        assert_wire_time(created);
        assert!(
            before.as_str() <= created && created <= after.as_str(),
            "{before} <= {created} <= {after}"
        );
        assert_eq!(row["msg"]["updateTime"], created);
    }
}

#[tokio::test]
async fn history_paging_is_bounded() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    srv.befriend(&ta, b, &tb, a).await;
    let dm = srv.direct(&ta, b).await;
    for body in [
        json!({"gid": dm, "page": 1, "size": 0}),
        json!({"gid": dm, "page": 1, "size": 101}),
        json!({"gid": dm, "page": 0, "size": 10}),
        json!({"gid": dm, "page": -1, "size": 10}),
        json!({"gid": dm, "beforeId": -1}),
        json!({"gid": -1}),
        json!({"page": 1, "size": 10}),
    ] {
        let r = srv
            .post("/api/message/history", Some(&ta), body.clone())
            .await;
        assert_eq!(r.status, 400, "{body}");
        r.assert_error(400);
    }
}

#[tokio::test]
async fn history_is_for_members_only() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (_, tc) = srv.user("carol").await;
    srv.befriend(&ta, b, &tb, a).await;
    let dm = srv.direct(&ta, b).await;
    let mut wa = srv.ws_login(&ta).await;
    say(&mut wa, dm, "secret", "s1").await;
    for body in [
        json!({"gid": dm}),
        json!({"gid": dm, "uid": a}),
        json!({"gid": dm, "uid": b}),
    ] {
        let r = srv.post("/api/message/history", Some(&tc), body).await;
        r.assert_error(403);
        assert!(!r.json.to_string().contains("secret"));
    }
    srv.post("/api/message/history", Some(&tc), json!({"gid": 999_999}))
        .await
        .assert_error(404);
    srv.post("/api/message/history", None, json!({"gid": dm}))
        .await
        .assert_error(401);
}

#[tokio::test]
async fn group_read_clears_unread_and_tells_the_other_members() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let team = create_group(&srv, &ta, "team", &[b, c]).await;
    let mut wb = srv.ws_login(&tb).await;
    let mut wc = srv.ws_login(&tc).await;
    say(&mut wc, team, "one", "r1").await;
    say(&mut wc, team, "two", "r2").await;
    let last = say(&mut wc, team, "three", "r3").await;
    let unread = |token: String| {
        let srv = &srv;
        async move { summary(&chat_list(srv, &token, json!({})).await)[0].3 }
    };
    assert_eq!(unread(ta.clone()).await, 3);
    assert_eq!(unread(tb.clone()).await, 3);

    // Alice reads; the uid in the body is not hers and is ignored.
    let r = srv
        .post(
            "/api/message/group/read",
            Some(&ta),
            json!({"gid": team, "uid": b}),
        )
        .await;
    assert_eq!(r.assert_ok(), &json!(true));
    assert_eq!(unread(ta.clone()).await, 0);
    assert_eq!(unread(tb.clone()).await, 3, "bob's unread count is his own");

    for ws in [&mut wb, &mut wc] {
        let push = next_event(ws, "Read").await;
        assert_eq!(push["body"]["uid"], a, "{push}");
        assert_eq!(push["body"]["gid"], team, "{push}");
        assert_eq!(push["body"]["msgId"], last, "{push}");
    }

    // Unread counts again from the next message on.
    say(&mut wc, team, "four", "r4").await;
    assert_eq!(unread(ta.clone()).await, 1);

    srv.post(
        "/api/message/group/read",
        Some(&ta),
        json!({"gid": 999_999}),
    )
    .await
    .assert_error(404);
    srv.post("/api/message/group/read", Some(&ta), json!({}))
        .await
        .assert_error(400);
}

#[tokio::test]
async fn reading_a_direct_chat_tells_the_partner() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (_, tc) = srv.user("carol").await;
    srv.befriend(&ta, b, &tb, a).await;
    let dm = srv.direct(&ta, b).await;
    let mut wb = srv.ws_login(&tb).await;
    let id = say(&mut wb, dm, "read me", "x1").await;
    srv.post("/api/message/group/read", Some(&tc), json!({"gid": dm}))
        .await
        .assert_error(403);
    srv.post("/api/message/group/read", Some(&ta), json!({"gid": dm}))
        .await
        .assert_ok();
    let push = next_event(&mut wb, "Read").await;
    assert_eq!(push["body"]["uid"], a, "{push}");
    assert_eq!(push["body"]["gid"], dm, "{push}");
    assert_eq!(push["body"]["msgId"], id, "{push}");
    let rows = chat_list(&srv, &ta, json!({})).await;
    assert_eq!(summary(&rows), vec![(dm, id, b, 0)]);
}
