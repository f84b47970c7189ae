//! Web Push: the server's VAPID key, browsers' subscriptions, and each
//! member's notification level.

use rusqlite::{Connection, OptionalExtension, params};

use super::groups;
use super::model::{Mode, NewSubscription, NotifyLevel, PushTargets, Subscription};
use crate::error::Result;

/// The stored VAPID private key, if one was made.
pub fn key(c: &Connection) -> Result<Option<Vec<u8>>> {
    Ok(
        c.prepare_cached("SELECT private_key FROM push_keys WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?,
    )
}

/// Stores `private`/`public` unless a key pair exists already (two servers
/// starting at once keep the first); returns the private key that is kept.
pub fn ensure_key(c: &Connection, private: &[u8], public: &[u8], now: i64) -> Result<Vec<u8>> {
    c.prepare_cached(
        "INSERT INTO push_keys (id, private_key, public_key, created_at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![private, public, now])?;
    Ok(key(c)?.unwrap_or_else(|| private.to_vec()))
}

/// Ties a subscription to session `session` of `uid`. The same endpoint
/// subscribed again (the browser renewed its keys, or another account logged
/// in on that browser) is replaced: one browser, one subscription.
pub fn subscribe(
    c: &Connection,
    uid: u64,
    session: i64,
    sub: &NewSubscription,
    now: i64,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO push_subscriptions (session_id, uid, endpoint, p256dh, auth, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (endpoint) DO UPDATE SET session_id = excluded.session_id,
             uid = excluded.uid, p256dh = excluded.p256dh, auth = excluded.auth,
             created_at = excluded.created_at",
    )?
    .execute(params![
        session,
        uid,
        sub.endpoint,
        sub.p256dh,
        sub.auth,
        now
    ])?;
    Ok(())
}

/// Removes `uid`'s subscription at `endpoint`; whether there was one.
pub fn unsubscribe(c: &Connection, uid: u64, endpoint: &str) -> Result<bool> {
    Ok(
        c.prepare_cached("DELETE FROM push_subscriptions WHERE uid = ?1 AND endpoint = ?2")?
            .execute(params![uid, endpoint])?
            > 0,
    )
}

/// Removes a subscription its push service said is gone.
pub fn remove(c: &Connection, id: i64) -> Result<()> {
    c.prepare_cached("DELETE FROM push_subscriptions WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

macro_rules! subscription_cols {
    () => {
        "s.id, s.uid, s.session_id, s.endpoint, s.p256dh, s.auth"
    };
}

fn subscription_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Subscription> {
    Ok(Subscription {
        id: r.get(0)?,
        uid: r.get(1)?,
        session: r.get(2)?,
        endpoint: r.get(3)?,
        p256dh: r.get(4)?,
        auth: r.get(5)?,
    })
}

/// Every subscription of `uid`, oldest first.
pub fn of_user(c: &Connection, uid: u64) -> Result<Vec<Subscription>> {
    let sql = concat!(
        "SELECT ",
        subscription_cols!(),
        " FROM push_subscriptions s WHERE s.uid = ?1 ORDER BY s.id"
    );
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map([uid], subscription_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Whom message `msg_id` of `gid`, sent by `sender`, is pushed to: the
/// subscriptions of every other member whose level is `all`, or `mentions`
/// when `mentioned` says they are mentioned.
pub fn targets(
    c: &Connection,
    gid: u64,
    sender: u64,
    mentioned: &dyn Fn(u64) -> bool,
) -> Result<PushTargets> {
    let Some(group) = groups::get(c, gid)? else {
        return Ok(PushTargets::default());
    };
    let sender_name: String = c
        .prepare_cached("SELECT name FROM users WHERE id = ?1")?
        .query_row([sender], |r| r.get(0))
        .optional()?
        .unwrap_or_default();
    let sql = concat!(
        "SELECT mb.notify, ",
        subscription_cols!(),
        " FROM members mb JOIN push_subscriptions s ON s.uid = mb.uid
         WHERE mb.gid = ?1 AND mb.uid <> ?2 ORDER BY s.id"
    );
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params![gid, sender], |r| {
        let level = NotifyLevel::from_db(r.get(0)?, group.mode);
        let sub = Subscription {
            id: r.get(1)?,
            uid: r.get(2)?,
            session: r.get(3)?,
            endpoint: r.get(4)?,
            p256dh: r.get(5)?,
            auth: r.get(6)?,
        };
        Ok((level, sub))
    })?;
    let mut subscriptions = Vec::new();
    for row in rows {
        let (level, sub) = row?;
        let wanted = match level {
            NotifyLevel::All => true,
            NotifyLevel::Mentions => mentioned(sub.uid),
            NotifyLevel::None => false,
        };
        if wanted {
            subscriptions.push(sub);
        }
    }
    Ok(PushTargets {
        sender: sender_name,
        group: (group.mode == Mode::Group).then_some(group.name),
        subscriptions,
    })
}

/// Sets `uid`'s level in `gid` (a member only: 403 otherwise).
pub fn set_level(c: &Connection, uid: u64, gid: u64, level: NotifyLevel) -> Result<()> {
    groups::require_member(c, gid, uid)?;
    c.prepare_cached("UPDATE members SET notify = ?3 WHERE gid = ?1 AND uid = ?2")?
        .execute(params![gid, uid, level.as_db()])?;
    Ok(())
}

/// `uid`'s level in each of their conversations: (gid, level).
pub fn levels(c: &Connection, uid: u64) -> Result<Vec<(u64, NotifyLevel)>> {
    let mut stmt = c.prepare_cached(
        "SELECT mb.gid, mb.notify, g.mode FROM members mb JOIN groups g ON g.id = mb.gid
         WHERE mb.uid = ?1",
    )?;
    let rows = stmt.query_map([uid], |r| {
        Ok((
            r.get(0)?,
            NotifyLevel::from_db(r.get(1)?, Mode::from_db(r.get(2)?)),
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
