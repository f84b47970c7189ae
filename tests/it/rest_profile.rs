//! One's own account over real HTTP: `user/update`, `user/avatar`,
//! `user/password`, `user/sessions` and `sessions/revoke`; and the group
//! routes of part of a membership: `group/leave` and the admin roles of
//! `group/user/change` (opType 3 and 4).

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request};
use serde_json::{Value, json};

use crate::common::{Reply, TestServer, create_group, eventually, png_bytes, raw_request};

async fn me(srv: &TestServer, token: &str) -> Value {
    srv.get("/api/user/me", Some(token))
        .await
        .assert_ok()
        .clone()
}

async fn login_as(srv: &TestServer, account: &str, password: &str, agent: &str) -> Reply {
    let body = json!({"account": account, "password": password}).to_string();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/user/login")
        .header("host", srv.addr.to_string())
        .header("content-type", "application/json")
        .header("user-agent", agent)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    raw_request(srv.addr, req).await
}

async fn upload_avatar(srv: &TestServer, token: &str, content_type: &str, bytes: &[u8]) -> Reply {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/user/avatar")
        .header("host", srv.addr.to_string())
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(Full::new(Bytes::copy_from_slice(bytes)))
        .unwrap();
    raw_request(srv.addr, req).await
}

async fn members(srv: &TestServer, token: &str, gid: u64) -> Vec<(u64, u64)> {
    let r = srv
        .get(&format!("/api/group/user/get?gid={gid}"), Some(token))
        .await;
    r.assert_ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user"]["id"].as_u64().unwrap(),
                m["role"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn change(srv: &TestServer, token: &str, gid: u64, uids: &[u64], op: u8) -> Reply {
    srv.post(
        "/api/group/user/change",
        Some(token),
        json!({"gid": gid, "uids": uids, "opType": op}),
    )
    .await
}

#[tokio::test]
async fn update_changes_the_named_fields_and_keeps_the_others() {
    let srv = TestServer::start().await;
    let (uid, token) = srv.user("alice").await;
    let r = srv
        .post(
            "/api/user/update",
            Some(&token),
            json!({"name": "  Alice A.  ", "hideLastSeen": true}),
        )
        .await;
    let answered = r.assert_ok().clone();
    assert_eq!(answered["name"], "Alice A.");
    assert_eq!(answered["hideLastSeen"], true);
    assert_eq!(answered["email"], "alice@example.org", "kept");
    assert_eq!(me(&srv, &token).await, answered);

    srv.post(
        "/api/user/update",
        Some(&token),
        json!({"email": "", "avatar": "https://example.org/a.png", "hideLastSeen": false}),
    )
    .await
    .assert_ok();
    let now = me(&srv, &token).await;
    assert_eq!(now["email"], "");
    assert_eq!(now["avatar"], "https://example.org/a.png");
    assert_eq!(now["hideLastSeen"], false);
    assert_eq!(now["name"], "Alice A.", "kept");

    // null, as a form may send for an untouched field, keeps it too.
    srv.post(
        "/api/user/update",
        Some(&token),
        json!({"name": null, "email": null, "avatar": null, "hideLastSeen": null}),
    )
    .await
    .assert_ok();
    assert_eq!(me(&srv, &token).await, now, "null keeps every field");

    // Others see the new name, not the email.
    let (_, tb) = srv.user("bob").await;
    let seen = srv
        .get(&format!("/api/user/get?uid={uid}"), Some(&tb))
        .await;
    assert_eq!(seen.assert_ok()["name"], "Alice A.");
}

#[tokio::test]
async fn a_bad_profile_field_is_refused_and_changes_nothing() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let before = me(&srv, &token).await;
    let long_avatar = "a".repeat(1025);
    let bad = [
        json!({"name": "   "}),
        json!({"name": "x".repeat(65)}),
        json!({"name": "alice\u{202e}gpj.exe"}),
        json!({"name": "new\u{2066}name", "email": "ok@example.org"}),
        json!({"name": "line\nbreak"}),
        json!({"email": "not-an-address"}),
        json!({"name": "Fine", "email": "two words@example.org"}),
        json!({"avatar": long_avatar}),
        json!({"hideLastSeen": "yes"}),
        json!({"name": 7}),
    ];
    for body in bad {
        let r = srv
            .post("/api/user/update", Some(&token), body.clone())
            .await;
        r.assert_error(400);
        assert_eq!(me(&srv, &token).await, before, "after {body}");
    }
    srv.post("/api/user/update", None, json!({"name": "x"}))
        .await
        .assert_error(401);
}

#[tokio::test]
async fn a_password_change_keeps_this_device_and_logs_out_the_others() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let other = srv.login("alice").await;
    let mut other_ws = srv.ws_login(&other).await;
    let mut this_ws = srv.ws_login(&token).await;

    // A wrong old password, or a new one too short: nothing changes.
    let r = srv
        .post(
            "/api/user/password",
            Some(&token),
            json!({"old": "not-the-password", "new": "brand-new-secret"}),
        )
        .await;
    r.assert_error(403);
    let r = srv
        .post(
            "/api/user/password",
            Some(&token),
            json!({"old": "password-alice", "new": "short"}),
        )
        .await;
    r.assert_error(400);
    srv.post("/api/user/password", Some(&token), json!({"old": "x"}))
        .await
        .assert_error(400);
    me(&srv, &other).await;

    let r = srv
        .post(
            "/api/user/password",
            Some(&token),
            json!({"old": "password-alice", "new": "brand-new-secret"}),
        )
        .await;
    assert_eq!(r.assert_ok(), 1, "one other device logged out");
    assert_eq!(other_ws.expect_close().await, 1008);
    srv.get("/api/user/me", Some(&other))
        .await
        .assert_error(401);
    me(&srv, &token).await;
    this_ws.expect_heart_next().await;

    login_as(&srv, "alice", "password-alice", "x")
        .await
        .assert_error(401);
    login_as(&srv, "alice", "brand-new-secret", "x")
        .await
        .assert_ok();
}

#[tokio::test]
async fn sessions_list_each_device_and_mark_the_callers() {
    let srv = TestServer::start().await;
    srv.register("alice").await;
    let laptop = login_as(&srv, "alice", "password-alice", "Laptop\u{202e}Browser/1.0")
        .await
        .assert_ok()
        .as_str()
        .unwrap()
        .to_owned();
    let phone = login_as(&srv, "alice", "password-alice", "Phone/2.0")
        .await
        .assert_ok()
        .as_str()
        .unwrap()
        .to_owned();
    let list = srv.get("/api/user/sessions", Some(&laptop)).await;
    let rows = list.assert_ok().as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    // Newest first: the phone, then the laptop (the caller).
    assert_eq!(rows[0]["userAgent"], "Phone/2.0");
    assert_eq!(rows[0]["current"], false);
    assert_eq!(
        rows[1]["userAgent"], "LaptopBrowser/1.0",
        "reordering removed"
    );
    assert_eq!(rows[1]["current"], true);
    for row in &rows {
        assert_eq!(row["address"], "127.0.0.1");
        assert!(row["id"].as_i64().unwrap() > 0);
        assert!(row["createTime"].as_str().is_some_and(|t| !t.is_empty()));
    }
    // The laptop's request above is recorded as its last use, written
    // after the answer (at most once a minute).
    let laptop_id = rows[1]["id"].as_i64().unwrap();
    let used = eventually(Duration::from_secs(10), || async {
        let rows = srv.get("/api/user/sessions", Some(&phone)).await;
        rows.assert_ok()
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == laptop_id && r["lastUsedTime"].is_string())
    })
    .await;
    assert!(used, "the laptop's last use was never recorded");
    let same = srv.get("/api/user/sessions", Some(&phone)).await;
    let phone_row = same.assert_ok().as_array().unwrap()[0].clone();
    assert_eq!(phone_row["current"], true);
    assert_eq!(phone_row["online"], false);

    // The phone opens a WebSocket: it is online now, the laptop is not.
    let ws = srv.ws_login(&phone).await;
    let rows = srv.get("/api/user/sessions", Some(&laptop)).await;
    let online: Vec<_> = rows
        .assert_ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["userAgent"].clone(), r["online"].clone()))
        .collect();
    assert_eq!(
        online,
        vec![
            (json!("Phone/2.0"), json!(true)),
            (json!("LaptopBrowser/1.0"), json!(false))
        ]
    );
    drop(ws);
}

#[tokio::test]
async fn revoking_a_session_logs_out_that_device_only_and_only_ones_own() {
    let srv = TestServer::start().await;
    let (_, ta) = srv.user("alice").await;
    let other = srv.login("alice").await;
    let (_, tb) = srv.user("bob").await;
    let mut other_ws = srv.ws_login(&other).await;
    let rows = srv.get("/api/user/sessions", Some(&ta)).await;
    let rows = rows.assert_ok().as_array().unwrap().clone();
    let other_id = rows.iter().find(|r| r["current"] == false).unwrap()["id"].clone();
    let bobs = srv.get("/api/user/sessions", Some(&tb)).await;
    let bob_id = bobs.assert_ok()[0]["id"].clone();

    // Bob's session is not Alice's to end.
    srv.post(
        "/api/user/sessions/revoke",
        Some(&ta),
        json!({"id": bob_id}),
    )
    .await
    .assert_error(404);
    me(&srv, &tb).await;
    srv.post(
        "/api/user/sessions/revoke",
        Some(&ta),
        json!({"id": 999_999}),
    )
    .await
    .assert_error(404);
    srv.post("/api/user/sessions/revoke", Some(&ta), json!({"id": "x"}))
        .await
        .assert_error(400);

    srv.post(
        "/api/user/sessions/revoke",
        Some(&ta),
        json!({"id": other_id}),
    )
    .await
    .assert_ok();
    assert_eq!(other_ws.expect_close().await, 1008);
    srv.get("/api/user/me", Some(&other))
        .await
        .assert_error(401);
    me(&srv, &ta).await;
    let left = srv.get("/api/user/sessions", Some(&ta)).await;
    assert_eq!(left.assert_ok().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_picture_is_stored_shown_to_everyone_logged_in_and_checked() {
    let srv = TestServer::start().await;
    let (_, ta) = srv.user("alice").await;
    // Bob shares no group with Alice: a picture is for everyone.
    let (_, tb) = srv.user("bob").await;
    let png = png_bytes(32, 32, 100, 7);
    let r = upload_avatar(&srv, &ta, "image/png", &png).await;
    let data = r.assert_ok().clone();
    let file_id = data["fileId"].as_u64().unwrap();
    let link = format!("/api/file/{file_id}");
    assert_eq!(data["avatar"], link.as_str());
    assert_eq!(me(&srv, &ta).await["avatar"], link.as_str());
    let got = srv.fetch(&link, Some(&tb), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, png);
    assert_eq!(got.header("content-type"), "image/png");
    assert_eq!(srv.fetch(&link, None, &[]).await.status, 401);

    // Not an image, a declared image that is not one, too big, empty:
    // refused, the picture kept.
    upload_avatar(&srv, &ta, "text/html", b"<script>x</script>")
        .await
        .assert_error(400);
    upload_avatar(&srv, &ta, "image/png", b"not a png at all")
        .await
        .assert_error(400);
    let huge = png_bytes(8, 8, 2 << 20, 9);
    upload_avatar(&srv, &ta, "image/png", &huge)
        .await
        .assert_error(413);
    upload_avatar(&srv, &ta, "image/png", b"")
        .await
        .assert_error(400);
    assert_eq!(me(&srv, &ta).await["avatar"], link.as_str());

    // An avatar set to a link lets the file go: no longer everyone's.
    srv.post(
        "/api/user/update",
        Some(&ta),
        json!({"avatar": "https://example.org/me.png"}),
    )
    .await
    .assert_ok();
    assert_eq!(srv.fetch(&link, Some(&tb), &[]).await.status, 404);
    assert_eq!(srv.fetch(&link, Some(&ta), &[]).await.status, 200);
}

#[tokio::test]
async fn leaving_a_group_tells_its_members_and_hands_on_the_admin_role() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let gid = create_group(&srv, &ta, "g", &[b, c]).await;
    let mut wb = srv.ws_login(&tb).await;
    let mut wa = srv.ws_login(&ta).await;

    // Alice, the only admin, leaves: Bob, the longest-standing member
    // left, becomes admin.
    srv.post("/api/group/leave", Some(&ta), json!({"gid": gid}))
        .await
        .assert_ok();
    for ws in [&mut wb, &mut wa] {
        let n = ws.recv().await;
        assert_eq!(n["event"], "Notify", "{n}");
        assert_eq!(n["body"]["kind"], "GroupChanged", "{n}");
        assert_eq!(n["body"]["gid"], gid, "{n}");
        assert_eq!(n["body"]["uid"], a, "{n}");
    }
    assert_eq!(members(&srv, &tc, gid).await, vec![(b, 2), (c, 1)]);
    srv.get(&format!("/api/group/user/get?gid={gid}"), Some(&ta))
        .await
        .assert_error(403);

    // Leaving again, an unknown group, a direct chat: refused.
    srv.post("/api/group/leave", Some(&ta), json!({"gid": gid}))
        .await
        .assert_error(403);
    srv.post("/api/group/leave", Some(&ta), json!({"gid": 999_999}))
        .await
        .assert_error(404);
    let direct = srv.direct(&tb, c).await;
    srv.post("/api/group/leave", Some(&tb), json!({"gid": direct}))
        .await
        .assert_error(400);
    srv.post("/api/group/leave", Some(&tb), json!({}))
        .await
        .assert_error(400);
    assert_eq!(members(&srv, &tb, direct).await.len(), 2);
}

#[tokio::test]
async fn admins_are_made_and_unmade_and_a_group_keeps_one() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let (d, td) = srv.user("dave").await;
    // Bob will add dave, and only friends can be added.
    srv.befriend(&tb, d, &td, b).await;
    let gid = create_group(&srv, &ta, "g", &[b, c]).await;
    let mut wc = srv.ws_login(&tc).await;

    // A member may not hand out roles.
    change(&srv, &tb, gid, &[b], 3).await.assert_error(403);
    // Someone outside the group cannot be made admin; nothing changes.
    change(&srv, &ta, gid, &[b, d], 3).await.assert_error(404);
    assert_eq!(members(&srv, &ta, gid).await, vec![(a, 2), (b, 1), (c, 1)]);

    change(&srv, &ta, gid, &[b], 3).await.assert_ok();
    let n = wc.recv().await;
    assert_eq!(n["body"]["kind"], "GroupChanged", "{n}");
    assert_eq!(members(&srv, &ta, gid).await, vec![(a, 2), (b, 2), (c, 1)]);
    // The new admin may act as one.
    change(&srv, &tb, gid, &[d], 1).await.assert_ok();
    assert_eq!(wc.recv().await["body"]["kind"], "GroupChanged");

    change(&srv, &tb, gid, &[a], 4).await.assert_ok();
    assert_eq!(wc.recv().await["body"]["kind"], "GroupChanged");
    // Bob is the last admin: he cannot step down, nor be stepped down.
    change(&srv, &tb, gid, &[b], 4).await.assert_error(409);
    change(&srv, &tb, gid, &[b, c], 4).await.assert_error(409);
    assert_eq!(
        members(&srv, &ta, gid).await,
        vec![(a, 1), (b, 2), (c, 1), (d, 1)]
    );
    change(&srv, &ta, gid, &[c], 3).await.assert_error(403);
    change(&srv, &tb, gid, &[c], 5).await.assert_error(400);
    // A direct chat has no roles.
    let direct = srv.direct(&tb, c).await;
    change(&srv, &tb, direct, &[c], 3).await.assert_error(400);
}
