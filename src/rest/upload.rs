//! `POST /api/file`: an attachment in, streamed chunk by chunk from the
//! socket into the database.
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
//! `POST /api/user/avatar` is the same upload for a person's picture: only
//! the four image types, by their bytes, and at most
//! [`validate::MAX_AVATAR_BYTES`].

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::ctx::Ctx;
use crate::error::{Error, Result};
use crate::media::{self, default_name};
use crate::protocol::{self, FileOut};
use crate::store::files::{CHUNK_SIZE, quota_error};
use crate::store::{Db, FileMeta, NewFile};
use crate::validate;

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
    Error::TooLarge(format!("the file is larger than {} MiB", max >> 20))
}

/// What an upload may be, decided from its request before any byte is read.
struct Bounds {
    /// `files.max_upload_mb` in bytes.
    max: u64,
    /// The uploader's quota in bytes (0 = none).
    quota: u64,
    /// What is left of the quota.
    room: u64,
}

impl Bounds {
    /// Refuses a body of `total` bytes, so far or in all, that breaks a bound.
    fn check(&self, total: u64) -> Result<()> {
        if total > self.max {
            return Err(too_large(self.max));
        }
        if total > self.room {
            return Err(quota_error(self.quota));
        }
        Ok(())
    }
}

/// The bounds of `uid`'s upload of `length` bytes (if it said), at most
/// `max`, checked against that length at once.
async fn bounds(ctx: &Ctx, length: Option<u64>, max: u64) -> Result<Bounds> {
    let quota = ctx.app.config.file_quota_bytes;
    if length.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    if length == Some(0) {
        return Err(empty());
    }
    let room = if quota > 0 {
        quota.saturating_sub(ctx.app.db.quota_used(ctx.uid).await?)
    } else {
        u64::MAX
    };
    let bounds = Bounds { max, quota, room };
    if let Some(n) = length {
        bounds.check(n)?;
    }
    Ok(bounds)
}

fn empty() -> Error {
    Error::bad_request("the file is empty: send its bytes as the body")
}

/// The bytes of an upload on their way into the database: hashed, cut into
/// chunks, each chunk written while the next one arrives.
struct Chunks {
    db: Db,
    declared: String,
    hasher: Sha256,
    /// The chunk being filled; at the end, the last (short) one.
    buf: Vec<u8>,
    total: u64,
    /// Chunks handed to the database so far.
    seq: u64,
    /// What the first chunk's bytes are, once it is full.
    image: Option<Option<media::Image>>,
    /// Refuse anything but the four image types (a picture).
    images_only: bool,
    /// The file's row, once the first chunk is written.
    pending: Option<PendingUpload>,
    /// The previous chunk's write: at most one in flight while the next
    /// chunk arrives, so the upload goes at the pace of the disk.
    in_flight: Option<JoinHandle<Result<()>>>,
}

impl Chunks {
    fn new(db: Db, declared: String, length: Option<u64>, images_only: bool) -> Chunks {
        let capacity = length.map_or(CHUNK_SIZE, |n| (n as usize).min(CHUNK_SIZE));
        Chunks {
            db,
            declared,
            hasher: Sha256::new(),
            buf: Vec::with_capacity(capacity),
            total: 0,
            seq: 0,
            image: None,
            images_only,
            pending: None,
            in_flight: None,
        }
    }

    /// Takes in the next bytes, writing every chunk they complete.
    async fn add(&mut self, data: &[u8]) -> Result<()> {
        self.total += data.len() as u64;
        self.hasher.update(data);
        let mut rest = data;
        while !rest.is_empty() {
            let take = (CHUNK_SIZE - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == CHUNK_SIZE {
                self.write_chunk().await?;
            }
        }
        Ok(())
    }

    /// Hands the full chunk in `buf` to the database, once the write before
    /// it has landed.
    async fn write_chunk(&mut self) -> Result<()> {
        if self.image.is_none() {
            // The first chunk tells what the file is: refuse a mismatch
            // before storing the rest.
            let sniffed = media::sniff(&self.buf);
            self.decide(sniffed)?;
            self.image = Some(sniffed);
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE));
        self.settle().await?;
        let id = match &self.pending {
            Some(p) => p.id,
            None => {
                let id = self.db.begin_upload().await?;
                self.pending = Some(PendingUpload {
                    db: self.db.clone(),
                    id,
                    armed: true,
                });
                id
            }
        };
        let db = self.db.clone();
        let at = self.seq;
        self.in_flight = Some(tokio::spawn(
            async move { db.put_chunk(id, at, chunk).await },
        ));
        self.seq += 1;
        Ok(())
    }

    /// The stored type, or the refusal of a file that may not be stored.
    fn decide(&self, image: Option<media::Image>) -> Result<(String, Option<u32>, Option<u32>)> {
        if self.images_only && image.is_none() {
            return Err(Error::bad_request(
                "a picture must be a png, jpeg, gif or webp image (recognised by its bytes)",
            ));
        }
        decide_type(&self.declared, image)
    }

    /// Waits for the write in flight, if any.
    async fn settle(&mut self) -> Result<()> {
        match self.in_flight.take() {
            Some(write) => write
                .await
                .map_err(|_| Error::Internal("a file write failed".into()))?,
            None => Ok(()),
        }
    }

    /// Stores the last chunk and the file's facts; returns the stored file
    /// and the name it was given (`name`, or the default for its type).
    async fn finish(mut self, uid: u64, name: String, quota: u64) -> Result<(FileMeta, String)> {
        if self.total == 0 {
            return Err(empty());
        }
        let sniffed = match self.image {
            Some(sniffed) => sniffed,
            None => media::sniff(&self.buf),
        };
        let (content_type, width, height) = self.decide(sniffed)?;
        let name = if name.is_empty() {
            default_name(None, &content_type)
        } else {
            name
        };
        let new = NewFile {
            uid,
            name: name.clone(),
            sha256: self.hasher.finalize_reset().into(),
            size: self.total,
            content_type,
            width,
            height,
            quota,
        };
        let file = self
            .db
            .finish_upload(
                self.pending.as_ref().map(|p| p.id),
                self.seq,
                std::mem::take(&mut self.buf),
                new,
            )
            .await?;
        if let Some(p) = &mut self.pending {
            // Completed, or dropped by `finish` itself as a duplicate.
            p.armed = false;
        }
        Ok((file, name))
    }
}

/// How long an upload may go on: at least `grace` from `received`, and
/// past that only as long as its average pace over everything received so
/// far stays at `min_rate` bytes a second or above (0 = no floor). Bytes
/// sent now and then do not keep a slow upload alive: the time it has
/// grows with what it sent, not with when it last sent something.
struct Pace {
    received: Instant,
    grace: Duration,
    min_rate: u64,
}

impl Pace {
    /// The time by which more bytes must have arrived after `total`.
    fn deadline(&self, total: u64) -> Option<Instant> {
        if self.min_rate == 0 {
            return None;
        }
        let earned = Duration::from_secs_f64(total as f64 / self.min_rate as f64);
        Some(self.received + self.grace.max(earned))
    }
}

/// Reads the body into `chunks` until it ends, within `bounds` and its
/// `pace`; gives up on a body that sends nothing for `stall`.
async fn receive(
    body: &mut Incoming,
    chunks: &mut Chunks,
    bounds: &Bounds,
    pace: &Pace,
    stall: Duration,
) -> Result<()> {
    loop {
        let mut until = Instant::now() + stall;
        if let Some(due) = pace.deadline(chunks.total) {
            until = until.min(due);
        }
        let frame = match tokio::time::timeout_at(until.into(), body.frame()).await {
            Err(_) if pace.deadline(chunks.total).is_some_and(|due| due <= until) => {
                return Err(Error::Timeout(format!(
                    "the upload is slower than {} bytes a second",
                    pace.min_rate
                )));
            }
            Err(_) => return Err(Error::Timeout("the upload stalled".into())),
            Ok(None) => return Ok(()),
            Ok(Some(Err(_))) => return Err(Error::bad_request("the upload was interrupted")),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        bounds.check(chunks.total + data.len() as u64)?;
        chunks.add(&data).await?;
    }
}

/// Streams the body of `ctx` into a stored file of the caller's, at most
/// `max` bytes; returns it and its name.
async fn store(
    ctx: &mut Ctx,
    name: String,
    max: u64,
    images_only: bool,
) -> Result<(FileMeta, String)> {
    let declared = declared_type(&ctx.headers)?;
    let length = content_length(&ctx.headers)?;
    let bounds = bounds(ctx, length, max).await?;
    let mut body = ctx.take_stream()?;
    let mut chunks = Chunks::new(ctx.app.db.clone(), declared, length, images_only);
    let stall = ctx.app.config.idle_timeout.max(Duration::from_secs(1));
    let pace = Pace {
        received: ctx.received,
        grace: ctx.app.config.body_timeout,
        min_rate: ctx.app.config.upload_min_bytes_per_sec,
    };
    let received = receive(&mut body, &mut chunks, &bounds, &pace, stall).await;
    // Let the last write land before finishing or giving up.
    let settled = chunks.settle().await;
    received?;
    settled?;
    let (file, name) = chunks.finish(ctx.uid, name, bounds.quota).await?;
    crate::log_info!(
        "file uploaded",
        uid = ctx.uid,
        file = file.id,
        bytes = file.size
    );
    Ok((file, name))
}

/// `POST /api/file?name=NAME`: stores the body as a file of the caller's.
pub async fn upload(mut ctx: Ctx) -> Result<Vec<u8>> {
    let name = validate::file_name(ctx.query_opt("name").unwrap_or(""))?;
    let max = ctx.app.config.max_upload_bytes;
    let (file, name) = store(&mut ctx, name, max, false).await?;
    Ok(protocol::success(&FileOut::new(&file, &name)))
}

/// `POST /api/user/avatar`: stores the body, an image, as the caller's
/// picture. Their `avatar` becomes `/api/file/<id>`, which every logged-in
/// user may read.
pub async fn avatar(mut ctx: Ctx) -> Result<Vec<u8>> {
    let max = validate::MAX_AVATAR_BYTES.min(ctx.app.config.max_upload_bytes);
    let (file, _) = store(&mut ctx, String::new(), max, true).await?;
    let avatar = ctx.app.db.set_avatar_file(ctx.uid, file.id).await?;
    Ok(protocol::success(&protocol::AvatarOut {
        avatar: &avatar,
        file_id: file.id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
