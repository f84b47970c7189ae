//! Messages, read and delivery positions, conversation lists and replay.

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    ChatRow, Cursor, FileRef, History, Kind, Message, ReadMark, files, group_from_row, groups,
    message_from_row, search, user_from_row,
};
use crate::error::{Error, Result};

/// A message as a client sent it; `uid` comes from the session, never the frame.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub gid: u64,
    pub uid: u64,
    pub kind: Kind,
    pub content: String,
    pub client_msg_id: String,
    /// The file an Image or File message refers to; the sender must have
    /// uploaded it (checked in the message's transaction).
    pub file: Option<FileRef>,
}

/// The result of storing a message.
#[derive(Debug, Clone)]
pub struct Stored {
    pub message: Message,
    /// True when this was a resend of a stored message: nothing new was written
    /// and nothing must be pushed again.
    pub duplicate: bool,
    /// Every member of the conversation, the sender included.
    pub members: Vec<u64>,
}

/// Messages to push to a device at login.
#[derive(Debug, Clone)]
pub struct Replay {
    pub messages: Vec<Message>,
    /// The newest message id that existed when the replay was read; live pushes
    /// at or below it are already covered (or deliberately left to paging).
    pub snapshot: u64,
    /// More messages were waiting than the limit allowed.
    pub truncated: bool,
}

fn by_sender_and_client_id(
    c: &Connection,
    uid: u64,
    client_msg_id: &str,
) -> Result<Option<Message>> {
    // `client_msg_id <> ''` repeats the condition of the partial index
    // `messages_dedup`: without it SQLite cannot prove a bound parameter is
    // non-empty, does not use that index, and scans the whole table on every
    // message sent (found by `rim bench`: 5,000 msgs/s falling with the
    // table's size, 127 msgs/s at 100,000 rows).
    let sql = concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages m
         WHERE m.uid = ?1 AND m.client_msg_id = ?2 AND m.client_msg_id <> ''"
    );
    Ok(c.prepare_cached(sql)?
        .query_row(params![uid, client_msg_id], |r| message_from_row(r, 0))
        .optional()?)
}

/// Stores a message. Every check comes before the first write: the writer
/// runs this without a savepoint (see `Db::write_then`).
pub fn insert(c: &Connection, new: &NewMessage, now: i64) -> Result<Stored> {
    // The member list is needed for the pushes anyway; reading it first is
    // also the membership check (one index range instead of a lookup more).
    let members = groups::member_ids(c, new.gid)?;
    if !members.contains(&new.uid) {
        groups::require_member(c, new.gid, new.uid)?;
    }
    if let Some(file) = &new.file {
        files::require_uploader(c, new.uid, file.id)?;
    }
    if !new.client_msg_id.is_empty()
        && let Some(message) = by_sender_and_client_id(c, new.uid, &new.client_msg_id)?
    {
        if message.gid != new.gid {
            return Err(Error::conflict(format!(
                "clientMsgId {:?} was already used for another conversation",
                new.client_msg_id
            )));
        }
        return Ok(Stored {
            message,
            duplicate: true,
            members: Vec::new(),
        });
    }
    c.prepare_cached(
        "INSERT INTO messages (gid, uid, kind, content, client_msg_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![
        new.gid,
        new.uid,
        new.kind.as_u8(),
        new.content,
        new.client_msg_id,
        now
    ])?;
    let id = c.last_insert_rowid() as u64;
    if let Some(file) = &new.file {
        files::attach(c, id, file)?;
    }
    let name = new.file.as_ref().map(|f| f.name.as_str());
    search::index(
        c,
        id,
        new.gid,
        &search::searchable(new.kind, &new.content, name),
    )?;
    c.prepare_cached("UPDATE groups SET last_msg_id = ?2 WHERE id = ?1")?
        .execute([new.gid, id])?;
    // The sender has obviously seen their own message.
    c.prepare_cached(
        "UPDATE members SET read_id = max(read_id, ?3), delivered_id = max(delivered_id, ?3)
         WHERE gid = ?1 AND uid = ?2",
    )?
    .execute([new.gid, new.uid, id])?;
    Ok(Stored {
        message: Message {
            id,
            gid: new.gid,
            uid: new.uid,
            kind: new.kind,
            content: new.content.clone(),
            client_msg_id: new.client_msg_id.clone(),
            created_at: now,
            updated_at: now,
        },
        duplicate: false,
        members,
    })
}

// `LIMIT CAST(?n AS INTEGER)` rather than `LIMIT ?n`, here and below: when a
// LIMIT or OFFSET is a bare parameter, SQLite plans with its value and marks
// the statement to be re-prepared whenever that parameter is bound again,
// which rusqlite does on every execution. A cached statement was thus parsed
// and planned anew on every call (found by `rim bench`: `sqlite3Reprepare`
// was a tenth of the server's CPU in the history scenario).
pub fn history(c: &Connection, me: u64, gid: u64, size: u32, cursor: Cursor) -> Result<History> {
    let (group, _) = groups::require_member(c, gid, me)?;
    // Both directions read the (gid, id) index in order; the page is always
    // returned oldest first.
    macro_rules! page {
        ($order:literal) => {
            concat!(
                "SELECT ",
                message_cols!(),
                ", ",
                user_cols!(),
                " FROM messages m JOIN users u ON u.id = m.uid WHERE m.gid = ?1 AND ",
                $order,
                " LIMIT CAST(?3 AS INTEGER) OFFSET CAST(?4 AS INTEGER)"
            )
        };
    }
    const OLDER: &str = page!("m.id < ?2 ORDER BY m.id DESC");
    const NEWER: &str = page!("m.id > ?2 ORDER BY m.id ASC");
    let (sql, bound, offset, newest_first) = match cursor {
        Cursor::Page(page) => (
            OLDER,
            i64::MAX as u64,
            u64::from(page.saturating_sub(1)) * u64::from(size),
            true,
        ),
        Cursor::Before(id) => (OLDER, id, 0, true),
        Cursor::After(id) => (NEWER, id, 0, false),
    };
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params![gid, bound, size, offset], |r| {
        Ok((message_from_row(r, 0)?, user_from_row(r, 8)?))
    })?;
    let mut rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    if newest_first {
        rows.reverse();
    }
    Ok(History { group, rows })
}

/// Unread messages from others are counted up to this many; a badge does not
/// need more, and the count stays cheap on huge backlogs.
const UNREAD_CAP: i64 = 9_999;

pub fn chat_list(c: &Connection, me: u64, page: u32, size: u32) -> Result<Vec<ChatRow>> {
    let offset = u64::from(page.saturating_sub(1)) * u64::from(size);
    // The "user" column is the partner in a direct chat and the last sender
    // in a group.
    let sql = concat!(
        "SELECT ",
        group_cols!(),
        ", ",
        message_cols!(),
        ", ",
        user_cols!(),
        ",
           (SELECT count(*) FROM (SELECT 1 FROM messages x
              WHERE x.gid = g.id AND x.id > mb.read_id AND x.uid <> ?1 LIMIT CAST(?4 AS INTEGER)))
         FROM members mb
         JOIN groups g ON g.id = mb.gid
         JOIN messages m ON m.id = g.last_msg_id
         JOIN users u ON u.id = CASE WHEN g.mode = 1
              THEN coalesce((SELECT o.uid FROM members o WHERE o.gid = g.id AND o.uid <> ?1), ?1)
              ELSE m.uid END
         WHERE mb.uid = ?1 AND g.last_msg_id IS NOT NULL
         ORDER BY g.last_msg_id DESC LIMIT CAST(?2 AS INTEGER) OFFSET CAST(?3 AS INTEGER)"
    );
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params![me, size, offset, UNREAD_CAP], |r| {
        Ok(ChatRow {
            group: group_from_row(r, 0)?,
            last: message_from_row(r, 6)?,
            user: user_from_row(r, 14)?,
            unread: r.get::<_, i64>(21)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn message_in_group(c: &Connection, gid: u64, msg_id: u64) -> Result<bool> {
    Ok(
        c.prepare_cached("SELECT 1 FROM messages WHERE id = ?1 AND gid = ?2")?
            .exists([msg_id, gid])?,
    )
}

pub fn mark_read(c: &Connection, me: u64, gid: u64, upto: Option<u64>) -> Result<ReadMark> {
    let (group, _) = groups::require_member(c, gid, me)?;
    let msg_id = match upto {
        Some(id) => {
            if !message_in_group(c, gid, id)? {
                return Err(Error::not_found(format!(
                    "message {id} not found in group {gid}"
                )));
            }
            id
        }
        None => c
            .prepare_cached("SELECT coalesce(last_msg_id, 0) FROM groups WHERE id = ?1")?
            .query_row([group.id], |r| r.get(0))?,
    };
    c.prepare_cached(
        "UPDATE members SET read_id = max(read_id, ?3), delivered_id = max(delivered_id, ?3)
         WHERE gid = ?1 AND uid = ?2",
    )?
    .execute([gid, me, msg_id])?;
    let members = groups::member_ids(c, gid)?;
    Ok(ReadMark {
        gid,
        msg_id,
        members,
    })
}

pub fn mark_delivered(c: &Connection, me: u64, gid: u64, upto: u64) -> Result<()> {
    groups::require_member(c, gid, me)?;
    if !message_in_group(c, gid, upto)? {
        return Err(Error::not_found(format!(
            "message {upto} not found in group {gid}"
        )));
    }
    c.prepare_cached(
        "UPDATE members SET delivered_id = max(delivered_id, ?3) WHERE gid = ?1 AND uid = ?2",
    )?
    .execute([gid, me, upto])?;
    Ok(())
}

pub fn replay(c: &Connection, me: u64, after: Option<u64>, limit: usize) -> Result<Replay> {
    // One read transaction, so the snapshot and the rows agree.
    let tx = c.unchecked_transaction()?;
    let snapshot: u64 = tx
        .prepare_cached("SELECT coalesce(max(id), 0) FROM messages")?
        .query_row([], |r| r.get(0))?;
    let fetch = limit as i64 + 1;
    let sql = match after {
        // The client's cursor: everything in its conversations after it.
        Some(_) => concat!("SELECT ", message_cols!(), " FROM members mb JOIN messages m ON m.gid = mb.gid
             WHERE mb.uid = ?1 AND m.id > ?2 AND m.id <= ?3 ORDER BY m.id LIMIT CAST(?4 AS INTEGER)"),
        // No cursor: what others sent that no device of this user acknowledged.
        None => concat!("SELECT ", message_cols!(), " FROM members mb JOIN messages m ON m.gid = mb.gid
             WHERE mb.uid = ?1 AND m.id > max(mb.delivered_id, ?2) AND m.id <= ?3 AND m.uid <> ?1
             ORDER BY m.id LIMIT CAST(?4 AS INTEGER)"),
    };
    let mut messages = {
        let mut stmt = tx.prepare_cached(sql)?;
        let rows = stmt.query_map(params![me, after.unwrap_or(0), snapshot, fetch], |r| {
            message_from_row(r, 0)
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let truncated = messages.len() > limit;
    messages.truncate(limit);
    tx.finish()?;
    Ok(Replay {
        messages,
        snapshot,
        truncated,
    })
}
