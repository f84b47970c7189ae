//! Reading the common rows: column lists and the functions that turn a
//! row into a [`User`], [`Group`] or [`Message`], shared by every query
//! that selects them.

use super::model::{Group, Kind, Message, Mode, User};

// Column lists matching `user_from_row`, `group_from_row` and
// `message_from_row`, for tables aliased `u`, `g` and `m`. Macros rather than
// constants, so that queries are put together by `concat!` at compile time
// instead of by `format!` on every call.
macro_rules! user_cols {
    () => {
        "u.id, u.account, u.name, u.avatar, u.email, u.created_at, u.is_admin, u.hide_last_seen"
    };
}
macro_rules! group_cols {
    () => {
        "g.id, g.name, g.avatar, g.mode, g.creator_uid, g.created_at"
    };
}
macro_rules! message_cols {
    () => {
        "m.id, m.gid, m.uid, m.kind, m.content, m.client_msg_id, m.created_at, m.updated_at, m.reply_to, m.mentions, m.edited_at, m.deleted_at"
    };
}

pub(super) fn user_from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(at)?,
        account: row.get(at + 1)?,
        name: row.get(at + 2)?,
        avatar: row.get(at + 3)?,
        email: row.get(at + 4)?,
        created_at: row.get(at + 5)?,
        admin: row.get(at + 6)?,
        hide_last_seen: row.get(at + 7)?,
    })
}

pub(super) fn group_from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Group> {
    Ok(Group {
        id: row.get(at)?,
        name: row.get(at + 1)?,
        avatar: row.get(at + 2)?,
        mode: Mode::from_db(row.get(at + 3)?),
        creator_uid: row.get(at + 4)?,
        created_at: row.get(at + 5)?,
    })
}

pub(super) fn message_from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Message> {
    Ok(Message {
        id: row.get(at)?,
        gid: row.get(at + 1)?,
        uid: row.get(at + 2)?,
        kind: Kind::from_db(row.get(at + 3)?),
        content: row.get(at + 4)?,
        client_msg_id: row.get(at + 5)?,
        created_at: row.get(at + 6)?,
        updated_at: row.get(at + 7)?,
        reply_to: row.get(at + 8)?,
        mentions: parse_uids(&row.get::<_, String>(at + 9)?),
        edited_at: row.get(at + 10)?,
        deleted: row.get::<_, Option<i64>>(at + 11)?.is_some(),
        reactions: Vec::new(),
    })
}

/// How many columns [`message_cols!`] selects.
pub(super) const MESSAGE_COL_COUNT: usize = 12;

/// The uids of a `mentions` column (space-separated).
pub(super) fn parse_uids(s: &str) -> Vec<u64> {
    s.split(' ').filter_map(|u| u.parse().ok()).collect()
}

/// A `mentions` column from uids.
pub(super) fn join_uids(uids: &[u64]) -> String {
    let mut s = String::new();
    for (i, u) in uids.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&u.to_string());
    }
    s
}

/// Column list matching [`message_from_row`], for a table aliased `m`.
pub(super) const MESSAGE_COLS: &str = message_cols!();
