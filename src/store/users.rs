//! Accounts and login sessions.

use rusqlite::{Connection, OptionalExtension, params};

use super::model::{NewUser, Session, User};
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

pub fn create_session(
    c: &Connection,
    uid: u64,
    token_hash: &[u8; 32],
    now: i64,
    expires_at: i64,
) -> Result<i64> {
    // Checked in the same statement as the insert: an account disabled by
    // `rim user disable` a moment ago gets no new session.
    let inserted = c
        .prepare_cached(
            "INSERT INTO sessions (token_hash, uid, created_at, expires_at)
             SELECT ?1, id, ?3, ?4 FROM users WHERE id = ?2 AND disabled_at IS NULL",
        )?
        .execute(params![&token_hash[..], uid, now, expires_at])?;
    if inserted == 0 {
        return Err(Error::forbidden(
            "account disabled: ask the server's operator",
        ));
    }
    Ok(c.last_insert_rowid())
}

pub fn session(c: &Connection, token_hash: &[u8; 32], now: i64) -> Result<Option<Session>> {
    Ok(c.prepare_cached(
        "SELECT id, uid, expires_at FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
    )?
    .query_row(params![&token_hash[..], now], |r| {
        Ok(Session {
            id: r.get(0)?,
            uid: r.get(1)?,
            expires_at: r.get(2)?,
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
