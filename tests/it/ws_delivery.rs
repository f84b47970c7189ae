//! Delivery: replay of missed messages at login (with and without a cursor,
//! bounded), Ack frames, ordering while a login races live messages, several
//! devices per user, and read receipts.

use rim::config::Synchronous;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::common::{
    TestServer, Ws, assert_ack, assert_nothing_before_marker, assert_refused, create_group,
    direct_pair, unread_in,
};

/// Reads `n` frames and asserts each is a `Msg` push; returns their msgIds.
async fn recv_msg_ids(ws: &mut Ws, n: usize) -> Vec<u64> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let push = ws.recv().await;
        assert_eq!(push["event"], "Msg", "{push}");
        ids.push(push["body"]["msgId"].as_u64().expect("msgId"));
    }
    ids
}

/// Sends `n` messages and returns their ids.
async fn send_many(ws: &mut Ws, gid: u64, prefix: &str, n: usize) -> Vec<u64> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let cmid = format!("{prefix}-{i}");
        let answer = ws.send_msg(gid, &format!("{prefix} {i}"), &cmid).await;
        ids.push(assert_ack(&answer, &cmid).expect("serverMsgId"));
    }
    ids
}

fn ack_frame(gid: u64, msg_id: u64, client_msg_id: &str) -> Value {
    json!({"event": "Ack", "body": {"gid": gid, "msgId": msg_id, "clientMsgId": client_msg_id}})
}

fn read_frame(gid: u64, msg_id: u64, client_msg_id: &str) -> Value {
    json!({"event": "Read", "body": {"kind": "Text", "gid": gid, "msgId": msg_id, "clientMsgId": client_msg_id}})
}

/// Logs in with a resume cursor and returns the answer.
async fn login_after(ws: &mut Ws, token: &str, after: u64) -> Value {
    ws.send(json!({"event": "Login", "body": {"content": token, "msgId": after, "clientMsgId": "resume"}}))
        .await;
    ws.recv().await
}

#[tokio::test]
async fn offline_messages_are_replayed_oldest_first_then_live() {
    let srv = TestServer::start().await;
    let ((a, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let sent = send_many(&mut wa, gid, "offline", 3).await;

    let mut wb = srv.ws().await;
    assert_ack(&wb.login(&tb).await, "login");
    for (i, id) in sent.iter().enumerate() {
        let push = wb.recv().await;
        assert_eq!(push["event"], "Msg", "{push}");
        assert_eq!(push["body"]["msgId"], *id, "replay out of order: {push}");
        assert_eq!(push["body"]["uid"], a, "{push}");
        assert_eq!(push["body"]["content"], format!("offline {i}"), "{push}");
        assert_eq!(
            push["body"]["clientMsgId"],
            format!("offline-{i}"),
            "{push}"
        );
    }
    let live = send_many(&mut wa, gid, "live", 1).await;
    assert_eq!(recv_msg_ids(&mut wb, 1).await, live);
    // Nothing twice: neither the live message nor the replay again.
    assert_nothing_before_marker(&mut wa, gid, &mut [&mut wb]).await;
    // The sender's own messages are not replayed to it without a cursor:
    // a marker sent after its login is the first thing it gets.
    let mut wa2 = srv.ws_login(&ta).await;
    assert_nothing_before_marker(&mut wb, gid, &mut [&mut wa2]).await;
}

#[tokio::test]
async fn acked_messages_are_not_replayed_again() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let sent = send_many(&mut wa, gid, "m", 3).await;

    // Received but never acknowledged: replayed again at the next login.
    let mut wb = srv.ws_login(&tb).await;
    assert_eq!(recv_msg_ids(&mut wb, 3).await, sent);
    drop(wb);
    let mut wb = srv.ws_login(&tb).await;
    assert_eq!(recv_msg_ids(&mut wb, 3).await, sent);

    // Acknowledge up to the second: only the third comes back.
    wb.send(ack_frame(gid, sent[1], "ack-2")).await;
    assert_eq!(assert_ack(&wb.recv().await, "ack-2"), Some(sent[1]));
    drop(wb);
    let mut wb = srv.ws_login(&tb).await;
    assert_eq!(recv_msg_ids(&mut wb, 1).await, [sent[2]]);
    // The replay is over. (A marker message would be replayed at the logins
    // below; nobody sends meanwhile, so the replay is all that could come.)
    wb.expect_heart_next().await;

    // Acknowledge everything (an older Ack after it changes nothing): nothing comes back.
    wb.send(ack_frame(gid, sent[2], "ack-3")).await;
    assert_eq!(assert_ack(&wb.recv().await, "ack-3"), Some(sent[2]));
    wb.send(ack_frame(gid, sent[0], "ack-1")).await;
    assert_eq!(assert_ack(&wb.recv().await, "ack-1"), Some(sent[0]));
    drop(wb);
    let mut wb = srv.ws_login(&tb).await;
    wb.expect_heart_next().await;

    // What arrives while offline afterwards is replayed, and only that.
    drop(wb);
    let later = send_many(&mut wa, gid, "later", 2).await;
    let mut wb = srv.ws_login(&tb).await;
    assert_eq!(recv_msg_ids(&mut wb, 2).await, later);
    assert_nothing_before_marker(&mut wa, gid, &mut [&mut wb]).await;
}

#[tokio::test]
async fn ack_of_a_foreign_message_is_refused() {
    let srv = TestServer::start().await;
    let ((_, ta), (c, tc), direct) = direct_pair(&srv, "alice", "carol").await;
    let (b, tb) = srv.user("bob").await;
    let bob_group = create_group(&srv, &tb, "bob's", &[]).await;
    let ab = create_group(&srv, &ta, "ab", &[b]).await;
    let mut wa = srv.ws_login(&ta).await;
    let foreign = send_many(&mut wa, direct, "to carol", 1).await[0];
    let mut wb = srv.ws_login(&tb).await;

    // A message of another conversation, a conversation bob is not in, no such message.
    let cases = [
        (ab, foreign, 404),
        (direct, foreign, 403),
        (ab, foreign + 1000, 404),
    ];
    for (i, (gid, msg_id, code)) in cases.into_iter().enumerate() {
        let cmid = format!("ack-{i}");
        wb.send(ack_frame(gid, msg_id, &cmid)).await;
        let answer = wb.recv().await;
        assert_refused(&answer, code);
        assert_eq!(answer["clientMsgId"], cmid.as_str(), "{answer}");
    }
    // Claiming to acknowledge for someone else.
    wb.send(json!({"event": "Ack", "body": {"uid": c, "gid": bob_group, "msgId": foreign, "clientMsgId": "x"}}))
        .await;
    assert_refused(&wb.recv().await, 403);
    // Carol still gets the message replayed: nobody acknowledged it for her.
    let mut wc = srv.ws_login(&tc).await;
    assert_eq!(recv_msg_ids(&mut wc, 1).await, [foreign]);
}

#[tokio::test]
async fn login_with_a_cursor_replays_everything_after_it() {
    let srv = TestServer::start().await;
    let ((_, ta), (b, tb), direct) = direct_pair(&srv, "alice", "bob").await;
    let (c, tc) = srv.user("carol").await;
    srv.befriend(&tc, b, &tb, c).await;
    let group = create_group(&srv, &tc, "bc", &[b]).await;
    let not_bobs = create_group(&srv, &tc, "ac", &[]).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let mut wc = srv.ws_login(&tc).await;

    // Bob's device sees and acknowledges everything sent to him.
    let m1 = send_many(&mut wa, direct, "a", 1).await[0];
    assert_eq!(recv_msg_ids(&mut wb, 1).await, [m1]);
    wb.send(ack_frame(direct, m1, "ack")).await;
    assert_ack(&wb.recv().await, "ack");
    let m2 = send_many(&mut wb, direct, "b", 1).await[0];
    let m3 = send_many(&mut wc, not_bobs, "c-alone", 1).await[0];
    let m4 = send_many(&mut wc, group, "c", 1).await[0];
    assert_eq!(recv_msg_ids(&mut wb, 1).await, [m4]);
    wb.send(ack_frame(group, m4, "ack")).await;
    assert_ack(&wb.recv().await, "ack");
    let m5 = send_many(&mut wb, group, "b-group", 1).await[0];
    // So without a cursor nothing is replayed... (Nobody sends from here
    // on, so a replay is all these logins could get, and a Heart's ack
    // coming next shows it was empty; a marker message would be replayed by
    // the cursors below.)
    let mut plain = srv.ws_login(&tb).await;
    plain.expect_heart_next().await;

    // ...but a cursor asks for everything after it in bob's conversations,
    // his own messages included, in order.
    let mut fresh = srv.ws().await;
    assert_ack(&login_after(&mut fresh, &tb, m1).await, "resume");
    assert_eq!(recv_msg_ids(&mut fresh, 3).await, [m2, m4, m5]);
    fresh.expect_heart_next().await;

    let mut from_start = srv.ws().await;
    assert_ack(&login_after(&mut from_start, &tb, 0).await, "resume");
    assert_eq!(recv_msg_ids(&mut from_start, 4).await, [m1, m2, m4, m5]);
    from_start.expect_heart_next().await;

    let mut up_to_date = srv.ws().await;
    assert_ack(&login_after(&mut up_to_date, &tb, m5).await, "resume");
    up_to_date.expect_heart_next().await;
    assert!(
        m3 < m4,
        "carol's private message sits inside the replayed range"
    );
}

#[tokio::test]
async fn replay_stops_at_the_limit_and_says_so() {
    let srv = TestServer::start_with(|c| c.replay_limit = 5).await;
    let ((_, ta), (b, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let sent = send_many(&mut wa, gid, "m", 8).await;

    let mut wb = srv.ws_login(&tb).await;
    assert_eq!(recv_msg_ids(&mut wb, 5).await, sent[..5]);
    let note = wb.recv().await;
    assert_eq!(note["event"], "Notify", "{note}");
    assert_eq!(note["body"]["kind"], "ReplayTruncated", "{note}");
    assert_eq!(note["body"]["msgId"], sent[4], "{note}");
    assert_eq!(note["body"]["uid"], b, "{note}");
    // The replay is over (a marker message would be replayed below).
    wb.expect_heart_next().await;

    // Acknowledging what arrived lets the next login continue where this one stopped.
    wb.send(ack_frame(gid, sent[4], "ack")).await;
    assert_ack(&wb.recv().await, "ack");
    drop(wb);
    let mut wb = srv.ws_login(&tb).await;
    assert_eq!(recv_msg_ids(&mut wb, 3).await, sent[5..]);
    assert_nothing_before_marker(&mut wa, gid, &mut [&mut wb]).await;
}

#[tokio::test]
async fn order_holds_when_live_messages_race_a_login() {
    // One read connection: logins arriving together queue for their replay
    // read, so live messages keep being committed and pushed between a
    // login's registration and its replay snapshot, the window where a
    // message could be delivered twice or out of order.
    // Commits without fsync make the stream fast enough to hit that window.
    let srv = TestServer::start_with(|c| {
        c.read_connections = 1;
        c.synchronous = Synchronous::Normal;
    })
    .await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut all = send_many(&mut wa, gid, "backlog", 200).await;

    let (started_tx, started) = oneshot::channel();
    let sender = tokio::spawn(async move {
        let mut started_tx = Some(started_tx);
        let mut ids = Vec::new();
        for i in 0..300 {
            let cmid = format!("live-{i}");
            let answer = wa.send_msg(gid, &format!("live {i}"), &cmid).await;
            ids.push(assert_ack(&answer, &cmid).unwrap());
            if i == 2 {
                let _ = started_tx.take().unwrap().send(());
            }
        }
        ids
    });
    started.await.unwrap();
    // Bob's devices all log in at once while alice's stream flows. Bob never
    // acknowledges, so each must get every message exactly once, in order.
    let mut devices = Vec::new();
    for _ in 0..8 {
        devices.push(srv.ws().await);
    }
    for ws in &mut devices {
        ws.send(json!({"event": "Login", "body": {"content": tb, "replay": true, "clientMsgId": "login"}}))
            .await;
    }
    all.extend(sender.await.unwrap());
    for (n, ws) in devices.iter_mut().enumerate() {
        assert_ack(&ws.recv().await, "login");
        let got = recv_msg_ids(ws, all.len()).await;
        if let Some(at) = got.iter().zip(&all).position(|(g, w)| g != w) {
            let from = at.saturating_sub(3);
            panic!(
                "device {n}: messages missing, duplicated or out of order at #{at}: got {:?}, want {:?}",
                &got[from..(at + 4).min(got.len())],
                &all[from..(at + 4).min(all.len())]
            );
        }
    }
    // Nothing more on any device: a marker from another of alice's
    // connections is next everywhere.
    let mut marker = srv.ws_login(&ta).await;
    let mut quiet: Vec<&mut Ws> = devices.iter_mut().collect();
    assert_nothing_before_marker(&mut marker, gid, &mut quiet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_are_pushed_in_id_order() {
    // Several worker threads, as in production: the senders' tasks run in
    // parallel, and a reader must still see the conversation in id order.
    let srv = TestServer::start_with(|c| c.synchronous = Synchronous::Normal).await;
    let (_, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    let (c, tc) = srv.user("carol").await;
    let gid = create_group(&srv, &ta, "busy", &[b, c]).await;
    let mut reader = srv.ws_login(&tb).await;
    let mut senders = Vec::new();
    for token in [ta, tc] {
        let mut ws = srv.ws_login(&token).await;
        senders.push(tokio::spawn(async move {
            for i in 0..200 {
                let cmid = format!("n{i}");
                ws.send(json!({"event": "Msg", "body": {"kind": "Text", "gid": gid, "content": "x", "clientMsgId": cmid}}))
                    .await;
                // The other sender's pushes arrive here too; skip to the answer.
                let mut answer = ws.recv().await;
                while answer.get("event").is_some() {
                    answer = ws.recv().await;
                }
                assert_ack(&answer, &cmid);
            }
        }));
    }
    let got = recv_msg_ids(&mut reader, 400).await;
    for sender in senders {
        sender.await.unwrap();
    }
    let inversions: Vec<_> = got.windows(2).filter(|w| w[0] >= w[1]).collect();
    assert!(
        inversions.is_empty(),
        "{} pushes out of id order, e.g. {:?}",
        inversions.len(),
        inversions[0]
    );
}

#[tokio::test]
async fn every_device_of_a_user_receives_pushes() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut devices = vec![
        srv.ws_login(&tb).await,
        srv.ws_login(&tb).await,
        srv.ws_login(&tb).await,
    ];

    let id = send_many(&mut wa, gid, "all", 1).await;
    for ws in &mut devices {
        assert_eq!(recv_msg_ids(ws, 1).await, id);
    }
    // A device that vanishes without Logout does not disturb the others.
    drop(devices.remove(0));
    let id = send_many(&mut wa, gid, "rest", 1).await;
    for ws in &mut devices {
        assert_eq!(recv_msg_ids(ws, 1).await, id);
    }
    let mut last = devices.pop().unwrap();
    drop(devices);
    let id = send_many(&mut wa, gid, "last", 1).await;
    assert_eq!(recv_msg_ids(&mut last, 1).await, id);
}

#[tokio::test]
async fn read_marks_read_and_tells_the_other_members() {
    let srv = TestServer::start().await;
    let ((_, ta), (b, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut phone = srv.ws_login(&tb).await;
    let mut laptop = srv.ws_login(&tb).await;
    let sent = send_many(&mut wa, gid, "unread", 2).await;
    assert_eq!(recv_msg_ids(&mut phone, 2).await, sent);
    assert_eq!(recv_msg_ids(&mut laptop, 2).await, sent);
    assert_eq!(unread_in(&srv, &tb, gid).await, 2);

    for (upto, unread) in [(sent[0], 1), (sent[1], 0)] {
        phone.send(read_frame(gid, upto, "r")).await;
        assert_eq!(assert_ack(&phone.recv().await, "r"), Some(upto));
        assert_eq!(unread_in(&srv, &tb, gid).await, unread);
        // The sender learns it was read; so does bob's other device.
        for ws in [&mut wa, &mut laptop] {
            let push = ws.recv().await;
            assert_eq!(push["event"], "Read", "{push}");
            assert_eq!(push["body"]["kind"], "Read", "{push}");
            assert_eq!(push["body"]["uid"], b, "{push}");
            assert_eq!(push["body"]["gid"], gid, "{push}");
            assert_eq!(push["body"]["msgId"], upto, "{push}");
        }
    }
    // The reader's own connection was not told: a marker (in a conversation
    // of its own, so that it leaves this one's unread counts alone) is next.
    let markers = create_group(&srv, &ta, "markers", &[b]).await;
    assert_nothing_before_marker(&mut wa, markers, &mut [&mut phone]).await;
    // Reading an older message again never makes anything unread.
    phone.send(read_frame(gid, sent[0], "r-old")).await;
    assert_ack(&phone.recv().await, "r-old");
    assert_eq!(unread_in(&srv, &tb, gid).await, 0);
    assert_eq!(unread_in(&srv, &ta, gid).await, 0);
}

#[tokio::test]
async fn a_read_that_does_not_move_the_mark_is_answered_but_neither_stored_nor_pushed() {
    let srv = TestServer::start().await;
    let ((_, ta), (b, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut phone = srv.ws_login(&tb).await;
    let mut laptop = srv.ws_login(&tb).await;
    let sent = send_many(&mut wa, gid, "unread", 2).await;
    assert_eq!(recv_msg_ids(&mut phone, 2).await, sent);
    assert_eq!(recv_msg_ids(&mut laptop, 2).await, sent);
    phone.send(read_frame(gid, sent[1], "r")).await;
    assert_eq!(assert_ack(&phone.recv().await, "r"), Some(sent[1]));
    for ws in [&mut wa, &mut laptop] {
        assert_eq!(ws.recv().await["event"], "Read");
    }
    // The same mark again, and an older one, many times over.
    let jobs = srv.app().db.writer_stats().jobs;
    for i in 0..50 {
        let upto = sent[i % 2];
        let id = format!("again-{i}");
        phone.send(read_frame(gid, upto, &id)).await;
        assert_eq!(assert_ack(&phone.recv().await, &id), Some(upto));
    }
    assert_eq!(
        srv.app().db.writer_stats().jobs,
        jobs,
        "a read that moves nothing is no write"
    );
    // Nobody was told: a marker in a conversation of its own is next.
    let markers = create_group(&srv, &ta, "markers", &[b]).await;
    assert_nothing_before_marker(&mut wa, markers, &mut [&mut phone, &mut laptop]).await;
    assert_eq!(unread_in(&srv, &tb, gid).await, 0);
}

#[tokio::test]
async fn non_message_frames_over_the_connection_limit_get_429_and_the_connection_stays() {
    let srv = TestServer::start_with(|c| {
        c.rate_limits.frames_per_second = 1;
        c.rate_limits.frame_burst = 5;
    })
    .await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let sent = send_many(&mut wa, gid, "m", 1).await[0];
    assert_eq!(recv_msg_ids(&mut wb, 1).await, [sent]);
    // The Login took one of five; four more pass, whatever they are, then
    // 429s (a refill a second may let one more through on a slow machine).
    let mut codes = Vec::new();
    for i in 0..12 {
        let id = format!("f{i}");
        let frame = match i % 3 {
            0 => json!({"event": "Heart", "body": {"clientMsgId": id}}),
            1 => read_frame(gid, sent, &id),
            _ => ack_frame(gid, sent, &id),
        };
        wb.send(frame).await;
        let answer = wb.recv().await;
        assert_eq!(answer["clientMsgId"], id.as_str(), "{answer}");
        codes.push(answer["code"].as_u64().unwrap_or(0));
    }
    let passed = codes.iter().filter(|c| **c == 200).count();
    assert!((4..12).contains(&passed), "{codes:?}");
    assert!(codes[..4].iter().all(|c| *c == 200), "{codes:?}");
    assert_eq!(
        codes.iter().filter(|c| **c == 429).count(),
        12 - passed,
        "{codes:?}"
    );
    // Unusable frames count too, and are answered 429 alike.
    wb.send_text("{not json").await;
    assert_refused(&wb.recv().await, 429);
    // Messages have a limit of their own, and the connection is still up:
    // bob's message reaches alice.
    let answer = wb.send_msg(gid, "still here", "s1").await;
    assert_ack(&answer, "s1");
    // (After the push of the one Read that moved bob's mark.)
    assert_eq!(wa.recv().await["event"], "Read");
    assert_eq!(wa.recv().await["body"]["content"], "still here");
}

#[tokio::test]
async fn read_of_a_message_outside_the_group_is_refused() {
    let srv = TestServer::start().await;
    let ((a, ta), (_, tb), direct) = direct_pair(&srv, "alice", "bob").await;
    let (c, _) = srv.user("carol").await;
    let ac = create_group(&srv, &ta, "ac", &[c]).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let theirs = send_many(&mut wa, ac, "not for bob", 1).await[0];
    let mine = send_many(&mut wa, direct, "for bob", 1).await[0];
    assert_eq!(recv_msg_ids(&mut wb, 1).await, [mine]);

    let cases = [
        (direct, theirs, 404),
        (direct, mine + 1000, 404),
        (ac, theirs, 403),
    ];
    for (gid, msg_id, code) in cases {
        wb.send(read_frame(gid, msg_id, "bad-read")).await;
        let answer = wb.recv().await;
        assert_refused(&answer, code);
        assert_eq!(answer["clientMsgId"], "bad-read");
    }
    // No read receipt for alice: a marker (in a conversation of its own,
    // which leaves the unread counts of these alone) is her next frame.
    let markers = create_group(&srv, &tb, "markers", &[a]).await;
    assert_nothing_before_marker(&mut wb, markers, &mut [&mut wa]).await;
    assert_eq!(unread_in(&srv, &tb, direct).await, 1);
}
