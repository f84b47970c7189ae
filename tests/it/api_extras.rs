//! API that rim did not have and clients asked for: the caller and server
//! facts, members' read positions, forward paging, group change notices, and
//! the stored time in a message's ack.

use std::time::Duration;

use serde_json::json;

use crate::common::{TestServer, create_group};

#[tokio::test]
async fn me_and_server_info() {
    let srv = TestServer::start().await;
    let (uid, token) = srv.user("alice").await;
    let me = srv.get("/api/user/me", Some(&token)).await;
    let me = me.assert_ok();
    assert_eq!(me["id"], uid);
    assert_eq!(me["email"], "alice@example.org", "the owner sees the email");
    assert_eq!(me["admin"], true, "the first account is an admin");
    srv.get("/api/user/me", None).await.assert_error(401);
    let (_, tb) = srv.user("bob").await;
    assert_eq!(
        srv.get("/api/user/me", Some(&tb)).await.assert_ok()["admin"],
        false
    );

    let info = srv.get("/api/server/info", None).await;
    assert_eq!(info.assert_ok()["registration"], "open");
    assert_eq!(info.data()["version"], env!("CARGO_PKG_VERSION"));
    let srv =
        TestServer::start_with(|c| c.registration = rim::config::RegistrationMode::Invite).await;
    assert_eq!(
        srv.get("/api/server/info", None).await.assert_ok()["registration"],
        "invite"
    );
}

#[tokio::test]
async fn members_show_how_far_they_read_and_acks_carry_the_time() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let gid = create_group(&srv, &ta, "g", &[b]).await;
    let mut wa = srv.ws_login(&ta).await;
    let ack = wa.send_msg(gid, "one", "m1").await;
    let id = ack["serverMsgId"].as_u64().unwrap();
    let time = ack["createTime"].as_str().expect("createTime on a Msg ack");
    assert_eq!(time.len(), 19, "{time}");
    let members = srv
        .get(&format!("/api/group/user/get?gid={gid}"), Some(&ta))
        .await;
    let read = |uid: u64| {
        members
            .data()
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["user"]["id"] == uid)
            .unwrap()["readId"]
            .clone()
    };
    assert_eq!(read(a), id, "the sender has read their own message");
    assert_eq!(read(b), 0);
    srv.post("/api/message/group/read", Some(&tb), json!({"gid": gid}))
        .await
        .assert_ok();
    let members = srv
        .get(&format!("/api/group/user/get?gid={gid}"), Some(&ta))
        .await;
    let read_b = members
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"]["id"] == b)
        .unwrap()["readId"]
        .clone();
    assert_eq!(read_b, id);
    // Other acks keep rim's shape.
    wa.send(json!({"event": "Heart", "body": {"clientMsgId": "h"}}))
        .await;
    assert!(wa.recv().await.get("createTime").is_none());
}

#[tokio::test]
async fn history_pages_forward_with_after_id() {
    let srv = TestServer::start().await;
    let (_, ta) = srv.user("alice").await;
    let gid = create_group(&srv, &ta, "g", &[]).await;
    let mut ws = srv.ws_login(&ta).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            ws.send_msg(gid, &format!("m{i}"), &format!("c{i}")).await["serverMsgId"]
                .as_u64()
                .unwrap(),
        );
    }
    let page = |after: u64| {
        let srv = &srv;
        let ta = &ta;
        async move {
            let r = srv
                .post(
                    "/api/message/history",
                    Some(ta),
                    json!({"gid": gid, "afterId": after, "size": 3}),
                )
                .await;
            r.assert_ok()
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["msg"]["id"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(0).await, ids[0..3]);
    assert_eq!(page(ids[2]).await, ids[3..6]);
    assert_eq!(page(ids[5]).await, ids[6..7]);
    assert!(page(ids[6]).await.is_empty());
    srv.post(
        "/api/message/history",
        Some(&ta),
        json!({"gid": gid, "afterId": 1, "beforeId": 5}),
    )
    .await
    .assert_error(400);
}

#[tokio::test]
async fn group_changes_are_pushed_to_everyone_affected() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let gid = create_group(&srv, &ta, "g", &[b]).await;
    let mut wb = srv.ws_login(&tb).await;
    let mut wc = srv.ws_login(&tc).await;

    srv.post(
        "/api/group/update",
        Some(&ta),
        json!({"id": gid, "name": "renamed"}),
    )
    .await
    .assert_ok();
    let n = wb.recv().await;
    assert_eq!(n["event"], "Notify");
    assert_eq!(n["body"]["kind"], "GroupChanged");
    assert_eq!(n["body"]["gid"], gid);
    assert_eq!(n["body"]["uid"], a);
    // Not to carol, who is not a member (yet). The notice of her addition
    // below looks the same as this one would, so it cannot serve as the
    // marker; a friend request does.
    srv.assert_nothing_before_friend_request(&[c], &mut [&mut wc])
        .await;

    srv.post(
        "/api/group/user/change",
        Some(&ta),
        json!({"gid": gid, "uids": [c], "opType": 1}),
    )
    .await
    .assert_ok();
    assert_eq!(wb.recv().await["body"]["kind"], "GroupChanged");
    assert_eq!(
        wc.recv().await["body"]["gid"],
        gid,
        "the added member hears of it"
    );

    srv.post(
        "/api/group/user/change",
        Some(&ta),
        json!({"gid": gid, "uids": [b], "opType": 2}),
    )
    .await
    .assert_ok();
    assert_eq!(
        wb.recv().await["body"]["kind"],
        "GroupChanged",
        "the removed member hears of it"
    );
    assert_eq!(wc.recv().await["body"]["kind"], "GroupChanged");
}

#[tokio::test]
async fn a_logged_out_socket_gets_a_fresh_login_deadline() {
    let srv = TestServer::start_with(|c| {
        c.login_timeout = Duration::from_secs(1);
        c.ping_interval = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(10);
    })
    .await;
    let (_, token) = srv.user("alice").await;
    let mut ws = srv.ws_login(&token).await;
    // Well past the first deadline, logged in: still open. Not a wait for
    // something: time passing is what is under test (deadline 1 s, and a
    // tick every 0.5 s that would close the socket).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ws.send(json!({"event": "Logout", "body": {"clientMsgId": "out"}}))
        .await;
    assert_eq!(ws.recv().await["kind"], "Ack");
    // Within a second of the Logout (but two after opening) a new Login
    // works: the deadline restarted at Logout. Ticks run every 0.5 s, so a
    // deadline counted from the opening would have closed the socket by now.
    // Again time passing is what is under test.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(ws.login(&token).await["kind"], "Ack");
}

#[tokio::test]
async fn frames_and_bodies_must_be_objects() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let mut ws = srv.ws_login(&token).await;
    for text in [
        r#"["Msg", {"gid": 1}]"#,
        r#"{"event": "Heart", "body": [1, 2]}"#,
        "42",
        "\"Heart\"",
    ] {
        ws.send_text(text).await;
        let a = ws.recv().await;
        assert_eq!(a["code"], 400, "{text} -> {a}");
    }
    srv.post("/api/message/group/read", Some(&token), json!([1]))
        .await
        .assert_error(400);
}
