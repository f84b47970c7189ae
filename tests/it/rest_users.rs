//! `/api/user/*` over real HTTP: registration, login, several live tokens,
//! logout, expiry, profiles and search; what the database keeps of passwords
//! and tokens; and that everything survives a restart.

use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{TestServer, create_group, eventually};

fn create_body(account: &str, password: &str) -> Value {
    json!({"account": account, "password": password})
}

async fn user_get(srv: &TestServer, token: &str, uid: u64) -> Value {
    srv.get(&format!("/api/user/get?uid={uid}"), Some(token))
        .await
        .assert_ok()
        .clone()
}

/// Opens the server's database read-only, beside the running server.
fn open_db(srv: &TestServer) -> Connection {
    Connection::open_with_flags(&srv.db_path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open db read-only")
}

#[tokio::test]
async fn create_returns_the_uid_and_the_name_defaults_to_the_account() {
    let srv = TestServer::start().await;
    let r = srv
        .post("/api/user/create", None, create_body("alice", "password-1"))
        .await;
    let alice = r.assert_ok().as_u64().expect("uid is a number");
    let r = srv
        .post(
            "/api/user/create",
            None,
            json!({"account": "bob", "password": "password-2", "name": "Bob B.", "avatar": "b.png", "email": "bob@example.org"}),
        )
        .await;
    let bob = r.assert_ok().as_u64().expect("uid is a number");
    assert_ne!(alice, bob);

    let r = srv
        .post(
            "/api/user/login",
            None,
            json!({"account": "alice", "password": "password-1"}),
        )
        .await;
    let ta = r.assert_ok().as_str().unwrap().to_owned();

    let me = user_get(&srv, &ta, alice).await;
    assert_eq!(
        me,
        json!({"id": alice, "name": "alice", "avatar": "", "email": "", "account": "alice", "password": "", "admin": true, "hideLastSeen": false, "online": false, "lastSeen": null, "lastSeenAt": null})
    );
    let other = user_get(&srv, &ta, bob).await;
    assert_eq!(
        other,
        json!({"id": bob, "name": "Bob B.", "avatar": "b.png", "email": "", "account": "bob", "password": "", "admin": false, "hideLastSeen": false, "online": false, "lastSeen": null, "lastSeenAt": null})
    );
}

#[tokio::test]
async fn a_taken_account_is_409_whatever_its_case() {
    let srv = TestServer::start().await;
    srv.register("alice").await;
    for taken in ["alice", "ALICE", "Alice", "aLiCe"] {
        let r = srv
            .post(
                "/api/user/create",
                None,
                create_body(taken, "another-password"),
            )
            .await;
        r.assert_error(409);
    }
    // The first account is untouched.
    srv.login("alice").await;
}

#[tokio::test]
async fn invalid_accounts_and_short_passwords_are_400() {
    let srv = TestServer::start().await;
    let too_long = "a".repeat(33);
    for account in [
        "",
        "ab",
        "al ice",
        "al!ce",
        "ålice",
        "a/b",
        "<script>",
        too_long.as_str(),
    ] {
        let r = srv
            .post(
                "/api/user/create",
                None,
                create_body(account, "long-enough"),
            )
            .await;
        r.assert_error(400);
    }
    for password in ["", "1234567", "seven77"] {
        let r = srv
            .post("/api/user/create", None, create_body("carol", password))
            .await;
        r.assert_error(400);
    }
    let r = srv
        .post(
            "/api/user/create",
            None,
            json!({"account": "carol", "password": "long-enough", "email": "not-an-address"}),
        )
        .await;
    r.assert_error(400);
    // Nothing of the refused attempts was created: the account is still free.
    let r = srv
        .post("/api/user/login", None, create_body("carol", "long-enough"))
        .await;
    r.assert_error(401);

    // The limits themselves are allowed: 3 and 32 characters, 8-character password.
    let longest = "b".repeat(32);
    for account in ["abc", "a_b.c-D9", longest.as_str()] {
        let r = srv
            .post("/api/user/create", None, create_body(account, "12345678"))
            .await;
        r.assert_ok();
    }
}

#[tokio::test]
async fn login_returns_a_64_hex_token() {
    let srv = TestServer::start().await;
    srv.register("alice").await;
    let t1 = srv.login("alice").await;
    let t2 = srv.login("alice").await;
    for t in [&t1, &t2] {
        assert_eq!(t.len(), 64, "{t}");
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
    }
    assert_ne!(t1, t2, "every login opens a new session");
}

#[tokio::test]
async fn wrong_password_and_unknown_account_are_the_same_401() {
    let srv = TestServer::start().await;
    srv.register("alice").await;
    let wrong = srv
        .post(
            "/api/user/login",
            None,
            json!({"account": "alice", "password": "password-bob"}),
        )
        .await;
    wrong.assert_error(401);
    let unknown = srv
        .post(
            "/api/user/login",
            None,
            json!({"account": "nobody", "password": "password-alice"}),
        )
        .await;
    unknown.assert_error(401);
    assert_eq!(
        wrong.json["msg"], unknown.json["msg"],
        "no hint whether the account exists"
    );
    let empty = srv
        .post(
            "/api/user/login",
            None,
            json!({"account": "alice", "password": ""}),
        )
        .await;
    empty.assert_error(401);
}

#[tokio::test]
async fn several_tokens_of_one_user_live_at_once() {
    let srv = TestServer::start().await;
    let uid = srv.register("alice").await;
    let t1 = srv.login("alice").await;
    let t2 = srv.login("alice").await;
    for t in [&t1, &t2] {
        let me = srv.get(&format!("/api/user/token?token={t}"), None).await;
        assert_eq!(me.assert_ok()["id"], uid);
        assert_eq!(user_get(&srv, t, uid).await["id"], uid);
    }
}

#[tokio::test]
async fn logout_revokes_only_that_token() {
    let srv = TestServer::start().await;
    let uid = srv.register("alice").await;
    let t1 = srv.login("alice").await;
    let t2 = srv.login("alice").await;
    let mut ws1 = srv.ws_login(&t1).await;
    let mut ws2 = srv.ws_login(&t2).await;

    let r = srv.post("/api/user/logout", Some(&t1), json!({})).await;
    assert_eq!(r.assert_ok(), &json!(true));

    srv.get(&format!("/api/user/get?uid={uid}"), Some(&t1))
        .await
        .assert_error(401);
    srv.get(&format!("/api/user/token?token={t1}"), None)
        .await
        .assert_error(401);
    // Logging out twice: the token is gone, so the second one is not authenticated.
    srv.post("/api/user/logout", Some(&t1), json!({}))
        .await
        .assert_error(401);
    // The WebSocket logged in with the revoked token is closed (policy), the other stays.
    assert_eq!(ws1.expect_close().await, 1008);

    assert_eq!(user_get(&srv, &t2, uid).await["id"], uid);
    // Still logged in: a message to a group that does not exist is a 404, not a 401.
    let answer = ws2.send_msg(999_999, "hello", "after-logout").await;
    assert_eq!(
        answer["code"], 404,
        "the other device is still logged in: {answer}"
    );
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let srv = TestServer::start_with(|c| c.token_ttl = Duration::from_secs(1)).await;
    let uid = srv.register("alice").await;
    let token = srv.login("alice").await;
    let issued = tokio::time::Instant::now();
    assert_eq!(user_get(&srv, &token, uid).await["id"], uid);
    // Expiry is the behaviour under test: there is no event to wait for.
    // The token's lifetime started before its login was answered (in
    // milliseconds), so it is over a second after that answer.
    tokio::time::sleep_until(issued + Duration::from_millis(1005)).await;
    srv.get(&format!("/api/user/get?uid={uid}"), Some(&token))
        .await
        .assert_error(401);
    srv.get(&format!("/api/user/token?token={token}"), None)
        .await
        .assert_error(401);
    // A new login gets a fresh token that works.
    let fresh = srv.login("alice").await;
    assert_eq!(user_get(&srv, &fresh, uid).await["id"], uid);
}

#[tokio::test]
async fn token_route_returns_the_owner() {
    let srv = TestServer::start().await;
    let (uid, token) = srv.user("alice").await;
    let r = srv
        .get(&format!("/api/user/token?token={token}"), None)
        .await;
    assert_eq!(
        r.assert_ok(),
        &json!({"id": uid, "name": "ALICE", "avatar": "", "email": "alice@example.org", "account": "alice", "password": "", "admin": true, "hideLastSeen": false})
    );
    let bad = "0".repeat(64);
    srv.get(&format!("/api/user/token?token={bad}"), None)
        .await
        .assert_error(401);
    srv.get("/api/user/token?token=garbage", None)
        .await
        .assert_error(401);
    srv.get("/api/user/token?token=", None)
        .await
        .assert_error(401);
    srv.get("/api/user/token", None).await.assert_error(400);
}

#[tokio::test]
async fn user_get_shows_the_email_only_to_its_owner() {
    let srv = TestServer::start().await;
    let (alice, ta) = srv.user("alice").await;
    let (bob, tb) = srv.user("bob").await;
    let own = user_get(&srv, &ta, alice).await;
    assert_eq!(own["email"], "alice@example.org");
    assert_eq!(own["password"], "");
    let other = user_get(&srv, &tb, alice).await;
    assert_eq!(other["email"], "");
    assert_eq!(other["password"], "");
    assert_eq!(other["account"], "alice");
    assert_eq!(other["name"], "ALICE");
    assert_eq!(user_get(&srv, &ta, bob).await["email"], "");
    srv.get("/api/user/get?uid=999999", Some(&ta))
        .await
        .assert_error(404);
    srv.get("/api/user/get", Some(&ta)).await.assert_error(400);
}

#[tokio::test]
async fn search_finds_the_exact_account_only() {
    let srv = TestServer::start().await;
    let (_, ta) = srv.user("alice").await;
    let bob = srv.register("bob").await;
    srv.register("bobby").await;
    let r = srv.get("/api/user/search?account=bob", Some(&ta)).await;
    let found = r.assert_ok();
    assert_eq!(found["id"], bob);
    assert_eq!(found["account"], "bob");
    assert_eq!(found["email"], "", "another user's email stays hidden");
    assert_eq!(found["password"], "");
    for missing in ["bo", "bobb", "nobody", "b%25"] {
        srv.get(&format!("/api/user/search?account={missing}"), Some(&ta))
            .await
            .assert_error(404);
    }
    srv.get("/api/user/search?account=", Some(&ta))
        .await
        .assert_error(400);
    srv.get("/api/user/search", Some(&ta))
        .await
        .assert_error(400);
    srv.get("/api/user/search?account=bob", None)
        .await
        .assert_error(401);
}

#[tokio::test]
async fn passwords_never_leave_the_server_and_only_hashes_are_stored() {
    let srv = TestServer::start().await;
    let (alice, ta) = srv.user("alice").await;
    let (bob, tb) = srv.user("bob").await;
    srv.befriend(&ta, bob, &tb, alice).await;
    let gid = create_group(&srv, &ta, "team", &[bob]).await;
    let login = srv
        .post(
            "/api/user/login",
            None,
            json!({"account": "alice", "password": "password-alice"}),
        )
        .await;
    let replies = [
        login,
        srv.get(&format!("/api/user/token?token={ta}"), None).await,
        srv.get(&format!("/api/user/get?uid={alice}"), Some(&ta))
            .await,
        srv.get(&format!("/api/user/get?uid={alice}"), Some(&tb))
            .await,
        srv.get("/api/user/search?account=alice", Some(&tb)).await,
        srv.get("/api/friend/list?status=1", Some(&tb)).await,
        srv.get(&format!("/api/group/user/get?gid={gid}"), Some(&ta))
            .await,
    ];
    for r in &replies {
        r.assert_ok();
        let text = r.json.to_string();
        assert!(!text.contains("password-alice"), "{text}");
        assert!(!text.contains("password-bob"), "{text}");
        assert!(!text.contains("$argon2"), "{text}");
    }

    let db = open_db(&srv);
    let mut stmt = db
        .prepare("SELECT account, password_hash FROM users")
        .unwrap();
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    for (account, hash) in &rows {
        assert!(hash.starts_with("$argon2id$"), "{account}: {hash}");
        assert!(!hash.contains(&format!("password-{account}")), "{hash}");
    }
    let argon: i64 = db
        .query_row(
            "SELECT count(*) FROM users WHERE password_hash LIKE '$argon2id$%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(argon, 2);

    let stored: Vec<Vec<u8>> = db
        .prepare("SELECT token_hash FROM sessions")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored.len(), 3, "alice logged in twice, bob once");
    for blob in &stored {
        assert_eq!(blob.len(), 32);
        assert_ne!(blob.as_slice(), ta.as_bytes());
        assert_ne!(blob.as_slice(), tb.as_bytes());
    }
    // Only the token's SHA-256 is kept, so the token is looked up by hash.
    for token in [&ta, &tb] {
        let digest = Sha256::digest(token.as_bytes()).to_vec();
        assert!(stored.contains(&digest), "the token's hash is stored");
        let clear: i64 = db
            .query_row(
                "SELECT count(*) FROM sessions WHERE CAST(token_hash AS TEXT) = ?1 OR hex(token_hash) = upper(?1)",
                [token.as_str()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(clear, 0, "the token itself is not stored");
    }
}

/// A hash made at an older cost is made again at the configured one when
/// its owner next logs in, in the background: the old and new passwords
/// hashes both open the same account, and the sessions stay.
#[tokio::test]
async fn a_login_hashes_the_password_again_at_a_new_cost() {
    let srv = TestServer::start().await;
    let (_, before) = srv.user("alice").await;
    let stored = |srv: &TestServer| -> String {
        open_db(srv)
            .query_row(
                "SELECT password_hash FROM users WHERE account = 'alice'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let old = stored(&srv);
    assert!(old.contains("$m=64,t=1,p=1$"), "{old}");
    let srv = srv
        .restart_with(|c| {
            c.hash_cost = rim::config::HashCost {
                memory_kib: 128,
                iterations: 2,
                parallelism: 1,
            }
        })
        .await;
    // A wrong password changes nothing.
    srv.post(
        "/api/user/login",
        None,
        json!({"account": "alice", "password": "not-her-password"}),
    )
    .await
    .assert_error(401);
    srv.login("alice").await;
    let renewed = eventually(Duration::from_secs(10), || async { stored(&srv) != old }).await;
    assert!(renewed, "the hash was not renewed");
    let new = stored(&srv);
    assert!(new.contains("$m=128,t=2,p=1$"), "{new}");
    srv.login("alice").await;
    srv.get(&format!("/api/user/token?token={before}"), None)
        .await
        .assert_ok();
    assert_eq!(stored(&srv), new, "a hash at the configured cost stays");
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let srv = TestServer::start().await;
    let (alice, ta) = srv.user("alice").await;
    let (bob, tb) = srv.user("bob").await;
    srv.befriend(&ta, bob, &tb, alice).await;
    let dm = srv.direct(&ta, bob).await;
    let gid = create_group(&srv, &ta, "team", &[bob]).await;
    let mut wa = srv.ws_login(&ta).await;
    let m1 = wa.send_msg(dm, "before restart", "r1").await["serverMsgId"]
        .as_u64()
        .unwrap();
    let m2 = wa.send_msg(gid, "group before restart", "r2").await["serverMsgId"]
        .as_u64()
        .unwrap();
    drop(wa);

    let srv = srv.restart().await;

    // The token still works; the password still logs in.
    let me = srv.get(&format!("/api/user/token?token={ta}"), None).await;
    assert_eq!(me.assert_ok()["id"], alice);
    srv.login("bob").await;
    let r = srv.get("/api/friend/list?status=1", Some(&tb)).await;
    assert_eq!(r.assert_ok().as_array().unwrap().len(), 1);
    assert_eq!(r.data()[0]["id"], alice);
    let groups = srv.get("/api/group/get", Some(&tb)).await;
    let ids: Vec<u64> = groups
        .assert_ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![dm, gid]);
    assert_eq!(
        srv.direct(&tb, alice).await,
        dm,
        "the direct chat is not made twice"
    );

    let r = srv
        .post("/api/message/history", Some(&tb), json!({"gid": dm}))
        .await;
    let rows = r.assert_ok().as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["msg"]["id"], m1);
    assert_eq!(rows[0]["msg"]["content"], "before restart");

    let r = srv
        .post("/api/message/chat/list", Some(&tb), json!({}))
        .await;
    let rows = r.assert_ok().as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["msg"]["id"], m2);
    assert_eq!(rows[0]["unread"], 1);
    assert_eq!(rows[1]["msg"]["id"], m1);
    assert_eq!(rows[1]["unread"], 1);

    // Bob never acknowledged the two messages: his login replays them, in order.
    let mut wb = srv.ws_login(&tb).await;
    for id in [m1, m2] {
        let push = wb.recv().await;
        assert_eq!(push["event"], "Msg", "{push}");
        assert_eq!(push["body"]["msgId"], id, "{push}");
    }
    // New ids keep growing after a restart.
    let ack = wb.send_msg(dm, "after restart", "r3").await;
    assert_eq!(ack["kind"], "Ack", "{ack}");
    assert!(ack["serverMsgId"].as_u64().unwrap() > m2, "{ack}");
}
