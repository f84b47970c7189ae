//! Messages, read and delivery positions, conversation lists and replay.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use rusqlite::{Connection, OptionalExtension, params};

use super::files;
use super::files::FileRef;
use super::groups;
use super::model::{Change, ChangeOp, ChatRow, Cursor, History, Kind, Message, Reaction, ReadMark};
use super::rows::{MESSAGE_COL_COUNT, group_from_row, join_uids, message_from_row, user_from_row};
use super::search;
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
    /// The message of the same conversation this one answers.
    pub reply_to: Option<u64>,
}

/// What a client asks to change about a stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeRequest {
    /// New text (the sender only; Text and RichText messages).
    Edit(String),
    /// Erase the message (the sender, or an admin of a group).
    Delete,
    /// Toggle the caller's reaction with this emoji.
    React(String),
}

/// An edit, deletion or reaction as a client sent it; `uid` comes from the
/// session.
#[derive(Debug, Clone)]
pub struct NewChange {
    pub gid: u64,
    pub msg_id: u64,
    pub uid: u64,
    pub request: ChangeRequest,
    pub client_msg_id: String,
}

/// The result of storing a change.
#[derive(Debug, Clone)]
pub struct Changed {
    pub change: Change,
    /// A resend of a stored change: nothing was written, nothing is pushed.
    pub duplicate: bool,
    /// Every member of the conversation.
    pub members: Vec<u64>,
}

/// What a login replays, in id order.
#[derive(Debug, Clone)]
pub enum Replayed {
    Message(Message),
    Change(Change),
}

impl Replayed {
    pub fn id(&self) -> u64 {
        match self {
            Replayed::Message(m) => m.id,
            Replayed::Change(c) => c.id,
        }
    }
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
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Messages and changes, in id order.
    pub items: Vec<Replayed>,
    /// The newest id (message or change) that existed when the replay was read; live pushes
    /// at or below it are already covered (or deliberately left to paging).
    pub snapshot: u64,
    /// More messages were waiting than the limit allowed.
    pub truncated: bool,
}

/// How long a resend is recognised by its `clientMsgId`: clients resend what
/// was not acknowledged when they reconnect, seconds to hours later, and a
/// day covers a phone that was offline overnight.
pub const RESEND_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// At most the messages among this many of the newest ids are remembered,
/// which bounds the writer's memory on a busy server (about 2.2 MB, see
/// [`ResendWindow`]).
pub const RESEND_WINDOW_MESSAGES: usize = 100_000;

/// The `(sender, clientMsgId)` of the messages stored within the resend
/// window, so that a resend is answered with the stored message instead of
/// being stored twice. Owned by the writer thread; filled from the messages
/// table at start-up, so a resend after a restart is recognised too.
///
/// Held in memory rather than as a unique index in the file: such an index
/// covers every message ever sent, and each batch of sends then dirtied one
/// of its leaf pages per sender, written to the WAL, synced and checkpointed
/// back (about half of a batch's pages; `rim-bench`, direct closed loop).
///
/// An entry is only a hint: a message is a resend when the row the entry
/// names still has the same sender and `clientMsgId`. So an entry left by a
/// batch that was rolled back (its id may be reused by another message), or
/// one of a deleted conversation, or two ids with the same hash, can never
/// make a new message look like a resend.
///
/// The window is the ids from [`ResendWindow::floor`] on: those within
/// [`RESEND_WINDOW_MESSAGES`] of the newest id, but for blocks of
/// [`RESEND_BLOCK`] messages that are all older than [`RESEND_WINDOW_MS`].
/// So every message of the last day among the newest ids (what
/// [`ResendWindow::load`] selects) is recognised, and by age up to a block
/// more. Entries below the floor are ignored, and dropped from the map every
/// [`RESEND_RETAIN_EVERY`] messages rather than one by one: no mark per
/// message is needed to find them.
///
/// Memory when full: the map's 131,072 buckets of 16 bytes and a control
/// byte, 2,228,240 bytes, and 2 to 3 KB of time marks (allocations counted
/// over 10 million messages: 2.23 MB throughout). The map holds at most
/// 100,000 + 4,096 entries, live and stale, and keeps that size (see
/// [`ResendWindow::drop_stale`]). Before, a mark of 24 bytes per message (a
/// deque of 131,072) came on top: 5.4 MB when full, and 7.6 MB once the
/// map had doubled.
#[derive(Default)]
pub struct ResendWindow {
    /// [`ResendWindow::key`] -> message id; entries below the floor are
    /// stale.
    by_sender: HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
    /// `(first message id, newest created_at)` of each block of
    /// [`RESEND_BLOCK`] remembered messages, oldest first. The newest time of
    /// the block, not its first: clocks may step back, and no message younger
    /// than the window may be forgotten.
    blocks: VecDeque<(u64, i64)>,
    /// The newest id remembered.
    newest: u64,
    /// How many messages were remembered, ever.
    remembered: u64,
}

/// The messages of the [`ResendWindow`] are forgotten by age a block at a
/// time: a block whose newest message is older than [`RESEND_WINDOW_MS`].
const RESEND_BLOCK: u64 = 1024;

/// How often (in messages remembered) the [`ResendWindow`]'s map drops the
/// entries below the floor. It then never holds more than
/// [`RESEND_WINDOW_MESSAGES`] + this, which fits the buckets 100,000 need
/// (131,072, for up to 114,688 entries) with room left for the tombstones
/// of removals. The pass over those buckets, and building the map anew
/// every 30,000 messages or more (1.4 ms), cost the writer about 90 ns a
/// message (measured with the window full).
const RESEND_RETAIN_EVERY: u64 = 4096;

/// The hasher of keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl ResendWindow {
    /// The window of the messages in `c` stored within [`RESEND_WINDOW_MS`]
    /// of `now` (at most the newest [`RESEND_WINDOW_MESSAGES`]).
    pub fn load(c: &Connection, now: i64) -> Result<ResendWindow> {
        let mut window = ResendWindow::default();
        let mut stmt = c.prepare(
            "SELECT id, uid, client_msg_id, created_at FROM messages
             WHERE id > (SELECT coalesce(max(id), 0) FROM messages) - ?1
               AND created_at >= ?2 AND client_msg_id <> ''
             ORDER BY id",
        )?;
        let mut rows = stmt.query(params![
            RESEND_WINDOW_MESSAGES as u64,
            now - RESEND_WINDOW_MS
        ])?;
        while let Some(r) = rows.next()? {
            let client_msg_id: String = r.get(2)?;
            window.remember(r.get(0)?, r.get(1)?, &client_msg_id, r.get(3)?);
        }
        Ok(window)
    }

    /// FNV-1a of the sender and the id: cheap for short strings, and good
    /// enough, since a key only points at a row that is then compared.
    fn key(uid: u64, client_msg_id: &str) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in uid.to_le_bytes().iter().chain(client_msg_id.as_bytes()) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    /// The oldest id still in the window: none below it is newer than
    /// [`RESEND_WINDOW_MESSAGES`] ids from the newest, and none below it is
    /// younger than [`RESEND_WINDOW_MS`].
    fn floor(&self) -> u64 {
        let by_count = (self.newest + 1).saturating_sub(RESEND_WINDOW_MESSAGES as u64);
        let by_age = self.blocks.front().map_or(0, |&(first, _)| first);
        by_count.max(by_age)
    }

    /// The id of the message `uid` may be resending.
    fn candidate(&self, uid: u64, client_msg_id: &str) -> Option<u64> {
        let id = *self.by_sender.get(&Self::key(uid, client_msg_id))?;
        (id >= self.floor()).then_some(id)
    }

    fn remember(&mut self, id: u64, uid: u64, client_msg_id: &str, created_at: i64) {
        self.by_sender.insert(Self::key(uid, client_msg_id), id);
        self.newest = self.newest.max(id);
        match self.blocks.back_mut() {
            Some((_, newest_at)) if !self.remembered.is_multiple_of(RESEND_BLOCK) => {
                *newest_at = (*newest_at).max(created_at);
            }
            _ => self.blocks.push_back((id, created_at)),
        }
        self.remembered += 1;
        // The block just remembered into is never forgotten here.
        let by_count = (self.newest + 1).saturating_sub(RESEND_WINDOW_MESSAGES as u64);
        while self.blocks.len() > 1
            && (self.blocks[0].1 < created_at.saturating_sub(RESEND_WINDOW_MS)
                || self.blocks[1].0 <= by_count)
        {
            self.blocks.pop_front();
        }
        if self.remembered.is_multiple_of(RESEND_RETAIN_EVERY) {
            self.drop_stale();
        }
    }

    /// Drops the entries below the floor. A removal may leave a tombstone in
    /// std's map, which only a rehash clears, and the map rehashes in place
    /// only when at most half full: more than half full, it doubles instead
    /// (the window full for a while took 262,144 buckets, 4.5 MB). So when
    /// the room left (what `capacity` counts beyond `len`) might not take the
    /// entries until the next call, the map is built anew, with room for
    /// twice as many.
    fn drop_stale(&mut self) {
        let floor = self.floor();
        self.by_sender.retain(|_, id| *id >= floor);
        let period = RESEND_RETAIN_EVERY as usize;
        if self.by_sender.capacity() - self.by_sender.len() < period {
            let live = std::mem::take(&mut self.by_sender);
            self.by_sender =
                HashMap::with_capacity_and_hasher(live.len() + 2 * period, Default::default());
            self.by_sender.extend(live);
        }
    }

    /// Forgets the messages after `newest`, the newest id in the file: they
    /// belonged to batches that were rolled back. Their ids are handed out
    /// again, so without this a writer whose batches keep failing would keep
    /// remembering new entries above a floor that never moves.
    fn forget_after(&mut self, newest: u64) {
        if self.newest <= newest {
            return;
        }
        self.by_sender.retain(|_, id| *id <= newest);
        while self.blocks.back().is_some_and(|&(first, _)| first > newest) {
            self.blocks.pop_back();
        }
        self.newest = newest;
    }

    /// How many messages the window holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        let floor = self.floor();
        self.by_sender.values().filter(|&&id| id >= floor).count()
    }
}

/// The writer's state for message sends: the [`ResendWindow`], and the
/// conversation positions that the running batch's messages moved. Those
/// (a conversation's newest message, and the sender's own read and delivered
/// marks) are written once per conversation and sender at the end of the
/// batch, or before any other write that might read them, instead of by two
/// UPDATEs per message: a quarter of the writer's time when every message
/// paid for them (`rim-bench`, limits, the writer in process).
#[derive(Default)]
pub struct Sends {
    resends: ResendWindow,
    /// Conversation -> its newest message in this batch.
    newest: HashMap<u64, u64>,
    /// (conversation, sender) -> the sender's newest message there.
    seen: HashMap<(u64, u64), u64>,
    /// Messages wait in the search queue (see `search::index`).
    queued: bool,
    /// The next id of a message or change (one sequence, see schema.sql);
    /// read from the file when unknown: at start and after a rollback.
    next_id: Option<u64>,
}

impl Sends {
    /// The state of a writer starting on `c` (see [`ResendWindow::load`]).
    pub fn load(c: &Connection, now: i64) -> Result<Sends> {
        Ok(Sends {
            resends: ResendWindow::load(c, now)?,
            ..Sends::default()
        })
    }

    /// Writes the positions moved since the last call, in the current
    /// transaction.
    pub fn write_positions(&mut self, c: &Connection) -> Result<()> {
        if !self.newest.is_empty() {
            let mut stmt = c.prepare_cached(
                "UPDATE groups SET last_msg_id = max(coalesce(last_msg_id, 0), ?2) WHERE id = ?1",
            )?;
            for (gid, id) in self.newest.drain() {
                stmt.execute([gid, id])?;
            }
        }
        if !self.seen.is_empty() {
            // The sender has obviously seen their own message.
            let mut stmt = c.prepare_cached(
                "UPDATE members SET read_id = max(read_id, ?3), delivered_id = max(delivered_id, ?3)
                 WHERE gid = ?1 AND uid = ?2",
            )?;
            for ((gid, uid), id) in self.seen.drain() {
                stmt.execute([gid, uid, id])?;
            }
        }
        Ok(())
    }

    /// Forgets positions not yet written: their batch was rolled back (and
    /// the search queue with it).
    pub fn discard_positions(&mut self) {
        self.newest.clear();
        self.seen.clear();
        self.queued = false;
        self.next_id = None;
    }

    /// Hands out the next id of the messages' and changes' sequence.
    fn next_id(&mut self, c: &Connection) -> Result<u64> {
        let id = match self.next_id {
            Some(id) => id,
            None => {
                let newest: u64 = c
                    .prepare_cached(
                        "SELECT max(coalesce((SELECT max(id) FROM messages), 0),
                                    coalesce((SELECT max(id) FROM changes), 0))",
                    )?
                    .query_row([], |r| r.get(0))?;
                self.resends.forget_after(newest);
                newest + 1
            }
        };
        self.next_id = Some(id + 1);
        Ok(id)
    }
}

/// Completes the running batch's messages before its COMMIT: their
/// conversation positions, and their entries in the full-text index
/// (see `search::index`).
pub fn before_commit(c: &Connection, sends: &mut Sends) -> Result<()> {
    sends.write_positions(c)?;
    if std::mem::take(&mut sends.queued) {
        search::flush_queue(c)?;
    }
    Ok(())
}

/// The stored message `new` repeats, if it is a resend within the window.
fn resent(c: &Connection, window: &ResendWindow, new: &NewMessage) -> Result<Option<Message>> {
    let Some(id) = window.candidate(new.uid, &new.client_msg_id) else {
        return Ok(None);
    };
    let sql = concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages m WHERE m.id = ?1"
    );
    let stored = c
        .prepare_cached(sql)?
        .query_row([id], |r| message_from_row(r, 0))
        .optional()?;
    Ok(stored.filter(|m| m.uid == new.uid && m.client_msg_id == new.client_msg_id))
}

/// Stores a message. Every check comes before the first write: the writer
/// runs this without a savepoint (see `Db::write_then`).
pub fn insert(c: &Connection, sends: &mut Sends, new: NewMessage, now: i64) -> Result<Stored> {
    // The member list is needed for the pushes anyway; reading it first is
    // also the membership check (one index range instead of a lookup more).
    let members = groups::member_ids(c, new.gid)?;
    if !members.contains(&new.uid) {
        groups::require_member(c, new.gid, new.uid)?;
    }
    if let Some(file) = &new.file {
        files::require_uploader(c, new.uid, file.id)?;
    }
    if let Some(target) = new.reply_to
        && target_of(c, new.gid, target)?.is_none()
    {
        return Err(not_in_conversation(target, new.gid));
    }
    if !new.client_msg_id.is_empty()
        && let Some(message) = resent(c, &sends.resends, &new)?
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
    let mentions = mentions(c, new.gid, new.kind, &new.content)?;
    let id = sends.next_id(c)?;
    c.prepare_cached(
        "INSERT INTO messages (id, gid, uid, kind, content, client_msg_id, created_at, updated_at,
                               reply_to, mentions)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
    )?
    .execute(params![
        id,
        new.gid,
        new.uid,
        new.kind.as_u8(),
        new.content,
        new.client_msg_id,
        now,
        new.reply_to,
        join_uids(&mentions),
    ])?;
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
    sends.queued = true;
    sends.newest.insert(new.gid, id);
    sends.seen.insert((new.gid, new.uid), id);
    if !new.client_msg_id.is_empty() {
        sends.resends.remember(id, new.uid, &new.client_msg_id, now);
    }
    Ok(Stored {
        message: Message {
            id,
            gid: new.gid,
            uid: new.uid,
            kind: new.kind,
            content: new.content,
            client_msg_id: new.client_msg_id,
            created_at: now,
            updated_at: now,
            reply_to: new.reply_to,
            mentions,
            edited_at: None,
            deleted: false,
            reactions: Vec::new(),
        },
        duplicate: false,
        members,
    })
}

/// The members of `gid` that a text message names as `@account`, in the
/// order named. Only texts with an `@` cost a query.
fn mentions(c: &Connection, gid: u64, kind: Kind, content: &str) -> Result<Vec<u64>> {
    if !matches!(kind, Kind::Text | Kind::RichText) || !content.contains('@') {
        return Ok(Vec::new());
    }
    let mut stmt = c.prepare_cached(
        "SELECT u.id FROM members mb JOIN users u ON u.id = mb.uid
         WHERE mb.gid = ?1 AND u.account = ?2",
    )?;
    let mut uids = Vec::new();
    for account in crate::validate::mentioned_accounts(content) {
        if let Some(uid) = stmt
            .query_row(params![gid, account], |r| r.get::<_, u64>(0))
            .optional()?
            && !uids.contains(&uid)
        {
            uids.push(uid);
        }
    }
    Ok(uids)
}

/// What a change needs to know of its target message.
struct Target {
    uid: u64,
    kind: Kind,
    deleted: bool,
}

/// Message `msg_id`, if it is one of conversation `gid`.
fn target_of(c: &Connection, gid: u64, msg_id: u64) -> Result<Option<Target>> {
    Ok(
        c.prepare_cached("SELECT uid, kind, deleted_at FROM messages WHERE id = ?1 AND gid = ?2")?
            .query_row([msg_id, gid], |r| {
                Ok(Target {
                    uid: r.get(0)?,
                    kind: Kind::from_db(r.get(1)?),
                    deleted: r.get::<_, Option<i64>>(2)?.is_some(),
                })
            })
            .optional()?,
    )
}

fn not_in_conversation(msg_id: u64, gid: u64) -> Error {
    Error::not_found(format!("message {msg_id} not found in group {gid}"))
}

macro_rules! change_cols {
    () => {
        "ch.id, ch.gid, ch.msg_id, ch.uid, ch.op, ch.content, m.kind, ch.client_msg_id, ch.created_at"
    };
}

fn change_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Change> {
    Ok(Change {
        id: r.get(0)?,
        gid: r.get(1)?,
        msg_id: r.get(2)?,
        uid: r.get(3)?,
        op: ChangeOp::from_db(r.get(4)?),
        content: r.get(5)?,
        kind: Kind::from_db(r.get(6)?),
        client_msg_id: r.get(7)?,
        created_at: r.get(8)?,
    })
}

/// The stored change `new` repeats: the same sender and clientMsgId within
/// the resend window.
fn resent_change(c: &Connection, new: &NewChange, now: i64) -> Result<Option<Change>> {
    let sql = concat!(
        "SELECT ",
        change_cols!(),
        " FROM changes ch JOIN messages m ON m.id = ch.msg_id
         WHERE ch.uid = ?1 AND ch.client_msg_id = ?2 AND ch.client_msg_id <> ''
           AND ch.created_at >= ?3
         ORDER BY ch.id DESC LIMIT 1"
    );
    Ok(c.prepare_cached(sql)?
        .query_row(
            params![new.uid, new.client_msg_id, now - RESEND_WINDOW_MS],
            change_from_row,
        )
        .optional()?)
}

/// Stores an edit, deletion or reaction and its entry in the change log.
/// Like [`insert`], every check comes before the first write.
pub fn change(c: &Connection, sends: &mut Sends, new: NewChange, now: i64) -> Result<Changed> {
    let members = groups::member_ids(c, new.gid)?;
    if !members.contains(&new.uid) {
        groups::require_member(c, new.gid, new.uid)?;
    }
    if !new.client_msg_id.is_empty()
        && let Some(change) = resent_change(c, &new, now)?
    {
        if change.gid != new.gid || change.msg_id != new.msg_id {
            return Err(Error::conflict(format!(
                "clientMsgId {:?} was already used for another change",
                new.client_msg_id
            )));
        }
        return Ok(Changed {
            change,
            duplicate: true,
            members: Vec::new(),
        });
    }
    let target = target_of(c, new.gid, new.msg_id)?
        .ok_or_else(|| not_in_conversation(new.msg_id, new.gid))?;
    let id_of = new.msg_id;
    if target.deleted {
        return Err(Error::conflict(format!("message {id_of} was deleted")));
    }
    let (id, op, content) = match new.request {
        ChangeRequest::Edit(text) => {
            if target.uid != new.uid {
                return Err(Error::forbidden(format!(
                    "only the sender of message {id_of} can edit it"
                )));
            }
            if !matches!(target.kind, Kind::Text | Kind::RichText) {
                return Err(Error::bad_request(format!(
                    "message {id_of} is not a Text or RichText message: only those can be edited"
                )));
            }
            let mentioned = mentions(c, new.gid, target.kind, &text)?;
            c.prepare_cached(
                "UPDATE messages SET content = ?2, mentions = ?3, edited_at = ?4, updated_at = ?4
                 WHERE id = ?1",
            )?
            .execute(params![id_of, text, join_uids(&mentioned), now])?;
            // The old words leave the index; the new ones go in at COMMIT.
            search::unindex(c, id_of)?;
            search::index(
                c,
                id_of,
                new.gid,
                &search::searchable(target.kind, &text, None),
            )?;
            sends.queued = true;
            (sends.next_id(c)?, ChangeOp::Edit, text)
        }
        ChangeRequest::Delete => {
            if target.uid != new.uid
                && groups::role(c, new.gid, new.uid)? != Some(super::model::Role::Admin)
            {
                return Err(Error::forbidden(format!(
                    "only the sender of message {id_of} or an admin of group {} can delete it",
                    new.gid
                )));
            }
            // Erased, not hidden: the text, what was derived from it, the
            // file reference (the file may then be collected), the words in
            // the index, the texts of earlier edits.
            c.prepare_cached(
                "UPDATE messages SET content = '', mentions = '', deleted_at = ?2, updated_at = ?2
                 WHERE id = ?1",
            )?
            .execute(params![id_of, now])?;
            c.prepare_cached("DELETE FROM message_files WHERE msg_id = ?1")?
                .execute([id_of])?;
            c.prepare_cached("DELETE FROM reactions WHERE msg_id = ?1")?
                .execute([id_of])?;
            c.prepare_cached("UPDATE changes SET content = '' WHERE msg_id = ?1 AND op = ?2")?
                .execute(params![id_of, ChangeOp::Edit.as_db()])?;
            search::unindex(c, id_of)?;
            (sends.next_id(c)?, ChangeOp::Delete, String::new())
        }
        ChangeRequest::React(emoji) => {
            let id = sends.next_id(c)?;
            let removed = c
                .prepare_cached(
                    "DELETE FROM reactions WHERE msg_id = ?1 AND content = ?2 AND uid = ?3",
                )?
                .execute(params![id_of, emoji, new.uid])?;
            if removed == 0 {
                c.prepare_cached(
                    "INSERT INTO reactions (msg_id, content, uid, change_id) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![id_of, emoji, new.uid, id])?;
            }
            (id, ChangeOp::React { on: removed == 0 }, emoji)
        }
    };
    c.prepare_cached(
        "INSERT INTO changes (id, gid, msg_id, uid, op, content, client_msg_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id,
        new.gid,
        id_of,
        new.uid,
        op.as_db(),
        content,
        new.client_msg_id,
        now
    ])?;
    Ok(Changed {
        change: Change {
            id,
            gid: new.gid,
            msg_id: id_of,
            uid: new.uid,
            op,
            content,
            kind: target.kind,
            client_msg_id: new.client_msg_id,
            created_at: now,
        },
        duplicate: false,
        members,
    })
}

/// The reactions of the messages of `gid` with ids in `lo..=hi`, by message.
fn reactions(c: &Connection, gid: u64, lo: u64, hi: u64) -> Result<HashMap<u64, Vec<Reaction>>> {
    let mut stmt = c.prepare_cached(
        "SELECT r.msg_id, r.content, r.uid FROM messages m JOIN reactions r ON r.msg_id = m.id
         WHERE m.gid = ?1 AND m.id BETWEEN ?2 AND ?3
         ORDER BY r.msg_id, r.change_id",
    )?;
    let mut out: HashMap<u64, Vec<Reaction>> = HashMap::new();
    let mut rows = stmt.query(params![gid, lo, hi])?;
    while let Some(r) = rows.next()? {
        let (msg_id, content, uid): (u64, String, u64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let list = out.entry(msg_id).or_default();
        match list.iter_mut().find(|x| x.content == content) {
            Some(x) => x.uids.push(uid),
            None => list.push(Reaction {
                content,
                uids: vec![uid],
            }),
        }
    }
    Ok(out)
}

// `LIMIT CAST(?n AS INTEGER)` rather than `LIMIT ?n`, here and below: when a
// LIMIT or OFFSET is a bare parameter, SQLite plans with its value and marks
// the statement to be re-prepared whenever that parameter is bound again,
// which rusqlite does on every execution. A cached statement was thus parsed
// and planned anew on every call (found by `rim-bench`: `sqlite3Reprepare`
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
        Ok((
            message_from_row(r, 0)?,
            user_from_row(r, MESSAGE_COL_COUNT)?,
        ))
    })?;
    let mut rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    if newest_first {
        rows.reverse();
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let mut found = reactions(c, gid, first.0.id, last.0.id)?;
        for (m, _) in &mut rows {
            if let Some(list) = found.remove(&m.id) {
                m.reactions = list;
            }
        }
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
            user: user_from_row(r, 6 + MESSAGE_COL_COUNT)?,
            // The user columns are 8.
            unread: r.get::<_, i64>(14 + MESSAGE_COL_COUNT)? as u64,
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

/// A message or a change of `gid` has this id (what a delivery mark may name).
fn logged_in_group(c: &Connection, gid: u64, id: u64) -> Result<bool> {
    Ok(message_in_group(c, gid, id)?
        || c.prepare_cached("SELECT 1 FROM changes WHERE id = ?1 AND gid = ?2")?
            .exists([id, gid])?)
}

/// Where a read receipt of `me` in `gid` would put the mark (`upto`, or the
/// conversation's last message), and where the mark is now.
pub fn read_target(c: &Connection, me: u64, gid: u64, upto: Option<u64>) -> Result<(u64, u64)> {
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
    let current: u64 = c
        .prepare_cached("SELECT read_id FROM members WHERE gid = ?1 AND uid = ?2")?
        .query_row([gid, me], |r| r.get(0))?;
    Ok((msg_id, current))
}

/// Moves `me`'s read mark in `gid` forward to the target of [`read_target`].
/// A receipt that would not move it writes nothing and is `moved: false`,
/// so that nobody is told of it.
pub fn mark_read(c: &Connection, me: u64, gid: u64, upto: Option<u64>) -> Result<ReadMark> {
    let (msg_id, current) = read_target(c, me, gid, upto)?;
    if msg_id <= current {
        return Ok(ReadMark::unmoved(gid, msg_id));
    }
    c.prepare_cached(
        "UPDATE members SET read_id = ?3, delivered_id = max(delivered_id, ?3)
         WHERE gid = ?1 AND uid = ?2",
    )?
    .execute([gid, me, msg_id])?;
    let members = groups::member_ids(c, gid)?;
    Ok(ReadMark {
        gid,
        msg_id,
        members,
        moved: true,
    })
}

/// Records that `me` has messages up to `upto` of `gid`, and that the
/// session the Ack came on (`session`) acknowledges what it gets.
pub fn mark_delivered(c: &Connection, me: u64, session: i64, gid: u64, upto: u64) -> Result<()> {
    groups::require_member(c, gid, me)?;
    if !logged_in_group(c, gid, upto)? {
        return Err(Error::not_found(format!(
            "message {upto} not found in group {gid}"
        )));
    }
    c.prepare_cached(
        "UPDATE members SET delivered_id = max(delivered_id, ?3) WHERE gid = ?1 AND uid = ?2",
    )?
    .execute([gid, me, upto])?;
    c.prepare_cached("UPDATE sessions SET acks = 1 WHERE id = ?1 AND acks = 0")?
        .execute([session])?;
    Ok(())
}

pub fn replay(c: &Connection, me: u64, after: Option<u64>, limit: usize) -> Result<Replay> {
    // One read transaction, so the snapshot and the rows agree.
    let tx = c.unchecked_transaction()?;
    let snapshot: u64 = tx
        .prepare_cached(
            "SELECT max(coalesce((SELECT max(id) FROM messages), 0),
                        coalesce((SELECT max(id) FROM changes), 0))",
        )?
        .query_row([], |r| r.get(0))?;
    let fetch = limit as i64 + 1;
    let (messages, changes) = match after {
        // The client's cursor: everything in its conversations after it.
        Some(_) => (
            concat!("SELECT ", message_cols!(), " FROM members mb JOIN messages m ON m.gid = mb.gid
             WHERE mb.uid = ?1 AND m.id > ?2 AND m.id <= ?3 ORDER BY m.id LIMIT CAST(?4 AS INTEGER)"),
            concat!("SELECT ", change_cols!(), " FROM members mb JOIN changes ch ON ch.gid = mb.gid
             JOIN messages m ON m.id = ch.msg_id
             WHERE mb.uid = ?1 AND ch.id > ?2 AND ch.id <= ?3 ORDER BY ch.id LIMIT CAST(?4 AS INTEGER)"),
        ),
        // No cursor: what others sent or changed that no device of this
        // user acknowledged.
        None => (
            concat!("SELECT ", message_cols!(), " FROM members mb JOIN messages m ON m.gid = mb.gid
             WHERE mb.uid = ?1 AND m.id > max(mb.delivered_id, ?2) AND m.id <= ?3 AND m.uid <> ?1
             ORDER BY m.id LIMIT CAST(?4 AS INTEGER)"),
            concat!("SELECT ", change_cols!(), " FROM members mb JOIN changes ch ON ch.gid = mb.gid
             JOIN messages m ON m.id = ch.msg_id
             WHERE mb.uid = ?1 AND ch.id > max(mb.delivered_id, ?2) AND ch.id <= ?3 AND ch.uid <> ?1
             ORDER BY ch.id LIMIT CAST(?4 AS INTEGER)"),
        ),
    };
    let bound = params![me, after.unwrap_or(0), snapshot, fetch];
    let messages = {
        let mut stmt = tx.prepare_cached(messages)?;
        let rows = stmt.query_map(bound, |r| message_from_row(r, 0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let changes = {
        let mut stmt = tx.prepare_cached(changes)?;
        let rows = stmt.query_map(bound, change_from_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    tx.finish()?;
    // Both lists are in id order: merge them.
    let mut items = Vec::with_capacity(messages.len() + changes.len());
    let mut messages = messages.into_iter().peekable();
    let mut changes = changes.into_iter().peekable();
    loop {
        let next = match (messages.peek(), changes.peek()) {
            (Some(m), Some(ch)) if m.id < ch.id => messages.next().map(Replayed::Message),
            (Some(_), Some(_)) | (None, Some(_)) => changes.next().map(Replayed::Change),
            (Some(_), None) => messages.next().map(Replayed::Message),
            (None, None) => None,
        };
        match next {
            Some(item) => items.push(item),
            None => break,
        }
    }
    let truncated = items.len() > limit;
    items.truncate(limit);
    Ok(Replay {
        items,
        snapshot,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;

    #[test]
    fn the_resend_window_forgets_by_count_and_by_age() {
        let mut w = ResendWindow::default();
        let n = RESEND_WINDOW_MESSAGES as u64 + 10;
        for id in 1..=n {
            w.remember(id, 7, &id.to_string(), 0);
        }
        assert_eq!(w.len(), RESEND_WINDOW_MESSAGES);
        assert_eq!(w.candidate(7, "10"), None);
        assert_eq!(w.candidate(7, "11"), Some(11));
        assert_eq!(w.candidate(8, "11"), None, "another sender's id");
        // A day later, only the newest message's block is left: it is
        // forgotten a block at a time.
        w.remember(n + 1, 7, "late", RESEND_WINDOW_MS + 1);
        assert_eq!(w.candidate(7, "late"), Some(n + 1));
        assert_eq!(w.candidate(7, &n.to_string()), Some(n));
        assert!(w.len() <= RESEND_BLOCK as usize, "{}", w.len());
        let a_block_back = (n + 1 - RESEND_BLOCK).to_string();
        assert_eq!(w.candidate(7, &a_block_back), None);
    }

    /// Ids with gaps (the sequence is shared with changes), the window full
    /// for long: the map keeps the capacity 100,000 entries need, and every
    /// message among the newest ids is recognised.
    #[test]
    fn a_full_resend_window_stays_within_its_capacity() {
        let mut w = ResendWindow::default();
        // What the map is built anew with (114,688 entries, 131,072 buckets).
        let bound = HashMap::<u64, u64>::with_capacity(
            RESEND_WINDOW_MESSAGES + 2 * RESEND_RETAIN_EVERY as usize,
        )
        .capacity();
        assert_eq!(
            bound,
            HashMap::<u64, u64>::with_capacity(RESEND_WINDOW_MESSAGES).capacity()
        );
        let mut id = 0;
        for i in 0..300_000u64 {
            id += 1 + u64::from(i % 7 == 0);
            w.remember(id, i % 50, &i.to_string(), 0);
            assert!(
                w.by_sender.capacity() <= bound,
                "{} after {i}",
                w.by_sender.capacity()
            );
        }
        assert!(w.blocks.len() <= RESEND_WINDOW_MESSAGES / RESEND_BLOCK as usize + 2);
        let mut id = 0;
        let mut inside = 0;
        for i in 0..300_000u64 {
            id += 1 + u64::from(i % 7 == 0);
            let found = w.candidate(i % 50, &i.to_string());
            if id > w.newest - RESEND_WINDOW_MESSAGES as u64 {
                assert_eq!(found, Some(id));
                inside += 1;
            } else {
                assert_eq!(found, None);
            }
        }
        assert_eq!(w.len(), inside);
    }

    /// Clocks may step back: no message younger than the window is forgotten,
    /// whatever the times of the messages after it.
    #[test]
    fn the_resend_window_never_forgets_a_message_younger_than_a_day() {
        let mut w = ResendWindow::default();
        let block = RESEND_BLOCK;
        for id in 1..=block {
            w.remember(id, 7, &id.to_string(), 1000);
        }
        // The clock stepped back by a second.
        for id in block + 1..=2 * block {
            w.remember(id, 7, &id.to_string(), 0);
        }
        // A day after the second block, less than one after the first.
        w.remember(2 * block + 1, 7, "now", RESEND_WINDOW_MS + 1);
        for id in 1..=2 * block {
            assert_eq!(w.candidate(7, &id.to_string()), Some(id));
        }
        // A day after both.
        w.remember(2 * block + 2, 7, "later", RESEND_WINDOW_MS + 1001);
        for id in 1..=2 * block {
            assert_eq!(w.candidate(7, &id.to_string()), None);
        }
        assert_eq!(w.candidate(7, "now"), Some(2 * block + 1));
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn the_resend_window_forgets_what_was_rolled_back() {
        let mut w = ResendWindow::default();
        for id in 1..=3000 {
            w.remember(id, 7, &id.to_string(), 0);
        }
        // Ids 2001 to 3000 were rolled back and are handed out again, to
        // other messages, again and again.
        for round in 0..100 {
            w.forget_after(2000);
            for id in 2001..=3000 {
                w.remember(id, 7, &format!("{round}-{id}"), 0);
            }
        }
        assert_eq!(w.len(), 3000);
        assert_eq!(w.candidate(7, "2000"), Some(2000));
        assert_eq!(w.candidate(7, "2001"), None);
        assert_eq!(w.candidate(7, "99-2001"), Some(2001));
        assert!(w.blocks.len() <= 4, "{}", w.blocks.len());
    }

    /// Two users in one conversation, on a fresh file.
    fn pair() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let c = super::super::schema::open_writer(&dir.path().join("t.db"), Synchronous::Normal, 0)
            .unwrap();
        c.execute_batch(
            "INSERT INTO users (id, account, name, password_hash, created_at)
                 VALUES (1, 'a', 'a', 'x', 0), (2, 'b', 'b', 'x', 0);
             INSERT INTO groups (id, name, mode, creator_uid, created_at) VALUES (1, '', 1, 1, 0);
             INSERT INTO members (gid, uid, role, joined_at) VALUES (1, 1, 1, 0), (1, 2, 1, 0);",
        )
        .unwrap();
        (dir, c)
    }

    fn text(uid: u64, client_msg_id: &str) -> NewMessage {
        NewMessage {
            gid: 1,
            uid,
            kind: Kind::Text,
            content: "hi".into(),
            client_msg_id: client_msg_id.into(),
            file: None,
            reply_to: None,
        }
    }

    #[test]
    fn a_rolled_back_send_leaves_no_false_resend() {
        let (_dir, c) = pair();
        let mut w = Sends::default();
        c.execute_batch("BEGIN").unwrap();
        let lost = insert(&c, &mut w, text(1, "a"), 1000).unwrap();
        c.execute_batch("ROLLBACK").unwrap();
        w.discard_positions();
        // The rolled-back id is handed out again, to someone else's message.
        let other = insert(&c, &mut w, text(2, "b"), 1000).unwrap();
        assert_eq!(other.message.id, lost.message.id);
        let again = insert(&c, &mut w, text(1, "a"), 1000).unwrap();
        assert!(!again.duplicate);
        assert_ne!(again.message.id, other.message.id);
        let resend = insert(&c, &mut w, text(1, "a"), 1000).unwrap();
        assert!(resend.duplicate);
        assert_eq!(resend.message.id, again.message.id);
    }

    #[test]
    fn the_window_is_filled_from_the_file_for_a_day() {
        let (_dir, c) = pair();
        let sent = insert(&c, &mut Sends::default(), text(1, "a"), 1000).unwrap();
        let mut fresh = Sends::load(&c, 1000 + RESEND_WINDOW_MS).unwrap();
        let resend = insert(&c, &mut fresh, text(1, "a"), 1000 + RESEND_WINDOW_MS).unwrap();
        assert!(resend.duplicate);
        assert_eq!(resend.message.id, sent.message.id);
        let later = ResendWindow::load(&c, 1001 + RESEND_WINDOW_MS).unwrap();
        assert_eq!(later.len(), 0);
    }
}
