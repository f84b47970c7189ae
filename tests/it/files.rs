//! Attachments over the real server: uploads and downloads (Range, ETag,
//! 304), who may read a file, what a file is served as, limits, quotas,
//! deduplication, Image and File messages over the WebSocket, refusals,
//! and the removal of files no message refers to.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{
    TestServer, WAIT, assert_ack, assert_nothing_before_marker, assert_refused, create_group,
    direct_pair, eventually, history_msgs, msg_frame, png_bytes, pseudo_random,
};

const CHUNK: usize = 256 * 1024;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rows in a table of the server's database, read beside the server.
fn count(srv: &TestServer, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        &srv.db_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// An Image or File message frame naming `file_id`.
fn file_frame(kind: &str, gid: u64, file_id: u64, name: &str, cmid: &str) -> Value {
    msg_frame(
        kind,
        gid,
        &json!({"fileId": file_id, "name": name}).to_string(),
        cmid,
    )
}

#[tokio::test]
async fn an_upload_round_trips_byte_for_byte_across_chunks() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    // Three chunks and a bit, so that chunk boundaries are crossed.
    let bytes = png_bytes(640, 480, 3 * CHUNK + 1000, 1);
    let r = srv.upload(&token, "cat.png", "image/png", &bytes).await;
    let file = r.assert_ok();
    let id = file["id"].as_u64().unwrap();
    assert_eq!(file["name"], "cat.png");
    assert_eq!(file["size"], bytes.len());
    assert_eq!(file["contentType"], "image/png");
    assert_eq!(file["sha256"], hex(&Sha256::digest(&bytes)));
    assert_eq!(
        (file["width"].clone(), file["height"].clone()),
        (json!(640), json!(480))
    );

    let d = srv
        .fetch(&format!("/api/file/{id}"), Some(&token), &[])
        .await;
    assert_eq!(d.status, 200);
    assert!(d.body == bytes, "the bytes differ");
    assert_eq!(d.header("content-type"), "image/png");
    assert_eq!(d.header("content-length"), bytes.len().to_string());
    assert_eq!(
        d.header("etag"),
        format!("\"{}\"", hex(&Sha256::digest(&bytes)))
    );
    assert!(d.header("cache-control").starts_with("private"));
    assert_eq!(d.header("x-content-type-options"), "nosniff");
    assert!(
        d.header("content-security-policy")
            .contains("default-src 'none'")
    );
    assert!(d.header("content-security-policy").contains("sandbox"));
    assert_eq!(d.header("accept-ranges"), "bytes");
    assert!(
        d.header("content-disposition").starts_with("inline"),
        "{:?}",
        d.headers
    );

    // A small file (one short chunk) too, and its name defaults sensibly.
    let small = srv.upload(&token, "", "text/plain", b"hello").await;
    let small = small.assert_ok();
    assert_eq!(small["name"], "file.txt");
    let d = srv
        .fetch(&format!("/api/file/{}", small["id"]), Some(&token), &[])
        .await;
    assert_eq!(d.body, b"hello");
    assert!(d.header("content-disposition").starts_with("attachment"));
}

#[tokio::test]
async fn ranges_etags_and_revalidation() {
    let srv = TestServer::start().await;
    let (_, token) = srv.user("alice").await;
    let bytes = png_bytes(1, 1, 2 * CHUNK, 2);
    let size = bytes.len();
    let id = srv.upload_ok(&token, "x.png", "image/png", &bytes).await;
    let path = format!("/api/file/{id}");
    let t = Some(token.as_str());

    let r = srv.fetch(&path, t, &[("range", "bytes=0-9")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[..10]);
    assert_eq!(r.header("content-range"), format!("bytes 0-9/{size}"));
    assert_eq!(r.header("content-length"), "10");

    // Across a chunk boundary.
    let (a, b) = (CHUNK - 5, CHUNK + 4);
    let r = srv
        .fetch(&path, t, &[("range", &format!("bytes={a}-{b}"))])
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[a..=b]);

    let r = srv.fetch(&path, t, &[("range", "bytes=-7")]).await;
    assert_eq!(r.body, &bytes[size - 7..]);
    assert_eq!(
        r.header("content-range"),
        format!("bytes {}-{}/{size}", size - 7, size - 1)
    );

    let r = srv
        .fetch(&path, t, &[("range", &format!("bytes={}-", size - 3))])
        .await;
    assert_eq!(r.body, &bytes[size - 3..]);

    // Past the end: 416 in the usual wrapper, with the size.
    let r = srv
        .fetch(&path, t, &[("range", &format!("bytes={size}-"))])
        .await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), format!("bytes */{size}"));
    assert_eq!(r.json()["code"], 416);

    // Several ranges: the whole file (a server may ignore such a Range).
    let r = srv.fetch(&path, t, &[("range", "bytes=0-1,4-5")]).await;
    assert_eq!((r.status, r.body.len()), (200, size));

    // ETag revalidation.
    let etag = srv.fetch(&path, t, &[]).await.header("etag").to_owned();
    let r = srv.fetch(&path, t, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), etag);
    let r = srv.fetch(&path, t, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(r.status, 200);

    // If-Range: the range only while the file is the one named.
    let r = srv
        .fetch(&path, t, &[("range", "bytes=0-3"), ("if-range", &etag)])
        .await;
    assert_eq!(r.status, 206);
    let r = srv
        .fetch(
            &path,
            t,
            &[("range", "bytes=0-3"), ("if-range", "\"stale\"")],
        )
        .await;
    assert_eq!((r.status, r.body.len()), (200, size));
}

#[tokio::test]
async fn only_the_uploader_and_members_where_it_was_sent_may_read_a_file() {
    let srv = TestServer::start().await;
    let ((_, ta), (ub, tb), direct) = direct_pair(&srv, "alice", "bob").await;
    let (uc, tc) = srv.user("carol").await;
    let id = srv
        .upload_ok(&ta, "photo.png", "image/png", &png_bytes(2, 2, 100, 3))
        .await;
    let path = format!("/api/file/{id}");

    assert_eq!(
        srv.fetch(&path, Some(&ta), &[]).await.status,
        200,
        "the uploader"
    );
    // Not sent anywhere yet: nobody else sees it, and it looks like nothing.
    let r = srv.fetch(&path, Some(&tb), &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], 404);
    assert_eq!(srv.fetch(&path, None, &[]).await.status, 401);
    assert_eq!(srv.fetch("/api/file/999", Some(&ta), &[]).await.status, 404);
    assert_eq!(srv.fetch("/api/file/abc", Some(&ta), &[]).await.status, 404);

    // Sent in the direct chat: bob may read it, carol may not.
    let mut ws = srv.ws_login(&ta).await;
    ws.send(file_frame("Image", direct, id, "photo.png", "i1"))
        .await;
    assert_ack(&ws.recv().await, "i1");
    assert_eq!(
        srv.fetch(&path, Some(&tb), &[]).await.status,
        200,
        "a member"
    );
    assert_eq!(
        srv.fetch(&path, Some(&tc), &[]).await.status,
        404,
        "a stranger"
    );

    // Sent in a group carol is in: now she may, until she is removed.
    let gid = create_group(&srv, &ta, "club", &[ub, uc]).await;
    ws.send(file_frame("Image", gid, id, "photo.png", "i2"))
        .await;
    assert_ack(&ws.recv().await, "i2");
    assert_eq!(srv.fetch(&path, Some(&tc), &[]).await.status, 200);
    let r = srv
        .post(
            "/api/group/user/change",
            Some(&ta),
            json!({"gid": gid, "uids": [uc], "opType": 2}),
        )
        .await;
    r.assert_ok();
    assert_eq!(
        srv.fetch(&path, Some(&tc), &[]).await.status,
        404,
        "a former member"
    );
    assert_eq!(srv.fetch(&path, Some(&tb), &[]).await.status, 200);
}

#[tokio::test]
async fn the_bytes_decide_what_a_file_is_served_as() {
    let srv = TestServer::start().await;
    let (_, t) = srv.user("alice").await;
    let html = b"<html><script>alert(document.domain)</script></html>";

    // Claiming an image type for bytes that are not one: refused.
    let r = srv.upload(&t, "x.png", "image/png", html).await;
    r.assert_error(400);
    let r = srv.upload(&t, "x.gif", "image/gif", b"GIF8").await;
    r.assert_error(400);

    // HTML and SVG are kept as declared but only ever downloaded, sandboxed.
    for (name, ct, bytes) in [
        ("page.html", "text/html; charset=utf-8", &html[..]),
        (
            "logo.svg",
            "image/svg+xml",
            &b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"[..],
        ),
    ] {
        let r = srv.upload(&t, name, ct, bytes).await;
        let f = r.assert_ok();
        let d = srv
            .fetch(&format!("/api/file/{}", f["id"]), Some(&t), &[])
            .await;
        assert_eq!(d.status, 200);
        assert_eq!(d.header("content-type"), f["contentType"].as_str().unwrap());
        assert!(
            d.header("content-disposition").starts_with("attachment;"),
            "{name}: {:?}",
            d.headers
        );
        assert_eq!(d.header("x-content-type-options"), "nosniff");
        let csp = d.header("content-security-policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("sandbox"),
            "{csp}"
        );
    }

    // PNG bytes sent as something else are a PNG: corrected, shown inline.
    let png = png_bytes(3, 2, 10, 4);
    let f = srv.upload(&t, "notes.txt", "text/html", &png).await;
    let f = f.assert_ok();
    assert_eq!(f["contentType"], "image/png");
    assert_eq!(
        (f["width"].clone(), f["height"].clone()),
        (json!(3), json!(2))
    );
    let path = format!("/api/file/{}", f["id"]);
    let d = srv.fetch(&path, Some(&t), &[]).await;
    assert_eq!(d.header("content-type"), "image/png");
    assert!(d.header("content-disposition").starts_with("inline"));
    // ?download=1 asks for an attachment, ?name= names it.
    let d = srv
        .fetch(
            &format!("{path}?download=1&name=%E7%8C%AB.png"),
            Some(&t),
            &[],
        )
        .await;
    assert_eq!(
        d.header("content-disposition"),
        "attachment; filename=\"_.png\"; filename*=UTF-8''%E7%8C%AB.png"
    );
    // ?download=false is the default; anything but 1, true, 0, false is 400.
    let d = srv
        .fetch(&format!("{path}?download=false"), Some(&t), &[])
        .await;
    assert!(d.header("content-disposition").starts_with("inline"));
    let d = srv
        .fetch(&format!("{path}?download=AAA"), Some(&t), &[])
        .await;
    assert_eq!(d.status, 400);
    let err: serde_json::Value = serde_json::from_slice(&d.body).expect("a JSON error");
    assert_eq!(err["code"], 400, "{err}");

    // Multipart bodies and empty files are refused with a reason.
    srv.upload(&t, "a", "multipart/form-data; boundary=x", b"--x--")
        .await
        .assert_error(400);
    srv.upload(&t, "a", "text/plain", b"")
        .await
        .assert_error(400);
    srv.upload(&t, "a", "not a type", b"x")
        .await
        .assert_error(400);
    srv.upload(&t, "a\u{7}b", "text/plain", b"x")
        .await
        .assert_error(400);
    // Without a token, nothing is stored.
    let r = crate::common::send_raw(
        srv.addr,
        hyper::Request::builder()
            .method("POST")
            .uri("/api/file?name=x")
            .header("host", srv.addr.to_string())
            .body(http_body_util::Full::new(hyper::body::Bytes::from_static(
                b"x",
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn uploads_over_the_size_limit_are_refused_and_leave_nothing() {
    let srv = TestServer::start_with(|c| c.max_upload_bytes = 1 << 20).await;
    let (_, t) = srv.user("alice").await;
    let big = pseudo_random((1 << 20) + 1, 5);
    let r = srv
        .upload(&t, "big.bin", "application/octet-stream", &big)
        .await;
    r.assert_error(413);

    // Without Content-Length (chunked), the limit holds as bytes arrive.
    use futures_util::stream;
    use http_body_util::StreamBody;
    use hyper::body::{Bytes, Frame};
    let pieces: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = big
        .chunks(100_000)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = StreamBody::new(stream::iter(pieces));
    let req = hyper::Request::builder()
        .method("POST")
        .uri("/api/file?name=big.bin")
        .header("host", srv.addr.to_string())
        .header("authorization", format!("Bearer {t}"))
        .body(body)
        .unwrap();
    let stream = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 413);

    // Just under the limit is fine.
    let ok = pseudo_random(1 << 20, 6);
    srv.upload(&t, "ok.bin", "application/octet-stream", &ok)
        .await
        .assert_ok();
    // The refused uploads left no pending file behind. A refused upload's
    // leftovers are dropped after its answer, by a task of their own, which
    // nothing announces: polled.
    let left = || {
        (
            count(&srv, "SELECT count(*) FROM files"),
            count(&srv, "SELECT count(*) FROM file_chunks"),
        )
    };
    let clean = eventually(WAIT, || std::future::ready(left() == (1, 4))).await;
    let (files, chunks) = left();
    assert!(clean, "{files} files, {chunks} chunks left");
}

#[tokio::test]
async fn identical_bytes_are_stored_once_and_quotas_count_per_uploader() {
    let srv = TestServer::start_with(|c| c.file_quota_bytes = 2 << 20).await;
    let (_, ta) = srv.user("alice").await;
    let (_, tb) = srv.user("bob").await;
    let bytes = pseudo_random(600_000, 7);
    let a = srv
        .upload_ok(&ta, "a.bin", "application/octet-stream", &bytes)
        .await;
    let b = srv
        .upload_ok(&tb, "b.bin", "application/octet-stream", &bytes)
        .await;
    assert_eq!(a, b, "the same bytes are the same file");
    let again = srv
        .upload_ok(&ta, "again.bin", "application/octet-stream", &bytes)
        .await;
    assert_eq!(a, again);
    assert_eq!(count(&srv, "SELECT count(*) FROM files"), 1);
    assert_eq!(count(&srv, "SELECT count(*) FROM file_chunks"), 3);
    // Both may read it: each uploaded it.
    assert_eq!(
        srv.fetch(&format!("/api/file/{a}"), Some(&tb), &[])
            .await
            .status,
        200
    );

    // Alice's 600 kB count once against her 2 MiB: 1.4 MB more fit, then
    // nothing (refused at once, from Content-Length).
    srv.upload_ok(
        &ta,
        "c.bin",
        "application/octet-stream",
        &pseudo_random(1_400_000, 8),
    )
    .await;
    let r = srv
        .upload(
            &ta,
            "d.bin",
            "application/octet-stream",
            &pseudo_random(100_000, 9),
        )
        .await;
    r.assert_error(413);
    assert!(
        r.json["msg"].as_str().unwrap().contains("quota"),
        "{}",
        r.json
    );
    // Bob's quota is his own: he has the shared 600 kB only.
    srv.upload_ok(
        &tb,
        "e.bin",
        "application/octet-stream",
        &pseudo_random(1_400_000, 10),
    )
    .await;
    assert_eq!(count(&srv, "SELECT count(*) FROM files"), 3);
}

#[tokio::test]
async fn image_and_file_messages_travel_end_to_end() {
    let srv = TestServer::start().await;
    let ((ua, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut alice = srv.ws_login(&ta).await;
    let mut bob = srv.ws_login(&tb).await;

    let png = png_bytes(800, 600, 5000, 11);
    let image = srv.upload_ok(&ta, "holiday.png", "image/png", &png).await;
    // What the client says about size or type is replaced by the truth.
    let content =
        json!({"fileId": image, "name": "holiday.png", "size": 1, "contentType": "text/html"});
    alice
        .send(msg_frame("Image", gid, &content.to_string(), "img-1"))
        .await;
    let id = assert_ack(&alice.recv().await, "img-1").unwrap();
    let push = bob.recv().await;
    assert_eq!(push["event"], "Msg");
    assert_eq!(push["body"]["kind"], "Image");
    assert_eq!(push["body"]["msgId"], id);
    let got: Value = serde_json::from_str(push["body"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        got,
        json!({"fileId": image, "name": "holiday.png", "size": png.len(), "contentType": "image/png", "width": 800, "height": 600})
    );
    // Bob fetches the picture the message names.
    let d = srv
        .fetch(&format!("/api/file/{}", got["fileId"]), Some(&tb), &[])
        .await;
    assert_eq!(d.status, 200);
    assert!(d.body == png);

    let pdf = b"%PDF-1.7\n% a tax return\n%%EOF\n";
    let file = srv
        .upload_ok(&ta, "tax return.pdf", "application/pdf", pdf)
        .await;
    alice
        .send(file_frame("File", gid, file, "tax return.pdf", "file-1"))
        .await;
    assert_ack(&alice.recv().await, "file-1");
    let push = bob.recv().await;
    assert_eq!(push["body"]["kind"], "File");
    let got: Value = serde_json::from_str(push["body"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(got["contentType"], "application/pdf");
    assert_eq!(got["name"], "tax return.pdf");
    assert_eq!(got["width"], Value::Null);
    let d = srv
        .fetch(&format!("/api/file/{file}"), Some(&tb), &[])
        .await;
    assert_eq!(d.body, pdf);
    assert!(d.header("content-disposition").starts_with("attachment"));

    // History shows kinds 2 and 3 with the same content; a resend with the
    // same clientMsgId stores nothing new.
    alice
        .send(file_frame("File", gid, file, "tax return.pdf", "file-1"))
        .await;
    assert_ack(&alice.recv().await, "file-1");
    let msgs = history_msgs(&srv, &tb, gid).await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (msgs[0]["kind"].clone(), msgs[1]["kind"].clone()),
        (json!(2), json!(3))
    );
    assert_eq!(msgs[0]["uid"], ua);
    let stored: Value = serde_json::from_str(msgs[1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(stored["fileId"], file);
    // Nor was the resend pushed again.
    assert_nothing_before_marker(&mut alice, gid, &mut [&mut bob]).await;
}

#[tokio::test]
async fn messages_may_only_refer_to_the_senders_own_files() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut bob = srv.ws_login(&tb).await;
    let alices = srv
        .upload_ok(&ta, "secret.png", "image/png", &png_bytes(1, 1, 10, 12))
        .await;
    // Someone else's file: 403, even in a conversation both are in.
    bob.send(file_frame("Image", gid, alices, "x.png", "b1"))
        .await;
    assert_refused(&bob.recv().await, 403);
    bob.send(file_frame("File", gid, alices, "x.png", "b2"))
        .await;
    assert_refused(&bob.recv().await, 403);
    // And still not readable by bob: nothing was sent.
    assert_eq!(
        srv.fetch(&format!("/api/file/{alices}"), Some(&tb), &[])
            .await
            .status,
        404
    );
    // No such file.
    bob.send(file_frame("Image", gid, 999, "x.png", "b3")).await;
    assert_refused(&bob.recv().await, 404);
    // Content that is not an attachment, or an Image that is not an image.
    bob.send(msg_frame("Image", gid, "https://example.org/cat.png", "b4"))
        .await;
    assert_refused(&bob.recv().await, 400);
    bob.send(msg_frame("File", gid, "{\"name\":\"x\"}", "b5"))
        .await;
    assert_refused(&bob.recv().await, 400);
    let text = srv
        .upload_ok(&tb, "a.txt", "text/plain", b"plain text")
        .await;
    bob.send(file_frame("Image", gid, text, "a.txt", "b6"))
        .await;
    assert_refused(&bob.recv().await, 400);
    bob.send(file_frame("File", gid, text, "a\nb", "b7")).await;
    assert_refused(&bob.recv().await, 400);
    // Unknown kinds stay refused, naming the known ones.
    bob.send(msg_frame("Video", gid, "x", "b8")).await;
    let answer = bob.recv().await;
    assert_refused(&answer, 400);
    assert!(
        answer["content"].as_str().unwrap().contains("File"),
        "{answer}"
    );
    // His own file goes through.
    bob.send(file_frame("File", gid, text, "a.txt", "b9")).await;
    assert_ack(&bob.recv().await, "b9");
    assert_eq!(history_msgs(&srv, &ta, gid).await.len(), 1);
}

#[tokio::test]
async fn unsent_files_are_collected_after_the_grace_period() {
    let srv = TestServer::start().await;
    let ((_, ta), _, gid) = direct_pair(&srv, "alice", "bob").await;
    let sent = srv
        .upload_ok(&ta, "sent.png", "image/png", &png_bytes(1, 1, CHUNK, 13))
        .await;
    let unsent = srv
        .upload_ok(
            &ta,
            "unsent.bin",
            "application/octet-stream",
            &pseudo_random(1000, 14),
        )
        .await;
    let mut ws = srv.ws_login(&ta).await;
    ws.send(file_frame("Image", gid, sent, "sent.png", "s1"))
        .await;
    assert_ack(&ws.recv().await, "s1");

    let db = &srv.app().db;
    // Within the grace period nothing goes.
    let none = db.collect_files(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(none.files, 0);
    // Not a wait for something: the file must grow older than the 10 ms
    // grace period below, and a sleep lasts at least as long as asked.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let done = db.collect_files(Duration::from_millis(10)).await.unwrap();
    assert_eq!((done.files, done.bytes), (1, 1000));
    assert_eq!(
        srv.fetch(&format!("/api/file/{unsent}"), Some(&ta), &[])
            .await
            .status,
        404
    );
    assert_eq!(
        srv.fetch(&format!("/api/file/{sent}"), Some(&ta), &[])
            .await
            .status,
        200
    );
    assert_eq!(count(&srv, "SELECT count(*) FROM uploads"), 1);
    // Its id is gone for messages too.
    ws.send(file_frame("File", gid, unsent, "unsent.bin", "s2"))
        .await;
    assert_refused(&ws.recv().await, 404);
    // A quota freed: uploading it again works and gives a new id.
    let again = srv
        .upload_ok(
            &ta,
            "unsent.bin",
            "application/octet-stream",
            &pseudo_random(1000, 14),
        )
        .await;
    assert_ne!(again, unsent);
}

#[tokio::test]
async fn rim_files_gc_collects_beside_a_running_server() {
    let srv = TestServer::start().await;
    let (_, t) = srv.user("alice").await;
    let id = srv
        .upload_ok(
            &t,
            "old.bin",
            "application/octet-stream",
            &pseudo_random(5000, 15),
        )
        .await;
    let uploaded = tokio::time::Instant::now();
    let config = srv.db_path.with_file_name("empty.toml");
    std::fs::write(&config, "").unwrap();
    let run = |grace: &'static str| {
        let db = srv.db_path.clone();
        let config = config.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_rim"))
                .args(["files", "gc", "--grace", grace, "--db"])
                .arg(&db)
                .arg("--config")
                .arg(&config)
                .output()
                .await
                .unwrap()
        }
    };
    let out = run("1h").await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("0 unsent files removed"),
        "{out:?}"
    );
    // Not a wait for something: the file must grow older than the shortest
    // grace the command takes (1 s; upload times are in milliseconds, and
    // the file's was taken before the upload was answered).
    tokio::time::sleep_until(uploaded + Duration::from_millis(1005)).await;
    let out = run("1s").await;
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with("1 unsent file removed, 5000 bytes freed"),
        "{said}"
    );
    assert_eq!(
        srv.fetch(&format!("/api/file/{id}"), Some(&t), &[])
            .await
            .status,
        404
    );
    let out = run("soon").await;
    assert!(!out.status.success());
}

#[tokio::test]
async fn a_backup_holds_the_files() {
    let srv = TestServer::start().await;
    let ((_, ta), _, gid) = direct_pair(&srv, "alice", "bob").await;
    let png = png_bytes(4, 4, CHUNK + 17, 16);
    let id = srv.upload_ok(&ta, "keep.png", "image/png", &png).await;
    let mut ws = srv.ws_login(&ta).await;
    ws.send(file_frame("Image", gid, id, "keep.png", "k1"))
        .await;
    assert_ack(&ws.recv().await, "k1");
    let dest = srv.db_path.with_file_name("backup.db");
    let source = rim::store::admin::open_read_only(&srv.db_path).unwrap();
    rim::store::admin::copy_into(&source, &dest).unwrap();
    drop(source);
    // The backup, served as it is, hands out the same bytes.
    let copy = TestServer::start_with(|c| c.db = dest.clone()).await;
    let ta = copy.login("alice").await;
    let d = copy.fetch(&format!("/api/file/{id}"), Some(&ta), &[]).await;
    assert_eq!(d.status, 200);
    assert!(d.body == png);
}

#[tokio::test]
async fn bidi_controls_are_stripped_from_file_names_and_refused_in_names() {
    let srv = TestServer::start().await;
    let ((_, ta), (_, tb), gid) = direct_pair(&srv, "alice", "bob").await;
    let mut alice = srv.ws_login(&ta).await;
    let mut bob = srv.ws_login(&tb).await;
    // U+202E shows "invoice\u{202E}fdp.exe" as "invoiceexe.pdf".
    let r = srv
        .upload(
            &ta,
            "invoice\u{202E}fdp.exe",
            "application/octet-stream",
            b"MZ",
        )
        .await;
    assert_eq!(r.assert_ok()["name"], "invoicefdp.exe");
    let file = r.assert_ok()["id"].as_u64().unwrap();
    alice
        .send(file_frame(
            "File",
            gid,
            file,
            "\u{2067}tax\u{202E}fdp.exe\u{2069}",
            "f1",
        ))
        .await;
    assert_ack(&alice.recv().await, "f1");
    let push = bob.recv().await;
    let got: Value = serde_json::from_str(push["body"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(got["name"], "taxfdp.exe", "{push}");

    // Names people type are refused instead (see validate::text).
    srv.post(
        "/api/user/create",
        None,
        json!({"account": "mallory", "password": "password-mallory", "name": "Mal\u{202E}yrol"}),
    )
    .await
    .assert_error(400);
    srv.post(
        "/api/group/create",
        Some(&ta),
        json!({"group": {"name": "\u{202E}spuorg"}, "users": []}),
    )
    .await
    .assert_error(400);
}
