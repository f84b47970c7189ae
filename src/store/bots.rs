//! Bots: accounts that post into one conversation with a secret key.

use rusqlite::{Connection, OptionalExtension, params};

use super::groups;
use super::model::{Bot, Mode};
use crate::error::{Error, Result};

/// The password hash of a bot's account: not a PHC string, so no password
/// ever verifies against it.
const NO_PASSWORD: &str = "!bot";

/// Makes bot `name` in group `gid` with the SHA-256 of its key: its account
/// (`bot:<account_suffix>`), its membership and its row. Returns its id.
pub fn add(
    c: &Connection,
    name: &str,
    account_suffix: &str,
    gid: u64,
    key_hash: &[u8; 32],
    now: i64,
) -> Result<i64> {
    let group =
        groups::get(c, gid)?.ok_or_else(|| Error::not_found(format!("group {gid} not found")))?;
    if group.mode == Mode::Direct {
        return Err(Error::bad_request(format!(
            "conversation {gid} is a direct chat: a bot posts in a group"
        )));
    }
    c.prepare_cached(
        "INSERT INTO users (account, name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        format!("bot:{account_suffix}"),
        name,
        NO_PASSWORD,
        now
    ])?;
    let uid = c.last_insert_rowid();
    // Like any new member: it starts at the newest message.
    c.prepare_cached(
        "INSERT INTO members (gid, uid, role, delivered_id, read_id, joined_at)
         SELECT id, ?2, 1, coalesce(last_msg_id, 0), coalesce(last_msg_id, 0), ?3
         FROM groups WHERE id = ?1",
    )?
    .execute(params![gid, uid, now])?;
    c.prepare_cached("INSERT INTO bots (uid, gid, key_hash, created_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![uid, gid, &key_hash[..], now])?;
    Ok(c.last_insert_rowid())
}

/// The (account, conversation) a key's hash belongs to.
pub fn by_key(c: &Connection, key_hash: &[u8; 32]) -> Result<Option<(u64, u64)>> {
    Ok(
        c.prepare_cached("SELECT uid, gid FROM bots WHERE key_hash = ?1")?
            .query_row([&key_hash[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    )
}

/// Every bot, oldest first.
pub fn list(c: &Connection) -> Result<Vec<Bot>> {
    let mut stmt = c.prepare_cached(
        "SELECT b.id, b.uid, u.name, b.gid, g.name, b.created_at
         FROM bots b JOIN users u ON u.id = b.uid JOIN groups g ON g.id = b.gid ORDER BY b.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Bot {
            id: r.get(0)?,
            uid: r.get(1)?,
            name: r.get(2)?,
            gid: r.get(3)?,
            group: r.get(4)?,
            created_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Removes bot `id`: its key stops working and it leaves its conversation.
/// Its account stays, so its messages keep their sender.
pub fn remove(c: &Connection, id: i64) -> Result<()> {
    let found: Option<(u64, u64)> = c
        .prepare_cached("DELETE FROM bots WHERE id = ?1 RETURNING uid, gid")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (uid, gid) = found.ok_or_else(|| Error::not_found(format!("no bot {id}")))?;
    c.prepare_cached("DELETE FROM members WHERE gid = ?1 AND uid = ?2")?
        .execute(params![gid, uid])?;
    Ok(())
}
