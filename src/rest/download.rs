//! `GET /api/file/{id}`: an attachment out, streamed from the database.
//!
//! A download streams the chunks back (a `Range` just the chunks it
//! covers) to the uploader and to the members of a conversation the file
//! was sent in; everyone else gets 404, as if there were no such file. Only
//! the four image types are served `inline`, everything else as an
//! attachment, and every answer forbids sniffing and scripting, so an
//! uploaded HTML or SVG page can never run in the server's origin.

use http_body_util::{Either, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use super::ctx::Ctx;
use super::file_body::FileBody;
use super::respond::{Body, error_response, harden};
use crate::error::{Error, Result};
use crate::media::{self, default_name};
use crate::protocol;
use crate::store::FileMeta;
use crate::validate;

/// The policy of every file answer: nothing may load or run, and a page
/// opened from it is sandboxed (no scripts, an opaque origin).
const FILE_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// A single byte range of a file, inclusive, from a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    /// No usable range: serve the whole file (also for several ranges,
    /// which RFC 9110 lets a server ignore).
    Whole,
    Bytes(u64, u64),
    /// Outside the file: 416.
    Unsatisfiable,
}

fn parse_range(header: &str, size: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let num = |s: &str| -> Option<Option<u64>> {
        let s = s.trim();
        if s.is_empty() {
            Some(None)
        } else if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok().map(Some)
        } else {
            None
        }
    };
    let (Some(first), Some(last)) = (num(a), num(b)) else {
        return Range::Whole;
    };
    match (first, last) {
        // bytes=-N: the last N bytes.
        (None, Some(n)) => {
            if n == 0 || size == 0 {
                Range::Unsatisfiable
            } else {
                Range::Bytes(size.saturating_sub(n), size - 1)
            }
        }
        (Some(start), end) => {
            if start >= size {
                return Range::Unsatisfiable;
            }
            match end {
                Some(end) if end < start => Range::Whole,
                Some(end) => Range::Bytes(start, end.min(size - 1)),
                None => Range::Bytes(start, size - 1),
            }
        }
        (None, None) => Range::Whole,
    }
}

/// `If-None-Match` or `If-Range` naming this ETag (weak comparison for the
/// first, as RFC 9110 asks; `*` matches).
fn names_etag(value: Option<&HeaderValue>, etag: &str, weak: bool) -> bool {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    text.split(',').map(str::trim).any(|tag| {
        (weak && tag == "*")
            || (if weak {
                tag.strip_prefix("W/").unwrap_or(tag)
            } else {
                tag
            }) == etag
    })
}

/// `Content-Disposition` with the name as plain ASCII and as RFC 8187 UTF-8.
fn disposition(kind: &str, name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// `GET /api/file/{id}[?download=1][&name=NAME]`.
pub async fn download(ctx: Ctx) -> Result<Response<Body>> {
    let id_text = ctx.param.as_str();
    let not_found = || Error::not_found(format!("file {id_text} not found"));
    if id_text.is_empty() || !id_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_found());
    }
    let attachment = match ctx.query_opt("download") {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(other) => {
            return Err(Error::bad_request(format!(
                "download is 1, true, 0 or false, not {other:?}"
            )));
        }
    };
    let id: u64 = id_text.parse().map_err(|_| not_found())?;
    let file = ctx
        .app
        .db
        .readable_file(ctx.uid, id)
        .await?
        .ok_or_else(not_found)?;
    let etag = format!("\"{}\"", protocol::hex(&file.sha256));
    let inline = media::is_inline_image(&file.content_type) && !attachment;
    let name = match ctx.query_opt("name") {
        Some(n) if !validate::file_name(n)?.is_empty() => validate::file_name(n)?,
        _ => default_name(Some(file.id), &file.content_type),
    };
    let mut resp = if names_etag(ctx.headers.get(header::IF_NONE_MATCH), &etag, true) {
        let mut resp = Response::new(Either::Left(Full::new(Bytes::new())));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp
    } else {
        let resp = bytes(&ctx, &file, &etag);
        if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(resp);
        }
        resp
    };
    if resp.status() != StatusCode::NOT_MODIFIED {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&file.content_type) {
            h.insert(header::CONTENT_TYPE, v);
        }
        h.insert(
            header::CONTENT_DISPOSITION,
            disposition(if inline { "inline" } else { "attachment" }, &name),
        );
    }
    file_headers(resp.headers_mut(), &etag);
    Ok(resp)
}

/// The answer carrying the file's bytes: all of them, or the range asked
/// for (when `If-Range`, if sent, still names this version), or 416 for a
/// range outside the file.
fn bytes(ctx: &Ctx, file: &FileMeta, etag: &str) -> Response<Body> {
    let if_range = ctx.headers.get(header::IF_RANGE);
    let range = match ctx.headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if if_range.is_none() || names_etag(if_range, etag, false) => {
            parse_range(r, file.size)
        }
        _ => Range::Whole,
    };
    let (start, end) = match range {
        Range::Unsatisfiable => {
            let mut resp = error_response(&Error::RangeNotSatisfiable(format!(
                "the range is outside the file of {} bytes",
                file.size
            )));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", file.size)) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp.map(Either::Left);
        }
        Range::Whole => (0, file.size),
        Range::Bytes(first, last) => (first, last + 1),
    };
    let body = FileBody::new(ctx.app.db.clone(), file, start, end);
    let mut resp = Response::new(Either::Right(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if let Range::Bytes(first, last) = range {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{}", file.size)) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}

/// What every file answer carries: its version, how long it may be kept,
/// and that nothing in it may be sniffed, framed or run.
fn file_headers(h: &mut HeaderMap, etag: &str) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    // The bytes of an id never change; only the person's own browser keeps them.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FILE_CSP),
    );
    harden(h);
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_rfc_9110_says() {
        assert_eq!(parse_range("bytes=0-99", 1000), Range::Bytes(0, 99));
        assert_eq!(parse_range("bytes=900-", 1000), Range::Bytes(900, 999));
        assert_eq!(parse_range("bytes=-100", 1000), Range::Bytes(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), Range::Bytes(0, 999));
        assert_eq!(parse_range("bytes=990-5000", 1000), Range::Bytes(990, 999));
        assert_eq!(parse_range("bytes=1000-", 1000), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Range::Whole);
        assert_eq!(parse_range("bytes=5-1", 1000), Range::Whole);
        assert_eq!(parse_range("items=0-1", 1000), Range::Whole);
        assert_eq!(parse_range("bytes=a-b", 1000), Range::Whole);
    }

    #[test]
    fn dispositions_are_safe() {
        let d = disposition("attachment", "naïve \"plan\".pdf");
        assert_eq!(
            d.to_str().unwrap(),
            "attachment; filename=\"na_ve _plan_.pdf\"; filename*=UTF-8''na%C3%AFve%20%22plan%22.pdf"
        );
    }
}
