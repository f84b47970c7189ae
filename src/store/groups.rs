//! Conversations and their members.

use rusqlite::{Connection, OptionalExtension, params};

use super::friends;
use super::model::{Group, Member, MemberOp, Mode, Role};
use super::rows::{group_from_row, user_from_row};
use super::users;
use crate::error::{Error, Result};

pub fn get(c: &Connection, gid: u64) -> Result<Option<Group>> {
    let sql = concat!("SELECT ", group_cols!(), " FROM groups g WHERE g.id = ?1");
    Ok(c.prepare_cached(sql)?
        .query_row([gid], |r| group_from_row(r, 0))
        .optional()?)
}

pub fn role(c: &Connection, gid: u64, uid: u64) -> Result<Option<Role>> {
    Ok(
        c.prepare_cached("SELECT role FROM members WHERE gid = ?1 AND uid = ?2")?
            .query_row([gid, uid], |r| r.get::<_, i64>(0))
            .optional()?
            .map(Role::from_db),
    )
}

/// The group and the caller's role in it: 404 when the group does not exist,
/// 403 when the caller is not a member.
pub fn require_member(c: &Connection, gid: u64, uid: u64) -> Result<(Group, Role)> {
    let group = get(c, gid)?.ok_or_else(|| Error::not_found(format!("group {gid} not found")))?;
    match role(c, gid, uid)? {
        Some(role) => Ok((group, role)),
        None => Err(Error::forbidden(format!(
            "you are not a member of group {gid}"
        ))),
    }
}

pub fn member_ids(c: &Connection, gid: u64) -> Result<Vec<u64>> {
    let mut stmt = c.prepare_cached("SELECT uid FROM members WHERE gid = ?1")?;
    let rows = stmt.query_map([gid], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn add_member(c: &Connection, gid: u64, uid: u64, role: Role, now: i64) -> Result<bool> {
    // delivered_id/read_id start at the group's newest message: a new member
    // is not flooded with unread history, but may still page back through it.
    let n = c
        .prepare_cached(
            "INSERT INTO members (gid, uid, role, delivered_id, read_id, joined_at)
             SELECT ?1, ?2, ?3, coalesce(last_msg_id, 0), coalesce(last_msg_id, 0), ?4
             FROM groups WHERE id = ?1
             ON CONFLICT (gid, uid) DO NOTHING",
        )?
        .execute(params![gid, uid, role.as_u8(), now])?;
    Ok(n > 0)
}

fn count_members(c: &Connection, gid: u64) -> Result<usize> {
    Ok(
        c.prepare_cached("SELECT count(*) FROM members WHERE gid = ?1")?
            .query_row([gid], |r| r.get::<_, i64>(0))? as usize,
    )
}

pub fn create(
    c: &Connection,
    creator: u64,
    name: &str,
    avatar: &str,
    members: &[(u64, Role)],
    max_members: usize,
    now: i64,
) -> Result<u64> {
    // Duplicates collapse, keeping the highest role asked for; the creator is
    // always an admin.
    let mut wanted: Vec<(u64, Role)> = vec![(creator, Role::Admin)];
    for &(uid, role) in members {
        match wanted.iter_mut().find(|(u, _)| *u == uid) {
            Some(slot) => slot.1 = slot.1.max(role),
            None => wanted.push((uid, role)),
        }
    }
    if wanted.len() > max_members {
        return Err(Error::bad_request(format!(
            "a group may have at most {max_members} members"
        )));
    }
    let admin = users::is_admin(c, creator)?;
    for &(uid, _) in &wanted {
        if !users::exists(c, uid)? {
            return Err(Error::not_found(format!("user {uid} not found")));
        }
        if uid != creator {
            may_add(c, creator, admin, uid)?;
        }
    }
    c.prepare_cached(
        "INSERT INTO groups (name, avatar, mode, creator_uid, created_at) VALUES (?1, ?2, 0, ?3, ?4)",
    )?
    .execute(params![name, avatar, creator, now])?;
    let gid = c.last_insert_rowid() as u64;
    for (uid, role) in wanted {
        add_member(c, gid, uid, role, now)?;
    }
    Ok(gid)
}

/// Only your friends can be put in a group by you (a server admin may add
/// anyone): otherwise a stranger could fill anyone's conversation list, and
/// the shared group would open a direct chat the friends rule refuses.
fn may_add(c: &Connection, me: u64, admin: bool, uid: u64) -> Result<()> {
    if admin || friends::are_friends(c, me, uid)? {
        return Ok(());
    }
    Err(Error::forbidden(format!(
        "user {uid} is not your friend: only friends can be added to a group"
    )))
}

fn share_a_group(c: &Connection, a: u64, b: u64) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM members x JOIN members y ON y.gid = x.gid AND y.uid = ?2
             JOIN groups g ON g.id = x.gid AND g.mode = 0
             WHERE x.uid = ?1 LIMIT 1",
    )?
    .exists([a, b])?)
}

pub fn direct(c: &Connection, me: u64, other: u64, now: i64) -> Result<u64> {
    if me == other {
        return Err(Error::bad_request("a direct chat needs another user"));
    }
    let key = if me < other {
        format!("{me}:{other}")
    } else {
        format!("{other}:{me}")
    };
    if let Some(gid) = c
        .prepare_cached("SELECT id FROM groups WHERE direct_key = ?1")?
        .query_row([&key], |r| r.get(0))
        .optional()?
    {
        return Ok(gid);
    }
    if !users::exists(c, other)? {
        return Err(Error::not_found(format!("user {other} not found")));
    }
    if !friends::are_friends(c, me, other)? && !share_a_group(c, me, other)? {
        return Err(Error::forbidden(format!(
            "user {other} is neither your friend nor in a group with you"
        )));
    }
    c.prepare_cached(
        "INSERT INTO groups (name, avatar, mode, creator_uid, direct_key, created_at)
         VALUES ('', '', 1, ?1, ?2, ?3)",
    )?
    .execute(params![me, key, now])?;
    let gid = c.last_insert_rowid() as u64;
    add_member(c, gid, me, Role::Member, now)?;
    add_member(c, gid, other, Role::Member, now)?;
    Ok(gid)
}

/// Renames a group; returns its members, who should hear of it.
pub fn update(
    c: &Connection,
    me: u64,
    gid: u64,
    name: Option<&str>,
    avatar: Option<&str>,
) -> Result<Vec<u64>> {
    let (group, role) = require_member(c, gid, me)?;
    if group.mode == Mode::Direct {
        return Err(Error::bad_request(
            "a direct chat has no name or avatar to change",
        ));
    }
    if role != Role::Admin {
        return Err(Error::forbidden("only an admin can change the group"));
    }
    c.prepare_cached(
        "UPDATE groups SET name = coalesce(?2, name), avatar = coalesce(?3, avatar) WHERE id = ?1",
    )?
    .execute(params![gid, name, avatar])?;
    member_ids(c, gid)
}

pub fn of_user(c: &Connection, me: u64) -> Result<Vec<Group>> {
    let sql = concat!(
        "SELECT ",
        group_cols!(),
        " FROM members mb JOIN groups g ON g.id = mb.gid
         WHERE mb.uid = ?1 ORDER BY g.id"
    );
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map([me], |r| group_from_row(r, 0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn members(c: &Connection, me: u64, gid: u64) -> Result<Vec<Member>> {
    require_member(c, gid, me)?;
    let sql = concat!(
        "SELECT mb.role, mb.read_id, ",
        user_cols!(),
        " FROM members mb JOIN users u ON u.id = mb.uid
         WHERE mb.gid = ?1 ORDER BY mb.joined_at, u.id"
    );
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map([gid], |r| {
        Ok(Member {
            role: Role::from_db(r.get(0)?),
            read_id: r.get(1)?,
            user: user_from_row(r, 2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Adds or removes members, or changes their roles; returns everyone
/// affected (the members before the change and those added), who should
/// hear of it.
pub fn change_members(
    c: &Connection,
    me: u64,
    gid: u64,
    uids: &[u64],
    op: MemberOp,
    max_members: usize,
    now: i64,
) -> Result<Vec<u64>> {
    let (group, role) = require_member(c, gid, me)?;
    if group.mode == Mode::Direct {
        return Err(Error::bad_request(
            "the members of a direct chat cannot change",
        ));
    }
    let mut affected = member_ids(c, gid)?;
    let only_self = uids.iter().all(|&u| u == me);
    if role != Role::Admin && !(op == MemberOp::Remove && only_self) {
        return Err(Error::forbidden(
            "only an admin can change members or roles (anyone may remove themselves)",
        ));
    }
    match op {
        MemberOp::Add => {
            let admin = users::is_admin(c, me)?;
            for &uid in uids {
                if !users::exists(c, uid)? {
                    return Err(Error::not_found(format!("user {uid} not found")));
                }
                if !affected.contains(&uid) {
                    may_add(c, me, admin, uid)?;
                }
                add_member(c, gid, uid, Role::Member, now)?;
            }
            if count_members(c, gid)? > max_members {
                return Err(Error::bad_request(format!(
                    "a group may have at most {max_members} members"
                )));
            }
        }
        MemberOp::Remove => {
            for &uid in uids {
                let removed = c
                    .prepare_cached("DELETE FROM members WHERE gid = ?1 AND uid = ?2")?
                    .execute([gid, uid])?;
                if removed == 0 {
                    // The whole change is one savepoint: nothing was removed.
                    return Err(Error::not_found(format!(
                        "user {uid} is not a member of group {gid}"
                    )));
                }
            }
            keep_an_admin(c, gid)?;
        }
        MemberOp::Promote | MemberOp::Demote => {
            let to = if op == MemberOp::Promote {
                Role::Admin
            } else {
                Role::Member
            };
            for &uid in uids {
                let changed = c
                    .prepare_cached("UPDATE members SET role = ?3 WHERE gid = ?1 AND uid = ?2")?
                    .execute(params![gid, uid, to.as_u8()])?;
                if changed == 0 {
                    return Err(Error::not_found(format!(
                        "user {uid} is not a member of group {gid}"
                    )));
                }
            }
            if admins(c, gid)? == 0 {
                // The whole change is one savepoint: no role changed.
                return Err(Error::conflict(
                    "a group keeps at least one admin: make someone else admin first",
                ));
            }
        }
    }
    for &uid in uids {
        if !affected.contains(&uid) {
            affected.push(uid);
        }
    }
    Ok(affected)
}

/// The caller leaves group `gid`; returns the members before (the caller
/// included), who should hear of it. A direct chat cannot be left: it is
/// the one conversation two people have, and would come back with the
/// next message either of them sends.
pub fn leave(c: &Connection, me: u64, gid: u64) -> Result<Vec<u64>> {
    let (group, _) = require_member(c, gid, me)?;
    if group.mode == Mode::Direct {
        return Err(Error::bad_request("a direct chat cannot be left"));
    }
    let affected = member_ids(c, gid)?;
    c.prepare_cached("DELETE FROM members WHERE gid = ?1 AND uid = ?2")?
        .execute([gid, me])?;
    keep_an_admin(c, gid)?;
    Ok(affected)
}

fn admins(c: &Connection, gid: u64) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT count(*) FROM members WHERE gid = ?1 AND role = 2")?
            .query_row([gid], |r| r.get(0))?,
    )
}

/// A group is never left without an admin while it has members: the
/// longest-standing member takes over.
fn keep_an_admin(c: &Connection, gid: u64) -> Result<()> {
    if admins(c, gid)? == 0 {
        c.prepare_cached(
            "UPDATE members SET role = 2 WHERE gid = ?1 AND uid =
             (SELECT uid FROM members WHERE gid = ?1 ORDER BY joined_at, uid LIMIT 1)",
        )?
        .execute([gid])?;
    }
    Ok(())
}
