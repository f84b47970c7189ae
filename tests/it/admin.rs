//! The operator's commands, run as the real `rim` binary against real
//! database files: accounts (also while a server runs on the file: a disabled
//! user's WebSocket closes within about a second), invites and registration
//! modes, backup while messages stream in, restore, check, and the lock that
//! keeps two servers (or a restore and a server) off one file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rim::config::RegistrationMode;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::child::{ChildServer, write_config};
use crate::common::{TestServer, WAIT, assert_ack, direct_pair, msg_frame, test_config};

/// What a `rim` command did.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn assert_ok(&self) -> &str {
        assert!(self.ok, "rim failed:\n{}\n{}", self.stdout, self.stderr);
        &self.stdout
    }

    fn assert_failed(&self, says: &str) {
        assert!(!self.ok, "rim should have failed:\n{}", self.stdout);
        assert!(
            self.stderr.contains(says),
            "expected {says:?} in:\n{}",
            self.stderr
        );
    }

    /// The value of a `key: value` line of the output.
    fn field(&self, key: &str) -> String {
        let prefix = format!("{key}: ");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {key:?} in:\n{}", self.stdout))
            .to_owned()
    }
}

/// Runs `rim ARGS... --db DB --config CONFIG` with `stdin` as its input.
async fn rim(args: &[&str], db: &Path, config: &Path, stdin: &str) -> Ran {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rim"))
        .args(args)
        .arg("--db")
        .arg(db)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("rim runs");
    let mut input = child.stdin.take().unwrap();
    // A command that needs no input may exit before reading it: a broken
    // pipe here is not the command's failure (its status says that).
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    let out = tokio::time::timeout(WAIT * 6, child.wait_with_output())
        .await
        .expect("rim finishes in time")
        .unwrap();
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A directory with a cheap-hashing config, like the child servers use.
fn workdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    (dir, config)
}

#[tokio::test]
async fn user_commands_manage_accounts_in_a_database_file() {
    let (dir, config) = workdir();
    let db = dir.path().join("rim.db");
    let out = rim(
        &[
            "user",
            "add",
            "alice",
            "--name",
            "Alice A",
            "--password-stdin",
        ],
        &db,
        &config,
        "correct horse\n",
    )
    .await;
    assert!(out.assert_ok().contains("uid 1"), "{}", out.stdout);
    assert!(
        out.stdout.contains("admin"),
        "the first account is an admin: {}",
        out.stdout
    );
    let out = rim(
        &["user", "add", "bob", "--password-stdin"],
        &db,
        &config,
        "battery staple\n",
    )
    .await;
    assert!(!out.assert_ok().contains("admin"), "{}", out.stdout);
    rim(
        &["user", "add", "carol", "--admin", "--password-stdin"],
        &db,
        &config,
        "carol's password\n",
    )
    .await
    .assert_ok();
    rim(
        &["user", "add", "BOB", "--password-stdin"],
        &db,
        &config,
        "another one\n",
    )
    .await
    .assert_failed("already taken");
    rim(
        &["user", "add", "x", "--password-stdin"],
        &db,
        &config,
        "long enough\n",
    )
    .await
    .assert_failed("3 to 32 characters");
    rim(
        &["user", "add", "dave", "--password-stdin"],
        &db,
        &config,
        "short\n",
    )
    .await
    .assert_failed("8 to 1024");

    let list = rim(&["user", "list"], &db, &config, "").await;
    let rows: Vec<Vec<&str>> = list
        .assert_ok()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][..2], ["1", "alice"]);
    assert!(
        rows[0].contains(&"Alice") && rows[0].contains(&"yes"),
        "{rows:?}"
    );
    assert_eq!(rows[1][..5], ["2", "bob", "bob", "no", "active"]);
    assert_eq!(rows[2][..4], ["3", "carol", "carol", "yes"]);
    assert!(list.stdout.contains("3 accounts"));

    rim(&["user", "disable", "bob"], &db, &config, "")
        .await
        .assert_ok();
    let list = rim(&["user", "list"], &db, &config, "").await;
    assert!(
        list.assert_ok()
            .lines()
            .any(|l| l.contains("bob") && l.contains("disabled")),
        "{}",
        list.stdout
    );
    rim(&["user", "enable", "bob"], &db, &config, "")
        .await
        .assert_ok();
    let list = rim(&["user", "list"], &db, &config, "").await;
    assert!(!list.assert_ok().contains("disabled"), "{}", list.stdout);
    rim(&["user", "disable", "nobody"], &db, &config, "")
        .await
        .assert_failed("no account");
    rim(
        &["user", "passwd", "nobody", "--password-stdin"],
        &db,
        &config,
        "whatever long\n",
    )
    .await
    .assert_failed("no account");

    // The server takes the accounts as they are: passwords, admins, all.
    rim(
        &["user", "passwd", "bob", "--password-stdin"],
        &db,
        &config,
        "a new password\n",
    )
    .await
    .assert_ok();
    let srv = TestServer::start_with(|c| c.db = db.clone()).await;
    let r = srv
        .post(
            "/api/user/login",
            None,
            json!({"account": "bob", "password": "a new password"}),
        )
        .await;
    r.assert_ok();
    srv.post(
        "/api/user/login",
        None,
        json!({"account": "bob", "password": "battery staple"}),
    )
    .await
    .assert_error(401);
    // A command that reads needs an existing file; it does not create one.
    rim(&["user", "list"], &dir.path().join("none.db"), &config, "")
        .await
        .assert_failed("no database");
}

#[tokio::test]
async fn disabling_a_user_closes_its_live_websocket_and_stops_its_logins() {
    let (dir, config) = workdir();
    let srv = TestServer::start().await;
    let ((_, alice), (_, bob), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut ws = srv.ws_login(&bob).await;
    let mut alice_ws = srv.ws_login(&alice).await;

    let out = rim(&["user", "disable", "bob"], &srv.db_path, &config, "").await;
    // Timed from the moment the command is done: the server polls once a second.
    let started = Instant::now();
    assert!(
        out.assert_ok().contains("1 session(s) revoked"),
        "{}",
        out.stdout
    );
    assert_eq!(ws.expect_close().await, 1008, "policy close: session ended");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2000), "closed after {took:?}");

    // The token is dead at once, the password no longer opens a session, and
    // alice is not affected.
    srv.get("/api/group/get", Some(&bob))
        .await
        .assert_error(401);
    let r = srv
        .post(
            "/api/user/login",
            None,
            json!({"account": "bob", "password": "password-bob"}),
        )
        .await;
    r.assert_error(403);
    assert!(
        r.json["msg"].as_str().unwrap().contains("account disabled"),
        "{}",
        r.json
    );
    srv.post(
        "/api/user/login",
        None,
        json!({"account": "bob", "password": "wrong password"}),
    )
    .await
    .assert_error(401);
    let ack = alice_ws.send_msg(gid, "still here", "a1").await;
    assert_ack(&ack, "a1");
    srv.get("/api/group/get", Some(&alice)).await.assert_ok();

    // Enabled again, bob logs in and finds what was sent meanwhile: the data was kept.
    rim(&["user", "enable", "bob"], &srv.db_path, &config, "")
        .await
        .assert_ok();
    let bob2 = srv.login("bob").await;
    let mut ws = srv.ws_login(&bob2).await;
    let pushed = ws.recv().await;
    assert_eq!(pushed["body"]["content"], "still here", "{pushed}");

    // A new password revokes every session too, and closes its sockets.
    let out = rim(
        &["user", "passwd", "bob", "--password-stdin"],
        &srv.db_path,
        &config,
        "brand new pass\n",
    )
    .await;
    out.assert_ok();
    assert_eq!(ws.expect_close().await, 1008);
    srv.get("/api/group/get", Some(&bob2))
        .await
        .assert_error(401);
    srv.post(
        "/api/user/login",
        None,
        json!({"account": "bob", "password": "brand new pass"}),
    )
    .await
    .assert_ok();
    drop(dir);
}

#[tokio::test]
async fn invites_gate_registration_when_required() {
    let (dir, config) = workdir();
    // The command line reads the same settings as the server.
    let shared = std::fs::read_to_string(&config).unwrap();
    let top = "registration = \"invite\"\npublic_url = \"https://chat.example.org/\"\n";
    std::fs::write(&config, format!("{top}{shared}")).unwrap();
    let db = dir.path().join("rim.db");
    // The operator makes the first account (an admin) before the first start.
    rim(
        &["user", "add", "root", "--password-stdin"],
        &db,
        &config,
        "password-root\n",
    )
    .await
    .assert_ok();
    let srv = TestServer::start_with(|c| {
        c.db = db.clone();
        c.registration = RegistrationMode::Invite;
        c.public_url = Some("https://chat.example.org".into());
    })
    .await;
    let create = |account: &str, invite: Option<&str>| {
        let mut body = json!({"account": account, "password": format!("password-{account}")});
        if let Some(code) = invite {
            body["invite"] = json!(code);
        }
        body
    };
    let refused = |r: crate::common::Reply, says: &str| {
        r.assert_error(403);
        assert!(
            r.json["msg"].as_str().unwrap().contains(says),
            "expected {says:?}: {}",
            r.json
        );
    };

    refused(
        srv.post("/api/user/create", None, create("anne", None))
            .await,
        "needs an invite code",
    );
    refused(
        srv.post("/api/user/create", None, create("anne", Some("nope-nope")))
            .await,
        "unknown invite code",
    );

    let out = rim(
        &["invite", "create", "--uses", "2", "--expires", "2d"],
        &db,
        &config,
        "",
    )
    .await;
    out.assert_ok();
    let code = out.field("code");
    assert_eq!(
        out.field("link"),
        format!("https://chat.example.org/?invite={code}")
    );
    assert_eq!(out.field("uses"), "2");
    srv.post("/api/user/create", None, create("anne", Some(&code)))
        .await
        .assert_ok();
    // Typed by hand: case and spacing do not matter.
    let typed = code.to_uppercase().replace('-', " ");
    srv.post("/api/user/create", None, create("ben", Some(&typed)))
        .await
        .assert_ok();
    refused(
        srv.post("/api/user/create", None, create("cleo", Some(&code)))
            .await,
        "used up",
    );
    // A failed registration does not spend a use.
    let code1 = rim(&["invite", "create"], &db, &config, "")
        .await
        .field("code");
    srv.post("/api/user/create", None, create("anne", Some(&code1)))
        .await
        .assert_error(409);
    srv.post("/api/user/create", None, create("cleo", Some(&code1)))
        .await
        .assert_ok();

    // Admins create invites over REST; others may not.
    let root = srv.login("root").await;
    let r = srv
        .post(
            "/api/invite/create",
            Some(&root),
            json!({"uses": 1, "expiresDays": 1}),
        )
        .await;
    let data = r.assert_ok();
    let code2 = data["code"].as_str().unwrap().to_owned();
    assert_eq!(
        data["link"],
        format!("https://chat.example.org/?invite={code2}")
    );
    let anne = srv.login("anne").await;
    refused(
        srv.post("/api/invite/create", Some(&anne), json!({})).await,
        "only admins",
    );
    srv.post("/api/invite/create", Some(&root), json!({"uses": 0}))
        .await
        .assert_error(400);
    srv.post("/api/invite/create", None, json!({}))
        .await
        .assert_error(401);
    srv.post("/api/user/create", None, create("dora", Some(&code2)))
        .await
        .assert_ok();
    let expired = rim(&["invite", "create", "--expires", "0d"], &db, &config, "").await;
    expired.assert_failed("--expires");
}

#[tokio::test]
async fn registration_modes_open_and_closed() {
    let srv = TestServer::start().await;
    // Open: the first account ever becomes an admin, the second does not.
    let (_, first) = srv.user("first").await;
    let (_, second) = srv.user("second").await;
    srv.post("/api/invite/create", Some(&first), json!({}))
        .await
        .assert_ok();
    srv.post("/api/invite/create", Some(&second), json!({}))
        .await
        .assert_error(403);
    // Open servers ignore a code sent along, even a bogus one.
    srv.post(
        "/api/user/create",
        None,
        json!({"account": "third", "password": "password-third", "invite": "junk"}),
    )
    .await
    .assert_ok();

    let closed = TestServer::start_with(|c| c.registration = RegistrationMode::Closed).await;
    let r = closed
        .post(
            "/api/user/create",
            None,
            json!({"account": "anyone", "password": "password-anyone"}),
        )
        .await;
    r.assert_error(403);
    assert!(
        r.json["msg"].as_str().unwrap().contains("closed"),
        "{}",
        r.json
    );
}

#[tokio::test]
async fn backup_while_messages_stream_holds_every_acked_message_and_runs_as_is() {
    let (dir, config) = workdir();
    let srv = TestServer::start().await;
    let ((_, alice), (_, bob), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut ws = srv.ws_login(&alice).await;

    // A writer streams messages and reports each acked id.
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        for i in 0..5000 {
            if stop_rx.try_recv().is_ok() {
                break;
            }
            let id = format!("m{i}");
            ws.send(msg_frame("Text", gid, &format!("message {i}"), &id))
                .await;
            let ack = ws.recv().await;
            let msg_id = assert_ack(&ack, &id).expect("serverMsgId");
            acked_tx.send(msg_id).unwrap();
        }
    });
    // Let some messages land, then note what was acked before the backup starts.
    let mut before = BTreeSet::new();
    while before.len() < 50 {
        before.insert(acked_rx.recv().await.expect("the writer acks"));
    }
    while let Ok(id) = acked_rx.try_recv() {
        before.insert(id);
    }
    let dest = dir.path().join("backup.db");
    let out = rim(
        &["backup", dest.to_str().unwrap()],
        &srv.db_path,
        &config,
        "",
    )
    .await;
    out.assert_ok();
    assert!(out.stdout.contains("integrity: ok"), "{}", out.stdout);
    assert!(out.stdout.contains("schema version"), "{}", out.stdout);
    let _ = stop_tx.send(());
    writer.await.unwrap();
    let mut after = before.clone();
    while let Ok(id) = acked_rx.try_recv() {
        after.insert(id);
    }
    assert!(
        after.len() > before.len(),
        "writes went on during the backup"
    );

    // Every message acked before the backup began is in it, once.
    let conn =
        rusqlite::Connection::open_with_flags(&dest, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let in_backup: Vec<u64> = conn
        .prepare("SELECT id FROM messages ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let in_backup_set: BTreeSet<u64> = in_backup.iter().copied().collect();
    assert_eq!(in_backup.len(), in_backup_set.len());
    let missing: Vec<_> = before.difference(&in_backup_set).collect();
    assert!(
        missing.is_empty(),
        "acked before the backup but missing from it: {missing:?}"
    );
    let users_line = format!("{} messages", in_backup.len());
    assert!(
        out.stdout.contains(&users_line),
        "the summary counts what the copy holds: {}",
        out.stdout
    );
    drop(conn);

    rim(&["check"], &dest, &config, "").await.assert_ok();
    rim(
        &["backup", dest.to_str().unwrap()],
        &srv.db_path,
        &config,
        "",
    )
    .await
    .assert_failed("already exists");

    // `rim serve --db BACKUP` runs the copy as it is.
    let child = ChildServer::start(&config, &dest).await;
    let r = crate::common::http(
        child.addr,
        hyper::Method::POST,
        "/api/user/login",
        None,
        Some(json!({"account": "bob", "password": "password-bob"}).to_string()),
    )
    .await;
    let token = r.assert_ok().as_str().unwrap().to_owned();
    let r = crate::common::http(
        child.addr,
        hyper::Method::POST,
        "/api/message/history",
        Some(&token),
        Some(json!({"gid": gid, "page": 1, "size": 1}).to_string()),
    )
    .await;
    let newest = r.assert_ok()[0]["msg"]["id"].as_u64().unwrap();
    assert_eq!(newest, *in_backup.last().unwrap());
    assert_eq!(child.terminate().await.code(), Some(0));
    drop(bob);
}

#[tokio::test]
async fn restore_refuses_a_running_server_and_bad_files_then_keeps_the_old_database() {
    let (dir, config) = workdir();
    let srv = TestServer::start().await;
    srv.user("alice").await;
    let backup = dir.path().join("one-user.db");
    rim(
        &["backup", backup.to_str().unwrap()],
        &srv.db_path,
        &config,
        "",
    )
    .await
    .assert_ok();
    srv.user("bob").await;

    // Not while the server runs on the file.
    rim(
        &["restore", backup.to_str().unwrap()],
        &srv.db_path,
        &config,
        "",
    )
    .await
    .assert_failed("stop it first");
    // Nor two servers on one file.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = rim::server::start(test_config(srv.db_path.clone()), listener)
        .await
        .err()
        .expect("a second server is refused");
    assert!(format!("{err:#}").contains("another rim server"), "{err:#}");

    let db_path = srv.db_path.clone();
    let mut srv = srv;
    srv.stop().await;

    // Files that are not good rim backups are refused before anything changes.
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "not a database at all, just some text that is long enough",
    )
    .unwrap();
    rim(&["restore", text.to_str().unwrap()], &db_path, &config, "")
        .await
        .assert_failed("cannot be restored");
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    rim(
        &["restore", foreign.to_str().unwrap()],
        &db_path,
        &config,
        "",
    )
    .await
    .assert_failed("not a rim database");
    rim(&["check"], &foreign, &config, "")
        .await
        .assert_failed("not a rim database");
    rim(&["restore", "/no/such/file.db"], &db_path, &config, "")
        .await
        .assert_failed("no database");

    let out = rim(
        &["restore", backup.to_str().unwrap()],
        &db_path,
        &config,
        "",
    )
    .await;
    out.assert_ok();
    let aside = PathBuf::from(out.field("kept aside"));
    assert!(aside.exists(), "{}", aside.display());

    // The restored file runs and has exactly the backup's accounts; the old
    // one, kept aside, still has both.
    let srv = TestServer::start_with(|c| c.db = db_path.clone()).await;
    srv.login("alice").await;
    srv.post(
        "/api/user/login",
        None,
        json!({"account": "bob", "password": "password-bob"}),
    )
    .await
    .assert_error(401);
    drop(srv);
    let kept = rusqlite::Connection::open(&aside).unwrap();
    let users: i64 = kept
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 2);
}

/// The permission bits of `path` that let others than its owner in.
fn open_to_others(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.permissions().mode() & 0o077
}

#[tokio::test]
async fn the_database_its_companions_and_its_copies_are_private_whatever_the_umask() {
    let srv = TestServer::start().await;
    let ((_, ta), _, gid) = direct_pair(&srv, "alice", "bob").await;
    let mut ws = srv.ws_login(&ta).await;
    assert_ack(&ws.send_msg(gid, "private", "p1").await, "p1");
    let with = |suffix: &str| {
        let mut p = srv.db_path.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    };
    for path in [with(""), with("-wal"), with("-shm"), with(".lock")] {
        assert_eq!(open_to_others(&path), 0, "{}", path.display());
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let dest = dir.path().join("backup.db");
    rim(
        &["backup", dest.to_str().unwrap()],
        &srv.db_path,
        &config,
        "",
    )
    .await
    .assert_ok();
    assert_eq!(open_to_others(&dest), 0, "the backup");
    let restored = dir.path().join("restored.db");
    rim(&["restore", dest.to_str().unwrap()], &restored, &config, "")
        .await
        .assert_ok();
    assert_eq!(open_to_others(&restored), 0, "the restored database");
}

/// Runs `rim serve` on `db` and expects it to refuse to start; its log.
async fn serve_is_refused(db: &Path, config: &Path) -> String {
    let out = tokio::time::timeout(
        WAIT * 6,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_rim"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("a refused server exits at once")
    .unwrap();
    assert!(
        !out.status.success(),
        "rim serve on {} started",
        db.display()
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_second_server_through_a_symlink_or_a_hard_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let db = dir.path().join("rim.db");
    let first = ChildServer::start(&config, &db).await;
    // The same file through a symlink: the lock is the file's own.
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&db, &link).unwrap();
    let log = serve_is_refused(&link, &config).await;
    assert!(log.contains("another rim server"), "{log}");
    // Through a hard link: a second name is refused whatever runs.
    let hard = dir.path().join("hard.db");
    std::fs::hard_link(&db, &hard).unwrap();
    let log = serve_is_refused(&hard, &config).await;
    assert!(log.contains("hard links"), "{log}");
    first.terminate().await;
    let log = serve_is_refused(&db, &config).await;
    assert!(log.contains("hard links"), "{log}");
    std::fs::remove_file(&hard).unwrap();
    // With one name again, it serves.
    ChildServer::start(&config, &db).await.terminate().await;
}

/// `rim push test` pushes to every device of the account, prints each push
/// service's answer, and removes a subscription the service says is gone;
/// with the key the running server signs with.
#[tokio::test]
async fn push_test_reaches_every_subscription_and_prints_the_answers() {
    let (dir, config) = workdir();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[push]\nallowed_hosts = [\"127.0.0.1\"]\nallow_insecure_http = true\n");
    std::fs::write(&config, text).unwrap();
    let mut service = crate::push_service::PushService::start().await;
    let srv = TestServer::start_with(|c| {
        c.push.allowed_hosts = vec!["127.0.0.1".into()];
        c.push.allow_insecure_http = true;
    })
    .await;
    let (bob_uid, bob) = srv.user("bob").await;
    let phone = service.browser("/sub/phone");
    let old = service.browser("/gone/old");
    for browser in [&phone, &old] {
        srv.post("/api/push/subscribe", Some(&bob), browser.subscription())
            .await
            .assert_ok();
    }
    let key = srv.get("/api/push/key", None).await.data()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    let out = rim(&["push", "test", "bob"], &srv.db_path, &config, "").await;
    let stdout = out.assert_ok();
    assert!(
        stdout.contains(&format!("{}: sent (201)", phone.endpoint)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}: gone (410)", old.endpoint)),
        "{stdout}"
    );
    assert_eq!(out.field("sent"), "1 of 2");
    let mut paths = Vec::new();
    for _ in 0..2 {
        let got = service.next().await;
        service.verify_vapid(&got, &key);
        if got.path == "/sub/phone" {
            assert_eq!(phone.decrypt(&got.body)["title"], "rim");
        }
        paths.push(got.path);
    }
    paths.sort();
    assert_eq!(paths, ["/gone/old", "/sub/phone"]);
    let left = srv.app().db.push_subscriptions(bob_uid).await.unwrap();
    assert_eq!(left.len(), 1, "the gone one was removed: {left:?}");

    let out = rim(&["push", "test", "nobody"], &srv.db_path, &config, "").await;
    out.assert_failed("nobody");
    drop(dir);
}

/// Posts `body` with `content_type` to a bot URL's path.
async fn bot_post(
    srv: &TestServer,
    path: &str,
    content_type: &str,
    body: &str,
) -> crate::common::Reply {
    let req = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri(path)
        .header("host", srv.addr.to_string())
        .header("content-type", content_type)
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    crate::common::raw_request(srv.addr, req).await
}

/// `rim bot add` prints a URL with a key; posting plain text or JSON there
/// posts as the bot in its group, pushed like any message; a wrong key, an
/// empty or oversized message are refused with nothing stored; `rim bot
/// remove` ends the key.
#[tokio::test]
async fn a_bot_posts_into_its_group_with_its_key() {
    let (_dir, config) = workdir();
    let srv = TestServer::start().await;
    let (_, alice) = srv.user("alice").await;
    let (bob_uid, bob) = srv.user("bob").await;
    let gid = crate::common::create_group(&srv, &alice, "home", &[bob_uid]).await;
    let direct = srv.direct(&alice, bob_uid).await;
    let gid_arg = gid.to_string();

    let out = rim(
        &["bot", "add", "Doorbell", "--group", &gid_arg],
        &srv.db_path,
        &config,
        "",
    )
    .await;
    out.assert_ok();
    let url = out.field("url");
    let path = &url[url.find("/api/").expect("a URL of this server")..];
    let key = path
        .strip_prefix("/api/bot/")
        .and_then(|p| p.strip_suffix("/message"))
        .expect("the key in the URL");
    assert_eq!(key.len(), 64, "256 random bits");
    let list = rim(&["bot", "list"], &srv.db_path, &config, "").await;
    assert!(list.assert_ok().contains("Doorbell"), "{}", list.stdout);
    assert!(!list.stdout.contains(key), "the key is shown once");

    let mut ws = srv.ws_login(&bob).await;
    let r = bot_post(
        &srv,
        path,
        "text/plain; charset=utf-8",
        "Someone is at the door\n",
    )
    .await;
    let id = r.assert_ok().as_u64().expect("the message id");
    let push = ws.recv().await;
    assert_eq!(push["event"], "Msg", "{push}");
    assert_eq!(push["body"]["msgId"], id);
    assert_eq!(push["body"]["content"], "Someone is at the door");
    assert_eq!(push["body"]["gid"], gid);
    let r = bot_post(
        &srv,
        path,
        "application/json",
        r#"{"content":"The washing is done"}"#,
    )
    .await;
    let id2 = r.assert_ok().as_u64().unwrap();
    assert_eq!(ws.recv().await["body"]["msgId"], id2);
    let members = srv
        .get(&format!("/api/group/user/get?gid={gid}"), Some(&bob))
        .await;
    let names: Vec<&str> = members
        .assert_ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"]["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Doorbell"), "{names:?}");

    // Refusals: nothing of them is stored.
    let wrong = format!("/api/bot/{}/message", "0".repeat(64));
    bot_post(&srv, &wrong, "text/plain", "hi")
        .await
        .assert_error(401);
    bot_post(&srv, "/api/bot//message", "text/plain", "hi")
        .await
        .assert_error(401);
    bot_post(&srv, &format!("/api/bot/{key}/other"), "text/plain", "hi")
        .await
        .assert_error(404);
    bot_post(&srv, path, "text/plain", "")
        .await
        .assert_error(400);
    bot_post(&srv, path, "application/json", r#"{"text":"x"}"#)
        .await
        .assert_error(400);
    bot_post(&srv, path, "text/plain", &"x".repeat(20_000))
        .await
        .assert_error(413);
    let history = crate::common::history_msgs(&srv, &bob, gid).await;
    let ids: Vec<u64> = history.iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [id, id2], "only the two accepted messages");

    // A bot cannot log in, and posts in groups only.
    let r = srv
        .post(
            "/api/user/login",
            None,
            json!({"account": "Doorbell", "password": "!bot"}),
        )
        .await;
    r.assert_error(401);
    let direct_arg = direct.to_string();
    rim(
        &["bot", "add", "Spy", "--group", &direct_arg],
        &srv.db_path,
        &config,
        "",
    )
    .await
    .assert_failed("direct chat");

    let bot_id = out.field("bot");
    rim(&["bot", "remove", &bot_id], &srv.db_path, &config, "")
        .await
        .assert_ok();
    bot_post(&srv, path, "text/plain", "still here?")
        .await
        .assert_error(401);
    rim(&["bot", "remove", &bot_id], &srv.db_path, &config, "")
        .await
        .assert_failed("no bot");
}

/// A bot is held to the message rate limit like a person.
#[tokio::test]
async fn a_bot_is_rate_limited() {
    let (_dir, config) = workdir();
    let srv = TestServer::start_with(|c| {
        c.rate_limits.messages_per_second = 1;
        c.rate_limits.message_burst = 2;
    })
    .await;
    let (_, alice) = srv.user("alice").await;
    let gid = crate::common::create_group(&srv, &alice, "home", &[]).await;
    let out = rim(
        &["bot", "add", "Sensor", "--group", &gid.to_string()],
        &srv.db_path,
        &config,
        "",
    )
    .await;
    out.assert_ok();
    let url = out.field("url");
    let path = &url[url.find("/api/").unwrap()..];
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(
            bot_post(&srv, path, "text/plain", &format!("reading {i}"))
                .await
                .status,
        );
    }
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
}
