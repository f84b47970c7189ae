//! `POST /api/file` and `GET /api/file/{id}`: attachments in and out,
//! streamed chunk by chunk between the socket and the database.
//!
//! An upload is the raw request body (multipart is not supported: it would
//! cost a parser for nothing a client cannot do with a plain body), its
//! `Content-Type` the declared type and `?name=` its name. It is hashed as
//! it streams in and stored in [`CHUNK_SIZE`] chunks, one database write
//! each, with one write in flight while the next chunk arrives. Its size is
//! checked against `files.max_upload_mb` and the uploader's quota from
//! `Content-Length` before anything is read, and again as bytes arrive. The
//! declared type is checked against the bytes: bytes that are PNG, JPEG,
//! GIF or WebP are stored as that type whatever was declared (corrected);
//! a declared one of those four that the bytes are not is refused (400);
//! any other type is kept as declared.
//!
//! A download streams the chunks back (a `Range` just the chunks it
//! covers) to the uploader and to the members of a conversation the file
//! was sent in; everyone else gets 404, as if there were no such file. Only
//! the four image types are served `inline`, everything else as an
//! attachment, and every answer forbids sniffing and scripting, so an
//! uploaded HTML or SVG page can never run in the server's origin.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::{Body, error_response};
use crate::app::App;
use crate::error::{Error, Result};
use crate::media::{self, check_name, default_name};
use crate::protocol::{self, FileOut};
use crate::store::files::{CHUNK_SIZE, quota_error};
use crate::store::{Db, FileMeta, NewFile};

/// The policy of every file answer: nothing may load or run, and a page
/// opened from it is sandboxed (no scripts, an opaque origin).
const FILE_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// Drops a pending upload if the request ends before it completes (an
/// error, or the client going away and the handler being dropped).
struct PendingUpload {
    db: Db,
    id: u64,
    armed: bool,
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (db, id) = (self.db.clone(), self.id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = db.abort_upload(id).await {
                    crate::log_warn!("cannot drop an unfinished upload", file = id, error = e);
                }
            });
        }
    }
}

fn declared_type(headers: &HeaderMap) -> Result<String> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok("application/octet-stream".to_owned());
    };
    let text = value
        .to_str()
        .map_err(|_| Error::bad_request("Content-Type is not readable text"))?;
    if text
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/")
    {
        return Err(Error::bad_request(
            "multipart uploads are not supported: send the file's bytes as the request body, \
             its type as Content-Type and its name as ?name=",
        ));
    }
    media::normalize_content_type(text).ok_or_else(|| {
        Error::bad_request(format!(
            "Content-Type {text:?} is not a media type like image/png"
        ))
    })
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::bad_request("invalid Content-Length"))
        })
        .transpose()
}

/// The stored type of an upload: what the bytes are when they are one of
/// the recognised images, else the declared type, which must then not
/// claim to be one of them.
fn decide_type(
    declared: &str,
    image: Option<media::Image>,
) -> Result<(String, Option<u32>, Option<u32>)> {
    match image {
        Some(img) => Ok((img.content_type.to_owned(), img.width, img.height)),
        None if media::is_inline_image(declared) => Err(Error::bad_request(format!(
            "the file is not a {declared} image: its bytes are not one (png, jpeg, gif and webp are recognised by their contents)"
        ))),
        None => Ok((declared.to_owned(), None, None)),
    }
}

fn too_large(max: u64) -> Error {
    Error::TooLarge(format!(
        "the file is larger than {} MiB (files.max_upload_mb)",
        max >> 20
    ))
}

/// `POST /api/file?name=NAME`: stores the body as a file of the caller's.
pub async fn upload(
    app: &App,
    uid: u64,
    query: &HashMap<String, String>,
    req: Request<Incoming>,
) -> Result<Vec<u8>> {
    let name = check_name(query.get("name").map_or("", String::as_str))?;
    let declared = declared_type(req.headers())?;
    let max = app.config.max_upload_bytes;
    let quota = app.config.file_quota_bytes;
    let length = content_length(req.headers())?;
    if length.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    if length == Some(0) {
        return Err(Error::bad_request(
            "the file is empty: send its bytes as the body",
        ));
    }
    let room = if quota > 0 {
        quota.saturating_sub(app.db.quota_used(uid).await?)
    } else {
        u64::MAX
    };
    if length.is_some_and(|n| n > room) {
        return Err(quota_error(quota));
    }

    let mut body = req.into_body();
    let mut hasher = Sha256::new();
    let mut buf: Vec<u8> =
        Vec::with_capacity(length.map_or(CHUNK_SIZE, |n| (n as usize).min(CHUNK_SIZE)));
    let mut total: u64 = 0;
    let mut seq: u64 = 0;
    let mut image: Option<Option<media::Image>> = None;
    let mut pending: Option<PendingUpload> = None;
    // The previous chunk's write: at most one in flight while the next
    // chunk arrives, so the upload goes at the pace of the disk.
    let mut in_flight: Option<JoinHandle<Result<()>>> = None;
    let stall = app.config.idle_timeout.max(Duration::from_secs(1));
    let result: Result<()> = async {
        loop {
            let frame = match tokio::time::timeout(stall, body.frame()).await {
                Err(_) => return Err(Error::bad_request("the upload stalled")),
                Ok(None) => return Ok(()),
                Ok(Some(Err(_))) => return Err(Error::bad_request("the upload was interrupted")),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            total += data.len() as u64;
            if total > max {
                return Err(too_large(max));
            }
            if total > room {
                return Err(quota_error(quota));
            }
            hasher.update(&data);
            let mut rest = &data[..];
            while !rest.is_empty() {
                let take = (CHUNK_SIZE - buf.len()).min(rest.len());
                buf.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if buf.len() < CHUNK_SIZE {
                    continue;
                }
                if image.is_none() {
                    // The first chunk tells what the file is: refuse a
                    // mismatch before storing the rest.
                    let sniffed = media::sniff(&buf);
                    decide_type(&declared, sniffed)?;
                    image = Some(sniffed);
                }
                let chunk = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK_SIZE));
                if let Some(previous) = in_flight.take() {
                    join(previous).await?;
                }
                let id = match &pending {
                    Some(p) => p.id,
                    None => {
                        let id = app.db.begin_upload().await?;
                        pending = Some(PendingUpload {
                            db: app.db.clone(),
                            id,
                            armed: true,
                        });
                        id
                    }
                };
                let db = app.db.clone();
                let at = seq;
                in_flight = Some(tokio::spawn(
                    async move { db.put_chunk(id, at, chunk).await },
                ));
                seq += 1;
            }
        }
    }
    .await;
    // Let the last write land before finishing or giving up.
    let flushed = match in_flight.take() {
        Some(last) => join(last).await,
        None => Ok(()),
    };
    result?;
    flushed?;
    if total == 0 {
        return Err(Error::bad_request(
            "the file is empty: send its bytes as the body",
        ));
    }
    let sniffed = match image {
        Some(sniffed) => sniffed,
        None => media::sniff(&buf),
    };
    let (content_type, width, height) = decide_type(&declared, sniffed)?;
    let name = if name.is_empty() {
        default_name(None, &content_type)
    } else {
        name
    };
    let new = NewFile {
        uid,
        name: name.clone(),
        sha256: hasher.finalize().into(),
        size: total,
        content_type,
        width,
        height,
        quota,
    };
    let file = app
        .db
        .finish_upload(pending.as_ref().map(|p| p.id), seq, buf, new)
        .await?;
    if let Some(p) = &mut pending {
        // Completed, or dropped by `finish` itself as a duplicate.
        p.armed = false;
    }
    crate::log_info!(
        "file uploaded",
        uid = uid,
        file = file.id,
        bytes = file.size
    );
    Ok(protocol::success(&FileOut::new(&file, &name)))
}

async fn join(handle: JoinHandle<Result<()>>) -> Result<()> {
    handle
        .await
        .map_err(|_| Error::Internal("a file write failed".into()))?
}

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
pub async fn download(
    app: &App,
    uid: u64,
    id_text: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response<Body>> {
    let not_found = || Error::not_found(format!("file {id_text} not found"));
    if id_text.is_empty() || !id_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_found());
    }
    let attachment = match query.get("download").map(String::as_str) {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(other) => {
            return Err(Error::bad_request(format!(
                "download is 1, true, 0 or false, not {other:?}"
            )));
        }
    };
    let id: u64 = id_text.parse().map_err(|_| not_found())?;
    let file = app.db.readable_file(uid, id).await?.ok_or_else(not_found)?;
    let etag = format!("\"{}\"", protocol::hex(&file.sha256));
    let inline = media::is_inline_image(&file.content_type) && !attachment;
    let name = match query.get("name") {
        Some(n) if !check_name(n)?.is_empty() => check_name(n)?,
        _ => default_name(Some(file.id), &file.content_type),
    };

    let mut resp = if names_etag(headers.get(header::IF_NONE_MATCH), &etag, true) {
        let mut resp = Response::new(Either::Left(Full::new(Bytes::new())));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp
    } else {
        let if_range = headers.get(header::IF_RANGE);
        let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
            Some(r) if if_range.is_none() || names_etag(if_range, &etag, false) => {
                parse_range(r, file.size)
            }
            _ => Range::Whole,
        };
        match range {
            Range::Unsatisfiable => {
                let mut resp = error_response(&Error::RangeNotSatisfiable(format!(
                    "the range is outside the file of {} bytes",
                    file.size
                )));
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", file.size)) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(resp.map(Either::Left));
            }
            Range::Whole => {
                let mut resp = Response::new(Either::Right(FileBody::new(
                    app.db.clone(),
                    &file,
                    0,
                    file.size,
                )));
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
                resp
            }
            Range::Bytes(start, end) => {
                let mut resp = Response::new(Either::Right(FileBody::new(
                    app.db.clone(),
                    &file,
                    start,
                    end + 1,
                )));
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                let h = resp.headers_mut();
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(end + 1 - start));
                if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{}", file.size))
                {
                    h.insert(header::CONTENT_RANGE, v);
                }
                resp
            }
        }
    };
    let modified = resp.status() != StatusCode::NOT_MODIFIED;
    let h = resp.headers_mut();
    if modified {
        if let Ok(v) = HeaderValue::from_str(&file.content_type) {
            h.insert(header::CONTENT_TYPE, v);
        }
        h.insert(
            header::CONTENT_DISPOSITION,
            disposition(if inline { "inline" } else { "attachment" }, &name),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
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
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    Ok(resp)
}

type ChunkRead = JoinHandle<Result<Vec<u8>>>;

/// A response body that reads a file's chunks from the database one at a
/// time (the next one while the current one is being sent) and yields the
/// bytes of `[pos, end)`.
pub struct FileBody {
    db: Db,
    file_id: u64,
    chunk_size: u64,
    pos: u64,
    end: u64,
    next: Option<(u64, ChunkRead)>,
}

impl FileBody {
    fn new(db: Db, file: &FileMeta, pos: u64, end: u64) -> FileBody {
        let mut body = FileBody {
            db,
            file_id: file.id,
            chunk_size: file.chunk_size.max(1),
            pos,
            end,
            next: None,
        };
        if pos < end {
            body.read(pos / body.chunk_size);
        }
        body
    }

    fn read(&mut self, seq: u64) {
        let (db, id) = (self.db.clone(), self.file_id);
        self.next = Some((
            seq,
            tokio::spawn(async move { db.file_chunk(id, seq).await }),
        ));
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        if let Some((_, read)) = self.next.take() {
            read.abort();
        }
    }
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.pos >= this.end {
            return Poll::Ready(None);
        }
        let seq = this.pos / this.chunk_size;
        if this.next.as_ref().is_none_or(|(s, _)| *s != seq) {
            this.read(seq);
        }
        let Some((_, read)) = this.next.as_mut() else {
            return Poll::Ready(None);
        };
        let outcome = match Pin::new(read).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(outcome) => outcome,
        };
        this.next = None;
        let data = match outcome {
            Ok(Ok(data)) => data,
            Ok(Err(e)) => return Poll::Ready(Some(Err(std::io::Error::other(e.to_string())))),
            Err(_) => return Poll::Ready(Some(Err(std::io::Error::other("chunk read failed")))),
        };
        let start = seq * this.chunk_size;
        let from = (this.pos - start) as usize;
        let to = ((this.end - start) as usize).min(data.len());
        if from >= to {
            return Poll::Ready(Some(Err(std::io::Error::other(format!(
                "file {} is shorter than its size",
                this.file_id
            )))));
        }
        this.pos += (to - from) as u64;
        if this.pos < this.end {
            // Read ahead while this chunk goes out.
            this.read(seq + 1);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(data).slice(from..to)))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end.saturating_sub(self.pos))
    }
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
    fn names_are_checked_and_dispositions_safe() {
        assert_eq!(check_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(check_name("C:\\Users\\me\\cat.jpg").unwrap(), "cat.jpg");
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"x".repeat(300)).is_err());
        let d = disposition("attachment", "naïve \"plan\".pdf");
        assert_eq!(
            d.to_str().unwrap(),
            "attachment; filename=\"na_ve _plan_.pdf\"; filename*=UTF-8''na%C3%AFve%20%22plan%22.pdf"
        );
    }

    #[test]
    fn claimed_images_must_be_images() {
        let png = media::Image {
            content_type: "image/png",
            width: Some(1),
            height: Some(1),
        };
        assert_eq!(decide_type("image/jpeg", Some(png)).unwrap().0, "image/png");
        assert_eq!(decide_type("text/html", Some(png)).unwrap().0, "image/png");
        assert_eq!(decide_type("text/html", None).unwrap().0, "text/html");
        assert_eq!(decide_type("image/png", None).unwrap_err().code(), 400);
    }
}
