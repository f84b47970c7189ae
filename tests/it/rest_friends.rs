//! `/api/friend/*` over real HTTP, seen from both sides: requests, answers,
//! the three lists, every refusal, and the `Notify` pushes that tell the
//! other side.

use serde_json::{Value, json};

use crate::common::TestServer;

/// The uids in `token`'s friend list `status` (0 incoming, 1 friends, 2 outgoing).
async fn list(srv: &TestServer, token: &str, status: u8) -> Vec<u64> {
    let r = srv
        .get(&format!("/api/friend/list?status={status}"), Some(token))
        .await;
    r.assert_ok()
        .as_array()
        .expect("a list")
        .iter()
        .map(|u| u["id"].as_u64().expect("user id"))
        .collect()
}

async fn add(srv: &TestServer, token: &str, fid: u64) -> crate::common::Reply {
    srv.post("/api/friend/add", Some(token), json!({"fid": fid}))
        .await
}

async fn modify(srv: &TestServer, token: &str, fid: u64, status: i64) -> crate::common::Reply {
    srv.post(
        "/api/friend/status/modify",
        Some(token),
        json!({"fid": fid, "status": status}),
    )
    .await
}

/// Asserts the three lists of `token`'s owner.
async fn assert_lists(
    srv: &TestServer,
    token: &str,
    incoming: &[u64],
    friends: &[u64],
    outgoing: &[u64],
) {
    assert_eq!(list(srv, token, 0).await, incoming, "incoming requests");
    assert_eq!(list(srv, token, 1).await, friends, "friends");
    assert_eq!(list(srv, token, 2).await, outgoing, "outgoing requests");
}

fn assert_notify(frame: &Value, kind: &str, uid: u64) {
    assert_eq!(frame["event"], "Notify", "{frame}");
    assert_eq!(frame["body"]["kind"], kind, "{frame}");
    assert_eq!(frame["body"]["uid"], uid, "{frame}");
}

#[tokio::test]
async fn request_and_accept_seen_from_both_sides() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    assert_lists(&srv, &ta, &[], &[], &[]).await;

    assert_eq!(add(&srv, &ta, b).await.assert_ok(), &json!(true));
    assert_lists(&srv, &tb, &[a], &[], &[]).await;
    assert_lists(&srv, &ta, &[], &[], &[b]).await;

    // The listed users are full User objects without private fields.
    let r = srv.get("/api/friend/list?status=0", Some(&tb)).await;
    let requester = &r.assert_ok()[0];
    assert_eq!(requester["account"], "alice");
    assert_eq!(requester["name"], "ALICE");
    assert_eq!(requester["email"], "");
    assert_eq!(requester["password"], "");

    assert_eq!(modify(&srv, &tb, a, 1).await.assert_ok(), &json!(true));
    assert_lists(&srv, &ta, &[], &[b], &[]).await;
    assert_lists(&srv, &tb, &[], &[a], &[]).await;
}

#[tokio::test]
async fn the_other_side_is_notified_over_websocket() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;

    add(&srv, &ta, b).await.assert_ok();
    let push = wb.recv().await;
    assert_notify(&push, "FriendRequest", a);
    assert_eq!(
        push["body"]["content"], "ALICE",
        "the requester's name: {push}"
    );

    modify(&srv, &tb, a, 1).await.assert_ok();
    let push = wa.recv().await;
    assert_notify(&push, "FriendAccept", b);
    assert_eq!(push["body"]["content"], "BOB", "{push}");

    // Neither side was told about its own action: a friend request from
    // somebody else is the next frame of both.
    srv.assert_nothing_before_friend_request(&[a, b], &mut [&mut wa, &mut wb])
        .await;
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    add(&srv, &ta, a).await.assert_error(400);
    add(&srv, &ta, 999_999).await.assert_error(404);
    add(&srv, &ta, b).await.assert_ok();
    add(&srv, &ta, b).await.assert_error(409);
    assert_lists(&srv, &ta, &[], &[], &[b]).await;

    modify(&srv, &tb, a, 1).await.assert_ok();
    add(&srv, &ta, b).await.assert_error(409);
    add(&srv, &tb, a).await.assert_error(409);
    modify(&srv, &tb, a, 1).await.assert_error(409);
    modify(&srv, &ta, b, 0).await.assert_error(409);
    assert_lists(&srv, &ta, &[], &[b], &[]).await;
}

#[tokio::test]
async fn only_the_receiver_can_accept() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (_, tc) = srv.user("carol").await;
    add(&srv, &ta, b).await.assert_ok();
    // Accepting one's own request.
    modify(&srv, &ta, b, 1).await.assert_error(400);
    // Accepting a request nobody sent.
    modify(&srv, &tc, a, 1).await.assert_error(404);
    modify(&srv, &tb, 999_999, 1).await.assert_error(404);
    assert_lists(&srv, &ta, &[], &[], &[b]).await;
    assert_lists(&srv, &tb, &[a], &[], &[]).await;
}

#[tokio::test]
async fn status_2_rejects_cancels_and_unfriends() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let (d, td) = srv.user("dave").await;

    // Rejecting a request to me.
    add(&srv, &ta, b).await.assert_ok();
    assert_eq!(modify(&srv, &tb, a, 2).await.assert_ok(), &json!(true));
    assert_lists(&srv, &ta, &[], &[], &[]).await;
    assert_lists(&srv, &tb, &[], &[], &[]).await;
    modify(&srv, &tb, a, 2).await.assert_error(404);
    // A rejected request may be asked again.
    add(&srv, &ta, b).await.assert_ok();
    assert_lists(&srv, &tb, &[a], &[], &[]).await;

    // Cancelling my own request.
    add(&srv, &ta, c).await.assert_ok();
    modify(&srv, &ta, c, 2).await.assert_ok();
    assert_lists(&srv, &tc, &[], &[], &[]).await;
    assert_lists(&srv, &ta, &[], &[], &[b]).await;

    // Ending a friendship, from the side that accepted.
    srv.befriend(&ta, d, &td, a).await;
    assert_lists(&srv, &td, &[], &[a], &[]).await;
    modify(&srv, &td, a, 2).await.assert_ok();
    assert_lists(&srv, &td, &[], &[], &[]).await;
    assert_lists(&srv, &ta, &[], &[], &[b]).await;

    // Nothing to remove.
    modify(&srv, &tc, d, 2).await.assert_error(404);
    modify(&srv, &tc, 999_999, 2).await.assert_error(404);
}

#[tokio::test]
async fn status_0_asks_and_other_statuses_are_400() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    modify(&srv, &ta, b, 0).await.assert_ok();
    assert_lists(&srv, &tb, &[a], &[], &[]).await;

    for status in [3, 9, 255] {
        modify(&srv, &tb, a, status).await.assert_error(400);
    }
    for status in [-1, 256] {
        modify(&srv, &tb, a, status).await.assert_error(400);
    }
    for query in ["status=3", "status=-1", "status=abc", "status=", ""] {
        srv.get(&format!("/api/friend/list?{query}"), Some(&tb))
            .await
            .assert_error(400);
    }
    // None of it changed the pending request.
    assert_lists(&srv, &tb, &[a], &[], &[]).await;
}

#[tokio::test]
async fn asking_back_while_asked_makes_friends() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let mut wa = srv.ws_login(&ta).await;
    add(&srv, &ta, b).await.assert_ok();
    add(&srv, &tb, a).await.assert_ok();
    assert_notify(&wa.recv().await, "FriendAccept", b);
    assert_lists(&srv, &ta, &[], &[b], &[]).await;
    assert_lists(&srv, &tb, &[], &[a], &[]).await;
}

#[tokio::test]
async fn lists_hold_every_pending_request() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    add(&srv, &tb, a).await.assert_ok();
    add(&srv, &tc, a).await.assert_ok();
    let mut incoming = list(&srv, &ta, 0).await;
    incoming.sort_unstable();
    assert_eq!(incoming, vec![b, c]);
    // Accepting one leaves the other pending.
    modify(&srv, &ta, c, 1).await.assert_ok();
    assert_lists(&srv, &ta, &[b], &[c], &[]).await;
    assert_lists(&srv, &tb, &[], &[], &[a]).await;
    assert_lists(&srv, &tc, &[], &[a], &[]).await;
}
