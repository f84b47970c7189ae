use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn two_users_chat_over_websocket() {
    let srv = TestServer::start().await;
    let (a, ta) = srv.user("alice").await;
    let (b, tb) = srv.user("bob").await;
    srv.befriend(&ta, b, &tb, a).await;
    let gid = srv.direct(&ta, b).await;
    let mut wa = srv.ws_login(&ta).await;
    let mut wb = srv.ws_login(&tb).await;
    let ack = wa.send_msg(gid, "hello bob", "c1").await;
    assert_eq!(ack["kind"], "Ack", "{ack}");
    assert_eq!(ack["clientMsgId"], "c1");
    let id = ack["serverMsgId"].as_u64().unwrap();
    let push = wb.recv().await;
    assert_eq!(push["event"], "Msg");
    assert_eq!(push["body"]["msgId"], id);
    assert_eq!(push["body"]["content"], "hello bob");
    assert_eq!(push["body"]["uid"], a);
    let r = srv
        .post(
            "/api/message/chat/list",
            Some(&tb),
            json!({"page":1,"size":10}),
        )
        .await;
    let rows = r.assert_ok().as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["unread"], 1);
    assert_eq!(rows[0]["user"]["id"], a);
}
