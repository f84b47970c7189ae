//! Web Push against a stand-in push service: what is sent, to whom, how it
//! is encrypted and signed, and what a subscription may be.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, assert_ack, create_group, direct_pair, eventually};
use crate::push_service::{Browser, PushService};

/// A server that sends pushes to the stand-in service on loopback.
async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.push.allowed_hosts = vec!["127.0.0.1".into()];
        c.push.allow_insecure_http = true;
        c.push.contact = Some("mailto:ops@example.org".into());
    })
    .await
}

async fn server_key(srv: &TestServer) -> String {
    let r = srv.get("/api/push/key", None).await;
    r.assert_ok()["key"].as_str().expect("key").to_owned()
}

async fn subscribe(srv: &TestServer, token: &str, browser: &Browser) {
    srv.post("/api/push/subscribe", Some(token), browser.subscription())
        .await
        .assert_ok();
}

/// `rim_push_sent_total{result=...}` from `/metrics`.
async fn metric(srv: &TestServer, result: &str) -> u64 {
    let (_, text, _) = crate::metrics::get_text(srv.addr, "/metrics", &[]).await;
    let name = format!("rim_push_sent_total{{result=\"{result}\"}}");
    crate::metrics::sample(&text, &name).unwrap_or_else(|| panic!("no {name} in {text}")) as u64
}

#[tokio::test]
async fn the_key_is_a_p256_point_made_once_and_kept() {
    let srv = server().await;
    let key = server_key(&srv).await;
    let raw = rim::webpush::decode_base64url(&key).expect("base64url");
    assert_eq!(raw.len(), 65);
    assert_eq!(raw[0], 4, "uncompressed point");
    let srv = srv.restart().await;
    assert_eq!(server_key(&srv).await, key, "the same key after a restart");
}

#[tokio::test]
async fn a_message_is_pushed_encrypted_and_signed_to_the_other_members_devices() {
    let mut service = PushService::start().await;
    let srv = server().await;
    let ((_, alice), (_, bob), gid) = direct_pair(&srv, "alice", "bob").await;
    let bob_phone = service.browser("/sub/bob");
    let alice_laptop = service.browser("/sub/alice");
    subscribe(&srv, &bob, &bob_phone).await;
    subscribe(&srv, &alice, &alice_laptop).await;

    let mut ws = srv.ws_login(&alice).await;
    let ack = ws.send_msg(gid, "dinner at seven?", "m1").await;
    let id = assert_ack(&ack, "m1").unwrap();

    let got = service.next().await;
    assert_eq!(got.path, "/sub/bob", "the sender's own device gets nothing");
    assert_eq!(got.header("urgency"), "high");
    assert_eq!(got.header("ttl"), "86400");
    assert_eq!(got.header("topic"), format!("rim-g{gid}"));
    assert_eq!(got.header("content-encoding"), "aes128gcm");
    let claims = service.verify_vapid(&got, &server_key(&srv).await);
    assert_eq!(claims["sub"], "mailto:ops@example.org");
    let payload = bob_phone.decrypt(&got.body);
    assert_eq!(
        payload,
        json!({"gid": gid, "msgId": id, "title": "ALICE", "body": "dinner at seven?"})
    );
    assert!(
        alice_laptop.open(&got.body).is_none(),
        "encrypted for bob's phone only"
    );
}

#[tokio::test]
async fn group_pushes_name_the_group_and_long_texts_are_cut() {
    let mut service = PushService::start().await;
    let srv = server().await;
    let (_, alice) = srv.user("alice").await;
    let (bob_uid, bob) = srv.user("bob").await;
    let gid = create_group(&srv, &alice, "Family", &[bob_uid]).await;
    let phone = service.browser("/sub/bob");
    subscribe(&srv, &bob, &phone).await;
    srv.post(
        "/api/group/notify",
        Some(&bob),
        json!({"gid": gid, "level": "all"}),
    )
    .await
    .assert_ok();
    let mut ws = srv.ws_login(&alice).await;
    let long = "a".repeat(300);
    assert_ack(&ws.send_msg(gid, &long, "m1").await, "m1");
    let payload = phone.decrypt(&service.next().await.body);
    assert_eq!(payload["title"], "ALICE · Family");
    let body = payload["body"].as_str().unwrap();
    assert_eq!(body.chars().count(), 201);
    assert!(body.ends_with('…'));
}

#[tokio::test]
async fn without_show_content_a_push_says_only_new_message() {
    let mut service = PushService::start().await;
    let srv = TestServer::start_with(|c| {
        c.push.allowed_hosts = vec!["127.0.0.1".into()];
        c.push.allow_insecure_http = true;
        c.push.show_content = false;
    })
    .await;
    let ((_, alice), (_, bob), gid) = direct_pair(&srv, "alice", "bob").await;
    let phone = service.browser("/sub/bob");
    subscribe(&srv, &bob, &phone).await;
    let mut ws = srv.ws_login(&alice).await;
    assert_ack(&ws.send_msg(gid, "the secret", "m1").await, "m1");
    let got = service.next().await;
    let payload = phone.decrypt(&got.body);
    assert_eq!(payload["body"], "New message");
    let claims = service.verify_vapid(&got, &server_key(&srv).await);
    assert!(claims.get("sub").is_none(), "no contact configured");
}

/// Levels: `none` silences a conversation, the defaults show in group/get.
#[tokio::test]
async fn a_conversation_set_to_none_is_not_pushed() {
    let mut service = PushService::start().await;
    let srv = server().await;
    let ((_, alice), (bob_uid, bob), direct) = direct_pair(&srv, "alice", "bob").await;
    let group = create_group(&srv, &alice, "club", &[bob_uid]).await;
    let phone = service.browser("/sub/bob");
    subscribe(&srv, &bob, &phone).await;

    let levels = |groups: &Value| -> Vec<(u64, String)> {
        groups
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["id"].as_u64().unwrap(),
                    g["notify"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let r = srv.get("/api/group/get", Some(&bob)).await;
    assert_eq!(
        levels(r.assert_ok()),
        [(direct, "all".into()), (group, "mentions".into())]
    );
    srv.post(
        "/api/group/notify",
        Some(&bob),
        json!({"gid": group, "level": "none"}),
    )
    .await
    .assert_ok();
    let r = srv.get("/api/group/get", Some(&bob)).await;
    assert_eq!(
        levels(r.assert_ok()),
        [(direct, "all".into()), (group, "none".into())]
    );

    let mut ws = srv.ws_login(&alice).await;
    assert_ack(&ws.send_msg(group, "quiet please", "m1").await, "m1");
    let marker = assert_ack(&ws.send_msg(direct, "marker", "m2").await, "m2").unwrap();
    let got = phone.decrypt(&service.next().await.body);
    assert_eq!(
        got["msgId"], marker,
        "the silenced group's message was skipped"
    );

    // Back to all: pushed again.
    srv.post(
        "/api/group/notify",
        Some(&bob),
        json!({"gid": group, "level": "all"}),
    )
    .await
    .assert_ok();
    let id = assert_ack(&ws.send_msg(group, "loud", "m3").await, "m3").unwrap();
    assert_eq!(phone.decrypt(&service.next().await.body)["msgId"], id);
}

/// A group's default level is `mentions`: only a message naming the member
/// as `@account` is pushed to them.
#[tokio::test]
async fn in_a_group_only_mentions_are_pushed_by_default() {
    let mut service = PushService::start().await;
    let srv = server().await;
    let (_, alice) = srv.user("alice").await;
    let (bob_uid, bob) = srv.user("bob").await;
    let (carol_uid, _) = srv.user("carol").await;
    let gid = create_group(&srv, &alice, "Family", &[bob_uid, carol_uid]).await;
    let phone = service.browser("/sub/bob");
    subscribe(&srv, &bob, &phone).await;
    let mut ws = srv.ws_login(&alice).await;
    assert_ack(&ws.send_msg(gid, "hello everyone", "m1").await, "m1");
    assert_ack(&ws.send_msg(gid, "@carol are you there?", "m2").await, "m2");
    let id = assert_ack(&ws.send_msg(gid, "@bob dinner?", "m3").await, "m3").unwrap();
    let got = phone.decrypt(&service.next().await.body);
    assert_eq!(got["msgId"], id, "only the message mentioning bob: {got}");
}

#[tokio::test]
async fn levels_are_checked() {
    let srv = server().await;
    let ((_, alice), (_, _bob), gid) = direct_pair(&srv, "alice", "bob").await;
    let (_, carol) = srv.user("carol").await;
    srv.post(
        "/api/group/notify",
        Some(&alice),
        json!({"gid": gid, "level": "loud"}),
    )
    .await
    .assert_error(400);
    srv.post(
        "/api/group/notify",
        Some(&carol),
        json!({"gid": gid, "level": "none"}),
    )
    .await
    .assert_error(403);
    srv.post(
        "/api/group/notify",
        Some(&alice),
        json!({"gid": 999, "level": "none"}),
    )
    .await
    .assert_error(404);
    srv.post(
        "/api/group/notify",
        None,
        json!({"gid": gid, "level": "none"}),
    )
    .await
    .assert_error(401);
}

/// A device that is connected and has said it is in the foreground shows
/// the message itself: it gets no push until it says it is hidden.
#[tokio::test]
async fn a_device_in_the_foreground_is_not_pushed() {
    let mut service = PushService::start().await;
    let srv = server().await;
    let ((_, alice), (_, bob), gid) = direct_pair(&srv, "alice", "bob").await;
    let phone = service.browser("/sub/bob");
    subscribe(&srv, &bob, &phone).await;
    let mut bob_ws = srv.ws_login(&bob).await;
    bob_ws
        .send(json!({"event": "Visibility", "body": {"kind": "Visible", "clientMsgId": "v1"}}))
        .await;
    assert_ack(&bob_ws.next_answer().await, "v1");

    let mut ws = srv.ws_login(&alice).await;
    assert_ack(&ws.send_msg(gid, "seen live", "m1").await, "m1");
    bob_ws
        .send(json!({"event": "Visibility", "body": {"kind": "Hidden", "clientMsgId": "v2"}}))
        .await;
    assert_ack(&bob_ws.next_answer().await, "v2");
    let id = assert_ack(&ws.send_msg(gid, "pushed", "m2").await, "m2").unwrap();
    assert_eq!(
        phone.decrypt(&service.next().await.body)["msgId"],
        id,
        "the first message was not pushed"
    );

    // A bad visibility is refused; the connection stays.
    bob_ws
        .send(json!({"event": "Visibility", "body": {"kind": "Dim", "clientMsgId": "v3"}}))
        .await;
    crate::common::assert_refused(&bob_ws.next_answer().await, 400);
    bob_ws.expect_heart_next().await;
}

#[tokio::test]
async fn bad_subscriptions_are_refused_and_nothing_is_stored() {
    let service = PushService::start().await;
    let srv = server().await;
    let (bob_uid, bob) = srv.user("bob").await;
    let good = service.browser("/sub/bob");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut s = good.subscription();
        f(&mut s);
        s
    };
    let cases = [
        (
            "a key that is not base64url",
            with(&|s| s["keys"]["p256dh"] = json!("*not base64*")),
        ),
        (
            "a key off the curve",
            with(&|s| {
                let mut key = good.public.clone();
                key[64] ^= 1;
                s["keys"]["p256dh"] = json!(rim::webpush::encode_base64url(&key));
            }),
        ),
        (
            "a short auth secret",
            with(&|s| s["keys"]["auth"] = json!(rim::webpush::encode_base64url(&[1; 15]))),
        ),
        (
            "an unlisted host",
            with(&|s| s["endpoint"] = json!("https://push.evil.example/x")),
        ),
        (
            "a look-alike host",
            with(&|s| s["endpoint"] = json!("http://127.0.0.1.evil.example/x")),
        ),
        (
            "user information",
            with(&|s| s["endpoint"] = json!(format!("http://x@{}/x", service.addr))),
        ),
        (
            "another scheme",
            with(&|s| s["endpoint"] = json!("ftp://127.0.0.1/x")),
        ),
        ("no keys", json!({"endpoint": good.endpoint})),
        (
            "an expiration time that is not a number",
            with(&|s| s["expirationTime"] = json!({})),
        ),
    ];
    for (what, body) in cases {
        let r = srv.post("/api/push/subscribe", Some(&bob), body).await;
        assert_eq!(r.status, 400, "{what}: {}", r.json);
        r.assert_error(400);
    }
    let stored = srv.app().db.push_subscriptions(bob_uid).await.unwrap();
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
    srv.post("/api/push/subscribe", None, good.subscription())
        .await
        .assert_error(401);

    // Plain http only when allowed; the default hosts are the browsers' services.
    let strict = TestServer::start().await;
    let (_, token) = strict.user("bob").await;
    let mut s = good.subscription();
    s["endpoint"] = json!("http://fcm.googleapis.com/fcm/send/abc");
    strict
        .post("/api/push/subscribe", Some(&token), s.clone())
        .await
        .assert_error(400);
    s["endpoint"] = json!("https://fcm.googleapis.com/fcm/send/abc");
    strict
        .post("/api/push/subscribe", Some(&token), s.clone())
        .await
        .assert_ok();
    s["endpoint"] = json!("https://web.push.apple.com/abc");
    strict
        .post("/api/push/subscribe", Some(&token), s)
        .await
        .assert_ok();
}

#[tokio::test]
async fn logging_out_or_unsubscribing_drops_the_subscription() {
    let service = PushService::start().await;
    let srv = server().await;
    let (bob_uid, bob) = srv.user("bob").await;
    let phone = service.browser("/sub/phone");
    let laptop = service.browser("/sub/laptop");
    subscribe(&srv, &bob, &phone).await;
    let laptop_token = srv.login("bob").await;
    subscribe(&srv, &laptop_token, &laptop).await;
    let endpoints = |subs: Vec<rim::store::Subscription>| -> Vec<String> {
        subs.into_iter().map(|s| s.endpoint).collect()
    };
    let db = &srv.app().db;
    assert_eq!(
        endpoints(db.push_subscriptions(bob_uid).await.unwrap()),
        [phone.endpoint.clone(), laptop.endpoint.clone()]
    );
    srv.post("/api/user/logout", Some(&laptop_token), json!({}))
        .await
        .assert_ok();
    assert_eq!(
        endpoints(db.push_subscriptions(bob_uid).await.unwrap()),
        vec![phone.endpoint.clone()],
        "the laptop's session took its subscription with it"
    );
    let r = srv
        .post(
            "/api/push/unsubscribe",
            Some(&bob),
            json!({"endpoint": phone.endpoint}),
        )
        .await;
    assert_eq!(r.assert_ok(), &json!(true));
    let r = srv
        .post(
            "/api/push/unsubscribe",
            Some(&bob),
            json!({"endpoint": phone.endpoint}),
        )
        .await;
    assert_eq!(r.assert_ok(), &json!(false));
    assert!(db.push_subscriptions(bob_uid).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_gone_subscription_is_removed_and_a_failing_service_is_retried() {
    let mut service = PushService::start().await;
    let srv = server().await;
    let ((_, alice), (bob_uid, bob), gid) = direct_pair(&srv, "alice", "bob").await;
    let gone = service.browser("/gone/old-phone");
    subscribe(&srv, &bob, &gone).await;
    let mut ws = srv.ws_login(&alice).await;
    assert_ack(&ws.send_msg(gid, "one", "m1").await, "m1");
    assert_eq!(service.next().await.path, "/gone/old-phone");
    let db = srv.app().db.clone();
    let removed = eventually(Duration::from_secs(5), || {
        let db = db.clone();
        async move { db.push_subscriptions(bob_uid).await.unwrap().is_empty() }
    })
    .await;
    assert!(removed, "the 410 removed the subscription");
    assert_eq!(metric(&srv, "gone").await, 1);

    // 503, then success: two requests, one push sent.
    let flaky = service.browser("/flaky/phone");
    subscribe(&srv, &bob, &flaky).await;
    let id = assert_ack(&ws.send_msg(gid, "two", "m2").await, "m2").unwrap();
    let first = service.next().await;
    let second = service.next().await;
    assert_eq!(
        (first.path.as_str(), second.path.as_str()),
        ("/flaky/phone", "/flaky/phone")
    );
    assert_eq!(flaky.decrypt(&second.body)["msgId"], id);
    assert_eq!(service.answered("/gone/old-phone"), 1, "never asked again");
    let srv_ref = &srv;
    assert!(
        eventually(Duration::from_secs(5), || async move {
            metric(srv_ref, "sent").await == 1
        })
        .await,
        "counted once as sent"
    );
}
