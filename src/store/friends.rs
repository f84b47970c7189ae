//! Friend requests and friendships, one row per unordered pair.

use rusqlite::{Connection, OptionalExtension, params};

use super::model::{FriendList, User};
use super::rows::user_from_row;
use super::users;
use crate::error::{Error, Result};

const PENDING: i64 = 0;
const FRIENDS: i64 = 1;

/// What a friend operation did, so the other side can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FriendEvent {
    /// A new request from the caller is waiting for the other user.
    Requested,
    /// The two are now friends.
    Accepted,
}

fn pair(a: u64, b: u64) -> (u64, u64) {
    if a < b { (a, b) } else { (b, a) }
}

/// (requester, status) of the pair's row, if any.
fn row(c: &Connection, a: u64, b: u64) -> Result<Option<(u64, i64)>> {
    let (lo, hi) = pair(a, b);
    Ok(
        c.prepare_cached("SELECT requester, status FROM friendships WHERE lo = ?1 AND hi = ?2")?
            .query_row([lo, hi], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    )
}

fn set_status(c: &Connection, a: u64, b: u64, status: i64, now: i64) -> Result<()> {
    let (lo, hi) = pair(a, b);
    c.prepare_cached(
        "UPDATE friendships SET status = ?3, updated_at = ?4 WHERE lo = ?1 AND hi = ?2",
    )?
    .execute(params![lo, hi, status, now])?;
    Ok(())
}

pub fn request(c: &Connection, me: u64, other: u64, now: i64) -> Result<FriendEvent> {
    if me == other {
        return Err(Error::bad_request(
            "you cannot send a friend request to yourself",
        ));
    }
    if !users::exists(c, other)? {
        return Err(Error::not_found(format!("user {other} not found")));
    }
    match row(c, me, other)? {
        Some((_, FRIENDS)) => Err(Error::conflict(format!(
            "you and user {other} are already friends"
        ))),
        Some((requester, _)) if requester == me => Err(Error::conflict(format!(
            "you already sent user {other} a friend request"
        ))),
        Some(_) => {
            // They asked first: asking back is saying yes.
            set_status(c, me, other, FRIENDS, now)?;
            Ok(FriendEvent::Accepted)
        }
        None => {
            let (lo, hi) = pair(me, other);
            c.prepare_cached(
                "INSERT INTO friendships (lo, hi, requester, status, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![lo, hi, me, PENDING, now])?;
            Ok(FriendEvent::Requested)
        }
    }
}

pub fn accept(c: &Connection, me: u64, other: u64, now: i64) -> Result<FriendEvent> {
    match row(c, me, other)? {
        Some((requester, PENDING)) if requester == other => {
            set_status(c, me, other, FRIENDS, now)?;
            Ok(FriendEvent::Accepted)
        }
        Some((_, FRIENDS)) => Err(Error::conflict(format!(
            "you and user {other} are already friends"
        ))),
        Some(_) => Err(Error::bad_request(format!(
            "the request to user {other} is yours; only user {other} can accept it"
        ))),
        None => Err(Error::not_found(format!(
            "no friend request from user {other}"
        ))),
    }
}

/// Rejects a request, cancels one's own, or ends a friendship.
pub fn remove(c: &Connection, me: u64, other: u64) -> Result<()> {
    let (lo, hi) = pair(me, other);
    let n = c
        .prepare_cached("DELETE FROM friendships WHERE lo = ?1 AND hi = ?2")?
        .execute([lo, hi])?;
    if n == 0 {
        return Err(Error::not_found(format!(
            "no friendship or friend request with user {other}"
        )));
    }
    Ok(())
}

pub fn are_friends(c: &Connection, a: u64, b: u64) -> Result<bool> {
    Ok(matches!(row(c, a, b)?, Some((_, FRIENDS))))
}

pub fn list(c: &Connection, me: u64, which: FriendList) -> Result<Vec<User>> {
    macro_rules! list {
        ($condition:literal) => {
            concat!(
                "SELECT ",
                user_cols!(),
                " FROM friendships f
                 JOIN users u ON u.id = CASE WHEN f.lo = ?1 THEN f.hi ELSE f.lo END
                 WHERE (f.lo = ?1 OR f.hi = ?1) AND ",
                $condition,
                " ORDER BY f.updated_at DESC, u.id"
            )
        };
    }
    let sql = match which {
        FriendList::Incoming => list!("f.status = 0 AND f.requester <> ?1"),
        FriendList::Friends => list!("f.status = 1"),
        FriendList::Outgoing => list!("f.status = 0 AND f.requester = ?1"),
    };
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map([me], |r| user_from_row(r, 0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
