//! Files: uploads streamed in as chunks, deduplicated by SHA-256, the
//! uploaders and quotas, who may read a file, and the removal of files no
//! message refers to (and that is nobody's picture).
//!
//! An upload is several writes, one per chunk, so that a 25 MiB upload never
//! holds the writer (and everyone's messages) for long: [`begin`] makes a
//! pending row (its `sha256` NULL), [`put_chunk`] adds the chunks, and
//! [`finish`] either completes the row or, when the same bytes are already
//! stored, drops it in favour of the existing file. [`abort`] drops a
//! pending row. Pending rows are never served or referred to.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};

/// Bytes per stored chunk (the last chunk of a file may be shorter).
pub const CHUNK_SIZE: usize = 256 * 1024;

/// A pending upload older than this is abandoned (its request is long gone),
/// whatever the grace period for unreferenced files.
const PENDING_GRACE_MS: i64 = 3_600_000;

/// A stored, complete file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub id: u64,
    pub sha256: [u8; 32],
    pub size: u64,
    pub content_type: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub chunk_size: u64,
}

/// What an upload turned out to be, once all its bytes arrived.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub uid: u64,
    /// The name the uploader gave it.
    pub name: String,
    pub sha256: [u8; 32],
    pub size: u64,
    pub content_type: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The uploader's quota in bytes (0 = none), checked in the same
    /// transaction as the upload is recorded.
    pub quota: u64,
}

/// The file an Image or File message refers to, and the name it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub id: u64,
    pub name: String,
}

/// What `rim files gc` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    pub files: u64,
    pub bytes: u64,
}

/// Column list matching `file_from_row`, for a table aliased `f`.
macro_rules! file_cols {
    () => {
        "f.id, f.sha256, f.size, f.content_type, f.width, f.height, f.chunk_size"
    };
}

fn file_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileMeta> {
    let hash: Vec<u8> = r.get(1)?;
    let mut sha256 = [0u8; 32];
    if hash.len() == 32 {
        sha256.copy_from_slice(&hash);
    }
    Ok(FileMeta {
        id: r.get(0)?,
        sha256,
        size: r.get(2)?,
        content_type: r.get(3)?,
        width: r.get(4)?,
        height: r.get(5)?,
        chunk_size: r.get(6)?,
    })
}

fn by_id(c: &Connection, id: u64) -> Result<Option<FileMeta>> {
    let sql = concat!(
        "SELECT ",
        file_cols!(),
        " FROM files f WHERE f.id = ?1 AND f.sha256 IS NOT NULL"
    );
    Ok(c.prepare_cached(sql)?
        .query_row([id], file_from_row)
        .optional()?)
}

/// Bytes of the distinct complete files `uid` uploaded.
pub fn quota_used(c: &Connection, uid: u64) -> Result<u64> {
    Ok(c.prepare_cached(
        "SELECT coalesce(sum(f.size), 0) FROM uploads u JOIN files f ON f.id = u.file_id
         WHERE u.uid = ?1 AND f.sha256 IS NOT NULL",
    )?
    .query_row([uid], |r| r.get(0))?)
}

/// Starts an upload: a pending file row for its chunks.
pub fn begin(c: &Connection, now: i64) -> Result<u64> {
    c.prepare_cached(
        "INSERT INTO files (sha256, size, content_type, chunk_size, created_at)
         VALUES (NULL, 0, '', ?1, ?2)",
    )?
    .execute(params![CHUNK_SIZE as u64, now])?;
    Ok(c.last_insert_rowid() as u64)
}

pub fn put_chunk(c: &Connection, file_id: u64, seq: u64, data: &[u8]) -> Result<()> {
    c.prepare_cached("INSERT INTO file_chunks (file_id, seq, data) VALUES (?1, ?2, ?3)")?
        .execute(params![file_id, seq, data])?;
    Ok(())
}

/// Completes an upload: `pending` holds chunks `0..last_seq` (or is `None`
/// for a file small enough to arrive in one piece), `last` is the final
/// chunk. When identical bytes are stored already, the pending copy is
/// dropped and the existing file is the upload's. Records the uploader and
/// checks their quota; returns the file.
pub fn finish(
    c: &Connection,
    pending: Option<u64>,
    last_seq: u64,
    last: &[u8],
    new: &NewFile,
    now: i64,
) -> Result<FileMeta> {
    let existing: Option<u64> = c
        .prepare_cached("SELECT id FROM files WHERE sha256 = ?1")?
        .query_row([&new.sha256[..]], |r| r.get(0))
        .optional()?;
    let id = match existing {
        Some(id) => {
            if let Some(p) = pending {
                abort(c, p)?;
            }
            id
        }
        None => {
            let id = match pending {
                Some(p) => p,
                None => begin(c, now)?,
            };
            if !last.is_empty() {
                put_chunk(c, id, last_seq, last)?;
            }
            c.prepare_cached(
                "UPDATE files SET sha256 = ?2, size = ?3, content_type = ?4, width = ?5, height = ?6
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                &new.sha256[..],
                new.size,
                new.content_type,
                new.width,
                new.height
            ])?;
            id
        }
    };
    c.prepare_cached(
        "INSERT INTO uploads (file_id, uid, name, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (file_id, uid) DO UPDATE SET name = excluded.name, created_at = excluded.created_at",
    )?
    .execute(params![id, new.uid, new.name, now])?;
    if new.quota > 0 && quota_used(c, new.uid)? > new.quota {
        return Err(quota_error(new.quota));
    }
    by_id(c, id)?.ok_or_else(|| Error::Internal("the upload vanished".into()))
}

pub fn quota_error(quota: u64) -> Error {
    Error::TooLarge(format!(
        "this upload would take you over your file quota of {} MiB; files you sent in no message are removed after a while",
        quota >> 20
    ))
}

/// Drops a pending upload and its chunks. Complete files are never touched.
pub fn abort(c: &Connection, file_id: u64) -> Result<()> {
    c.prepare_cached("DELETE FROM files WHERE id = ?1 AND sha256 IS NULL")?
        .execute([file_id])?;
    Ok(())
}

/// A complete file `uid` uploaded, for a message to refer to: 404 when there
/// is no such file, 403 when someone else uploaded it.
pub fn require_uploader(c: &Connection, uid: u64, file_id: u64) -> Result<FileMeta> {
    let file =
        by_id(c, file_id)?.ok_or_else(|| Error::not_found(format!("file {file_id} not found")))?;
    let mine = c
        .prepare_cached("SELECT 1 FROM uploads WHERE file_id = ?1 AND uid = ?2")?
        .exists([file_id, uid])?;
    if !mine {
        return Err(Error::forbidden(format!(
            "file {file_id} was not uploaded by you: upload it yourself to send it"
        )));
    }
    Ok(file)
}

/// Records that message `msg_id` refers to `file`, in the message's
/// transaction. The caller has checked with [`require_uploader`], before the
/// message's first write (message inserts run without a savepoint).
pub fn attach(c: &Connection, msg_id: u64, file: &FileRef) -> Result<()> {
    c.prepare_cached("INSERT INTO message_files (msg_id, file_id, name) VALUES (?1, ?2, ?3)")?
        .execute(params![msg_id, file.id, file.name])?;
    Ok(())
}

/// The file, if `uid` may read it: they uploaded it, it was sent in a
/// conversation they are a member of, or it is someone's picture (which
/// every logged-in user may see).
pub fn readable(c: &Connection, uid: u64, file_id: u64) -> Result<Option<FileMeta>> {
    let sql = concat!(
        "SELECT ",
        file_cols!(),
        " FROM files f WHERE f.id = ?1 AND f.sha256 IS NOT NULL AND (
            EXISTS (SELECT 1 FROM uploads u WHERE u.file_id = ?1 AND u.uid = ?2)
            OR EXISTS (SELECT 1 FROM message_files mf
                       JOIN messages m ON m.id = mf.msg_id
                       JOIN members mb ON mb.gid = m.gid AND mb.uid = ?2
                       WHERE mf.file_id = ?1)
            OR EXISTS (SELECT 1 FROM users p WHERE p.avatar_file = ?1))"
    );
    Ok(c.prepare_cached(sql)?
        .query_row([file_id, uid], file_from_row)
        .optional()?)
}

/// One chunk of a file's bytes.
pub fn chunk(c: &Connection, file_id: u64, seq: u64) -> Result<Vec<u8>> {
    c.prepare_cached("SELECT data FROM file_chunks WHERE file_id = ?1 AND seq = ?2")?
        .query_row([file_id, seq], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::Internal(format!("chunk {seq} of file {file_id} is missing")))
}

/// Files that may be removed at `now`: referred to by no message, and
/// uploaded last before `now - grace_ms` (pending uploads: an hour at least).
pub fn collectable(c: &Connection, now: i64, grace_ms: i64) -> Result<Vec<u64>> {
    let cutoff = now - grace_ms;
    let pending_cutoff = now - grace_ms.max(PENDING_GRACE_MS);
    let mut stmt = c.prepare_cached(
        "SELECT f.id FROM files f
         WHERE NOT EXISTS (SELECT 1 FROM message_files mf WHERE mf.file_id = f.id)
           AND NOT EXISTS (SELECT 1 FROM users p WHERE p.avatar_file = f.id)
           AND CASE WHEN f.sha256 IS NULL THEN f.created_at < ?2
                    ELSE f.created_at < ?1 AND NOT EXISTS
                         (SELECT 1 FROM uploads u WHERE u.file_id = f.id AND u.created_at >= ?1)
               END
         ORDER BY f.id",
    )?;
    let rows = stmt.query_map([cutoff, pending_cutoff], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Removes file `id` if it is still collectable (checked again, in the
/// deleting transaction: a message may have referred to it meanwhile).
/// Returns the bytes freed, or `None` when it was kept.
pub fn collect(c: &Connection, id: u64, now: i64, grace_ms: i64) -> Result<Option<u64>> {
    let cutoff = now - grace_ms;
    let pending_cutoff = now - grace_ms.max(PENDING_GRACE_MS);
    let size: Option<u64> = c
        .prepare_cached(
            "SELECT CASE WHEN f.sha256 IS NULL
                    THEN (SELECT coalesce(sum(length(data)), 0) FROM file_chunks WHERE file_id = f.id)
                    ELSE f.size END
             FROM files f WHERE f.id = ?1
               AND NOT EXISTS (SELECT 1 FROM message_files mf WHERE mf.file_id = f.id)
               AND NOT EXISTS (SELECT 1 FROM users p WHERE p.avatar_file = f.id)
               AND CASE WHEN f.sha256 IS NULL THEN f.created_at < ?3
                        ELSE f.created_at < ?2 AND NOT EXISTS
                             (SELECT 1 FROM uploads u WHERE u.file_id = f.id AND u.created_at >= ?2)
                   END",
        )?
        .query_row(params![id, cutoff, pending_cutoff], |r| r.get(0))
        .optional()?;
    let Some(size) = size else {
        return Ok(None);
    };
    // Chunks and uploads go with the row (ON DELETE CASCADE).
    c.prepare_cached("DELETE FROM files WHERE id = ?1")?
        .execute([id])?;
    Ok(Some(size))
}
