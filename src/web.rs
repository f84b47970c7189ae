//! The built-in web client: the files of `web/`, embedded in the binary at
//! build time and served from `/` (`/` is `web/index.html`).
//!
//! There is no build step: the browser loads plain ES modules by their own
//! names. Since those names carry no content hash, every answer says
//! `Cache-Control: no-cache` (the browser keeps the file but asks before using
//! it) and carries a strong `ETag`, the SHA-256 of the file computed once at
//! first use; a matching `If-None-Match` gets an empty 304. After an upgrade
//! of the binary the hashes change and browsers fetch the new files.
//!
//! Every answer also carries a strict Content-Security-Policy: scripts,
//! styles, images and connections only from this origin (plus the WebSocket
//! to this same host, and `blob:` images: pictures of messages are fetched
//! with the token and shown from blob URLs), no inline script or style, no
//! framing. The client renders every user-supplied text with `textContent`,
//! and the policy is the second line of defence should that ever slip.
//!
//! Only `GET` and `HEAD` are served; other methods on a file's path get 405.
//! A path that names no file returns `None`, and the router answers its
//! usual JSON 404.

use std::sync::LazyLock;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::rest;

/// Embeds files of `web/` as (URL path, bytes): `"js/main.js"` is served at
/// `/js/main.js`.
macro_rules! embed {
    ($($file:literal),* $(,)?) => {
        &[$((concat!("/", $file), include_bytes!(concat!("../web/", $file)) as &[u8])),*]
    };
}

/// Every file of `web/`. A file added to `web/` must be listed here; the
/// integration test `web::every_file_of_web_is_served_with_its_bytes_and_type`
/// fails until it is.
const FILES: &[(&str, &[u8])] = embed![
    "index.html",
    "app.css",
    "favicon.svg",
    "manifest.webmanifest",
    "sw.js",
    "icons/icon-192.png",
    "icons/icon-512.png",
    "js/main.js",
    "js/api.js",
    "js/socket.js",
    "js/state.js",
    "js/push.js",
    "js/dom.js",
    "js/format.js",
    "js/i18n.js",
    "js/i18n/en.js",
    "js/i18n/zh-CN.js",
    "js/views/login.js",
    "js/views/chats.js",
    "js/views/conversation.js",
    "js/views/friends.js",
    "js/views/groups.js",
    "js/views/search.js",
    "js/views/profile.js",
    "js/views/actions.js",
];

/// A file ready to serve: its bytes and the headers that depend only on it.
struct Asset {
    path: &'static str,
    body: Bytes,
    content_type: HeaderValue,
    etag: HeaderValue,
}

/// Built on first use: hashing happens once per process, not per request.
static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(path, bytes)| Asset {
            path,
            body: Bytes::from_static(bytes),
            content_type: HeaderValue::from_static(content_type(path)),
            etag: etag_of(bytes),
        })
        .collect()
});

/// The URL paths of the embedded files, for tests and documentation.
pub fn paths() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(path, _)| *path)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("webmanifest") => "application/manifest+json",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn etag_of(bytes: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(bytes);
    // 128 bits of the hash are plenty to tell versions of a file apart.
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value")
}

/// Answers a request for a web client file, or `None` when `req` names none.
pub fn serve<B>(req: &Request<B>) -> Option<Response<Full<Bytes>>> {
    let path = match req.uri().path() {
        "/" => "/index.html",
        other => other,
    };
    let asset = ASSETS.iter().find(|a| a.path == path)?;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = rest::error_response(&Error::MethodNotAllowed(format!(
            "{} is not supported on {}; use GET",
            req.method(),
            req.uri().path()
        )));
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(resp);
    }
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|v| etag_matches(v, &asset.etag));
    let mut resp = if fresh {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp
    } else {
        // For HEAD, hyper sends the headers (Content-Length included) and
        // leaves the body out.
        let mut resp = Response::new(Full::new(asset.body.clone()));
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, asset.content_type.clone());
        resp
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, asset.etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h, req.headers().get(header::HOST));
    Some(resp)
}

/// Weak comparison (RFC 9110 13.1.2), as `If-None-Match` requires: `W/`
/// prefixes are ignored, `*` matches anything, lists are comma-separated.
fn etag_matches(header: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(header) = header.to_str() else {
        return false;
    };
    let ours = etag.to_str().unwrap_or_default();
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

fn security_headers(h: &mut HeaderMap, host: Option<&HeaderValue>) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        content_security_policy(host),
    );
    rest::harden(h);
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    );
}

/// The policy for a page served under `host`.
///
/// CSP level 3 lets `'self'` cover `ws:`/`wss:` to the same host, but older
/// browsers (Safari before 15.4 among them) do not, so the WebSocket to this
/// very host is also named explicitly, taken from the `Host` header when it
/// is a plain `name[:port]` or `[v6]:port`.
fn content_security_policy(host: Option<&HeaderValue>) -> HeaderValue {
    const BASE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
                        font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
                        frame-ancestors 'none'; connect-src 'self'";
    let host = host
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_plain_host(h));
    let policy = match host {
        Some(host) => format!("{BASE} ws://{host} wss://{host}"),
        None => BASE.to_owned(),
    };
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static(BASE))
}

fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_compare_weakly_and_in_lists() {
        let ours = HeaderValue::from_static("\"abc\"");
        let m = |h: &'static str| etag_matches(&HeaderValue::from_static(h), &ours);
        assert!(m("\"abc\""));
        assert!(m("W/\"abc\""));
        assert!(m("\"x\", \"abc\""));
        assert!(m("*"));
        assert!(!m("\"abd\""));
        assert!(!m("abc"));
    }

    #[test]
    fn the_policy_names_only_a_plain_host() {
        let csp = |h: &'static str| {
            content_security_policy(Some(&HeaderValue::from_static(h)))
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert!(
            csp("pi.local:8000")
                .ends_with("connect-src 'self' ws://pi.local:8000 wss://pi.local:8000")
        );
        assert!(csp("[::1]:8000").contains("ws://[::1]:8000"));
        assert!(csp("evil; script-src *").ends_with("connect-src 'self'"));
        assert!(!csp("evil; script-src *").contains("evil"));
    }

    #[test]
    fn every_file_has_a_known_type() {
        for path in paths() {
            assert_ne!(content_type(path), "application/octet-stream", "{path}");
        }
    }
}
