//! The built-in web client's files: served from `/` with their exact bytes,
//! the right types, ETags that revalidate to 304, and the security headers.
//! (The client itself is tested in a real browser by `tests/browser`.)

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request};
use serde_json::Value;

use crate::common::TestServer;

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .expect("ASCII header")
    }
}

async fn fetch(addr: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        req = req.header("host", addr.to_string());
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let reply = crate::common::send_raw(addr, req).await;
    Answer {
        status: reply.status,
        headers: reply.headers,
        body: Bytes::from(reply.body),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    fetch(addr, Method::GET, path, &[]).await
}

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// Every file under `web/`, as (URL path, bytes on disk).
fn files_on_disk() -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("read web/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((format!("/{rel}"), std::fs::read(&path).expect("read file")));
            }
        }
    }
    let mut out = Vec::new();
    walk(&web_dir(), &web_dir(), &mut out);
    out.sort();
    out
}

fn expected_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("webmanifest") => "application/manifest+json",
        other => panic!("web/ has a file of a type the test does not know: {path} ({other:?})"),
    }
}

#[tokio::test]
async fn the_app_is_served_at_the_root_with_security_headers() {
    let srv = TestServer::start().await;
    let root = get(srv.addr, "/").await;
    assert_eq!(root.status, 200);
    assert_eq!(root.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(
        &root.body[..],
        &std::fs::read(web_dir().join("index.html")).unwrap()[..]
    );
    assert_eq!(root.header("cache-control"), "no-cache");
    assert_eq!(root.header("x-content-type-options"), "nosniff");
    assert_eq!(root.header("x-frame-options"), "DENY");
    assert_eq!(root.header("referrer-policy"), "no-referrer");
    let csp = root.header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        // Pictures of messages are fetched with the token, shown from blob: URLs.
        "img-src 'self' blob:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(
            csp.split("; ").any(|d| d == directive),
            "{directive} missing from {csp}"
        );
    }
    let addr = srv.addr;
    assert!(
        csp.split("; ")
            .any(|d| d == format!("connect-src 'self' ws://{addr} wss://{addr}")),
        "the WebSocket to this host must be allowed, and nothing else: {csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    // `/index.html` is the same file.
    let index = get(srv.addr, "/index.html").await;
    assert_eq!(index.status, 200);
    assert_eq!(index.body, root.body);
    assert_eq!(index.header("etag"), root.header("etag"));
}

#[tokio::test]
async fn every_file_of_web_is_served_with_its_bytes_and_type() {
    let srv = TestServer::start().await;
    let on_disk = files_on_disk();
    assert!(on_disk.len() >= 5, "web/ looks empty: {on_disk:?}");
    let embedded: HashSet<&str> = rim::web::paths().collect();
    let mut etags = HashSet::new();
    for (path, bytes) in &on_disk {
        assert!(
            embedded.contains(path.as_str()),
            "{path} is in web/ but not listed in src/web.rs"
        );
        let a = get(srv.addr, path).await;
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.header("content-type"), expected_type(path), "{path}");
        assert_eq!(&a.body[..], &bytes[..], "{path} is served as it is on disk");
        assert!(a.headers.contains_key("content-security-policy"), "{path}");
        assert_eq!(a.header("x-content-type-options"), "nosniff", "{path}");
        let etag = a.header("etag").to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 20,
            "{path}: {etag}"
        );
        assert!(
            etags.insert(etag),
            "{path} shares its ETag with another file"
        );
    }
    assert_eq!(
        embedded.len(),
        on_disk.len(),
        "src/web.rs lists files that are not in web/"
    );
}

/// What an installable web app needs of its manifest: names, a start URL,
/// standalone display, colours, and PNG icons of 192 and 512 pixels that
/// the server serves at the sizes the manifest states.
#[tokio::test]
async fn the_manifest_makes_the_app_installable() {
    let srv = TestServer::start().await;
    let a = get(srv.addr, "/manifest.webmanifest").await;
    assert_eq!(a.status, 200);
    let m: Value = serde_json::from_slice(&a.body).expect("manifest is JSON");
    for key in [
        "name",
        "short_name",
        "start_url",
        "background_color",
        "theme_color",
    ] {
        assert!(
            m[key].as_str().is_some_and(|v| !v.is_empty()),
            "manifest lacks {key}"
        );
    }
    assert_eq!(m["display"], "standalone");
    let mut sizes = Vec::new();
    for icon in m["icons"].as_array().expect("icons") {
        if icon["type"] != "image/png" {
            continue;
        }
        let src = icon["src"].as_str().expect("src");
        let png = get(srv.addr, src).await;
        assert_eq!(png.status, 200, "{src}");
        assert_eq!(png.header("content-type"), "image/png", "{src}");
        let b = &png.body[..];
        assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{src} is a PNG");
        assert_eq!(&b[12..16], b"IHDR", "{src}");
        let width = u32::from_be_bytes(b[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(b[20..24].try_into().unwrap());
        assert_eq!(
            icon["sizes"].as_str(),
            Some(format!("{width}x{height}").as_str()),
            "{src}: the size stated is the size drawn"
        );
        sizes.push(width);
    }
    sizes.sort();
    assert_eq!(sizes, [192, 512], "PNG icons of 192 and 512 pixels");
}

#[tokio::test]
async fn a_matching_etag_gets_an_empty_304() {
    let srv = TestServer::start().await;
    let first = get(srv.addr, "/app.css").await;
    let etag = first.header("etag").to_owned();
    for header in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"stale\", {etag}"),
        "*".to_owned(),
    ] {
        let again = fetch(
            srv.addr,
            Method::GET,
            "/app.css",
            &[("if-none-match", &header)],
        )
        .await;
        assert_eq!(again.status, 304, "If-None-Match: {header}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), etag);
        assert_eq!(again.header("cache-control"), "no-cache");
    }
    let stale = fetch(
        srv.addr,
        Method::GET,
        "/app.css",
        &[("if-none-match", "\"stale\"")],
    )
    .await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, first.body);
    // Another file's ETag does not match.
    let other = get(srv.addr, "/js/main.js").await;
    let cross = fetch(
        srv.addr,
        Method::GET,
        "/app.css",
        &[("if-none-match", other.header("etag"))],
    )
    .await;
    assert_eq!(cross.status, 200);
}

#[tokio::test]
async fn head_works_other_methods_get_405_and_unknown_paths_404() {
    let srv = TestServer::start().await;
    let full = get(srv.addr, "/js/state.js").await;
    let head = fetch(srv.addr, Method::HEAD, "/js/state.js", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), full.body.len().to_string());
    assert_eq!(head.header("etag"), full.header("etag"));

    let post = fetch(srv.addr, Method::POST, "/", &[]).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), "GET, HEAD");
    let json: Value = serde_json::from_slice(&post.body).expect("JSON error");
    assert_eq!(json["code"], 405);

    for path in [
        "/nope.html",
        "/js/",
        "/js",
        "/web/index.html",
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/index.html/",
    ] {
        let a = get(srv.addr, path).await;
        assert_eq!(a.status, 404, "{path}");
        let json: Value = serde_json::from_slice(&a.body).expect("JSON error");
        assert_eq!(json["ok"], false, "{path}");
    }
}

#[tokio::test]
async fn a_host_header_that_is_not_a_plain_host_stays_out_of_the_policy() {
    let srv = TestServer::start().await;
    let a = fetch(
        srv.addr,
        Method::GET,
        "/",
        &[("host", "x; script-src https://evil.example")],
    )
    .await;
    assert_eq!(a.status, 200);
    let csp = a.header("content-security-policy");
    assert!(!csp.contains("evil"), "{csp}");
    assert!(csp.ends_with("connect-src 'self'"), "{csp}");
}
