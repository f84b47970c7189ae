//! Accounts and login sessions.

use rusqlite::{Connection, OptionalExtension, params};

use super::model::{Device, LastSeen, NewUser, Origin, ProfileChange, Session, User};
use super::rows::user_from_row;
use crate::error::{Error, Result};

pub fn create(c: &Connection, u: &NewUser, now: i64) -> Result<u64> {
    let inserted = c
        .prepare_cached(
            "INSERT INTO users (account, name, avatar, email, password_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            u.account,
            u.name,
            u.avatar,
            u.email,
            u.password_hash,
            now
        ]);
    match inserted {
        Ok(_) => Ok(c.last_insert_rowid() as u64),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => Err(
            Error::conflict(format!("account {:?} is already taken", u.account)),
        ),
        Err(e) => Err(e.into()),
    }
}

pub fn by_id(c: &Connection, id: u64) -> Result<Option<User>> {
    let sql = concat!("SELECT ", user_cols!(), " FROM users u WHERE u.id = ?1");
    Ok(c.prepare_cached(sql)?
        .query_row([id], |r| user_from_row(r, 0))
        .optional()?)
}

pub fn by_account(c: &Connection, account: &str) -> Result<Option<User>> {
    let sql = concat!(
        "SELECT ",
        user_cols!(),
        " FROM users u WHERE u.account = ?1"
    );
    Ok(c.prepare_cached(sql)?
        .query_row([account], |r| user_from_row(r, 0))
        .optional()?)
}

pub fn credentials(c: &Connection, account: &str) -> Result<Option<(u64, String)>> {
    Ok(
        c.prepare_cached("SELECT id, password_hash FROM users WHERE account = ?1")?
            .query_row([account], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    )
}

pub fn exists(c: &Connection, id: u64) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
        .exists([id])?)
}

pub fn is_admin(c: &Connection, id: u64) -> Result<bool> {
    Ok(
        c.prepare_cached("SELECT 1 FROM users WHERE id = ?1 AND is_admin = 1")?
            .exists([id])?,
    )
}

pub fn create_session(
    c: &Connection,
    uid: u64,
    token_hash: &[u8; 32],
    origin: &Origin,
    now: i64,
    expires_at: i64,
) -> Result<i64> {
    // Checked in the same statement as the insert: an account disabled by
    // `rim user disable` a moment ago gets no new session.
    let inserted = c
        .prepare_cached(
            "INSERT INTO sessions (token_hash, uid, created_at, expires_at, user_agent, address)
             SELECT ?1, id, ?3, ?4, ?5, ?6 FROM users WHERE id = ?2 AND disabled_at IS NULL",
        )?
        .execute(params![
            &token_hash[..],
            uid,
            now,
            expires_at,
            origin.user_agent,
            origin.address
        ])?;
    if inserted == 0 {
        return Err(Error::forbidden(
            "account disabled: ask the server's operator",
        ));
    }
    Ok(c.last_insert_rowid())
}

pub fn session(c: &Connection, token_hash: &[u8; 32], now: i64) -> Result<Option<Session>> {
    Ok(c.prepare_cached(
        "SELECT id, uid, expires_at, last_used_at, acks FROM sessions
         WHERE token_hash = ?1 AND expires_at > ?2",
    )?
    .query_row(params![&token_hash[..], now], |r| {
        Ok(Session {
            id: r.get(0)?,
            uid: r.get(1)?,
            expires_at: r.get(2)?,
            last_used_at: r.get(3)?,
            acks: r.get(4)?,
        })
    })
    .optional()?)
}

pub fn delete_session(c: &Connection, token_hash: &[u8; 32]) -> Result<Option<i64>> {
    Ok(
        c.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1 RETURNING id")?
            .query_row([&token_hash[..]], |r| r.get(0))
            .optional()?,
    )
}

pub fn purge_expired(c: &Connection, now: i64) -> Result<usize> {
    Ok(
        c.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
            .execute([now])?,
    )
}

/// Records that session `id` was used at `now`.
pub fn touch_session(c: &Connection, id: i64, now: i64) -> Result<()> {
    c.prepare_cached("UPDATE sessions SET last_used_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

/// An account's live sessions, newest first.
pub fn devices(c: &Connection, uid: u64, now: i64) -> Result<Vec<Device>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, created_at, last_used_at, user_agent, address FROM sessions
         WHERE uid = ?1 AND expires_at > ?2 ORDER BY id DESC",
    )?;
    let rows = stmt.query_map(params![uid, now], |r| {
        Ok(Device {
            id: r.get(0)?,
            created_at: r.get(1)?,
            last_used_at: r.get(2)?,
            user_agent: r.get(3)?,
            address: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revokes session `id` of `uid` (404 for another account's session or
/// none at all: the two are not told apart).
pub fn revoke_device(c: &Connection, uid: u64, id: i64) -> Result<()> {
    let removed = c
        .prepare_cached("DELETE FROM sessions WHERE id = ?1 AND uid = ?2")?
        .execute(params![id, uid])?;
    if removed == 0 {
        return Err(Error::not_found(format!("you have no session {id}")));
    }
    Ok(())
}

/// Changes what `change` names of `uid`'s profile. An avatar set here is a
/// link, not an uploaded picture: the picture's file is let go, unless the
/// avatar is still that file's own link.
pub fn update_profile(c: &Connection, uid: u64, change: &ProfileChange) -> Result<()> {
    c.prepare_cached(
        "UPDATE users SET
             name = coalesce(?2, name),
             avatar = coalesce(?3, avatar),
             avatar_file = CASE WHEN ?3 IS NULL OR ?3 = '/api/file/' || avatar_file
                                THEN avatar_file END,
             email = coalesce(?4, email),
             hide_last_seen = coalesce(?5, hide_last_seen)
         WHERE id = ?1",
    )?
    .execute(params![
        uid,
        change.name,
        change.avatar,
        change.email,
        change.hide_last_seen
    ])?;
    Ok(())
}

/// Makes file `file_id` (an image `uid` uploaded) their picture; returns
/// the avatar it is shown as.
pub fn set_avatar_file(c: &Connection, uid: u64, file_id: u64) -> Result<String> {
    let avatar = format!("/api/file/{file_id}");
    c.prepare_cached("UPDATE users SET avatar = ?2, avatar_file = ?3 WHERE id = ?1")?
        .execute(params![uid, avatar, file_id])?;
    Ok(avatar)
}

/// The password hash of `uid`, for checking the old one before a change.
pub fn password_hash(c: &Connection, uid: u64) -> Result<Option<String>> {
    Ok(
        c.prepare_cached("SELECT password_hash FROM users WHERE id = ?1")?
            .query_row([uid], |r| r.get(0))
            .optional()?,
    )
}

/// Replaces `uid`'s password hash, if it is still `old_hash` (a change
/// made meanwhile from another device wins; 409), and revokes every
/// session of the account but `keep`. Returns the revoked session ids.
/// Sets `uid`'s password hash to `new_hash` if it is still `old_hash`.
pub fn replace_password_hash(
    c: &Connection,
    uid: u64,
    old_hash: &str,
    new_hash: &str,
) -> Result<bool> {
    let changed = c
        .prepare_cached("UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2")?
        .execute(params![uid, old_hash, new_hash])?;
    Ok(changed == 1)
}

pub fn change_password(
    c: &Connection,
    uid: u64,
    old_hash: &str,
    new_hash: &str,
    keep: i64,
) -> Result<Vec<i64>> {
    let changed = c
        .prepare_cached("UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2")?
        .execute(params![uid, old_hash, new_hash])?;
    if changed == 0 {
        return Err(Error::conflict(
            "the password was changed meanwhile: try again with the new one",
        ));
    }
    let mut stmt =
        c.prepare_cached("DELETE FROM sessions WHERE uid = ?1 AND id <> ?2 RETURNING id")?;
    let rows = stmt.query_map(params![uid, keep], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `uid`'s friends and the other members of their conversations, once each.
pub fn audience(c: &Connection, uid: u64) -> Result<Vec<u64>> {
    let mut stmt = c.prepare_cached(
        "SELECT CASE WHEN f.lo = ?1 THEN f.hi ELSE f.lo END FROM friendships f
         WHERE (f.lo = ?1 OR f.hi = ?1) AND f.status = 1
         UNION
         SELECT o.uid FROM members mb JOIN members o ON o.gid = mb.gid
         WHERE mb.uid = ?1 AND o.uid <> ?1",
    )?;
    let rows = stmt.query_map([uid], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn set_last_seen(c: &Connection, uid: u64, at: i64) -> Result<()> {
    c.prepare_cached("UPDATE users SET last_seen = ?2 WHERE id = ?1")?
        .execute(params![uid, at])?;
    Ok(())
}

/// `uid`'s last-seen time and whether they hide it from others; 404 for an
/// unknown user.
pub fn last_seen(c: &Connection, uid: u64) -> Result<LastSeen> {
    c.prepare_cached("SELECT last_seen, hide_last_seen FROM users WHERE id = ?1")?
        .query_row([uid], |r| {
            Ok(LastSeen {
                at: r.get(0)?,
                hidden: r.get(1)?,
            })
        })
        .optional()?
        .ok_or_else(|| Error::not_found(format!("user {uid} not found")))
}
