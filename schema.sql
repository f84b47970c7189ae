-- rim's database schema: the whole of it, as this version of rim writes it
-- (schema version 10).
--
-- Embedded in the binary (`store::schema`): a new database is made from this
-- file alone, then stamped with `PRAGMA user_version` = the schema version
-- and `PRAGMA application_id` = "rim1". A database made by an older rim is
-- brought up to date by the files in migrations/ instead: NNN_name.sql takes
-- a database from version NNN-1 to NNN, and one at version N runs N+1 up to
-- the latest.
--
-- THE RULE FOR EDITORS: to change the schema, change this file AND add the
-- next migration that makes the same change to an existing database. Never
-- edit a migration that has been released: databases out there already ran
-- it. The number of migrations is the schema version, so adding one bumps
-- it. `schema::tests` fails when this file and the migrations disagree.
--
-- Not here on purpose: `temp.index_queue`, which `store::search::create_queue`
-- makes on the writer connection each time it opens. It is a TEMP table (the
-- writer connection's memory, never written to the file, rolled back with
-- the writer's transaction) that gathers a batch's messages so that they go
-- into the full-text index in one INSERT at the end of the batch; see
-- `store::search::index` for why. It holds nothing between batches, no other
-- connection sees it, and a reader of the file never finds it.
--
-- Times are Unix milliseconds (UTC). Ids are SQLite rowids, so they only grow.

-- ---- accounts -------------------------------------------------------------

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    account       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    name          TEXT    NOT NULL,
    avatar        TEXT    NOT NULL DEFAULT '',
    email         TEXT    NOT NULL DEFAULT '',
    -- argon2id PHC string; the clear password is never stored.
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    -- The first account ever created becomes an admin; `rim user add
    -- --admin` makes more. Admins may create invites over REST.
    is_admin      INTEGER NOT NULL DEFAULT 0,
    -- NULL while the account may log in; when `rim user disable` ran
    -- otherwise. A disabled account keeps all its data.
    disabled_at   INTEGER,
    -- 1: others see whether this person is online, not when they were last.
    hide_last_seen INTEGER NOT NULL DEFAULT 0,
    -- The picture uploaded with `POST /api/user/avatar` (then `avatar` is
    -- `/api/file/<id>`): every logged-in user may read this file, and it is
    -- never collected while it is someone's picture.
    avatar_file   INTEGER REFERENCES files(id),
    -- When the account's last connected device went away (NULL: never
    -- connected since version 8), shown to friends and co-members unless
    -- `hide_last_seen` is 1.
    last_seen     INTEGER
);
-- Whether a file is someone's picture (reading it, collecting it).
CREATE INDEX users_by_avatar_file ON users(avatar_file) WHERE avatar_file IS NOT NULL;

-- One row per logged-in device. Only a SHA-256 of the token is kept, so a
-- leaked database file does not leak usable tokens.
CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY,
    token_hash BLOB    NOT NULL UNIQUE,
    uid        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    -- The device it was opened from, as the login reported it (User-Agent,
    -- client address), for the account's list of devices.
    user_agent   TEXT    NOT NULL DEFAULT '',
    address      TEXT    NOT NULL DEFAULT '',
    -- When the token was last used, to the minute: written at most once a
    -- minute per session (`auth::Usage`), not once per request. 0: never
    -- since the login.
    last_used_at INTEGER NOT NULL DEFAULT 0,
    -- 1 once a device logged in with this token has sent an Ack: such a
    -- device keeps count of what it has, and is replayed what it has not
    -- acknowledged at every Login even when the Login does not ask.
    acks         INTEGER NOT NULL DEFAULT 0
);
-- An account's sessions: revoking them all, counting them.
CREATE INDEX sessions_by_uid ON sessions(uid);

-- Invite codes. Only a SHA-256 of the code is kept, like tokens: a code is a
-- credential (it lets someone register), so a leaked database or backup must
-- not hand out working codes. The code is shown once, when it is created.
CREATE TABLE invites (
    id          INTEGER PRIMARY KEY,
    code_hash   BLOB    NOT NULL UNIQUE,
    max_uses    INTEGER NOT NULL,
    used        INTEGER NOT NULL DEFAULT 0,
    -- NULL: never expires.
    expires_at  INTEGER,
    -- The admin who made it over REST; NULL when made with `rim invite create`.
    created_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL
);

-- Accounts whose sessions another process (the `rim` command line) revoked,
-- perhaps while a server runs. The server polls `id > last seen` once a
-- second and closes every WebSocket of each account; rows older than an hour
-- are purged. Keyed by account, not by session: session ids are rowids and
-- may be handed out again once deleted, so "close session 5" could hit a
-- fresh login, while every such command revokes all of an account's sessions.
CREATE TABLE revocations (
    id          INTEGER PRIMARY KEY,
    uid         INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

-- ---- friends ---------------------------------------------------------------

-- A friendship or a pending request, one row per unordered pair (lo < hi).
-- status 0 = requested by `requester`, 1 = friends. A rejected or cancelled
-- request is deleted, so it can be asked again later.
CREATE TABLE friendships (
    lo         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hi         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    requester  INTEGER NOT NULL,
    status     INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (lo, hi),
    CHECK (lo < hi)
) WITHOUT ROWID;
-- A user's friends and requests: the primary key finds the pairs where the
-- user is `lo`, this index those where they are `hi`.
CREATE INDEX friendships_by_hi ON friendships(hi);

-- ---- conversations and messages -------------------------------------------

-- Conversations. mode 0 = group, 1 = direct (exactly two members, unique per
-- pair through direct_key = "lo:hi").
CREATE TABLE groups (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    avatar      TEXT    NOT NULL DEFAULT '',
    mode        INTEGER NOT NULL,
    creator_uid INTEGER NOT NULL,
    direct_key  TEXT    UNIQUE,
    -- The newest message, kept in the same transaction as the insert: the
    -- chat list sorts on it.
    last_msg_id INTEGER,
    created_at  INTEGER NOT NULL
);

-- Membership, and each member's position in the conversation: everything up
-- to delivered_id was acknowledged by one of their devices, everything up to
-- read_id was read. Unread counts derive from read_id.
CREATE TABLE members (
    gid          INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    uid          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role         INTEGER NOT NULL,
    delivered_id INTEGER NOT NULL DEFAULT 0,
    read_id      INTEGER NOT NULL DEFAULT 0,
    joined_at    INTEGER NOT NULL,
    -- When this member is notified through Web Push: 0 every message, 1
    -- only when mentioned, 2 never; NULL: the conversation's default (every
    -- message in a direct chat, mentions in a group).
    notify       INTEGER,
    PRIMARY KEY (gid, uid)
) WITHOUT ROWID;
-- A user's conversations (the primary key serves a conversation's members).
CREATE INDEX members_by_uid ON members(uid, gid);

-- kind: 0 Text, 1 RichText, 2 Image, 3 File.
--
-- Ids come from one sequence shared with `changes` (the writer hands them
-- out, `store::messages::Sends::next_id`), so that a client's resume cursor
-- orders messages and the changes made to them alike.
--
-- `reply_to`: the message (of the same conversation) this one answers.
-- `mentions`: the uids of the members that the text names as `@account`,
-- space-separated, for notifications. `edited_at`: the last edit.
-- `deleted_at`: when the sender or an admin deleted it; the content, the
-- mentions, the file reference, the reactions and the search entry are
-- erased then, and the row stays as a tombstone.
--
-- `client_msg_id` is the sender's id for a message ('' when none was
-- given). A resend with the same clientMsgId from the same sender is the
-- same message; the writer recognises resends by its window of recent
-- clientMsgIds (`store::messages::ResendWindow`), held in memory and filled
-- from this column at start-up. There is no unique index on it (versions 1
-- to 3 had one, `messages_dedup`): it cost every send one more index page
-- written, synced and checkpointed.
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    gid           INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    uid           INTEGER NOT NULL,
    kind          INTEGER NOT NULL,
    content       TEXT    NOT NULL,
    client_msg_id TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    reply_to      INTEGER,
    mentions      TEXT    NOT NULL DEFAULT '',
    edited_at     INTEGER,
    deleted_at    INTEGER
);
-- A conversation's messages in id order: history pages, unread counts.
CREATE INDEX messages_by_gid ON messages(gid, id);

-- Reactions: one row per message, emoji and person. A React frame toggles
-- its row; `change_id` is the change-log entry that added it, which orders
-- the reactions.
CREATE TABLE reactions (
    msg_id     INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    content    TEXT    NOT NULL,
    uid        INTEGER NOT NULL,
    change_id  INTEGER NOT NULL,
    PRIMARY KEY (msg_id, content, uid)
) WITHOUT ROWID;

-- The change log: every edit, deletion and reaction, in order, so that a
-- device that was offline gets them at its next login, like the messages it
-- missed (its resume cursor covers both: ids come from the messages'
-- sequence). op: 1 Edit (content = the new text), 2 Delete (content = ''),
-- 3 a reaction added, 4 a reaction taken back (content = the emoji). A
-- deletion erases the content of the message's earlier Edit rows too.
-- `client_msg_id` recognises resends, as for messages (`changes_by_sender`;
-- changes are rare next to messages, so an index costs little here).
CREATE TABLE changes (
    id            INTEGER PRIMARY KEY,
    gid           INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    msg_id        INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    uid           INTEGER NOT NULL,
    op            INTEGER NOT NULL,
    content       TEXT    NOT NULL,
    client_msg_id TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);
-- A conversation's changes in order: replay.
CREATE INDEX changes_by_gid ON changes(gid, id);
-- A message's changes: erasing them with it.
CREATE INDEX changes_by_msg ON changes(msg_id);
-- Resends.
CREATE INDEX changes_by_sender ON changes(uid, client_msg_id) WHERE client_msg_id <> '';

-- ---- files -----------------------------------------------------------------

-- One row per distinct content (identical bytes are stored once: `sha256`
-- is unique). A row with a NULL `sha256` is an upload still streaming in (or
-- abandoned by a crash; `rim files gc` removes those); only complete files
-- can be served or referred to. `width`/`height` are set for the image types
-- rim recognises from their bytes (png, jpeg, gif, webp). AUTOINCREMENT:
-- an id is never handed out again after its file was removed, since
-- browsers keep a file's bytes by its URL for good. (AUTOINCREMENT is also
-- why the database holds SQLite's own `sqlite_sequence` table.)
CREATE TABLE files (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256       BLOB    UNIQUE,
    size         INTEGER NOT NULL,
    content_type TEXT    NOT NULL,
    width        INTEGER,
    height       INTEGER,
    -- Every chunk but the last holds exactly this many bytes, so a byte
    -- range maps to chunks by division.
    chunk_size   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);

-- The bytes, in chunks: an upload streams in one chunk per write and a
-- download (or a Range of it) streams out one chunk per read, so no request
-- holds a whole file in memory. A rowid table on purpose: chunks are large
-- and would bloat a WITHOUT ROWID b-tree.
CREATE TABLE file_chunks (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    data    BLOB    NOT NULL,
    UNIQUE (file_id, seq)
);

-- Who uploaded which file (several people may upload the same bytes): an
-- uploader may read the file and send messages referring to it, and it
-- counts against their quota. `name` is the name they gave it.
CREATE TABLE uploads (
    file_id    INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    uid        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (file_id, uid)
) WITHOUT ROWID;
-- A user's uploads: what counts against their quota.
CREATE INDEX uploads_by_uid ON uploads(uid, file_id);

-- The file an Image or File message refers to, written in the same
-- transaction as the message: the members of the message's conversation
-- may read the file, and a referenced file is never collected (the foreign
-- key forbids deleting it). `name` is the name the message shows, which the
-- search index holds for such messages.
CREATE TABLE message_files (
    msg_id  INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    file_id INTEGER NOT NULL REFERENCES files(id),
    name    TEXT    NOT NULL
);
-- The messages referring to a file: who may read it, and whether it may be
-- collected.
CREATE INDEX message_files_by_file ON message_files(file_id);

-- ---- search ----------------------------------------------------------------

-- The full-text index of messages, rowid = message id, written by rim in
-- the same transaction as the message (`store::search`). Contentless: the
-- text lives in `messages`. `body` holds the message's words as produced by
-- `search::index_body` (Chinese, Japanese and Korean runs as overlapping
-- bigrams, so that text without spaces is searchable); ranking counts how
-- many messages hold a word there. `scoped` holds the same words again in
-- the same order, each marked with the message's conversation: `g{gid}x`
-- in front (`search::scoped_body`; "wifi密码" of conversation 5 is
-- `g5xwifi g5x密码 g5x码`). A search asks for its conversations' marked
-- words only, so it never reads the matches of other conversations, which
-- may be most of a server's. FTS5 keeps the index in its own shadow tables
-- (message_index_data, _idx, _docsize, _config).
CREATE VIRTUAL TABLE message_index USING fts5(
    body,
    scoped,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- The index does not merge its segments by itself. FTS5's automatic merge
-- does its work in bursts (every 64 leaf pages written it merges 64 pages
-- per level of the index), and a burst inside a commit held up every write
-- queued behind it: commits of 10-25 ms at 5,000 msgs/s (`rim bench`,
-- direct). rim's writer merges a few pages with every batch instead
-- (`store::search::flush_queue`). This is a setting, kept in
-- message_index_config, not a row of data.
INSERT INTO message_index (message_index, rank) VALUES ('automerge', 0);

-- A message row that is deleted (directly, or by the cascade from its
-- conversation) takes its index row with it, in the same transaction.
CREATE TRIGGER message_unindex AFTER DELETE ON messages BEGIN
    DELETE FROM message_index WHERE rowid = old.id;
END;

-- ---- Web Push ----------------------------------------------------------------

-- The server's VAPID key pair (RFC 8292), made at first start: browsers
-- subscribe with the public key and push services check that every push is
-- signed by its private key. One row. Losing or replacing it invalidates
-- every subscription.
CREATE TABLE push_keys (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    -- The P-256 private scalar, 32 bytes.
    private_key BLOB    NOT NULL,
    -- The public point, uncompressed (65 bytes), as GET /api/push/key gives it.
    public_key  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);

-- A browser's push subscription, tied to the session (device) that made it:
-- logging out or revoking the token removes it with the session. `endpoint`
-- is the push service's URL for this browser (checked against
-- push.allowed_hosts when it is stored); `p256dh` (65 bytes) and `auth` (16
-- bytes) are the browser's keys that each push is encrypted for.
CREATE TABLE push_subscriptions (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    uid         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    endpoint    TEXT    NOT NULL UNIQUE,
    p256dh      BLOB    NOT NULL,
    auth        BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);
-- The subscriptions of the members a message is pushed to.
CREATE INDEX push_subscriptions_by_uid ON push_subscriptions(uid);
-- Deleting a session finds its subscriptions (the cascade).
CREATE INDEX push_subscriptions_by_session ON push_subscriptions(session_id);

-- ---- bots -------------------------------------------------------------------

-- Scripts and home automation posting into one conversation through
-- `POST /api/bot/<key>/message` (`rim bot add NAME --group GID`). A bot is
-- an account of its own (`account` 'bot:<hex>', which no person can
-- register, and a password hash that never verifies, so it cannot log in)
-- and a member of its conversation, so its messages are stored, pushed and
-- notified like anyone's. Only a SHA-256 of the key is kept, like tokens:
-- the key is shown once. Removing a bot deletes this row and its
-- membership; its account stays, so its old messages keep their sender.
CREATE TABLE bots (
    id         INTEGER PRIMARY KEY,
    uid        INTEGER NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    gid        INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    key_hash   BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
-- The bots of a conversation (the cascade when it is deleted).
CREATE INDEX bots_by_gid ON bots(gid);
