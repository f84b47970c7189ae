//! What a server holds once it is quiet, and what it promises before and
//! while it serves: the WAL given back after load, readiness, and a health
//! probe that notices a database it cannot write.

use std::time::Duration;

use crate::common::{TestServer, WAIT, assert_ack, direct_pair, eventually, history_msgs};

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
