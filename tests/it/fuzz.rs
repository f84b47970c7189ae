//! Property-based tests of everything a client can send: frame parsing and
//! REST JSON decoding, first as functions, then against the real server.
//! The property is always the same: no panic, and exactly one well-formed
//! answer per input.

use futures_util::SinkExt;
use hyper::Method;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{TestServer, WAIT, http};

/// Arbitrary JSON, biased towards the shapes rim's frames have.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        prop_oneof![
            Just("Login"),
            Just("Msg"),
            Just("Ack"),
            Just("Read"),
            Just("Heart"),
            Just("Logout"),
            Just("Text"),
            Just("Image")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("event".to_string()),
                    Just("body".to_string()),
                    Just("kind".to_string()),
                    Just("uid".to_string()),
                    Just("gid".to_string()),
                    Just("content".to_string()),
                    Just("clientMsgId".to_string()),
                    Just("msgId".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Frame text: arbitrary JSON, or arbitrary (valid UTF-8) text.
fn frame_text() -> impl Strategy<Value = String> {
    prop_oneof![json_value().prop_map(|v| v.to_string()), ".{0,200}"]
}

#[test]
fn frame_parsing_never_panics_and_always_decides() {
    let mut runner = TestRunner::new(PropConfig {
        cases: 3000,
        failure_persistence: None,
        ..PropConfig::default()
    });
    runner
        .run(&frame_text(), |text| {
            let parsed = rim::protocol::parse_frame(&text);
            if let Err(e) = parsed.frame {
                prop_assert_eq!(e.code(), 400);
                prop_assert!(!e.message().is_empty());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn rest_body_decoding_never_panics() {
    let mut runner = TestRunner::new(PropConfig {
        cases: 3000,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let bytes = prop_oneof![
        frame_text().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..200)
    ];
    runner
        .run(&bytes, |body| {
            let decoded: Result<rim::protocol::HistoryQuery, _> = rim::protocol::decode(&body);
            if let Err(e) = decoded {
                prop_assert_eq!(e.code(), 400);
            }
            let decoded: Result<rim::protocol::GroupCreate, _> = rim::protocol::decode(&body);
            if let Err(e) = decoded {
                prop_assert_eq!(e.code(), 400);
            }
            Ok(())
        })
        .unwrap();
}

/// Generated frames over a real WebSocket: each gets exactly one answer of
/// the ack shape, and the connection keeps working.
#[tokio::test]
async fn real_server_answers_every_generated_frame_once() {
    let srv = TestServer::start().await;
    let (uid, token) = srv.user("fuzzer").await;
    let mut ws = srv.ws_login(&token).await;
    let mut runner = TestRunner::new(PropConfig {
        cases: 300,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let mut frames = Vec::new();
    for _ in 0..300 {
        let tree = frame_text().new_tree(&mut runner).unwrap();
        frames.push(tree.current());
    }
    let mut answered = 0;
    for text in &frames {
        // Login and Logout change the connection's state; keep it logged in.
        if text.contains("Logout") || text.contains("Login") {
            continue;
        }
        ws.send_text(text).await;
        let answer = ws.recv().await;
        assert!(
            answer.get("event").is_none(),
            "an answer, not a push: {answer}"
        );
        let kind = answer["kind"].as_str().unwrap_or_default();
        assert!(kind == "Ack" || kind == "Error", "{text} -> {answer}");
        assert!(answer["code"].is_u64(), "{answer}");
        assert!(answer["clientMsgId"].is_string(), "{answer}");
        answered += 1;
    }
    // No frame got a second answer, nor caused a push back to the fuzzer.
    srv.assert_nothing_before_friend_request(&[uid], &mut [&mut ws])
        .await;
    ws.send(json!({"event": "Heart", "body": {"clientMsgId": "still-alive"}}))
        .await;
    assert_eq!(ws.recv().await["clientMsgId"], "still-alive");
    eprintln!("{answered} generated frames answered once each");

    // Raw binary garbage: one 400 answer each, connection still usable.
    let mut bin_runner = TestRunner::new(PropConfig {
        cases: 50,
        failure_persistence: None,
        ..PropConfig::default()
    });
    for _ in 0..50 {
        let bytes = prop::collection::vec(any::<u8>(), 0..100)
            .new_tree(&mut bin_runner)
            .unwrap()
            .current();
        ws.stream.send(Message::binary(bytes)).await.unwrap();
        let answer = ws.recv().await;
        assert_eq!(answer["code"], 400);
    }
    // Still usable, and no frame got a second answer.
    ws.expect_heart_next().await;
}

/// Generated bodies to every POST route of the real server: always the JSON
/// wrapper with code == status, and never a 5xx.
#[tokio::test]
async fn real_server_answers_every_generated_body_with_the_wrapper() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("fuzzer").await;
    let routes: Vec<&str> = rim::rest::routes()
        .filter(|(m, _)| *m == "POST")
        .map(|(_, p)| p)
        .collect();
    let mut runner = TestRunner::new(PropConfig {
        cases: 100,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let mut tried = 0;
    for path in &routes {
        for _ in 0..40 {
            let body = frame_text().new_tree(&mut runner).unwrap().current();
            // Logging out would end the fuzzer's own session mid-run.
            if *path == "/api/user/logout" {
                continue;
            }
            let r = tokio::time::timeout(
                WAIT,
                http(
                    srv.addr,
                    Method::POST,
                    path,
                    Some(&token),
                    Some(body.clone()),
                ),
            )
            .await
            .expect("answered in time");
            assert!(r.status < 500, "{path} {body} -> {} {}", r.status, r.json);
            assert_eq!(r.json["code"], r.status, "{path} {body} -> {}", r.json);
            assert!(r.json["ok"].is_boolean());
            tried += 1;
        }
    }
    eprintln!("{tried} generated bodies over {} POST routes", routes.len());
    assert_eq!(srv.get("/healthz", None).await.status, 200);
}
