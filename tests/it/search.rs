//! Full-text search over the real server: mixed-language messages (accents
//! folded, Chinese, Japanese and Korean without spaces), only the caller's
//! conversations, ranking and paging, snippets, query text that looks like
//! FTS5 syntax, and messages indexed at start-up.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::{TestServer, Ws, assert_ack, create_group, direct_pair, msg_frame, url_encode};

/// `GET /api/message/search` as `token`; the answer's rows.
async fn search(srv: &TestServer, token: &str, q: &str, extra: &str) -> Vec<Value> {
    let r = srv
        .get(
            &format!("/api/message/search?q={}{extra}", url_encode(q)),
            Some(token),
        )
        .await;
    r.assert_ok().as_array().expect("rows").clone()
}

/// The contents of the messages a search finds, best first.
async fn found(srv: &TestServer, token: &str, q: &str) -> Vec<String> {
    search(srv, token, q, "")
        .await
        .iter()
        .map(|row| row["msg"]["content"].as_str().unwrap().to_owned())
        .collect()
}

async fn say(ws: &mut Ws, gid: u64, text: &str, cmid: &str) -> u64 {
    ws.send(msg_frame("Text", gid, text, cmid)).await;
    assert_ack(&ws.recv().await, cmid).expect("message id")
}

const MESSAGES: &[&str] = &[
    "Let's meet at the Café Rouge tomorrow",
    "wifi密码是1234",
    "パスワードは1234です",
    "Der Schlüssel liegt unter der Fußmatte",
    "비밀번호는 5678입니다",
    "Пароль от роутера: qwerty",
    "the cafe on the corner is closed",
    "我们明天去北京",
];

#[tokio::test]
async fn mixed_languages_are_found_word_by_word() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut ws = srv.ws_login(&ta).await;
    for (i, m) in MESSAGES.iter().enumerate() {
        say(&mut ws, gid, m, &format!("m{i}")).await;
    }
    let m = |i: usize| MESSAGES[i].to_owned();
    let set = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();

    // Accents and case folded both ways.
    assert_eq!(set(found(&srv, &tb, "cafe").await), set(vec![m(0), m(6)]));
    assert_eq!(set(found(&srv, &tb, "CAFÉ").await), set(vec![m(0), m(6)]));
    assert_eq!(found(&srv, &tb, "rouge cafe").await, vec![m(0)]);
    assert_eq!(found(&srv, &tb, "schlussel").await, vec![m(3)]);
    assert_eq!(found(&srv, &tb, "Schlüssel fußmatte").await, vec![m(3)]);
    // Cyrillic, case folded.
    assert_eq!(found(&srv, &tb, "ПАРОЛЬ").await, vec![m(5)]);
    // Chinese without spaces: a two-character word, a single character, a
    // longer phrase; and what is not there.
    assert_eq!(found(&srv, &tb, "密码").await, vec![m(1)]);
    assert_eq!(found(&srv, &tb, "码").await, vec![m(1)]);
    assert_eq!(found(&srv, &tb, "明天去北京").await, vec![m(7)]);
    assert_eq!(found(&srv, &tb, "北京").await, vec![m(7)]);
    assert!(found(&srv, &tb, "密北").await.is_empty());
    assert!(
        found(&srv, &tb, "京北").await.is_empty(),
        "order matters in a run"
    );
    // Mixed scripts in one query word.
    assert_eq!(found(&srv, &tb, "wifi密码").await, vec![m(1)]);
    // Japanese (katakana, hiragana) and Korean.
    assert_eq!(found(&srv, &tb, "パスワード").await, vec![m(2)]);
    assert_eq!(found(&srv, &tb, "비밀번호").await, vec![m(4)]);
    // Digits next to CJK are words of their own.
    assert_eq!(set(found(&srv, &tb, "1234").await), set(vec![m(1), m(2)]));
    assert!(found(&srv, &tb, "12").await.is_empty(), "whole words only");
}

#[tokio::test]
async fn a_search_never_leaves_the_callers_conversations() {
    let srv = TestServer::start().await;
    let ((ua, ta), (ub, tb), direct) = direct_pair(&srv, "alice", "bob").await;
    let (uc, tc) = srv.user("carol").await;
    let (_, td) = srv.user("dave").await;
    let club = create_group(&srv, &ta, "club", &[ub, uc]).await;
    let mut ws = srv.ws_login(&ta).await;
    say(&mut ws, direct, "the secret password is swordfish", "d1").await;
    say(&mut ws, club, "club password is hunter2", "c1").await;

    assert_eq!(search(&srv, &tb, "password", "").await.len(), 2);
    let carol = found(&srv, &tc, "password").await;
    assert_eq!(carol, vec!["club password is hunter2"]);
    assert!(found(&srv, &tc, "swordfish").await.is_empty());
    assert!(found(&srv, &td, "password").await.is_empty());
    // Within one conversation: only that one, and only for its members.
    let rows = search(&srv, &tb, "password", &format!("&gid={direct}")).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["group"]["id"], direct);
    assert_eq!(rows[0]["user"]["id"], ua);
    assert_eq!(
        rows[0]["user"]["email"], "",
        "other people's emails stay hidden"
    );
    let r = srv
        .get(
            &format!("/api/message/search?q=password&gid={direct}"),
            Some(&tc),
        )
        .await;
    r.assert_error(403);
    srv.get("/api/message/search?q=password&gid=999", Some(&tc))
        .await
        .assert_error(404);
    srv.get("/api/message/search?q=password", None)
        .await
        .assert_error(401);
    // Removed from the club: its messages are gone from her results.
    srv.post(
        "/api/group/user/change",
        Some(&ta),
        json!({"gid": club, "uids": [uc], "opType": 2}),
    )
    .await
    .assert_ok();
    assert!(found(&srv, &tc, "password").await.is_empty());
}

#[tokio::test]
async fn results_are_ranked_then_newest_first_and_paged() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut ws = srv.ws_login(&ta).await;
    let long = say(
        &mut ws,
        gid,
        "we could have pizza tonight or try that new place everyone talks about",
        "r1",
    )
    .await;
    let twice = say(&mut ws, gid, "pizza pizza", "r2").await;
    let short = say(&mut ws, gid, "pizza?", "r3").await;
    let rows = search(&srv, &tb, "pizza", "").await;
    let ids: Vec<u64> = rows
        .iter()
        .map(|r| r["msg"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![twice, short, long],
        "BM25: frequency, then length"
    );

    // Equal scores: newest first. 25 identical messages, paged by 10.
    let mut sent = Vec::new();
    for i in 0..25 {
        sent.push(say(&mut ws, gid, "same old story", &format!("s{i}")).await);
    }
    let mut seen = Vec::new();
    for page in 1..=4 {
        let rows = search(&srv, &tb, "story", &format!("&page={page}&size=10")).await;
        assert_eq!(rows.len(), [10, 10, 5, 0][page - 1], "page {page}");
        seen.extend(rows.iter().map(|r| r["msg"]["id"].as_u64().unwrap()));
    }
    sent.reverse();
    assert_eq!(seen, sent, "newest first, every message once");

    // Paging parameters are checked like everywhere else.
    for bad in ["&size=0", "&size=101", "&page=0", "&page=x", "&gid=x"] {
        srv.get(&format!("/api/message/search?q=story{bad}"), Some(&tb))
            .await
            .assert_error(400);
    }
}

#[tokio::test]
async fn snippets_mark_the_hits_and_stay_plain_text() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut ws = srv.ws_login(&ta).await;
    let long = format!(
        "{} and then Dad said the Wi-Fi password is «garden» {}",
        "blah ".repeat(40),
        "more ".repeat(40)
    );
    say(&mut ws, gid, &long, "p1").await;
    ws.send(msg_frame(
        "RichText",
        gid,
        "<b>bye</b> <script>x()</script>",
        "p2",
    ))
    .await;
    assert_ack(&ws.recv().await, "p2");

    let rows = search(&srv, &tb, "wifi password", "").await;
    assert!(rows.is_empty(), "wi-fi is two words, wifi one");
    let rows = search(&srv, &tb, "wi-fi password", "").await;
    let snippet = rows[0]["snippet"].as_str().unwrap();
    assert!(
        snippet.starts_with('…') && snippet.ends_with('…'),
        "{snippet}"
    );
    assert!(
        snippet.contains("the «Wi-Fi» «password» is ‹garden›"),
        "{snippet}"
    );
    assert_eq!(
        rows[0]["msg"]["content"], long,
        "the message itself is whole"
    );

    // RichText is searched, and quoted, without its markup.
    let rows = search(&srv, &tb, "bye", "").await;
    assert_eq!(rows[0]["snippet"], "«bye» x()");
    assert_eq!(rows[0]["msg"]["content"], "<b>bye</b> <script>x()</script>");
    assert!(
        found(&srv, &tb, "script").await.is_empty(),
        "tags are not words"
    );

    // A File message is found by its name.
    let file = srv
        .upload_ok(&ta, "tax-return-2025.pdf", "application/pdf", b"%PDF-1.4\n")
        .await;
    ws.send(msg_frame(
        "File",
        gid,
        &json!({"fileId": file, "name": "tax-return-2025.pdf"}).to_string(),
        "p3",
    ))
    .await;
    assert_ack(&ws.recv().await, "p3");
    let rows = search(&srv, &tb, "tax return", "").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["msg"]["kind"], 3);
    assert_eq!(rows[0]["snippet"], "«tax»-«return»-2025.pdf");
}

#[tokio::test]
async fn query_text_is_text_never_search_syntax() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut ws = srv.ws_login(&ta).await;
    say(
        &mut ws,
        gid,
        "cats and dogs, NEAR the body: a (small) \"quote\"",
        "q1",
    )
    .await;
    say(&mut ws, gid, "cats only", "q2").await;
    // Words FTS5 would read as operators are words here: "and" must occur.
    assert_eq!(found(&srv, &tb, "cats AND dogs").await.len(), 1);
    assert_eq!(found(&srv, &tb, "cats OR dogs").await.len(), 0);
    assert_eq!(found(&srv, &tb, "NEAR (small)").await.len(), 1);
    assert_eq!(
        found(&srv, &tb, "NEAR(cats dogs)").await.len(),
        0,
        "\"near cats\" is a phrase"
    );
    assert_eq!(found(&srv, &tb, "body:").await.len(), 1);
    for q in [
        "\"",
        "\"cats",
        "*",
        "cats*",
        "^cats",
        "-dogs",
        "(",
        ")",
        "{body}: cats",
        "scope:g1",
        "NOT",
        "a\"b",
        "'",
        ":",
        "+",
        "NEAR(",
        "\u{0}",
        "💥",
        "......",
    ] {
        let r = srv
            .get(
                &format!("/api/message/search?q={}", url_encode(q)),
                Some(&tb),
            )
            .await;
        assert_eq!(r.status, 200, "q={q:?}: {}", r.json);
    }
    // scope tokens belong to the index, not to the words.
    assert!(found(&srv, &tb, &format!("g{gid}")).await.is_empty());
    // Bad queries are 400s that say why.
    for path in [
        "/api/message/search",
        "/api/message/search?q=",
        "/api/message/search?q=%20%20",
    ] {
        srv.get(path, Some(&tb)).await.assert_error(400);
    }
    let long = "x".repeat(300);
    srv.get(&format!("/api/message/search?q={long}"), Some(&tb))
        .await
        .assert_error(400);
    srv.get("/api/message/search?q=a+b+c+d+e+f+g+h+i", Some(&tb))
        .await
        .assert_error(400);
}

/// Stores messages `(gid, uid, text)` straight into the running server's
/// file, in one transaction, as a bulk load (or a database from before the
/// index) would: the server indexes them when it next starts.
fn write_behind_the_servers_back(srv: &TestServer, rows: impl Iterator<Item = (u64, u64, String)>) {
    let conn = rusqlite::Connection::open(&srv.db_path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    conn.execute_batch("PRAGMA synchronous = OFF;").unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO messages (gid, uid, kind, content, client_msg_id, created_at, updated_at)
                 VALUES (?1, ?2, 0, ?3, '', 0, 0)",
            )
            .unwrap();
        for (gid, uid, text) in rows {
            stmt.execute(rusqlite::params![gid, uid, text]).unwrap();
        }
    }
    tx.commit().unwrap();
}

#[tokio::test]
async fn messages_written_behind_the_servers_back_are_indexed_at_start() {
    let srv = TestServer::start().await;
    let ((ua, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut ws = srv.ws_login(&ta).await;
    say(&mut ws, gid, "written by the server", "w1").await;
    drop(ws);
    // A bulk load straight into the file (as `rim-bench` does) bypasses
    // the index...
    let rows = ["bulk loaded 北京", "another bulk row"].map(|t| (gid, ua, t.to_owned()));
    write_behind_the_servers_back(&srv, rows.into_iter());
    assert!(found(&srv, &tb, "bulk").await.is_empty());
    // ...until the server starts on it again.
    let srv = srv.restart().await;
    let tb = srv.login("bob").await;
    assert_eq!(found(&srv, &tb, "bulk").await.len(), 2);
    assert_eq!(found(&srv, &tb, "北京").await, vec!["bulk loaded 北京"]);
    assert_eq!(found(&srv, &tb, "server").await.len(), 1, "nothing twice");
}

/// A user and the conversations they made, alone in each.
struct Owner {
    uid: u64,
    token: String,
    gids: Vec<u64>,
}

/// Carol and Dave, each with `n` conversations of their own, made in turn
/// (so that neither's ids are one block).
async fn carol_and_dave(srv: &TestServer, n: usize) -> (Owner, Owner) {
    let (uc, tc) = srv.user("carol").await;
    let (ud, td) = srv.user("dave").await;
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..n {
        mine.push(create_group(srv, &tc, &format!("carol {i}"), &[]).await);
        theirs.push(create_group(srv, &td, &format!("dave {i}"), &[]).await);
    }
    let owner = |uid, token, gids| Owner { uid, token, gids };
    (owner(uc, tc, mine), owner(ud, td, theirs))
}

/// Someone in more conversations than are named in one FTS5 query: every
/// search still keeps to theirs, newest first among equals, whether their
/// conversations hold few of a word's matches, most of them, or none.
#[tokio::test]
async fn a_member_of_many_conversations_finds_only_their_own() {
    let srv = TestServer::start().await;
    let ((ua, _), _, others) = direct_pair(&srv, "alice", "bob").await;
    let (uc, tc) = srv.user("carol").await;
    let mut mine = Vec::new();
    for i in 0..70 {
        mine.push(create_group(&srv, &tc, &format!("carol {i}"), &[]).await);
    }
    // Written straight into the file (as `rim-bench` does) and indexed at
    // the restart: thousands of messages, oldest first. Carol's "secret"
    // ones are older than the 4,500 of Alice and Bob's, so that the newest
    // matches anywhere are not hers; "common" is mostly hers.
    let mut rows: Vec<(u64, u64, String)> = Vec::new();
    for (i, gid) in mine.iter().enumerate().take(3) {
        rows.push((*gid, uc, format!("carol secret {i}")));
    }
    for i in 0..1_200 {
        rows.push((mine[i % mine.len()], uc, format!("common {i}")));
    }
    for i in 0..4_500 {
        rows.push((others, ua, format!("secret common other {i}")));
    }
    {
        let mut conn = rusqlite::Connection::open(&srv.db_path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        let tx = conn.transaction().unwrap();
        for (i, (gid, uid, text)) in rows.iter().enumerate() {
            tx.execute(
                "INSERT INTO messages (gid, uid, kind, content, client_msg_id, created_at, updated_at)
                 VALUES (?1, ?2, 0, ?3, ?4, 0, 0)",
                rusqlite::params![gid, uid, text, format!("many{i}")],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let srv = srv.restart().await;
    let tc = srv.login("carol").await;
    let ta = srv.login("alice").await;

    // None of the 4,500 newest "secret" matches is hers: only her three,
    // newest first.
    let secret: Vec<String> = (0..3).rev().map(|i| format!("carol secret {i}")).collect();
    assert_eq!(found(&srv, &tc, "secret").await, secret);
    let rows = search(&srv, &tc, "secret", "&size=100").await;
    assert!(
        rows.iter()
            .all(|r| mine.contains(&r["group"]["id"].as_u64().unwrap()))
    );
    // A word only other people's conversations hold: nothing.
    assert!(found(&srv, &tc, "other").await.is_empty());
    // Her conversations hold 1,200 of the 5,700 "common" matches, older
    // than the rest: her newest 100, in order, and nobody else's.
    let rows = search(&srv, &tc, "common", "&size=100").await;
    let expect: Vec<String> = (1_100..1_200)
        .rev()
        .map(|i| format!("common {i}"))
        .collect();
    let got: Vec<String> = rows
        .iter()
        .map(|r| r["msg"]["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, expect);
    // Alice, in one conversation, finds only hers; and one conversation
    // of Carol's alone is searched as before.
    let rows = search(&srv, &ta, "secret", "&size=100").await;
    assert_eq!(rows.len(), 100);
    assert!(rows.iter().all(|r| r["group"]["id"] == others));
    let rows = search(&srv, &tc, "secret", &format!("&gid={}", mine[1])).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["msg"]["content"], "carol secret 1");
}

/// Someone in more conversations than were once named in one FTS5 query
/// (64), but in fewer than half of the server's (so that the query names
/// them all): phrases, Chinese bigram phrases and single characters keep to
/// their conversations, and an edit or deletion moves the message's words
/// in the index, all over messages sent through the server.
#[tokio::test]
async fn a_member_of_many_conversations_keeps_phrases_cjk_and_edits_scoped() {
    let srv = TestServer::start().await;
    let ((_, ta), _, others) = direct_pair(&srv, "alice", "bob").await;
    let (carol, _) = carol_and_dave(&srv, 70).await;
    let (tc, mine) = (carol.token, carol.gids);
    let mut wa = srv.ws_login(&ta).await;
    for (i, text) in [
        "the Wi-Fi is down",
        "wifi密码是1234",
        "密钥 in the drawer",
        "we hid the wombat",
    ]
    .iter()
    .enumerate()
    {
        say(&mut wa, others, text, &format!("a{i}")).await;
    }
    let mut wc = srv.ws_login(&tc).await;
    let cafe = say(&mut wc, mine[69], "meet at the Wi-Fi cafe", "c1").await;
    say(&mut wc, mine[10], "wifi fi wi", "c2").await;
    say(&mut wc, mine[3], "新的wifi密码是5678", "c3").await;
    say(&mut wc, mine[4], "码密", "c4").await;
    let gone = say(&mut wc, mine[40], "the wombat again", "c5").await;

    // A phrase: only the message of hers where "wi" and "fi" are adjacent.
    assert_eq!(
        found(&srv, &tc, "wi-fi").await,
        vec!["meet at the Wi-Fi cafe"]
    );
    assert_eq!(found(&srv, &ta, "wi-fi").await, vec!["the Wi-Fi is down"]);
    // Two characters: the bigram, in her conversation, not in Alice's.
    assert_eq!(found(&srv, &tc, "密码").await, vec!["新的wifi密码是5678"]);
    assert_eq!(
        found(&srv, &tc, "的wifi密码").await,
        vec!["新的wifi密码是5678"]
    );
    // One character: every token starting with it, hers only.
    let mut single = found(&srv, &tc, "密").await;
    single.sort();
    assert_eq!(single, vec!["新的wifi密码是5678", "码密"]);
    // A word only Alice's conversation holds now.
    assert!(found(&srv, &tc, "drawer").await.is_empty());
    assert!(found(&srv, &tc, "down").await.is_empty());

    // An edit takes the old words out and puts the new ones in, marked
    // with the same conversation.
    wc.send(json!({"event": "Edit", "body": {
        "gid": mine[69], "msgId": cafe, "content": "meet at the library", "clientMsgId": "c6"}}))
        .await;
    assert_ack(&wc.next_answer().await, "c6").expect("edit");
    assert!(found(&srv, &tc, "wi-fi").await.is_empty());
    assert!(found(&srv, &tc, "cafe").await.is_empty());
    let rows = search(&srv, &tc, "library", "").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["group"]["id"], mine[69]);
    let rows = search(&srv, &tc, "library", &format!("&gid={}", mine[69])).await;
    assert_eq!(rows.len(), 1);
    assert!(found(&srv, &ta, "library").await.is_empty());
    // A deletion takes them out.
    assert_eq!(found(&srv, &tc, "wombat").await, vec!["the wombat again"]);
    wc.send(json!({"event": "Delete", "body": {
        "gid": mine[40], "msgId": gone, "clientMsgId": "c7"}}))
        .await;
    assert_ack(&wc.next_answer().await, "c7").expect("delete");
    assert!(found(&srv, &tc, "wombat").await.is_empty());
    assert_eq!(found(&srv, &ta, "wombat").await, vec!["we hid the wombat"]);
}

/// Words that thousands of other people's messages hold: the search names
/// each of the caller's conversations (a rarer word narrows it to the
/// conversations that word is in), and nothing of the others' comes back.
/// The others' messages are written straight into the file and indexed at
/// the restart, as a database from before the index would be.
#[tokio::test]
async fn common_words_are_searched_within_the_callers_conversations() {
    let srv = TestServer::start().await;
    let (carol, dave) = carol_and_dave(&srv, 40).await;
    let (uc, mine, ud, theirs) = (carol.uid, carol.gids, dave.uid, dave.gids);
    // Far more than a search reads of any one word before it names the
    // conversations.
    let others = (0..2500).map(|k| {
        let text = format!("the wombat's wi-fi 密码 is history, note {k}");
        (theirs[k % 40], ud, text)
    });
    let hers = (0..30).map(|k| {
        (
            mine[k % 40],
            uc,
            format!("our wi-fi 密码 is history, note {k}"),
        )
    });
    write_behind_the_servers_back(&srv, others.chain(hers));
    let srv = srv.restart().await;
    let (tc, td) = (srv.login("carol").await, srv.login("dave").await);
    let ours = |rows: &[Value]| {
        rows.iter()
            .all(|r| r["msg"]["content"].as_str().unwrap().starts_with("our "))
    };
    for q in ["history", "wi-fi", "密码", "history 密码", "wi-fi is"] {
        let rows = search(&srv, &tc, q, "&size=100").await;
        assert_eq!(rows.len(), 30, "{q}: every one of hers");
        assert!(ours(&rows), "{q}: only hers");
    }
    // A rare word with common ones: the conversations it is in.
    let rows = search(&srv, &tc, "history note 7", "&size=100").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["msg"]["content"],
        "our wi-fi 密码 is history, note 7"
    );
    assert!(found(&srv, &tc, "wombat").await.is_empty());
    assert!(found(&srv, &tc, "history wombat").await.is_empty());
    // Dave's own: the window of his newest matches.
    let rows = search(&srv, &td, "wombat", "&size=100").await;
    assert_eq!(rows.len(), 100);
    assert!(rows.iter().all(|r| r["user"]["id"] == ud));
}

/// Someone in many conversations searching words that are common
/// everywhere but whose newest matches are largely theirs (a third of
/// them here): the newest matches anywhere are read in steps and kept to
/// theirs. Every page is their newest in order, the window ends where it
/// should, a word with fewer matches than the window gives every one of
/// theirs, and the others' matches never show.
#[tokio::test]
async fn common_words_mostly_in_the_callers_conversations_are_read_newest_first() {
    let srv = TestServer::start().await;
    let (carol, dave) = carol_and_dave(&srv, 70).await;
    let (uc, mine, ud, theirs) = (carol.uid, carol.gids, dave.uid, dave.gids);
    // Every third message is Carol's: 2,000 of the 6,000 "busy" ones and
    // 700 of the 2,100 "steady" ones, all more than a rare word's count.
    let author = |k: usize| {
        if k.is_multiple_of(3) {
            (mine[k % 70], uc)
        } else {
            (theirs[k % 70], ud)
        }
    };
    let busy = (0..6_000).map(|k| (author(k), format!("busy {k}")));
    let steady = (0..2_100).map(|k| (author(k), format!("steady {k}")));
    let rows = busy
        .chain(steady)
        .map(|((gid, uid), text)| (gid, uid, text));
    write_behind_the_servers_back(&srv, rows);
    let srv = srv.restart().await;
    let (tc, td) = (srv.login("carol").await, srv.login("dave").await);
    let contents = |rows: &[Value]| -> Vec<String> {
        rows.iter()
            .map(|r| r["msg"]["content"].as_str().unwrap().to_owned())
            .collect()
    };
    // Her "busy" messages, newest first: the 1st to 100th, and the 901st
    // to 1,000th, the last page of the window.
    let hers: Vec<String> = (0..6_000)
        .rev()
        .filter(|k: &usize| k.is_multiple_of(3))
        .map(|k| format!("busy {k}"))
        .collect();
    let first = search(&srv, &tc, "busy", "&page=1&size=100").await;
    assert_eq!(contents(&first), hers[..100]);
    let tenth = search(&srv, &tc, "busy", "&page=10&size=100").await;
    assert_eq!(contents(&tenth), hers[900..1_000]);
    assert!(
        search(&srv, &tc, "busy", "&page=11&size=100")
            .await
            .is_empty()
    );
    // "steady": fewer of hers than the window; every one, once, in order.
    let mut got = Vec::new();
    for page in 1..=8 {
        let rows = search(&srv, &tc, "steady", &format!("&page={page}&size=100")).await;
        assert!(rows.iter().all(|r| r["user"]["id"] == uc));
        got.extend(contents(&rows));
    }
    let expect: Vec<String> = (0..2_100)
        .rev()
        .filter(|k: &usize| k.is_multiple_of(3))
        .map(|k| format!("steady {k}"))
        .collect();
    assert_eq!(got, expect);
    // Dave's newest are his own.
    let rows = search(&srv, &td, "busy", "&size=100").await;
    let his: Vec<String> = (0..6_000)
        .rev()
        .filter(|k: &usize| !k.is_multiple_of(3))
        .take(100)
        .map(|k| format!("busy {k}"))
        .collect();
    assert_eq!(contents(&rows), his);
}

/// Search latency on a large database: `RIM_SEARCH_BENCH=1000000 cargo test
/// --release --test it search_latency -- --ignored --nocapture`. Bulk-loads
/// messages like `rim-bench`'s history scenario (plus everyday words),
/// restarts the server (which indexes them), then times queries over REST.
#[tokio::test]
#[ignore]
async fn search_latency_on_a_large_database() {
    use std::time::{Duration, Instant};
    let n: u64 = std::env::var("RIM_SEARCH_BENCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let groups = 1000u64;
    let srv = TestServer::start().await;
    let (ua, ta) = srv.user("alice").await;
    let (ub, _) = srv.user("bob").await;
    let (uc, tc) = srv.user("carol").await;
    let mut gids = Vec::new();
    for j in 0..groups {
        let members: &[u64] = if j < 5 { &[ub, uc] } else { &[ub] };
        gids.push(create_group(&srv, &ta, &format!("g{j}"), members).await);
    }
    let words = [
        "the", "dinner", "tonight", "wifi", "password", "school", "pick", "up", "call", "later",
        "milk", "bread", "photo", "cat", "dog", "garden", "weekend", "trip", "keys", "doctor",
        "birthday", "cake", "party", "gift", "beach", "café", "晚饭", "密码", "周末", "学校",
    ];
    let t = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let rows = (0..n).map(|k| {
        let j = (k % groups) as usize;
        let mut text = format!("history message {k} in conversation {j}:");
        for _ in 0..5 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text.push(' ');
            text.push_str(words[(x % words.len() as u64) as usize]);
        }
        (gids[j], ua, text)
    });
    write_behind_the_servers_back(&srv, rows);
    eprintln!(
        "bulk load: {n} messages in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let srv = srv.restart().await;
    eprintln!(
        "restart, indexing {n} messages: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let ta = srv.login("alice").await;
    let tc_new = srv.login("carol").await;
    let _ = tc;
    let mid = n / 2;
    let cases: Vec<(String, String, &str)> = vec![
        (format!("a number (1 hit): {mid}"), mid.to_string(), ""),
        (
            "a word in every message: history".into(),
            "history".into(),
            "",
        ),
        ("a word in 1 of 6: wifi".into(), "wifi".into(), ""),
        (
            "two words: wifi password".into(),
            "wifi password".into(),
            "",
        ),
        ("Chinese, 2 characters: 密码".into(), "密码".into(), ""),
        ("accent folded: cafe".into(), "cafe".into(), ""),
        ("nothing: zebra".into(), "zebra".into(), ""),
        (
            "in one conversation: history".into(),
            "history".into(),
            "gid",
        ),
        (
            "in one conversation: wifi password".into(),
            "wifi password".into(),
            "gid",
        ),
        (
            "member of 5 of 1000: history".into(),
            "history".into(),
            "carol",
        ),
    ];
    for (label, q, mode) in cases {
        let mut times = Vec::new();
        let mut rows = 0;
        for i in 0..200u64 {
            let (token, extra) = match mode {
                "gid" => (&ta, format!("&gid={}", gids[(i % groups) as usize])),
                "carol" => (&tc_new, String::new()),
                _ => (&ta, String::new()),
            };
            let t = Instant::now();
            let r = srv
                .get(
                    &format!("/api/message/search?q={}{extra}", url_encode(&q)),
                    Some(token),
                )
                .await;
            times.push(t.elapsed());
            rows = r.assert_ok().as_array().unwrap().len();
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        eprintln!(
            "{label:40} p50 {:6.2} ms  p99 {:6.2} ms  max {:6.2} ms  ({rows} rows)",
            ms(times[times.len() / 2]),
            ms(times[times.len() * 99 / 100]),
            ms(times[times.len() - 1])
        );
    }
}

#[tokio::test]
async fn searches_are_rate_limited_per_user() {
    let srv = TestServer::start_with(|c| c.rate_limits.searches_per_user_per_minute = 3).await;
    let ((_, ta), (_, tb), _) = direct_pair(&srv, "alice", "bob").await;
    let get = |token: &str| {
        let path = "/api/message/search?q=hello".to_owned();
        let token = token.to_owned();
        let srv = &srv;
        async move { srv.get(&path, Some(&token)).await }
    };
    for _ in 0..3 {
        get(&ta).await.assert_ok();
    }
    let r = get(&ta).await;
    r.assert_error(429);
    assert!(r.headers.get("retry-after").is_some(), "{:?}", r.headers);
    // Bob's searches are his own.
    get(&tb).await.assert_ok();
}
