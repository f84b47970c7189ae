//! A client that behaves on the wire like rim-front, the original project's
//! React client: it opens its socket when the page loads and logs in only
//! once the person has typed a password, sends its uid (0 before it knows
//! it) with the Login, never sends `Ack`, sends `Read` and at once asks REST
//! for the chat list, and reads `createTime` as the browser's local time.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{TestServer, Ws, assert_ack, assert_refused, msg_frame, unread_in};

/// rim-front's Login: the token, the uid it has (0 before it knows it), a
/// stray gid, and nothing that asks for a replay.
fn rim_front_login(token: &str, client_msg_id: &str) -> Value {
    json!({"event": "Login", "body": {"kind": "Text", "content": token, "uid": 0, "gid": 3, "clientMsgId": client_msg_id}})
}

/// Reads (answering pings) until `until`; only pings may arrive. Returns
/// how many came.
async fn only_pings_until(ws: &mut Ws, until: tokio::time::Instant) -> usize {
    let mut pings = 0;
    while let Ok(frame) = tokio::time::timeout_at(until, ws.stream.next()).await {
        match frame {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("expected only pings while the person types, got {other:?}"),
        }
    }
    pings
}

#[tokio::test]
async fn a_socket_opened_long_before_login_stays_open_and_pinged() {
    // The login deadline is the default; pings and the idle timeout are
    // short, so the person can "type" for longer than a silent socket would
    // live without the test waiting minutes.
    let srv = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(2);
    })
    .await;
    assert!(
        srv.app().config.login_timeout >= Duration::from_secs(600),
        "the default login deadline is at least 10 minutes"
    );
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    srv.befriend(&ta, b, &tb, a).await;
    let dm = srv.direct(&ta, b).await;

    // The page loads: the socket opens. Something sent before Login is
    // refused with 401, and the socket stays.
    let mut page = Ws::connect(srv.addr).await;
    page.send(json!({"event": "Read", "body": {"gid": dm, "msgId": 1, "clientMsgId": "early"}}))
        .await;
    let early = page.recv().await;
    assert_eq!(early["clientMsgId"], "early");
    assert_refused(&early, 401);

    // The person takes longer to type than the idle timeout: the server
    // pings, the browser answers, nothing else happens.
    let typing = srv.app().config.idle_timeout + Duration::from_secs(1);
    let pings = only_pings_until(&mut page, tokio::time::Instant::now() + typing).await;
    assert!(pings >= 1, "the server never pinged the waiting socket");

    // Then the REST login, then Login on the old socket, and it works both ways.
    let token = srv.login("bob").await;
    assert_ack(
        &page.login_with(rim_front_login(&token, "login")).await,
        "login",
    );
    let mut alice = srv.ws_login(&ta).await;
    let id = assert_ack(&alice.send_msg(dm, "are you there?", "a1").await, "a1").unwrap();
    let push = page.recv().await;
    assert_eq!(push["event"], "Msg", "{push}");
    assert_eq!(push["body"]["msgId"], id);
    page.send(msg_frame("Text", dm, "yes, typing slowly", "b1"))
        .await;
    assert_ack(&page.recv().await, "b1").unwrap();
    assert_eq!(alice.recv().await["body"]["content"], "yes, typing slowly");
}

/// Opens a socket as `client` behind the trusted proxy; the upgrade's
/// status (101 when it opened) and the socket.
async fn connect_from(srv: &TestServer, client: &str) -> (u16, Option<Ws>, Value) {
    let mut req = format!("ws://{}/ws", srv.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", client.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((stream, _)) => (
            101,
            Some(Ws {
                stream,
                presence: false,
            }),
            Value::Null,
        ),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            assert!(resp.headers().contains_key("retry-after"), "{resp:?}");
            let body = resp.body().clone().unwrap_or_default();
            (
                status,
                None,
                serde_json::from_slice(&body).expect("JSON wrapper"),
            )
        }
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

#[tokio::test]
async fn sockets_before_login_are_capped_per_address_and_in_total() {
    let srv = TestServer::start_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.max_sockets_before_login_per_address = 2;
        c.max_sockets_before_login = 3;
    })
    .await;
    let (_, token) = srv.user("alice").await;
    let one = "203.0.113.1";
    let (_, Some(mut first), _) = connect_from(&srv, one).await else {
        panic!("first socket refused")
    };
    let (_, Some(_second), _) = connect_from(&srv, one).await else {
        panic!("second socket refused")
    };
    let (status, _, body) = connect_from(&srv, one).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(body["code"], 429);

    // Another address has room until the total is reached.
    let (status, other, _) = connect_from(&srv, "203.0.113.2").await;
    assert_eq!(status, 101);
    let (status, _, body) = connect_from(&srv, "203.0.113.3").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], 503);

    // A socket that logs in stops counting: room for one more.
    assert_ack(&first.login(&token).await, "login");
    let (status, third, _) = connect_from(&srv, "203.0.113.3").await;
    assert_eq!(status, 101);

    // Logging out counts it again, past the caps, and the socket stays.
    first
        .send(json!({"event": "Logout", "body": {"clientMsgId": "out"}}))
        .await;
    assert_ack(&first.recv().await, "out");
    first.expect_heart_next().await;
    assert_eq!(
        srv.app()
            .limits
            .sockets_before_login
            .held(one.parse().unwrap()),
        (2, 4)
    );
    drop((other, third));
}

#[tokio::test]
async fn only_devices_that_ask_or_have_acked_get_the_replay() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    srv.befriend(&ta, b, &tb, a).await;
    let dm = srv.direct(&ta, b).await;
    let mut alice = srv.ws_login(&ta).await;
    let m1 = assert_ack(&alice.send_msg(dm, "one", "a1").await, "a1").unwrap();
    let m2 = assert_ack(&alice.send_msg(dm, "two", "a2").await, "a2").unwrap();

    // rim-front logs in: no replay. A Heart answered next proves it (the
    // replay would be written before the next frame is read).
    for round in 0..2 {
        let mut front = Ws::connect(srv.addr).await;
        let cmid = format!("front-{round}");
        assert_ack(&front.login_with(rim_front_login(&tb, &cmid)).await, &cmid);
        front.expect_heart_next().await;
    }
    assert_eq!(unread_in(&srv, &tb, dm).await, 2, "nothing was lost");

    // rim's own web client asks for it.
    let mut web = Ws::connect(srv.addr).await;
    let ask =
        json!({"event": "Login", "body": {"content": tb, "replay": true, "clientMsgId": "web"}});
    assert_ack(&web.login_with(ask).await, "web");
    assert_eq!(web.recv().await["body"]["msgId"], m1);
    assert_eq!(web.recv().await["body"]["msgId"], m2);
    web.expect_heart_next().await;

    // A device that acks once is replayed from then on without asking:
    // the token remembers.
    web.send(json!({"event": "Ack", "body": {"gid": dm, "msgId": m1, "clientMsgId": "ack"}}))
        .await;
    assert_ack(&web.recv().await, "ack");
    let mut again = Ws::connect(srv.addr).await;
    assert_ack(
        &again.login_with(rim_front_login(&tb, "again")).await,
        "again",
    );
    let replayed = again.recv().await;
    assert_eq!(replayed["body"]["msgId"], m2, "{replayed}");
    again.expect_heart_next().await;

    // Another token of the same user has not acked: no replay there.
    let fresh = srv.login("bob").await;
    let mut other = Ws::connect(srv.addr).await;
    assert_ack(
        &other.login_with(rim_front_login(&fresh, "fresh")).await,
        "fresh",
    );
    other.expect_heart_next().await;
}

/// Reads a `createTime` the way rim-front does, as local time in a zone
/// `offset_hours` east of UTC; Unix milliseconds.
fn read_as_local(create_time: &str, offset_hours: i64) -> i64 {
    let p = |r: std::ops::Range<usize>| create_time[r].parse::<i64>().unwrap();
    let (y, mo, d) = (p(0..4), p(5..7), p(8..10));
    let (h, mi, s) = (p(11..13), p(14..16), p(17..19));
    // Days from 1970-01-01 to y-mo-d (the era-based civil-date count).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + h * 3600 + mi * 60 + s) - offset_hours * 3600) * 1000
}

/// `createTime`, read as local time east of UTC by `offset_hours`, names
/// the second of `createdAt`.
fn assert_local_time(object: &Value, time: &str, at: &str, offset_hours: i64) {
    let text = object[time]
        .as_str()
        .unwrap_or_else(|| panic!("{time}: {object}"));
    let ms = object[at]
        .as_i64()
        .unwrap_or_else(|| panic!("{at}: {object}"));
    assert_eq!(
        read_as_local(text, offset_hours),
        ms.div_euclid(1000) * 1000,
        "{time} {text:?} read as UTC{offset_hours:+} is not {at} {ms}: {object}"
    );
}

#[tokio::test]
async fn times_read_as_local_time_name_the_moment_the_message_was_sent() {
    for (zone, offset) in [("Asia/Shanghai", 8), ("UTC", 0)] {
        let srv = TestServer::start_with(|c| {
            c.time_zone = rim::time::Zone::named(zone).unwrap();
        })
        .await;
        let (a, ta) = srv.user("alice").await;
        let (b, tb) = srv.user("bob").await;
        srv.befriend(&ta, b, &tb, a).await;
        let dm = srv.direct(&ta, b).await;
        let mut alice = srv.ws_login(&ta).await;
        let mut bob = Ws::connect(srv.addr).await;
        assert_ack(&bob.login_with(rim_front_login(&tb, "l")).await, "l");
        let before = rim::time::now_ms();
        let ack = alice.send_msg(dm, "just now", "a1").await;
        let after = rim::time::now_ms();
        assert_ack(&ack, "a1").unwrap();
        let at = ack["createdAt"].as_i64().expect("createdAt on the ack");
        assert!((before..=after).contains(&at), "{ack}");
        assert_local_time(&ack, "createTime", "createdAt", offset);
        let push = bob.recv().await;
        assert_local_time(&push["body"], "createTime", "createdAt", offset);
        assert_eq!(push["body"]["createdAt"], at);

        let rows = srv
            .post("/api/message/chat/list", Some(&tb), json!({}))
            .await;
        let msg = rows.assert_ok()[0]["msg"].clone();
        assert_local_time(&msg, "createTime", "createdAt", offset);
        assert_local_time(&msg, "updateTime", "updatedAt", offset);
        assert_eq!(msg["createdAt"], at);

        // Devices too: when each logged in (and was last used, once it was).
        let devices = srv.get("/api/user/sessions", Some(&tb)).await;
        for device in devices.assert_ok().as_array().expect("devices") {
            assert_local_time(device, "createTime", "createdAt", offset);
            if !device["lastUsedAt"].is_null() {
                assert_local_time(device, "lastUsedTime", "lastUsedAt", offset);
            }
        }
    }
}

#[tokio::test]
async fn a_read_sent_on_the_socket_is_counted_by_the_chat_list_asked_right_after() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    srv.befriend(&ta, b, &tb, a).await;
    let dm = srv.direct(&ta, b).await;
    let mut alice = srv.ws_login(&ta).await;
    let mut bob = Ws::connect(srv.addr).await;
    assert_ack(&bob.login_with(rim_front_login(&tb, "l")).await, "l");
    for round in 0..5 {
        let cmid = format!("a{round}");
        // Alice's socket hears Bob's read receipts too: skip to the answer.
        alice.send(msg_frame("Text", dm, "news", &cmid)).await;
        let id = assert_ack(&alice.next_answer().await, &cmid).unwrap();
        assert_eq!(bob.recv().await["body"]["msgId"], id);
        assert_eq!(unread_in(&srv, &tb, dm).await, 1);
        // rim-front: Read, and without waiting for its answer the chat list.
        let read = format!("r{round}");
        bob.send(json!({"event": "Read", "body": {"gid": dm, "msgId": id, "clientMsgId": read}}))
            .await;
        assert_eq!(
            unread_in(&srv, &tb, dm).await,
            0,
            "round {round}: the chat list did not count the Read sent before it"
        );
        assert_ack(&bob.recv().await, &read);
    }
}

impl Ws {
    /// Sends a Login frame of the caller's making and returns the answer.
    async fn login_with(&mut self, frame: Value) -> Value {
        self.send(frame).await;
        self.recv().await
    }
}
