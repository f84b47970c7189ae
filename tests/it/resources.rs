//! What a server holds once it is quiet, and what it promises before and
//! while it serves: the WAL given back after load, readiness, and a health
//! probe that notices a database it cannot write.

use std::time::Duration;

use hyper::Method;

use crate::child::{ChildServer, write_config};
use crate::common::{TestServer, WAIT, assert_ack, direct_pair, eventually, history_msgs, http};

fn wal_len(srv: &TestServer) -> u64 {
    let mut wal = srv.db_path.clone().into_os_string();
    wal.push("-wal");
    std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test]
async fn a_quiet_server_truncates_its_wal() {
    let srv =
        TestServer::start_with(|c| c.checkpoint_idle = Some(Duration::from_millis(200))).await;
    let ((_, ta), _, gid) = direct_pair(&srv, "alice", "bob").await;
    let mut ws = srv.ws_login(&ta).await;
    for i in 0..50 {
        let cmid = format!("w{i}");
        assert_ack(
            &ws.send_msg(gid, &format!("message {i}"), &cmid).await,
            &cmid,
        );
    }
    // Every commit appends to the WAL; the writer's checkpoints under load
    // copy it back but leave the file as long as it was. Only the idle
    // checkpoint truncates it to nothing while the server runs.
    let truncated = eventually(WAIT * 2, || async { wal_len(&srv) == 0 }).await;
    assert!(truncated, "WAL still {} bytes", wal_len(&srv));
    // Everything acknowledged is in the database file itself.
    assert_eq!(history_msgs(&srv, &ta, gid).await.len(), 50);
    // And the server writes on after it.
    assert_ack(&ws.send_msg(gid, "after", "after").await, "after");
}

/// A database made by a server that then stopped, in a directory of its own.
async fn stopped_database() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rim.db");
    let srv = rim::server::start(
        crate::common::test_config(db.clone()),
        rim::server::listen("127.0.0.1:0".parse().unwrap()).unwrap(),
    )
    .await
    .unwrap();
    srv.shutdown().await.unwrap();
    (dir, db)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn health_is_503_with_the_reason_when_the_database_cannot_be_written() {
    let (dir, db) = stopped_database().await;
    // The WAL becomes a node of the kernel's full device: every write of it
    // fails as on a full disk, reads of the database file still work. This
    // holds for root too (tests run as root in CI, where file permissions
    // would not stop a write). SQLite opens it without following links, so
    // it is a device node of its own, not a symlink to /dev/full.
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    // A clean stop leaves everything in the database file.
    if let Ok(m) = std::fs::metadata(&wal) {
        assert_eq!(m.len(), 0, "a clean stop empties the WAL");
        std::fs::remove_file(&wal).unwrap();
    }
    let node = std::ffi::CString::new(wal.as_encoded_bytes()).unwrap();
    // SAFETY: mknod reads the NUL-terminated path and its integer arguments.
    let made = unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 7)) };
    assert_eq!(made, 0, "mknod: {}", std::io::Error::last_os_error());
    let server = ChildServer::start(&write_config(dir.path()), &db).await;
    let r = http(server.addr, Method::GET, "/healthz", None, None).await;
    r.assert_error(503);
    let msg = r.json["msg"].as_str().unwrap();
    assert!(msg.contains("cannot be written"), "{}", r.json);
    // The server still serves what needs no write.
    let r = http(
        server.addr,
        Method::GET,
        "/api/user/me",
        Some("nonsense"),
        None,
    )
    .await;
    r.assert_error(401);
    let (_, log) = server.terminate_keep_log().await;
    let said = log
        .lines()
        .position(|l| l.contains("database cannot be written"))
        .expect("the startup log says so");
    let listening = log.lines().position(|l| l.contains(" listening ")).unwrap();
    assert!(said < listening, "{log}");
}

#[tokio::test]
async fn health_is_200_for_a_writable_database() {
    let srv = TestServer::start().await;
    let r = srv.get("/healthz", None).await;
    assert_eq!(r.assert_ok()["status"], "ok", "{}", r.json);
}

/// The TCP ports `pid` listens on, from its socket descriptors and the
/// kernel's table of IPv4 sockets.
#[cfg(target_os = "linux")]
fn listening_ports(pid: u32) -> Vec<u16> {
    let mut inodes = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(link) = std::fs::read_link(fd.path()) {
            let link = link.to_string_lossy().into_owned();
            if let Some(n) = link
                .strip_prefix("socket:[")
                .and_then(|l| l.strip_suffix(']'))
            {
                inodes.push(n.to_owned());
            }
        }
    }
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address (hex ip:port), state 0A = LISTEN, inode.
            (f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]))
                .then(|| u16::from_str_radix(f[1].rsplit(':').next().unwrap(), 16).unwrap())
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn rim_serve_listens_only_once_its_database_can_serve() {
    use tokio::io::AsyncBufReadExt;
    let (dir, db) = stopped_database().await;
    // Another connection holds the write lock: the server's start-up write
    // waits for it, as an open that migrates or indexes a large file would.
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .arg("--config")
        .arg(write_config(dir.path()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a log line in time")
            .unwrap()
            .expect("rim is still running")
    };
    loop {
        let line = next().await;
        assert!(
            !line.contains(" listening "),
            "listening while locked out: {line}"
        );
        if line.contains("opening database") {
            break;
        }
    }
    assert_eq!(
        listening_ports(pid),
        Vec::<u16>::new(),
        "a port is open before the database"
    );
    holder.execute_batch("COMMIT").unwrap();
    let addr: std::net::SocketAddr = loop {
        let line = next().await;
        if let Some(rest) = line.split(" listening addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    assert_eq!(listening_ports(pid), vec![addr.port()]);
    let r = http(addr, Method::GET, "/healthz", None, None).await;
    assert_eq!(r.assert_ok()["status"], "ok", "{}", r.json);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
